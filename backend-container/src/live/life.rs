//! The host's side of a live container: its state, the control socket, the watchdogs
//! (lifetime, idle timeout), pause/resume, stats and destroy.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sandbox_core::live::ByteStream;
use sandbox_core::{
    Decision, EndReason, EnforcementReport, ExecRequest, Execution, FileData, FileStat, Isolation,
    LiveError, LiveOptions, LiveSandbox, LiveState, LiveStats, Plan, SpawnError, Termination,
};
use tokio::io::unix::AsyncFd;
use tokio::sync::{oneshot, watch};

use super::sock;
use super::wire::{self, Msg};
use crate::cgroup_freeze::Freezer;
use crate::execution::Guard;

/// What init reports when an exec's process ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exited {
    pub(crate) wait_status: i32,
    pub(crate) cpu_us: u64,
    pub(crate) max_rss_kib: u64,
}

#[derive(Debug)]
pub(crate) struct Life {
    pub(crate) state: LiveState,
    pub(crate) ended: Option<EndReason>,
    paused_at: Option<Instant>,
    paused_total: Duration,
    pub(crate) execs: HashMap<u64, oneshot::Sender<Exited>>,
    pub(crate) running: u64,
    last_activity: Instant,
}

/// Shared by the sandbox's handles, its execs and its background tasks. Dropping it
/// destroys the sandbox.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The host's end of the control socket (blocking sends; reads by the reader task).
    pub(crate) ctl: OwnedFd,
    pub(crate) guard: Mutex<Option<Guard>>,
    pub(crate) freezer: Freezer,
    /// While paused: the process that thaws the sandbox if its owner dies.
    thaw_guard: Mutex<Option<crate::cgroup_freeze::ThawGuard>>,
    /// The connect supervisor: every `connect(2)` of every process of the sandbox (each
    /// exec, the file server, what they leave in the background) reaches it through the
    /// user-notification filter init installed. Stopped when the sandbox is destroyed.
    connects: Mutex<Option<crate::unotify::Supervisor>>,
    /// The egress broker (network `egress`): one network namespace for every exec, so
    /// one broker for the sandbox's life. Stopped when the sandbox is destroyed; its
    /// final report is kept in `network_report`.
    broker: Mutex<Option<sandbox_egress::BrokerHandle>>,
    network_report: Mutex<Option<sandbox_core::network::NetworkReport>>,
    /// Where the host reaches the sandbox's exposed ports.
    pub(crate) exposed: Vec<sandbox_core::network::ExposedPort>,
    /// The broker's decisions as they happen (outlives the broker).
    pub(crate) events: Option<sandbox_egress::Events>,
    pub(crate) life: Mutex<Life>,
    pub(crate) paused: watch::Sender<bool>,
    pub(crate) files: Mutex<Option<OwnedFd>>,
    pub(crate) next_id: std::sync::atomic::AtomicU64,
    pub(crate) created: Instant,
    pub(crate) plan: Plan,
    /// Its options (those of sandboxes started from its snapshots).
    pub(crate) options: LiveOptions,
    pub(crate) mode: super::Mode,
    pub(crate) enforcement: EnforcementReport,
    /// Wakes the watchdog on activity and on destroy.
    activity: Arc<tokio::sync::Notify>,
    /// Who an exec's pipes are given to (`Booted::workload_host_ids`).
    pub(crate) workload_host_ids: Option<(u32, u32)>,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Life> {
        self.life.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a control record to init.
    pub(crate) fn send(&self, msg: Msg, fds: &[std::os::fd::RawFd]) -> std::io::Result<()> {
        sock::send(self.ctl.as_raw_fd(), &msg.to_bytes(), fds)
            .map_err(std::io::Error::from_raw_os_error)
    }

    /// Total time spent paused so far (the current pause included).
    pub(crate) fn paused_total(&self) -> Duration {
        let l = self.lock();
        l.paused_total + l.paused_at.map_or(Duration::ZERO, |p| p.elapsed())
    }

    /// Notes activity (an API call, an exec starting or ending) for the idle timeout.
    pub(crate) fn touch(&self) {
        self.lock().last_activity = Instant::now();
        self.activity.notify_one();
    }

    /// Fails unless running.
    pub(crate) fn check_running(&self, operation: &'static str) -> Result<(), LiveError> {
        let state = self.lock().state;
        if state != LiveState::Running {
            return Err(LiveError::WrongState {
                state,
                operation,
                wanted: "running",
            });
        }
        self.touch();
        Ok(())
    }

    /// Kills everything in the sandbox and frees what it holds; the first reason
    /// stays. Blocking (reaps init, removes the cgroup): callers in async code use
    /// [`Shared::destroy_async`].
    pub(crate) fn destroy(&self, reason: EndReason) {
        let execs = {
            let mut l = self.lock();
            if l.state != LiveState::Destroyed {
                l.state = LiveState::Destroyed;
                l.ended = Some(reason);
                if let Some(p) = l.paused_at.take() {
                    l.paused_total += p.elapsed();
                }
            }
            std::mem::take(&mut l.execs)
        };
        drop(execs);
        let guard = self.guard.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(g) = guard {
            g.kill.kill(Termination::Killed);
            // A frozen (v1) process does not die until thawed.
            let _ = self.freezer.set(false);
            drop(
                self.thaw_guard
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take(),
            );
            // Reaps init (once its PID namespace is empty) and removes the cgroup.
            drop(g);
        }
        // Nothing is left to connect (a connect waiting on a thread of its own ends with
        // its peer, a socket of the sandbox).
        let connects = self
            .connects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(connects);
        self.stop_broker();
        self.files.lock().unwrap_or_else(|e| e.into_inner()).take();
        let _ = self.paused.send_replace(false);
        self.activity.notify_one();
    }

    /// Stops the egress broker (its connections end) and keeps its final report.
    pub(crate) fn stop_broker(&self) {
        let broker = self.broker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(b) = broker {
            let report = b.stop();
            *self
                .network_report
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(report);
        }
    }

    /// The egress report: final once the broker stopped, else what it decided so far.
    pub(crate) fn network_report(&self) -> Option<sandbox_core::network::NetworkReport> {
        if let Some(b) = self
            .broker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return Some(b.report());
        }
        self.network_report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Kills init (and so every process of the sandbox) without waiting.
    pub(crate) fn kill_init(&self) {
        if let Some(g) = self
            .guard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            g.kill.kill(Termination::Killed);
        }
    }

    pub(crate) async fn destroy_async(self: &Arc<Self>, reason: EndReason) {
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || me.destroy(reason)).await;
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.destroy(EndReason::Destroyed);
    }
}

