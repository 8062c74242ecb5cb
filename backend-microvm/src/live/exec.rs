//! An exec of a live micro-VM: started by a command to the vCPU thread, its output
//! streamed and captured, stdin fed, signals and kills sent by command; a task per
//! exec keeps its wall time (paused time not counted) and CPU time and builds its
//! outcome, the same shape as a run's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sandbox_core::{
    ControlHandle, ExecRequest, Execution, Isolation, KillHandle, LiveError, Outcome, OutputStream,
    RunError, Stdin, StdinWriter, Termination, TtySize,
};
use tokio::sync::{mpsc, oneshot};

use super::cmd::{Cmd, ExecCmd, ExecEnd};
use super::host::Shared;
use crate::linux::task::ExitStatus;
use crate::stdio::{Input, Output, StdinQueue};

const SIGKILL: i32 = 9;
/// How often the CPU time of an exec with a CPU limit is looked at.
const CPU_CHECK: Duration = Duration::from_millis(10);

/// Starts `request` in the sandbox.
pub(super) async fn start(
    shared: &Arc<Shared>,
    request: ExecRequest,
) -> Result<Box<dyn Execution>, LiveError> {
    start_id(shared, request).await.map(|(e, _)| e)
}

/// [`start`], with the exec's id.
pub(super) async fn start_id(
    shared: &Arc<Shared>,
    request: ExecRequest,
) -> Result<(Box<dyn Execution>, u32), LiveError> {
    let Some(program) = request.argv.first().cloned() else {
        return Err(LiveError::Invalid("the exec's argv is empty".into()));
    };
    let nul = request.argv.iter().any(|a| a.contains('\0'))
        || request
            .env
            .iter()
            .any(|(k, v)| k.contains('\0') || k.contains('=') || v.contains('\0'))
        || request.cwd.as_deref().is_some_and(|c| c.contains('\0'));
    if nul || program.is_empty() || request.env.keys().any(String::is_empty) {
        return Err(LiveError::Invalid(
            "an argument, variable or directory of the exec is empty where it may not be, \
             contains a NUL byte, or a variable name contains '='"
                .into(),
        ));
    }
    shared.check_running("exec")?;
    let plan = &shared.plan;
    let mut env: BTreeMap<String, String> = plan.env.iter().cloned().collect();
    env.extend(request.env.clone());
    let cwd = request.cwd.clone().unwrap_or_else(|| plan.cwd.clone());
    let candidates = if program.contains('/') {
        vec![if program.starts_with('/') {
            program.clone()
        } else {
            format!("{}/{}", cwd.trim_end_matches('/'), program)
        }]
    } else {
        let path = env
            .get("PATH")
            .map(String::as_str)
            .unwrap_or(sandbox_core::DEFAULT_PATH);
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{}", d.trim_end_matches('/'), program))
            .collect()
    };
    let limits = &request.limits;
    let wall = limits.wall_time.or(plan.limits.wall_time);
    let cpu = limits.cpu_time.or(plan.limits.cpu_time);
    let output_limit = limits.output.or(plan.limits.output).map(|b| b.0);

    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let mut stdin_writer = None;
    let input = match &request.stdin {
        Stdin::Null => Input::Null,
        Stdin::Bytes(b) => Input::Bytes(b.clone(), 0),
        Stdin::Stream => {
            let (writer, rx) = StdinWriter::channel();
            stdin_writer = Some(writer);
            let queue = Arc::new(StdinQueue::default());
            let (q, c) = (Arc::clone(&queue), Arc::clone(&shared.ctl));
            // On a terminal, the line discipline takes input as it comes (echo, ^C),
            // whether or not the program reads: the vCPU thread is told by command.
            let tty = request.tty.is_some().then(|| (Arc::clone(&shared.hub), id));
            tokio::spawn(async move {
                let arrived = || match &tty {
                    Some((hub, id)) => hub.send(&c, Cmd::TtyInput(*id)),
                    None => c.input_arrived(),
                };
                q.pump(rx, arrived).await
            });
            Input::Stream(queue)
        }
    };
    let (started_tx, started_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let began = Instant::now();
    let paused_before = shared.paused_total();
    shared.send(Cmd::Exec(Box::new(ExecCmd {
        id,
        candidates,
        argv: request.argv.clone(),
        env: env
            .iter()
            .map(|(k, v)| format!("{k}={v}").into_bytes())
            .collect(),
        cwd,
        input,
        output: Output::new(out_tx, output_limit),
        cpu,
        tty: request.tty,
        started: started_tx,
        done: done_tx,
    })));
    match started_rx.await {
        Ok(Ok(_pid)) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(LiveError::Failed(
                "starting the exec".into(),
                std::io::Error::other("the sandbox ended"),
            ))
        }
    }
    let exec = watched(
        shared,
        Started {
            id,
            wall,
            cpu,
            began,
            paused_before,
            stdin: stdin_writer,
            output: out_rx,
            done: done_rx,
            tty: request.tty.is_some(),
        },
    );
    Ok((exec, id))
}

