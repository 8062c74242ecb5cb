//! Execs in a live container: the request's memfd and descriptors go to init, which
//! forks the exec's process inside the sandbox; here, its supervision: output (streamed
//! and captured), stdin, limits (wall time without the paused time, output, CPU), and
//! the outcome, in the same shape as a run's.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use async_trait::async_trait;
use sandbox_core::{
    ControlHandle, ExecRequest, Execution, Isolation, KillHandle, LiveError, LiveState, Outcome,
    OutputStream, RunError, SpawnError, Stdin, StdinWriter, Termination, TtySize,
};
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};

use super::files::PtyMaster;
use super::life::Shared;
use super::sock;
use super::supervise::{cgroup_stats, Holder, Limits, Streams, Supervision};
use super::wire::{self, Msg};
use crate::child::{ErrorRecord, Stage};

/// Who owns the sandbox an exec runs in.
#[derive(Debug, Clone)]
pub(crate) enum Owner {
    /// A live sandbox's handles: the exec does not keep it alive.
    Sandbox,
    /// A one-shot run: the sandbox was made for this exec, lives as long as it, and its
    /// cgroup's counters are the exec's own. `started` is when the run began; `program`
    /// is searched for instead of argv[0] (a run may set argv[0] apart).
    Run { started: Instant, program: String },
}

/// Ends or signals one exec through init (never by host pid).
#[derive(Debug)]
pub(crate) struct ExecCtl {
    id: u64,
    /// A run: killing the exec kills the whole sandbox at once.
    sole: bool,
    shared: Weak<Shared>,
    reason: Mutex<Option<Termination>>,
    pub(crate) done: AtomicBool,
    /// The output is only streamed: the outcome keeps no copy of it.
    pub(crate) uncaptured: AtomicBool,
}

impl ExecCtl {
    fn signal(&self, sig: i32, group: bool) -> std::io::Result<()> {
        if self.done.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(s) = self.shared.upgrade() else {
            return Ok(());
        };
        s.send(
            Msg {
                kind: wire::MSG_SIGNAL,
                a: sig as u32,
                id: self.id,
                b: u64::from(group),
                c: 0,
            },
            &[],
        )
    }

    /// Kills the exec's process group, remembering the first reason.
    pub(crate) fn kill(&self, reason: Termination) {
        {
            let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
            if r.is_none() {
                *r = Some(reason);
            }
        }
        if self.sole {
            if let Some(s) = self.shared.upgrade() {
                s.kill_init();
            }
        } else {
            let _ = self.signal(libc::SIGKILL, true);
        }
    }

