//! Guest syscalls without a VM exit: fast calls.
//!
//! A guest `syscall` normally ends in the stub's doorbell write, a VM exit to this
//! process: about 28 µs a call on PVM, nearly all of it the trip out of KVM and back
//! (the `syscall` instruction and the stub's `iretq` alone cost 2.7 µs there). A fast
//! call keeps the vCPU in the guest: the stub (supervisor.S) writes the call into a
//! slot at the start of the frame page and spins; a host thread of the VMM that polls
//! the slot (this module's [`serve`]) answers it there, and the stub returns to user
//! mode with the answer. No instruction of the workload is rewritten: every `syscall`
//! still enters the stub, so self-modifying code, JITs and signals see exactly what
//! they saw before.
//!
//! The slot (frame page, user-writable: on PVM the stub runs with user privilege, so
//! the workload can write it too, and nothing in it is trusted):
//!
//! | offset | what |
//! | --- | --- |
//! | 0x00 | state (u32): idle, posted, taken, done, done-follow, slow |
//! | 0x04 | awake (u32): the thread polls; the stub posts only then |
//! | 0x08 | the syscall number |
//! | 0x10 | the six arguments |
//! | 0x40 | the answer |
//!
//! Protocol: the stub posts (`POSTED`) and spins a bounded time; the thread takes a
//! post with a compare-and-swap (`TAKEN`) under the kernel's lock, reads the number
//! and arguments once into its own memory, and answers `DONE` (the stub returns to
//! user mode), `DONE_FOLLOW` (answered, but a signal or a stop came with it: the stub
//! exits through the doorbell's second byte so the vCPU loop delivers it), or `SLOW`
//! (not a fast call: the stub rings the doorbell as if it had never posted). A post
//! not taken in time is withdrawn by the stub with a compare-and-swap, so a call is
//! answered once, by one side.
//!
//! What is answered here (see [`admit`]) is decided before anything happens: only
//! calls that finish at once, touch no vCPU state, wake nobody and need no page
//! fault (their user buffers must already be mapped for the access). Anything else
//! goes through the exit path, which stays the one complete implementation. The
//! answer comes from the same syscall table and handlers as the exit path. A
//! read-only `open` is decided in two steps: `admit` looks at its flags, then the
//! path is looked up once and opened only when it found a file, a directory or a
//! plain device (`Kernel::fast_openat`); otherwise nothing was done but the lookup.
//!
//! The kernel (the personality's state) is shared by the vCPU thread and this thread
//! through [`Gate`]: the vCPU thread holds it except while the guest runs, so the
//! thread answers only while the vCPU is in `KVM_RUN`, and the vCPU thread clears the
//! slot whenever another task is put on the vCPU, so a post is answered as the task
//! that made it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileMemory};

use crate::guest::layout::FRAME_GPA;
use crate::linux::{Cpu, Kernel, Stop, SysErr};

/// Slot states (supervisor.S: `POSTED`, `DONE`, `DONE_FOLLOW`; every state at or
/// above `DONE` ends the stub's wait).
const POSTED: u32 = 1;
const TAKEN: u32 = 2;
const DONE: u32 = 3;
const DONE_FOLLOW: u32 = 4;
const SLOW: u32 = 5;

/// Offsets in the frame page (supervisor.S: `SLOT_*`).
const SLOT_STATE: usize = 0x00;
const SLOT_AWAKE: usize = 0x04;
const SLOT_NR: usize = 0x08;
const SLOT_ARGS: usize = 0x10;
const SLOT_RET: usize = 0x40;
/// Where the call returns to: the `syscall` instruction's end (the kernel stub writes
/// it, the user-mode entry of a redirected site writes 0).
const SLOT_SITE: usize = 0x50;
const SLOT_LEN: usize = 0x58;

/// The doorbell offset the stub writes for `DONE_FOLLOW`.
pub(crate) const FOLLOW_OFFSET: u64 = 1;

/// Doorbell syscalls a VM makes before it gets its fast-call thread: a short run
/// (a static hello makes 2-16 calls, the dynamic `/bin/true` 29) never pays for the
/// thread. Measured on PVM, against 128: `python3 -c pass` (~530 calls) 0.9x,
/// `perl -e 1` (~156) 0.91x, `ls /usr` (136) unchanged.
pub(crate) const START_AFTER: u64 = 32;

/// How long the thread polls after the last call before it sleeps (the next call
/// then goes through the exit path and wakes it). Python importing a dozen standard
/// modules makes its calls in bursts a few hundred µs apart: 388 of them through
/// exits with 100 µs, 289 with 300 µs, 248 with 1 ms (past `POLL_ALONE` the poll
/// yields its CPU at each look, so a longer window costs others little).
const POLL: Duration = Duration::from_micros(300);

/// After this long without a call the polling thread yields its CPU at each look: the
/// vCPU thread it woke may be waiting for that very CPU (a wake-up often lands the
/// woken thread on the waker's CPU), and a poll that keeps it off delays the guest.
const POLL_ALONE: Duration = Duration::from_micros(20);

/// Largest buffer a fast `read`/`write` takes (larger ones go through the exit path:
/// the kernel's lock is not held for long copies).
const MAX_FAST_BYTES: u64 = 1 << 20;

