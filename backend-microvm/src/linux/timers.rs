//! Timers a program reads or is signalled by: `timerfd` (a descriptor whose reads
//! count expirations, pollable like any other) and POSIX per-process timers
//! (`timer_create`: a signal at each expiry, later expiries counted as overruns while
//! that signal is pending).
//!
//! Both run on the clocks the workload reads: `CLOCK_REALTIME`, `CLOCK_MONOTONIC`,
//! `CLOCK_BOOTTIME` (and `CLOCK_TAI` for `timer_create`); the `_ALARM` variants, which
//! need `CAP_WAKE_ALARM`, are `EPERM` for a sandbox user other than root and their
//! base clock for root. An absolute expiry becomes the host instant at which its
//! clock reads it when the timer is set (the sandbox cannot set a clock, so none jumps
//! under it; a change of the host's wall clock is not followed, and
//! `TFD_TIMER_CANCEL_ON_SET` never cancels). CPU-time clocks are not offered to
//! `timer_create` (`EINVAL`, counted as unsupported).
//!
//! The scheduler counts expiries (`sched.rs`): the earliest armed timer is one of the
//! moments it looks ([`Kernel::next_kick`]), an expired timerfd stirs the tasks
//! waiting to read or poll it, and a POSIX timer queues its signal then.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::fd::{FileKind, OpenFile};
use super::signal::SigInfo;
use super::task::{TaskState, Tid};
use super::{Kernel, SysErr, SysResult};
use crate::abi::{Itimerspec, Sigevent};
use crate::errno;
use crate::mm::UserPtr;

/// `TFD_TIMER_ABSTIME` (and `TIMER_ABSTIME`).
const ABSTIME: u64 = 1;
/// `TFD_TIMER_CANCEL_ON_SET`.
const CANCEL_ON_SET: u64 = 2;
/// `SIGEV_SIGNAL`.
const SIGEV_SIGNAL: i32 = 0;
/// `SIGEV_NONE`.
const SIGEV_NONE: i32 = 1;
/// `SIGEV_THREAD` (the C library's; the kernel treats it as `SIGEV_SIGNAL`).
const SIGEV_THREAD: i32 = 2;
/// `SIGEV_THREAD_ID` (Linux's `SIGEV_SIGNAL | SIGEV_THREAD_ID`).
const SIGEV_THREAD_ID: i32 = 4;
/// `si_code` of a POSIX timer's signal.
pub(crate) const SI_TIMER: i32 = -2;
/// The `si_code` a POSIX timer's pending signal gets when the timer is set again or
/// deleted: it stays pending (`sigpending` shows it, as on Linux) but is dropped when
/// it would be taken. Never seen by the workload.
pub(crate) const SI_TIMER_STALE: i32 = i32::MIN;
/// `SIGALRM`, the signal of a timer created without a `sigevent`.
const SIGALRM: i32 = 14;
/// Most POSIX timers the sandbox holds at once (`EAGAIN` past it), so that a
/// workload cannot grow the VMM's memory without bound. Timerfds are descriptors,
/// bounded by the descriptor limits.
const MAX_POSIX_TIMERS: usize = if cfg!(test) { 8 } else { 1 << 16 };

/// When a timer expires next (`None`: disarmed) and its period (zero: once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Timer {
    /// The next expiry.
    pub(crate) next: Option<Instant>,
    /// The interval (kept while disarmed: `*_gettime` reports it, as Linux).
    pub(crate) every: Duration,
}

impl Timer {
    /// The expiries due by `now`, counted: a periodic timer moves to its first
    /// expiry after `now` (whole periods skipped at once), a one-shot one disarms.
    fn expire(&mut self, now: Instant) -> u64 {
        let Some(at) = self.next else {
            return 0;
        };
        if now < at {
            return 0;
        }
        if self.every.is_zero() {
            self.next = None;
            return 1;
        }
        let (n, next) = super::sched::expiries(at, self.every, now);
        self.next = Some(next);
        n
    }

    /// `struct itimerspec` for `*_gettime`: the interval and the time left.
    fn setting(&self, now: Instant) -> Itimerspec {
        let left = self
            .next
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
        Itimerspec {
            it_interval: self.every.into(),
            it_value: left.into(),
        }
    }
}

