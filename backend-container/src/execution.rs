//! A running container sandbox: supervision, output, limits, and the outcome.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sandbox_core::{
    Decision, EnforcementReport, Execution, Isolation, KillHandle, Limits, Outcome, OutputChunk,
    OutputStream, RunError, SeccompAction, StdinReceiver, StdinWriter, StreamKind, Termination,
};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};

use crate::cgroup::Cgroup;
use crate::child::StatusReport;

/// Kills the sandbox through its init's pidfd (no pid reuse race), once, remembering why.
#[derive(Debug)]
pub(crate) struct KillState {
    pidfd: OwnedFd,
    reason: Mutex<Option<Termination>>,
    finished: AtomicBool,
}

impl KillState {
    pub(crate) fn new(pidfd: OwnedFd) -> Self {
        KillState {
            pidfd,
            reason: Mutex::new(None),
            finished: AtomicBool::new(false),
        }
    }

    /// Kills every process of the sandbox (killing init tears down its PID namespace).
    pub(crate) fn kill(&self, reason: Termination) {
        if self.finished.load(Ordering::Acquire) {
            return;
        }
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason);
        }
        drop(r);
        self.signal();
    }

    fn signal(&self) {
        // SAFETY: pidfd_send_signal on a pidfd we own; a NULL siginfo is allowed.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }

    fn reason(&self) -> Option<Termination> {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reaps init (blocking; only called once it has exited or been killed).
    fn reap(&self) {
        // SAFETY: an all-zero siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: waitid(P_PIDFD) on our pidfd writes only into `info`. ECHILD means
            // someone else (a SIGCHLD handler of the host program) already reaped it.
            let r = unsafe {
                libc::waitid(
                    libc::P_PIDFD,
                    self.pidfd.as_raw_fd() as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::__WALL,
                )
            };
            if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
        self.finished.store(true, Ordering::Release);
    }
}

/// Kills and reaps the sandbox, and removes its cgroup, if the supervisor is dropped
/// before it finished (runtime shut down, caller gone): nothing is left behind.
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) kill: Arc<KillState>,
    pub(crate) cgroup: Option<Cgroup>,
    pub(crate) armed: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed {
            self.kill.kill(Termination::Killed);
            self.kill.reap();
        }
        if let Some(cg) = self.cgroup.as_mut() {
            cg.remove();
        }
    }
}

/// Everything the supervisor needs.
pub(crate) struct Supervised {
    pub(crate) guard: Guard,
    pub(crate) pidfd_watch: OwnedFd,
    pub(crate) status_r: OwnedFd,
    pub(crate) stdout_r: OwnedFd,
    pub(crate) stderr_r: OwnedFd,
    pub(crate) limits: Limits,
    pub(crate) seccomp_action: SeccompAction,
    pub(crate) decision: Decision,
    pub(crate) enforcement: EnforcementReport,
    pub(crate) started: Instant,
    pub(crate) sync_w: OwnedFd,
    /// Answers the workload's connect(2) calls while it runs.
    pub(crate) connects: crate::unotify::Supervisor,
    /// The egress broker (network `egress`), stopped when the sandbox ends.
    pub(crate) broker: Option<sandbox_egress::BrokerHandle>,
}

/// The Execution handed to the caller.
#[derive(Debug)]
pub(crate) struct ContainerExecution {
    exposed: Vec<sandbox_core::network::ExposedPort>,
    events: Option<sandbox_egress::Events>,
    stdin: Option<StdinWriter>,
    output: Option<OutputStream>,
    kill: Arc<KillState>,
    outcome: Option<oneshot::Receiver<Result<Outcome, RunError>>>,
}

impl Drop for ContainerExecution {
    fn drop(&mut self) {
        self.kill.kill(Termination::Killed);
    }
}

#[async_trait]
impl Execution for ContainerExecution {
    fn isolation(&self) -> Isolation {
        Isolation::Container
    }
    fn take_stdin(&mut self) -> Option<StdinWriter> {
        self.stdin.take()
    }
    fn take_output(&mut self) -> Option<OutputStream> {
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
        let k = Arc::downgrade(&self.kill);
        KillHandle::new(move || {
            if let Some(k) = k.upgrade() {
                k.kill(Termination::Killed)
            }
        })
    }
    async fn wait(&mut self) -> Result<Outcome, RunError> {
        // Output nobody asked to stream is only captured.
        self.output = None;
        let rx = self.outcome.take().ok_or(RunError::AlreadyWaited)?;
        rx.await.unwrap_or_else(|_| {
            Err(RunError::Supervision(
                "supervising".into(),
                std::io::Error::other("supervisor stopped"),
            ))
        })
    }
}

