//! `hsb oci`: hsb as an OCI runtime, with runc's command-line contract, so that Docker,
//! Podman and containerd run each container in hsb's container isolation or in a
//! micro-VM, as a policy decides.
//!
//! The same binary answers to the runtime names an engine is given directly (argv[0]):
//! `hsb-oci` (the policy and the annotation `io.hybrid-sandbox.isolation` decide),
//! `hsb-oci-container` and `hsb-oci-microvm` (fixed isolation: one runtime per
//! isolation level, for containerd's `BinaryName` or a Kubernetes `RuntimeClass`).
//!
//! Errors go to stderr and to `--log`, and exit with status 1, as runc's do.

mod cgroups;
mod commands;
mod config;
mod console;
mod ctl;
mod hooks;
mod log;
mod relay;
mod rootfs;
mod state;
mod supervise;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use hybrid_sandbox::IsolationRequest;

/// The embedded policy of the runtime (no wall-time or output limits).
pub(crate) const EMBEDDED_POLICY: &str = include_str!("policy.toml");
/// The runtime's config file (policy, isolation), unless `$HSB_OCI_CONFIG` names one.
pub(crate) const CONFIG_FILE: &str = "/etc/hybrid-sandbox/oci.toml";

/// A failed command: its message (runc-like), exit status 1.
#[derive(Debug)]
pub(crate) struct OciError(String);

impl OciError {
    pub(crate) fn msg(m: impl Into<String>) -> OciError {
        OciError(m.into())
    }
    pub(crate) fn config(e: config::ConfigError) -> OciError {
        OciError(e.to_string())
    }
}

impl std::fmt::Display for OciError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "hsb oci",
    about = "OCI runtime (runc's command line): containers in hsb's container isolation or a micro-VM"
)]
pub(crate) struct OciCli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: OciCommand,
}

/// runc's global options, and hsb's.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct Global {
    /// Directory of the containers' state [default: /run/hsb-oci for root].
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,
    /// Log file (errors, and what each create decided).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(
        long = "log-format",
        global = true,
        value_name = "FORMAT",
        default_value = "text"
    )]
    pub(crate) log_format: String,
    /// Also print the decisions on stderr.
    #[arg(long, global = true)]
    pub(crate) debug: bool,
    /// systemd cgroups: not supported (hsb manages its own cgroups).
    #[arg(long = "systemd-cgroup", global = true)]
    pub(crate) systemd_cgroup: bool,
    /// runc's rootless switch: accepted (hsb works rootless or as root alike).
    #[arg(long, global = true, value_name = "BOOL")]
    pub(crate) rootless: Option<String>,
    /// Criu path: not supported (no checkpointing); accepted and unused.
    #[arg(long, global = true, value_name = "PATH", hide = true)]
    pub(crate) criu: Option<String>,
    /// Policy file (TOML or JSON) deciding isolation and limits [default: the runtime
    /// config's `policy`, else the embedded OCI policy].
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// Operator floor file, on top of /etc/hybrid-sandbox/floor.toml when that exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) floor: Option<PathBuf>,
    /// Fix the isolation of every container of this runtime: container, microvm or auto.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub(crate) isolation: Option<IsolationRequest>,
}

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum OciCommand {
    /// Create a container from a bundle (its process waits for `start`).
    Create(commands::CreateArgs),
    /// Run the created container's process.
    Start { id: String },
    /// Print the OCI state of a container as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's process.
    Kill {
        /// Every process of the container.
        #[arg(long, short = 'a')]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a stopped container (`--force`: kill it first).
    Delete {
        #[arg(long, short = 'f')]
        force: bool,
        id: String,
    },
    /// Create and start a container, and wait for its process (`--detach`: do not wait).
    Run(commands::CreateArgs),
    /// Run a new process in a running container.
    Exec(commands::ExecArgs),
    /// List the host processes of a container.
    Ps {
        #[arg(long, short = 'f', default_value = "table")]
        format: String,
        id: String,
        /// ps options (not supported).
        #[arg(trailing_var_arg = true, hide = true)]
        ps_args: Vec<String>,
    },
    /// Change a container's limits (memory, pids, CPU quota) while it runs.
    Update(commands::UpdateArgs),
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// What this runtime supports, as JSON (the OCI features document).
    Features,
    /// (internal) The supervisor `create` starts.
    #[command(name = "_supervise", hide = true)]
    Supervise {
        #[arg(long)]
        bundle: PathBuf,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        #[arg(long)]
        ready_fd: i32,
        #[arg(long)]
        start: bool,
        id: String,
    },
}

/// The runtime's settings, from the global options and the runtime config file.
#[derive(Debug, Clone)]
pub(crate) struct Runtime {
    pub(crate) root: PathBuf,
    pub(crate) log: Option<PathBuf>,
    pub(crate) log_json: bool,
    pub(crate) debug: bool,
    pub(crate) policy: Option<PathBuf>,
    pub(crate) floor: Option<PathBuf>,
    pub(crate) isolation: Option<IsolationRequest>,
    pub(crate) global: Global,
}

/// The runtime config file (`policy`, `floor`, `isolation`, `root`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    policy: Option<PathBuf>,
    floor: Option<PathBuf>,
    isolation: Option<String>,
    root: Option<PathBuf>,
}

