//! Execs in a live container: the request's memfd and descriptors go to init, which
//! forks the exec's process inside the sandbox; here, its supervision: output (streamed
//! and captured), stdin, limits (wall time without the paused time, output, CPU), and
//! the outcome, in the same shape as a run's.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sandbox_core::{
    ExecRequest, Execution, Isolation, KillHandle, LiveError, LiveState, Outcome, OutputChunk,
    OutputStream, RunError, SeccompAction, SpawnError, Stdin, StdinWriter, StreamKind, Termination,
    TtySize,
};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};

use super::files::PtyMaster;
use super::life::{Exited, Shared};
use super::sock;
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
struct ExecCtl {
    id: u64,
    /// A run: killing the exec kills the whole sandbox at once.
    sole: bool,
    shared: Weak<Shared>,
    reason: Mutex<Option<Termination>>,
    done: AtomicBool,
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
    fn kill(&self, reason: Termination) {
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

    fn reason(&self) -> Option<Termination> {
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
        if !(1..=64).contains(&signal) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{signal} is not a signal number"),
            ));
        }
        self.ctl.signal(signal, false)
    }
    fn resize(&self, size: TtySize) -> Result<(), std::io::Error> {
        match &self.pty {
            Some(p) => p.resize(size),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "this exec has no terminal (start it with a tty)",
            )),
        }
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
        let mk = || pipe().map_err(|e| io_failed("creating the exec's pipes", e));
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
    let unregister = || {
        let mut l = s.lock();
        if l.execs.remove(&id).is_some() {
            l.running = l.running.saturating_sub(1);
        }
    };
    let mut fds = vec![image.as_raw_fd(), chan_child.as_raw_fd()];
    fds.extend(child_ends.iter().map(|f| f.as_raw_fd()));
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
    drop((image, chan_child, child_ends));

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
    });
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = oneshot::channel();
    let mut ends = host_ends.into_iter();
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
                pipe::Receiver::from_owned_fd(f)
                    .map_err(|e| io_failed("reading the exec's output", e))
            };
            (
                match stdin_w {
                    Some(w) => Input::Pipe(
                        pipe::Sender::from_owned_fd(w)
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
        _owner: match owner {
            Owner::Run { .. } => Some(s.clone()),
            Owner::Sandbox => None,
        },
    })
}

fn cgroup_stats(s: &Shared) -> crate::cgroup::Stats {
    s.guard
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|g| g.cgroup.as_ref().map(|c| c.stats()))
        .unwrap_or_default()
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
                tokio::spawn(async move {
                    if let Some(b) = bytes {
                        let _ = m.write_all(&b).await;
                    } else if let Some(mut rx) = rx {
                        while let Some(chunk) = rx.recv().await {
                            if m.write_all(&chunk).await.is_err() {
                                break;
                            }
                        }
                    }
                });
            }
        }
        writer
    }
}

enum Streams {
    Pipes(pipe::Receiver, pipe::Receiver),
    Pty(Arc<PtyMaster>),
}

struct Limits {
    wall: Option<Duration>,
    cpu: Option<Duration>,
    output: Option<u64>,
}

enum Holder {
    Weak(Weak<Shared>),
    Strong(Arc<Shared>),
}

impl Holder {
    fn get(&self) -> Option<Arc<Shared>> {
        match self {
            Holder::Weak(w) => w.upgrade(),
            Holder::Strong(s) => Some(s.clone()),
        }
    }
}

struct Supervision {
    decision: sandbox_core::Decision,
    enforcement: sandbox_core::EnforcementReport,
    seccomp_action: SeccompAction,
    shared: Holder,
    ctl: Arc<ExecCtl>,
    started: Instant,
    sole: bool,
    paused_base: Duration,
    limits: Limits,
    before: crate::cgroup::Stats,
}

struct Capture {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    total: u64,
    limit: Option<u64>,
}

impl Capture {
    fn add(&mut self, stream: StreamKind, data: &[u8]) -> bool {
        self.total += data.len() as u64;
        let room = self.limit.map_or(usize::MAX, |l| {
            let used = (self.stdout.len() + self.stderr.len()) as u64;
            l.saturating_sub(used) as usize
        });
        let keep = &data[..data.len().min(room)];
        match stream {
            StreamKind::Stdout => self.stdout.extend_from_slice(keep),
            StreamKind::Stderr => self.stderr.extend_from_slice(keep),
        }
        self.limit.is_some_and(|l| self.total > l)
    }
}

/// How often a run's cgroup counters are read while a CPU or pids limit is set.
const POLL: Duration = Duration::from_millis(20);

