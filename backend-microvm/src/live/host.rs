//! The host's side of a live micro-VM: its state, the watchdog (lifetime, idle
//! timeout, the VMM's failure), and the `LiveSandbox` calls, each a command to the
//! vCPU thread.

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sandbox_core::live::ByteStream;
use sandbox_core::{
    Decision, EndReason, EnforcementReport, ExecRequest, Execution, FileData, FileStat, Isolation,
    LiveError, LiveOptions, LiveSandbox, LiveState, LiveStats, Plan, SpawnError,
};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot, Notify};

use super::cmd::{Cmd, FileOk, FileOp, Hub};
use super::files::CHUNK;
use super::thread::{self, Ending};
use crate::kick::{self, Control};

/// How long `destroy` waits for the vCPU thread to free the VM.
const END_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct Life {
    pub(super) state: LiveState,
    pub(super) ended: Option<EndReason>,
    failure: Option<String>,
    paused_at: Option<Instant>,
    paused_total: Duration,
    pub(super) running: u64,
    last_activity: Instant,
}

impl Life {
    /// A sandbox that has just started: running, nothing run yet, active now.
    fn running(now: Instant) -> Life {
        Life {
            state: LiveState::Running,
            ended: None,
            failure: None,
            paused_at: None,
            paused_total: Duration::ZERO,
            running: 0,
            last_activity: now,
        }
    }
}

/// Shared by the sandbox's handles and its execs. Dropping it destroys the sandbox.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) ctl: Arc<Control>,
    pub(super) hub: Arc<Hub>,
    ending: Arc<Ending>,
    /// The vCPU thread, joined once it said it ended.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    life: Mutex<Life>,
    pub(super) created: Instant,
    pub(super) plan: Plan,
    pub(super) enforcement: EnforcementReport,
    pub(super) next_id: AtomicU32,
    activity: Arc<Notify>,
    /// Network `egress`: the broker and relay, for the sandbox's life.
    pub(super) net: Option<Arc<crate::net::VmNet>>,
    /// Its options (sandboxes started from its snapshots get the same).
    options: LiveOptions,
    /// For a sandbox started from a snapshot file: the check of the file's guest
    /// memory, kept going while the sandbox lives (see `savefile`).
    _memcheck: Option<Arc<crate::savefile::MemCheck>>,
    /// A vCPU thread with its VM made ahead for this sandbox's next fork (see
    /// [`Spare`]).
    spare: Mutex<Option<Spare>>,
}

/// A vCPU thread made for a sandbox's next fork, after a fork (off its path): it makes
/// its VM (`vm::Blank`, the half of a start that needs no guest memory, ~0.4 ms here)
/// and waits. The next fork gives it its start instead of starting a thread; a
/// sandbox that is destroyed ends it (its VM holds no guest memory, only KVM's
/// per-VM structures). A sandbox never forked has none.
struct Spare {
    jobs: std::sync::mpsc::SyncSender<thread::StartFrom>,
    thread: std::thread::JoinHandle<()>,
}

impl std::fmt::Debug for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spare").finish_non_exhaustive()
    }
}

impl Spare {
    fn spawn() -> std::io::Result<Spare> {
        let (jobs, rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("hsb-spare".into())
            .spawn(move || thread::spare(rx))?;
        Ok(Spare { jobs, thread })
    }

    /// Ends the thread (it is not confined yet, and holds only its blank VM).
    fn end(self) {
        drop(self.jobs);
        let _ = self.thread.join();
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Life> {
        crate::sync::locked(&self.life)
    }

    /// Queues a command for the vCPU thread.
    pub(super) fn send(&self, cmd: Cmd) {
        self.hub.send(&self.ctl, cmd);
    }

    /// Total time spent paused so far (the current pause included).
    pub(super) fn paused_total(&self) -> Duration {
        let l = self.lock();
        l.paused_total + l.paused_at.map_or(Duration::ZERO, |p| p.elapsed())
    }

    /// Notes activity for the idle timeout.
    pub(super) fn touch(&self) {
        self.lock().last_activity = Instant::now();
        self.activity.notify_one();
    }

    /// The error of a sandbox that is gone: `Failed` when the VMM failed.
    fn gone(&self, l: &Life, operation: &'static str, wanted: &'static str) -> LiveError {
        if l.ended == Some(EndReason::Failed) {
            return LiveError::Failed(
                operation.to_string(),
                std::io::Error::other(l.failure.clone().unwrap_or_else(|| "the VMM failed".into())),
            );
        }
        LiveError::WrongState {
            state: l.state,
            operation,
            wanted,
        }
    }

    /// Fails unless running.
    pub(super) fn check_running(&self, operation: &'static str) -> Result<(), LiveError> {
        {
            let l = self.lock();
            if l.state != LiveState::Running {
                return Err(self.gone(&l, operation, "running"));
            }
        }
        self.touch();
        Ok(())
    }

    /// Ends the sandbox (the first reason stays) and waits for its thread to free
    /// everything. Blocking: async callers use [`Shared::destroy_async`].
    pub(super) fn destroy(&self, reason: EndReason) {
        {
            let mut l = self.lock();
            if l.state != LiveState::Destroyed {
                l.state = LiveState::Destroyed;
                l.ended = Some(reason);
                if let Some(p) = l.paused_at.take() {
                    l.paused_total += p.elapsed();
                }
            }
        }
        self.ctl.kill();
        self.ending.wait(END_WAIT);
        if self.ending.ended().is_some() {
            // It said it ended: the join only waits for the thread's own exit.
            let t = crate::sync::locked(&self.thread).take();
            if let Some(t) = t {
                let _ = t.join();
            }
        } else {
            tracing::error!(
                "a live micro-VM's vCPU thread did not end within {END_WAIT:?} of its kill"
            );
        }
        let spare = crate::sync::locked(&self.spare).take();
        if let Some(s) = spare {
            s.end();
        }
        // Its connections end with it; the broker's report is final.
        if let Some(n) = &self.net {
            n.stop();
        }
        self.activity.notify_one();
    }

    pub(super) async fn destroy_async(self: &Arc<Self>, reason: EndReason) {
        let me = Arc::clone(self);
        let _ = tokio::task::spawn_blocking(move || me.destroy(reason)).await;
    }

    /// The VMM ended by itself: the sandbox failed.
    fn failed(&self, why: String) {
        let mut l = self.lock();
        if l.state != LiveState::Destroyed {
            l.state = LiveState::Destroyed;
            l.ended = Some(EndReason::Failed);
            l.failure = Some(why);
        }
    }

    /// Sends a file operation and waits for its answer.
    async fn file(&self, op: FileOp) -> Result<FileOk, LiveError> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::File(op, tx));
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(self.gone(&self.lock(), "a file operation", "running")),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.destroy(EndReason::Destroyed);
    }
}

