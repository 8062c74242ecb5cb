//! A live sandbox's init: after building the sandbox exactly as for a run, it serves the
//! host's requests instead of forking one workload. It starts each exec with a process
//! that shares its memory until its `execve` (`spawn_exec`) and the file server with a
//! fork; each confines itself with the same steps as a run's workload
//! (`child::exec_confined`). It reaps every process and reports each exec's end.
//!
//! Everything here runs in a fork of a possibly multithreaded caller: raw system calls
//! on fixed buffers (the records of [`super::wire`]), no allocation, no lock. Requests
//! are fixed-size records; an exec's strings arrive in a memfd that only the exec's own
//! process maps and reads.

use std::os::fd::RawFd;

use libc::c_int;

use super::sock::{self, MAX_FDS};
use super::wire::{self, ExecHeader, Msg};
use crate::child::{self, Candidates, ChildSpec, ExecParams, OwnDevs, Stage};
use crate::sys::{self, Errno};

#[derive(Clone, Copy)]
struct Slot {
    pid: c_int,
    id: u64,
}

const FREE: Slot = Slot { pid: 0, id: 0 };

fn raw(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(ret)
    }
}

/// Blocks (`how` = SIG_BLOCK) or sets the signal mask to `mask`.
fn sigmask(how: c_int, mask: u64) {
    // SAFETY: rt_sigprocmask reads 8 bytes of mask from a live stack value.
    let _ = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            how,
            &mask as *const u64,
            std::ptr::null_mut::<u64>(),
            8,
        )
    };
}

const SIGCHLD_MASK: u64 = 1 << (libc::SIGCHLD - 1);

