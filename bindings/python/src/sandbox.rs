//! The native sandbox: a policy and its backends. The Python `Sandbox` class wraps it
//! with keyword arguments (python/hybrid_sandbox/__init__.py).

use hybrid_sandbox::{Policy, Sandbox, Workload};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::Failure;
use crate::outcome::PyOutcome;
use crate::process::{deliver_outcome, PyProcess, Run};
use crate::{args, runtime};

/// A policy and the backends it chooses from; cheap to share between threads.
#[pyclass(frozen, module = "hybrid_sandbox._native", name = "Sandbox")]
#[derive(Debug)]
pub(crate) struct PySandbox {
    inner: Sandbox,
}

fn policy_error(py: Python<'_>, e: hybrid_sandbox::PolicyError) -> PyErr {
    Failure::from(hybrid_sandbox::Error::Policy(e)).to_pyerr(py)
}

impl PySandbox {
    /// Starts a workload with the GIL released.
    fn start(&self, py: Python<'_>, w: Workload, stream: bool) -> PyResult<std::sync::Arc<Run>> {
        let rt = runtime::py_get(py)?;
        let sandbox = self.inner.clone();
        py.detach(|| rt.block_on(Run::start(sandbox, w, stream)))
            .map_err(|f| f.to_pyerr(py))
    }
}

