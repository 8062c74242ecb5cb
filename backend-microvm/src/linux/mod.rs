//! The Linux personality: the workload's syscalls, answered by the VMM over guest
//! memory and the sandbox's filesystem, for every task of every guest process. One file
//! per family; `task`, `sched`, `clone`, `exec`, `exit`, `futex` and `signal` are the
//! processes and threads.

mod clone;
pub(crate) mod dispatch;
mod egress;
mod epoll;
mod exec;
mod exit;
mod fd;
mod fs;
mod futex;
#[cfg(feature = "test-hooks")]
mod hooks;
pub(crate) mod inet;
mod inotify;
mod ipc;
mod limits;
mod locks;
pub(crate) mod misc;
mod mm;
mod mqueue;
mod netlink;
mod path;
mod pidfd;
mod poll;
mod process;
mod procfs;
mod rw;
pub(crate) mod saved;
mod sched;
mod scm;
mod sigcalls;
mod sigfd;
pub(crate) mod signal;
mod socket;
mod stat;
mod table;
pub(crate) mod task;
mod time;
mod timers;
pub(crate) mod tty;
mod unix;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvm_bindings::kvm_regs;

pub(crate) use fd::{FdTable, FileKind, OpenFile};
pub(crate) use rw::fill_random as fill_random_bytes;
pub(crate) use sched::TIME_SLICE;
pub(crate) use table::TABLE;

use crate::errno::{self, Errno};
use crate::kick::Control;
use crate::mm::{AddressSpace, ArrayError, CStrError, MapError, SizedError, SpaceId, UserError};
use crate::stdio::{Input, Output, OutputLimitReached};
use crate::vfs::Vfs;
use task::{Process, Task, Tid, Wait};

/// Why the run ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The first process ended with `exit(code)`.
    Exit(i32),
    /// The first process was killed by a signal.
    Signal(i32),
    /// Out of guest memory.
    MemoryLimit,
    /// Output limit passed.
    OutputLimit,
    /// CPU-time limit reached.
    CpuLimit,
    /// Wall-time limit reached.
    Timeout,
    /// More tasks than the pids limit.
    PidsLimit,
    /// Killed by the caller.
    Killed,
    /// The VMM thread made this host syscall, off its seccomp allowlist (see `trap`):
    /// the run is not to be trusted any more.
    Violation(i32),
    /// The VMM could not go on (a bug or a host failure), in words.
    Internal(String),
    /// Not an end: a live sandbox's snapshot is asked for and the vCPU loop is at a
    /// point where it can be taken (`live::snapshot`); the loop takes it and goes on.
    Snapshot,
}

/// A syscall that waits: for what, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    /// When it gives up.
    pub(crate) deadline: Option<Instant>,
    /// What ends the wait.
    pub(crate) wait: Wait,
}

/// How a syscall fails: an errno for the workload, a wait, or the end of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SysErr {
    /// Returned as `-errno`.
    Errno(Errno),
    /// The task waits; see `sched.rs`.
    Block(Block),
    /// The calling task is gone (its process ended): it gets no answer.
    Gone,
    /// The run ends.
    Stop(Stop),
}

impl From<Errno> for SysErr {
    fn from(e: Errno) -> Self {
        SysErr::Errno(e)
    }
}

impl From<Stop> for SysErr {
    fn from(s: Stop) -> Self {
        SysErr::Stop(s)
    }
}

impl From<UserError> for SysErr {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Fault => SysErr::Errno(errno::EFAULT),
            UserError::Oom => SysErr::Stop(Stop::MemoryLimit),
        }
    }
}

impl From<CStrError> for SysErr {
    fn from(e: CStrError) -> Self {
        match e {
            CStrError::User(u) => u.into(),
            CStrError::TooLong => SysErr::Errno(errno::ENAMETOOLONG),
        }
    }
}

