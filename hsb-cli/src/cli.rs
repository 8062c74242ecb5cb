//! The command-line contract. Flags are fixed: add to them, never change them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hybrid_sandbox::network::{HostRule, SecretRequest};
use hybrid_sandbox::{ByteSize, ImageLimits, IsolationRequest, Need, Network};

#[derive(Debug, Parser)]
#[command(
    name = "hsb",
    version,
    about = "Run untrusted workloads in a container or a micro-VM, as a policy decides"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a program in a sandbox.
    Run(Box<RunArgs>),
    /// Show what this host supports: user namespaces, seccomp, Landlock, cgroups, KVM.
    Probe(ProbeArgs),
    /// Check or explain policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Import, list and remove OCI images (store: $HSB_IMAGE_STORE, or
    /// /var/lib/hybrid-sandbox/images for root, ~/.cache/hybrid-sandbox/images otherwise).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Serve live sandboxes over HTTP (a UNIX socket, or TCP with bearer tokens).
    Serve(Box<crate::serve_cmd::ServeArgs>),
    /// Live sandboxes on a server (`hsb serve`): create, exec, cp, pause, resume, rm.
    Sandbox(Box<crate::sandbox_cmd::SandboxArgs>),
    /// Warm templates of a policy (`[templates.NAME]`): build one, list them.
    #[command(subcommand)]
    Template(crate::template_cmd::TemplateCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImageCommand {
    /// Import an OCI image layout directory or a `docker save` tarball.
    Import {
        /// The image.
        path: PathBuf,
        /// Name in the store (default: the image's first tag, else its path).
        #[arg(long)]
        name: Option<String>,
        /// Clear setuid/setgid bits instead of refusing layers that have them.
        #[arg(long)]
        strip_setuid: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Operator floor file capping the limits, on top of
        /// /etc/hybrid-sandbox/floor.toml when that exists.
        #[arg(long, value_name = "FILE")]
        floor: Option<PathBuf>,
        #[command(flatten)]
        limits: ImageLimitArgs,
    },
    /// List imported images.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an image, and the layers nothing else uses.
    Rm {
        /// Its name.
        name: String,
    },
}

/// Limits on importing an image (by `hsb image import`, or by a run naming an image
/// path not imported yet); unset ones take their defaults (or the policy's), and an
/// operator floor caps them.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Image import limits")]
pub(crate) struct ImageLimitArgs {
    /// Most layers an image may have [default: 128].
    #[arg(long, value_name = "N")]
    pub(crate) max_layers: Option<u64>,
    /// Most an image's layers may unpack to, together [default: 32GiB].
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub(crate) max_image_bytes: Option<ByteSize>,
    /// Most entries (files, directories, links) an image may have [default: 2000000].
    #[arg(long, value_name = "N")]
    pub(crate) max_image_entries: Option<u64>,
    /// Most one layer may unpack to [default: 16GiB].
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub(crate) max_layer_bytes: Option<ByteSize>,
    /// Most entries one layer may have [default: 1000000].
    #[arg(long, value_name = "N")]
    pub(crate) max_layer_entries: Option<u64>,
    /// Largest file a layer may hold [default: 4GiB].
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub(crate) max_file_bytes: Option<ByteSize>,
}

impl ImageLimitArgs {
    /// The limits given.
    pub(crate) fn limits(&self) -> ImageLimits {
        ImageLimits {
            layers: self.max_layers,
            image_bytes: self.max_image_bytes,
            image_entries: self.max_image_entries,
            layer_bytes: self.max_layer_bytes,
            layer_entries: self.max_layer_entries,
            file_bytes: self.max_file_bytes,
        }
    }
}

pub(crate) fn size(s: &str) -> Result<ByteSize, String> {
    ByteSize::parse(s).map_err(|e| e.to_string())
}

pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    hybrid_sandbox::units::parse_duration(s).map_err(|e| e.to_string())
}

pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Policy file (TOML, or JSON with a .json name); the embedded default when absent.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// Operator floor file, on top of /etc/hybrid-sandbox/floor.toml when that exists.
    #[arg(long, value_name = "FILE")]
    pub(crate) floor: Option<PathBuf>,
    /// Profile of the policy to use.
    #[arg(long, value_name = "NAME")]
    pub(crate) workload: Option<String>,
    /// Declare a need: network or full_linux (`auto` sends the run where it is met).
    #[arg(long = "need", value_name = "NEED")]
    pub(crate) needs: Vec<Need>,
    /// Isolation level: container, microvm or auto.
    #[arg(long, value_name = "LEVEL")]
    pub(crate) isolation: Option<IsolationRequest>,
    /// Mount a host path: HOST:SANDBOX[:ro|:rw] (read-only unless :rw).
    #[arg(long = "mount", value_name = "HOST:SANDBOX[:ro|:rw]")]
    pub(crate) mounts: Vec<String>,
    /// Mount an empty in-memory filesystem: PATH[:size=SIZE][,mode=OCTAL] (default size:
    /// the tmp_size limit, else the memory limit, else 256MiB; default mode 1777).
    #[arg(long = "tmpfs", value_name = "PATH[:size=SIZE,mode=OCTAL,noexec]", value_parser = hybrid_sandbox::Tmpfs::parse_spec)]
    pub(crate) tmpfs: Vec<hybrid_sandbox::Tmpfs>,
    /// Set an environment variable (nothing is inherited).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = key_value)]
    pub(crate) env: Vec<(String, String)>,
    /// Label the workload for the policy's rules, e.g. trust=untrusted.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = key_value)]
    pub(crate) labels: Vec<(String, String)>,
    /// Working directory inside the sandbox.
    #[arg(long, value_name = "DIR")]
    pub(crate) cwd: Option<String>,
    /// Memory limit of the whole sandbox, e.g. 256MiB.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub(crate) memory: Option<ByteSize>,
    /// Wall-clock limit, e.g. 1.5s.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) wall_time: Option<Duration>,
    /// CPU-time limit of all the sandbox's processes, e.g. 2s.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) cpu_time: Option<Duration>,
    /// Maximum number of processes and threads.
    #[arg(long, value_name = "N")]
    pub(crate) pids: Option<u64>,
    /// CPU bandwidth of the whole sandbox, e.g. 0.5 (half of one CPU) or 2.
    #[arg(long, value_name = "CPUS", value_parser = hybrid_sandbox::units::Cpus::parse)]
    pub(crate) cpus: Option<hybrid_sandbox::units::Cpus>,
    /// Output limit (stdout and stderr together), e.g. 1MiB.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub(crate) output: Option<ByteSize>,
    /// Network: none (no interface), loopback, or egress (the outside world through the
    /// egress broker, by the policy's rules and these flags).
    #[arg(long, value_name = "MODE")]
    pub(crate) network: Option<Network>,
    /// Egress: allow a destination, HOST[:PORT] (a name, *.suffix, an IPv4 address or
    /// network); added to the profile's rules.
    #[arg(long = "allow", value_name = "HOST[:PORT]")]
    pub(crate) allow: Vec<HostRule>,
    /// Egress: deny a destination, HOST[:PORT] (deny wins over allow).
    #[arg(long = "deny", value_name = "HOST[:PORT]")]
    pub(crate) deny: Vec<HostRule>,
    /// Egress: make a port the sandbox listens on reachable from the host at
    /// 127.0.0.1:<port chosen by hsb> (reported on stderr and in the outcome).
    #[arg(long = "expose", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) expose: Vec<u16>,
    /// Egress: a secret for the sandbox's variable NAME, its value taken from hsb's own
    /// variable ENV; the sandbox sees a placeholder, the broker sends the value only to
    /// the HOSTs.
    #[arg(long = "secret", value_name = "NAME=ENV@HOST[,HOST...]", value_parser = SecretRequest::parse_spec)]
    pub(crate) secrets: Vec<SecretRequest>,
    /// File the workload reads on stdin (`-` for hsb's own stdin); /dev/null when absent.
    #[arg(long, value_name = "FILE")]
    pub(crate) stdin: Option<PathBuf>,
    /// Print one JSON object describing the run instead of passing output through.
    #[arg(long)]
    pub(crate) json: bool,
    /// Pass the workload's output to a terminal unchanged. Without it, control characters
    /// written to a terminal (escape sequences that set the clipboard or the title, clear
    /// the screen...) are shown as `^[`-style text instead; pipes and files always get
    /// the exact bytes.
    #[arg(long)]
    pub(crate) raw_output: bool,
    /// Run on an OCI image's root: a name in the image store, or a path to an OCI layout
    /// directory or a `docker save` tarball (imported on first use). Without PROGRAM, the
    /// image's entrypoint and cmd run.
    #[arg(long, value_name = "REF")]
    pub(crate) image: Option<String>,
    #[command(flatten)]
    pub(crate) image_limits: ImageLimitArgs,
    /// Run from the policy's warm template NAME (`[templates.NAME]`): its program,
    /// started once and waiting on its stdin, reads --stdin (then end of file). Only
    /// --policy, --floor, --stdin, --wall-time, --cpu-time, --output, --json and
    /// --raw-output apply; no PROGRAM.
    #[arg(long, value_name = "NAME")]
    pub(crate) template: Option<String>,
    /// The program and its arguments.
    #[arg(
        last = true,
        required_unless_present_any = ["image", "template"],
        value_name = "PROGRAM [ARGS...]"
    )]
    pub(crate) argv: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Validate a policy file: exit 0, or the errors with file:line:column.
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Show the profile, isolation, reasons, limits and mounts a workload would get.
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// Policy file; the embedded default when absent.
    pub(crate) file: Option<PathBuf>,
    /// Operator floor file, on top of /etc/hybrid-sandbox/floor.toml when that exists.
    #[arg(long, value_name = "FILE")]
    pub(crate) floor: Option<PathBuf>,
    /// Declare a need: network or full_linux.
    #[arg(long = "need", value_name = "NEED")]
    pub(crate) needs: Vec<Need>,
    /// Profile of the policy to use.
    #[arg(long, value_name = "NAME")]
    pub(crate) workload: Option<String>,
    /// Label the workload, e.g. trust=untrusted.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = key_value)]
    pub(crate) labels: Vec<(String, String)>,
    /// Isolation level asked for by the run.
    #[arg(long, value_name = "LEVEL")]
    pub(crate) isolation: Option<IsolationRequest>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// The program and its arguments.
    #[arg(last = true, value_name = "PROGRAM [ARGS...]")]
    pub(crate) argv: Vec<String>,
}

