//! The workload's address space: mappings, page tables, demand paging, and the
//! page-table changes the guest must replay before it runs again.

mod fault;
mod filecache;
pub(crate) mod pagetable;
mod space;
mod uaccess;
pub(crate) mod vma;

pub(crate) use space::SpaceId;
pub(crate) use uaccess::{ArrayError, CStrError, SizedError, UserError, UserPtr};
pub(crate) use vma::{Backing, Lock, SharedPages, Vma, VmaKind, PROT_EXEC, PROT_READ, PROT_WRITE};

use crate::guest::layout::{direct_map, PAGE_SIZE, USER_TOP};
use crate::memory::{Memory, OutOfMemory};
use pagetable::{PageTables, PTE_A, PTE_ADDR, PTE_D, PTE_FRAME, PTE_NX, PTE_P, PTE_U, PTE_W};
use std::rc::Rc;
use vma::{page_up, VmaMap};

/// `si_code` of a SIGSEGV for an address with no mapping.
pub(crate) const SEGV_MAPERR: i32 = 1;
/// `si_code` of a SIGSEGV for a mapping without the right.
pub(crate) const SEGV_ACCERR: i32 = 2;

/// Lowest address a mapping may have (Linux's default `vm.mmap_min_addr`).
pub(crate) const MMAP_MIN_ADDR: u64 = 0x1_0000;
/// Pages mapped together on an anonymous fault (each fault is a VM exit).
pub(super) const FAULT_AROUND: u64 = 16;
/// Pages mapped together on a fault in a file mapping.
pub(super) const FILE_FAULT_AROUND: u64 = 64;
/// The most pages one fault maps: the window doubles (from the two above) while
/// faults come in the window right after the last one (a heap or an arena filled in
/// order), as Linux's readahead grows.
pub(super) const MAX_FAULT_AROUND: u64 = 256;
/// Pages mapped at once when the heap grows.
const BRK_PREFAULT: u64 = 32;
/// Private anonymous mappings this small (and an ELF segment's `.bss` tail) are
/// mapped at once (see `sys_mmap`, the loader): programs write them at start-up.
pub(crate) const SMALL_ANON_PAGES: u64 = 16;

/// The kind of access that faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// A load.
    Read,
    /// A store.
    Write,
    /// An instruction fetch.
    Exec,
}

/// What a page fault comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultOutcome {
    /// The page is mapped now (or was, and the guest's view is being refreshed).
    Mapped,
    /// SIGSEGV with this `si_code` (`SEGV_MAPERR` or `SEGV_ACCERR`).
    Segv(i32),
    /// SIGBUS: a file mapping beyond the end of its file.
    Bus,
    /// No frame left.
    Oom,
}

/// Errors of the mapping calls, as errno values (or out of memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapError {
    /// An errno for the workload.
    Errno(i32),
    /// Guest memory is exhausted.
    Oom,
    /// The run's limits were reached during the work (see [`pagetable::Halted`]).
    Halted,
}

impl From<OutOfMemory> for MapError {
    fn from(_: OutOfMemory) -> Self {
        MapError::Oom
    }
}

impl From<pagetable::Halted> for MapError {
    fn from(_: pagetable::Halted) -> Self {
        MapError::Halted
    }
}

/// Leaf-entry flags for `PROT_*` bits (without the frame).
pub(super) fn pte_flags(prot: u32) -> u64 {
    if prot & (PROT_READ | PROT_WRITE | PROT_EXEC) == 0 {
        return PTE_FRAME;
    }
    // Accessed and dirty from the start: KVM's shadow paging then needs no fault to set
    // them, and prefetches neighbouring entries when it fills one (it skips entries
    // that were never accessed).
    let mut f = PTE_P | PTE_U | PTE_A | PTE_D | PTE_FRAME;
    if prot & PROT_WRITE != 0 {
        f |= PTE_W;
    }
    if prot & PROT_EXEC == 0 {
        f |= PTE_NX;
    }
    f
}

pub(super) fn allowed(prot: u32, access: Access) -> bool {
    match access {
        // On x86 any mapped page can be read.
        Access::Read => prot != 0,
        Access::Write => prot & PROT_WRITE != 0,
        Access::Exec => prot & PROT_EXEC != 0,
    }
}

