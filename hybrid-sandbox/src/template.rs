//! Warm templates (`[templates.NAME]` in the policy): a program started once and run
//! until it first waits on its stdin; each run starts from that state and gets the
//! run's stdin, then end of file.
//!
//! - **Micro-VM**: the template is a live micro-VM whose program is *parked* (blocked
//!   reading its empty stdin, `backend-microvm`'s `live/park.rs` says exactly when),
//!   snapshotted once in memory. Each run is a fork of that snapshot that takes the
//!   parked program over with the run's stdin, limits and output
//!   ([`sandbox_core::LiveSnapshot::start_parked`]). With `pool = N`, N such forks
//!   are started ahead ([`sandbox_core::LiveSnapshot::prestart_parked`]), their
//!   program still waiting; a run takes one and only hands it its stdin, and the pool
//!   refills in the background.
//! - **Container**: a pool of `pool` live containers, each with the program started
//!   and its stdin open and empty. A run takes one (or starts one cold when none is
//!   ready), writes its stdin and closes it; the pool refills in the background.
//!
//! A template is built when first used or by [`Sandbox::build_template`]; one whose
//! program ends before it waits on its stdin is an error naming the template, with
//! its stderr.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sandbox_core::{
    ExecLimits, ExecRequest, Execution, Isolation, LiveOptions, Outcome, Parked, ParkedExec,
    PreStarted, Stdin, StdinWriter, TemplateDef, Termination,
};

use crate::live::{Live, Snapshot};
use crate::sandbox::{Error, Sandbox};

/// How long a micro-VM template's program may take to wait on its stdin, when its
/// limits set no shorter wall time.
const BUILD_WAIT: Duration = Duration::from_secs(60);
/// How much of a failed template's stderr an error shows.
const STDERR_SHOWN: usize = 4096;

/// The templates a [`Sandbox`] has built (shared by its clones).
#[derive(Default)]
pub(crate) struct Templates {
    built: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<Built>>>>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .built
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        f.debug_struct("Templates").field("built", &names).finish()
    }
}

enum Built {
    MicroVm {
        def: Box<TemplateDef>,
        snapshot: Snapshot,
        exec: ParkedExec,
        took: Duration,
        /// Forks started ahead (`pool` in the policy), if any.
        pool: Option<Arc<VmPool>>,
    },
    Container(Arc<Pool>),
}

/// What a template is, once built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInfo {
    /// Its name.
    pub name: String,
    /// Its backend.
    pub isolation: Isolation,
    /// The program.
    pub argv: Vec<String>,
    /// Container: instances ready now; micro-VM: 0.
    pub ready: usize,
    /// Container: the pool's size; micro-VM: 0.
    pub pool: u32,
    /// Micro-VM: bytes of guest memory its snapshot holds; container: 0.
    pub memory_bytes: u64,
    /// How long building it took (micro-VM: start to the snapshot; container: the
    /// first instance).
    pub build_time: Duration,
}

/// A run from a template: its stdin and per-run limits (unset ones: the template's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateRun {
    /// The bytes the program reads, then end of file.
    pub stdin: Vec<u8>,
    /// `wall_time`, `cpu_time`, `output` of this run.
    pub limits: ExecLimits,
}

impl TemplateRun {
    /// A run reading `stdin`.
    pub fn new(stdin: impl Into<Vec<u8>>) -> TemplateRun {
        TemplateRun {
            stdin: stdin.into(),
            limits: ExecLimits::default(),
        }
    }
}

fn template_error(name: &str, message: impl Into<String>) -> Error {
    Error::Template {
        name: name.to_string(),
        message: message.into(),
    }
}

fn stderr_tail(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let s = s.trim_end();
    if s.is_empty() {
        return "(its stderr is empty)".into();
    }
    let start = s.len().saturating_sub(STDERR_SHOWN);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    format!("its stderr:\n{}", &s[start..])
}

