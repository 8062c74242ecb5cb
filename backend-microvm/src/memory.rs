//! Guest RAM and its frame allocator.
//!
//! Guest RAM is one anonymous, lazily backed mapping (`MAP_NORESERVE`) the size of the
//! memory limit: the host only commits the pages the guest touches. The VMM hands out
//! 4 KiB frames on demand (page tables, the workload's pages) and charges the in-memory
//! /tmp against the same budget, so "out of frames" is the sandbox's out-of-memory.
//! Freed frames go back to the host (`MADV_DONTNEED`), which also zeroes them.
//! Fresh frames are handed out in address order, and each 2 MiB chunk of RAM is backed
//! on the host when the first frame of it is (`MADV_POPULATE_WRITE`, huge pages where
//! the host allows): KVM then finds the host pages present, fills its shadow page
//! tables without faulting them in one by one, and prefetches neighbouring entries
//! (on PVM, touching pages the host had not backed cost ~8 µs each; ~1.4 µs backed).
//! A frame may be shared (copy-on-write after `fork`, `MAP_SHARED` memory): it goes
//! back only when its last holder lets it go.
//!
//! Frames given back stay backed on the host for a while (up to [`WARM_MAX`]): the
//! next process reuses them (zeroed by the VMM, ~0.3 µs) instead of touching pages
//! the host has to back again (~8 µs each on PVM). [`Memory::trim`] gives them to
//! the host (a live sandbox does it once it has been idle a little while), so an idle
//! sandbox holds only what its processes use.
//!
//! Page-table frames of an address space that went away are *retired*, not freed:
//! KVM may still hold shadows of them (host writes to guest memory are invisible to
//! its shadow paging), so they are reused only after the guest dropped every cached
//! translation (a memory-slot reload). Retired frames pile up to [`RETIRED_MAX`] (or
//! until frames run out), then all come back at once with one reload: a live sandbox
//! pays one reload per many execs instead of one each. They stay backed meanwhile
//! (given to the host at once, each scattered frame cost an `madvise` and its TLB
//! shootdown, ~40 µs of every exec) and come back as warm frames, zeroed when handed
//! out; [`Memory::trim`] gives them to the host with the warm ones.
//!
//! **Page cache.** Pages of host files that private mappings read (a program's and its
//! libraries' segments) are kept per VM, keyed by the file's identity and version
//! ([`FileKey`]: device, inode, size, mtime, ctime) and the page's offset and length:
//! the next process mapping the same file finds them already read, and the loader
//! maps them before the program starts (no fault, no read). A cached frame is never
//! written: mapped read-only and shared (a write copies it, as after `fork`), or
//! copied into a private frame for a writable mapping. A file that changed has another
//! key, so its old pages are never found again. Frames only the cache holds are not
//! charged to the sandbox's memory and go back when frames run out (or past
//! [`CACHE_MAX`]): the cache never costs the workload memory it could use. A live
//! sandbox idle for a while gives them back (`Memory::evict_idle`). The cache's index
//! is a persistent map ([`CacheIndex`]): a snapshot and every VM started from it share
//! it, and a fork's own changes copy only the few nodes they touch, so a fork of a VM
//! whose programs read thousands of file pages does not copy thousands of entries.
//! One read back from a snapshot file is built when first used ([`PageIndex`]), not
//! on the path of the start.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};

use crate::guest::layout::{FIXED_END, PAGE_SIZE};

/// Host memory is backed in chunks of this size (see [`Memory::alloc`]).
const CHUNK: u64 = 2 << 20;
/// `MADV_POPULATE_WRITE` (Linux 5.14).
const MADV_POPULATE_WRITE: libc::c_int = 23;
/// Most freed frames kept backed on the host (not zeroed yet) for reuse.
pub(crate) const WARM_MAX: usize = 1024;
/// Most retired page-table frames waiting for a memory-slot reload.
pub(crate) const RETIRED_MAX: usize = 1024;
/// Most frames the page cache holds (16 MiB).
pub(crate) const CACHE_MAX: usize = 4096;

/// An index of the page cache: cloned in constant time, sharing its nodes with the
/// original until either changes them (see the module's doc).
type CacheIndex<K, V> = imbl::HashMap<K, V>;

/// A host file's identity and version (see the module's doc, page cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mtime: (i64, i64),
    pub(crate) ctime: (i64, i64),
}

/// One cached page: the file, the page's file offset, and how many of its bytes come
/// from the file (the rest read as zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PageKey {
    pub(crate) file: FileKey,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

/// No frame is left: the sandbox is out of memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("guest memory is exhausted")]
pub(crate) struct OutOfMemory;

/// The sandbox's memory budget in pages: guest frames in use (the fixed ones included),
/// what /tmp holds, and the VMM's own memory that guest actions make it keep (names and
/// symlink targets, pipe and socket buffers, mappings, command lines: see
/// [`HeapCharge`]), so that none of it grows past the sandbox's memory limit.
#[derive(Debug)]
pub(crate) struct Budget {
    total: u64,
    used: Cell<u64>,
    peak: Cell<u64>,
    /// Bytes of VMM memory charged (in `used` rounded up to whole pages).
    heap: Cell<u64>,
}

impl Budget {
    /// A budget of `pages`, none in use (for looking at files before a VM exists).
    pub(crate) fn detached(pages: u64) -> Budget {
        Budget {
            total: pages,
            used: Cell::new(0),
            peak: Cell::new(0),
            heap: Cell::new(0),
        }
    }

    /// Takes `bytes` of VMM memory from the budget.
    pub(crate) fn charge_bytes(&self, bytes: u64) -> Result<(), OutOfMemory> {
        let old = self.heap.get();
        let new = old.checked_add(bytes).ok_or(OutOfMemory)?;
        self.charge(new.div_ceil(PAGE_SIZE) - old.div_ceil(PAGE_SIZE))?;
        self.heap.set(new);
        Ok(())
    }

    /// Gives `bytes` of VMM memory back.
    pub(crate) fn uncharge_bytes(&self, bytes: u64) {
        let old = self.heap.get();
        let new = old.saturating_sub(bytes);
        self.uncharge(old.div_ceil(PAGE_SIZE) - new.div_ceil(PAGE_SIZE));
        self.heap.set(new);
    }

    /// Takes `pages` from the budget.
    pub(crate) fn charge(&self, pages: u64) -> Result<(), OutOfMemory> {
        let used = self.used.get().checked_add(pages).ok_or(OutOfMemory)?;
        if used > self.total {
            return Err(OutOfMemory);
        }
        self.used.set(used);
        self.peak.set(self.peak.get().max(used));
        Ok(())
    }

    /// Gives `pages` back.
    pub(crate) fn uncharge(&self, pages: u64) {
        self.used.set(self.used.get().saturating_sub(pages));
    }
}

/// VMM memory that a guest structure holds (a pipe's buffer, a command line...),
/// charged to the sandbox's [`Budget`] while the structure lives: [`HeapCharge::set`]
/// follows its size, dropping gives it all back.
#[derive(Debug)]
pub(crate) struct HeapCharge {
    budget: Rc<Budget>,
    bytes: u64,
}