/// Guest memory and the address spaces in it: the current one's parts are fields
/// here (every mapping call works on it), the others are parked (see `space.rs`).
#[derive(Debug)]
pub(crate) struct AddressSpace {
    /// Guest RAM and its frames.
    pub(crate) mem: Memory,
    /// Which space is current.
    pub(super) id: SpaceId,
    /// The other spaces.
    pub(super) parked: std::collections::BTreeMap<SpaceId, space::Parked>,
    pub(super) next_id: SpaceId,
    pub(super) pt: PageTables,
    pub(super) vmas: VmaMap,
    brk_start: u64,
    brk: u64,
    /// Top-down `mmap` placement starts below this.
    mmap_top: u64,
    /// Leaf entries changed since the guest last ran, which it may hold an old
    /// translation of: it rewrites those (then flushes) before it runs again.
    pub(super) flush: Vec<Stale>,
    /// What the current space's mappings cost the sandbox's memory.
    pub(super) vma_charge: Option<crate::memory::HeapCharge>,
    /// The last page whose fault found it already mapped, and how often in a row.
    pub(super) spurious: (u64, u32),
    /// Where recent faults' windows ended, and their sizes in pages (a few streams:
    /// the heap, an arena and the code filling them interleave).
    pub(super) streaks: [(u64, u64); 8],
    /// The entry of `streaks` a new stream takes.
    pub(super) next_streak: usize,
}

impl AddressSpace {
    /// An address space over `pt` with nothing of the workload mapped.
    pub(crate) fn new(mem: Memory, pt: PageTables) -> AddressSpace {
        AddressSpace {
            mem,
            id: 0,
            parked: std::collections::BTreeMap::new(),
            next_id: 1,
            pt,
            vmas: VmaMap::default(),
            brk_start: 0,
            brk: 0,
            mmap_top: USER_TOP,
            flush: Vec::new(),
            vma_charge: None,
            spurious: (0, 0),
            streaks: [(0, 0); 8],
            next_streak: 0,
        }
    }

    /// Sets where the heap starts and below which `mmap` places mappings.
    pub(crate) fn set_layout(&mut self, brk_start: u64, mmap_top: u64) {
        self.brk_start = brk_start;
        self.brk = brk_start;
        self.mmap_top = mmap_top;
    }

    /// The current program break.
    pub(crate) fn brk(&self) -> u64 {
        self.brk
    }

    /// The mapping containing `va`, with its start.
    pub(crate) fn vma_at(&self, va: u64) -> Option<(u64, &Vma)> {
        self.vmas.find(va)
    }

    /// The mappings overlapping `start .. end`, with their starts, in order.
    pub(crate) fn vmas_overlapping(
        &self,
        start: u64,
        end: u64,
    ) -> impl Iterator<Item = (u64, &Vma)> {
        self.vmas.overlapping(start, end)
    }

    /// The pages of `start .. end` of the current space that hold a frame of the
    /// workload (page tables walked, absent tables skipped whole).
    pub(crate) fn framed_pages(&mut self, start: u64, end: u64) -> Vec<u64> {
        let mut pages = Vec::new();
        let _ = self
            .pt
            .for_each_mapped(&mut self.mem, start, end.min(USER_TOP), |_, va, _, _| {
                pages.push(va)
            });
        pages
    }

    /// Where the mappings from `start` on first leave a hole (or `end`).
    pub(crate) fn covered_until(&self, start: u64, end: u64) -> u64 {
        self.vmas.covered_until(start, end)
    }

    /// The mappings (for tests and diagnostics).
    pub(crate) fn vmas(&self) -> impl Iterator<Item = (u64, &Vma)> {
        self.vmas.iter()
    }

    /// What is at `va`, in a word (for the fault trace, `HSB_MICROVM_TRACE=1`).
    pub(crate) fn describe(&mut self, va: u64) -> String {
        let kind = match self.vmas.find(va) {
            None => "unmapped",
            Some((_, v)) => match v.kind {
                VmaKind::Anon => "anon",
                VmaKind::File { .. } => "file",
                VmaKind::SharedFile { .. } => "shared",
            },
        };
        let pte = self.pt.lookup(&mut self.mem, va).map_or(0, |(_, p)| p);
        format!("{kind} pte {pte:#x}")
    }