/// A live container sandbox.
#[derive(Debug)]
pub(crate) struct ContainerLive {
    pub(crate) shared: Arc<Shared>,
}

impl ContainerLive {
    /// Moves the calling thread into `namespaces` of the sandbox's init.
    fn enter(&self, namespaces: nix::sched::CloneFlags) -> Result<(), LiveError> {
        let s = &self.shared;
        // As everywhere, the life lock is let go before the guard's is taken.
        let state = s.lock().state;
        let g = s.guard.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            Some(g) if state != LiveState::Destroyed => g
                .kill
                .enter(namespaces)
                .map_err(|e| LiveError::Failed("entering its namespaces".into(), e.into())),
            _ => Err(LiveError::WrongState {
                state,
                operation: "entering its namespaces",
                wanted: "running or paused",
            }),
        }
    }

    pub(crate) async fn create(
        plan: Plan,
        options: LiveOptions,
        mode: super::Mode,
    ) -> Result<Arc<ContainerLive>, SpawnError> {
        let created = Instant::now();
        let boot_plan = super::boot_plan(&plan);
        let booted = crate::boot(&boot_plan, mode).await?;
        let mut enforcement = booted.enforcement;
        if mode == super::Mode::Live {
            let exec_cgroups = booted
                .guard
                .cgroup
                .as_ref()
                .is_some_and(crate::cgroup::Cgroup::counts_cpu);
            live_report(&mut enforcement, &booted.freezer, &options, exec_cgroups);
        }
        let (paused, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            ctl: booted.parent.control,
            guard: Mutex::new(Some(booted.guard)),
            freezer: booted.freezer,
            thaw_guard: Mutex::new(None),
            connects: Mutex::new(Some(booted.connects)),
            exposed: booted
                .broker
                .as_ref()
                .map(|b| b.exposed().to_vec())
                .unwrap_or_default(),
            events: booted
                .broker
                .as_ref()
                .map(sandbox_egress::BrokerHandle::events_source),
            broker: Mutex::new(booted.broker),
            network_report: Mutex::new(None),
            life: Mutex::new(Life {
                state: LiveState::Running,
                ended: None,
                paused_at: None,
                paused_total: Duration::ZERO,
                execs: HashMap::new(),
                running: 0,
                last_activity: Instant::now(),
            }),
            paused,
            files: Mutex::new(None),
            next_id: std::sync::atomic::AtomicU64::new(1),
            created,
            plan,
            options: options.clone(),
            mode,
            enforcement,
            activity: Arc::new(tokio::sync::Notify::new()),
            workload_host_ids: booted.workload_host_ids,
        });
        // The start pipes are no longer needed (init closed its ends).
        drop((
            booted.parent.sync_w,
            booted.parent.err_r,
            booted.parent.notify,
        ));
        drop(booted.pidfd);
        let reader = shared
            .ctl
            .try_clone()
            .map_err(|e| super::setup("duplicating the control socket", e))?;
        // SAFETY: an OwnedFd owns its descriptor and returns the same one for its life.
        let reader =
            unsafe { AsyncFd::register_with_interest(reader, tokio::io::Interest::READABLE) }
                .map_err(|e| super::setup("watching the control socket", e.into_parts().1))?;
        tokio::spawn(read_control(reader, Arc::downgrade(&shared)));
        if options.lifetime.is_some() || options.idle_timeout.is_some() {
            tokio::spawn(watchdog(
                Arc::downgrade(&shared),
                shared.activity.clone(),
                options,
            ));
        }
        Ok(Arc::new(ContainerLive { shared }))
    }
}

