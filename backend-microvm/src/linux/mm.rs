//! Memory calls: `brk`, `mmap` (anonymous memory, private copies of files, and shared
//! mappings of anonymous memory, in-memory files and host files, whose pages every
//! mapping shares), `munmap`, `mprotect` with real page rights, `mremap`, `madvise`,
//! `mincore`, `msync`.

use std::os::fd::AsRawFd;
use std::rc::Rc;

use super::fd::FileKind;
use super::{Kernel, Stop, SysErr, SysResult};
use crate::errno;
use crate::guest::layout::PAGE_SIZE;
use crate::mm::vma::hint;
use crate::mm::{Backing, Fixed, Lock, SharedPages, VmaKind, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::vfs::backing::{GenBacking, HostBacking, TmpBacking};
use crate::vfs::host::{self, HostFd};
use crate::vfs::tmpfs::TmpInode;
use crate::vfs::DevKind;

/// The contents of shared anonymous memory: zeros.
#[derive(Debug)]
struct ZeroBacking;

impl Backing for ZeroBacking {
    fn read_at(&self, _offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        buf.fill(0);
        Ok(buf.len())
    }

    fn copy(&self, _: &mut crate::snap::Memo) -> Result<Rc<dyn Backing>, crate::snap::SnapError> {
        Ok(Rc::new(ZeroBacking))
    }

    fn saved(&self) -> Option<crate::mm::vma::SavedBacking<'_>> {
        Some(crate::mm::vma::SavedBacking::Zero)
    }
}

const PROT_ALL: u64 = (PROT_READ | PROT_WRITE | PROT_EXEC) as u64;

/// What shared pages show: the memory or file every `MAP_SHARED` mapping of it shares.
#[derive(Debug)]
pub(crate) enum SharedOf {
    /// Anonymous memory (`MAP_SHARED|MAP_ANONYMOUS`, a System V segment).
    Anon,
    /// An in-memory file.
    Tmp(Rc<TmpInode>),
    /// A host file (device and inode), written back through a descriptor of it.
    Host((u64, u64), Rc<HostFd>),
}

/// Which file shared pages are of.
enum SharedKey<'a> {
    Tmp(&'a Rc<TmpInode>),
    Host((u64, u64)),
}

impl SharedOf {
    /// What finds it again (anonymous memory: nothing, no file names it).
    fn key(&self) -> Option<SharedKey<'_>> {
        match self {
            SharedOf::Anon => None,
            SharedOf::Tmp(t) => Some(SharedKey::Tmp(t)),
            SharedOf::Host(id, _) => Some(SharedKey::Host(*id)),
        }
    }

    fn is(&self, key: &SharedKey<'_>) -> bool {
        match (self, key) {
            (SharedOf::Tmp(t), SharedKey::Tmp(k)) => Rc::ptr_eq(t, k),
            (SharedOf::Host(id, _), SharedKey::Host(k)) => id == k,
            _ => false,
        }
    }

    /// The file's size (none for anonymous memory).
    fn size(&self) -> u64 {
        match self {
            SharedOf::Anon => 0,
            SharedOf::Tmp(t) => t.meta().size,
            SharedOf::Host(_, fd) => host::fstat(fd.as_raw_fd()).map_or(0, |m| m.size),
        }
    }

    /// Writes `data` at `off` of the file (best effort: a host file that cannot take
    /// it keeps what it had, as a failed writeback on Linux).
    fn write_at(&self, off: u64, data: &[u8]) {
        match self {
            SharedOf::Anon => {}
            SharedOf::Tmp(t) => {
                let _ = t.write_at(off, data);
            }
            SharedOf::Host(_, fd) => {
                let _ = host::pwrite(fd.as_raw_fd(), data, off);
            }
        }
    }

    fn read_at(&self, off: u64, buf: &mut [u8]) {
        match self {
            SharedOf::Anon => {}
            SharedOf::Tmp(t) => {
                let _ = t.read_at(off, buf);
            }
            SharedOf::Host(_, fd) => {
                let _ = host::pread(fd.as_raw_fd(), buf, off);
            }
        }
    }
}

impl crate::snap::Snap for SharedOf {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(match self {
            SharedOf::Anon => SharedOf::Anon,
            SharedOf::Tmp(t) => SharedOf::Tmp(t.snap(m)?),
            SharedOf::Host(..) => {
                return Err(crate::snap::SnapError::new(
                    "a process has a host file mapped shared (MAP_SHARED): its pages are the host file's, they cannot be copied; unmap it first",
                ))
            }
        })
    }
}

/// A host file's contents as shared pages read them at first touch.
#[derive(Debug)]
struct SharedHost(Rc<HostFd>);

impl Backing for SharedHost {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        host::pread(self.0.as_raw_fd(), buf, offset)
            .map_err(|e| std::io::Error::from_raw_os_error(e.0))
    }

    fn copy(&self, _: &mut crate::snap::Memo) -> Result<Rc<dyn Backing>, crate::snap::SnapError> {
        Err(crate::snap::SnapError::new(
            "a host file mapped shared cannot be copied",
        ))
    }

    fn saved(&self) -> Option<crate::mm::vma::SavedBacking<'_>> {
        None
    }

    fn file(&self) -> Option<crate::mm::vma::SavedBacking<'_>> {
        Some(crate::mm::vma::SavedBacking::Host(&self.0))
    }
}

