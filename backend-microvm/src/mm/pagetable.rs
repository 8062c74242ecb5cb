//! x86-64 4-level page tables in guest memory, written by the VMM.
//!
//! The VMM is the only writer. Entries going from not-present to present need nothing
//! more; any other change of a live entry must also be rewritten by the guest itself and
//! flushed (see `AddressSpace::take_flush`), because KVM's shadow paging (PVM) does
//! not see host writes and a VT-x/AMD-V TLB may hold the old translation.

use crate::guest::layout::PAGE_SIZE;
use crate::memory::{Memory, OutOfMemory};

/// Present.
pub(crate) const PTE_P: u64 = 1 << 0;
/// Writable.
pub(crate) const PTE_W: u64 = 1 << 1;
/// User-accessible.
pub(crate) const PTE_U: u64 = 1 << 2;
/// Accessed.
pub(crate) const PTE_A: u64 = 1 << 5;
/// Dirty.
pub(crate) const PTE_D: u64 = 1 << 6;
/// Large page (in a PDPT or PD entry).
pub(crate) const PTE_PS: u64 = 1 << 7;
/// No execute.
pub(crate) const PTE_NX: u64 = 1 << 63;
/// Software bit (ignored by the CPU): the entry holds a frame of the workload, present
/// or not (a `PROT_NONE` page keeps its frame in a non-present entry).
pub(crate) const PTE_FRAME: u64 = 1 << 9;
/// The frame address bits.
pub(crate) const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Entries per table.
const ENTRIES: u64 = 512;

fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * level)) & (ENTRIES - 1)
}

/// Flags of an intermediate entry covering `va`: user-accessible in the lower half
/// (the leaf decides), supervisor-only in the upper half.
fn table_flags(va: u64) -> u64 {
    if va >> 63 == 0 {
        PTE_P | PTE_W | PTE_U | PTE_A
    } else {
        PTE_P | PTE_W | PTE_A
    }
}

/// The page tables of one address space.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageTables {
    root: u64,
}

impl PageTables {
    /// Page tables rooted at the (zeroed) frame `root`.
    pub(crate) fn new(root: u64) -> PageTables {
        PageTables { root }
    }

    /// The root's guest-physical address (CR3).
    pub(crate) fn root(&self) -> u64 {
        self.root
    }

    /// Every frame of the lower half (the workload's part): the frames its leaf entries
    /// hold for the workload (`PTE_FRAME`), and its table frames (the root excluded).
    pub(crate) fn lower_frames(&self, mem: &Memory) -> (Vec<u64>, Vec<u64>) {
        fn walk(
            mem: &Memory,
            table: u64,
            level: u32,
            leaves: &mut Vec<u64>,
            tables: &mut Vec<u64>,
        ) {
            let mut page = [0u8; PAGE_SIZE as usize];
            if mem.read(table, &mut page).is_none() {
                return;
            }
            for e in page.chunks_exact(8) {
                let e = u64::from_le_bytes(e.try_into().unwrap_or_default());
                if level == 0 {
                    if e & PTE_FRAME != 0 {
                        leaves.push(e & PTE_ADDR);
                    }
                } else if e & PTE_P != 0 && e & PTE_PS == 0 {
                    tables.push(e & PTE_ADDR);
                    walk(mem, e & PTE_ADDR, level - 1, leaves, tables);
                }
            }
        }
        let (mut leaves, mut tables) = (Vec::new(), Vec::new());
        for i in 0..ENTRIES / 2 {
            let e = mem.read_u64(self.root + i * 8).unwrap_or(0);
            if e & PTE_P != 0 {
                tables.push(e & PTE_ADDR);
                walk(mem, e & PTE_ADDR, 2, &mut leaves, &mut tables);
            }
        }
        (leaves, tables)
    }

    /// The table at `level` (3 = PDPT .. 1 = PT) covering `va`, allocated on the way
    /// when `alloc`; `None` when absent (or covered by a large page).
    fn table(
        &self,
        mem: &mut Memory,
        va: u64,
        stop_level: u32,
        alloc: bool,
    ) -> Result<Option<u64>, OutOfMemory> {
        let mut table = self.root;
        for level in (stop_level..4).rev() {
            let slot = table + index(va, level) * 8;
            let entry = mem.read_u64(slot).unwrap_or(0);
            if entry & PTE_P != 0 {
                if entry & PTE_PS != 0 {
                    return Ok(None);
                }
                table = entry & PTE_ADDR;
                continue;
            }
            if !alloc {
                return Ok(None);
            }
            let frame = mem.alloc()?;
            mem.write_u64(slot, frame | table_flags(va));
            table = frame;
        }
        Ok(Some(table))
    }

