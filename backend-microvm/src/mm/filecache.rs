//! Private file mappings through the VM's page cache (see `memory.rs`): a page of a
//! host file read once is kept, keyed by the file's identity and version, and the next
//! mapping of the same page maps it (read-only mappings share the frame, writable ones
//! get a private copy) instead of reading the file and faulting again. The loader and
//! `mmap` map the cached pages of a new mapping before the program runs
//! ([`AddressSpace::prefault_cached`]), so a program run again takes no page fault
//! for what its previous runs read.

use super::pagetable::{PTE_ADDR, PTE_FRAME, PTE_W};
use super::vma::VmaKind;
use super::{pte_flags, AddressSpace, PROT_WRITE};
use crate::guest::layout::PAGE_SIZE;
use crate::memory::{FileKey, OutOfMemory, PageKey};

/// Most pages one call of [`AddressSpace::prefault_cached`] maps.
const PREFAULT_MAX: u64 = 8192;

/// A new private, read-only mapping of a cached file replacing what was at its place
/// (`MAP_FIXED`, as a loader maps a library's segments over its own reservation): an
/// old entry that maps the very frame the page cache holds for the new mapping's page
/// at that address stays, with the new mapping's rights, instead of being dropped and
/// mapped again (and the space's hold on the frame is the new mapping's).
pub(super) struct KeepCached {
    file: FileKey,
    offset: u64,
    file_end: u64,
    start: u64,
    flags: u64,
}

impl KeepCached {
    /// For a new mapping of `kind` with `prot` at `start`; `None` when nothing of it
    /// can be kept (writable, no access, or not through the page cache).
    pub(super) fn new(start: u64, prot: u32, kind: &VmaKind) -> Option<KeepCached> {
        if prot & PROT_WRITE != 0 || prot == 0 {
            return None;
        }
        let VmaKind::File {
            backing,
            offset,
            file_end,
        } = kind
        else {
            return None;
        };
        Some(KeepCached {
            file: backing.cache_key()?,
            offset: *offset,
            file_end: *file_end,
            start,
            flags: pte_flags(prot),
        })
    }

    /// The entry the new mapping takes at `va` in place of `pte`, when `pte` maps the
    /// page cache's frame of the new mapping's page there.
    pub(super) fn entry(&self, mem: &crate::memory::Memory, va: u64, pte: u64) -> Option<u64> {
        let frame = pte & PTE_ADDR;
        let key = page_key(self.file, self.offset, self.file_end, self.start, va)?;
        (pte & PTE_FRAME != 0 && mem.cache_peek(&key) == Some(frame)).then_some(frame | self.flags)
    }
}

/// The cache key of the page at `va` of a private mapping of `file` that starts at
/// `start` with file offset `offset` and file content up to `file_end` (zeros after).
/// `None` past the end of the file of an `mmap` (`file_end == u64::MAX`: SIGBUS there).
pub(super) fn page_key(
    file: FileKey,
    offset: u64,
    file_end: u64,
    start: u64,
    va: u64,
) -> Option<PageKey> {
    let off = offset.checked_add(va.checked_sub(start)?)?;
    if file_end == u64::MAX && off >= file.size {
        return None;
    }
    let limit = file_end.min(file.size);
    let len = limit.saturating_sub(off).min(PAGE_SIZE) as u32;
    Some(PageKey {
        file,
        offset: off,
        len,
    })
}

impl AddressSpace {
    /// True when the page at `va` holds a frame.
    pub(super) fn has_frame(&mut self, va: u64) -> bool {
        self.pt
            .lookup(&mut self.mem, va)
            .is_some_and(|(_, pte)| pte & PTE_FRAME != 0)
    }

