//! The vDSO: `clock_gettime`, `gettimeofday`, `time` and `getcpu` answered inside the
//! guest (each would otherwise be a VM exit: ~20 µs on PVM). The functions are
//! `vdso.S`; this file wraps them in the small ELF shared object that glibc and musl
//! find through `AT_SYSINFO_EHDR` (a `PT_LOAD`, a `PT_DYNAMIC`, a SysV hash table,
//! `__vdso_*` symbols with version `LINUX_2.6`, as Linux's own vDSO), and fills the
//! vvar page the functions read: the TSC at a known instant and the clocks then.
//!
//! The image and the vvar page sit in fixed frames, mapped read-only into every
//! address space; the workload cannot write them.

use super::code::{VDSO_CODE, VDSO_SYMBOLS};

/// Offsets in the vvar page (must match vdso.S).
const VVAR_TSC_BASE: usize = 8;
const VVAR_MULT: usize = 16;
const VVAR_SHIFT: usize = 24;
const VVAR_MONO: usize = 32;
const VVAR_REAL: usize = 40;
const VVAR_BOOT: usize = 48;
/// Fixed-point shift of the TSC-to-nanoseconds multiplier.
const SHIFT: u32 = 32;

/// The time base the vDSO counts from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeBase {
    /// The guest's TSC at the instant below.
    pub(crate) tsc: u64,
    /// TSC frequency in kHz.
    pub(crate) tsc_khz: u32,
    /// `CLOCK_MONOTONIC`, `CLOCK_REALTIME`, `CLOCK_BOOTTIME` then, in nanoseconds.
    pub(crate) mono_ns: u64,
    pub(crate) real_ns: u64,
    pub(crate) boot_ns: u64,
}