/// Serves the host until it goes away. Never returns.
pub(crate) fn serve(spec: &ChildSpec, ctl: RawFd, own: &OwnDevs) -> ! {
    // Descriptors 0..2 stay taken (by /dev/null), so that descriptors received later are
    // never among those an exec's process moves its stdio onto.
    if let Ok(null) = sys::openat(libc::AT_FDCWD, c"/dev/null", libc::O_RDWR, 0) {
        for fd in 0..3 {
            if fd != null {
                let _ = sys::dup2(null, fd);
            }
        }
        if null > 2 {
            sys::close(null);
        }
    }
    sigmask(libc::SIG_BLOCK, SIGCHLD_MASK);
    // SAFETY: signalfd4 reads 8 bytes of mask from a live stack value.
    let sigfd = match raw(unsafe {
        libc::syscall(
            libc::SYS_signalfd4,
            -1,
            &SIGCHLD_MASK as *const u64,
            8,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        )
    }) {
        Ok(fd) => fd as RawFd,
        Err(err) => child::fail(spec, Stage::Setup, err, 0),
    };
    // The OOM killer should pick the workload, never init: a helper outside the
    // sandbox's Landlock domain raises each new process's oom_score_adj (under the
    // domain, /proc is read-only).
    let oom = start_oom_helper();
    // One Landlock domain for the whole sandbox, entered here by init (PID 1, which the
    // workload cannot signal): every exec and the file server inherit it, so execs can
    // signal and reach each other as processes of one container do.
    if let Some(rs) = spec.ruleset {
        if let Err(err) = sys::landlock_restrict_self(rs) {
            child::fail(spec, Stage::Landlock, err, u32::MAX)
        }
        sys::close(rs);
    }
    child::confine_init(spec, own);
    // The error pipe last: its end tells the host that the sandbox is ready.
    sys::close(spec.sync_r);
    sys::close(spec.err_w);

    let mut slots = [FREE; wire::MAX_EXECS];
    loop {
        let mut p = [
            libc::pollfd {
                fd: ctl,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sigfd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll writes only the `revents` of the two live entries.
        match raw(unsafe { libc::syscall(libc::SYS_poll, p.as_mut_ptr(), 2, -1) }) {
            Ok(_) => {}
            Err(libc::EINTR) => continue,
            Err(_) => sys::exit(1),
        }
        if p[1].revents != 0 {
            let mut info = [0u8; 128];
            while sys::read(sigfd, &mut info).is_ok_and(|n| n > 0) {}
            reap(ctl, &mut slots);
        }
        if p[0].revents & libc::POLLIN != 0 {
            let mut buf = [0u8; Msg::SIZE];
            let mut fds = [-1; MAX_FDS];
            match sock::recv(ctl, &mut buf, &mut fds, libc::MSG_DONTWAIT) {
                Ok((0, 0)) => sys::exit(0),
                Ok((n, nfds)) => {
                    if n == Msg::SIZE {
                        handle(
                            spec,
                            ctl,
                            sigfd,
                            oom,
                            &mut slots,
                            Msg::from_bytes(&buf),
                            &fds[..nfds],
                        );
                    }
                    for &fd in &fds[..nfds] {
                        sys::close(fd);
                    }
                }
                Err(libc::EAGAIN) => {}
                // The host is gone: leaving tears the sandbox down (init's death kills
                // every process of its PID namespace).
                Err(_) => sys::exit(0),
            }
        } else if p[0].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            sys::exit(0)
        }
    }
}

/// Reaps every process that ended; reports execs to the host.
fn reap(ctl: RawFd, slots: &mut [Slot; wire::MAX_EXECS]) {
    loop {
        let mut status: c_int = 0;
        // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = sys::wait_any(&mut status, &mut usage);
        let pid = match r {
            Ok(0) | Err(_) => return,
            Ok(pid) => pid as c_int,
        };
        if let Some(slot) = slots.iter_mut().find(|s| s.pid == pid) {
            let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
            let msg = Msg {
                kind: wire::MSG_EXITED,
                a: status as u32,
                id: slot.id,
                b: tv(usage.ru_utime) + tv(usage.ru_stime),
                c: usage.ru_maxrss as u64,
            };
            *slot = FREE;
            let _ = sock::send(ctl, &msg.to_bytes(), &[]);
        }
    }
}

fn handle(
    spec: &ChildSpec,
    ctl: RawFd,
    sigfd: RawFd,
    oom: RawFd,
    slots: &mut [Slot; wire::MAX_EXECS],
    msg: Msg,
    fds: &[RawFd],
) {
    match msg.kind {
        wire::MSG_EXEC if fds.len() >= 2 => {
            let chan = fds[1];
            let Some(free) = slots.iter().position(|s| s.pid == 0) else {
                report(chan, Stage::Fork, libc::EAGAIN);
                return;
            };
            let ctx = ExecCtx {
                spec,
                flags: msg.a,
                fds,
                ctl,
                sigfd,
                oom,
                request: std::cell::Cell::new((0, 0)),
            };
            let started = spawn_exec(&ctx);
            // The exec's process has run its program or ended: the request it mapped
            // (in this address space, shared until then) goes.
            let (at, len) = ctx.request.get();
            if len != 0 {
                // SAFETY: the exec's process mapped exactly this range for its request
                // and no longer runs in this address space; nothing else refers to it.
                let _ = unsafe { libc::syscall(libc::SYS_munmap, at, len) };
            }
            match started {
                Ok(pid) => {
                    prefer_for_oom(oom, pid as c_int);
                    slots[free] = Slot {
                        pid: pid as c_int,
                        id: msg.id,
                    }
                }
                Err(err) => report(chan, Stage::Fork, err),
            }
        }
        wire::MSG_FILES if fds.len() == 1 => {
            let Some(free) = slots.iter().position(|s| s.pid == 0) else {
                return;
            };
            match sys::fork() {
                Ok(0) => {
                    leave_init(ctl, sigfd, oom);
                    super::fileserver::serve(spec, fds[0])
                }
                Ok(pid) => {
                    prefer_for_oom(oom, pid as c_int);
                    slots[free] = Slot {
                        pid: pid as c_int,
                        id: wire::FILES_ID,
                    }
                }
                Err(_) => {}
            }
        }
        wire::MSG_SIGNAL => {
            if let Some(s) = slots.iter().find(|s| s.pid != 0 && s.id == msg.id) {
                let target = if msg.b == 1 { -s.pid } else { s.pid };
                let _ = sys::kill(target, msg.a as c_int);
            }
        }
        _ => {}
    }
}

/// What an exec's process starts from (see [`spawn_exec`]).
struct ExecCtx<'a> {
    spec: &'a ChildSpec,
    flags: u32,
    fds: &'a [RawFd],
    ctl: RawFd,
    sigfd: RawFd,
    oom: RawFd,
    /// Where the process mapped its request (address, length), for init to unmap.
    request: std::cell::Cell<(usize, usize)>,
}

