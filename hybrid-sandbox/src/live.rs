//! Live sandboxes: create once, then exec many commands, move files in and out, pause
//! and resume, and destroy — through the same policy decision, floor, image
//! preparation and enforcement report as a run. Backend-agnostic: the backend the
//! policy picks implements [`LiveSandbox`] (or says it cannot).

use std::sync::Arc;

use sandbox_core::live::{read_to_end, ByteStream, READ_TO_END_MAX};
use sandbox_core::{
    Decision, EndReason, EnforcementReport, ExecRequest, Execution, FileData, FileStat, Floor,
    Isolation, Limits, LiveError, LiveOptions, LiveSandbox, LiveState, LiveStats, Outcome,
    Workload,
};

use crate::sandbox::{Error, Sandbox};

#[derive(Debug)]
struct Inner {
    // Dropped first: the sandbox goes before the image layers it stands on.
    sandbox: Arc<dyn LiveSandbox>,
    // Shared with its snapshots and the sandboxes started from them.
    _layers: Option<Arc<sandbox_images::LayersInUse>>,
    // The floor its limits were decided under (the policy's and the operator's): new
    // limits stay within it. `None` for a server's sandbox (the server checks).
    floor: Option<Arc<Floor>>,
}

/// A snapshot of a live sandbox ([`Live::snapshot`]): starts any number of new live
/// sandboxes that go on from its state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Snapshot {
    snapshot: Arc<dyn sandbox_core::LiveSnapshot>,
    layers: Option<Arc<sandbox_images::LayersInUse>>,
    floor: Option<Arc<Floor>>,
}

impl Snapshot {
    /// Starts a new live sandbox from the snapshot.
    pub async fn start(&self) -> Result<Live, Error> {
        let sandbox = self.snapshot.start().await.map_err(live)?;
        Ok(Live {
            inner: Arc::new(Inner {
                sandbox,
                _layers: self.layers.clone(),
                floor: self.floor.clone(),
            }),
        })
    }

    /// Writes the snapshot to a file at `path` (created; an existing file is
    /// replaced only once the new one is complete; not synced to the disk: a file a
    /// host crash cut short is refused by the load's checks) that [`Sandbox::load_snapshot`]
    /// loads, in this process or another of this build on this host. A micro-VM's:
    /// returns the bytes of guest memory written (zero pages are holes); what a file
    /// cannot hold (sockets, epoll, terminals, shared mappings) is refused, naming it.
    /// A container's: its writable layer (`/tmp` and its tmpfs mounts), checksummed;
    /// returns the bytes of file data.
    pub async fn save(&self, path: impl AsRef<std::path::Path>) -> Result<u64, Error> {
        self.snapshot.save(path.as_ref()).await.map_err(live)
    }

    /// [`Snapshot::save`] into `file`, empty and open for writing: an unnamed file
    /// (`O_TMPFILE`) leaves nothing behind if the process dies while it is written.
    pub async fn save_to(&self, file: &std::fs::File) -> Result<u64, Error> {
        self.snapshot.save_to(file).await.map_err(live)
    }

    /// Waits until the snapshot is known to be intact. One loaded from a file
    /// ([`Sandbox::load_snapshot`]) starts sandboxes at once while its guest memory is
    /// still being checked against the file's checksum (a sandbox started from a file
    /// found corrupt fails, naming the file); this returns that check's outcome.
    /// Immediate for a snapshot taken in this process.
    pub async fn verify(&self) -> Result<(), Error> {
        self.snapshot.verify().await.map_err(live)
    }

    /// What it keeps, in words.
    pub fn kept(&self) -> String {
        self.snapshot.kept()
    }

    /// Bytes of memory it holds on the host.
    pub fn memory_bytes(&self) -> u64 {
        self.snapshot.memory_bytes()
    }

    /// The backend's snapshot.
    pub fn inner(&self) -> &Arc<dyn sandbox_core::LiveSnapshot> {
        &self.snapshot
    }

    /// A sandbox started from this snapshot by the backend, as a [`Live`] that keeps
    /// the image layers it stands on.
    pub(crate) fn adopt(&self, sandbox: Arc<dyn LiveSandbox>) -> Live {
        Live {
            inner: Arc::new(Inner {
                sandbox,
                _layers: self.layers.clone(),
                floor: self.floor.clone(),
            }),
        }
    }
}