/// The vvar page for `base`.
pub(crate) fn vvar(base: &TimeBase) -> [u8; 64] {
    let mult = (1_000_000u128 << SHIFT) / u128::from(base.tsc_khz.max(1));
    let mut page = [0u8; 64];
    let mut put = |at: usize, v: u64| page[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(VVAR_TSC_BASE, base.tsc);
    put(VVAR_MULT, u64::try_from(mult).unwrap_or(u64::MAX));
    put(VVAR_SHIFT, u64::from(SHIFT));
    put(VVAR_MONO, base.mono_ns);
    put(VVAR_REAL, base.real_ns);
    put(VVAR_BOOT, base.boot_ns);
    page
}

/// SysV ELF hash.
fn elf_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

fn align(v: &mut Vec<u8>, to: usize) {
    while v.len() % to != 0 {
        v.push(0);
    }
}

const SONAME: &str = "linux-vdso.so.1";
const VERSION: &str = "LINUX_2.6";

/// The vDSO's ELF image (at most a page), linked at 0 and loaded as-is.
pub(crate) fn image() -> Vec<u8> {
    // Exported names: `__vdso_X` and `X` for each function, as Linux's vDSO.
    let mut syms: Vec<(String, usize)> = Vec::new();
    for (name, off) in VDSO_SYMBOLS {
        syms.push((format!("__vdso_{name}"), *off));
        syms.push(((*name).to_string(), *off));
    }
    let mut strtab = vec![0u8];
    let str_off = |s: &str, strtab: &mut Vec<u8>| {
        let o = strtab.len() as u32;
        strtab.extend_from_slice(s.as_bytes());
        strtab.push(0);
        o
    };
    let name_offs: Vec<u32> = syms.iter().map(|(n, _)| str_off(n, &mut strtab)).collect();
    let soname = str_off(SONAME, &mut strtab);
    let version = str_off(VERSION, &mut strtab);
    let nsyms = syms.len() + 1;

    // Layout: header, program headers, then the tables, then the code.
    let ph_off = 64usize;
    let mut body: Vec<u8> = Vec::new();
    let base = ph_off + 2 * 56;
    // .hash
    let hash_off = base + body.len();
    let nbucket = 3u32;
    let mut buckets = vec![0u32; nbucket as usize];
    let mut chains = vec![0u32; nsyms];
    for (i, (n, _)) in syms.iter().enumerate().rev() {
        let idx = i + 1;
        let b = (elf_hash(n.as_bytes()) % nbucket) as usize;
        chains[idx] = buckets[b];
        buckets[b] = idx as u32;
    }
    for v in [nbucket, nsyms as u32]
        .iter()
        .chain(&buckets)
        .chain(&chains)
    {
        body.extend_from_slice(&v.to_le_bytes());
    }
    align(&mut body, 8);
    let text_size = VDSO_CODE.len();
    // Text offset is needed by the symbols: compute all sizes first.
    let dynsym_off = base + body.len();
    let dynsym_len = nsyms * 24;
    let dynstr_off = dynsym_off + dynsym_len;
    let versym_off = (dynstr_off + strtab.len()).next_multiple_of(2);
    let verdef_off = (versym_off + nsyms * 2).next_multiple_of(4);
    let dynamic_off = (verdef_off + 2 * 28).next_multiple_of(8);
    let dynamic_len = 10 * 16;
    let text_off = (dynamic_off + dynamic_len).next_multiple_of(16);
    let total = text_off + text_size;
    // .dynsym
    body.resize(dynsym_off - base, 0);
    body.extend_from_slice(&[0u8; 24]);
    for ((_, off), name) in syms.iter().zip(&name_offs) {
        let mut s = [0u8; 24];
        s[..4].copy_from_slice(&name.to_le_bytes());
        s[4] = 0x12; // STB_GLOBAL, STT_FUNC
        s[6..8].copy_from_slice(&1u16.to_le_bytes()); // defined (not SHN_UNDEF)
        s[8..16].copy_from_slice(&((text_off + off) as u64).to_le_bytes());
        s[16..24].copy_from_slice(&16u64.to_le_bytes());
        body.extend_from_slice(&s);
    }
    // .dynstr
    body.extend_from_slice(&strtab);
    // .gnu.version: every symbol is LINUX_2.6 (index 2).
    body.resize(versym_off - base, 0);
    body.extend_from_slice(&0u16.to_le_bytes());
    for _ in 0..syms.len() {
        body.extend_from_slice(&2u16.to_le_bytes());
    }
    // .gnu.version_d: the base version (the soname), then LINUX_2.6.
    body.resize(verdef_off - base, 0);
    for (i, (ndx, flags, name, name_off)) in
        [(1u16, 1u16, SONAME, soname), (2, 0, VERSION, version)]
            .iter()
            .enumerate()
    {
        body.extend_from_slice(&1u16.to_le_bytes()); // vd_version
        body.extend_from_slice(&flags.to_le_bytes());
        body.extend_from_slice(&ndx.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes()); // vd_cnt
        body.extend_from_slice(&elf_hash(name.as_bytes()).to_le_bytes());
        body.extend_from_slice(&20u32.to_le_bytes()); // vd_aux
        body.extend_from_slice(&(if i == 0 { 28u32 } else { 0 }).to_le_bytes()); // vd_next
        body.extend_from_slice(&name_off.to_le_bytes()); // vda_name
        body.extend_from_slice(&0u32.to_le_bytes()); // vda_next
    }
    // .dynamic
    body.resize(dynamic_off - base, 0);
    for (tag, val) in [
        (4u64, hash_off as u64),          // DT_HASH
        (5, dynstr_off as u64),           // DT_STRTAB
        (6, dynsym_off as u64),           // DT_SYMTAB
        (10, strtab.len() as u64),        // DT_STRSZ
        (11, 24),                         // DT_SYMENT
        (14, u64::from(soname)),          // DT_SONAME
        (0x6fff_fff0, versym_off as u64), // DT_VERSYM
        (0x6fff_fffc, verdef_off as u64), // DT_VERDEF
        (0x6fff_fffd, 2),                 // DT_VERDEFNUM
        (0, 0),                           // DT_NULL
    ] {
        body.extend_from_slice(&tag.to_le_bytes());
        body.extend_from_slice(&val.to_le_bytes());
    }
    body.resize(text_off - base, 0);
    body.extend_from_slice(VDSO_CODE);

    let mut img = Vec::with_capacity(total);
    // ELF header.
    img.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    img.extend_from_slice(&[0u8; 8]);
    img.extend_from_slice(&3u16.to_le_bytes()); // ET_DYN
    img.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    img.extend_from_slice(&1u32.to_le_bytes());
    img.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    img.extend_from_slice(&(ph_off as u64).to_le_bytes());
    img.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no section headers
    img.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 2, 64, 0, 0] {
        img.extend_from_slice(&v.to_le_bytes());
    }
    // Program headers: the whole image R+X, and its dynamic section.
    for (ty, flags, off, len, align) in [
        (1u32, 5u32, 0usize, total, 4096u64),
        (2, 4, dynamic_off, dynamic_len, 8),
    ] {
        img.extend_from_slice(&ty.to_le_bytes());
        img.extend_from_slice(&flags.to_le_bytes());
        for v in [
            off as u64, off as u64, off as u64, len as u64, len as u64, align,
        ] {
            img.extend_from_slice(&v.to_le_bytes());
        }
    }
    img.extend_from_slice(&body);
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_fits_a_page_and_exports_the_clock_functions() {
        let img = image();
        assert!(img.len() <= 4096, "{}", img.len());
        assert_eq!(&img[..4], b"\x7fELF");
        let s = String::from_utf8_lossy(&img);
        for name in [
            "__vdso_clock_gettime",
            "__vdso_gettimeofday",
            "__vdso_time",
            "__vdso_getcpu",
            "LINUX_2.6",
            "linux-vdso.so.1",
        ] {
            assert!(s.contains(name), "{name}");
        }
        // The hash of the ELF specification's example.
        assert_eq!(elf_hash(b"printf"), 0x0779_05a6);
    }

    #[test]
    fn vvar_converts_ticks_to_nanoseconds() {
        let v = vvar(&TimeBase {
            tsc: 1000,
            tsc_khz: 2_000_000,
            mono_ns: 5,
            real_ns: 6,
            boot_ns: 7,
        });
        let q = |at: usize| u64::from_le_bytes(v[at..at + 8].try_into().unwrap());
        // 2 GHz: 2 ticks a nanosecond, so 2e9 ticks are 1e9 ns.
        let ns = ((2_000_000_000u128 * u128::from(q(VVAR_MULT))) >> q(VVAR_SHIFT)) as u64;
        assert!((999_999_990..=1_000_000_000).contains(&ns), "{ns}");
        assert_eq!((q(VVAR_MONO), q(VVAR_REAL), q(VVAR_BOOT)), (5, 6, 7));
    }
}
