//! Pausing a live sandbox: the cgroup freezer (v2 `cgroup.freeze`, else the v1 freezer
//! hierarchy). Without one, pause is refused with the reason: stopping processes with
//! SIGSTOP instead would be visible to the workload (its shells see their jobs stop),
//! so it is not done silently.

use sandbox_core::child::MemChild;
use std::ffi::CString;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cgroup::{Cgroup, Host};

/// How a sandbox can be frozen.
#[derive(Debug, Clone)]
pub(crate) enum Freezer {
    /// `cgroup.freeze` in the sandbox's v2 cgroup.
    V2(PathBuf),
    /// `freezer.state` in its v1 freezer leaf.
    V1(PathBuf),
    /// None: why.
    None(String),
}

impl Freezer {
    /// Creates the freezer leaf (v1) for `cg` before its processes are added.
    pub(crate) fn attach(host: &Host, cg: Option<&mut Cgroup>) -> Freezer {
        let Some(cg) = cg else {
            return Freezer::None(match host {
                Host::Unusable { reason } => format!("no usable cgroup ({reason})"),
                _ => "the sandbox has no cgroup".into(),
            });
        };
        if let Some(dir) = cg.v2_dir() {
            return Freezer::V2(dir.to_path_buf());
        }
        match host {
            Host::V1 {
                freezer: Some(base),
                ..
            } => {
                let dir = cg.v1_dir(base);
                match fs::create_dir(&dir) {
                    Ok(()) => {
                        cg.freezer = Some(dir.clone());
                        Freezer::V1(dir)
                    }
                    Err(e) => Freezer::None(format!("creating {}: {e}", dir.display())),
                }
            }
            _ => Freezer::None(
                "the cgroup v1 freezer hierarchy is not mounted or not writable".into(),
            ),
        }
    }

    /// In words, for the enforcement report.
    pub(crate) fn describe(&self) -> String {
        match self {
            Freezer::V2(_) => {
                "cgroup v2 cgroup.freeze (every process of the sandbox stopped)".into()
            }
            Freezer::V1(_) => "cgroup v1 freezer (every process of the sandbox stopped)".into(),
            Freezer::None(why) => format!("unavailable: {why}; pause is refused"),
        }
    }

    /// Freezes (`true`) or thaws, and waits until the kernel says it is done.
    pub(crate) fn set(&self, frozen: bool) -> io::Result<()> {
        let (file, value, done): (PathBuf, &str, Box<dyn Fn() -> bool>) = match self {
            Freezer::V2(dir) => {
                let events = dir.join("cgroup.events");
                let want = if frozen { "frozen 1" } else { "frozen 0" };
                (
                    dir.join("cgroup.freeze"),
                    if frozen { "1" } else { "0" },
                    Box::new(move || {
                        fs::read_to_string(&events).is_ok_and(|t| t.lines().any(|l| l == want))
                    }),
                )
            }
            Freezer::V1(dir) => {
                let state = dir.join("freezer.state");
                let want = if frozen { "FROZEN" } else { "THAWED" };
                (
                    state.clone(),
                    want,
                    Box::new(move || fs::read_to_string(&state).is_ok_and(|t| t.trim() == want)),
                )
            }
            Freezer::None(why) => {
                return Err(io::Error::new(io::ErrorKind::Unsupported, why.clone()));
            }
        };
        fs::write(&file, value)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} did not reach {value} within 5 s", file.display()),
                ));
            }
            // v1 stays FREEZING until every task stopped; writing again retries it.
            let _ = fs::write(&file, value);
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }
}

/// A process that thaws a frozen sandbox if this one dies (`kill -9` of a server or of
/// an embedding program) while the sandbox is paused.
///
/// The sandbox's processes die with their owner (a parent-death SIGKILL, and init's
/// PID namespace), but a frozen process does not act on SIGKILL until thawed: a paused
/// sandbox whose owner was killed stayed frozen for ever, its processes and memory
/// held. While the sandbox is paused, this small child of the owner waits on the
/// owner's pidfd; when the owner is gone it thaws the cgroup and SIGKILLs what is in
/// it, then exits. Resuming or destroying the sandbox drops it, which kills it.
///
/// The child shares the owner's memory ([`MemChild`]): a fork of a server holding
/// micro-VMs would make every guest page it writes while the sandbox is paused a
/// copy-on-write copy (guest memory doubled until the resume).
#[derive(Debug)]
pub(crate) struct ThawGuard {
    // Killed and reaped when dropped.
    _child: MemChild<GuardArgs>,
}

/// What the guard reads (see [`guard_main`]).
#[derive(Debug)]
struct GuardArgs {
    owner: libc::pid_t,
    file: CString,
    thawed: &'static [u8],
    procs: CString,
}

/// Bytes of the guard's stack (raw system calls and a 16 KiB buffer).
const GUARD_STACK: usize = 64 << 10;

