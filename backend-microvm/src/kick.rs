//! Getting the vCPU thread out of `KVM_RUN`: kills from other threads, wall-time and
//! CPU-time timers.
//!
//! Each kick is a real-time signal sent to the vCPU thread. Its handler sets the
//! vCPU's `immediate_exit`, so `KVM_RUN` returns at once whether the thread was inside
//! it or about to enter it; the run loop then looks at what happened.
//!
//! A kick can also come while the thread works in the VMM (a long syscall: a scan of
//! a large address space, a big copy). Such work asks [`must_stop`] as it goes: it
//! reads the same byte, and only when a kick came does it look at the run's limits
//! (kill, wall time, CPU time); when one is reached the work gives up early, whatever
//! it returns, and the run loop ends the run at its next turn (the byte is left set,
//! so `KVM_RUN` returns at once). So a limit takes effect within a chunk of VMM work,
//! whatever the guest asked for.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Why a run is being stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Still running.
    None = 0,
    /// The caller killed it (or dropped the execution).
    Killed = 1,
}

/// The kick signal: `SIGRTMIN + 5` (glibc keeps the first ones for itself).
pub(crate) fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN() + 5
}

thread_local! {
    /// The `immediate_exit` byte of this thread's vCPU, or null.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn on_kick(_: libc::c_int) {
    // Only a thread-local read and a volatile byte store: async-signal-safe.
    let p = IMMEDIATE_EXIT.with(Cell::get);
    if !p.is_null() {
        // SAFETY: the pointer is set by `arm_thread` to this thread's kvm_run page and
        // cleared by `disarm_thread` before that page is unmapped; a signal handler runs
        // on the same thread, so the page is mapped here.
        unsafe { std::ptr::write_volatile(p, 1) };
    }
}

/// Makes the calling thread's vCPU leave `KVM_RUN` at once, or not enter it (only a
/// thread-local read and a byte store: callable from a signal handler).
pub(crate) fn exit_now() {
    on_kick(0);
}

/// True when a kick came since the run loop last looked (the vCPU's `immediate_exit`
/// is set): a thread-local read and a byte load.
pub(crate) fn kicked() -> bool {
    let p = IMMEDIATE_EXIT.with(Cell::get);
    // SAFETY: as in `on_kick`: the pointer is this thread's mapped kvm_run page, or null.
    !p.is_null() && unsafe { std::ptr::read_volatile(p) } != 0
}

/// The limits long VMM work checks (see [`must_stop`]).
#[derive(Debug)]
pub(crate) struct Watch {
    /// The kill switch.
    pub(crate) ctl: Arc<Control>,
    /// Wall-time deadline.
    pub(crate) deadline: Option<Instant>,
    /// CPU-time limit of the vCPU thread.
    pub(crate) cpu: Option<Duration>,
}

thread_local! {
    /// The run's limits while the calling thread runs it, and when they were last
    /// checked after a kick.
    static WATCH: std::cell::RefCell<Option<(Watch, Option<Instant>)>> =
        const { std::cell::RefCell::new(None) };
}

/// While alive, [`must_stop`] on the calling thread checks `watch`.
#[derive(Debug)]
pub(crate) struct Watching(());

impl Drop for Watching {
    fn drop(&mut self) {
        WATCH.with(|w| *w.borrow_mut() = None);
    }
}

/// Makes long VMM work on the calling thread give up once `watch`'s limits are reached.
pub(crate) fn watch(watch: Watch) -> Watching {
    WATCH.with(|w| *w.borrow_mut() = Some((watch, None)));
    Watching(())
}

/// True when long VMM work must give up now: a kick came and the run was killed, or
/// its wall or CPU time is over. Cheap when no kick came (call it every few thousand
/// steps of a loop); after a kick the limits are read at most once a millisecond.
pub(crate) fn must_stop() -> bool {
    if !kicked() {
        return false;
    }
    WATCH.with(|w| {
        let mut w = w.borrow_mut();
        let Some((watch, last)) = w.as_mut() else {
            return false;
        };
        let now = Instant::now();
        if watch.ctl.killed() || watch.deadline.is_some_and(|d| now >= d) {
            return true;
        }
        if last.is_some_and(|l| now.duration_since(l) < Duration::from_millis(1)) {
            return false;
        }
        *last = Some(now);
        watch.cpu.is_some_and(|c| thread_cpu_time() >= c)
    })
}

/// Installs the kick handler (once per process).
pub(crate) fn install_handler() -> std::io::Result<()> {
    static DONE: OnceLock<Result<(), i32>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: installs a handler that only does async-signal-safe work, for a
        // real-time signal this crate owns.
        let rc = unsafe { libc::sigaction(kick_signal(), &sa, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL))
        }
    });
    r.map_err(std::io::Error::from_raw_os_error)
}

