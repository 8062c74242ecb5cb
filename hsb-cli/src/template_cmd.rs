//! `hsb run --template NAME` and `hsb template build|ls`.

use std::path::PathBuf;

use clap::Subcommand;
use hybrid_sandbox::{Error, ExecLimits, Outcome, Sandbox, TemplateRun};

use crate::cli::RunArgs;
use crate::run_cmd::{fail, note_ending, usage_error, Pump, Shown};

#[derive(Debug, Subcommand)]
pub(crate) enum TemplateCommand {
    /// Build template NAME now: micro-VM, start its program and snapshot it once it
    /// waits on its stdin; container, start its pool. Exit 0 when it works, else 125
    /// with the reason (a program that ends first: its stderr). The built state lives
    /// in this process (a server, `hsb serve`, keeps its own).
    Build {
        /// The template's name.
        name: String,
        /// Policy file; the embedded default when absent.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Operator floor file.
        #[arg(long, value_name = "FILE")]
        floor: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the policy's templates.
    Ls {
        /// Policy file; the embedded default when absent.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

pub(crate) fn run(cmd: TemplateCommand) -> i32 {
    match cmd {
        TemplateCommand::Build {
            name,
            policy,
            floor,
            json,
        } => {
            let sandbox = match crate::cli::sandbox(policy.as_deref(), floor.as_deref()) {
                Ok(sb) => sb,
                Err(e) => return fail(&e, json),
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(e) => return fail(&e, json),
            };
            match rt.block_on(sandbox.build_template(&name)) {
                Ok(i) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "name": i.name,
                                "isolation": i.isolation,
                                "argv": i.argv,
                                "pool": i.pool,
                                "ready": i.ready,
                                "memory_bytes": i.memory_bytes,
                                "build_time_ms": i.build_time.as_secs_f64() * 1e3,
                            })
                        );
                    } else {
                        println!(
                            "template `{}` built ({}, {:.1} ms{})",
                            i.name,
                            i.isolation,
                            i.build_time.as_secs_f64() * 1e3,
                            match i.isolation {
                                hybrid_sandbox::Isolation::MicroVm =>
                                    format!(", snapshot of {} KiB", i.memory_bytes / 1024),
                                hybrid_sandbox::Isolation::Container =>
                                    format!(", pool of {}", i.pool),
                            }
                        );
                    }
                    0
                }
                Err(e) => fail(&e, json),
            }
        }
        TemplateCommand::Ls { policy, json } => {
            let sandbox = match crate::cli::sandbox(policy.as_deref(), None) {
                Ok(sb) => sb,
                Err(e) => return fail(&e, json),
            };
            let p = sandbox.policy();
            let defs: Vec<_> = p
                .template_names()
                .into_iter()
                .filter_map(|n| p.template(n).ok())
                .collect();
            if json {
                let v: Vec<_> = defs
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "name": d.name, "isolation": d.isolation, "argv": d.argv,
                            "pool": d.pool, "description": d.description,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for d in defs {
                    println!(
                        "{}\t{}\tpool={}\t{}",
                        d.name,
                        d.isolation,
                        d.pool,
                        d.description.unwrap_or_default()
                    );
                }
            }
            0
        }
    }
}

/// Flags of `hsb run` that a template run does not take (its sandbox is the
/// template's), with whether each was given.
fn refused(a: &RunArgs) -> Vec<&'static str> {
    let given = [
        ("--workload", a.workload.is_some()),
        ("--need", !a.needs.is_empty()),
        ("--isolation", a.isolation.is_some()),
        ("--mount", !a.mounts.is_empty()),
        ("--tmpfs", !a.tmpfs.is_empty()),
        ("--env", !a.env.is_empty()),
        ("--label", !a.labels.is_empty()),
        ("--cwd", a.cwd.is_some()),
        ("--memory", a.memory.is_some()),
        ("--pids", a.pids.is_some()),
        ("--cpus", a.cpus.is_some()),
        ("--network", a.network.is_some()),
        ("--allow", !a.allow.is_empty()),
        ("--deny", !a.deny.is_empty()),
        ("--expose", !a.expose.is_empty()),
        ("--secret", !a.secrets.is_empty()),
        ("--image", a.image.is_some()),
        ("PROGRAM", !a.argv.is_empty()),
    ];
    given
        .into_iter()
        .filter(|(_, g)| *g)
        .map(|(n, _)| n)
        .collect()
}

/// `hsb run --template NAME [--stdin FILE|-]`: exit codes as `hsb run`.
pub(crate) fn run_template(args: RunArgs) -> i32 {
    let json = args.json;
    let name = args.template.clone().unwrap_or_default();
    let bad = refused(&args);
    if !bad.is_empty() {
        return usage_error(
            format!(
                "--template runs the template's own program in its own sandbox: {} cannot be used with it (set them in [templates.{name}] of the policy)",
                bad.join(", ")
            ),
            json,
        );
    }
    let stdin = match &args.stdin {
        None => Vec::new(),
        Some(p) if p.as_os_str() == "-" => {
            use std::io::Read;
            let mut v = Vec::new();
            if let Err(e) = std::io::stdin().lock().read_to_end(&mut v) {
                return usage_error(format!("--stdin -: {e}"), json);
            }
            v
        }
        Some(p) => match std::fs::read(p) {
            Ok(v) => v,
            Err(e) => return usage_error(format!("--stdin {}: {e}", p.display()), json),
        },
    };
    let sandbox = match crate::cli::sandbox(args.policy.as_deref(), args.floor.as_deref()) {
        Ok(sb) => sb,
        Err(e) => return fail(&e, json),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&e, json),
    };
    let run = TemplateRun {
        stdin,
        limits: ExecLimits {
            wall_time: args.wall_time,
            cpu_time: args.cpu_time,
            output: args.output,
        },
    };
    let shown = Shown::for_this_process(args.raw_output);
    match rt.block_on(execute(&sandbox, &name, run, json, shown)) {
        Ok(outcome) => {
            if json {
                match serde_json::to_string(&outcome) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("hsb: cannot write the outcome as JSON: {e}"),
                }
            } else if !outcome.success() {
                note_ending(&outcome);
            }
            outcome.shell_status()
        }
        Err(e) => fail(&e, json),
    }
}

async fn execute(
    sandbox: &Sandbox,
    name: &str,
    run: TemplateRun,
    json: bool,
    shown: Shown,
) -> Result<Outcome, Error> {
    let (live, mut exec) = sandbox.start_template(name, run).await?;
    let outcome = if !json {
        match exec.take_output() {
            Some(mut out) => {
                let pump = tokio::spawn(async move {
                    let mut pump = Pump::new(shown);
                    while let Some(chunk) = out.recv().await {
                        pump.write(chunk.stream, &chunk.data);
                    }
                    pump.finish();
                });
                let o = exec.wait().await.map_err(Error::Run);
                drop(exec);
                let _ = live.destroy().await;
                let _ = pump.await;
                o
            }
            None => exec.wait().await.map_err(Error::Run),
        }
    } else {
        exec.wait().await.map_err(Error::Run)
    };
    let _ = live.destroy().await;
    outcome
}