impl HeapCharge {
    /// Nothing charged yet.
    pub(crate) fn new(budget: &Rc<Budget>) -> HeapCharge {
        HeapCharge {
            budget: Rc::clone(budget),
            bytes: 0,
        }
    }

    /// `bytes` charged, when the budget has room.
    pub(crate) fn of(budget: &Rc<Budget>, bytes: u64) -> Result<HeapCharge, OutOfMemory> {
        let mut c = HeapCharge::new(budget);
        c.set(bytes)?;
        Ok(c)
    }

    /// Charges `bytes` in all from now on (more or less than before); unchanged when
    /// the budget has no room for the increase.
    pub(crate) fn set(&mut self, bytes: u64) -> Result<(), OutOfMemory> {
        if bytes > self.bytes {
            self.budget.charge_bytes(bytes - self.bytes)?;
        } else {
            self.budget.uncharge_bytes(self.bytes - bytes);
        }
        self.bytes = bytes;
        Ok(())
    }

    /// Bytes charged.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for HeapCharge {
    fn drop(&mut self) {
        self.budget.uncharge_bytes(self.bytes);
    }
}

/// Guest RAM plus the accounting of its frames.
#[derive(Debug)]
pub(crate) struct Memory {
    ram: GuestMemoryMmap,
    size: u64,
    /// Next never-used frame.
    next: u64,
    /// Frames given back, all zero, not backed on the host.
    free: Vec<u64>,
    /// Frames given back, still backed on the host (not zeroed: see `alloc`).
    warm: Vec<u64>,
    /// Page-table frames of released address spaces, not zeroed (backed until the next
    /// trim), reusable only after the guest dropped its cached translations (see the
    /// module's doc).
    retired: Vec<u64>,
    /// Some retired frames are backed on the host (retired since the last trim).
    retired_backed: bool,
    /// Retired frames became reusable: the guest must drop its cached translations (a
    /// memory-slot reload) before it runs again.
    reclaimed: bool,
    /// A chunk was backed on the host since the last [`Memory::trim`].
    chunk_backed: Cell<bool>,
    /// The page cache: frames by page, and pages by frame (the cache is one holder of
    /// each; see the module's doc).
    cache: PageIndex,
    /// Pages the full cache refuses without looking for idle ones, after a look found
    /// too few (see [`Memory::cache_put`]).
    cache_skip: usize,
    /// Holders beyond the first, of the frames that have more than one.
    /// Shared with the snapshot a VM started from until either changes it (a fork
    /// that never maps or lets go of a shared frame copies none of it).
    extra: std::sync::Arc<HashMap<u64, u32>>,
    budget: Rc<Budget>,
    /// Guest RAM is a private mapping of a snapshot's memory files (see
    /// [`Memory::freeze`]): a page given back reads as the file's again, not as zero,
    /// so free frames are zeroed when handed out, and no chunk is backed ahead (that
    /// would copy the file's pages).
    cow: bool,
    /// The memory files guest RAM is a private mapping of, oldest first (see
    /// [`Memory::freeze`]); empty until the first snapshot.
    layers: Vec<Layer>,
}

/// The page cache's index: frames by page and pages by frame. One read back from a
/// snapshot file is kept as the file's list until first used: building the maps
/// costs ~0.3 µs an entry (~1.6 ms for the ~2,700 pages a Python VM's cache holds),
/// on the path of a start whose guest may not look at the cache for a long time.
#[derive(Debug, Clone, Default)]
struct PageIndex {
    maps: std::cell::OnceCell<(CacheIndex<PageKey, u64>, CacheIndex<u64, PageKey>)>,
    /// The entries read back, until `maps` is made from them. An `Arc`: a copy of
    /// the memory (a snapshot's, `Memory::snap_over`) may go to another thread.
    loaded: Option<std::sync::Arc<[(PageKey, u64)]>>,
}

impl PageIndex {
    fn loaded(entries: Vec<(PageKey, u64)>) -> PageIndex {
        PageIndex {
            maps: std::cell::OnceCell::new(),
            loaded: Some(entries.into()),
        }
    }

    /// The entries read back and not made into maps yet.
    fn pending(&self) -> &[(PageKey, u64)] {
        self.loaded.as_deref().unwrap_or_default()
    }

    fn maps(&self) -> &(CacheIndex<PageKey, u64>, CacheIndex<u64, PageKey>) {
        self.maps.get_or_init(|| {
            let by_key = self.pending().iter().copied().collect();
            let by_frame = self.pending().iter().map(|&(k, f)| (f, k)).collect();
            (by_key, by_frame)
        })
    }

    fn maps_mut(&mut self) -> &mut (CacheIndex<PageKey, u64>, CacheIndex<u64, PageKey>) {
        self.maps();
        self.loaded = None;
        self.maps.get_mut().expect("made just above")
    }

    fn get(&self, key: &PageKey) -> Option<u64> {
        self.maps().0.get(key).copied()
    }

    fn has_key(&self, key: &PageKey) -> bool {
        self.maps().0.contains_key(key)
    }

    fn has_frame(&self, frame: u64) -> bool {
        self.maps().1.contains_key(&frame)
    }

    fn len(&self) -> usize {
        self.maps.get().map_or(self.pending().len(), |m| m.0.len())
    }

    fn insert(&mut self, key: PageKey, frame: u64) {
        let (by_key, by_frame) = self.maps_mut();
        by_key.insert(key, frame);
        by_frame.insert(frame, key);
    }

    /// Forgets the page in `frame`, if it holds one.
    fn remove_frame(&mut self, frame: u64) {
        let (by_key, by_frame) = self.maps_mut();
        if let Some(k) = by_frame.remove(&frame) {
            by_key.remove(&k);
        }
    }

    fn frames(&self) -> Vec<u64> {
        self.maps().1.keys().copied().collect()
    }

    /// Every entry, without making the maps.
    fn entries(&self) -> Vec<(PageKey, u64)> {
        match self.maps.get() {
            Some(m) => m.0.iter().map(|(k, f)| (*k, *f)).collect(),
            None => self.pending().to_vec(),
        }
    }
}

/// One memory file of a snapshot's guest RAM: the whole RAM (the first), or the
/// pages that changed since the one before (`runs`: guest addresses and lengths,
/// at the same offsets in the file).
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) fd: std::sync::Arc<std::os::fd::OwnedFd>,
    /// The whole RAM (else only `runs`).
    pub(crate) whole: bool,
    /// The pages of a layer over earlier ones (none: nothing changed).
    pub(crate) runs: Vec<(u64, u64)>,
    /// Where guest address 0 is in the file (a saved snapshot's memory follows its
    /// header; 0 for a memory file of its own).
    pub(crate) base: u64,
}

/// Most runs of changed pages a VM's layers may map in all (each is a host mapping);
/// past it a snapshot writes the whole RAM into one new file again.
const RUNS_MAX: usize = 512;
/// Changed pages this close (in pages) go into one run of a layer, the unchanged ones
/// between copied too: fewer host mappings per VM.
const RUN_GAP: u64 = 16;

