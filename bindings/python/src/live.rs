//! Live sandboxes: `Sandbox.create(...)` in-process and `Client(url).create(...)`
//! against `hsb serve` give the same native `LiveSandbox` (both are the library's
//! `Live`). The Python wrapper (python/hybrid_sandbox/_live.py) adds keyword arguments,
//! context managers and the async variants' names.

use std::future::Future;
use std::path::PathBuf;

use hsb_client::api::{CreateRequest, MountSpec};
use hsb_client::{Client, ClientError};
use hybrid_sandbox::{FileKind, FileStat, Live, LiveStats, Sandbox, Workload};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use pyo3::IntoPyObjectExt;

use crate::errors::Failure;
use crate::outcome::{json_to_py, to_json, PyDecision, PyOutcome};
use crate::process::{deliver_outcome, PyProcess, Run};
use crate::runtime::{self, Deliver};

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure::with(e.kind(), e.chain(), e.exit_status())
    }
}

/// Metadata of a file in a live sandbox, as its workload sees it.
#[pyclass(frozen, get_all, module = "hybrid_sandbox", name = "FileInfo")]
#[derive(Debug, Clone)]
pub(crate) struct PyFileInfo {
    /// Its name (the last component of the path).
    name: String,
    /// "file", "dir", "symlink" or "other".
    kind: &'static str,
    /// Size in bytes.
    size: u64,
    /// Permission bits (0o644).
    mode: u32,
    /// Modification time, seconds since the epoch.
    mtime: i64,
    /// The target of a symlink.
    link_target: Option<String>,
}

impl From<FileStat> for PyFileInfo {
    fn from(f: FileStat) -> Self {
        PyFileInfo {
            name: f.name,
            kind: match f.kind {
                FileKind::File => "file",
                FileKind::Dir => "dir",
                FileKind::Symlink => "symlink",
                FileKind::Other => "other",
            },
            size: f.size,
            mode: f.mode,
            mtime: f.mtime,
            link_target: f.link_target,
        }
    }
}

#[pymethods]
impl PyFileInfo {
    fn __repr__(&self) -> String {
        format!(
            "FileInfo(name={}, kind={}, size={}, mode=0o{:o})",
            crate::outcome::quote(&self.name),
            crate::outcome::quote(self.kind),
            self.size,
            self.mode
        )
    }
}

fn stats_dict<'py>(py: Python<'py>, s: &LiveStats) -> PyResult<Bound<'py, PyAny>> {
    json_to_py(py, &to_json(s))
}

/// A live sandbox: create once, exec many, files in and out, pause, resume, close.
#[pyclass(frozen, module = "hybrid_sandbox._native", name = "LiveSandbox")]
#[derive(Debug)]
pub(crate) struct PyLive {
    live: Live,
    /// The server's id of a sandbox made through a `Client`.
    id: Option<String>,
    /// The client of a server's sandbox (its snapshots are the server's).
    client: Option<Client>,
}

fn block<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = Result<T, hybrid_sandbox::Error>> + Send,
    T: Send,
{
    runtime::wait(py, fut, None, || ())?.map_err(|e| Failure::from(e).to_pyerr(py))
}

fn asyncio<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, hybrid_sandbox::Error>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    runtime::to_asyncio(py, async move {
        let r = fut.await.map_err(Failure::from);
        Box::new(move |py: Python<'_>| match r {
            Ok(v) => v.into_py_any(py),
            Err(f) => Err(f.to_pyerr(py)),
        }) as Deliver
    })
}

fn bytes_of(data: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if data.is_instance_of::<PyBytes>() {
        data.extract()
    } else if let Ok(s) = data.extract::<String>() {
        Ok(s.into_bytes())
    } else {
        data.call_method0("__bytes__")?.extract()
    }
}

impl PyLive {
    /// An in-process sandbox.
    pub(crate) fn local(live: Live) -> PyLive {
        PyLive {
            live,
            id: None,
            client: None,
        }
    }

    /// A server's sandbox.
    pub(crate) fn remote(live: Live, id: String, client: Client) -> PyLive {
        PyLive {
            live,
            id: Some(id),
            client: Some(client),
        }
    }

    fn server(&self) -> Option<(Client, String)> {
        Some((self.client.clone()?, self.id.clone()?))
    }
}

#[pymethods]
impl PyLive {
    /// A snapshot of the sandbox (it goes on): starts any number of new sandboxes
    /// that go on from its state. A server's sandbox: the snapshot is the server's.
    fn snapshot(&self, py: Python<'_>) -> PyResult<crate::snapshot::PySnapshot> {
        let (live, remote) = (self.live.clone(), self.server());
        runtime::wait(py, crate::snapshot::take(live, remote), None, || ())?
            .map_err(|f| f.to_pyerr(py))
    }

