//! `hsb policy check|explain`.

use hybrid_sandbox::{Error, HostSupport, Policy, Sandbox, Workload};

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
    let policy = match &args.file {
        Some(f) => match Policy::from_file(f) {
            Ok(p) => p,
            Err(e) => return crate::run_cmd::fail(&Error::Policy(e), args.json),
        },
        None => Policy::embedded_default(),
    };
    let mut w = Workload::from_argv(args.argv.iter().cloned())
        .unwrap_or_else(|| Workload::new("PROGRAM", Vec::<String>::new()));
    w.labels.extend(args.labels.iter().cloned());
    w.profile = args.workload.clone();
    w.isolation = args.isolation;
    let sandbox = Sandbox::from_policy(policy);
    let host: HostSupport = sandbox.host_support();
    let plan = match sandbox.policy().resolve(&w, &host) {
        Ok(p) => p,
        Err(e) => return crate::run_cmd::fail(&Error::Policy(e), args.json),
    };
    if args.json {
        let v = serde_json::json!({
            "policy": sandbox.policy().origin(),
            "profile": plan.decision.profile,
            "isolation": plan.decision.isolation,
            "requested": plan.decision.requested,
            "reasons": plan.decision.reasons,
            "fallback_from": plan.decision.fallback_from,
            "limits": plan.limits,
            "mounts": plan.mounts,
            "network": plan.network,
            "seccomp_action": plan.seccomp_action,
            "env": plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "cwd": plan.cwd,
        });
        println!("{v}");
        return 0;
    }
    println!("policy:    {}", sandbox.policy().origin());
    println!("profile:   {}", plan.decision.profile);
    println!(
        "isolation: {} (asked for: {})",
        plan.decision.isolation, plan.decision.requested
    );
    println!("reasons:");
    for r in &plan.decision.reasons {
        println!("  - {r}");
    }
    println!(
        "limits:    {}",
        serde_json::to_string(&plan.limits).unwrap_or_default()
    );
    println!("network:   {}", plan.network);
    println!(
        "seccomp:   {} on forbidden calls",
        plan.seccomp_action.as_str()
    );
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
    0
}