impl Memory {
    /// Maps `size` bytes of lazily backed guest RAM, of which at most `limit` bytes
    /// (whole pages) may be in use at once.
    pub(crate) fn with_limit(size: u64, limit: u64) -> std::io::Result<Memory> {
        let mut m = Memory::new(size)?;
        m.budget = Rc::new(Budget {
            total: (limit / PAGE_SIZE).min(size / PAGE_SIZE),
            used: Cell::new(FIXED_END / PAGE_SIZE),
            peak: Cell::new(FIXED_END / PAGE_SIZE),
            heap: Cell::new(0),
        });
        Ok(m)
    }

    /// Maps `size` bytes (a multiple of 2 MiB) of lazily backed guest RAM, all usable.
    pub(crate) fn new(size: u64) -> std::io::Result<Memory> {
        let len =
            usize::try_from(size).map_err(|_| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
        let ram = guest_ram(len)?;
        let fixed = FIXED_END / PAGE_SIZE;
        let budget = Rc::new(Budget {
            total: size / PAGE_SIZE,
            used: Cell::new(fixed),
            peak: Cell::new(fixed),
            heap: Cell::new(0),
        });
        let m = Memory {
            ram,
            size,
            next: FIXED_END,
            free: Vec::new(),
            warm: Vec::new(),
            retired: Vec::new(),
            retired_backed: false,
            reclaimed: false,
            chunk_backed: Cell::new(false),
            cache: PageIndex::default(),
            cache_skip: 0,
            extra: Default::default(),
            budget,
            cow: false,
            layers: Vec::new(),
        };
        // The first chunk holds the fixed region, which the supervisor's tables are
        // written into before any frame is handed out: advised now, their first write
        // backs the chunk with one huge page. Advised only when its first frame is
        // handed out (`back_chunk`), the chunk already held those small pages and its
        // population faulted in the other 500 one by one: 0.9-1.1 ms at every VM start
        // on PVM, against 0.2-0.3 ms for the next chunk (`perf trace -e madvise`).
        m.advise_chunk(0, &[libc::MADV_HUGEPAGE]);
        Ok(m)
    }

    /// The guest RAM, for KVM's memory slot.
    pub(crate) fn ram(&self) -> &GuestMemoryMmap {
        &self.ram
    }

    /// RAM size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The end of the frames ever handed out: every frame past it reads as zero.
    pub(crate) fn high_water(&self) -> u64 {
        self.next
    }

    /// The budget shared with /tmp.
    pub(crate) fn budget(&self) -> Rc<Budget> {
        Rc::clone(&self.budget)
    }

    /// Bytes in use now (frames and /tmp).
    pub(crate) fn used_bytes(&self) -> u64 {
        self.budget.used.get() * PAGE_SIZE
    }

    /// Most bytes ever in use.
    pub(crate) fn peak_bytes(&self) -> u64 {
        self.budget.peak.get() * PAGE_SIZE
    }

    /// A zeroed frame.
    pub(crate) fn alloc(&mut self) -> Result<u64, OutOfMemory> {
        self.budget.charge(1)?;
        if let Some(f) = self.given_back() {
            return Ok(f);
        }
        if self.next + PAGE_SIZE > self.size {
            if !self.retired.is_empty() {
                self.reclaim();
            }
            if self.warm.is_empty() && self.free.is_empty() {
                self.evict_idle();
            }
            if let Some(f) = self.given_back() {
                return Ok(f);
            }
            // Cannot happen while the accounting holds; stay safe anyway.
            self.budget.uncharge(1);
            return Err(OutOfMemory);
        }
        let f = self.next;
        self.next += PAGE_SIZE;
        if (f % CHUNK == 0 || f == FIXED_END) && !self.cow {
            self.back_chunk(f);
        }
        Ok(f)
    }

    /// A frame given back (warm first), zeroed.
    fn given_back(&mut self) -> Option<u64> {
        if let Some(f) = self.warm.pop() {
            if self.zero(f).is_none() {
                self.release(f, PAGE_SIZE);
            }
            return Some(f);
        }
        self.free.pop().map(|f| self.zeroed_if_cow(f))
    }

    /// `f`, a free frame, zeroed first after a snapshot: given back, it reads as the
    /// snapshot's page again, not as zero (see `release`).
    fn zeroed_if_cow(&self, f: u64) -> u64 {
        if self.cow {
            let _ = self.zero(f);
        }
        f
    }

    /// Zeroes one frame from the host side.
    fn zero(&self, f: u64) -> Option<()> {
        const ZEROS: [u8; PAGE_SIZE as usize] = [0; PAGE_SIZE as usize];
        self.write(f, &ZEROS)
    }

    /// Retires the page-table frames of an address space that went away (see the
    /// module's doc): given back to the budget now (to the host at the next trim),
    /// reusable after the next memory-slot reload.
    pub(crate) fn retire(&mut self, mut frames: Vec<u64>) {
        frames.sort_unstable();
        frames.dedup();
        self.budget.uncharge(frames.len() as u64);
        self.retired_backed |= !frames.is_empty();
        self.retired.extend(frames);
        if self.retired.len() > RETIRED_MAX {
            self.reclaim();
        }
    }

    /// Makes the retired frames reusable (as warm frames: zeroed when handed out);
    /// the guest must reload its memory slot before it runs again
    /// ([`Memory::take_reclaimed`]).
    fn reclaim(&mut self) {
        self.warm.append(&mut self.retired);
        self.reclaimed = true;
    }

    /// True (once) when retired page-table frames became reusable since the last call:
    /// the guest must drop its cached translations (a memory-slot reload) first.
    pub(crate) fn take_reclaimed(&mut self) -> bool {
        std::mem::take(&mut self.reclaimed)
    }

    /// Gives the host every frame that is free but still backed, and the unused rest of
    /// the last 2 MiB chunk backed at once: an idle sandbox keeps only what is in use.
    pub(crate) fn trim(&mut self) {
        self.chunk_backed.set(false);
        let mut warm = std::mem::take(&mut self.warm);
        warm.sort_unstable();
        self.release_ranges(&warm);
        self.free.extend(warm.iter().rev());
        // Still retired (not reusable before a reload), but no longer backed.
        if std::mem::take(&mut self.retired_backed) {
            self.retired.sort_unstable();
            self.release_ranges(&self.retired);
        }
        let chunk_end = self.next.next_multiple_of(CHUNK).min(self.size);
        if self.next < chunk_end {
            self.release(self.next, chunk_end - self.next);
        }
    }

    /// True when [`Memory::trim`] has something to give back.
    pub(crate) fn needs_trim(&self) -> bool {
        !self.warm.is_empty() || self.retired_backed || self.chunk_backed.get()
    }

    /// Backs the 2 MiB chunk holding `f` on the host now (best effort: without
    /// `MADV_POPULATE_WRITE`, pages are backed at first touch as before).
    fn back_chunk(&self, f: u64) {
        self.chunk_backed.set(true);
        self.advise_chunk(f, &[libc::MADV_HUGEPAGE, MADV_POPULATE_WRITE]);
    }

    /// Gives the kernel `advice` (in order) for the 2 MiB chunk holding `f`.
    fn advise_chunk(&self, f: u64, advice: &[libc::c_int]) {
        let start = f & !(CHUNK - 1);
        let len = CHUNK.min(self.size - start);
        let Some(slice) = self.slice(start, len) else {
            return;
        };
        let guard = slice.ptr_guard_mut();
        for &a in advice {
            // SAFETY: the range lies inside the guest RAM mapping (`slice` checked it);
            // MADV_HUGEPAGE only changes how the kernel backs it, MADV_POPULATE_WRITE
            // backs it with zeroed pages as a first write would: no content changes
            // (the chunk's frames were never handed out, so they read as zero anyway).
            unsafe { libc::madvise(guard.as_ptr().cast(), len as usize, a) };
        }
    }

    /// Adds a holder to `frame` (it is now mapped in one more place).
    pub(crate) fn share(&mut self, frame: u64) {
        *std::sync::Arc::make_mut(&mut self.extra)
            .entry(frame)
            .or_insert(0) += 1;
    }

    /// True when `frame` has more than one holder (a write must copy it first).
    pub(crate) fn is_shared(&self, frame: u64) -> bool {
        self.extra.contains_key(&frame)
    }

    /// Lets frames go, one holder each; those without holders left go back. They must
    /// no longer be mapped there in the guest, or the guest must be unable to run
    /// before the mappings are flushed.
    pub(crate) fn free(&mut self, mut frames: Vec<u64>) {
        let mut idle = 0;
        let (extra, cached) = (std::sync::Arc::make_mut(&mut self.extra), &self.cache);
        frames.retain(|f| match extra.get_mut(f) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    extra.remove(f);
                    // Only the page cache holds it now: no longer the workload's.
                    if cached.has_frame(*f) {
                        idle += 1;
                    }
                }
                false
            }
            None => true,
        });
        self.budget.uncharge(idle);
        if frames.is_empty() {
            return;
        }
        frames.sort_unstable();
        frames.dedup();
        self.budget.uncharge(frames.len() as u64);
        // Kept backed for the next process, up to WARM_MAX; the rest go to the host.
        let room = WARM_MAX.saturating_sub(self.warm.len()).min(frames.len());
        let cold = frames.split_off(room);
        self.warm.extend(frames);
        self.release_ranges(&cold);
        self.free.extend(cold.iter().rev());
    }

    /// [`Memory::release`] of sorted frames, a run of adjacent ones at a time.
    fn release_ranges(&self, frames: &[u64]) {
        let mut i = 0;
        while i < frames.len() {
            let start = frames[i];
            let mut end = start + PAGE_SIZE;
            while i + 1 < frames.len() && frames[i + 1] == end {
                i += 1;
                end += PAGE_SIZE;
            }
            i += 1;
            self.release(start, end - start);
        }
    }

    /// The cached frame of `key`, with one more holder (the caller maps it, read-only:
    /// it is shared), or `None`. Out of memory when it must be charged again (only the
    /// cache held it) and the budget has no room.
    pub(crate) fn cache_get(&mut self, key: &PageKey) -> Result<Option<u64>, OutOfMemory> {
        let Some(f) = self.cache.get(key) else {
            return Ok(None);
        };
        if !self.extra.contains_key(&f) {
            self.budget.charge(1)?;
        }
        self.share(f);
        Ok(Some(f))
    }

    /// The cached frame of `key`, to copy from (no holder added), or `None`.
    pub(crate) fn cache_peek(&self, key: &PageKey) -> Option<u64> {
        self.cache.get(key)
    }

    /// Keeps `frame` (freshly filled with `key`'s contents, held by the caller, who
    /// must map it read-only from now on: it is shared) in the cache.
    pub(crate) fn cache_put(&mut self, key: PageKey, frame: u64) {
        if self.cache.has_key(&key) || self.cache.has_frame(frame) {
            return;
        }
        if self.cache.len() >= CACHE_MAX {
            // Looking for idle pages walks the whole cache. When nearly all of it is
            // mapped (a program larger than the cache, as gcc's cc1), a walk at every
            // page made each fault of such a program cost milliseconds; a walk that
            // freed less than an eighth is followed by that many pages not cached
            // instead, which bounds the walks to a few entries a page.
            if self.cache_skip > 0 {
                self.cache_skip -= 1;
                return;
            }
            self.evict_idle();
            if self.cache.len() > CACHE_MAX - CACHE_MAX / 8 {
                self.cache_skip = CACHE_MAX / 8;
            }
            if self.cache.len() >= CACHE_MAX {
                return;
            }
        }
        self.share(frame);
        self.cache.insert(key, frame);
    }

    /// Keeps `data` (`key`'s contents) in a frame of the cache's own (not charged).
    /// False when no frame or no room is left.
    pub(crate) fn cache_put_copy(&mut self, key: PageKey, data: &[u8]) -> bool {
        if self.cache.has_key(&key) {
            return true;
        }
        let Ok(f) = self.alloc() else {
            return false;
        };
        if self.write(f, data).is_none() {
            self.free(vec![f]);
            return false;
        }
        self.cache_put(key, f);
        if !self.cache.has_frame(f) {
            self.free(vec![f]);
            return false;
        }
        // The caller's hold goes: the cache alone holds it.
        self.free(vec![f]);
        true
    }

    /// Drops the cached pages nobody maps, back to the free frames.
    pub(crate) fn evict_idle(&mut self) {
        let idle: Vec<u64> = self
            .cache
            .frames()
            .into_iter()
            .filter(|f| !self.extra.contains_key(f))
            .collect();
        for f in &idle {
            self.cache.remove_frame(*f);
        }
        let mut idle = idle;
        idle.sort_unstable();
        // Not charged any more: straight back, zeroed by the host.
        self.release_ranges(&idle);
        self.free.extend(idle.iter().rev());
    }

    /// True when the page cache holds anything.
    pub(crate) fn has_cache(&self) -> bool {
        self.cache.len() > 0
    }

    /// Frames the page cache holds.
    #[cfg(test)]
    pub(crate) fn cached_frames(&self) -> usize {
        self.cache.len()
    }

    /// Returns host pages to the kernel; they read as zero afterwards (after a
    /// snapshot: as its memory file's pages, see `cow`).
    fn release(&self, gpa: u64, len: u64) {
        let Some(slice) = self.slice(gpa, len) else {
            return;
        };
        let guard = slice.ptr_guard_mut();
        // SAFETY: the range lies inside the guest RAM mapping (`slice` checked it) and
        // is private memory: MADV_DONTNEED only drops its contents (anonymous pages read
        // as zero again; after a snapshot, pages of its memory file read as the file's,
        // which is why frames are then zeroed when handed out again: `alloc`), which no
        // Rust reference points into (guest memory is only reached through volatile
        // accesses), and the frames are unused by the guest.
        let rc = unsafe { libc::madvise(guard.as_ptr().cast(), len as usize, libc::MADV_DONTNEED) };
        if rc != 0 {
            // Not fatal, but the frame must still read as zero.
            let _ = self
                .ram
                .write_slice(&vec![0u8; len as usize], GuestAddress(gpa));
        }
    }

    /// Reads a u64 at `gpa`.
    pub(crate) fn read_u64(&self, gpa: u64) -> Option<u64> {
        self.ram.read_obj::<u64>(GuestAddress(gpa)).ok()
    }

    /// Writes a u64 at `gpa`.
    pub(crate) fn write_u64(&self, gpa: u64, v: u64) -> Option<()> {
        self.ram.write_obj(v, GuestAddress(gpa)).ok()
    }

    /// Copies `data` to `gpa`.
    pub(crate) fn write(&self, gpa: u64, data: &[u8]) -> Option<()> {
        self.ram.write_slice(data, GuestAddress(gpa)).ok()
    }

    /// Copies from `gpa` into `buf`.
    pub(crate) fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()> {
        self.ram.read_slice(buf, GuestAddress(gpa)).ok()
    }

    /// The bytes at `gpa .. gpa + len`, for I/O straight into guest memory.
    pub(crate) fn slice(&self, gpa: u64, len: u64) -> Option<VolatileSlice<'_, ()>> {
        self.ram
            .get_slice(GuestAddress(gpa), usize::try_from(len).ok()?)
            .ok()
    }
}

