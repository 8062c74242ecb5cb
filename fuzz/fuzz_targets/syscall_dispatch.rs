//! The micro-VM's Linux personality over fuzzed syscalls: numbers and six arguments
//! each, with fuzzed guest memory in between, many calls per input, against a real
//! guest address space and file view (no KVM needed). Calls may fail; the VMM may not
//! panic, give up (`Stop::Internal`), hang or allocate without bound.
//!
//! Input (see `Ops`): one byte N, then N*16 bytes written to the scratch area; then
//! operations until the input ends, each a tag byte: a syscall (a 2-byte number and
//! six encoded arguments; one tag of twelve makes it through the fast-call entry of
//! `fastcall.rs`), a store of bytes into the scratch area, a store of an
//! encoded value (a pointer, say) into it, or a user-mode access to an address.
//! Arguments are encoded so that the fuzzer reaches the interesting values: pointers
//! into the scratch area (and just before the unmapped page after it), paths, the
//! supervisor's pages, huge lengths, earlier results (descriptors), flags.
//! Descriptor 10 is a terminal (`/dev/pts/0`, the process's controlling terminal).
//! Syscall sites (`mov $nr, %eax; syscall`) of a file mapped read-only and executable
//! near the top of the address space are redirected at fuzzed offsets with fuzzed
//! numbers (`redirect.rs`: the fast-call thread's offer is a hint the workload can
//! forge) and put back; once put back, none is left.
//! Seeds: fuzz/seeds/syscall_dispatch/ (made by fuzz/seeds/make_syscall_seeds.py).
#![no_main]

use backend_microvm::fuzzing::{Guest, Step};
use libfuzzer_sys::fuzz_target;

/// The scratch area: read-write, then an unmapped page, a read-only page and a
/// `PROT_NONE` page.
const SCRATCH: u64 = 0x1000_0000;
const SCRATCH_LEN: u64 = 0x1_0000;
const RO_PAGE: u64 = SCRATCH + SCRATCH_LEN + 0x1000;
const NONE_PAGE: u64 = RO_PAGE + 0x1000;
/// NUL-terminated paths, 64 bytes apart, in the scratch area's last page.
const STRINGS: u64 = SCRATCH + SCRATCH_LEN - 0x1000;
const PATHS: [&[u8]; 16] = [
    b"/tmp/a",
    b"/tmp",
    b"/tmp/prog",
    b"/tmp/script",
    b"/proc/self/exe",
    b"/proc/self/fd/0",
    b"/dev/null",
    b"/dev/zero",
    b"/",
    b"..",
    b"/tmp/d/../a",
    b"/etc/passwd",
    b"/proc/self/maps",
    b"a",
    b"/tmp/fifo",
    b"/tmp/d",
];
/// Addresses a guest has no business in, and edges.
const SPECIAL: [u64; 16] = [
    0,
    1,
    0xffff,
    0x7fff_fff7_ffff,             // last byte below the vDSO
    0x7fff_fff8_0000,             // the vDSO's data (read-only)
    0x7fff_ffff_c000,             // the syscall return frame page
    0x7fff_ffff_d000,             // the syscall stub
    0x7fff_ffff_e000,             // the doorbell
    0x8000_0000_0000,             // first non-canonical address
    0xffff_8000_0000_0000,        // first upper-half address
    0xffff_ff00_0000_0000,        // the supervisor's direct map of RAM
    0xffff_ffff_ffe0_0000,        // the supervisor's frames
    u64::MAX,
    RO_PAGE,
    NONE_PAGE,
    SCRATCH + SCRATCH_LEN - 1,    // one byte before the hole
];
const LENGTHS: [u64; 8] = [
    u64::MAX,
    i64::MAX as u64,
    1 << 32,
    (1 << 31) - 1,
    1 << 31,
    0x7fff_fff8_0000,
    SCRATCH_LEN,
    SCRATCH_LEN + 1,
];

/// The fuzz input, read front to back; zeros once it is used up.
struct Ops<'a> {
    data: &'a [u8],
}

impl Ops<'_> {
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }
    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | (u32::from(self.u16()) << 16)
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    /// An encoded argument (see the module's docs).
    fn arg(&mut self, results: &[u64; 8]) -> u64 {
        match self.u8() % 12 {
            0 => 0,
            1 => self.u8() as i8 as i64 as u64,
            2 => u64::from(self.u32()),
            3 => self.u64(),
            4 => SCRATCH + u64::from(self.u16()) % SCRATCH_LEN,
            5 => SCRATCH + SCRATCH_LEN - 1 - u64::from(self.u8()),
            6 => STRINGS + 64 * u64::from(self.u8() % PATHS.len() as u8),
            7 => SPECIAL[usize::from(self.u8()) % SPECIAL.len()],
            8 => LENGTHS[usize::from(self.u8()) % LENGTHS.len()],
            9 => results[usize::from(self.u8()) % results.len()],
            10 => match self.u8() {
                255 => (-100i64) as u64, // AT_FDCWD
                b => u64::from(b % 12),
            },
            _ => u64::from(self.u16()) << (self.u8() % 48),
        }
    }
}

/// mmap(addr, len, prot, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0).
fn map(g: &mut Guest, addr: u64, len: u64, prot: u64) {
    let r = g.syscall(9, [addr, len, prot, 0x32, u64::MAX, 0]);
    assert_eq!(r, Step::Returned(addr as i64), "scratch mapping at {addr:#x}");
}

