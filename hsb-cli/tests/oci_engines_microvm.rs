//! Real engines run containers inside micro-VMs through `hsb-oci-microvm`: the
//! container's processes are guest processes of one VM (its kernel is the VMM's, as
//! `uname -r` shows), the engine sees the supervisor as the container's process,
//! signals reach the guest, exit statuses and stdio pass through, `exec` starts a new
//! guest process in the running VM, and limits hold. Root and KVM only; what is missing
//! skips loudly, or fails under `HSB_REQUIRE_FEATURES=1`.

#[path = "oci_common/engines.rs"]
mod engines;
mod oci_common;

use engines::*;
use oci_common::{assert_in_cgroup, is_root, require, text};
use std::process::Command;

/// The VM's kernel release, as the VMM answers `uname`.
const GUEST_RELEASE: &str = "hsb-microvm";

fn microvm_runtime() -> std::path::PathBuf {
    oci_common::runtime_dir().join("hsb-oci-microvm")
}

fn ready(engine: &str) -> bool {
    if !(require(is_root(), "the OCI engine tests need root")
        && require(
            oci_common::have(engine),
            &format!("{engine} is not installed (scripts/install-deps.sh)"),
        ))
    {
        return false;
    }
    let root = oci_common::TempDir::new("probe-root");
    oci_common::microvm_ready(root.path())
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn podman() -> Podman {
    let img = Image::new();
    let p = Podman::new(&microvm_runtime());
    p.import(&img);
    p
}

#[test]
fn podman_runs_the_container_in_a_microvm() {
    if !ready("podman") {
        return;
    }
    let p = podman();
    let o = p.run(&[
        "run",
        "--rm",
        IMAGE_REF,
        "sh",
        "-c",
        "uname -r; echo err >&2; ps | wc -l >/dev/null; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(
        stdout(&o).contains(GUEST_RELEASE),
        "not a guest of the micro-VM: {}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("err"),
        "{}",
        text(&o)
    );
    // A container process killed by a signal: 128+N, as with runc.
    let o = p.run(&["run", "--rm", IMAGE_REF, "sh", "-c", "kill -9 $$"]);
    assert_eq!(o.status.code(), Some(137), "{}", text(&o));
}

/// A port the engine publishes reaches a server in the VM: the guest's listener gets
/// its twin in the engine's network namespace (a relay of the VMM process), and a
/// connection from the guest beyond the VM is made there too.
#[test]
fn podman_published_port_reaches_the_vm() {
    if !ready("podman") {
        return;
    }
    let p = podman();
    let port = free_port();
    let o = p.run(&[
        "run",
        "-d",
        "--name",
        "vmweb",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        IMAGE_REF,
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/www",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let mut got = None;
    let served = eventually(30, || {
        got = http_get(port);
        got.as_deref().is_some_and(|r| r.contains("served by hsb"))
    });
    // From inside the VM, out through the engine's namespace: a host server at the
    // engine's bridge gateway receives what the guest sends.
    let gateway = String::from_utf8_lossy(
        &p.run(&["inspect", "-f", "{{.NetworkSettings.Gateway}}", "vmweb"])
            .stdout,
    )
    .trim()
    .to_string();
    let host = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let hp = host.local_addr().unwrap().port();
    let got_out = std::thread::spawn(move || {
        use std::io::Read;
        let (mut c, from) = host.accept().ok()?;
        let mut b = String::new();
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .ok()?;
        let _ = c.read_to_string(&mut b);
        Some((b, from))
    });
    // And UDP (busybox's TFTP client): a host server gets the guest's request and its
    // one-block answer reaches the guest.
    let udp = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let up = udp.local_addr().unwrap().port();
    let echoed = std::thread::spawn(move || {
        udp.set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .ok()?;
        let mut b = [0u8; 512];
        let (n, from) = udp.recv_from(&mut b).ok()?;
        // DATA, block 1, fewer than 512 bytes: the whole file.
        let mut reply = vec![0, 3, 0, 1];
        reply.extend_from_slice(b"udp-answer-to-the-vm\n");
        udp.send_to(&reply, from).ok()?;
        let _ = udp.recv_from(&mut [0u8; 16]); // the ACK
        Some(String::from_utf8_lossy(&b[..n]).to_string())
    });
    let inside = p.run(&[
        "exec",
        "vmweb",
        "sh",
        "-c",
        &format!(
            "echo from-the-vm | nc -w 5 {gateway} {hp}; echo nc=$?; \
             tftp -g -r udp-from-the-vm -l /tmp/got {gateway} {up}; cat /tmp/got"
        ),
    ]);
    let _ = p.run(&["rm", "-f", "-t", "0", "vmweb"]);
    assert!(served, "nothing served on 127.0.0.1:{port}: {got:?}");
    if gateway.is_empty() {
        eprintln!("SKIPPED the outward half: the engine's network has no gateway");
        return;
    }
    let out = got_out.join().unwrap();
    assert!(
        out.as_ref().is_some_and(|(b, _)| b.contains("from-the-vm")),
        "{out:?}: {}",
        text(&inside)
    );
    let got = echoed.join().unwrap();
    assert!(
        got.as_deref()
            .is_some_and(|b| b.contains("udp-from-the-vm")),
        "{got:?}: {}",
        text(&inside)
    );
    assert!(
        stdout(&inside).contains("udp-answer-to-the-vm"),
        "{}",
        text(&inside)
    );
}

#[test]
fn podman_exec_into_the_vm_and_stop_escalates() {
    if !ready("podman") {
        return;
    }
    let p = podman();
    let o = p.run(&[
        "run",
        "-d",
        "--name",
        "vm-stubborn",
        IMAGE_REF,
        "sh",
        "-c",
        "trap '' TERM; echo started >/tmp/started; while :; do sleep 1; done",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // exec is a new guest process of the same VM: it sees the file the first wrote.
    let mut seen = String::new();
    let ok = eventually(15, || {
        let o = p.run(&[
            "exec",
            "vm-stubborn",
            "sh",
            "-c",
            "cat /tmp/started; uname -r; exit 5",
        ]);
        seen = text(&o);
        o.status.code() == Some(5) && stdout(&o).starts_with("started\n")
    });
    assert!(ok, "{seen}");
    assert!(seen.contains(GUEST_RELEASE), "{seen}");
    // `podman cp` goes through /proc/PID/root of the pid in the state: the guest's
    // files are not there, and it must not reach the host's root (it wrote there).
    let dir = tempfile::tempdir().unwrap();
    let name = format!("hsb-vm-cp-{}", std::process::id());
    std::fs::write(dir.path().join("in.txt"), "x\n").unwrap();
    let into = format!("vm-stubborn:/tmp/{name}");
    let o = p.run(&["cp", dir.path().join("in.txt").to_str().unwrap(), &into]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        !std::path::Path::new("/tmp").join(&name).exists(),
        "podman cp wrote to the host's /tmp"
    );
    // SIGTERM is ignored by the guest's shell: stop escalates to SIGKILL.
    let o = p.run(&["stop", "-t", "1", "vm-stubborn"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = p.run(&["inspect", "--format", "{{.State.ExitCode}}", "vm-stubborn"]);
    assert_eq!(stdout(&o).trim(), "137", "{}", text(&o));
    let _ = p.run(&["rm", "-f", "vm-stubborn"]);
}

#[test]
fn podman_memory_and_pids_limits_hold_in_the_vm() {
    if !ready("podman") {
        return;
    }
    let p = podman();
    // Forks past --pids-limit fail inside the guest; under a larger limit they fit.
    let forks = "for i in $(seq 40); do sleep 5 & done; echo forked";
    let o = p.run(&[
        "run",
        "--rm",
        "--pids-limit",
        "100",
        IMAGE_REF,
        "sh",
        "-c",
        forks,
    ]);
    assert!(
        o.status.success() && stdout(&o).contains("forked"),
        "{}",
        text(&o)
    );
    let o = p.run(&[
        "run",
        "--rm",
        "--pids-limit",
        "16",
        IMAGE_REF,
        "sh",
        "-c",
        forks,
    ]);
    let t = text(&o);
    assert!(
        t.contains("can't fork") || !o.status.success(),
        "40 processes under --pids-limit 16: {t}"
    );
    // Guest memory is the limit: a hog cannot pass it.
    let o = p.run(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        IMAGE_REF,
        "sh",
        "-c",
        "dd if=/dev/zero bs=1M count=256 | tr '\\0' x | sort >/dev/null; echo survived",
    ]);
    // The hog (not the VM, not the engine) is what the memory limit kills.
    assert!(
        o.status.code() == Some(137) || String::from_utf8_lossy(&o.stderr).contains("Killed"),
        "256 MiB sorted under --memory 64m: {}",
        text(&o)
    );
}

/// `podman run -t` and `podman exec -t` in micro-VM isolation: the engine's terminal
/// (a host pty through `--console-socket`, relayed raw) reaches the guest's own
/// terminal, the VMM's line discipline; the caller's size reaches it, and so does the
/// engine's resize of an exec's terminal.
#[test]
fn podman_terminal_in_the_vm() {
    if !ready("podman") || !require(oci_common::have("script"), "script(1) is missing") {
        return;
    }
    let p = podman();
    let mut line = format!("CONTAINERS_CONF={} podman", p.conf().display());
    for f in p.flags() {
        line.push(' ');
        line.push_str(&f);
    }
    // Podman sends the caller's size once it attached, which may be after the shell
    // started (under load): the size is waited for (a resize reaching the guest).
    let run = format!(
        " run --rm -t {IMAGE_REF} sh -c 'tty; uname -r; for i in $(seq 100); do s=$(stty size); \
         [ \"$s\" = \"30 100\" ] && break; sleep 0.05; done; echo $s; test -t 0 && echo stdin-is-a-tty'"
    );
    let o = output_within(
        Command::new("script").args([
            "-qec",
            &format!("stty cols 100 rows 30; {line}{run}"),
            "/dev/null",
        ]),
        90,
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.contains("/dev/pts/0"), "no terminal: {}", text(&o));
    assert!(out.contains(GUEST_RELEASE), "not in the VM: {}", text(&o));
    assert!(
        out.contains("30 100"),
        "the caller's size did not reach the guest: {}",
        text(&o)
    );
    assert!(out.contains("stdin-is-a-tty"), "{}", text(&o));
    // `exec -t` into the running VM: a terminal of its own (the next number), the
    // caller's size, which the engine may set after the shell started (waited for).
    let o = p.run(&[
        "run",
        "-d",
        "--name",
        "vm-tty-bg",
        IMAGE_REF,
        "sleep",
        "1000",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let exec = " exec -t vm-tty-bg sh -c 'tty; uname -r; for i in $(seq 100); do s=$(stty size); \
                [ \"$s\" = \"20 90\" ] && break; sleep 0.05; done; echo $s; test -t 0 && echo stdin-is-a-tty'";
    let o = output_within(
        Command::new("script").args([
            "-qec",
            &format!("stty cols 90 rows 20; {line}{exec}"),
            "/dev/null",
        ]),
        90,
    );
    let _ = p.run(&["rm", "-f", "-t", "0", "vm-tty-bg"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.contains("/dev/pts/"),
        "no terminal in exec -t: {}",
        text(&o)
    );
    assert!(
        out.contains(GUEST_RELEASE),
        "exec -t not in the VM: {}",
        text(&o)
    );
    assert!(out.contains("20 90"), "exec -t size: {}", text(&o));
    assert!(out.contains("stdin-is-a-tty"), "{}", text(&o));
}

/// containerd (`ctr run --runc-binary hsb-oci-microvm`) with its own default spec (a
/// tmpfs at /run, honoured in the guest): output, status, and `ctr task exec` into the
/// running VM.
#[test]
fn containerd_runs_the_container_in_a_microvm() {
    if !ready("containerd") || !require(oci_common::have("ctr"), "ctr is missing") {
        return;
    }
    let img = Image::new();
    let d = Daemon::containerd();
    let rt = microvm_runtime();
    let runc_root = d.dir.path().join("runtime");
    let fifos = d.dir.path().join("fifo");
    let o = output_within(
        d.ctr().args(["images", "import"]).arg(img.docker_archive()),
        60,
    );
    assert!(o.status.success(), "ctr images import: {}", text(&o));
    let ctr_run = |extra: &[&str], id: &str, cmd: &[&str]| {
        let mut c = d.ctr();
        c.args(["run", "--runc-binary"])
            .arg(&rt)
            .arg("--runc-root")
            .arg(&runc_root)
            .arg("--fifo-dir")
            .arg(&fifos)
            .args(extra)
            .arg(IMAGE_REF)
            .arg(id)
            .args(cmd);
        output_within(&mut c, 90)
    };
    let o = ctr_run(
        &["--rm"],
        "vm-shell",
        &[
            "sh",
            "-c",
            "uname -r; grep -c ' /run ' /proc/mounts; echo x > /run/f && cat /run/f; exit 3",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        out.contains(GUEST_RELEASE) && out.ends_with("x\n"),
        "{}",
        text(&o)
    );
    let o = ctr_run(
        &["-d"],
        "vm-bg",
        &["sh", "-c", "echo up >/tmp/up; sleep 1000"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let mut seen = String::new();
    let ok = eventually(15, || {
        let o = output_within(
            d.ctr().args([
                "task",
                "exec",
                "--exec-id",
                "e1",
                "vm-bg",
                "sh",
                "-c",
                "cat /tmp/up; exit 5",
            ]),
            60,
        );
        seen = text(&o);
        o.status.code() == Some(5) && stdout(&o) == "up\n"
    });
    assert!(ok, "{seen}");
    let _ = output_within(d.ctr().args(["task", "kill", "-s", "KILL", "vm-bg"]), 30);
    let _ = eventually(10, || {
        output_within(d.ctr().args(["task", "delete", "vm-bg"]), 30)
            .status
            .success()
    });
    let _ = output_within(d.ctr().args(["containers", "delete", "vm-bg"]), 30);
}

/// Docker with `hsb-oci-microvm` as a runtime: output and status, with Docker's network
/// hook run for `--network none` (the hook finds the supervisor's own namespace, never
/// the host's: see `oci_runtime`'s hooks test), then a bridge network of Docker's own,
/// which the guest's sockets use through that namespace.
#[test]
fn docker_runs_the_container_in_a_microvm() {
    if !ready("dockerd") || !require(oci_common::have("docker"), "docker is missing") {
        return;
    }
    let img = Image::new();
    let d = Daemon::dockerd(&microvm_runtime());
    d.docker_import(&img);
    let o = output_within(
        d.docker().args([
            "run",
            "--rm",
            "--runtime",
            "hsb",
            "--network",
            "none",
            IMAGE_REF,
            "sh",
            "-c",
            "uname -r; echo err >&2; exit 4",
        ]),
        90,
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(stdout(&o).contains(GUEST_RELEASE), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("err"),
        "{}",
        text(&o)
    );
    // `-t` through containerd's shim: the guest's terminal.
    d.check_run_tty().unwrap_or_else(|e| panic!("{e}"));
    // A bridge network of Docker's own (set up by its prestart hook in the namespace
    // the supervisor makes): the VM's server is reached at the container's address
    // and through the published port.
    let docker = |args: &[&str]| output_within(d.docker().args(args), 90);
    let o = docker(&["network", "create", "--driver", "bridge", "hsbvmnet"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = docker(&[
        "run",
        "-d",
        "--runtime",
        "hsb",
        "--network",
        "hsbvmnet",
        "-p",
        "127.0.0.1::8080",
        "--name",
        "vmweb",
        IMAGE_REF,
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/www",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // The pid Docker was given shows the VM's network namespace (the one Docker set
    // up) and IPC and UTS namespaces that are not the host's: a container joining
    // them by that pid never gets the host's.
    let o = docker(&[
        "inspect",
        "--format",
        "{{.State.Pid}} {{.NetworkSettings.SandboxKey}}",
        "vmweb",
    ]);
    let (pid, key) = stdout(&o)
        .trim()
        .split_once(' ')
        .map(|(p, k)| (p.to_string(), k.to_string()))
        .unwrap_or_else(|| panic!("docker inspect: {}", text(&o)));
    let ino = |p: &str| {
        std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(p).unwrap_or_else(|e| panic!("{p}: {e}")),
        )
    };
    assert_eq!(
        ino(&format!("/proc/{pid}/ns/net")),
        ino(&key),
        "{}",
        text(&o)
    );
    for ns in ["net", "ipc", "uts"] {
        assert_ne!(
            ino(&format!("/proc/{pid}/ns/{ns}")),
            ino(&format!("/proc/self/ns/{ns}")),
            "the {ns} namespace of {pid} is the host's"
        );
    }
    // Docker's statistics come from the cgroups of that pid: the container's
    // cgroupsPath (/docker/ID), which holds the VM, its memory and its threads.
    let id = stdout(&docker(&["inspect", "--format", "{{.Id}}", "vmweb"]))
        .trim()
        .to_string();
    let cgroups = assert_in_cgroup(pid.parse().unwrap(), &format!("/docker/{id}"));
    // What the VM uses, not the host's whole memory.
    let (pids, mib, o) = d.stats("vmweb");
    assert!(pids >= 1 && mib >= 1.0, "docker stats: {}", text(&o));
    if let Err(e) = d.check_served_and_remove("hsbvmnet", "vmweb") {
        panic!("the VM's server: {e}");
    }
    for d in &cgroups {
        assert!(!d.exists(), "{} left after docker rm", d.display());
    }
}

/// In the VM too, Docker's /dev/shm is an in-memory filesystem of its own, with
/// Docker's 64 MiB: 32 MiB fit, 64 more do not, and /tmp does not hold them. Its
/// supplementary groups (`--group-add`), which the VM's processes cannot have, are
/// refused naming `process.user.additionalGids` and the gid.
#[test]
fn docker_dev_shm_and_group_add_in_a_microvm() {
    if !ready("dockerd") || !require(oci_common::have("docker"), "docker is missing") {
        return;
    }
    let img = Image::new();
    let d = Daemon::dockerd(&microvm_runtime());
    d.docker_import(&img);
    let run = |args: &[&str]| {
        let mut c = d.docker();
        c.args(["run", "--rm", "--runtime", "hsb", "--network", "none"]);
        output_within(c.args(args), 90)
    };
    let o = run(&[
        IMAGE_REF,
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/shm/a bs=1048576 count=32 2>/dev/null; echo a=$?; \
         dd if=/dev/zero of=/dev/shm/b bs=1048576 count=64 2>/dev/null; echo b=$?; \
         ls /tmp; echo tmp-listed",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("a=0\n"), "32 MiB did not fit: {}", text(&o));
    assert!(
        out.contains("b=1\n"),
        "96 MiB fit a 64 MiB /dev/shm: {}",
        text(&o)
    );
    let listing = out.split("b=1\n").nth(1).unwrap_or("");
    assert!(
        listing.ends_with("tmp-listed\n") && !listing.lines().any(|l| l == "a" || l == "b"),
        "/dev/shm's files are in /tmp: {}",
        text(&o)
    );
    let o = run(&["--group-add", "1234", IMAGE_REF, "id", "-G"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("process.user.additionalGids") && err.contains("1234"),
        "{}",
        text(&o)
    );
}

/// `podman run -v SRC:DST:ro,noexec` into a micro-VM, as `podman_noexec_bind_mount`
/// in a container: a program on that bind mount cannot be run (Permission denied,
/// 126), the guest's /proc/mounts shows `noexec`, and the same mount without `noexec`
/// runs it.
#[test]
fn podman_noexec_bind_mount_in_a_microvm() {
    if !ready("podman") {
        return;
    }
    let p = podman();
    let host = oci_common::TempDir::new("noexec-vm");
    // Named as the applet it runs (busybox picks it by its name).
    std::fs::copy("/bin/busybox", host.path().join("true")).unwrap();
    let run = |opts: &str| {
        let volume = format!("{}:/code:{opts}", host.path().display());
        p.run(&[
            "run",
            "--rm",
            "-v",
            &volume,
            IMAGE_REF,
            "sh",
            "-c",
            "uname -r; grep ' /code ' /proc/mounts; /code/true; echo exec=$?",
        ])
    };
    let o = run("ro,noexec");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        out.contains(GUEST_RELEASE),
        "not in the micro-VM: {}",
        text(&o)
    );
    let line = out
        .lines()
        .find(|l| l.contains(" /code "))
        .unwrap_or_else(|| panic!("no mount at /code: {}", text(&o)));
    assert!(line.split([' ', ',']).any(|w| w == "noexec"), "{line}");
    assert!(
        out.contains("exec=126"),
        "a program ran from a noexec bind mount: {}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied")
            || out.contains("Permission denied"),
        "{}",
        text(&o)
    );
    let o = run("ro");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("exec=0"), "{}", text(&o));
}
