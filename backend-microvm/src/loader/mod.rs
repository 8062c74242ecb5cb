//! Finding a program in the sandbox and loading it into the current (empty) address
//! space: x86-64 ELF executables, static or dynamically linked (the `PT_INTERP`
//! loader, `ld-linux-x86-64.so.2`, is loaded from the sandbox's file view too), PIE or
//! not, and `#!` scripts; then the initial stack Linux builds (argc, argv, envp, auxv
//! with AT_PHDR, AT_ENTRY, AT_BASE, AT_RANDOM...).
//!
//! Segments are mapped, not copied: each is a private file mapping read at its first
//! touch (the `.bss` tail of its last file page reads as zeros), so a large program
//! costs only the pages it uses.

mod elf;
mod stack;

use std::rc::Rc;

use crate::errno::{self, Errno};
use crate::mm::{AddressSpace, Backing, Fixed, VmaKind, PROT_READ, PROT_WRITE};
use crate::vfs::{Location, Vfs};
use elf::{interp_path, map_segments, parse, phdr_addr, span, ET_DYN};
use stack::{build_stack, Aux};

/// Top of the initial stack.
pub(crate) const STACK_TOP: u64 = 0x7fff_fff0_0000;
/// Where a PIE executable is placed (Linux's `ELF_ET_DYN_BASE`, page-aligned).
const PIE_BASE: u64 = 0x5555_5555_4000;
/// Stack reserve (`RLIMIT_STACK`).
pub(super) const STACK_RESERVE: u64 = 8 << 20;
/// Gap between the stack's reserve and the mappings below it.
const STACK_GAP: u64 = 128 << 20;
/// Largest program file.
const MAX_PROGRAM: u64 = 1 << 32;
/// Largest argv + envp, as Linux's default (a quarter of an 8 MiB stack).
pub(crate) const MAX_ARGS: usize = 2 << 20;
/// `#!` lines longer than this are not read (Linux: 256).
const MAX_SHEBANG: usize = 256;
/// Nested `#!` interpreters followed.
const MAX_SHEBANG_DEPTH: u32 = 4;

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

pub(super) fn not_exec(path: &[u8], reason: impl Into<String>, errno: Errno) -> LoadError {
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
    // Programs are untrusted: they are read and parsed only on a confined VMM thread
    // (a fail-closed check of the setup order; the fuzz targets and unit tests drive
    // the loader on their own threads).
    #[cfg(not(any(test, feature = "fuzzing")))]
    if !crate::trap::confined() {
        return Err(not_exec(
            path,
            "the VMM reads programs only on its confined thread",
            errno::EACCES,
        ));
    }
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
    // As Linux's open_exec: the program, a `#!` interpreter and the ELF loader alike.
    if loc.node().noexec() {
        return Err(not_exec(path, "it is on a noexec mount", errno::EACCES));
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

pub(super) fn read_full(file: &dyn Backing, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
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

/// Whether the program of `plan` is one this loader can run: found through the plan's
/// mounts, an x86-64 ELF (possibly behind `#!` lines) whose `PT_INTERP` loader, if
/// any, is in the sandbox too. A program that is not found passes: the run reports
/// that itself.
///
/// The program is untrusted and this is asked from the caller's thread (when `auto`
/// chooses): the work is done on a thread of its own, confined as a VMM thread is
/// (seccomp allowlist, Landlock to the mounts, the sandbox's host identity) before
/// anything is read, and gone afterwards.
pub(crate) fn check_runnable(plan: &sandbox_core::Plan) -> Result<(), String> {
    crate::trap::install_handler()
        .map_err(|e| format!("cannot install the VMM's SIGSYS handler: {e}"))?;
    let plan = plan.clone();
    std::thread::Builder::new()
        .name("hsb-elf-check".into())
        .spawn(move || check_runnable_here(&plan))
        .map_err(|e| format!("cannot start the program check: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("the program check failed".into()))
}

/// [`check_runnable`] on the calling thread, which it confines for good.
fn check_runnable_here(plan: &sandbox_core::Plan) -> Result<(), String> {
    let budget = std::rc::Rc::new(crate::memory::Budget::detached(1 << 16));
    let vfs = match crate::vfs::build(plan, budget) {
        Ok(v) => v,
        Err(_) => return Ok(()),
    };
    crate::confine::confine_thread(vfs.sources())
        .map_err(|e| format!("cannot confine the program check: {e}"))?;
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
    if let Some(nr) = crate::trap::violation() {
        return Err(format!(
            "the program check made host syscall {nr}, off the VMM's allowlist"
        ));
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
    // What earlier runs read of these files is mapped now: no fault, no read.
    mm.prefault_cached(0, STACK_TOP);
    Ok(Entry { rip: start, rsp })
}
