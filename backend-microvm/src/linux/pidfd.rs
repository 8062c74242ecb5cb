//! Process descriptors: `pidfd_open`, `pidfd_send_signal`, `waitid(P_PIDFD)` and
//! `clone(CLONE_PIDFD)`. A pidfd names one process (or, `PIDFD_THREAD`, one thread)
//! for as long as it is open, so a signal or a wait through it never reaches another
//! process that later got the same number; it polls readable once that process has
//! exited, and hung up once it was reaped. `pidfd_send_signal` also takes an open
//! `/proc/PID` directory in place of a pidfd, as Linux does. `pidfd_getfd` is refused (`EPERM`): it
//! takes another process's descriptor with ptrace's rights, which the sandbox never
//! grants (the container's filter refuses it too).

use super::fd::FileKind;
use super::signal::{valid, SigInfo, SI_USER};
use super::task::{TaskState, Tid};
use super::{Kernel, SysErr, SysResult};
use crate::abi;
use crate::errno;
use crate::mm::UserPtr;
use crate::vfs::proc::ProcNode;
use crate::vfs::Node;

/// `PIDFD_NONBLOCK` (`O_NONBLOCK`).
const PIDFD_NONBLOCK: u64 = libc::O_NONBLOCK as u64;
/// `PIDFD_THREAD` (`O_EXCL`): the descriptor names a thread.
pub(crate) const PIDFD_THREAD: u64 = libc::O_EXCL as u64;
/// `pidfd_send_signal`'s scopes.
const PIDFD_SIGNAL_THREAD: u64 = 1;
const PIDFD_SIGNAL_THREAD_GROUP: u64 = 2;
const PIDFD_SIGNAL_PROCESS_GROUP: u64 = 4;
/// The virtual init (never exits, never signalled).
const INIT_PID: Tid = 1;
/// `SI_TKILL`.
const SI_TKILL: i32 = -6;

/// What a pidfd names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PidFd {
    /// The process (or thread, `thread`) by id.
    pub(crate) pid: Tid,
    /// `PIDFD_THREAD`.
    pub(crate) thread: bool,
}

impl Kernel {
    pub(crate) fn sys_pidfd_open(&mut self, pid: u64, flags: u64) -> SysResult {
        let flags = u64::from(flags as u32);
        if flags & !(PIDFD_NONBLOCK | PIDFD_THREAD) != 0 {
            return Err(errno::EINVAL.into());
        }
        let pid = pid as i32;
        if pid <= 0 {
            return Err(errno::EINVAL.into());
        }
        let pid = pid as Tid;
        let thread = flags & PIDFD_THREAD != 0;
        let exists =
            pid == INIT_PID || self.task_ref(pid).is_some() || self.proc_ref(pid).is_some();
        if !exists {
            return Err(errno::ESRCH.into());
        }
        // Without PIDFD_THREAD the id must be a process's (its first thread's).
        if !thread && pid != INIT_PID && self.proc_ref(pid).is_none() {
            return Err(errno::EINVAL.into());
        }
        self.add_pidfd(PidFd { pid, thread }, flags & PIDFD_NONBLOCK)
    }

    /// A new pidfd for `p` (always close-on-exec, as Linux makes them).
    pub(crate) fn add_pidfd(&mut self, p: PidFd, nonblock: u64) -> SysResult {
        let access = libc::O_RDWR | if p.thread { libc::O_EXCL } else { 0 };
        self.add_anon(
            FileKind::PidFd(p),
            access,
            nonblock | libc::O_CLOEXEC as u64,
        )
    }

    /// The process or thread `fd` names (`EBADF` for a descriptor that is no pidfd).
    pub(crate) fn pidfd_of(&self, fd: u64) -> Result<(PidFd, bool), SysErr> {
        let f = self.proc.files.get(fd)?;
        match &f.kind {
            FileKind::PidFd(p) => Ok((*p, f.flags.get() & libc::O_NONBLOCK != 0)),
            _ => Err(errno::EBADF.into()),
        }
    }

    /// What `pidfd_send_signal` sends to through `fd`: what a pidfd names, or the
    /// process of a `/proc/PID` directory open there (Linux accepts one in place of a
    /// pidfd; `EBADF` for anything else, `ESRCH` when it names no process any more).
    fn signal_target_of(&self, fd: u64) -> Result<PidFd, SysErr> {
        let f = self.proc.files.get(fd)?;
        match (&f.kind, f.loc.as_ref().map(|l| &l.top().node)) {
            (FileKind::PidFd(p), _) => Ok(*p),
            (FileKind::Dir, Some(Node::Proc(ProcNode::Pid(pid)))) => {
                let pid = *pid as Tid;
                if pid != INIT_PID && self.proc_ref(pid).is_none() {
                    return Err(errno::ESRCH.into());
                }
                Ok(PidFd { pid, thread: false })
            }
            _ => Err(errno::EBADF.into()),
        }
    }

