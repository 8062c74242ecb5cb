use super::*;
use crate::guest::layout::PML4_GPA;

fn space() -> AddressSpace {
    let mut mem = Memory::new(8 << 20).unwrap();
    let pt = crate::guest::build_supervisor(&mut mem).unwrap();
    assert_eq!(pt.root(), PML4_GPA);
    let mut a = AddressSpace::new(mem, pt);
    a.set_layout(0x100_0000, 0x7f00_0000_0000);
    a
}

#[test]
fn demand_paging_and_uaccess() {
    let mut a = space();
    let at = a
        .mmap(
            0,
            3 * PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            Fixed::Hint,
            false,
            VmaKind::Anon,
        )
        .unwrap();
    assert!(at < 0x7f00_0000_0000 && at % PAGE_SIZE == 0);
    a.write_user(at + 10, b"hello").unwrap();
    let mut b = [0u8; 5];
    a.read_user(at + 10, &mut b).unwrap();
    assert_eq!(&b, b"hello");
    assert_eq!(a.read_cstr(at + 10, 100).unwrap(), b"hello");
    assert_eq!(a.read_cstr(at + 10, 3), Err(CStrError::TooLong));
    // Unmapped and out-of-range pointers are faults, not errors of the VMM.
    assert_eq!(a.read_user(0, &mut b), Err(UserError::Fault));
    assert_eq!(a.read_user(u64::MAX - 2, &mut b), Err(UserError::Fault));
    assert_eq!(
        a.write_user(crate::guest::layout::STUB_VA, b"x"),
        Err(UserError::Fault)
    );
    assert!(a.take_flush().is_empty(), "nothing live was changed");
}

#[test]
fn read_only_pages_refuse_writes_and_unmap_flushes() {
    let mut a = space();
    let at = a
        .mmap(
            0,
            PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            Fixed::Hint,
            false,
            VmaKind::Anon,
        )
        .unwrap();
    a.write_user(at, b"x").unwrap();
    a.mprotect(at, PAGE_SIZE, PROT_READ).unwrap();
    assert_eq!(
        a.take_flush().len(),
        1,
        "a live entry lost a right: the guest must rewrite it"
    );
    assert_eq!(a.write_user(at, b"y"), Err(UserError::Fault));
    assert_eq!(a.fault(at, Access::Write), FaultOutcome::Segv(SEGV_ACCERR));
    let used = a.mem.used_bytes();
    a.munmap(at, PAGE_SIZE).unwrap();
    assert_eq!(a.take_flush().len(), 1);
    assert_eq!(a.mem.used_bytes(), used - PAGE_SIZE, "the frame went back");
    assert_eq!(a.fault(at, Access::Read), FaultOutcome::Segv(SEGV_MAPERR));
}

#[test]
fn entries_that_only_gained_rights_on_their_frame_are_not_rewritten() {
    let mut a = space();
    let at = a
        .mmap(
            0,
            2 * PAGE_SIZE,
            PROT_READ,
            Fixed::Hint,
            false,
            VmaKind::Anon,
        )
        .unwrap();
    a.populate(at, at + 2 * PAGE_SIZE).unwrap();
    let frame = |a: &mut AddressSpace| a.pt.lookup(&mut a.mem, at).map(|(_, p)| p & PTE_ADDR);
    let before = frame(&mut a);
    assert!(a.take_flush().is_empty(), "new entries: nothing to rewrite");
    // Widened on the same frames: an old translation reaches the same frame with
    // fewer rights, and a refused access faults and is fixed there.
    a.mprotect(at, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC)
        .unwrap();
    assert_eq!(frame(&mut a), before);
    assert!(a.take_flush().is_empty(), "widened: nothing to rewrite");
    // Narrowed: each live entry lost a right and must be rewritten.
    a.mprotect(at, 2 * PAGE_SIZE, PROT_READ).unwrap();
    assert_eq!(a.take_flush().len(), 2);
    // The page-table walk shows an old translation was used: always rewritten, even
    // though the entry now holds what it held.
    a.mprotect(at, PAGE_SIZE, PROT_READ | PROT_WRITE).unwrap();
    assert!(a.take_flush().is_empty());
    assert_eq!(a.fault(at, Access::Write), FaultOutcome::Mapped);
    assert_eq!(a.take_flush().len(), 1, "a fault on an allowed page");
    // Unmapped, or mapped again elsewhere (another frame): rewritten.
    a.mmap(
        at,
        PAGE_SIZE,
        PROT_READ,
        Fixed::Replace,
        false,
        VmaKind::Anon,
    )
    .unwrap();
    a.munmap(at + PAGE_SIZE, PAGE_SIZE).unwrap();
    assert_eq!(a.take_flush().len(), 2);
}

