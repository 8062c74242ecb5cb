//! Finding the program in the sandbox and loading it: static and static-PIE x86-64
//! ELF executables (and `#!` scripts whose interpreter is one), with the initial stack
//! Linux builds (argc, argv, envp, auxv with AT_RANDOM, AT_PHDR, AT_PAGESZ, AT_HWCAP...).

use std::os::fd::AsRawFd;

use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_INTERP, PT_LOAD, PT_PHDR};
use goblin::elf::Elf;

use crate::errno::{self, Errno};
use crate::guest::layout::{PAGE_SIZE, USER_TOP};
use crate::linux::fill_random_bytes;
use crate::mm::{AddressSpace, VmaKind, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::vfs::{host, Location, Opened, Vfs};

/// Top of the initial stack.
pub(crate) const STACK_TOP: u64 = 0x7fff_fff0_0000;
/// Where a static-PIE executable is placed (Linux's `ELF_ET_DYN_BASE`, page-aligned).
const PIE_BASE: u64 = 0x5555_5555_4000;
/// Gap between the stack's reserve and the mappings below it.
const STACK_GAP: u64 = 128 << 20;
/// Largest program file read.
const MAX_PROGRAM: u64 = 1 << 30;
/// Largest argv + envp, as Linux's default (a quarter of an 8 MiB stack).
const MAX_ARGS: usize = 2 << 20;
/// Pages of stack mapped before the first instruction.
const STACK_PREFAULT: u64 = 16;

/// Why a program cannot run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// No candidate path exists.
    #[error("program not found")]
    NotFound,
    /// It exists but cannot be run here.
    #[error("{reason}")]
    NotExecutable {
        /// The path in the sandbox.
        path: String,
        /// Why, in words.
        reason: String,
        /// The errno Linux's `execve` would give.
        errno: i32,
    },
    /// Guest memory is too small for it.
    #[error("guest memory is too small for the program")]
    NoMemory,
}

fn not_exec(path: &[u8], reason: impl Into<String>, errno: Errno) -> LoadError {
    LoadError::NotExecutable {
        path: String::from_utf8_lossy(path).into_owned(),
        reason: reason.into(),
        errno: errno.0,
    }
}

/// The program found: its sandbox path, contents and the argv to run it with.
#[derive(Debug)]
pub(crate) struct Program {
    /// Path in the sandbox (what /proc/self/exe shows).
    pub(crate) path: Vec<u8>,
    /// The ELF file.
    pub(crate) image: Vec<u8>,
    /// argv (a `#!` interpreter prepended).
    pub(crate) argv: Vec<Vec<u8>>,
}