    /// Whether what `p` names has exited (readable), and whether it was reaped too
    /// (hung up), as Linux's `pidfd_poll`.
    pub(crate) fn pidfd_state(&self, p: PidFd) -> (bool, bool) {
        if p.pid == INIT_PID && self.proc_ref(INIT_PID).is_none() {
            return (false, false);
        }
        if p.thread {
            let live = self
                .task_ref(p.pid)
                .is_some_and(|t| !matches!(t.state, TaskState::Dead));
            return (!live, !live);
        }
        match self.proc_ref(p.pid) {
            None => (true, true),
            Some(proc) => (proc.exit.is_some(), false),
        }
    }

    pub(crate) fn sys_pidfd_send_signal(
        &mut self,
        fd: u64,
        sig: u64,
        info: UserPtr<abi::SigInfo>,
        flags: u64,
    ) -> SysResult {
        let flags = u64::from(flags as u32);
        let scopes = PIDFD_SIGNAL_THREAD | PIDFD_SIGNAL_THREAD_GROUP | PIDFD_SIGNAL_PROCESS_GROUP;
        if flags & !scopes != 0 || (flags & scopes).count_ones() > 1 {
            return Err(errno::EINVAL.into());
        }
        let p = self.signal_target_of(fd)?;
        let scope = match flags {
            0 if p.thread => PIDFD_SIGNAL_THREAD,
            0 => PIDFD_SIGNAL_THREAD_GROUP,
            f => f,
        };
        let sig = sig as i32;
        let me = self.proc.pid;
        let forged = if info.is_null() {
            None
        } else {
            let si = self.mm.read(info)?;
            if si.si_signo != sig {
                return Err(errno::EINVAL.into());
            }
            // Only signals to oneself may carry any code; others a negative one
            // that is not SI_TKILL (as rt_sigqueueinfo).
            let to_self =
                scope != PIDFD_SIGNAL_THREAD && scope != PIDFD_SIGNAL_PROCESS_GROUP && p.pid == me;
            if !to_self && (si.si_code >= 0 || si.si_code == SI_TKILL) {
                return Err(errno::EPERM.into());
            }
            Some(si)
        };
        // Who it reaches: a thread, a process (found through any of its threads), or
        // the process group the target leads.
        let pid_of = |k: &Kernel, t: Tid| k.task_ref(t).map_or(t, |t| t.pid);
        if p.pid == INIT_PID && self.proc_ref(INIT_PID).is_none() {
            return Err(errno::EPERM.into());
        }
        let target_proc = pid_of(self, p.pid);
        let gone = match scope {
            PIDFD_SIGNAL_THREAD => self
                .task_ref(p.pid)
                .is_none_or(|t| matches!(t.state, TaskState::Dead)),
            _ => self.proc_ref(target_proc).is_none(),
        };
        if gone {
            return Err(errno::ESRCH.into());
        }
        if sig != 0 && valid(sig as u64).is_err() {
            return Err(errno::EINVAL.into());
        }
        if sig == 0 {
            return Ok(0);
        }
        let info = match forged {
            Some(si) => SigInfo {
                signo: sig,
                code: si.si_code,
                addr: si.who,
                status: si.value,
            },
            None => SigInfo::user(
                sig,
                if scope == PIDFD_SIGNAL_THREAD {
                    SI_TKILL
                } else {
                    SI_USER
                },
                me,
                self.user.0,
            ),
        };
        match scope {
            PIDFD_SIGNAL_THREAD => self.signal_task(p.pid, info),
            PIDFD_SIGNAL_THREAD_GROUP => {
                if self.proc_ref(target_proc).is_some_and(|x| x.exit.is_none()) {
                    self.signal_process(target_proc, info);
                }
            }
            _ => {
                let pgid = self.proc_ref(target_proc).map_or(0, |x| x.pgid);
                let group: Vec<Tid> = self
                    .pids()
                    .into_iter()
                    .filter(|q| {
                        self.proc_ref(*q)
                            .is_some_and(|x| x.pgid == pgid && x.exit.is_none())
                    })
                    .collect();
                for q in group {
                    self.signal_process(q, info);
                }
            }
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::PidFd;

    /// After the ids wrapped, a number an open pidfd still names is not handed out
    /// again until the pidfd is closed.
    #[test]
    fn an_id_a_pidfd_names_is_not_reused_while_it_is_open() {
        let mut k = crate::support::tests::throwaway_kernel().expect("a throwaway kernel");
        let fd = k
            .add_pidfd(
                PidFd {
                    pid: 4242,
                    thread: false,
                },
                0,
            )
            .expect("a pidfd");
        // The ids wrap: from then on, an id a descriptor names is skipped.
        k.next_tid = 4_000_000;
        assert!(!k.tids_wrapped);
        assert_eq!(k.new_tid(), 4_000_000);
        assert!(k.tids_wrapped, "handing out the last id wraps the ids");
        k.next_tid = 4242;
        assert_eq!(k.new_tid(), 4243);
        k.proc.files.close(fd).expect("closed");
        k.next_tid = 4242;
        assert_eq!(k.new_tid(), 4242);
    }
}
