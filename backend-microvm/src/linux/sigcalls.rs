//! The signal syscalls: dispositions (`rt_sigaction`), masks, pending sets, waiting
//! for signals (`rt_sigsuspend`, `pause`, `rt_sigtimedwait`), the alternate stack, and
//! sending them (`kill`, `tgkill`). Delivery itself is `signal.rs`.

use super::signal::{
    bit, default_ignored, valid, Action, SigInfo, MINSIGSTKSZ, SIGKILL, SIGSTOP, SIG_DFL, SIG_IGN,
    SI_TKILL, SI_USER, SS_DISABLE, SS_ONSTACK,
};
use super::task::{Tid, INIT_PID};
use super::{Kernel, SysErr, SysResult};
use crate::abi::{self, SigAction, StackT, Timespec};
use crate::errno::{self, Errno};
use crate::mm::UserPtr;

impl Kernel {
    pub(crate) fn sys_rt_sigaction(
        &mut self,
        sig: u64,
        act: UserPtr<SigAction>,
        oact: UserPtr<SigAction>,
        size: u64,
    ) -> SysResult {
        if size != 8 {
            return Err(errno::EINVAL.into());
        }
        let sig = valid(sig)?;
        let new = if !act.is_null() {
            if sig == SIGKILL || sig == SIGSTOP {
                return Err(errno::EINVAL.into());
            }
            let a = self.mm.read(act)?;
            Some(Action {
                handler: a.handler,
                flags: a.flags,
                restorer: a.restorer,
                mask: a.mask,
            })
        } else {
            None
        };
        let old = self.proc.act[(sig - 1) as usize];
        if !oact.is_null() {
            let o = SigAction {
                handler: old.handler,
                flags: old.flags,
                restorer: old.restorer,
                mask: old.mask,
            };
            self.mm.write(oact, &o)?;
        }
        if let Some(n) = new {
            self.proc.act[(sig - 1) as usize] = n;
            if n.handler == SIG_IGN || (n.handler == SIG_DFL && default_ignored(sig)) {
                self.proc.pending &= !bit(sig);
                for t in self.proc.threads.clone() {
                    if let Some(t) = self.task_mut(t) {
                        t.pending &= !bit(sig);
                    }
                }
            }
        }
        Ok(0)
    }

    pub(crate) fn sys_rt_sigprocmask(
        &mut self,
        how: u64,
        set: UserPtr<u64>,
        oset: UserPtr<u64>,
        size: u64,
    ) -> SysResult {
        if size != 8 {
            return Err(errno::EINVAL.into());
        }
        // Linux's order: the new set is read (EFAULT), `how` checked (EINVAL) and the
        // mask changed, and only then is the old one written out (EFAULT).
        let before = self.task.mask;
        if !set.is_null() {
            let s = self.mm.read(set)?;
            self.task.mask = match how as i32 {
                libc::SIG_BLOCK => before | s,
                libc::SIG_UNBLOCK => before & !s,
                libc::SIG_SETMASK => s,
                _ => return Err(errno::EINVAL.into()),
            } & !(bit(SIGKILL) | bit(SIGSTOP));
        }
        if !oset.is_null() {
            self.mm.write(oset, &before)?;
        }
        Ok(0)
    }

    pub(crate) fn sys_rt_sigpending(&mut self, set: UserPtr<u64>, size: u64) -> SysResult {
        if size > 8 {
            return Err(errno::EINVAL.into());
        }
        let pending = (self.task.pending | self.proc.pending) & self.task.mask;
        self.mm.write(set, &pending)?;
        Ok(0)
    }

    /// `rt_sigsuspend`: waits with `mask` until a handler runs (then `EINTR`).
    pub(crate) fn sys_rt_sigsuspend(&mut self, set: UserPtr<u64>, size: u64) -> SysResult {
        if size != 8 {
            return Err(errno::EINVAL.into());
        }
        if self.retrying.is_none() {
            let mask = self.mm.read(set)?;
            self.task.suspend_mask = Some(self.task.mask);
            self.task.mask = mask & !(bit(SIGKILL) | bit(SIGSTOP));
            // A signal already pending that the new mask lets in ends it at once.
            if self.has_signal() {
                return Err(Errno(libc::EINTR).into());
            }
        }
        Err(self.park(None))
    }

    /// Runs `wait` (a `ppoll`, `pselect6` or `epoll_pwait` and its retries) with the
    /// signal mask at `set` in force, as Linux does: put in on the first try (a signal
    /// it lets in that is already pending ends the call with `EINTR`), taken away when
    /// the call ends; a handler that interrupts the wait runs with it and returns to
    /// the mask from before.
    pub(crate) fn with_sigmask(
        &mut self,
        set: UserPtr<u64>,
        size: u64,
        wait: impl FnOnce(&mut Kernel) -> SysResult,
    ) -> SysResult {
        if set.is_null() {
            return wait(self);
        }
        if self.retrying.is_none() {
            if size != 8 {
                return Err(errno::EINVAL.into());
            }
            let mask = self.mm.read(set)?;
            self.task.suspend_mask = Some(self.task.mask);
            self.task.mask = mask & !(bit(SIGKILL) | bit(SIGSTOP));
            if self.has_signal() {
                return Err(Errno(libc::EINTR).into());
            }
        }
        let r = wait(self);
        if !matches!(r, Err(SysErr::Block(_))) {
            if let Some(old) = self.task.suspend_mask.take() {
                self.task.mask = old;
            }
        }
        r
    }

    /// `pause`: waits until a handler runs (then `EINTR`).
    pub(crate) fn sys_pause(&mut self) -> SysResult {
        Err(self.park(None))
    }