/// Where operators put a floor that every `hsb` run on the host obeys.
pub(crate) const OPERATOR_FLOOR: &str = "/etc/hybrid-sandbox/floor.toml";

/// The sandbox for a policy file (or the embedded default) under the operator floor
/// and an extra `--floor`.
pub(crate) fn sandbox(
    policy: Option<&std::path::Path>,
    floor: Option<&std::path::Path>,
) -> Result<hybrid_sandbox::Sandbox, hybrid_sandbox::Error> {
    use hybrid_sandbox::{Error, Floor, Policy, Sandbox};
    let mut sb = match policy {
        Some(p) => Sandbox::from_policy(Policy::from_file(p).map_err(Error::Policy)?),
        None => Sandbox::with_default_policy(),
    };
    for f in floor_files(floor) {
        sb = sb.with_floor(Floor::from_file(f).map_err(Error::Policy)?);
    }
    Ok(sb)
}

/// The operator floor file (when it exists) and an extra one.
fn floor_files(extra: Option<&std::path::Path>) -> impl Iterator<Item = &std::path::Path> {
    let system = std::path::Path::new(OPERATOR_FLOOR);
    [system.exists().then_some(system), extra]
        .into_iter()
        .flatten()
}

/// The floors of [`floor_files`], as one (the stricter of each setting).
pub(crate) fn floor(
    extra: Option<&std::path::Path>,
) -> Result<Option<hybrid_sandbox::Floor>, hybrid_sandbox::Error> {
    use hybrid_sandbox::{Error, Floor};
    let mut out: Option<Floor> = None;
    for f in floor_files(extra) {
        let f = Floor::from_file(f).map_err(Error::Policy)?;
        out = Some(match out {
            Some(o) => o.stricter(&f),
            None => f,
        });
    }
    Ok(out)
}
