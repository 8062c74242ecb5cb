//! Which task runs: all tasks take turns on the one vCPU. A task runs until it blocks
//! or its time slice ends while another could run; blocked tasks are tried again when
//! something happened that may let them go on (data, an exit, a signal) or their
//! deadline passed, and one woken by its deadline runs at once; with nothing to run
//! the VMM thread sleeps until the next deadline, new input, or a kill. The guest is
//! taken out of guest mode whatever it computes by a one-shot kick the vCPU loop arms
//! for [`Kernel::next_kick`] (the slice's end, the earliest deadline, the next
//! interval timer), so a task alone with nothing pending is never interrupted.
//!
//! Why one vCPU: the personality is single-threaded (its state needs no locks) and on
//! PVM every syscall is a VM exit anyway, so several vCPUs would mostly wait for the
//! VMM; the price is that threads of the workload do not run in parallel.

use std::time::{Duration, Instant};

use super::signal::{SigInfo, SIGALRM};
use super::task::{Task, TaskState, Tid, Wait};
use super::{Cpu, Kernel, Stop, SysErr, UserCtx};
use crate::kick::thread_cpu_time;

/// How long a task runs before another runnable one gets the vCPU.
pub(crate) const TIME_SLICE: Duration = Duration::from_millis(10);

/// How long a task woken by another (a futex wake, data for its call) waits at most
/// for the vCPU while its waker computes on. Not zero: a waker that blocks right after
/// (a condition variable's signal, then a wait) hands over with one switch, where
/// switching at the wake would cost two more (Linux's CFS likewise preempts a waker
/// only after a granularity).
pub(crate) const WAKE_GRANULARITY: Duration = Duration::from_millis(1);

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

/// The first expiry of an interval timer (due at `at`, every `every`) after `now`:
/// whole periods skipped at once (a 1 ns interval late by seconds is no loop of
/// billions), a time past what the clock holds (an interval of centuries) saturating.
fn next_expiry(at: Instant, every: Duration, now: Instant) -> Instant {
    expiries(at, every, now).1
}

/// How many expiries of an interval timer (due at `at`, every `every`) are due by
/// `now`, and the first one after `now` (see [`next_expiry`]).
pub(super) fn expiries(at: Instant, every: Duration, now: Instant) -> (u64, Instant) {
    let step = every.as_nanos().max(1);
    let periods = now.saturating_duration_since(at).as_nanos() / step + 1;
    let ahead = u64::try_from(step.saturating_mul(periods)).unwrap_or(u64::MAX);
    let ahead = Duration::from_nanos(ahead);
    let next = at
        .checked_add(ahead)
        .unwrap_or_else(|| super::time::later(ahead));
    (u64::try_from(periods).unwrap_or(u64::MAX), next)
}