fn ended_early(name: &str, o: &Outcome) -> Error {
    let how = match (o.termination, o.exit_code, o.signal) {
        (Termination::Exited, Some(c), _) => format!("exited with status {c}"),
        (Termination::Signaled, _, Some(s)) => format!("was killed by signal {s}"),
        (Termination::Timeout, _, _) => {
            "was ended by its wall-time limit (it never blocked reading its stdin: a read, readv, splice, copy_file_range, sendfile or poll on it)".to_string()
        }
        (t, _, _) => format!("was ended ({t})"),
    };
    template_error(
        name,
        format!(
            "the template's program {how} before it waited on its stdin; {}",
            stderr_tail(&o.stderr)
        ),
    )
}

impl Sandbox {
    /// Builds template `name` of the policy now (else it is built at its first run),
    /// or returns it as built. Micro-VM: its program is started and snapshotted once
    /// it waits on its stdin; container: its pool is started.
    pub async fn build_template(&self, name: &str) -> Result<TemplateInfo, Error> {
        let built = self.built(name).await?;
        Ok(match &*built {
            Built::MicroVm {
                def,
                snapshot,
                took,
                pool,
                ..
            } => TemplateInfo {
                name: def.name.clone(),
                isolation: Isolation::MicroVm,
                argv: def.argv.clone(),
                ready: pool.as_ref().map_or(0, |p| p.ready()),
                pool: def.pool,
                memory_bytes: snapshot.memory_bytes(),
                build_time: *took,
            },
            Built::Container(p) => TemplateInfo {
                name: p.def.name.clone(),
                isolation: Isolation::Container,
                argv: p.def.argv.clone(),
                ready: p.ready(),
                pool: p.def.pool,
                memory_bytes: 0,
                build_time: p.took,
            },
        })
    }

    /// Runs template `name` with `run`'s stdin and limits, to its end. The outcome is
    /// returned when the program has ended: a micro-VM run's sandbox (memory,
    /// descriptors and thread of this process) is then freed in the background, a
    /// container's before this returns.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), hybrid_sandbox::Error> {
    /// use hybrid_sandbox::{Sandbox, TemplateRun};
    /// let sandbox = Sandbox::with_default_policy();
    /// let out = sandbox.run_template("py", TemplateRun::new("print(6 * 7)")).await?;
    /// assert_eq!(out.stdout, b"42\n");
    /// # Ok(()) }
    /// ```
    pub async fn run_template(&self, name: &str, run: TemplateRun) -> Result<Outcome, Error> {
        let (live, mut exec) = self.start_template(name, run).await?;
        let out = exec.wait().await.map_err(Error::Run);
        drop(exec);
        if live.isolation() == Isolation::MicroVm {
            // The outcome is out once the program has ended; the micro-VM (in this
            // process: memory, descriptors, its thread) is freed in the background.
            // Were the runtime to stop first, dropping the task's `live` destroys it.
            tokio::spawn(async move {
                let _ = live.destroy().await;
            });
        } else {
            // A container's teardown (its processes, cgroups) is waited for: this
            // process may end right after the outcome.
            let _ = live.destroy().await;
        }
        out
    }

