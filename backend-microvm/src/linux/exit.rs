//! Ends of threads and processes: `exit`, `exit_group`, death by signal, zombies,
//! `SIGCHLD`, orphans adopted by init, and `wait4`/`waitid`. When the workload's first
//! process ends, the run ends with its status (the rest of its process tree dies with
//! it, as in the container backend).

use std::rc::Rc;
use std::time::Duration;

use super::fd::{FdTable, OpenFile};
use super::signal::{SigInfo, SIGCHLD, SIGCONT};
use super::task::{ExitStatus, TaskState, Tid, Wait, INIT_PID};
use super::{Kernel, Stop, SysErr, SysResult};
use crate::abi::{self, Rusage};
use crate::errno;
use crate::mm::UserPtr;

const WNOHANG: u64 = 1;
const WUNTRACED: u64 = 2;
const WEXITED: u64 = 4;
const WCONTINUED: u64 = 8;
const WNOWAIT: u64 = 0x0100_0000;
const WNOTHREAD: u64 = 0x2000_0000;
const WALL: u64 = 0x4000_0000;
const WCLONE: u64 = 0x8000_0000;
const CLD_EXITED: i32 = 1;
const CLD_KILLED: i32 = 2;
const CLD_STOPPED: i32 = 5;
const CLD_CONTINUED: i32 = 6;
/// `waitid`'s `WSTOPPED` (`WUNTRACED` of `wait4`).
const WSTOPPED: u64 = 2;
const P_ALL: u64 = 0;
const P_PID: u64 = 1;
const P_PGID: u64 = 2;
const P_PIDFD: u64 = 3;

/// What a parent learns of a live child from `wait`.
enum ChildEvent {
    /// It stopped, by this signal.
    Stopped(i32),
    /// It went on after `SIGCONT`.
    Continued,
}

impl Kernel {
    /// The current process ends with `sig` (a fault, a bad signal frame): the syscall
    /// gets no answer.
    pub(crate) fn die(&mut self, sig: i32) -> SysErr {
        let pid = self.proc.pid;
        self.kill_process(pid, ExitStatus::Signal(sig));
        SysErr::Gone
    }

    /// `exit`: the calling thread ends; the process with it when it was the last.
    pub(crate) fn sys_exit(&mut self, code: u64) -> SysResult {
        let pid = self.proc.pid;
        let others = self.proc.threads.iter().any(|t| *t != self.task.tid);
        if !others {
            self.kill_process(pid, ExitStatus::Code(code as i32 & 0xff));
            return Err(SysErr::Gone);
        }
        let tid = self.task.tid;
        self.end_thread(tid);
        Err(SysErr::Gone)
    }

    /// `exit_group`.
    pub(crate) fn sys_exit_group(&mut self, code: u64) -> SysResult {
        let pid = self.proc.pid;
        self.kill_process(pid, ExitStatus::Code(code as i32 & 0xff));
        Err(SysErr::Gone)
    }

    /// Takes the thread `tid` out (its process goes on): `CLONE_CHILD_CLEARTID` is
    /// honoured, a `vfork` parent released.
    fn end_thread(&mut self, tid: Tid) {
        let Some(t) = self.task_mut(tid) else {
            return;
        };
        let (pid, space, clear, cpu, vparent) =
            (t.pid, t.space, t.clear_tid, t.cpu, t.vfork_parent.take());
        t.state = TaskState::Dead;
        if clear != 0 {
            // Written in the thread's space, which its process (still alive) shares.
            let cur = self.mm.space();
            if self.mm.switch(space) {
                if self.mm.write(UserPtr::<u32>::new(clear), &0).is_ok() {
                    self.futex_wake_addr(clear, 1, u32::MAX);
                }
                self.mm.switch(cur);
            }
        }
        if let Some(parent) = vparent {
            self.vfork_release(parent, tid);
        }
        if tid != self.task.tid {
            self.tasks.remove(&tid);
        }
        if let Some(p) = self.proc_mut(pid) {
            p.threads.retain(|t| *t != tid);
            p.cpu_dead += cpu;
        }
        self.space_unused(space, pid);
        self.stirred = true;
    }

    /// The space `id` lost a user: released when no task uses it any more (later, when
    /// it is the current one).
    pub(crate) fn space_unused(&mut self, id: crate::mm::SpaceId, pid: Tid) {
        let used = self
            .tids()
            .iter()
            .any(|t| self.task_ref(*t).is_some_and(|t| t.space == id));
        if used {
            return;
        }
        self.ipc_space_gone(id, pid);
        if id == self.mm.space() {
            self.dead_spaces.push(id);
        } else {
            self.mm.release(id);
        }
    }