impl From<SizedError> for SysErr {
    fn from(e: SizedError) -> Self {
        match e {
            SizedError::TooSmall => SysErr::Errno(errno::EINVAL),
            SizedError::TooBig => SysErr::Errno(errno::E2BIG),
            SizedError::User(u) => u.into(),
        }
    }
}

/// How a call answers an array argument longer than it allows: `e`.
pub(crate) fn too_many(e: Errno) -> impl Fn(ArrayError) -> SysErr {
    move |a| match a {
        ArrayError::TooMany => SysErr::Errno(e),
        ArrayError::User(u) => u.into(),
    }
}

impl From<MapError> for SysErr {
    fn from(e: MapError) -> Self {
        match e {
            MapError::Errno(n) => SysErr::Errno(Errno(n)),
            MapError::Oom => SysErr::Stop(Stop::MemoryLimit),
            // The run's limits were reached: it ends at the vCPU loop's next turn (the
            // kick is still pending); the errno is never seen.
            MapError::Halted => SysErr::Errno(errno::EINTR),
        }
    }
}

impl From<OutputLimitReached> for SysErr {
    fn from(_: OutputLimitReached) -> Self {
        SysErr::Stop(Stop::OutputLimit)
    }
}

/// A syscall's result: the value for `rax`.
pub(crate) type SysResult = Result<u64, SysErr>;

/// Access to the vCPU state of the running task beyond the general registers.
pub(crate) trait Cpu {
    /// The FS base (thread pointer).
    fn fs_base(&mut self) -> Result<u64, Stop>;
    /// Sets the FS base.
    fn set_fs_base(&mut self, v: u64) -> Result<(), Stop>;
    /// The GS base.
    fn gs_base(&mut self) -> Result<u64, Stop>;
    /// Sets the GS base.
    fn set_gs_base(&mut self, v: u64) -> Result<(), Stop>;
    /// The FPU/vector state (saved around signal handlers, copied by `clone`).
    fn save_fpu(&mut self) -> Result<Box<kvm_bindings::kvm_xsave>, Stop>;
    /// Restores a state from [`Cpu::save_fpu`].
    fn restore_fpu(&mut self, state: &kvm_bindings::kvm_xsave) -> Result<(), Stop>;
    /// A fresh FPU state (`execve`).
    fn reset_fpu(&mut self) -> Result<(), Stop>;
}

/// A task's user-mode state around a syscall or an exception.
#[derive(Debug, Clone)]
pub(crate) struct UserCtx {
    /// General registers (at a syscall: `rax` is the number, `rcx`/`r11` as `syscall` left them).
    pub(crate) regs: kvm_regs,
    /// Where user mode resumes.
    pub(crate) rip: u64,
    /// Flags user mode resumes with.
    pub(crate) rflags: u64,
}

/// Limits the personality enforces.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// `RLIMIT_FSIZE`.
    pub(crate) file_size: Option<u64>,
    /// Wall-time deadline.
    pub(crate) deadline: Option<Instant>,
    /// CPU-time limit (of the vCPU thread: every task together).
    pub(crate) cpu: Option<Duration>,
    /// `RLIMIT_NOFILE`.
    pub(crate) open_files: u64,
    /// `RLIMIT_AS`/guest memory, for `getrlimit`.
    pub(crate) memory: u64,
    /// `RLIMIT_STACK`.
    pub(crate) stack: u64,
}

