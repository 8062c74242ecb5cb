//! The vCPU thread's side of a live sandbox: the virtual init, the command queue
//! served between guest instructions, each exec's process and stdio channel, and
//! what ends an exec.
//!
//! **Init.** PID 1 is a process with one task blocked for good (it never runs guest
//! code and holds an empty address space): orphans are reparented to it and reaped
//! at once (`exit.rs`), it takes no signal and never ends, and the scheduler, finding
//! nothing to run, waits for the next command instead of ending the run.
//!
//! **Execs.** Each exec is a new process, child of init, leading its own process
//! group, in a fresh address space with the program loaded by the same loader as a
//! run's (from the sandbox's own VFS, behind the thread's seccomp filter and
//! Landlock). Its descriptors 0, 1, 2 are its own channel (`FileKind::Stdin(id)`,
//! `FileKind::Output(id, _)`); whatever inherits them writes to that exec's stream
//! until the exec's leader ends, and to nowhere after (reads give end of file).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sandbox_core::{LiveError, SpawnError, StreamKind, Termination};
use tokio::sync::oneshot;

use super::cmd::{Cmd, ExecCmd, ExecEnd, Hub, VmStats};
use crate::linux::signal::SigInfo;
use crate::linux::task::{Blocked, ExitStatus, Process, Task, TaskState, Tid, Wait, INIT_PID};
use crate::linux::tty::Tty;
use crate::linux::{FdTable, FileKind, Kernel, OpenFile, Stop};
use crate::loader::{self, LoadError};
use crate::stdio::{Input, Output};
use crate::vfs::Location;

const SIGKILL: i32 = 9;

/// One exec's channel and end.
#[derive(Debug)]
pub(super) struct Chan {
    /// Its leader.
    pub(super) pid: Tid,
    pub(super) input: Input,
    pub(super) output: Output,
    /// CPU time limit of its processes (every one it started, see `Process::exec`).
    pub(super) cpu: Option<Duration>,
    /// CPU its processes had used when the channel was made (a template's start, for
    /// an exec taken over from a snapshot: not counted against the run).
    pub(super) cpu_base: Duration,
    /// CPU time of its processes that are gone (reaped).
    pub(super) cpu_gone: Duration,
    /// Set when a limit or a kill ended it.
    pub(super) why: Option<Termination>,
    pub(super) done: Option<oneshot::Sender<ExecEnd>>,
    /// Its terminal, when it runs on one.
    pub(super) tty: Option<Rc<Tty>>,
    /// A template run's: where to record the pages its address space touched when
    /// it ends (`warm.rs`), and that space.
    pub(super) warm: Option<(crate::mm::SpaceId, std::sync::Arc<crate::warm::Shared>)>,
}

/// A live sandbox's state on the vCPU thread.
#[derive(Debug)]
pub(crate) struct Live {
    hub: std::sync::Arc<Hub>,
    pub(super) chans: HashMap<u32, Chan>,
    pub(super) by_pid: HashMap<Tid, u32>,
    paused: bool,
    /// Open file handles of streamed reads and writes (see `files.rs`).
    pub(super) handles: HashMap<u64, super::files::Handle>,
    pub(super) next_handle: u64,
    /// `file_size` and `tmp_size` of the plan (for the file calls' errors).
    pub(super) file_size: Option<u64>,
    pub(super) tmp_size: Option<u64>,
    /// Since when nothing could run (see [`TRIM_AFTER`]).
    idle_since: Option<Instant>,
    /// The page cache's idle pages were given back during this idle period.
    cache_dropped: bool,
    /// Snapshots asked for, taken at the vCPU loop's next boundary.
    pub(crate) snaps: Vec<super::snapshot::SnapReq>,
}

/// How long a live sandbox stays idle (nothing runnable) before it gives the host the
/// guest frames nothing uses (`Memory::trim`): execs in a row reuse warm frames, an
/// idle sandbox holds only what its processes use.
const TRIM_AFTER: Duration = Duration::from_millis(50);
/// How long before it also gives back the page cache's pages no process maps: a burst
/// of execs finds its programs cached, a sandbox left idle holds no cache.
const DROP_CACHE_AFTER: Duration = Duration::from_secs(10);

impl Live {
    /// The terminal of exec `id`.
    fn tty(&self, id: u32) -> Option<Rc<Tty>> {
        self.chans.get(&id).and_then(|c| c.tty.clone())
    }