/// A live micro-VM sandbox. Dropping it (the callers' last handle) destroys the
/// sandbox at once, whatever background task still holds its shared state.
#[derive(Debug)]
pub(crate) struct MicroVmLive {
    shared: Arc<Shared>,
}

impl Drop for MicroVmLive {
    fn drop(&mut self) {
        self.shared.destroy(EndReason::Destroyed);
    }
}

/// Creates a live sandbox from `plan` (its program, argv and stdin are not used).
pub(crate) async fn create(
    plan: Plan,
    options: LiveOptions,
) -> Result<Arc<dyn LiveSandbox>, SpawnError> {
    crate::confine::check().map_err(|e| SpawnError::Setup {
        step: "compiling the VMM seccomp filter".into(),
        source: std::io::Error::other(e),
    })?;
    kick::install_handler().map_err(|e| SpawnError::Setup {
        step: "installing the vCPU kick signal handler".into(),
        source: e,
    })?;
    crate::trap::install_handler().map_err(|e| SpawnError::Setup {
        step: "installing the VMM's SIGSYS handler".into(),
        source: e,
    })?;
    let ctl = Arc::new(Control::default());
    let hub = Arc::new(Hub::default());
    let ending = Arc::new(Ending::default());
    let (setup_tx, setup_rx) = oneshot::channel();
    // The egress broker and relay start before the vCPU thread confines itself.
    let net = crate::net::VmNet::start(&plan, &ctl)?;
    let start = thread::Start {
        plan: plan.clone(),
        ctl: Arc::clone(&ctl),
        hub: Arc::clone(&hub),
        ending: Arc::clone(&ending),
        setup: setup_tx,
        net: net.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("hsb-vcpu".into())
        .spawn(move || thread::body(start))
        .map_err(|e| SpawnError::Setup {
            step: "starting the vCPU thread".into(),
            source: e,
        })?;
    let enforcement = match setup_rx.await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(SpawnError::Setup {
                step: "setting up the micro-VM".into(),
                source: std::io::Error::other("the vCPU thread ended during setup"),
            })
        }
    };
    let now = Instant::now();
    let shared = Arc::new(Shared {
        ctl,
        hub,
        ending: Arc::clone(&ending),
        thread: Mutex::new(Some(thread)),
        life: Mutex::new(Life::running(now)),
        created: now,
        plan,
        enforcement,
        next_id: AtomicU32::new(1),
        activity: Arc::new(Notify::new()),
        net,
        options: options.clone(),
        _memcheck: None,
        spare: Mutex::new(None),
    });
    tokio::spawn(watchdog(
        Arc::downgrade(&shared),
        Arc::clone(&shared.activity),
        ending,
        options,
    ));
    Ok(Arc::new(MicroVmLive { shared }))
}

/// A snapshot of a live micro-VM (see `snapshot.rs`).
#[derive(Debug)]
pub(crate) struct MicroVmSnapshot {
    snap: Arc<super::snapshot::Snapshot>,
    plan: Plan,
    /// The original's (`None`: a snapshot loaded from a file, each start reports its own).
    enforcement: Option<EnforcementReport>,
    options: LiveOptions,
    /// The first exec id of sandboxes started from it (after the original's).
    next_id: u32,
    /// When the original was created, for a sandbox paused to disk: its starts resume
    /// it, so its `lifetime` counts from then (a fork's counts from its own start).
    created: Option<Instant>,
    /// The pages the last template run from it touched (`warm.rs`).
    warm: Arc<crate::warm::Shared>,
}