#[test]
fn what_an_old_translation_may_keep() {
    let f = 0x5000 | PTE_FRAME;
    let r = f | PTE_P | PTE_U | PTE_A | PTE_D | PTE_NX;
    let rw = r | PTE_W;
    let rx = r & !PTE_NX;
    assert!(covers(r, r));
    assert!(covers(rw, r), "write added");
    assert!(covers(rx, r), "execute added");
    assert!(!covers(r, rw), "write lost");
    assert!(!covers(r, rx), "execute lost");
    assert!(!covers(r & !PTE_A, r), "accessed lost");
    assert!(!covers(r & !PTE_P, r), "no longer present");
    assert!(!covers(0, r), "unmapped");
    assert!(!covers(r, 0), "nothing known of what was cached");
    assert!(!covers((r & !PTE_ADDR) | 0x6000, r), "another frame");
    assert!(!covers(r & !PTE_U, r), "no longer a user page");
    assert!(!covers(r | pagetable::PTE_PS, r), "another page size");
}

#[test]
fn prot_none_keeps_contents() {
    let mut a = space();
    let at = a
        .mmap(
            0,
            PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            Fixed::Hint,
            false,
            VmaKind::Anon,
        )
        .unwrap();
    a.write_user(at, b"kept").unwrap();
    a.mprotect(at, PAGE_SIZE, 0).unwrap();
    assert_eq!(a.read_user_vec(at, 4), Err(UserError::Fault));
    a.mprotect(at, PAGE_SIZE, PROT_READ).unwrap();
    assert_eq!(a.read_user_vec(at, 4).unwrap(), b"kept");
}

#[test]
fn brk_grows_and_shrinks() {
    let mut a = space();
    assert_eq!(a.set_brk(0).unwrap(), 0x100_0000);
    assert_eq!(a.set_brk(0x100_2345).unwrap(), 0x100_2345);
    a.write_user(0x100_2000, b"heap").unwrap();
    assert_eq!(a.set_brk(0x100_0000).unwrap(), 0x100_0000);
    assert_eq!(a.read_user_vec(0x100_0000, 1), Err(UserError::Fault));
}

#[test]
fn memory_runs_out_cleanly() {
    let mut a = space();
    let at = a
        .mmap(
            0,
            64 << 20,
            PROT_READ | PROT_WRITE,
            Fixed::Hint,
            false,
            VmaKind::Anon,
        )
        .unwrap();
    let mut p = at;
    let outcome = loop {
        match a.fault(p, Access::Write) {
            FaultOutcome::Mapped => p += PAGE_SIZE,
            other => break other,
        }
    };
    assert_eq!(outcome, FaultOutcome::Oom);
    assert!(a.mem.used_bytes() <= 8 << 20);
}

#[test]
fn mremap_moves_contents() {
    let mut a = space();
    let at = a
        .mmap(
            0,
            PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            Fixed::Hint,
            false,
            VmaKind::Anon,
        )
        .unwrap();
    a.write_user(at, b"moved").unwrap();
    // Block in-place growth.
    a.mmap(
        at + PAGE_SIZE,
        PAGE_SIZE,
        PROT_READ,
        Fixed::Replace,
        false,
        VmaKind::Anon,
    )
    .unwrap();
    let to = a
        .mremap(at, PAGE_SIZE, 4 * PAGE_SIZE, true, u64::MAX)
        .unwrap();
    assert_ne!(to, at);
    assert_eq!(a.read_user_vec(to, 5).unwrap(), b"moved");
    assert_eq!(a.read_user_vec(at, 1), Err(UserError::Fault));
}

#[derive(Debug)]
struct Zeros;

impl Backing for Zeros {
    fn read_at(&self, _: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        buf.fill(0);
        Ok(buf.len())
    }
}