impl Kernel {
    /// A call that may add mappings: refused past `MAX_MAP_COUNT` (ENOMEM, as Linux),
    /// and what the mappings cost the VMM charged after it (the sandbox's memory).
    pub(super) fn mapping_call(&mut self, call: impl FnOnce(&mut Self) -> SysResult) -> SysResult {
        self.mm.room_for_mappings()?;
        let r = call(self);
        if self.mm.account_mappings().is_err() {
            return Err(Stop::MemoryLimit.into());
        }
        r
    }

    pub(crate) fn sys_brk(&mut self, addr: u64) -> SysResult {
        if self.mm.room_for_mappings().is_err() {
            return Ok(self.mm.brk());
        }
        let old = self.mm.brk();
        let future = self.mm.lock_future();
        let (old_end, new_end) = (page_up_len(old), page_up_len(addr));
        if future.is_locked() && new_end > old_end && !self.lock_fits(new_end - old_end) {
            // Growth past RLIMIT_MEMLOCK after mlockall(MCL_FUTURE): brk stays.
            return Ok(old);
        }
        // Overcommit, as Linux: running out later ends the run at the fault.
        let r = self.mm.set_brk(addr).unwrap_or_else(|_| self.mm.brk());
        if r > old {
            self.lock_new(page_up_len(old), page_up_len(r), future);
        }
        if self.mm.account_mappings().is_err() {
            return Err(Stop::MemoryLimit.into());
        }
        Ok(r)
    }

    pub(crate) fn sys_mmap(&mut self, a: [u64; 6]) -> SysResult {
        self.mapping_call(|k| {
            let [_, len, _, flags, _, off] = a;
            let flags = flags as i32;
            // A mapping locked at birth (`MAP_LOCKED`, or after `mlockall(MCL_FUTURE)`)
            // is checked against RLIMIT_MEMLOCK first, as Linux's do_mmap does once the
            // call's own arguments are valid.
            let lock = match (flags & libc::MAP_LOCKED != 0, k.mm.lock_future()) {
                (true, Lock::Unlocked) => Lock::Locked,
                (_, future) => future,
            };
            let valid = len != 0
                && len <= crate::guest::layout::USER_TOP
                && off % PAGE_SIZE == 0
                && matches!(
                    flags & libc::MAP_TYPE,
                    libc::MAP_SHARED | libc::MAP_SHARED_VALIDATE | libc::MAP_PRIVATE
                );
            if valid && lock.is_locked() {
                if flags & libc::MAP_LOCKED != 0 && !k.can_mlock() {
                    return Err(errno::EPERM.into());
                }
                if !k.lock_fits(page_up_len(len)) {
                    return Err(errno::EAGAIN.into());
                }
            }
            let start = k.mmap_call(a)?;
            let end = start.saturating_add(page_up_len(len));
            // Linux's shared mapping of a file opened without write access, or of a
            // memfd sealed against writes, loses VM_MAYWRITE.
            let shared = matches!(
                flags & libc::MAP_TYPE,
                libc::MAP_SHARED | libc::MAP_SHARED_VALIDATE
            );
            let sealed = |kind: &FileKind| match kind {
                FileKind::Tmp(t) => t.write_sealed(),
                _ => false,
            };
            let file = (flags & libc::MAP_ANONYMOUS == 0)
                .then(|| k.proc.files.get(a[4]).ok())
                .flatten();
            if shared
                && file
                    .as_ref()
                    .is_some_and(|f| !f.writable() || sealed(&f.kind))
            {
                k.mm.hint(start, end, hint::NO_WRITE, 0);
            }
            // A file on a `noexec` mount loses VM_MAYEXEC: `mprotect` cannot make it
            // executable (`EACCES`).
            if file.as_ref().is_some_and(|f| f.noexec()) {
                k.mm.hint(start, end, hint::NO_EXEC, 0);
            }
            k.lock_new(start, end, lock);
            Ok(start)
        })
    }