impl crate::snap::Snap for Budget {
    fn snap(&self, _: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(Budget {
            total: self.total,
            used: Cell::new(self.used.get()),
            peak: Cell::new(self.peak.get()),
            heap: Cell::new(self.heap.get()),
        })
    }
}

impl crate::snap::Snap for HeapCharge {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(HeapCharge {
            budget: crate::snap::Snap::snap(&self.budget, m)?,
            bytes: self.bytes,
        })
    }
}

/// Maps `fd` (a snapshot's memory file) privately over guest RAM at `gpa .. gpa +
/// len` (file offset `gpa`): reads see the file, writes copy the page (copy-on-write,
/// per sandbox).
fn map_file(
    ram: &GuestMemoryMmap,
    fd: i32,
    gpa: u64,
    len: u64,
    base_off: u64,
) -> std::io::Result<()> {
    let total: u64 = ram.iter().map(vm_memory::GuestMemoryRegion::len).sum();
    if gpa.checked_add(len).is_none_or(|end| end > total) {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    let base = ram
        .get_host_address(GuestAddress(0))
        .map_err(std::io::Error::other)?;
    let at = base.wrapping_add(gpa as usize);
    // SAFETY: `at .. at + len` lies inside the guest RAM mapping `ram` owns (one region
    // from guest address 0, checked above); it is replaced in place (MAP_FIXED) by a
    // private mapping of the file, which `ram` unmaps when dropped as it would its
    // own. No Rust reference points into guest memory; KVM follows the change (its
    // MMU notifier drops what it mapped there).
    let p = unsafe {
        libc::mmap(
            at.cast(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_NORESERVE,
            fd,
            (base_off + gpa) as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Guest RAM of `len` bytes: one anonymous mapping (each snapshot's layers are
/// mapped over it), left out of any child the host process forks.
///
/// Why: a `fork` of the process that runs VMs (a container sandbox's `clone`, or any
/// `fork` of the library's user) write-protects every page the parent wrote in each
/// private mapping it copies, and KVM drops its shadow entries for all of them (its
/// MMU notifier): every VM of the process would take its page faults again after
/// each one, a fork started ahead would lose the warming it did (`warm.rs`), and the
/// fork would copy page tables of gigabytes of guest RAM. No child needs guest memory.
pub(crate) fn guest_ram(len: usize) -> std::io::Result<GuestMemoryMmap> {
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), len)])
        .map_err(std::io::Error::other)?;
    let base = ram
        .get_host_address(GuestAddress(0))
        .map_err(std::io::Error::other)?;
    dont_fork(base, len);
    Ok(ram)
}

/// `MADV_DONTFORK` over `at .. at + len`, a mapping of guest RAM. A failure only costs
/// speed (see [`guest_ram`]): it is not an error.
fn dont_fork(at: *mut u8, len: usize) {
    // SAFETY: `at .. at + len` is a mapping of guest RAM this process made;
    // MADV_DONTFORK only marks it not to be copied into children, nothing in this
    // process reads or writes differently.
    let _ = unsafe { libc::madvise(at.cast(), len, libc::MADV_DONTFORK) };
}

/// Maps a snapshot's layers privately over guest RAM of `size` bytes: the first
/// whole, each later one's runs over it.
pub(crate) fn map_layers(
    ram: &GuestMemoryMmap,
    size: u64,
    layers: &[Layer],
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    for l in layers {
        if l.whole {
            map_file(ram, l.fd.as_raw_fd(), 0, size, l.base)?;
        }
        for &(gpa, len) in &l.runs {
            map_file(ram, l.fd.as_raw_fd(), gpa, len, l.base)?;
        }
    }
    // The new mappings are left out of forks as the ones they replaced were (one
    // call over all of them).
    let base = ram
        .get_host_address(GuestAddress(0))
        .map_err(std::io::Error::other)?;
    dont_fork(base, size as usize);
    Ok(())
}

/// Whether `bytes` are all zero (no early exit: the loop vectorizes). Pages that read
/// as zero are holes in memory files, snapshot files included.
pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, b| acc | b) == 0
}