impl Kernel {
    /// Ends the run when it was killed or the wall time passed (cheap: called at every
    /// exit; the CPU time, a syscall to read, is checked only when a kick came: its
    /// timer kicks, and long VMM work that gave up for it left the kick pending).
    pub(crate) fn check_limits(&self) -> Result<(), Stop> {
        if crate::kick::kicked() {
            return self.check_all_limits();
        }
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

    /// [`Kernel::check_limits`] and the CPU time too (after a kick).
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
            if self.ctl.take_input() {
                self.stirred = true;
            }
            // Relayed connections (network `egress`): bytes, answers, host clients.
            self.pump_egress();
            // After the flag was taken: a command queued later sets it again, so the
            // wait below does not sleep through it.
            if self.live.is_some() {
                // The scheduler sets the current task aside from its saved context:
                // a boundary where a snapshot may be taken (see `vcpu.rs`).
                self.boundary = true;
                self.serve_live()?;
            }
            self.fire_timers(now);
            self.retry_blocked(now)?;
            self.switch_to(running);
            self.check_limits()?;
            if let Some(t) = self.pick(now) {
                self.switch_to(t);
                self.release_dead_spaces();
                if self.live.is_some() {
                    self.live_busy();
                }
                return Ok(t);
            }
            if self.tids().is_empty() {
                return Err(Stop::Internal("no task left to run".into()));
            }
            let trim = if self.live.is_some() {
                self.live_idle_until(now)
            } else {
                None
            };
            let until = self
                .next_wakeup()
                .unwrap_or_else(|| super::time::later(Duration::from_secs(3600)));
            let until = trim.map_or(until, |t| until.min(t));
            let until = match self.limits.deadline {
                Some(d) => until.min(d),
                None => until,
            };
            self.ctl.wait_until(until);
            if self.live.is_some() {
                self.live_trim_if_due();
            }
            self.stirred = true; // input may have come
        }
    }

    /// The current task keeps the vCPU while its slice lasts (or while nobody else can
    /// run: its slice starts again); then the next runnable one after it (by id) gets
    /// the vCPU, with a fresh slice.
    fn pick(&mut self, now: Instant) -> Option<Tid> {
        let cur = self.task.tid;
        let cur_ok = self.can_run(cur);
        let others = self.others_runnable();
        let preempt = std::mem::take(&mut self.preempt);
        if cur_ok && (!others || (now < self.slice_end() && !preempt)) {
            if !others {
                self.slice_start = now;
            }
            return Some(cur);
        }
        let runnable = |t: &&Task| t.runnable() && self.process_goes(t.tid);
        let after = self.tasks.range(cur.saturating_add(1)..).map(|(_, t)| t);
        let next = after
            .filter(runnable)
            .map(|t| t.tid)
            .next()
            .or_else(|| self.tasks.values().find(runnable).map(|t| t.tid))
            .or(cur_ok.then_some(cur));
        if next.is_some() {
            self.slice_start = now;
        }
        next
    }

    /// `sched_yield`: the vCPU goes to the next runnable task now (a task alone goes on
    /// without a trip through the scheduler).
    pub(crate) fn yield_now(&mut self) {
        if self.others_runnable() {
            self.preempt = true;
        }
    }

    /// A task was made runnable by the current one: the current one's slice ends
    /// within [`WAKE_GRANULARITY`].
    pub(crate) fn woke_one(&mut self) {
        let soon = Instant::now() + WAKE_GRANULARITY;
        if self.slice_end() > soon {
            if let Some(start) = soon.checked_sub(TIME_SLICE) {
                self.slice_start = start;
            }
        }
    }

    /// When the running task's time slice ends.
    fn slice_end(&self) -> Instant {
        self.slice_start + TIME_SLICE
    }

    /// True when a task other than the current one could run.
    fn others_runnable(&self) -> bool {
        self.tasks
            .values()
            .any(|t| t.runnable() && self.process_goes(t.tid))
    }

    /// The next moment the scheduler must look, whatever the guest does: the end of
    /// the running task's slice when another task could run, the earliest deadline of
    /// a blocked task, the next `ITIMER_REAL` expiry. `None`: nothing but the guest's
    /// own exits (and kills, limits, input) needs a look. The vCPU loop arms a one-shot
    /// kick for it, so a task computing in user mode cannot starve the others and
    /// costs nothing when alone.
    pub(crate) fn next_kick(&self) -> Option<Instant> {
        let slice =
            (self.can_run(self.task.tid) && self.others_runnable()).then(|| self.slice_end());
        let blocked = self.all_tasks().filter_map(|t| match &t.state {
            TaskState::Blocked(b) if !matches!(b.wait, Wait::Vfork(_)) => b.deadline,
            _ => None,
        });
        let timers = std::iter::once(&self.proc)
            .chain(self.procs.values())
            .filter_map(|p| p.itimer.map(|(at, _)| at));
        let cpu_timers = self.cpu_timer_kick();
        slice
            .into_iter()
            .chain(blocked)
            .chain(timers)
            .chain(cpu_timers)
            .chain(self.timers.next_due())
            .min()
    }

    /// The current task and every other one.
    fn all_tasks(&self) -> impl Iterator<Item = &Task> {
        std::iter::once(&self.task).chain(self.tasks.values())
    }

    /// True when some process has an `ITIMER_REAL` armed.
    fn timers_armed(&self) -> bool {
        self.proc.itimer.is_some() || self.procs.values().any(|p| p.itimer.is_some())
    }

    /// True when some task waits in a syscall.
    pub(super) fn any_blocked(&self) -> bool {
        self.all_tasks()
            .any(|t| matches!(t.state, TaskState::Blocked(_)))
    }

    /// `ITIMER_REAL`s that expired send `SIGALRM`.
    fn fire_timers(&mut self, now: Instant) {
        self.fire_fd_and_posix_timers(now);
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
                    (!every.is_zero()).then(|| (next_expiry(at, every, now), every))
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
        tasks.chain(timers).chain(self.timers.next_due()).min()
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
                if let Wait::Interrupted(sig) = b.wait {
                    // Tried once more since the signal came: if it still waits, the
                    // signal ends it now.
                    self.end_wait(tid, sig);
                }
                if self.task_ref(tid).is_some_and(Task::runnable) {
                    if due {
                        // A sleeper whose time came runs now, not at the end of the
                        // running task's slice (its sleep is as long as it asked).
                        self.preempt = true;
                    } else {
                        self.woke_one();
                    }
                }
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
    pub(crate) fn release_dead_spaces(&mut self) {
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
                self.ipc.space_released(id);
            }
        }
    }

    /// True when the current task has a signal it would take now.
    pub(crate) fn has_signal(&self) -> bool {
        let mask = self.task.mask & !(super::signal::bit(9) | super::signal::bit(19));
        let mut ready = (self.task.pending | self.proc.pending) & !mask;
        // One that was pending while blocked and is ignored is dropped, not acted on.
        while ready != 0 {
            let sig = ready.trailing_zeros() as i32 + 1;
            if !self.ignores(self.proc.pid, sig) {
                return true;
            }
            ready &= ready - 1;
        }
        false
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
