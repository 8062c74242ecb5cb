//! The workload's mappings (virtual memory areas), kept apart from the page tables:
//! what may be mapped where, with which rights, backed by what.

use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use crate::guest::layout::PAGE_SIZE;

/// Read permission (`PROT_READ`).
pub(crate) const PROT_READ: u32 = libc::PROT_READ as u32;
/// Write permission (`PROT_WRITE`).
pub(crate) const PROT_WRITE: u32 = libc::PROT_WRITE as u32;
/// Execute permission (`PROT_EXEC`).
pub(crate) const PROT_EXEC: u32 = libc::PROT_EXEC as u32;

/// The contents of a file-backed mapping.
pub(crate) trait Backing: fmt::Debug {
    /// Reads at `offset`; a short count means end of file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize>;

    /// Reads at `offset` into `pages` (frames of guest memory no mapping holds yet, in
    /// file order) as if one buffer; a short count means end of file. The default
    /// reads a page at a time through a buffer; a host file reads them in one call.
    fn read_pages_at(
        &self,
        offset: u64,
        pages: &[vm_memory::VolatileSlice<'_, ()>],
    ) -> std::io::Result<usize> {
        let mut buf = [0u8; PAGE_SIZE as usize];
        let mut total = 0usize;
        for page in pages {
            let want = page.len().min(buf.len());
            let mut got = 0;
            while got < want {
                let at = offset.saturating_add((total + got) as u64);
                match self.read_at(at, &mut buf[got..want]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if total + got == 0 => return Err(e),
                    Err(_) => break,
                }
            }
            page.copy_from(&buf[..got]);
            total += got;
            if got < want {
                break;
            }
        }
        Ok(total)
    }

    /// The file's identity and version, when its pages may be kept in the VM's page
    /// cache and mapped again by later mappings (see `memory.rs`); `None` (the
    /// default) keeps nothing: contents that can change without the key changing
    /// (in-memory files, generated ones) are never cached.
    fn cache_key(&self) -> Option<crate::memory::FileKey> {
        None
    }

    /// What it is, for saving it to a file (`savefile`); `None`: it cannot be saved.
    fn saved(&self) -> Option<SavedBacking<'_>> {
        None
    }

    /// The file it is, for calls that act on the file itself (`madvise(MADV_REMOVE)`
    /// punches a hole in it): what [`Backing::saved`] says, unless it cannot be saved
    /// but is a file all the same.
    fn file(&self) -> Option<SavedBacking<'_>> {
        self.saved()
    }

    /// A copy for a snapshot or a sandbox started from one (see `snap.rs`).
    fn copy(&self, _: &mut crate::snap::Memo) -> Result<Rc<dyn Backing>, crate::snap::SnapError> {
        Err(crate::snap::SnapError::new(format!(
            "a mapping of {self:?} cannot be copied"
        )))
    }
}