/// A host file's contents with a settable version.
#[derive(Debug)]
struct Versioned {
    data: std::cell::RefCell<Vec<u8>>,
    ctime: std::cell::Cell<i64>,
    reads: std::cell::Cell<u32>,
}

impl Backing for Versioned {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reads.set(self.reads.get() + 1);
        let d = self.data.borrow();
        let off = (off as usize).min(d.len());
        let n = buf.len().min(d.len() - off);
        buf[..n].copy_from_slice(&d[off..off + n]);
        Ok(n)
    }
    fn cache_key(&self) -> Option<crate::memory::FileKey> {
        Some(crate::memory::FileKey {
            dev: 1,
            ino: 2,
            size: self.data.borrow().len() as u64,
            mtime: (0, 0),
            ctime: (self.ctime.get(), 0),
        })
    }
}

#[test]
fn a_library_mapped_over_its_reservation_keeps_the_cached_frames() {
    let mut a = space();
    let file = std::rc::Rc::new(Versioned {
        data: std::cell::RefCell::new((0..4 * PAGE_SIZE).map(|i| (i / PAGE_SIZE) as u8).collect()),
        ctime: std::cell::Cell::new(1),
        reads: std::cell::Cell::new(0),
    });
    let kind = |offset: u64| VmaKind::File {
        backing: file.clone(),
        offset,
        file_end: u64::MAX,
    };
    let base = 0x40_0000;
    let frame_at = |a: &mut AddressSpace, va: u64| a.pt.lookup(&mut a.mem, va).map(|(_, p)| p);
    // The reservation (the whole file, read-only) with its pages cached and mapped.
    a.mmap(
        base,
        4 * PAGE_SIZE,
        PROT_READ,
        Fixed::Replace,
        false,
        kind(0),
    )
    .unwrap();
    a.populate(base, base + 4 * PAGE_SIZE).unwrap();
    let (p1, p2, p3) = (
        frame_at(&mut a, base + PAGE_SIZE).unwrap(),
        frame_at(&mut a, base + 2 * PAGE_SIZE).unwrap(),
        frame_at(&mut a, base + 3 * PAGE_SIZE).unwrap(),
    );
    a.take_flush();
    let used = a.mem.used_bytes();
    // Its text over pages 1..3, at the file offset of the same pages, executable: the
    // same frames, with execute added, nothing for the guest to rewrite.
    a.mmap(
        base + PAGE_SIZE,
        2 * PAGE_SIZE,
        PROT_READ | PROT_EXEC,
        Fixed::Replace,
        false,
        kind(PAGE_SIZE),
    )
    .unwrap();
    let t1 = frame_at(&mut a, base + PAGE_SIZE).unwrap();
    assert_eq!(t1 & PTE_ADDR, p1 & PTE_ADDR, "the cached frame stays");
    assert_eq!(t1 & PTE_NX, 0, "with the new mapping's rights");
    assert_eq!(
        frame_at(&mut a, base + 2 * PAGE_SIZE).unwrap() & PTE_ADDR,
        p2 & PTE_ADDR
    );
    assert!(a.take_flush().is_empty(), "only rights were added");
    assert_eq!(a.mem.used_bytes(), used, "no frame taken or given back");
    assert_eq!(a.read_user_vec(base + 2 * PAGE_SIZE, 1).unwrap(), [2]);
    // Another file offset at the same place: other frames, the old entry dropped.
    a.mmap(
        base + 3 * PAGE_SIZE,
        PAGE_SIZE,
        PROT_READ,
        Fixed::Replace,
        false,
        kind(0),
    )
    .unwrap();
    assert_ne!(
        frame_at(&mut a, base + 3 * PAGE_SIZE).map(|p| p & PTE_ADDR),
        Some(p3 & PTE_ADDR)
    );
    assert_eq!(a.take_flush().len(), 1);
    a.populate(base + 3 * PAGE_SIZE, base + 4 * PAGE_SIZE)
        .unwrap();
    assert_eq!(a.read_user_vec(base + 3 * PAGE_SIZE, 1).unwrap(), [0]);
    // A writable mapping over it: its own copies, never the cache's frames.
    a.mmap(
        base + PAGE_SIZE,
        PAGE_SIZE,
        PROT_READ | PROT_WRITE,
        Fixed::Replace,
        false,
        kind(PAGE_SIZE),
    )
    .unwrap();
    assert!(frame_at(&mut a, base + PAGE_SIZE).is_none_or(|p| p & PTE_ADDR != p1 & PTE_ADDR));
    assert_eq!(a.take_flush().len(), 1);
}

