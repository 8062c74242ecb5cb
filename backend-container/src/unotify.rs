//! The connect supervisor: a thread of the caller that answers the workload's
//! `connect(2)` calls, which a seccomp user-notification filter hands to it.
//!
//! Why: a pathname UNIX socket is found by its inode, across mount and network
//! namespaces, through read-only mounts, whatever the sandbox's network mode: a host
//! daemon's socket inside any mounted directory (an `ssh-agent` socket under a mounted
//! home, `docker.sock` under /run) would be a way out. Landlock scopes only abstract
//! sockets on this kernel generation, and seccomp cannot read a socket address. So every
//! `connect` comes here. The supervisor reads the address once, takes its own reference
//! to the workload's socket (`pidfd_getfd`), resolves a pathname in the sandbox's root,
//! accepts only sockets on the filesystems init created for the sandbox (its /tmp, an
//! image's writable layer; see [`crate::child::OwnDevs`]), and makes the connect itself,
//! on that socket, through `/proc/self/fd` of the inode it checked. It never answers
//! `SECCOMP_USER_NOTIF_FLAG_CONTINUE`: the kernel would read the address and the
//! descriptor again, after the check, when the workload may have changed both.
//!
//! Other families are connected the same way (the decision cannot be left to the kernel
//! without that race); under network `none`, stream connects of AF_INET/AF_INET6 get
//! EACCES as Landlock gives them, since the supervisor itself is not under Landlock.

mod connect;

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::child::OwnDevs;

/// What the supervisor allows.
#[derive(Debug)]
pub(crate) struct Rules {
    /// Devices of the sandbox's own filesystems: the only places a pathname socket may
    /// be reached in.
    pub(crate) own_devs: Vec<u64>,
    /// Network `none`: TCP connects are refused (EACCES), as Landlock refuses them.
    pub(crate) deny_inet_stream: bool,
    /// Connects being made on threads of their own (they may wait).
    pub(crate) waiting: std::sync::atomic::AtomicUsize,
}

/// A running supervisor. Dropping it stops the thread and waits for it.
#[derive(Debug)]
pub(crate) struct Supervisor {
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Takes the listener the workload sent before its exec (with the devices of the
    /// sandbox's own filesystems) from `notify`, and starts answering.
    pub(crate) fn start(notify: &OwnedFd, deny_inet_stream: bool) -> std::io::Result<Supervisor> {
        let (listener, own_devs) = receive_listener(notify)?;
        let rules = Rules {
            own_devs,
            deny_inet_stream,
            waiting: std::sync::atomic::AtomicUsize::new(0),
        };
        let (stop_r, stop_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let thread = std::thread::Builder::new()
            .name("hsb-connect".into())
            .spawn(move || serve(Arc::new(listener), stop_r, Arc::new(rules)))?;
        Ok(Supervisor {
            stop: Some(stop_w),
            thread: Some(thread),
        })
    }

    /// Stops answering (the sandbox is gone) and waits for the thread.
    pub(crate) fn stop(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The listener and the own devices, from the message the workload sent.
fn receive_listener(notify: &OwnedFd) -> std::io::Result<(OwnedFd, Vec<u64>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut data = [0u8; OwnDevs::SIZE];
    let mut space = nix::cmsg_space!(RawFd);
    let mut iov = [std::io::IoSliceMut::new(&mut data)];
    let msg = recvmsg::<()>(
        notify.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("the workload handed over no seccomp listener ({e})"),
        )
    })?;
    let mut listener = None;
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: SCM_RIGHTS installed this descriptor in our table just now;
                // nothing else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                listener.get_or_insert(owned);
            }
        }
    }
    let n = msg.bytes;
    let listener = listener.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the workload's message held no seccomp listener",
        )
    })?;
    Ok((listener, OwnDevs::from_bytes(&data[..n])))
}

/// The supervisor's loop: until the sandbox is gone (no task uses the filter any more)
/// or it is told to stop.
fn serve(listener: Arc<OwnedFd>, stop: OwnedFd, rules: Arc<Rules>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    block_signals();
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        let ready = |f: &PollFd<'_>| f.revents().unwrap_or(PollFlags::empty());
        if !ready(&fds[1]).is_empty() {
            return;
        }
        let l = ready(&fds[0]);
        if l.contains(PollFlags::POLLIN) {
            if let Some(n) = connect::receive(&listener) {
                connect::answer(&listener, &rules, n);
            }
        } else if !l.is_empty() {
            // POLLHUP: every task that used the filter has exited.
            return;
        }
    }
}

/// Signals meant for the caller's process never land on a supervisor thread (they
/// would interrupt a connect it makes for the workload).
pub(super) fn block_signals() {
    let all = nix::sys::signal::SigSet::all();
    let _ = all.thread_block();
}