    /// Entries changed since the last [`AddressSpace::take_flush`] wait to be
    /// rewritten by the guest (the guest must not run on before they are).
    pub(crate) fn has_flush(&self) -> bool {
        !self.flush.is_empty()
    }

    /// Takes the entries the guest must rewrite before running again (their
    /// direct-map addresses): every changed entry but those whose value now grants
    /// all that the old one did, on the same frame (see [`Stale`]).
    pub(crate) fn take_flush(&mut self) -> Vec<u64> {
        let stale = std::mem::take(&mut self.flush);
        stale
            .into_iter()
            .filter(|s| {
                let now =
                    s.va.checked_sub(direct_map(0))
                        .and_then(|slot| self.mem.read_u64(slot));
                !now.is_some_and(|now| covers(now, s.was))
            })
            .map(|s| s.va)
            .collect()
    }

    /// Adds a mapping over a free, page-aligned range.
    pub(crate) fn insert(&mut self, start: u64, end: u64, prot: u32, kind: VmaKind) {
        self.vmas.insert(start, Vma::new(end, prot, kind));
    }

    /// Unmaps the pages of `start .. end` (mappings are kept), freeing their frames.
    /// Halted part way (see [`pagetable::Halted`]), the pages dropped so far are gone.
    fn drop_pages(&mut self, start: u64, end: u64) -> Result<(), MapError> {
        self.replace_pages(start, end, None)
    }

    /// [`drop_pages`](Self::drop_pages) for a new mapping over the range, keeping the
    /// entries `keep` says it takes as they are (see [`filecache::KeepCached`]).
    fn replace_pages(
        &mut self,
        start: u64,
        end: u64,
        keep: Option<&filecache::KeepCached>,
    ) -> Result<(), MapError> {
        let mut frames = Vec::new();
        let mut flush = Vec::new();
        let walked = self
            .pt
            .for_each_mapped(&mut self.mem, start, end, |mem, va, slot, pte| {
                if let Some(new) = keep.and_then(|k| k.entry(mem, va, pte)) {
                    if new != pte {
                        mem.write_u64(slot, new);
                        if pte & PTE_P != 0 {
                            flush.push(Stale::of(slot, pte));
                        }
                    }
                    return;
                }
                mem.write_u64(slot, 0);
                frames.push(pte & PTE_ADDR);
                if pte & PTE_P != 0 {
                    flush.push(Stale::of(slot, pte));
                }
            });
        self.flush.extend(flush);
        self.mem.free(frames);
        walked.map_err(MapError::from)
    }

    /// Validates a range given to a mapping call: page-aligned start, non-empty, inside
    /// the workload's part of the address space. Returns its page-aligned end.
    fn range(start: u64, len: u64) -> Result<u64, MapError> {
        if start % PAGE_SIZE != 0 || len == 0 {
            return Err(MapError::Errno(libc::EINVAL));
        }
        let end = start
            .checked_add(len)
            .and_then(page_up)
            .ok_or(MapError::Errno(libc::EINVAL))?;
        if end > USER_TOP {
            return Err(MapError::Errno(libc::EINVAL));
        }
        Ok(end)
    }

    /// `munmap`.
    pub(crate) fn munmap(&mut self, start: u64, len: u64) -> Result<(), MapError> {
        let end = Self::range(start, len)?;
        self.drop_pages(start, end)?;
        self.vmas.remove(start, end);
        Ok(())
    }