/// Runs of whole frames from sorted frame addresses: frames at most [`RUN_GAP`] pages
/// apart share a run (the frames between are in it too).
fn runs_of(frames: &[u64]) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &f in frames {
        match runs.last_mut() {
            Some((start, len))
                if f >= *start + *len && f - (*start + *len) <= RUN_GAP * PAGE_SIZE =>
            {
                *len = f + PAGE_SIZE - *start;
            }
            _ => runs.push((f, PAGE_SIZE)),
        }
    }
    runs
}

/// `pagemap` entry bits (Documentation/admin-guide/mm/pagemap.rst).
const PM_PRESENT: u64 = 1 << 63;
const PM_SWAPPED: u64 = 1 << 62;
const PM_FILE: u64 = 1 << 61;

/// This process's `/proc/self/pagemap`, opened once, the first time it is asked for
/// (by a host thread: a confined VMM thread cannot open it) and kept for the
/// process's life; `None` where it cannot be opened.
pub(crate) fn pagemap() -> Option<i32> {
    use std::os::fd::AsRawFd;
    static FD: std::sync::OnceLock<Option<std::os::fd::OwnedFd>> = std::sync::OnceLock::new();
    FD.get_or_init(|| {
        std::fs::File::open("/proc/self/pagemap")
            .ok()
            .map(std::os::fd::OwnedFd::from)
    })
    .as_ref()
    .map(AsRawFd::as_raw_fd)
}

