//! Finding a program in the sandbox and loading it into the current (empty) address
//! space: x86-64 ELF executables, static or dynamically linked (the `PT_INTERP`
//! loader, `ld-linux-x86-64.so.2`, is loaded from the sandbox's file view too), PIE or
//! not, and `#!` scripts; then the initial stack Linux builds (argc, argv, envp, auxv
//! with AT_PHDR, AT_ENTRY, AT_BASE, AT_RANDOM...).
//!
//! Segments are mapped, not copied: each is a private file mapping read at its first
//! touch (the `.bss` tail of its last file page reads as zeros), so a large program
//! costs only the pages it uses.

use std::rc::Rc;

use crate::errno::{self, Errno};
use crate::guest::layout::{PAGE_SIZE, USER_TOP};
use crate::linux::fill_random_bytes;
use crate::mm::{AddressSpace, Backing, Fixed, VmaKind, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::vfs::{Location, Vfs};

/// Top of the initial stack.
pub(crate) const STACK_TOP: u64 = 0x7fff_fff0_0000;
/// Where a PIE executable is placed (Linux's `ELF_ET_DYN_BASE`, page-aligned).
const PIE_BASE: u64 = 0x5555_5555_4000;
/// Stack reserve (`RLIMIT_STACK`).
const STACK_RESERVE: u64 = 8 << 20;
/// Gap between the stack's reserve and the mappings below it.
const STACK_GAP: u64 = 128 << 20;
/// Largest program file.
const MAX_PROGRAM: u64 = 1 << 32;
/// Largest argv + envp, as Linux's default (a quarter of an 8 MiB stack).
pub(crate) const MAX_ARGS: usize = 2 << 20;
/// Pages of stack mapped before the first instruction.
const STACK_PREFAULT: u64 = 16;
/// `#!` lines longer than this are not read (Linux: 256).
const MAX_SHEBANG: usize = 256;
/// Nested `#!` interpreters followed.
const MAX_SHEBANG_DEPTH: u32 = 4;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

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

impl Program {
    /// What /proc/self/exe shows: the resolved path.
    pub(crate) fn exe(&self) -> Vec<u8> {
        self.image.real.clone()
    }

    /// The process name (`comm`): the file name it was run by, or, through a magic
    /// link of /proc, the name of the file itself (as Linux shows it).
    pub(crate) fn comm(&self) -> Vec<u8> {
        let from = if self.path.starts_with(b"/proc/") {
            &self.image.real
        } else {
            &self.path
        };
        let name = from.rsplit(|&b| b == b'/').next().unwrap_or_default();
        name[..name.len().min(15)].to_vec()
    }
}

impl LoadError {
    /// The errno `execve` gives.
    pub(crate) fn errno(&self) -> Errno {
        match self {
            LoadError::NotFound => errno::ENOENT,
            LoadError::NotExecutable { errno, .. } => Errno(*errno),
            LoadError::NoMemory => errno::ENOMEM,
        }
    }
}

fn not_exec(path: &[u8], reason: impl Into<String>, errno: Errno) -> LoadError {
    LoadError::NotExecutable {
        path: String::from_utf8_lossy(path).into_owned(),
        reason: reason.into(),
        errno: errno.0,
    }
}

/// An opened program file.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    /// Its path in the sandbox, as given.
    pub(crate) path: Vec<u8>,
    /// Its path with symlinks resolved (what /proc/self/exe shows).
    pub(crate) real: Vec<u8>,
    /// Its contents.
    pub(crate) file: Rc<dyn Backing>,
    /// Its first bytes (headers).
    pub(crate) head: Vec<u8>,
}

/// The program found: the executable (after `#!`), and the argv to run it with.
#[derive(Debug)]
pub(crate) struct Program {
    /// Path in the sandbox, as given (`AT_EXECFN`).
    pub(crate) path: Vec<u8>,
    /// The ELF file.
    pub(crate) image: Image,
    /// argv (`#!` interpreters prepended).
    pub(crate) argv: Vec<Vec<u8>>,
}