#[test]
fn file_pages_are_cached_per_version_and_never_written() {
    let mut a = space();
    let file = std::rc::Rc::new(Versioned {
        data: std::cell::RefCell::new(vec![b'a'; 3 * PAGE_SIZE as usize]),
        ctime: std::cell::Cell::new(1),
        reads: std::cell::Cell::new(0),
    });
    let map = |a: &mut AddressSpace, prot: u32| {
        a.mmap(
            0x40_0000,
            3 * PAGE_SIZE,
            prot,
            Fixed::Replace,
            false,
            VmaKind::File {
                backing: file.clone(),
                offset: 0,
                file_end: u64::MAX,
            },
        )
        .unwrap()
    };
    // A first process reads the file (text, read-only).
    let first = a.space();
    let at = map(&mut a, PROT_READ | PROT_EXEC);
    assert_eq!(a.read_user_vec(at, 1).unwrap(), b"a");
    let reads = file.reads.get();
    assert!(reads > 0);
    // A second process maps it again: the pages are there before any fault, and the
    // file is not read again.
    let second = a.new_space().unwrap();
    assert!(a.switch(second));
    let at = map(&mut a, PROT_READ | PROT_EXEC);
    a.prefault_cached(at, at + 3 * PAGE_SIZE);
    assert!(
        a.has_frame(at) && a.has_frame(at + 2 * PAGE_SIZE),
        "prefaulted"
    );
    assert_eq!(a.read_user_vec(at + 2 * PAGE_SIZE, 1).unwrap(), b"a");
    assert_eq!(file.reads.get(), reads, "no read: the cache answered");
    // It makes its text writable and writes: its own copy, not the cache's.
    a.mprotect(at, PAGE_SIZE, PROT_READ | PROT_WRITE).unwrap();
    a.write_user(at, b"X").unwrap();
    assert_eq!(a.read_user_vec(at, 1).unwrap(), b"X");
    // A writable private mapping of the file gets a private copy at once.
    let data = map(&mut a, PROT_READ | PROT_WRITE);
    a.prefault_cached(data, data + PAGE_SIZE);
    a.write_user(data + 1, b"Y").unwrap();
    assert!(a.switch(first));
    a.release(second);
    // A third process sees the file, not what the second one wrote.
    let third = a.new_space().unwrap();
    assert!(a.switch(third));
    let at = map(&mut a, PROT_READ | PROT_EXEC);
    a.prefault_cached(at, at + 3 * PAGE_SIZE);
    assert_eq!(a.read_user_vec(at, 2).unwrap(), b"aa");
    assert_eq!(file.reads.get(), reads);
    // The file changes (another version): nothing cached is found, the new contents
    // are read.
    file.data.borrow_mut()[0] = b'b';
    file.ctime.set(2);
    let at = map(&mut a, PROT_READ | PROT_EXEC);
    a.prefault_cached(at, at + 3 * PAGE_SIZE);
    assert!(!a.has_frame(at), "no page of another version");
    assert_eq!(a.read_user_vec(at, 1).unwrap(), b"b");
    assert!(file.reads.get() > reads);
    // Frames only the cache holds are not the workload's: they go when frames run out.
    assert!(a.mem.cached_frames() > 0);
    let used = a.mem.used_bytes();
    assert!(a.switch(first));
    a.release(third);
    assert!(a.mem.used_bytes() < used);
    a.mem.evict_idle();
    assert_eq!(
        a.mem.cached_frames(),
        3,
        "only the pages the first process still maps stay cached"
    );
}

