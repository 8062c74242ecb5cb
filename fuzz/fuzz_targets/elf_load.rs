//! The micro-VM's ELF loader over arbitrary files, into a real guest address space (no
//! KVM needed): static, static-PIE and dynamic programs (their `PT_INTERP` loader read
//! from the guest's file view too) and `#!` scripts. A load may fail; the VMM may not
//! panic, hang or allocate without bound, and what it maps must stay in the workload's
//! half of the address space.
//!
//! Input: one mode byte, then up to three files separated by `SEP`, written to
//! /tmp/prog (what is run), /tmp/ld.so and /tmp/interp. Mode bits: 0x1 touch the
//! loaded pages as the program would, 0x2 run it with an empty argv, 0x4 run it again
//! through the `execve` syscall, 0x8 make the files non-executable.
//! Seeds: fuzz/seeds/elf_load/ (made by fuzz/seeds/make_elf_seeds.py).
#![no_main]

use backend_microvm::fuzzing::{Guest, Step, Touch};
use libfuzzer_sys::fuzz_target;

const SEP: &[u8] = b"\n--hsb-file--\n";
const PATHS: [&[u8]; 3] = [b"/tmp/prog", b"/tmp/ld.so", b"/tmp/interp"];
/// Where the workload's half of the address space ends (`USER_TOP`).
const USER_TOP: u64 = 0x7fff_fff8_0000;
/// Pages touched per mapping at most (its first ones and its last).
const TOUCH_PAGES: u64 = 8;

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() < 2 {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + SEP.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut g = Guest::new(32 << 20);
    let perm = if mode & 0x8 != 0 { 0o644 } else { 0o755 };
    for (path, file) in PATHS.iter().zip(split(rest)) {
        g.add_file(path, file, perm).expect("a small file fits the guest's /tmp");
    }
    let argv: &[&[u8]] = if mode & 0x2 != 0 { &[] } else { &[b"prog", b"arg"] };
    let Ok(entry) = g.load(PATHS[0], argv) else { return };
    assert!(entry.rsp < USER_TOP, "stack outside the workload's half: {entry:?}");
    for (start, end, _) in g.mappings() {
        assert!(start < end && end <= USER_TOP, "mapping {start:#x}..{end:#x} out of range");
    }
    if mode & 0x1 != 0 {
        let _ = g.touch(entry.rip, false, true);
        let _ = g.touch(entry.rsp, true, false);
        for (start, end, prot) in g.mappings() {
            let pages = (end - start) / 4096;
            let picks = (0..pages.min(TOUCH_PAGES)).chain(pages.saturating_sub(1)..pages);
            for p in picks {
                let va = start + p * 4096;
                if g.touch(va, prot & 2 != 0, false) == Touch::Oom {
                    return;
                }
            }
        }
    }
    if mode & 0x4 != 0 {
        // execve("/tmp/prog", [path, NULL], NULL) from the program's own stack.
        let at = entry.rsp - 4096;
        let mut mem = PATHS[0].to_vec();
        mem.push(0);
        mem.resize(16, 0);
        mem.extend_from_slice(&at.to_le_bytes());
        mem.extend_from_slice(&0u64.to_le_bytes());
        if g.store(at, &mem) {
            let r = g.syscall(59, [at, at + 16, 0, 0, 0, 0]);
            if r == Step::Returned(0) {
                for (start, end, _) in g.mappings() {
                    assert!(end <= USER_TOP, "exec mapped {start:#x}..{end:#x}");
                }
            }
        }
    }
});
