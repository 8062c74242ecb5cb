//! Terminals for `process.terminal`: a host pseudo-terminal whose master goes to the
//! engine over `--console-socket` (as runc sends it: `SCM_RIGHTS`, the pty's name as
//! the payload), and whose slave the supervisor relays, raw, to the terminal the
//! process has inside the sandbox (the live exec's own tty). The engine's resizes reach
//! the supervisor as SIGWINCH (the slave is its controlling terminal) and are passed on.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use hybrid_sandbox::TtySize;
use nix::sys::socket::{self, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType};
use nix::sys::termios;

/// A host pty pair.
#[derive(Debug)]
pub(crate) struct Pty {
    pub(crate) master: OwnedFd,
    pub(crate) slave: OwnedFd,
    pub(crate) name: String,
}

nix::ioctl_write_int_bad!(tiocsctty, libc::TIOCSCTTY);
nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);
nix::ioctl_read_bad!(tiocgwinsz, libc::TIOCGWINSZ, libc::winsize);

/// Opens a pty of `size`, the slave in raw mode (the sandbox's own terminal does the
/// line discipline).
pub(crate) fn open(size: Option<TtySize>) -> std::io::Result<Pty> {
    let ws = size.map(|s| nix::pty::Winsize {
        ws_row: s.rows,
        ws_col: s.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let p = nix::pty::openpty(ws.as_ref(), None)?;
    let mut t = termios::tcgetattr(&p.slave)?;
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(&p.slave, termios::SetArg::TCSANOW, &t)?;
    let name = std::fs::read_link(format!("/proc/self/fd/{}", p.slave.as_raw_fd()))
        .map(|l| l.display().to_string())
        .unwrap_or_default();
    for fd in [&p.master, &p.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
    }
    Ok(Pty {
        master: p.master,
        slave: p.slave,
        name,
    })
}

/// Makes `tty` the controlling terminal of this process (a session leader).
pub(crate) fn make_controlling(tty: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument and changes only this session's terminal.
    unsafe { tiocsctty(tty.as_raw_fd(), 0) }?;
    Ok(())
}

/// The size of a terminal.
pub(crate) fn size(tty: &impl AsRawFd) -> Option<TtySize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`.
    unsafe { tiocgwinsz(tty.as_raw_fd(), &mut ws) }.ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some(TtySize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// Sends `master` to the engine's console socket at `path`, as runc does.
pub(crate) fn send_master(path: &Path, master: &OwnedFd, name: &str) -> std::io::Result<()> {
    let s = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    super::ctl::with_addr(path, |addr| Ok(socket::connect(s.as_raw_fd(), addr)?))?;
    let payload = if name.is_empty() { "/dev/ptmx" } else { name };
    let iov = [IoSlice::new(payload.as_bytes())];
    let fds = [master.as_raw_fd()];
    socket::sendmsg::<()>(
        s.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    Ok(())
}

/// Puts the terminal on `fd` in raw mode and gives back how to restore it (for a
/// foreground `exec -t` on the caller's own terminal).
pub(crate) fn raw(fd: &impl std::os::fd::AsFd) -> Option<termios::Termios> {
    let old = termios::tcgetattr(fd).ok()?;
    let mut t = old.clone();
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(fd, termios::SetArg::TCSANOW, &t).ok()?;
    Some(old)
}

/// Undoes [`raw`].
pub(crate) fn restore(fd: &impl std::os::fd::AsFd, t: &termios::Termios) {
    let _ = termios::tcsetattr(fd, termios::SetArg::TCSANOW, t);
}

/// Points stdin, stdout and stderr at /dev/null. A process that outlives the runtime
/// command which started it (the supervisor of a container with a terminal, a detached
/// exec) must not hold that command's stdio: containerd's shim reads the runtime's
/// output through a pipe and waits for its end before it takes the console it was
/// sent, so a held pipe leaves `docker run -t`, `docker exec -t` and `kubectl exec -t`
/// with no terminal.
pub(crate) fn stdio_to_null() -> std::io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}