#[test]
fn fork_shares_pages_copy_on_write() {
    let mut a = space();
    let at = a
        .mmap(
            0,
            2 * PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            Fixed::Hint,
            false,
            VmaKind::Anon,
        )
        .unwrap();
    let shm = a
        .mmap(
            0,
            PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            Fixed::Hint,
            false,
            VmaKind::SharedFile {
                pages: std::rc::Rc::new(SharedPages {
                    file: std::rc::Rc::new(Zeros),
                    frames: Default::default(),
                }),
                offset: 0,
            },
        )
        .unwrap();
    a.write_user(at, b"parent").unwrap();
    a.write_user(shm, b"shared").unwrap();
    a.take_flush();
    let before = a.mem.used_bytes();
    let parent = a.space();
    let child = a.fork().unwrap();
    assert!(!a.take_flush().is_empty(), "the parent lost write access");
    let after_fork = a.mem.used_bytes();
    assert!(after_fork > before, "page tables only");
    // The child's page tables, and what the VMM's copy of its mappings costs.
    assert!(after_fork - before < 9 * PAGE_SIZE);

    assert!(a.switch(child));
    assert_eq!(a.read_user_vec(at, 6).unwrap(), b"parent");
    a.write_user(at, b"child!").unwrap();
    a.write_user(shm, b"SHARED").unwrap();
    assert_eq!(
        a.mem.used_bytes(),
        after_fork + PAGE_SIZE,
        "one page copied"
    );
    assert!(a.switch(parent));
    assert_eq!(a.read_user_vec(at, 6).unwrap(), b"parent");
    assert_eq!(
        a.read_user_vec(shm, 6).unwrap(),
        b"SHARED",
        "MAP_SHARED stays shared"
    );
    // The parent's page is its own again: writing it copies nothing.
    a.write_user(at, b"mine").unwrap();
    assert_eq!(a.mem.used_bytes(), after_fork + PAGE_SIZE);
    a.release(child);
    assert!(
        !a.take_reload(),
        "the child's tables are retired: no reload until many pile up"
    );
    assert_eq!(
        a.mem.used_bytes(),
        before,
        "the child's frames and tables went back"
    );
    assert_eq!(a.spaces(), 1);
}

/// Guest structures cross in one checked copy of exactly their size: a structure that
/// runs into an unmapped page is `EFAULT` as a whole, arrays are bounded before
/// anything is read or allocated, and extensible structures follow Linux's
/// `copy_struct_from_user`.
#[test]
fn typed_user_access() {
    use crate::abi::{OpenHow, Timespec};
    let mut a = space();
    let at = a
        .mmap(
            0,
            PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            Fixed::Hint,
            false,
            VmaKind::Anon,
        )
        .unwrap();
    let ts = Timespec {
        tv_sec: 7,
        tv_nsec: 9,
    };
    a.write(UserPtr::new(at), &ts).unwrap();
    assert_eq!(a.read(UserPtr::<Timespec>::new(at)), Ok(ts));
    // The last 8 bytes of the page are mapped, the rest of the structure is not.
    let edge = UserPtr::<Timespec>::new(at + PAGE_SIZE - 8);
    assert_eq!(a.read(edge), Err(UserError::Fault));
    assert_eq!(a.write(edge, &ts), Err(UserError::Fault));
    let mut tail = [0u8; 8];
    a.read_user(at + PAGE_SIZE - 8, &mut tail).unwrap();
    assert_eq!(tail, [0; 8], "a failed write wrote nothing");
    // Arrays: a count beyond the call's bound is refused before any read.
    let arr = a.read_array(UserPtr::<Timespec>::new(at), 2, 4).unwrap();
    assert_eq!(arr[0], ts);
    assert_eq!(
        a.read_array(UserPtr::<Timespec>::new(at), u64::MAX, 1024),
        Err(ArrayError::TooMany)
    );
    assert_eq!(
        a.read_array(UserPtr::<Timespec>::new(at), 300, 1024),
        Err(ArrayError::User(UserError::Fault))
    );
    // Extensible structures: too small, too big, trailing garbage, an older version.
    let how = UserPtr::<OpenHow>::new(at);
    a.write_user(at, &[0u8; 64]).unwrap();
    assert_eq!(a.read_sized(how, 16, 24), Err(SizedError::TooSmall));
    assert_eq!(
        a.read_sized(how, PAGE_SIZE + 1, 24),
        Err(SizedError::TooBig)
    );
    assert!(
        a.read_sized(how, 64, 24).is_ok(),
        "zeros beyond it are fine"
    );
    a.write_user(at + 40, b"x").unwrap();
    assert_eq!(a.read_sized(how, 64, 24), Err(SizedError::TooBig));
    assert_eq!(a.read_sized(how, PAGE_SIZE, 24), Err(SizedError::TooBig));
    a.write_user(at, &1u64.to_le_bytes()).unwrap();
    assert_eq!(a.read_sized(how, 24, 24).unwrap().flags, 1);
}