/// A live sandbox. Cheap to clone (all clones are the same sandbox); it is destroyed by
/// [`Live::destroy`], when its `lifetime` or `idle_timeout` passes, or when the last
/// clone is dropped.
#[derive(Debug, Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

impl Sandbox {
    /// Creates a live sandbox from `spec` — a [`Workload`] without a program: profile,
    /// labels, isolation, image or mounts, env, limits, network — and `options`
    /// (`lifetime`, `idle_timeout`). The policy decides as for a run; the sandbox then
    /// waits for execs and file operations.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hybrid_sandbox::{LiveOptions, Sandbox, Workload};
    /// let live = Sandbox::with_default_policy()
    ///     .create(Workload::default(), LiveOptions::default())
    ///     .await?;
    /// live.write_file("/tmp/hello.sh", "echo hello from $0").await?;
    /// let out = live.exec(["sh", "/tmp/hello.sh"]).await?;
    /// assert_eq!(out.stdout, b"hello from /tmp/hello.sh\n");
    /// live.destroy().await?;
    /// # Ok::<(), hybrid_sandbox::Error>(()) }).unwrap();
    /// ```
    pub async fn create(&self, spec: Workload, options: LiveOptions) -> Result<Live, Error> {
        options.check().map_err(live)?;
        let (plan, layers) = self.live_plan(&spec).await?;
        let sandbox = self
            .backend(plan.decision.isolation)
            .create(plan, options)
            .await
            .map_err(Error::Spawn)?;
        Ok(Live {
            inner: Arc::new(Inner {
                sandbox,
                _layers: layers,
                floor: self.effective_floor(),
            }),
        })
    }

    /// Loads a snapshot file that [`Snapshot::save`] wrote (in this process or
    /// another, of this build, on this host). `spec` and `options` are those the saved
    /// sandbox was created with: the policy decides again, and the file is refused
    /// unless the sandbox it describes is the one the policy gives now (same mounts,
    /// image, limits, network, environment). The file is checked at once: one from
    /// another version, a truncated one, or one whose header, state or memory table
    /// does not match its checksum is refused with an error naming it and what is
    /// wrong. Its guest memory is not read here (pages come in as the guest touches
    /// them): a thread checks it against its checksum while sandboxes already start
    /// from it; if it does not match, they fail naming the file and later starts are
    /// refused ([`Snapshot::verify`] waits for that check). Each [`Snapshot::start`]
    /// reopens the host files the guest held and checks they did not change.
    /// A container's file (its writable layer) is read and checked whole here (its
    /// checksum, every path inside the sandbox's own filesystems); each start writes
    /// it back through the new sandbox's own file API.
    pub async fn load_snapshot(
        &self,
        path: impl AsRef<std::path::Path>,
        spec: Workload,
        options: LiveOptions,
    ) -> Result<Snapshot, Error> {
        let path = path.as_ref();
        let open = || {
            std::fs::File::open(path).map_err(|e| {
                Error::Live(LiveError::Failed(
                    format!(
                        "loading the snapshot file {}: cannot open it",
                        path.display()
                    ),
                    e,
                ))
            })
        };
        self.load(open, &path.display().to_string(), spec, options)
            .await
    }

    /// [`Sandbox::load_snapshot`] of a file already open for reading (an unnamed
    /// one, say); `name` names it in errors. The snapshot keeps the file open.
    pub async fn load_snapshot_file(
        &self,
        file: std::fs::File,
        name: &str,
        spec: Workload,
        options: LiveOptions,
    ) -> Result<Snapshot, Error> {
        self.load(|| Ok(file), name, spec, options).await
    }

