//! config.json mapping.

use super::*;

fn config(extra: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
                  "sysctl": {"net.ipv4.ping_group_range": "0 0"}}
    });
    extra(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn bundle() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("rootfs")).unwrap();
    d
}

#[test]
fn a_microvm_container_uses_the_engines_namespace_and_says_how() {
    let b = bundle();
    let c = parse(&config(|_| {}), b.path(), Some(IsolationRequest::MicroVm)).unwrap();
    assert_eq!(c.workload.network, Some(Network::Loopback));
    assert_eq!(
        c.workload.netns.as_deref(),
        Some(Path::new("/proc/1/ns/net"))
    );
    assert_eq!(c.sysctl.len(), 1);
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("TCP and UDP go through the engine's network namespace")),
        "{:?}",
        c.notes
    );
    // The container runtime joins the engine's namespace and keeps the sysctl.
    let c = parse(&config(|_| {}), b.path(), Some(IsolationRequest::Container)).unwrap();
    assert_eq!(
        c.workload.netns.as_deref(),
        Some(Path::new("/proc/1/ns/net"))
    );
    assert_eq!(c.sysctl.len(), 1);
}

#[test]
fn tmpfs_mounts_and_hooks_are_read_with_their_fields_named() {
    let b = bundle();
    let c = parse(
        &config(|v| {
            v["mounts"] = serde_json::json!([{"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=65536k", "mode=755"]}]);
            v["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/true", "args": ["true", "x"], "timeout": 5}]});
        }),
        b.path(),
        None,
    )
    .unwrap();
    assert_eq!(c.workload.tmpfs.len(), 1);
    assert_eq!(c.workload.tmpfs[0].size, Some(ByteSize(64 << 20)));
    assert_eq!(c.workload.tmpfs[0].mode, Some(0o755));
    assert_eq!(c.hooks.create.len(), 1);
    assert_eq!(c.hooks.create[0].args, ["true", "x"]);
    assert!(c.own_netns || c.workload.netns.is_some());
    for (edit, field) in [
        (
            serde_json::json!({"destination": "/run", "type": "tmpfs", "options": ["size=50%"]}),
            "mounts[0].options",
        ),
        (
            serde_json::json!({"destination": "/run", "type": "tmpfs", "options": ["mode=99"]}),
            "mounts[0].options",
        ),
        (
            serde_json::json!({"destination": "/run", "type": "tmpfs", "options": ["ro"]}),
            "mounts[0].options",
        ),
    ] {
        let e = parse(
            &config(|v| v["mounts"] = serde_json::json!([edit])),
            b.path(),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
    for (hooks, field) in [
        (
            serde_json::json!({"prestart": [{"path": "true"}]}),
            "hooks.prestart[0].path",
        ),
        (
            serde_json::json!({"poststop": [{"path": "/bin/true", "timeout": 0}]}),
            "hooks.poststop[0].timeout",
        ),
        (
            serde_json::json!({"poststart": [{"path": "/bin/true", "env": ["NOEQUALS"]}]}),
            "hooks.poststart[0].env",
        ),
        (
            serde_json::json!({"startContainer": [{"path": "/bin/true"}]}),
            "hooks.startContainer",
        ),
        (serde_json::json!({"preStart": []}), "hooks.preStart"),
    ] {
        let e = parse(&config(|v| v["hooks"] = hooks), b.path(), None).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
}

#[test]
fn an_update_takes_what_a_running_container_can_and_names_what_it_cannot() {
    // What the containerd CRI plugin sends for a pod with a memory limit and no CPU
    // limit: the default period alone, shares, an empty cpuset.
    let Resources {
        limits,
        notes,
        cpuset,
    } = updated_resources(
        br#"{"memory": {"limit": 268435456}, "cpu": {"shares": 2, "period": 100000, "cpus": "", "mems": ""}, "devices": []}"#,
    )
    .expect("the CRI plugin's update is taken");
    assert_eq!(cpuset, None);
    assert_eq!(limits.memory.map(|m| m.0), Some(268_435_456));
    assert_eq!(limits.cpus, None);
    assert!(notes.iter().any(|n| n.contains("shares")), "{notes:?}");
    let r = updated_resources(br#"{"cpu": {"quota": 50000, "period": 100000}}"#).expect("a quota");
    assert_eq!(r.limits.cpus.map(|c| c.0), Some(500));
    // CPU sets (Kubernetes' static CPU manager sends them): checked lists, kept as given.
    let r = updated_resources(br#"{"cpu": {"cpus": "0-1,3", "mems": "0"}}"#).expect("a cpuset");
    assert_eq!(
        r.cpuset,
        Some(CpuSet {
            cpus: Some("0-1,3".into()),
            mems: Some("0".into())
        })
    );
    for (bad, field, needle) in [
        (
            r#"{"memory": {"limit": -1}}"#,
            "memory.limit",
            "lifting a limit",
        ),
        (
            r#"{"pids": {"limit": -1}}"#,
            "pids.limit",
            "lifting a limit",
        ),
        (r#"{"cpu": {"quota": -1}}"#, "cpu.quota", "lifting a limit"),
        (
            r#"{"cpu": {"period": 50000}}"#,
            "cpu.period",
            "give the quota too",
        ),
        (r#"{"cpu": {"cpus": "0;1"}}"#, "cpu.cpus", "not a list"),
        (r#"{"cpu": {"cpus": "3-1"}}"#, "cpu.cpus", "not a list"),
        (r#"{"cpu": {"mems": "0,,1"}}"#, "cpu.mems", "not a list"),
        (r#"{"cpu": {"cpus": "../x"}}"#, "cpu.cpus", "not a list"),
    ] {
        let e = updated_resources(bad.as_bytes()).expect_err(bad);
        assert_eq!(e.field, format!("linux.resources.{field}"), "{bad}");
        assert!(e.message.contains(needle), "{bad}: {}", e.message);
    }
    // A new container's -1 is "no limit", not an error.
    let r =
        resources(br#"{"memory": {"limit": -1}, "pids": {"limit": -1}}"#).expect("-1 at create");
    assert_eq!((r.limits.memory, r.limits.pids), (None, None));
}