    fn snapshot_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (live, remote) = (self.live.clone(), self.server());
        runtime::to_asyncio(py, async move {
            let r = crate::snapshot::take(live, remote).await;
            Box::new(move |py: Python<'_>| match r {
                Ok(s) => s.into_py_any(py),
                Err(f) => Err(f.to_pyerr(py)),
            }) as Deliver
        })
    }

    /// Pauses the sandbox to disk: its memory written to an unnamed file in `dir`,
    /// the sandbox destroyed (its memory freed); the snapshot's `start()` resumes it.
    fn pause_to_disk(
        &self,
        py: Python<'_>,
        dir: std::path::PathBuf,
    ) -> PyResult<crate::snapshot::PySnapshot> {
        crate::snapshot::pause_to_disk(py, self.live.clone(), self.client.is_some(), dir)
    }

    /// A snapshot and one start from it: a new live sandbox that goes on from this
    /// one's state, then diverges.
    fn fork(&self, py: Python<'_>) -> PyResult<PyLive> {
        let (live, remote) = (self.live.clone(), self.server());
        runtime::wait(py, crate::snapshot::fork(live, remote), None, || ())?
            .map_err(|f| f.to_pyerr(py))
    }

    fn fork_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (live, remote) = (self.live.clone(), self.server());
        runtime::to_asyncio(py, async move {
            crate::snapshot::deliver(crate::snapshot::fork(live, remote).await)
        })
    }

    /// The server's id of the sandbox (None for an in-process one).
    #[getter]
    fn id(&self) -> Option<String> {
        self.id.clone()
    }

    /// "container" or "microvm".
    #[getter]
    fn isolation(&self) -> &'static str {
        self.live.isolation().as_str()
    }

    /// "running", "paused" or "destroyed".
    #[getter]
    fn state(&self) -> &'static str {
        self.live.state().as_str()
    }

    /// Why it ended ("destroyed", "lifetime", "idle_timeout", "memory_limit",
    /// "failed"), once it has.
    #[getter]
    fn ended<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_json(&self.live.ended()))
    }

    /// Which backend, and why.
    #[getter]
    fn decision(&self) -> PyDecision {
        PyDecision::new(self.live.decision().clone())
    }

    /// What protects the host (the enforcement report).
    #[getter]
    fn enforcement<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_json(self.live.enforcement()))
    }

    /// The network report (network "egress"): mode, the broker's decisions so far, the
    /// exposed ports; None without a broker. A server's sandbox: mode and exposed ports.
    #[getter]
    fn network<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_json(&self.live.network()))
    }

    /// Runs `argv` to its end (the GIL released; Ctrl-C kills the exec).
    #[pyo3(signature = (argv, options=None))]
    fn exec(
        &self,
        py: Python<'_>,
        argv: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyOutcome> {
        let req = crate::args::exec_request(argv, options, false)?;
        let live = self.live.clone();
        let run = block(py, async move {
            live.exec_streaming(req)
                .await
                .map(|e| Run::from_exec(e, false))
        })?;
        let r = runtime::wait(py, run.outcome(), None, || run.kill_now())?;
        r.map(PyOutcome::new).map_err(|f| f.to_pyerr(py))
    }

    /// `exec` as an asyncio future; cancelling it kills the exec.
    #[pyo3(signature = (argv, options=None))]
    fn exec_async<'py>(
        &self,
        py: Python<'py>,
        argv: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req = crate::args::exec_request(argv, options, false)?;
        let live = self.live.clone();
        runtime::to_asyncio(py, async move {
            let r = match live.exec_streaming(req).await {
                Ok(e) => Run::from_exec(e, false).outcome().await,
                Err(e) => Err(e.into()),
            };
            deliver_outcome(r)
        })
    }

    /// Starts `argv` and returns its `Process` (output events, stdin with PIPE, kill,
    /// wait).
    #[pyo3(signature = (argv, options=None))]
    fn spawn(
        &self,
        py: Python<'_>,
        argv: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyProcess> {
        let req = crate::args::exec_request(argv, options, true)?;
        let live = self.live.clone();
        let run = block(py, async move {
            live.exec_streaming(req)
                .await
                .map(|e| Run::from_exec(e, true))
        })?;
        Ok(PyProcess::new(run))
    }

    /// Writes `data` (bytes or str) to the file at `path`; returns the bytes written.
    #[pyo3(signature = (path, data, mode=0o644))]
    fn write_file(
        &self,
        py: Python<'_>,
        path: String,
        data: &Bound<'_, PyAny>,
        mode: u32,
    ) -> PyResult<u64> {
        let data = bytes_of(data)?;
        let live = self.live.clone();
        block(py, async move {
            let s: hybrid_sandbox::ByteStream = Box::pin(std::io::Cursor::new(data));
            live.write_file_stream(&path, s, mode).await
        })
    }

    #[pyo3(signature = (path, data, mode=0o644))]
    fn write_file_async<'py>(
        &self,
        py: Python<'py>,
        path: String,
        data: &Bound<'_, PyAny>,
        mode: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let data = bytes_of(data)?;
        let live = self.live.clone();
        asyncio(py, async move {
            let s: hybrid_sandbox::ByteStream = Box::pin(std::io::Cursor::new(data));
            live.write_file_stream(&path, s, mode).await
        })
    }

    /// The contents of the file at `path`.
    fn read_file<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyBytes>> {
        let live = self.live.clone();
        let b = block(py, async move { live.read_file(&path).await })?;
        Ok(PyBytes::new(py, &b))
    }

    fn read_file_async<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyAny>> {
        let live = self.live.clone();
        runtime::to_asyncio(py, async move {
            let r = live.read_file(&path).await.map_err(Failure::from);
            Box::new(move |py: Python<'_>| match r {
                Ok(b) => PyBytes::new(py, &b).into_py_any(py),
                Err(f) => Err(f.to_pyerr(py)),
            }) as Deliver
        })
    }

    /// The entries of the directory at `path`, sorted by name.
    fn list_dir(&self, py: Python<'_>, path: String) -> PyResult<Vec<PyFileInfo>> {
        let live = self.live.clone();
        let v = block(py, async move { live.list_dir(&path).await })?;
        Ok(v.into_iter().map(PyFileInfo::from).collect())
    }

    fn list_dir_async<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyAny>> {
        let live = self.live.clone();
        asyncio(py, async move {
            live.list_dir(&path)
                .await
                .map(|v| v.into_iter().map(PyFileInfo::from).collect::<Vec<_>>())
        })
    }

    /// Metadata of `path` (a final symlink not followed).
    fn stat(&self, py: Python<'_>, path: String) -> PyResult<PyFileInfo> {
        let live = self.live.clone();
        block(py, async move { live.stat(&path).await }).map(PyFileInfo::from)
    }

    /// Makes a directory (and its parents with `parents`).
    #[pyo3(signature = (path, parents=false))]
    fn mkdir(&self, py: Python<'_>, path: String, parents: bool) -> PyResult<()> {
        let live = self.live.clone();
        block(py, async move { live.mkdir(&path, parents).await })
    }

    /// Removes a file, symlink or empty directory (any directory with `recursive`).
    #[pyo3(signature = (path, recursive=false))]
    fn remove(&self, py: Python<'_>, path: String, recursive: bool) -> PyResult<()> {
        let live = self.live.clone();
        block(py, async move { live.remove(&path, recursive).await })
    }

    #[pyo3(signature = (path, recursive=false))]
    fn remove_async<'py>(
        &self,
        py: Python<'py>,
        path: String,
        recursive: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let live = self.live.clone();
        asyncio(py, async move { live.remove(&path, recursive).await })
    }

    /// Renames `src` to `dst`.
    fn rename(&self, py: Python<'_>, src: String, dst: String) -> PyResult<()> {
        let live = self.live.clone();
        block(py, async move { live.rename(&src, &dst).await })
    }

    /// Stops every process of the sandbox. `to_disk=True` (a server's micro-VM
    /// sandbox): its state goes to a file of the server and its memory is freed until
    /// `resume`.
    #[pyo3(signature = (to_disk = false))]
    fn pause(&self, py: Python<'_>, to_disk: bool) -> PyResult<()> {
        let (live, remote) = (self.live.clone(), self.server());
        runtime::wait(py, pause(live, remote, to_disk), None, || ())?.map_err(|f| f.to_pyerr(py))
    }

    #[pyo3(signature = (to_disk = false))]
    fn pause_async<'py>(&self, py: Python<'py>, to_disk: bool) -> PyResult<Bound<'py, PyAny>> {
        let (live, remote) = (self.live.clone(), self.server());
        runtime::to_asyncio(py, async move {
            let r = pause(live, remote, to_disk).await;
            Box::new(move |py: Python<'_>| match r {
                Ok(()) => Ok(py.None()),
                Err(f) => Err(f.to_pyerr(py)),
            }) as Deliver
        })
    }

    /// Undoes `pause`.
    fn resume(&self, py: Python<'_>) -> PyResult<()> {
        let live = self.live.clone();
        block(py, async move { live.resume().await })
    }

    fn resume_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let live = self.live.clone();
        asyncio(py, async move { live.resume().await })
    }

    /// Changes limits while it runs (container: memory, pids, cpus); `None` leaves
    /// one as it is.
    #[pyo3(signature = (memory = None, pids = None, cpus = None))]
    fn update_limits(
        &self,
        py: Python<'_>,
        memory: Option<&Bound<'_, PyAny>>,
        pids: Option<&Bound<'_, PyAny>>,
        cpus: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let limits = crate::args::live_limits(memory, pids, cpus)?;
        let live = self.live.clone();
        block(py, async move { live.update_limits(&limits).await })
    }

    #[pyo3(signature = (memory = None, pids = None, cpus = None))]
    fn update_limits_async<'py>(
        &self,
        py: Python<'py>,
        memory: Option<&Bound<'py, PyAny>>,
        pids: Option<&Bound<'py, PyAny>>,
        cpus: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limits = crate::args::live_limits(memory, pids, cpus)?;
        let live = self.live.clone();
        asyncio(py, async move { live.update_limits(&limits).await })
    }

    /// What it uses now: memory_bytes, peak_memory_bytes, cpu_time_ms, processes,
    /// disk_bytes, execs_running, uptime_ms, paused_ms.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let live = self.live.clone();
        let s = block(py, async move { live.stats().await })?;
        stats_dict(py, &s)
    }

    fn stats_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let live = self.live.clone();
        runtime::to_asyncio(py, async move {
            let r = live.stats().await.map_err(Failure::from);
            Box::new(move |py: Python<'_>| match r {
                Ok(s) => Ok(stats_dict(py, &s)?.unbind()),
                Err(f) => Err(f.to_pyerr(py)),
            }) as Deliver
        })
    }

    /// Destroys the sandbox: everything in it killed. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let live = self.live.clone();
        block(py, async move { live.destroy().await })
    }

    fn close_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let live = self.live.clone();
        asyncio(py, async move { live.destroy().await })
    }

    fn __repr__(&self) -> String {
        format!(
            "LiveSandbox(isolation={}, state={}{})",
            crate::outcome::quote(self.isolation()),
            crate::outcome::quote(self.state()),
            self.id
                .as_ref()
                .map(|i| format!(", id={}", crate::outcome::quote(i)))
                .unwrap_or_default()
        )
    }
}