/// An exec the vCPU thread runs: what its watcher and handle need.
pub(super) struct Started {
    pub(super) id: u32,
    pub(super) wall: Option<Duration>,
    pub(super) cpu: Option<Duration>,
    pub(super) began: Instant,
    pub(super) paused_before: Duration,
    pub(super) stdin: Option<StdinWriter>,
    pub(super) output: OutputStream,
    pub(super) done: oneshot::Receiver<ExecEnd>,
    pub(super) tty: bool,
}

/// The handle of a started exec (a new one, or one taken over from a snapshot), with
/// its watcher (wall time, CPU time, outcome).
pub(super) fn watched(shared: &Arc<Shared>, st: Started) -> Box<dyn Execution> {
    shared.lock().running += 1;
    let finished = Arc::new(AtomicBool::new(false));
    let (outcome_tx, outcome_rx) = oneshot::channel();
    tokio::spawn(watch(Watch {
        shared: Arc::downgrade(shared),
        id: st.id,
        wall: st.wall,
        cpu: st.cpu,
        began: st.began,
        paused_before: st.paused_before,
        vm_done: st.done,
        outcome: outcome_tx,
        finished: Arc::clone(&finished),
    }));
    Box::new(MicroVmExec {
        shared: Arc::clone(shared),
        id: st.id,
        stdin: st.stdin,
        output: Some(st.output),
        done: Some(outcome_rx),
        finished,
        tty: st.tty,
    })
}

struct Watch {
    shared: Weak<Shared>,
    id: u32,
    wall: Option<Duration>,
    cpu: Option<Duration>,
    began: Instant,
    paused_before: Duration,
    vm_done: oneshot::Receiver<ExecEnd>,
    outcome: oneshot::Sender<Result<Outcome, RunError>>,
    finished: Arc<AtomicBool>,
}

/// Time the exec ran, paused time taken out.
fn active(s: &Shared, began: Instant, paused_before: Duration) -> Duration {
    let paused = s.paused_total().saturating_sub(paused_before);
    began.elapsed().saturating_sub(paused)
}

/// Waits for the exec's end; kills it at its wall time (paused time not counted) and
/// asks for its CPU time while it has a CPU limit; then builds its outcome.
async fn watch(mut w: Watch) {
    let mut timed_out = false;
    let end = loop {
        let wait = match (w.wall, w.shared.upgrade()) {
            (Some(wall), Some(s)) => {
                let ran = active(&s, w.began, w.paused_before);
                if ran >= wall && !timed_out {
                    timed_out = true;
                    s.send(Cmd::Signal {
                        id: w.id,
                        sig: SIGKILL,
                        why: Some(Termination::Timeout),
                    });
                }
                wall.saturating_sub(ran).max(Duration::from_millis(1))
            }
            _ => Duration::from_secs(3600),
        };
        let wait = match w.cpu {
            Some(_) => wait.min(CPU_CHECK),
            None => wait,
        };
        tokio::select! {
            r = &mut w.vm_done => break r.ok(),
            _ = tokio::time::sleep(wait) => {
                if w.cpu.is_some() {
                    if let Some(s) = w.shared.upgrade() {
                        if s.lock().state == sandbox_core::LiveState::Running {
                            s.send(Cmd::CheckCpu);
                        }
                    }
                }
            }
        }
    };
    w.finished.store(true, Ordering::SeqCst);
    let Some(s) = w.shared.upgrade() else {
        let _ = w.outcome.send(Err(RunError::Supervision(
            "waiting for the exec".into(),
            std::io::Error::other("the sandbox was destroyed"),
        )));
        return;
    };
    {
        let mut l = s.lock();
        l.running = l.running.saturating_sub(1);
    }
    s.touch();
    let wall_time = active(&s, w.began, w.paused_before);
    let end = end.unwrap_or(ExecEnd {
        status: ExitStatus::Signal(SIGKILL),
        why: Some(Termination::Killed),
        cpu: Duration::ZERO,
        stdout: Vec::new(),
        stderr: Vec::new(),
        peak: 0,
    });
    let (termination, exit_code, signal) = match (end.why, end.status) {
        (Some(t), _) => (t, None, Some(SIGKILL)),
        (None, ExitStatus::Code(c)) => (Termination::Exited, Some(c), None),
        (None, ExitStatus::Signal(sig)) => (Termination::Signaled, None, Some(sig)),
    };
    let outcome = Outcome {
        isolation: Isolation::MicroVm,
        termination,
        exit_code,
        signal,
        stdout: end.stdout,
        stderr: end.stderr,
        wall_time,
        cpu_time: end.cpu,
        peak_memory_bytes: end.peak,
        decision: s.plan.decision.clone(),
        enforcement: s.enforcement.clone(),
        // The sandbox's egress decisions so far (network `egress`).
        network: s.net.as_ref().and_then(|n| n.report()),
        unimplemented_syscalls: BTreeMap::new(),
    };
    drop(s); // before the caller hears: its drop of the sandbox must be the last
    let _ = w.outcome.send(Ok(outcome));
}

