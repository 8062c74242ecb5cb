//! Supervision of one exec: its output (streamed and captured), its limits (wall time
//! without the paused time, output, a run's CPU and pids), and its outcome, in the same
//! shape as a run's.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sandbox_core::{
    Isolation, Outcome, OutputChunk, RunError, SeccompAction, StreamKind, Termination,
};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};

use super::exec::ExecCtl;
use super::files::PtyMaster;
use super::life::{Exited, Shared};

pub(crate) fn cgroup_stats(s: &Shared) -> crate::cgroup::Stats {
    s.guard
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|g| g.cgroup.as_ref().map(|c| c.stats()))
        .unwrap_or_default()
}

pub(crate) enum Streams {
    Pipes(pipe::Receiver, pipe::Receiver),
    Pty(Arc<PtyMaster>),
}

pub(crate) struct Limits {
    pub(crate) wall: Option<Duration>,
    pub(crate) cpu: Option<Duration>,
    pub(crate) output: Option<u64>,
}

pub(crate) enum Holder {
    Weak(Weak<Shared>),
    Strong(Arc<Shared>),
}

impl Holder {
    pub(crate) fn get(&self) -> Option<Arc<Shared>> {
        match self {
            Holder::Weak(w) => w.upgrade(),
            Holder::Strong(s) => Some(s.clone()),
        }
    }
}

pub(crate) struct Supervision {
    pub(crate) decision: sandbox_core::Decision,
    pub(crate) enforcement: sandbox_core::EnforcementReport,
    pub(crate) seccomp_action: SeccompAction,
    pub(crate) shared: Holder,
    pub(crate) ctl: Arc<ExecCtl>,
    pub(crate) started: Instant,
    pub(crate) sole: bool,
    pub(crate) paused_base: Duration,
    pub(crate) limits: Limits,
    pub(crate) before: crate::cgroup::Stats,
    /// A live exec's own cgroup (with a CPU time limit): its CPU time, of every
    /// process it started.
    pub(crate) exec_cgroup: Option<crate::cgroup::ExecCgroup>,
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

    pub(crate) async fn run(
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
            if ctl.uncaptured.load(std::sync::atomic::Ordering::Acquire) {
                cap.total += data.len() as u64;
                if cap.limit.is_some_and(|l| cap.total > l) {
                    ctl.kill(Termination::OutputLimit);
                }
            } else if cap.add(stream, data) {
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
        let poll_needed = (self.sole
            && (self.limits.cpu.is_some()
                || self
                    .shared
                    .get()
                    .is_some_and(|s| s.plan.limits.pids.is_some())))
            || (self.exec_cgroup.is_some() && self.limits.cpu.is_some());
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut obuf, mut ebuf) = (OutBuf::new(), OutBuf::new());
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
                r = read_stream(stdout.as_mut(), pty.as_deref(), &mut obuf.0), if out_open => match r {
                    Ok(0) | Err(_) => out_open = false,
                    Ok(n) => {
                        forward(&mut cap, StreamKind::Stdout, &obuf.0[..n]);
                        obuf.filled(n);
                    }
                },
                r = read_stream(stderr.as_mut(), None, &mut ebuf.0), if err_open => match r {
                    Ok(0) | Err(_) => err_open = false,
                    Ok(n) => {
                        forward(&mut cap, StreamKind::Stderr, &ebuf.0[..n]);
                        ebuf.filled(n);
                    }
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
                    if let (Some(cg), Some(limit)) = (&self.exec_cgroup, self.limits.cpu) {
                        if cg.cpu_ns().is_some_and(|used| used >= limit.as_nanos() as u64) {
                            // Every process of the exec: the limit is theirs together.
                            self.ctl.kill(Termination::CpuLimit);
                            cg.kill_all();
                        }
                    } else if let Some(s) = self.shared.get() {
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
                drain(o, StreamKind::Stdout, &mut obuf.0, &mut cap, &forward);
            }
            if let Some(e) = stderr.as_mut() {
                drain(e, StreamKind::Stderr, &mut ebuf.0, &mut cap, &forward);
            }
            if let Some(m) = &pty {
                while let Ok(n) = m.try_read(&mut obuf.0) {
                    if n == 0 {
                        break;
                    }
                    forward(&mut cap, StreamKind::Stdout, &obuf.0[..n]);
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
        // The egress report: a run's is final (its sandbox ends with the workload, so
        // the broker stops now); a live exec's is the sandbox's so far.
        let network = self.shared.get().and_then(|s| {
            if self.sole {
                s.stop_broker();
            }
            s.network_report()
        });
        Ok(self.outcome(exit, cap, wall_time, after, network))
    }

    fn outcome(
        &self,
        exit: Option<Exited>,
        cap: Capture,
        wall_time: Duration,
        after: crate::cgroup::Stats,
        network: Option<sandbox_core::network::NetworkReport>,
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
            // Its cgroup's count includes what it started and did not wait for.
            let counted = self.exec_cgroup.as_ref().and_then(|c| c.cpu_ns());
            rusage_cpu.max(counted.map(Duration::from_nanos))
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
            network,
            unimplemented_syscalls: Default::default(),
        }
    }
}

/// An output stream's read buffer: a page at first, doubled (up to 64 KiB) each time a
/// read fills it. Most programs write little, and two zeroed 64 KiB buffers cost every
/// run 32 host page faults (~10 µs each on a nested host) for bytes never read.
struct OutBuf(Vec<u8>);

impl OutBuf {
    const MAX: usize = 64 * 1024;

    fn new() -> OutBuf {
        OutBuf(vec![0u8; 4096])
    }

    /// A read gave `n` bytes: a full buffer grows for the next.
    fn filled(&mut self, n: usize) {
        if n == self.0.len() && n < Self::MAX {
            self.0.resize(n * 2, 0);
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