    fn mmap_call(&mut self, a: [u64; 6]) -> SysResult {
        let [addr, len, prot, flags, fd, off] = a;
        let flags = flags as i32;
        // Unknown protection bits are ignored, as Linux's mmap does.
        let shared = match flags & libc::MAP_TYPE {
            libc::MAP_SHARED | libc::MAP_SHARED_VALIDATE => true,
            libc::MAP_PRIVATE => false,
            _ => return Err(errno::EINVAL.into()),
        };
        if flags & libc::MAP_HUGETLB != 0 {
            return Err(errno::EINVAL.into());
        }
        if len == 0 || off % PAGE_SIZE != 0 {
            return Err(errno::EINVAL.into());
        }
        let prot = (prot & PROT_ALL) as u32;
        let kind = if flags & libc::MAP_ANONYMOUS != 0 {
            if shared {
                VmaKind::SharedFile {
                    pages: self.shared_zeros(),
                    offset: 0,
                }
            } else {
                VmaKind::Anon
            }
        } else {
            let f = self.proc.files.get(fd)?;
            if !f.readable() {
                return Err(errno::EACCES.into());
            }
            if shared && prot & PROT_WRITE != 0 && !f.writable() {
                return Err(errno::EACCES.into());
            }
            // Linux's do_mmap: a file on a `noexec` mount is never mapped executable
            // (nor may become so: `hint::NO_EXEC`, set by `sys_mmap`).
            if f.noexec() && prot & PROT_EXEC != 0 {
                return Err(errno::EPERM.into());
            }
            let of = match (shared, &f.kind) {
                // In-memory files: every MAP_SHARED mapping shares the file's pages.
                (true, FileKind::Tmp(t)) => Some(SharedOf::Tmp(Rc::clone(t))),
                // A host file opened for writing (a SQLite WAL index, a shared
                // counter): its MAP_SHARED mappings share pages written back to it
                // (`shm_write_back`); so do those of a file opened read-only once such
                // pages exist. Otherwise a read-only shared mapping is a copy that can
                // never be written (`hint::NO_WRITE`).
                (true, FileKind::Host(h)) => {
                    let id = host::fstat(h.as_raw_fd()).map(|m| (m.dev, m.ino))?;
                    let known = self.shared_index(&SharedKey::Host(id)).is_some();
                    (f.writable() || known)
                        .then(|| Ok::<_, SysErr>(SharedOf::Host(id, Rc::new(h.try_clone()?))))
                        .transpose()?
                }
                _ => None,
            };
            if let Some(of) = of {
                let pages = self.shared_pages(of);
                return self.map_shared(addr, len, prot, flags, pages, off);
            }
            let backing: Rc<dyn Backing> = match &f.kind {
                FileKind::Host(h) => {
                    let mut mapped = f.mapped.borrow_mut();
                    match &*mapped {
                        Some(b) => Rc::clone(b),
                        None => {
                            let b: Rc<dyn Backing> = Rc::new(HostBacking(h.try_clone()?));
                            *mapped = Some(Rc::clone(&b));
                            b
                        }
                    }
                }
                FileKind::Tmp(t) => Rc::new(TmpBacking(Rc::clone(t))),
                FileKind::Gen(b) => Rc::new(GenBacking(Rc::clone(b))),
                FileKind::Dev(DevKind::Zero) => {
                    return self.map_anon(addr, len, prot, flags);
                }
                _ => return Err(errno::ENODEV.into()),
            };
            VmaKind::File {
                backing,
                offset: off,
                file_end: u64::MAX,
            }
        };
        if let VmaKind::Anon = kind {
            return self.map_anon(addr, len, prot, flags);
        }
        if let VmaKind::SharedFile { pages, .. } = kind {
            return self.map_shared(addr, len, prot, flags, pages, 0);
        }
        let start = self.mm.mmap(
            addr,
            len,
            prot,
            fixed(flags),
            flags & libc::MAP_32BIT != 0,
            kind,
        )?;
        // A library mapped again (by this or an earlier process): its cached pages now.
        self.mm.prefault_cached(start, start.saturating_add(len));
        self.populate_if(flags, start, len)?;
        Ok(start)
    }

    /// Maps `pages` shared from file offset `off`.
    fn map_shared(
        &mut self,
        addr: u64,
        len: u64,
        prot: u32,
        flags: i32,
        pages: Rc<SharedPages>,
        off: u64,
    ) -> SysResult {
        let start = self.mm.mmap(
            addr,
            len,
            prot,
            fixed(flags),
            flags & libc::MAP_32BIT != 0,
            VmaKind::SharedFile { pages, offset: off },
        )?;
        self.populate_if(flags, start, len)?;
        Ok(start)
    }

    /// New shared memory of zeros (`MAP_SHARED|MAP_ANONYMOUS`, a System V segment):
    /// every process inheriting or attaching it shares its pages.
    pub(super) fn shared_zeros(&mut self) -> Rc<SharedPages> {
        let pages = Rc::new(SharedPages {
            file: Rc::new(ZeroBacking),
            frames: Default::default(),
        });
        self.shm.push((SharedOf::Anon, Rc::clone(&pages)));
        pages
    }

    /// Where the shared pages of `key` are in `self.shm`.
    fn shared_index(&self, key: &SharedKey<'_>) -> Option<usize> {
        self.shm.iter().position(|(of, _)| of.is(key))
    }

    /// The shared pages of file `of` (made at its first shared mapping).
    fn shared_pages(&mut self, of: SharedOf) -> Rc<SharedPages> {
        if let Some(i) = of.key().and_then(|k| self.shared_index(&k)) {
            return Rc::clone(&self.shm[i].1);
        }
        let file: Rc<dyn Backing> = match &of {
            SharedOf::Anon => Rc::new(ZeroBacking),
            SharedOf::Tmp(t) => Rc::new(TmpBacking(Rc::clone(t))),
            SharedOf::Host(_, fd) => Rc::new(SharedHost(Rc::clone(fd))),
        };
        let p = Rc::new(SharedPages {
            file,
            frames: Default::default(),
        });
        self.shm.push((of, Rc::clone(&p)));
        p
    }

    /// Before `t` is read: what its shared mappings wrote goes into the file.
    pub(crate) fn shm_to_file(&mut self, t: &Rc<TmpInode>) {
        if let Some(i) = self.shared_index(&SharedKey::Tmp(t)) {
            self.shm_write_back(i);
        }
    }

    /// After `t` was written: its shared mappings see it.
    pub(crate) fn shm_from_file(&mut self, t: &Rc<TmpInode>) {
        if let Some(i) = self.shared_index(&SharedKey::Tmp(t)) {
            self.shm_reload(i);
        }
    }

    /// The shared pages of the host file open as `fd`, if it has any.
    fn host_shared(&self, fd: &HostFd) -> Option<usize> {
        if !self
            .shm
            .iter()
            .any(|(of, _)| matches!(of, SharedOf::Host(..)))
        {
            return None;
        }
        let m = host::fstat(fd.as_raw_fd()).ok()?;
        self.shared_index(&SharedKey::Host((m.dev, m.ino)))
    }

