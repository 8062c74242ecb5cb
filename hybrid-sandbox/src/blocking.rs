//! The same API for callers without an async runtime.

use std::path::Path;

use sandbox_core::{Outcome, Plan, Policy, Workload};

use crate::sandbox::Error;

/// A [`crate::Sandbox`] with its own small runtime; `run` blocks the calling thread.
/// Safe to use from several threads at once.
#[derive(Debug)]
pub struct Sandbox {
    inner: crate::Sandbox,
    rt: tokio::runtime::Runtime,
}

impl Sandbox {
    fn new(inner: crate::Sandbox) -> Result<Sandbox, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hsb-runtime")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        Ok(Sandbox { inner, rt })
    }

    /// Under `policy`.
    pub fn from_policy(policy: Policy) -> Result<Sandbox, Error> {
        Sandbox::new(crate::Sandbox::from_policy(policy))
    }

    /// Under the policy in `path`.
    pub fn from_policy_file(path: impl AsRef<Path>) -> Result<Sandbox, Error> {
        Sandbox::new(crate::Sandbox::from_policy_file(path)?)
    }

    /// Under the embedded default policy.
    ///
    /// ```no_run
    /// use hybrid_sandbox::{blocking::Sandbox, Workload};
    /// let sb = Sandbox::with_default_policy().unwrap();
    /// let out = sb.run(Workload::new("echo", ["hi"])).unwrap();
    /// assert_eq!(out.stdout, b"hi\n");
    /// ```
    pub fn with_default_policy() -> Result<Sandbox, Error> {
        Sandbox::new(crate::Sandbox::with_default_policy())
    }

    /// The async sandbox inside.
    pub fn inner(&self) -> &crate::Sandbox {
        &self.inner
    }

    /// The plan for a workload.
    pub fn plan(&self, workload: &Workload) -> Result<Plan, Error> {
        self.inner.plan(workload)
    }

    /// Runs a workload to its end, blocking.
    pub fn run(&self, workload: Workload) -> Result<Outcome, Error> {
        self.rt.block_on(self.inner.run(workload))
    }

    /// Runs `f` on this sandbox's runtime (for streaming from synchronous code).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}