/// The stack an exec's process runs on until its `execve`: one at a time (init waits
/// for each, see [`spawn_exec`]).
struct ExecStack(std::cell::UnsafeCell<[u128; EXEC_STACK / 16]>);

const EXEC_STACK: usize = 256 << 10;

// SAFETY: only init's one thread and the one exec process it waits for use the stack,
// never at the same time.
unsafe impl Sync for ExecStack {}

static STACK: ExecStack = ExecStack(std::cell::UnsafeCell::new([0; EXEC_STACK / 16]));

/// Starts an exec's process as `posix_spawn` does: `CLONE_VM | CLONE_VFORK`, on its own
/// stack, so that init's memory is never copied for a process that replaces it at
/// once (a fork of init copies the page tables of the library's caller that init was
/// forked from). Init waits until the process has called `execve` or ended; the
/// process has its own descriptors, signal mask, limits, working directory and
/// session, all it changes before its program runs. Returns its pid.
fn spawn_exec(ctx: &ExecCtx<'_>) -> Result<libc::pid_t, Errno> {
    extern "C" fn child(arg: *mut libc::c_void) -> c_int {
        // SAFETY: `arg` is the `ExecCtx` of `spawn_exec`, alive while init waits for
        // this process to exec or end (CLONE_VFORK).
        let ctx = unsafe { &*(arg as *const ExecCtx<'_>) };
        leave_init(ctx.ctl, ctx.sigfd, ctx.oom);
        exec_main(ctx.spec, ctx.flags, ctx.fds, &ctx.request)
    }
    let top = STACK.0.get() as usize + EXEC_STACK;
    // SAFETY: the child runs `child` on the static stack, which nothing else uses while
    // init is suspended (CLONE_VFORK); it shares init's memory until its execve or
    // exit and writes only its own stack and `ctx.request` there.
    let pid = unsafe {
        libc::clone(
            child,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            ctx as *const ExecCtx<'_> as *mut libc::c_void,
        )
    };
    raw(libc::c_long::from(pid)).map(|p| p as libc::pid_t)
}

fn report(chan: RawFd, stage: Stage, errno: Errno) {
    let rec = child::ErrorRecord {
        stage: stage as u32,
        errno,
        index: 0,
    };
    let _ = sock::send(chan, &rec.to_bytes(), &[]);
}

/// What a process forked from init drops of init's state first.
fn leave_init(ctl: RawFd, sigfd: RawFd, oom: RawFd) {
    sys::close(ctl);
    sys::close(sigfd);
    if oom >= 0 {
        sys::close(oom);
    }
    sigmask(libc::SIG_SETMASK, 0);
}

/// Forks the OOM helper (before init enters the Landlock domain); returns init's end
/// of its socket (non-blocking), or -1 without one.
fn start_oom_helper() -> RawFd {
    let Ok((mine, theirs)) = sock::seqpacket_pair() else {
        return -1;
    };
    match sys::fork() {
        Ok(0) => {
            sys::close(mine);
            oom_helper(theirs)
        }
        Ok(_) => {
            sys::close(theirs);
            // SAFETY: F_SETFL on a descriptor we own.
            let _ =
                unsafe { libc::syscall(libc::SYS_fcntl, mine, libc::F_SETFL, libc::O_NONBLOCK) };
            mine
        }
        Err(_) => {
            sys::close(mine);
            sys::close(theirs);
            -1
        }
    }
}

/// Asks the helper to make `pid` the OOM killer's first choice (best effort: a full
/// socket drops the request rather than stall init).
fn prefer_for_oom(oom: RawFd, pid: c_int) {
    if oom >= 0 {
        let _ = sock::send_flags(oom, &pid.to_le_bytes(), libc::MSG_DONTWAIT);
    }
}

/// How many processes the OOM helper waits on at once, and how often it tries each
/// (every millisecond, for a second).
const OOM_PENDING: usize = 256;
const OOM_TRIES: u16 = 1000;

/// The helper: makes each pid init sends the OOM killer's first choice by writing 1000
/// to /proc/PID/oom_score_adj. Until the process has exec'd its program it is a copy of
/// init's non-dumpable memory and its /proc files belong to the namespace's (unmapped)
/// root, so the helper retries each one every millisecond until the exec (or for a
/// second). It holds nothing else; outside the sandbox's Landlock domain, no workload
/// can signal it.
fn oom_helper(sock_fd: RawFd) -> ! {
    sigmask(libc::SIG_SETMASK, 0);
    child::close_others_above(2, &[sock_fd]);
    let mut pending = [(0u32, 0u16); OOM_PENDING];
    loop {
        let busy = pending.iter().any(|p| p.0 != 0);
        let mut pfd = libc::pollfd {
            fd: sock_fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll writes only the `revents` of the one live entry.
        let _ = unsafe {
            libc::syscall(
                libc::SYS_poll,
                &mut pfd as *mut libc::pollfd,
                1,
                if busy { 1 } else { -1 },
            )
        };
        if pfd.revents != 0 {
            let mut buf = [0u8; 4];
            let mut fds = [-1; MAX_FDS];
            match sock::recv(sock_fd, &mut buf, &mut fds, libc::MSG_DONTWAIT) {
                Ok((4, _)) => {
                    let pid = u32::from_le_bytes(buf);
                    if let Some(slot) = pending.iter_mut().find(|p| p.0 == 0) {
                        *slot = (pid, 0);
                    }
                }
                Ok((0, 0)) => sys::exit(0),
                Err(libc::EAGAIN) | Ok(_) => {}
                Err(_) => sys::exit(0),
            }
        }
        for p in pending.iter_mut().filter(|p| p.0 != 0) {
            match raise_oom(p.0) {
                Err(libc::EACCES) | Err(libc::EPERM) if p.1 < OOM_TRIES => p.1 += 1,
                _ => *p = (0, 0),
            }
        }
    }
}

fn raise_oom(pid: u32) -> Result<(), Errno> {
    let mut path = [0u8; 48];
    let mut at = 0;
    for b in b"/proc/" {
        path[at] = *b;
        at += 1;
    }
    let mut digits = [0u8; 10];
    let (mut n, mut len) = (pid, 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        path[at] = digits[len - 1 - i];
        at += 1;
    }
    for b in b"/oom_score_adj\0" {
        path[at] = *b;
        at += 1;
    }
    let p = std::ffi::CStr::from_bytes_with_nul(&path[..at]).map_err(|_| libc::EINVAL)?;
    let fd = sys::openat(libc::AT_FDCWD, p, libc::O_WRONLY | libc::O_CLOEXEC, 0)?;
    let r = sys::write_all(fd, b"1000");
    sys::close(fd);
    r
}

/// An exec's process: maps its request, sets up a terminal if asked, and runs the
/// program confined exactly as a run's workload is.
fn exec_main(
    spec: &ChildSpec,
    flags: u32,
    fds: &[RawFd],
    mapped: &std::cell::Cell<(usize, usize)>,
) -> ! {
    let (memfd, chan) = (fds[0], fds[1]);
    let tty = flags & wire::EXEC_TTY != 0;
    let with_stdin = flags & wire::EXEC_STDIN != 0;
    let mut stdio_fds = &fds[2..];
    if flags & wire::EXEC_CGROUP != 0 {
        // Its own cgroup first: every process it starts is counted there.
        let Some((&procs, rest)) = stdio_fds.split_last() else {
            child::fail_to(chan, Stage::Cgroup, libc::EBADF, 0)
        };
        if let Err(err) = sys::write_all(procs, b"0") {
            child::fail_to(chan, Stage::Cgroup, err, 0)
        }
        sys::close(procs);
        stdio_fds = rest;
    }
    let want = if tty { 0 } else { 2 + usize::from(with_stdin) };
    if stdio_fds.len() != want {
        child::fail_to(chan, Stage::Stdio, libc::EBADF, 0)
    }
    let map = match map_request(memfd) {
        Ok(m) => {
            mapped.set((m.as_ptr() as usize, m.len()));
            m
        }
        Err(err) => child::fail_to(chan, Stage::Setup, err, 0),
    };
    let Some(h) = ExecHeader::parse(map) else {
        child::fail_to(chan, Stage::Setup, libc::EINVAL, 0)
    };
    // The strings before the pointer area, the argv and envp arrays in it (this
    // process's private mapping; page-aligned, the area 8-aligned).
    let (head, ptr_area) = map.split_at_mut(h.ptrs_off as usize);
    let strings = h.strings(head);
    let mut it = wire::CStrs::new(strings);
    let cwd = it.next().unwrap_or(c"/");
    let cand_start = cwd.to_bytes_with_nul().len();
    for _ in 0..h.ncand {
        it.next();
    }
    let mut slots = ptr_area.chunks_exact_mut(8);
    let mut put = |p: *const libc::c_char| {
        if let Some(slot) = slots.next() {
            slot.copy_from_slice(&(p as usize).to_ne_bytes());
        }
    };
    for _ in 0..h.argc {
        put(it.next().map_or(std::ptr::null(), |c| c.as_ptr()));
    }
    put(std::ptr::null());
    for _ in 0..h.envc {
        put(it.next().map_or(std::ptr::null(), |c| c.as_ptr()));
    }
    put(std::ptr::null());
    let argv = ptr_area.as_ptr() as *const *const libc::c_char;
    let envp = ptr_area[(h.argc as usize + 1) * 8..].as_ptr() as *const *const libc::c_char;

    let (stdin, stdout, stderr) = if tty {
        let slave = match open_pty(chan, h.rows, h.cols) {
            Ok(fd) => fd,
            Err(err) => child::fail_to(chan, Stage::Stdio, err, 1),
        };
        (Some(slave), slave, slave)
    } else if with_stdin {
        (Some(stdio_fds[0]), stdio_fds[1], stdio_fds[2])
    } else {
        (None, stdio_fds[0], stdio_fds[1])
    };
    let cpu = (h.cpu_soft != u64::MAX).then_some((h.cpu_soft, h.cpu_hard));
    child::exec_confined(
        spec,
        &ExecParams {
            err_w: chan,
            stdin,
            stdout,
            stderr,
            cwd,
            candidates: Candidates {
                block: &strings[cand_start..],
                count: h.ncand as usize,
            },
            argv,
            envp,
            cpu,
        },
    )
}

/// Maps the request memfd privately (its pointer area is written here, never seen by
/// anyone else).
fn map_request(memfd: RawFd) -> Result<&'static mut [u8], Errno> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes only into `st`.
    raw(unsafe { libc::syscall(libc::SYS_fstat, memfd, &mut st as *mut libc::stat) })?;
    let len = st.st_size as usize;
    if !(ExecHeader::SIZE..=64 << 20).contains(&len) {
        return Err(libc::E2BIG);
    }
    // SAFETY: a fresh private mapping of the memfd; nothing else refers to that range.
    let p = raw(unsafe {
        libc::syscall(
            libc::SYS_mmap,
            0usize,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE,
            memfd,
            0usize,
        )
    })?;
    // SAFETY: the mapping is `len` bytes, readable and writable, for the rest of this
    // process's life (it is never unmapped), and only this slice refers to it.
    Ok(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, len) })
}

/// Opens a pseudo-terminal of the sandbox's own devpts, makes it this (new session's)
/// controlling terminal, hands the master to the host over `chan`; returns the slave.
fn open_pty(chan: RawFd, rows: u16, cols: u16) -> Result<RawFd, Errno> {
    let _ = sys::setsid();
    let master = sys::openat(
        libc::AT_FDCWD,
        c"/dev/ptmx",
        libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        0,
    )?;
    let unlock: c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int from a live stack value.
    raw(unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            master,
            libc::TIOCSPTLCK,
            &unlock as *const c_int,
        )
    })?;
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor.
    let slave = raw(unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            master,
            libc::TIOCGPTPEER,
            (libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) as libc::c_ulong,
        )
    })? as RawFd;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from a live stack value.
    raw(unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            slave,
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    })?;
    // SAFETY: TIOCSCTTY takes an int by value.
    raw(unsafe { libc::syscall(libc::SYS_ioctl, slave, libc::TIOCSCTTY, 0) })?;
    sock::send(chan, &[wire::CHAN_PTY], &[master])?;
    sys::close(master);
    Ok(slave)
}
