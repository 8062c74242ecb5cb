//! `hsb policy check|explain`.

use hybrid_sandbox::{Error, Policy, PolicyError, Workload};

use crate::cli::{ExplainArgs, PolicyCommand};

pub(crate) fn run(cmd: PolicyCommand) -> i32 {
    match cmd {
        PolicyCommand::Check { file } => match Policy::from_file(&file) {
            Ok(p) => {
                println!(
                    "{}: ok ({} profiles)",
                    file.display(),
                    p.profile_names().len()
                );
                0
            }
            Err(e) => crate::run_cmd::fail(&Error::Policy(e), false),
        },
        PolicyCommand::Explain(args) => explain(args),
    }
}

fn explain(args: ExplainArgs) -> i32 {
    let sandbox = match crate::cli::sandbox(args.file.as_deref(), args.floor.as_deref()) {
        Ok(sb) => sb,
        Err(e) => return crate::run_cmd::fail(&e, args.json),
    };
    let mut w = Workload::from_argv(args.argv.iter().cloned())
        .unwrap_or_else(|| Workload::new("PROGRAM", Vec::<String>::new()));
    w.labels.extend(args.labels.iter().cloned());
    w.profile = args.workload.clone();
    w.isolation = args.isolation;
    for n in &args.needs {
        w = w.need(*n);
    }
    let plan = match sandbox.plan(&w) {
        Ok(p) => p,
        Err(Error::Policy(PolicyError::Selection(refusal))) => {
            // Explain a refusal as carefully as a decision.
            if args.json {
                let v = serde_json::json!({
                    "policy": sandbox.policy().origin(),
                    "isolation": null,
                    "refused": refusal.message,
                    "reasons": refusal.reasons,
                });
                println!("{v}");
            } else {
                println!("policy:    {}", sandbox.policy().origin());
                println!("isolation: none: the run would be refused");
                println!("reasons:");
                for r in &refusal.reasons {
                    println!("  - {r}");
                }
                println!("  - refused: {}", refusal.message);
            }
            return 125;
        }
        Err(e) => return crate::run_cmd::fail(&e, args.json),
    };
    let d = &plan.decision;
    if args.json {
        let v = serde_json::json!({
            "policy": sandbox.policy().origin(),
            "profile": d.profile,
            "isolation": d.isolation,
            "requested": d.requested,
            "reasons": d.reasons,
            "fallback_from": d.fallback_from,
            "limits": plan.limits,
            "image_limits": plan.image_limits,
            "mounts": plan.mounts,
            "tmpfs": plan.tmpfs,
            "network": plan.network,
            "egress": plan.egress,
            "seccomp_action": plan.seccomp_action,
            "landlock": plan.landlock,
            "env": plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "cwd": plan.cwd,
        });
        println!("{v}");
        return 0;
    }
    println!("policy:    {}", sandbox.policy().origin());
    println!("profile:   {}", d.profile);
    println!("isolation: {} (asked for: {})", d.isolation, d.requested);
    println!("reasons:");
    for r in &d.reasons {
        println!("  - {r}");
    }
    println!(
        "limits:    {}",
        serde_json::to_string(&plan.limits).unwrap_or_default()
    );
    if plan.image.is_some() {
        println!(
            "image:     {} (import limits: {})",
            plan.image.as_deref().unwrap_or_default(),
            serde_json::to_string(&plan.image_limits).unwrap_or_default()
        );
    }
    println!("network:   {}", plan.network);
    if let Some(e) = &plan.egress {
        for r in &e.allow {
            println!("  allow    {}", r.describe());
        }
        for r in &e.deny {
            println!("  deny     {}", r.describe());
        }
        for p in &e.expose {
            println!("  expose   {p}");
        }
        for s in &e.secrets {
            let hosts: Vec<String> = s.hosts.iter().map(|h| h.to_string()).collect();
            println!(
                "  secret   {} for {} ({})",
                s.name,
                hosts.join(", "),
                s.origin
            );
        }
        for (name, addrs) in &e.hosts {
            let shown: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
            println!("  host     {name} -> {}", shown.join(", "));
        }
        if let Some(d) = e.dns {
            println!("  dns      {d}");
        }
    }
    println!(
        "seccomp:   {} on forbidden calls",
        plan.seccomp_action.as_str()
    );
    println!("landlock:  {:?}", plan.landlock);
    println!("cwd:       {}", plan.cwd);
    println!("mounts:");
    for m in &plan.mounts {
        let opt = if m.optional { " (if present)" } else { "" };
        println!(
            "  {} -> {} [{:?}]{opt}",
            m.source.display(),
            m.target.display(),
            m.mode
        );
    }
    for t in &plan.tmpfs {
        println!(
            "  tmpfs -> {} [size {}, mode {:o}]",
            t.target.display(),
            hybrid_sandbox::ByteSize(t.size),
            t.mode
        );
    }
    0
}
