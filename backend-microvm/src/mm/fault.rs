//! Demand paging: the workload's page faults (and the VMM's own accesses to its
//! memory) map pages on first touch, a small aligned window at a time (each fault
//! is a VM exit), filled with zeros or the file's contents.

use super::filecache::page_key;
use super::pagetable::{PTE_ADDR, PTE_FRAME, PTE_P, PTE_W};
use super::vma::{SharedPages, VmaKind};
use super::{
    allowed, pte_flags, Access, AddressSpace, FaultOutcome, MapError, Stale, FAULT_AROUND,
    FILE_FAULT_AROUND, MAX_FAULT_AROUND, SEGV_ACCERR, SEGV_MAPERR,
};
use crate::guest::layout::{direct_map, PAGE_SIZE, USER_TOP};
use crate::memory::OutOfMemory;

/// A private file mapping being filled by [`AddressSpace::fill_file_run`].
struct FileWindow<'a> {
    backing: &'a dyn super::vma::Backing,
    /// The file offset at `start`, the mapping's first address.
    offset: u64,
    /// Where the file's contents end for this mapping (zeros after; `u64::MAX`: the
    /// file's own end, SIGBUS past it).
    file_end: u64,
    start: u64,
    prot: u32,
    /// The file's cache identity, when its pages may be kept.
    cache: Option<crate::memory::FileKey>,
}