/// Opens `path` as a program: a regular file with execute permission.
fn open_image(
    vfs: &Vfs,
    base: &Location,
    path: &[u8],
    need_exec: bool,
) -> Result<Image, LoadError> {
    let loc = vfs.resolve(base, path, true).map_err(|e| {
        if e == errno::ENOENT || e == errno::ENOTDIR {
            LoadError::NotFound
        } else {
            not_exec(path, "cannot look it up", e)
        }
    })?;
    let meta = vfs
        .meta(&loc)
        .map_err(|e| not_exec(path, "cannot stat the program", e))?;
    if meta.is_dir() {
        return Err(not_exec(path, "it is a directory", errno::EACCES));
    }
    if meta.kind() != libc::S_IFREG {
        return Err(not_exec(path, "it is not a regular file", errno::EACCES));
    }
    if need_exec && meta.mode & 0o111 == 0 {
        return Err(not_exec(
            path,
            "it has no execute permission",
            errno::EACCES,
        ));
    }
    if meta.size > MAX_PROGRAM {
        return Err(not_exec(path, "it is larger than 4 GiB", errno::ENOMEM));
    }
    let (_, opened) = vfs
        .open(base, path, libc::O_RDONLY, 0)
        .map_err(|e| not_exec(path, "cannot open it", e))?;
    let file = opened
        .into_backing()
        .ok_or_else(|| not_exec(path, "it cannot be read", errno::EACCES))?;
    let mut head = vec![0u8; 4096.min(meta.size as usize)];
    let n = read_full(&*file, 0, &mut head).map_err(|e| not_exec(path, "cannot read it", e))?;
    head.truncate(n);
    Ok(Image {
        path: path.to_vec(),
        real: loc.path(),
        file,
        head,
    })
}

fn read_full(file: &dyn Backing, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(off.saturating_add(got as u64), &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(Errno::from_io(&e)),
        }
    }
    Ok(got)
}

/// Resolves `#!` lines: the program to load and its argv.
fn resolve(
    vfs: &Vfs,
    base: &Location,
    path: &[u8],
    argv: Vec<Vec<u8>>,
) -> Result<Program, LoadError> {
    let mut image = open_image(vfs, base, path, true)?;
    let mut argv = argv;
    if argv.is_empty() {
        argv.push(path.to_vec());
    }
    for _ in 0..MAX_SHEBANG_DEPTH {
        let Some(rest) = image.head.strip_prefix(b"#!") else {
            return Ok(Program {
                path: image.path.clone(),
                image,
                argv,
            });
        };
        let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = &line[..line.len().min(MAX_SHEBANG)];
        let line = String::from_utf8_lossy(line).trim().to_string();
        let mut parts = line.splitn(2, [' ', '\t']);
        let interp = parts.next().unwrap_or_default().to_string();
        if interp.is_empty() {
            return Err(not_exec(
                &image.path,
                "its #! line names no interpreter",
                errno::ENOEXEC,
            ));
        }
        let mut new_argv = vec![interp.clone().into_bytes()];
        if let Some(arg) = parts.next().map(str::trim).filter(|a| !a.is_empty()) {
            new_argv.push(arg.as_bytes().to_vec());
        }
        new_argv.push(image.path.clone());
        new_argv.extend(argv.into_iter().skip(1));
        argv = new_argv;
        image = match open_image(vfs, base, interp.as_bytes(), true) {
            Ok(i) => i,
            Err(LoadError::NotFound) => {
                return Err(not_exec(
                    &image.path,
                    format!("its interpreter {interp} is not in the sandbox"),
                    errno::ENOENT,
                ))
            }
            Err(e) => return Err(e),
        };
    }
    Err(not_exec(
        path,
        "too many nested #! interpreters",
        errno::ELOOP,
    ))
}

/// Finds the program among `candidates` (absolute sandbox paths, in order).
pub(crate) fn find(
    vfs: &Vfs,
    cwd: &Location,
    candidates: &[String],
    argv: &[String],
) -> Result<Program, LoadError> {
    for c in candidates {
        let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
        match resolve(vfs, cwd, c.as_bytes(), argv) {
            Err(LoadError::NotFound) => continue,
            other => return other,
        }
    }
    Err(LoadError::NotFound)
}

/// The program `execve(path, argv)` runs (relative paths from `base`).
pub(crate) fn find_exec(
    vfs: &Vfs,
    base: &Location,
    path: &[u8],
    argv: Vec<Vec<u8>>,
) -> Result<Program, LoadError> {
    resolve(vfs, base, path, argv)
}