/// What a mapping's backing is, for `savefile`.
#[derive(Debug)]
pub(crate) enum SavedBacking<'a> {
    /// A host file.
    Host(&'a crate::vfs::host::HostFd),
    /// An in-memory file.
    Tmp(&'a Rc<crate::vfs::tmpfs::TmpInode>),
    /// A generated file's contents.
    Gen(&'a Rc<[u8]>),
    /// Zeros (`/dev/zero`).
    Zero,
}

/// The pages of an in-memory file that `MAP_SHARED` mappings share: frames by page
/// index, filled from the file at first touch. Each holds one reference to its frame.
#[derive(Debug)]
pub(crate) struct SharedPages {
    /// The file.
    pub(crate) file: Rc<dyn Backing>,
    /// Frames by page index.
    pub(crate) frames: std::cell::RefCell<BTreeMap<u64, u64>>,
}

/// What a mapping shows before the workload writes to it.
#[derive(Debug, Clone)]
pub(crate) enum VmaKind {
    /// Zeros, private to the process (copy-on-write after `fork`).
    Anon,
    /// A file's pages, shared by every `MAP_SHARED` mapping of the file (in-memory
    /// files only; zeros for `MAP_SHARED|MAP_ANONYMOUS`), from `offset`.
    SharedFile {
        /// The file's shared pages.
        pages: Rc<SharedPages>,
        /// File offset of the mapping's first byte.
        offset: u64,
    },
    /// A private copy of a file, from `offset` (the file offset of the mapping's start).
    File {
        /// The file.
        backing: Rc<dyn Backing>,
        /// File offset of the mapping's first byte.
        offset: u64,
        /// File offset where the file's part ends: zeros follow (an ELF segment's
        /// `.bss` tail); `u64::MAX` for `mmap`, where pages past the end of the file
        /// are `SIGBUS`.
        file_end: u64,
    },
}

/// What a child made by `fork` gets of a mapping (`madvise`'s fork advice; Linux's
/// `VM_DONTCOPY` and `VM_WIPEONFORK`). A new program (`execve`) starts without any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OnFork {
    /// `MADV_DONTFORK`: the child has nothing mapped here.
    pub(crate) skip: bool,
    /// `MADV_WIPEONFORK` (private anonymous memory only): the child's mapping reads
    /// as zeros (fresh pages, as after `MADV_DONTNEED`), never the parent's data.
    pub(crate) wipe: bool,
}

impl OnFork {
    /// The flags as saved (`VmaMap::save`): bit 0 skip, bit 1 wipe.
    fn bits(self) -> u8 {
        u8::from(self.skip) | u8::from(self.wipe) << 1
    }
}

/// Whether a mapping is locked in memory (`mlock`; Linux's `VM_LOCKED` and
/// `VM_LOCKONFAULT`). Guest memory is never swapped out, so a lock changes no page:
/// it changes the answers Linux gives about the mapping (`msync(MS_INVALIDATE)`
/// `EBUSY`, `madvise(MADV_DONTNEED)` `EINVAL`, `RLIMIT_MEMLOCK`) and where mappings
/// split and merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Lock {
    #[default]
    Unlocked,
    /// Locked, its pages populated when locked.
    Locked,
    /// Locked as its pages are first touched (`MLOCK_ONFAULT`, `MCL_ONFAULT`).
    OnFault,
}

impl Lock {
    pub(crate) fn is_locked(self) -> bool {
        self != Lock::Unlocked
    }

    fn bits(self) -> u8 {
        match self {
            Lock::Unlocked => 0,
            Lock::Locked => 1,
            Lock::OnFault => 2,
        }
    }

    fn from_bits(b: u8) -> Option<Lock> {
        match b {
            0 => Some(Lock::Unlocked),
            1 => Some(Lock::Locked),
            2 => Some(Lock::OnFault),
            _ => None,
        }
    }
}

/// One mapping.
#[derive(Debug, Clone)]
pub(crate) struct Vma {
    /// End (exclusive, page-aligned).
    pub(crate) end: u64,
    /// `PROT_*` bits.
    pub(crate) prot: u32,
    /// The contents.
    pub(crate) kind: VmaKind,
    /// What a `fork`'s child gets of it.
    pub(crate) on_fork: OnFork,
    /// Locked in memory.
    pub(crate) lock: Lock,
    /// `madvise` hints that change nothing here but where mappings split and merge,
    /// as Linux's vma flags do, and whether `mprotect` may make it writable or
    /// executable ([`hint`] bits).
    pub(crate) hints: u8,
}