/// Whether fast calls are used: on unless `HSB_MICROVM_FASTCALL=0`, and only with at
/// least two host CPUs (the thread polls while the vCPU spins). Read once, before a
/// VMM thread is confined (`confine_thread` calls it; the CPU count cannot be read
/// after).
pub(crate) fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    let off = || std::env::var_os("HSB_MICROVM_FASTCALL").is_some_and(|v| v == "0");
    *ON.get_or_init(|| {
        redirect_enabled();
        !off() && max_pollers() >= 1
    })
}

/// Whether syscall sites are redirected (`redirect.rs`): with fast calls, unless
/// `HSB_MICROVM_REDIRECT=0`. Read once, before a VMM thread is confined.
pub(crate) fn redirect_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("HSB_MICROVM_REDIRECT").is_none_or(|v| v != "0"))
}

/// How many fast-call threads of this process may poll at once: one fewer than the
/// host CPUs this process may use, so that polling never takes every CPU from the
/// vCPUs it serves (a thread that finds no room sleeps, and its VM's calls take the
/// exit path until the next exit wakes it).
fn max_pollers() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(1)
    })
}

/// Fast-call threads polling now, in this process.
static POLLING: AtomicUsize = AtomicUsize::new(0);

/// After a failed spawn of the fast-call thread: a C library whose `pthread_create`
/// passes other `clone` flags than the filter allows (musl adds `CLONE_DETACHED`) has
/// its `clone` trapped and recorded as a violation. That call was this module's own
/// (nothing else ran since the loop last looked), so the record is dropped and the
/// VM goes on without fast calls.
pub(crate) fn forgive_failed_spawn() {
    let ours = [libc::SYS_clone, libc::SYS_clone3].map(|n| n as i32);
    if crate::trap::violation().is_some_and(|v| ours.contains(&v)) {
        crate::trap::watch_thread();
    }
}

/// The kernel, shared by the vCPU thread and the fast-call thread.
pub(crate) struct Gate<'k>(Mutex<&'k mut Kernel>);

// SAFETY: `Kernel` is not `Send` only because its state holds `Rc`, `RefCell` and
// `Cell` values. Every one of them is reached through the kernel alone (no clone is
// kept outside it, by either thread, past the lock: the vCPU loop's locals that hold
// them end inside its locked blocks, and the fast-call thread keeps none), and the
// mutex orders every access, so no two threads touch them at once. The thread-local
// state some handlers use (pipe inode numbers, host descriptor budget, the graveyard
// of in-flight sockets) is not reached by the calls `admit` lets through.
unsafe impl Sync for Gate<'_> {}

impl<'k> Gate<'k> {
    pub(crate) fn new(k: &'k mut Kernel) -> Self {
        Gate(Mutex::new(k))
    }

    /// The kernel, exclusively (the vCPU thread's way: a panic there ends the run).
    pub(crate) fn lock(&self) -> MutexGuard<'_, &'k mut Kernel> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kernel, exclusively, unless a panic left it half-changed (the fast-call
    /// thread's way: it then answers nothing more).
    fn lock_sound(&self) -> Option<MutexGuard<'_, &'k mut Kernel>> {
        self.0.lock().ok()
    }
}

/// What the vCPU thread and the fast-call thread share besides the kernel.
#[derive(Default)]
pub(crate) struct Control {
    stop: AtomicBool,
    asleep: AtomicBool,
    /// Counts [`Control::nudge`]s: a polling thread keeps polling a full window after
    /// the last one (a new exec's first calls come a few hundred µs after the last
    /// exit of the one before).
    nudges: AtomicU64,
    thread: OnceLock<std::thread::Thread>,
    /// A stop met while answering (the run ends with it at the follow-up exit).
    pending: Mutex<Option<Stop>>,
    /// While the guest runs: the vCPU thread's count of held host descriptors and its
    /// budget (a thread-local of the thread that works for the sandbox), lent to
    /// this thread. `None` while the vCPU thread works: then nothing is answered.
    lent: Mutex<Option<(usize, usize)>>,
    /// Calls answered here, and calls sent back to the exit path.
    pub(crate) answered: AtomicU64,
    pub(crate) declined: AtomicU64,
    /// Sites to redirect (`redirect.rs`) at the follow-up exit: address space, number,
    /// the `syscall` instruction's end.
    redirects: Mutex<Vec<(crate::mm::SpaceId, u64, u64)>>,
    /// Sites redirected.
    pub(crate) redirected: AtomicU64,
}

/// Most sites offered for redirection in one run (then the rest stay fast calls).
const MAX_TRIED: usize = 4096;

/// The answered call of a site that offers it for redirection: the offer costs an exit,
/// which a site called once or twice (a process's start-up) would not win back.
const OFFER_AT: u8 = 3;

/// The sites the fast-call thread has seen (the thread's own: how many of their calls
/// it answered, up to the offer); each is offered for redirection once.
#[derive(Default)]
struct Sites(std::collections::HashMap<(crate::mm::SpaceId, u64), u8>);

impl Sites {
    /// Whether the site `site` of `space` is offered for redirection now: at its
    /// `OFFER_AT`th answered call, while there is room.
    fn offer(&mut self, space: crate::mm::SpaceId, site: u64) -> bool {
        let full = self.0.len() >= MAX_TRIED;
        match self.0.get_mut(&(space, site)) {
            Some(n) if *n < OFFER_AT => {
                *n += 1;
                *n == OFFER_AT
            }
            Some(_) => false,
            None if full => false,
            None => {
                self.0.insert((space, site), 1);
                OFFER_AT == 1
            }
        }
    }
}

impl Control {
    /// Wakes the thread if it sleeps, and restarts its window if it polls (the guest
    /// makes syscalls again).
    pub(crate) fn nudge(&self) {
        self.nudges.fetch_add(1, Ordering::Relaxed);
        if self.asleep.load(Ordering::Relaxed) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }

    /// A guard that tells the thread to end when dropped: when the loop returns, and
    /// when it unwinds (the scope joins the thread then too).
    pub(crate) fn finish_on_drop(&self) -> impl Drop + '_ {
        struct Finish<'a>(&'a Control);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                self.0.finish();
            }
        }
        Finish(self)
    }

    /// Tells the thread to end.
    pub(crate) fn finish(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// The vCPU thread is about to run the guest (kernel locked): calls may be
    /// answered until [`Control::reclaim`].
    pub(crate) fn lend(&self) {
        // No thread yet (most short runs): nothing to lend, on every exit.
        if self.thread.get().is_none() {
            return;
        }
        *self.lent.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(crate::vfs::host::fd_state());
    }

    /// The guest stopped (kernel locked): the vCPU thread works for the sandbox again.
    pub(crate) fn reclaim(&self) {
        if self.thread.get().is_none() {
            return;
        }
        if let Some(st) = self
            .lent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            crate::vfs::host::set_fd_state(st);
        }
    }

    /// The sites to redirect now (the vCPU thread, at a follow-up exit).
    pub(crate) fn take_redirects(&self) -> Vec<(crate::mm::SpaceId, u64, u64)> {
        std::mem::take(
            &mut *self
                .redirects
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The stop met while answering, if any.
    pub(crate) fn take_pending(&self) -> Option<Stop> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Empties the slot's state (another task goes on the vCPU, kernel locked: the
/// thread only reads it meanwhile): a post left there is never answered as someone
/// else's.
pub(crate) fn clear_slot(k: &Kernel) {
    let _ = k.mm.mem.write(FRAME_GPA + SLOT_STATE as u64, &[0u8; 4]);
}

/// Empties the slot at the start of a run (no thread yet): no state, and not awake
/// (a snapshot may have been taken while its thread was).
pub(crate) fn reset_slot(k: &Kernel) {
    let _ = k.mm.mem.write(FRAME_GPA, &[0u8; SLOT_ARGS]);
}

/// The fast-call thread: polls the slot while calls come, sleeps between bursts.
pub(crate) fn serve(gate: &Gate<'_>, ctl: &Control, ram: GuestMemoryMmap) {
    // The thread inherited the vCPU thread's filter and Landlock domain: its
    // seccomp traps are recorded like the vCPU thread's (first thing: before this,
    // one would take SIGSYS's default action).
    crate::trap::watch_thread();
    let _ = ctl.thread.set(std::thread::current());
    let Ok(page) = ram.get_slice(GuestAddress(FRAME_GPA), SLOT_LEN) else {
        return;
    };
    let (Ok(state), Ok(awake)) = (
        page.get_atomic_ref::<AtomicU32>(SLOT_STATE),
        page.get_atomic_ref::<AtomicU32>(SLOT_AWAKE),
    ) else {
        return;
    };
    let mut sites = Sites::default();
    while !ctl.stop.load(Ordering::SeqCst) {
        if POLLING.fetch_add(1, Ordering::SeqCst) >= max_pollers() {
            // As many threads poll as the host can spare: sleep until the next exit.
            POLLING.fetch_sub(1, Ordering::SeqCst);
            sleep(ctl);
            continue;
        }
        awake.store(1, Ordering::SeqCst);
        let mut last = Instant::now();
        let mut nudges = ctl.nudges.load(Ordering::Relaxed);
        // Only a post taken (or a nudge) keeps the window open: one left behind (its
        // task stopped mid-wait when the run ended or the vCPU left the guest) is not
        // answered and must not keep the thread polling.
        while !ctl.stop.load(Ordering::Relaxed) {
            let took = state.load(Ordering::Acquire) == POSTED
                && take(gate, ctl, &mut sites, &page, state);
            let nudged =
                std::mem::replace(&mut nudges, ctl.nudges.load(Ordering::Relaxed)) != nudges;
            if took || nudged {
                last = Instant::now();
            } else {
                let idle = last.elapsed();
                if idle > POLL {
                    break;
                }
                if idle > POLL_ALONE {
                    std::thread::yield_now();
                }
            }
            std::hint::spin_loop();
        }
        awake.store(0, Ordering::SeqCst);
        POLLING.fetch_sub(1, Ordering::SeqCst);
        // A post made just before the flag went down is still answered.
        if state.load(Ordering::SeqCst) == POSTED && take(gate, ctl, &mut sites, &page, state) {
            continue;
        }
        sleep(ctl);
    }
    awake.store(0, Ordering::SeqCst);
}

/// Sleeps until the vCPU thread's next syscall exit (`Control::nudge`) or the end.
fn sleep(ctl: &Control) {
    ctl.asleep.store(true, Ordering::SeqCst);
    if !ctl.stop.load(Ordering::SeqCst) {
        std::thread::park();
    }
    ctl.asleep.store(false, Ordering::SeqCst);
}

/// Takes the posted call (unless the stub withdrew it, or the guest is not running)
/// and answers it; false when it took nothing.
fn take(
    gate: &Gate<'_>,
    ctl: &Control,
    sites: &mut Sites,
    page: &vm_memory::VolatileSlice<'_, ()>,
    state: &AtomicU32,
) -> bool {
    let Some(mut g) = gate.lock_sound() else {
        return false;
    };
    // Only while the guest runs (the vCPU thread lent what it holds for the sandbox).
    let Some(fds) = *ctl.lent.lock().unwrap_or_else(PoisonError::into_inner) else {
        return false;
    };
    if state
        .compare_exchange(POSTED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return false;
    }
    crate::vfs::host::set_fd_state(fds);
    // Read once: the workload may change the slot meanwhile; what was read is the call.
    let word = |off: usize| page.read_obj::<u64>(off).unwrap_or(u64::MAX);
    let nr = word(SLOT_NR);
    let a: [u64; 6] = std::array::from_fn(|i| word(SLOT_ARGS + 8 * i));
    let k: &mut Kernel = &mut g;
    let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer(k, nr, a)))
        .unwrap_or_else(|_| Err(Stop::Internal("a fast call panicked".into())));
    let (rax, stop) = match answered {
        Ok(Some(rax)) => (rax, None),
        Ok(None) => {
            ctl.declined.fetch_add(1, Ordering::Relaxed);
            state.store(SLOW, Ordering::Release);
            return true;
        }
        Err(stop) => ((-(libc::EINTR as i64)) as u64, Some(stop)),
    };
    // A host syscall off the allowlist made while answering ends the run, as on the
    // vCPU thread; so does a stop. Both, and a signal or a switch the call brought,
    // go through the vCPU loop (the follow-up exit).
    let stop = crate::trap::violation().map(Stop::Violation).or(stop);
    // Entries the call changed must be rewritten by the guest before it goes on:
    // the vCPU loop does that at the follow-up exit.
    let mut next = if stop.is_some() || k.has_signal() || k.preempt || k.mm.has_flush() {
        DONE_FOLLOW
    } else {
        DONE
    };
    // A site the kernel stub came from, answered here: offered for redirection, which
    // the vCPU thread does at the follow-up exit (it changes page tables). The site is
    // only a hint the workload could forge: `redirect` checks everything again.
    let site = word(SLOT_SITE);
    if next == DONE
        && crate::redirect::reachable(site)
        && redirect_enabled()
        && sites.offer(k.mm.space(), site)
    {
        ctl.redirects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((k.mm.space(), nr, site));
        next = DONE_FOLLOW;
    }
    if stop.is_some() {
        *ctl.pending.lock().unwrap_or_else(PoisonError::into_inner) = stop;
    }
    *ctl.lent.lock().unwrap_or_else(PoisonError::into_inner) = Some(crate::vfs::host::fd_state());
    ctl.answered.fetch_add(1, Ordering::Relaxed);
    let _ = page.write_obj(rax, SLOT_RET);
    state.store(next, Ordering::Release);
    true
}

