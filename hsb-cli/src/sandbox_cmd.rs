//! `hsb sandbox create|ls|exec|cp|pause|resume|rm|snapshot…`: the client of `hsb serve`.

use std::time::Duration;

use clap::{Args, Subcommand};
use hsb_client::api::{CreateRequest, MountSpec};
use hsb_client::{Client, ClientError, Endpoint};
use hybrid_sandbox::{ByteSize, IsolationRequest, Need, Network};

use crate::cli::{duration, key_value, size};

#[derive(Debug, Args)]
pub(crate) struct SandboxArgs {
    /// The server: unix:PATH, http://HOST:PORT or https://HOST:PORT [default:
    /// $HSB_SERVER, else the default socket of `hsb serve`].
    #[arg(long, global = true, value_name = "URL")]
    server: Option<String>,
    /// CA certificates (PEM) an https:// server's certificate is checked against
    /// [default: $HSB_CA_FILE, else the host's trust store].
    #[arg(long, global = true, value_name = "FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// Bearer token for the server [default: $HSB_TOKEN].
    #[arg(long, global = true, value_name = "TOKEN")]
    token: Option<String>,
    #[command(subcommand)]
    command: SandboxCommand,
}

#[derive(Debug, Subcommand)]
enum SandboxCommand {
    /// Create a live sandbox; prints its id.
    Create(Box<CreateArgs>),
    /// List your sandboxes.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command in a sandbox (exit status as `hsb run`).
    Exec(Box<crate::sandbox_exec::ExecArgs>),
    /// Copy files (and directories) in or out: SRC and DST are local paths or ID:PATH.
    Cp {
        /// Source: a local path, or ID:PATH.
        src: String,
        /// Destination: a local path, or ID:PATH.
        dst: String,
    },
    /// Pause a sandbox: every process stops.
    Pause {
        /// Pause it to disk: its state goes to a file of the server and its memory is
        /// freed until `resume` (micro-VM only).
        #[arg(long)]
        to_disk: bool,
        /// The sandbox.
        id: String,
    },
    /// Resume a paused sandbox (one paused to disk starts again from its file).
    Resume {
        /// The sandbox.
        id: String,
    },
    /// Change a running sandbox's limits (container: memory, pids, cpus), within the
    /// server's floor; each one given replaces the one in force.
    Update {
        /// Memory of the whole sandbox, e.g. 512MiB.
        #[arg(long, value_name = "SIZE", value_parser = size)]
        memory: Option<ByteSize>,
        /// Processes and threads at once.
        #[arg(long, value_name = "N")]
        pids: Option<u64>,
        /// CPU bandwidth of the whole sandbox, e.g. 0.5 (half of one CPU) or 2.
        #[arg(long, value_name = "CPUS", value_parser = hybrid_sandbox::units::Cpus::parse)]
        cpus: Option<hybrid_sandbox::units::Cpus>,
        /// The sandbox.
        id: String,
    },
    /// Take a snapshot of a sandbox (it goes on); prints the snapshot's id, for
    /// `hsb sandbox create --from-snapshot SNAP`.
    Snapshot {
        /// The sandbox.
        id: String,
        /// Print the snapshot as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List your snapshots.
    SnapshotLs {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a snapshot to a local file (signed by the server: it loads with
    /// `snapshot-load` into this server, after a restart too given `hsb serve
    /// --snapshot-key`, or into another with the same key, for you only).
    SnapshotSave {
        /// The snapshot (`hsb sandbox snapshot ID` prints it).
        snapshot: String,
        /// The file to write (replaced once the download is whole).
        file: std::path::PathBuf,
    },
    /// Load a snapshot file `snapshot-save` wrote; prints the new snapshot's id, for
    /// `hsb sandbox create --from-snapshot SNAP`.
    SnapshotLoad {
        /// The file.
        file: std::path::PathBuf,
        /// Print the snapshot as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a snapshot (the sandboxes started from it go on).
    SnapshotRm {
        /// The snapshot.
        snapshot: String,
    },
    /// Show a sandbox's network: the egress broker's decisions so far and the exposed
    /// ports (`--json`: the report as the API gives it).
    Network {
        /// The sandbox.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Destroy sandboxes.
    Rm {
        /// The sandboxes.
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// The run-like options of a sandbox (the policy and floor are the server's).
#[derive(Debug, Args)]
struct CreateArgs {
    /// Profile of the server's policy.
    #[arg(long, value_name = "NAME")]
    workload: Option<String>,
    /// Declare a need: network or full_linux.
    #[arg(long = "need", value_name = "NEED")]
    needs: Vec<Need>,
    /// Isolation level: container, microvm or auto.
    #[arg(long, value_name = "LEVEL")]
    isolation: Option<IsolationRequest>,
    /// Mount a host path of the server's host: HOST:SANDBOX[:ro|:rw] (the server
    /// allows only directories its operator named).
    #[arg(long = "mount", value_name = "HOST:SANDBOX[:ro|:rw]")]
    mounts: Vec<String>,
    /// Mount an empty in-memory filesystem: PATH[:size=SIZE][,mode=OCTAL].
    #[arg(long = "tmpfs", value_name = "PATH[:size=SIZE,mode=OCTAL,noexec]", value_parser = hybrid_sandbox::Tmpfs::parse_spec)]
    tmpfs: Vec<hybrid_sandbox::Tmpfs>,
    /// Set an environment variable of every exec.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = key_value)]
    env: Vec<(String, String)>,
    /// Label the sandbox for the policy's rules, e.g. trust=untrusted.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = key_value)]
    labels: Vec<(String, String)>,
    /// Working directory of every exec.
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    /// Memory limit of the whole sandbox, e.g. 256MiB.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    memory: Option<ByteSize>,
    /// Default wall-clock limit of each exec, e.g. 30s.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    wall_time: Option<Duration>,
    /// Default CPU-time limit of each exec.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    cpu_time: Option<Duration>,
    /// Maximum number of processes and threads.
    #[arg(long, value_name = "N")]
    pids: Option<u64>,
    /// CPU bandwidth of the whole sandbox, e.g. 0.5 (half of one CPU) or 2.
    #[arg(long, value_name = "CPUS", value_parser = hybrid_sandbox::units::Cpus::parse)]
    cpus: Option<hybrid_sandbox::units::Cpus>,
    /// Default output limit of each exec, e.g. 1MiB.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    output: Option<ByteSize>,
    /// Size of the sandbox's /tmp, e.g. 64MiB.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    tmp_size: Option<ByteSize>,
    /// Largest file the sandbox may write.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    file_size: Option<ByteSize>,
    /// Network: none, loopback or egress (the policy's rules decide what egress reaches).
    #[arg(long, value_name = "MODE")]
    network: Option<Network>,
    /// Egress: allow a destination, HOST[:PORT] (a name, *.suffix, an IP address), within
    /// the server's floor.
    #[arg(long = "allow", value_name = "HOST[:PORT]")]
    allow: Vec<hybrid_sandbox::network::HostRule>,
    /// Egress: deny a destination, HOST[:PORT] (deny wins over allow).
    #[arg(long = "deny", value_name = "HOST[:PORT]")]
    deny: Vec<hybrid_sandbox::network::HostRule>,
    /// Make a sandbox port reachable from the server's host (at a 127.0.0.1 port hsb
    /// chooses, shown by `ls` and `--json`).
    #[arg(long = "expose", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    expose: Vec<u16>,
    /// An image of the server's image store for the root.
    #[arg(long, value_name = "NAME")]
    image: Option<String>,
    /// Destroy the sandbox after this long without an exec or a call, e.g. 10m.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    idle_timeout: Option<Duration>,
    /// Destroy the sandbox this long after its creation, e.g. 1h.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    lifetime: Option<Duration>,
    /// Start from this snapshot (`hsb sandbox snapshot ID`): the sandbox goes on from
    /// the snapshotted one's state, with its settings.
    #[arg(long, value_name = "SNAP")]
    from_snapshot: Option<String>,
    /// Print the sandbox as JSON (id, isolation, decision, enforcement...).
    #[arg(long)]
    json: bool,
}

/// A failure of a sandbox command: its message, exit status and kind.
pub(crate) struct Failed(pub(crate) String, pub(crate) i32, pub(crate) &'static str);

impl From<ClientError> for Failed {
    fn from(e: ClientError) -> Failed {
        Failed(e.chain(), e.exit_status(), e.kind())
    }
}

impl From<hybrid_sandbox::Error> for Failed {
    fn from(e: hybrid_sandbox::Error) -> Failed {
        Failed(e.chain(), e.exit_status(), e.kind())
    }
}

pub(crate) fn usage(msg: impl Into<String>) -> Failed {
    Failed(msg.into(), 125, "usage")
}

fn client(args: &SandboxArgs) -> Result<Client, Failed> {
    let url = args
        .server
        .clone()
        .or_else(|| std::env::var("HSB_SERVER").ok().filter(|s| !s.is_empty()));
    let endpoint = match url {
        Some(u) => u.parse::<Endpoint>().map_err(usage)?,
        None => Endpoint::Unix(
            hsb_client::default_socket()
                .map_err(|e| usage(format!("{e} (or set HSB_SERVER, or pass --server URL)")))?,
        ),
    };
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("HSB_TOKEN").ok());
    let ca_file = args.ca_file.clone().or_else(|| {
        std::env::var_os("HSB_CA_FILE")
            .filter(|s| !s.is_empty())
            .map(Into::into)
    });
    let client = Client::new(endpoint, token);
    Ok(match ca_file {
        Some(f) => client.with_ca_file(f),
        None => client,
    })
}

fn create_request(a: &CreateArgs) -> Result<CreateRequest, Failed> {
    let mut mounts = Vec::new();
    for spec in &a.mounts {
        let m = hybrid_sandbox::Mount::parse_spec(spec).map_err(usage)?;
        let source = if m.source.is_relative() {
            std::env::current_dir()
                .map_err(|e| usage(format!("cannot read the current directory: {e}")))?
                .join(&m.source)
        } else {
            m.source.clone()
        };
        mounts.push(MountSpec {
            source: source.display().to_string(),
            target: Some(m.target_path().display().to_string()),
            mode: m.mode,
        });
    }
    let limits = hybrid_sandbox::Limits {
        memory: a.memory,
        wall_time: a.wall_time,
        cpu_time: a.cpu_time,
        pids: a.pids,
        output: a.output,
        tmp_size: a.tmp_size,
        file_size: a.file_size,
        cpus: a.cpus,
        ..Default::default()
    };
    Ok(CreateRequest {
        profile: a.workload.clone(),
        labels: a.labels.iter().cloned().collect(),
        isolation: a.isolation,
        needs: a.needs.clone(),
        image: a.image.clone(),
        mounts,
        tmpfs: a.tmpfs.clone(),
        env: a.env.iter().cloned().collect(),
        cwd: a.cwd.clone(),
        network: a.network,
        allow: a.allow.clone(),
        deny: a.deny.clone(),
        expose: a.expose.clone(),
        limits,
        lifetime: a.lifetime,
        idle_timeout: a.idle_timeout,
        from_snapshot: a.from_snapshot.clone(),
        ..CreateRequest::default()
    })
}

/// The network report as text: mode, exposed ports, then one line per decision.
fn print_network(r: &hybrid_sandbox::network::NetworkReport) {
    println!("network: {}", r.mode);
    for p in &r.exposed {
        println!("exposed: sandbox port {} at {}", p.sandbox_port, p.host);
    }
    let verdict = |v: hybrid_sandbox::network::NetworkVerdict| match v {
        hybrid_sandbox::network::NetworkVerdict::Allowed => "allowed",
        hybrid_sandbox::network::NetworkVerdict::Denied => "denied",
    };
    for d in &r.dns {
        println!(
            "dns {} {}: {} by {} ({}x)",
            d.name,
            d.qtype,
            verdict(d.verdict),
            d.rule,
            d.count
        );
    }
    for c in &r.connections {
        let to = match &c.name {
            Some(n) => format!("{n} ({}:{})", c.ip, c.port),
            None => format!("{}:{}", c.ip, c.port),
        };
        println!(
            "connect {to} via {}: {} by {}, {} bytes out, {} in",
            c.via,
            verdict(c.verdict),
            c.rule,
            c.bytes_out,
            c.bytes_in
        );
    }
    for (kind, n) in &r.dropped_packets {
        println!("dropped {kind}: {n}");
    }
    if r.truncated {
        println!("(truncated: the oldest records are kept)");
    }
}

fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("hsb: cannot write JSON: {e}"),
    }
}

async fn dispatch(args: SandboxArgs) -> Result<i32, Failed> {
    let c = client(&args)?;
    match args.command {
        SandboxCommand::Create(a) => {
            let info = c.create_detached(&create_request(&a)?).await?;
            if a.json {
                print_json(&info);
            } else {
                println!("{}", info.id);
            }
            Ok(0)
        }
        SandboxCommand::Ls { json } => {
            let list = c.list().await?;
            if json {
                print_json(&list);
                return Ok(0);
            }
            println!(
                "{:<28} {:<10} {:<10} {:<12} {:<12} {:<9} PORTS",
                "ID", "ISOLATION", "STATE", "PROFILE", "IMAGE", "NETWORK"
            );
            for s in list {
                let ports = s
                    .exposed
                    .iter()
                    .map(|p| format!("{}->{}", p.host, p.sandbox_port))
                    .collect::<Vec<_>>()
                    .join(",");
                println!(
                    "{:<28} {:<10} {:<10} {:<12} {:<12} {:<9} {}",
                    s.id,
                    s.isolation.to_string(),
                    if s.on_disk {
                        "on-disk".to_string()
                    } else {
                        s.state.to_string()
                    },
                    s.decision.profile,
                    s.image.as_deref().unwrap_or("-"),
                    s.network.to_string(),
                    if ports.is_empty() { "-" } else { &ports }
                );
            }
            Ok(0)
        }
        SandboxCommand::Exec(a) => crate::sandbox_exec::run(&c, *a).await,
        SandboxCommand::Cp { src, dst } => crate::sandbox_cp::run(&c, &src, &dst).await,
        SandboxCommand::Pause { id, to_disk } => {
            if to_disk {
                c.pause_to_disk(&id).await?;
            } else {
                c.pause(&id).await?;
            }
            Ok(0)
        }
        SandboxCommand::Resume { id } => {
            c.resume(&id).await?;
            Ok(0)
        }
        SandboxCommand::Update {
            memory,
            pids,
            cpus,
            id,
        } => {
            let limits = hybrid_sandbox::Limits {
                memory,
                pids,
                cpus,
                ..Default::default()
            };
            if limits.is_empty() {
                return Err(usage("no limit given: --memory, --pids or --cpus"));
            }
            c.update_limits(&id, &limits).await?;
            Ok(0)
        }
        SandboxCommand::Snapshot { id, json } => {
            let snap = c.snapshot(&id).await?;
            if json {
                print_json(&snap);
            } else {
                println!("{}", snap.snapshot_id);
            }
            Ok(0)
        }
        SandboxCommand::SnapshotLs { json } => {
            let snaps = c.list_snapshots().await?;
            if json {
                print_json(&hsb_client::api::SnapshotList { snapshots: snaps });
            } else {
                for s in snaps {
                    println!(
                        "{}\t{}\t{}\t{}",
                        s.snapshot_id, s.isolation, s.sandbox, s.memory_bytes
                    );
                }
            }
            Ok(0)
        }
        SandboxCommand::SnapshotSave { snapshot, file } => {
            c.download_snapshot(&snapshot, &file).await?;
            Ok(0)
        }
        SandboxCommand::SnapshotLoad { file, json } => {
            let snap = c.upload_snapshot(&file).await?;
            if json {
                print_json(&snap);
            } else {
                println!("{}", snap.snapshot_id);
            }
            Ok(0)
        }
        SandboxCommand::SnapshotRm { snapshot } => {
            c.delete_snapshot(&snapshot).await?;
            Ok(0)
        }
        SandboxCommand::Network { id, json } => {
            let report = c.network(&id).await?;
            if json {
                print_json(&report);
            } else {
                print_network(&report);
            }
            Ok(0)
        }
        SandboxCommand::Rm { ids } => {
            let mut code = 0;
            for id in ids {
                if let Err(e) = c.destroy(&id).await {
                    eprintln!("hsb: {id}: {}", e.chain());
                    code = e.exit_status();
                }
            }
            Ok(code)
        }
    }
}

pub(crate) fn run(args: SandboxArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hsb: creating the async runtime: {e}");
            return 125;
        }
    };
    match rt.block_on(dispatch(args)) {
        Ok(code) => code,
        Err(Failed(msg, code, _)) => {
            eprintln!("hsb: {msg}");
            code
        }
    }
}
