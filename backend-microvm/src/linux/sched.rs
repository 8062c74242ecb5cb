//! Which task runs: all tasks take turns on the one vCPU. A task runs until it blocks
//! or its time slice ends (a periodic kick, only while several tasks are runnable or a
//! timer is armed); blocked tasks are tried again when something happened that may
//! let them go on (data, an exit, a signal) or their deadline passed; with nothing to
//! run the VMM thread sleeps until the next deadline, new input, or a kill.
//!
//! Why one vCPU: the personality is single-threaded (its state needs no locks) and on
//! PVM every syscall is a VM exit anyway, so several vCPUs would mostly wait for the
//! VMM; the price is that threads of the workload do not run in parallel.

use std::time::{Duration, Instant};

use super::signal::{SigInfo, SIGALRM};
use super::task::{TaskState, Tid, Wait};
use super::{Cpu, Kernel, Stop, SysErr, UserCtx};
use crate::kick::thread_cpu_time;

/// How long a task runs before another runnable one gets the vCPU.
pub(crate) const TIME_SLICE: Duration = Duration::from_millis(10);

/// The CPU state of a task that is not on the vCPU: retried syscalls never need it.
struct Detached;

impl Cpu for Detached {
    fn fs_base(&mut self) -> Result<u64, Stop> {
        Err(Stop::Internal("CPU state of a task off the vCPU".into()))
    }
    fn set_fs_base(&mut self, _: u64) -> Result<(), Stop> {
        Err(Stop::Internal("CPU state of a task off the vCPU".into()))
    }
    fn gs_base(&mut self) -> Result<u64, Stop> {
        Err(Stop::Internal("CPU state of a task off the vCPU".into()))
    }
    fn set_gs_base(&mut self, _: u64) -> Result<(), Stop> {
        Err(Stop::Internal("CPU state of a task off the vCPU".into()))
    }
    fn save_fpu(&mut self) -> Result<Box<kvm_bindings::kvm_xsave>, Stop> {
        Err(Stop::Internal("CPU state of a task off the vCPU".into()))
    }
    fn restore_fpu(&mut self, _: &kvm_bindings::kvm_xsave) -> Result<(), Stop> {
        Err(Stop::Internal("CPU state of a task off the vCPU".into()))
    }
    fn reset_fpu(&mut self) -> Result<(), Stop> {
        Err(Stop::Internal("CPU state of a task off the vCPU".into()))
    }
}