    /// `mmap`: places (or, with `fixed`, replaces at) and records a mapping.
    pub(crate) fn mmap(
        &mut self,
        addr: u64,
        len: u64,
        prot: u32,
        fixed: Fixed,
        below_4g: bool,
        kind: VmaKind,
    ) -> Result<u64, MapError> {
        if len == 0 {
            return Err(MapError::Errno(libc::EINVAL));
        }
        let len = page_up(len).ok_or(MapError::Errno(libc::ENOMEM))?;
        let start = match fixed {
            Fixed::Replace | Fixed::NoReplace => {
                // Linux's get_unmapped_area: past the user range is ENOMEM, before an
                // unaligned address is EINVAL.
                if len > USER_TOP || addr > USER_TOP - len {
                    return Err(MapError::Errno(libc::ENOMEM));
                }
                let end = Self::range(addr, len).map_err(|_| MapError::Errno(libc::EINVAL))?;
                if addr < MMAP_MIN_ADDR {
                    return Err(MapError::Errno(libc::EPERM));
                }
                if fixed == Fixed::NoReplace && !self.vmas.is_free(addr, end) {
                    return Err(MapError::Errno(libc::EEXIST));
                }
                let keep = filecache::KeepCached::new(addr, prot, &kind);
                self.replace_pages(addr, end, keep.as_ref())?;
                self.vmas.remove(addr, end);
                addr
            }
            Fixed::Hint => self
                .place(addr, len, below_4g)
                .ok_or(MapError::Errno(libc::ENOMEM))?,
        };
        self.vmas.insert(start, Vma::new(start + len, prot, kind));
        Ok(start)
    }

    /// Chooses where a new mapping of `len` bytes goes: the hint when free, else the
    /// highest free range below the mmap base.
    fn place(&self, hint: u64, len: u64, below_4g: bool) -> Option<u64> {
        let hint = hint & !(PAGE_SIZE - 1);
        if hint >= MMAP_MIN_ADDR {
            if let Some(end) = hint.checked_add(len) {
                if end <= USER_TOP && self.vmas.is_free(hint, end) {
                    return Some(hint);
                }
            }
        }
        let top = if below_4g { 0x8000_0000 } else { self.mmap_top };
        let bottom = if below_4g {
            MMAP_MIN_ADDR
        } else {
            self.brk.max(MMAP_MIN_ADDR)
        };
        self.vmas.find_free_below(len, bottom, top)
    }

    /// `mprotect`.
    pub(crate) fn mprotect(&mut self, start: u64, len: u64, prot: u32) -> Result<(), MapError> {
        if start % PAGE_SIZE != 0 {
            return Err(MapError::Errno(libc::EINVAL));
        }
        if len == 0 {
            return Ok(());
        }
        let asked = Self::range(start, len)?;
        // As Linux: the mappings from `start` on take the rights one after another up
        // to the first hole, where the call stops with ENOMEM (what changed stays).
        let covered = self.vmas.covered_until(start, asked);
        if covered == start {
            return Err(MapError::Errno(libc::ENOMEM));
        }
        // A mapping that may never be written (or executed) stops the call there with
        // EACCES, as Linux's mprotect_fixup loop without VM_MAYWRITE (VM_MAYEXEC).
        let never = if prot & PROT_WRITE != 0 {
            vma::hint::NO_WRITE
        } else {
            0
        } | if prot & PROT_EXEC != 0 {
            vma::hint::NO_EXEC
        } else {
            0
        };
        let refused = self
            .vmas
            .overlapping(start, covered)
            .find(|(_, v)| v.hints & never != 0)
            .map(|(s, _)| s.max(start));
        let end = refused.unwrap_or(covered);
        if end > start {
            self.protect_range(start, end, prot)?;
        }
        if refused.is_some() {
            return Err(MapError::Errno(libc::EACCES));
        }
        if end < asked {
            return Err(MapError::Errno(libc::ENOMEM));
        }
        Ok(())
    }

    /// Gives the mappings of `start .. end` (all mapped) the rights `prot`, their
    /// present pages too.
    fn protect_range(&mut self, start: u64, end: u64, prot: u32) -> Result<(), MapError> {
        self.vmas.protect(start, end, prot);
        let mut entries = Vec::new();
        self.pt
            .for_each_mapped(&mut self.mem, start, end, |_, va, slot, pte| {
                entries.push((va, slot, pte));
            })?;
        for (va, slot, pte) in entries {
            let Some((_, vma)) = self.vmas.find(va) else {
                continue;
            };
            let want = self.leaf(pte & PTE_ADDR, prot, &vma.kind);
            if want != pte {
                self.mem.write_u64(slot, want);
                if pte & PTE_P != 0 {
                    self.flush.push(Stale::of(slot, pte));
                }
            }
        }
        Ok(())
    }