    /// The whole process `pid` ends with `status`: every thread goes, its files close,
    /// its parent learns it (or the run ends, for the first process).
    pub(crate) fn kill_process(&mut self, pid: Tid, status: ExitStatus) {
        if pid == INIT_PID && self.live.is_some() {
            return; // a live sandbox's init never ends while the sandbox lives
        }
        if self.live.is_some() {
            self.account_cpu(); // an exec's CPU time is counted to its end
        }
        let Some(p) = self.proc_ref(pid) else {
            return;
        };
        if p.exit.is_some() {
            return;
        }
        for t in p.threads.clone() {
            self.end_thread(t);
        }
        self.timers.drop_process(pid, true);
        self.ipc_exit(pid);
        self.mq_process_gone(pid);
        // What its shared mappings of host files wrote reaches them when it ends (its
        // pages may stay shared with other processes: they write back again later).
        if !self.shm.is_empty() {
            self.host_write_back_all();
        }
        let Some(p) = self.proc_mut(pid) else {
            return;
        };
        p.exit = Some(status);
        p.itimer = None;
        p.cpu_itimers = [None; 2];
        p.pending = 0;
        // Closing the descriptors may end pipes others wait on.
        let files = std::mem::replace(&mut p.files, FdTable::new(0));
        let ppid = p.ppid;
        let exit_signal = p.exit_signal;
        let cpu = p.cpu_dead;
        let cpu_all = p.cpu_dead + p.cpu_children;
        // Each open file once (a descriptor dup'ed in the table holds it twice).
        let mut closing: Vec<Rc<OpenFile>> = Vec::new();
        if self.watched() {
            for (_, f) in files.iter() {
                if !closing.iter().any(|c| Rc::ptr_eq(c, f)) {
                    closing.push(Rc::clone(f));
                }
            }
        }
        drop(files);
        self.notify_last_close(&closing);
        drop(closing);
        // Its POSIX locks go with it (its flock and OFD locks with their files).
        self.locks.release(pid, None);
        self.stirred = true;
        if self.live.is_some() {
            if self.proc_ref(pid).is_some_and(|p| p.sid == pid) {
                self.tty_leader_exited(pid);
            }
            self.live_exited(pid, status, cpu_all);
        }
        if pid == self.main_pid {
            self.ended.get_or_insert(match status {
                ExitStatus::Code(c) => Stop::Exit(c),
                ExitStatus::Signal(s) => Stop::Signal(s),
            });
            return;
        }
        // Orphans go to init, which reaps them.
        for c in self.pids() {
            let reparent = self
                .proc_ref(c)
                .is_some_and(|x| x.ppid == pid && x.pid != pid);
            if reparent {
                let zombie = self.proc_mut(c).map(|x| {
                    x.ppid = INIT_PID;
                    x.exit.is_some()
                });
                if zombie == Some(true) {
                    self.reap(c);
                }
            }
        }
        // A parent that ignores SIGCHLD (or asked SA_NOCLDWAIT) never sees children
        // that report with SIGCHLD; others stay zombies for it, as on Linux. Init
        // reaps everything. The current process goes as it leaves the vCPU (see
        // `Kernel::reaped_on_leaving`).
        if self
            .proc_ref(pid)
            .is_some_and(|p| self.reaped_on_leaving(p))
        {
            self.reap(pid);
            if ppid == INIT_PID {
                return;
            }
            // SA_NOCLDWAIT alone still sends the signal; an ignored one is dropped
            // where it is sent.
        }
        // Linux sends the exit signal only when it is a valid signal: legacy `clone`
        // takes any byte (`CSIGNAL`), and a child made with 0 or 65..=255 ends silently
        // (still a zombie for `wait4(__WALL)`).
        if super::signal::valid(exit_signal as u64).is_ok() {
            let (code, st) = match status {
                ExitStatus::Code(c) => (CLD_EXITED, c),
                ExitStatus::Signal(s) => (CLD_KILLED, s),
            };
            let _ = cpu;
            self.signal_process(
                ppid,
                SigInfo {
                    signo: exit_signal,
                    code,
                    addr: u64::from(pid) | (u64::from(self.user.0) << 32),
                    status: u64::from(st as u32),
                },
            );
        }
    }