    pub(crate) fn new(
        hub: std::sync::Arc<Hub>,
        file_size: Option<u64>,
        tmp_size: Option<u64>,
    ) -> Live {
        Live {
            hub,
            chans: HashMap::new(),
            by_pid: HashMap::new(),
            paused: false,
            handles: HashMap::new(),
            next_handle: 1,
            file_size,
            tmp_size,
            idle_since: None,
            cache_dropped: false,
            snaps: Vec::new(),
        }
    }
}

/// PID 1 of a live sandbox (made current by `Kernel::new`; see [`Kernel::become_live`]).
pub(crate) fn init_process(cwd: Location) -> Process {
    let mut p = Process::first(
        FdTable::new(0),
        cwd,
        b"/sbin/init".to_vec(),
        b"init".to_vec(),
        vec![b"init".to_vec()],
    );
    p.pid = INIT_PID;
    p.ppid = 0;
    p.pgid = INIT_PID;
    p.sid = INIT_PID;
    p.threads = vec![INIT_PID];
    p
}

impl Kernel {
    /// Makes this kernel a live sandbox's: its init waits for good, commands come
    /// from `live`'s queue.
    pub(crate) fn become_live(&mut self, live: Live) {
        self.task.state = TaskState::Blocked(Blocked {
            nr: 0,
            args: [0; 6],
            deadline: None,
            // A vfork child that never comes: the scheduler never retries it.
            wait: Wait::Vfork(0),
        });
        self.live = Some(Box::new(live));
    }

    /// Serves the queued commands; while paused, waits here (no guest instruction
    /// runs) for the resume or the kill.
    pub(crate) fn serve_live(&mut self) -> Result<(), Stop> {
        loop {
            let Some(live) = self.live.as_ref() else {
                return Ok(());
            };
            let paused = live.paused;
            if !live.hub.pending() && !paused {
                // A snapshot asked for where the task was not at a boundary (the
                // vCPU stopped mid-way) is taken at the next boundary, whether or not
                // more commands came since: the scheduler may be about to sleep with
                // every task blocked, and nothing else would bring it back here.
                if self.boundary && self.snapshot_pending() {
                    return Err(Stop::Snapshot);
                }
                return Ok(());
            }
            let cmds = live.hub.take();
            for cmd in cmds {
                self.command(cmd);
            }
            if self.ctl.killed() {
                return Err(Stop::Killed);
            }
            if self.snapshot_pending() {
                if self.boundary {
                    return Err(Stop::Snapshot); // the vCPU loop takes it
                }
                // The vCPU loop brings the task to a boundary first (a kick soon),
                // even while paused: a few guest instructions at most.
                return Ok(());
            }
            if self.live.as_ref().is_some_and(|l| l.paused) {
                self.ctl
                    .wait_until(Instant::now() + Duration::from_secs(3600));
                if self.ctl.killed() {
                    return Err(Stop::Killed);
                }
                continue;
            }
            return Ok(());
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Exec(e) => {
                let (started, rest) = split_started(*e);
                let r = self.start_exec(rest);
                let _ = started.send(r);
            }
            Cmd::Signal { id, sig, why } => self.signal_exec(id, sig, why),
            Cmd::CheckCpu => self.check_cpu(),
            Cmd::TtyInput(id) => {
                if let Some(t) = self.live.as_ref().and_then(|l| l.tty(id)) {
                    // An exec's output past its limit ends the exec, not the pump.
                    let _ = self.tty_pump(&t);
                }
            }
            Cmd::Resize { id, size } => {
                if let Some(t) = self.live.as_ref().and_then(|l| l.tty(id)) {
                    self.tty_resize(&t, winsize(size));
                }
            }
            Cmd::File(op, reply) => {
                let r = self.file_op(op);
                let _ = reply.send(r);
            }
            Cmd::Pause(ack) => {
                if let Some(l) = self.live.as_mut() {
                    l.paused = true;
                }
                let _ = ack.send(());
            }
            Cmd::Resume => {
                if let Some(l) = self.live.as_mut() {
                    l.paused = false;
                }
                self.stirred = true;
            }
            Cmd::Stats(reply) => {
                let _ = reply.send(self.vm_stats());
            }
            Cmd::Snapshot(mut req) => {
                // A fork's thread confines itself with these while the snapshot is
                // taken (a failure to copy them leaves it none: it then fails).
                if let Some(tx) = req.rules.take() {
                    if let Ok(rules) = crate::confine::SourceRule::of(self.vfs.sources()) {
                        let _ = tx.send(rules);
                    }
                }
                if let Some(l) = self.live.as_mut() {
                    l.snaps.push(req);
                }
            }
            Cmd::Park { id, reply } => {
                let _ = reply.send(self.park_state(id));
            }
        }
        // The thread's name for itself and its pid view stay the current process's.
        self.vfs.set_self(self.proc.pid);
    }