/// What a live sandbox's report adds to a run's.
fn live_report(
    enforcement: &mut EnforcementReport,
    freezer: &Freezer,
    options: &LiveOptions,
    exec_cgroups: bool,
) {
    let d = &mut enforcement.limits.details;
    d.insert("pause".into(), freezer.describe());
    d.insert(
        "exec_wall_time".into(),
        "per exec: supervisor timer (paused time not counted), the exec's process group killed"
            .into(),
    );
    d.insert(
        "exec_cpu_time".into(),
        if exec_cgroups {
            "per exec: a cgroup of its own counts every process it starts, all of them killed at the limit (and RLIMIT_CPU on each)"
        } else {
            "per exec: RLIMIT_CPU on each of its processes (this host gives the sandbox no cgroup that counts CPU time)"
        }
        .into(),
    );
    if let Some(l) = options.lifetime {
        d.insert(
            "lifetime".into(),
            format!("{} ms, then the sandbox is destroyed", l.as_millis()),
        );
    }
    if let Some(i) = options.idle_timeout {
        d.insert(
            "idle_timeout".into(),
            format!(
                "{} ms without an exec running or a call, then destroyed",
                i.as_millis()
            ),
        );
    }
    enforcement
        .filesystem
        .push_str("; live: file operations by a confined file server inside the sandbox");
}