/// Creates a live sandbox in-process (the GIL released).
pub(crate) fn create(
    py: Python<'_>,
    sandbox: &Sandbox,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyLive> {
    let (w, o) = crate::args::live_spec(options)?;
    let sandbox = sandbox.clone();
    let live = block(py, async move { sandbox.create(w, o).await })?;
    Ok(PyLive {
        live,
        id: None,
        client: None,
    })
}

/// The same, as an asyncio future.
pub(crate) fn create_async<'py>(
    py: Python<'py>,
    sandbox: &Sandbox,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let (w, o) = crate::args::live_spec(options)?;
    let sandbox = sandbox.clone();
    asyncio(py, async move {
        sandbox.create(w, o).await.map(|live| PyLive {
            live,
            id: None,
            client: None,
        })
    })
}

/// The request of `Client.create` for the same options.
fn create_request(options: Option<&Bound<'_, PyDict>>) -> PyResult<CreateRequest> {
    let (w, o): (Workload, _) = crate::args::live_spec(options)?;
    if !w.egress.secrets.is_empty() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "secrets: a server takes secrets only from its own policy (its operator's \
             [profiles.NAME.secrets]); they never travel in a request",
        ));
    }
    Ok(CreateRequest {
        profile: w.profile,
        labels: w.labels,
        isolation: w.isolation,
        needs: w.needs,
        image: w.image,
        mounts: w
            .mounts
            .iter()
            .map(|m| MountSpec {
                source: m.source.display().to_string(),
                target: Some(m.target_path().display().to_string()),
                mode: m.mode,
            })
            .collect(),
        env: w.env,
        cwd: w.cwd,
        network: w.network,
        allow: w.egress.allow,
        deny: w.egress.deny,
        expose: w.egress.expose,
        limits: w.limits,
        tmpfs: w.tmpfs,
        lifetime: o.lifetime,
        idle_timeout: o.idle_timeout,
        from_snapshot: None,
        ..CreateRequest::default()
    })
}