/// Bits of [`Vma::hints`] (Linux's `VM_RAND_READ`, `VM_SEQ_READ`, `VM_DONTDUMP`,
/// `VM_HUGEPAGE`, `VM_NOHUGEPAGE`, and `VM_MAYWRITE`'s and `VM_MAYEXEC`'s absence).
pub(crate) mod hint {
    pub(crate) const RANDOM: u8 = 1;
    pub(crate) const SEQUENTIAL: u8 = 2;
    pub(crate) const DONTDUMP: u8 = 4;
    pub(crate) const HUGEPAGE: u8 = 8;
    pub(crate) const NOHUGEPAGE: u8 = 16;
    /// A shared mapping of a file opened without write access, or a segment attached
    /// `SHM_RDONLY`: `mprotect` cannot make it writable (`EACCES`).
    pub(crate) const NO_WRITE: u8 = 32;
    /// A mapping of a file on a `noexec` mount (`VM_MAYEXEC`'s absence): `mprotect`
    /// cannot make it executable (`EACCES`).
    pub(crate) const NO_EXEC: u8 = 64;
    pub(crate) const ALL: u8 = 127;
}

impl Vma {
    /// A mapping of `kind` up to `end` with `prot`, and no fork advice.
    pub(crate) fn new(end: u64, prot: u32, kind: VmaKind) -> Vma {
        Vma {
            end,
            prot,
            kind,
            on_fork: OnFork::default(),
            lock: Lock::Unlocked,
            hints: 0,
        }
    }
}

impl Vma {
    /// Whether `next`, starting where this mapping (which starts at `start`) ends, is
    /// one mapping with it, as Linux merges: the same rights, and anonymous both, or
    /// the same shared file at the offsets that follow on.
    fn mergeable(&self, start: u64, next: &Vma) -> bool {
        self.prot == next.prot
            && self.on_fork == next.on_fork
            && self.lock == next.lock
            && self.hints == next.hints
            && match (&self.kind, &next.kind) {
                (VmaKind::Anon, VmaKind::Anon) => true,
                (
                    VmaKind::SharedFile { pages, offset },
                    VmaKind::SharedFile {
                        pages: next_pages,
                        offset: next_offset,
                    },
                ) => {
                    Rc::ptr_eq(pages, next_pages)
                        && offset.checked_add(self.end - start) == Some(*next_offset)
                }
                _ => false,
            }
    }
}

/// The mappings, by start address. Never overlapping.
#[derive(Debug, Default, Clone)]
pub(crate) struct VmaMap {
    map: BTreeMap<u64, Vma>,
    /// How mappings made from now on are locked (`mlockall(MCL_FUTURE)`; Linux's
    /// `mm->def_flags`).
    pub(crate) lock_future: Lock,
}

impl VmaMap {
    /// The mapping containing `va`.
    pub(crate) fn find(&self, va: u64) -> Option<(u64, &Vma)> {
        let (start, vma) = self.map.range(..=va).next_back()?;
        (va < vma.end).then_some((*start, vma))
    }