    /// Before bytes `off .. off + len` of the host file open as `fd` are read (or
    /// written): what its shared mappings wrote there goes into it.
    pub(crate) fn host_to_file(&mut self, fd: &HostFd, off: u64, len: u64) {
        if let Some(i) = self.host_shared(fd) {
            self.shm_write_back_range(i, off, len);
        }
    }

    /// After bytes `off .. off + len` of the host file open as `fd` were written: its
    /// shared mappings see them.
    pub(crate) fn host_from_file(&mut self, fd: &HostFd, off: u64, len: u64) {
        if let Some(i) = self.host_shared(fd) {
            self.shm_reload_range(i, off, len);
        }
    }

    /// Every host file's shared pages written back (`msync`, a process's end).
    pub(crate) fn host_write_back_all(&mut self) {
        for i in 0..self.shm.len() {
            if matches!(self.shm[i].0, SharedOf::Host(..)) {
                self.shm_write_back(i);
            }
        }
    }

    /// The pages of entry `i` that a mapping touched go into its file (up to its end:
    /// a mapping never makes a file longer).
    fn shm_write_back(&mut self, i: usize) {
        self.shm_write_back_range(i, 0, u64::MAX);
    }

    /// The same, for the pages holding bytes `off .. off + len` only.
    fn shm_write_back_range(&mut self, i: usize, off: u64, len: u64) {
        let (of, p) = (&self.shm[i].0, Rc::clone(&self.shm[i].1));
        let size = of.size();
        let mut page = vec![0u8; PAGE_SIZE as usize];
        for (index, frame) in p.frames.borrow().range(page_range(off, len)) {
            let off = index * PAGE_SIZE;
            if off >= size {
                continue;
            }
            let n = (size - off).min(PAGE_SIZE) as usize;
            self.mm.mem.read(*frame, &mut page[..n]);
            of.write_at(off, &page[..n]);
        }
    }

    /// The pages of entry `i` read again from its file (after a write to it).
    fn shm_reload(&mut self, i: usize) {
        self.shm_reload_range(i, 0, u64::MAX);
    }

    /// The same, for the pages holding bytes `off .. off + len` only.
    fn shm_reload_range(&mut self, i: usize, off: u64, len: u64) {
        let (of, p) = (&self.shm[i].0, Rc::clone(&self.shm[i].1));
        let mut page = vec![0u8; PAGE_SIZE as usize];
        for (index, frame) in p.frames.borrow().range(page_range(off, len)) {
            page.fill(0);
            of.read_at(index * PAGE_SIZE, &mut page);
            self.mm.mem.write(*frame, &page);
        }
    }

    /// Shared pages no mapping uses any more go back into their file, and their frames
    /// back to the guest's memory.
    pub(crate) fn shm_sweep(&mut self) {
        self.ipc.observe_segments(self.proc.pid);
        let unused: Vec<usize> = (0..self.shm.len())
            .filter(|i| Rc::strong_count(&self.shm[*i].1) == 1)
            .collect();
        for i in unused.into_iter().rev() {
            self.shm_write_back(i);
            let (_, p) = self.shm.remove(i);
            let frames: Vec<u64> = p.frames.borrow().values().copied().collect();
            self.mm.mem.free(frames);
        }
    }

    fn map_anon(&mut self, addr: u64, len: u64, prot: u32, flags: i32) -> SysResult {
        let start = self.mm.mmap(
            addr,
            len,
            prot,
            fixed(flags),
            flags & libc::MAP_32BIT != 0,
            VmaKind::Anon,
        )?;
        // A small private mapping (a TLS block, a library's .bss, ld.so's first
        // allocations) is written at once: its pages now, not a fault (a VM exit) each.
        // Best effort: without frames, the pages come at their first touch as before.
        if flags & libc::MAP_NORESERVE == 0
            && prot & (PROT_READ | PROT_WRITE) != 0
            && len <= crate::mm::SMALL_ANON_PAGES * PAGE_SIZE
        {
            let _ = self.mm.populate(start, start.saturating_add(len));
        }
        self.populate_if(flags, start, len)?;
        Ok(start)
    }

    fn populate_if(&mut self, flags: i32, start: u64, len: u64) -> Result<(), SysErr> {
        if flags & libc::MAP_POPULATE != 0 {
            self.mm.populate(start, start.saturating_add(len))?;
        }
        Ok(())
    }

    pub(crate) fn sys_munmap(&mut self, addr: u64, len: u64) -> SysResult {
        self.mapping_call(|k| {
            k.mm.munmap(addr, len)?;
            Ok(0)
        })
    }