/// The `pagemap` entries of the host pages `base .. base + len`.
fn pagemap_entries(base: *mut u8, len: u64, pagemap: i32) -> Option<Vec<u64>> {
    let pages = (len / PAGE_SIZE) as usize;
    let mut entries = vec![0u64; pages];
    let first = base as u64 / PAGE_SIZE;
    let bytes = pages * 8;
    let mut done = 0;
    while done < bytes {
        let into = entries.as_mut_ptr().cast::<u8>().wrapping_add(done);
        // SAFETY: reads into `entries` (`bytes` long) from `done` on, at most what is
        // left of it.
        let n = unsafe {
            libc::pread(
                pagemap,
                into.cast(),
                bytes - done,
                (first * 8 + done as u64) as libc::off_t,
            )
        };
        if n <= 0 {
            return None;
        }
        done += n as usize;
    }
    Some(entries)
}

impl Memory {
    /// Writes guest RAM into `memfd` (a fresh memory file of [`Memory::size`] bytes)
    /// and maps it back privately: from now on this VM and every sandbox started from
    /// the snapshot share its pages until one writes them. The first snapshot writes
    /// every page in use; a later one only the pages that changed since (written by
    /// the guest or the VMM, or given back), found in `pagemap` (this process's
    /// `/proc/self/pagemap`: a private page no longer the file's is anonymous), as a
    /// new layer over the earlier ones. Pages that read as zero are holes. Without
    /// `pagemap`, or past [`RUNS_MAX`] runs, the whole RAM is written again. The
    /// guest must not run meanwhile. Returns the bytes written.
    pub(crate) fn freeze(
        &mut self,
        memfd: std::sync::Arc<std::os::fd::OwnedFd>,
        pagemap: Option<i32>,
        seal: bool,
    ) -> std::io::Result<u64> {
        use std::os::fd::AsRawFd;
        let fd = memfd.as_raw_fd();
        let base = self
            .ram
            .get_host_address(GuestAddress(0))
            .map_err(std::io::Error::other)?;
        // Warm and retired frames hold nothing (zeroed when handed out): not written.
        let warm: std::collections::HashSet<u64> =
            self.warm.iter().chain(&self.retired).copied().collect();
        let changed = match (self.cow, pagemap) {
            (true, Some(pm)) => self.changed_frames(base, pm),
            _ => None,
        };
        let mapped: usize = self.layers.iter().map(|l| l.runs.len()).sum();
        let runs = changed.as_deref().map(runs_of);
        let (frames, whole): (Vec<u64>, bool) = match runs {
            // Every frame of the runs (the unchanged ones between changed ones too).
            Some(r) if mapped + r.len() <= RUNS_MAX => (
                r.iter()
                    .flat_map(|&(start, len)| {
                        (0..len / PAGE_SIZE).map(move |i| start + i * PAGE_SIZE)
                    })
                    .collect(),
                false,
            ),
            _ => (
                (0..self.next / PAGE_SIZE).map(|i| i * PAGE_SIZE).collect(),
                true,
            ),
        };
        let mut written = 0u64;
        let mut i = 0;
        while i < frames.len() {
            let f = frames[i];
            if warm.contains(&f) || self.page_is_zero(base, f) {
                i += 1;
                continue;
            }
            // A run of adjacent pages to write at once.
            let mut j = i + 1;
            while j < frames.len()
                && frames[j] == frames[j - 1] + PAGE_SIZE
                && !warm.contains(&frames[j])
                && !self.page_is_zero(base, frames[j])
            {
                j += 1;
            }
            let (start, end) = (f, frames[j - 1] + PAGE_SIZE);
            let mut off = start;
            while off < end {
                // `base + off .. base + end` lies inside guest RAM (frames < size).
                let from = base.wrapping_add(off as usize);
                // SAFETY: `from .. from + (end - off)` is guest RAM (above); pwrite
                // only reads it.
                let n = unsafe {
                    libc::pwrite(fd, from.cast(), (end - off) as usize, off as libc::off_t)
                };
                if n <= 0 {
                    return Err(std::io::Error::last_os_error());
                }
                off += n as u64;
                written += n as u64;
            }
            i = j;
        }
        // Sealed: nothing changes the snapshot's memory any more (every mapping of it
        // is private).
        let seals =
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
        // The kernel refuses F_SEAL_WRITE (EBUSY) while a page of the file has a
        // reference besides its mappings, which the pages just written keep for a
        // moment in other CPUs' LRU batches: a loaded host saw it. Tried again a few
        // times, for at most about a second.
        let mut wait = std::time::Duration::from_millis(5);
        loop {
            // SAFETY: `fd` is the descriptor `memfd` owns, open for this whole call;
            // F_ADD_SEALS takes an integer and touches no memory of this process.
            if !seal || unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBUSY) || wait > std::time::Duration::from_millis(320)
            {
                return Err(e);
            }
            std::thread::sleep(wait);
            wait *= 2;
        }
        let layer = Layer {
            fd: memfd,
            whole,
            runs: if whole { Vec::new() } else { runs_of(&frames) },
            base: 0,
        };
        if whole {
            self.layers.clear();
        }
        map_layers(&self.ram, self.size, std::slice::from_ref(&layer))?;
        // A layer with nothing in it is not kept (a snapshot of a VM that did not
        // change since its last one).
        if layer.whole || !layer.runs.is_empty() {
            self.layers.push(layer);
        }
        self.cow = true;
        self.chunk_backed.set(false);
        Ok(written)
    }

    /// The frames that are no longer the layers' pages: anonymous in `pagemap`
    /// (present, not a file page). Frames given back since read as the layers' pages
    /// again: they are free, and zeroed when handed out (`alloc`). `None` when
    /// `pagemap` cannot be read.
    fn changed_frames(&self, base: *mut u8, pagemap: i32) -> Option<Vec<u64>> {
        let entries = pagemap_entries(base, self.next, pagemap)?;
        let out: Vec<u64> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| **e & (PM_PRESENT | PM_SWAPPED) != 0 && **e & PM_FILE == 0)
            .map(|(i, _)| i as u64 * PAGE_SIZE)
            .collect();
        Some(out)
    }

    /// This VM's layers (a snapshot's, for sandboxes started from it).
    pub(crate) fn layers(&self) -> Vec<Layer> {
        self.layers.clone()
    }

    fn page_is_zero(&self, base: *mut u8, f: u64) -> bool {
        // The frame lies inside guest RAM (`f < next <= size`), 8-byte aligned (page
        // aligned); the guest does not run while a snapshot is taken, so nothing
        // writes it while it is read here.
        let page = base.wrapping_add(f as usize).cast_const();
        // SAFETY: as above: `page` is a valid frame of guest RAM.
        is_zero(unsafe { std::slice::from_raw_parts(page, PAGE_SIZE as usize) })
    }

    /// A copy of this memory's accounting over `ram` (a private mapping of the
    /// snapshot's `layers`, see [`map_layers`]).
    pub(crate) fn snap_over(
        &self,
        m: &mut crate::snap::Memo,
        ram: GuestMemoryMmap,
        layers: Vec<Layer>,
    ) -> Result<Memory, crate::snap::SnapError> {
        Ok(Memory {
            ram,
            size: self.size,
            next: self.next,
            free: self.free.clone(),
            warm: self.warm.clone(),
            retired: self.retired.clone(),
            // A copy's RAM is the snapshot's file: nothing of its own is backed.
            retired_backed: false,
            reclaimed: self.reclaimed,
            chunk_backed: Cell::new(false),
            cache: self.cache.clone(),
            cache_skip: 0,
            extra: std::sync::Arc::clone(&self.extra),
            budget: crate::snap::Snap::snap(&self.budget, m)?,
            cow: true,
            layers,
        })
    }
}