/// A new memory file for a snapshot (sealed once written).
fn new_memfd() -> Result<std::os::fd::OwnedFd, LiveError> {
    // SAFETY: memfd_create with a valid C string and flags; no memory is touched.
    let fd = unsafe {
        libc::memfd_create(
            c"hsb-snapshot".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(LiveError::Failed(
            "making the snapshot's memory file".into(),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let memfd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    Ok(memfd)
}

/// An unnamed regular file in `dir` for a snapshot's memory written to disk: gone
/// when its last descriptor closes, so nothing is left behind.
fn disk_file(dir: &std::path::Path) -> Result<std::os::fd::OwnedFd, LiveError> {
    sandbox_core::files::unnamed_file(dir)
        .map(std::os::fd::OwnedFd::from)
        .map_err(|e| {
            LiveError::Failed(
                format!(
                    "pausing to disk: making the memory file in {}",
                    dir.display()
                ),
                e,
            )
        })
}

impl MicroVmLive {
    async fn take_snapshot(
        &self,
        to_disk: Option<&std::path::Path>,
    ) -> Result<MicroVmSnapshot, LiveError> {
        let image = self.take_image(to_disk, false, None).await?;
        let s = &self.shared;
        Ok(MicroVmSnapshot {
            snap: Arc::new(super::snapshot::Snapshot::new(image)),
            plan: s.plan.clone(),
            enforcement: Some(s.enforcement.clone()),
            options: s.options.clone(),
            next_id: s.next_id.load(std::sync::atomic::Ordering::SeqCst),
            created: to_disk.map(|_| s.created),
            warm: crate::warm::Shared::new(),
        })
    }

    /// The vCPU thread's snapshot (see `snapshot.rs`): `moved` for a fork's, which
    /// moves whole into the new sandbox.
    async fn take_image(
        &self,
        to_disk: Option<&std::path::Path>,
        moved: bool,
        rules: Option<std::sync::mpsc::SyncSender<Vec<crate::confine::SourceRule>>>,
    ) -> Result<super::snapshot::Image, LiveError> {
        let s = &self.shared;
        {
            let l = s.lock();
            if l.state == LiveState::Destroyed {
                return Err(s.gone(&l, "snapshot", "running or paused"));
            }
        }
        if s.net.is_some() {
            return Err(LiveError::Unsupported(
                "snapshots of a micro-VM with a network of its own (egress through the broker, or a pod's network namespace) are not supported: its connections and relay are host state".into(),
            ));
        }
        let (memfd, pagemap, seal) = match to_disk {
            None => {
                let memfd = new_memfd()?;
                // The pages changed since the last snapshot are found in the pagemap
                // (opened here the first time: the vCPU thread's Landlock rules do not
                // reach /proc).
                (memfd, crate::memory::pagemap(), true)
            }
            // The whole RAM in one unnamed file on disk (no pagemap: no layer over the
            // memory files of earlier snapshots, which live in RAM).
            Some(dir) => (disk_file(dir)?, None, false),
        };
        let (tx, rx) = oneshot::channel();
        s.send(Cmd::Snapshot(super::snapshot::SnapReq {
            memfd,
            pagemap,
            seal,
            moved,
            rules,
            reply: tx,
        }));
        let image = match rx.await {
            Ok(r) => r?,
            Err(_) => return Err(s.gone(&s.lock(), "snapshot", "running or paused")),
        };
        s.touch();
        Ok(image)
    }
}

#[async_trait]
impl sandbox_core::LiveSnapshot for MicroVmSnapshot {
    fn isolation(&self) -> Isolation {
        Isolation::MicroVm
    }

    fn kept(&self) -> String {
        "guest memory (copy-on-write) and every process, thread, open file, pipe and socket buffer, the in-memory filesystem and the mount table".into()
    }

    fn memory_bytes(&self) -> u64 {
        self.snap.memory_bytes()
    }

    async fn save(&self, path: &std::path::Path) -> Result<u64, LiveError> {
        let (snap, plan, next_id, path) = (
            Arc::clone(&self.snap),
            self.plan.clone(),
            self.next_id,
            path.to_path_buf(),
        );
        tokio::task::spawn_blocking(move || {
            snap.save(super::snapshot::SaveTo::Path(&path), &plan, next_id)
        })
        .await
        .map_err(|e| LiveError::Failed("saving a snapshot".into(), std::io::Error::other(e)))?
    }

    async fn save_to(&self, file: &std::fs::File) -> Result<u64, LiveError> {
        let file = file
            .try_clone()
            .map_err(|e| LiveError::Failed("saving a snapshot to a file".into(), e))?;
        let (snap, plan, next_id) = (Arc::clone(&self.snap), self.plan.clone(), self.next_id);
        tokio::task::spawn_blocking(move || {
            snap.save(super::snapshot::SaveTo::File(&file), &plan, next_id)
        })
        .await
        .map_err(|e| LiveError::Failed("saving a snapshot".into(), std::io::Error::other(e)))?
    }

    async fn verify(&self) -> Result<(), LiveError> {
        let super::snapshot::Snapshot::Loaded(l) = &*self.snap else {
            return Ok(());
        };
        let check = Arc::clone(&l.check);
        tokio::task::spawn_blocking(move || check.wait())
            .await
            .map_err(|e| LiveError::Failed("checking a snapshot".into(), std::io::Error::other(e)))?
            .map_err(|why| {
                LiveError::Failed(
                    "checking a snapshot file".into(),
                    std::io::Error::new(std::io::ErrorKind::InvalidData, why),
                )
            })
    }

    async fn start(&self) -> Result<Arc<dyn LiveSandbox>, LiveError> {
        let shared = self.start_with(None).await?;
        Ok(Arc::new(MicroVmLive { shared }))
    }

    async fn start_parked(
        &self,
        exec: sandbox_core::ParkedExec,
        stdin: Vec<u8>,
        limits: sandbox_core::ExecLimits,
    ) -> Result<(Arc<dyn LiveSandbox>, Box<dyn Execution>), LiveError> {
        let wall = limits.wall_time.or(self.plan.limits.wall_time);
        let cpu = limits.cpu_time.or(self.plan.limits.cpu_time);
        let output_limit = limits.output.or(self.plan.limits.output).map(|b| b.0);
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        let began = Instant::now();
        let adopt = super::park::Adopt {
            id: exec.id,
            pid: exec.pid,
            input: crate::stdio::Input::Bytes(stdin, 0),
            output: crate::stdio::Output::new(out_tx, output_limit),
            cpu,
            done: done_tx,
            warm: Some(Arc::clone(&self.warm)),
        };
        let shared = self.start_with(Some(adopt)).await?;
        let execution = super::exec::watched(
            &shared,
            super::exec::Started {
                id: exec.id,
                wall,
                cpu,
                began,
                paused_before: Duration::ZERO,
                stdin: None,
                output: out_rx,
                done: done_rx,
                tty: false,
            },
        );
        Ok((Arc::new(MicroVmLive { shared }), execution))
    }

    async fn prestart_parked(
        &self,
        exec: sandbox_core::ParkedExec,
        limits: sandbox_core::ExecLimits,
    ) -> Result<Box<dyn sandbox_core::PreStarted>, LiveError> {
        let cpu = limits.cpu_time.or(self.plan.limits.cpu_time);
        let output_limit = limits.output.or(self.plan.limits.output).map(|b| b.0);
        self.warm.started_ahead();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        // The exec's stdin: a stream nothing is written to yet, so its read goes on
        // blocking in the new sandbox until `feed`.
        let queue = Arc::new(crate::stdio::StdinQueue::default());
        let adopt = super::park::Adopt {
            id: exec.id,
            pid: exec.pid,
            input: crate::stdio::Input::Stream(Arc::clone(&queue)),
            output: crate::stdio::Output::new(out_tx, output_limit),
            cpu,
            done: done_tx,
            warm: Some(Arc::clone(&self.warm)),
        };
        let shared = self.start_with(Some(adopt)).await?;
        let warmed = shared.ctl.warmed.load(std::sync::atomic::Ordering::Relaxed);
        Ok(Box::new(PreStartedVm {
            warmed,
            live: Arc::new(MicroVmLive {
                shared: Arc::clone(&shared),
            }),
            shared,
            id: exec.id,
            cpu,
            wall: self.plan.limits.wall_time,
            queue,
            output: out_rx,
            done: done_rx,
        }))
    }
}

/// A sandbox started from a snapshot, its parked exec waiting for [`feed`].
///
/// [`feed`]: sandbox_core::PreStarted::feed
struct PreStartedVm {
    /// The one handle of the sandbox (dropping the last destroys it).
    live: Arc<MicroVmLive>,
    shared: Arc<Shared>,
    id: u32,
    cpu: Option<Duration>,
    /// The sandbox's wall time, for a run that sets none.
    wall: Option<Duration>,
    queue: Arc<crate::stdio::StdinQueue>,
    output: sandbox_core::OutputStream,
    done: oneshot::Receiver<super::cmd::ExecEnd>,
    /// Pages its `warm` pass touched (`warm.rs`).
    warmed: u64,
}

impl std::fmt::Debug for PreStartedVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreStartedVm")
            .field("id", &self.id)
            .finish()
    }
}

impl sandbox_core::PreStarted for PreStartedVm {
    fn sandbox(&self) -> Arc<dyn LiveSandbox> {
        Arc::clone(&self.live) as Arc<dyn LiveSandbox>
    }

    fn warmed_pages(&self) -> u64 {
        self.warmed
    }

    fn feed(self: Box<Self>, stdin: Vec<u8>, wall: Option<Duration>) -> Box<dyn Execution> {
        let me = *self;
        me.queue.push(&stdin);
        me.queue.close();
        me.shared.ctl.input_arrived();
        super::exec::watched(
            &me.shared,
            super::exec::Started {
                id: me.id,
                wall: wall.or(me.wall),
                cpu: me.cpu,
                began: Instant::now(),
                paused_before: me.shared.paused_total(),
                stdin: None,
                output: me.output,
                done: me.done,
                tty: false,
            },
        )
    }
}

/// The vCPU thread of a sandbox being started from a snapshot, and what its host
/// side needs once the thread says it is set up ([`started`]).
struct Starting {
    thread: std::thread::JoinHandle<()>,
    setup: oneshot::Receiver<Result<Option<sandbox_core::EnforcementReport>, LiveError>>,
    ctl: Arc<Control>,
    hub: Arc<Hub>,
    ending: Arc<Ending>,
}

impl Starting {
    /// Starts the vCPU thread of a sandbox of `plan` from `source`, taking over
    /// `adopt` if given: `spare` if there is one, else a new thread.
    fn spawn(
        plan: &Plan,
        source: thread::Source,
        adopt: Option<super::park::Adopt>,
        spare: Option<Spare>,
    ) -> Result<Starting, LiveError> {
        let ctl = Arc::new(Control::default());
        let hub = Arc::new(Hub::default());
        let ending = Arc::new(Ending::default());
        let (setup_tx, setup_rx) = oneshot::channel();
        let open_files = plan
            .limits
            .open_files
            .unwrap_or(crate::sandbox::DEFAULT_OPEN_FILES);
        let start = thread::StartFrom {
            source,
            plan: plan.clone(),
            host_fds: crate::sandbox::host_fd_budget(open_files, plan.limits.pids),
            ctl: Arc::clone(&ctl),
            hub: Arc::clone(&hub),
            ending: Arc::clone(&ending),
            setup: setup_tx,
            adopt,
        };
        let new_thread = |start: thread::StartFrom| {
            std::thread::Builder::new()
                .name("hsb-vcpu".into())
                .spawn(move || thread::body_from(start, None))
                .map_err(|e| LiveError::Failed("starting the vCPU thread".into(), e))
        };
        let thread = match spare {
            Some(sp) => match sp.jobs.send(start) {
                Ok(()) => sp.thread,
                // The spare ended (it cannot have: it waits for this): a thread as
                // without one.
                Err(std::sync::mpsc::SendError(start)) => new_thread(start)?,
            },
            None => new_thread(start)?,
        };
        Ok(Starting {
            thread,
            setup: setup_rx,
            ctl,
            hub,
            ending,
        })
    }

    /// Waits for the end of a thread whose snapshot never came (its sender dropped).
    async fn abandon(self) {
        let _ = self.setup.await;
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

impl MicroVmSnapshot {
    /// A new sandbox from the snapshot, taking over `adopt` if given.
    async fn start_with(
        &self,
        adopt: Option<super::park::Adopt>,
    ) -> Result<Arc<Shared>, LiveError> {
        let check = match &*self.snap {
            super::snapshot::Snapshot::Loaded(l) => Some(Arc::clone(&l.check)),
            super::snapshot::Snapshot::Taken(_) => None,
        };
        if let Some(Err(e)) = check.as_ref().and_then(|c| c.outcome()) {
            return Err(corrupt_file(e));
        }
        let source = thread::Source::Snapshot(Arc::clone(&self.snap));
        let st = Starting::spawn(&self.plan, source, adopt, None)?;
        let origin = Origin {
            plan: &self.plan,
            enforcement: self.enforcement.as_ref(),
            options: &self.options,
            next_id: self.next_id,
            created: self.created,
            check,
        };
        started(st, origin).await
    }
}

/// What a sandbox started from a snapshot takes from it (see [`MicroVmSnapshot`]).
struct Origin<'a> {
    plan: &'a Plan,
    enforcement: Option<&'a EnforcementReport>,
    options: &'a LiveOptions,
    next_id: u32,
    created: Option<Instant>,
    /// A snapshot file's memory check.
    check: Option<Arc<crate::savefile::MemCheck>>,
}

/// The host side of a sandbox started from a snapshot, once its thread `st` says how
/// its setup went.
async fn started(st: Starting, o: Origin<'_>) -> Result<Arc<Shared>, LiveError> {
    let check = o.check;
    let Starting {
        thread,
        setup: setup_rx,
        ctl,
        hub,
        ending,
    } = st;
    let report = match setup_rx.await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            return Err(e);
        }
        Err(_) => {
            return Err(LiveError::Failed(
                "starting from a snapshot".into(),
                std::io::Error::other("the vCPU thread ended during setup"),
            ))
        }
    };
    let enforcement = match (report, &o.enforcement) {
        (Some(r), _) => r,
        (None, Some(e)) => (*e).clone(),
        (None, None) => {
            return Err(LiveError::Failed(
                "starting from a snapshot file".into(),
                std::io::Error::other("no enforcement report"),
            ))
        }
    };
    let now = Instant::now();
    let shared = Arc::new(Shared {
        ctl,
        hub,
        ending: Arc::clone(&ending),
        thread: Mutex::new(Some(thread)),
        life: Mutex::new(Life::running(now)),
        created: o.created.unwrap_or(now),
        plan: o.plan.clone(),
        enforcement,
        next_id: AtomicU32::new(o.next_id),
        activity: Arc::new(Notify::new()),
        // A sandbox with a network of its own (egress, a pod's namespace) has no
        // snapshots (refused in `take_snapshot`).
        net: None,
        options: o.options.clone(),
        _memcheck: check.clone(),
        spare: Mutex::new(None),
    });
    if let Some(c) = check {
        // Its memory may still turn out corrupt (see `savefile`): the sandbox then
        // fails, naming the file.
        let weak = Arc::downgrade(&shared);
        let watched = c.watch(Box::new(move |why| {
            if let Some(s) = weak.upgrade() {
                s.failed(why.to_string());
                s.ctl.kill();
            }
        }));
        if let Err(e) = watched {
            shared.destroy_async(EndReason::Failed).await;
            return Err(corrupt_file(e));
        }
    }
    tokio::spawn(watchdog(
        Arc::downgrade(&shared),
        Arc::clone(&shared.activity),
        ending,
        o.options.clone(),
    ));
    Ok(shared)
}

/// The error of a start from a snapshot file whose memory check failed.
fn corrupt_file(why: String) -> LiveError {
    LiveError::Failed(
        "starting from a snapshot file".into(),
        std::io::Error::new(std::io::ErrorKind::InvalidData, why),
    )
}

/// Destroys the sandbox when its lifetime or idle timeout passes, and marks it failed
/// when the VMM ends by itself. Holds only a weak handle.
async fn watchdog(
    weak: Weak<Shared>,
    activity: Arc<Notify>,
    ending: Arc<Ending>,
    options: LiveOptions,
) {
    loop {
        let Some(s) = weak.upgrade() else {
            return;
        };
        let (state, running, last) = {
            let l = s.lock();
            (l.state, l.running, l.last_activity)
        };
        if state == LiveState::Destroyed {
            return;
        }
        if let Some(note) = ending.ended() {
            s.failed(note.unwrap_or_else(|| "the VMM ended".into()));
            return;
        }
        let now = Instant::now();
        let mut next = now + Duration::from_secs(3600);
        if let Some(l) = options.lifetime {
            let at = s.created + l;
            if now >= at {
                s.destroy_async(EndReason::Lifetime).await;
                return;
            }
            next = next.min(at);
        }
        if let (Some(idle), LiveState::Running, 0) = (options.idle_timeout, state, running) {
            let at = last + idle;
            if now >= at {
                s.destroy_async(EndReason::IdleTimeout).await;
                return;
            }
            next = next.min(at);
        }
        drop(s);
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = activity.notified() => {}
            _ = ending.notify.notified() => {}
        }
    }
}