/// Starts supervising; returns the caller's handle.
pub(crate) fn start(s: Supervised, stdin: StdinPlan) -> std::io::Result<ContainerExecution> {
    let kill = s.guard.kill.clone();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = oneshot::channel();
    let writer = stdin.start()?;
    let exposed = s
        .broker
        .as_ref()
        .map(|b| b.exposed().to_vec())
        .unwrap_or_default();
    let events = s
        .broker
        .as_ref()
        .map(sandbox_egress::BrokerHandle::events_source);
    let stdout = pipe::Receiver::from_owned_fd(s.stdout_r.try_clone()?)?;
    let status = pipe::Receiver::from_owned_fd(s.status_r.try_clone()?)?;
    let stderr = pipe::Receiver::from_owned_fd(s.stderr_r.try_clone()?)?;
    // SAFETY: an OwnedFd owns its descriptor and returns the same one for its whole life.
    let watch = unsafe {
        AsyncFd::register_with_interest(s.pidfd_watch.try_clone()?, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts().1)?;
    tokio::spawn(async move {
        let r = supervise(
            s,
            Streams {
                stdout,
                stderr,
                status,
            },
            watch,
            out_tx,
        )
        .await;
        let _ = done_tx.send(r);
    });
    Ok(ContainerExecution {
        exposed,
        events,
        stdin: writer,
        output: Some(out_rx),
        kill,
        outcome: Some(done_rx),
    })
}

/// What to feed the workload's stdin.
pub(crate) enum StdinPlan {
    None,
    Bytes(OwnedFd, Vec<u8>),
    Stream(OwnedFd),
}

impl StdinPlan {
    fn start(self) -> std::io::Result<Option<StdinWriter>> {
        match self {
            StdinPlan::None => Ok(None),
            StdinPlan::Bytes(fd, data) => {
                let mut tx = pipe::Sender::from_owned_fd(fd)?;
                tokio::spawn(async move {
                    // EPIPE (the workload never read it all) ends the copy quietly.
                    let _ = tx.write_all(&data).await;
                });
                Ok(None)
            }
            StdinPlan::Stream(fd) => {
                let mut tx = pipe::Sender::from_owned_fd(fd)?;
                let (writer, mut rx): (StdinWriter, StdinReceiver) = StdinWriter::channel();
                tokio::spawn(async move {
                    while let Some(chunk) = rx.recv().await {
                        if tx.write_all(&chunk).await.is_err() {
                            break;
                        }
                    }
                });
                Ok(Some(writer))
            }
        }
    }
}

/// How often cgroup counters are read while a CPU or pids limit is set.
const POLL: Duration = Duration::from_millis(20);

struct Capture {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    total: u64,
    limit: Option<u64>,
}

impl Capture {
    /// Keeps what fits under the limit; true when the limit is exceeded.
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

/// The pipes the supervisor reads.
struct Streams {
    stdout: pipe::Receiver,
    stderr: pipe::Receiver,
    /// Init's status report: it arrives once every process but init is gone, before
    /// init itself (and its namespaces) are torn down.
    status: pipe::Receiver,
}

async fn supervise(
    s: Supervised,
    streams: Streams,
    watch: AsyncFd<OwnedFd>,
    out: mpsc::UnboundedSender<OutputChunk>,
) -> Result<Outcome, RunError> {
    let kill = s.guard.kill.clone();
    let mut cap = Capture {
        stdout: Vec::new(),
        stderr: Vec::new(),
        total: 0,
        limit: s.limits.output.map(|b| b.0),
    };
    let Streams {
        mut stdout,
        mut stderr,
        mut status,
    } = streams;
    let (mut out_open, mut err_open, mut exited) = (true, true, false);
    let mut sbuf = [0u8; StatusReport::SIZE];
    let (mut sgot, mut status_open) = (0usize, true);
    let deadline = s
        .limits
        .wall_time
        .map(|d| tokio::time::Instant::from_std(s.started + d));
    let poll_needed =
        s.guard.cgroup.is_some() && (s.limits.cpu_time.is_some() || s.limits.pids.is_some());
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut obuf, mut ebuf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut ended_at = None;
    let reported = |sgot: usize| sgot == StatusReport::SIZE;
    while out_open || err_open || !(exited || reported(sgot)) {
        tokio::select! {
            r = stdout.read(&mut obuf), if out_open => match r {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => forward(&kill, &mut cap, &out, StreamKind::Stdout, &obuf[..n]),
            },
            r = stderr.read(&mut ebuf), if err_open => match r {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => forward(&kill, &mut cap, &out, StreamKind::Stderr, &ebuf[..n]),
            },
            r = status.read(&mut sbuf[sgot..]), if status_open && !reported(sgot) && !exited => match r {
                Ok(0) | Err(_) => status_open = false,
                Ok(n) => {
                    sgot += n;
                    if reported(sgot) {
                        ended_at = Some(Instant::now());
                    }
                }
            },
            r = watch.readable(), if !exited => {
                if let Ok(mut g) = r { g.retain_ready(); }
                exited = true;
                ended_at = Some(Instant::now());
            },
            _ = sleep_until(deadline), if !exited && !reported(sgot) && deadline.is_some() => kill.kill(Termination::Timeout),
            _ = tick.tick(), if !exited && !reported(sgot) && poll_needed => {
                if let Some(cg) = &s.guard.cgroup {
                    let st = cg.stats();
                    if st.pids_max_hits > 0 {
                        kill.kill(Termination::PidsLimit);
                    }
                    if let (Some(limit), Some(used)) = (s.limits.cpu_time, st.cpu_ns) {
                        if used >= limit.as_nanos() as u64 {
                            kill.kill(Termination::CpuLimit);
                        }
                    }
                }
            },
        }
    }
    let wall_time = ended_at
        .unwrap_or_else(Instant::now)
        .duration_since(s.started);
    // The workload is gone: nothing is left to connect. (Killing it already woke any
    // connect in progress, whose peer was one of its sockets.)
    let mut connects = s.connects;
    connects.stop();
    let report = if reported(sgot) {
        Some(StatusReport::from_bytes(&sbuf))
    } else {
        read_report(&s.status_r)
    };
    // Every process but init is gone: the counters are final.
    let stats = s
        .guard
        .cgroup
        .as_ref()
        .map(|c| c.stats())
        .unwrap_or_default();
    let mut guard = s.guard;
    if exited {
        kill.reap();
        guard.armed = false;
        if let Some(cg) = guard.cgroup.as_mut() {
            cg.remove();
        }
    } else {
        // Init is tearing its namespaces down: reap it and remove the cgroup after the
        // outcome is out. Should the runtime stop first, the guard's drop does it.
        tokio::spawn(async move {
            if let Ok(mut g) = watch.readable().await {
                g.retain_ready();
            }
            guard.kill.reap();
            guard.armed = false;
            if let Some(cg) = guard.cgroup.as_mut() {
                cg.remove();
            }
        });
    }
    drop(s.sync_w);
    // The sandbox is gone: so are its connections.
    let network = s.broker.map(sandbox_egress::BrokerHandle::stop);

    let (mut termination, mut exit_code, mut signal) = match report {
        Some(r) => decode(r.wait_status),
        None => (Termination::Signaled, None, Some(libc::SIGKILL)),
    };
    if let Some(reason) = kill.reason() {
        termination = reason;
        if reason != Termination::Killed || report.is_none() {
            exit_code = None;
            signal = Some(libc::SIGKILL);
        }
    } else if stats.oom_kills > 0 {
        termination = Termination::MemoryLimit;
    } else if stats.pids_max_hits > 0 {
        termination = Termination::PidsLimit;
    } else if signal == Some(libc::SIGSYS) && s.seccomp_action == SeccompAction::Kill {
        termination = Termination::PolicyViolation;
    } else if signal == Some(libc::SIGXCPU) {
        termination = Termination::CpuLimit;
    }
    let cpu_time = stats
        .cpu_ns
        .map(Duration::from_nanos)
        .or(report.map(|r| Duration::from_micros(r.cpu_us)))
        .unwrap_or_default();
    if termination == Termination::Exited
        && s.limits.cpu_time.is_some_and(|l| cpu_time >= l)
        && report.is_some_and(|r| libc::WIFSIGNALED(r.wait_status))
    {
        termination = Termination::CpuLimit;
    }
    let peak_memory_bytes = stats
        .peak_memory
        .or(report.map(|r| r.max_rss_kib * 1024))
        .unwrap_or(0);
    Ok(Outcome {
        isolation: Isolation::Container,
        termination,
        exit_code,
        signal,
        stdout: cap.stdout,
        stderr: cap.stderr,
        wall_time,
        cpu_time,
        peak_memory_bytes,
        decision: s.decision,
        enforcement: s.enforcement,
        network,
        unimplemented_syscalls: Default::default(),
    })
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn forward(
    kill: &KillState,
    cap: &mut Capture,
    out: &mpsc::UnboundedSender<OutputChunk>,
    stream: StreamKind,
    data: &[u8],
) {
    if !out.is_closed() {
        let _ = out.send(OutputChunk {
            stream,
            data: data.to_vec(),
        });
    }
    if cap.add(stream, data) {
        kill.kill(Termination::OutputLimit);
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

/// Init's report, if it wrote one before exiting (it cannot when it was killed).
fn read_report(fd: &OwnedFd) -> Option<StatusReport> {
    let mut buf = [0u8; StatusReport::SIZE];
    // SAFETY: reading into a stack buffer of the given length; the fd is ours.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    (n == StatusReport::SIZE as isize).then(|| StatusReport::from_bytes(&buf))
}
