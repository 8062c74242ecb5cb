//! A started run (`Process`): its output as events, its stdin, its outcome.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hybrid_sandbox::{
    ControlHandle, Execution, Isolation, KillHandle, Outcome, OutputStream, Sandbox, StdinWriter,
    TtySize, Workload,
};
use pyo3::exceptions::{PyStopAsyncIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::IntoPyObjectExt;
use tokio::sync::watch;

use crate::errors::Failure;
use crate::outcome::{PyOutcome, PyOutputEvent};
use crate::runtime::{self, Deliver};

type Finished = Option<Result<Outcome, Failure>>;

/// A run as the package tracks it. The last reference kills the run: a run nobody can
/// reach any more is not left running.
pub(crate) struct Run {
    isolation: Isolation,
    /// Where the host reaches the run's exposed ports (network `egress`).
    exposed: Vec<hybrid_sandbox::network::ExposedPort>,
    kill: KillHandle,
    /// Signals and terminal resizes (`None`: the run cannot be signalled).
    control: Option<ControlHandle>,
    done: watch::Receiver<Finished>,
    events: tokio::sync::Mutex<Option<OutputStream>>,
    stdin: Mutex<Option<StdinWriter>>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("isolation", &self.isolation)
            .finish_non_exhaustive()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.kill.kill();
    }
}

impl Run {
    /// Starts a workload; with `stream`, its output is also kept as events.
    pub(crate) async fn start(
        sandbox: Sandbox,
        workload: Workload,
        stream: bool,
    ) -> Result<Arc<Run>, Failure> {
        let exec = sandbox.spawn(workload).await?;
        Ok(Run::from_exec(exec, stream))
    }

    /// Follows a started execution (a run's, or a live sandbox's exec); with `stream`,
    /// its output is also kept as events. Called on the runtime (it spawns its
    /// supervisor there).
    pub(crate) fn from_exec(mut exec: Box<dyn Execution>, stream: bool) -> Arc<Run> {
        let events = if stream { exec.take_output() } else { None };
        let stdin = exec.take_stdin();
        let kill = exec.kill_handle();
        let control = exec.control_handle();
        let isolation = exec.isolation();
        let exposed = exec.exposed_ports();
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let r = exec.wait().await;
            // Dropping the execution closes the output stream of any backend.
            drop(exec);
            let _ = tx.send(Some(r.map_err(|e| hybrid_sandbox::Error::Run(e).into())));
        });
        Arc::new(Run {
            isolation,
            exposed,
            kill,
            control,
            done: rx,
            events: tokio::sync::Mutex::new(events),
            stdin: Mutex::new(stdin),
        })
    }

    /// Kills the whole sandbox (nothing once it has ended).
    pub(crate) fn kill_now(&self) {
        self.kill.kill();
    }

    /// Waits for the end of the run (cancel-safe).
    pub(crate) async fn outcome(&self) -> Result<Outcome, Failure> {
        let mut rx = self.done.clone();
        let r = rx.wait_for(Option::is_some).await;
        match r {
            Ok(v) => v.clone().unwrap_or_else(|| Err(lost())),
            Err(_) => Err(lost()),
        }
    }

    /// The next output event, None at the end (cancel-safe).
    async fn next_event(&self) -> Option<PyOutputEvent> {
        let mut guard = self.events.lock().await;
        let rx = guard.as_mut()?;
        rx.recv().await.map(PyOutputEvent::from)
    }
}

impl PyProcess {
    fn control(&self) -> PyResult<&ControlHandle> {
        self.run.control.as_ref().ok_or_else(|| {
            PyValueError::new_err(
                "this run cannot be signalled or resized (a one-shot run: use kill())",
            )
        })
    }
}

/// The answer to a signal or resize: an exec already gone (ESRCH) is no error, as for
/// `subprocess`; a bad number or no terminal is ValueError.
fn controlled(r: std::io::Result<()>) -> PyResult<()> {
    const ESRCH: i32 = 3;
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(ESRCH) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
            ) =>
        {
            Err(PyValueError::new_err(e.to_string()))
        }
        Err(e) => Err(PyErr::from(e)),
    }
}

fn lost() -> Failure {
    Failure::new("run", "lost track of the sandbox: its supervisor stopped")
}

/// Delivers an outcome (or its failure) to asyncio.
pub(crate) fn deliver_outcome(r: Result<Outcome, Failure>) -> Deliver {
    Box::new(move |py| match r {
        Ok(o) => Py::new(py, PyOutcome::new(o))?.into_py_any(py),
        Err(f) => Err(f.to_pyerr(py)),
    })
}

/// A workload started by `spawn()`: iterate over it (or `async for`) for its output as
/// it comes, write to its stdin (`stdin=PIPE`), kill it, wait for its `Outcome`.
/// Dropping the last reference kills the run.
#[pyclass(frozen, module = "hybrid_sandbox", name = "Process")]
#[derive(Debug)]
pub(crate) struct PyProcess {
    run: Arc<Run>,
}