/// One program header.
#[derive(Debug, Clone, Copy)]
struct Phdr {
    ptype: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

/// What the loader needs of an ELF file.
#[derive(Debug)]
struct Elf {
    etype: u16,
    entry: u64,
    phoff: u64,
    phnum: u16,
    phdrs: Vec<Phdr>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

fn parse(img: &Image) -> Result<Elf, LoadError> {
    let path = &img.path;
    let h = &img.head;
    if h.len() < 64 || &h[..4] != b"\x7fELF" {
        return Err(not_exec(
            path,
            "it is not an ELF executable",
            errno::ENOEXEC,
        ));
    }
    if h[4] != 2 || h[5] != 1 || le16(h, 18) != 62 {
        return Err(not_exec(
            path,
            "it is not an x86-64 (64-bit) program",
            errno::ENOEXEC,
        ));
    }
    let etype = le16(h, 16);
    if etype != ET_EXEC && etype != ET_DYN {
        return Err(not_exec(path, "it is not an executable", errno::ENOEXEC));
    }
    let (phoff, phentsize, phnum) = (le64(h, 32), le16(h, 54), le16(h, 56));
    if phentsize != 56 || phnum == 0 || phnum > 512 {
        return Err(not_exec(
            path,
            "its program headers are invalid",
            errno::ENOEXEC,
        ));
    }
    let mut raw = vec![0u8; usize::from(phnum) * 56];
    let n = read_full(&*img.file, phoff, &mut raw)
        .map_err(|e| not_exec(path, "cannot read its program headers", e))?;
    if n != raw.len() {
        return Err(not_exec(
            path,
            "its program headers are truncated",
            errno::ENOEXEC,
        ));
    }
    let phdrs = raw
        .chunks_exact(56)
        .map(|p| Phdr {
            ptype: le32(p, 0),
            flags: le32(p, 4),
            offset: le64(p, 8),
            vaddr: le64(p, 16),
            filesz: le64(p, 32),
            memsz: le64(p, 40),
        })
        .collect();
    Ok(Elf {
        etype,
        entry: le64(h, 24),
        phoff,
        phnum,
        phdrs,
    })
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

/// The page range the loadable segments span (before relocation).
fn span(elf: &Elf, path: &[u8]) -> Result<(u64, u64), LoadError> {
    let bad = || not_exec(path, "its program headers are invalid", errno::ENOEXEC);
    let mut lo = u64::MAX;
    let mut hi = 0u64;
    for p in elf
        .phdrs
        .iter()
        .filter(|p| p.ptype == PT_LOAD && p.memsz > 0)
    {
        let end = p.vaddr.checked_add(p.memsz).ok_or_else(bad)?;
        lo = lo.min(page_down(p.vaddr));
        hi = hi.max(page_up(end).ok_or_else(bad)?);
    }
    if lo >= hi {
        return Err(not_exec(path, "it has nothing to load", errno::ENOEXEC));
    }
    if hi - lo > (64 << 30) {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// Maps the loadable segments of `elf` at `bias`; returns the end of the last one.
fn map_segments(
    mm: &mut AddressSpace,
    img: &Image,
    elf: &Elf,
    bias: u64,
) -> Result<u64, LoadError> {
    let path = &img.path;
    let bad = || not_exec(path, "its program headers are invalid", errno::ENOEXEC);
    let mut end = 0;
    for p in elf
        .phdrs
        .iter()
        .filter(|p| p.ptype == PT_LOAD && p.memsz > 0)
    {
        if p.filesz > p.memsz || p.vaddr % PAGE_SIZE != p.offset % PAGE_SIZE {
            return Err(bad());
        }
        let start = bias.checked_add(p.vaddr).ok_or_else(bad)?;
        let mem_end = start.checked_add(p.memsz).ok_or_else(bad)?;
        if start < crate::mm::MMAP_MIN_ADDR || mem_end > STACK_TOP - STACK_RESERVE {
            return Err(bad());
        }
        let prot = prot_of(p.flags);
        let page = page_down(start);
        let file_end = page_up(start + p.filesz).ok_or_else(bad)?;
        let mem_top = page_up(mem_end).ok_or_else(bad)?;
        let map = |mm: &mut AddressSpace, at: u64, to: u64, kind: VmaKind| {
            mm.mmap(at, to - at, prot, Fixed::Replace, false, kind)
                .map(|_| ())
                .map_err(|_| bad())
        };
        if p.filesz > 0 {
            map(
                mm,
                page,
                file_end,
                VmaKind::File {
                    backing: Rc::clone(&img.file),
                    offset: page_down(p.offset),
                    file_end: p.offset.checked_add(p.filesz).ok_or_else(bad)?,
                },
            )?;
        }
        let anon_from = if p.filesz > 0 { file_end } else { page };
        if mem_top > anon_from {
            map(mm, anon_from, mem_top, VmaKind::Anon)?;
        }
        end = end.max(mem_top);
    }
    Ok(end)
}

/// The address the program headers are at once loaded.
fn phdr_addr(elf: &Elf, bias: u64) -> u64 {
    if let Some(p) = elf.phdrs.iter().find(|p| p.ptype == PT_PHDR) {
        return bias.wrapping_add(p.vaddr);
    }
    elf.phdrs
        .iter()
        .find(|p| {
            p.ptype == PT_LOAD
                && p.offset <= elf.phoff
                && elf.phoff < p.offset.saturating_add(p.filesz)
        })
        .map(|p| {
            bias.wrapping_add(p.vaddr)
                .wrapping_add(elf.phoff - p.offset)
        })
        .unwrap_or(0)
}

/// The `PT_INTERP` path of `elf`, if any.
fn interp_path(img: &Image, elf: &Elf) -> Result<Option<Vec<u8>>, LoadError> {
    let Some(p) = elf.phdrs.iter().find(|p| p.ptype == PT_INTERP) else {
        return Ok(None);
    };
    if p.filesz == 0 || p.filesz > 4096 {
        return Err(not_exec(
            &img.path,
            "its PT_INTERP is invalid",
            errno::ENOEXEC,
        ));
    }
    let mut b = vec![0u8; p.filesz as usize];
    read_full(&*img.file, p.offset, &mut b)
        .map_err(|e| not_exec(&img.path, "cannot read its PT_INTERP", e))?;
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b.truncate(n);
    Ok(Some(b))
}

/// Whether the program of `plan` is one this loader can run: found through the plan's
/// mounts, an x86-64 ELF (possibly behind `#!` lines) whose `PT_INTERP` loader, if
/// any, is in the sandbox too. A program that is not found passes: the run reports
/// that itself.
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
        Err(LoadError::NotFound) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let elf = parse(&prog.image).map_err(|e| e.to_string())?;
    if let Some(interp) = interp_path(&prog.image, &elf).map_err(|e| e.to_string())? {
        let img = open_image(&vfs, &root, &interp, false).map_err(|_| {
            format!(
                "{} needs its loader {}, which is not in the sandbox",
                String::from_utf8_lossy(&prog.path),
                String::from_utf8_lossy(&interp)
            )
        })?;
        parse(&img).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Where the loaded program starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// First instruction (the loader's, for a dynamic program).
    pub(crate) rip: u64,
    /// Initial stack pointer (at argc).
    pub(crate) rsp: u64,
}

/// Loads `prog` into the current address space of `mm` (which must be empty), with
/// its loader when it has one, and builds its initial stack.
pub(crate) fn load(
    mm: &mut AddressSpace,
    vfs: &Vfs,
    prog: &Program,
    env: &[Vec<u8>],
    user: (u32, u32),
    vdso: bool,
) -> Result<Entry, LoadError> {
    let path = &prog.path;
    let elf = parse(&prog.image)?;
    let (lo, _) = span(&elf, path)?;
    let bias = if elf.etype == ET_DYN {
        PIE_BASE.wrapping_sub(lo)
    } else {
        0
    };
    let end = map_segments(mm, &prog.image, &elf, bias)?;
    mm.insert(
        STACK_TOP - STACK_RESERVE,
        STACK_TOP,
        PROT_READ | PROT_WRITE,
        VmaKind::Anon,
    );
    mm.set_layout(end, STACK_TOP - STACK_RESERVE - STACK_GAP);
    let (start, base) = match interp_path(&prog.image, &elf)? {
        None => (bias.wrapping_add(elf.entry), 0),
        Some(ipath) => {
            let root = vfs.root();
            let img = open_image(vfs, &root, &ipath, false).map_err(|e| match e {
                LoadError::NotFound => not_exec(
                    path,
                    format!(
                        "its loader {} is not in the sandbox",
                        String::from_utf8_lossy(&ipath)
                    ),
                    errno::ENOENT,
                ),
                other => other,
            })?;
            let ielf = parse(&img)?;
            let (ilo, ihi) = span(&ielf, &img.path)?;
            let ibias = if ielf.etype == ET_DYN {
                // Placed where mmap would put it, as Linux does.
                let at = mm
                    .mmap(0, ihi - ilo, 0, Fixed::Hint, false, VmaKind::Anon)
                    .map_err(|_| LoadError::NoMemory)?;
                at.wrapping_sub(ilo)
            } else {
                0
            };
            map_segments(mm, &img, &ielf, ibias)?;
            (ibias.wrapping_add(ielf.entry), ibias)
        }
    };
    let aux = Aux {
        vdso,
        user,
        phdr: phdr_addr(&elf, bias),
        phnum: elf.phnum.into(),
        entry: bias.wrapping_add(elf.entry),
        base,
    };
    let rsp = build_stack(mm, &prog.argv, env, path, &aux)?;
    Ok(Entry { rip: start, rsp })
}

struct Aux {
    vdso: bool,
    user: (u32, u32),
    phdr: u64,
    phnum: u64,
    entry: u64,
    base: u64,
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