/// Checks a sandbox path: absolute, no NUL, at most 4096 bytes.
fn validate(path: &str) -> Result<(), LiveError> {
    let bad = |reason: &str| {
        Err(LiveError::InvalidPath {
            path: path.into(),
            reason: reason.into(),
        })
    };
    if !path.starts_with('/') {
        return bad("sandbox paths are absolute");
    }
    if path.contains('\0') {
        return bad("it contains a NUL byte");
    }
    if path.len() > 4096 {
        return bad("it is longer than 4096 bytes");
    }
    Ok(())
}

impl MicroVmLive {
    async fn write_chunks(&self, handle: u64, data: FileData) -> Result<u64, LiveError> {
        let s = &self.shared;
        let mut size = 0;
        match data {
            FileData::Bytes(b) => {
                for chunk in b.chunks(CHUNK) {
                    size = written(
                        s.file(FileOp::Write {
                            handle,
                            data: chunk.to_vec(),
                        })
                        .await?,
                    );
                }
            }
            FileData::Stream(mut r) => loop {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    let n = r
                        .read(&mut buf[filled..])
                        .await
                        .map_err(|e| LiveError::Failed("reading the data to write".into(), e))?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                buf.truncate(filled);
                size = written(s.file(FileOp::Write { handle, data: buf }).await?);
                if filled < CHUNK {
                    break;
                }
            },
        }
        Ok(size)
    }
}

