//! The exception hierarchy, and how Rust failures become Python exceptions.

// The exception types are defined by pyo3's macro, which generates public items.
#![allow(missing_debug_implementations, unreachable_pub)]

use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(
    hybrid_sandbox,
    SandboxError,
    PyException,
    "Base of every error of hybrid_sandbox. `kind` names it (`policy`, `unavailable`, \
     `program_not_found`, ...) and `exit_status` is what `hsb run` would exit with."
);
pyo3::create_exception!(
    hybrid_sandbox,
    PolicyError,
    SandboxError,
    "The policy could not be loaded, or rejects the run's options."
);
pyo3::create_exception!(
    hybrid_sandbox,
    BackendUnavailable,
    SandboxError,
    "The isolation chosen cannot be used on this host; the message says why and what to \
     change. Nothing is ever downgraded silently."
);
pyo3::create_exception!(
    hybrid_sandbox,
    ProgramNotFound,
    SandboxError,
    "The program does not exist inside the sandbox."
);
pyo3::create_exception!(
    hybrid_sandbox,
    NotExecutable,
    SandboxError,
    "The program exists in the sandbox but cannot be executed."
);
pyo3::create_exception!(
    hybrid_sandbox,
    MountError,
    SandboxError,
    "A mount could not be prepared (a missing host path, for one)."
);
pyo3::create_exception!(
    hybrid_sandbox,
    ImageError,
    SandboxError,
    "The image could not be found, imported or used (a digest that does not match, a \
     hostile layer, a user the image does not have)."
);
pyo3::create_exception!(
    hybrid_sandbox,
    SetupError,
    SandboxError,
    "The sandbox could not be set up, or the backend cannot do what the run asks for."
);
pyo3::create_exception!(
    hybrid_sandbox,
    RunError,
    SandboxError,
    "The sandbox started, but its outcome could not be collected."
);

/// A failure of the library, kept apart from Python until it is raised (so that it can
/// cross threads and be raised by several waiters).
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    kind: &'static str,
    message: String,
    exit_status: i32,
}

impl Failure {
    /// A failure outside the facade's errors (the runtime).
    pub(crate) fn new(kind: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            exit_status: 125,
        }
    }

    /// A failure with its kind, message and exit status (a server's errors).
    pub(crate) fn with(kind: &'static str, message: String, exit_status: i32) -> Failure {
        Failure {
            kind,
            message,
            exit_status,
        }
    }

    /// The Python exception: its class by kind, with `kind` and `exit_status` set.
    pub(crate) fn to_pyerr(&self, py: Python<'_>) -> PyErr {
        let msg = self.message.clone();
        let err = match self.kind {
            "policy" => PolicyError::new_err(msg),
            "unavailable" => BackendUnavailable::new_err(msg),
            "program_not_found" => ProgramNotFound::new_err(msg),
            "not_executable" => NotExecutable::new_err(msg),
            "mount" => MountError::new_err(msg),
            "image" => ImageError::new_err(msg),
            "setup" | "unsupported" => SetupError::new_err(msg),
            "run" | "runtime" => RunError::new_err(msg),
            _ => SandboxError::new_err(msg),
        };
        let value = err.value(py);
        // Setting attributes on a fresh exception instance cannot fail but by memory
        // exhaustion; the exception is still right without them.
        let _ = value.setattr("kind", self.kind);
        let _ = value.setattr("exit_status", self.exit_status);
        err
    }
}

impl From<hybrid_sandbox::Error> for Failure {
    fn from(e: hybrid_sandbox::Error) -> Failure {
        Failure {
            kind: e.kind(),
            message: e.chain(),
            exit_status: e.exit_status(),
        }
    }
}

/// Adds the exception types to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("SandboxError", py.get_type::<SandboxError>())?;
    m.add("PolicyError", py.get_type::<PolicyError>())?;
    m.add("BackendUnavailable", py.get_type::<BackendUnavailable>())?;
    m.add("ProgramNotFound", py.get_type::<ProgramNotFound>())?;
    m.add("NotExecutable", py.get_type::<NotExecutable>())?;
    m.add("MountError", py.get_type::<MountError>())?;
    m.add("ImageError", py.get_type::<ImageError>())?;
    m.add("SetupError", py.get_type::<SetupError>())?;
    m.add("RunError", py.get_type::<RunError>())?;
    Ok(())
}