/// A `timerfd`: its clock, its timer, and the expiries not read yet.
#[derive(Debug)]
pub(crate) struct TimerFd {
    /// The clock it was made on.
    clock: i32,
    /// Its timer.
    timer: Cell<Timer>,
    /// Expiries since the last read (what a read returns).
    ticks: Cell<u64>,
    /// Every expiry so far: what an edge-triggered `epoll` compares.
    fired: Cell<u64>,
}

impl TimerFd {
    /// Counts the expiries due by `now`; true when there were some.
    fn settle(&self, now: Instant) -> bool {
        let mut t = self.timer.get();
        let n = t.expire(now);
        self.timer.set(t);
        if n == 0 {
            return false;
        }
        self.ticks.set(self.ticks.get().saturating_add(n));
        self.fired.set(self.fired.get().wrapping_add(n));
        true
    }

    /// Whether a read would return now (`POLLIN`).
    pub(crate) fn readable(&self) -> bool {
        self.settle(Instant::now());
        self.ticks.get() > 0
    }

    /// Every expiry so far (see [`TimerFd::fired`]).
    pub(crate) fn activity(&self) -> u64 {
        self.settle(Instant::now());
        self.fired.get()
    }

    /// The next expiry, if armed.
    fn next(&self) -> Option<Instant> {
        self.timer.get().next
    }

    /// A copy for a snapshot (its own state from here on).
    pub(crate) fn copy(&self) -> TimerFd {
        TimerFd {
            clock: self.clock,
            timer: Cell::new(self.timer.get()),
            ticks: Cell::new(self.ticks.get()),
            fired: Cell::new(self.fired.get()),
        }
    }
}

/// Where a POSIX timer's expiry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notify {
    /// Nowhere (`SIGEV_NONE`): the timer is only read.
    Nothing,
    /// This signal to the process.
    Process(i32),
    /// This signal to one thread of it.
    Thread(Tid, i32),
}

/// A POSIX timer of a process.
#[derive(Debug, Clone)]
struct PosixTimer {
    /// Its clock.
    clock: i32,
    /// Its signal.
    notify: Notify,
    /// `sigev_value`, carried by the signal.
    value: u64,
    /// Its timer.
    timer: Timer,
    /// The overruns of the last signal it queued (`timer_getoverrun`).
    overrun_last: i32,
}

/// Every timerfd and POSIX timer of the sandbox.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// The timerfds, held weakly: each goes with its last descriptor.
    fds: Vec<Weak<TimerFd>>,
    /// POSIX timers by process and id.
    posix: BTreeMap<(Tid, i32), PosixTimer>,
    /// The POSIX timers that signal and are armed, by next expiry: what the
    /// scheduler looks at, without going through every timer at each turn.
    armed: BTreeSet<(Instant, Tid, i32)>,
    /// The next id a process's `timer_create` tries (kept across `execve`, as Linux
    /// keeps it in the thread group).
    next_id: BTreeMap<Tid, i32>,
}

impl Timers {
    /// Nothing armed or held: the scheduler skips them.
    fn is_idle(&self) -> bool {
        self.fds.is_empty() && self.posix.is_empty()
    }

    /// True when some process has a POSIX timer (a snapshot file refuses them).
    pub(crate) fn has_posix(&self) -> bool {
        !self.posix.is_empty()
    }

