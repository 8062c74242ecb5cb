//! The package's async runtime, waiting on it with the GIL released, and handing its
//! results to asyncio.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;
use tokio::sync::oneshot;

use crate::errors::Failure;

/// How often a blocked call looks for Python signals (Ctrl-C).
const SLICE: Duration = Duration::from_millis(100);

/// The runtime that drives every run: created on first use, shared by every sandbox.
pub(crate) fn get() -> Result<&'static tokio::runtime::Runtime, Failure> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hsb-runtime")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Failure::new("runtime", format!("creating the async runtime: {e}")))
}

/// Like [`get`], as a Python exception.
pub(crate) fn py_get(py: Python<'_>) -> PyResult<&'static tokio::runtime::Runtime> {
    get().map_err(|f| f.to_pyerr(py))
}

/// Drives `fut` to its end on the runtime with the GIL released, so that other Python
/// threads run meanwhile. Every [`SLICE`] it looks for Python signals: on one (Ctrl-C
/// raises KeyboardInterrupt) it calls `interrupted`, drops `fut` and raises. With a
/// `timeout`, raises `TimeoutError` once it passes. `fut` must be cancel-safe.
pub(crate) fn wait<F>(
    py: Python<'_>,
    fut: F,
    timeout: Option<Duration>,
    interrupted: impl FnOnce(),
) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = py_get(py)?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut fut = std::pin::pin!(fut);
    loop {
        let slice = match deadline {
            Some(d) => SLICE.min(d.saturating_duration_since(Instant::now())),
            None => SLICE,
        };
        // The timer is made inside the runtime's context.
        let step =
            py.detach(|| rt.block_on(async { tokio::time::timeout(slice, fut.as_mut()).await }));
        if let Ok(v) = step {
            return Ok(v);
        }
        if let Err(e) = py.check_signals() {
            interrupted();
            return Err(e);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(PyTimeoutError::new_err(format!(
                "the run has not ended after {:.3} s",
                timeout.unwrap_or_default().as_secs_f64()
            )));
        }
    }
}

/// Set when the interpreter begins to exit (an `atexit` callback, before it finalizes):
/// runtime threads no longer attach to it. A thread that attaches while CPython
/// finalizes is ended by it in the middle of Rust frames (an abort or a crash at exit:
/// CPython before 3.13 gives no way to see that it finalizes).
static EXITING: AtomicBool = AtomicBool::new(false);
/// Runtime threads attaching or attached to the interpreter.
static ATTACHED: AtomicUsize = AtomicUsize::new(0);
/// How long the exit waits for runtime threads attached to the interpreter.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// Runs `f` attached to the interpreter from a runtime thread, unless the interpreter
/// is exiting (then `f` is dropped: nobody waits for what it would hand over).
fn attach_unless_exiting(f: impl FnOnce(Python<'_>)) {
    // Counted before the flag is looked at: the exit, which sets the flag then waits
    // for the count to fall to zero, either is seen here or waits for this thread.
    ATTACHED.fetch_add(1, Ordering::SeqCst);
    if !EXITING.load(Ordering::SeqCst) {
        Python::attach(f);
    }
    ATTACHED.fetch_sub(1, Ordering::SeqCst);
}

/// The `atexit` callback: no runtime thread attaches after it, and those attached
/// are waited for (at most [`EXIT_WAIT`], detached so that they can finish).
#[pyfunction]
fn _at_exit(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + EXIT_WAIT;
    py.detach(|| {
        while ATTACHED.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Registers [`_at_exit`] with `atexit` (at the module's import).
pub(crate) fn register_exit(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let f = wrap_pyfunction!(_at_exit, py)?;
    py.import("atexit")?.call_method1("register", (f,))?;
    Ok(())
}

/// What an async task hands to Python once it is done: made into a value or an
/// exception while attached to the interpreter.
pub(crate) type Deliver = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// Sets an asyncio future's result or exception, unless it is already done (cancelled).
#[pyfunction]
fn _settle(fut: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if fut.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        fut.call_method1("set_result", (value,))?;
    } else {
        fut.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

/// Called by asyncio when the future is done: tells the task when it was cancelled.
#[pyclass(frozen)]
struct CancelOnDone {
    tx: Mutex<Option<oneshot::Sender<()>>>,
}

#[pymethods]
impl CancelOnDone {
    fn __call__(&self, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut.call_method0("cancelled")?.is_truthy()? {
            if let Some(tx) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = tx.send(());
            }
        }
        Ok(())
    }
}

/// Runs `task` on the runtime and returns an asyncio future of the running loop that
/// gets its result. Cancelling that future drops the task (which kills what it owns).
pub(crate) fn to_asyncio<F>(py: Python<'_>, task: F) -> PyResult<Bound<'_, PyAny>>
where
    F: Future<Output = Deliver> + Send + 'static,
{
    let rt = py_get(py)?;
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let fut = event_loop.call_method0("create_future")?;
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    let on_done = Py::new(
        py,
        CancelOnDone {
            tx: Mutex::new(Some(cancel_tx)),
        },
    )?;
    fut.call_method1("add_done_callback", (on_done,))?;
    let settle = wrap_pyfunction!(_settle, py)?.unbind();
    let (loop_ref, fut_ref) = (event_loop.unbind(), fut.clone().unbind());
    rt.spawn(async move {
        let deliver = tokio::select! {
            d = task => d,
            _ = cancel_rx => return,
        };
        // Attaching may wait for the GIL: do it on a blocking thread, never on a worker
        // that supervises sandboxes.
        let _ = tokio::task::spawn_blocking(move || {
            attach_unless_exiting(|py| {
                let (ok, value) = match deliver(py) {
                    Ok(v) => (true, v),
                    Err(e) => (false, e.value(py).clone().into_any().unbind()),
                };
                // Fails only when the loop is closed: nobody is waiting any more.
                let _ = loop_ref
                    .bind(py)
                    .call_method1("call_soon_threadsafe", (settle, fut_ref, ok, value));
            })
        })
        .await;
    });
    Ok(fut)
}
