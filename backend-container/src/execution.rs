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
    /// (setns(2) on its pidfd; before Linux 5.8, which takes no pidfd there, through
    /// `/proc/PID/ns` of its pid: init is not reaped, nor its pid reused, while this
    /// state holds it).
    pub(crate) fn enter(&self, nstypes: nix::sched::CloneFlags) -> nix::Result<()> {
        use nix::sched::CloneFlags as F;
        if self.finished.load(Ordering::Acquire) {
            return Err(nix::errno::Errno::ESRCH);
        }
        match nix::sched::setns(&self.pidfd, nstypes) {
            Err(nix::errno::Errno::EINVAL) => {}
            r => return r,
        }
        let pid = self.pid().ok_or(nix::errno::Errno::ESRCH)?;
        for (flag, name) in [
            (F::CLONE_NEWNET, "net"),
            (F::CLONE_NEWIPC, "ipc"),
            (F::CLONE_NEWUTS, "uts"),
            (F::CLONE_NEWNS, "mnt"),
        ] {
            if nstypes.contains(flag) {
                let ns = std::fs::File::open(format!("/proc/{pid}/ns/{name}")).map_err(|e| {
                    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
                })?;
                nix::sched::setns(&ns, flag)?;
            }
        }
        Ok(())
    }

    /// Init's pid, as its pidfd's `/proc/self/fdinfo` entry gives it.
    fn pid(&self) -> Option<i32> {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", self.pidfd.as_raw_fd()))
            .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .and_then(|p| p.trim().parse().ok())
            .filter(|p| *p > 0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    #[test]
    fn init_is_found_by_its_pidfd_and_its_namespaces_entered() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
        assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` was just returned by pidfd_open and is owned by nothing else.
        let k = KillState::new(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        assert_eq!(k.pid(), Some(child.id() as i32));
        // On a thread of its own: the test's thread keeps its namespaces.
        let entered = std::thread::scope(|s| {
            s.spawn(|| k.enter(nix::sched::CloneFlags::CLONE_NEWUTS))
                .join()
                .expect("the thread")
        });
        // Root enters (here: the namespace it is in already); others may not.
        if nix::unistd::geteuid().is_root() {
            assert_eq!(entered, Ok(()));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