    /// A snapshot waits to be taken.
    pub(crate) fn snapshot_pending(&self) -> bool {
        self.live.as_ref().is_some_and(|l| !l.snaps.is_empty())
    }

    /// Makes this kernel (a copy started from a snapshot) a live sandbox's, its
    /// processes as they were.
    pub(crate) fn attach_live(&mut self, live: Live) {
        self.live = Some(Box::new(live));
    }

    fn vm_stats(&self) -> VmStats {
        // Init counts, as a container's init does in its pids cgroup.
        let tasks = self.tids().len() as u64;
        VmStats {
            memory: self.mm.mem.used_bytes(),
            peak: self.mm.mem.peak_bytes(),
            cpu: crate::kick::thread_cpu_time(),
            tasks,
            disk: self.vfs.tmp_fs().map_or(0, |t| t.used()),
        }
    }

    /// Nothing runs: when the current task is dead, init becomes current, so that the
    /// address space of the process that ended last is freed now (a space is freed
    /// only once it is not the current one), not at the next exec.
    pub(crate) fn live_idle(&mut self) {
        if matches!(self.task.state, TaskState::Dead) {
            self.switch_to(INIT_PID);
            self.release_dead_spaces();
        }
    }

    /// Nothing can run (the scheduler is about to wait): the dead are freed, and the
    /// moment the sandbox should give unused frames back, if it has any.
    pub(crate) fn live_idle_until(&mut self, now: Instant) -> Option<Instant> {
        self.live_idle();
        let warm = self.mm.mem.needs_trim();
        let cached = self.mm.mem.has_cache();
        let live = self.live.as_mut()?;
        let since = *live.idle_since.get_or_insert(now);
        if warm {
            return Some(since + TRIM_AFTER);
        }
        (cached && !live.cache_dropped).then_some(since + DROP_CACHE_AFTER)
    }

    /// After the scheduler's wait: gives the unused frames back once the sandbox has
    /// been idle for [`TRIM_AFTER`], and the page cache's unused pages after
    /// [`DROP_CACHE_AFTER`].
    pub(crate) fn live_trim_if_due(&mut self) {
        let Some(idle) = self
            .live
            .as_ref()
            .and_then(|l| l.idle_since)
            .map(|s| s.elapsed())
        else {
            return;
        };
        if idle >= TRIM_AFTER && self.mm.mem.needs_trim() {
            self.mm.mem.trim();
        }
        if idle >= DROP_CACHE_AFTER {
            if let Some(l) = self.live.as_mut() {
                if !l.cache_dropped {
                    l.cache_dropped = true;
                    self.mm.mem.evict_idle();
                }
            }
        }
    }

    /// A task runs: the sandbox is not idle.
    pub(crate) fn live_busy(&mut self) {
        if let Some(l) = self.live.as_mut() {
            l.idle_since = None;
            l.cache_dropped = false;
        }
    }

