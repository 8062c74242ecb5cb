//! The same API for callers without an async runtime.

use std::path::Path;
use std::sync::Arc;

use sandbox_core::{
    ExecRequest, FileStat, LiveOptions, LiveState, LiveStats, Outcome, Plan, Policy, Workload,
};

use crate::sandbox::Error;

/// A [`crate::Sandbox`] with its own small runtime; `run` blocks the calling thread.
/// Safe to use from several threads at once.
#[derive(Debug)]
pub struct Sandbox {
    inner: crate::Sandbox,
    rt: Arc<tokio::runtime::Runtime>,
}

impl Sandbox {
    fn new(inner: crate::Sandbox) -> Result<Sandbox, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hsb-runtime")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        Ok(Sandbox {
            inner,
            rt: Arc::new(rt),
        })
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

    /// Creates a live sandbox (see [`crate::Sandbox::create`]).
    ///
    /// ```
    /// use hybrid_sandbox::{blocking::Sandbox, LiveOptions, Workload};
    /// let sb = Sandbox::with_default_policy().unwrap();
    /// let live = sb.create(Workload::default(), LiveOptions::default()).unwrap();
    /// live.write_file("/tmp/n", "41").unwrap();
    /// let out = live.exec(["sh", "-c", "echo $(( $(cat /tmp/n) + 1 ))"]).unwrap();
    /// assert_eq!(out.stdout, b"42\n");
    /// live.destroy().unwrap();
    /// ```
    pub fn create(&self, spec: Workload, options: LiveOptions) -> Result<Live, Error> {
        let inner = self.rt.block_on(self.inner.create(spec, options))?;
        Ok(Live {
            inner,
            rt: self.rt.clone(),
        })
    }
}

/// A [`crate::Live`] for callers without an async runtime: every method blocks. Cheap to
/// clone; dropping the last clone destroys the sandbox.
#[derive(Debug, Clone)]
pub struct Live {
    inner: crate::Live,
    rt: Arc<tokio::runtime::Runtime>,
}

impl Live {
    /// The async handle inside.
    pub fn inner(&self) -> &crate::Live {
        &self.inner
    }

    /// Running, paused or destroyed.
    pub fn state(&self) -> LiveState {
        self.inner.state()
    }

    /// Runs `argv` to its end.
    pub fn exec<I, S>(&self, argv: I) -> Result<Outcome, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rt.block_on(self.inner.exec(argv))
    }

    /// Runs a full request to its end.
    pub fn exec_with(&self, request: ExecRequest) -> Result<Outcome, Error> {
        self.rt.block_on(self.inner.exec_with(request))
    }

    /// Writes a file (mode 0644); returns the bytes written.
    pub fn write_file(&self, path: &str, data: impl Into<Vec<u8>>) -> Result<u64, Error> {
        self.rt.block_on(self.inner.write_file(path, data))
    }

    /// Reads a file.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.rt.block_on(self.inner.read_file(path))
    }

    /// Lists a directory.
    pub fn list_dir(&self, path: &str) -> Result<Vec<FileStat>, Error> {
        self.rt.block_on(self.inner.list_dir(path))
    }

    /// Metadata of a path.
    pub fn stat(&self, path: &str) -> Result<FileStat, Error> {
        self.rt.block_on(self.inner.stat(path))
    }

    /// Makes a directory.
    pub fn mkdir(&self, path: &str, parents: bool) -> Result<(), Error> {
        self.rt.block_on(self.inner.mkdir(path, parents))
    }

    /// Removes a path.
    pub fn remove(&self, path: &str, recursive: bool) -> Result<(), Error> {
        self.rt.block_on(self.inner.remove(path, recursive))
    }

    /// Renames a path.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), Error> {
        self.rt.block_on(self.inner.rename(from, to))
    }

    /// Pauses every process.
    pub fn pause(&self) -> Result<(), Error> {
        self.rt.block_on(self.inner.pause())
    }

    /// Resumes.
    pub fn resume(&self) -> Result<(), Error> {
        self.rt.block_on(self.inner.resume())
    }

    /// What it uses now.
    pub fn stats(&self) -> Result<LiveStats, Error> {
        self.rt.block_on(self.inner.stats())
    }

    /// Changes limits while it lives (see [`crate::Live::update_limits`]).
    pub fn update_limits(&self, limits: &crate::Limits) -> Result<(), Error> {
        self.rt.block_on(self.inner.update_limits(limits))
    }

    /// Destroys it (idempotent).
    pub fn destroy(&self) -> Result<(), Error> {
        self.rt.block_on(self.inner.destroy())
    }
}