    /// An ended process nobody waits for: a child of init, or of a parent that
    /// ignores `SIGCHLD` or asked `SA_NOCLDWAIT` (when it reports with `SIGCHLD`).
    /// Removed at once, or, the current process, as it leaves the vCPU.
    pub(crate) fn reaped_on_leaving(&self, p: &super::task::Process) -> bool {
        p.exit.is_some()
            && (p.ppid == INIT_PID || (p.exit_signal == SIGCHLD && self.reaps_children(p.ppid)))
    }

    /// Removes the zombie `pid`; its CPU time goes to its parent's children time.
    fn reap(&mut self, pid: Tid) -> Option<(ExitStatus, Duration)> {
        if pid == self.proc.pid {
            return None; // the current process is never a zombie being waited for
        }
        let p = self.procs.remove(&pid)?;
        self.live_process_gone(&p);
        let status = p.exit?;
        let cpu = p.cpu_dead + p.cpu_children;
        if let Some(parent) = self.proc_mut(p.ppid) {
            parent.cpu_children += cpu;
        }
        Some((status, cpu))
    }

    /// Whether `wait` with `options` sees the child `c` at all, as Linux's
    /// `eligible_child`: a "clone child" (one whose exit signal is not `SIGCHLD`) only
    /// with `__WCLONE`, the others only without it, both with `__WALL`.
    fn wait_sees(options: u64, c: &super::task::Process) -> bool {
        options & WALL != 0 || (c.exit_signal != SIGCHLD) == (options & WCLONE != 0)
    }

    /// Children of the current process that `which` selects.
    fn children(&self, which: impl Fn(&super::task::Process) -> bool) -> Vec<Tid> {
        self.procs
            .values()
            .filter(|c| c.ppid == self.proc.pid && which(c))
            .map(|c| c.pid)
            .collect()
    }

    /// A child that `select` picks and that stopped (`stopped`) or continued
    /// (`continued`) since its parent last heard; `consume` clears the news.
    fn child_event(
        &mut self,
        select: impl Fn(&super::task::Process) -> bool,
        stopped: bool,
        continued: bool,
        consume: bool,
    ) -> Option<(Tid, ChildEvent)> {
        let me = self.proc.pid;
        let child = self.procs.values_mut().find(|c| {
            c.ppid == me
                && c.exit.is_none()
                && select(c)
                && ((stopped && c.stop_report.is_some()) || (continued && c.continued))
        })?;
        let event = match child.stop_report {
            Some(sig) if stopped => {
                if consume {
                    child.stop_report = None;
                }
                ChildEvent::Stopped(sig)
            }
            _ => {
                if consume {
                    child.continued = false;
                }
                ChildEvent::Continued
            }
        };
        Some((child.pid, event))
    }

    pub(crate) fn sys_wait4(
        &mut self,
        pid: i64,
        status: UserPtr<i32>,
        options: u64,
        rusage: UserPtr<Rusage>,
    ) -> SysResult {
        let options = u64::from(options as u32); // an `int`: __WCLONE is its sign bit
        if options & !(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WCLONE | WALL) != 0 {
            return Err(errno::EINVAL.into());
        }
        let pgid = self.proc.pgid;
        let select = move |c: &super::task::Process| {
            Self::wait_sees(options, c)
                && match pid {
                    -1 => true,
                    0 => c.pgid == pgid,
                    p if p > 0 => i64::from(c.pid) == p,
                    p => i64::from(c.pgid) == -p,
                }
        };
        let candidates = self.children(select);
        if candidates.is_empty() {
            return Err(errno::ECHILD.into());
        }
        let zombie = candidates
            .into_iter()
            .find(|c| self.procs.get(c).is_some_and(|p| p.exit.is_some()));
        if let Some(c) = zombie {
            let Some((st, cpu)) = self.reap(c) else {
                return Err(errno::ECHILD.into());
            };
            if !status.is_null() {
                self.mm.write(status, &st.wait_status())?;
            }
            if !rusage.is_null() {
                let r = Rusage {
                    ru_utime: cpu.into(),
                    ..Rusage::default()
                };
                self.mm.write(rusage, &r)?;
            }
            return Ok(u64::from(c));
        }
        if let Some((c, event)) = self.child_event(
            select,
            options & WUNTRACED != 0,
            options & WCONTINUED != 0,
            true,
        ) {
            if !status.is_null() {
                let st = match event {
                    ChildEvent::Stopped(sig) => (sig << 8) | 0x7f,
                    ChildEvent::Continued => 0xffff,
                };
                self.mm.write(status, &st)?;
            }
            return Ok(u64::from(c));
        }
        if options & WNOHANG != 0 {
            return Ok(0);
        }
        Err(self.park(None))
    }

