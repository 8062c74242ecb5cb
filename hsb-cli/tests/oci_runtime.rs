//! `hsb oci` driven directly with runc's command line: the lifecycle (create, start,
//! state, exec, pause, kill, delete), exit statuses, and bad input (malformed or
//! unknown fields, a missing rootfs, a taken id, a deleted container) giving runc-like
//! errors with nothing left behind.

#[path = "oci_common/engines.rs"]
mod engines;
mod oci_common;

use oci_common::*;
use std::path::Path;

fn root_ok() -> bool {
    require(
        is_root(),
        "the OCI runtime tests need a root caller (as engines run runtimes)",
    )
}

/// The tests of this file one at a time: two of them count the machine's sandbox inits
/// before and after, which another test's sandbox coming or going would make fail.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static M: std::sync::Mutex<()> = std::sync::Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

fn state(root: &Path, id: &str) -> serde_json::Value {
    let o = oci(root, &["state", id]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Waits (at most 5 s) for the container to be stopped.
fn wait_stopped(root: &Path, id: &str) {
    for _ in 0..500 {
        if state(root, id)["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn lifecycle_create_start_exec_pause_kill_delete() {
    if !root_ok() {
        return;
    }
    let _serial = serial();
    let root = TempDir::new("root");
    let b = TempDir::new("bundle");
    bundle(
        b.path(),
        &[
            "/bin/sh",
            "-c",
            "trap 'echo got TERM; exit 7' TERM; echo started; while true; do sleep 0.1; done",
        ],
    );
    let pid_file = b.path().join("pid");
    let o = oci(
        root.path(),
        &[
            "create",
            "--bundle",
            b.path().to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            "c1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let s = state(root.path(), "c1");
    assert_eq!(s["status"], "created");
    assert_eq!(s["pid"], pid);
    assert_eq!(s["hsb"]["isolation"], "container");
    // What config.json asked that hsb enforces its own way is reported.
    let notes = s["hsb"]["enforced_differently"].to_string();
    assert!(
        notes.contains("capabilities") && notes.contains("sysfs"),
        "{notes}"
    );

    let o = oci(root.path(), &["start", "c1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(state(root.path(), "c1")["status"], "running");
    // A second start is refused.
    let o = oci(root.path(), &["start", "c1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // exec runs in the same sandbox: it sees the container's process.
    let o = oci(
        root.path(),
        &["exec", "c1", "sh", "-c", "hostname; ps; exit 4"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("hsbtest\n"), "{out}");
    assert!(out.contains("while true"), "{out}");

    let o = oci(root.path(), &["pause", "c1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(state(root.path(), "c1")["status"], "paused");
    let o = oci(root.path(), &["exec", "c1", "true"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "exec in a paused container: {}",
        text(&o)
    );
    let o = oci(root.path(), &["resume", "c1"]);
    assert!(o.status.success(), "{}", text(&o));

    let o = oci(root.path(), &["ps", "--format", "json", "c1"]);
    let pids: Vec<i32> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(pids, [pid]);

    // Not stopped: delete needs --force.
    let o = oci(root.path(), &["delete", "c1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not stopped"),
        "{}",
        text(&o)
    );

    // SIGTERM reaches the container's process (its trap exits 7).
    let o = oci(root.path(), &["kill", "c1", "TERM"]);
    assert!(o.status.success(), "{}", text(&o));
    wait_stopped(root.path(), "c1");
    let s = state(root.path(), "c1");
    assert_eq!(s["status"], "stopped");
    assert_eq!(s["pid"], 0);
    assert_eq!(s["hsb"]["exit"]["code"], 7);
    let o = oci(root.path(), &["kill", "c1", "KILL"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("container not running"));

    let o = oci(root.path(), &["delete", "c1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!root.path().join("c1").exists());
    assert!(processes_with(root.path().to_str().unwrap()).is_empty());
    // start of a deleted container: runc's error, status 1.
    let o = oci(root.path(), &["start", "c1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("container does not exist"),
        "{}",
        text(&o)
    );
    // delete --force of a container that is not there: done already, as runc says.
    let o = oci(root.path(), &["delete", "--force", "c1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = oci(root.path(), &["delete", "c1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn run_passes_the_exit_status_and_output() {
    if !root_ok() {
        return;
    }
    let _serial = serial();
    let root = TempDir::new("root");
    let b = TempDir::new("bundle");
    bundle(
        b.path(),
        &["/bin/sh", "-c", "echo out; echo err >&2; id -u; exit 3"],
    );
    let o = oci(
        root.path(),
        &["run", "--bundle", b.path().to_str().unwrap(), "r1"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n0\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    assert!(
        !root.path().join("r1").exists(),
        "run removes the container"
    );
    // Killed by a signal: 128+N.
    bundle(&b.path().join("k"), &["/bin/sh", "-c", "kill -9 $$"]);
    let o = oci(
        root.path(),
        &[
            "run",
            "--bundle",
            b.path().join("k").to_str().unwrap(),
            "r2",
        ],
    );
    assert_eq!(o.status.code(), Some(137), "{}", text(&o));
}

#[test]
fn kill_of_the_supervisor_leaves_no_sandbox() {
    if !root_ok() {
        return;
    }
    let _serial = serial();
    let root = TempDir::new("root");
    let b = TempDir::new("bundle");
    bundle(b.path(), &["/bin/sleep", "100"]);
    let before = sandbox_inits();
    let o = oci(
        root.path(),
        &["create", "--bundle", b.path().to_str().unwrap(), "k1"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(oci(root.path(), &["start", "k1"]).status.success());
    let pid = state(root.path(), "k1")["pid"].as_i64().unwrap() as i32;
    assert!(sandbox_inits() > before);
    // SAFETY: a plain kill of the supervisor this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(
        no_more_inits_than(before),
        "the sandbox's init outlived its supervisor"
    );
    assert_eq!(state(root.path(), "k1")["status"], "stopped");
    assert!(oci(root.path(), &["delete", "k1"]).status.success());
}

/// Each bad config.json fails create with status 1, names the field, and leaves no
/// state directory and no process.
#[test]
fn bad_bundles_fail_create_naming_the_field() {
    if !root_ok() {
        return;
    }
    let _serial = serial();
    let root = TempDir::new("root");
    type Edit = Box<dyn Fn(&Path)>;
    #[rustfmt::skip]
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("malformed", Box::new(|d: &Path| std::fs::write(d.join("config.json"), "{\"ociVersion\": ").unwrap()), "malformed JSON"),
        ("unknown-top", Box::new(|d: &Path| edit_config(d, |v| v["frobnicate"] = 1.into())), "frobnicate"),
        ("unknown-process", Box::new(|d: &Path| edit_config(d, |v| v["process"]["magic"] = true.into())), "process.magic"),
        ("missing-rootfs", Box::new(|d: &Path| edit_config(d, |v| v["root"]["path"] = "nowhere".into())), "root.path"),
        ("bad-type", Box::new(|d: &Path| edit_config(d, |v| v["process"]["args"] = 5.into())), "config.json"),
        ("cpuset", Box::new(|d: &Path| edit_config(d, |v| v["linux"]["resources"]["cpu"] = serde_json::json!({"cpus": "0-1"}))), "linux.resources.cpu.cpus"),
        ("device", Box::new(|d: &Path| edit_config(d, |v| v["linux"]["devices"] = serde_json::json!([{"path": "/dev/kvm", "type": "c", "major": 10, "minor": 232}]))), "linux.devices"),
        ("host-pid-ns", Box::new(|d: &Path| edit_config(d, |v| v["linux"]["namespaces"] = serde_json::json!([{"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]))), "`pid`"),
        ("host-ipc-ns", Box::new(|d: &Path| edit_config(d, |v| v["linux"]["namespaces"][2] = serde_json::json!({"type": "ipc", "path": "/proc/self/ns/ipc"}))), "the host's own IPC namespace"),
        ("uts-and-hostname", Box::new(|d: &Path| edit_config(d, |v| v["linux"]["namespaces"][3] = serde_json::json!({"type": "uts", "path": "/proc/self/ns/uts"}))), "hostname: cannot be set in a joined UTS namespace"),
        ("join-pid-ns", Box::new(|d: &Path| edit_config(d, |v| v["linux"]["namespaces"][0] = serde_json::json!({"type": "pid", "path": "/proc/1/ns/pid"}))), "linux.namespaces[0].path"),
        ("hooks", Box::new(|d: &Path| edit_config(d, |v| v["hooks"] = serde_json::json!({"startContainer": [{"path": "/bin/true"}]}))), "hooks.startContainer"),
        ("bad-annotation", Box::new(|d: &Path| edit_config(d, |v| v["annotations"] = serde_json::json!({"io.hybrid-sandbox.isolaton": "microvm"}))), "io.hybrid-sandbox.isolaton"),
        ("bad-isolation", Box::new(|d: &Path| edit_config(d, |v| v["annotations"] = serde_json::json!({"io.hybrid-sandbox.isolation": "vm"}))), "io.hybrid-sandbox.isolation"),
        ("rlimit", Box::new(|d: &Path| edit_config(d, |v| v["process"]["rlimits"] = serde_json::json!([{"type": "RLIMIT_MEMLOCK", "hard": 1, "soft": 1}]))), "RLIMIT_MEMLOCK"),
        ("no-args", Box::new(|d: &Path| edit_config(d, |v| v["process"]["args"] = serde_json::json!([]))), "process.args"),
    ];
    let before = sandbox_inits();
    for (name, edit, needle) in cases {
        let b = TempDir::new("bad");
        bundle(b.path(), &["/bin/true"]);
        edit(b.path());
        let o = oci(
            root.path(),
            &["create", "--bundle", b.path().to_str().unwrap(), name],
        );
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(needle),
            "{name}: expected {needle:?} in: {err}"
        );
        assert!(
            !root.path().join(name).exists(),
            "{name}: state left behind"
        );
        let o = oci(root.path(), &["state", name]);
        assert_eq!(o.status.code(), Some(1), "{name}");
    }
    assert!(no_more_inits_than(before), "a sandbox was left behind");
    assert!(processes_with(root.path().to_str().unwrap()).is_empty());
}

#[test]
fn a_taken_id_and_the_runtime_log() {
    if !root_ok() {
        return;
    }
    let _serial = serial();
    let root = TempDir::new("root");
    let b = TempDir::new("bundle");
    bundle(b.path(), &["/bin/sleep", "100"]);
    let log = b.path().join("log.json");
    let o = oci(
        root.path(),
        &["create", "--bundle", b.path().to_str().unwrap(), "same"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = oci(
        root.path(),
        &[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "create",
            "--bundle",
            b.path().to_str().unwrap(),
            "same",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("container with id exists: same"));
    // The log is JSON lines with the error last, as containerd's shim reads it.
    let last = std::fs::read_to_string(&log).unwrap();
    let entry: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(entry["level"], "error");
    assert!(entry["msg"].as_str().unwrap().contains("exists"));
    // The first container is untouched by the refused create.
    assert_eq!(state(root.path(), "same")["status"], "created");
    // A created container is deleted without --force (its process never ran).
    let o = oci(root.path(), &["delete", "same"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(processes_with(root.path().to_str().unwrap()).is_empty());
    // Unsupported global option: a clear error.
    let o = oci(root.path(), &["--systemd-cgroup", "state", "same"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--systemd-cgroup"));
    let o = oci(root.path(), &["features"]);
    let f: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(f["annotations"]["io.hybrid-sandbox.isolation"].is_string());
    // A reader that went away (`hsb oci features | head -1`) is no panic.
    let mut child = std::process::Command::new(oci_common::hsb())
        .args(["oci", "features"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{}",
        text(&o)
    );
}

#[test]
fn microvm_containers() {
    if !root_ok() {
        return;
    }
    let _serial = serial();
    let root = TempDir::new("root");
    match microvm_live(root.path()) {
        Ok(()) => {}
        Err(why) => {
            require(
                false,
                &format!("the micro-VM runtime cannot run here: {why}"),
            );
            return;
        }
    }
    let b = TempDir::new("bundle");
    bundle(b.path(), &["/bin/sh", "-c", "echo in-vm; exit 9"]);
    let o = std::process::Command::new(runtime_dir().join("hsb-oci-microvm"))
        .arg("--root")
        .arg(root.path())
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg("vm1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(9), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "in-vm\n");
    // The runtime's name fixes the isolation even for a bundle without annotations
    // (it once ran such bundles in the container backend).
    let b = TempDir::new("bundle");
    bundle(b.path(), &["/bin/sh", "-c", "exit 0"]);
    // A CPU set pins the VM: every thread of its supervisor (the vCPU's included).
    let pin = cpu_sets_here();
    let cg_path = format!("/hsb-test-vmcpuset-{}", std::process::id());
    if pin {
        edit_config(b.path(), |v| {
            v["linux"]["cgroupsPath"] = cg_path.clone().into();
            v["linux"]["resources"]["cpu"] = serde_json::json!({"cpus": "1"});
        });
    }
    // `create` leaves the container's supervisor holding the caller's stdout and
    // stderr (the container's own, until it ends): files, not pipes read to their end
    // (`output()` waited for ever once micro-VM containers could be created).
    let log = tempfile::tempfile().unwrap();
    let st = std::process::Command::new(runtime_dir().join("hsb-oci-microvm"))
        .arg("--root")
        .arg(root.path())
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg("vm2")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log.try_clone().unwrap())
        .status()
        .unwrap();
    assert!(st.success(), "{}", {
        use std::io::{Read, Seek};
        let mut f = log;
        let mut v = String::new();
        let _ = f.rewind();
        let _ = f.read_to_string(&mut v);
        v
    });
    let st = state(root.path(), "vm2");
    assert_eq!(st["hsb"]["isolation"], "microvm", "{st}");
    if pin {
        let pid = st["pid"].as_i64().unwrap();
        let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .collect();
        assert!(tasks.len() > 1, "the supervisor's threads");
        for t in tasks {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            assert!(
                status.contains("Cpus_allowed_list:\t1\n"),
                "thread {:?} of the VM's supervisor: {status}",
                t.file_name()
            );
        }
    }
    // A micro-VM's limits are its VM's: `update` says so, and it goes on.
    let o = oci(root.path(), &["update", "--pids-limit", "10", "vm2"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("fixed when it is created"),
        "{}",
        text(&o)
    );
    assert_eq!(state(root.path(), "vm2")["status"], "created");
    let o = oci(root.path(), &["delete", "--force", "vm2"]);
    assert!(o.status.success(), "{}", text(&o));
    for r in cgroup_roots() {
        let d = r.join(cg_path.trim_start_matches('/'));
        assert!(!d.exists(), "{} left", d.display());
    }
}

/// A Kubernetes pod's containers join the pod's IPC and UTS namespaces by path: the
/// container sees the pod's host name and its SysV shared memory, and nothing of the
/// host's; the namespaces are the pod's, not copies.
#[test]
fn joins_a_pods_ipc_and_uts_namespaces() {
    if !root_ok()
        || !require(
            have("unshare") && have("ipcmk"),
            "unshare and ipcmk (util-linux) are needed",
        )
    {
        return;
    }
    let _serial = serial();
    let root = TempDir::new("root");
    // The pod: a process holding fresh IPC and UTS namespaces, named, with a segment.
    let mut pod = std::process::Command::new("unshare")
        .args([
            "--ipc",
            "--uts",
            "sh",
            "-c",
            "hostname hsb-pod && ipcmk -M 4096 >/dev/null && echo ready && exec sleep 1000",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(pod.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "ready\n");
    let ns = |n: &str| format!("/proc/{}/ns/{n}", pod.id());
    let b = TempDir::new("bundle");
    bundle(
        b.path(),
        &[
            "/bin/sh",
            "-c",
            "hostname; readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; cat /proc/sysvipc/shm | wc -l",
        ],
    );
    edit_config(b.path(), |v| {
        v.as_object_mut().unwrap().remove("hostname");
        v["linux"]["namespaces"][2] = serde_json::json!({"type": "ipc", "path": ns("ipc")});
        v["linux"]["namespaces"][3] = serde_json::json!({"type": "uts", "path": ns("uts")});
    });
    let link = |n: &str| std::fs::read_link(ns(n)).unwrap().display().to_string();
    let (pod_ipc, pod_uts) = (link("ipc"), link("uts"));
    let o = oci(
        root.path(),
        &["run", "--bundle", b.path().to_str().unwrap(), "pod1"],
    );
    let _ = pod.kill();
    let _ = pod.wait();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    // The pod's name, the pod's namespaces themselves, and /proc/sysvipc/shm with a
    // header line and the pod's one segment.
    assert_eq!(
        lines,
        ["hsb-pod", pod_ipc.as_str(), pod_uts.as_str(), "2"],
        "{out}"
    );
}

/// config.json's hooks, as Docker uses them: a prestart hook reads the state, finds the
/// container's network namespace through `/proc/PID/ns/net` of the state's pid and sets
/// an interface up in it (as `libnetwork-setkey` has dockerd do), from the host's own
/// network namespace; poststart and poststop hooks run; a failing or hung prestart hook
/// fails `create` naming it, leaving nothing; hooks that would run inside the container
/// are refused by name.
#[test]
fn hooks_run_on_the_host_with_the_containers_state() {
    if !root_ok()
        || !require(
            have("ip") && have("nsenter"),
            "ip (iproute2) and nsenter are needed",
        )
    {
        return;
    }
    let _serial = serial();
    let root = TempDir::new("root");
    let b = TempDir::new("bundle");
    let out = b.path().join("hook-out");
    std::fs::create_dir(&out).unwrap();
    let script = |name: &str, body: &str| {
        let p = b.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    };
    let o = out.display();
    let prestart = script(
        "prestart",
        &format!(
            "cat > {o}/state.json\n\
             pid=$(sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/' {o}/state.json)\n\
             readlink /proc/self/ns/net > {o}/hook-netns\n\
             nsenter --net=/proc/$pid/ns/net ip link add hsbdummy0 type veth peer name hsbpeer0\n\
             echo \"$1 $HOOK_ENV\" > {o}/args"
        ),
    );
    let poststart = script("poststart", &format!("cat > {o}/poststart.json"));
    let poststop = script("poststop", &format!("cat > {o}/poststop.json"));
    bundle(
        b.path(),
        &[
            "/bin/sh",
            "-c",
            "grep -c hsbdummy0 /proc/net/dev; readlink /proc/self/ns/net",
        ],
    );
    edit_config(b.path(), |v| {
        v["hooks"] = serde_json::json!({
            "prestart": [{"path": prestart, "args": ["prestart", "first-arg"], "env": ["HOOK_ENV=from-config"], "timeout": 30}],
            "poststart": [{"path": poststart}],
            "poststop": [{"path": poststop}],
        });
    });
    let o = oci(
        root.path(),
        &["run", "--bundle", b.path().to_str().unwrap(), "hooked"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"1"),
        "the hook's interface is not in the container: {stdout}"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["id"], "hooked");
    assert_eq!(state["status"], "creating");
    assert!(state["pid"].as_i64().is_some_and(|p| p > 0), "{state}");
    let host_netns = std::fs::read_link("/proc/self/ns/net")
        .unwrap()
        .display()
        .to_string();
    let hook_netns = std::fs::read_to_string(out.join("hook-netns")).unwrap();
    assert_eq!(
        hook_netns.trim(),
        host_netns,
        "the hook did not run in the host's network namespace"
    );
    assert_ne!(
        lines.get(1).copied(),
        Some(host_netns.as_str()),
        "the container is in the host's network namespace"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("args")).unwrap(),
        "first-arg from-config\n"
    );
    let post: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("poststart.json")).unwrap()).unwrap();
    assert_eq!(post["status"], "running");
    let stop: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("poststop.json")).unwrap()).unwrap();
    assert_eq!(stop["status"], "stopped");
    assert!(!root.path().join("hooked").exists());

    // Failing, hung and in-container hooks: create fails naming the hook; nothing left.
    let failing = script("failing", "echo the network is gone >&2; exit 3");
    let hung = script("hung", "exec sleep 31.5");
    let before = sandbox_inits();
    for (name, hooks, needle) in [
        (
            "fail",
            serde_json::json!({"prestart": [{"path": failing}]}),
            "hooks.prestart[0]",
        ),
        (
            "fail-msg",
            serde_json::json!({"createRuntime": [{"path": failing}]}),
            "the network is gone",
        ),
        (
            "hung",
            serde_json::json!({"prestart": [{"path": hung, "timeout": 1}]}),
            "timed out after 1 s",
        ),
        (
            "inside",
            serde_json::json!({"createContainer": [{"path": failing}]}),
            "hooks.createContainer",
        ),
        (
            "relative",
            serde_json::json!({"prestart": [{"path": "bin/true"}]}),
            "hooks.prestart[0].path",
        ),
    ] {
        let b = TempDir::new("bad-hook");
        bundle(b.path(), &["/bin/true"]);
        edit_config(b.path(), |v| v["hooks"] = hooks);
        let o = oci(
            root.path(),
            &["create", "--bundle", b.path().to_str().unwrap(), name],
        );
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(needle),
            "{name}: expected {needle:?}: {}",
            text(&o)
        );
        assert!(
            !root.path().join(name).exists(),
            "{name}: state left behind"
        );
    }
    assert!(
        processes_with("31.5").is_empty(),
        "the hung hook was left running"
    );
    assert!(no_more_inits_than(before), "a sandbox was left behind");
}

/// `update` (Docker's `docker update`, containerd's UpdateContainerResources) changes
/// the limits of a running container: a pids limit lowered stops its forks, raised
/// lets them through; a memory limit lowered has the kernel kill what goes above it,
/// raised lets it run; `--resources -` takes the OCI object the way containerd's shim
/// passes it. What cannot change (a CPU set, a stopped container, a limit above the
/// operator floor, a bad size) is refused with the reason, and nothing changes.
#[test]
fn update_changes_a_running_containers_limits() {
    if !root_ok() {
        return;
    }
    let _serial = serial();
    let root = TempDir::new("root");
    let b = TempDir::new("bundle");
    bundle(b.path(), &["/bin/sh", "-c", "while true; do sleep 1; done"]);
    let floor = b.path().join("floor.toml");
    std::fs::write(
        &floor,
        "[floor]\nlimits = { pids = 100, memory = \"1GiB\" }\n",
    )
    .unwrap();
    let fl = floor.to_str().unwrap();
    let o = oci(
        root.path(),
        &[
            "--floor",
            fl,
            "run",
            "--detach",
            "--bundle",
            b.path().to_str().unwrap(),
            "u1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let forks = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done; wait";

    let o = oci(root.path(), &["update", "--pids-limit", "5", "u1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = oci(root.path(), &["exec", "u1", "sh", "-c", forks]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("fork"),
        "10 children under pids 5: {}",
        text(&o)
    );
    let o = oci(root.path(), &["update", "--pids-limit", "64", "u1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = oci(root.path(), &["exec", "u1", "sh", "-c", forks]);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "under pids 64: {}",
        text(&o)
    );

    // About 130 MB of string in awk: killed under 32 MiB, fine under 512 MiB.
    let hog = "awk 'BEGIN { s = \"x\"; while (length(s) < 64000000) s = s s; print length(s) }'";
    let o = oci(root.path(), &["update", "--memory", "32m", "u1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = oci(root.path(), &["exec", "u1", "sh", "-c", hog]);
    assert!(!o.status.success(), "the hog under 32 MiB: {}", text(&o));
    // containerd's shim: `update --resources -` with the OCI object on stdin.
    let mut child = std::process::Command::new(hsb())
        .args(["oci", "--root", root.path().to_str().unwrap()])
        .args(["update", "--resources", "-", "u1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(br#"{"memory": {"limit": 536870912, "swap": 536870912}, "cpu": {"shares": 1024, "quota": 0, "period": 0, "cpus": "", "mems": ""}, "pids": {"limit": 64}}"#)
            .unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = oci(root.path(), &["exec", "u1", "sh", "-c", hog]);
    assert_eq!(
        (o.status.code(), String::from_utf8_lossy(&o.stdout).trim()),
        (Some(0), "67108864"),
        "the hog under 512 MiB: {}",
        text(&o)
    );

    // Refusals name what and why; the limits in force stay.
    let refused = |args: &[&str], needle: &str| {
        let mut all = vec!["update"];
        all.extend_from_slice(args);
        all.push("u1");
        let o = oci(root.path(), &all);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    refused(&["--pids-limit", "1000"], "pids");
    refused(&["--pids-limit", "1000"], "floor");
    refused(&["--memory", "12parsecs"], "not a size");
    refused(&["--cpuset-cpus", "0"], "cgroupsPath");
    refused(&["--memory", "-1"], "lifting a limit");
    refused(&["--cpu-period", "50000"], "quota");
    let o = oci(root.path(), &["exec", "u1", "sh", "-c", forks]);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "still pids 64: {}",
        text(&o)
    );

    let o = oci(root.path(), &["kill", "u1", "KILL"]);
    assert!(o.status.success(), "{}", text(&o));
    wait_stopped(root.path(), "u1");
    refused(&["--pids-limit", "10"], "stopped");
    let o = oci(root.path(), &["delete", "u1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = oci(root.path(), &["update", "--pids-limit", "10", "u1"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not exist"),
        "{}",
        text(&o)
    );
}

/// `process.rlimits` RLIMIT_NOFILE above the runtime's own hard limit (Docker's default
/// and a Podman pod's infra container ask 1048576): with CAP_SYS_RESOURCE the runtime
/// raises its own, as runc does, and the container gets what it asked; above what it
/// can grant (`fs.nr_open`, or without the capability its own hard limit) is refused
/// naming the field and the ceiling.
#[test]
fn open_files_above_the_runtimes_hard_limit_are_granted_as_runc_does() {
    if !root_ok() {
        return;
    }
    let _serial = serial();
    let root = TempDir::new("root");
    let b = TempDir::new("bundle");
    bundle(b.path(), &["/bin/sh", "-c", "ulimit -Hn; ulimit -n"]);
    let ask = |n: u64| {
        edit_config(b.path(), |v| {
            v["process"]["rlimits"] =
                serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": n, "soft": n}])
        })
    };
    // The runtime runs with a hard limit of 4096, as a caller may.
    let run = |id: &str| {
        std::process::Command::new("prlimit")
            .arg("--nofile=4096:4096")
            .arg(hsb())
            .arg("oci")
            .arg("--root")
            .arg(root.path())
            .args(["run", "--bundle", b.path().to_str().unwrap(), id])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("prlimit (util-linux)")
    };
    let refused = |o: &std::process::Output, ceiling: u64| {
        assert_eq!(o.status.code(), Some(1), "{}", text(o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("process.rlimits[0]") && err.contains(&format!("({ceiling}:")),
            "{err}"
        );
    };
    // Without CAP_SYS_RESOURCE (this very machine's root lacks it) the runtime's own
    // hard limit is the most it can grant.
    let caps = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = caps
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap();
    ask(8192);
    let o = run("n1");
    if eff & (1 << 24) == 0 {
        // CAP_SYS_RESOURCE is capability 24.
        refused(&o, 4096);
        return;
    }
    assert_eq!(
        (o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()),
        (Some(0), "8192\n8192\n"),
        "{}",
        text(&o)
    );
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ask(nr_open + 1);
    refused(&run("n2"), nr_open);
}

/// `linux.cgroupsPath`: the pid an engine is given (the supervisor) is in that cgroup
/// in every hierarchy, as runc's container init is, where engines read a container's
/// statistics and a pod's cgroup holds it, and so are the container's processes; the
/// supervisor removes the directories it made as it ends, and after a SIGKILL (which
/// leaves the sandbox's own cgroup inside them) `delete` does;
/// a path that leaves the hierarchy is refused naming the field.
#[test]
fn the_supervisor_joins_the_engines_cgroup_and_delete_removes_it() {
    if !root_ok() {
        return;
    }
    let _serial = serial();
    let root = TempDir::new("root");
    let b = TempDir::new("bundle");
    bundle(b.path(), &["/bin/sh", "-c", "sleep 1000"]);
    let parent = format!("hsb-test-cg-{}", std::process::id());
    let path = format!("/{parent}/cg1");
    edit_config(b.path(), |v| {
        v["linux"]["cgroupsPath"] = path.clone().into()
    });
    let bundle_arg = b.path().to_str().unwrap();
    let o = oci(root.path(), &["create", "--bundle", bundle_arg, "cg1"]);
    assert!(o.status.success(), "{}", text(&o));
    let pid = state(root.path(), "cg1")["pid"].as_i64().unwrap() as i32;
    let dirs = assert_in_cgroup(pid, &path);
    assert!(dirs.iter().all(|d| d.is_dir()), "{dirs:?}");
    let o = oci(root.path(), &["start", "cg1"]);
    assert!(o.status.success(), "{}", text(&o));
    // The container's processes are inside it too (hsb's cgroup for the sandbox is made
    // there), so what holds that cgroup holds them, and its usage counts theirs.
    engines::assert_processes_inside(pid, &path);
    let o = oci(root.path(), &["kill", "cg1", "KILL"]);
    assert!(o.status.success(), "{}", text(&o));
    wait_stopped(root.path(), "cg1");
    // The supervisor removes what it made as it ends (Podman's `run --rm` calls no
    // `delete` after a container ends by itself).
    let gone = |pid: i32| {
        (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !Path::new(&format!("/proc/{pid}")).exists()
        })
    };
    assert!(gone(pid), "the supervisor {pid} did not end");
    for d in &dirs {
        assert!(
            !d.exists(),
            "{} left after the container ended",
            d.display()
        );
        assert!(!d.parent().unwrap().exists(), "{} left", d.display());
    }
    let o = oci(root.path(), &["delete", "cg1"]);
    assert!(o.status.success(), "{}", text(&o));
    // A supervisor killed with SIGKILL cannot: `delete` does.
    let o = oci(root.path(), &["create", "--bundle", bundle_arg, "cg1b"]);
    assert!(o.status.success(), "{}", text(&o));
    let pid = state(root.path(), "cg1b")["pid"].as_i64().unwrap() as i32;
    assert_eq!(assert_in_cgroup(pid, &path), dirs);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(gone(pid), "the supervisor {pid} did not end");
    assert!(dirs.iter().all(|d| d.is_dir()), "{dirs:?}");
    let o = oci(root.path(), &["delete", "cg1b"]);
    assert!(o.status.success(), "{}", text(&o));
    for d in &dirs {
        assert!(!d.exists(), "{} left after delete", d.display());
    }

    for bad in ["/../../etc/cg", "/hsb/../x"] {
        edit_config(b.path(), |v| v["linux"]["cgroupsPath"] = bad.into());
        let o = oci(root.path(), &["create", "--bundle", bundle_arg, "cg2"]);
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("linux.cgroupsPath"),
            "{}",
            text(&o)
        );
        let _ = oci(root.path(), &["delete", "--force", "cg2"]);
    }
}

/// `linux.resources.cpu.cpus`/`mems` are set on `linux.cgroupsPath` in cgroup v1's
/// cpuset hierarchy, which the container's processes inherit: the workload sees only
/// those CPUs, cannot widen its affinity past them, and `update --cpuset-cpus` changes
/// them; a set without a cgroupsPath is refused, naming the field.
#[test]
fn cpu_sets_hold_inside_the_container_and_change_with_update() {
    if !root_ok() {
        return;
    }
    if !require(
        cpu_sets_here(),
        "needs a cgroup v1 cpuset hierarchy and two CPUs",
    ) {
        return;
    }
    let cpuset = cgroup_roots()
        .into_iter()
        .find(|r| r.join("cpuset.cpus").exists());
    let _serial = serial();
    let root = TempDir::new("root");
    let b = TempDir::new("bundle");
    bundle(b.path(), &["/bin/sh", "-c", "while true; do sleep 1; done"]);
    let path = format!("/hsb-test-cpuset-{}/c1", std::process::id());
    edit_config(b.path(), |v| {
        v["linux"]["cgroupsPath"] = path.clone().into();
        v["linux"]["resources"]["cpu"] = serde_json::json!({"cpus": "1", "mems": "0"});
    });
    let bundle_arg = b.path().to_str().unwrap();
    let o = oci(
        root.path(),
        &["run", "--detach", "--bundle", bundle_arg, "cs1"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let allowed = |root: &Path| {
        let o = oci(
            root,
            &[
                "exec",
                "cs1",
                "grep",
                "Cpus_allowed_list",
                "/proc/self/status",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(allowed(root.path()), "1");
    let dir = cpuset.unwrap().join(path.trim_start_matches('/'));
    assert_eq!(
        std::fs::read_to_string(dir.join("cpuset.cpus"))
            .unwrap()
            .trim(),
        "1"
    );
    // The workload asks for every CPU: the kernel keeps it within its set.
    let o = oci(
        root.path(),
        &[
            "exec",
            "cs1",
            "sh",
            "-c",
            "busybox taskset -p -c 0,1 $$ >/dev/null 2>&1; grep Cpus_allowed_list /proc/self/status",
        ],
    );
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .trim_end()
            .ends_with("\t1"),
        "widened its CPU set: {}",
        text(&o)
    );
    let o = oci(root.path(), &["update", "--cpuset-cpus", "0", "cs1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(allowed(root.path()), "0");
    let o = oci(root.path(), &["update", "--cpuset-cpus", "0-", "cs1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("cpu.cpus"), "{}", text(&o));
    // An update whose other limit the sandbox refuses (4 KiB of memory, below what it
    // uses) changes nothing: the set stays.
    let o = oci(
        root.path(),
        &["update", "--cpuset-cpus", "1", "--memory", "4096", "cs1"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(allowed(root.path()), "0");
    let o = oci(root.path(), &["kill", "cs1", "KILL"]);
    assert!(o.status.success(), "{}", text(&o));
    wait_stopped(root.path(), "cs1");
    let o = oci(root.path(), &["delete", "cs1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!dir.parent().unwrap().exists(), "{} left", dir.display());

    // Without a cgroupsPath there is nowhere to set it: refused.
    edit_config(b.path(), |v| {
        v["linux"].as_object_mut().unwrap().remove("cgroupsPath");
    });
    let o = oci(root.path(), &["create", "--bundle", bundle_arg, "cs2"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("cpu.cpus") && text(&o).contains("cgroupsPath"),
        "{}",
        text(&o)
    );
    assert!(!root.path().join("cs2").exists());
}