#[pymethods]
impl PySandbox {
    /// A sandbox under the policy file `policy` (TOML, or JSON for `.json` names), or
    /// under `toml` text, or under the embedded default policy.
    #[new]
    #[pyo3(signature = (policy=None, *, toml=None, origin=None))]
    fn new(
        py: Python<'_>,
        policy: Option<String>,
        toml: Option<String>,
        origin: Option<String>,
    ) -> PyResult<PySandbox> {
        let inner = match (policy, toml) {
            (Some(path), None) => {
                Sandbox::from_policy(Policy::from_file(&path).map_err(|e| policy_error(py, e))?)
            }
            (None, Some(text)) => {
                let origin = origin.as_deref().unwrap_or("<string>");
                Sandbox::from_policy(
                    Policy::from_toml_str(&text, origin).map_err(|e| policy_error(py, e))?,
                )
            }
            (None, None) => Sandbox::with_default_policy(),
            (Some(_), Some(_)) => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "give a policy file or TOML text, not both",
                ))
            }
        };
        Ok(PySandbox { inner })
    }

    /// Where the policy came from (a path, or the embedded default).
    #[getter]
    fn policy_origin(&self) -> String {
        self.inner.policy().origin().to_string()
    }

    /// The names of the policy's profiles (the `workload=` values).
    #[getter]
    fn profiles(&self) -> Vec<String> {
        self.inner
            .policy()
            .profile_names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Runs `argv` to its end with `options`, with the GIL released; Ctrl-C kills it.
    #[pyo3(signature = (argv, options=None))]
    fn run(
        &self,
        py: Python<'_>,
        argv: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyOutcome> {
        let w = args::workload(argv, options, false)?;
        let run = self.start(py, w, false)?;
        let r = runtime::wait(py, run.outcome(), None, || run.kill_now())?;
        r.map(PyOutcome::new).map_err(|f| f.to_pyerr(py))
    }

    /// Runs the policy's warm template `name` with `options` (`stdin`, `timeout`,
    /// `cpu_time`, `output_limit`), with the GIL released; Ctrl-C kills it.
    #[pyo3(signature = (name, options=None))]
    fn run_template(
        &self,
        py: Python<'_>,
        name: String,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyOutcome> {
        let argv = pyo3::types::PyList::new(py, [name.as_str()])?;
        let r = args::exec_request(argv.as_any(), options, false)?;
        if r.tty.is_some() || !r.env.is_empty() || r.cwd.is_some() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "a template run takes stdin, timeout, cpu_time and output_limit only",
            ));
        }
        let stdin = match r.stdin {
            hybrid_sandbox::Stdin::Bytes(b) => b,
            _ => Vec::new(),
        };
        let run = hybrid_sandbox::TemplateRun {
            stdin,
            limits: r.limits,
        };
        let rt = runtime::py_get(py)?;
        let sandbox = self.inner.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let killer = std::sync::Arc::new(std::sync::Mutex::new(None::<hybrid_sandbox::KillHandle>));
        let k2 = killer.clone();
        rt.spawn(async move {
            let r = async {
                let (live, mut exec) = sandbox.start_template(&name, run).await?;
                *k2.lock().unwrap_or_else(|p| p.into_inner()) = Some(exec.kill_handle());
                let o = exec.wait().await.map_err(hybrid_sandbox::Error::Run);
                drop(exec);
                let _ = live.destroy().await;
                o
            }
            .await
            .map_err(Failure::from);
            let _ = tx.send(r);
        });
        let outcome = async move {
            rx.await.unwrap_or_else(|_| {
                Err(Failure::from(hybrid_sandbox::Error::Runtime(
                    std::io::Error::other("the template run's task ended"),
                )))
            })
        };
        let r = runtime::wait(py, outcome, None, || {
            if let Some(k) = killer.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                k.kill();
            }
        })?;
        r.map(PyOutcome::new).map_err(|f| f.to_pyerr(py))
    }

    /// The names of the policy's warm templates (`[templates.NAME]`).
    #[getter]
    fn templates(&self) -> Vec<String> {
        self.inner
            .policy()
            .template_names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Like `run`, as an asyncio future; cancelling it kills the run.
    #[pyo3(signature = (argv, options=None))]
    fn run_async<'py>(
        &self,
        py: Python<'py>,
        argv: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let w = args::workload(argv, options, false)?;
        let sandbox = self.inner.clone();
        runtime::to_asyncio(py, async move {
            let r = match Run::start(sandbox, w, false).await {
                Ok(run) => run.outcome().await,
                Err(f) => Err(f),
            };
            deliver_outcome(r)
        })
    }

    /// Starts `argv` with `options` and returns its `Process`.
    #[pyo3(signature = (argv, options=None))]
    fn spawn(
        &self,
        py: Python<'_>,
        argv: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyProcess> {
        let w = args::workload(argv, options, true)?;
        Ok(PyProcess::new(self.start(py, w, true)?))
    }

    /// Creates a live sandbox with `options` (a run's, without argv and stdin, plus
    /// idle_timeout, lifetime, tmp_size, file_size), with the GIL released.
    #[pyo3(signature = (options=None))]
    fn create(
        &self,
        py: Python<'_>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<crate::live::PyLive> {
        crate::live::create(py, &self.inner, options)
    }

    /// Loads a snapshot file written by `Snapshot.save` (options: those the saved
    /// sandbox was created with).
    #[pyo3(signature = (path, options=None))]
    fn load_snapshot(
        &self,
        py: Python<'_>,
        path: std::path::PathBuf,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<crate::snapshot::PySnapshot> {
        crate::snapshot::wait(py, crate::snapshot::load(&self.inner, path, options)?)
    }

    /// `load_snapshot` as an asyncio future.
    #[pyo3(signature = (path, options=None))]
    fn load_snapshot_async<'py>(
        &self,
        py: Python<'py>,
        path: std::path::PathBuf,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let load = crate::snapshot::load(&self.inner, path, options)?;
        crate::runtime::to_asyncio(py, async move { crate::snapshot::deliver(load.await) })
    }

    /// `create` as an asyncio future.
    #[pyo3(signature = (options=None))]
    fn create_async<'py>(
        &self,
        py: Python<'py>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::live::create_async(py, &self.inner, options)
    }

    fn __repr__(&self) -> String {
        format!(
            "Sandbox(policy={})",
            crate::outcome::quote(self.inner.policy().origin())
        )
    }
}
