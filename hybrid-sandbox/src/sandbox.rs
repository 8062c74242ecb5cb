//! The facade: a policy and the two backends.

use std::path::Path;
use std::sync::Arc;

use backend_container::ContainerBackend;
use sandbox_core::{
    Backend, BackendProbe, Execution, Floor, HostSupport, Isolation, Outcome, Plan, Policy,
    PolicyError, RunError, SpawnError, Workload,
};

/// Why a run could not be planned, started or watched. The cause is kept as the source;
/// walk `std::error::Error::source` for the whole chain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy could not be loaded, or rejects the run's options.
    #[error("policy")]
    Policy(#[source] PolicyError),
    /// The sandbox could not be started.
    #[error("starting the sandbox")]
    Spawn(#[source] SpawnError),
    /// The sandbox was started but its outcome could not be collected.
    #[error("running the sandbox")]
    Run(#[source] RunError),
    /// The image could not be imported or found.
    #[error("image")]
    Image(#[source] sandbox_images::ImageError),
    /// The image cannot run as asked.
    #[error("image")]
    ImageUse(#[source] sandbox_core::ImageUseError),
    /// An async runtime could not be created (blocking API).
    #[error("creating the async runtime")]
    Runtime(#[source] std::io::Error),
    /// An operation on a live sandbox failed.
    #[error("live sandbox")]
    Live(#[source] sandbox_core::LiveError),
    /// A warm template could not be built or run (its program ended before it waited
    /// on its stdin: the message shows its stderr).
    #[error("template `{name}`: {message}")]
    Template {
        /// The template's name.
        name: String,
        /// What went wrong, in words.
        message: String,
    },
}

impl Error {
    /// The message of the whole chain on one line: `a: b: c`.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(self);
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }

    /// The exit status a command-line tool should use for this error: 127 when the
    /// program does not exist in the sandbox, 126 when it cannot be executed, else 125.
    pub fn exit_status(&self) -> i32 {
        match self {
            Error::Spawn(SpawnError::ProgramNotFound(_))
            | Error::Live(sandbox_core::LiveError::Exec(SpawnError::ProgramNotFound(_))) => 127,
            Error::Spawn(SpawnError::NotExecutable { .. })
            | Error::Live(sandbox_core::LiveError::Exec(SpawnError::NotExecutable { .. })) => 126,
            _ => 125,
        }
    }

    /// A short machine-readable kind: `policy`, `unavailable`, `program_not_found`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Policy(PolicyError::Selection(_)) => "unavailable",
            Error::Policy(_) => "policy",
            Error::Spawn(SpawnError::Unavailable { .. }) => "unavailable",
            Error::Spawn(SpawnError::ProgramNotFound(_)) => "program_not_found",
            Error::Spawn(SpawnError::NotExecutable { .. }) => "not_executable",
            Error::Spawn(SpawnError::Mount { .. }) => "mount",
            Error::Spawn(SpawnError::Unsupported(_)) => "unsupported",
            Error::Spawn(SpawnError::Setup { .. }) => "setup",
            Error::Run(_) => "run",
            Error::Image(_) | Error::ImageUse(_) => "image",
            Error::Runtime(_) => "runtime",
            Error::Live(e) => e.kind(),
            Error::Template { .. } => "template",
        }
    }
}

/// A policy and the backends it chooses from. Cheap to clone; safe to share between
/// threads and tasks.
#[derive(Debug, Clone)]
pub struct Sandbox {
    policy: Arc<Policy>,
    floor: Option<Arc<Floor>>,
    images: Arc<sandbox_images::ImageStore>,
    container: Arc<dyn Backend>,
    microvm: Arc<dyn Backend>,
    templates: Arc<crate::template::Templates>,
}

impl Sandbox {
    /// A sandbox under `policy`.
    pub fn from_policy(policy: Policy) -> Sandbox {
        Sandbox {
            policy: Arc::new(policy),
            floor: None,
            images: Arc::new(sandbox_images::ImageStore::at(
                sandbox_images::ImageStore::default_location(),
            )),
            container: Arc::new(ContainerBackend::new()),
            microvm: Arc::new(backend_microvm::MicroVmBackend::new()),
            templates: Arc::default(),
        }
    }

    pub(crate) fn templates(&self) -> &crate::template::Templates {
        &self.templates
    }

    /// This sandbox with no template built (what a template's pool uses: no cycle).
    pub(crate) fn without_templates(&self) -> Sandbox {
        Sandbox {
            templates: Arc::default(),
            ..self.clone()
        }
    }

    /// A sandbox under the policy in `path` (TOML, or JSON for `.json` files).
    pub fn from_policy_file(path: impl AsRef<Path>) -> Result<Sandbox, Error> {
        Ok(Sandbox::from_policy(
            Policy::from_file(path).map_err(Error::Policy)?,
        ))
    }

    /// A sandbox under the embedded default policy: safe for untrusted code.
    ///
    /// ```
    /// let sandbox = hybrid_sandbox::Sandbox::with_default_policy();
    /// assert!(sandbox.policy().profile_names().contains(&"default"));
    /// ```
    pub fn with_default_policy() -> Sandbox {
        Sandbox::from_policy(Policy::embedded_default())
    }

    /// Adds an operator floor: minimum isolation, maximum limits, network and mounts
    /// allowed. Applied on top of the policy's own `[floor]` (the stricter wins); a
    /// per-run option beyond it is an error.
    pub fn with_floor(mut self, floor: Floor) -> Sandbox {
        let merged = match self.floor.take() {
            Some(f) => f.stricter(&floor),
            None => floor,
        };
        self.floor = Some(Arc::new(merged));
        self
    }

    /// Uses this image store (default: [`sandbox_images::ImageStore::default_location`]).
    pub fn with_image_store(mut self, store: sandbox_images::ImageStore) -> Sandbox {
        self.images = Arc::new(store);
        self
    }

    /// The image store runs take their images from.
    pub fn image_store(&self) -> &sandbox_images::ImageStore {
        &self.images
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub(crate) fn backend(&self, i: Isolation) -> &Arc<dyn Backend> {
        match i {
            Isolation::Container => &self.container,
            Isolation::MicroVm => &self.microvm,
        }
    }

    /// What each backend found on this host.
    pub fn probe(&self) -> Vec<BackendProbe> {
        vec![self.container.probe(), self.microvm.probe()]
    }

    /// Which backends can run here (and which programs), and why not; each backend is
    /// asked only when a decision needs it.
    pub fn host_support(&self) -> HostSupport {
        let (c1, m1) = (self.container.clone(), self.microvm.clone());
        let (c2, m2) = (self.container.clone(), self.microvm.clone());
        HostSupport::lazy(move |i| match i {
            Isolation::Container => c1.availability(),
            Isolation::MicroVm => m1.availability(),
        })
        .with_can_run(move |i, plan| {
            // A live sandbox has no program yet: each exec is checked when it starts.
            if plan.program.is_empty() {
                return Ok(());
            }
            match i {
                Isolation::Container => c2.supports(plan),
                Isolation::MicroVm => m2.supports(plan),
            }
        })
    }

    pub(crate) fn floor(&self) -> Option<&Floor> {
        self.floor.as_deref()
    }

    /// The floor a plan is decided under: the policy's own `[floor]` with the
    /// operator's on top (the stricter wins).
    pub(crate) fn effective_floor(&self) -> Option<Arc<Floor>> {
        match (self.policy().floor(), self.floor.as_ref()) {
            (Some(a), Some(b)) => Some(Arc::new(a.stricter(b))),
            (Some(a), None) => Some(Arc::new(a.clone())),
            (None, b) => b.cloned(),
        }
    }

    pub(crate) fn images(&self) -> &Arc<sandbox_images::ImageStore> {
        &self.images
    }

    /// The plan for a workload: profile, limits, mounts and the backend, with reasons.
    pub fn plan(&self, workload: &Workload) -> Result<Plan, Error> {
        self.policy
            .resolve_with_floor(workload, &self.host_support(), self.floor.as_deref())
            .map_err(Error::Policy)
    }

    /// Starts a workload; stream its output with [`Execution::take_output`], and wait
    /// for its [`Outcome`] with [`Execution::wait`]. Dropping the execution kills it.
    pub async fn spawn(&self, workload: Workload) -> Result<Box<dyn Execution>, Error> {
        let mut plan = self.plan(&workload)?;
        let layers = if plan.image.is_some() {
            let store = self.images.clone();
            let run = workload.clone();
            // Importing unpacks files: keep it off the async threads.
            let (p, layers) = tokio::task::spawn_blocking(move || {
                let mut plan = plan;
                crate::image::prepare(&store, &mut plan, &run).map(|l| (plan, l))
            })
            .await
            .map_err(|e| Error::Runtime(std::io::Error::other(e)))??;
            plan = p;
            layers
        } else {
            None
        };
        let exec = self
            .backend(plan.decision.isolation)
            .spawn(plan)
            .await
            .map_err(Error::Spawn)?;
        Ok(match layers {
            Some(l) => Box::new(crate::image::WithLayers {
                inner: exec,
                _layers: l,
            }),
            None => exec,
        })
    }

    /// Runs a workload to its end.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), hybrid_sandbox::Error> {
    /// use hybrid_sandbox::{Sandbox, Termination, Workload};
    /// let out = Sandbox::with_default_policy().run(Workload::new("true", Vec::<String>::new())).await?;
    /// assert_eq!(out.termination, Termination::Exited);
    /// # Ok(()) }
    /// ```
    pub async fn run(&self, workload: Workload) -> Result<Outcome, Error> {
        let mut exec = self.spawn(workload).await?;
        exec.wait().await.map_err(Error::Run)
    }
}