impl Kernel {
    /// Ends the run when it was killed or the wall time passed (cheap: called at every
    /// exit; the CPU time, a syscall to read, is checked when its timer kicks).
    pub(crate) fn check_limits(&self) -> Result<(), Stop> {
        if let Some(s) = &self.ended {
            return Err(s.clone());
        }
        if self.ctl.killed() {
            return Err(Stop::Killed);
        }
        if self.limits.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Stop::Timeout);
        }
        Ok(())
    }

    /// [`Kernel::check_limits`] and the CPU time too (after a kick, and when the
    /// scheduler runs).
    pub(crate) fn check_all_limits(&self) -> Result<(), Stop> {
        if let Some(s) = &self.ended {
            return Err(s.clone());
        }
        if self.ctl.killed() {
            return Err(Stop::Killed);
        }
        if self.limits.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Stop::Timeout);
        }
        if self.limits.cpu.is_some_and(|c| thread_cpu_time() >= c) {
            return Err(Stop::CpuLimit);
        }
        Ok(())
    }

    /// The task to run next (made current); waits while none can run.
    pub(crate) fn schedule(&mut self) -> Result<Tid, Stop> {
        loop {
            self.check_limits()?;
            let now = Instant::now();
            let running = self.task.tid;
            if self
                .ctl
                .input
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                self.stirred = true;
            }
            self.fire_timers(now);
            self.retry_blocked(now)?;
            self.switch_to(running);
            self.check_limits()?;
            if let Some(t) = self.pick() {
                self.switch_to(t);
                self.release_dead_spaces();
                return Ok(t);
            }
            if self.tids().is_empty() {
                return Err(Stop::Internal("no task left to run".into()));
            }
            let until = self
                .next_wakeup()
                .unwrap_or_else(|| super::time::later(Duration::from_secs(3600)));
            let until = match self.limits.deadline {
                Some(d) => until.min(d),
                None => until,
            };
            self.ctl.wait_until(until);
            self.stirred = true; // input may have come
        }
    }

    /// The current task keeps the vCPU while its slice lasts; then the next runnable
    /// one after it (by id) gets it.
    fn pick(&mut self) -> Option<Tid> {
        let cur = self.task.tid;
        let cur_ok = self.can_run(cur);
        if cur_ok && !std::mem::take(&mut self.slice_over) {
            return Some(cur);
        }
        let tids = self.tids();
        let runnable = |t: &Tid| self.can_run(*t);
        tids.iter()
            .copied()
            .filter(runnable)
            .find(|t| *t > cur)
            .or_else(|| tids.iter().copied().find(runnable))
    }

    /// True when more than one task may want the vCPU, or a timer is armed: the
    /// periodic kick is needed.
    pub(crate) fn wants_tick(&self) -> bool {
        let runnable = usize::from(self.can_run(self.task.tid))
            + self.tasks.keys().filter(|t| self.can_run(**t)).count();
        runnable > 1 || self.timers_armed()
    }

    /// True when some process has an `ITIMER_REAL` armed.
    fn timers_armed(&self) -> bool {
        self.proc.itimer.is_some() || self.procs.values().any(|p| p.itimer.is_some())
    }

    /// True when some task waits in a syscall.
    fn any_blocked(&self) -> bool {
        let blocked = |t: &super::task::Task| matches!(t.state, TaskState::Blocked(_));
        blocked(&self.task) || self.tasks.values().any(blocked)
    }

    /// The time slice of the running task is over.
    pub(crate) fn end_slice(&mut self) {
        self.slice_over = true;
    }

    /// `ITIMER_REAL`s that expired send `SIGALRM`.
    fn fire_timers(&mut self, now: Instant) {
        if !self.timers_armed() {
            return;
        }
        for pid in self.pids() {
            let due = self
                .proc_ref(pid)
                .and_then(|p| p.itimer)
                .is_some_and(|(at, _)| now >= at);
            if !due {
                continue;
            }
            if let Some(p) = self.proc_mut(pid) {
                p.itimer = p.itimer.and_then(|(at, every)| {
                    (!every.is_zero()).then(|| {
                        let mut next = at + every;
                        while next <= now {
                            next += every;
                        }
                        (next, every)
                    })
                });
            }
            let info = SigInfo {
                signo: SIGALRM,
                code: 0x80, // SI_KERNEL
                addr: 0,
                status: 0,
            };
            self.signal_process(pid, info);
        }
    }

    /// The earliest deadline of a blocked task or a timer.
    fn next_wakeup(&self) -> Option<Instant> {
        let tasks = self
            .tids()
            .into_iter()
            .filter_map(|t| match &self.task_ref(t)?.state {
                TaskState::Blocked(b) => b.deadline,
                _ => None,
            });
        let timers = self
            .pids()
            .into_iter()
            .filter_map(|p| self.proc_ref(p)?.itimer.map(|(at, _)| at));
        tasks.chain(timers).min()
    }

    /// Tries the syscalls of blocked tasks again: those whose deadline passed, and,
    /// when something happened, those that wait for anything.
    fn retry_blocked(&mut self, now: Instant) -> Result<(), Stop> {
        if !self.any_blocked() {
            self.stirred = false;
            return Ok(());
        }
        // A retry may itself let others go on (a read makes room in a pipe): a few rounds.
        for _ in 0..8 {
            let stirred = std::mem::take(&mut self.stirred);
            let mut any = false;
            for tid in self.tids() {
                let Some(TaskState::Blocked(b)) = self.task_ref(tid).map(|t| t.state.clone())
                else {
                    continue;
                };
                if !self.process_goes(tid) {
                    continue; // stopped: its call completes once it continues
                }
                let due = b.deadline.is_some_and(|d| now >= d);
                match b.wait {
                    Wait::Vfork(_) => continue,
                    Wait::Futex { .. } if !due => continue,
                    Wait::Retry if !due && !stirred => continue,
                    _ => {}
                }
                any = true;
                self.retry(tid, b.nr, b.args, b.deadline)?;
            }
            if !any || !self.stirred {
                break;
            }
        }
        Ok(())
    }

    fn retry(
        &mut self,
        tid: Tid,
        nr: u64,
        args: [u64; 6],
        deadline: Option<Instant>,
    ) -> Result<(), Stop> {
        if !self.switch_to(tid) {
            return Ok(());
        }
        self.retrying = Some(deadline);
        let mut ctx = self.task.ctx.clone();
        let r = self.dispatch(&mut Detached, &mut ctx, nr, args);
        self.retrying = None;
        self.task.ctx = ctx;
        self.finish(nr, args, r)
    }

    /// Records a syscall's outcome in the current task: its result in `rax`, or it
    /// blocks, or it is gone.
    pub(crate) fn finish(
        &mut self,
        nr: u64,
        args: [u64; 6],
        r: Result<u64, SysErr>,
    ) -> Result<(), Stop> {
        let rax = match r {
            Ok(v) => v,
            Err(SysErr::Errno(e)) => (-i64::from(e.0)) as u64,
            Err(SysErr::Gone) => return Ok(()),
            Err(SysErr::Block(b)) => {
                self.task.ctx.regs.rax = nr;
                self.task.state = TaskState::Blocked(super::task::Blocked {
                    nr,
                    args,
                    deadline: b.deadline,
                    wait: b.wait,
                });
                return Ok(());
            }
            Err(SysErr::Stop(s)) => return Err(s),
        };
        self.task.ctx.regs.rax = rax;
        if !self.shm.is_empty() {
            self.shm_sweep();
        }
        // Any call that went through may have changed what others wait for (data in a
        // pipe, a closed end, an exit): they are tried again before the next choice.
        self.stirred = true;
        if !matches!(self.task.state, TaskState::Dead) {
            self.task.state = TaskState::Runnable;
        }
        Ok(())
    }

    /// Releases the address spaces that lost their last task while current.
    fn release_dead_spaces(&mut self) {
        let cur = self.mm.space();
        let dead = std::mem::take(&mut self.dead_spaces);
        for id in dead {
            let used = self
                .tids()
                .iter()
                .any(|t| self.task_ref(*t).is_some_and(|t| t.space == id));
            if used {
                continue;
            }
            if id == cur {
                self.dead_spaces.push(id);
            } else {
                self.mm.release(id);
            }
        }
    }

    /// True when the current task has a signal it would take now.
    pub(crate) fn has_signal(&self) -> bool {
        let mask = self.task.mask & !(super::signal::bit(9) | super::signal::bit(19));
        (self.task.pending | self.proc.pending) & !mask != 0
    }

    /// Counts the CPU time since the last count to task `tid` (leaving the vCPU).
    pub(crate) fn account_cpu_switch(&mut self, tid: Tid) {
        let now = thread_cpu_time();
        let d = now.saturating_sub(self.cpu_mark);
        self.cpu_mark = now;
        if let Some(t) = self.task_mut(tid) {
            t.cpu += d;
        }
    }

    /// Dispatches `nr` with zero arguments for the current task, off the vCPU (how
    /// `support.rs` checks that each row of the table answers as it says).
    #[cfg(test)]
    pub(crate) fn probe_syscall(&mut self, nr: u64) -> super::SysResult {
        let mut ctx = self.task.ctx.clone();
        self.dispatch(&mut Detached, &mut ctx, nr, [0; 6])
    }

    /// Counts the CPU time since the last call to the current task.
    pub(crate) fn account_cpu(&mut self) {
        let now = thread_cpu_time();
        let d = now.saturating_sub(self.cpu_mark);
        self.cpu_mark = now;
        self.task.cpu += d;
    }

    /// A new task's registers for the stub path (unused fields zero).
    pub(crate) fn fresh_ctx(rip: u64, rsp: u64) -> UserCtx {
        UserCtx {
            regs: kvm_bindings::kvm_regs {
                rsp,
                rip,
                rflags: 0x202,
                ..Default::default()
            },
            rip,
            rflags: 0x202,
        }
    }
}