/// Answers a call: `Some(rax)`, or `None` when it is not a fast call (nothing was
/// done: the exit path makes it).
fn answer(k: &mut Kernel, nr: u64, a: [u64; 6]) -> Result<Option<u64>, Stop> {
    if !admit(k, nr, &a) {
        return Ok(None);
    }
    k.task.partial = 0;
    let mut ctx = k.task.ctx.clone();
    let started = crate::linux::trace_enabled().then(Instant::now);
    let r = match nr {
        // An open looks its path up once and opens only what opens plainly; else
        // nothing was done and the exit path makes it.
        OPEN => k.fast_openat(libc::AT_FDCWD as u64, a[0], a[1]),
        OPENAT => k.fast_openat(a[0], a[1], a[2]),
        _ => Some(k.dispatch(&mut NoCpu, &mut ctx, nr, a)),
    };
    let Some(r) = r else {
        return Ok(None);
    };
    if let Some(t) = started {
        eprintln!(
            "[hsb-vmm {}:{}] fast {}({:#x}, {:#x}, {:#x}, {:#x}) = {:?} in {:?}",
            k.proc.pid,
            k.task.tid,
            crate::linux::dispatch::syscall_name(nr),
            a[0],
            a[1],
            a[2],
            a[3],
            r,
            t.elapsed()
        );
    }
    let rax = match r {
        Ok(v) => v,
        Err(SysErr::Errno(e)) => (-i64::from(e.0)) as u64,
        // A handler that would wait has done nothing: the exit path waits.
        Err(SysErr::Block(_)) => return Ok(None),
        Err(SysErr::Gone) => return Err(Stop::Internal("a fast call ended its task".into())),
        Err(SysErr::Stop(s)) => return Err(s),
    };
    k.stirred = true;
    Ok(Some(rax))
}