impl Runtime {
    fn new(g: Global, by_name: Option<IsolationRequest>) -> Result<Runtime, OciError> {
        let cfg_path = std::env::var_os("HSB_OCI_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(CONFIG_FILE));
        let cfg: ConfigFile = match std::fs::read_to_string(&cfg_path) {
            Ok(t) => toml::from_str(&t).map_err(|e| {
                OciError::msg(format!("runtime config {}: {e}", cfg_path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigFile::default(),
            Err(e) => {
                return Err(OciError::msg(format!(
                    "runtime config {}: {e}",
                    cfg_path.display()
                )))
            }
        };
        let cfg_iso = cfg
            .isolation
            .as_deref()
            .map(str::parse::<IsolationRequest>)
            .transpose()
            .map_err(|e| {
                OciError::msg(format!(
                    "runtime config {}: isolation: {e}",
                    cfg_path.display()
                ))
            })?;
        let isolation = g.isolation.or(by_name).or(cfg_iso);
        let isolation = isolation.filter(|i| *i != IsolationRequest::Auto);
        Ok(Runtime {
            root: g
                .root
                .clone()
                .or(cfg.root)
                .unwrap_or_else(state::default_root),
            log: g.log.clone(),
            log_json: g.log_format == "json",
            debug: g.debug,
            policy: g.policy.clone().or(cfg.policy),
            floor: g.floor.clone().or(cfg.floor),
            isolation,
            global: g,
        })
    }

    /// The sandbox under the runtime's policy and the operator floor.
    pub(crate) fn sandbox(&self) -> Result<hybrid_sandbox::Sandbox, OciError> {
        use hybrid_sandbox::{Floor, Policy, Sandbox};
        let policy = match &self.policy {
            Some(p) => Policy::from_file(p),
            None => Policy::from_toml_str(EMBEDDED_POLICY, "<embedded OCI policy>"),
        }
        .map_err(|e| OciError::msg(format!("policy: {e}")))?;
        let mut sb = Sandbox::from_policy(policy);
        let system = Path::new(crate::cli::OPERATOR_FLOOR);
        for f in [system.exists().then_some(system), self.floor.as_deref()]
            .into_iter()
            .flatten()
        {
            sb = sb
                .with_floor(Floor::from_file(f).map_err(|e| OciError::msg(format!("floor: {e}")))?);
        }
        Ok(sb)
    }

    /// The arguments that give a child `hsb oci` the same settings.
    pub(crate) fn child_args(&self) -> Vec<String> {
        let mut a = vec![
            "oci".to_string(),
            "--root".into(),
            self.root.display().to_string(),
        ];
        if let Some(l) = &self.log {
            a.extend(["--log".into(), l.display().to_string()]);
        }
        a.extend(["--log-format".into(), self.global.log_format.clone()]);
        if self.debug {
            a.push("--debug".into());
        }
        if let Some(p) = &self.policy {
            a.extend(["--policy".into(), p.display().to_string()]);
        }
        if let Some(f) = &self.floor {
            a.extend(["--floor".into(), f.display().to_string()]);
        }
        a.extend([
            "--isolation".into(),
            self.isolation.unwrap_or(IsolationRequest::Auto).to_string(),
        ]);
        a
    }
}

/// The isolation a runtime binary name fixes (`hsb-oci-container`, `hsb-oci-microvm`),
/// `Some(None)` for `hsb-oci` (the policy decides), `None` for any other name.
pub(crate) fn runtime_name(argv0: &str) -> Option<Option<IsolationRequest>> {
    let name = Path::new(argv0).file_name()?.to_str()?;
    match name {
        "hsb-oci" => Some(None),
        "hsb-oci-container" => Some(Some(IsolationRequest::Container)),
        "hsb-oci-microvm" => Some(Some(IsolationRequest::MicroVm)),
        _ => None,
    }
}

/// `hsb oci ARGS` (or a runtime name with ARGS): returns the exit status.
pub(crate) fn main(args: Vec<std::ffi::OsString>, by_name: Option<IsolationRequest>) -> i32 {
    let cli = match OciCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
            let _ = e.print();
            return code;
        }
    };
    let rt = match Runtime::new(cli.global.clone(), by_name) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hsb oci: {e}");
            return 1;
        }
    };
    if cli.global.systemd_cgroup {
        log::error(
            &rt,
            "--systemd-cgroup is not supported: hsb manages the cgroups of its sandboxes itself (configure the engine with the cgroupfs driver)",
        );
        return 1;
    }
    match commands::dispatch(&rt, cli.command) {
        Ok(code) => code,
        Err(e) => {
            log::error(&rt, &e.to_string());
            1
        }
    }
}