impl ThawGuard {
    /// Starts the guard of `freezer`.
    pub(crate) fn start(freezer: &Freezer) -> io::Result<ThawGuard> {
        use std::os::unix::ffi::OsStrExt;
        let (file, thawed, procs) = match freezer {
            Freezer::V2(dir) => (dir.join("cgroup.freeze"), "0", dir.join("cgroup.procs")),
            Freezer::V1(dir) => (
                dir.join("freezer.state"),
                "THAWED",
                dir.join("cgroup.procs"),
            ),
            Freezer::None(why) => {
                return Err(io::Error::new(io::ErrorKind::Unsupported, why.clone()))
            }
        };
        let cstr = |p: &std::path::Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
        };
        let args = GuardArgs {
            // SAFETY: getpid has no preconditions.
            owner: unsafe { libc::getpid() },
            file: cstr(&file)?,
            thawed: thawed.as_bytes(),
            procs: cstr(&procs)?,
        };
        // SAFETY: `guard_main` makes raw system calls only, reads its GuardArgs, and
        // fits in GUARD_STACK (a 16 KiB buffer and a few locals).
        unsafe { MemChild::start(guard_main, args, 0, GUARD_STACK) }
            .map(|c| ThawGuard { _child: c })
    }
}

/// The guard's life (see [`ThawGuard`]): a child sharing the owner's memory and its
/// thread pointer, so raw system calls only, on its own stack and the [`GuardArgs`]
/// the owner keeps. Signals are blocked first (the owner's handlers would run here, on
/// its memory). It runs with the calling thread's thread pointer, so a failing call
/// sets that thread's `errno`: before the owner is gone, only `pidfd_open` on a kernel
/// without it can fail.
extern "C" fn guard_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the GuardArgs the owner keeps until this child is reaped.
    let a = unsafe { &*(arg as *const GuardArgs) };
    let all: u64 = !0;
    // SAFETY: rt_sigprocmask reads an 8-byte mask from a live local.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &all as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
    // Holds none of the owner's descriptors (a sandbox's channels end when the owner's
    // copies close), then watches the owner.
    // SAFETY: close_range takes two numbers and flags.
    unsafe { libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe {
        libc::syscall(
            libc::SYS_prctl,
            libc::PR_SET_NAME,
            c"hsb-thaw-guard".as_ptr(),
        )
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, a.owner, 0) } as libc::c_int;
    if pidfd >= 0 {
        let mut pfd = libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd for the call's duration.
        while unsafe {
            libc::syscall(
                libc::SYS_ppoll,
                &mut pfd as *mut libc::pollfd,
                1,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u64>(),
                8usize,
            )
        } < 0
        {}
    } else {
        // No pidfd (an old kernel): look for the owner once a second.
        let second = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        // SAFETY: kill with signal 0 only checks for the process's existence.
        while unsafe { libc::syscall(libc::SYS_kill, a.owner, 0) } == 0 {
            // SAFETY: nanosleep reads a live timespec; no remainder is asked.
            unsafe {
                libc::syscall(
                    libc::SYS_nanosleep,
                    &second as *const libc::timespec,
                    std::ptr::null_mut::<libc::timespec>(),
                )
            };
        }
    }
    let (rd, wr) = (
        libc::O_RDONLY | libc::O_CLOEXEC,
        libc::O_WRONLY | libc::O_CLOEXEC,
    );
    // SAFETY: `file` is a NUL-terminated path.
    let fd = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, a.file.as_ptr(), wr) }
        as libc::c_int;
    if fd >= 0 {
        // SAFETY: writes `thawed`, valid for its length, to the descriptor just opened.
        unsafe { libc::syscall(libc::SYS_write, fd, a.thawed.as_ptr(), a.thawed.len()) };
        // SAFETY: closes the descriptor just opened.
        unsafe { libc::syscall(libc::SYS_close, fd) };
    }
    // Thawed, a process with the parent-death SIGKILL pending dies; any other is killed
    // now.
    let mut buf = [0u8; 16384];
    // SAFETY: `procs` is a NUL-terminated path.
    let fd = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, a.procs.as_ptr(), rd) }
        as libc::c_int;
    if fd >= 0 {
        // SAFETY: reads at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) };
        // SAFETY: closes the descriptor just opened.
        unsafe { libc::syscall(libc::SYS_close, fd) };
        let mut pid: libc::pid_t = 0;
        for &b in &buf[..n.max(0) as usize] {
            if b.is_ascii_digit() {
                pid = pid
                    .saturating_mul(10)
                    .saturating_add(libc::pid_t::from(b - b'0'));
            } else {
                if pid > 0 {
                    // SAFETY: kill has no memory preconditions; `pid` is in the
                    // sandbox's cgroup.
                    unsafe { libc::syscall(libc::SYS_kill, pid, libc::SIGKILL) };
                }
                pid = 0;
            }
        }
    }
    0
}