/// The numbers of the fast calls (x86-64, as the syscall table has them).
const READ: u64 = libc::SYS_read as u64;
const WRITE: u64 = libc::SYS_write as u64;
const WRITEV: u64 = libc::SYS_writev as u64;
const MMAP: u64 = libc::SYS_mmap as u64;
const OPEN: u64 = libc::SYS_open as u64;
const STAT: u64 = libc::SYS_stat as u64;
const FSTAT: u64 = libc::SYS_fstat as u64;
const LSTAT: u64 = libc::SYS_lstat as u64;
const RT_SIGACTION: u64 = libc::SYS_rt_sigaction as u64;
const LSEEK: u64 = libc::SYS_lseek as u64;
const PREAD64: u64 = libc::SYS_pread64 as u64;
const PWRITE64: u64 = libc::SYS_pwrite64 as u64;
const GETPID: u64 = libc::SYS_getpid as u64;
const FSYNC: u64 = libc::SYS_fsync as u64;
const FDATASYNC: u64 = libc::SYS_fdatasync as u64;
const GETUID: u64 = libc::SYS_getuid as u64;
const GETGID: u64 = libc::SYS_getgid as u64;
const GETEUID: u64 = libc::SYS_geteuid as u64;
const GETEGID: u64 = libc::SYS_getegid as u64;
const GETPPID: u64 = libc::SYS_getppid as u64;
const GETTID: u64 = libc::SYS_gettid as u64;
const GETDENTS64: u64 = libc::SYS_getdents64 as u64;
const GETCWD: u64 = libc::SYS_getcwd as u64;
const NEWFSTATAT: u64 = libc::SYS_newfstatat as u64;
const CLOSE: u64 = libc::SYS_close as u64;
const IOCTL: u64 = libc::SYS_ioctl as u64;
const OPENAT: u64 = libc::SYS_openat as u64;
const SET_TID_ADDRESS: u64 = libc::SYS_set_tid_address as u64;
const UMASK: u64 = libc::SYS_umask as u64;
const RT_SIGPROCMASK: u64 = libc::SYS_rt_sigprocmask as u64;
/// `ioctl(fd, TCGETS, …)`: what `isatty` asks (CPython asks it of every file it opens).
const TCGETS: u64 = libc::TCGETS;
/// `ioctl(fd, TIOCGWINSZ, …)`: a terminal's size.
const TIOCGWINSZ: u64 = libc::TIOCGWINSZ;

/// The calls answered without an exit, and when: nothing else waits for them, they
/// finish at once, and their buffers are mapped for the access (no fault to take).
const FAST_CALLS: &[u64] = &[
    READ,
    WRITE,
    WRITEV,
    STAT,
    FSTAT,
    LSTAT,
    RT_SIGACTION,
    LSEEK,
    PREAD64,
    PWRITE64,
    GETPID,
    FSYNC,
    FDATASYNC,
    GETUID,
    GETGID,
    GETEUID,
    GETEGID,
    GETPPID,
    GETTID,
    GETDENTS64,
    NEWFSTATAT,
    CLOSE,
    IOCTL,
    OPEN,
    OPENAT,
    GETCWD,
    MMAP,
    SET_TID_ADDRESS,
    UMASK,
    RT_SIGPROCMASK,
];

/// The stub's fast-call map (supervisor.S `FAST_MAP`): bit `nr` set for every call in
/// [`FAST_CALLS`]. The stub posts only those; any other number rings the doorbell at
/// once (posting it would only bring it back `SLOW`, a round trip with this thread
/// for nothing). The map is a shortcut, never a permission: [`admit`] still decides.
/// Built at compile time: nothing on a VM's start, and a number past the map's end
/// fails the build, not a start.
pub(crate) const FAST_MAP: [u8; crate::guest::FAST_MAP_BITS / 8] = {
    let mut map = [0u8; crate::guest::FAST_MAP_BITS / 8];
    let mut i = 0;
    while i < FAST_CALLS.len() {
        let nr = FAST_CALLS[i];
        map[(nr / 8) as usize] |= 1 << (nr % 8);
        i += 1;
    }
    map
};