    /// Loads the snapshot file `open` gives once the policy has decided for `spec`.
    async fn load(
        &self,
        open: impl FnOnce() -> Result<std::fs::File, Error>,
        name: &str,
        spec: Workload,
        options: LiveOptions,
    ) -> Result<Snapshot, Error> {
        options.check().map_err(live)?;
        let (plan, layers) = self.live_plan(&spec).await?;
        let snapshot = match plan.decision.isolation {
            sandbox_core::Isolation::MicroVm => {
                backend_microvm::load_snapshot_file(open()?, name, plan, options).await
            }
            sandbox_core::Isolation::Container => {
                backend_container::load_snapshot_file(open()?, name, plan, options).await
            }
        }
        .map_err(live)?;
        Ok(Snapshot {
            snapshot,
            layers,
            floor: self.effective_floor(),
        })
    }

    /// The plan of a live sandbox for `spec`, its image prepared.
    async fn live_plan(
        &self,
        spec: &Workload,
    ) -> Result<(sandbox_core::Plan, Option<Arc<sandbox_images::LayersInUse>>), Error> {
        let mut plan = self
            .policy()
            .resolve_live_with_floor(spec, &self.host_support(), self.floor())
            .map_err(Error::Policy)?;
        let layers = if plan.image.is_some() {
            let store = self.images().clone();
            let w = spec.clone();
            let (p, layers) = tokio::task::spawn_blocking(move || {
                let mut plan = plan;
                crate::image::prepare_as(&store, &mut plan, &w, true).map(|l| (plan, l))
            })
            .await
            .map_err(|e| Error::Runtime(std::io::Error::other(e)))??;
            plan = p;
            layers
        } else {
            None
        };
        Ok((plan, layers.map(Arc::new)))
    }
}

fn live(e: LiveError) -> Error {
    Error::Live(e)
}

impl Live {
    /// A live sandbox that lives elsewhere (a server's, through `hsb-client`), behind
    /// the same API as the library's own.
    pub fn from_sandbox(sandbox: Arc<dyn LiveSandbox>) -> Live {
        Live {
            inner: Arc::new(Inner {
                sandbox,
                _layers: None,
                floor: None,
            }),
        }
    }

    /// Takes a snapshot of the sandbox (micro-VM: its memory, shared copy-on-write,
    /// and every process with its open files and buffers; the sandbox goes on). Start
    /// sandboxes from it with [`Snapshot::start`].
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use hybrid_sandbox::{LiveOptions, Sandbox, Workload};
    /// # let live = Sandbox::with_default_policy().create(Workload::default(), LiveOptions::default()).await?;
    /// live.write_file("/tmp/state", "before").await?;
    /// let snap = live.snapshot().await?;
    /// let clone = snap.start().await?;
    /// assert_eq!(clone.read_file("/tmp/state").await?, b"before");
    /// // Each goes its own way.
    /// clone.write_file("/tmp/state", "after").await?;
    /// assert_eq!(live.read_file("/tmp/state").await?, b"before");
    /// // fork() is a snapshot and one start.
    /// let other = live.fork().await?;
    /// assert_eq!(other.read_file("/tmp/state").await?, b"before");
    /// # Ok::<(), hybrid_sandbox::Error>(()) }).unwrap();
    /// ```
    pub async fn snapshot(&self) -> Result<Snapshot, Error> {
        let snapshot = self.inner.sandbox.snapshot().await.map_err(live)?;
        Ok(Snapshot {
            snapshot,
            layers: self.inner._layers.clone(),
            floor: self.inner.floor.clone(),
        })
    }

    /// Pauses the sandbox to disk: its state is kept in a snapshot whose guest memory is
    /// an unnamed file in the directory `dir` (removed with the snapshot: nothing is
    /// left there), and the sandbox itself is destroyed, its memory freed from the host.
    /// [`Snapshot::start`] resumes it where it was, its `lifetime` still counted from
    /// its creation (resumed past it, it ends at once). Micro-VM only (the container's
    /// backend says it is not supported); refused, the sandbox going on, as
    /// [`Live::snapshot`] refuses.
    pub async fn pause_to_disk(&self, dir: impl AsRef<std::path::Path>) -> Result<Snapshot, Error> {
        let snapshot = self
            .inner
            .sandbox
            .pause_to_disk(dir.as_ref())
            .await
            .map_err(live)?;
        Ok(Snapshot {
            snapshot,
            layers: self.inner._layers.clone(),
            floor: self.inner.floor.clone(),
        })
    }

