//! Snapshots of live sandboxes: `live.snapshot()`, `live.fork()`, `snap.start()`, for
//! in-process sandboxes (the library's `Live::snapshot`) and a server's (its
//! `POST /v1/sandboxes/{id}/snapshot`, started by a create `from_snapshot`).

use hsb_client::api::{CreateRequest, SnapshotInfo};
use hsb_client::Client;
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;

use crate::errors::Failure;
use crate::live::PyLive;
use crate::runtime::{self, Deliver};

/// Where a snapshot is.
#[derive(Debug, Clone)]
enum Kind {
    /// Taken in this process.
    Local(hybrid_sandbox::Snapshot),
    /// On a server: its client and what it answered.
    Remote(Client, SnapshotInfo),
}

/// A snapshot of a live sandbox: starts any number of new live sandboxes that go on
/// from its state.
#[pyclass(frozen, module = "hybrid_sandbox._native", name = "Snapshot")]
#[derive(Debug)]
pub(crate) struct PySnapshot {
    kind: Kind,
}

/// Takes a snapshot of `live` (through its server when it has one).
pub(crate) async fn take(
    live: hybrid_sandbox::Live,
    remote: Option<(Client, String)>,
) -> Result<PySnapshot, Failure> {
    let kind = match remote {
        Some((c, id)) => {
            let info = c.snapshot(&id).await?;
            Kind::Remote(c, info)
        }
        None => Kind::Local(live.snapshot().await?),
    };
    Ok(PySnapshot { kind })
}

/// Loads a server's snapshot file (`Client.load_snapshot`) as a new snapshot there.
pub(crate) async fn upload(c: Client, path: std::path::PathBuf) -> Result<PySnapshot, Failure> {
    let info = c.upload_snapshot(&path).await?;
    Ok(PySnapshot {
        kind: Kind::Remote(c, info),
    })
}

/// Writes the snapshot of `kind` to a file at `path` (see `PySnapshot::save`).
async fn save(kind: Kind, path: std::path::PathBuf) -> Result<u64, Failure> {
    Ok(match kind {
        Kind::Local(s) => s.save(&path).await?,
        Kind::Remote(c, i) => c.download_snapshot(&i.snapshot_id, &path).await?,
    })
}

/// What an asyncio future of this module gives back.
pub(crate) fn deliver<T: for<'py> IntoPyObject<'py> + Send + 'static>(
    r: Result<T, Failure>,
) -> Deliver {
    Box::new(move |py: Python<'_>| match r {
        Ok(v) => v.into_py_any(py),
        Err(f) => Err(f.to_pyerr(py)),
    })
}

/// Starts a sandbox from `kind`.
async fn start(kind: Kind) -> Result<PyLive, Failure> {
    match kind {
        Kind::Local(s) => Ok(PyLive::local(s.start().await?)),
        Kind::Remote(c, info) => {
            let req = CreateRequest {
                from_snapshot: Some(info.snapshot_id.clone()),
                ..Default::default()
            };
            let made = c.create_detached(&req).await?;
            let id = made.id.clone();
            Ok(PyLive::remote(c.adopt(made), id, c))
        }
    }
}

/// `take` then `start`: a fork. A server's snapshot is deleted once started.
pub(crate) async fn fork(
    live: hybrid_sandbox::Live,
    remote: Option<(Client, String)>,
) -> Result<PyLive, Failure> {
    let snap = take(live, remote).await?;
    let started = start(snap.kind.clone()).await;
    if let Kind::Remote(c, info) = &snap.kind {
        let _ = c.delete_snapshot(&info.snapshot_id).await;
    }
    started
}

pub(crate) fn wait<T: Send>(
    py: Python<'_>,
    fut: impl std::future::Future<Output = Result<T, Failure>> + Send,
) -> PyResult<T> {
    runtime::wait(py, fut, None, || ())?.map_err(|f| f.to_pyerr(py))
}

#[pymethods]
impl PySnapshot {
    /// The server's id of the snapshot (None for one of this process).
    #[getter]
    fn id(&self) -> Option<String> {
        match &self.kind {
            Kind::Local(_) => None,
            Kind::Remote(_, i) => Some(i.snapshot_id.clone()),
        }
    }

