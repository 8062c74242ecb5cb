//! Real container engines run their containers through hsb's OCI runtime
//! (`hsb-oci-container`): Podman, containerd (`ctr`) and Docker, each with storage and
//! daemons of the test's own in a temporary directory, an image built here from a
//! static busybox (no registry). Root only; a missing engine or non-root skips loudly,
//! or fails under `HSB_REQUIRE_FEATURES=1`.

#[path = "oci_common/engines.rs"]
mod engines;
mod oci_common;

use engines::*;
use oci_common::{assert_in_cgroup, is_root, require, text};
use std::path::Path;
use std::process::Command;

fn ready(engine: &str) -> bool {
    require(is_root(), "the OCI engine tests need root")
        && require(
            oci_common::have(engine),
            &format!("{engine} is not installed (scripts/install-deps.sh)"),
        )
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Podman's state of a container, through `inspect --format`.
fn podman_inspect(p: &Podman, name: &str, fmt: &str) -> String {
    let o = p.run(&["inspect", "--format", fmt, name]);
    assert!(o.status.success(), "podman inspect: {}", text(&o));
    stdout(&o).trim().to_string()
}

/// A dockerd of the test's own with `hsb` as a runtime and the test image imported;
/// `None` (skipped) without root or Docker.
fn docker_ready() -> Option<(Image, Daemon)> {
    if !ready("dockerd") || !require(oci_common::have("docker"), "docker is missing") {
        return None;
    }
    let img = Image::new();
    let d = Daemon::dockerd(&container_runtime());
    d.docker_import(&img);
    Some((img, d))
}

// ---------------------------------------------------------------------------- Podman

#[test]
fn podman_shell_stdout_stderr_and_status() {
    if !ready("podman") {
        return;
    }
    let img = Image::new();
    let p = Podman::new(&container_runtime());
    p.import(&img);
    let o = p.run(&[
        "run",
        "--rm",
        "--name",
        "shell",
        IMAGE_REF,
        "sh",
        "-c",
        "echo out; echo err >&2; tr '\\0' ' ' </proc/1/cmdline; echo; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.starts_with("out\n"), "{}", text(&o));
    // The container's pid 1 is the sandbox's init, not the workload: hsb ran it.
    assert!(out.contains("hsb-init"), "not run by hsb: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("err"),
        "{}",
        text(&o)
    );
    // A program that is not there is 127, one that cannot be run 126, as with runc:
    // `create` fails in runc's words, which Podman maps.
    for (program, status) in [("/nonexistent", 127), ("nonexistent", 127), ("/tmp", 126)] {
        let o = p.run(&["run", "--rm", IMAGE_REF, program]);
        assert_eq!(o.status.code(), Some(status), "{program}: {}", text(&o));
    }
}

#[test]
fn podman_exec_and_stop_escalates_to_sigkill() {
    if !ready("podman") {
        return;
    }
    let img = Image::new();
    let p = Podman::new(&container_runtime());
    p.import(&img);
    let o = p.run(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        IMAGE_REF,
        "sh",
        "-c",
        "trap '' TERM; echo started >/tmp/started; while :; do sleep 1; done",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        podman_inspect(&p, "stubborn", "{{.State.Status}}"),
        "running"
    );
    // exec sees the container's files and processes, and exits with its own status.
    let o = p.run(&[
        "exec",
        "stubborn",
        "sh",
        "-c",
        "cat /tmp/started; ps | grep -c 'while :' ; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.starts_with("started\n"), "{}", text(&o));
    let o = p.run(&[
        "exec",
        "-e",
        "V=from-exec",
        "stubborn",
        "sh",
        "-c",
        "echo $V",
    ]);
    assert_eq!(stdout(&o), "from-exec\n", "{}", text(&o));
    // `cp` and `top` of a running container go through /proc/PID of the pid in its
    // state: the container's filesystem and processes, never the host's (they wrote
    // to the host's root and listed the host's processes).
    let dir = tempfile::tempdir().unwrap();
    let name = format!("hsb-cp-{}", std::process::id());
    std::fs::write(dir.path().join("in.txt"), "copied in\n").unwrap();
    let into = format!("stubborn:/tmp/{name}");
    let o = p.run(&["cp", dir.path().join("in.txt").to_str().unwrap(), &into]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !std::path::Path::new("/tmp").join(&name).exists(),
        "podman cp wrote to the host's /tmp"
    );
    let o = p.run(&["exec", "stubborn", "cat", &format!("/tmp/{name}")]);
    assert_eq!(stdout(&o), "copied in\n", "{}", text(&o));
    let out = dir.path().join("out");
    let o = p.run(&["cp", "stubborn:/tmp/started", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "started\n");
    let o = p.run(&["top", "stubborn", "pid", "args"]);
    assert!(o.status.success(), "{}", text(&o));
    let listed = stdout(&o);
    assert!(listed.contains("while :"), "{listed}");
    assert!(
        listed.lines().count() < 10,
        "the host's processes: {listed}"
    );
    // SIGTERM is ignored: stop escalates to SIGKILL after the timeout.
    let o = p.run(&["stop", "-t", "1", "stubborn"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        podman_inspect(&p, "stubborn", "{{.State.Status}}"),
        "exited"
    );
    assert_eq!(podman_inspect(&p, "stubborn", "{{.State.ExitCode}}"), "137");
}

#[test]
fn podman_pids_and_memory_limits_are_enforced() {
    if !ready("podman") {
        return;
    }
    let img = Image::new();
    let p = Podman::new(&container_runtime());
    p.import(&img);
    let forks = "for i in $(seq 40); do sleep 20 & done; echo forked";
    // Control: 40 processes fit under a limit of 100.
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
    assert!(o.status.success(), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("can't fork"));
    // Under 16, fork fails.
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
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("can't fork"),
        "fork did not fail past --pids-limit 16: {}",
        text(&o)
    );
    // A 100 MB line held by sort: fine without a limit, killed under --memory 32m.
    let hog = "head -c 100000000 /dev/zero | sort >/dev/null; echo status $?";
    let o = p.run(&["run", "--rm", IMAGE_REF, "sh", "-c", hog]);
    assert_eq!(stdout(&o), "status 0\n", "{}", text(&o));
    let o = p.run(&[
        "run",
        "--rm",
        "--memory",
        "32m",
        "--memory-swap",
        "32m",
        IMAGE_REF,
        "sh",
        "-c",
        hog,
    ]);
    // The kernel's OOM killer picks its victim: sort (the shell reports 137), or the
    // container's shell too, when the whole container ends with 137.
    assert!(
        stdout(&o) == "status 137\n" || (stdout(&o).is_empty() && o.status.code() == Some(137)),
        "the memory hog was not killed under --memory 32m: {}",
        text(&o)
    );
}

#[test]
fn podman_terminal() {
    if !ready("podman") || !require(oci_common::have("script"), "script(1) is missing") {
        return;
    }
    let img = Image::new();
    let p = Podman::new(&container_runtime());
    p.import(&img);
    let mut line = format!("CONTAINERS_CONF={} podman", p.conf().display());
    for f in p.flags() {
        line.push(' ');
        line.push_str(&f);
    }
    line.push_str(&format!(
        " run --rm -t {IMAGE_REF} sh -c 'tty; stty size; test -t 0 && echo stdin-is-a-tty'"
    ));
    let o = output_within(
        Command::new("script").args([
            "-qec",
            &format!("stty cols 100 rows 30; {line}"),
            "/dev/null",
        ]),
        90,
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.contains("/dev/pts/"), "no terminal: {}", text(&o));
    assert!(
        out.contains("30 100"),
        "the caller's size did not reach the container: {}",
        text(&o)
    );
    assert!(out.contains("stdin-is-a-tty"), "{}", text(&o));
    // `exec -t` into a running container: its own terminal, the caller's size.
    let o = p.run(&["run", "-d", "--name", "tty-bg", IMAGE_REF, "sleep", "1000"]);
    assert!(o.status.success(), "{}", text(&o));
    // The engine sizes the exec's terminal once it has it, which may be after the
    // shell started: the size is waited for (a resize reaching the exec), not raced.
    let exec_line = line.replace(
        &format!(" run --rm -t {IMAGE_REF} sh -c 'tty; stty size; "),
        " exec -t tty-bg sh -c 'tty; for i in $(seq 100); do s=$(stty size); [ \"$s\" = \"20 90\" ] && break; sleep 0.05; done; echo $s; ",
    );
    assert_ne!(exec_line, line);
    let o = output_within(
        Command::new("script").args([
            "-qec",
            &format!("stty cols 90 rows 20; {exec_line}"),
            "/dev/null",
        ]),
        90,
    );
    let _ = p.run(&["rm", "-f", "tty-bg"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.contains("/dev/pts/"),
        "no terminal in exec -t: {}",
        text(&o)
    );
    assert!(out.contains("20 90"), "exec -t size: {}", text(&o));
    assert!(out.contains("stdin-is-a-tty"), "{}", text(&o));
}

#[test]
fn podman_published_port() {
    if !ready("podman") {
        return;
    }
    let img = Image::new();
    let p = Podman::new(&container_runtime());
    p.import(&img);
    let port = free_port();
    let o = p.run(&[
        "run",
        "-d",
        "--name",
        "web",
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
    let served = eventually(20, || {
        got = http_get(port);
        got.as_deref().is_some_and(|r| r.contains("served by hsb"))
    });
    assert!(served, "nothing served on 127.0.0.1:{port}: {got:?}");
    let o = p.run(&["rm", "-f", "-t", "0", "web"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn podman_conmon_killed_leaves_no_supervisor_or_init() {
    if !ready("podman") {
        return;
    }
    let img = Image::new();
    let p = Podman::new(&container_runtime());
    p.import(&img);
    let o = p.run(&["run", "-d", "--name", "orphan", IMAGE_REF, "sleep", "1000"]);
    assert!(o.status.success(), "{}", text(&o));
    let id = stdout(&o).trim().to_string();
    let pid: i32 = podman_inspect(&p, "orphan", "{{.State.Pid}}")
        .parse()
        .unwrap();
    let conmon: i32 = podman_inspect(&p, "orphan", "{{.State.ConmonPid}}")
        .parse()
        .unwrap();
    assert!(cmdline(conmon).contains("conmon"), "{}", cmdline(conmon));
    assert!(
        cmdline(pid).contains("_supervise"),
        "the engine's container pid is not hsb's supervisor: {}",
        cmdline(pid)
    );
    let tree = process_tree(pid);
    assert!(
        tree.iter()
            .any(|(q, _)| cmdline(*q).starts_with("hsb-init")),
        "no sandbox init under the supervisor: {tree:?}"
    );
    let cgroups = oci_common::assert_in_cgroup(pid, &format!("/libpod_parent/libpod-{id}"));
    // SAFETY: kill(2) has no memory preconditions; conmon's pid was just read.
    assert_eq!(unsafe { libc::kill(conmon, libc::SIGKILL) }, 0);
    let gone = eventually(15, || still_alive(&tree).is_empty());
    assert!(
        gone,
        "left after conmon was killed: {:?}",
        still_alive(&tree)
            .iter()
            .map(|q| (q, cmdline(*q)))
            .collect::<Vec<_>>()
    );
    let left: Vec<_> = oci_common::processes_with(&id)
        .into_iter()
        .filter(|q| cmdline(*q).contains("_supervise"))
        .collect();
    assert!(left.is_empty(), "supervisors left: {left:?}");
    // The supervisor died with conmon (SIGKILL) and could not remove the cgroup it
    // joined; the runtime's next `create` in that state root does.
    let o = p.run(&["run", "--rm", IMAGE_REF, "true"]);
    assert!(o.status.success(), "{}", text(&o));
    for d in &cgroups {
        assert!(!d.exists(), "{} left after conmon was killed", d.display());
    }
}

// ------------------------------------------------------------------------- containerd

#[test]
fn containerd_ctr_run_exec_and_shim_killed() {
    if !ready("containerd") || !require(oci_common::have("ctr"), "ctr is missing") {
        return;
    }
    let img = Image::new();
    let d = Daemon::containerd();
    let rt = container_runtime();
    let runc_root = d.dir.path().join("runtime");
    let fifos = d.dir.path().join("fifo");
    let o = output_within(
        d.ctr().args(["images", "import"]).arg(img.docker_archive()),
        60,
    );
    assert!(o.status.success(), "ctr images import: {}", text(&o));
    // ctr's default spec (the CRI plugin's is alike): a tmpfs at /run, its size and
    // mode honoured, the image's own root.
    let o = output_within(
        d.ctr()
            .args(["run", "--rm", "--runc-binary"])
            .arg(&rt)
            .arg("--runc-root")
            .arg(&runc_root)
            .arg("--fifo-dir")
            .arg(&fifos)
            .args([
                IMAGE_REF,
                "default-spec",
                "sh",
                "-c",
                "grep ' /run ' /proc/mounts; echo x > /run/f && cat /run/f",
            ]),
        60,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        out.contains(" /run tmpfs ") && out.contains("size=65536k") && out.ends_with("x\n"),
        "{}",
        text(&o)
    );
    // A spec of the test's own (runc's defaults; `ctr run --config` then takes no
    // image: the root is the image's root filesystem as a directory).
    let spec = oci_common::TempDir::new("ctr-spec");
    oci_common::bundle(spec.path(), &["sh"]);
    let rootfs = spec.path().join("rootfs");
    let run = |extra: &[&str], id: &str, cmd: &[&str]| {
        oci_common::edit_config(spec.path(), |v| {
            v["process"]["args"] = serde_json::json!(cmd);
            v["root"]["path"] = serde_json::json!(rootfs);
        });
        let mut c = d.ctr();
        c.args(["run", "--runc-binary"])
            .arg(&rt)
            .arg("--runc-root")
            .arg(&runc_root)
            .arg("--fifo-dir")
            .arg(&fifos)
            .arg("--config")
            .arg(spec.path().join("config.json"))
            .args(extra)
            .arg(id);
        output_within(&mut c, 60)
    };
    let o = run(
        &["--rm"],
        "shell",
        &[
            "sh",
            "-c",
            "echo out; tr '\\0' ' ' </proc/1/cmdline; echo; exit 7",
        ],
    );
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(stdout(&o).starts_with("out\n"), "{}", text(&o));
    assert!(
        stdout(&o).contains("hsb-init"),
        "not run by hsb: {}",
        text(&o)
    );
    // A detached container, an exec into it, then its shim killed.
    let o = run(&["-d"], "bg", &["sh", "-c", "echo up >/tmp/up; sleep 1000"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = output_within(
        d.ctr().args([
            "task",
            "exec",
            "--exec-id",
            "e1",
            "bg",
            "sh",
            "-c",
            "cat /tmp/up; exit 5",
        ]),
        60,
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert_eq!(stdout(&o), "up\n", "{}", text(&o));
    let o = output_within(d.ctr().args(["task", "ls"]), 30);
    let pid: i32 = stdout(&o)
        .lines()
        .find(|l| l.starts_with("bg "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no task bg: {}", text(&o)));
    assert!(cmdline(pid).contains("_supervise"), "{}", cmdline(pid));
    let tree = process_tree(pid);
    let shim = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("PPid:")
                .map(|p| p.trim().parse::<i32>().unwrap())
        })
        .unwrap();
    assert!(
        cmdline(shim).contains("containerd-shim"),
        "{}",
        cmdline(shim)
    );
    // SAFETY: kill(2) has no memory preconditions; the shim's pid was just read.
    assert_eq!(unsafe { libc::kill(shim, libc::SIGKILL) }, 0);
    let gone = eventually(15, || still_alive(&tree).is_empty());
    assert!(
        gone,
        "left after the shim was killed: {:?}",
        still_alive(&tree)
    );
}

// ----------------------------------------------------------------------------- Docker

#[test]
fn docker_run_exec_stop_and_default_network() {
    let Some((_img, d)) = docker_ready() else {
        return;
    };
    let docker = |args: &[&str]| output_within(d.docker().args(args), 60);
    // The host's network namespace is given by path: hsb joins it.
    let o = docker(&[
        "run",
        "--rm",
        "--runtime",
        "hsb",
        "--network",
        "host",
        IMAGE_REF,
        "sh",
        "-c",
        "echo out; tr '\\0' ' ' </proc/1/cmdline; echo; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(stdout(&o).starts_with("out\n"), "{}", text(&o));
    assert!(
        stdout(&o).contains("hsb-init"),
        "not run by hsb: {}",
        text(&o)
    );
    // A program that is not there is 127, one that cannot be run 126, as with runc
    // (`create` fails in runc's words, which dockerd maps); no shim is left behind.
    for (program, status) in [("/nonexistent", 127), ("nonexistent", 127), ("/tmp", 126)] {
        let o = docker(&[
            "run",
            "--rm",
            "--runtime",
            "hsb",
            "--network",
            "none",
            IMAGE_REF,
            program,
        ]);
        assert_eq!(o.status.code(), Some(status), "{program}: {}", text(&o));
    }
    let o = docker(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "--runtime",
        "hsb",
        "--network",
        "host",
        "--ipc",
        "shareable",
        IMAGE_REF,
        "sh",
        "-c",
        "trap '' TERM; echo up >/tmp/up; while :; do sleep 1; done",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = docker(&["exec", "stubborn", "sh", "-c", "cat /tmp/up; exit 5"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert_eq!(stdout(&o), "up\n", "{}", text(&o));
    // `-t` (containerd's shim takes the terminal only once the runtime's output pipe
    // is closed: nothing hsb leaves running may hold it).
    let o = docker(&[
        "exec",
        "-t",
        "stubborn",
        "sh",
        "-c",
        "test -t 1 && echo tty",
    ]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "tty\r\n"),
        "{}",
        text(&o)
    );
    d.check_run_tty().unwrap_or_else(|e| panic!("{e}"));
    // `--ipc container:stubborn`: Docker joins it through /proc/PID/ns/ipc of the
    // pid hsb gave, which names the container's own IPC namespace (not the host's).
    let o = docker(&[
        "exec",
        "stubborn",
        "busybox",
        "readlink",
        "/proc/self/ns/ipc",
    ]);
    let ipc = stdout(&o).trim().to_string();
    assert!(ipc.starts_with("ipc:["), "{}", text(&o));
    assert_ne!(
        Path::new(&ipc),
        std::fs::read_link("/proc/self/ns/ipc").unwrap()
    );
    let o = docker(&[
        "run",
        "--rm",
        "--runtime",
        "hsb",
        "--network",
        "none",
        "--ipc",
        "container:stubborn",
        IMAGE_REF,
        "busybox",
        "readlink",
        "/proc/self/ns/ipc",
    ]);
    assert_eq!(
        (o.status.code(), stdout(&o).trim()),
        (Some(0), &ipc[..]),
        "{}",
        text(&o)
    );
    // `docker update` reaches the running container (containerd's shim calls the
    // runtime's `update --resources -`): a pids limit lowered stops forks, raised
    // lets them through.
    let forks = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done; wait";
    let o = docker(&["update", "--pids-limit", "5", "stubborn"]);
    assert!(o.status.success(), "docker update: {}", text(&o));
    let o = docker(&["exec", "stubborn", "sh", "-c", forks]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("fork"),
        "10 children under pids 5: {}",
        text(&o)
    );
    let o = docker(&["update", "--pids-limit", "100", "stubborn"]);
    assert!(o.status.success(), "docker update: {}", text(&o));
    let o = docker(&["exec", "stubborn", "sh", "-c", forks]);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "under pids 100: {}",
        text(&o)
    );
    // Docker reads a container's statistics from the cgroups of the pid it was given:
    // that pid is in the container's cgroupsPath (/docker/ID, the cgroupfs driver's),
    // of which `docker rm` leaves nothing.
    let o = docker(&["inspect", "--format", "{{.State.Pid}} {{.Id}}", "stubborn"]);
    let (pid, id) = stdout(&o)
        .trim()
        .split_once(' ')
        .map(|(p, i)| (p.parse::<i32>().unwrap(), i.to_string()))
        .unwrap_or_else(|| panic!("docker inspect: {}", text(&o)));
    let cgroups = assert_in_cgroup(pid, &format!("/docker/{id}"));
    // The container's own processes are inside it too (hsb's cgroup for the sandbox is
    // made there), so `docker stats` counts what they hold: busybox `tail -c` keeps 60
    // MB it read, blocked writing them to a `sleep` that never reads.
    assert_processes_inside(pid, &format!("/docker/{id}"));
    let o = docker(&[
        "exec",
        "-d",
        "stubborn",
        "sh",
        "-c",
        "head -c 60000000 /dev/zero | tail -c 60000000 | sleep 600",
    ]);
    assert!(o.status.success(), "docker exec -d: {}", text(&o));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (pids, mib, o) = d.stats("stubborn");
        if pids >= 3 && mib >= 50.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "docker stats does not count the container's processes (a shell holding 60 MB): {}",
            text(&o)
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let o = docker(&["stop", "-t", "1", "stubborn"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = docker(&["inspect", "--format", "{{.State.ExitCode}}", "stubborn"]);
    assert_eq!(stdout(&o).trim(), "137", "{}", text(&o));
    let o = docker(&["rm", "stubborn"]);
    assert!(o.status.success(), "{}", text(&o));
    for d in &cgroups {
        assert!(!d.exists(), "{} left after docker rm", d.display());
    }
    // `--cpuset-cpus`: set on the container's cgroup, which its processes inherit.
    if oci_common::cpu_sets_here() {
        let o = docker(&[
            "run",
            "--rm",
            "--runtime",
            "hsb",
            "--network",
            "none",
            "--cpuset-cpus",
            "1",
            IMAGE_REF,
            "grep",
            "Cpus_allowed_list",
            "/proc/self/status",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_eq!(
            stdout(&o).split_whitespace().nth(1),
            Some("1"),
            "{}",
            text(&o)
        );
    }
    // Docker's own networks are set up by a prestart hook (libnetwork-setkey), which
    // hsb runs: `--network none` leaves the container only its loopback...
    let o = docker(&[
        "run",
        "--rm",
        "--runtime",
        "hsb",
        "--network",
        "none",
        IMAGE_REF,
        "cat",
        "/proc/net/dev",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let devs = stdout(&o);
    assert!(devs.contains("lo:") && !devs.contains("eth0"), "{devs}");
    // ...and a bridge network of Docker's own gives it an address the host reaches.
    let o = docker(&["network", "create", "--driver", "bridge", "hsbtestnet"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = docker(&[
        "run",
        "-d",
        "--runtime",
        "hsb",
        "--network",
        "hsbtestnet",
        "-p",
        "127.0.0.1::8080",
        "--name",
        "web",
        IMAGE_REF,
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/www",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // Published on the host's loopback by the engine (its userland proxy).
    if let Err(e) = d.check_served_and_remove("hsbtestnet", "web") {
        panic!("the container's server: {e}");
    }
}

/// `podman run --tmpfs`: the engine's tmpfs option reaches the sandbox as an
/// in-memory filesystem of that size and mode; an option hsb does not honour fails
/// `create` naming it.
#[test]
fn podman_tmpfs_mounts() {
    if !ready("podman") {
        return;
    }
    let img = Image::new();
    let p = Podman::new(&container_runtime());
    p.import(&img);
    let o = p.run(&[
        "run",
        "--rm",
        "--tmpfs",
        "/scratch:size=1m,mode=700",
        IMAGE_REF,
        "sh",
        "-c",
        "stat -c %a /scratch; grep ' /scratch ' /proc/mounts; \
         dd if=/dev/zero of=/scratch/big bs=4096 count=512 2>/dev/null; echo dd=$?",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.starts_with("700\n"), "{}", text(&o));
    assert!(out.contains("size=1024k"), "{}", text(&o));
    assert!(
        out.contains("dd=1"),
        "2 MiB fit a 1 MiB tmpfs: {}",
        text(&o)
    );
    // Podman asks for `tmpcopyup`: with files in the image at the target, hsb would
    // have to copy them in, which it does not: refused, naming the option.
    let o = p.run(&["run", "--rm", "--tmpfs", "/etc", IMAGE_REF, "true"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("`tmpcopyup`: the rootfs holds files at /etc"),
        "{}",
        text(&o)
    );
    let o = p.run(&["run", "--rm", "--tmpfs", "/scratch:ro", IMAGE_REF, "true"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("`ro` is not supported by hsb for a tmpfs mount"),
        "{}",
        text(&o)
    );
}

/// `podman run --cpus 0.25`: the engine's CPU quota holds the container to a quarter
/// of one CPU (two spinners for 1.5 s get far less than 1.5 s of CPU between them). An
/// upper bound only: a loaded machine gives less.
#[test]
fn podman_cpu_quota_is_enforced() {
    if !ready("podman") {
        return;
    }
    let img = Image::new();
    let p = Podman::new(&container_runtime());
    p.import(&img);
    let o = p.run(&[
        "run",
        "--rm",
        "--cpus",
        "0.25",
        IMAGE_REF,
        "sh",
        "-c",
        "for i in 1 2; do timeout 1.5 sh -c 'while :; do :; done' & done; wait; \
         cut -d' ' -f16,17 /proc/$$/stat",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ticks: u64 = stdout(&o)
        .split_whitespace()
        .map(|t| t.parse::<u64>().unwrap_or(0))
        .sum();
    // Clock ticks of 10 ms: two unlimited spinners would use about 300.
    assert!(
        ticks < 90,
        "{ticks} ticks of CPU under --cpus 0.25: {}",
        text(&o)
    );
}

/// A tmpfs at /tmp, where the sandbox would otherwise keep the rootfs's own: `--tmpfs
/// /tmp` with its size, mode and `noexec`, and the ones `podman run --read-only` adds
/// (/tmp among them).
#[test]
fn podman_tmpfs_at_tmp_and_read_only() {
    if !ready("podman") {
        return;
    }
    let img = Image::new();
    let p = Podman::new(&container_runtime());
    p.import(&img);
    let o = p.run(&[
        "run",
        "--rm",
        "--tmpfs",
        "/tmp:size=4m,mode=1770,noexec",
        IMAGE_REF,
        "sh",
        "-c",
        "stat -c %a /tmp; grep ' /tmp ' /proc/mounts; \
         cp /bin/busybox /tmp/bb && /tmp/bb true; echo exec=$?; \
         dd if=/dev/zero of=/tmp/big bs=4096 count=2048 2>/dev/null; echo dd=$?",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.starts_with("1770\n"), "{}", text(&o));
    let line = out
        .lines()
        .find(|l| l.contains(" /tmp tmpfs "))
        .unwrap_or_else(|| panic!("no tmpfs at /tmp: {}", text(&o)));
    for opt in ["size=4096k", "noexec", "nosuid", "nodev"] {
        assert!(line.split([' ', ',']).any(|w| w == opt), "{opt}: {line}");
    }
    assert!(
        out.contains("exec=126"),
        "a program ran from a noexec /tmp: {}",
        text(&o)
    );
    assert!(out.contains("dd=1"), "8 MiB fit a 4 MiB /tmp: {}", text(&o));
    // `--read-only`: the root cannot be written, the tmpfs at /tmp can.
    let o = p.run(&[
        "run",
        "--rm",
        "--read-only",
        IMAGE_REF,
        "sh",
        "-c",
        "grep -c ' /tmp tmpfs ' /proc/mounts; echo hi >/tmp/f && cat /tmp/f",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(stdout(&o), "1\nhi\n", "{}", text(&o));
}

/// `docker run --init`: Docker bind-mounts its docker-init, which is a symbolic link on
/// the host (/usr/bin/docker-init -> tini-static), at /sbin/docker-init and runs the
/// workload under it. A `-v` whose source is a symlink to a directory is mounted as
/// the directory it names, as runc does.
#[test]
fn docker_init_and_a_symlinked_bind_source() {
    let Some((_img, d)) = docker_ready() else {
        return;
    };
    // `docker run --rm` under hsb, without a network.
    let hsb_run = |args: &[&str]| {
        let mut c = d.docker();
        c.args(["run", "--rm", "--runtime", "hsb", "--network", "none"]);
        output_within(c.args(args), 60)
    };
    let o = hsb_run(&[
        "--init",
        IMAGE_REF,
        "sh",
        "-c",
        "tr '\\0' ' ' </proc/$PPID/cmdline; echo; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        stdout(&o).starts_with("/sbin/docker-init -- sh -c"),
        "the workload's parent is not docker-init: {}",
        text(&o)
    );
    let o = hsb_run(&["--init", IMAGE_REF, "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let host = oci_common::TempDir::new("symsrc");
    std::fs::create_dir(host.path().join("real")).unwrap();
    std::fs::write(host.path().join("real/hello"), "from the real directory\n").unwrap();
    std::os::unix::fs::symlink("real", host.path().join("link")).unwrap();
    let volume = format!("{}:/data:ro", host.path().join("link").display());
    let o = hsb_run(&["-v", &volume, IMAGE_REF, "cat", "/data/hello"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(stdout(&o), "from the real directory\n", "{}", text(&o));
}

/// A container killed by its memory limit is `OOMKilled` in `docker inspect` (Docker
/// learns it from containerd's shim, which watches the memory cgroup of the pid it was
/// given: the supervisor's, `linux.cgroupsPath`), and `docker stats` shows the limit.
#[test]
fn docker_oom_killed_and_memory_limit_in_stats() {
    let Some((_img, d)) = docker_ready() else {
        return;
    };
    let docker = |args: &[&str]| output_within(d.docker().args(args), 60);
    let inspect = |name: &str| {
        let o = docker(&["inspect", "--format", "{{.State.OOMKilled}}", name]);
        assert!(o.status.success(), "docker inspect: {}", text(&o));
        stdout(&o).trim().to_string()
    };
    let limited = [
        "--runtime",
        "hsb",
        "--network",
        "none",
        "--memory",
        "48m",
        "--memory-swap",
        "48m",
    ];
    // Control: a container under the limit that ends by itself is not OOMKilled.
    let o = docker(
        &[
            &["run", "--name", "calm"][..],
            &limited,
            &[IMAGE_REF, "true"],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(inspect("calm"), "false");
    // A 100 MB line held by sort: the kernel kills it under the 48 MiB limit.
    let hog = "head -c 100000000 /dev/zero | sort >/dev/null; echo status $?";
    let o = docker(
        &[
            &["run", "--name", "hog"][..],
            &limited,
            &[IMAGE_REF, "sh", "-c", hog],
        ]
        .concat(),
    );
    assert!(
        stdout(&o) == "status 137\n" || o.status.code() == Some(137),
        "the memory hog was not killed under --memory 48m: {}",
        text(&o)
    );
    assert!(
        eventually(20, || inspect("hog") == "true"),
        "State.OOMKilled is {} after the kernel killed the hog: {}",
        inspect("hog"),
        text(&o)
    );
    // `docker stats` reads the limit from the same cgroup.
    let o = docker(
        &[
            &["run", "-d", "--name", "idle"][..],
            &limited,
            &[IMAGE_REF, "sleep", "600"],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = output_within(
        d.docker()
            .args(["stats", "--no-stream", "--format", "{{.MemUsage}}", "idle"]),
        90,
    );
    assert!(
        stdout(&o).trim().ends_with("/ 48MiB"),
        "docker stats does not show the 48 MiB limit: {}",
        text(&o)
    );
    // `docker update` changes it there too.
    let o = docker(&["update", "--memory", "64m", "--memory-swap", "64m", "idle"]);
    assert!(o.status.success(), "docker update: {}", text(&o));
    let o = output_within(
        d.docker()
            .args(["stats", "--no-stream", "--format", "{{.MemUsage}}", "idle"]),
        90,
    );
    assert!(
        stdout(&o).trim().ends_with("/ 64MiB"),
        "docker stats does not show the 64 MiB limit after docker update: {}",
        text(&o)
    );
    let o = docker(&["rm", "-f", "idle", "hog", "calm"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// A gid the host has no group for (`getent group` knows none of it).
fn gid_without_host_group() -> u32 {
    [1234, 23456, 34567, 45678]
        .into_iter()
        .find(|g| {
            !Command::new("getent")
                .args(["group", &g.to_string()])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("every candidate gid is a host group")
}

/// `docker run --group-add GID` (Kubernetes' supplementalGroups and fsGroup take the
/// same path, `process.user.additionalGids`): the workload holds the group (`id -G`),
/// and a file of that group that only the group may read is read through a bind
/// mount; without it, the same read is denied. A gid the host names (its `disk`, say)
/// is refused, naming the field and the gid.
#[test]
fn docker_group_add_gives_a_supplementary_group() {
    let Some((_img, d)) = docker_ready() else {
        return;
    };
    let hsb_run = |args: &[&str]| {
        let mut c = d.docker();
        c.args(["run", "--rm", "--runtime", "hsb", "--network", "none"]);
        output_within(c.args(args), 60)
    };
    let gid = gid_without_host_group();
    let host = oci_common::TempDir::new("groups");
    let secret = host.path().join("secret");
    std::fs::write(&secret, "for the group only\n").unwrap();
    std::os::unix::fs::chown(&secret, Some(4321), Some(gid)).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o040)).unwrap();
    std::fs::set_permissions(
        host.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let volume = format!("{}:/data:ro", host.path().display());
    let script = "id -G; cat /data/secret; echo cat=$?";
    let o = hsb_run(&[
        "--group-add",
        &gid.to_string(),
        "-v",
        &volume,
        IMAGE_REF,
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    let groups: Vec<&str> = out.lines().next().unwrap_or("").split(' ').collect();
    assert!(
        groups.contains(&gid.to_string().as_str()),
        "`id -G` does not show {gid}: {}",
        text(&o)
    );
    assert!(
        out.contains("for the group only\ncat=0"),
        "the group's file was not read: {}",
        text(&o)
    );
    // `docker exec` into such a container: the process has the container's groups.
    let docker = |args: &[&str]| output_within(d.docker().args(args), 60);
    let o = docker(&[
        "run",
        "-d",
        "--runtime",
        "hsb",
        "--network",
        "none",
        "--name",
        "grouped",
        "--group-add",
        &gid.to_string(),
        "-v",
        &volume,
        IMAGE_REF,
        "sleep",
        "600",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = docker(&["exec", "grouped", "sh", "-c", script]);
    let exec_out = stdout(&o);
    let _ = docker(&["rm", "-f", "grouped"]);
    assert_eq!(o.status.code(), Some(0), "docker exec: {}", text(&o));
    assert!(
        exec_out.contains(&gid.to_string()) && exec_out.contains("for the group only\ncat=0"),
        "docker exec: {}",
        text(&o)
    );
    // Control: without the group, the same read is denied.
    let o = hsb_run(&["-v", &volume, IMAGE_REF, "sh", "-c", script]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stdout(&o).contains("cat=1") && !stdout(&o).contains(&gid.to_string()),
        "read without the group: {}",
        text(&o)
    );
    // A host group's gid is not handed out.
    let named = Command::new("getent")
        .args(["group", "6"])
        .output()
        .unwrap();
    if named.status.success() {
        let name = stdout(&named).split(':').next().unwrap_or("").to_string();
        let o = hsb_run(&["--group-add", "6", IMAGE_REF, "id", "-G"]);
        assert_ne!(o.status.code(), Some(0), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("process.user.additionalGids")
                && err.contains("supplementary group 6")
                && err.contains(&format!("host's group `{name}`")),
            "{}",
            text(&o)
        );
    }
}

/// Docker's /dev/shm (a 64 MiB tmpfs it always asks for): an in-memory filesystem of
/// its own at /dev/shm, with that size and Docker's options, where 32 MiB fit and 64
/// more do not; what is written there is not in /tmp.
#[test]
fn docker_dev_shm_is_a_tmpfs_of_its_own_size() {
    let Some((_img, d)) = docker_ready() else {
        return;
    };
    let mut c = d.docker();
    c.args(["run", "--rm", "--runtime", "hsb", "--network", "none"]);
    let o = output_within(
        c.args([
            IMAGE_REF,
            "sh",
            "-c",
            "busybox stat -c %a /dev/shm; grep ' /dev/shm ' /proc/mounts; \
             dd if=/dev/zero of=/dev/shm/a bs=1048576 count=32 2>/dev/null; echo a=$?; \
             dd if=/dev/zero of=/dev/shm/b bs=1048576 count=64 2>/dev/null; echo b=$?; \
             busybox rm -f /dev/shm/b; ls /tmp; echo tmp-listed",
        ]),
        60,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.contains(" /dev/shm tmpfs "))
        .unwrap_or_else(|| panic!("no tmpfs at /dev/shm: {}", text(&o)));
    for opt in ["size=65536k", "noexec", "nosuid", "nodev"] {
        assert!(line.split([' ', ',']).any(|w| w == opt), "{opt}: {line}");
    }
    assert!(out.starts_with("1777\n"), "{}", text(&o));
    assert!(out.contains("a=0\n"), "32 MiB did not fit: {}", text(&o));
    assert!(
        out.contains("b=1\n"),
        "96 MiB fit a 64 MiB /dev/shm: {}",
        text(&o)
    );
    assert!(
        out.contains("\ntmp-listed") || out.starts_with("tmp-listed"),
        "{}",
        text(&o)
    );
    let listing = out.split("b=1\n").nth(1).unwrap_or("");
    assert!(
        !listing.lines().any(|l| l == "a"),
        "/dev/shm's file is in /tmp: {}",
        text(&o)
    );
}

/// `podman run -v SRC:DST:noexec`: a program on that bind mount cannot be run
/// (Permission denied, 126), and the same mount without `noexec` runs it.
#[test]
fn podman_noexec_bind_mount() {
    if !ready("podman") {
        return;
    }
    let img = Image::new();
    let p = Podman::new(&container_runtime());
    p.import(&img);
    let host = oci_common::TempDir::new("noexec");
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
            "grep ' /code ' /proc/mounts; /code/true; echo exec=$?",
        ])
    };
    let o = run("ro,noexec");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
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