/// Dispatches init's reports; on the socket's end (init gone), the sandbox has failed.
async fn read_control(fd: AsyncFd<OwnedFd>, shared: Weak<Shared>) {
    loop {
        let mut guard = match fd.readable().await {
            Ok(g) => g,
            Err(_) => break,
        };
        let mut buf = [0u8; Msg::SIZE];
        let mut fds = [-1; sock::MAX_FDS];
        match guard.try_io(|s| {
            sock::recv(s.as_raw_fd(), &mut buf, &mut fds, libc::MSG_DONTWAIT)
                .map_err(std::io::Error::from_raw_os_error)
        }) {
            Err(_would_block) => continue,
            Ok(Ok((0, 0))) | Ok(Err(_)) => break,
            Ok(Ok((n, nfds))) => {
                for &f in &fds[..nfds] {
                    crate::sys::close(f);
                }
                let Some(s) = shared.upgrade() else { return };
                if n != Msg::SIZE {
                    continue;
                }
                let msg = Msg::from_bytes(&buf);
                if msg.kind == wire::MSG_EXITED {
                    if msg.id == wire::FILES_ID {
                        s.files.lock().unwrap_or_else(|e| e.into_inner()).take();
                        continue;
                    }
                    let tx = s.lock().execs.remove(&msg.id);
                    if let Some(tx) = tx {
                        let _ = tx.send(Exited {
                            wait_status: msg.a as i32,
                            cpu_us: msg.b,
                            max_rss_kib: msg.c,
                        });
                    }
                }
            }
        }
    }
    // Init is gone: whatever was not destroyed on purpose failed. A run's sandbox is
    // destroyed by its exec's supervision once the outcome (and the cgroup's counters)
    // are taken; here its exec only learns that no exit status will come.
    if let Some(s) = shared.upgrade() {
        if s.mode == super::Mode::Run {
            let execs = std::mem::take(&mut s.lock().execs);
            drop(execs);
            return;
        }
        let reason = {
            let l = s.lock();
            (l.state != LiveState::Destroyed).then_some(())
        };
        if reason.is_some() {
            let oom = s
                .guard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .and_then(|g| g.cgroup.as_ref().map(|c| c.stats().oom_kills))
                .unwrap_or(0);
            let why = if oom > 0 {
                EndReason::MemoryLimit
            } else {
                EndReason::Failed
            };
            s.destroy_async(why).await;
        }
    }
}

/// Destroys the sandbox when its lifetime passes or it stays idle too long.
async fn watchdog(shared: Weak<Shared>, activity: Arc<tokio::sync::Notify>, options: LiveOptions) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let (state, running, last) = {
            let l = s.lock();
            (l.state, l.running, l.last_activity)
        };
        if state == LiveState::Destroyed {
            return;
        }
        let now = Instant::now();
        if let Some(lt) = options.lifetime {
            if now >= s.created + lt {
                s.destroy_async(EndReason::Lifetime).await;
                return;
            }
        }
        let idle_due = options
            .idle_timeout
            .filter(|_| state == LiveState::Running && running == 0)
            .map(|i| last + i);
        if let Some(due) = idle_due {
            if now >= due {
                s.destroy_async(EndReason::IdleTimeout).await;
                return;
            }
        }
        let next = [options.lifetime.map(|l| s.created + l), idle_due]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_secs(3600));
        // Hold no strong handle while waiting: dropping the last one destroys.
        drop(s);
        tokio::select! {
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {}
            _ = activity.notified() => {}
        }
    }
}

fn failed(what: &str, e: std::io::Error) -> LiveError {
    LiveError::Failed(what.into(), e)
}

#[async_trait]
impl LiveSandbox for ContainerLive {
    fn isolation(&self) -> Isolation {
        Isolation::Container
    }