    /// `mprotect`, checked in Linux's order: both growth bits, an unaligned start
    /// (`EINVAL`), an empty range (done), a wrapping one (`ENOMEM`), unknown bits
    /// (`EINVAL`); no mapping here grows down or up (no `MAP_GROWSDOWN`), so a growth
    /// bit is `EINVAL` as Linux answers for a mapping without `VM_GROWSDOWN`.
    pub(crate) fn sys_mprotect(&mut self, addr: u64, len: u64, prot: u64) -> SysResult {
        const GROWSDOWN: u64 = libc::PROT_GROWSDOWN as u64;
        const GROWSUP: u64 = libc::PROT_GROWSUP as u64;
        const PROT_SEM: u64 = 0x8;
        let prot = u64::from(prot as u32);
        if prot & (GROWSDOWN | GROWSUP) == GROWSDOWN | GROWSUP || addr % PAGE_SIZE != 0 {
            return Err(errno::EINVAL.into());
        }
        if len == 0 {
            return Ok(0);
        }
        let end = len
            .checked_next_multiple_of(PAGE_SIZE)
            .and_then(|l| addr.checked_add(l))
            .ok_or(errno::ENOMEM)?;
        if prot & !(PROT_ALL | PROT_SEM | GROWSDOWN | GROWSUP) != 0 {
            return Err(errno::EINVAL.into());
        }
        if prot & (GROWSDOWN | GROWSUP) != 0 {
            // No mapping here grows (Linux's stack does; this one is mapped whole):
            // as do_mprotect_pkey, the first mapping in the range decides between
            // ENOMEM (none, or for GROWSUP one starting past `addr`) and EINVAL.
            let first = self.mm.vmas_overlapping(addr, end).next().map(|(s, _)| s);
            return Err(match first {
                Some(s) if prot & GROWSDOWN != 0 || s <= addr => errno::EINVAL,
                _ => errno::ENOMEM,
            }
            .into());
        }
        self.mapping_call(|k| {
            if prot & libc::PROT_WRITE as u64 != 0 {
                // Code about to become writable shows its own bytes (`redirect.rs`).
                crate::redirect::restore(&mut k.mm, addr, end);
            }
            k.mm.mprotect(addr, len, (prot & PROT_ALL) as u32)?;
            Ok(0)
        })
    }

    pub(crate) fn sys_mremap(&mut self, a: [u64; 6]) -> SysResult {
        let [old, old_len, new_len, flags, _new_addr, _] = a;
        if flags & !(libc::MREMAP_MAYMOVE as u64) != 0 {
            // MREMAP_FIXED and MREMAP_DONTUNMAP are not offered.
            return Err(errno::EINVAL.into());
        }
        self.mapping_call(|k| {
            // Code that moves takes its own bytes along (`redirect.rs`).
            crate::redirect::restore(&mut k.mm, old, old.saturating_add(old_len));
            let room = k.lock_room();
            let at = k.mm.mremap(old, old_len, new_len, flags != 0, room)?;
            // What a locked mapping grew by is populated, as Linux's mremap does.
            let (old_pages, new_pages) = (page_up_len(old_len), page_up_len(new_len));
            if new_pages > old_pages
                && matches!(k.mm.vma_at(at), Some((_, v)) if v.lock == Lock::Locked)
            {
                let _ = k.populate_range(at + old_pages, at + new_pages, true);
            }
            Ok(at)
        })
    }

    pub(crate) fn sys_madvise(&mut self, addr: u64, len: u64, advice: u64) -> SysResult {
        const MADV_SOFT_OFFLINE: i32 = 101;
        let advice = advice as i32;
        if addr % PAGE_SIZE != 0 || !matches!(advice, 0..=4 | 8..=25 | 100..=103) {
            return Err(errno::EINVAL.into());
        }
        if matches!(advice, libc::MADV_HWPOISON | MADV_SOFT_OFFLINE) {
            return Err(errno::EPERM.into());
        }
        let len = len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(errno::EINVAL)?;
        let end = addr.checked_add(len).ok_or(errno::EINVAL)?;
        if len == 0 {
            return Ok(0);
        }
        // Advice kept as a flag of the mapping: it splits mappings, as mprotect does.
        let fork_advice = matches!(
            advice,
            libc::MADV_DONTFORK
                | libc::MADV_DOFORK
                | libc::MADV_WIPEONFORK
                | libc::MADV_KEEPONFORK
                | libc::MADV_NORMAL
                | libc::MADV_RANDOM
                | libc::MADV_SEQUENTIAL
                | libc::MADV_DONTDUMP
                | libc::MADV_DODUMP
                | libc::MADV_HUGEPAGE
                | libc::MADV_NOHUGEPAGE
        );
        if fork_advice {
            // It splits mappings, as mprotect does: counted and charged.
            return self.mapping_call(|k| k.advise_each(addr, end, advice));
        }
        self.advise_each(addr, end, advice)
    }