    /// Starts an exec: a new process, child of init, in a fresh address space.
    fn start_exec(&mut self, e: ExecRest) -> Result<u32, LiveError> {
        self.live_idle();
        if let Some(limit) = self.pids_limit {
            if self.task_count() as u64 >= limit {
                return Err(LiveError::Limit {
                    limit: "pids",
                    value: limit.to_string(),
                    message: "no room for the exec's process".into(),
                });
            }
        }
        let root = self.vfs.root();
        let cwd = self
            .vfs
            .resolve(&root, e.cwd.as_bytes(), true)
            .map_err(|err| {
                LiveError::Exec(SpawnError::Setup {
                    step: format!("entering the working directory {}", e.cwd),
                    source: std::io::Error::from_raw_os_error(err.0),
                })
            })?;
        if !cwd.node().is_dir() {
            return Err(LiveError::Exec(SpawnError::Setup {
                step: format!("entering the working directory {}", e.cwd),
                source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
            }));
        }
        let program = e.argv.first().cloned().unwrap_or_default();
        let prog = loader::find(&self.vfs, &cwd, &e.candidates, &e.argv)
            .map_err(|err| load_error(&program, err))?;
        let old = self.mm.space();
        let space = self.mm.new_space().map_err(|_| no_memory())?;
        self.mm.switch(space);
        let loaded = loader::load(&mut self.mm, &self.vfs, &prog, &e.env, self.user, self.vdso);
        self.mm.switch(old);
        let entry = match loaded {
            Ok(entry) => entry,
            Err(err) => {
                self.mm.release(space);
                return Err(load_error(&program, err));
            }
        };
        let pid = self.new_tid();
        let mut files = FdTable::new(self.limits.open_files.min(1 << 20) as usize);
        let tty = match e.tty {
            Some(size) => Some(self.new_tty(e.id, pid, size).inspect_err(|_| {
                self.mm.release(space);
            })?),
            None => None,
        };
        let stdio = match &tty {
            // One open file on the three descriptors, as a shell's dup of its terminal.
            Some((t, loc)) => {
                let f = OpenFile::new(FileKind::Tty(Rc::clone(t)), Some(loc.clone()), libc::O_RDWR);
                [Rc::clone(&f), Rc::clone(&f), f]
            }
            None => [
                OpenFile::new(FileKind::Stdin(e.id), None, libc::O_RDONLY),
                OpenFile::new(FileKind::Output(e.id, false), None, libc::O_WRONLY),
                OpenFile::new(FileKind::Output(e.id, true), None, libc::O_WRONLY),
            ],
        };
        for (i, f) in stdio.into_iter().enumerate() {
            files.put(i, f, false);
        }
        let mut p = Process::first(files, cwd, prog.exe(), prog.comm(), prog.argv);
        p.exec = e.id;
        p.pid = pid;
        p.pgid = pid;
        p.sid = pid;
        p.threads = vec![pid];
        p.rlimits = self.proc_ref(INIT_PID).map_or(p.rlimits, |i| i.rlimits);
        self.vfs.set_exe(pid, &p.exe);
        let task = Task::new(pid, pid, space, Kernel::fresh_ctx(entry.rip, entry.rsp));
        self.tasks.insert(pid, task);
        self.procs.insert(pid, p);
        self.stirred = true;
        if let Some(l) = self.live.as_mut() {
            l.by_pid.insert(pid, e.id);
            l.chans.insert(
                e.id,
                Chan {
                    pid,
                    input: e.input,
                    output: e.output,
                    cpu: e.cpu,
                    cpu_base: std::time::Duration::ZERO,
                    cpu_gone: std::time::Duration::ZERO,
                    why: None,
                    done: Some(e.done),
                    tty: tty.as_ref().map(|(t, _)| Rc::clone(t)),
                    warm: None,
                },
            );
        }
        if let Some((t, _)) = &tty {
            let _ = self.tty_pump(t); // stdin given as bytes is typed at once
        }
        Ok(pid)
    }

    /// Signals an exec's process group (a kill with a reason ends it with that reason).
    fn signal_exec(&mut self, id: u32, sig: i32, why: Option<Termination>) {
        let Some(pid) = self
            .live
            .as_mut()
            .and_then(|l| l.chans.get_mut(&id))
            .map(|c| {
                if c.why.is_none() {
                    c.why = why;
                }
                c.pid
            })
        else {
            return; // it ended already
        };
        if why.is_some() {
            // Its group; at its CPU limit, every process it started (the limit is
            // theirs together, detached ones included).
            let every = why == Some(Termination::CpuLimit);
            let group: Vec<Tid> = self
                .pids()
                .into_iter()
                .filter(|p| {
                    self.proc_ref(*p).is_some_and(|x| {
                        x.exit.is_none()
                            && (x.pgid == pid || x.pid == pid || (every && x.exec == id))
                    })
                })
                .collect();
            for p in group {
                self.kill_process(p, ExitStatus::Signal(SIGKILL));
            }
        } else {
            self.signal_process(
                pid,
                SigInfo {
                    signo: sig,
                    code: 0, // SI_USER
                    addr: 0,
                    status: 0,
                },
            );
        }
    }

    /// Kills the execs whose processes used up their CPU time.
    fn check_cpu(&mut self) {
        self.account_cpu();
        let Some(live) = self.live.as_ref() else {
            return;
        };
        let limited: Vec<(u32, Duration, Duration)> = live
            .chans
            .iter()
            .filter_map(|(id, c)| c.cpu.map(|l| (*id, l, c.cpu_base)))
            .collect();
        for (id, limit, base) in limited {
            let used = self.exec_cpu(id).saturating_sub(base);
            if used >= limit {
                self.signal_exec(id, SIGKILL, Some(Termination::CpuLimit));
            }
        }
    }