impl Supervision {
    fn paused_since_start(&self) -> Duration {
        match self.shared.get() {
            Some(s) if !self.sole => s.paused_total().saturating_sub(self.paused_base),
            _ => Duration::ZERO,
        }
    }

    /// Sleeps until the exec has run `limit` of wall time, paused time not counted.
    async fn wall_timer(&self, limit: Duration) {
        let mut paused_rx = self.shared.get().map(|s| s.paused.subscribe());
        loop {
            if let Some(rx) = paused_rx.as_mut() {
                if *rx.borrow_and_update() {
                    if rx.changed().await.is_err() {
                        paused_rx = None;
                    }
                    continue;
                }
            }
            let active = self
                .started
                .elapsed()
                .saturating_sub(self.paused_since_start());
            if active >= limit {
                return;
            }
            let wait = tokio::time::sleep(limit - active);
            match paused_rx.as_mut() {
                Some(rx) => {
                    tokio::select! {
                        _ = wait => {}
                        r = rx.changed() => if r.is_err() { paused_rx = None },
                    }
                }
                None => wait.await,
            }
        }
    }

    async fn run(
        self,
        streams: Streams,
        mut exit_rx: oneshot::Receiver<Exited>,
        out: mpsc::UnboundedSender<OutputChunk>,
    ) -> Result<Outcome, RunError> {
        let mut cap = Capture {
            stdout: Vec::new(),
            stderr: Vec::new(),
            total: 0,
            limit: self.limits.output,
        };
        let ctl = self.ctl.clone();
        let forward = |cap: &mut Capture, stream: StreamKind, data: &[u8]| {
            if !out.is_closed() {
                let _ = out.send(OutputChunk {
                    stream,
                    data: data.to_vec(),
                });
            }
            if cap.add(stream, data) {
                ctl.kill(Termination::OutputLimit);
            }
        };
        let (mut stdout, mut stderr, pty) = match streams {
            Streams::Pipes(o, e) => (Some(o), Some(e), None),
            Streams::Pty(m) => (None, None, Some(m)),
        };
        let (mut out_open, mut err_open) = (true, stderr.is_some());
        let mut exited: Option<Option<Exited>> = None;
        let mut ended_at = None;
        let poll_needed = self.sole
            && (self.limits.cpu.is_some()
                || self
                    .shared
                    .get()
                    .is_some_and(|s| s.plan.limits.pids.is_some()));
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut obuf, mut ebuf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
        let timer = self.limits.wall.map(|l| self.wall_timer(l));
        tokio::pin!(timer);
        let mut timer_done = timer.is_none();
        let mut destroyed = false;
        loop {
            if exited.is_some() {
                if !self.sole {
                    break;
                }
                if !destroyed {
                    // A run: the workload is the sandbox; what it left dies with it
                    // (init's death empties its PID namespace), closing the output.
                    destroyed = true;
                    if let Some(s) = self.shared.get() {
                        s.kill_init();
                    }
                }
                if !out_open && !err_open {
                    break;
                }
            }
            tokio::select! {
                r = read_stream(stdout.as_mut(), pty.as_deref(), &mut obuf), if out_open => match r {
                    Ok(0) | Err(_) => out_open = false,
                    Ok(n) => forward(&mut cap, StreamKind::Stdout, &obuf[..n]),
                },
                r = read_stream(stderr.as_mut(), None, &mut ebuf), if err_open => match r {
                    Ok(0) | Err(_) => err_open = false,
                    Ok(n) => forward(&mut cap, StreamKind::Stderr, &ebuf[..n]),
                },
                r = &mut exit_rx, if exited.is_none() => {
                    exited = Some(r.ok());
                    ended_at = Some(Instant::now());
                    self.ctl.done.store(true, Ordering::Release);
                },
                _ = async { if let Some(t) = timer.as_mut().as_pin_mut() { t.await } }, if !timer_done && exited.is_none() => {
                    timer_done = true;
                    self.ctl.kill(Termination::Timeout);
                },
                _ = tick.tick(), if poll_needed && exited.is_none() => {
                    if let Some(s) = self.shared.get() {
                        let st = cgroup_stats(&s);
                        if st.pids_max_hits > 0 {
                            self.ctl.kill(Termination::PidsLimit);
                        }
                        if let (Some(limit), Some(used)) = (self.limits.cpu, st.cpu_ns) {
                            if used >= limit.as_nanos() as u64 {
                                self.ctl.kill(Termination::CpuLimit);
                            }
                        }
                    }
                },
            }
        }
        // A live exec's output ends with its process: what is in the pipes now is its
        // last output; background processes it left keep running but are not read.
        if !self.sole {
            if let Some(o) = stdout.as_mut() {
                drain(o, StreamKind::Stdout, &mut obuf, &mut cap, &forward);
            }
            if let Some(e) = stderr.as_mut() {
                drain(e, StreamKind::Stderr, &mut ebuf, &mut cap, &forward);
            }
            if let Some(m) = &pty {
                while let Ok(n) = m.try_read(&mut obuf) {
                    if n == 0 {
                        break;
                    }
                    forward(&mut cap, StreamKind::Stdout, &obuf[..n]);
                }
            }
        }
        let exit = exited.flatten();
        let after = self
            .shared
            .get()
            .map(|s| cgroup_stats(&s))
            .unwrap_or_default();
        if let Some(s) = self.shared.get() {
            {
                let mut l = s.lock();
                l.running = l.running.saturating_sub(1);
            }
            s.touch();
        }
        let wall_time = ended_at
            .unwrap_or_else(Instant::now)
            .duration_since(self.started)
            .saturating_sub(self.paused_since_start());
        Ok(self.outcome(exit, cap, wall_time, after))
    }