/// A file's bytes, each telling its offset apart from its neighbours and its page.
fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + i / 4096) % 251) as u8).collect()
}

/// A fault window of a private file mapping, read in one call (host files) or a page
/// at a time (the default): every page holds the file's bytes, zeros after a
/// segment's end, and a page past the end of a mapped file is not mapped (SIGBUS).
fn check_file_window(backing: std::rc::Rc<dyn Backing>, data: &[u8]) {
    let mut a = space();
    let pages = 10;
    // An `mmap` of the file: the file's own end.
    let at = a
        .mmap(
            0x40_0000,
            pages * PAGE_SIZE,
            PROT_READ,
            Fixed::Replace,
            false,
            VmaKind::File {
                backing: backing.clone(),
                offset: PAGE_SIZE,
                file_end: u64::MAX,
            },
        )
        .unwrap();
    // A fault in the middle maps its neighbours too.
    let tail = &data[PAGE_SIZE as usize..];
    assert_eq!(
        a.read_user_vec(at + 2 * PAGE_SIZE + 5, 1).unwrap(),
        [tail[2 * 4096 + 5]]
    );
    assert!(a.has_frame(at) && a.has_frame(at + 4 * PAGE_SIZE), "window");
    let whole = tail.len().next_multiple_of(PAGE_SIZE as usize);
    let got = a.read_user_vec(at, whole).unwrap();
    assert_eq!(&got[..tail.len()], tail, "the file's bytes");
    assert!(
        got[tail.len()..].iter().all(|&b| b == 0),
        "zeros after the end"
    );
    assert_eq!(
        a.read_user_vec(at + whole as u64, 1),
        Err(UserError::Fault),
        "past the end of the file"
    );
    // An ELF segment: the file up to `file_end`, then zeros (its .bss), no SIGBUS.
    let seg_end = PAGE_SIZE + 2 * PAGE_SIZE + 10;
    let at = a
        .mmap(
            0x80_0000,
            5 * PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            Fixed::Replace,
            false,
            VmaKind::File {
                backing,
                offset: PAGE_SIZE,
                file_end: seg_end,
            },
        )
        .unwrap();
    let got = a.read_user_vec(at + PAGE_SIZE, 1).unwrap();
    assert_eq!(got, [data[2 * 4096]]);
    let got = a.read_user_vec(at, 5 * PAGE_SIZE as usize).unwrap();
    let n = (seg_end - PAGE_SIZE) as usize;
    assert_eq!(&got[..n], &data[4096..4096 + n]);
    assert!(
        got[n..].iter().all(|&b| b == 0),
        "a segment's tail is zeros"
    );
    // Its pages are the mapping's own: a write changes nothing in the file's cache.
    a.write_user(at, b"W").unwrap();
    assert_eq!(a.read_user_vec(at, 1).unwrap(), b"W");
}

#[test]
fn file_windows_read_the_file_exactly() {
    let data = patterned(6 * PAGE_SIZE as usize + 100);
    // Through the default, a page at a time.
    let file = std::rc::Rc::new(Versioned {
        data: std::cell::RefCell::new(data.clone()),
        ctime: std::cell::Cell::new(1),
        reads: std::cell::Cell::new(0),
    });
    check_file_window(file, &data);
    // A host file: one `preadv` a run of pages.
    let path = std::env::temp_dir().join(format!("hsb-window-{}", std::process::id()));
    std::fs::write(&path, &data).unwrap();
    let fd = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let host = crate::vfs::backing::HostBacking(crate::vfs::host::HostFd::setup(fd.into()));
    check_file_window(std::rc::Rc::new(host), &data);
}

