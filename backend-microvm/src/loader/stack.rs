//! The initial stack Linux builds for a new program: argc, argv, envp and the
//! auxiliary vector (AT_PHDR, AT_ENTRY, AT_BASE, AT_RANDOM, AT_SYSINFO_EHDR...).

use super::elf::page_down;
use super::{not_exec, LoadError, MAX_ARGS, STACK_TOP};
use crate::errno;
use crate::guest::layout::{PAGE_SIZE, USER_TOP};
use crate::linux::fill_random_bytes;
use crate::mm::AddressSpace;

/// Pages of stack mapped before the first instruction.
const STACK_PREFAULT: u64 = 16;

pub(super) struct Aux {
    pub(super) vdso: bool,
    pub(super) user: (u32, u32),
    pub(super) phdr: u64,
    pub(super) phnum: u64,
    pub(super) entry: u64,
    pub(super) base: u64,
}

const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_BASE: u64 = 7;
const AT_FLAGS: u64 = 8;
const AT_ENTRY: u64 = 9;
const AT_UID: u64 = 11;
const AT_EUID: u64 = 12;
const AT_GID: u64 = 13;
const AT_EGID: u64 = 14;
const AT_PLATFORM: u64 = 15;
const AT_HWCAP: u64 = 16;
const AT_CLKTCK: u64 = 17;
const AT_SECURE: u64 = 23;
const AT_RANDOM: u64 = 25;
const AT_HWCAP2: u64 = 26;
const AT_EXECFN: u64 = 31;
const AT_SYSINFO_EHDR: u64 = 33;

/// `AT_HWCAP`: CPUID leaf 1's EDX, as Linux gives it. Read once per process: where
/// the host is itself a virtual machine, `cpuid` is an exit to the outer hypervisor
/// (tens of µs), and a live sandbox paid it at every exec (most of the VMM's time in
/// `build_stack`).
fn hwcap() -> u64 {
    static HWCAP: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HWCAP.get_or_init(|| u64::from(std::arch::x86_64::__cpuid(1).edx))
}

/// Lays out argc, argv, envp, auxv and their strings below `STACK_TOP`.
pub(super) fn build_stack(
    mm: &mut AddressSpace,
    argv: &[Vec<u8>],
    env: &[Vec<u8>],
    path: &[u8],
    aux: &Aux,
) -> Result<u64, LoadError> {
    let total: usize = argv.iter().chain(env.iter()).map(|s| s.len() + 1).sum();
    if total > MAX_ARGS {
        return Err(not_exec(
            path,
            "its arguments and environment are too large",
            errno::E2BIG,
        ));
    }
    let mut strings: Vec<u8> = Vec::new();
    let mut put = |s: &[u8]| {
        let off = strings.len();
        strings.extend_from_slice(s);
        strings.push(0);
        off
    };
    let execfn = put(path);
    let platform = put(b"x86_64");
    let argv_off: Vec<usize> = argv.iter().map(|a| put(a)).collect();
    let env_off: Vec<usize> = env.iter().map(|e| put(e)).collect();
    let mut random = [0u8; 16];
    fill_random_bytes(&mut random);
    let strings_top = STACK_TOP - 16;
    let strings_at = (strings_top - strings.len() as u64) & !15;
    let random_at = strings_at - 16;
    let mut auxv: Vec<(u64, u64)> = Vec::new();
    if aux.vdso {
        auxv.push((AT_SYSINFO_EHDR, crate::guest::layout::VDSO_VA));
    }
    auxv.extend([
        (AT_PHDR, aux.phdr),
        (AT_PHENT, 56),
        (AT_PHNUM, aux.phnum),
        (AT_PAGESZ, PAGE_SIZE),
        (AT_BASE, aux.base),
        (AT_FLAGS, 0),
        (AT_ENTRY, aux.entry),
        (AT_UID, u64::from(aux.user.0)),
        (AT_EUID, u64::from(aux.user.0)),
        (AT_GID, u64::from(aux.user.1)),
        (AT_EGID, u64::from(aux.user.1)),
        (AT_SECURE, 0),
        (AT_RANDOM, random_at),
        (AT_HWCAP, hwcap()),
        (AT_HWCAP2, 0x2), // HWCAP2_FSGSBASE
        (AT_CLKTCK, 100),
        (AT_PLATFORM, strings_at + platform as u64),
        (AT_EXECFN, strings_at + execfn as u64),
        (AT_NULL, 0),
    ]);
    let words = 1 + argv.len() + 1 + env.len() + 1 + 2 * auxv.len();
    let rsp = (random_at - 8 * words as u64) & !15;
    let mut table: Vec<u64> = Vec::with_capacity(words);
    table.push(argv.len() as u64);
    table.extend(argv_off.iter().map(|o| strings_at + *o as u64));
    table.push(0);
    table.extend(env_off.iter().map(|o| strings_at + *o as u64));
    table.push(0);
    for (k, v) in &auxv {
        table.push(*k);
        table.push(*v);
    }
    let bytes: Vec<u8> = table.iter().flat_map(|w| w.to_le_bytes()).collect();
    let low = page_down(rsp).min(STACK_TOP - STACK_PREFAULT * PAGE_SIZE);
    mm.populate(low, STACK_TOP)
        .map_err(|_| LoadError::NoMemory)?;
    let poke =
        |mm: &mut AddressSpace, at: u64, data: &[u8]| mm.poke(at, data).ok_or(LoadError::NoMemory);
    poke(mm, strings_at, &strings)?;
    poke(mm, random_at, &random)?;
    poke(mm, rsp, &bytes)?;
    debug_assert!(rsp < USER_TOP);
    Ok(rsp)
}