    /// "container" or "microvm".
    #[getter]
    fn isolation(&self) -> &'static str {
        match &self.kind {
            Kind::Local(s) => s.inner().isolation().as_str(),
            Kind::Remote(_, i) => i.isolation.as_str(),
        }
    }

    /// What it keeps, in words (micro-VM: memory and processes; container: the
    /// writable layer only).
    #[getter]
    fn kept(&self) -> String {
        match &self.kind {
            Kind::Local(s) => s.kept(),
            Kind::Remote(_, i) => i.kept.clone(),
        }
    }

    /// Bytes of memory it holds on the host.
    #[getter]
    fn memory_bytes(&self) -> u64 {
        match &self.kind {
            Kind::Local(s) => s.memory_bytes(),
            Kind::Remote(_, i) => i.memory_bytes,
        }
    }

    /// Starts a new live sandbox from it (the GIL released).
    fn start(&self, py: Python<'_>) -> PyResult<PyLive> {
        wait(py, start(self.kind.clone()))
    }

    fn start_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let kind = self.kind.clone();
        runtime::to_asyncio(py, async move { deliver(start(kind).await) })
    }

    /// Writes the snapshot to a file at `path`. One of this process: a file
    /// `Sandbox.load_snapshot` loads (in this process or another); returns the bytes of
    /// guest memory written. A server's: the file the server signs
    /// (`GET /v1/snapshots/{id}/file`), which `Client.load_snapshot` loads into it or
    /// a server with the same key; returns the file's bytes. A container's snapshot
    /// saves its writable layer.
    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<u64> {
        wait(py, save(self.kind.clone(), path))
    }

    /// `save` as an asyncio future.
    fn save_async<'py>(
        &self,
        py: Python<'py>,
        path: std::path::PathBuf,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kind = self.kind.clone();
        runtime::to_asyncio(py, async move { deliver(save(kind, path).await) })
    }

    /// Waits until the snapshot is known to be intact: one loaded from a file starts
    /// sandboxes while its guest memory is still checked against the file's checksum
    /// (they fail, naming the file, if it does not match); raises that check's
    /// error. Returns at once for any other snapshot.
    fn verify(&self, py: Python<'_>) -> PyResult<()> {
        match &self.kind {
            Kind::Local(s) => {
                let s = s.clone();
                wait(py, async move { s.verify().await.map_err(Failure::from) })
            }
            Kind::Remote(..) => Ok(()),
        }
    }

    /// Deletes a server's snapshot (the sandboxes started from it go on); nothing for
    /// one of this process (it is freed with its last reference). Idempotent.
    fn delete(&self, py: Python<'_>) -> PyResult<()> {
        match &self.kind {
            Kind::Local(_) => Ok(()),
            Kind::Remote(c, i) => {
                let (c, id) = (c.clone(), i.snapshot_id.clone());
                wait(py, async move {
                    match c.delete_snapshot(&id).await {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == "no_such_snapshot" => Ok(()),
                        Err(e) => Err(Failure::from(e)),
                    }
                })
            }
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Snapshot(isolation={}, memory_bytes={}{})",
            crate::outcome::quote(self.isolation()),
            self.memory_bytes(),
            self.id()
                .map(|i| format!(", id={}", crate::outcome::quote(&i)))
                .unwrap_or_default()
        )
    }
}

/// Loads a snapshot file (`Sandbox.load_snapshot`): `options` are those the saved
/// sandbox was created with.
pub(crate) fn load(
    sandbox: &hybrid_sandbox::Sandbox,
    path: std::path::PathBuf,
    options: Option<&Bound<'_, pyo3::types::PyDict>>,
) -> PyResult<impl std::future::Future<Output = Result<PySnapshot, Failure>> + Send + 'static> {
    let (w, o) = crate::args::live_spec(options)?;
    let sandbox = sandbox.clone();
    Ok(async move {
        let snap = sandbox.load_snapshot(&path, w, o).await?;
        Ok(PySnapshot {
            kind: Kind::Local(snap),
        })
    })
}

/// Pauses `live` to disk (`LiveSandbox.pause_to_disk`).
pub(crate) fn pause_to_disk(
    py: Python<'_>,
    live: hybrid_sandbox::Live,
    server: bool,
    dir: std::path::PathBuf,
) -> PyResult<PySnapshot> {
    if server {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "pausing a server's sandbox to disk is not supported from the client",
        ));
    }
    let snap = wait(py, async move {
        live.pause_to_disk(&dir).await.map_err(Failure::from)
    })?;
    Ok(PySnapshot {
        kind: Kind::Local(snap),
    })
}
