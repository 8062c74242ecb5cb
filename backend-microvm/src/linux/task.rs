//! Tasks (threads) and processes. All of them live in the one VM and take turns on its
//! one vCPU (see `sched.rs`). The kernel works on one of them at a time, the current
//! task and its process, which are fields of [`Kernel`] (moved out of the tables while
//! current): every syscall handler reaches "its" descriptors, working directory and
//! address space without looking anything up.

use std::time::{Duration, Instant};

use kvm_bindings::kvm_xsave;

use super::fd::{FdTable, FileKind};
use super::signal::{Action, SigInfo};
use super::{Kernel, UserCtx};
use crate::mm::SpaceId;
use crate::vfs::Location;

/// A task (thread) id; a process's id is its first thread's.
pub(crate) type Tid = u32;

/// The sandbox's init, as the container backend has: it adopts orphans and reaps them.
pub(crate) const INIT_PID: Tid = 1;
/// The workload's first process.
pub(crate) const FIRST_PID: Tid = 2;

/// What a blocked task waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Anything: its syscall is tried again when something happened (data, an exit, a
    /// signal, time).
    Retry,
    /// A `FUTEX_WAKE` on this key (matching `bitset`).
    Futex {
        /// The futex.
        key: FutexKey,
        /// `FUTEX_WAIT_BITSET`'s bits.
        bitset: u32,
    },
    /// Its `vfork` child to exec or exit.
    Vfork(Tid),
    /// A `Retry` wait that this signal came to: the call is tried once more before
    /// the signal ends it (`EINTR`, or a restart after the handler), as Linux's waits
    /// look at their condition before the pending signal: a `wait4` whose child's exit
    /// sent the `SIGCHLD` answers the child, a `read` whose data came with a signal
    /// answers the data.
    Interrupted(i32),
}

/// Identifies a futex: a private one by address space and address, a shared one by
/// guest-physical address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum FutexKey {
    /// `FUTEX_PRIVATE_FLAG`.
    Private(SpaceId, u64),
    /// Shared between processes.
    Shared(u64),
}

/// A task stopped in a syscall.
#[derive(Debug, Clone)]
pub(crate) struct Blocked {
    /// The syscall and its arguments (it is tried again as it was made).
    pub(crate) nr: u64,
    /// Arguments.
    pub(crate) args: [u64; 6],
    /// When it gives up (a timeout), absolute.
    pub(crate) deadline: Option<Instant>,
    /// What ends the wait.
    pub(crate) wait: Wait,
}

/// Whether a task can run.
#[derive(Debug, Clone)]
pub(crate) enum TaskState {
    /// Ready (its context is where user mode resumes).
    Runnable,
    /// Waiting in a syscall.
    Blocked(Blocked),
    /// Gone (removed at the next switch).
    Dead,
}

/// One thread of a process.
#[derive(Debug)]
pub(crate) struct Task {
    /// Its id.
    pub(crate) tid: Tid,
    /// Its process.
    pub(crate) pid: Tid,
    /// Its address space.
    pub(crate) space: SpaceId,
    /// User-mode registers while it is not on the vCPU (or after its last exit).
    pub(crate) ctx: UserCtx,
    /// FS base (thread pointer), saved while not on the vCPU.
    pub(crate) fs_base: u64,
    /// GS base, saved while not on the vCPU.
    pub(crate) gs_base: u64,
    /// FPU state saved while not on the vCPU; `None`: a fresh state.
    pub(crate) fpu: Option<Box<kvm_xsave>>,
    /// Runnable or blocked.
    pub(crate) state: TaskState,
    /// Blocked signals.
    pub(crate) mask: u64,
    /// Signals sent to this thread.
    pub(crate) pending: u64,
    /// What they carry.
    pub(crate) info: [Option<SigInfo>; 64],
    /// `sigaltstack`: base and size.
    pub(crate) altstack: Option<(u64, u64)>,
    /// FPU states saved by signal delivery, restored by `rt_sigreturn`.
    pub(crate) sig_fpu: Vec<Box<kvm_xsave>>,
    /// `rt_sigsuspend`: the mask to put back once a handler ran.
    pub(crate) suspend_mask: Option<u64>,
    /// `CLONE_CHILD_CLEARTID` / `set_tid_address`.
    pub(crate) clear_tid: u64,
    /// The parent waiting for this `vfork` child to exec or exit.
    pub(crate) vfork_parent: Option<Tid>,
    /// CPU time used.
    pub(crate) cpu: Duration,
    /// Its nice value (-20..=19; `setpriority`).
    pub(crate) nice: i32,
    /// Its scheduling policy (`SCHED_OTHER`, `SCHED_BATCH`, `SCHED_IDLE`).
    pub(crate) policy: i32,
    /// Its I/O priority (`ioprio_set`).
    pub(crate) ioprio: u16,
    /// `PR_SET_PDEATHSIG` (recorded).
    pub(crate) pdeathsig: i32,
    /// Bytes the syscall it is blocked in already moved (a large blocking write to a
    /// pipe): where it goes on, and what it answers if a signal ends the wait.
    pub(crate) partial: u64,
}

