use super::*;
use crate::types::Isolation;
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
    assert_eq!(plan.network, Network::None);
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