    /// Locks or unlocks the mappings in `start .. end` (holes are skipped).
    pub(crate) fn set_lock(&mut self, start: u64, end: u64, lock: vma::Lock) {
        self.vmas.set_lock(start, end, lock);
    }

    /// Pages of locked mappings in `start .. end`.
    pub(crate) fn locked_pages(&self, start: u64, end: u64) -> u64 {
        self.vmas.locked_pages(start, end)
    }

    /// Pages of every mapping.
    pub(crate) fn total_pages(&self) -> u64 {
        self.vmas.total_pages()
    }

    /// How mappings made from now on are locked (`mlockall(MCL_FUTURE)`).
    pub(crate) fn lock_future(&self) -> vma::Lock {
        self.vmas.lock_future
    }

    pub(crate) fn set_lock_future(&mut self, lock: vma::Lock) {
        self.vmas.lock_future = lock;
    }

    /// Sets then clears `madvise` hint bits (`vma::hint`) of the mappings in
    /// `start .. end`.
    pub(crate) fn hint(&mut self, start: u64, end: u64, set: u8, clear: u8) {
        self.vmas.hint(start, end, set, clear);
    }

    /// Changes what a `fork`'s child gets of the mappings in `start .. end`
    /// (`madvise`'s fork advice; holes are skipped).
    pub(crate) fn advise_fork(&mut self, start: u64, end: u64, set: impl Fn(&mut vma::OnFork)) {
        self.vmas.advise_fork(start, end, set);
    }

    /// `madvise(MADV_REMOVE)` over `start .. end`, within one mapping: shared
    /// anonymous memory (Linux's shmem) reads as zeros afterwards in every process
    /// sharing it (its frames are zeroed where they exist: no frame, no data). `None`
    /// for any other mapping (the caller's `EINVAL`).
    pub(crate) fn zero_shared(&mut self, start: u64, end: u64) -> Option<()> {
        let (vstart, vma) = self.vmas.find(start)?;
        let VmaKind::SharedFile { pages, offset } = &vma.kind else {
            return None;
        };
        if !matches!(pages.file.saved(), Some(vma::SavedBacking::Zero)) {
            return None;
        }
        let first = (offset + (start - vstart)) / PAGE_SIZE;
        let last = (offset + (end.min(vma.end) - vstart)).div_ceil(PAGE_SIZE);
        let frames: Vec<u64> = pages
            .frames
            .borrow()
            .range(first..last)
            .map(|(_, f)| *f)
            .collect();
        for f in frames {
            self.mem.write(f, &[0u8; PAGE_SIZE as usize]);
        }
        Some(())
    }

    /// The file `madvise(MADV_REMOVE)` over `start .. end` (within one mapping, not
    /// shared anonymous memory: see [`AddressSpace::zero_shared`]) punches a hole in, and the
    /// file range: as Linux's madvise_remove, `EINVAL` without a file, `EACCES` for a
    /// mapping that is private or of a file opened without write access.
    pub(crate) fn removable(
        &self,
        start: u64,
        end: u64,
    ) -> Result<(Rc<dyn vma::Backing>, u64, u64), i32> {
        let (vstart, v) = self.vmas.find(start).ok_or(libc::EINVAL)?;
        let end = end.min(v.end);
        match &v.kind {
            VmaKind::Anon => Err(libc::EINVAL),
            VmaKind::File { .. } => Err(libc::EACCES),
            VmaKind::SharedFile { .. } if v.hints & vma::hint::NO_WRITE != 0 => Err(libc::EACCES),
            VmaKind::SharedFile { pages, offset } => Ok((
                Rc::clone(&pages.file),
                offset + (start - vstart),
                end.saturating_sub(start),
            )),
        }
    }

    /// `madvise(MADV_DONTNEED)`: the pages read as new afterwards.
    pub(crate) fn discard(&mut self, start: u64, len: u64) -> Result<(), MapError> {
        let end = Self::range(start, len)?;
        if !self.vmas.is_covered(start, end) {
            return Err(MapError::Errno(libc::ENOMEM));
        }
        self.drop_pages(start, end)
    }