/// The workload's "kernel" state: its processes and their threads. The current task
/// and its process are fields here (moved out of the tables while current).
#[derive(Debug)]
pub(crate) struct Kernel {
    /// Guest memory and the address spaces (the current task's is current).
    pub(crate) mm: AddressSpace,
    /// Filesystem.
    pub(crate) vfs: Vfs,
    /// The current task.
    pub(crate) task: Task,
    /// The current task's process.
    pub(crate) proc: Process,
    /// The other tasks.
    pub(crate) tasks: BTreeMap<Tid, Task>,
    /// The other processes (zombies included).
    pub(crate) procs: BTreeMap<Tid, Process>,
    /// The workload's first process: the run ends with it.
    pub(crate) main_pid: Tid,
    /// Next task id to try.
    pub(crate) next_tid: Tid,
    /// Set once task ids wrapped around: only then can an open pidfd or `/proc/PID`
    /// directory name an id `next_tid` would hand out (`new_tid`).
    pub(crate) tids_wrapped: bool,
    /// Most tasks at once (`pids` limit).
    pub(crate) pids_limit: Option<u64>,
    /// Set when the run ends (the first process ended).
    pub(crate) ended: Option<Stop>,
    /// Something happened that may let blocked tasks go on.
    pub(crate) stirred: bool,
    /// When the running task's time slice started (see `sched.rs`).
    pub(crate) slice_start: Instant,
    /// A task was woken (a futex wake, a deadline, data for a retried call) or the
    /// running one yielded: the running task's slice ends now.
    pub(crate) preempt: bool,
    /// While a blocked syscall is tried again: its deadline.
    pub(crate) retrying: Option<Option<Instant>>,
    /// Address spaces whose last task went while they were current.
    pub(crate) dead_spaces: Vec<SpaceId>,
    /// In-memory files with `MAP_SHARED` mappings, and their shared pages.
    pub(crate) shm: Vec<(mm::SharedOf, std::rc::Rc<crate::mm::SharedPages>)>,
    /// CPU time of the VMM thread when the current task's share was last counted.
    pub(crate) cpu_mark: Duration,
    /// Limits.
    pub(crate) limits: Limits,
    /// stdout/stderr.
    pub(crate) out: Output,
    /// stdin.
    pub(crate) input: Input,
    /// Kill switch and wake-ups.
    pub(crate) ctl: Arc<Control>,
    /// When the run started.
    pub(crate) start: Instant,
    /// Unimplemented syscalls (and variants) called, by name.
    pub(crate) unimplemented: BTreeMap<String, u64>,
    /// `uname` node name.
    pub(crate) hostname: String,
    /// The uid and gid the workload runs as.
    pub(crate) user: (u32, u32),
    /// Programs get the vDSO (`AT_SYSINFO_EHDR`): its clock works here.
    pub(crate) vdso: bool,
    /// The row of the syscall being answered (while its handler runs).
    pub(crate) current: Option<&'static dispatch::Syscall>,
    /// `AF_UNIX` names and descriptors in flight (`unix.rs`, `scm.rs`).
    pub(crate) unix: unix::Names,
    /// The terminals whose host end is there (`tty.rs`).
    pub(crate) ttys: Vec<Rc<tty::Tty>>,
    /// `AF_INET`/`AF_INET6` ports bound (`inet.rs`).
    pub(crate) inet: inet::Ports,
    /// The network mode: what the inet sockets reach.
    pub(crate) net: inet::NetMode,
    /// Network `egress`: the broker's relayed connections (`egress.rs`).
    pub(crate) egress: Option<Box<egress::Egress>>,
    /// `AF_NETLINK` port ids bound (`netlink.rs`).
    pub(crate) netlink: netlink::Ports,
    /// File locks (`flock`, `fcntl` record locks) held (`locks.rs`).
    pub(crate) locks: locks::Locks,
    /// Timerfds and POSIX timers (`timers.rs`).
    pub(crate) timers: timers::Timers,
    /// Inotify instances (`inotify.rs`).
    pub(crate) inotify: inotify::Instances,
    /// System V IPC objects (`ipc.rs`).
    pub(crate) ipc: ipc::Ipc,
    /// POSIX message queues (`mqueue.rs`).
    pub(crate) mqueue: mqueue::Queues,
    /// A live sandbox's state (its command queue, the execs' channels); `None` in a run.
    pub(crate) live: Option<Box<crate::live::guest::Live>>,
    /// The VM's boot id (`/proc/sys/kernel/random/boot_id`): random per VM, new for
    /// each sandbox started from a snapshot (the identity a clone can tell apart).
    pub(crate) boot_id: [u8; 16],
    /// The vCPU loop is at a point where the current task's state is all in the
    /// kernel (its context saved): a snapshot may be taken (set by `vcpu.rs`).
    pub(crate) boundary: bool,
}

