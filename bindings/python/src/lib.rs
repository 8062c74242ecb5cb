//! The Python package `hybrid_sandbox`: its native module `hybrid_sandbox._native`.
//!
//! The public API is assembled in `python/hybrid_sandbox/__init__.py`: `run`,
//! `run_async`, `spawn` and `Sandbox` take keyword arguments there and pass them here as
//! a dict, which [`args`] reads into a workload. Every wait releases the GIL and looks
//! for Ctrl-C; async variants hand results to asyncio futures; one runtime (two worker
//! threads) drives every run.

mod args;
mod errors;
mod live;
mod outcome;
mod process;
mod runtime;
mod sandbox;
mod snapshot;

use pyo3::prelude::*;

/// Native part of hybrid_sandbox; use the `hybrid_sandbox` package.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<sandbox::PySandbox>()?;
    m.add_class::<process::PyProcess>()?;
    m.add_class::<outcome::PyOutcome>()?;
    m.add_class::<outcome::PyDecision>()?;
    m.add_class::<outcome::PyOutputEvent>()?;
    m.add_class::<live::PyLive>()?;
    m.add_class::<live::PyFileInfo>()?;
    m.add_class::<live::PyClient>()?;
    m.add_class::<snapshot::PySnapshot>()?;
    errors::register(m)?;
    runtime::register_exit(m)?;
    m.add("PIPE", args::PIPE)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