/// While alive, the kick handler of the calling thread points at its vCPU's
/// `immediate_exit`; dropping it (before the vCPU) points it nowhere again.
#[derive(Debug)]
pub(crate) struct Armed(());

impl Drop for Armed {
    fn drop(&mut self) {
        IMMEDIATE_EXIT.with(|c| c.set(std::ptr::null_mut()));
    }
}

/// Points the kick handler of the calling thread at its vCPU's `immediate_exit`, and
/// unblocks the kick signal.
pub(crate) fn arm_thread(immediate_exit: *mut u8) -> Armed {
    IMMEDIATE_EXIT.with(|c| c.set(immediate_exit));
    // SAFETY: an all-zero sigset_t is a valid (empty) set.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t owned here.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: as above; the signal number is a valid real-time signal.
    unsafe { libc::sigaddset(&mut set, kick_signal()) };
    // SAFETY: changes only the calling thread's mask; `set` is valid.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    Armed(())
}

/// State shared between the vCPU thread and whoever may stop it.
#[derive(Debug)]
pub(crate) struct Control {
    reason: AtomicU8,
    /// The vCPU thread while it can take signals.
    thread: Mutex<Option<libc::pthread_t>>,
    /// Wakes the vCPU thread when it waits (sleep, stdin).
    pub(crate) wake: Condvar,
    /// The lock that goes with `wake`; guards nothing else.
    pub(crate) wake_lock: Mutex<()>,
    /// Set when new stdin data arrived (checked under `wake_lock`).
    pub(crate) input: AtomicBool,
    /// Set when the egress relay changed a relayed connection (bytes, an answer, a
    /// host client): the scheduler then pumps them (see `linux/egress.rs`).
    pub(crate) relayed: AtomicBool,
    /// The vCPU thread sleeps in [`Control::wait_until`] (set and cleared under
    /// `wake_lock`): new input then needs no kick out of `KVM_RUN`.
    sleeping: AtomicBool,
    /// The vCPU thread is in `KVM_RUN` or about to enter it ([`Control::entering`]):
    /// only then does new input need a kick.
    in_guest: AtomicBool,
    /// Input came while the vCPU thread worked in the VMM and it has not taken it
    /// yet ([`Control::take_input`]): its next entry into the guest returns at once.
    owed: AtomicBool,
    /// Pages the `warm` pass touched before the sandbox said it was ready (`warm.rs`).
    pub(crate) warmed: std::sync::atomic::AtomicU64,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            reason: AtomicU8::new(Reason::None as u8),
            thread: Mutex::new(None),
            wake: Condvar::new(),
            wake_lock: Mutex::new(()),
            input: AtomicBool::new(false),
            relayed: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            in_guest: AtomicBool::new(false),
            owed: AtomicBool::new(false),
            warmed: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Control {
    /// Kills the run: kicks the vCPU and wakes it from any wait.
    pub(crate) fn kill(&self) {
        let _ = self.reason.compare_exchange(
            Reason::None as u8,
            Reason::Killed as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.kick();
        self.notify();
    }

    /// True once killed.
    pub(crate) fn killed(&self) -> bool {
        self.reason.load(Ordering::SeqCst) == Reason::Killed as u8
    }

    /// Wakes the vCPU thread if it waits.
    pub(crate) fn notify(&self) {
        let _g = self.wake_lock.lock();
        self.wake.notify_all();
    }

    /// The relay changed a relayed connection: the scheduler looks at them, woken as
    /// for new input.
    pub(crate) fn relay_changed(&self) {
        self.relayed.store(true, Ordering::SeqCst);
        self.input_arrived();
    }

    /// New stdin data (or its end) arrived: the vCPU thread looks at once, whether it
    /// sleeps or runs a guest task (a reader waiting beside a task that computes must
    /// not wait for that task's time slice to end).
    pub(crate) fn input_arrived(&self) {
        self.input.store(true, Ordering::SeqCst);
        self.owed.store(true, Ordering::SeqCst);
        self.notify();
        // A sleeping thread was woken by the notification, and looks at the input as
        // its wait returns: a kick would only make its next KVM_RUN return at once.
        // One working in the VMM takes the input before it enters the guest again, or
        // finds `owed` as it enters (`entering`; all these stores and loads are
        // sequentially consistent, so one side sees the other's): a kick (a signal,
        // then an extra trip through KVM_RUN) is needed only while it runs the guest.
        if self.in_guest.load(Ordering::SeqCst) && !self.sleeping.load(Ordering::SeqCst) {
            self.kick();
        }
    }

    /// Takes the input flag (the scheduler looks at every input when it was set).
    /// `owed` goes first: input arriving after the flag is taken leaves it set.
    pub(crate) fn take_input(&self) -> bool {
        self.owed.store(false, Ordering::SeqCst);
        self.input.swap(false, Ordering::SeqCst)
    }

    /// The vCPU thread is about to run the guest: input it has not taken makes
    /// `KVM_RUN` return at once (as a kick would, once), and input from now on kicks
    /// it.
    pub(crate) fn entering(&self) {
        self.in_guest.store(true, Ordering::SeqCst);
        if self.owed.swap(false, Ordering::SeqCst) {
            exit_now();
        }
    }

    /// The vCPU thread left `KVM_RUN`.
    pub(crate) fn left(&self) {
        self.in_guest.store(false, Ordering::SeqCst);
    }

    fn kick(&self) {
        let guard = crate::sync::locked(&self.thread);
        if let Some(t) = *guard {
            // SAFETY: `t` is a live thread: the vCPU thread clears it (under this lock)
            // before it exits.
            unsafe { libc::pthread_kill(t, kick_signal()) };
        }
    }

    /// Registers the calling thread as the vCPU thread.
    pub(crate) fn register_thread(&self) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        *crate::sync::locked(&self.thread) = Some(me);
    }

    /// Unregisters the vCPU thread (it stops taking kicks).
    pub(crate) fn unregister_thread(&self) {
        *crate::sync::locked(&self.thread) = None;
    }

    /// Waits until woken or `until`, whichever comes first.
    pub(crate) fn wait_until(&self, until: Instant) {
        let g = crate::sync::locked(&self.wake_lock);
        if self.killed() || self.take_input() {
            return;
        }
        let left = until.saturating_duration_since(Instant::now());
        self.sleeping.store(true, Ordering::SeqCst);
        let g = match self.wake.wait_timeout(g, left) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
        self.sleeping.store(false, Ordering::SeqCst);
        drop(g);
    }
}

/// A one-shot POSIX timer that kicks the calling thread.
#[derive(Debug)]
pub(crate) struct Timer {
    id: libc::timer_t,
}

impl Timer {
    /// Arms a timer on `clock` (`CLOCK_MONOTONIC`, `CLOCK_THREAD_CPUTIME_ID`) firing
    /// after `after`, signalling the calling thread.
    pub(crate) fn new(clock: libc::clockid_t, after: Duration) -> std::io::Result<Timer> {
        // SAFETY: a zeroed sigevent is valid; the fields used are set below.
        let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = kick_signal();
        // SAFETY: gettid has no preconditions.
        sev.sigev_notify_thread_id = unsafe { libc::gettid() };
        let mut id: libc::timer_t = std::ptr::null_mut();
        // SAFETY: valid pointers to a sigevent and a timer id.
        if unsafe { libc::timer_create(clock, &mut sev, &mut id) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let timer = Timer { id };
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: libc::c_long::from(after.subsec_nanos() as i32),
            },
        };
        // SAFETY: `id` is the timer just created; `spec` is valid.
        if unsafe { libc::timer_settime(timer.id, 0, &spec, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(timer)
    }
}

impl Timer {
    /// A one-shot kick timer on `CLOCK_MONOTONIC`, not armed yet (see [`Timer::after`]):
    /// the scheduler's, re-armed for the next moment it must look (the end of a time
    /// slice, a sleeper's deadline, an interval timer).
    pub(crate) fn one_shot() -> std::io::Result<Timer> {
        // SAFETY: a zeroed sigevent is valid; the fields used are set below.
        let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = kick_signal();
        // SAFETY: gettid has no preconditions.
        sev.sigev_notify_thread_id = unsafe { libc::gettid() };
        let mut id: libc::timer_t = std::ptr::null_mut();
        // SAFETY: valid pointers to a sigevent and a timer id.
        if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut id) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Timer { id })
    }

    /// Kicks once, `delay` from now, or never (`None`), replacing what was armed.
    pub(crate) fn after(&self, delay: Option<Duration>) {
        // A zero value would disarm: the soonest kick is a nanosecond away.
        let d = delay.map_or(Duration::ZERO, |d| d.max(Duration::from_nanos(1)));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
            },
        };
        // SAFETY: `id` is a timer this value owns; `spec` is valid.
        unsafe { libc::timer_settime(self.id, 0, &spec, std::ptr::null_mut()) };
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // SAFETY: `id` is a timer this value owns.
        unsafe { libc::timer_delete(self.id) };
    }
}

/// CPU time of the calling thread.
pub(crate) fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}