    /// Starts a run of template `name`: the live sandbox it runs in and its execution
    /// (stream its output, wait for its outcome). The sandbox is the caller's: destroy
    /// it (or drop it) when done.
    pub async fn start_template(
        &self,
        name: &str,
        run: TemplateRun,
    ) -> Result<(Live, Box<dyn Execution>), Error> {
        let built = self.built(name).await?;
        match &*built {
            Built::MicroVm {
                def,
                snapshot,
                exec,
                pool,
                ..
            } => {
                if let Some(p) = pool {
                    if let Some(started) = p.take(&run) {
                        let live = snapshot.adopt(started.sandbox());
                        let warmed = started.warmed_pages();
                        let execution = started.feed(run.stdin, run.limits.wall_time);
                        let note = format!(
                            "template `{}`: a fork of its micro-VM snapshot started ahead, from its pool of {}{}",
                            def.name,
                            def.pool,
                            if warmed > 0 {
                                format!(", its address translations filled while it waited ({warmed} pages an earlier run touched)")
                            } else {
                                String::new()
                            }
                        );
                        return Ok((live, Box::new(Noted::new(execution, note, None))));
                    }
                }
                let (sandbox, execution) = snapshot
                    .inner()
                    .start_parked(*exec, run.stdin, run.limits)
                    .await
                    .map_err(Error::Live)?;
                let live = snapshot.adopt(sandbox);
                let note = format!(
                    "template `{}`: a fork of its micro-VM snapshot (its program waiting on stdin){}",
                    def.name,
                    if pool.is_some() {
                        ", started now (no fork of its pool was ready, or the run asks for its own CPU or output limit)"
                    } else {
                        ""
                    }
                );
                Ok((live, Box::new(Noted::new(execution, note, None))))
            }
            Built::Container(pool) => pool.take(run).await,
        }
    }

    /// The template, built once (concurrent first uses wait for the same build).
    async fn built(&self, name: &str) -> Result<Arc<Built>, Error> {
        let def = self.policy().template(name).map_err(Error::Policy)?;
        let cell = {
            let mut m = self
                .templates()
                .built
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            Arc::clone(m.entry(name.to_string()).or_default())
        };
        cell.get_or_try_init(|| self.build(def))
            .await
            .map(Arc::clone)
    }

    async fn build(&self, def: TemplateDef) -> Result<Arc<Built>, Error> {
        let began = Instant::now();
        match def.isolation {
            Isolation::MicroVm => {
                let live = self
                    .create(def.spec.clone(), LiveOptions::default())
                    .await
                    .map_err(|e| {
                        template_error(&def.name, format!("creating its micro-VM: {}", e.chain()))
                    })?;
                let within = def
                    .spec
                    .limits
                    .wall_time
                    .map_or(BUILD_WAIT, |w| w.min(BUILD_WAIT));
                let parked = live
                    .inner()
                    .exec_parked(ExecRequest::new(def.argv.clone()), within)
                    .await
                    .map_err(|e| {
                        template_error(
                            &def.name,
                            format!("starting its program: {}", Error::Live(e).chain()),
                        )
                    })?;
                let (exec, execution, stdin) = match parked {
                    Parked::Waiting {
                        exec,
                        execution,
                        stdin,
                    } => (exec, execution, stdin),
                    Parked::Ended(o) => {
                        let _ = live.destroy().await;
                        return Err(ended_early(&def.name, &o));
                    }
                };
                let snapshot = live.snapshot().await.map_err(|e| {
                    template_error(&def.name, format!("taking its snapshot: {}", e.chain()))
                })?;
                // The template's own sandbox is not needed any more: its snapshot
                // stands alone.
                let _ = live.destroy().await;
                drop((execution, stdin));
                let pool = (def.pool > 0).then(|| VmPool::start(&def, snapshot.clone(), exec));
                Ok(Arc::new(Built::MicroVm {
                    def: Box::new(def),
                    snapshot,
                    exec,
                    took: began.elapsed(),
                    pool,
                }))
            }
            Isolation::Container => {
                let pool = Pool::start(self.without_templates(), def).await?;
                Ok(Arc::new(Built::Container(pool)))
            }
        }
    }
}

/// A micro-VM template's forks started ahead, their program waiting on its stdin.
struct VmPool {
    name: String,
    size: usize,
    /// The template's CPU and output limits, which every fork of the pool runs under.
    limits: ExecLimits,
    snapshot: Snapshot,
    exec: ParkedExec,
    ready: Mutex<VecDeque<Box<dyn PreStarted>>>,
    /// Forks being started.
    filling: Mutex<usize>,
    me: Weak<VmPool>,
}

