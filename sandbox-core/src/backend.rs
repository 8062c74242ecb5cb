//! The contract between the facade and an isolation backend.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::outcome::Outcome;
use crate::plan::Plan;
use crate::types::Isolation;

/// What a backend found on this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendProbe {
    /// The backend.
    pub isolation: Isolation,
    /// Whether it can run workloads here.
    pub available: bool,
    /// Why not, and what to change, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Facts the backend relies on (`user_namespaces: true`, `landlock_abi: 7`, `kvm: "pvm"`...).
    pub details: BTreeMap<String, serde_json::Value>,
}

/// Why a run could not be started. Nothing of it is left behind.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The backend cannot run on this host.
    #[error("the {isolation} backend is not available on this host: {reason}")]
    Unavailable {
        /// The backend.
        isolation: Isolation,
        /// Why, and what to do.
        reason: String,
    },
    /// The program does not exist inside the sandbox.
    #[error("program `{0}` not found in the sandbox (mounted directories and PATH searched)")]
    ProgramNotFound(String),
    /// The program exists but cannot be executed.
    #[error("program `{program}` cannot be executed in the sandbox")]
    NotExecutable {
        /// The program.
        program: String,
        /// The reason given by the loader.
        #[source]
        source: std::io::Error,
    },
    /// The plan asks for something this backend cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// A mount could not be prepared.
    #[error("mount {source_path} -> {target}")]
    Mount {
        /// Host path.
        source_path: String,
        /// Sandbox path.
        target: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A setup step failed.
    #[error("sandbox setup failed at step `{step}`")]
    Setup {
        /// The step, in words.
        step: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// Why a started run could not report its outcome.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Watching the sandbox failed.
    #[error("lost track of the sandbox while {0}")]
    Supervision(String, #[source] std::io::Error),
    /// `wait` was called again after it returned.
    #[error("the run's outcome was already taken")]
    AlreadyWaited,
}

/// Which stream a chunk of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A chunk of output, as it arrives while the workload runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// stdout or stderr.
    pub stream: StreamKind,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Output chunks in the order they were read. Ends when both streams are closed.
pub type OutputStream = mpsc::UnboundedReceiver<OutputChunk>;

/// Writes to a streamed stdin ([`crate::Stdin::Stream`]); dropping it closes stdin.
#[derive(Debug, Clone)]
pub struct StdinWriter {
    tx: mpsc::Sender<Vec<u8>>,
}

/// The backend's end of a [`StdinWriter`].
pub type StdinReceiver = mpsc::Receiver<Vec<u8>>;

impl StdinWriter {
    /// A writer and the receiver a backend reads from.
    pub fn channel() -> (StdinWriter, StdinReceiver) {
        let (tx, rx) = mpsc::channel(16);
        (StdinWriter { tx }, rx)
    }

    /// Queues bytes for the workload's stdin. Fails once the workload has ended or
    /// closed its stdin.
    pub async fn write(&self, data: impl Into<Vec<u8>>) -> Result<(), std::io::Error> {
        self.tx
            .send(data.into())
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    /// Like [`StdinWriter::write`], for callers without a runtime.
    pub fn blocking_write(&self, data: impl Into<Vec<u8>>) -> Result<(), std::io::Error> {
        self.tx
            .blocking_send(data.into())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

/// Ends a run from anywhere; cheap to clone. Killing a finished run does nothing.
#[derive(Clone)]
pub struct KillHandle(Arc<dyn Fn() + Send + Sync>);

impl KillHandle {
    /// Wraps the backend's kill action.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        KillHandle(Arc::new(f))
    }

    /// Kills the whole sandbox (every process of it, or the VM).
    pub fn kill(&self) {
        (self.0)()
    }
}

impl fmt::Debug for KillHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KillHandle")
    }
}

/// Signals a run and resizes its terminal from anywhere, while something else waits
/// for it; cheap to clone. Once the run has ended, a signal is `ESRCH` or nothing,
/// as the backend says.
#[derive(Clone)]
pub struct ControlHandle {
    signal: Arc<dyn Fn(i32) -> std::io::Result<()> + Send + Sync>,
    resize: Arc<dyn Fn(crate::live::TtySize) -> std::io::Result<()> + Send + Sync>,
}

/// Checks a signal number for [`Execution::signal`]: 1 to 64, else `InvalidInput`.
pub fn check_signal(signal: i32) -> std::io::Result<()> {
    if (1..=64).contains(&signal) {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{signal} is not a signal number"),
        ))
    }
}