    /// `brk`: returns the new break, or the old one when it cannot move.
    pub(crate) fn set_brk(&mut self, want: u64) -> Result<u64, OutOfMemory> {
        if want < self.brk_start {
            return Ok(self.brk);
        }
        let (Some(old_end), Some(new_end)) = (page_up(self.brk), page_up(want)) else {
            return Ok(self.brk);
        };
        if new_end > old_end {
            if new_end > self.mmap_top || !self.vmas.is_free(old_end, new_end) {
                return Ok(self.brk);
            }
            self.vmas.insert(
                old_end,
                Vma::new(new_end, PROT_READ | PROT_WRITE, VmaKind::Anon),
            );
            let eager = new_end.min(old_end + BRK_PREFAULT * PAGE_SIZE);
            if self.populate(old_end, eager) == Err(MapError::Oom) {
                return Err(OutOfMemory);
            }
        } else if new_end < old_end {
            if self.drop_pages(new_end, old_end).is_err() {
                return Ok(self.brk); // halted: the run ends (see `pagetable::Halted`)
            }
            self.vmas.remove(new_end, old_end);
        }
        self.brk = want;
        Ok(want)
    }

    /// `mremap` without `MREMAP_FIXED`/`MREMAP_DONTUNMAP`; a locked mapping grows by
    /// at most `lock_room` pages (`EAGAIN`).
    pub(crate) fn mremap(
        &mut self,
        old: u64,
        old_len: u64,
        new_len: u64,
        may_move: bool,
        lock_room: u64,
    ) -> Result<u64, MapError> {
        if old % PAGE_SIZE != 0 || new_len == 0 {
            return Err(MapError::Errno(libc::EINVAL));
        }
        let old_len = page_up(old_len).ok_or(MapError::Errno(libc::EINVAL))?;
        let new_len = page_up(new_len).ok_or(MapError::Errno(libc::EINVAL))?;
        let Some((vstart, vma)) = self.vmas.find(old) else {
            return Err(MapError::Errno(libc::EFAULT));
        };
        // As Linux's mremap_at: the same size is nothing to do and a shrink unmaps the
        // tail, whatever lies past the mapping (holes, other mappings); only a growth
        // needs the old range inside the one mapping.
        if new_len <= old_len {
            if new_len < old_len {
                self.munmap(old + new_len, old_len - new_len)?;
            }
            return Ok(old);
        }
        if old_len == 0 {
            // Linux "duplicates" a shared mapping this way (a second mapping of the same
            // pages, elsewhere); a private one it refuses.
            let VmaKind::SharedFile { pages, offset } = &vma.kind else {
                return Err(MapError::Errno(libc::EINVAL));
            };
            if vma.lock.is_locked() && new_len / PAGE_SIZE > lock_room {
                return Err(MapError::Errno(libc::EAGAIN));
            }
            if !may_move {
                return Err(MapError::Errno(libc::ENOMEM));
            }
            let kind = VmaKind::SharedFile {
                pages: Rc::clone(pages),
                offset: offset + (old - vstart),
            };
            let prot = vma.prot;
            let dest = self
                .place(0, new_len, false)
                .ok_or(MapError::Errno(libc::ENOMEM))?;
            let end = dest + new_len;
            self.vmas.insert(dest, Vma::new(end, prot, kind));
            return Ok(dest);
        }
        let old_end = old
            .checked_add(old_len)
            .ok_or(MapError::Errno(libc::EINVAL))?;
        if vma.end < old_end {
            return Err(MapError::Errno(libc::EFAULT));
        }
        // A locked mapping grows only within RLIMIT_MEMLOCK (`lock_room`: the pages
        // that may still be locked), as Linux's vma_to_resize.
        if vma.lock.is_locked() && (new_len - old_len) / PAGE_SIZE > lock_room {
            return Err(MapError::Errno(libc::EAGAIN));
        }
        let vma = vma.clone();
        let new_end = old
            .checked_add(new_len)
            .ok_or(MapError::Errno(libc::ENOMEM))?;
        if vma.end == old_end && new_end <= USER_TOP && self.vmas.is_free(old_end, new_end) {
            let mut grown = vma.clone();
            if let VmaKind::File { offset, .. } | VmaKind::SharedFile { offset, .. } =
                &mut grown.kind
            {
                *offset += old_end - vstart;
            }
            grown.end = new_end;
            self.vmas.insert(old_end, grown);
            return Ok(old);
        }
        if !may_move {
            return Err(MapError::Errno(libc::ENOMEM));
        }
        let dest = self
            .place(0, new_len, false)
            .ok_or(MapError::Errno(libc::ENOMEM))?;
        let mut moved = vma;
        if let VmaKind::File { offset, .. } | VmaKind::SharedFile { offset, .. } = &mut moved.kind {
            *offset += old - vstart;
        }
        moved.end = dest + new_len;
        self.vmas.insert(dest, moved);
        // Move the frames: new entries are fresh, the old ones are cleared and flushed.
        let mut entries = Vec::new();
        self.pt
            .for_each_mapped(&mut self.mem, old, old_end, |_, va, slot, pte| {
                entries.push((va, slot, pte))
            })?;
        for (i, (va, slot, pte)) in entries.into_iter().enumerate() {
            if i % 4096 == 4095 && crate::kick::must_stop() {
                return Err(MapError::Halted); // the run ends at the next turn
            }
            self.pt.map(&mut self.mem, dest + (va - old), pte)?;
            self.mem.write_u64(slot, 0);
            if pte & PTE_P != 0 {
                self.flush.push(Stale::of(slot, pte));
            }
        }
        self.vmas.remove(old, old_end);
        Ok(dest)
    }
}

