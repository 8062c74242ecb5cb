//! A live sandbox's init: after building the sandbox exactly as for a run, it serves the
//! host's requests instead of forking one workload. It starts each exec (and the file
//! server) by forking a process that confines itself with the same steps as a run's
//! workload (`child::exec_confined`), reaps every process, and reports each exec's end.
//!
//! Everything here runs in a fork of a possibly multithreaded caller: raw system calls
//! on fixed buffers (the records of [`super::wire`]), no allocation, no lock. Requests
//! are fixed-size records; an exec's strings arrive in a memfd that only the exec's own
//! process maps and reads.

use std::os::fd::RawFd;

use libc::c_int;

use super::sock::{self, MAX_FDS};
use super::wire::{self, ExecHeader, Msg};
use crate::child::{self, Candidates, ChildSpec, ExecParams, Stage};
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
pub(crate) fn serve(spec: &ChildSpec, ctl: RawFd) -> ! {
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
            match sys::fork() {
                Ok(0) => exec_main(spec, ctl, sigfd, msg.a, fds),
                Ok(pid) => {
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
                    leave_init(ctl, sigfd);
                    super::fileserver::serve(spec, fds[0])
                }
                Ok(pid) => {
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

fn report(chan: RawFd, stage: Stage, errno: Errno) {
    let rec = child::ErrorRecord {
        stage: stage as u32,
        errno,
        index: 0,
    };
    let _ = sock::send(chan, &rec.to_bytes(), &[]);
}

/// What a process forked from init drops of init's state first.
fn leave_init(ctl: RawFd, sigfd: RawFd) {
    sys::close(ctl);
    sys::close(sigfd);
    sigmask(libc::SIG_SETMASK, 0);
}

/// An exec's process: maps its request, sets up a terminal if asked, and runs the
/// program confined exactly as a run's workload is.
fn exec_main(spec: &ChildSpec, ctl: RawFd, sigfd: RawFd, flags: u32, fds: &[RawFd]) -> ! {
    leave_init(ctl, sigfd);
    let (memfd, chan) = (fds[0], fds[1]);
    let tty = flags & wire::EXEC_TTY != 0;
    let with_stdin = flags & wire::EXEC_STDIN != 0;
    let stdio_fds = &fds[2..];
    let want = if tty { 0 } else { 2 + usize::from(with_stdin) };
    if stdio_fds.len() != want {
        child::fail_to(chan, Stage::Stdio, libc::EBADF, 0)
    }
    let map = match map_request(memfd) {
        Ok(m) => m,
        Err(err) => child::fail_to(chan, Stage::Setup, err, 0),
    };
    let Some(h) = ExecHeader::parse(map) else {
        child::fail_to(chan, Stage::Setup, libc::EINVAL, 0)
    };
    let strings = h.strings(map);
    let mut it = wire::CStrs::new(strings);
    let cwd = it.next().unwrap_or(c"/");
    let cand_start = cwd.to_bytes_with_nul().len();
    for _ in 0..h.ncand {
        it.next();
    }
    // The argv and envp arrays, in the private mapping's pointer area.
    let ptrs = map[h.ptrs_off as usize..].as_ptr() as *mut *const libc::c_char;
    let mut k = 0usize;
    for _ in 0..h.argc {
        let s = it.next().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: the header check guarantees room for argc + envc + 2 pointers at
        // ptrs_off, inside this process's private, writable mapping.
        unsafe { ptrs.add(k).write(s) };
        k += 1;
    }
    // SAFETY: as above (the argv terminator).
    unsafe { ptrs.add(k).write(std::ptr::null()) };
    k += 1;
    let envp_at = k;
    for _ in 0..h.envc {
        let s = it.next().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: as above.
        unsafe { ptrs.add(k).write(s) };
        k += 1;
    }
    // SAFETY: as above (the envp terminator).
    unsafe { ptrs.add(k).write(std::ptr::null()) };

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
            argv: ptrs,
            // SAFETY: envp_at is within the pointer area (see above).
            envp: unsafe { ptrs.add(envp_at) },
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
    if len < ExecHeader::SIZE || len > 64 << 20 {
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