    /// A snapshot and one start from it: a new live sandbox that goes on from this
    /// one's state, then diverges from it.
    pub async fn fork(&self) -> Result<Live, Error> {
        // The backend's own (a micro-VM's makes the new VM while it takes the
        // snapshot).
        let sandbox = self.inner.sandbox.fork().await.map_err(live)?;
        Ok(Live {
            inner: Arc::new(Inner {
                sandbox,
                _layers: self.inner._layers.clone(),
                floor: self.inner.floor.clone(),
            }),
        })
    }

    /// The backend's sandbox, for callers that want the trait itself.
    pub fn inner(&self) -> &Arc<dyn LiveSandbox> {
        &self.inner.sandbox
    }

    /// The isolation in use.
    pub fn isolation(&self) -> Isolation {
        self.inner.sandbox.isolation()
    }

    /// Which backend, and why.
    pub fn decision(&self) -> &Decision {
        self.inner.sandbox.decision()
    }

    /// What protects the host.
    pub fn enforcement(&self) -> &EnforcementReport {
        self.inner.sandbox.enforcement()
    }

    /// Running, paused or destroyed.
    pub fn state(&self) -> LiveState {
        self.inner.sandbox.state()
    }

    /// Why it ended, once destroyed.
    pub fn ended(&self) -> Option<EndReason> {
        self.inner.sandbox.ended()
    }