    /// Mappings overlapping `start .. end`, in order.
    pub(crate) fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, &Vma)> {
        let first = self.find(start).map(|(s, _)| s).unwrap_or(start);
        self.map
            .range(first..end)
            .map(|(s, v)| (*s, v))
            .filter(move |(_, v)| v.end > start)
    }

    /// True when nothing is mapped in `start .. end`.
    pub(crate) fn is_free(&self, start: u64, end: u64) -> bool {
        self.overlapping(start, end).next().is_none()
    }

    /// Where the mapped run from `start` ends (at most `end`): `start` itself when
    /// `start` is in a hole.
    pub(crate) fn covered_until(&self, start: u64, end: u64) -> u64 {
        let mut at = start;
        for (s, v) in self.overlapping(start, end) {
            if s > at {
                break;
            }
            at = v.end;
        }
        at.min(end)
    }

    /// True when `start .. end` is mapped without a hole.
    pub(crate) fn is_covered(&self, start: u64, end: u64) -> bool {
        self.covered_until(start, end) >= end
    }

    /// Splits the mapping that strictly contains `at` in two.
    pub(crate) fn split(&mut self, at: u64) {
        let Some((start, vma)) = self.find(at) else {
            return;
        };
        if start == at {
            return;
        }
        let mut tail = vma.clone();
        match &mut tail.kind {
            VmaKind::File { offset, .. } | VmaKind::SharedFile { offset, .. } => {
                *offset += at - start
            }
            _ => {}
        }
        if let Some(head) = self.map.get_mut(&start) {
            head.end = at;
        }
        self.map.insert(at, tail);
    }

    /// Removes everything in `start .. end` (splitting at the edges).
    pub(crate) fn remove(&mut self, start: u64, end: u64) {
        self.split(start);
        self.split(end);
        let keys: Vec<u64> = self.map.range(start..end).map(|(k, _)| *k).collect();
        for k in keys {
            self.map.remove(&k);
        }
    }

    /// Adds a mapping at `start`; the range must be free. Merges with an anonymous
    /// neighbour of the same rights.
    pub(crate) fn insert(&mut self, start: u64, vma: Vma) {
        let end = vma.end;
        self.map.insert(start, vma);
        self.merge_at(end);
        self.merge_at(start);
    }

    fn merge_at(&mut self, boundary: u64) {
        let Some((prev_start, prev)) = self.map.range(..boundary).next_back() else {
            return;
        };
        let prev_start = *prev_start;
        if prev.end != boundary {
            return;
        }
        let Some(next) = self.map.get(&boundary) else {
            return;
        };
        if prev.mergeable(prev_start, next) {
            let end = next.end;
            self.map.remove(&boundary);
            if let Some(p) = self.map.get_mut(&prev_start) {
                p.end = end;
            }
        }
    }

    /// Sets the rights of `start .. end` (which must be covered).
    pub(crate) fn protect(&mut self, start: u64, end: u64, prot: u32) {
        self.change(start, end, |v| v.prot = prot);
    }

    /// Locks or unlocks the mappings in `start .. end` (holes are skipped).
    pub(crate) fn set_lock(&mut self, start: u64, end: u64, lock: Lock) {
        self.change(start, end, |v| v.lock = lock);
    }

    /// Pages of locked mappings in `start .. end` (Linux's `locked_vm` over all of
    /// memory).
    pub(crate) fn locked_pages(&self, start: u64, end: u64) -> u64 {
        self.overlapping(start, end)
            .filter(|(_, v)| v.lock.is_locked())
            .map(|(s, v)| (v.end.min(end) - s.max(start)) / 4096)
            .sum()
    }

    /// Pages of every mapping (Linux's `total_vm`).
    pub(crate) fn total_pages(&self) -> u64 {
        self.map.iter().map(|(s, v)| (v.end - s) / 4096).sum()
    }

    /// A child's copy after `fork`: no mapping locked, nothing locked in the future,
    /// and no merging of what the locks kept apart (as Linux's `dup_mmap`).
    pub(crate) fn unlock_for_child(&mut self) {
        for v in self.map.values_mut() {
            v.lock = Lock::Unlocked;
        }
        self.lock_future = Lock::Unlocked;
    }

    /// Sets then clears `madvise` hint bits of the mappings in `start .. end` (holes
    /// are skipped).
    pub(crate) fn hint(&mut self, start: u64, end: u64, set: u8, clear: u8) {
        self.change(start, end, |v| v.hints = (v.hints & !clear) | set);
    }

    /// Changes the fork advice of the mappings in `start .. end` (holes are skipped).
    pub(crate) fn advise_fork(&mut self, start: u64, end: u64, set: impl Fn(&mut OnFork)) {
        self.change(start, end, |v| set(&mut v.on_fork));
    }

    /// Applies `f` to the mappings in `start .. end` (split at its edges), then merges
    /// what became alike.
    fn change(&mut self, start: u64, end: u64, f: impl Fn(&mut Vma)) {
        self.split(start);
        self.split(end);
        let keys: Vec<u64> = self.map.range(start..end).map(|(k, _)| *k).collect();
        for k in &keys {
            if let Some(v) = self.map.get_mut(k) {
                f(v);
            }
        }
        for k in keys {
            self.merge_at(k);
        }
        self.merge_at(end);
    }

    /// The highest free range of `len` bytes ending at or below `top` and starting at
    /// or above `bottom`.
    pub(crate) fn find_free_below(&self, len: u64, bottom: u64, top: u64) -> Option<u64> {
        let mut gap_end = top;
        for (start, vma) in self.map.range(..top).rev() {
            let gap_start = vma.end.max(bottom);
            if gap_end >= gap_start && gap_end - gap_start >= len {
                return Some(gap_end - len);
            }
            gap_end = gap_end.min(*start);
            if gap_end < bottom.saturating_add(len) {
                return None;
            }
        }
        (gap_end >= bottom.saturating_add(len)).then(|| gap_end - len)
    }

    /// How many mappings there are.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Every mapping, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &Vma)> {
        self.map.iter().map(|(s, v)| (*s, v))
    }
}