    /// The earliest expiry the scheduler must look at.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        if self.is_idle() {
            return None;
        }
        let fds = self.fds.iter().filter_map(|w| w.upgrade()?.next());
        let posix = self.armed.first().map(|(at, _, _)| *at);
        fds.chain(posix).min()
    }

    /// Gives the POSIX timer `key` the timer `timer` (kept in [`Timers::armed`]).
    fn set_posix(&mut self, key: (Tid, i32), timer: Timer) {
        let Some(t) = self.posix.get_mut(&key) else {
            return;
        };
        if let Some(at) = t.timer.next {
            self.armed.remove(&(at, key.0, key.1));
        }
        t.timer = timer;
        if let (Some(at), true) = (timer.next, t.notify != Notify::Nothing) {
            self.armed.insert((at, key.0, key.1));
        }
    }

    /// Removes the POSIX timer `key`.
    fn remove_posix(&mut self, key: (Tid, i32)) {
        if let Some(t) = self.posix.remove(&key) {
            if let Some(at) = t.timer.next {
                self.armed.remove(&(at, key.0, key.1));
            }
        }
    }

    /// The POSIX timers of `pid` go (`execve`, exit).
    pub(crate) fn drop_process(&mut self, pid: Tid, exiting: bool) {
        self.posix.retain(|(p, _), _| *p != pid);
        self.armed.retain(|(_, p, _)| *p != pid);
        if exiting {
            self.next_id.remove(&pid);
        }
    }

    /// A copy for a snapshot, whose timerfds are among `files` (the copied open files).
    pub(crate) fn copy<'a>(&self, files: impl Iterator<Item = &'a Rc<OpenFile>>) -> Timers {
        let fds = files
            .filter_map(|f| match &f.kind {
                FileKind::TimerFd(t) => Some(Rc::downgrade(t)),
                _ => None,
            })
            .collect();
        Timers {
            fds,
            posix: self.posix.clone(),
            armed: self.armed.clone(),
            next_id: self.next_id.clone(),
        }
    }

    /// The signal of a POSIX timer of `pid` was taken (delivered or waited for): its
    /// overruns are what `timer_getoverrun` answers from now on.
    pub(crate) fn delivered(&mut self, pid: Tid, info: &SigInfo) {
        let id = info.addr as u32 as i32;
        if let Some(t) = self.posix.get_mut(&(pid, id)) {
            t.overrun_last = (info.addr >> 32) as u32 as i32;
        }
    }

    /// Registers a timerfd made or restored.
    pub(crate) fn add_fd(&mut self, t: &Rc<TimerFd>) {
        self.fds.retain(|w| w.strong_count() > 0);
        self.fds.push(Rc::downgrade(t));
    }
}

/// The clock a timer runs on: the `_ALARM` variants run on their base clock.
fn base_clock(clock: i32) -> i32 {
    match clock {
        libc::CLOCK_REALTIME_ALARM => libc::CLOCK_REALTIME,
        libc::CLOCK_BOOTTIME_ALARM => libc::CLOCK_BOOTTIME,
        c => c,
    }
}

impl Kernel {
    /// `EPERM` for an `_ALARM` clock unless the sandbox user is root
    /// (`CAP_WAKE_ALARM`).
    fn alarm_clock_allowed(&self, clock: i32) -> Result<(), SysErr> {
        let alarm = matches!(
            clock,
            libc::CLOCK_REALTIME_ALARM | libc::CLOCK_BOOTTIME_ALARM
        );
        if alarm && self.user.0 != 0 {
            return Err(errno::EPERM.into());
        }
        Ok(())
    }

    /// Reads a new setting (`EFAULT`, then `EINVAL` for a bad time: checked before
    /// the timer is looked up, as Linux): its value and interval.
    fn read_setting(&mut self, new: UserPtr<Itimerspec>) -> Result<(Duration, Duration), SysErr> {
        let spec = self.mm.read(new)?;
        let every = spec.it_interval.duration()?;
        let value = spec.it_value.duration()?;
        Ok((value, every))
    }

    /// The timer a setting makes on `clock` (an absolute expiry, `ABSTIME`, read on
    /// that clock).
    fn new_setting(
        &self,
        clock: i32,
        flags: u64,
        (value, every): (Duration, Duration),
    ) -> Result<Timer, SysErr> {
        if value.is_zero() {
            return Ok(Timer { next: None, every });
        }
        let left = if flags & ABSTIME != 0 {
            value.saturating_sub(self.clock(base_clock(clock) as u64)?)
        } else {
            value
        };
        Ok(Timer {
            next: Some(super::time::later(left)),
            every,
        })
    }

    pub(crate) fn sys_timerfd_create(&mut self, clock: u64, flags: u64) -> SysResult {
        let clock = clock as i32;
        let known = [
            libc::CLOCK_REALTIME,
            libc::CLOCK_MONOTONIC,
            libc::CLOCK_BOOTTIME,
            libc::CLOCK_REALTIME_ALARM,
            libc::CLOCK_BOOTTIME_ALARM,
        ];
        let allowed = (libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) as u64;
        if !known.contains(&clock) || flags & !allowed != 0 {
            return Err(errno::EINVAL.into());
        }
        self.alarm_clock_allowed(clock)?;
        let t = Rc::new(TimerFd {
            clock,
            timer: Cell::new(Timer::default()),
            ticks: Cell::new(0),
            fired: Cell::new(0),
        });
        self.timers.add_fd(&t);
        self.add_anon(FileKind::TimerFd(t), libc::O_RDWR, flags)
    }