impl VmPool {
    fn start(def: &TemplateDef, snapshot: Snapshot, exec: ParkedExec) -> Arc<VmPool> {
        let pool = Arc::new_cyclic(|me| VmPool {
            name: def.name.clone(),
            size: def.pool as usize,
            limits: ExecLimits {
                wall_time: None,
                cpu_time: def.spec.limits.cpu_time,
                output: def.spec.limits.output,
            },
            snapshot,
            exec,
            ready: Mutex::new(VecDeque::new()),
            filling: Mutex::new(0),
            me: me.clone(),
        });
        pool.refill(Duration::ZERO);
        pool
    }

    fn ready(&self) -> usize {
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Starts forks in the background, after `delay`, until `size` are ready or
    /// starting.
    fn refill(&self, delay: Duration) {
        let missing = {
            let ready = self.ready();
            let mut filling = self.filling.lock().unwrap_or_else(|p| p.into_inner());
            let missing = self.size.saturating_sub(ready + *filling);
            *filling += missing;
            missing
        };
        for _ in 0..missing {
            let weak = self.me.clone();
            tokio::spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let Some(pool) = weak.upgrade() else {
                    return;
                };
                let (snapshot, exec, limits) = (
                    pool.snapshot.inner().clone(),
                    pool.exec,
                    pool.limits.clone(),
                );
                drop(pool); // not held while the fork starts
                let made = snapshot.prestart_parked(exec, limits).await;
                let Some(pool) = weak.upgrade() else {
                    return; // the template went: `made` is dropped, its VM destroyed
                };
                *pool.filling.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                match made {
                    Ok(f) => pool
                        .ready
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_back(f),
                    Err(e) => {
                        tracing::warn!(template = %pool.name, error = %e, "starting a fork for a micro-VM template's pool failed")
                    }
                }
            });
        }
    }

    /// A ready fork for `run` (refilling behind it), unless the run asks for CPU or
    /// output limits other than the ones the pool's forks run under, or none is ready.
    fn take(&self, run: &TemplateRun) -> Option<Box<dyn PreStarted>> {
        let own_limits = (run.limits.cpu_time.is_some()
            && run.limits.cpu_time != self.limits.cpu_time)
            || (run.limits.output.is_some() && run.limits.output != self.limits.output);
        if own_limits {
            return None;
        }
        let mut taken = None;
        loop {
            let next = self
                .ready
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front();
            match next {
                Some(f) if f.sandbox().state() == sandbox_core::LiveState::Running => {
                    taken = Some(f);
                    break;
                }
                Some(f) => drop(f), // ended (a lifetime, a failure): not used
                None => break,
            }
        }
        // The run just fed keeps the host's CPUs for its first milliseconds: a fork's
        // start and warming (~1 ms, then tens of ms for a Python template on PVM)
        // would take one from it.
        self.refill(REFILL_DELAY);
        taken
    }
}

/// How long a micro-VM pool waits after a run took a fork before it starts another.
const REFILL_DELAY: Duration = Duration::from_millis(15);

/// A container template's ready instances.
struct Pool {
    def: TemplateDef,
    /// Creates instances (a clone of the sandbox without its templates: no cycle).
    sandbox: Sandbox,
    ready: Mutex<VecDeque<Instance>>,
    /// Instances being started.
    filling: Mutex<usize>,
    took: Duration,
    me: Weak<Pool>,
}

/// A live container with the template's program started, its stdin open and empty.
struct Instance {
    live: Live,
    execution: Box<dyn Execution>,
    stdin: StdinWriter,
}

impl Pool {
    async fn start(sandbox: Sandbox, def: TemplateDef) -> Result<Arc<Pool>, Error> {
        let began = Instant::now();
        // The first instance is started here: a program that cannot start is an error
        // now, not in the background.
        let first = new_instance(&sandbox, &def).await?;
        let pool = Arc::new_cyclic(|me| Pool {
            def,
            sandbox,
            ready: Mutex::new(VecDeque::from([first])),
            filling: Mutex::new(0),
            took: began.elapsed(),
            me: me.clone(),
        });
        pool.refill();
        Ok(pool)
    }