    pub(crate) fn reason(&self) -> Option<Termination> {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The caller's handle on an exec.
#[derive(Debug)]
pub(crate) struct LiveExecution {
    stdin: Option<StdinWriter>,
    output: Option<OutputStream>,
    ctl: Arc<ExecCtl>,
    outcome: Option<oneshot::Receiver<Result<Outcome, RunError>>>,
    pty: Option<Arc<PtyMaster>>,
    /// A one-shot run owns its sandbox.
    _owner: Option<Arc<Shared>>,
    /// The sandbox's exposed ports and its egress decisions (network `egress`).
    exposed: Vec<sandbox_core::network::ExposedPort>,
    events: Option<sandbox_egress::Events>,
    /// The inode of its stdin pipe (warm templates: `park.rs`).
    pub(crate) stdin_ino: Option<u64>,
}

impl LiveExecution {
    /// True once its outcome is decided.
    pub(crate) fn ended(&self) -> bool {
        self.ctl.done.load(Ordering::Acquire)
    }
}

impl Drop for LiveExecution {
    fn drop(&mut self) {
        // An exec dropped before it ended is killed (a run: its whole sandbox).
        self.ctl.kill(Termination::Killed);
    }
}

#[async_trait]
impl Execution for LiveExecution {
    fn isolation(&self) -> Isolation {
        Isolation::Container
    }
    fn take_stdin(&mut self) -> Option<StdinWriter> {
        self.stdin.take()
    }
    fn take_output(&mut self) -> Option<OutputStream> {
        self.output.take()
    }
    fn take_output_uncaptured(&mut self) -> Option<OutputStream> {
        self.ctl.uncaptured.store(true, Ordering::Release);
        self.output.take()
    }
    fn exposed_ports(&self) -> Vec<sandbox_core::network::ExposedPort> {
        self.exposed.clone()
    }
    fn network_events(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<sandbox_core::network::NetworkEvent>> {
        self.events.as_ref().map(sandbox_egress::Events::subscribe)
    }
    fn kill_handle(&self) -> KillHandle {
        let k = Arc::downgrade(&self.ctl);
        KillHandle::new(move || {
            if let Some(k) = k.upgrade() {
                k.kill(Termination::Killed)
            }
        })
    }
    async fn wait(&mut self) -> Result<Outcome, RunError> {
        self.output = None;
        let rx = self.outcome.take().ok_or(RunError::AlreadyWaited)?;
        rx.await.unwrap_or_else(|_| {
            Err(RunError::Supervision(
                "supervising".into(),
                std::io::Error::other("supervisor stopped"),
            ))
        })
    }
    fn signal(&self, signal: i32) -> Result<(), std::io::Error> {
        signal_exec(&self.ctl, signal)
    }
    fn resize(&self, size: TtySize) -> Result<(), std::io::Error> {
        resize_exec(self.pty.as_deref(), size)
    }
    fn control_handle(&self) -> Option<ControlHandle> {
        let (ctl, pty) = (self.ctl.clone(), self.pty.clone());
        Some(ControlHandle::new(
            move |sig| signal_exec(&ctl, sig),
            move |size| resize_exec(pty.as_deref(), size),
        ))
    }
}

fn signal_exec(ctl: &ExecCtl, signal: i32) -> std::io::Result<()> {
    sandbox_core::check_signal(signal)?;
    ctl.signal(signal, false)
}

fn resize_exec(pty: Option<&PtyMaster>, size: TtySize) -> std::io::Result<()> {
    match pty {
        Some(p) => p.resize(size),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this exec has no terminal (start it with a tty)",
        )),
    }
}

fn invalid(msg: impl Into<String>) -> LiveError {
    LiveError::Invalid(msg.into())
}

fn io_failed(what: &str, e: std::io::Error) -> LiveError {
    LiveError::Failed(what.into(), e)
}

fn owned(fd: i32) -> OwnedFd {
    // SAFETY: the caller passes a descriptor it just created and owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((owned(fds[0]), owned(fds[1])))
}

/// Makes the host's end of a pipe made by [`pipe`] non-blocking: its status flags are
/// only its access mode, so one `F_SETFL` does it (tokio's checked constructors would
/// look at the descriptor three more times for what is known here).
fn nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETFL on a descriptor this function borrows; no memory is passed.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn memfd(data: &[u8]) -> std::io::Result<OwnedFd> {
    // SAFETY: memfd_create with a NUL-terminated name returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(c"hsb-exec".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut f = std::fs::File::from(owned(fd));
    std::io::Write::write_all(&mut f, data)?;
    Ok(OwnedFd::from(f))
}

/// What the request resolves to.
struct Prepared {
    argv0: String,
    candidates: Vec<String>,
    cwd: String,
    image: Vec<u8>,
}

fn prepare(s: &Shared, r: &ExecRequest, program: Option<&String>) -> Result<Prepared, LiveError> {
    let Some(argv0) = program.or(r.argv.first()) else {
        return Err(invalid("an exec needs a program: argv is empty"));
    };
    if argv0.is_empty() {
        return Err(invalid("an exec needs a program: argv[0] is empty"));
    }
    if r.argv.iter().any(|a| a.contains('\0')) {
        return Err(invalid("arguments cannot contain NUL bytes"));
    }
    let mut env: Vec<(String, String)> = s.plan.env.clone();
    for (k, v) in &r.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(invalid(format!(
                "environment variable {k:?}: names cannot be empty or hold `=` or NUL, values cannot hold NUL"
            )));
        }
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    let cwd = r.cwd.clone().unwrap_or_else(|| s.plan.cwd.clone());
    if !cwd.starts_with('/') || cwd.contains('\0') {
        return Err(invalid(format!(
            "working directory {cwd:?} must be an absolute path in the sandbox"
        )));
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(sandbox_core::DEFAULT_PATH);
    let candidates: Vec<String> = if argv0.contains('/') {
        vec![if argv0.starts_with('/') {
            argv0.clone()
        } else {
            format!("{}/{}", cwd.trim_end_matches('/'), argv0)
        }]
    } else {
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{}", d.trim_end_matches('/'), argv0))
            .collect()
    };
    let limits = &r.limits;
    let cpu = limits.cpu_time.or(s.plan.limits.cpu_time).map(|d| {
        let secs = d.as_secs_f64().ceil().max(1.0) as u64;
        (secs, secs + 1)
    });
    let image = wire::encode_exec(
        cwd.as_bytes(),
        &candidates
            .iter()
            .map(|c| c.as_bytes().to_vec())
            .collect::<Vec<_>>(),
        &r.argv
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect::<Vec<_>>(),
        &env.iter()
            .map(|(k, v)| format!("{k}={v}").into_bytes())
            .collect::<Vec<_>>(),
        r.tty.map(|t| (t.rows, t.cols)),
        cpu,
    );
    Ok(Prepared {
        argv0: argv0.clone(),
        candidates,
        cwd,
        image,
    })
}

fn describe(p: &Prepared, rec: ErrorRecord) -> LiveError {
    let errno = std::io::Error::from_raw_os_error(rec.errno);
    let program = |i: u32| {
        p.candidates
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| p.argv0.clone())
    };
    let setup = |step: String, source| SpawnError::Setup { step, source };
    LiveError::Exec(match Stage::from_u32(rec.stage) {
        Some(Stage::Exec) if rec.errno == libc::ENOENT => SpawnError::ProgramNotFound(p.argv0.clone()),
        Some(Stage::Interpreter) => SpawnError::NotExecutable {
            program: program(rec.index),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "it exists, but its interpreter (the ELF loader or the #! program) is not in the sandbox; mount it",
            ),
        },
        Some(Stage::Exec) => SpawnError::NotExecutable {
            program: program(rec.index),
            source: errno,
        },
        Some(Stage::Cwd) => setup(format!("entering the working directory {}", p.cwd), errno),
        Some(Stage::Cgroup) => setup("joining the exec's cgroup (its CPU time limit)".into(), errno),
        Some(Stage::Fork) if rec.errno == libc::EAGAIN => setup(
            format!("starting the exec ({} execs at once at most, or the pids limit)", wire::MAX_EXECS),
            errno,
        ),
        Some(stage) => setup(format!("{stage:?}").to_lowercase(), errno),
        None => setup("unknown".into(), errno),
    })
}