/// Whether the current task's call `nr(a)` is answered here. Reads only.
fn admit(k: &mut Kernel, nr: u64, a: &[u64; 6]) -> bool {
    // The stub's map is the list (`the_stubs_map_is_the_fast_calls`): one bit test.
    let listed = usize::try_from(nr)
        .ok()
        .filter(|&n| n < crate::guest::FAST_MAP_BITS)
        .is_some_and(|n| FAST_MAP[n / 8] & (1 << (n % 8)) != 0);
    if !listed {
        return false;
    }
    // A signal waiting, a switch due, or shared memory mapped over files (whose
    // writes change mappings): the exit path.
    if k.has_signal() || k.preempt || !k.shm.is_empty() {
        return false;
    }
    match nr {
        GETPID | GETPPID | GETTID | GETUID | GETGID | GETEUID | GETEGID => true,
        // The task's own bookkeeping: where its id is cleared when it ends (every
        // program's start, every thread's), the process's file-mode mask.
        SET_TID_ADDRESS | UMASK => true,
        // The task's signal mask (C libraries block and restore it around
        // `pthread_create`, `fork` and `posix_spawn`): a signal it unblocks is
        // delivered at the follow-up exit before the call returns, as on Linux.
        RT_SIGPROCMASK => {
            (a[1] == 0 || buffer_ready(k, a[1], 8, false))
                && (a[2] == 0 || buffer_ready(k, a[2], 8, true))
        }
        READ | PREAD64 => file_fd(k, a[0]) && buffer_ready(k, a[1], a[2], true),
        // And stdout or stderr, while the output limit holds (past it the exec is
        // killed: the exit path): appended to the captured output and sent to the
        // caller's stream, nobody in the guest woken.
        WRITE => {
            (file_fd(k, a[0]) || output_fd(k, a[0], a[2])) && buffer_ready(k, a[1], a[2], false)
        }
        PWRITE64 => file_fd(k, a[0]) && buffer_ready(k, a[1], a[2], false),
        // musl's stdio writes with `writev` (the buffered bytes and the new ones): the
        // same, for a few buffers all mapped now.
        WRITEV => iov_ready(k, a[1], a[2])
            .is_some_and(|total| file_fd(k, a[0]) || output_fd(k, a[0], total)),
        LSEEK | FSYNC | FDATASYNC => file_fd(k, a[0]),
        // Dropping such a file wakes nobody: what its last close lets go (a host
        // descriptor, through the lent budget; an unlinked tmpfs file's pages; a
        // listing's charge) is the sandbox's own bookkeeping.
        CLOSE => file_fd(k, a[0]),
        // `isatty` (and a terminal's size, which musl's stdio asks of stdout before
        // its first write) of a file or a standard stream that is no terminal:
        // `ENOTTY`, nothing read or written.
        IOCTL => (a[1] == TCGETS || a[1] == TIOCGWINSZ) && (file_fd(k, a[0]) || stdio_fd(k, a[0])),
        // Read-only opens (what a program's start and `import` make most); the
        // lookup then decides (`Kernel::fast_openat`): only a file, a directory or a
        // plain device is opened here. The new descriptor counts against the lent
        // host budget and `RLIMIT_NOFILE` as on the exit path.
        OPEN => plain_open(a[1]) && path_ready(k, a[0]),
        OPENAT => plain_open(a[2]) && dir_fd(k, a[0]) && path_ready(k, a[1]),
        // The working directory's path, copied out (Python's `import` asks it for
        // every search-path entry); what is written must be mapped now, or the
        // exit path faults it in.
        // (Not once a directory moved: the exit path finds the directory again.)
        GETCWD if k.proc.cwd_seen == k.vfs.moves() => {
            let len = (k.proc.cwd.path().len() as u64 + 1).min(a[1]);
            buffer_ready(k, a[0], len, true)
        }
        // Fresh private anonymous memory where the kernel places it (CPython 3.11
        // takes and gives back 16 KiB for its frame stack, glibc's malloc an arena):
        // entries only go from absent to present, which needs no flush. A call that
        // changed entries anyway is followed up by the vCPU loop (`take`).
        MMAP => plain_mmap(a),
        FSTAT => file_fd(k, a[0]) && buffer_ready(k, a[1], STAT_SIZE, true),
        // By path: the path and the buffer mapped now; the lookup opens host
        // descriptors only through the lent budget.
        STAT | LSTAT => path_ready(k, a[0]) && buffer_ready(k, a[1], STAT_SIZE, true),
        NEWFSTATAT => {
            a[3] & !STAT_FLAGS == 0
                && dir_fd(k, a[0])
                && path_ready(k, a[1])
                && buffer_ready(k, a[2], STAT_SIZE, true)
        }
        GETDENTS64 => {
            k.proc
                .files
                .get(a[0])
                .is_ok_and(|f| matches!(f.kind, crate::linux::FileKind::Dir))
                && buffer_ready(k, a[1], a[2], true)
        }
        // The handler table of the process and the old action; a signal made
        // ignored is dropped from the pending set, which wakes nobody.
        RT_SIGACTION => {
            (a[1] == 0 || buffer_ready(k, a[1], SIGACTION_SIZE, false))
                && (a[2] == 0 || buffer_ready(k, a[2], SIGACTION_SIZE, true))
        }
        _ => false,
    }
}

/// Sizes of `struct stat` and of the kernel's `struct sigaction`.
const STAT_SIZE: u64 = std::mem::size_of::<crate::abi::Stat>() as u64;
const SIGACTION_SIZE: u64 = std::mem::size_of::<crate::abi::SigAction>() as u64;
/// `newfstatat` flags answered here (anything else: the exit path, which refuses it).
const STAT_FLAGS: u64 =
    (libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT | libc::AT_EMPTY_PATH) as u64;

/// `mmap` arguments answered here: no address (the kernel places it), private
/// anonymous memory, readable and writable or not, no offset, none of the flags that
/// populate, fix, share or grow the mapping.
fn plain_mmap(a: &[u64; 6]) -> bool {
    const PROT: u64 = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    const NEEDED: u64 = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
    const ALLOWED: u64 = NEEDED | (libc::MAP_NORESERVE | libc::MAP_STACK) as u64;
    let [addr, len, prot, flags, _, off] = *a;
    addr == 0
        && len > 0
        && off == 0
        && prot & !PROT == 0
        && flags & !ALLOWED == 0
        && flags & NEEDED == NEEDED
}

/// `open` flags answered here: read-only, with nothing made, truncated or waited for
/// (`O_NONBLOCK` changes nothing for what `Node::opens_plain` allows).
fn plain_open(flags: u64) -> bool {
    /// `O_LARGEFILE` as the kernel has it (the libc crate's is 0 on x86-64; Linux
    /// ignores it on 64-bit).
    const O_LARGEFILE: u64 = 0o100000;
    const ALLOWED: u64 = (libc::O_CLOEXEC
        | libc::O_DIRECTORY
        | libc::O_NOFOLLOW
        | libc::O_NONBLOCK
        | libc::O_NOCTTY) as u64
        | O_LARGEFILE;
    flags & libc::O_ACCMODE as u64 == libc::O_RDONLY as u64 && flags & !ALLOWED == 0
}

