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

/// `process.user.additionalGids` become the workload's supplementary groups (sorted,
/// once each, without the gid); the micro-VM, whose processes have none, refuses them
/// naming the field and the gid.
#[test]
fn additional_gids_are_the_workloads_groups_or_refused_by_name() {
    let b = bundle();
    let with = |gids: Value| {
        config(move |v| {
            v["process"]["user"] =
                serde_json::json!({"uid": 1000, "gid": 100, "additionalGids": gids});
        })
    };
    let c = parse(
        &with(serde_json::json!([1234, 100, 5, 1234])),
        b.path(),
        Some(IsolationRequest::Container),
    )
    .unwrap();
    assert_eq!(c.workload.groups, [5, 1234]);
    assert_eq!(c.process.groups, [5, 1234]);
    assert_eq!(c.process.user, (1000, 100));
    // Only the gid itself: nothing to give.
    let c = parse(
        &with(serde_json::json!([100])),
        b.path(),
        Some(IsolationRequest::MicroVm),
    )
    .unwrap();
    assert!(c.workload.groups.is_empty());
    let e = parse(
        &with(serde_json::json!([100, 1234])),
        b.path(),
        Some(IsolationRequest::MicroVm),
    )
    .unwrap_err();
    assert_eq!(e.field, "process.user.additionalGids", "{e}");
    assert!(e.message.contains("1234"), "{e}");
    for (gids, field) in [
        (
            serde_json::json!([5, "x"]),
            "process.user.additionalGids[1]",
        ),
        (
            serde_json::json!([1u64 << 33]),
            "process.user.additionalGids[0]",
        ),
        (serde_json::json!(7), "process.user.additionalGids"),
    ] {
        let e = parse(&with(gids), b.path(), None).unwrap_err();
        // A shape the typed model refuses is named at the top.
        assert!(e.field == field || e.field == "config.json", "{e}");
    }
}

/// Docker's /dev/shm becomes an in-memory filesystem of its own with its size and
/// options (not /tmp); an engine's bind there is reported, not mounted.
#[test]
fn a_tmpfs_at_dev_shm_is_its_own_and_a_bind_there_is_reported() {
    let b = bundle();
    let c = parse(
        &config(|v| {
            v["mounts"] = serde_json::json!([{"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}]);
        }),
        b.path(),
        Some(IsolationRequest::Container),
    )
    .unwrap();
    assert_eq!(
        c.workload.tmpfs,
        [Tmpfs {
            target: "/dev/shm".into(),
            size: Some(ByteSize(64 << 20)),
            mode: Some(0o1777),
            noexec: true,
        }]
    );
    assert!(
        !c.notes.iter().any(|n| n.contains("/dev/shm")),
        "{:?}",
        c.notes
    );
    let c = parse(
        &config(|v| {
            v["mounts"] = serde_json::json!([{"destination": "/dev/shm", "type": "bind", "source": "/tmp", "options": ["bind", "private"]}]);
        }),
        b.path(),
        Some(IsolationRequest::Container),
    )
    .unwrap();
    assert!(c.workload.tmpfs.is_empty() && c.workload.mounts.is_empty());
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("mounts[0]") && n.contains("/dev/shm is the container's /tmp")),
        "{:?}",
        c.notes
    );
}

/// `noexec` on a bind mount is the mount's in either backend (the container sets it,
/// the micro-VM enforces it too): no note says it is left out.
#[test]
fn noexec_on_a_bind_is_the_mounts_in_either_backend() {
    let b = bundle();
    let mounts = serde_json::json!([
        {"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "noexec", "ro"]},
        {"destination": "/code", "type": "bind", "source": "/tmp", "options": ["rbind", "noexec", "exec"]},
    ]);
    let m = mounts.clone();
    let c = parse(
        &config(move |v| v["mounts"] = m),
        b.path(),
        Some(IsolationRequest::Container),
    )
    .unwrap();
    assert_eq!(
        c.workload
            .mounts
            .iter()
            .map(|m| (m.noexec, m.mode))
            .collect::<Vec<_>>(),
        [(true, MountMode::Ro), (false, MountMode::Rw)]
    );
    assert!(
        !c.notes.iter().any(|n| n.contains("noexec")),
        "{:?}",
        c.notes
    );
    let c = parse(
        &config(move |v| v["mounts"] = mounts),
        b.path(),
        Some(IsolationRequest::MicroVm),
    )
    .unwrap();
    assert!(c.workload.mounts[0].noexec);
    assert!(!c.workload.mounts[1].noexec);
    assert!(
        !c.notes.iter().any(|n| n.contains("noexec")),
        "{:?}",
        c.notes
    );
}