    /// As Linux's madvise_walk_vmas: the advice goes to each mapping in the range in
    /// turn (the first refusal is the answer, what was advised before it stays), the
    /// holes between them make the answer ENOMEM once every mapping took it.
    fn advise_each(&mut self, addr: u64, end: u64, advice: i32) -> SysResult {
        let pieces = self.mapped_pieces(addr, end);
        for &(s, e, anon, locked) in &pieces {
            const MADV_DONTNEED_LOCKED: i32 = 24;
            match advice {
                // A locked mapping's pages stay (Linux's can_madv_lru_vma and
                // madvise_dontneed_free_valid_vma).
                libc::MADV_DONTNEED
                | libc::MADV_FREE
                | libc::MADV_COLD
                | libc::MADV_PAGEOUT
                | libc::MADV_REMOVE
                    if locked =>
                {
                    return Err(errno::EINVAL.into())
                }
                MADV_DONTNEED_LOCKED => self.mm.discard(s, e - s)?,
                // MADV_FREE is for anonymous private memory only, and so is wiping on
                // fork (Linux refuses a file's or a shared mapping).
                libc::MADV_FREE | libc::MADV_WIPEONFORK if !anon => {
                    return Err(errno::EINVAL.into())
                }
                libc::MADV_DONTNEED | libc::MADV_FREE => self.mm.discard(s, e - s)?,
                libc::MADV_REMOVE => self.remove_pages(s, e)?,
                libc::MADV_NORMAL => self.mm.hint(s, e, 0, hint::RANDOM | hint::SEQUENTIAL),
                libc::MADV_RANDOM => self.mm.hint(s, e, hint::RANDOM, hint::SEQUENTIAL),
                libc::MADV_SEQUENTIAL => self.mm.hint(s, e, hint::SEQUENTIAL, hint::RANDOM),
                libc::MADV_DONTDUMP => self.mm.hint(s, e, hint::DONTDUMP, 0),
                libc::MADV_DODUMP => self.mm.hint(s, e, 0, hint::DONTDUMP),
                libc::MADV_HUGEPAGE => self.mm.hint(s, e, hint::HUGEPAGE, hint::NOHUGEPAGE),
                libc::MADV_NOHUGEPAGE => self.mm.hint(s, e, hint::NOHUGEPAGE, hint::HUGEPAGE),
                libc::MADV_DONTFORK => self.mm.advise_fork(s, e, |f| f.skip = true),
                libc::MADV_DOFORK => self.mm.advise_fork(s, e, |f| f.skip = false),
                libc::MADV_WIPEONFORK => self.mm.advise_fork(s, e, |f| f.wipe = true),
                libc::MADV_KEEPONFORK => self.mm.advise_fork(s, e, |f| f.wipe = false),
                _ => {}
            }
        }
        let covered: u64 = pieces.iter().map(|(s, e, _, _)| e - s).sum();
        if covered < end - addr {
            return Err(errno::ENOMEM.into());
        }
        Ok(0)
    }

    /// `madvise(MADV_REMOVE)` over `start .. end`, within one mapping: a hole punched
    /// in what it shares (Linux's madvise_remove: `fallocate(PUNCH_HOLE|KEEP_SIZE)` on
    /// the mapped file range), which every mapping of it and every read then sees as
    /// zeros. Shared anonymous memory is zeroed in place; a file without holes is
    /// `EOPNOTSUPP`, as its `fallocate`.
    fn remove_pages(&mut self, start: u64, end: u64) -> Result<(), SysErr> {
        if self.mm.zero_shared(start, end).is_some() {
            return Ok(());
        }
        let (file, off, len) = self.mm.removable(start, end).map_err(crate::errno::Errno)?;
        const PUNCH: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        match file.file() {
            Some(crate::mm::vma::SavedBacking::Tmp(t)) => {
                let t = Rc::clone(t);
                self.shm_to_file(&t);
                let done = t.punch_hole(off, len);
                self.shm_from_file(&t);
                done?;
            }
            Some(crate::mm::vma::SavedBacking::Host(h)) => {
                self.host_to_file(h, 0, u64::MAX);
                let done = host::fallocate(h.as_raw_fd(), PUNCH, off, len);
                self.host_from_file(h, 0, u64::MAX);
                done?;
            }
            _ => return Err(errno::EOPNOTSUPP.into()),
        }
        Ok(())
    }

    /// The mapped parts of `start .. end`, in order, whether each is anonymous
    /// private memory, and whether it is locked.
    fn mapped_pieces(&self, start: u64, end: u64) -> Vec<(u64, u64, bool, bool)> {
        self.mm
            .vmas_overlapping(start, end)
            .map(|(s, v)| {
                let anon = matches!(v.kind, crate::mm::VmaKind::Anon);
                (s.max(start), v.end.min(end), anon, v.lock.is_locked())
            })
            .collect()
    }

    /// `msync`: checked as Linux does (an aligned start, known flags and not both
    /// `MS_ASYNC` and `MS_SYNC`, `EINVAL`; every page mapped, `ENOMEM`; no locked
    /// mapping with `MS_INVALIDATE`, `EBUSY`). In-memory files share their pages with
    /// their mappings; host files' shared pages are written back.
    pub(crate) fn sys_msync(&mut self, addr: u64, len: u64, flags: u64) -> SysResult {
        const MS_ASYNC: u64 = 1;
        const MS_INVALIDATE: u64 = 2;
        const MS_SYNC: u64 = 4;
        if addr % PAGE_SIZE != 0
            || flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
            || flags & (MS_ASYNC | MS_SYNC) == MS_ASYNC | MS_SYNC
        {
            return Err(errno::EINVAL.into());
        }
        let len = len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(errno::ENOMEM)?;
        let end = addr.checked_add(len).ok_or(errno::ENOMEM)?;
        if len == 0 {
            return Ok(0);
        }
        // Host files' shared pages reach their files (all of them: cheap next to the
        // host call each page costs anyway, and what a sync promises).
        if flags & (MS_ASYNC | MS_SYNC) != 0 && !self.shm.is_empty() {
            self.host_write_back_all();
        }
        // As Linux's msync: each mapping in turn; a hole is ENOMEM at once for a plain
        // MS_ASYNC, else at the end; a locked mapping refuses MS_INVALIDATE (EBUSY).
        let mut at = addr;
        let mut hole = false;
        for (s, v) in self.mm.vmas_overlapping(addr, end) {
            if at < s {
                if flags == MS_ASYNC {
                    return Err(errno::ENOMEM.into());
                }
                hole = true;
            }
            if flags & MS_INVALIDATE != 0 && v.lock.is_locked() {
                return Err(errno::EBUSY.into());
            }
            at = v.end;
            if at >= end {
                return if hole {
                    Err(errno::ENOMEM.into())
                } else {
                    Ok(0)
                };
            }
        }
        Err(errno::ENOMEM.into())
    }