/// Reads the page of a private file mapping at file offset `off` into `buf`, zeros
/// after what the file gives (an ELF segment's tail past `file_end`, or the end of the
/// file). `None` at or past the end of a mapped file (`file_end == u64::MAX`: SIGBUS
/// there); else how many bytes came from the file (a read error ends the page there:
/// the bytes before it are kept, and the page cache keeps nothing short).
fn read_file_page(
    backing: &dyn super::vma::Backing,
    off: u64,
    file_end: u64,
    buf: &mut [u8; PAGE_SIZE as usize],
) -> Option<u64> {
    buf.fill(0);
    let want = file_end.saturating_sub(off).min(PAGE_SIZE) as usize;
    let mut got = 0;
    while got < want {
        match backing.read_at(off.saturating_add(got as u64), &mut buf[got..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    if file_end == u64::MAX && got == 0 {
        return None;
    }
    Some(got as u64)
}

impl AddressSpace {
    /// Maps `page` (its entry must hold no frame) with rights `prot`, filled with `data`.
    pub(super) fn fill_page(
        &mut self,
        page: u64,
        prot: u32,
        data: Option<&[u8]>,
    ) -> Result<(), OutOfMemory> {
        let frame = self.mem.alloc()?;
        if let Some(d) = data {
            self.mem.write(frame, d);
        }
        if let Err(e) = self.pt.map(&mut self.mem, page, frame | pte_flags(prot)) {
            self.mem.free(vec![frame]);
            return Err(e);
        }
        Ok(())
    }

    /// The leaf entry of `frame` for a mapping with rights `prot`: writable only when
    /// the frame is the mapping's own (or the mapping is shared memory).
    pub(super) fn leaf(&self, frame: u64, prot: u32, kind: &VmaKind) -> u64 {
        let mut e = frame | pte_flags(prot);
        let shared = matches!(kind, VmaKind::SharedFile { .. });
        if !shared && self.mem.is_shared(frame) {
            e &= !PTE_W;
        }
        e
    }

    /// `frame` for this space alone: itself when nobody else holds it, else a copy
    /// (the space's hold on `frame` is given up). `None` without memory for the copy.
    fn unshare(&mut self, frame: u64) -> Option<u64> {
        if !self.mem.is_shared(frame) {
            return Some(frame);
        }
        let new = self.mem.alloc().ok()?;
        let mut buf = [0u8; PAGE_SIZE as usize];
        self.mem.read(frame, &mut buf);
        self.mem.write(new, &buf);
        self.mem.free(vec![frame]);
        Some(new)
    }

    /// A write to a private page whose frame may be shared: copy it (or take it, when
    /// nobody else holds it any more) and make it writable.
    fn break_cow(&mut self, slot: u64, pte: u64, prot: u32) -> FaultOutcome {
        let Some(frame) = self.unshare(pte & PTE_ADDR) else {
            return FaultOutcome::Oom;
        };
        self.mem.write_u64(slot, frame | pte_flags(prot));
        if pte & PTE_P != 0 {
            self.flush.push(Stale::of(slot, pte));
        }
        FaultOutcome::Mapped
    }

    /// Maps page `index` of a shared file at `page`: the frame all its mappings share
    /// (made, from the file, at the first touch; past the end of the file: SIGBUS).
    fn map_shared_page(
        &mut self,
        page: u64,
        prot: u32,
        pages: &SharedPages,
        index: u64,
    ) -> FaultOutcome {
        let existing = pages.frames.borrow().get(&index).copied();
        let frame = match existing {
            Some(f) => f,
            None => {
                let mut buf = vec![0u8; PAGE_SIZE as usize];
                let n = pages.file.read_at(index * PAGE_SIZE, &mut buf).unwrap_or(0);
                if n == 0 {
                    return FaultOutcome::Bus;
                }
                let Ok(f) = self.mem.alloc() else {
                    return FaultOutcome::Oom;
                };
                self.mem.write(f, &buf);
                pages.frames.borrow_mut().insert(index, f);
                f
            }
        };
        if self
            .pt
            .map(&mut self.mem, page, frame | pte_flags(prot))
            .is_err()
        {
            return FaultOutcome::Oom;
        }
        self.mem.share(frame);
        FaultOutcome::Mapped
    }

    /// Handles a fault of the workload at `va`.
    pub(crate) fn fault(&mut self, va: u64, access: Access) -> FaultOutcome {
        if va >= USER_TOP {
            return FaultOutcome::Segv(if va < (1 << 47) {
                SEGV_ACCERR
            } else {
                SEGV_MAPERR
            });
        }
        let Some((start, vma)) = self.vmas.find(va) else {
            return FaultOutcome::Segv(SEGV_MAPERR);
        };
        if !allowed(vma.prot, access) {
            return FaultOutcome::Segv(SEGV_ACCERR);
        }
        let vma = vma.clone();
        let page = va & !(PAGE_SIZE - 1);
        if let Some((slot, pte)) = self.pt.lookup(&mut self.mem, page) {
            if pte & PTE_FRAME != 0 {
                if access == Access::Write && pte & PTE_W == 0 {
                    // A copy-on-write page (shared since a fork, or a shared frame).
                    return self.break_cow(slot, pte, vma.prot);
                }
                // Mapped already and allowed: the guest used an old translation.
                let want = self.leaf(pte & PTE_ADDR, vma.prot, &vma.kind);
                if want != pte {
                    self.mem.write_u64(slot, want);
                }
                // What the guest holds is not known (older than `pte`): always.
                self.flush.push(Stale::unknown(direct_map(slot)));
                self.spurious = if self.spurious.0 == page {
                    (page, self.spurious.1 + 1)
                } else {
                    (page, 1)
                };
                if self.spurious.1 > 8 {
                    // The guest keeps missing what is there: do not spin.
                    return FaultOutcome::Segv(SEGV_ACCERR);
                }
                return FaultOutcome::Mapped;
            }
        }
        self.spurious = (0, 0);
        if let VmaKind::SharedFile { pages, offset } = &vma.kind {
            let index = offset.saturating_add(page - start) / PAGE_SIZE;
            return self.map_shared_page(page, vma.prot, pages, index);
        }
        // Map the faulting page and its neighbours in a small window (growing while
        // faults follow one another, see `MAX_FAULT_AROUND`).
        // File pages come in bigger windows: each fault is a VM exit, and reading
        // ahead in a file costs little; fresh anonymous pages cost a frame each.
        let base = match vma.kind {
            VmaKind::File { .. } => FILE_FAULT_AROUND,
            _ => FAULT_AROUND,
        };
        let stream = self
            .streaks
            .iter()
            .position(|&(end, pages)| page >= end && page < end.saturating_add(pages * PAGE_SIZE));
        let (entry, pages) = match stream {
            Some(i) => (i, (self.streaks[i].1 * 2).clamp(base, MAX_FAULT_AROUND)),
            None => {
                let i = self.next_streak;
                self.next_streak = (i + 1) % self.streaks.len();
                (i, base)
            }
        };
        // A first window is aligned to its size; a stream's next one goes forward
        // from the fault.
        let align = PAGE_SIZE * if stream.is_some() { base } else { pages };
        let from = page & !(align - 1);
        let lo = from.max(start);
        let hi = from.saturating_add(PAGE_SIZE * pages).min(vma.end);
        self.streaks[entry] = (hi, pages);
        // A host file's pages come from the VM's page cache when a mapping read them
        // before (see `filecache.rs`): the file is read only for pages not cached.
        let cache = match &vma.kind {
            VmaKind::File {
                backing,
                offset,
                file_end,
            } => backing.cache_key().map(|k| (k, *offset, *file_end)),
            _ => None,
        };
        if let Some((file, offset, file_end)) = cache {
            let mut missing = false;
            let mut p = lo;
            while p < hi {
                if !self.has_frame(p) {
                    match page_key(file, offset, file_end, start, p) {
                        None if p == page => return FaultOutcome::Bus,
                        None => {}
                        Some(key) => match self.map_cached(p, vma.prot, &key) {
                            Ok(true) => {}
                            Ok(false) => missing = true,
                            Err(_) if p == page => return FaultOutcome::Oom,
                            Err(_) => break,
                        },
                    }
                }
                p += PAGE_SIZE;
            }
            if !missing && self.has_frame(page) {
                return FaultOutcome::Mapped;
            }
        }
        // A file's page is read when it is filled, into a page on the stack: a buffer
        // of the whole window cost a host page fault per page at every fault (the
        // allocator hands such buffers back to the kernel at once), 3-5 µs a page.
        let file = match &vma.kind {
            VmaKind::File {
                backing,
                offset,
                file_end,
            } => Some((backing, *offset, *file_end)),
            VmaKind::Anon | VmaKind::SharedFile { .. } => None,
        };
        let mut buf = [0u8; PAGE_SIZE as usize];
        // Fills page `p` with zeros or with its file's bytes, through the cache when the
        // read gave every byte the page's key says it holds. `Ok(false)`: past the end
        // of a mapped file (SIGBUS there).
        let mut fill = |mm: &mut AddressSpace, p: u64| -> Result<bool, OutOfMemory> {
            let Some((backing, offset, file_end)) = file else {
                mm.fill_page(p, vma.prot, None)?;
                return Ok(true);
            };
            let off = offset.saturating_add(p - start);
            let Some(read) = read_file_page(backing.as_ref(), off, file_end, &mut buf) else {
                return Ok(false);
            };
            let key = cache
                .and_then(|(file, offset, file_end)| page_key(file, offset, file_end, start, p));
            match key {
                Some(key) if u64::from(key.len) <= read => {
                    mm.fill_cached(p, vma.prot, key, &buf)?
                }
                _ => mm.fill_page(p, vma.prot, Some(&buf))?,
            }
            Ok(true)
        };
        if !self.has_frame(page) {
            match fill(self, page) {
                Ok(true) => {}
                Ok(false) => return FaultOutcome::Bus,
                Err(_) => return FaultOutcome::Oom,
            }
        }
        if let Some((backing, offset, file_end)) = file {
            // The neighbours come in runs of pages without a frame, one read a run.
            let mut p = lo;
            while p < hi {
                if p == page || self.has_frame(p) {
                    p += PAGE_SIZE;
                    continue;
                }
                let mut end = p + PAGE_SIZE;
                while end < hi && end != page && !self.has_frame(end) {
                    end += PAGE_SIZE;
                }
                let window = FileWindow {
                    backing: backing.as_ref(),
                    offset,
                    file_end,
                    start,
                    prot: vma.prot,
                    cache: cache.map(|(k, _, _)| k),
                };
                if !self.fill_file_run(&window, p, end) {
                    break;
                }
                p = end;
            }
            return FaultOutcome::Mapped;
        }
        let mut p = lo;
        while p < hi {
            if p != page && !self.has_frame(p) && !matches!(fill(self, p), Ok(true)) {
                break;
            }
            p += PAGE_SIZE;
        }
        FaultOutcome::Mapped
    }

    /// Maps the pages `from .. to` (none holds a frame) of a private file mapping, read
    /// with one call into fresh frames. False when it stopped short: frames ran out,
    /// or a page lies past the end of a mapped file (left unmapped: SIGBUS there).
    fn fill_file_run(&mut self, w: &FileWindow<'_>, from: u64, to: u64) -> bool {
        let off0 = w.offset.saturating_add(from - w.start);
        let mut frames = Vec::new();
        let mut lens = Vec::new();
        let mut complete = true;
        let mut p = from;
        while p < to {
            let off = w.offset.saturating_add(p - w.start);
            // What the file gives this page; the rest of the frame stays zero.
            let want = w.file_end.saturating_sub(off).min(PAGE_SIZE);
            let Ok(f) = self.mem.alloc() else {
                complete = false;
                break;
            };
            frames.push(f);
            lens.push(want);
            p += PAGE_SIZE;
        }
        // Only the leading pages that want bytes are read; a segment's tail of zeros
        // (its `.bss`) is not.
        let reading = lens.iter().take_while(|&&l| l > 0).count();
        let slices: Option<Vec<_>> = frames[..reading]
            .iter()
            .zip(&lens)
            .map(|(&f, &l)| self.mem.slice(f, l))
            .collect();
        let read = match slices {
            Some(s) if !s.is_empty() => w.backing.read_pages_at(off0, &s).unwrap_or(0) as u64,
            Some(_) => 0,
            None => {
                self.mem.free(frames);
                return false;
            }
        };
        let mut page_buf = [0u8; PAGE_SIZE as usize];
        for (i, (&frame, &want)) in frames.iter().zip(&lens).enumerate() {
            let va = from + i as u64 * PAGE_SIZE;
            let got = read.saturating_sub(i as u64 * PAGE_SIZE).min(want);
            if w.file_end == u64::MAX && got == 0 {
                // Past the end of the file: this page and the rest stay unmapped.
                self.mem.free(frames[i..].to_vec());
                return false;
            }
            let key = w.cache.and_then(|file| {
                super::filecache::page_key(file, w.offset, w.file_end, w.start, va)
            });
            let mapped = match key {
                Some(key) if u64::from(key.len) <= got => {
                    self.map_filled_cached(va, w.prot, key, frame, &mut page_buf)
                }
                _ => self
                    .pt
                    .map(&mut self.mem, va, frame | pte_flags(w.prot))
                    .map(|_| ()),
            };
            if mapped.is_err() {
                self.mem.free(frames[i..].to_vec());
                return false;
            }
        }
        complete
    }

    /// Maps every page of `start .. end` now (giving up when the run's limits are
    /// reached meanwhile: a large range costs a frame per page).
    pub(crate) fn populate(&mut self, start: u64, end: u64) -> Result<(), MapError> {
        let mut p = start & !(PAGE_SIZE - 1);
        let mut n = 0u32;
        while p < end {
            n = n.wrapping_add(1);
            if n % 256 == 0 && crate::kick::must_stop() {
                return Err(MapError::Halted);
            }
            let vma = match self.vmas.find(p) {
                Some((_, v)) => v.clone(),
                None => {
                    p += PAGE_SIZE;
                    continue;
                }
            };
            let mapped = self
                .pt
                .lookup(&mut self.mem, p)
                .is_some_and(|(_, pte)| pte & PTE_FRAME != 0);
            if !mapped {
                match vma.kind {
                    VmaKind::Anon => self.fill_page(p, vma.prot, None)?,
                    VmaKind::File { .. } | VmaKind::SharedFile { .. } => {
                        if self.fault(p, Access::Read) == FaultOutcome::Oom {
                            return Err(MapError::Oom);
                        }
                    }
                }
            }
            p += PAGE_SIZE;
        }
        Ok(())
    }

    /// Writes `data` (within one page) at `va` of the current space whatever the
    /// page's rights, on a private copy of its frame when the frame is shared (with
    /// another process after a fork, or with the VM's page cache): the way syscall
    /// sites are redirected and restored (`redirect.rs`). The page must be mapped.
    pub(crate) fn patch_code(&mut self, va: u64, data: &[u8]) -> Option<()> {
        let page = va & !(PAGE_SIZE - 1);
        if (va & (PAGE_SIZE - 1)) + data.len() as u64 > PAGE_SIZE {
            return None;
        }
        let (slot, pte) = self.pt.lookup(&mut self.mem, page)?;
        if pte & PTE_FRAME == 0 {
            return None;
        }
        let frame = self.unshare(pte & PTE_ADDR)?;
        if frame != pte & PTE_ADDR {
            self.mem.write_u64(slot, frame | (pte & !PTE_ADDR));
            // The guest holds the old translation: it rewrites the entry and flushes.
            self.flush.push(Stale::of(slot, pte));
        }
        self.mem.write(frame + (va & (PAGE_SIZE - 1)), data)
    }

    /// The bytes of the page at `page` of the current space, when it has a frame.
    pub(crate) fn page_bytes(&mut self, page: u64) -> Option<[u8; PAGE_SIZE as usize]> {
        let (_, pte) = self.pt.lookup(&mut self.mem, page)?;
        if pte & PTE_FRAME == 0 {
            return None;
        }
        let mut buf = [0u8; PAGE_SIZE as usize];
        self.mem.read(pte & PTE_ADDR, &mut buf)?;
        Some(buf)
    }

    /// Writes `data` at `va` whatever the page rights (the pages must be mapped): the
    /// loader's way of filling read-only segments.
    pub(crate) fn poke(&mut self, mut va: u64, mut data: &[u8]) -> Option<()> {
        while !data.is_empty() {
            let (_, pte) = self.pt.lookup(&mut self.mem, va & !(PAGE_SIZE - 1))?;
            if pte & PTE_FRAME == 0 {
                return None;
            }
            let off = va & (PAGE_SIZE - 1);
            let n = ((PAGE_SIZE - off) as usize).min(data.len());
            self.mem.write((pte & PTE_ADDR) + off, &data[..n])?;
            data = &data[n..];
            va += n as u64;
        }
        Some(())
    }
}