impl Task {
    /// A task with registers `ctx`.
    pub(crate) fn new(tid: Tid, pid: Tid, space: SpaceId, ctx: UserCtx) -> Task {
        Task {
            tid,
            pid,
            space,
            ctx,
            fs_base: 0,
            gs_base: 0,
            fpu: None,
            state: TaskState::Runnable,
            mask: 0,
            pending: 0,
            info: [None; 64],
            altstack: None,
            sig_fpu: Vec::new(),
            suspend_mask: None,
            clear_tid: 0,
            vfork_parent: None,
            cpu: Duration::ZERO,
            nice: 0,
            policy: 0,
            ioprio: 0,
            pdeathsig: 0,
            partial: 0,
        }
    }

    /// True when it can run (its process must not be stopped: [`Kernel::can_run`]).
    pub(crate) fn runnable(&self) -> bool {
        matches!(self.state, TaskState::Runnable)
    }
}

/// How a process ended (a `wait` status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// `exit(code)`.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
}

impl ExitStatus {
    /// The status word `wait4` reports.
    pub(crate) fn wait_status(self) -> i32 {
        match self {
            ExitStatus::Code(c) => (c & 0xff) << 8,
            ExitStatus::Signal(s) => s & 0x7f,
        }
    }
}

/// One process.
#[derive(Debug)]
pub(crate) struct Process {
    /// Its id.
    pub(crate) pid: Tid,
    /// Its parent (`INIT_PID` once orphaned).
    pub(crate) ppid: Tid,
    /// Process group.
    pub(crate) pgid: Tid,
    /// Session.
    pub(crate) sid: Tid,
    /// Its live threads.
    pub(crate) threads: Vec<Tid>,
    /// Descriptors.
    pub(crate) files: FdTable,
    /// Working directory.
    pub(crate) cwd: Location,
    /// The VFS's count of directory moves when `cwd` was last found current
    /// (`Vfs::moves`, `Kernel::current_cwd`).
    pub(crate) cwd_seen: u64,
    /// File mode creation mask.
    pub(crate) umask: u32,
    /// Signal dispositions.
    pub(crate) act: [Action; 64],
    /// Signals sent to the process.
    pub(crate) pending: u64,
    /// What they carry.
    pub(crate) info: [Option<SigInfo>; 64],
    /// The program's path in the sandbox (`/proc/self/exe`).
    pub(crate) exe: Vec<u8>,
    /// Its name (`comm`, `PR_GET_NAME`).
    pub(crate) comm: Vec<u8>,
    /// Its arguments (`/proc/self/cmdline`).
    pub(crate) argv: Vec<Vec<u8>>,
    /// What the copy of `argv` costs the sandbox's memory (the workload chooses it:
    /// up to `MAX_ARGS` per process); `None` for the first process's, from the plan.
    pub(crate) argv_charge: Option<crate::memory::HeapCharge>,
    /// Set once it ended: a zombie until its parent waits.
    pub(crate) exit: Option<ExitStatus>,
    /// The signal its parent gets when it ends (`SIGCHLD`).
    pub(crate) exit_signal: i32,
    /// `ITIMER_REAL`: next expiry and interval.
    pub(crate) itimer: Option<(Instant, Duration)>,
    /// `ITIMER_VIRTUAL` and `ITIMER_PROF`: the process's CPU time at which each
    /// expires next, and its interval (kept across `execve`, not inherited by `fork`).
    pub(crate) cpu_itimers: [Option<(Duration, Duration)>; 2],
    /// CPU time of its threads that ended.
    pub(crate) cpu_dead: Duration,
    /// CPU time of its children it waited for.
    pub(crate) cpu_children: Duration,
    /// The live exec whose process started it (0: none, the run's): its CPU time
    /// counts against that exec's limit, whatever group or session it moves to.
    pub(crate) exec: u32,
    /// Stopped, by this signal (its threads do not run until `SIGCONT`).
    pub(crate) stopped: Option<i32>,
    /// A stop its parent has not been told of by `wait` (`WUNTRACED`).
    pub(crate) stop_report: Option<i32>,
    /// Continued since its parent last waited (`WCONTINUED`).
    pub(crate) continued: bool,
    /// Resource limits (`getrlimit`, inherited by children).
    pub(crate) rlimits: super::limits::Rlimits,
    /// `PR_SET_DUMPABLE`.
    pub(crate) dumpable: bool,
    /// `PR_SET_CHILD_SUBREAPER` (recorded).
    pub(crate) subreaper: bool,
    /// `personality`.
    pub(crate) persona: u32,
    /// `MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED` (and its other registrations).
    pub(crate) membarrier: u32,
}