/// A running exec.
#[derive(Debug)]
struct MicroVmExec {
    shared: Arc<Shared>,
    id: u32,
    stdin: Option<StdinWriter>,
    output: Option<OutputStream>,
    done: Option<oneshot::Receiver<Result<Outcome, RunError>>>,
    finished: Arc<AtomicBool>,
    /// Started on a terminal.
    tty: bool,
}

#[async_trait]
impl Execution for MicroVmExec {
    fn isolation(&self) -> Isolation {
        Isolation::MicroVm
    }

    fn exposed_ports(&self) -> Vec<sandbox_core::network::ExposedPort> {
        self.shared
            .net
            .as_ref()
            .map(|n| n.exposed())
            .unwrap_or_default()
    }

    fn network_events(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<sandbox_core::network::NetworkEvent>> {
        self.shared.net.as_ref().and_then(|n| n.events())
    }

    fn take_stdin(&mut self) -> Option<StdinWriter> {
        self.stdin.take()
    }

    fn take_output(&mut self) -> Option<OutputStream> {
        self.output.take()
    }

    fn kill_handle(&self) -> KillHandle {
        let shared = Arc::downgrade(&self.shared);
        let id = self.id;
        KillHandle::new(move || {
            if let Some(s) = shared.upgrade() {
                s.send(Cmd::Signal {
                    id,
                    sig: SIGKILL,
                    why: Some(Termination::Killed),
                });
            }
        })
    }

    async fn wait(&mut self) -> Result<Outcome, RunError> {
        let done = self.done.take().ok_or(RunError::AlreadyWaited)?;
        match done.await {
            Ok(r) => r,
            Err(_) => Err(RunError::Supervision(
                "waiting for the exec".into(),
                std::io::Error::other("the exec's watcher ended without an outcome"),
            )),
        }
    }

    fn signal(&self, signal: i32) -> Result<(), std::io::Error> {
        self.control().signal(signal)
    }

    fn resize(&self, size: TtySize) -> Result<(), std::io::Error> {
        self.control().resize(size)
    }

    fn control_handle(&self) -> Option<ControlHandle> {
        let (a, b) = (self.control(), self.control());
        Some(ControlHandle::new(
            move |sig| a.signal(sig),
            move |size| b.resize(size),
        ))
    }
}

impl MicroVmExec {
    fn control(&self) -> Control {
        Control {
            shared: Arc::downgrade(&self.shared),
            id: self.id,
            finished: Arc::clone(&self.finished),
            tty: self.tty,
        }
    }
}

/// What signals an exec and resizes its terminal: the exec's number in its sandbox
/// (a handle does not keep the sandbox).
struct Control {
    shared: Weak<Shared>,
    id: u32,
    finished: Arc<AtomicBool>,
    tty: bool,
}

impl Control {
    fn send(&self, cmd: Cmd) -> std::io::Result<()> {
        match self.shared.upgrade() {
            Some(s) if !self.finished.load(Ordering::SeqCst) => {
                s.send(cmd);
                Ok(())
            }
            _ => Err(std::io::Error::from_raw_os_error(libc::ESRCH)),
        }
    }

    fn signal(&self, signal: i32) -> std::io::Result<()> {
        sandbox_core::check_signal(signal)?;
        self.send(Cmd::Signal {
            id: self.id,
            sig: signal,
            why: None,
        })
    }

    fn resize(&self, size: TtySize) -> std::io::Result<()> {
        if !self.tty {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "this exec has no terminal (start it with a tty)",
            ));
        }
        self.send(Cmd::Resize { id: self.id, size })
    }
}

impl Drop for MicroVmExec {
    fn drop(&mut self) {
        if !self.finished.load(Ordering::SeqCst) {
            self.shared.send(Cmd::Signal {
                id: self.id,
                sig: SIGKILL,
                why: Some(Termination::Killed),
            });
        }
    }
}