/// What a run sets in its kernel; everything else in `Kernel` starts empty.
#[derive(Debug)]
pub(crate) struct Settings {
    /// Most tasks at once (`pids` limit).
    pub(crate) pids_limit: Option<u64>,
    /// Limits.
    pub(crate) limits: Limits,
    /// stdout/stderr.
    pub(crate) out: Output,
    /// stdin.
    pub(crate) input: Input,
    /// Kill switch and wake-ups.
    pub(crate) ctl: Arc<Control>,
    /// When the run started.
    pub(crate) start: Instant,
    /// `uname` node name.
    pub(crate) hostname: String,
    /// The uid and gid the workload runs as.
    pub(crate) user: (u32, u32),
    /// Programs get the vDSO.
    pub(crate) vdso: bool,
    /// The network mode.
    pub(crate) network: inet::NetMode,
    /// Network `egress`: the broker and relay (started before the VMM thread confined
    /// itself).
    pub(crate) egress: Option<Arc<crate::net::VmNet>>,
}

impl Kernel {
    /// A kernel whose only task is the first thread of `proc`, in the current address
    /// space of `mm`, about to run at `rip` with the stack pointer `rsp`.
    pub(crate) fn new(
        mm: AddressSpace,
        vfs: Vfs,
        proc: Process,
        (rip, rsp): (u64, u64),
        s: Settings,
    ) -> Kernel {
        let mut proc = proc;
        proc.rlimits = limits::Rlimits::initial(&s.limits, s.pids_limit);
        let task = Task::new(proc.pid, proc.pid, mm.space(), Kernel::fresh_ctx(rip, rsp));
        Kernel {
            mm,
            vfs,
            main_pid: proc.pid,
            next_tid: proc.pid + 1,
            tids_wrapped: false,
            task,
            proc,
            tasks: BTreeMap::new(),
            procs: BTreeMap::new(),
            pids_limit: s.pids_limit,
            ended: None,
            stirred: false,
            slice_start: Instant::now(),
            preempt: false,
            retrying: None,
            dead_spaces: Vec::new(),
            shm: Vec::new(),
            cpu_mark: Duration::ZERO,
            limits: s.limits,
            out: s.out,
            input: s.input,
            ctl: s.ctl,
            start: s.start,
            unimplemented: BTreeMap::new(),
            hostname: s.hostname,
            user: s.user,
            vdso: s.vdso,
            current: None,
            unix: unix::Names::default(),
            ttys: Vec::new(),
            inet: inet::Ports::default(),
            net: s.network,
            egress: s.egress.map(|n| Box::new(egress::Egress::new(n))),
            netlink: netlink::Ports::default(),
            locks: locks::Locks::default(),
            timers: timers::Timers::default(),
            inotify: inotify::Instances::default(),
            ipc: ipc::Ipc::default(),
            mqueue: mqueue::Queues::default(),
            live: None,
            boot_id: new_boot_id(),
            boundary: false,
        }
    }