fn read_whole(vfs: &Vfs, base: &Location, path: &[u8]) -> Result<Vec<u8>, LoadError> {
    let loc = vfs
        .resolve(base, path, true)
        .map_err(|_| LoadError::NotFound)?;
    let meta = vfs
        .meta(&loc)
        .map_err(|e| not_exec(path, "cannot stat the program", e))?;
    if meta.is_dir() {
        return Err(not_exec(path, "it is a directory", errno::EACCES));
    }
    if meta.kind() != libc::S_IFREG {
        return Err(not_exec(path, "it is not a regular file", errno::EACCES));
    }
    if meta.mode & 0o111 == 0 {
        return Err(not_exec(
            path,
            "it has no execute permission",
            errno::EACCES,
        ));
    }
    if meta.size > MAX_PROGRAM {
        return Err(not_exec(path, "it is larger than 1 GiB", errno::ENOMEM));
    }
    let (_, opened) = vfs
        .open(base, path, libc::O_RDONLY, 0)
        .map_err(|e| not_exec(path, "cannot open it", e))?;
    let mut data = vec![0u8; meta.size as usize];
    let mut got = 0;
    while got < data.len() {
        let n = match &opened {
            Opened::Host(fd) => host::pread(fd.as_raw_fd(), &mut data[got..], got as u64),
            Opened::Tmp(t) => t.read_at(got as u64, &mut data[got..]),
            Opened::Gen(b) => {
                let n = (b.len() - got).min(data.len() - got);
                data[got..got + n].copy_from_slice(&b[got..got + n]);
                Ok(n)
            }
            _ => Err(errno::EACCES),
        }
        .map_err(|e| not_exec(path, "cannot read it", e))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    data.truncate(got);
    Ok(data)
}

/// Whether the program of `plan` is one this loader can run: found through the plan's
/// mounts, and a static (or static-PIE) x86-64 ELF, possibly behind a `#!` line. A
/// program that is not found passes: the run reports that itself.
pub(crate) fn check_runnable(plan: &sandbox_core::Plan) -> Result<(), String> {
    let budget = std::rc::Rc::new(crate::memory::Budget::detached(1 << 16));
    let vfs = match crate::vfs::build(plan, budget) {
        Ok(v) => v,
        Err(_) => return Ok(()),
    };
    let root = vfs.root();
    let Ok(cwd) = vfs.resolve(&root, plan.cwd.as_bytes(), true) else {
        return Ok(());
    };
    let prog = match find(&vfs, &cwd, &plan.program_candidates(), &plan.argv) {
        Ok(p) => p,
        Err(_) => return Ok(()),
    };
    match Elf::parse(&prog.image) {
        Ok(elf) if elf.interpreter.is_some() => Err(format!(
            "{} is dynamically linked, which the micro-VM cannot run yet (issue 4)",
            String::from_utf8_lossy(&prog.path)
        )),
        _ => Ok(()),
    }
}

/// Finds the program among `candidates` (absolute sandbox paths, in order).
pub(crate) fn find(
    vfs: &Vfs,
    cwd: &Location,
    candidates: &[String],
    argv: &[String],
) -> Result<Program, LoadError> {
    for c in candidates {
        let path = c.as_bytes();
        let image = match read_whole(vfs, cwd, path) {
            Ok(i) => i,
            Err(LoadError::NotFound) => continue,
            Err(e) => return Err(e),
        };
        let mut argv: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
        if argv.is_empty() {
            argv.push(path.to_vec());
        }
        if let Some(rest) = image.strip_prefix(b"#!") {
            let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line).trim().to_string();
            let mut parts = line.splitn(2, [' ', '\t']);
            let interp = parts.next().unwrap_or_default().to_string();
            if interp.is_empty() {
                return Err(not_exec(
                    path,
                    "its #! line names no interpreter",
                    errno::ENOEXEC,
                ));
            }
            let mut new_argv = vec![interp.clone().into_bytes()];
            if let Some(arg) = parts.next().map(str::trim).filter(|a| !a.is_empty()) {
                new_argv.push(arg.as_bytes().to_vec());
            }
            new_argv.push(path.to_vec());
            new_argv.extend(argv.into_iter().skip(1));
            let image = match read_whole(vfs, cwd, interp.as_bytes()) {
                Ok(i) => i,
                Err(LoadError::NotFound) => {
                    return Err(not_exec(
                        path,
                        format!("its interpreter {interp} is not in the sandbox"),
                        errno::ENOENT,
                    ))
                }
                Err(e) => return Err(e),
            };
            return Ok(Program {
                path: interp.into_bytes(),
                image,
                argv: new_argv,
            });
        }
        return Ok(Program {
            path: path.to_vec(),
            image,
            argv,
        });
    }
    Err(LoadError::NotFound)
}

/// Where the loaded program starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// First instruction.
    pub(crate) rip: u64,
    /// Initial stack pointer (at argc).
    pub(crate) rsp: u64,
}

fn prot_of(flags: u32) -> u32 {
    let mut p = 0;
    if flags & PF_R != 0 {
        p |= PROT_READ;
    }
    if flags & PF_W != 0 {
        p |= PROT_WRITE;
    }
    if flags & PF_X != 0 {
        p |= PROT_EXEC;
    }
    p
}

fn page_down(v: u64) -> u64 {
    v & !(PAGE_SIZE - 1)
}

fn page_up(v: u64) -> Option<u64> {
    v.checked_add(PAGE_SIZE - 1).map(page_down)
}