    fn ready(&self) -> usize {
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Starts instances in the background until `pool` are ready or starting.
    fn refill(&self) {
        let want = self.def.pool as usize;
        let missing = {
            let ready = self.ready();
            let mut filling = self.filling.lock().unwrap_or_else(|p| p.into_inner());
            let missing = want.saturating_sub(ready + *filling);
            *filling += missing;
            missing
        };
        for _ in 0..missing {
            let weak = self.me.clone();
            tokio::spawn(async move {
                let Some(pool) = weak.upgrade() else {
                    return;
                };
                let (sandbox, def) = (pool.sandbox.clone(), pool.def.clone());
                drop(pool); // not held while the instance starts
                let made = new_instance(&sandbox, &def).await;
                let Some(pool) = weak.upgrade() else {
                    return;
                };
                *pool.filling.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                match made {
                    Ok(i) => pool
                        .ready
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_back(i),
                    Err(e) => {
                        tracing::warn!(template = %def.name, error = %e.chain(), "refilling a template's pool failed")
                    }
                }
            });
        }
    }

    /// Takes a ready instance whose program still runs (else starts one cold), feeds
    /// it the run's stdin and closes it.
    async fn take(&self, run: TemplateRun) -> Result<(Live, Box<dyn Execution>), Error> {
        let t = &self.def.spec.limits;
        // An instance's exec was started with the template's CPU and output limits: a
        // run asking for others starts cold with its own.
        let own_limits = (run.limits.cpu_time.is_some() && run.limits.cpu_time != t.cpu_time)
            || (run.limits.output.is_some() && run.limits.output != t.output);
        let mut cold = true;
        let mut instance = None;
        if !own_limits {
            loop {
                let next = self
                    .ready
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .pop_front();
                match next {
                    Some(i) if i.live.state() == sandbox_core::LiveState::Running => {
                        instance = Some(i);
                        cold = false;
                        break;
                    }
                    Some(i) => drop(i), // ended (a lifetime, a failure): not used
                    None => break,
                }
            }
        }
        self.refill();
        let instance = match instance {
            Some(i) => i,
            None => new_instance_with(&self.sandbox, &self.def, &run.limits, false).await?,
        };
        let Instance {
            live,
            execution,
            stdin,
        } = instance;
        let wall = run.limits.wall_time.or(t.wall_time);
        let began = Instant::now();
        let data = run.stdin;
        // Written in the background: a program that reads slowly (or not at all) must
        // not hold the caller before its wall time is counted.
        tokio::spawn(async move {
            if !data.is_empty() {
                let _ = stdin.write(data).await;
            }
            drop(stdin); // end of input
        });
        let note = if cold {
            format!(
                "template `{}`: a container started cold (no pre-started instance was ready{})",
                self.def.name,
                if own_limits {
                    ": the run asks for its own CPU or output limit"
                } else {
                    ""
                }
            )
        } else {
            format!(
                "template `{}`: a pre-started container from its pool of {}",
                self.def.name, self.def.pool
            )
        };
        let timed = wall.map(|w| (w, began));
        Ok((live, Box::new(Noted::new(execution, note, timed))))
    }
}

async fn new_instance(sandbox: &Sandbox, def: &TemplateDef) -> Result<Instance, Error> {
    new_instance_with(sandbox, def, &ExecLimits::default(), true).await
}

/// A live container with the template's program started; with `park`, once the
/// program waits on its stdin (`backend-container`'s `live/park.rs`): a program that
/// ends first is an error naming the template, with its stderr.
async fn new_instance_with(
    sandbox: &Sandbox,
    def: &TemplateDef,
    limits: &ExecLimits,
    park: bool,
) -> Result<Instance, Error> {
    let live = sandbox
        .create(def.spec.clone(), LiveOptions::default())
        .await
        .map_err(|e| template_error(&def.name, format!("creating its container: {}", e.chain())))?;
    let mut req = ExecRequest::new(def.argv.clone());
    req.stdin = Stdin::Stream;
    // The wall time is counted from the run's start (`Noted`), not the pool's.
    req.limits = ExecLimits {
        wall_time: None,
        cpu_time: limits.cpu_time.or(def.spec.limits.cpu_time),
        output: limits.output.or(def.spec.limits.output),
    };
    let start_err =
        |e: Error| template_error(&def.name, format!("starting its program: {}", e.chain()));
    let (execution, stdin) = if park {
        let within = def
            .spec
            .limits
            .wall_time
            .map_or(BUILD_WAIT, |w| w.min(BUILD_WAIT));
        match live
            .inner()
            .exec_parked(req, within)
            .await
            .map_err(|e| start_err(Error::Live(e)))?
        {
            Parked::Waiting {
                execution, stdin, ..
            } => (execution, stdin),
            Parked::Ended(o) => {
                let _ = live.destroy().await;
                return Err(ended_early(&def.name, &o));
            }
        }
    } else {
        let mut execution = live.exec_streaming(req).await.map_err(start_err)?;
        let stdin = execution.take_stdin();
        (execution, stdin)
    };
    let Some(stdin) = stdin else {
        return Err(template_error(
            &def.name,
            "its program's stdin is not writable",
        ));
    };
    Ok(Instance {
        live,
        execution,
        stdin,
    })
}

/// A template run's execution: its outcome says where it came from; a container run's
/// wall time is counted from the run's start.
struct Noted {
    inner: Box<dyn Execution>,
    note: String,
    wall: Option<(Duration, Instant)>,
}

impl Noted {
    fn new(inner: Box<dyn Execution>, note: String, wall: Option<(Duration, Instant)>) -> Noted {
        Noted { inner, note, wall }
    }
}

impl std::fmt::Debug for Noted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Noted").field("note", &self.note).finish()
    }
}

