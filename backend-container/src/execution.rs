//! Killing a container sandbox through its init's pidfd, and the guard that makes sure
//! nothing of it is left behind. (Execs and their supervision: `live/exec.rs`.)

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sandbox_core::Termination;

use crate::cgroup::Cgroup;

/// Kills the sandbox through its init's pidfd (no pid reuse race), once, remembering why.
#[derive(Debug)]
pub(crate) struct KillState {
    pidfd: OwnedFd,
    reason: Mutex<Option<Termination>>,
    finished: AtomicBool,
}

impl KillState {
    pub(crate) fn new(pidfd: OwnedFd) -> Self {
        KillState {
            pidfd,
            reason: Mutex::new(None),
            finished: AtomicBool::new(false),
        }
    }

    /// Kills every process of the sandbox (killing init tears down its PID namespace).
    pub(crate) fn kill(&self, reason: Termination) {
        if self.finished.load(Ordering::Acquire) {
            return;
        }
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason);
        }
        drop(r);
        self.signal();
    }

    /// Moves the calling thread into init's namespaces of the types `nstypes`
    /// (setns(2) on its pidfd: init cannot be reaped and its pid reused meanwhile).
    pub(crate) fn enter(&self, nstypes: nix::sched::CloneFlags) -> nix::Result<()> {
        if self.finished.load(Ordering::Acquire) {
            return Err(nix::errno::Errno::ESRCH);
        }
        nix::sched::setns(&self.pidfd, nstypes)
    }

    fn signal(&self) {
        // SAFETY: pidfd_send_signal on a pidfd we own; a NULL siginfo is allowed.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }

    /// Reaps init (blocking; only called once it has exited or been killed).
    fn reap(&self) {
        // SAFETY: an all-zero siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: waitid(P_PIDFD) on our pidfd writes only into `info`. ECHILD means
            // someone else (a SIGCHLD handler of the host program) already reaped it.
            let r = unsafe {
                libc::waitid(
                    libc::P_PIDFD,
                    self.pidfd.as_raw_fd() as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::__WALL,
                )
            };
            if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
        self.finished.store(true, Ordering::Release);
    }
}

/// Kills and reaps the sandbox, and removes its cgroup, if the supervisor is dropped
/// before it finished (runtime shut down, caller gone): nothing is left behind.
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) kill: Arc<KillState>,
    pub(crate) cgroup: Option<Cgroup>,
    pub(crate) armed: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed {
            self.kill.kill(Termination::Killed);
            self.kill.reap();
        }
        if let Some(cg) = self.cgroup.as_mut() {
            cg.remove();
        }
    }
}