    /// `rt_sigtimedwait`: takes a pending signal of `set`, waiting for one.
    pub(crate) fn sys_rt_sigtimedwait(
        &mut self,
        set: UserPtr<u64>,
        info: UserPtr<abi::SigInfo>,
        timeout: UserPtr<Timespec>,
        size: u64,
    ) -> SysResult {
        if size != 8 {
            return Err(errno::EINVAL.into());
        }
        let want = self.mm.read(set)? & !(bit(SIGKILL) | bit(SIGSTOP));
        let until = if timeout.is_null() {
            None
        } else {
            let d = self.timespec(timeout)?;
            self.deadline_after(d)
        };
        loop {
            let ready = (self.task.pending | self.proc.pending) & want;
            if ready == 0 {
                break;
            }
            let sig = ready.trailing_zeros() as i32 + 1;
            // A stale timer signal is dropped, and the wait goes on.
            let Some(si) = self.take_pending(sig) else {
                continue;
            };
            if !info.is_null() {
                self.mm.write(info, &si.to_abi())?;
            }
            return Ok(sig as u64);
        }
        if until.is_some_and(|u| std::time::Instant::now() >= u) {
            return Err(errno::EAGAIN.into());
        }
        Err(self.park(until))
    }

    pub(crate) fn sys_sigaltstack(
        &mut self,
        ss: UserPtr<StackT>,
        old: UserPtr<StackT>,
        user_sp: u64,
    ) -> SysResult {
        const SS_AUTODISARM: u32 = 1 << 31;
        // Linux's on_sig_stack: the caller runs on its alternate stack now.
        let on_stack = self
            .task
            .altstack
            .is_some_and(|(sp, size)| user_sp > sp && user_sp - sp <= size);
        let new = if !ss.is_null() {
            let st = self.mm.read(ss)?;
            Some((st.ss_sp, st.ss_flags as u32, st.ss_size))
        } else {
            None
        };
        if !old.is_null() {
            let (sp, size) = self.task.altstack.unwrap_or((0, 0));
            let flags = if on_stack {
                SS_ONSTACK
            } else if self.task.altstack.is_none() {
                SS_DISABLE
            } else {
                0
            };
            let st = StackT {
                ss_sp: sp,
                ss_flags: flags as i32,
                _pad: 0,
                ss_size: size,
            };
            self.mm.write(old, &st)?;
        }
        if let Some((sp, flags, size)) = new {
            // Linux's do_sigaltstack order: not while on it (EPERM), then the mode
            // (exactly 0, SS_ONSTACK or SS_DISABLE, with SS_AUTODISARM), then the size.
            if on_stack {
                return Err(errno::EPERM.into());
            }
            match flags & !SS_AUTODISARM {
                SS_DISABLE => self.task.altstack = None,
                0 | SS_ONSTACK if size < MINSIGSTKSZ => return Err(errno::ENOMEM.into()),
                0 | SS_ONSTACK => self.task.altstack = Some((sp, size)),
                _ => return Err(errno::EINVAL.into()),
            }
        }
        Ok(0)
    }

    /// The processes `kill(pid, ...)` names.
    fn kill_targets(&self, pid: i64) -> Result<Vec<Tid>, SysErr> {
        let alive = |p: &Tid| self.proc_ref(*p).is_some_and(|p| p.exit.is_none());
        let group = |g: Tid| -> Vec<Tid> {
            self.pids()
                .into_iter()
                .filter(|p| alive(p) && self.proc_ref(*p).is_some_and(|x| x.pgid == g))
                .collect()
        };
        let v = match pid {
            p if p == i64::from(INIT_PID) => return Err(errno::EPERM.into()),
            p if p > 0 => {
                let p = u32::try_from(p).map_err(|_| errno::ESRCH)?;
                // A thread id names its process.
                let pid = self.task_ref(p).map(|t| t.pid).unwrap_or(p);
                if self.proc_ref(pid).is_some() {
                    vec![pid]
                } else {
                    vec![]
                }
            }
            0 => group(self.proc.pgid),
            -1 => self
                .pids()
                .into_iter()
                .filter(|p| alive(p) && *p != self.proc.pid)
                .collect(),
            p => group(u32::try_from(-p).map_err(|_| errno::ESRCH)?),
        };
        if v.is_empty() {
            return Err(errno::ESRCH.into());
        }
        Ok(v)
    }

    pub(crate) fn sys_kill(&mut self, pid: i64, sig: u64) -> SysResult {
        let targets = self.kill_targets(pid)?;
        if sig == 0 {
            return Ok(0);
        }
        let s = valid(sig)?;
        let me = self.proc.pid;
        for t in targets {
            let info = SigInfo::user(s, SI_USER, me, self.user.0);
            self.signal_process(t, info);
        }
        Ok(0)
    }

    /// `tgkill` (`tgid` given) and `tkill` (`None`): Linux refuses a non-positive
    /// thread or group id (`EINVAL`) before looking the thread up.
    pub(crate) fn sys_tgkill(&mut self, tgid: Option<i64>, tid: i64, sig: u64) -> SysResult {
        if tid <= 0 || tgid.is_some_and(|g| g <= 0) {
            return Err(errno::EINVAL.into());
        }
        let tgid = tgid.unwrap_or(-1);
        let tid = u32::try_from(tid).map_err(|_| errno::ESRCH)?;
        let target = self.task_ref(tid).map(|t| t.pid).ok_or(errno::ESRCH)?;
        if tgid > 0 && i64::from(target) != tgid {
            return Err(errno::ESRCH.into());
        }
        if sig == 0 {
            return Ok(0);
        }
        let s = valid(sig)?;
        let info = SigInfo::user(s, SI_TKILL, self.proc.pid, self.user.0);
        self.signal_task(tid, info);
        Ok(0)
    }
}
