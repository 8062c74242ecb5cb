//! Pausing a live sandbox: the cgroup freezer (v2 `cgroup.freeze`, else the v1 freezer
//! hierarchy). Without one, pause is refused with the reason: stopping processes with
//! SIGSTOP instead would be visible to the workload (its shells see their jobs stop),
//! so it is not done silently.

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
/// it, then exits. Resuming or destroying the sandbox kills it ([`Drop`]).
#[derive(Debug)]
pub(crate) struct ThawGuard {
    pid: libc::pid_t,
}

impl ThawGuard {
    /// Starts the guard of `freezer` (frozen now).
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
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
        };
        // Everything the child needs is made before the fork: after it, in a copy of a
        // multithreaded process, it makes raw system calls only (no allocation).
        let (file, procs) = (cstr(&file)?, cstr(&procs)?);
        // SAFETY: getpid has no preconditions.
        let owner = unsafe { libc::getpid() };
        // SAFETY: the child runs `guard_child` only, which makes async-signal-safe
        // system calls on memory made before the fork, and never returns.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => guard_child(owner, &file, thawed.as_bytes(), &procs),
            pid => Ok(ThawGuard { pid }),
        }
    }
}

impl Drop for ThawGuard {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; `pid` is this process's own child,
        // not reaped before (only here), so it names the guard.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        // SAFETY: a null status pointer is allowed; reaps the child just killed.
        unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) };
    }
}

/// The guard's life (see [`ThawGuard`]): raw system calls on memory made before the
/// fork (a copy of a multithreaded process may not allocate).
fn guard_child(
    owner: libc::pid_t,
    file: &std::ffi::CStr,
    thawed: &[u8],
    procs: &std::ffi::CStr,
) -> ! {
    // Holds none of the owner's descriptors (a sandbox's channels end when the owner's
    // copies close), then watches the owner.
    // SAFETY: close_range takes two numbers and flags.
    unsafe { libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"hsb-thaw-guard".as_ptr()) };
    // SAFETY: pidfd_open takes a pid and flags and returns a descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, owner, 0) } as libc::c_int;
    if pidfd >= 0 {
        let mut pfd = libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd for the call's duration.
        while unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {}
    } else {
        // No pidfd (an old kernel): look for the owner once a second.
        // SAFETY: kill with signal 0 only checks for the process's existence.
        while unsafe { libc::kill(owner, 0) } == 0 {
            // SAFETY: sleep has no preconditions.
            unsafe { libc::sleep(1) };
        }
    }
    // SAFETY: `file` is a NUL-terminated path.
    let fd = unsafe { libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: writes `thawed`, valid for its length, to the descriptor just opened.
        unsafe { libc::write(fd, thawed.as_ptr().cast(), thawed.len()) };
        // SAFETY: closes the descriptor just opened.
        unsafe { libc::close(fd) };
    }
    // Thawed, a process with the parent-death SIGKILL pending dies; any other is killed
    // now.
    let mut buf = [0u8; 16384];
    // SAFETY: `procs` is a NUL-terminated path.
    let fd = unsafe { libc::open(procs.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: reads at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        // SAFETY: closes the descriptor just opened.
        unsafe { libc::close(fd) };
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
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                pid = 0;
            }
        }
    }
    // SAFETY: ends this process (the fork's child) without running the owner's exit
    // handlers.
    unsafe { libc::_exit(0) }
}