/// Pauses `live`; to disk only for a server's sandbox (`remote`): an in-process one
/// goes to disk with `pause_to_disk(dir)`, which names the directory.
async fn pause(live: Live, remote: Option<(Client, String)>, to_disk: bool) -> Result<(), Failure> {
    if !to_disk {
        return Ok(live.pause().await?);
    }
    match remote {
        Some((c, id)) => {
            c.pause_to_disk(&id).await?;
            // The sandbox's own pause now changes nothing on the server and answers its
            // state (paused), which the handle keeps.
            Ok(live.pause().await?)
        }
        None => Err(Failure::from(hybrid_sandbox::Error::Live(
            hybrid_sandbox::LiveError::Unsupported(
                "pause(to_disk=True) is for a server's sandbox; an in-process one goes to disk with pause_to_disk(dir)".into(),
            ),
        ))),
    }
}

/// A client of `hsb serve` (`unix:PATH` or `http://HOST:PORT`, a bearer token).
#[pyclass(frozen, module = "hybrid_sandbox._native", name = "Client")]
#[derive(Debug)]
pub(crate) struct PyClient {
    client: Client,
}

fn client_block<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = Result<T, ClientError>> + Send,
    T: Send,
{
    runtime::wait(py, fut, None, || ())?.map_err(|e| Failure::from(e).to_pyerr(py))
}