    /// Whether this process may lock memory at all (Linux's can_do_mlock: a nonzero
    /// RLIMIT_MEMLOCK; the workload has no CAP_IPC_LOCK).
    fn can_mlock(&self) -> bool {
        self.proc.rlimits.soft(libc::RLIMIT_MEMLOCK) != Some(0)
    }

    /// Pages that may still be locked within RLIMIT_MEMLOCK (`u64::MAX`: no limit).
    fn lock_room(&self) -> u64 {
        self.proc
            .rlimits
            .soft(libc::RLIMIT_MEMLOCK)
            .map_or(u64::MAX, |limit| {
                (limit / PAGE_SIZE).saturating_sub(self.mm.locked_pages(0, u64::MAX))
            })
    }

    /// Whether `bytes` more locked memory stay within RLIMIT_MEMLOCK (Linux's
    /// mlock_future_ok).
    fn lock_fits(&self, bytes: u64) -> bool {
        bytes / PAGE_SIZE <= self.lock_room()
    }

    /// A new mapping (or a heap's growth) `start .. end` takes `lock` (`MAP_LOCKED`,
    /// `mlockall(MCL_FUTURE)`), populated unless locked on fault.
    fn lock_new(&mut self, start: u64, end: u64, lock: Lock) {
        if lock.is_locked() {
            self.mm.set_lock(start, end, lock);
            if lock == Lock::Locked {
                let _ = self.populate_range(start, end, true);
            }
        }
    }

    /// Populates the mappings of `start .. end`, as Linux's __mm_populate: one with no
    /// access cannot be (`ENOMEM`), running out of memory is `EAGAIN`; with
    /// `ignore_errors` each mapping is tried whatever the others did.
    fn populate_range(&mut self, start: u64, end: u64, ignore_errors: bool) -> Result<(), SysErr> {
        let pieces: Vec<(u64, u64, u32)> = self
            .mm
            .vmas_overlapping(start, end)
            .map(|(s, v)| (s.max(start), v.end.min(end), v.prot))
            .collect();
        for (s, e, prot) in pieces {
            let err = if prot == 0 {
                errno::ENOMEM
            } else if self.mm.populate(s, e) == Err(crate::mm::MapError::Oom) {
                errno::EAGAIN
            } else {
                continue;
            };
            if !ignore_errors {
                return Err(err.into());
            }
        }
        Ok(())
    }

    /// `mlock`, `mlock2`: the mappings of the range are locked (`MLOCK_ONFAULT`: as
    /// their pages are touched), within RLIMIT_MEMLOCK (`ENOMEM`; `EPERM` when it is
    /// zero), then populated. Guest memory is never swapped out: the lock changes the
    /// answers Linux gives about the mappings, not their pages.
    pub(crate) fn sys_mlock(&mut self, addr: u64, len: u64, flags: u64) -> SysResult {
        const MLOCK_ONFAULT: u64 = 1;
        if flags & !MLOCK_ONFAULT != 0 {
            return Err(errno::EINVAL.into());
        }
        if !self.can_mlock() {
            return Err(errno::EPERM.into());
        }
        let (start, len) = lock_range(addr, len);
        let lock = if flags & MLOCK_ONFAULT != 0 {
            Lock::OnFault
        } else {
            Lock::Locked
        };
        if let Some(limit) = self.proc.rlimits.soft(libc::RLIMIT_MEMLOCK) {
            let mut locked = len / PAGE_SIZE + self.mm.locked_pages(0, u64::MAX);
            if locked > limit / PAGE_SIZE {
                // What is locked already in the range counts once.
                locked -= self.mm.locked_pages(start, start.saturating_add(len));
            }
            if locked > limit / PAGE_SIZE {
                return Err(errno::ENOMEM.into());
            }
        }
        self.apply_lock(start, len, lock)?;
        if lock == Lock::Locked && len != 0 {
            // A mapping with no access is locked but not populated: ENOMEM.
            self.populate_range(start, start + len, false)?;
        }
        Ok(0)
    }

    /// `munlock`: the mappings of the range are unlocked.
    pub(crate) fn sys_munlock(&mut self, addr: u64, len: u64) -> SysResult {
        let (start, len) = lock_range(addr, len);
        self.apply_lock(start, len, Lock::Unlocked)?;
        Ok(0)
    }

    /// As Linux's apply_vma_lock_flags: `start` must be mapped, then each mapping in
    /// turn takes the lock up to the first hole (`ENOMEM`, what changed stays).
    fn apply_lock(&mut self, start: u64, len: u64, lock: Lock) -> Result<(), SysErr> {
        let end = start.wrapping_add(len);
        if end < start {
            return Err(errno::EINVAL.into());
        }
        if end == start {
            return Ok(());
        }
        if self.mm.vma_at(start).is_none() {
            return Err(errno::ENOMEM.into());
        }
        let until = self.mm.covered_until(start, end);
        self.mapping_call(|k| {
            k.mm.set_lock(start, until, lock);
            Ok(0)
        })?;
        if until < end {
            return Err(errno::ENOMEM.into());
        }
        Ok(())
    }