    /// The guest-physical address of the leaf entry for `va`, tables allocated on the way.
    pub(crate) fn leaf_slot(&self, mem: &mut Memory, va: u64) -> Result<u64, OutOfMemory> {
        match self.table(mem, va, 1, true)? {
            Some(pt) => Ok(pt + index(va, 0) * 8),
            None => Err(OutOfMemory),
        }
    }

    /// The leaf entry for `va` and where it is, when its tables exist.
    pub(crate) fn lookup(&self, mem: &mut Memory, va: u64) -> Option<(u64, u64)> {
        let pt = self.table(mem, va, 1, false).ok().flatten()?;
        let slot = pt + index(va, 0) * 8;
        Some((slot, mem.read_u64(slot)?))
    }

    /// Maps the 4 KiB page at `va` with the entry `pte` (frame | flags).
    pub(crate) fn map(&self, mem: &mut Memory, va: u64, pte: u64) -> Result<u64, OutOfMemory> {
        let slot = self.leaf_slot(mem, va)?;
        mem.write_u64(slot, pte);
        Ok(slot)
    }

    /// Maps a 2 MiB page at `va` (setup only: the direct map).
    pub(crate) fn map_large(&self, mem: &mut Memory, va: u64, pde: u64) -> Result<(), OutOfMemory> {
        let pd = self.table(mem, va, 2, true)?.ok_or(OutOfMemory)?;
        mem.write_u64(pd + index(va, 1) * 8, pde | PTE_PS);
        Ok(())
    }

    /// Calls `f(va, slot, pte)` for each leaf entry in `start .. end` that holds a frame
    /// of the workload (`PTE_FRAME`), skipping absent tables whole. The walk costs up
    /// to a table read per page-table frame the guest made (bounded by its memory, but
    /// long for a large one): it gives up with [`Halted`] when the run's limits are
    /// reached meanwhile (see `kick::must_stop`), the entries seen so far having been
    /// passed to `f`.
    pub(crate) fn for_each_mapped(
        &self,
        mem: &mut Memory,
        start: u64,
        end: u64,
        mut f: impl FnMut(&mut Memory, u64, u64, u64),
    ) -> Result<(), Halted> {
        let mut va = start;
        while va < end {
            if crate::kick::must_stop() {
                return Err(Halted);
            }
            // Skip the whole span an absent table would cover.
            let mut skipped = false;
            for level in (1..4).rev() {
                if self.table(mem, va, level, false).ok().flatten().is_none() {
                    let span = PAGE_SIZE << (9 * level);
                    va = (va & !(span - 1)).saturating_add(span);
                    skipped = true;
                    break;
                }
            }
            if skipped {
                continue;
            }
            let Ok(Some(pt)) = self.table(mem, va, 1, false) else {
                va += PAGE_SIZE;
                continue;
            };
            let table_end = ((va | ((PAGE_SIZE << 9) - 1)) + 1).min(end);
            while va < table_end {
                let slot = pt + index(va, 0) * 8;
                let pte = mem.read_u64(slot).unwrap_or(0);
                if pte & PTE_FRAME != 0 {
                    f(mem, va, slot, pte);
                }
                va += PAGE_SIZE;
            }
        }
        Ok(())
    }
}

/// Long VMM work gave up because the run's limits were reached (killed, wall or CPU
/// time): the run ends at the vCPU loop's next turn, whatever the work returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Halted;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_lookup_and_walk() {
        let mut mem = Memory::new(4 << 20).unwrap();
        let root = mem.alloc().unwrap();
        let pt = PageTables::new(root);
        let frame = mem.alloc().unwrap();
        pt.map(&mut mem, 0x40_0000, frame | PTE_P | PTE_U | PTE_FRAME)
            .unwrap();
        pt.map(&mut mem, 0x40_1000, frame | PTE_P | PTE_U).unwrap();
        pt.map(&mut mem, 0x7fff_0000_0000, frame | PTE_FRAME)
            .unwrap();
        let (_, pte) = pt.lookup(&mut mem, 0x40_0000).unwrap();
        assert_eq!(pte & PTE_ADDR, frame);
        assert!(pt.lookup(&mut mem, 0x40_2000).is_some_and(|(_, p)| p == 0));
        assert!(pt.lookup(&mut mem, 0x1_0000_0000).is_none());
        let mut seen = Vec::new();
        pt.for_each_mapped(&mut mem, 0, 1 << 47, |_, va, _, _| seen.push(va))
            .unwrap();
        assert_eq!(seen, vec![0x40_0000, 0x7fff_0000_0000]);
        // Intermediate entries of the lower half are user-accessible.
        let pml4e = mem.read_u64(root).unwrap();
        assert_eq!(pml4e & (PTE_P | PTE_W | PTE_U), PTE_P | PTE_W | PTE_U);
    }
}