    /// The timerfd behind `fd` (`EINVAL` for another kind of file, as Linux).
    fn timerfd(&self, fd: u64) -> Result<Rc<TimerFd>, SysErr> {
        match &self.proc.files.get(fd)?.kind {
            FileKind::TimerFd(t) => Ok(Rc::clone(t)),
            _ => Err(errno::EINVAL.into()),
        }
    }

    pub(crate) fn sys_timerfd_settime(
        &mut self,
        fd: u64,
        flags: u64,
        new: UserPtr<Itimerspec>,
        old: UserPtr<Itimerspec>,
    ) -> SysResult {
        let setting = self.read_setting(new)?;
        if flags & !(ABSTIME | CANCEL_ON_SET) != 0 {
            return Err(errno::EINVAL.into());
        }
        let t = self.timerfd(fd)?;
        let timer = self.new_setting(t.clock, flags, setting)?;
        let now = Instant::now();
        t.settle(now);
        let before = t.timer.get().setting(now);
        t.timer.set(timer);
        t.ticks.set(0);
        // The new setting holds even when the old one cannot be written (as Linux).
        if !old.is_null() {
            self.mm.write(old, &before)?;
        }
        Ok(0)
    }

    pub(crate) fn sys_timerfd_gettime(&mut self, fd: u64, cur: UserPtr<Itimerspec>) -> SysResult {
        let t = self.timerfd(fd)?;
        let now = Instant::now();
        t.settle(now);
        self.mm.write(cur, &t.timer.get().setting(now))?;
        Ok(0)
    }

    /// `read` of a timerfd: the expiries since the last read (eight bytes), waiting
    /// for the next one while there are none.
    pub(crate) fn read_timerfd(
        &mut self,
        t: &TimerFd,
        buf: &mut [u8],
        nonblock: bool,
    ) -> Result<usize, SysErr> {
        if buf.len() < 8 {
            return Err(errno::EINVAL.into());
        }
        t.settle(Instant::now());
        let n = t.ticks.replace(0);
        if n == 0 {
            return Err(if nonblock {
                errno::EAGAIN.into()
            } else {
                self.park(t.next())
            });
        }
        buf[..8].copy_from_slice(&n.to_ne_bytes());
        Ok(8)
    }

    pub(crate) fn sys_timer_create(
        &mut self,
        clock: u64,
        sevp: UserPtr<Sigevent>,
        id_out: UserPtr<i32>,
    ) -> SysResult {
        // The sigevent is read first, then the clock checked (Linux's order).
        let event = if sevp.is_null() {
            None
        } else {
            Some(self.mm.read(sevp)?)
        };
        let clock = clock as i32;
        match clock {
            libc::CLOCK_REALTIME
            | libc::CLOCK_MONOTONIC
            | libc::CLOCK_BOOTTIME
            | libc::CLOCK_TAI
            | libc::CLOCK_REALTIME_ALARM
            | libc::CLOCK_BOOTTIME_ALARM => {}
            // Clocks with no timers on Linux either.
            libc::CLOCK_MONOTONIC_RAW
            | libc::CLOCK_REALTIME_COARSE
            | libc::CLOCK_MONOTONIC_COARSE => return Err(errno::EOPNOTSUPP.into()),
            c if c < 0
                || c == libc::CLOCK_PROCESS_CPUTIME_ID
                || c == libc::CLOCK_THREAD_CPUTIME_ID =>
            {
                return Err(self.unsupported("timer_create on a CPU-time clock", errno::EINVAL))
            }
            _ => return Err(errno::EINVAL.into()),
        }
        if self.timers.posix.len() >= MAX_POSIX_TIMERS {
            return Err(errno::EAGAIN.into());
        }
        // Ids count up per process, the first free one from where the last was given;
        // as in Linux, an id is used up before the rest is checked, so a refused
        // call moves the next one on too.
        let pid = self.proc.pid;
        let start = self.timers.next_id.get(&pid).copied().unwrap_or(0);
        let mut id = start;
        while self.timers.posix.contains_key(&(pid, id)) {
            id = id.checked_add(1).unwrap_or(0);
            if id == start {
                return Err(errno::EAGAIN.into());
            }
        }
        self.timers
            .next_id
            .insert(pid, id.checked_add(1).unwrap_or(0));
        let (notify, value) = match event {
            // Without a sigevent: SIGALRM to the process, carrying the timer's id.
            None => (Notify::Process(SIGALRM), id as u32 as u64),
            Some(ev) => {
                let signo = ev.sigev_signo;
                let good_signo = (1..=64).contains(&signo);
                let notify = match ev.sigev_notify {
                    SIGEV_NONE => Notify::Nothing,
                    SIGEV_SIGNAL | SIGEV_THREAD if good_signo => Notify::Process(signo),
                    SIGEV_THREAD_ID if good_signo => {
                        let tid = ev.sigev_tid as Tid;
                        let ours = ev.sigev_tid > 0
                            && self.task_ref(tid).is_some_and(|t| {
                                t.pid == pid && !matches!(t.state, TaskState::Dead)
                            });
                        if !ours {
                            return Err(errno::EINVAL.into());
                        }
                        Notify::Thread(tid, signo)
                    }
                    _ => return Err(errno::EINVAL.into()),
                };
                (notify, ev.sigev_value)
            }
        };
        self.mm.write(id_out, &id)?;
        self.alarm_clock_allowed(clock)?;
        let timer = PosixTimer {
            clock,
            notify,
            value,
            timer: Timer::default(),
            overrun_last: 0,
        };
        self.timers.posix.insert((pid, id), timer);
        Ok(0)
    }

