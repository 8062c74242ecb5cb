use super::*;
use crate::types::SeccompAction;
use crate::types::{Isolation, Need};
use crate::units::ByteSize;
use crate::workload::{Mount, MountMode};

fn host() -> HostSupport {
    HostSupport::assume_all()
}

#[test]
fn embedded_default_is_valid_and_safe() {
    let p = Policy::embedded_default();
    let plan = p
        .resolve(&Workload::new("python3", ["-c", "print(42)"]), &host())
        .unwrap();
    // A private loopback: nothing outside the sandbox is reachable from it.
    assert_eq!(plan.network, Network::Loopback);
    assert!(plan.egress.is_none());
    assert!(
        plan.limits.memory.is_some()
            && plan.limits.wall_time.is_some()
            && plan.limits.pids.is_some()
    );
    assert!(plan.mounts.iter().all(|m| m.mode == MountMode::Ro));
    for hidden in ["/home", "/root", "/var", "/run", "/etc/shadow"] {
        assert!(
            plan.mounts.iter().all(|m| !m.target.starts_with(hidden)),
            "{hidden} mounted"
        );
    }
    assert_eq!(plan.argv, ["python3", "-c", "print(42)"]);
    assert!(plan.env.iter().any(|(k, _)| k == "PATH"));
}

#[test]
fn layering_profile_and_run_options() {
    let text = r#"
        [defaults]
        limits = { memory = "512MiB", wall_time = "10s" }
        env = { A = "1" }
        [profiles.judge]
        limits = { wall_time = "2s" }
        env = { B = "2" }
        network = "loopback"
    "#;
    let p = Policy::from_toml_str(text, "t.toml").unwrap();
    let mut w = Workload::new("true", Vec::<String>::new())
        .profile("judge")
        .env("C", "3");
    w.limits.memory = Some(ByteSize::mib(64));
    let plan = p.resolve(&w, &host()).unwrap();
    assert_eq!(plan.limits.memory, Some(ByteSize::mib(64)));
    assert_eq!(
        plan.limits.wall_time,
        Some(std::time::Duration::from_secs(2))
    );
    assert_eq!(plan.network, Network::Loopback);
    let keys: Vec<&str> = plan.env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["A", "B", "C", "PATH"]);
    assert_eq!(plan.decision.profile, "judge");
    assert_eq!(plan.decision.isolation, Isolation::Container);
}