impl PyProcess {
    pub(crate) fn new(run: Arc<Run>) -> PyProcess {
        PyProcess { run }
    }
}

#[pymethods]
impl PyProcess {
    /// The isolation in use: "container" or "microvm".
    #[getter]
    fn isolation(&self) -> &'static str {
        self.run.isolation.as_str()
    }

    /// True once the run has ended.
    /// Sandbox port -> "127.0.0.1:PORT" where the host reaches it while the run lasts
    /// (network "egress" with expose).
    #[getter]
    fn exposed_ports(&self) -> std::collections::BTreeMap<u16, String> {
        self.run
            .exposed
            .iter()
            .map(|p| (p.sandbox_port, p.host.to_string()))
            .collect()
    }

    #[getter]
    fn done(&self) -> bool {
        self.run.done.borrow().is_some()
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next `OutputEvent`; blocks (with the GIL released) until there is one.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyOutputEvent>> {
        // Ctrl-C raises KeyboardInterrupt here; the run goes on (the caller holds it).
        runtime::wait(py, self.run.next_event(), None, || ())
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// An awaitable of the next `OutputEvent`; raises StopAsyncIteration at the end.
    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let run = self.run.clone();
        runtime::to_asyncio(py, async move {
            let event = run.next_event().await;
            Box::new(move |py: Python<'_>| match event {
                Some(e) => Py::new(py, e)?.into_py_any(py),
                None => Err(PyStopAsyncIteration::new_err(())),
            }) as Deliver
        })
    }

    /// Writes bytes to the workload's stdin (`stdin=PIPE` only); blocks while the pipe
    /// is full. Raises BrokenPipeError once the workload has ended or closed its stdin.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes: Vec<u8> = if data.is_instance_of::<PyBytes>() {
            data.extract()?
        } else if let Ok(s) = data.extract::<String>() {
            s.into_bytes()
        } else {
            data.call_method0("__bytes__")?.extract()?
        };
        let writer = self
            .run
            .stdin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| {
                PyValueError::new_err(
                    "stdin is not a pipe (spawn with stdin=PIPE), or it is closed",
                )
            })?;
        runtime::wait(py, writer.write(bytes), None, || ())?.map_err(|e| {
            PyErr::from(std::io::Error::new(
                e.kind(),
                "the workload's stdin is closed",
            ))
        })
    }

    /// Closes the workload's stdin: it reads end of file.
    fn close_stdin(&self) {
        self.run
            .stdin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// Kills the whole sandbox; the outcome then says "killed". Does nothing once ended.
    fn kill(&self) {
        self.run.kill.kill();
    }

    /// Sends `signal` (a number, or a `signal.Signals`) to the exec's process; does
    /// nothing once it has ended (as `subprocess.Popen.send_signal`). Raises ValueError
    /// for a number that is not a signal, or a run that cannot be signalled (a one-shot
    /// run: use `kill`).
    fn send_signal(&self, signal: i32) -> PyResult<()> {
        controlled(self.control()?.signal(signal))
    }

    /// Changes the size of the exec's terminal (`tty=`); its programs get SIGWINCH.
    /// Raises ValueError for an exec without a terminal or a size of zero or above
    /// 65535; does nothing once it has ended.
    fn resize(&self, rows: i64, cols: i64) -> PyResult<()> {
        let dim = |v: i64, what: &str| {
            u16::try_from(v).ok().filter(|v| *v >= 1).ok_or_else(|| {
                PyValueError::new_err(format!("{what} must be from 1 to 65535, not {v}"))
            })
        };
        let size = TtySize {
            rows: dim(rows, "rows")?,
            cols: dim(cols, "cols")?,
        };
        controlled(self.control()?.resize(size))
    }

    /// Waits for the end of the run and returns its `Outcome`, with the GIL released.
    /// With `timeout` (seconds, or a string such as "1.5s"), raises TimeoutError when the
    /// run has not ended by then (the run goes on). Ctrl-C raises KeyboardInterrupt and
    /// leaves the run going (leaving a `with` block kills it).
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<PyOutcome> {
        let timeout: Option<Duration> = timeout
            .filter(|t| !t.is_none())
            .map(|t| crate::args::duration(t, "timeout"))
            .transpose()?;
        let r = runtime::wait(py, self.run.outcome(), timeout, || ())?;
        r.map(PyOutcome::new).map_err(|f| f.to_pyerr(py))
    }

    /// An awaitable of the `Outcome`.
    fn wait_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let run = self.run.clone();
        runtime::to_asyncio(py, async move { deliver_outcome(run.outcome().await) })
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Leaving a `with` block kills the run if it is still going.
    fn __exit__(
        &self,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        self.run.kill.kill();
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "Process(isolation={}, done={})",
            crate::outcome::quote(self.isolation()),
            if self.done() { "True" } else { "False" }
        )
    }
}