/// Loads `prog` into `mm` and builds its initial stack.
pub(crate) fn load(
    mm: &mut AddressSpace,
    prog: &Program,
    env: &[Vec<u8>],
    user: (u32, u32),
) -> Result<Entry, LoadError> {
    let path = &prog.path;
    let elf = Elf::parse(&prog.image).map_err(|e| {
        not_exec(
            path,
            format!("it is not an ELF executable ({e})"),
            errno::ENOEXEC,
        )
    })?;
    if !elf.is_64 || !elf.little_endian || elf.header.e_machine != goblin::elf::header::EM_X86_64 {
        return Err(not_exec(
            path,
            "it is not an x86-64 (64-bit) program",
            errno::ENOEXEC,
        ));
    }
    if elf.program_headers.iter().any(|p| p.p_type == PT_INTERP) {
        return Err(not_exec(
            path,
            "dynamically linked programs are not supported by the micro-VM yet (issue 4)",
            errno::ENOEXEC,
        ));
    }
    let bias = match elf.header.e_type {
        goblin::elf::header::ET_EXEC => 0,
        goblin::elf::header::ET_DYN => PIE_BASE,
        _ => return Err(not_exec(path, "it is not an executable", errno::ENOEXEC)),
    };
    let loads: Vec<_> = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0)
        .collect();
    if loads.is_empty() {
        return Err(not_exec(path, "it has nothing to load", errno::ENOEXEC));
    }
    let bad = || not_exec(path, "its program headers are invalid", errno::ENOEXEC);
    // Rights per page (segments may share a page), then one mapping per run of pages.
    let mut pages: std::collections::BTreeMap<u64, u32> = std::collections::BTreeMap::new();
    let mut end = 0u64;
    for p in &loads {
        let start = bias.checked_add(p.p_vaddr).ok_or_else(bad)?;
        let seg_end = start.checked_add(p.p_memsz).ok_or_else(bad)?;
        if p.p_filesz > p.p_memsz
            || seg_end > STACK_TOP - (8 << 20)
            || start < crate::mm::MMAP_MIN_ADDR
        {
            return Err(bad());
        }
        if p.p_offset
            .checked_add(p.p_filesz)
            .is_none_or(|e| e > prog.image.len() as u64)
        {
            return Err(bad());
        }
        let mut pg = page_down(start);
        let top = page_up(seg_end).ok_or_else(bad)?;
        if (top - pg) / PAGE_SIZE > (64 << 30) / PAGE_SIZE {
            return Err(bad());
        }
        while pg < top {
            *pages.entry(pg).or_insert(0) |= prot_of(p.p_flags);
            pg += PAGE_SIZE;
        }
        end = end.max(top);
    }
    let mut runs: Vec<(u64, u64, u32)> = Vec::new();
    for (pg, prot) in &pages {
        match runs.last_mut() {
            Some((_, e, p)) if *e == *pg && *p == *prot => *e += PAGE_SIZE,
            _ => runs.push((*pg, *pg + PAGE_SIZE, *prot)),
        }
    }
    for (s, e, prot) in &runs {
        mm.insert(*s, *e, *prot, VmaKind::Anon);
    }
    // Pages holding file data are filled now; the rest of .bss is mapped on demand.
    for p in &loads {
        let start = bias + p.p_vaddr;
        let file_end = page_up(start + p.p_filesz).ok_or_else(bad)?;
        mm.populate(page_down(start), file_end)
            .map_err(|_| LoadError::NoMemory)?;
        let data = &prog.image[p.p_offset as usize..(p.p_offset + p.p_filesz) as usize];
        mm.poke(start, data).ok_or(LoadError::NoMemory)?;
    }
    let phdr = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == PT_PHDR)
        .map(|p| bias.wrapping_add(p.p_vaddr))
        .or_else(|| {
            let off = elf.header.e_phoff;
            loads
                .iter()
                .find(|p| p.p_offset <= off && off < p.p_offset + p.p_filesz)
                .map(|p| bias.wrapping_add(p.p_vaddr).wrapping_add(off - p.p_offset))
        })
        .unwrap_or(0);
    let stack_reserve = 8 << 20;
    mm.insert(
        STACK_TOP - stack_reserve,
        STACK_TOP,
        PROT_READ | PROT_WRITE,
        VmaKind::Anon,
    );
    mm.set_layout(end, STACK_TOP - stack_reserve - STACK_GAP);
    let aux = Aux {
        user,
        phdr,
        phnum: elf.header.e_phnum.into(),
        entry: bias.wrapping_add(elf.header.e_entry),
    };
    let rsp = build_stack(mm, &prog.argv, env, path, &aux)?;
    Ok(Entry {
        rip: aux.entry,
        rsp,
    })
}

struct Aux {
    user: (u32, u32),
    phdr: u64,
    phnum: u64,
    entry: u64,
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

fn hwcap() -> u64 {
    let r = std::arch::x86_64::__cpuid(1);
    u64::from(r.edx)
}

/// Lays out argc, argv, envp, auxv and their strings below `STACK_TOP`.
fn build_stack(
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
    let auxv: Vec<(u64, u64)> = vec![
        (AT_PHDR, aux.phdr),
        (AT_PHENT, 56),
        (AT_PHNUM, aux.phnum),
        (AT_PAGESZ, PAGE_SIZE),
        (AT_BASE, 0),
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
    ];
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