    /// CPU time of every process exec `id` started (see `Process::exec`), alive,
    /// zombie or gone.
    pub(super) fn exec_cpu(&self, id: u32) -> Duration {
        let mut total = self
            .live
            .as_ref()
            .and_then(|l| l.chans.get(&id))
            .map_or(Duration::ZERO, |c| c.cpu_gone);
        for pid in self.pids() {
            let Some(p) = self.proc_ref(pid) else {
                continue;
            };
            if p.exec != id {
                continue;
            }
            total += p.cpu_dead;
            for t in &p.threads {
                total += self.task_ref(*t).map_or(Duration::ZERO, |t| t.cpu);
            }
        }
        total
    }

    /// A process is gone (reaped): its CPU time stays its exec's.
    pub(crate) fn live_process_gone(&mut self, p: &Process) {
        if p.exec == 0 {
            return;
        }
        if let Some(c) = self.live.as_mut().and_then(|l| l.chans.get_mut(&p.exec)) {
            c.cpu_gone += p.cpu_dead;
        }
    }

    /// The stdin of channel `chan` (0: the run's); `None` once its exec ended.
    pub(crate) fn input_of(&mut self, chan: u32) -> Option<&mut Input> {
        if chan == 0 {
            return Some(&mut self.input);
        }
        self.live
            .as_mut()
            .and_then(|l| l.chans.get_mut(&chan))
            .map(|c| &mut c.input)
    }

    /// [`Kernel::input_of`], to look at.
    pub(crate) fn input_ref(&self, chan: u32) -> Option<&Input> {
        if chan == 0 {
            return Some(&self.input);
        }
        self.live
            .as_ref()
            .and_then(|l| l.chans.get(&chan))
            .map(|c| &c.input)
    }

    /// Whether `len` bytes written to the output of channel `chan` (0: a run's, else an
    /// exec's) stay within its output limit.
    pub(crate) fn output_fits(&self, chan: u32, len: u64) -> bool {
        if chan == 0 {
            return self.out.fits(len);
        }
        self.live
            .as_ref()
            .and_then(|l| l.chans.get(&chan))
            .is_some_and(|c| c.output.fits(len))
    }

    /// Output of exec channel `chan`; past its output limit the exec ends
    /// (`output_limit`), and after its end the bytes go nowhere.
    pub(crate) fn live_output(&mut self, chan: u32, stream: StreamKind, data: &[u8]) {
        let over = match self.live.as_mut().and_then(|l| l.chans.get_mut(&chan)) {
            Some(c) => c.output.write(stream, data).is_err(),
            None => false,
        };
        if over {
            self.signal_exec(chan, SIGKILL, Some(Termination::OutputLimit));
        }
    }

    /// A process ended: when it leads an exec, the exec ends with its status.
    pub(crate) fn live_exited(&mut self, pid: Tid, status: ExitStatus, cpu: Duration) {
        let peak = self.mm.mem.peak_bytes();
        let Some(id) = self.live.as_ref().and_then(|l| l.by_pid.get(&pid).copied()) else {
            return;
        };
        // What it waited for, and what it started and did not.
        let cpu = cpu.max(self.exec_cpu(id));
        let Some(live) = self.live.as_mut() else {
            return;
        };
        live.by_pid.remove(&pid);
        let Some(mut c) = live.chans.remove(&id) else {
            return;
        };
        if let Some(t) = c.tty.take() {
            self.tty_hangup(&t);
        }
        c.output.close();
        let end = ExecEnd {
            status,
            why: c.why,
            cpu: cpu.saturating_sub(c.cpu_base),
            stdout: std::mem::take(&mut c.output.stdout),
            stderr: std::mem::take(&mut c.output.stderr),
            peak,
        };
        // Before the end is told: the caller destroys the sandbox once it has it.
        if let Some((space, shared)) = c.warm.take() {
            if let Some(pt) = self.mm.tables_of(space) {
                shared.record(&mut self.mm.mem, pt);
            }
        }
        if let Some(done) = c.done.take() {
            let _ = done.send(end);
        }
    }

