//! `Outcome`, `Decision` and `OutputEvent`: read-only views of Rust values.

use hybrid_sandbox::{Decision, Outcome, OutputChunk, StreamKind};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use pyo3::IntoPyObjectExt;

/// A JSON value as Python objects (dict, list, str, int, float, bool, None).
pub(crate) fn json_to_py<'py>(
    py: Python<'py>,
    v: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    match v {
        Value::Null => Ok(py.None().into_bound(py)),
        Value::Bool(b) => b.into_bound_py_any(py),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.into_bound_py_any(py),
            (None, Some(u), _) => u.into_bound_py_any(py),
            (_, _, f) => f.unwrap_or(f64::NAN).into_bound_py_any(py),
        },
        Value::String(s) => s.into_bound_py_any(py),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            Ok(list.into_any())
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, item) in map {
                dict.set_item(k, json_to_py(py, item)?)?;
            }
            Ok(dict.into_any())
        }
    }
}

/// Text as Python's `repr` of a str writes it (single quotes).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Which backend ran the workload, and why, in words a person can read.
#[pyclass(frozen, module = "hybrid_sandbox", name = "Decision")]
#[derive(Debug, Clone)]
pub(crate) struct PyDecision {
    inner: Decision,
}

impl PyDecision {
    pub(crate) fn new(inner: Decision) -> PyDecision {
        PyDecision { inner }
    }
}

#[pymethods]
impl PyDecision {
    /// The backend that ran the workload: "container" or "microvm".
    #[getter]
    fn isolation(&self) -> &'static str {
        self.inner.isolation.as_str()
    }

    /// What the policy or the run asked for: "container", "microvm" or "auto".
    #[getter]
    fn requested(&self) -> &'static str {
        self.inner.requested.as_str()
    }

    /// The policy profile used.
    #[getter]
    fn profile(&self) -> &str {
        &self.inner.profile
    }

    /// The reasons, one per line of thought.
    #[getter]
    fn reasons(&self) -> Vec<String> {
        self.inner.reasons.clone()
    }

    /// The fallback the policy allowed and the run took: {"from": ..., "reason": ...}.
    #[getter]
    fn fallback_from<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_json(&self.inner.fallback_from))
    }

    /// The decision as a dict, as in `hsb run --json`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_json(&self.inner))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyDecision>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }

    fn __repr__(&self) -> String {
        let reasons: Vec<String> = self.inner.reasons.iter().map(|r| quote(r)).collect();
        format!(
            "Decision(isolation={}, requested={}, profile={}, reasons=[{}])",
            quote(self.isolation()),
            quote(self.requested()),
            quote(&self.inner.profile),
            reasons.join(", ")
        )
    }
}

/// Everything about a finished run.
#[pyclass(frozen, module = "hybrid_sandbox", name = "Outcome")]
#[derive(Debug)]
pub(crate) struct PyOutcome {
    inner: Outcome,
}

impl PyOutcome {
    pub(crate) fn new(inner: Outcome) -> PyOutcome {
        PyOutcome { inner }
    }
}

#[pymethods]
impl PyOutcome {
    /// The isolation used: "container" or "microvm".
    #[getter]
    fn isolation(&self) -> &'static str {
        self.inner.isolation.as_str()
    }

    /// Why the run ended: "exited", "signaled", "timeout", "memory_limit", "cpu_limit",
    /// "pids_limit", "output_limit", "policy_violation" or "killed".
    #[getter]
    fn termination(&self) -> &'static str {
        self.inner.termination.as_str()
    }

    /// The exit code when the workload exited by itself, else None.
    #[getter]
    fn exit_code(&self) -> Option<i32> {
        self.inner.exit_code
    }

    /// The signal that ended the workload, when one did, else None.
    #[getter]
    fn signal(&self) -> Option<i32> {
        self.inner.signal
    }

    /// The captured stdout (at most the output limit).
    #[getter]
    fn stdout<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.stdout)
    }

    /// The captured stderr (at most the output limit).
    #[getter]
    fn stderr<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.stderr)
    }

    /// Wall time from start to end, in seconds.
    #[getter]
    fn wall_time(&self) -> f64 {
        self.inner.wall_time.as_secs_f64()
    }

    /// CPU time of all the workload's processes, in seconds.
    #[getter]
    fn cpu_time(&self) -> f64 {
        self.inner.cpu_time.as_secs_f64()
    }

    /// The largest memory use seen, in bytes (0 when unknown).
    #[getter]
    fn peak_memory(&self) -> u64 {
        self.inner.peak_memory_bytes
    }

    /// Which backend, and why.
    #[getter]
    fn decision(&self) -> PyDecision {
        PyDecision {
            inner: self.inner.decision.clone(),
        }
    }

    /// What protected the host: namespaces, seccomp, Landlock, limits, network, VM.
    #[getter]
    fn enforcement<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_json(&self.inner.enforcement))
    }

    /// Syscalls the micro-VM does not implement, and how often each was called.
    #[getter]
    fn unimplemented_syscalls<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_json(&self.inner.unimplemented_syscalls))
    }

    /// True when the workload exited by itself with code 0.
    #[getter]
    fn success(&self) -> bool {
        self.inner.success()
    }

    /// The exit status a shell would report: the code, 128+signal, 124 on timeout.
    #[getter]
    fn shell_status(&self) -> i32 {
        self.inner.shell_status()
    }

    /// The network report as a dict (mode, every decision with its rule and bytes, the
    /// exposed ports and where the host reaches them), or None for a run without one.
    #[getter]
    fn network<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.inner.network {
            None => Ok(py.None().into_bound(py)),
            Some(n) => json_to_py(py, &serde_json::to_value(n).unwrap_or_default()),
        }
    }

    /// The outcome as a dict, as in `hsb run --json` (output as text there, lossily when
    /// it is not UTF-8; `stdout` and `stderr` give the exact bytes).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_json(&self.inner))
    }

    /// The outcome as JSON text, exactly as `hsb run --json` prints it.
    fn to_json(&self) -> String {
        serde_json::to_string(&self.inner).unwrap_or_default()
    }

    fn __repr__(&self) -> String {
        let code = self
            .inner
            .exit_code
            .map_or_else(|| "None".into(), |c| c.to_string());
        let sig = self
            .inner
            .signal
            .map_or_else(|| "None".into(), |c| c.to_string());
        format!(
            "Outcome(termination={}, exit_code={code}, signal={sig}, isolation={}, \
             stdout={} bytes, stderr={} bytes, wall_time={:.3})",
            quote(self.termination()),
            quote(self.isolation()),
            self.inner.stdout.len(),
            self.inner.stderr.len(),
            self.wall_time()
        )
    }
}

/// A chunk of output, as it arrives while the workload runs.
#[pyclass(frozen, module = "hybrid_sandbox", name = "OutputEvent")]
#[derive(Debug)]
pub(crate) struct PyOutputEvent {
    stream: StreamKind,
    data: Vec<u8>,
}

impl From<OutputChunk> for PyOutputEvent {
    fn from(c: OutputChunk) -> Self {
        PyOutputEvent {
            stream: c.stream,
            data: c.data,
        }
    }
}

#[pymethods]
impl PyOutputEvent {
    /// "stdout" or "stderr".
    #[getter]
    fn stream(&self) -> &'static str {
        match self.stream {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        }
    }

    /// The bytes.
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.data)
    }

    fn __repr__(&self) -> String {
        format!(
            "OutputEvent(stream={}, data={} bytes)",
            quote(self.stream()),
            self.data.len()
        )
    }
}