    /// Maps the page at `va` (holding no frame) from the cache: the cached frame itself,
    /// read-only and shared, or, for a writable mapping, a private copy of it. False
    /// when the page is not cached.
    pub(super) fn map_cached(
        &mut self,
        va: u64,
        prot: u32,
        key: &PageKey,
    ) -> Result<bool, OutOfMemory> {
        if prot & PROT_WRITE != 0 {
            // The private frame first: taking it may evict idle cached pages.
            let dst = self.mem.alloc()?;
            let Some(src) = self.mem.cache_peek(key) else {
                self.mem.free(vec![dst]);
                return Ok(false);
            };
            let mut buf = vec![0u8; PAGE_SIZE as usize];
            let copied = self
                .mem
                .read(src, &mut buf)
                .and_then(|()| self.mem.write(dst, &buf));
            if copied.is_none() {
                self.mem.free(vec![dst]);
                return Ok(false);
            }
            if let Err(e) = self.pt.map(&mut self.mem, va, dst | pte_flags(prot)) {
                self.mem.free(vec![dst]);
                return Err(e);
            }
            return Ok(true);
        }
        let Some(frame) = self.mem.cache_get(key)? else {
            return Ok(false);
        };
        // Shared with the cache: never writable in place (a write copies it).
        let pte = (frame | pte_flags(prot)) & !PTE_W;
        if let Err(e) = self.pt.map(&mut self.mem, va, pte) {
            self.mem.free(vec![frame]);
            return Err(e);
        }
        Ok(true)
    }

    /// Maps the page at `va` (holding no frame) with `data`, just read from the file as
    /// `key`, and keeps the contents in the cache: a read-only mapping shares its frame
    /// with the cache, a writable one gets a private frame and the cache a copy.
    pub(super) fn fill_cached(
        &mut self,
        va: u64,
        prot: u32,
        key: PageKey,
        data: &[u8],
    ) -> Result<(), OutOfMemory> {
        let frame = self.mem.alloc()?;
        let mut scratch = [0u8; PAGE_SIZE as usize];
        let mapped = match self.mem.write(frame, data) {
            Some(()) => self.map_filled_cached(va, prot, key, frame, &mut scratch),
            None => Err(OutOfMemory),
        };
        if mapped.is_err() {
            self.mem.free(vec![frame]);
        }
        mapped
    }

    /// Maps the page at `va` (holding no frame) with `frame`, the caller's, just
    /// filled from the file as `key`, and keeps the contents in the cache: a read-only
    /// mapping shares the frame with the cache, a writable one keeps it and the cache
    /// gets a copy. `buf` is scratch. On an error the caller still holds `frame`.
    pub(super) fn map_filled_cached(
        &mut self,
        va: u64,
        prot: u32,
        key: PageKey,
        frame: u64,
        buf: &mut [u8; PAGE_SIZE as usize],
    ) -> Result<(), OutOfMemory> {
        if prot & PROT_WRITE != 0 {
            // Best effort (without room the page is still mapped): the cache gets a
            // copy of its own, the mapping keeps the frame.
            if self.mem.read(frame, buf).is_some() {
                self.mem.cache_put_copy(key, buf);
            }
            return self
                .pt
                .map(&mut self.mem, va, frame | pte_flags(prot))
                .map(|_| ());
        }
        self.mem.cache_put(key, frame);
        let pte = if self.mem.is_shared(frame) {
            (frame | pte_flags(prot)) & !PTE_W
        } else {
            frame | pte_flags(prot)
        };
        self.pt.map(&mut self.mem, va, pte).map(|_| ())
    }

    /// Maps now the cached pages of the private file mappings in `start .. end` (best
    /// effort: stops when frames run out or the run must stop), so that the program
    /// finds them present.
    pub(crate) fn prefault_cached(&mut self, start: u64, end: u64) {
        let spans: Vec<(u64, u64, u32, FileKey, u64, u64)> = self
            .vmas
            .overlapping(start, end)
            .filter(|(_, v)| v.prot != 0)
            .filter_map(|(s, v)| match &v.kind {
                VmaKind::File {
                    backing,
                    offset,
                    file_end,
                } => backing
                    .cache_key()
                    .map(|k| (s, v.end, v.prot, k, *offset, *file_end)),
                _ => None,
            })
            .collect();
        let mut mapped = 0u64;
        for (s, e, prot, file, offset, file_end) in spans {
            let mut va = s.max(start & !(PAGE_SIZE - 1));
            while va < e.min(end) {
                if mapped >= PREFAULT_MAX || (mapped % 256 == 255 && crate::kick::must_stop()) {
                    return;
                }
                if !self.has_frame(va) {
                    let Some(key) = page_key(file, offset, file_end, s, va) else {
                        break;
                    };
                    match self.map_cached(va, prot, &key) {
                        Ok(true) => mapped += 1,
                        Ok(false) => {}
                        Err(_) => return,
                    }
                }
                va += PAGE_SIZE;
            }
        }
    }
}