#[pymethods]
impl PyClient {
    #[new]
    #[pyo3(signature = (url, token=None, ca_file=None))]
    fn new(url: String, token: Option<String>, ca_file: Option<PathBuf>) -> PyResult<PyClient> {
        let client =
            Client::from_url(&url, token).map_err(pyo3::exceptions::PyValueError::new_err)?;
        let client = match ca_file {
            Some(f) => client.with_ca_file(f),
            None => client,
        };
        Ok(PyClient { client })
    }

    /// The server's address.
    #[getter]
    fn url(&self) -> String {
        self.client.endpoint().to_string()
    }

    /// Creates a live sandbox on the server; closed (destroyed) by `close()`, or when
    /// the object is dropped.
    #[pyo3(signature = (options=None))]
    fn create(&self, py: Python<'_>, options: Option<&Bound<'_, PyDict>>) -> PyResult<PyLive> {
        let req = create_request(options)?;
        let c = self.client.clone();
        let (live, id) = client_block(py, async move {
            let info = c.create_detached(&req).await?;
            let live = c.adopt(info.clone());
            Ok((live, info.id))
        })?;
        Ok(PyLive {
            live,
            id: Some(id),
            client: Some(self.client.clone()),
        })
    }

    #[pyo3(signature = (options=None))]
    fn create_async<'py>(
        &self,
        py: Python<'py>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req = create_request(options)?;
        let c = self.client.clone();
        runtime::to_asyncio(py, async move {
            let r = match c.create_detached(&req).await {
                Ok(info) => Ok(PyLive {
                    live: c.adopt(info.clone()),
                    id: Some(info.id),
                    client: Some(c.clone()),
                }),
                Err(e) => Err(Failure::from(e)),
            };
            Box::new(move |py: Python<'_>| match r {
                Ok(l) => l.into_py_any(py),
                Err(f) => Err(f.to_pyerr(py)),
            }) as Deliver
        })
    }

    /// Loads a snapshot file a server's snapshot was saved to (`Snapshot.save`) as a
    /// new snapshot on this server (the one that signed it, or one with the same
    /// `--snapshot-key`; for the owner that saved it).
    fn load_snapshot(
        &self,
        py: Python<'_>,
        path: std::path::PathBuf,
    ) -> PyResult<crate::snapshot::PySnapshot> {
        crate::snapshot::wait(py, crate::snapshot::upload(self.client.clone(), path))
    }

    /// `load_snapshot` as an asyncio future.
    fn load_snapshot_async<'py>(
        &self,
        py: Python<'py>,
        path: std::path::PathBuf,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.client.clone();
        runtime::to_asyncio(py, async move {
            crate::snapshot::deliver(crate::snapshot::upload(c, path).await)
        })
    }

    /// A sandbox of yours that exists on the server, by id (dropping it leaves it).
    fn attach(&self, py: Python<'_>, id: String) -> PyResult<PyLive> {
        let c = self.client.clone();
        let i = id.clone();
        let live = client_block(py, async move { c.attach(&i).await })?;
        Ok(PyLive {
            live,
            id: Some(id),
            client: Some(self.client.clone()),
        })
    }

    /// Your sandboxes on the server, as dicts (id, isolation, state, decision, ...).
    fn list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.client.clone();
        let v = client_block(py, async move { c.list().await })?;
        json_to_py(py, &to_json(&v))
    }

    fn __repr__(&self) -> String {
        format!("Client({})", crate::outcome::quote(&self.url()))
    }
}