    /// Runs `argv` to its end (stdin empty, the sandbox's environment and working
    /// directory) and returns its outcome, in the same shape as a run's.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use hybrid_sandbox::{LiveOptions, Sandbox, Workload, Termination};
    /// # let live = Sandbox::with_default_policy().create(Workload::default(), LiveOptions::default()).await?;
    /// let out = live.exec(["sh", "-c", "echo $((6 * 7)); exit 3"]).await?;
    /// assert_eq!((out.termination, out.exit_code), (Termination::Exited, Some(3)));
    /// assert_eq!(out.stdout, b"42\n");
    /// # Ok::<(), hybrid_sandbox::Error>(()) }).unwrap();
    /// ```
    pub async fn exec<I, S>(&self, argv: I) -> Result<Outcome, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exec_with(ExecRequest::new(argv)).await
    }

    /// Runs a full request (env, cwd, stdin, tty, limits) to its end.
    pub async fn exec_with(&self, request: ExecRequest) -> Result<Outcome, Error> {
        let mut e = self.exec_streaming(request).await?;
        e.wait().await.map_err(Error::Run)
    }

    /// Starts a request; stream its output ([`Execution::take_output`]), write its stdin
    /// ([`Execution::take_stdin`] with [`crate::Stdin::Stream`]), signal or resize it,
    /// and wait for its outcome. Dropping it before it ends kills it.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use hybrid_sandbox::{ExecRequest, LiveOptions, Sandbox, Stdin, Workload};
    /// # let live = Sandbox::with_default_policy().create(Workload::default(), LiveOptions::default()).await?;
    /// let mut req = ExecRequest::new(["cat"]);
    /// req.stdin = Stdin::Stream;
    /// let mut exec = live.exec_streaming(req).await?;
    /// let stdin = exec.take_stdin().unwrap();
    /// stdin.write(b"typed\n".to_vec()).await.unwrap();
    /// drop(stdin); // end of input
    /// let mut output = exec.take_output().unwrap();
    /// assert_eq!(output.recv().await.unwrap().data, b"typed\n");
    /// assert_eq!(exec.wait().await.unwrap().exit_code, Some(0));
    /// # Ok::<(), hybrid_sandbox::Error>(()) }).unwrap();
    /// ```
    pub async fn exec_streaming(&self, request: ExecRequest) -> Result<Box<dyn Execution>, Error> {
        self.inner.sandbox.exec(request).await.map_err(live)
    }

    /// Writes `data` to the file at `path` (created with mode 0644, or truncated), as
    /// the workload would: paths resolve inside the sandbox, its limits apply
    /// (`tmp_size`, `file_size`: [`LiveError::Limit`] names the one hit). Returns the
    /// bytes written.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use hybrid_sandbox::{LiveOptions, Sandbox, Workload};
    /// # let live = Sandbox::with_default_policy().create(Workload::default(), LiveOptions::default()).await?;
    /// assert_eq!(live.write_file("/tmp/data.txt", b"abc".to_vec()).await?, 3);
    /// assert_eq!(live.read_file("/tmp/data.txt").await?, b"abc");
    /// // Outside the sandbox's writable places, it is refused as for the workload.
    /// assert_eq!(live.write_file("/etc/x", "no").await.unwrap_err().kind(), "permission_denied");
    /// # Ok::<(), hybrid_sandbox::Error>(()) }).unwrap();
    /// ```
    pub async fn write_file(&self, path: &str, data: impl Into<Vec<u8>>) -> Result<u64, Error> {
        self.inner
            .sandbox
            .write_file(path, FileData::Bytes(data.into()), 0o644)
            .await
            .map_err(live)
    }

    /// Writes everything `stream` gives to `path`, created with `mode`.
    pub async fn write_file_stream(
        &self,
        path: &str,
        stream: ByteStream,
        mode: u32,
    ) -> Result<u64, Error> {
        self.inner
            .sandbox
            .write_file(path, FileData::Stream(stream), mode)
            .await
            .map_err(live)
    }

    /// The contents of the file at `path` (symlinks followed inside the sandbox): at
    /// most [`READ_TO_END_MAX`] bytes (a larger file is an error of kind `limit`: read
    /// it with [`Live::read_file_stream`]).
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>, Error> {
        let s = self.read_file_stream(path).await?;
        read_to_end(s).await.map_err(|e| match e.raw_os_error() {
            Some(errno @ libc::EFBIG) => live(LiveError::File {
                operation: "read",
                path: path.to_string(),
                errno,
                reason: format!(
                    "the file is larger than the {} MiB a read into memory takes: read it as a stream",
                    READ_TO_END_MAX >> 20
                ),
            }),
            _ => live(LiveError::Failed(format!("reading {path}"), e)),
        })
    }

    /// The file at `path` as a stream.
    pub async fn read_file_stream(&self, path: &str) -> Result<ByteStream, Error> {
        self.inner.sandbox.read_file(path).await.map_err(live)
    }

    /// The entries of the directory at `path`, sorted by name.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use hybrid_sandbox::{LiveOptions, Sandbox, Workload};
    /// # let live = Sandbox::with_default_policy().create(Workload::default(), LiveOptions::default()).await?;
    /// live.mkdir("/tmp/a/b", true).await?;
    /// live.write_file("/tmp/a/f", "x").await?;
    /// let names: Vec<String> = live.list_dir("/tmp/a").await?.into_iter().map(|e| e.name).collect();
    /// assert_eq!(names, ["b", "f"]);
    /// live.rename("/tmp/a/f", "/tmp/a/g").await?;
    /// assert_eq!(live.stat("/tmp/a/g").await?.size, 1);
    /// live.remove("/tmp/a", true).await?;
    /// assert_eq!(live.stat("/tmp/a").await.unwrap_err().kind(), "not_found");
    /// # Ok::<(), hybrid_sandbox::Error>(()) }).unwrap();
    /// ```
    pub async fn list_dir(&self, path: &str) -> Result<Vec<FileStat>, Error> {
        self.inner.sandbox.list_dir(path).await.map_err(live)
    }

    /// Metadata of `path` (a final symlink not followed).
    pub async fn stat(&self, path: &str) -> Result<FileStat, Error> {
        self.inner.sandbox.stat(path).await.map_err(live)
    }

    /// Makes a directory (and its parents with `parents`).
    pub async fn mkdir(&self, path: &str, parents: bool) -> Result<(), Error> {
        self.inner.sandbox.mkdir(path, parents).await.map_err(live)
    }

    /// Removes a file, symlink or empty directory (any directory with `recursive`).
    pub async fn remove(&self, path: &str, recursive: bool) -> Result<(), Error> {
        self.inner
            .sandbox
            .remove(path, recursive)
            .await
            .map_err(live)
    }

    /// Renames `from` to `to`.
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), Error> {
        self.inner.sandbox.rename(from, to).await.map_err(live)
    }

    /// Stops every process of the sandbox; paused time does not count against an
    /// exec's wall time.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use hybrid_sandbox::{LiveOptions, LiveState, Sandbox, Workload};
    /// # let live = Sandbox::with_default_policy().create(Workload::default(), LiveOptions::default()).await?;
    /// live.pause().await?;
    /// assert_eq!(live.state(), LiveState::Paused);
    /// live.resume().await?;
    /// assert!(live.stats().await?.paused_ms > 0.0);
    /// # Ok::<(), hybrid_sandbox::Error>(()) }).unwrap();
    /// ```
    pub async fn pause(&self) -> Result<(), Error> {
        self.inner.sandbox.pause().await.map_err(live)
    }

    /// Undoes [`Live::pause`].
    pub async fn resume(&self) -> Result<(), Error> {
        self.inner.sandbox.resume().await.map_err(live)
    }

    /// Its network (`egress`): the mode, the broker's decisions so far (final once
    /// destroyed) and where the host reaches its exposed ports; `None` without a broker.
    pub fn network(&self) -> Option<sandbox_core::network::NetworkReport> {
        self.inner.sandbox.network()
    }

    /// Where the host reaches its exposed ports (`127.0.0.1:<port chosen by hsb>`).
    pub fn exposed_ports(&self) -> Vec<sandbox_core::network::ExposedPort> {
        self.network().map(|n| n.exposed).unwrap_or_default()
    }

    /// The broker's decisions as they happen (network `egress`).
    pub fn network_events(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<sandbox_core::network::NetworkEvent>> {
        self.inner.sandbox.network_events()
    }

    /// Changes limits of the whole sandbox while it lives (Docker's `update`): each one
    /// set in `limits` replaces the one in force. They must be in the ranges a policy's
    /// are held to and within the floor the sandbox was created under (the policy's and
    /// the operator's), or nothing changes and the error names the limit. Container: `memory`, `pids` and `cpus` change
    /// through its cgroup (a memory limit below what it uses now is refused); the
    /// others, and a micro-VM's limits (its memory is the guest's RAM), are fixed when
    /// the sandbox is created, and asking says so.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hybrid_sandbox::{Limits, LiveOptions, Sandbox, Workload};
    /// let live = Sandbox::with_default_policy()
    ///     .create(Workload::default(), LiveOptions::default())
    ///     .await?;
    /// let more = Limits { pids: Some(64), ..Limits::default() };
    /// if live.isolation() == hybrid_sandbox::Isolation::Container {
    ///     live.update_limits(&more).await?;
    /// }
    /// # Ok::<(), hybrid_sandbox::Error>(()) }).unwrap();
    /// ```
    pub async fn update_limits(&self, limits: &Limits) -> Result<(), Error> {
        sandbox_core::check_limit_ranges(limits).map_err(Error::Policy)?;
        if let Some(f) = &self.inner.floor {
            f.check_limits(limits).map_err(Error::Policy)?;
        }
        self.inner.sandbox.update_limits(limits).await.map_err(live)
    }

    /// Moves the calling thread into the sandbox's network, IPC and UTS namespaces
    /// (see `LiveSandbox::enter_namespaces`): what an OCI runtime's supervisor does so
    /// that an engine finds its container's namespaces through the pid it was given.
    /// Container isolation only.
    pub fn enter_namespaces(&self) -> Result<(), Error> {
        self.inner.sandbox.enter_namespaces().map_err(live)
    }

    /// Gives the calling thread filesystem attributes of its own and moves it into the
    /// sandbox's mount namespace (see `LiveSandbox::enter_mount_namespace`): an OCI
    /// runtime's supervisor does it so that an engine finds its container's filesystem
    /// and processes through `/proc/PID/root` and `/proc/PID/ns/mnt`. The thread must
    /// use no host path after. Container isolation only.
    pub fn enter_mount_namespace(&self) -> Result<(), Error> {
        self.inner.sandbox.enter_mount_namespace().map_err(live)
    }

    /// What the sandbox uses now.
    pub async fn stats(&self) -> Result<LiveStats, Error> {
        self.inner.sandbox.stats().await.map_err(live)
    }

    /// Kills everything in the sandbox and frees what it holds. Idempotent.
    pub async fn destroy(&self) -> Result<(), Error> {
        self.inner.sandbox.destroy().await.map_err(live)
    }
}