    /// The caller's POSIX timer `id` (`EINVAL` when it has none such).
    fn posix_timer(&mut self, id: u64) -> Result<&mut PosixTimer, SysErr> {
        // `timer_t` is an `int`: the kernel reads the low 32 bits.
        let key = (self.proc.pid, id as i32);
        self.timers
            .posix
            .get_mut(&key)
            .ok_or_else(|| errno::EINVAL.into())
    }

    pub(crate) fn sys_timer_settime(
        &mut self,
        id: u64,
        flags: u64,
        new: UserPtr<Itimerspec>,
        old: UserPtr<Itimerspec>,
    ) -> SysResult {
        if new.is_null() {
            return Err(errno::EINVAL.into());
        }
        let setting = self.read_setting(new)?;
        let clock = self.posix_timer(id)?.clock;
        let timer = self.new_setting(clock, flags, setting)?;
        let now = Instant::now();
        self.drop_timer_signal((self.proc.pid, id as i32));
        let t = self.posix_timer(id)?;
        let mut before = t.timer;
        if t.notify == Notify::Nothing {
            before.expire(now);
        }
        t.overrun_last = 0;
        self.timers.set_posix((self.proc.pid, id as i32), timer);
        if !old.is_null() {
            self.mm.write(old, &before.setting(now))?;
        }
        Ok(0)
    }

    pub(crate) fn sys_timer_gettime(&mut self, id: u64, cur: UserPtr<Itimerspec>) -> SysResult {
        let now = Instant::now();
        let t = self.posix_timer(id)?;
        if t.notify == Notify::Nothing {
            t.timer.expire(now);
        }
        let setting = t.timer.setting(now);
        self.mm.write(cur, &setting)?;
        Ok(0)
    }

    pub(crate) fn sys_timer_getoverrun(&mut self, id: u64) -> SysResult {
        Ok(self.posix_timer(id)?.overrun_last as u64)
    }

    pub(crate) fn sys_timer_delete(&mut self, id: u64) -> SysResult {
        self.posix_timer(id)?;
        let key = (self.proc.pid, id as i32);
        self.drop_timer_signal(key);
        self.timers.remove_posix(key);
        Ok(0)
    }

    /// Counts the timers' expiries due by `now`: an expired timerfd stirs its
    /// waiters, an expired POSIX timer queues its signal (or, while the one it queued
    /// is still pending, counts overruns in it).
    pub(crate) fn fire_fd_and_posix_timers(&mut self, now: Instant) {
        if self.timers.is_idle() {
            return;
        }
        let mut any = false;
        self.timers.fds.retain(|w| match w.upgrade() {
            Some(t) => {
                any |= t.settle(now);
                true
            }
            None => false,
        });
        if any {
            self.stirred = true;
        }
        while let Some(&(at, pid, id)) = self.timers.armed.first() {
            if at > now {
                break;
            }
            let key = (pid, id);
            let Some(t) = self.timers.posix.get(&key) else {
                self.timers.armed.remove(&(at, pid, id));
                continue;
            };
            let mut timer = t.timer;
            let n = timer.expire(now);
            let (notify, value) = (t.notify, t.value);
            self.timers.set_posix(key, timer);
            self.queue_timer_signal(key, notify, value, n);
        }
    }