    fn outcome(
        &self,
        exit: Option<Exited>,
        cap: Capture,
        wall_time: Duration,
        after: crate::cgroup::Stats,
    ) -> Outcome {
        let seccomp_action = self.seccomp_action;
        let (mut termination, mut exit_code, mut signal) = match exit {
            Some(e) => decode(e.wait_status),
            None => (Termination::Killed, None, Some(libc::SIGKILL)),
        };
        let oom = after.oom_kills > self.before.oom_kills;
        let pids_hit = after.pids_max_hits > self.before.pids_max_hits;
        let rusage_cpu = exit.map(|e| Duration::from_micros(e.cpu_us));
        let cpu_time = if self.sole {
            after.cpu_ns.map(Duration::from_nanos).or(rusage_cpu)
        } else {
            rusage_cpu
        }
        .unwrap_or_default();
        if let Some(reason) = self.ctl.reason() {
            termination = reason;
            if reason != Termination::Killed || exit.is_none() {
                exit_code = None;
                signal = Some(libc::SIGKILL);
            }
        } else if oom && signal == Some(libc::SIGKILL) {
            termination = Termination::MemoryLimit;
        } else if self.sole && pids_hit {
            termination = Termination::PidsLimit;
        } else if signal == Some(libc::SIGSYS) && seccomp_action == SeccompAction::Kill {
            termination = Termination::PolicyViolation;
        } else if signal == Some(libc::SIGXCPU)
            || (signal == Some(libc::SIGKILL) && self.limits.cpu.is_some_and(|l| cpu_time >= l))
        {
            termination = Termination::CpuLimit;
        }
        let peak_memory_bytes = if self.sole { after.peak_memory } else { None }
            .or(exit.map(|e| e.max_rss_kib * 1024))
            .unwrap_or(0);
        Outcome {
            isolation: Isolation::Container,
            termination,
            exit_code,
            signal,
            stdout: cap.stdout,
            stderr: cap.stderr,
            wall_time,
            cpu_time,
            peak_memory_bytes,
            decision: self.decision.clone(),
            enforcement: self.enforcement.clone(),
            unimplemented_syscalls: Default::default(),
        }
    }
}

async fn read_stream(
    pipe: Option<&mut pipe::Receiver>,
    pty: Option<&PtyMaster>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match (pipe, pty) {
        (Some(p), _) => p.read(buf).await,
        (None, Some(m)) => m.read(buf).await,
        (None, None) => std::future::pending().await,
    }
}

fn drain(
    p: &mut pipe::Receiver,
    stream: StreamKind,
    buf: &mut [u8],
    cap: &mut Capture,
    forward: &dyn Fn(&mut Capture, StreamKind, &[u8]),
) {
    // Straight from the (non-blocking) pipe: tokio's own `try_read` trusts its cached
    // readiness and could report nothing while the last output sits in the pipe.
    loop {
        // SAFETY: read writes at most buf.len() bytes into `buf`; the pipe is ours.
        let n = unsafe { libc::read(p.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        forward(cap, stream, &buf[..n as usize]);
    }
}

fn decode(status: i32) -> (Termination, Option<i32>, Option<i32>) {
    if libc::WIFEXITED(status) {
        (Termination::Exited, Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (Termination::Signaled, None, Some(libc::WTERMSIG(status)))
    } else {
        (Termination::Signaled, None, Some(libc::SIGKILL))
    }
}