impl Process {
    /// The workload's first process (`FIRST_PID`, a child of init, leading its own
    /// group and session) with `files` open, in `cwd`, running `exe` as `argv`.
    pub(crate) fn first(
        files: FdTable,
        cwd: Location,
        exe: Vec<u8>,
        comm: Vec<u8>,
        argv: Vec<Vec<u8>>,
    ) -> Process {
        Process {
            pid: FIRST_PID,
            ppid: INIT_PID,
            pgid: FIRST_PID,
            sid: FIRST_PID,
            threads: vec![FIRST_PID],
            files,
            cwd,
            cwd_seen: 0,
            umask: 0o022,
            act: [Action::default(); 64],
            pending: 0,
            info: [None; 64],
            exe,
            comm,
            argv,
            argv_charge: None,
            exit: None,
            exit_signal: 0,
            itimer: None,
            cpu_itimers: [None; 2],
            cpu_dead: Duration::ZERO,
            cpu_children: Duration::ZERO,
            exec: 0,
            stopped: None,
            stop_report: None,
            continued: false,
            rlimits: super::limits::Rlimits::unlimited(),
            dumpable: true,
            subreaper: false,
            persona: 0,
            membarrier: 0,
        }
    }
}

/// What a copy of the arguments `argv` costs the VMM (each string, its NUL and the
/// vector's own entry).
pub(crate) fn argv_cost(argv: &[Vec<u8>]) -> u64 {
    argv.iter().map(|a| a.len() as u64 + 1 + 24).sum()
}

impl Kernel {
    /// Makes `tid` the current task (and its process and address space current). Tasks
    /// marked dead are dropped from the tables on the way. False when there is no such
    /// task.
    pub(crate) fn switch_to(&mut self, tid: Tid) -> bool {
        if tid == self.task.tid {
            return true;
        }
        let Some(next) = self.tasks.remove(&tid) else {
            return false;
        };
        let old = std::mem::replace(&mut self.task, next);
        if !matches!(old.state, TaskState::Dead) {
            self.tasks.insert(old.tid, old);
        }
        let pid = self.task.pid;
        if pid != self.proc.pid {
            if let Some(p) = self.procs.remove(&pid) {
                let old = std::mem::replace(&mut self.proc, p);
                // An ended process nobody waits for (a child of init, or of a parent
                // ignoring SIGCHLD) is reaped as it leaves: it could not be while
                // current, and zombies must not pile up in a sandbox that lives.
                if !self.reaped_on_leaving(&old) {
                    self.procs.insert(old.pid, old);
                } else {
                    self.live_process_gone(&old);
                }
            }
        }
        self.mm.switch(self.task.space);
        self.vfs.set_self(self.proc.pid);
        true
    }

    /// True when task `tid` can be given the vCPU: runnable, its process not stopped.
    pub(crate) fn can_run(&self, tid: Tid) -> bool {
        self.task_ref(tid).is_some_and(|t| t.runnable()) && self.process_goes(tid)
    }

    /// True when the process of task `tid` is not stopped.
    pub(crate) fn process_goes(&self, tid: Tid) -> bool {
        self.task_ref(tid)
            .is_some_and(|t| self.proc_ref(t.pid).is_some_and(|p| p.stopped.is_none()))
    }

    /// The task `tid`, current or not.
    pub(crate) fn task_mut(&mut self, tid: Tid) -> Option<&mut Task> {
        if self.task.tid == tid {
            Some(&mut self.task)
        } else {
            self.tasks.get_mut(&tid)
        }
    }

    /// The task `tid`, current or not.
    pub(crate) fn task_ref(&self, tid: Tid) -> Option<&Task> {
        if self.task.tid == tid {
            Some(&self.task)
        } else {
            self.tasks.get(&tid)
        }
    }

    /// The process `pid`, current or not.
    pub(crate) fn proc_mut(&mut self, pid: Tid) -> Option<&mut Process> {
        if self.proc.pid == pid {
            Some(&mut self.proc)
        } else {
            self.procs.get_mut(&pid)
        }
    }

    /// The process `pid`, current or not.
    pub(crate) fn proc_ref(&self, pid: Tid) -> Option<&Process> {
        if self.proc.pid == pid {
            Some(&self.proc)
        } else {
            self.procs.get(&pid)
        }
    }