/// Rounds up to a page.
pub(crate) fn page_up(v: u64) -> Option<u64> {
    v.checked_add(PAGE_SIZE - 1).map(|x| x & !(PAGE_SIZE - 1))
}

impl crate::snap::Snap for SharedPages {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(SharedPages {
            file: self.file.snap_backing(m)?,
            frames: std::cell::RefCell::new(self.frames.borrow().clone()),
        })
    }
}

impl crate::snap::Snap for VmaKind {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(match self {
            VmaKind::Anon => VmaKind::Anon,
            VmaKind::SharedFile { pages, offset } => VmaKind::SharedFile {
                pages: crate::snap::Snap::snap(pages, m)?,
                offset: *offset,
            },
            VmaKind::File {
                backing,
                offset,
                file_end,
            } => VmaKind::File {
                backing: backing.snap_backing(m)?,
                offset: *offset,
                file_end: *file_end,
            },
        })
    }
}

impl crate::snap::Snap for Vma {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(Vma {
            end: self.end,
            prot: self.prot,
            kind: self.kind.snap(m)?,
            on_fork: self.on_fork,
            lock: self.lock,
            hints: self.hints,
        })
    }
}

impl crate::snap::Snap for VmaMap {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(VmaMap {
            map: crate::snap::Snap::snap(&self.map, m)?,
            lock_future: self.lock_future,
        })
    }
}

/// A mapping's contents copied through a memo (see `snap.rs`).
pub(crate) trait SnapBacking {
    fn snap_backing(
        &self,
        m: &mut crate::snap::Memo,
    ) -> Result<Rc<dyn Backing>, crate::snap::SnapError>;
}

impl SnapBacking for Rc<dyn Backing> {
    fn snap_backing(
        &self,
        m: &mut crate::snap::Memo,
    ) -> Result<Rc<dyn Backing>, crate::snap::SnapError> {
        let me = Rc::clone(self);
        m.rc_dyn(self, move |m| me.copy(m))
    }
}

/// How a saved state writes and reads a mapping's backing file (`savefile::state`).
pub(crate) trait BackingIo {
    fn save(
        &mut self,
        e: &mut crate::savefile::wire::Enc,
        b: &Rc<dyn Backing>,
    ) -> Result<(), crate::snap::SnapError>;
    fn load(
        &mut self,
        d: &mut crate::savefile::wire::Dec<'_>,
    ) -> Result<Rc<dyn Backing>, crate::savefile::wire::WireError>;
}

impl VmaMap {
    pub(crate) fn save(
        &self,
        e: &mut crate::savefile::wire::Enc,
        io: &mut dyn BackingIo,
    ) -> Result<(), crate::snap::SnapError> {
        e.u8(self.lock_future.bits());
        e.usize(self.map.len());
        for (start, v) in &self.map {
            e.u64(*start);
            e.u64(v.end);
            e.u32(v.prot);
            e.u8(v.on_fork.bits() | v.lock.bits() << 2);
            e.u8(v.hints);
            match &v.kind {
                VmaKind::Anon => e.u8(0),
                VmaKind::File {
                    backing,
                    offset,
                    file_end,
                } => {
                    e.u8(1);
                    io.save(e, backing)?;
                    e.u64(*offset);
                    e.u64(*file_end);
                }
                VmaKind::SharedFile { .. } => {
                    return Err(crate::snap::SnapError::new(
                        "a process holds a shared file mapping (MAP_SHARED, System V or POSIX shared memory): saving shared mappings to a file is not supported",
                    ))
                }
            }
        }
        Ok(())
    }