// Saving to and loading from a file (`savefile`).
impl Budget {
    pub(crate) fn save(&self, e: &mut crate::savefile::wire::Enc) {
        for v in [
            self.total,
            self.used.get(),
            self.peak.get(),
            self.heap.get(),
        ] {
            e.u64(v);
        }
    }

    /// A budget read back; `pages` is the most the loading plan allows.
    pub(crate) fn load(
        d: &mut crate::savefile::wire::Dec<'_>,
        pages: u64,
    ) -> Result<Budget, crate::savefile::wire::WireError> {
        let total = d.u64("the memory budget")?;
        let (used, peak, heap) = (d.u64("budget")?, d.u64("budget")?, d.u64("budget")?);
        if total != pages || used > total || peak > total {
            return Err(crate::savefile::wire::bad(format!(
                "the memory budget ({used} of {total} pages) does not fit the sandbox's {pages} pages"
            )));
        }
        Ok(Budget {
            total,
            used: Cell::new(used),
            peak: Cell::new(peak),
            heap: Cell::new(heap),
        })
    }

    /// Sets the counters to `other`'s (after the filesystem was built over this one).
    pub(crate) fn set_from(&self, other: &Budget) {
        self.used.set(other.used.get());
        self.peak.set(other.peak.get());
        self.heap.set(other.heap.get());
    }

    /// Pages the sandbox may use.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

impl HeapCharge {
    /// A charge read back: already counted in the budget read back, not charged again.
    pub(crate) fn restored(budget: &Rc<Budget>, bytes: u64) -> HeapCharge {
        HeapCharge {
            budget: Rc::clone(budget),
            bytes,
        }
    }
}

impl Memory {
    /// The allocator's state (the RAM itself is saved apart, page by page).
    pub(crate) fn save(&self, e: &mut crate::savefile::wire::Enc) {
        e.u64(self.size);
        e.u64(self.next);
        for l in [&self.free, &self.warm, &self.retired] {
            e.seq(l.iter(), |e, f| e.u64(*f));
        }
        e.bool(self.reclaimed);
        e.seq(self.cache.entries().iter(), |e, (k, f)| {
            save_key(e, k);
            e.u64(*f);
        });
        e.seq(self.extra.iter(), |e, (f, n)| {
            e.u64(*f);
            e.u32(*n);
        });
    }