    /// Every process id (zombies included).
    pub(crate) fn pids(&self) -> Vec<Tid> {
        let mut v: Vec<Tid> = self.procs.keys().copied().collect();
        v.push(self.proc.pid);
        v.sort_unstable();
        v
    }

    /// Every live task id.
    pub(crate) fn tids(&self) -> Vec<Tid> {
        let mut v: Vec<Tid> = self.tasks.keys().copied().collect();
        if !matches!(self.task.state, TaskState::Dead) {
            v.push(self.task.tid);
        }
        v.sort_unstable();
        v
    }

    /// Tasks that count against the pids limit: live ones and unreaped processes.
    pub(crate) fn task_count(&self) -> usize {
        let zombies = self
            .pids()
            .iter()
            .filter(|p| self.proc_ref(**p).is_some_and(|p| p.exit.is_some()))
            .count();
        self.tids().len() + zombies
    }

    /// A fresh task id: one no task or process has, and none an open pidfd or
    /// `/proc/PID` directory names (after the ids wrapped, a signal through such a
    /// descriptor must not reach a newcomer with the old number, as on Linux).
    pub(crate) fn new_tid(&mut self) -> Tid {
        // Until ids wrap, every id a descriptor names was handed out before, below
        // `next_tid`: the scan of every process's descriptors is needed only after.
        let mut named: Option<std::collections::HashSet<Tid>> = None;
        loop {
            let t = self.next_tid;
            self.next_tid = if t >= 4_000_000 {
                self.tids_wrapped = true;
                FIRST_PID + 1
            } else {
                t + 1
            };
            if self.task_ref(t).is_none()
                && self.proc_ref(t).is_none()
                && !(self.tids_wrapped
                    && named.get_or_insert_with(|| self.named_pids()).contains(&t))
            {
                return t;
            }
        }
    }

    /// The ids open descriptors of every process name: pidfds, and directories of
    /// `/proc/PID`.
    fn named_pids(&self) -> std::collections::HashSet<Tid> {
        use crate::vfs::proc::ProcNode;
        use crate::vfs::Node;
        let mut named = std::collections::HashSet::new();
        for pid in self.pids() {
            let Some(p) = self.proc_ref(pid) else {
                continue;
            };
            for (_, f) in p.files.iter() {
                match (&f.kind, f.loc.as_ref().map(|l| &l.top().node)) {
                    (FileKind::PidFd(x), _) => {
                        named.insert(x.pid);
                    }
                    (_, Some(Node::Proc(ProcNode::Pid(x) | ProcNode::FdDir(x)))) => {
                        named.insert(*x as Tid);
                    }
                    _ => {}
                }
            }
        }
        named
    }
}

impl Task {
    /// A copy (a snapshot's; nothing in a task is shared).
    pub(crate) fn snap(&self) -> Task {
        Task {
            tid: self.tid,
            pid: self.pid,
            space: self.space,
            ctx: self.ctx.clone(),
            fs_base: self.fs_base,
            gs_base: self.gs_base,
            fpu: self.fpu.as_deref().map(crate::snap::xsave),
            state: self.state.clone(),
            mask: self.mask,
            pending: self.pending,
            info: self.info,
            altstack: self.altstack,
            sig_fpu: self.sig_fpu.iter().map(|x| crate::snap::xsave(x)).collect(),
            suspend_mask: self.suspend_mask,
            clear_tid: self.clear_tid,
            vfork_parent: self.vfork_parent,
            cpu: self.cpu,
            nice: self.nice,
            policy: self.policy,
            ioprio: self.ioprio,
            pdeathsig: self.pdeathsig,
            partial: self.partial,
        }
    }
}

impl crate::snap::Snap for Process {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(Process {
            pid: self.pid,
            ppid: self.ppid,
            pgid: self.pgid,
            sid: self.sid,
            threads: self.threads.clone(),
            files: self.files.snap(m)?,
            cwd: self.cwd.snap(m)?,
            cwd_seen: self.cwd_seen,
            umask: self.umask,
            act: self.act,
            pending: self.pending,
            info: self.info,
            exe: self.exe.clone(),
            comm: self.comm.clone(),
            argv: self.argv.clone(),
            argv_charge: self.argv_charge.snap(m)?,
            exit: self.exit,
            exit_signal: self.exit_signal,
            itimer: self.itimer,
            cpu_itimers: self.cpu_itimers,
            cpu_dead: self.cpu_dead,
            cpu_children: self.cpu_children,
            // The execs are this sandbox's; one made from the copy has its own.
            exec: 0,
            stopped: self.stopped,
            stop_report: self.stop_report,
            continued: self.continued,
            rlimits: self.rlimits,
            dumpable: self.dumpable,
            subreaper: self.subreaper,
            persona: self.persona,
            membarrier: self.membarrier,
        })
    }
}