/// As Linux: `mprotect` changes the mappings from its start up to the first hole and
/// then fails (`ENOMEM`), keeping what it changed; starting in a hole it changes
/// nothing. `mremap` shrinks or keeps a range whatever lies past its mapping, and grows
/// only a range inside one mapping. Pieces of one shared mapping merge back into one
/// when their rights agree again, as Linux merges them.
#[test]
fn mprotect_stops_at_a_hole_and_mremap_checks_only_growth() {
    let mut a = space();
    let shared = || VmaKind::SharedFile {
        pages: std::rc::Rc::new(SharedPages {
            file: std::rc::Rc::new(Zeros),
            frames: Default::default(),
        }),
        offset: 0,
    };
    let rw = PROT_READ | PROT_WRITE;
    let at = a
        .mmap(0, 8 * PAGE_SIZE, rw, Fixed::Hint, false, VmaKind::Anon)
        .unwrap();
    a.munmap(at + 4 * PAGE_SIZE, PAGE_SIZE).unwrap();
    let prot_at = |a: &AddressSpace, va: u64| a.vma_at(va).map(|(_, v)| v.prot);
    assert_eq!(
        a.mprotect(at + PAGE_SIZE, 6 * PAGE_SIZE, PROT_READ),
        Err(MapError::Errno(libc::ENOMEM))
    );
    assert_eq!(prot_at(&a, at), Some(rw));
    assert_eq!(
        prot_at(&a, at + 3 * PAGE_SIZE),
        Some(PROT_READ),
        "changed up to the hole"
    );
    assert_eq!(prot_at(&a, at + 5 * PAGE_SIZE), Some(rw), "nothing past it");
    assert_eq!(
        a.mprotect(at + 4 * PAGE_SIZE, 2 * PAGE_SIZE, PROT_READ),
        Err(MapError::Errno(libc::ENOMEM))
    );
    assert_eq!(
        prot_at(&a, at + 5 * PAGE_SIZE),
        Some(rw),
        "a start in a hole: nothing"
    );

    // Shrinking over the hole unmaps the tail; growing across it is EFAULT.
    assert_eq!(
        a.mremap(
            at + 2 * PAGE_SIZE,
            4 * PAGE_SIZE,
            5 * PAGE_SIZE,
            true,
            u64::MAX
        ),
        Err(MapError::Errno(libc::EFAULT))
    );
    assert_eq!(
        a.mremap(
            at + 2 * PAGE_SIZE,
            4 * PAGE_SIZE,
            PAGE_SIZE,
            false,
            u64::MAX
        ),
        Ok(at + 2 * PAGE_SIZE)
    );
    assert!(a.vma_at(at + 3 * PAGE_SIZE).is_none() && a.vma_at(at + 5 * PAGE_SIZE).is_none());
    assert!(
        a.vma_at(at + 6 * PAGE_SIZE).is_some(),
        "past the old range: kept"
    );
    assert_eq!(
        a.mremap(at + 6 * PAGE_SIZE, 0, PAGE_SIZE, true, u64::MAX),
        Err(MapError::Errno(libc::EINVAL)),
        "a private mapping is not duplicated"
    );

    let shm = a
        .mmap(0, 4 * PAGE_SIZE, rw, Fixed::Hint, false, shared())
        .unwrap();
    a.write_user(shm + PAGE_SIZE, b"one").unwrap();
    a.mprotect(shm + PAGE_SIZE, PAGE_SIZE, PROT_READ).unwrap();
    assert_eq!(
        a.vma_at(shm).map(|(s, v)| (s, v.end)),
        Some((shm, shm + PAGE_SIZE))
    );
    a.mprotect(shm + PAGE_SIZE, PAGE_SIZE, rw).unwrap();
    assert_eq!(
        a.vma_at(shm).map(|(s, v)| (s, v.end)),
        Some((shm, shm + 4 * PAGE_SIZE)),
        "one mapping again"
    );
    // A zero-length "duplicate" of a shared mapping: the same pages elsewhere.
    let dup = a
        .mremap(shm + PAGE_SIZE, 0, PAGE_SIZE, true, u64::MAX)
        .unwrap();
    assert_ne!(dup, shm + PAGE_SIZE);
    assert_eq!(a.read_user_vec(dup, 3).unwrap(), b"one");
    assert_eq!(
        a.mremap(shm + PAGE_SIZE, 0, PAGE_SIZE, false, u64::MAX),
        Err(MapError::Errno(libc::ENOMEM))
    );
    // Two shared mappings of different files never merge.
    let other = a
        .mmap(
            shm + 4 * PAGE_SIZE,
            PAGE_SIZE,
            rw,
            Fixed::Replace,
            false,
            shared(),
        )
        .unwrap();
    assert_eq!(other, shm + 4 * PAGE_SIZE);
    assert_eq!(a.vma_at(shm).map(|(_, v)| v.end), Some(shm + 4 * PAGE_SIZE));
}