impl ControlHandle {
    /// Wraps the backend's signal and resize actions.
    pub fn new(
        signal: impl Fn(i32) -> std::io::Result<()> + Send + Sync + 'static,
        resize: impl Fn(crate::live::TtySize) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        ControlHandle {
            signal: Arc::new(signal),
            resize: Arc::new(resize),
        }
    }

    /// [`Execution::signal`].
    pub fn signal(&self, signal: i32) -> std::io::Result<()> {
        (self.signal)(signal)
    }

    /// [`Execution::resize`].
    pub fn resize(&self, size: crate::live::TtySize) -> std::io::Result<()> {
        (self.resize)(size)
    }
}

impl fmt::Debug for ControlHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlHandle")
    }
}

/// A running sandbox. Dropping it kills the sandbox.
#[async_trait]
pub trait Execution: Send + fmt::Debug {
    /// The isolation in use.
    fn isolation(&self) -> Isolation;
    /// The stdin writer, for [`crate::Stdin::Stream`]; `None` after the first call or for
    /// other stdin modes.
    fn take_stdin(&mut self) -> Option<StdinWriter>;
    /// Output as it arrives; `None` after the first call. The outcome still captures it.
    fn take_output(&mut self) -> Option<OutputStream>;
    /// Like [`Execution::take_output`], but the outcome keeps no copy of the output
    /// (its `stdout` and `stderr` stay empty; an output limit still counts it): for
    /// output that streams for a long time, such as a container's. Backends that cannot
    /// stop capturing capture as before.
    fn take_output_uncaptured(&mut self) -> Option<OutputStream> {
        self.take_output()
    }
    /// A handle that kills the run.
    fn kill_handle(&self) -> KillHandle;
    /// Waits for the end of the run. Returns [`RunError::AlreadyWaited`] the second time.
    async fn wait(&mut self) -> Result<Outcome, RunError>;
    /// Where the host reaches the sandbox's exposed ports while it runs (network
    /// `egress` with `expose`); also in the outcome's `network` section.
    fn exposed_ports(&self) -> Vec<crate::network::ExposedPort> {
        Vec::new()
    }
    /// The egress broker's decisions as they happen (network `egress`).
    fn network_events(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<crate::network::NetworkEvent>> {
        None
    }
    /// Sends `signal` to the run's first process (a live sandbox's exec: that exec's
    /// process). Backends without it say so.
    fn signal(&self, signal: i32) -> Result<(), std::io::Error> {
        let _ = signal;
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this run cannot be signalled",
        ))
    }
    /// Changes the size of the run's pseudo-terminal (an exec started with a tty).
    fn resize(&self, size: crate::live::TtySize) -> Result<(), std::io::Error> {
        let _ = size;
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this run has no terminal",
        ))
    }
    /// [`Execution::signal`] and [`Execution::resize`] as a handle that outlives the
    /// borrow: for a caller that signals while it waits. `None` for runs that cannot
    /// be signalled.
    fn control_handle(&self) -> Option<ControlHandle> {
        None
    }
}

/// An isolation backend.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// The isolation level it provides.
    fn isolation(&self) -> Isolation;
    /// What this host supports, in detail (may try things out, once per process).
    fn probe(&self) -> BackendProbe;
    /// Whether runs can start here, and why not: cheap, called before each decision.
    /// Defaults to [`Backend::probe`]'s answer.
    fn availability(&self) -> Result<(), String> {
        let p = self.probe();
        if p.available {
            Ok(())
        } else {
            Err(p
                .reason
                .unwrap_or_else(|| format!("the {} backend is unavailable", self.isolation())))
        }
    }
    /// Whether this backend can run the plan's program (the micro-VM, say, and programs
    /// it does not support yet); `auto` treats a refusal as a need only the other
    /// backend meets. Cheap; defaults to yes.
    fn supports(&self, _plan: &Plan) -> Result<(), String> {
        Ok(())
    }
    /// Starts a run. On error nothing is left behind.
    async fn spawn(&self, plan: Plan) -> Result<Box<dyn Execution>, SpawnError>;
    /// Creates a live sandbox from `plan` (its program, argv and stdin are not used):
    /// execs, files, pause and resume come after. On error nothing is left behind.
    async fn create(
        &self,
        plan: Plan,
        options: crate::live::LiveOptions,
    ) -> Result<Arc<dyn crate::live::LiveSandbox>, SpawnError> {
        let _ = (plan, options);
        Err(crate::live::no_live_mode(self.isolation()))
    }
}
