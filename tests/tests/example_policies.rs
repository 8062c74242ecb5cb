//! Every policy in examples/policies/ loads, decides as its comments say, and runs.

use std::path::{Path, PathBuf};

use hsb_tests::*;
use hybrid_sandbox::{Error, HostSupport, Need, PolicyError};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/policies")
        .join(name)
}

fn load(name: &str) -> Policy {
    Policy::from_file(example(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn both() -> HostSupport {
    HostSupport::assume_all()
}

fn decide(p: &Policy, w: &Workload, host: &HostSupport) -> Result<Isolation, String> {
    p.resolve(w, host)
        .map(|plan| plan.decision.isolation)
        .map_err(|e| match e {
            PolicyError::Selection(s) => s.message,
            other => other.to_string(),
        })
}

#[test]
fn every_example_loads() {
    let mut n = 0;
    for e in std::fs::read_dir(example("")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            Policy::from_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert_eq!(n, 5);
}

#[test]
fn ai_agent_runner() {
    let p = load("ai-agent.toml");
    let snippet = Workload::new("python3", ["-c", "print(1)"]);
    assert_eq!(decide(&p, &snippet, &both()), Ok(Isolation::MicroVm));
    assert_eq!(
        p.resolve(&snippet, &both()).unwrap().decision.profile,
        "python"
    );
    let tool = Workload::new("black", ["x.py"])
        .label("trust", "trusted")
        .profile("tool");
    assert_eq!(decide(&p, &tool, &both()), Ok(Isolation::Container));
    // Untrusted code that wants the network is refused, with the reason.
    let e = decide(&p, &snippet.clone().need(Need::Network), &both()).unwrap_err();
    assert!(e.contains("untrusted") && e.contains("network"), "{e}");
    // The floor raises an untrusted workload of the container profile to the micro-VM,
    // and says so; asking for the container per run is an error.
    let plan = p
        .resolve(&tool.clone().label("trust", "untrusted"), &both())
        .unwrap();
    assert_eq!(plan.decision.isolation, Isolation::MicroVm);
    assert!(
        plan.decision
            .reasons
            .iter()
            .any(|r| r.contains("raised from container to microvm")),
        "{:?}",
        plan.decision.reasons
    );
    let forced = tool
        .clone()
        .label("trust", "untrusted")
        .isolation(hybrid_sandbox::IsolationRequest::Container);
    assert!(p
        .resolve(&forced, &both())
        .unwrap_err()
        .to_string()
        .contains("operator floor"));
    // Per-run options above the floor are errors.
    let mut big = snippet.clone();
    big.limits.memory = Some(hybrid_sandbox::ByteSize::mib(2048));
    assert!(p
        .resolve(&big, &both())
        .unwrap_err()
        .to_string()
        .contains("operator floor"));
    // A trusted tool really runs, in the container, under kill-on-violation seccomp.
    let dir = writable_tempdir();
    let sb = Sandbox::from_policy(p);
    let o = run_in(
        &sb,
        Workload::new("sh", ["-c", "echo tool ran; pwd"])
            .label("trust", "trusted")
            .profile("tool")
            .mount(Mount::rw(dir.path(), "/work")),
    );
    assert_eq!(stdout(&o), "tool ran\n/work\n", "{o:?}");
    assert_eq!(
        o.enforcement.seccomp.action,
        hybrid_sandbox::SeccompAction::Kill
    );
}

#[test]
fn online_judge() {
    let p = load("online-judge.toml");
    assert_eq!(
        decide(
            &p,
            &Workload::new("/tmp/sol", Vec::<String>::new()),
            &both()
        ),
        Ok(Isolation::MicroVm)
    );
    let plan = p
        .resolve(&Workload::new("/usr/bin/gcc-12", ["-O2", "sol.c"]), &both())
        .unwrap();
    assert_eq!(
        (plan.decision.profile.as_str(), plan.decision.isolation),
        ("compile", Isolation::Container)
    );
    // Without KVM the judge refuses submissions rather than running them in a container.
    let no_vm = HostSupport::known(Ok(()), Err("no /dev/kvm".into()));
    assert!(
        decide(&p, &Workload::new("/tmp/sol", Vec::<String>::new()), &no_vm)
            .unwrap_err()
            .contains("no fallback")
    );
    // The compile step really runs.
    let sb = Sandbox::from_policy(p);
    let o = run_in(
        &sb,
        Workload::new("/usr/bin/gcc", ["--version"]).profile("compile"),
    );
    assert!(o.success(), "{o:?}");
}

#[test]
fn ci_job() {
    let p = load("ci-job.toml");
    let step = Workload::new("make", ["test"]).label("trust", "trusted");
    assert_eq!(decide(&p, &step, &both()), Ok(Isolation::Container));
    let integ = step.clone().label("stage", "integration");
    let plan = p.resolve(&integ, &both()).unwrap();
    assert_eq!(
        (plan.decision.profile.as_str(), plan.network),
        ("integration", hybrid_sandbox::Network::Loopback)
    );
    let fork_pr = Workload::new("make", ["test"]).label("trust", "untrusted");
    assert_eq!(decide(&p, &fork_pr, &both()), Ok(Isolation::MicroVm));
    // A fork's integration tests get the micro-VM's own loopback for their services...
    let plan = p
        .resolve(&fork_pr.clone().label("stage", "integration"), &both())
        .unwrap();
    assert_eq!(
        (plan.decision.isolation, plan.network),
        (Isolation::MicroVm, hybrid_sandbox::Network::Loopback)
    );
    // ...and a fork that says it needs the host's network stack is refused.
    let e = decide(&p, &fork_pr.clone().need(Need::Network), &both()).unwrap_err();
    assert!(e.contains("network"), "{e}");
    // A trusted step really runs, with a loopback network for its services.
    let dir = writable_tempdir();
    let sb = Sandbox::from_policy(p);
    let o = run_in(&sb, Workload::new("sh", ["-c", "cat /sys/class/net/lo/operstate 2>/dev/null || ip -o link 2>/dev/null || echo up-check; echo built > out.txt; cat out.txt"]).label("trust", "trusted").label("stage", "integration").mount(Mount::rw(dir.path(), "/src")));
    assert!(stdout(&o).ends_with("built\n"), "{o:?}");
}

#[test]
fn plugin_host_falls_back_and_records_it() {
    let p = load("plugin-host.toml");
    let plugin = Workload::new("/plugins/render", Vec::<String>::new()).label("tenant", "vendor-a");
    assert_eq!(decide(&p, &plugin, &both()), Ok(Isolation::MicroVm));
    let no_vm = HostSupport::known(Ok(()), Err("no /dev/kvm".into()));
    let plan = p.resolve(&plugin, &no_vm).unwrap();
    assert_eq!(plan.decision.isolation, Isolation::Container);
    let fb = plan.decision.fallback_from.expect("fallback recorded");
    assert_eq!(
        (fb.from, fb.reason.as_str()),
        (Isolation::MicroVm, "no /dev/kvm")
    );
    // A real run (a static program, which both backends can run): whichever backend
    // runs it, the outcome says which and why.
    let input = writable_tempdir();
    let sb = Sandbox::from_policy(p);
    let rt = runtime();
    match rt.block_on(
        sb.run(Workload::new("/usr/bin/busybox", ["true"]).mount(Mount::ro(input.path(), "/in"))),
    ) {
        Ok(o) => {
            assert!(o.success(), "{o:?}");
            if o.isolation == Isolation::Container {
                assert!(
                    o.decision.fallback_from.is_some(),
                    "a container run here must be a recorded fallback"
                );
            }
        }
        Err(e @ Error::Spawn(_)) => panic!("{}", e.chain()),
        Err(e) => panic!("{}", e.chain()),
    }
}

#[test]
fn trusted_build_tool() {
    let p = load("trusted-build.toml");
    assert_eq!(
        decide(&p, &Workload::new("make", Vec::<String>::new()), &both()),
        Ok(Isolation::Container)
    );
    let dir = writable_tempdir();
    std::fs::write(dir.path().join("Makefile"), "all:\n\techo built > result\n").unwrap();
    let sb = Sandbox::from_policy(p);
    let o = run_in(
        &sb,
        Workload::new("sh", ["-c", "printf 'x' > made; ls; echo HOME=$HOME"])
            .mount(Mount::rw(dir.path(), "/src")),
    );
    assert!(o.success(), "{o:?}");
    assert!(dir.path().join("made").exists());
    assert_eq!(
        stdout(&o).lines().last(),
        Some("HOME="),
        "no host HOME leaks in"
    );
}