    pub(crate) fn sys_waitid(
        &mut self,
        idtype: u64,
        id: u64,
        infop: UserPtr<abi::SigInfo>,
        options: u64,
        _rusage: u64,
    ) -> SysResult {
        let options = u64::from(options as u32); // an `int`: __WCLONE is its sign bit
        let known = WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | WNOTHREAD | WCLONE | WALL;
        if options & !known != 0 || options & (WEXITED | WSTOPPED | WCONTINUED) == 0 {
            return Err(errno::EINVAL.into());
        }
        // P_PIDFD: the process a pidfd names; a non-blocking pidfd waits as WNOHANG
        // and answers EAGAIN for nothing yet (unless WNOHANG was asked).
        let (idtype, id, nonblock) = if idtype == P_PIDFD {
            if (id as i32) < 0 {
                return Err(errno::EINVAL.into());
            }
            let (p, nonblock) = self.pidfd_of(u64::from(id as u32))?;
            (P_PID, u64::from(p.pid), nonblock && options & WNOHANG == 0)
        } else {
            (idtype, id, false)
        };
        let options = if nonblock { options | WNOHANG } else { options };
        let id = id as u32;
        let select = move |c: &super::task::Process| {
            Self::wait_sees(options, c)
                && match idtype {
                    P_ALL => true,
                    P_PID => c.pid == id,
                    P_PGID => c.pgid == id,
                    _ => false,
                }
        };
        if !matches!(idtype, P_ALL | P_PID | P_PGID) {
            return Err(errno::EINVAL.into());
        }
        let candidates = self.children(select);
        if candidates.is_empty() {
            return Err(errno::ECHILD.into());
        }
        let zombie = candidates
            .into_iter()
            .filter(|_| options & WEXITED != 0)
            .find(|c| self.procs.get(c).is_some_and(|p| p.exit.is_some()));
        if let Some(c) = zombie {
            let st = self.procs.get(&c).and_then(|p| p.exit);
            let Some(st) = st else {
                return Err(errno::ECHILD.into());
            };
            if options & WNOWAIT == 0 {
                self.reap(c);
            }
            if !infop.is_null() {
                let (code, status) = match st {
                    ExitStatus::Code(v) => (CLD_EXITED, v),
                    ExitStatus::Signal(s) => (CLD_KILLED, s),
                };
                let info = SigInfo {
                    signo: SIGCHLD,
                    code,
                    addr: u64::from(c) | (u64::from(self.user.0) << 32),
                    status: u64::from(status as u32),
                };
                self.mm.write(infop, &info.to_abi())?;
            }
            return Ok(0);
        }
        let (stopped, continued) = (options & WSTOPPED != 0, options & WCONTINUED != 0);
        let consume = options & WNOWAIT == 0;
        if let Some((c, event)) = self.child_event(select, stopped, continued, consume) {
            if !infop.is_null() {
                let (code, status) = match event {
                    ChildEvent::Stopped(sig) => (CLD_STOPPED, sig),
                    ChildEvent::Continued => (CLD_CONTINUED, SIGCONT),
                };
                let info = SigInfo {
                    signo: SIGCHLD,
                    code,
                    addr: u64::from(c) | (u64::from(self.user.0) << 32),
                    status: u64::from(status as u32),
                };
                self.mm.write(infop, &info.to_abi())?;
            }
            return Ok(0);
        }
        if options & WNOHANG != 0 {
            if !infop.is_null() {
                self.mm.write(infop, &abi::SigInfo::default())?;
            }
            return if nonblock {
                Err(errno::EAGAIN.into())
            } else {
                Ok(0)
            };
        }
        Err(self.park(None))
    }

    /// The `vfork` parent `parent` goes on (its child `child` exec'd or ended).
    pub(crate) fn vfork_release(&mut self, parent: Tid, child: Tid) {
        if let Some(t) = self.task_mut(parent) {
            if let TaskState::Blocked(b) = &t.state {
                if b.wait == Wait::Vfork(child) {
                    t.ctx.regs.rax = u64::from(child);
                    t.state = TaskState::Runnable;
                }
            }
        }
    }
}