#[async_trait::async_trait]
impl Execution for Noted {
    fn isolation(&self) -> Isolation {
        self.inner.isolation()
    }
    fn take_stdin(&mut self) -> Option<StdinWriter> {
        self.inner.take_stdin()
    }
    fn take_output(&mut self) -> Option<sandbox_core::OutputStream> {
        self.inner.take_output()
    }
    fn take_output_uncaptured(&mut self) -> Option<sandbox_core::OutputStream> {
        self.inner.take_output_uncaptured()
    }
    fn kill_handle(&self) -> sandbox_core::KillHandle {
        self.inner.kill_handle()
    }
    fn signal(&self, signal: i32) -> Result<(), std::io::Error> {
        self.inner.signal(signal)
    }
    fn resize(&self, size: sandbox_core::live::TtySize) -> Result<(), std::io::Error> {
        self.inner.resize(size)
    }
    fn control_handle(&self) -> Option<sandbox_core::ControlHandle> {
        self.inner.control_handle()
    }
    async fn wait(&mut self) -> Result<Outcome, sandbox_core::RunError> {
        let mut timed_out = false;
        let mut out = match self.wall {
            None => self.inner.wait().await?,
            Some((wall, began)) => {
                let left = wall.saturating_sub(began.elapsed());
                let kill = self.inner.kill_handle();
                let fut = self.inner.wait();
                tokio::pin!(fut);
                tokio::select! {
                    r = &mut fut => r?,
                    _ = tokio::time::sleep(left) => { kill.kill(); timed_out = true; fut.await? }
                }
            }
        };
        if let Some((_, began)) = self.wall {
            out.wall_time = began.elapsed();
            if timed_out {
                out.termination = Termination::Timeout;
                out.exit_code = None;
            }
        }
        out.decision.reasons.insert(0, self.note.clone());
        Ok(out)
    }
}