/// Where the file of syscall sites is mapped (within reach of the trampolines), and
/// its length.
const CODE: u64 = 0x7fff_f000_0000;
const CODE_LEN: u64 = 0x2000;

/// Syscall sites of a few numbers (`mov $nr, %eax; syscall; ret`), one straddling the
/// page boundary, with other bytes between.
fn code() -> Vec<u8> {
    let mut c = vec![0x90u8; CODE_LEN as usize];
    let mut at = 0;
    for (i, nr) in [110u32, 39, 0, 1, 17, 18, 8, 5, 3, 217, 60, 4096].iter().cycle().enumerate() {
        if at + 8 > c.len() {
            break;
        }
        c[at] = 0xb8;
        c[at + 1..at + 5].copy_from_slice(&nr.to_le_bytes());
        c[at + 5..at + 8].copy_from_slice(&[0x0f, 0x05, 0xc3]);
        at += 8 + i % 5;
    }
    c
}

/// A static x86-64 program that exits (the elf_load seed, less its mode byte).
const PROGRAM: &[u8] = include_bytes!("../seeds/elf_load/static");

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops { data };
    let mut g = Guest::new(16 << 20);
    g.add_file(b"/tmp/prog", &PROGRAM[1..], 0o755).expect("program");
    g.add_file(b"/tmp/script", b"#!/tmp/prog -x\n", 0o755).expect("script");
    g.add_file(b"/tmp/a", b"some file contents\n", 0o644).expect("file");
    map(&mut g, SCRATCH, SCRATCH_LEN, 3);
    map(&mut g, RO_PAGE, 0x1000, 1);
    map(&mut g, NONE_PAGE, 0x1000, 0);
    let code = code();
    g.add_file(b"/tmp/code", &code, 0o755).expect("code file");
    assert!(g.store(STRINGS + 64 * 16, b"/tmp/code\0"));
    let fd = match g.syscall(2, [STRINGS + 64 * 16, 0, 0, 0, 0, 0]) {
        Step::Returned(fd) if fd >= 0 => fd as u64,
        r => panic!("open /tmp/code: {r:?}"),
    };
    // mmap(CODE, CODE_LEN, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED, fd, 0)
    let r = g.syscall(9, [CODE, CODE_LEN, 5, 0x12, fd, 0]);
    assert_eq!(r, Step::Returned(CODE as i64), "code mapping");
    assert_eq!(g.syscall(3, [fd, 0, 0, 0, 0, 0]), Step::Returned(0));
    for (i, p) in PATHS.iter().enumerate() {
        assert!(g.store(STRINGS + 64 * i as u64, &[p, &b"\0"[..]].concat()));
    }
    let n = usize::from(ops.u8()) * 16;
    let image = ops.bytes(n).to_vec();
    assert!(g.store(SCRATCH, &image));
    g.set_stdin(b"line one\nline two\n");
    // A terminal on descriptor 10 (a small number the arguments reach), fed by the
    // same stdin: its line discipline, reads and ioctls are fuzzed too.
    g.give_tty(10);
    let mut results = [0u64; 8];
    let mut next = 0;
    for _ in 0..256 {
        if ops.data.is_empty() {
            break;
        }
        match ops.u8() % 18 {
            tag @ 0..=11 => {
                let raw = ops.u16();
                let nr = if raw >= 0xff00 { ops.u64() } else { u64::from(raw) % 480 };
                let mut a = [0u64; 6];
                for x in &mut a {
                    *x = ops.arg(&results);
                }
                // Tag 11: through the fast-call entry (answered there, or sent on to
                // the exit path as the stub does).
                let step = if tag == 11 {
                    g.fast_syscall(nr, a)
                } else {
                    g.syscall(nr, a)
                };
                match step {
                    Step::Returned(v) => {
                        results[next % 8] = v as u64;
                        next += 1;
                    }
                    Step::Switched => {}
                    Step::Ended(_) => return,
                }
            }
            12 | 13 => {
                let off = u64::from(ops.u16()) % SCRATCH_LEN;
                let len = usize::from(ops.u8());
                let bytes = ops.bytes(len).to_vec();
                let _ = g.store(SCRATCH + off, &bytes);
            }
            14 => {
                let off = u64::from(ops.u16() & !7) % SCRATCH_LEN;
                let v = ops.arg(&results);
                let _ = g.store(SCRATCH + off, &v.to_le_bytes());
            }
            15 => {
                let va = ops.arg(&results);
                let how = ops.u8();
                let _ = g.touch(va, how & 1 != 0, how & 2 != 0);
            }
            16 => {
                // An offer to redirect: a fuzzed number and return address in or
                // near the code mapping (or anywhere).
                let raw = ops.u16();
                let nr = if raw >= 0xff00 { ops.u64() } else { u64::from(raw) % 480 };
                let off = ops.u16();
                let ret = if off >= 0xff00 {
                    ops.arg(&results)
                } else {
                    CODE + u64::from(off) % (CODE_LEN + 16)
                };
                let _ = g.redirect_site(nr, ret);
            }
            _ => {
                // Put back: none is left.
                g.restore_sites(CODE, CODE + CODE_LEN);
                assert_eq!(g.redirected_sites(CODE, CODE + CODE_LEN), 0);
            }
        }
    }
});