#[test]
fn fork_advice_keeps_pages_from_the_child() {
    let mut a = space();
    let at = a
        .mmap(
            0,
            4 * PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            Fixed::Hint,
            false,
            VmaKind::Anon,
        )
        .unwrap();
    for i in 0..4 {
        a.write_user(at + i * PAGE_SIZE, b"secret").unwrap();
    }
    // Page 1 is not the child's at all, page 2 is wiped; 0 and 3 are copied.
    a.advise_fork(at + PAGE_SIZE, at + 2 * PAGE_SIZE, |f| f.skip = true);
    a.advise_fork(at + 2 * PAGE_SIZE, at + 3 * PAGE_SIZE, |f| f.wipe = true);
    assert_eq!(a.vmas.len(), 4, "split where the advice differs");
    a.take_flush();
    let parent = a.space();
    let child = a.fork().unwrap();
    let lost = a.take_flush();
    assert_eq!(lost.len(), 2, "only the copied pages lose write access");
    assert!(a.switch(child));
    assert_eq!(a.read_user_vec(at, 6).unwrap(), b"secret");
    assert!(
        a.read_user_vec(at + PAGE_SIZE, 6).is_err(),
        "MADV_DONTFORK: nothing mapped in the child"
    );
    assert!(a.vma_at(at + PAGE_SIZE).is_none());
    assert_eq!(
        a.read_user_vec(at + 2 * PAGE_SIZE, 6).unwrap(),
        [0; 6],
        "MADV_WIPEONFORK: zeros in the child"
    );
    assert_eq!(a.read_user_vec(at + 3 * PAGE_SIZE, 6).unwrap(), b"secret");
    // The child's wiped mapping keeps the advice (Linux keeps VM_WIPEONFORK across
    // fork); the skipped one is gone.
    assert!(a.vma_at(at + 2 * PAGE_SIZE).unwrap().1.on_fork.wipe);
    assert!(a.switch(parent));
    for i in 0..4 {
        assert_eq!(a.read_user_vec(at + i * PAGE_SIZE, 6).unwrap(), b"secret");
    }
    // Advice taken back: the pieces are one mapping again.
    a.advise_fork(at, at + 4 * PAGE_SIZE, |f| *f = Default::default());
    assert_eq!(a.vmas.len(), 1, "merged back");
    a.release(child);
}

/// As Linux's mprotect_fixup loop for a mapping without `VM_MAYEXEC` (a file on a
/// `noexec` mount): `PROT_EXEC` changes the mappings up to it, then stops with
/// `EACCES`; other rights (`PROT_WRITE` of a private mapping) still change there.
#[test]
fn mprotect_exec_stops_at_a_mapping_that_may_never_execute() {
    let mut a = space();
    let at = a
        .mmap(
            0,
            4 * PAGE_SIZE,
            PROT_READ,
            Fixed::Hint,
            false,
            VmaKind::Anon,
        )
        .unwrap();
    a.hint(
        at + 2 * PAGE_SIZE,
        at + 4 * PAGE_SIZE,
        vma::hint::NO_EXEC,
        0,
    );
    let prot_at = |a: &AddressSpace, va: u64| a.vma_at(va).map(|(_, v)| v.prot);
    let rx = PROT_READ | PROT_EXEC;
    assert_eq!(
        a.mprotect(at, 4 * PAGE_SIZE, rx),
        Err(MapError::Errno(libc::EACCES))
    );
    assert_eq!(prot_at(&a, at + PAGE_SIZE), Some(rx), "changed up to it");
    assert_eq!(prot_at(&a, at + 2 * PAGE_SIZE), Some(PROT_READ), "not it");
    assert_eq!(
        a.mprotect(at + 3 * PAGE_SIZE, PAGE_SIZE, rx),
        Err(MapError::Errno(libc::EACCES))
    );
    assert_eq!(
        a.mprotect(at + 2 * PAGE_SIZE, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE),
        Ok(())
    );
    assert_eq!(
        prot_at(&a, at + 3 * PAGE_SIZE),
        Some(PROT_READ | PROT_WRITE)
    );
}