/// The path argument: a string that ends within `PATH_MAX` in pages mapped now.
fn path_ready(k: &mut Kernel, va: u64) -> bool {
    k.mm.user_cstr_mapped(va, libc::PATH_MAX as u64)
}

/// A `dirfd` argument: the working directory, or a descriptor `file_fd` admits.
fn dir_fd(k: &Kernel, fd: u64) -> bool {
    fd as i32 == libc::AT_FDCWD || file_fd(k, fd)
}

/// The descriptor is a regular file, a directory or a plain device: nobody waits on
/// it and no call on it blocks.
fn file_fd(k: &Kernel, fd: u64) -> bool {
    use crate::linux::FileKind;
    k.proc.files.get(fd).is_ok_and(|f| match f.kind {
        FileKind::Host(_) | FileKind::Tmp(_) | FileKind::Gen(_) | FileKind::Dir => true,
        FileKind::Dev(d) => d.is_plain(),
        _ => false,
    })
}

/// `fd` is a standard stream of a run or an exec that is no terminal (its stdin from
/// the caller, its stdout or stderr to the caller).
fn stdio_fd(k: &Kernel, fd: u64) -> bool {
    use crate::linux::FileKind;
    k.proc
        .files
        .get(fd)
        .is_ok_and(|f| matches!(f.kind, FileKind::Output(..) | FileKind::Stdin(_)))
}

/// `fd` is the task's stdout or stderr (a run's or an exec's stream to the caller) and
/// `len` more bytes keep its output within the limit.
fn output_fd(k: &Kernel, fd: u64, len: u64) -> bool {
    use crate::linux::FileKind;
    k.proc.files.get(fd).is_ok_and(|f| match f.kind {
        FileKind::Output(chan, _) => k.output_fits(chan, len),
        _ => false,
    })
}

/// Most buffers a fast `writev` takes.
const MAX_FAST_IOVECS: u64 = 8;

/// The `iovec`s of a `writev` (`cnt` of them at `iov`): few, every one (and the
/// array) mapped for reading now, with valid lengths: their total, or `None` (the
/// exit path then decides, with Linux's errors).
fn iov_ready(k: &mut Kernel, iov: u64, cnt: u64) -> Option<u64> {
    if cnt == 0 || cnt > MAX_FAST_IOVECS || !buffer_ready(k, iov, cnt * 16, false) {
        return None;
    }
    let v =
        k.mm.read_array(
            crate::mm::UserPtr::<crate::abi::Iovec>::new(iov),
            cnt,
            MAX_FAST_IOVECS as usize,
        )
        .ok()?;
    let mut total = 0u64;
    for i in v {
        total = total.checked_add(i.iov_len)?;
        if total > MAX_FAST_BYTES || !buffer_ready(k, i.iov_base, i.iov_len, false) {
            return None;
        }
    }
    Some(total)
}

fn buffer_ready(k: &mut Kernel, va: u64, len: u64, write: bool) -> bool {
    len <= MAX_FAST_BYTES && k.mm.user_mapped(va, len, write)
}

/// The vCPU is in the guest: a fast call has no vCPU state to touch (`admit` lets no
/// call through that would). Reaching it is a bug, and ends the run.
struct NoCpu;

fn no_cpu<T>() -> Result<T, Stop> {
    Err(Stop::Internal(
        "a fast call reached the vCPU's state".into(),
    ))
}

impl Cpu for NoCpu {
    fn fs_base(&mut self) -> Result<u64, Stop> {
        no_cpu()
    }
    fn set_fs_base(&mut self, _: u64) -> Result<(), Stop> {
        no_cpu()
    }
    fn gs_base(&mut self) -> Result<u64, Stop> {
        no_cpu()
    }
    fn set_gs_base(&mut self, _: u64) -> Result<(), Stop> {
        no_cpu()
    }
    fn save_fpu(&mut self) -> Result<Box<kvm_bindings::kvm_xsave>, Stop> {
        no_cpu()
    }
    fn restore_fpu(&mut self, _: &kvm_bindings::kvm_xsave) -> Result<(), Stop> {
        no_cpu()
    }
    fn reset_fpu(&mut self) -> Result<(), Stop> {
        no_cpu()
    }
}

