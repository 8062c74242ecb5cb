//! One `connect(2)` of the workload: read once, decided, made by the supervisor.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Rules;

/// At most this many connects of one sandbox wait at once (a thread each).
const MAX_WAITING: usize = 256;

type Errno = i32;

/// What happens to one notification.
enum Verdict {
    /// Answer with this errno without connecting.
    Refuse(Errno),
    /// Connect `sock` to `addr` (bytes as the kernel takes them); `pin` keeps the
    /// checked socket inode open while `addr` names it through /proc/self/fd.
    Connect {
        sock: OwnedFd,
        addr: Vec<u8>,
        pin: Option<OwnedFd>,
    },
    /// The notifying thread is gone (killed, or its call interrupted): no answer.
    Gone,
}

/// The next notification, if one is still pending.
pub(super) fn receive(listener: &OwnedFd) -> Option<libc::seccomp_notif> {
    // SAFETY: all-zero is a valid seccomp_notif, and RECV requires it zeroed.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: RECV writes one seccomp_notif into `n`, whose size the ioctl encodes.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV as _,
            &mut n as *mut libc::seccomp_notif,
        )
    };
    // ENOENT: the task was killed or interrupted between the poll and here.
    (r == 0).then_some(n)
}

/// Decides `n` and answers it: at once, or from a thread of its own when the connect
/// may block (a blocking socket), so that one slow connect never holds up another.
pub(super) fn answer(listener: &Arc<OwnedFd>, rules: &Arc<Rules>, n: libc::seccomp_notif) {
    match decide(listener, rules, &n) {
        Verdict::Gone => {}
        Verdict::Refuse(e) => respond(listener, n.id, Err(e)),
        Verdict::Connect { sock, addr, pin } => {
            if nonblocking(&sock) {
                respond(listener, n.id, connect(&sock, &addr));
                drop(pin);
                return;
            }
            // Each waiting connect is a workload thread blocked in it, so these are
            // bounded by the pids limit; and by MAX_WAITING, beyond which a connect that
            // would wait answers EAGAIN.
            if rules.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
                rules.waiting.fetch_sub(1, Ordering::AcqRel);
                respond(listener, n.id, Err(libc::EAGAIN));
                return;
            }
            let l = Arc::clone(listener);
            let r2 = Arc::clone(rules);
            let id = n.id;
            let spawned = std::thread::Builder::new()
                .name("hsb-connect-one".into())
                .spawn(move || {
                    super::block_signals();
                    let r = connect(&sock, &addr);
                    drop(pin);
                    respond(&l, id, r);
                    r2.waiting.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_err() {
                rules.waiting.fetch_sub(1, Ordering::AcqRel);
                respond(listener, n.id, Err(libc::EAGAIN));
            }
        }
    }
}

fn decide(listener: &OwnedFd, rules: &Rules, n: &libc::seccomp_notif) -> Verdict {
    if i64::from(n.data.nr) != libc::SYS_connect {
        return Verdict::Refuse(libc::ENOSYS);
    }
    let tid = n.pid as libc::pid_t;
    // connect(int fd, const struct sockaddr *addr, socklen_t len): the kernel reads the
    // int arguments as the low 32 bits of their registers.
    let fd = n.data.args[0] as u32 as i32;
    let addr_ptr = n.data.args[1];
    let len = n.data.args[2] as u32 as i32;
    if !(0..=128).contains(&len) {
        return Verdict::Refuse(libc::EINVAL);
    }
    let pidfd = match pidfd_open(tid) {
        Ok(p) => p,
        Err(libc::ESRCH) => return Verdict::Gone,
        Err(e) => return Verdict::Refuse(e),
    };
    let mut addr = vec![0u8; len as usize];
    if len > 0 {
        if let Err(e) = read_memory(tid, addr_ptr, &mut addr) {
            return if e == libc::ESRCH {
                Verdict::Gone
            } else {
                Verdict::Refuse(e)
            };
        }
    }
    let sock = match pidfd_getfd(&pidfd, fd) {
        Ok(s) => s,
        Err(libc::ESRCH) => return Verdict::Gone,
        Err(e) => return Verdict::Refuse(e),
    };
    // The thread is still blocked in this call: `tid` was not reused, and what was read
    // from it is its own.
    if !id_valid(listener, n.id) {
        return Verdict::Gone;
    }
    if !is_socket(&sock) {
        return Verdict::Refuse(libc::ENOTSOCK);
    }
    let domain = sockopt(&sock, libc::SO_DOMAIN).unwrap_or(-1);
    let family = if addr.len() >= 2 {
        i32::from(u16::from_ne_bytes([addr[0], addr[1]]))
    } else {
        libc::AF_UNSPEC
    };
    match (domain, family) {
        (libc::AF_UNIX, libc::AF_UNIX) if addr.len() > 2 && addr[2] != 0 => {
            let end = addr[2..]
                .iter()
                .position(|&b| b == 0)
                .map_or(addr.len(), |p| p + 2);
            match resolve(tid, &addr[2..end], rules) {
                Ok(pin) => {
                    if !id_valid(listener, n.id) {
                        return Verdict::Gone;
                    }
                    let addr = proc_fd_address(pin.as_raw_fd());
                    Verdict::Connect {
                        sock,
                        addr,
                        pin: Some(pin),
                    }
                }
                Err(e) => Verdict::Refuse(e),
            }
        }
        (libc::AF_INET | libc::AF_INET6, libc::AF_INET | libc::AF_INET6)
            if rules.deny_inet_stream && sockopt(&sock, libc::SO_TYPE) == Ok(libc::SOCK_STREAM) =>
        {
            Verdict::Refuse(libc::EACCES)
        }
        // Abstract and unnamed UNIX addresses are looked up in the socket's own network
        // namespace (the sandbox's); other families go where the sandbox's namespace
        // routes them.
        _ => Verdict::Connect {
            sock,
            addr,
            pin: None,
        },
    }
}

/// The socket inode at `path` as the workload sees it, if it is one of the sandbox's
/// own: resolved in its root (symlinks too, never a magic link), from its working
/// directory when relative.
fn resolve(tid: libc::pid_t, path: &[u8], rules: &Rules) -> Result<OwnedFd, Errno> {
    let root = open_path(&format!("/proc/{tid}/root"), libc::O_DIRECTORY)?;
    let full = if path.first() == Some(&b'/') {
        path.to_vec()
    } else {
        let cwd = std::fs::read_link(format!("/proc/{tid}/cwd"))
            .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOENT))?;
        use std::os::unix::ffi::OsStrExt;
        let cwd = cwd.as_os_str().as_bytes();
        if !cwd.starts_with(b"/") || cwd.ends_with(b" (deleted)") {
            return Err(libc::ENOENT);
        }
        [cwd, b"/", path].concat()
    };
    let c = CString::new(full).map_err(|_| libc::EINVAL)?;
    let pin = openat2(
        root.as_raw_fd(),
        &c,
        (libc::O_PATH | libc::O_CLOEXEC) as u64,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )?;
    // SAFETY: all-zero is a valid stat buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a descriptor we own, into a valid buffer.
    if unsafe { libc::fstat(pin.as_raw_fd(), &mut st) } != 0 {
        return Err(last_errno());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        // What connect(2) itself answers for a path that is not a socket.
        return Err(libc::ECONNREFUSED);
    }
    if !rules.own_devs.contains(&st.st_dev) {
        // A socket reached through a mount of the host: never a way out.
        tracing::debug!(
            dev = st.st_dev,
            "refused a connect to a host UNIX socket through a mount"
        );
        return Err(libc::EACCES);
    }
    Ok(pin)
}