fn written(ok: FileOk) -> u64 {
    match ok {
        FileOk::Size(n) => n,
        _ => 0,
    }
}

#[async_trait]
impl LiveSandbox for MicroVmLive {
    fn isolation(&self) -> Isolation {
        Isolation::MicroVm
    }

    async fn update_limits(&self, _limits: &sandbox_core::Limits) -> Result<(), LiveError> {
        Err(LiveError::Unsupported(
            "the limits of a live micro-VM sandbox are fixed when it is created (its memory is \
             the guest's RAM, its pids and file limits the VM's own): create it with the limits \
             it needs"
                .into(),
        ))
    }

    fn decision(&self) -> &Decision {
        &self.shared.plan.decision
    }

    fn enforcement(&self) -> &EnforcementReport {
        &self.shared.enforcement
    }

    fn state(&self) -> LiveState {
        self.shared.lock().state
    }

    fn ended(&self) -> Option<EndReason> {
        self.shared.lock().ended
    }

    fn network(&self) -> Option<sandbox_core::network::NetworkReport> {
        self.shared.net.as_ref().and_then(|n| n.report())
    }

    fn network_events(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<sandbox_core::network::NetworkEvent>> {
        self.shared.net.as_ref().and_then(|n| n.events())
    }

    async fn exec(&self, request: ExecRequest) -> Result<Box<dyn Execution>, LiveError> {
        super::exec::start(&self.shared, request).await
    }

    async fn write_file(&self, path: &str, data: FileData, mode: u32) -> Result<u64, LiveError> {
        validate(path)?;
        self.shared.check_running("write")?;
        let handle = match self
            .shared
            .file(FileOp::OpenWrite {
                path: path.into(),
                mode,
            })
            .await?
        {
            FileOk::Handle(h) => h,
            _ => return Err(LiveError::Invalid("unexpected answer".into())),
        };
        let r = self.write_chunks(handle, data).await;
        let _ = self.shared.file(FileOp::Close { handle }).await;
        self.shared.touch();
        r
    }

    async fn read_file(&self, path: &str) -> Result<ByteStream, LiveError> {
        validate(path)?;
        self.shared.check_running("read")?;
        let handle = match self
            .shared
            .file(FileOp::OpenRead { path: path.into() })
            .await?
        {
            FileOk::Handle(h) => h,
            _ => return Err(LiveError::Invalid("unexpected answer".into())),
        };
        let (tx, rx) = mpsc::channel(2);
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            loop {
                let Some(s) = shared.upgrade() else {
                    return;
                };
                let r = s.file(FileOp::Read { handle, max: CHUNK }).await;
                let chunk = match r {
                    Ok(FileOk::Data(d)) => d,
                    Ok(_) => Vec::new(),
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return;
                    }
                };
                if chunk.is_empty() || tx.send(Ok(chunk)).await.is_err() {
                    let _ = s.file(FileOp::Close { handle }).await;
                    return;
                }
                drop(s);
            }
        });
        Ok(Box::pin(super::stream::ChunkReader::new(rx)))
    }

    async fn list_dir(&self, path: &str) -> Result<Vec<FileStat>, LiveError> {
        validate(path)?;
        self.shared.check_running("list")?;
        match self.shared.file(FileOp::List { path: path.into() }).await? {
            FileOk::List(v) => Ok(v),
            _ => Err(LiveError::Invalid("unexpected answer".into())),
        }
    }

    async fn stat(&self, path: &str) -> Result<FileStat, LiveError> {
        validate(path)?;
        self.shared.check_running("stat")?;
        match self.shared.file(FileOp::Stat { path: path.into() }).await? {
            FileOk::Stat(s) => Ok(s),
            _ => Err(LiveError::Invalid("unexpected answer".into())),
        }
    }

    async fn mkdir(&self, path: &str, parents: bool) -> Result<(), LiveError> {
        validate(path)?;
        self.shared.check_running("mkdir")?;
        self.shared
            .file(FileOp::Mkdir {
                path: path.into(),
                parents,
            })
            .await
            .map(|_| ())
    }

    async fn remove(&self, path: &str, recursive: bool) -> Result<(), LiveError> {
        validate(path)?;
        self.shared.check_running("remove")?;
        self.shared
            .file(FileOp::Remove {
                path: path.into(),
                recursive,
            })
            .await
            .map(|_| ())
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), LiveError> {
        validate(from)?;
        validate(to)?;
        self.shared.check_running("rename")?;
        self.shared
            .file(FileOp::Rename {
                from: from.into(),
                to: to.into(),
            })
            .await
            .map(|_| ())
    }

    async fn pause(&self) -> Result<(), LiveError> {
        let s = &self.shared;
        {
            let l = s.lock();
            match l.state {
                LiveState::Running => {}
                LiveState::Paused => return Ok(()),
                _ => return Err(s.gone(&l, "pause", "running")),
            }
        }
        let (tx, rx) = oneshot::channel();
        s.send(Cmd::Pause(tx));
        // Answered once the vCPU thread stopped running guest code.
        if rx.await.is_err() {
            return Err(s.gone(&s.lock(), "pause", "running"));
        }
        let mut l = s.lock();
        if l.state == LiveState::Running {
            l.state = LiveState::Paused;
            l.paused_at = Some(Instant::now());
        }
        Ok(())
    }

    async fn resume(&self) -> Result<(), LiveError> {
        let s = &self.shared;
        {
            let mut l = s.lock();
            match l.state {
                LiveState::Paused => {}
                LiveState::Running => return Ok(()),
                _ => return Err(s.gone(&l, "resume", "paused")),
            }
            l.state = LiveState::Running;
            if let Some(p) = l.paused_at.take() {
                l.paused_total += p.elapsed();
            }
        }
        s.send(Cmd::Resume);
        s.touch();
        Ok(())
    }

    async fn stats(&self) -> Result<LiveStats, LiveError> {
        let s = &self.shared;
        let running = {
            let l = s.lock();
            if l.state == LiveState::Destroyed {
                return Err(s.gone(&l, "stats", "running or paused"));
            }
            l.running
        };
        s.touch();
        let (tx, rx) = oneshot::channel();
        s.send(Cmd::Stats(tx));
        let v = rx
            .await
            .map_err(|_| s.gone(&s.lock(), "stats", "running or paused"))?;
        Ok(LiveStats {
            memory_bytes: v.memory,
            peak_memory_bytes: v.peak,
            cpu_time_ms: v.cpu.as_secs_f64() * 1e3,
            processes: v.tasks,
            disk_bytes: v.disk,
            execs_running: running,
            uptime_ms: s.created.elapsed().as_secs_f64() * 1e3,
            paused_ms: s.paused_total().as_secs_f64() * 1e3,
        })
    }

    async fn destroy(&self) -> Result<(), LiveError> {
        self.shared.destroy_async(EndReason::Destroyed).await;
        Ok(())
    }

    async fn exec_parked(
        &self,
        mut request: ExecRequest,
        within: Duration,
    ) -> Result<sandbox_core::Parked, LiveError> {
        request.stdin = sandbox_core::Stdin::Stream;
        request.tty = None;
        let s = &self.shared;
        let (mut execution, id) = super::exec::start_id(s, request).await?;
        // Nothing is ever written: the writer is kept so that its stdin stays open.
        let writer = execution.take_stdin();
        let until = Instant::now() + within;
        let mut pause = Duration::from_micros(200);
        loop {
            let (tx, rx) = oneshot::channel();
            s.send(Cmd::Park { id, reply: tx });
            let state = rx.await.map_err(|_| s.gone(&s.lock(), "exec", "running"))?;
            match state {
                super::park::ParkState::Waiting(pid) => {
                    return Ok(sandbox_core::Parked::Waiting {
                        exec: sandbox_core::ParkedExec { id, pid },
                        execution,
                        stdin: writer,
                    });
                }
                super::park::ParkState::Ended => {
                    drop(writer);
                    let outcome = execution.wait().await.map_err(|e| {
                        LiveError::Failed("waiting for the exec".into(), std::io::Error::other(e))
                    })?;
                    return Ok(sandbox_core::Parked::Ended(Box::new(outcome)));
                }
                super::park::ParkState::Busy => {}
            }
            if Instant::now() >= until {
                drop(writer);
                return Err(LiveError::Invalid(format!(
                    "the program did not wait on its stdin within {} ms (it is still running, or waits on something else)",
                    within.as_millis()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    async fn snapshot(&self) -> Result<Arc<dyn sandbox_core::LiveSnapshot>, LiveError> {
        Ok(Arc::new(self.take_snapshot(None).await?))
    }

    /// A snapshot and one start from it, as the trait's, but neither copies the
    /// other: the new sandbox's thread starts first and makes its VM (`vm::Blank`)
    /// while this sandbox takes the snapshot, on another CPU when there is one, then
    /// takes that snapshot over whole (`snapshot::build_moved`) instead of copying it.
    async fn fork(&self) -> Result<Arc<dyn LiveSandbox>, LiveError> {
        let s = &self.shared;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (rules_tx, rules) = std::sync::mpsc::sync_channel(1);
        let spare = crate::sync::locked(&s.spare).take();
        let source = thread::Source::Coming { image: rx, rules };
        let starting = Starting::spawn(&s.plan, source, None, spare)?;
        let image = match self.take_image(None, true, Some(rules_tx)).await {
            Ok(i) => i,
            Err(e) => {
                drop(tx);
                starting.abandon().await;
                return Err(e);
            }
        };
        // A thread that ended meanwhile drops the image (and `started` says why).
        let _ = tx.send(image);
        let origin = Origin {
            plan: &s.plan,
            enforcement: Some(&s.enforcement),
            options: &s.options,
            next_id: s.next_id.load(std::sync::atomic::Ordering::SeqCst),
            created: None,
            check: None,
        };
        let shared = started(starting, origin).await?;
        // The next fork's thread, made once this one returned.
        let weak = Arc::downgrade(s);
        tokio::spawn(async move {
            let Some(s) = weak.upgrade() else {
                return;
            };
            let Ok(spare) = Spare::spawn() else {
                return;
            };
            let mut slot = crate::sync::locked(&s.spare);
            if slot.is_none() && s.lock().state != LiveState::Destroyed {
                *slot = Some(spare);
            } else {
                drop(slot);
                spare.end();
            }
        });
        Ok(Arc::new(MicroVmLive { shared }))
    }

    async fn pause_to_disk(
        &self,
        dir: &std::path::Path,
    ) -> Result<Arc<dyn sandbox_core::LiveSnapshot>, LiveError> {
        let snap = self.take_snapshot(Some(dir)).await?;
        // Its memory is in the file now: the sandbox goes, and its RAM with it.
        self.shared.destroy_async(EndReason::Destroyed).await;
        Ok(Arc::new(snap))
    }
}

/// Loads a snapshot file written by [`sandbox_core::LiveSnapshot::save`] (see
/// `savefile`): checked at once (a file from another build or format version, a
/// truncated or corrupt one is refused, naming the file and what is wrong); each
/// start builds a sandbox of `plan` (which must be the one the snapshot was saved
/// from: same mounts, image, limits, network and environment) and reads the state
/// back, reopening and checking the host files it holds.
pub async fn load_snapshot(
    path: &std::path::Path,
    plan: Plan,
    options: LiveOptions,
) -> Result<Arc<dyn sandbox_core::LiveSnapshot>, LiveError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .open(path)
        .map_err(|e| {
            LiveError::Failed(
                format!(
                    "loading the snapshot file {}: cannot open it",
                    path.display()
                ),
                e,
            )
        })?;
    load_snapshot_file(file, &path.display().to_string(), plan, options).await
}

/// [`load_snapshot`] of a file already open for reading (an unnamed one, say);
/// `name` names it in errors.
pub async fn load_snapshot_file(
    file: std::fs::File,
    name: &str,
    plan: Plan,
    options: LiveOptions,
) -> Result<Arc<dyn sandbox_core::LiveSnapshot>, LiveError> {
    // This process may not have made a micro-VM yet: the vCPU kick's handler.
    kick::install_handler()
        .map_err(|e| LiveError::Failed("installing the vCPU kick handler".into(), e))?;
    let n = name.to_string();
    let loaded = tokio::task::spawn_blocking(move || crate::savefile::read_file(file, n))
        .await
        .map_err(|e| LiveError::Failed("loading a snapshot".into(), std::io::Error::other(e)))?
        .map_err(|why| {
            LiveError::Failed(
                format!("loading the snapshot file {name}"),
                std::io::Error::new(std::io::ErrorKind::InvalidData, why),
            )
        })?;
    if loaded.header.plan != plan.fingerprint() {
        return Err(LiveError::Unsupported(format!(
            "the snapshot file {name} was saved from a sandbox with other settings (mounts, image, limits, network or environment): load it with the workload it was created with"
        )));
    }
    let next_id = loaded.header.next_id;
    Ok(Arc::new(MicroVmSnapshot {
        snap: Arc::new(super::snapshot::Snapshot::Loaded(loaded)),
        plan,
        enforcement: None,
        options,
        next_id,
        created: None,
        warm: crate::warm::Shared::new(),
    }))
}