    /// A limit stopped the current process (memory, pids, output of a run channel):
    /// in a live sandbox only that process ends (its exec reports the limit, as the
    /// OOM killer would end one process of a container). True when handled.
    pub(crate) fn live_recover(&mut self, stop: &Stop) -> bool {
        let why = match stop {
            Stop::MemoryLimit => Termination::MemoryLimit,
            Stop::PidsLimit => Termination::PidsLimit,
            Stop::OutputLimit => Termination::OutputLimit,
            _ => return false,
        };
        let pid = self.proc.pid;
        if pid == INIT_PID {
            return false;
        }
        // The exec whose group the process is in learns why (when it is its leader
        // or a member of its group).
        let pgid = self.proc.pgid;
        if let Some(l) = self.live.as_mut() {
            for c in l.chans.values_mut() {
                if (c.pid == pid || c.pid == pgid) && c.why.is_none() {
                    c.why = Some(why);
                }
            }
        }
        self.kill_process(pid, ExitStatus::Signal(SIGKILL));
        true
    }

    /// Ends every exec (the sandbox ends): each reports a kill.
    pub(crate) fn live_end(&mut self) {
        if let Some(l) = self.live.as_mut() {
            for (_, mut c) in l.chans.drain() {
                c.output.close();
                if let Some(done) = c.done.take() {
                    let _ = done.send(ExecEnd {
                        status: ExitStatus::Signal(SIGKILL),
                        why: Some(c.why.unwrap_or(Termination::Killed)),
                        cpu: Duration::ZERO,
                        stdout: std::mem::take(&mut c.output.stdout),
                        stderr: std::mem::take(&mut c.output.stderr),
                        peak: 0,
                    });
                }
            }
            l.handles.clear();
        }
    }
}

/// An exec command without its `started` reply.
#[derive(Debug)]
struct ExecRest {
    id: u32,
    candidates: Vec<String>,
    argv: Vec<String>,
    env: Vec<Vec<u8>>,
    cwd: String,
    input: Input,
    output: Output,
    cpu: Option<Duration>,
    tty: Option<sandbox_core::TtySize>,
    done: oneshot::Sender<ExecEnd>,
}

fn split_started(e: ExecCmd) -> (oneshot::Sender<Result<u32, LiveError>>, ExecRest) {
    (
        e.started,
        ExecRest {
            id: e.id,
            candidates: e.candidates,
            argv: e.argv,
            env: e.env,
            cwd: e.cwd,
            input: e.input,
            output: e.output,
            cpu: e.cpu,
            tty: e.tty,
            done: e.done,
        },
    )
}

/// A window size in the guest's terms.
fn winsize(s: sandbox_core::TtySize) -> crate::abi::Winsize {
    crate::abi::Winsize {
        ws_row: s.rows,
        ws_col: s.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Kernel {
    /// A terminal for exec `id`, whose leader `pid` leads its session: its
    /// `/dev/pts/N` node, and where that is.
    fn new_tty(
        &mut self,
        id: u32,
        pid: Tid,
        size: sandbox_core::TtySize,
    ) -> Result<(Rc<Tty>, Location), LiveError> {
        let index = self.free_pts();
        let path = format!("/dev/pts/{index}");
        self.vfs.add_dev(&path, crate::vfs::DevKind::Pts(index));
        let root = self.vfs.root();
        let loc = self
            .vfs
            .resolve(&root, path.as_bytes(), true)
            .map_err(|err| {
                LiveError::Exec(SpawnError::Setup {
                    step: format!("making the exec's terminal {path}"),
                    source: std::io::Error::from_raw_os_error(err.0),
                })
            })?;
        let tty = Tty::new(index, id, winsize(size), pid);
        self.ttys.push(Rc::clone(&tty));
        Ok((tty, loc))
    }
}

fn no_memory() -> LiveError {
    LiveError::Limit {
        limit: "memory",
        value: "the sandbox's guest memory".into(),
        message: "no memory left for the exec's address space".into(),
    }
}

fn load_error(program: &str, e: LoadError) -> LiveError {
    match e {
        LoadError::NotFound => LiveError::Exec(SpawnError::ProgramNotFound(program.to_string())),
        LoadError::NotExecutable {
            path,
            reason,
            errno,
        } => LiveError::Exec(SpawnError::NotExecutable {
            program: path,
            source: std::io::Error::new(std::io::Error::from_raw_os_error(errno).kind(), reason),
        }),
        LoadError::NoMemory => no_memory(),
    }
}