/// A sockaddr_un naming `/proc/self/fd/FD`: the exact inode that was checked.
fn proc_fd_address(fd: RawFd) -> Vec<u8> {
    let mut a = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
    a.extend_from_slice(format!("/proc/self/fd/{fd}").as_bytes());
    a.push(0);
    a
}

fn connect(sock: &OwnedFd, addr: &[u8]) -> Result<(), Errno> {
    // SAFETY: `addr` holds `addr.len()` bytes of a sockaddr as read from the workload
    // (or built above); the kernel copies and checks them.
    let r = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            addr.as_ptr().cast::<libc::sockaddr>(),
            addr.len() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

fn respond(listener: &OwnedFd, id: u64, r: Result<(), Errno>) {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: match r {
            Ok(()) => 0,
            Err(e) => -e,
        },
        flags: 0,
    };
    // SAFETY: SEND reads one seccomp_notif_resp from a valid pointer. ENOENT (the task
    // was killed or interrupted meanwhile) needs nothing more.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND as _,
            &resp as *const libc::seccomp_notif_resp,
        )
    };
}

fn id_valid(listener: &OwnedFd, id: u64) -> bool {
    // SAFETY: ID_VALID reads one u64 from a valid pointer.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID as _,
            &id as *const u64,
        ) == 0
    }
}