/// A leaf entry changed while the guest did not run, which it may hold an old
/// translation of (KVM's shadow page tables, the TLB): `was`, the value it had when
/// the guest last ran (or 0: not known, always rewritten).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stale {
    /// The entry's address in the supervisor's direct map.
    pub(crate) va: u64,
    was: u64,
}

impl Stale {
    /// The entry in page-table slot `slot` (guest-physical), which held `was`.
    pub(super) fn of(slot: u64, was: u64) -> Stale {
        Stale {
            va: direct_map(slot),
            was,
        }
    }

    /// The entry at direct-map address `va`, whatever it held.
    pub(super) fn unknown(va: u64) -> Stale {
        Stale { va, was: 0 }
    }
}

/// True when an old translation of entry `was` is harmless once the entry holds
/// `now`, so the guest need not rewrite it: both present, the same frame and the same
/// everything else, and `now` grants every right `was` did (writable, executable,
/// accessed and dirty). The old translation then reaches the frame the entry maps, with
/// at most its rights; an access it refuses faults, and the fault finds the entry
/// allowing it (the guest used an old translation) and has it rewritten. A library
/// mapped again over its own reservation, or `mprotect` widening a range, changes
/// entries so.
pub(crate) fn covers(now: u64, was: u64) -> bool {
    let widened = PTE_W | PTE_NX | PTE_A | PTE_D;
    let lost = (was & !now & (PTE_W | PTE_A | PTE_D)) | (now & !was & PTE_NX);
    was & PTE_P != 0 && now & PTE_P != 0 && (now ^ was) & !widened == 0 && lost == 0
}

/// How `mmap` treats the address it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fixed {
    /// A hint.
    Hint,
    /// `MAP_FIXED`: replace what is there.
    Replace,
    /// `MAP_FIXED_NOREPLACE`: fail with `EEXIST` when something is there.
    NoReplace,
}

impl AddressSpace {
    /// A copy of the address spaces (their page tables are in guest memory: `ram` is
    /// the copy's, a private mapping of the snapshot's memory file).
    pub(crate) fn snap_over(
        &self,
        m: &mut crate::snap::Memo,
        (ram, layers): (vm_memory::GuestMemoryMmap, Vec<crate::memory::Layer>),
    ) -> Result<AddressSpace, crate::snap::SnapError> {
        use crate::snap::Snap;
        Ok(AddressSpace {
            mem: self.mem.snap_over(m, ram, layers)?,
            id: self.id,
            parked: self.parked.snap(m)?,
            next_id: self.next_id,
            pt: self.pt,
            vmas: self.vmas.snap(m)?,
            brk_start: self.brk_start,
            brk: self.brk,
            mmap_top: self.mmap_top,
            flush: self.flush.clone(),
            vma_charge: self.vma_charge.snap(m)?,
            spurious: self.spurious,
            streaks: self.streaks,
            next_streak: self.next_streak,
        })
    }
}