    /// The pending signal of POSIX timer `key` (not delivered yet), if there is one:
    /// its pending bits and the siginfo it carries.
    fn pending_timer_signal(
        &mut self,
        key: (Tid, i32),
        notify: Notify,
    ) -> Option<(&mut u64, &mut Option<SigInfo>)> {
        let (pid, id) = key;
        let (bits, info) = match notify {
            Notify::Nothing => return None,
            Notify::Process(sig) => {
                let p = self.proc_mut(pid)?;
                (&mut p.pending, &mut p.info[(sig - 1) as usize])
            }
            Notify::Thread(tid, sig) => {
                let t = self.task_mut(tid)?;
                (&mut t.pending, &mut t.info[(sig - 1) as usize])
            }
        };
        let i = (*info)?;
        let ours = *bits & super::signal::bit(i.signo) != 0
            && i.code == SI_TIMER
            && i.addr as u32 as i32 == id;
        ours.then_some((bits, info))
    }

    /// A timer set again or deleted: the signal it queued and that was not delivered
    /// yet is stale. It stays pending, and is dropped when taken (Linux 6.13 on).
    fn drop_timer_signal(&mut self, key: (Tid, i32)) {
        let Some(notify) = self.timers.posix.get(&key).map(|t| t.notify) else {
            return;
        };
        if let Some((_, Some(info))) = self.pending_timer_signal(key, notify) {
            info.code = SI_TIMER_STALE;
        }
    }

    /// Queues the signal of POSIX timer `key` for `n` expiries, or adds them to the
    /// overruns of the one still pending.
    fn queue_timer_signal(&mut self, key: (Tid, i32), notify: Notify, value: u64, n: u64) {
        let (pid, id) = key;
        let (tid, sig) = match notify {
            Notify::Nothing => return,
            Notify::Process(sig) => (None, sig),
            Notify::Thread(tid, sig) => (Some(tid), sig),
        };
        if let Some((_, Some(info))) = self.pending_timer_signal(key, notify) {
            let before = (info.addr >> 32) as u32 as i32;
            let overrun = before.saturating_add(i32::try_from(n).unwrap_or(i32::MAX));
            info.addr = u64::from(id as u32) | (u64::from(overrun as u32) << 32);
            return;
        }
        let overrun = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let info = SigInfo {
            signo: sig,
            code: SI_TIMER,
            addr: u64::from(id as u32) | (u64::from(overrun as u32) << 32),
            status: value,
        };
        match tid {
            None => self.signal_process(pid, info),
            Some(tid) => self.signal_task(tid, info),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_periodic_timer_counts_every_period_it_missed() {
        let t0 = Instant::now();
        let mut t = Timer {
            next: Some(t0),
            every: Duration::from_millis(10),
        };
        assert_eq!(t.expire(t0 - Duration::from_millis(1)), 0);
        assert_eq!(t.expire(t0 + Duration::from_millis(35)), 4);
        assert_eq!(t.next, Some(t0 + Duration::from_millis(40)));
        assert_eq!(t.expire(t0 + Duration::from_millis(39)), 0);
    }

    #[test]
    fn a_one_shot_timer_disarms_and_keeps_its_interval_field() {
        let t0 = Instant::now();
        let mut t = Timer {
            next: Some(t0),
            every: Duration::ZERO,
        };
        assert_eq!(t.expire(t0), 1);
        assert_eq!(t.next, None);
        assert_eq!(t.expire(t0 + Duration::from_secs(1)), 0);
        let s = t.setting(t0);
        assert_eq!((s.it_value.tv_sec, s.it_value.tv_nsec), (0, 0));
    }

    #[test]
    fn a_tiny_period_late_by_long_is_no_long_loop() {
        let t0 = Instant::now();
        let mut t = Timer {
            next: Some(t0),
            every: Duration::from_nanos(1),
        };
        assert_eq!(t.expire(t0 + Duration::from_secs(100)), 100_000_000_001);
    }
}