    async fn snapshot(&self) -> Result<Arc<dyn sandbox_core::LiveSnapshot>, LiveError> {
        let s = &self.shared;
        let snap = super::snapshot::take(self, s.plan.clone(), s.options.clone()).await?;
        Ok(Arc::new(snap))
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
        self.shared.network_report()
    }
    fn network_events(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<sandbox_core::network::NetworkEvent>> {
        self.shared
            .events
            .as_ref()
            .map(sandbox_egress::Events::subscribe)
    }

    async fn exec(&self, request: ExecRequest) -> Result<Box<dyn Execution>, LiveError> {
        super::exec::start(&self.shared, request, super::exec::Owner::Sandbox)
            .await
            .map(|e| Box::new(e) as Box<dyn Execution>)
    }

    async fn exec_parked(
        &self,
        mut request: ExecRequest,
        within: Duration,
    ) -> Result<sandbox_core::Parked, LiveError> {
        request.stdin = sandbox_core::Stdin::Stream;
        request.tty = None;
        let mut e = super::exec::start(&self.shared, request, super::exec::Owner::Sandbox).await?;
        let stdin = e.take_stdin();
        let Some(ino) = e.stdin_ino else {
            return Err(LiveError::Unsupported(
                "the exec's stdin is not a pipe the host can look at".into(),
            ));
        };
        let until = Instant::now() + within;
        let mut pause = Duration::from_micros(500);
        loop {
            if e.ended() {
                drop(stdin);
                let o = e.wait().await.map_err(|err| {
                    LiveError::Failed("waiting for the exec".into(), std::io::Error::other(err))
                })?;
                return Ok(sandbox_core::Parked::Ended(Box::new(o)));
            }
            let state = tokio::task::spawn_blocking(move || super::park::state(ino))
                .await
                .map_err(|err| {
                    LiveError::Failed("looking at /proc".into(), std::io::Error::other(err))
                })?
                .map_err(|err| {
                    LiveError::Failed("telling whether the exec waits on its stdin".into(), err)
                })?;
            // Checked again after the look: an exec that ended in between is no waiter.
            if state == super::park::ParkState::Waiting && !e.ended() {
                return Ok(sandbox_core::Parked::Waiting {
                    exec: sandbox_core::ParkedExec { id: 0, pid: 0 },
                    execution: Box::new(e),
                    stdin,
                });
            }
            if Instant::now() >= until {
                return Err(LiveError::Invalid(format!(
                    "the program did not wait on its stdin within {} ms (it is still running, or waits on something else)",
                    within.as_millis()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    async fn write_file(&self, path: &str, data: FileData, mode: u32) -> Result<u64, LiveError> {
        self.shared.check_running("write_file")?;
        super::files::write_file(&self.shared, path, data, mode).await
    }
    async fn read_file(&self, path: &str) -> Result<ByteStream, LiveError> {
        self.shared.check_running("read_file")?;
        super::files::read_file(&self.shared, path).await
    }
    async fn list_dir(&self, path: &str) -> Result<Vec<FileStat>, LiveError> {
        self.shared.check_running("list_dir")?;
        super::files::list_dir(&self.shared, path).await
    }
    async fn stat(&self, path: &str) -> Result<FileStat, LiveError> {
        self.shared.check_running("stat")?;
        super::files::stat(&self.shared, path).await
    }
    async fn mkdir(&self, path: &str, parents: bool) -> Result<(), LiveError> {
        self.shared.check_running("mkdir")?;
        super::files::simple(
            &self.shared,
            wire::FS_MKDIR,
            "mkdir",
            path,
            "",
            parents,
            0o755,
        )
        .await
    }
    async fn remove(&self, path: &str, recursive: bool) -> Result<(), LiveError> {
        self.shared.check_running("remove")?;
        super::files::simple(
            &self.shared,
            wire::FS_REMOVE,
            "remove",
            path,
            "",
            recursive,
            0,
        )
        .await
    }
    async fn rename(&self, from: &str, to: &str) -> Result<(), LiveError> {
        self.shared.check_running("rename")?;
        super::files::validate(to)?;
        super::files::simple(&self.shared, wire::FS_RENAME, "rename", from, to, false, 0).await
    }

    async fn pause(&self) -> Result<(), LiveError> {
        let s = &self.shared;
        {
            let l = s.lock();
            match l.state {
                LiveState::Running => {}
                LiveState::Paused => return Ok(()),
                state => {
                    return Err(LiveError::WrongState {
                        state,
                        operation: "pause",
                        wanted: "running",
                    })
                }
            }
        }
        if let Freezer::None(why) = &s.freezer {
            return Err(LiveError::Unsupported(format!(
                "pausing needs the cgroup freezer, which this sandbox lacks: {why}"
            )));
        }
        let me = s.clone();
        let guard = tokio::task::spawn_blocking(move || {
            // Started before the freeze: the owner's death at any moment after it is
            // covered.
            let guard = crate::cgroup_freeze::ThawGuard::start(&me.freezer)?;
            me.freezer.set(true).map(|()| guard)
        })
        .await
        .map_err(|e| failed("pausing", std::io::Error::other(e)))?
        .map_err(|e| failed("pausing", e))?;
        *s.thaw_guard.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
        let mut l = s.lock();
        if l.state == LiveState::Running {
            l.state = LiveState::Paused;
            l.paused_at = Some(Instant::now());
        }
        drop(l);
        let _ = s.paused.send_replace(true);
        s.touch();
        Ok(())
    }

    async fn resume(&self) -> Result<(), LiveError> {
        let s = &self.shared;
        {
            let l = s.lock();
            match l.state {
                LiveState::Paused => {}
                LiveState::Running => return Ok(()),
                state => {
                    return Err(LiveError::WrongState {
                        state,
                        operation: "resume",
                        wanted: "paused",
                    })
                }
            }
        }
        let me = s.clone();
        tokio::task::spawn_blocking(move || me.freezer.set(false))
            .await
            .map_err(|e| failed("resuming", std::io::Error::other(e)))?
            .map_err(|e| failed("resuming", e))?;
        drop(
            s.thaw_guard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        let mut l = s.lock();
        if l.state == LiveState::Paused {
            l.state = LiveState::Running;
            if let Some(p) = l.paused_at.take() {
                l.paused_total += p.elapsed();
            }
        }
        drop(l);
        let _ = s.paused.send_replace(false);
        s.touch();
        Ok(())
    }

    async fn stats(&self) -> Result<LiveStats, LiveError> {
        let s = &self.shared;
        let (state, running) = {
            let l = s.lock();
            (l.state, l.running)
        };
        if state == LiveState::Destroyed {
            return Err(LiveError::WrongState {
                state,
                operation: "stats",
                wanted: "running or paused",
            });
        }
        s.touch();
        let (cg, usage) = {
            let g = s.guard.lock().unwrap_or_else(|e| e.into_inner());
            let c = g.as_ref().and_then(|g| g.cgroup.as_ref());
            (
                c.map(|c| c.stats()).unwrap_or_default(),
                c.map(|c| c.usage()).unwrap_or((None, None)),
            )
        };
        let disk_bytes = if state == LiveState::Running {
            super::files::disk_used(s).await.unwrap_or(0)
        } else {
            0
        };
        Ok(LiveStats {
            memory_bytes: usage.0.unwrap_or(0),
            peak_memory_bytes: cg.peak_memory.unwrap_or(0),
            cpu_time_ms: cg.cpu_ns.map_or(0.0, |n| n as f64 / 1e6),
            processes: usage.1.unwrap_or(0),
            disk_bytes,
            execs_running: running,
            uptime_ms: s.created.elapsed().as_secs_f64() * 1e3,
            paused_ms: s.paused_total().as_secs_f64() * 1e3,
        })
    }

    async fn destroy(&self) -> Result<(), LiveError> {
        self.shared.destroy_async(EndReason::Destroyed).await;
        Ok(())
    }

    fn enter_mount_namespace(&self) -> Result<(), LiveError> {
        // setns(2) into a mount namespace is refused to a thread sharing its
        // filesystem attributes with others (the threads of its process).
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS).map_err(|e| {
            LiveError::Failed("unsharing its filesystem attributes".into(), e.into())
        })?;
        self.enter(nix::sched::CloneFlags::CLONE_NEWNS)
    }

    fn enter_namespaces(&self) -> Result<(), LiveError> {
        use nix::sched::CloneFlags;
        self.enter(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS)
    }

    async fn update_limits(&self, limits: &sandbox_core::Limits) -> Result<(), LiveError> {
        if let Some(fixed) = limits
            .names_set()
            .into_iter()
            .find(|n| !matches!(*n, "memory" | "pids" | "cpus"))
        {
            return Err(LiveError::Invalid(format!(
                "the {fixed} limit of a live container sandbox is fixed when it is created; \
                 memory, pids and cpus can change"
            )));
        }
        let s = &self.shared;
        let state = s.lock().state;
        if state == LiveState::Destroyed {
            return Err(LiveError::WrongState {
                state,
                operation: "update_limits",
                wanted: "running or paused",
            });
        }
        if limits.is_empty() {
            return Ok(());
        }
        s.touch();
        let me = s.clone();
        let limits = limits.clone();
        tokio::task::spawn_blocking(move || {
            let g = me.guard.lock().unwrap_or_else(|e| e.into_inner());
            let host = crate::cgroup::host();
            match g.as_ref().and_then(|g| g.cgroup.as_ref()) {
                Some(cg) => cg.update(host, &limits).map_err(|e| LiveError::Invalid(e.to_string())),
                None => Err(LiveError::Unsupported(match host {
                    crate::cgroup::Host::Unusable { reason } => format!(
                        "the sandbox's limits are rlimits set when it was created, not a cgroup's: {reason}"
                    ),
                    _ => "the sandbox has no cgroup, so its limits cannot change".into(),
                })),
            }
        })
        .await
        .map_err(|e| failed("updating limits", std::io::Error::other(e)))?
    }
}