    pub(crate) fn load(
        d: &mut crate::savefile::wire::Dec<'_>,
        io: &mut dyn BackingIo,
    ) -> Result<VmaMap, crate::savefile::wire::WireError> {
        use crate::guest::layout::USER_TOP;
        use crate::savefile::wire::bad;
        let Some(lock_future) = Lock::from_bits(d.u8("the future mappings' lock")?) else {
            return Err(bad("the future mappings' lock is unknown"));
        };
        let n = d.len(1 << 20, "the mappings")?;
        let mut map = BTreeMap::new();
        let mut last_end = 0u64;
        for _ in 0..n {
            let start = d.u64("a mapping")?;
            let end = d.u64("a mapping")?;
            let prot = d.u32("a mapping")?;
            if start % 4096 != 0
                || end % 4096 != 0
                || start >= end
                || end > USER_TOP
                || start < last_end
            {
                return Err(bad(format!(
                    "a mapping {start:#x}..{end:#x} is not a sorted, page-aligned range of user addresses"
                )));
            }
            last_end = end;
            let b = d.u8("a mapping's fork advice and lock")?;
            let on_fork = OnFork {
                skip: b & 1 != 0,
                wipe: b & 2 != 0,
            };
            let Some(lock) = Lock::from_bits(b >> 2) else {
                return Err(bad(format!(
                    "a mapping's fork advice and lock {b:#x} are unknown"
                )));
            };
            let hints = d.u8("a mapping's hints")?;
            if hints & !hint::ALL != 0 {
                return Err(bad(format!("a mapping's hints {hints:#x} are unknown")));
            }
            let kind = match d.u8("a mapping's kind")? {
                0 => VmaKind::Anon,
                1 => VmaKind::File {
                    backing: io.load(d)?,
                    offset: d.u64("a mapping")?,
                    file_end: d.u64("a mapping")?,
                },
                k => return Err(bad(format!("a mapping's kind {k} is unknown"))),
            };
            if on_fork.wipe && !matches!(kind, VmaKind::Anon) {
                return Err(bad(format!(
                    "a mapping {start:#x}..{end:#x} to wipe on fork is not anonymous memory"
                )));
            }
            map.insert(
                start,
                Vma {
                    end,
                    prot,
                    kind,
                    on_fork,
                    lock,
                    hints,
                },
            );
        }
        Ok(VmaMap { map, lock_future })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon(end: u64, prot: u32) -> Vma {
        Vma::new(end, prot, VmaKind::Anon)
    }

    /// Saves and loads anonymous mappings only.
    struct NoFiles;
    impl BackingIo for NoFiles {
        fn save(
            &mut self,
            _: &mut crate::savefile::wire::Enc,
            _: &Rc<dyn Backing>,
        ) -> Result<(), crate::snap::SnapError> {
            Err(crate::snap::SnapError::new("no files here"))
        }
        fn load(
            &mut self,
            _: &mut crate::savefile::wire::Dec<'_>,
        ) -> Result<Rc<dyn Backing>, crate::savefile::wire::WireError> {
            Err(crate::savefile::wire::bad("no files here"))
        }
    }

    #[test]
    fn locks_split_and_a_child_keeps_the_pieces_unlocked() {
        let mut m = VmaMap::default();
        m.insert(0x1000, anon(0x9000, PROT_READ | PROT_WRITE));
        m.set_lock(0x3000, 0x5000, Lock::Locked);
        m.set_lock(0x5000, 0x6000, Lock::OnFault);
        assert_eq!(m.len(), 4, "split where the lock differs");
        assert_eq!(m.locked_pages(0, u64::MAX), 3);
        assert_eq!(
            m.locked_pages(0x4000, 0x5800),
            1,
            "parts of pages do not count"
        );
        assert_eq!(m.total_pages(), 8);
        m.lock_future = Lock::Locked;
        let mut child = m.clone();
        child.unlock_for_child();
        assert_eq!(child.locked_pages(0, u64::MAX), 0);
        assert_eq!(child.lock_future, Lock::Unlocked);
        assert_eq!(child.len(), 4, "as Linux's dup_mmap: unlocked, not merged");
        m.set_lock(0, u64::MAX, Lock::Unlocked);
        assert_eq!(m.len(), 1, "merged once alike");
    }

    #[test]
    fn fork_advice_is_saved_and_checked_when_loaded() {
        let mut m = VmaMap::default();
        m.insert(0x1000, anon(0x5000, PROT_READ | PROT_WRITE));
        m.advise_fork(0x2000, 0x3000, |f| f.skip = true);
        m.advise_fork(0x3000, 0x4000, |f| f.wipe = true);
        let mut e = crate::savefile::wire::Enc::default();
        m.save(&mut e, &mut NoFiles).unwrap();
        let back =
            VmaMap::load(&mut crate::savefile::wire::Dec::new(&e.buf), &mut NoFiles).unwrap();
        let advice: Vec<(u64, OnFork)> = back.iter().map(|(s, v)| (s, v.on_fork)).collect();
        let none = OnFork::default();
        let skip = OnFork { skip: true, ..none };
        let wipe = OnFork { wipe: true, ..none };
        assert_eq!(
            advice,
            [
                (0x1000, none),
                (0x2000, skip),
                (0x3000, wipe),
                (0x4000, none)
            ]
        );
        // A forged file: advice bits that mean nothing are refused.
        let at = e.buf.len() - 3; // the last mapping's advice, hints and kind bytes
        let mut forged = e.buf.clone();
        forged[at] = 0x0c;
        let err =
            VmaMap::load(&mut crate::savefile::wire::Dec::new(&forged), &mut NoFiles).unwrap_err();
        assert!(err.0.contains("fork advice and lock"), "{err}");
    }

    #[test]
    fn insert_split_remove_merge() {
        let mut m = VmaMap::default();
        m.insert(0x1000, anon(0x5000, PROT_READ));
        m.insert(0x5000, anon(0x8000, PROT_READ));
        assert_eq!(m.iter().count(), 1, "adjacent anonymous mappings merge");
        m.protect(0x2000, 0x3000, PROT_READ | PROT_WRITE);
        assert_eq!(m.iter().count(), 3);
        m.protect(0x2000, 0x3000, PROT_READ);
        assert_eq!(m.iter().count(), 1, "same rights merge back");
        m.remove(0x3000, 0x4000);
        assert!(m.is_free(0x3000, 0x4000));
        assert!(!m.is_covered(0x1000, 0x8000));
        assert!(m.is_covered(0x4000, 0x8000));
        assert_eq!(
            m.find(0x2fff).map(|(s, v)| (s, v.end)),
            Some((0x1000, 0x3000))
        );
        assert!(m.find(0x3000).is_none());
    }

    #[test]
    fn free_ranges_are_found_top_down() {
        let mut m = VmaMap::default();
        m.insert(0x10_0000, anon(0x20_0000, PROT_READ));
        m.insert(0x30_0000, anon(0x40_0000, PROT_READ));
        assert_eq!(
            m.find_free_below(0x1000, 0x1_0000, 0x50_0000),
            Some(0x4f_f000)
        );
        assert_eq!(
            m.find_free_below(0x10_0000, 0x1_0000, 0x40_0000),
            Some(0x20_0000)
        );
        assert_eq!(m.find_free_below(0x20_0000, 0x1_0000, 0x40_0000), None);
        assert_eq!(
            m.find_free_below(0xf_0000, 0x1_0000, 0x40_0000),
            Some(0x21_0000)
        );
    }
}