    /// `mlockall`: `MCL_CURRENT` locks every mapping (`ENOMEM` when they are more
    /// than RLIMIT_MEMLOCK), `MCL_FUTURE` every later one (`MCL_ONFAULT`: as their
    /// pages are touched).
    pub(crate) fn sys_mlockall(&mut self, flags: u64) -> SysResult {
        const MCL_CURRENT: u64 = 1;
        const MCL_FUTURE: u64 = 2;
        const MCL_ONFAULT: u64 = 4;
        if flags == 0
            || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0
            || flags == MCL_ONFAULT
        {
            return Err(errno::EINVAL.into());
        }
        if !self.can_mlock() {
            return Err(errno::EPERM.into());
        }
        if flags & MCL_CURRENT != 0 {
            if let Some(limit) = self.proc.rlimits.soft(libc::RLIMIT_MEMLOCK) {
                if self.mm.total_pages() > limit / PAGE_SIZE {
                    return Err(errno::ENOMEM.into());
                }
            }
        }
        let lock = if flags & MCL_ONFAULT != 0 {
            Lock::OnFault
        } else {
            Lock::Locked
        };
        self.lock_all(
            if flags & MCL_FUTURE != 0 {
                lock
            } else {
                Lock::Unlocked
            },
            (flags & MCL_CURRENT != 0).then_some(lock),
        )?;
        if flags & MCL_CURRENT != 0 && lock == Lock::Locked {
            // Best effort, as Linux's mm_populate after mlockall.
            let _ = self.populate_range(0, u64::MAX, true);
        }
        Ok(0)
    }

    /// `munlockall`: nothing locked, now or later.
    pub(crate) fn sys_munlockall(&mut self) -> SysResult {
        self.lock_all(Lock::Unlocked, Some(Lock::Unlocked))?;
        Ok(0)
    }

    /// Sets how later mappings are locked and, with `current`, locks every mapping.
    fn lock_all(&mut self, future: Lock, current: Option<Lock>) -> Result<(), SysErr> {
        self.mm.set_lock_future(future);
        if let Some(lock) = current {
            self.mapping_call(|k| {
                k.mm.set_lock(0, u64::MAX, lock);
                Ok(0)
            })?;
        }
        Ok(())
    }

    /// `mincore`: every page of a mapping counts as resident. The range is checked
    /// against the mappings (a cost in mappings, not pages), then the answer is written
    /// a chunk at a time (a 16 GiB range is 4 Mi bytes of answer), giving up when the
    /// run's limits are reached meanwhile.
    pub(crate) fn sys_mincore(&mut self, addr: u64, len: u64, vec: u64) -> SysResult {
        if addr % PAGE_SIZE != 0 {
            return Err(errno::EINVAL.into());
        }
        let end = addr
            .checked_add(len)
            .and_then(crate::mm::vma::page_up)
            .ok_or(errno::ENOMEM)?;
        if end > crate::guest::layout::USER_TOP {
            return Err(errno::ENOMEM.into());
        }
        // The vector is checked (a range check, as access_ok) before the mappings.
        if !super::rw::user_range(vec, len.div_ceil(PAGE_SIZE)) {
            return Err(errno::EFAULT.into());
        }
        if len == 0 {
            return Ok(0);
        }
        // As Linux: a mapping at a time (at most 4096 pages a step), its answer
        // written before the next is looked up, so a bad vector is EFAULT before a
        // later hole is ENOMEM.
        const STEP: u64 = 4096;
        let ones = [1u8; STEP as usize];
        let (mut at, mut done) = (addr, 0u64);
        while at < end {
            if crate::kick::must_stop() {
                return Err(errno::EINTR.into()); // the run ends at the next turn
            }
            let Some((_, v)) = self.mm.vma_at(at) else {
                return Err(errno::ENOMEM.into());
            };
            let to = v.end.min(end).min(at + STEP * PAGE_SIZE);
            let n = (to - at) / PAGE_SIZE;
            let dst = vec.checked_add(done).ok_or(errno::EFAULT)?;
            self.mm.write_user(dst, &ones[..n as usize])?;
            done += n;
            at = to;
        }
        Ok(0)
    }
}

fn fixed(flags: i32) -> Fixed {
    if flags & libc::MAP_FIXED_NOREPLACE != 0 {
        Fixed::NoReplace
    } else if flags & libc::MAP_FIXED != 0 {
        Fixed::Replace
    } else {
        Fixed::Hint
    }
}

/// A mapping of zeros read back from a saved state (`savefile`).
pub(crate) fn zero_backing() -> Rc<dyn Backing> {
    Rc::new(ZeroBacking)
}

/// The indexes of the pages holding bytes `off .. off + len` (saturating).
fn page_range(off: u64, len: u64) -> std::ops::Range<u64> {
    let end = off.saturating_add(len).saturating_add(PAGE_SIZE - 1) / PAGE_SIZE;
    off / PAGE_SIZE..end.max(off / PAGE_SIZE)
}

/// `len` rounded up to whole pages (saturating: callers compare it with limits).
fn page_up_len(len: u64) -> u64 {
    crate::mm::vma::page_up(len).unwrap_or(!(PAGE_SIZE - 1))
}

/// The page range `mlock` and `munlock` act on, as Linux computes it (wrapping: an
/// overflowing length is found by `apply_lock`).
fn lock_range(addr: u64, len: u64) -> (u64, u64) {
    let len = len
        .wrapping_add(addr % PAGE_SIZE)
        .wrapping_add(PAGE_SIZE - 1)
        & !(PAGE_SIZE - 1);
    (addr & !(PAGE_SIZE - 1), len)
}