fn last_errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn owned(r: libc::c_long) -> Result<OwnedFd, Errno> {
    if r < 0 {
        Err(last_errno())
    } else {
        // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
    }
}

/// A pidfd for the thread `tid` (any thread, not only a process leader; before Linux
/// 6.9, which lacks PIDFD_THREAD, only a leader).
fn pidfd_open(tid: libc::pid_t) -> Result<OwnedFd, Errno> {
    const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
    let open = |flags: libc::c_uint| {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        owned(unsafe { libc::syscall(libc::SYS_pidfd_open, tid, flags) })
    };
    match open(PIDFD_THREAD) {
        Err(libc::EINVAL) => open(0),
        r => r,
    }
}

/// Our own reference to the workload's descriptor `fd`.
fn pidfd_getfd(pidfd: &OwnedFd, fd: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags, and returns a
    // new descriptor (close-on-exec) or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    owned(r)
}

/// Reads `buf.len()` bytes at `addr` of the thread `tid`'s address space.
fn read_memory(tid: libc::pid_t, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    use nix::sys::uio::{process_vm_readv, RemoteIoVec};
    let len = buf.len();
    let remote = [RemoteIoVec {
        base: addr as usize,
        len,
    }];
    let mut local = [std::io::IoSliceMut::new(buf)];
    match process_vm_readv(nix::unistd::Pid::from_raw(tid), &mut local, &remote) {
        Ok(n) if n == len => Ok(()),
        Ok(_) => Err(libc::EFAULT),
        Err(e) => Err(e as i32),
    }
}

fn is_socket(fd: &OwnedFd) -> bool {
    // SAFETY: all-zero is a valid stat buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a descriptor we own, into a valid buffer.
    let r = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
}

fn nonblocking(fd: &OwnedFd) -> bool {
    // SAFETY: F_GETFL on a descriptor we own.
    let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}

/// An integer SOL_SOCKET option.
fn sockopt(fd: &OwnedFd, opt: libc::c_int) -> Result<libc::c_int, Errno> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `v`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(v)
    } else {
        Err(last_errno())
    }
}

fn open_path(path: &str, extra: libc::c_int) -> Result<OwnedFd, Errno> {
    let c = CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: a valid C string; open returns a new descriptor or -1.
    let r = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | extra) };
    owned(r as libc::c_long)
}

fn openat2(dir: RawFd, path: &CString, flags: u64, resolve: u64) -> Result<OwnedFd, Errno> {
    // SAFETY: open_how is plain integers; all-zero is valid.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags;
    how.resolve = resolve;
    // SAFETY: a valid C string and open_how of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    owned(r)
}