/// For the fuzz target: answers `nr(a)` as the fast-call thread would, on a kernel
/// that is not running (`None`: the exit path would).
#[cfg(feature = "fuzzing")]
pub(crate) fn answer_for_fuzzing(k: &mut Kernel, nr: u64, a: [u64; 6]) -> Option<u64> {
    answer(k, nr, a).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stub's map has exactly the fast calls' bits: a call left out of it would
    /// never be posted, a bit too many would only cost a round trip.
    #[test]
    fn the_stubs_map_is_the_fast_calls() {
        let map = FAST_MAP;
        for nr in 0..crate::guest::FAST_MAP_BITS as u64 {
            let bit = map[(nr / 8) as usize] >> (nr % 8) & 1 == 1;
            assert_eq!(bit, FAST_CALLS.contains(&nr), "syscall {nr}");
        }
        assert!(FAST_CALLS
            .iter()
            .all(|&nr| nr < crate::guest::FAST_MAP_BITS as u64));
    }

    /// The slot's layout is the stub's (supervisor.S `SLOT_*`, `.set` lines).
    #[test]
    fn slot_offsets_match_the_stub() {
        let src = include_str!("guest/supervisor.S");
        for (name, off) in [
            ("SLOT_STATE", SLOT_STATE),
            ("SLOT_AWAKE", SLOT_AWAKE),
            ("SLOT_NR", SLOT_NR),
            ("SLOT_ARGS", SLOT_ARGS),
            ("SLOT_RET", SLOT_RET),
        ] {
            let want = if off == 0 {
                "-0x1000\n".to_string()
            } else {
                format!("-0x1000 + {off:#04x}\n")
            };
            let line = src
                .lines()
                .find(|l| l.contains(&format!(".set    {name},")))
                .unwrap_or_else(|| panic!("{name} not in supervisor.S"));
            assert!(format!("{line}\n").ends_with(&want), "{name}: {line}");
        }
        for (name, v) in [
            ("POSTED", POSTED),
            ("DONE", DONE),
            ("DONE_FOLLOW", DONE_FOLLOW),
            ("SLOW", SLOW),
        ] {
            assert!(
                src.contains(&format!(".set    {name}, {v}\n")),
                "{name} = {v}"
            );
        }
    }

    /// Every fast call is a row of the syscall table answered in full (a partial or
    /// refused row would need the exit path's accounting), or `open`/`openat`, partial
    /// only for `O_TMPFILE`, which `plain_open` never admits, or `mmap`, partial only
    /// for writable shared mappings of host files, which `plain_mmap` never admits;
    /// `admit` lets nothing else through, whatever its arguments (it looks at this
    /// list first, through the stub's map).
    #[test]
    fn only_listed_calls_are_fast() {
        for nr in FAST_CALLS {
            let row = crate::linux::TABLE
                .iter()
                .find(|r| u64::from(r.nr) == *nr)
                .unwrap_or_else(|| panic!("{nr} has no row"));
            let want = if [OPEN, OPENAT, MMAP].contains(nr) {
                crate::linux::dispatch::Level::Partial
            } else {
                crate::linux::dispatch::Level::Full
            };
            assert_eq!(row.level, want, "{}", row.name);
        }
    }

    /// Opens answered here: read-only, nothing created, truncated, appended to or
    /// made a path handle or a temporary file; what C libraries and Python pass to
    /// read a file or list a directory is.
    #[test]
    fn only_plain_opens_are_fast() {
        let ok = [
            0,
            libc::O_CLOEXEC,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_DIRECTORY,
            libc::O_NOFOLLOW | libc::O_NOCTTY | 0o100000,
        ];
        for f in ok {
            assert!(plain_open(f as u64), "{f:#o}");
        }
        let refused = [
            libc::O_WRONLY,
            libc::O_RDWR,
            libc::O_ACCMODE,
            libc::O_CREAT,
            libc::O_CREAT | libc::O_EXCL,
            libc::O_TRUNC,
            libc::O_APPEND,
            libc::O_PATH,
            libc::O_TMPFILE,
            libc::O_TMPFILE & !libc::O_DIRECTORY,
            libc::O_SYNC,
            libc::O_DIRECT,
            libc::O_ASYNC,
        ];
        for f in refused {
            assert!(!plain_open(f as u64), "{f:#o}");
            assert!(!plain_open((f | libc::O_CLOEXEC) as u64), "{f:#o}");
        }
        // Bits above the 32 an `int` holds are not ignored here.
        assert!(!plain_open(1 << 40));
    }

    /// Mappings answered here: fresh private anonymous memory the kernel places.
    #[test]
    fn only_plain_mmaps_are_fast() {
        let (rw, anon) = (
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
        );
        let m = |addr: u64, len: u64, prot: u64, flags: u64, off: u64| {
            plain_mmap(&[addr, len, prot, flags, u64::MAX, off])
        };
        assert!(m(0, 16 << 10, rw, anon, 0));
        assert!(m(0, 1 << 20, 0, anon | libc::MAP_NORESERVE as u64, 0));
        assert!(m(
            0,
            4096,
            libc::PROT_READ as u64,
            anon | libc::MAP_STACK as u64,
            0
        ));
        for flags in [
            libc::MAP_FIXED,
            libc::MAP_FIXED_NOREPLACE,
            libc::MAP_POPULATE,
            libc::MAP_GROWSDOWN,
            libc::MAP_32BIT,
            libc::MAP_HUGETLB,
            libc::MAP_LOCKED,
        ] {
            assert!(!m(0, 4096, rw, anon | flags as u64, 0), "{flags:#x}");
        }
        assert!(!m(
            0,
            4096,
            rw,
            libc::MAP_SHARED as u64 | libc::MAP_ANONYMOUS as u64,
            0
        ));
        assert!(!m(0, 4096, rw, libc::MAP_PRIVATE as u64, 0), "a file");
        assert!(!m(0, 4096, rw | libc::PROT_EXEC as u64, anon, 0));
        assert!(!m(0x1000_0000, 4096, rw, anon, 0), "an address");
        assert!(!m(0, 0, rw, anon, 0));
        assert!(!m(0, 4096, rw, anon, 4096));
    }
}