/// Starts an exec.
pub(crate) async fn start(
    s: &Arc<Shared>,
    request: ExecRequest,
    owner: Owner,
) -> Result<LiveExecution, LiveError> {
    s.check_running("exec")?;
    let p = prepare(
        s,
        &request,
        match &owner {
            Owner::Run { program, .. } => Some(program),
            Owner::Sandbox => None,
        },
    )?;
    let image = memfd(&p.image).map_err(|e| io_failed("preparing the exec", e))?;
    let (chan_host, chan_child) = sock::seqpacket_pair()
        .map(|(a, b)| (owned(a), owned(b)))
        .map_err(|e| io_failed("preparing the exec", std::io::Error::from_raw_os_error(e)))?;
    let tty = request.tty.is_some();
    let (mut host_ends, mut child_ends) = (Vec::new(), Vec::new());
    let mut flags = 0;
    if tty {
        flags |= wire::EXEC_TTY;
    } else {
        // The workload owns its pipes, as a shell's child owns the ones its shell made:
        // reopening one (`echo > /dev/stdout`, `cat /dev/stdin`, /proc/self/fd/N)
        // checks the pipe's owner and mode (0600), which as root would be host root,
        // an id the sandbox does not have.
        let mk = || {
            let (r, w) = pipe().map_err(|e| io_failed("creating the exec's pipes", e))?;
            if let Some((uid, gid)) = s.workload_host_ids {
                std::os::unix::fs::fchown(&r, Some(uid), Some(gid))
                    .map_err(|e| io_failed("giving the exec's pipes to the workload", e))?;
            }
            Ok((r, w))
        };
        if !matches!(request.stdin, Stdin::Null) {
            flags |= wire::EXEC_STDIN;
            let (r, w) = mk()?;
            child_ends.push(r);
            host_ends.push(w);
        }
        for _ in 0..2 {
            let (r, w) = mk()?;
            child_ends.push(w);
            host_ends.push(r);
        }
    }
    let id = s.next_id.fetch_add(1, Ordering::Relaxed);
    // A live exec with a CPU time limit gets a cgroup of its own, so that the limit
    // counts every process it starts (RLIMIT_CPU, below it, counts each one alone).
    // A run's exec is its sandbox: the sandbox's cgroup counts it.
    let cpu_limit = request.limits.cpu_time.or(s.plan.limits.cpu_time);
    let mut exec_cgroup = None;
    let mut cgroup_procs = None;
    if cpu_limit.is_some() && matches!(owner, Owner::Sandbox) {
        let made = s
            .guard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|g| g.cgroup.as_ref().map(|c| c.exec_child(id)));
        if let Some(made) = made {
            if let Some((cg, procs)) =
                made.map_err(|e| io_failed("making the exec's cgroup (for its CPU time limit)", e))?
            {
                flags |= wire::EXEC_CGROUP;
                exec_cgroup = Some(cg);
                cgroup_procs = Some(procs);
            }
        }
    }
    let (exit_tx, exit_rx) = oneshot::channel();
    {
        let mut l = s.lock();
        if l.state != LiveState::Running {
            return Err(LiveError::WrongState {
                state: l.state,
                operation: "exec",
                wanted: "running",
            });
        }
        l.execs.insert(id, exit_tx);
        l.running += 1;
    }
    // An exec that fails to start was counted as running: it stops counting once,
    // whether or not init's report of its exit already took its entry (a program
    // not found exits at once, and the two race).
    let unregister = || {
        let mut l = s.lock();
        l.execs.remove(&id);
        l.running = l.running.saturating_sub(1);
    };
    let mut fds = vec![image.as_raw_fd(), chan_child.as_raw_fd()];
    fds.extend(child_ends.iter().map(|f| f.as_raw_fd()));
    fds.extend(cgroup_procs.as_ref().map(|f| f.as_raw_fd()));
    let started = Instant::now();
    let paused_base = s.paused_total();
    if let Err(e) = s.send(
        Msg {
            kind: wire::MSG_EXEC,
            a: flags,
            id,
            b: 0,
            c: 0,
        },
        &fds,
    ) {
        unregister();
        return Err(io_failed("sending the exec to the sandbox's init", e));
    }
    drop((image, chan_child, child_ends, cgroup_procs));

    // The channel ends when the program is exec'd (close-on-exec), or brings a failure.
    let mut pty = None;
    // SAFETY: an OwnedFd owns its descriptor and returns the same one for its life.
    let chan = unsafe { AsyncFd::register_with_interest(chan_host, tokio::io::Interest::READABLE) }
        .map_err(|e| io_failed("watching the exec", e.into_parts().1))?;
    loop {
        let mut guard = chan
            .readable()
            .await
            .map_err(|e| io_failed("watching the exec", e))?;
        let mut buf = [0u8; ErrorRecord::SIZE];
        let mut got = [-1; sock::MAX_FDS];
        let r = guard.try_io(|c| {
            sock::recv(c.as_raw_fd(), &mut buf, &mut got, libc::MSG_DONTWAIT)
                .map_err(std::io::Error::from_raw_os_error)
        });
        let (n, nfds) = match r {
            Err(_would_block) => continue,
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                unregister();
                return Err(io_failed("starting the exec", e));
            }
        };
        let received: Vec<OwnedFd> = got[..nfds].iter().map(|&f| owned(f)).collect();
        if n == 0 && nfds == 0 {
            break;
        }
        if n == 1 && buf[0] == wire::CHAN_PTY {
            if let Some(fd) = received.into_iter().next() {
                pty = Some(Arc::new(
                    PtyMaster::new(fd).map_err(|e| io_failed("taking the terminal", e))?,
                ));
            }
        } else if n == ErrorRecord::SIZE {
            unregister();
            return Err(describe(&p, ErrorRecord::from_bytes(&buf)));
        }
    }

    let ctl = Arc::new(ExecCtl {
        id,
        sole: matches!(owner, Owner::Run { .. }),
        shared: Arc::downgrade(s),
        reason: Mutex::new(None),
        done: AtomicBool::new(false),
        uncaptured: AtomicBool::new(false),
    });
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = oneshot::channel();
    let mut ends = host_ends.into_iter();
    let mut stdin_ino = None;
    let (input, streams) = match &pty {
        Some(m) => (Input::Pty(m.clone()), Streams::Pty(m.clone())),
        None => {
            let stdin_w = if flags & wire::EXEC_STDIN != 0 {
                ends.next()
            } else {
                None
            };
            let (Some(o), Some(e)) = (ends.next(), ends.next()) else {
                unregister();
                return Err(invalid("internal: missing output pipes"));
            };
            let rx = |f: OwnedFd| {
                nonblocking(&f)
                    .and_then(|()| pipe::Receiver::from_owned_fd_unchecked(f))
                    .map_err(|e| io_failed("reading the exec's output", e))
            };
            stdin_ino = stdin_w
                .as_ref()
                .and_then(|w| nix::sys::stat::fstat(w).ok())
                .map(|st| st.st_ino);
            (
                match stdin_w {
                    Some(w) => Input::Pipe(
                        nonblocking(&w)
                            .and_then(|()| pipe::Sender::from_owned_fd_unchecked(w))
                            .map_err(|e| io_failed("writing the exec's input", e))?,
                    ),
                    None => Input::None,
                },
                Streams::Pipes(rx(o)?, rx(e)?),
            )
        }
    };
    let writer = input.start(request.stdin.clone());
    let limits = Limits {
        wall: request.limits.wall_time.or(s.plan.limits.wall_time),
        cpu: request.limits.cpu_time.or(s.plan.limits.cpu_time),
        output: request.limits.output.or(s.plan.limits.output).map(|b| b.0),
    };
    let before = cgroup_stats(s);
    let sup = Supervision {
        decision: s.plan.decision.clone(),
        enforcement: s.enforcement.clone(),
        seccomp_action: s.plan.seccomp_action,
        shared: match owner {
            Owner::Sandbox => Holder::Weak(Arc::downgrade(s)),
            Owner::Run { .. } => Holder::Strong(s.clone()),
        },
        ctl: ctl.clone(),
        started: match &owner {
            Owner::Run { started, .. } => *started,
            Owner::Sandbox => started,
        },
        sole: matches!(owner, Owner::Run { .. }),
        paused_base,
        limits,
        before,
        exec_cgroup,
    };
    let sole = sup.sole.then(|| s.clone());
    tokio::spawn(async move {
        let r = sup.run(streams, exit_rx, out_tx).await;
        let _ = done_tx.send(r);
        // A run's sandbox goes with its exec: reaped and its cgroup removed once the
        // outcome is out.
        if let Some(s) = sole {
            s.destroy_async(sandbox_core::EndReason::Destroyed).await;
        }
    });
    Ok(LiveExecution {
        stdin: writer,
        output: Some(out_rx),
        ctl,
        outcome: Some(done_rx),
        pty,
        exposed: s.exposed.clone(),
        events: s.events.clone(),
        stdin_ino,
        _owner: match owner {
            Owner::Run { .. } => Some(s.clone()),
            Owner::Sandbox => None,
        },
    })
}

