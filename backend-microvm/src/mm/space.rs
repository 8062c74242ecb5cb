//! Several address spaces in one guest: each process has its own page tables (their
//! upper half, the supervisor's, shared by all), `fork` copies one with its frames
//! shared copy-on-write, and a space nobody uses any more gives its frames back.
//!
//! Only one space is current: its page tables, mappings and heap are the fields of
//! [`AddressSpace`]; the others wait in `parked`. Switching moves them, nothing else.
//! Entries a fork takes write access from are rewritten by the guest like any other
//! narrowed entry (the flush list); page-table frames of a space that went away are
//! retired (`Memory::retire`): reused only after the guest dropped all its cached
//! translations (a slot reload, one per many released spaces), so that no stale
//! shadow of an old table survives into a new use of its frame.

use super::pagetable::{PageTables, PTE_ADDR, PTE_P, PTE_W};
use super::vma::{VmaKind, VmaMap};
use super::{AddressSpace, MapError, Stale};
use crate::guest::layout::{PAGE_SIZE, PML4_GPA, USER_TOP};
use crate::memory::{HeapCharge, OutOfMemory};

/// Names an address space.
pub(crate) type SpaceId = u32;

/// Most mappings one address space may have (Linux's default `vm.max_map_count`):
/// past it, calls that would add one fail with `ENOMEM`.
pub(crate) const MAX_MAP_COUNT: usize = 65_530;

/// What `n` mappings cost the VMM (the map's nodes, each mapping's record).
pub(crate) fn vma_cost(n: usize) -> u64 {
    n as u64 * 96
}

/// A space that is not current.
#[derive(Debug)]
pub(crate) struct Parked {
    pt: PageTables,
    vmas: VmaMap,
    brk_start: u64,
    brk: u64,
    mmap_top: u64,
    vma_charge: Option<HeapCharge>,
}

impl AddressSpace {
    /// The current space.
    pub(crate) fn space(&self) -> SpaceId {
        self.id
    }

    /// The root page table of the current space (CR3).
    pub(crate) fn cr3(&self) -> u64 {
        self.pt.root()
    }

    /// True (once) when retired page-table frames became reusable since the last
    /// call: the guest must drop its cached translations before it runs.
    pub(crate) fn take_reload(&mut self) -> bool {
        self.mem.take_reclaimed()
    }