#[test]
fn unknown_key_has_location_and_suggestion() {
    let text = "[defaults]\nlimits = { memroy = \"1G\" }\n";
    let e = Policy::from_toml_str(text, "p.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("p.toml:2:"), "{e}");
    assert!(e.contains("did you mean `memory`"), "{e}");
}

#[test]
fn bad_units_and_ranges() {
    let e = Policy::from_toml_str("[defaults.limits]\nmemory = \"12 parsecs\"\n", "p.toml")
        .unwrap_err();
    assert!(e.to_string().contains("unknown unit"), "{e}");
    let e = Policy::from_toml_str("[defaults.limits]\nmemory = -5\n", "p.toml").unwrap_err();
    assert!(e.to_string().contains("negative"), "{e}");
    let e = Policy::from_toml_str("[defaults.limits]\npids = 0\n", "p.toml").unwrap_err();
    assert!(e.to_string().contains("defaults.limits.pids"), "{e}");
    let e = Policy::from_toml_str(
        "[defaults.limits]\nmemory = \"1G\"\ntmp_size = \"2G\"\n",
        "p.toml",
    )
    .unwrap_err();
    assert!(e.to_string().contains("tmp_size"), "{e}");
}

#[test]
fn dangerous_mounts_refused() {
    for (src, mode) in [
        ("/", "rw"),
        ("/proc", "ro"),
        ("/sys/kernel", "ro"),
        ("/dev", "rw"),
    ] {
        let text = format!(
            "[[defaults.mounts]]\nsource = \"{src}\"\ntarget = \"/x\"\nmode = \"{mode}\"\n"
        );
        assert!(
            Policy::from_toml_str(&text, "p.toml").is_err(),
            "{src} {mode} accepted"
        );
    }
    let text = "[[defaults.mounts]]\nsource = \"/usr\"\ntarget = \"/a/../etc\"\n";
    assert!(Policy::from_toml_str(text, "p.toml")
        .unwrap_err()
        .to_string()
        .contains(".."));
    let w = Workload::new("x", Vec::<String>::new()).mount(Mount::rw("relative", "/x"));
    assert!(Policy::embedded_default().resolve(&w, &host()).is_err());
}

#[test]
fn a_cgroup_parent_is_plain_names() {
    let with = |p: &str| {
        let mut w = Workload::new("x", Vec::<String>::new());
        w.cgroup_parent = Some(p.into());
        Policy::embedded_default().resolve(&w, &host())
    };
    for good in ["/docker/abc", "kubepods/pod1/c2"] {
        let plan = with(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(
            plan.cgroup_parent.as_deref(),
            Some(std::path::Path::new(good))
        );
    }
    for bad in ["/", "", "/docker/../../etc", "./x", "a/./b"] {
        let e = with(bad).expect_err(bad).to_string();
        assert!(e.contains("cgroup parent"), "{bad}: {e}");
    }
}

#[test]
fn unknown_profile_suggests() {
    let p = Policy::from_toml_str("[profiles.judge]\n", "p.toml").unwrap();
    let e = p
        .resolve(
            &Workload::new("x", Vec::<String>::new()).profile("jduge"),
            &host(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("did you mean `judge`"), "{e}");
}

#[test]
fn missing_backend_fails_closed_unless_fallback() {
    let no_vm = HostSupport::known(Ok(()), Err("no /dev/kvm".into()));
    let p = Policy::from_toml_str("[defaults]\nisolation = \"microvm\"\n", "p.toml").unwrap();
    let e = p
        .resolve(&Workload::new("x", Vec::<String>::new()), &no_vm)
        .unwrap_err();
    assert!(matches!(e, PolicyError::Selection(_)));
    let p = Policy::from_toml_str(
        "[defaults]\nisolation = \"microvm\"\nfallback = \"container\"\n",
        "p.toml",
    )
    .unwrap();
    let plan = p
        .resolve(&Workload::new("x", Vec::<String>::new()), &no_vm)
        .unwrap();
    assert_eq!(plan.decision.isolation, Isolation::Container);
    assert_eq!(
        plan.decision.fallback_from.as_ref().unwrap().from,
        Isolation::MicroVm
    );
}

#[test]
fn json_equivalent() {
    let p = Policy::from_json_str(r#"{"defaults": {"limits": {"memory": "64MiB"}}}"#, "p.json")
        .unwrap();
    let plan = p
        .resolve(&Workload::new("x", Vec::<String>::new()), &host())
        .unwrap();
    assert_eq!(plan.limits.memory, Some(ByteSize::mib(64)));
    let e = Policy::from_json_str(r#"{"defaults": {"limitz": {}}}"#, "p.json").unwrap_err();
    assert!(e.to_string().starts_with("p.json:1:"), "{e}");
}

// ---- selection: labels x needs x host capabilities -> isolation and reasons ----

fn auto_policy() -> Policy {
    Policy::from_toml_str("[defaults]\nisolation = \"auto\"\n", "auto.toml").unwrap()
}

fn host_caps(container: bool, microvm: bool, vm_runs_program: bool) -> HostSupport {
    let a = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("no {what} here"))
        }
    };
    HostSupport::known(a(container, "user namespaces"), a(microvm, "/dev/kvm")).with_can_run(
        move |i, _| {
            if i == Isolation::MicroVm && !vm_runs_program {
                Err("dynamically linked".into())
            } else {
                Ok(())
            }
        },
    )
}

#[test]
fn decision_table() {
    use crate::types::Need;
    // (trust, tenant, needs, container ok, microvm ok, vm runs program) -> Some(isolation) | None (refused)
    type Row = (
        Option<&'static str>,
        Option<&'static str>,
        &'static [Need],
        bool,
        bool,
        bool,
        Option<Isolation>,
        &'static str,
    );
    let rows: &[Row] = &[
        (
            Some("trusted"),
            None,
            &[],
            true,
            true,
            true,
            Some(Isolation::Container),
            "trusted tools",
        ),
        (
            Some("untrusted"),
            None,
            &[],
            true,
            true,
            true,
            Some(Isolation::MicroVm),
            "untrusted code",
        ),
        (
            None,
            None,
            &[],
            true,
            true,
            true,
            Some(Isolation::MicroVm),
            "no trust label",
        ),
        (
            Some("semi"),
            None,
            &[],
            true,
            true,
            true,
            Some(Isolation::MicroVm),
            "trust=semi",
        ),
        (
            Some("trusted"),
            Some("acme"),
            &[],
            true,
            true,
            true,
            Some(Isolation::MicroVm),
            "multi-tenant",
        ),
        (
            Some("trusted"),
            Some("acme"),
            &[Need::Network],
            true,
            true,
            true,
            Some(Isolation::Container),
            "is trusted",
        ),
        (
            Some("untrusted"),
            None,
            &[Need::Network],
            true,
            true,
            true,
            None,
            "needs network",
        ),
        (
            Some("untrusted"),
            None,
            &[Need::FullLinux],
            true,
            true,
            true,
            None,
            "needs full_linux",
        ),
        (
            Some("trusted"),
            None,
            &[Need::FullLinux],
            true,
            true,
            true,
            Some(Isolation::Container),
            "trusted tools",
        ),
        (
            Some("untrusted"),
            None,
            &[],
            true,
            true,
            false,
            None,
            "cannot run yet",
        ),
        (
            Some("trusted"),
            Some("t"),
            &[],
            true,
            true,
            false,
            Some(Isolation::Container),
            "cannot run yet",
        ),
        (
            Some("untrusted"),
            None,
            &[],
            true,
            false,
            true,
            None,
            "not available",
        ),
        (
            Some("trusted"),
            None,
            &[],
            false,
            true,
            true,
            None,
            "not available",
        ),
    ];
    for (i, &(trust, tenant, needs, c, m, runs, want, reason)) in rows.iter().enumerate() {
        let mut w = Workload::new("prog", Vec::<String>::new());
        if let Some(t) = trust {
            w = w.label("trust", t);
        }
        if let Some(t) = tenant {
            w = w.label("tenant", t);
        }
        for n in needs {
            w = w.need(*n);
        }
        match (auto_policy().resolve(&w, &host_caps(c, m, runs)), want) {
            (Ok(plan), Some(iso)) => {
                assert_eq!(
                    plan.decision.isolation, iso,
                    "row {i}: {:?}",
                    plan.decision.reasons
                );
                let text = plan.decision.reasons.join(" | ");
                assert!(
                    text.contains(reason),
                    "row {i}: reasons `{text}` lack `{reason}`"
                );
            }
            (Err(PolicyError::Selection(e)), None) => {
                assert!(
                    e.message.contains(reason),
                    "row {i}: refusal `{}` lacks `{reason}`",
                    e.message
                );
            }
            (got, want) => panic!("row {i}: wanted {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn network_modes_are_not_needs() {
    // Both backends give every mode, so untrusted code keeps the micro-VM whatever
    // network it asks for; a declared need still refuses it.
    for network in [Network::None, Network::Loopback, Network::Egress] {
        let mut w = Workload::new("prog", Vec::<String>::new()).label("trust", "untrusted");
        w.network = Some(network);
        let plan = auto_policy().resolve(&w, &host()).unwrap();
        assert_eq!(plan.network, network);
        assert_eq!(plan.decision.isolation, Isolation::MicroVm, "{network}");
    }
    let w = Workload::new("prog", Vec::<String>::new())
        .label("trust", "untrusted")
        .need(Need::Network);
    let e = auto_policy().resolve(&w, &host()).unwrap_err();
    assert!(matches!(e, PolicyError::Selection(_)), "{e}");
}

// ---- rules ----

#[test]
fn rules_pick_profiles_first_match_wins() {
    let text = r#"
        [profiles.judge]
        limits = { wall_time = "2s" }
        [profiles.py]
        limits = { wall_time = "5s" }
        [profiles.default]
        limits = { wall_time = "9s" }
        [[rules]]
        profile = "judge"
        labels = { source = "contest-*" }
        [[rules]]
        profile = "py"
        program = "python3*"
        [[rules]]
        profile = "judge"
        program = "/opt/judge/*"
    "#;
    let p = Policy::from_toml_str(text, "r.toml").unwrap();
    let pick = |w: Workload| p.resolve(&w, &host()).unwrap().decision.profile;
    assert_eq!(
        pick(Workload::new("python3", ["x"]).label("source", "contest-42")),
        "judge"
    );
    assert_eq!(pick(Workload::new("/usr/bin/python3.11", ["x"])), "py");
    assert_eq!(pick(Workload::new("/opt/judge/run", ["x"])), "judge");
    assert_eq!(pick(Workload::new("ls", ["x"])), "default");
    // A named profile wins over rules.
    assert_eq!(
        pick(Workload::new("python3", ["x"]).profile("judge")),
        "judge"
    );
    let reasons = p
        .resolve(&Workload::new("python3", ["x"]), &host())
        .unwrap()
        .decision
        .reasons;
    assert!(reasons[0].contains("rule 2"), "{reasons:?}");
}

#[test]
fn rules_must_name_existing_profiles() {
    let e = Policy::from_toml_str(
        "[profiles.judge]\n[[rules]]\nprofile = \"jduge\"\nprogram = \"x\"\n",
        "r.toml",
    )
    .unwrap_err();
    assert!(e.to_string().contains("did you mean `judge`"), "{e}");
    let e = Policy::from_toml_str(
        "[profiles.judge]\n[[rules]]\nprofile = \"judge\"\n",
        "r.toml",
    )
    .unwrap_err();
    assert!(e.to_string().contains("needs `program` or `labels`"), "{e}");
}

// ---- the operator floor ----

const FLOOR: &str = r#"
[floor]
min_isolation = "container"
require = [{ labels = { trust = "untrusted" }, isolation = "microvm" }]
limits = { memory = "512MiB", wall_time = "10s", cpu_time = "5s", pids = 64, open_files = 256, file_size = "16MiB", output = "1MiB", tmp_size = "64MiB" }
network = "none"
mounts_allowed = ["/usr", "/lib*", "/srv/data"]
rw_mounts_allowed = ["/srv/data/out"]
seccomp_action = "kill"
allow_fallback = false
"#;

fn floor() -> Floor {
    Floor::from_toml_str(FLOOR, "floor.toml").unwrap()
}

fn generous() -> Policy {
    Policy::from_toml_str(
        "[defaults]\nnetwork = \"loopback\"\nlimits = { memory = \"4GiB\", wall_time = \"1h\" }\n[[defaults.mounts]]\nsource = \"/usr\"\n",
        "generous.toml",
    )
    .unwrap()
}

#[test]
fn floor_clamps_policy_file_values_and_says_so() {
    let plan = generous()
        .resolve_with_floor(
            &Workload::new("x", Vec::<String>::new()),
            &host(),
            Some(&floor()),
        )
        .unwrap();
    assert_eq!(plan.limits.memory, Some(ByteSize::mib(512)));
    assert_eq!(
        plan.limits.wall_time,
        Some(std::time::Duration::from_secs(10))
    );
    assert_eq!(plan.limits.pids, Some(64), "unset limits get the maximum");
    assert_eq!(plan.network, Network::None);
    assert_eq!(plan.seccomp_action, SeccompAction::Kill);
    let text = plan.decision.reasons.join("\n");
    assert!(
        text.contains("memory lowered") && text.contains("network lowered"),
        "{text}"
    );
}

#[test]
fn floor_holds_against_every_per_run_option() {
    use crate::types::IsolationRequest;
    let f = floor();
    let p = generous();
    let base = || Workload::new("x", Vec::<String>::new());
    let mut cases: Vec<(&str, Workload)> = Vec::new();
    macro_rules! limit {
        ($name:literal, $f:ident, $v:expr) => {{
            let mut w = base();
            w.limits.$f = Some($v);
            cases.push(($name, w));
        }};
    }
    limit!("memory", memory, ByteSize::mib(1024));
    limit!("wall_time", wall_time, std::time::Duration::from_secs(11));
    limit!("cpu_time", cpu_time, std::time::Duration::from_secs(6));
    limit!("pids", pids, 65);
    limit!("open_files", open_files, 257);
    limit!("file_size", file_size, ByteSize::mib(17));
    limit!("output", output, ByteSize::mib(2));
    limit!("tmp_size", tmp_size, ByteSize::mib(65));
    let mut w = base();
    w.network = Some(Network::Loopback);
    cases.push(("network", w));
    cases.push((
        "isolation",
        base()
            .label("trust", "untrusted")
            .isolation(IsolationRequest::Container),
    ));
    cases.push(("mount", base().mount(Mount::ro("/etc", "/etc"))));
    cases.push(("mount", base().mount(Mount::rw("/srv/data", "/data"))));
    for (name, w) in cases {
        let e = p.resolve_with_floor(&w, &host(), Some(&f)).unwrap_err();
        assert!(
            matches!(e, PolicyError::InvalidRunOption { .. }),
            "{name}: {e}"
        );
        assert!(e.to_string().contains("operator floor"), "{name}: {e}");
    }
    // Within the floor, per-run options apply as given.
    let mut ok = base().mount(Mount::rw("/srv/data/out", "/out"));
    ok.limits.memory = Some(ByteSize::mib(256));
    // (/srv/data/out may not exist here; planning does not look at the host.)
    let plan = p.resolve_with_floor(&ok, &host(), Some(&f)).unwrap();
    assert_eq!(plan.limits.memory, Some(ByteSize::mib(256)));
}

#[test]
fn floor_raises_isolation_by_labels_and_forbids_fallback() {
    let f = floor();
    let p = Policy::from_toml_str(
        "[defaults]\nisolation = \"container\"\nfallback = \"microvm\"\n",
        "p.toml",
    )
    .unwrap();
    let w = Workload::new("x", Vec::<String>::new()).label("trust", "untrusted");
    let plan = p.resolve_with_floor(&w, &host(), Some(&f)).unwrap();
    assert_eq!(plan.decision.isolation, Isolation::MicroVm);
    assert!(
        plan.decision
            .reasons
            .iter()
            .any(|r| r.contains("raised from container to microvm")),
        "{:?}",
        plan.decision.reasons
    );
    // Without KVM, the micro-VM the floor requires cannot be replaced by a container.
    let p2 = Policy::from_toml_str(
        "[defaults]\nisolation = \"microvm\"\nfallback = \"container\"\n",
        "p.toml",
    )
    .unwrap();
    let no_vm = HostSupport::known(Ok(()), Err("no /dev/kvm".into()));
    let e = p2
        .resolve_with_floor(&Workload::new("x", Vec::<String>::new()), &no_vm, Some(&f))
        .unwrap_err();
    assert!(
        e.to_string().contains("no isolation") || e.to_string().contains("forbids"),
        "{e}"
    );
    if let PolicyError::Selection(s) = e {
        assert!(s.message.contains("forbids the fallback"), "{}", s.message);
    }
}

#[test]
fn floor_in_the_same_file_makes_contradictions_errors() {
    let text = format!("{FLOOR}\n[profiles.big]\nlimits = {{ memory = \"1GiB\" }}\n");
    let e = Policy::from_toml_str(&text, "p.toml").unwrap_err();
    assert!(
        e.to_string().contains("profiles.big.limits") && e.to_string().contains("memory"),
        "{e}"
    );
    let text = format!("{FLOOR}\n[profiles.net]\nnetwork = \"loopback\"\n");
    assert!(Policy::from_toml_str(&text, "p.toml")
        .unwrap_err()
        .to_string()
        .contains("no network"));
    let e = Policy::from_toml_str(
        "[defaults]\nisolation = \"microvm\"\nfallback = \"microvm\"\n",
        "p.toml",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("fallback is the isolation itself"),
        "{e}"
    );
}

#[test]
fn stricter_of_two_floors() {
    let a = Floor::from_toml_str(
        "[floor]\nlimits = { memory = \"1GiB\" }\nmounts_allowed = [\"/usr\", \"/srv\"]\n",
        "a",
    )
    .unwrap();
    let b = Floor::from_toml_str("[floor]\nlimits = { memory = \"2GiB\", pids = 10 }\nnetwork = \"none\"\nmounts_allowed = [\"/srv/data\"]\n", "b").unwrap();
    let f = a.stricter(&b);
    let p = Policy::from_toml_str("[[defaults.mounts]]\nsource = \"/srv/data/x\"\n", "p").unwrap();
    let plan = p
        .resolve_with_floor(&Workload::new("x", Vec::<String>::new()), &host(), Some(&f))
        .unwrap();
    assert_eq!(plan.limits.memory, Some(ByteSize::mib(1024)));
    assert_eq!(plan.limits.pids, Some(10));
    let p = Policy::from_toml_str("[[defaults.mounts]]\nsource = \"/usr\"\n", "p").unwrap();
    assert!(
        p.resolve_with_floor(&Workload::new("x", Vec::<String>::new()), &host(), Some(&f))
            .is_err(),
        "/usr is not in b's list"
    );
}

// ---- bad input never panics ----

#[test]
fn bad_input_is_an_error_never_a_panic() {
    let cases: &[&[u8]] = &[
        b"[defaults",
        b"version = 2",
        b"[defaults]\nlimits = \"lots\"",
        b"[defaults.limits]\nmemory = true",
        b"[defaults.limits]\npids = -1",
        b"[defaults.limits]\npids = 99999999999",
        b"[defaults.limits]\nmemory = \"1e999G\"",
        b"[defaults.limits]\nwall_time = \"-3s\"",
        b"[defaults.limits]\nwall_time = 0",
        b"[[defaults.mounts]]\nsource = \"/\"\nmode = \"rw\"",
        b"[[defaults.mounts]]\nsource = \"relative\"",
        b"[[defaults.mounts]]\nsource = \"/usr\"\ntarget = \"/proc/x\"",
        b"[defaults]\nisolation = \"chroot\"",
        b"[defaults]\nenv = { \"A=B\" = \"1\" }",
        b"[profiles.\"bad name!\"]",
        b"[defaults]\ncwd = \"relative\"",
        b"[defaults]\n\xff\xfe = 1",
    ];
    for c in cases {
        let text = String::from_utf8_lossy(c);
        assert!(
            Policy::from_toml_str(&text, "bad.toml").is_err(),
            "accepted: {text}"
        );
    }
    // Invalid UTF-8 and huge files are refused by the file loader with their reason.
    let dir = std::env::temp_dir().join(format!("hsb-policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, b"[defaults]\nx = \"\xff\"\n").unwrap();
    let e = Policy::from_file(&bad).unwrap_err().to_string();
    assert!(e.contains("UTF-8") && e.contains(":2:"), "{e}");
    let huge = dir.join("huge.toml");
    std::fs::write(&huge, vec![b'#'; 2 << 20]).unwrap();
    assert!(Policy::from_file(&huge)
        .unwrap_err()
        .to_string()
        .contains("at most"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tmpfs_mounts_are_planned_and_bad_ones_refused() {
    use crate::workload::Tmpfs;
    let p = Policy::embedded_default();
    let w = Workload::new("true", [] as [&str; 0])
        .tmpfs("/run/./x", Some(ByteSize(1 << 20)))
        .tmpfs("/cache", None);
    let plan = p.resolve(&w, &host()).unwrap();
    assert_eq!(plan.tmpfs.len(), 2);
    assert_eq!(plan.tmpfs[0].target, std::path::Path::new("/run/x"));
    assert_eq!((plan.tmpfs[0].size, plan.tmpfs[0].mode), (1 << 20, 0o1777));
    // Unsized: the tmp_size limit, else the memory limit.
    let expected = plan.limits.tmp_size.or(plan.limits.memory).unwrap().0;
    assert_eq!(plan.tmpfs[1].size, expected);
    // At /tmp it replaces the sandbox's own, with its options.
    let mut w = Workload::new("true", [] as [&str; 0]);
    w.tmpfs
        .push(Tmpfs::parse_spec("/tmp:size=1m,mode=1770,noexec").unwrap());
    let plan = p.resolve(&w, &host()).unwrap();
    assert_eq!(plan.tmpfs[0].target, std::path::Path::new("/tmp"));
    assert_eq!(
        (plan.tmpfs[0].size, plan.tmpfs[0].mode, plan.tmpfs[0].noexec),
        (1 << 20, 0o1770, true)
    );
    // At /dev/shm (where nothing else may be mounted inside /dev) it replaces the
    // link to /tmp, with its own size.
    let w = Workload::new("true", [] as [&str; 0]).tmpfs("/dev//shm/", Some(ByteSize(64 << 20)));
    let plan = p.resolve(&w, &host()).unwrap();
    assert_eq!(plan.tmpfs[0].target, std::path::Path::new("/dev/shm"));
    assert_eq!(plan.tmpfs[0].size, 64 << 20);
    let w = Workload::new("true", [] as [&str; 0]).mount(Mount::rw("/tmp", "/dev/shm"));
    let e = p.resolve(&w, &host()).unwrap_err().to_string();
    assert!(e.contains("inside `/dev`"), "a bind at /dev/shm: {e}");
    for (t, says) in [
        ("/", "root"),
        ("/proc/x", "inside `/proc`"),
        ("/dev/shm/x", "inside `/dev`"),
        ("/dev/pts", "inside `/dev`"),
        ("relative", "absolute"),
        ("/a/../b", "absolute path without `..`"),
    ] {
        let w = Workload::new("true", [] as [&str; 0]).tmpfs(t, None);
        let e = p.resolve(&w, &host()).unwrap_err().to_string();
        assert!(e.contains("tmpfs") && e.contains(says), "{t}: {e}");
    }
    let twice = Workload::new("true", [] as [&str; 0])
        .tmpfs("/x", None)
        .tmpfs("/x/", None);
    let e = p.resolve(&twice, &host()).unwrap_err().to_string();
    assert!(e.contains("another mount"), "{e}");
    for (spec, says) in [
        ("/run:size=1m,mode=755", ""),
        (":size=1m", "missing"),
        ("/run:size=", "size"),
        ("/run:mode=999", "octal"),
        ("/run:mode=17777", "octal"),
        ("/run:uid=0", "unknown option `uid=0`"),
    ] {
        match Tmpfs::parse_spec(spec) {
            Ok(t) => assert!(
                says.is_empty() && t.mode == Some(0o755) && t.size.is_some(),
                "{spec}"
            ),
            Err(e) => assert!(!says.is_empty() && e.contains(says), "{spec}: {e}"),
        }
    }
}

#[test]
fn cpus_limit_parses_layers_and_is_clamped_by_the_floor() {
    use crate::units::Cpus;
    for (text, millis, shown) in [
        ("0.5", 500, "0.5"),
        ("2", 2000, "2"),
        ("250m", 250, "0.25"),
        ("1.125", 1125, "1.125"),
    ] {
        let c = Cpus::parse(text).unwrap();
        assert_eq!(
            (c.millis(), c.to_string().as_str()),
            (millis, shown),
            "{text}"
        );
    }
    for bad in ["0", "-1", "x", "2000000", "nan"] {
        assert!(Cpus::parse(bad).is_err(), "{bad}");
    }
    let p = Policy::from_toml_str("[defaults.limits]\ncpus = 1.5\n", "p.toml").unwrap();
    let w = Workload::new("true", [] as [&str; 0]);
    assert_eq!(
        p.resolve(&w, &host()).unwrap().limits.cpus,
        Some(Cpus(1500))
    );
    let e = Policy::from_toml_str("[defaults.limits]\ncpus = 0\n", "p.toml").unwrap_err();
    assert!(e.to_string().contains("cpus"), "{e}");
    let floor = Floor::from_toml_str("[floor]\nlimits = { cpus = 1 }\n", "floor.toml").unwrap();
    let plan = p.resolve_with_floor(&w, &host(), Some(&floor)).unwrap();
    assert_eq!(plan.limits.cpus, Some(Cpus(1000)));
    let mut over = w.clone();
    over.limits.cpus = Some(Cpus(4000));
    let e = p
        .resolve_with_floor(&over, &host(), Some(&floor))
        .unwrap_err();
    assert!(e.to_string().contains("cpus"), "{e}");
}