    /// A copy of this kernel for a snapshot (`m`'s mode [`crate::snap::FdMode::Detached`])
    /// or for a sandbox started from one: every process, thread, open file, pipe and
    /// socket with its buffers, the filesystem and the address spaces (whose page
    /// tables and pages are in guest memory: `ram` is the copy's). The copy's own
    /// output, input and control are given; it has no live state yet.
    pub(crate) fn snap_over(
        &self,
        m: &mut crate::snap::Memo,
        ram: (vm_memory::GuestMemoryMmap, Vec<crate::memory::Layer>),
        (out, input, ctl): (Output, Input, Arc<Control>),
    ) -> Result<Kernel, crate::snap::SnapError> {
        use crate::snap::Snap;
        if self.egress.is_some() {
            return Err(crate::snap::SnapError::new(
                "the sandbox's network egress (its relayed connections are host state) cannot be copied",
            ));
        }
        let mm = self.mm.snap_over(m, ram)?;
        let vfs = self.vfs.snap(m)?;
        let proc = self.proc.snap(m)?;
        let procs = self.procs.snap(m)?;
        let shm = self
            .shm
            .iter()
            .map(|(t, p)| Ok((t.snap(m)?, p.snap(m)?)))
            .collect::<Result<Vec<_>, crate::snap::SnapError>>()?;
        let ipc = self.ipc.copy(m, &mm.mem.budget())?;
        let files = m.copies::<OpenFile>();
        let mqueue = self.mqueue.copy(m, files.iter())?;
        // Second pass: what is held weakly.
        m.finish();
        for f in m.copies::<OpenFile>() {
            fd::fix_epoll(&f, m);
            unix::fix_unix(&f, m);
        }
        let unix = self.unix.snap_weak(m);
        let locks = self.locks.snap_weak(m);
        let timers = self.timers.copy(m.copies::<OpenFile>().iter());
        let inotify = self.inotify.copy(m.copies::<OpenFile>().iter());
        Ok(Kernel {
            mm,
            vfs,
            task: self.task.snap(),
            proc,
            tasks: self.tasks.iter().map(|(k, t)| (*k, t.snap())).collect(),
            procs,
            main_pid: self.main_pid,
            next_tid: self.next_tid,
            tids_wrapped: self.tids_wrapped,
            pids_limit: self.pids_limit,
            ended: self.ended.clone(),
            stirred: true,
            slice_start: Instant::now(),
            preempt: false,
            retrying: None,
            dead_spaces: self.dead_spaces.clone(),
            shm,
            cpu_mark: Duration::ZERO,
            limits: self.limits.clone(),
            out,
            input,
            ctl,
            start: self.start,
            unimplemented: self.unimplemented.clone(),
            hostname: self.hostname.clone(),
            user: self.user,
            vdso: self.vdso,
            current: None,
            unix,
            // Terminals are refused (an open file on one fails the copy); the list only
            // keeps the host ends of execs' terminals, which stay with the original.
            ttys: Vec::new(),
            // No inet socket is copied (refused): no port is bound in the copy.
            inet: inet::Ports::default(),
            net: self.net,
            egress: None,
            netlink: netlink::Ports::default(),
            locks,
            timers,
            inotify,
            ipc,
            mqueue,
            live: None,
            boot_id: self.boot_id,
            boundary: false,
        })
    }
}

impl Kernel {
    /// Gives a snapshot's kernel moved whole into a new sandbox (a fork's,
    /// `live/snapshot.rs`) that sandbox's output, input and control.
    pub(crate) fn take_over(&mut self, out: Output, input: Input, ctl: Arc<Control>) {
        (self.out, self.input, self.ctl) = (out, input, ctl);
        self.slice_start = Instant::now();
    }
}

/// A fresh random boot id.
pub(crate) fn new_boot_id() -> [u8; 16] {
    let mut r = [0u8; 16];
    rw::fill_random(&mut r);
    r[6] = (r[6] & 0x0f) | 0x40;
    r[8] = (r[8] & 0x3f) | 0x80;
    r
}

/// Syscall numbers below this are reported by name (or `syscall_N`); the workload's
/// others share one entry of the report.
const UNNAMED_MAX: u64 = 1024;
/// Most distinct entries of the `unimplemented_syscalls` report (the names of the
/// table and the refused variants fit with room to spare).
const UNIMPLEMENTED_KEYS: usize = 512;

/// Whether every syscall is written to stderr (`HSB_MICROVM_TRACE=1`, read once at
/// the first run: a debugging aid for this backend's developers).
pub(crate) fn trace_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("HSB_MICROVM_TRACE").is_some_and(|v| v == "1"))
}