    /// A new, empty space (parked): the supervisor's half and the stub pages only.
    pub(crate) fn new_space(&mut self) -> Result<SpaceId, OutOfMemory> {
        let root = self.mem.alloc()?;
        let mut upper = vec![0u8; (PAGE_SIZE / 2) as usize];
        self.mem.read(PML4_GPA + PAGE_SIZE / 2, &mut upper);
        self.mem.write(root + PAGE_SIZE / 2, &upper);
        let pt = PageTables::new(root);
        if let Err(e) = crate::guest::map_stub_pages(&mut self.mem, &pt) {
            self.free_tables(pt);
            return Err(e);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.parked.insert(
            id,
            Parked {
                pt,
                vmas: VmaMap::default(),
                brk_start: 0,
                brk: 0,
                mmap_top: USER_TOP,
                vma_charge: None,
            },
        );
        Ok(id)
    }

    /// Makes a new space current for the first program: the supervisor's template
    /// (the fixed root, whose upper half every space copies) is set aside for good.
    pub(crate) fn start_first_space(&mut self) -> Result<(), OutOfMemory> {
        let id = self.new_space()?;
        self.switch(id);
        self.parked.remove(&0);
        Ok(())
    }

    /// Makes `id` the current space; false when there is no such space.
    pub(crate) fn switch(&mut self, id: SpaceId) -> bool {
        if id == self.id {
            return true;
        }
        let Some(next) = self.parked.remove(&id) else {
            return false;
        };
        let old = Parked {
            pt: std::mem::replace(&mut self.pt, next.pt),
            vmas: std::mem::replace(&mut self.vmas, next.vmas),
            brk_start: std::mem::replace(&mut self.brk_start, next.brk_start),
            brk: std::mem::replace(&mut self.brk, next.brk),
            mmap_top: std::mem::replace(&mut self.mmap_top, next.mmap_top),
            vma_charge: std::mem::replace(&mut self.vma_charge, next.vma_charge),
        };
        self.parked.insert(self.id, old);
        self.id = id;
        true
    }

    /// A copy of the current space (parked), its private pages shared copy-on-write:
    /// both sides lose write access to them until they write (see `fault`).
    pub(crate) fn fork(&mut self) -> Result<SpaceId, MapError> {
        let id = self.new_space()?;
        let child_pt = self.parked[&id].pt;
        let mut entries = Vec::new();
        let walked = self
            .pt
            .for_each_mapped(&mut self.mem, 0, USER_TOP, |_, va, slot, pte| {
                entries.push((va, slot, pte));
            });
        if walked.is_err() {
            self.release(id);
            return Err(MapError::Halted);
        }
        for (i, (va, slot, pte)) in entries.into_iter().enumerate() {
            if i % 4096 == 4095 && crate::kick::must_stop() {
                self.release(id);
                return Err(MapError::Halted);
            }
            let vma = self.vmas.find(va).map(|(_, v)| v);
            if vma.is_some_and(|v| v.on_fork.skip || v.on_fork.wipe) {
                // Not the child's: no mapping there (`MADV_DONTFORK`), or fresh zero
                // pages at its first touch (`MADV_WIPEONFORK`). The parent keeps its
                // page as it is, writable.
                continue;
            }
            let shared = matches!(vma.map(|v| &v.kind), Some(VmaKind::SharedFile { .. }));
            let child = if shared { pte } else { pte & !PTE_W };
            if let Err(e) = child_pt.map(&mut self.mem, va, child) {
                self.release(id);
                return Err(e.into());
            }
            self.mem.share(pte & PTE_ADDR);
            if child != pte {
                self.mem.write_u64(slot, child);
                if pte & PTE_P != 0 {
                    self.flush.push(Stale::of(slot, pte));
                }
            }
        }
        let mut vmas = self.vmas.clone();
        let skipped: Vec<(u64, u64)> = vmas
            .iter()
            .filter(|(_, v)| v.on_fork.skip)
            .map(|(s, v)| (s, v.end))
            .collect();
        for (s, e) in skipped {
            vmas.remove(s, e);
        }
        vmas.unlock_for_child();
        let charge = match HeapCharge::of(&self.mem.budget(), vma_cost(vmas.len())) {
            Ok(c) => c,
            Err(e) => {
                self.release(id);
                return Err(e.into());
            }
        };
        if let Some(p) = self.parked.get_mut(&id) {
            p.vmas = vmas;
            (p.brk_start, p.brk, p.mmap_top) = (self.brk_start, self.brk, self.mmap_top);
            p.vma_charge = Some(charge);
        }
        Ok(id)
    }

    /// Fails with `ENOMEM` when a call that may add up to two mappings (a split in
    /// three) would pass [`MAX_MAP_COUNT`].
    pub(crate) fn room_for_mappings(&self) -> Result<(), MapError> {
        if self.vmas.len() + 2 > MAX_MAP_COUNT {
            return Err(MapError::Errno(libc::ENOMEM));
        }
        Ok(())
    }

    /// Charges the current space's mappings to the sandbox's memory (after a call
    /// that changed them): `ENOMEM` when the budget has no room.
    pub(crate) fn account_mappings(&mut self) -> Result<(), MapError> {
        let bytes = vma_cost(self.vmas.len());
        let budget = self.mem.budget();
        self.vma_charge
            .get_or_insert_with(|| HeapCharge::new(&budget))
            .set(bytes)
            .map_err(|_| MapError::Errno(libc::ENOMEM))
    }

    /// Gives back everything of the parked space `id`: its frames (those shared with
    /// other spaces keep their other holders) and its page tables.
    pub(crate) fn release(&mut self, id: SpaceId) {
        if let Some(p) = self.parked.remove(&id) {
            self.free_tables(p.pt);
        }
    }

    fn free_tables(&mut self, pt: PageTables) {
        let (leaves, mut tables) = pt.lower_frames(&self.mem);
        self.mem.free(leaves);
        tables.push(pt.root());
        self.mem.retire(tables);
    }

    /// Calls `f` with each mapping of space `id` (current or parked).
    pub(crate) fn each_vma_of(&self, id: SpaceId, mut f: impl FnMut(u64, &super::Vma)) {
        let vmas = if id == self.id {
            &self.vmas
        } else {
            match self.parked.get(&id) {
                Some(p) => &p.vmas,
                None => return,
            }
        };
        for (s, v) in vmas.iter() {
            f(s, v);
        }
    }

    /// The page tables of space `id` (current or parked).
    pub(crate) fn tables_of(&self, id: SpaceId) -> Option<PageTables> {
        if id == self.id {
            Some(self.pt)
        } else {
            self.parked.get(&id).map(|p| p.pt)
        }
    }

    /// Number of spaces (the current one included).
    #[cfg(test)]
    pub(crate) fn spaces(&self) -> usize {
        self.parked.len() + 1
    }
}

impl crate::snap::Snap for Parked {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(Parked {
            pt: self.pt,
            vmas: self.vmas.snap(m)?,
            brk_start: self.brk_start,
            brk: self.brk,
            mmap_top: self.mmap_top,
            vma_charge: self.vma_charge.snap(m)?,
        })
    }
}

// Saving to and loading from a file (`savefile`).
impl Parked {
    pub(crate) fn save(
        &self,
        e: &mut crate::savefile::wire::Enc,
        io: &mut dyn super::vma::BackingIo,
    ) -> Result<(), crate::snap::SnapError> {
        e.u64(self.pt.root());
        self.vmas.save(e, io)?;
        for v in [self.brk_start, self.brk, self.mmap_top] {
            e.u64(v);
        }
        e.opt(self.vma_charge.as_ref(), |e, c| e.u64(c.bytes()));
        Ok(())
    }

    pub(crate) fn load(
        d: &mut crate::savefile::wire::Dec<'_>,
        io: &mut dyn super::vma::BackingIo,
        mem: &crate::memory::Memory,
    ) -> Result<Parked, crate::savefile::wire::WireError> {
        let pt = super::load_root(d, mem)?;
        Ok(Parked {
            pt,
            vmas: VmaMap::load(d, io)?,
            brk_start: d.u64("an address space")?,
            brk: d.u64("an address space")?,
            mmap_top: d.u64("an address space")?,
            vma_charge: d.opt("an address space", |d| {
                Ok(HeapCharge::restored(&mem.budget(), d.u64("a charge")?))
            })?,
        })
    }
}