#[cfg(test)]
mod tests;

/// A page-table root read back: a frame inside guest memory.
pub(crate) fn load_root(
    d: &mut crate::savefile::wire::Dec<'_>,
    mem: &Memory,
) -> Result<PageTables, crate::savefile::wire::WireError> {
    let root = d.u64("a page-table root")?;
    if root % PAGE_SIZE != 0 || root >= mem.size() {
        return Err(crate::savefile::wire::bad(format!(
            "a page-table root at {root:#x} is outside guest memory"
        )));
    }
    Ok(PageTables::new(root))
}

// Saving to and loading from a file (`savefile`).
impl AddressSpace {
    pub(crate) fn save(
        &self,
        e: &mut crate::savefile::wire::Enc,
        io: &mut dyn vma::BackingIo,
    ) -> Result<(), crate::snap::SnapError> {
        self.mem.save(e);
        e.u32(self.id);
        e.usize(self.parked.len());
        for (id, p) in &self.parked {
            e.u32(*id);
            p.save(e, io)?;
        }
        e.u32(self.next_id);
        e.u64(self.pt.root());
        self.vmas.save(e, io)?;
        for v in [self.brk_start, self.brk, self.mmap_top] {
            e.u64(v);
        }
        e.seq(self.flush.iter(), |e, v| e.u64(v.va));
        e.opt(self.vma_charge.as_ref(), |e, c| e.u64(c.bytes()));
        e.u64(self.spurious.0);
        e.u32(self.spurious.1);
        for (a, b) in self.streaks {
            e.u64(a);
            e.u64(b);
        }
        e.usize(self.next_streak);
        Ok(())
    }

    pub(crate) fn load(
        d: &mut crate::savefile::wire::Dec<'_>,
        io: &mut dyn vma::BackingIo,
        (ram, layers, budget): (
            vm_memory::GuestMemoryMmap,
            Vec<crate::memory::Layer>,
            std::rc::Rc<crate::memory::Budget>,
        ),
    ) -> Result<AddressSpace, crate::savefile::wire::WireError> {
        let w = "an address space";
        let mem = Memory::load(d, ram, layers, budget)?;
        let id = d.u32(w)?;
        let n = d.len(1 << 16, "the parked address spaces")?;
        let mut parked = std::collections::BTreeMap::new();
        for _ in 0..n {
            let k = d.u32(w)?;
            parked.insert(k, space::Parked::load(d, io, &mem)?);
        }
        let next_id = d.u32(w)?;
        let pt = load_root(d, &mem)?;
        let vmas = VmaMap::load(d, io)?;
        let (brk_start, brk, mmap_top) = (d.u64(w)?, d.u64(w)?, d.u64(w)?);
        // Saved as their addresses alone: rewritten whatever they hold.
        let flush = d.seq(1 << 16, w, |d| Ok(Stale::unknown(d.u64(w)?)))?;
        let vma_charge = d.opt(w, |d| {
            Ok(crate::memory::HeapCharge::restored(
                &mem.budget(),
                d.u64(w)?,
            ))
        })?;
        let spurious = (d.u64(w)?, d.u32(w)?);
        let mut streaks = [(0u64, 0u64); 8];
        for s in &mut streaks {
            *s = (d.u64(w)?, d.u64(w)?);
        }
        let next_streak = d.usize(w)?;
        if next_streak >= streaks.len() {
            return Err(crate::savefile::wire::bad(format!(
                "{w}: streak {next_streak} out of bounds"
            )));
        }
        Ok(AddressSpace {
            mem,
            id,
            parked,
            next_id,
            pt,
            vmas,
            brk_start,
            brk,
            mmap_top,
            flush,
            vma_charge,
            spurious,
            streaks,
            next_streak,
        })
    }
}

impl AddressSpace {
    /// The ids of every address space: the current one and the parked ones.
    pub(crate) fn space_ids(&self) -> Vec<space::SpaceId> {
        std::iter::once(self.id)
            .chain(self.parked.keys().copied())
            .collect()
    }
}