enum Input {
    None,
    Pipe(pipe::Sender),
    Pty(Arc<PtyMaster>),
}

impl Input {
    fn start(self, stdin: Stdin) -> Option<StdinWriter> {
        let (writer, rx) = match stdin {
            Stdin::Stream => {
                let (w, rx) = StdinWriter::channel();
                (Some(w), Some(rx))
            }
            _ => (None, None),
        };
        let bytes = match stdin {
            Stdin::Bytes(b) => Some(b),
            _ => None,
        };
        match self {
            Input::None => {}
            Input::Pipe(mut tx) => {
                tokio::spawn(async move {
                    if let Some(b) = bytes {
                        // EPIPE (the program never read it all) ends the copy quietly.
                        let _ = tx.write_all(&b).await;
                    } else if let Some(mut rx) = rx {
                        while let Some(chunk) = rx.recv().await {
                            if tx.write_all(&chunk).await.is_err() {
                                break;
                            }
                        }
                    }
                });
            }
            Input::Pty(m) => {
                // A terminal has no end of file of its own: the end of the host's input
                // (the bytes sent, the stream closed, or no stdin at all) is typed as ^D.
                tokio::spawn(async move {
                    let last = if let Some(b) = bytes {
                        if m.write_all(&b).await.is_err() {
                            return;
                        }
                        b.last().copied()
                    } else if let Some(mut rx) = rx {
                        let mut last = None;
                        while let Some(chunk) = rx.recv().await {
                            if m.write_all(&chunk).await.is_err() {
                                return;
                            }
                            last = chunk.last().copied().or(last);
                        }
                        last
                    } else {
                        None
                    };
                    let _ = m.end_of_input(last).await;
                });
            }
        }
        writer
    }
}
