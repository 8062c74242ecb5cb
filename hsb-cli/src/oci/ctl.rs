//! The supervisor's control socket: `SOCK_SEQPACKET` (one JSON message per packet,
//! descriptors by `SCM_RIGHTS` with it), in the container's state directory, reachable
//! only by its owner (mode 0600 in a 0700 directory).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{
    self, AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag,
    SockType, UnixAddr,
};
use serde::{Deserialize, Serialize};

/// Largest message.
const MAX: usize = 1 << 20;

/// A request to the supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Request {
    /// Run config.json's process.
    Start,
    /// Signal the container's process (`all`: every process of the container).
    Kill {
        signal: i32,
        all: bool,
    },
    Pause,
    Resume,
    /// Host pids of the container (the supervisor and exec supervisors).
    Ps,
    /// Start a process in the running container; stdin, stdout, stderr come with it.
    Exec {
        process: super::config::ProcessSpec,
    },
    /// For a running exec: signal it.
    Signal {
        signal: i32,
    },
    /// Change the container's limits (`update`): each one set replaces the one in force.
    Update {
        limits: hybrid_sandbox::Limits,
    },
    /// For a running exec with a terminal: its new size.
    Resize {
        rows: u16,
        cols: u16,
    },
}

/// The supervisor's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    Ok,
    Error(String),
    Pids(Vec<i32>),
    /// An exec ended.
    Exit(super::state::Exit),
}

/// Binds the listening socket at `path`.
pub(crate) fn listen(path: &Path) -> std::io::Result<OwnedFd> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let _ = std::fs::remove_file(path);
    with_addr(path, |addr| Ok(socket::bind(fd.as_raw_fd(), addr)?))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    socket::listen(&fd, Backlog::new(64).unwrap_or(Backlog::MAXCONN))?;
    Ok(fd)
}

pub(crate) fn accept(listener: &OwnedFd) -> std::io::Result<OwnedFd> {
    let fd = socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC)?;
    // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Connects to the control socket at `path`.
pub(crate) fn connect(path: &Path) -> std::io::Result<OwnedFd> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    with_addr(path, |addr| Ok(socket::connect(fd.as_raw_fd(), addr)?))?;
    Ok(fd)
}

/// Calls `f` with an address for the socket at `path`. A socket address holds at most
/// 107 bytes of path, and engines' state directories are deeper than that (Podman's
/// `--root` plus a 64-hex-digit id): a longer path is reached through its directory,
/// opened here, as `/proc/self/fd/N/NAME`.
pub(crate) fn with_addr<R>(
    path: &Path,
    f: impl FnOnce(&UnixAddr) -> std::io::Result<R>,
) -> std::io::Result<R> {
    const SUN_PATH: usize = 107;
    if path.as_os_str().len() <= SUN_PATH {
        return f(&UnixAddr::new(path)?);
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a socket path", path.display()),
        ));
    };
    let dir = std::fs::File::open(parent)?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    let r = f(&UnixAddr::new(&short)?);
    drop(dir);
    r
}

/// Sends one message with `fds`.
pub(crate) fn send<T: Serialize>(sock: &OwnedFd, msg: &T, fds: &[RawFd]) -> std::io::Result<()> {
    let data = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    let iov = [IoSlice::new(&data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
    loop {
        match socket::sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message and the descriptors that came with it; `None` at end of stream.
pub(crate) fn recv<T: for<'de> Deserialize<'de>>(
    sock: &impl AsFd,
) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let (n, fds) = loop {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        match socket::recvmsg::<()>(
            sock.as_fd().as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => {
                let mut fds = Vec::new();
                for c in m.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(list) = c {
                        // SAFETY: the kernel just installed these descriptors for us.
                        fds.extend(list.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
                    }
                }
                break (m.bytes, fds);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let msg = serde_json::from_slice(&buf[..n]).map_err(std::io::Error::other)?;
    Ok(Some((msg, fds)))
}

/// One request, one reply (for the commands that only ask).
pub(crate) fn call(path: &Path, req: &Request) -> std::io::Result<Reply> {
    let s = connect(path)?;
    send(&s, req, &[])?;
    match recv::<Reply>(&s)? {
        Some((r, _)) => Ok(r),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the container's supervisor closed the connection",
        )),
    }
}

/// The uid and pid of the peer of a connected socket.
pub(crate) fn peer(sock: &OwnedFd) -> Option<(u32, i32)> {
    let c = socket::getsockopt(sock, socket::sockopt::PeerCredentials).ok()?;
    Some((c.uid(), c.pid()))
}