/// Whether the vCPU loop's counts are written to stderr at the end of a run
/// (`HSB_MICROVM_STATS=1`, or with the trace).
pub(crate) fn stats_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        trace_enabled() || std::env::var_os("HSB_MICROVM_STATS").is_some_and(|v| v == "1")
    })
}

impl Kernel {
    /// Handles the current task's syscall (its context is in `self.task.ctx`, the
    /// number in `rax`): the result goes to `rax`, or the task blocks, or it is gone.
    pub(crate) fn syscall(&mut self, cpu: &mut dyn Cpu) -> Result<(), Stop> {
        let r = &self.task.ctx.regs;
        let nr = r.rax;
        let a = [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9];
        let mut ctx = self.task.ctx.clone();
        let started = Instant::now();
        self.task.partial = 0;
        let result = self.dispatch(cpu, &mut ctx, nr, a);
        if trace_enabled() {
            eprintln!(
                "[hsb-vmm {}:{}] {}({:#x}, {:#x}, {:#x}, {:#x}) = {:?} in {:?}",
                self.proc.pid,
                self.task.tid,
                dispatch::syscall_name(nr),
                a[0],
                a[1],
                a[2],
                a[3],
                result,
                started.elapsed()
            );
        }
        self.task.ctx = ctx;
        self.fire_cpu_timers();
        self.finish(nr, a, result)
    }

    fn enosys(&mut self, nr: u64) -> SysResult {
        // Numbers past any table (the workload chooses all 64 bits) share one entry.
        let name = if nr < UNNAMED_MAX {
            dispatch::syscall_name(nr).into_owned()
        } else {
            format!("syscall_{UNNAMED_MAX}_and_above")
        };
        self.count_unimplemented(name);
        Err(errno::ENOSYS.into())
    }

    /// A variant of a syscall that is not offered: counted like an unimplemented
    /// syscall, answered with `e`.
    pub(crate) fn unsupported(&mut self, what: &str, e: Errno) -> SysErr {
        // The table must say so: a variant refused in a row marked as fully
        // implemented is a row that lies (checked in every debug build and fuzz run).
        debug_assert!(
            self.current
                .is_none_or(|row| row.level == dispatch::Level::Partial),
            "{what} is refused but the table marks {} as fully implemented",
            self.current.map_or("?", |r| r.name)
        );
        self.count_unimplemented(what.to_string());
        SysErr::Errno(e)
    }

    /// A variant of a syscall that is accepted without doing all Linux would (a
    /// notification never sent): counted like an unimplemented syscall.
    pub(crate) fn note_unsupported(&mut self, what: &str) {
        let _ = self.unsupported(what, errno::ENOSYS);
    }

    /// Counts a call in the outcome's `unimplemented_syscalls`: a report of bounded
    /// size whatever the workload calls (past [`UNIMPLEMENTED_KEYS`] names, the rest
    /// are counted under "other").
    fn count_unimplemented(&mut self, name: String) {
        let key = if self.unimplemented.len() < UNIMPLEMENTED_KEYS
            || self.unimplemented.contains_key(&name)
        {
            name
        } else {
            "other".to_string()
        };
        let n = self.unimplemented.entry(key).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// The task waits (until `deadline`), its syscall tried again when something
    /// happened.
    pub(crate) fn park(&self, deadline: Option<Instant>) -> SysErr {
        SysErr::Block(Block {
            deadline,
            wait: Wait::Retry,
        })
    }

    /// The deadline of a wait of `d` that starts with this syscall (a retried syscall
    /// keeps the one it had).
    pub(crate) fn deadline_after(&self, d: Duration) -> Option<Instant> {
        match self.retrying {
            Some(dl) => dl,
            None => Some(time::later(d)),
        }
    }

    /// Waits for anything (until `until`): the syscall is tried again later.
    pub(crate) fn block_until(&self, until: Option<Instant>) -> Result<(), SysErr> {
        Err(self.park(until))
    }
}