    /// Reads the allocator's state back over `ram` (`size` bytes mapped from the file
    /// as `layers`). Every frame must lie inside the RAM and be page aligned.
    pub(crate) fn load(
        d: &mut crate::savefile::wire::Dec<'_>,
        ram: GuestMemoryMmap,
        layers: Vec<Layer>,
        budget: Rc<Budget>,
    ) -> Result<Memory, crate::savefile::wire::WireError> {
        use crate::savefile::wire::bad;
        let size = d.u64("the memory size")?;
        let frame = |f: u64| -> Result<u64, crate::savefile::wire::WireError> {
            if f % PAGE_SIZE == 0 && f < size {
                Ok(f)
            } else {
                Err(bad(format!(
                    "a frame at {f:#x} is outside guest memory ({size:#x} bytes)"
                )))
            }
        };
        let next = d.u64("memory")?;
        if next > size || next % PAGE_SIZE != 0 {
            return Err(bad(format!(
                "the memory's first unused frame {next:#x} is out of bounds"
            )));
        }
        let pages = (size / PAGE_SIZE) as usize;
        let mut lists = Vec::new();
        for what in ["free frames", "warm frames", "retired frames"] {
            lists.push(d.seq(pages, what, |d| frame(d.u64(what)?))?);
        }
        let reclaimed = d.bool("memory")?;
        let cache = PageIndex::loaded(d.seq(pages, "the page cache", |d| {
            let k = load_key(d)?;
            Ok((k, frame(d.u64("the page cache")?)?))
        })?);
        let extra: HashMap<u64, u32> = d
            .seq(pages, "shared frames", |d| {
                Ok((frame(d.u64("shared frames")?)?, d.u32("shared frames")?))
            })?
            .into_iter()
            .collect();
        let retired = lists.pop().unwrap_or_default();
        let warm = lists.pop().unwrap_or_default();
        let free = lists.pop().unwrap_or_default();
        Ok(Memory {
            ram,
            size,
            next,
            free,
            warm,
            retired,
            retired_backed: false,
            reclaimed,
            chunk_backed: Cell::new(false),
            cache,
            cache_skip: 0,
            extra: std::sync::Arc::new(extra),
            budget,
            cow: true,
            layers,
        })
    }
}

fn save_key(e: &mut crate::savefile::wire::Enc, k: &PageKey) {
    let f = &k.file;
    for v in [f.dev, f.ino, f.size] {
        e.u64(v);
    }
    for (s, n) in [f.mtime, f.ctime] {
        e.i64(s);
        e.i64(n);
    }
    e.u64(k.offset);
    e.u32(k.len);
}

fn load_key(
    d: &mut crate::savefile::wire::Dec<'_>,
) -> Result<PageKey, crate::savefile::wire::WireError> {
    let w = "the page cache";
    Ok(PageKey {
        file: FileKey {
            dev: d.u64(w)?,
            ino: d.u64(w)?,
            size: d.u64(w)?,
            mtime: (d.i64(w)?, d.i64(w)?),
            ctime: (d.i64(w)?, d.i64(w)?),
        },
        offset: d.u64(w)?,
        len: d.u32(w)?.min(PAGE_SIZE as u32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_accounted_and_reused_zeroed() {
        let mut m = Memory::new(2 << 20).unwrap();
        let fixed = FIXED_END / PAGE_SIZE;
        let total = (2 << 20) / PAGE_SIZE;
        let mut got = Vec::new();
        while let Ok(f) = m.alloc() {
            got.push(f);
        }
        assert_eq!(got.len() as u64, total - fixed);
        assert_eq!(m.alloc(), Err(OutOfMemory));
        m.write_u64(got[3], 0xdead_beef).unwrap();
        let f3 = got[3];
        m.free(vec![f3]);
        assert_eq!(m.used_bytes(), (total - 1) * PAGE_SIZE);
        let again = m.alloc().unwrap();
        assert_eq!(again, f3);
        assert_eq!(m.read_u64(again), Some(0), "a reused frame reads as zero");
        assert_eq!(m.peak_bytes(), total * PAGE_SIZE);
    }

    /// Page `i` of a file of `size` bytes, as the page cache keys it.
    fn page_of(size: u64, i: u64) -> PageKey {
        PageKey {
            file: FileKey {
                dev: 1,
                ino: 2,
                size,
                mtime: (4, 5),
                ctime: (6, 7),
            },
            offset: i * PAGE_SIZE,
            len: PAGE_SIZE as u32,
        }
    }

    /// A page cache read back from a snapshot file answers as the one saved, before
    /// and after its index is built (at the first change), and saves again the same.
    #[test]
    fn a_page_cache_read_back_answers_as_the_saved_one() {
        let mut m = Memory::new(4 << 20).unwrap();
        let key = |i: u64| page_of(3 * PAGE_SIZE, i);
        for i in 0..3 {
            assert!(m.cache_put_copy(key(i), &[i as u8 + 1; PAGE_SIZE as usize]));
        }
        let mut e = crate::savefile::wire::Enc::default();
        m.save(&mut e);
        let ram = guest_ram(4 << 20).unwrap();
        let mut d = crate::savefile::wire::Dec::new(&e.buf);
        let mut back = Memory::load(&mut d, ram, Vec::new(), m.budget()).unwrap();
        assert_eq!(back.cached_frames(), 3);
        assert!(
            back.cache.maps.get().is_none(),
            "built only when first looked at"
        );
        for i in 0..3 {
            assert_eq!(back.cache_peek(&key(i)), m.cache_peek(&key(i)), "page {i}");
        }
        assert_eq!(back.cache_peek(&key(3)), None);
        let sorted = |m: &Memory| {
            let mut v = m.cache.entries();
            v.sort_by_key(|&(_, f)| f);
            v
        };
        assert_eq!(sorted(&back), sorted(&m), "what it saves again");
        // A change builds the index: the answers stay.
        let f = back.cache_get(&key(1)).unwrap().unwrap();
        assert_eq!(Some(f), m.cache_peek(&key(1)));
        assert!(back.is_shared(f) || back.cached_frames() == 3);
        back.free(vec![f]);
        back.evict_idle();
        assert_eq!(back.cached_frames(), 0, "every cached page was idle");
        assert_eq!(back.cache_peek(&key(0)), None);
    }

    /// A cache full of mapped pages refuses new ones; a walk for idle pages that finds
    /// too few is followed by an eighth of the cache's size of pages refused without a
    /// walk (a walk at each page made large programs' faults cost milliseconds); then
    /// the idle pages go and new ones are kept again.
    #[test]
    fn a_full_cache_of_mapped_pages_is_not_walked_at_every_page() {
        let mut m = Memory::new(32 << 20).unwrap();
        let key = |i: usize| page_of(1 << 30, i as u64);
        let mut held = Vec::new();
        for i in 0..CACHE_MAX {
            let f = m.alloc().unwrap();
            m.cache_put(key(i), f);
            held.push(f);
        }
        assert_eq!(m.cached_frames(), CACHE_MAX);
        let put = |m: &mut Memory, i: usize| {
            let f = m.alloc().unwrap();
            m.cache_put(key(i), f);
            m.cache_peek(&key(i)).is_some()
        };
        assert!(!put(&mut m, CACHE_MAX), "full of mapped pages");
        // A thousand pages are unmapped: idle, but not looked for yet.
        m.free(held.drain(..1000).collect());
        let mut next = CACHE_MAX + 1;
        for _ in 0..CACHE_MAX / 8 {
            assert!(!put(&mut m, next), "page {next} was cached");
            next += 1;
        }
        assert_eq!(m.cached_frames(), CACHE_MAX, "no walk: the idle pages stay");
        assert!(put(&mut m, next), "the walk after the pause makes room");
        assert_eq!(m.cached_frames(), CACHE_MAX - 1000 + 1);
        assert!(put(&mut m, next + 1));
    }

    #[test]
    fn freed_frames_stay_warm_until_trimmed() {
        let mut m = Memory::new(4 << 20).unwrap();
        let f = m.alloc().unwrap();
        m.write_u64(f, 7).unwrap();
        m.free(vec![f]);
        assert!(m.needs_trim());
        assert_eq!(m.read_u64(f), Some(7), "a warm frame keeps its host page");
        assert_eq!(m.alloc().unwrap(), f, "warm frames are reused first");
        assert_eq!(m.read_u64(f), Some(0), "and handed out zeroed");
        m.write_u64(f, 9).unwrap();
        m.free(vec![f]);
        m.trim();
        assert!(!m.needs_trim());
        assert_eq!(m.read_u64(f), Some(0), "trimmed: given back to the host");
        assert_eq!(m.alloc().unwrap(), f);
    }

    #[test]
    fn retired_frames_come_back_only_with_a_reload() {
        let mut m = Memory::new(2 << 20).unwrap();
        let mut got = Vec::new();
        while let Ok(f) = m.alloc() {
            got.push(f);
        }
        let used = m.used_bytes();
        let tables: Vec<u64> = got.drain(..4).collect();
        m.write_u64(tables[0], 0xdead).unwrap();
        m.retire(tables.clone());
        assert_eq!(
            m.used_bytes(),
            used - 4 * PAGE_SIZE,
            "retired frames are not charged"
        );
        assert!(!m.take_reclaimed());
        // Frames ran out: the retired ones come back, and a reload is due.
        let again = m.alloc().unwrap();
        assert!(tables.contains(&again));
        assert_eq!(m.read_u64(again), Some(0));
        assert!(m.take_reclaimed());
        assert!(!m.take_reclaimed(), "asked once");
        // Every retired frame that came back is handed out zeroed.
        for _ in 1..tables.len() {
            let f = m.alloc().unwrap();
            assert!(tables.contains(&f));
            assert_eq!(m.read_u64(f), Some(0));
        }
    }

    #[test]
    fn retired_frames_go_to_the_host_at_the_next_trim() {
        let mut m = Memory::new(4 << 20).unwrap();
        let tables: Vec<u64> = (0..3).map(|_| m.alloc().unwrap()).collect();
        for &f in &tables {
            m.write_u64(f, 0xdead).unwrap();
        }
        m.trim();
        assert!(!m.needs_trim());
        m.retire(tables.clone());
        assert!(m.needs_trim(), "an idle sandbox gives them back");
        m.trim();
        assert!(!m.needs_trim());
        for &f in &tables {
            assert_eq!(m.read_u64(f), Some(0), "not backed any more");
        }
        assert!(!m.take_reclaimed(), "and still not reusable");
    }

    #[test]
    fn charges_share_the_budget() {
        let mut m = Memory::new(2 << 20).unwrap();
        let avail = (2 << 20) / PAGE_SIZE - FIXED_END / PAGE_SIZE;
        let b = m.budget();
        b.charge(avail - 1).unwrap();
        assert!(m.alloc().is_ok());
        assert_eq!(m.alloc(), Err(OutOfMemory));
        assert_eq!(b.charge(1), Err(OutOfMemory));
        b.uncharge(10);
        assert!(m.alloc().is_ok());
    }
}
