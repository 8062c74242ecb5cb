//! Container engines driven against hsb's OCI runtime, each with storage of its own in a
//! temporary directory (nothing of the host's engine state is read, touched or left):
//! Podman with `--root`/`--runroot`/`--tmpdir`, containerd and dockerd started by the
//! test on sockets of their own and stopped (killed and waited for) on drop.
#![allow(dead_code)]

use crate::oci_common::{busybox_rootfs, runtime_dir, TempDir};
use sha2::Digest;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` to completion, killing it (and failing the test) after `secs`: an engine
/// that hangs must not hang the test run.
pub(crate) fn output_within(cmd: &mut Command, secs: u64) -> Output {
    let what = format!("{cmd:?}");
    // Its own process group: nothing an engine signals by group reaches the test.
    let mut child = std::os::unix::process::CommandExt::process_group(cmd, 0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// Polls `f` until it holds or `secs` pass.
pub(crate) fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The runtime as an engine is given it: `hsb-oci-container` (argv[0]-dispatched).
pub(crate) fn container_runtime() -> PathBuf {
    runtime_dir().join("hsb-oci-container")
}

/// A local image: a busybox root filesystem as a tar (for `podman import` and
/// `docker import`) and as a docker archive (for `ctr image import`).
pub(crate) struct Image {
    pub dir: TempDir,
}

pub(crate) const IMAGE_REF: &str = "localhost/hsbtest:1";

impl Image {
    pub(crate) fn new() -> Image {
        Image::named(IMAGE_REF, None)
    }

    /// The image as `reference`, with `entrypoint` in its config if given.
    pub(crate) fn named(reference: &str, entrypoint: Option<&[&str]>) -> Image {
        let dir = TempDir::new("image");
        let root = dir.path().join("rootfs");
        busybox_rootfs(&root);
        for a in ["sort", "tr", "dd", "sh", "trap", "pidof", "cut"] {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(a));
        }
        let tar = dir.path().join("rootfs.tar");
        let st = Command::new("tar")
            .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success(), "tar of the image's rootfs failed");
        // A docker archive: manifest.json, the image config, the layer.
        let arch = dir.path().join("archive");
        std::fs::create_dir_all(&arch).unwrap();
        let layer = std::fs::read(&tar).unwrap();
        let diff_id = format!("sha256:{}", hex(&sha2::Sha256::digest(&layer)));
        std::fs::write(arch.join("layer.tar"), &layer).unwrap();
        let mut config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "hsb-cli/tests/oci_common/engines.rs"}]
        });
        if let Some(e) = entrypoint {
            config["config"]["Entrypoint"] = serde_json::json!(e);
            config["config"]["Cmd"] = serde_json::json!([]);
        }
        let config = serde_json::to_vec(&config).unwrap();
        let config_name = format!("{}.json", hex(&sha2::Sha256::digest(&config)));
        std::fs::write(arch.join(&config_name), &config).unwrap();
        let manifest = serde_json::json!([{
            "Config": config_name,
            "RepoTags": [reference],
            "Layers": ["layer.tar"]
        }]);
        std::fs::write(
            arch.join("manifest.json"),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        let st = Command::new("tar")
            .arg("-C")
            .arg(&arch)
            .arg("-cf")
            .arg(dir.path().join("docker-archive.tar"))
            .args(["manifest.json", &config_name, "layer.tar"])
            .status()
            .unwrap();
        assert!(st.success(), "tar of the docker archive failed");
        Image { dir }
    }
    pub(crate) fn rootfs_tar(&self) -> PathBuf {
        self.dir.path().join("rootfs.tar")
    }
    pub(crate) fn docker_archive(&self) -> PathBuf {
        self.dir.path().join("docker-archive.tar")
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Unmounts (lazily) every mount at or under `dir`, deepest first.
pub(crate) fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().to_string();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", &p]).status();
    }
}

/// A process's start time (field 22 of /proc/PID/stat) and state, to tell a live
/// process from a recycled pid or a zombie.
fn stat(pid: i32) -> Option<(char, u64, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some((
        f[0].chars().next()?,
        f[19].parse().ok()?,
        f[1].parse().ok()?,
    ))
}

/// `pid` and all its descendants, each with its start time.
pub(crate) fn process_tree(pid: i32) -> Vec<(i32, u64)> {
    let mut all = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() {
            if let Some((_, start, ppid)) = stat(p) {
                all.push((p, start, ppid));
            }
        }
    }
    let mut out: Vec<(i32, u64)> = all
        .iter()
        .filter(|(p, ..)| *p == pid)
        .map(|&(p, s, _)| (p, s))
        .collect();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i].0;
        for &(p, s, pp) in &all {
            if pp == parent && !out.iter().any(|(q, _)| *q == p) {
                out.push((p, s));
            }
        }
        i += 1;
    }
    out
}

/// Asserts that the container's own processes (every process under the supervisor
/// `supervisor`) are inside the engine's cgroup `path` (hsb's cgroup for the sandbox is
/// made in it, on cgroup v1), for memory and pids: what engines read for a container's
/// statistics and a pod's cgroup limits then counts them. Returns how many there are.
pub(crate) fn assert_processes_inside(supervisor: i32, path: &str) -> usize {
    let inside = format!("{}/", path.trim_end_matches('/'));
    let tree: Vec<i32> = process_tree(supervisor)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| *p != supervisor)
        .collect();
    assert!(
        !tree.is_empty(),
        "no process under the supervisor {supervisor}"
    );
    for p in &tree {
        for ctrl in ["memory", "pids"] {
            let Some(cg) = crate::oci_common::cgroup_of(*p, ctrl) else {
                continue; // exited meanwhile
            };
            assert!(
                cg.starts_with(&inside),
                "the {ctrl} cgroup of the container's process {p} is {cg}, not inside {path}"
            );
        }
    }
    tree.len()
}

/// Those of `procs` still alive (same pid, same start time, not a zombie).
pub(crate) fn still_alive(procs: &[(i32, u64)]) -> Vec<i32> {
    procs
        .iter()
        .filter(|(p, s)| matches!(stat(*p), Some((st, start, _)) if start == *s && st != 'Z'))
        .map(|(p, _)| *p)
        .collect()
}

/// The command line of a process (NULs as spaces).
pub(crate) fn cmdline(pid: i32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .replace('\0', " ")
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP GET of `/` on 127.0.0.1:`port`; the whole response.
pub(crate) fn http_get(port: u16) -> Option<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut v = String::new();
    s.read_to_string(&mut v).ok()?;
    Some(v)
}

/// Podman with storage, run root, temporary directory, network configuration and
/// containers.conf of its own; the runtime is `hsb-oci-container` unless given.
pub(crate) struct Podman {
    pub dir: TempDir,
    pub runtime: PathBuf,
}

impl Podman {
    pub(crate) fn new(runtime: &Path) -> Podman {
        let dir = TempDir::new("podman");
        for d in ["root", "runroot", "tmp", "net"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        // The host's hard RLIMIT_NOFILE may be below Podman's default 1048576.
        std::fs::write(
            dir.path().join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\"]\n",
        )
        .unwrap();
        Podman {
            dir,
            runtime: runtime.to_path_buf(),
        }
    }
    /// The global flags (also what a shell needs: `podman FLAGS ...`).
    pub(crate) fn flags(&self) -> Vec<String> {
        let d = self.dir.path();
        vec![
            format!("--root={}", d.join("root").display()),
            format!("--runroot={}", d.join("runroot").display()),
            format!("--tmpdir={}", d.join("tmp").display()),
            format!("--network-config-dir={}", d.join("net").display()),
            "--cgroup-manager=cgroupfs".into(),
            "--events-backend=file".into(),
            "--storage-driver=overlay".into(),
            format!("--runtime={}", self.runtime.display()),
            // The runtime's state under this directory too, not its default /run/hsb-oci.
            format!("--runtime-flag=root={}", d.join("runtime").display()),
        ]
    }
    pub(crate) fn conf(&self) -> PathBuf {
        self.dir.path().join("containers.conf")
    }
    /// `podman` with the test's flags, run in the test's directory: conmon writes an
    /// `oom` file to its working directory when the container's cgroup reports an OOM
    /// kill, which landed in the source tree.
    pub(crate) fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.conf())
            .args(self.flags())
            .current_dir(self.dir.path());
        c
    }
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        output_within(self.cmd().args(args), 90)
    }
    pub(crate) fn import(&self, image: &Image) {
        let o = self.run(&["import", &image.rootfs_tar().to_string_lossy(), IMAGE_REF]);
        assert!(
            o.status.success(),
            "podman import: {}",
            crate::oci_common::text(&o)
        );
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = output_within(self.cmd().args(["rm", "-af", "-t", "0"]), 60);
        let _ = output_within(self.cmd().args(["rmi", "-af"]), 60);
        unmount_under(self.dir.path());
    }
}

/// A daemon started by a test (containerd, dockerd), killed and waited for on drop,
/// its directory unmounted and removed.
pub(crate) struct Daemon {
    pub child: Option<Child>,
    pub dir: TempDir,
    pub name: &'static str,
    /// Host paths the engine creates outside its own directories (fixed in its code)
    /// that did not exist before: removed on drop.
    pub host_leftovers: Vec<PathBuf>,
    /// One daemon at a time in this process: containerd's and dockerd's shims share
    /// /run/containerd/s, which is removed only by the last one out.
    _serial: std::sync::MutexGuard<'static, ()>,
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Daemon {
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }
    pub(crate) fn sock(&self) -> PathBuf {
        self.dir.path().join("d.sock")
    }
    fn spawn(name: &'static str, dir: TempDir, cmd: &mut Command, leftovers: &[&str]) -> Daemon {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // Deepest first; only those absent now (another engine's are left alone).
        let host_leftovers = leftovers
            .iter()
            .map(PathBuf::from)
            .filter(|p| !p.exists())
            .collect();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        // Its own process group: nothing the daemon signals by group reaches the test.
        let child = std::os::unix::process::CommandExt::process_group(cmd, 0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        Daemon {
            child: Some(child),
            dir,
            name,
            host_leftovers,
            _serial: serial,
        }
    }
    fn wait_ready(&mut self, mut ready: impl FnMut(&Daemon) -> bool) {
        let ok = eventually(60, || {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{} exited with {st}:\n{}", self.name, self.log());
            }
            ready(self)
        });
        assert!(ok, "{} did not become ready:\n{}", self.name, self.log());
    }

    /// containerd with its own root, state, sockets and configuration.
    pub(crate) fn containerd() -> Daemon {
        Daemon::containerd_with(false, |_| String::new())
    }

    /// containerd with its CRI plugin (what the kubelet talks to) and the
    /// configuration `cri` gives for it (from the daemon's directory).
    pub(crate) fn containerd_cri(cri: impl FnOnce(&Path) -> String) -> Daemon {
        Daemon::containerd_with(true, cri)
    }

    fn containerd_with(with_cri: bool, cri: impl FnOnce(&Path) -> String) -> Daemon {
        let dir = TempDir::new("containerd");
        let d = dir.path();
        let disabled_cri = if with_cri {
            ""
        } else {
            r#""io.containerd.grpc.v1.cri", "#
        };
        let cfg = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [{disabled_cri}"io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
{cri}"#,
            cri = cri(d),
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("d.sock").display(),
        );
        std::fs::write(d.join("config.toml"), cfg).unwrap();
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(d.join("config.toml"));
        // containerd 1.6's shim puts its socket in /run/containerd/s, ctr its FIFOs in
        // /run/containerd/fifo, whatever the daemon's --state.
        let mut dmn = Daemon::spawn(
            "containerd",
            dir,
            &mut cmd,
            &[
                "/run/containerd/s",
                "/run/containerd/fifo",
                "/run/containerd",
            ],
        );
        dmn.wait_ready(|d| {
            d.sock().exists()
                && Command::new("ctr")
                    .arg("--address")
                    .arg(d.sock())
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success())
        });
        dmn
    }
    pub(crate) fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(self.sock());
        c
    }

    /// dockerd with its own data root, exec root, socket, pid file and configuration
    /// (no iptables, no bridge), and the runtime `hsb` = `runtime`.
    pub(crate) fn dockerd(runtime: &Path) -> Daemon {
        let dir = TempDir::new("dockerd");
        let d = dir.path();
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        let mut cmd = Command::new("dockerd");
        cmd.arg(format!("--data-root={}", d.join("data").display()))
            .arg(format!("--exec-root={}", d.join("exec").display()))
            .arg(format!("--pidfile={}", d.join("d.pid").display()))
            .arg(format!("--config-file={}", d.join("daemon.json").display()))
            .arg(format!("-H=unix://{}", d.join("d.sock").display()))
            .arg(format!("--add-runtime=hsb={}", runtime.display()))
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--bridge=none",
                "--default-ulimit=nofile=1024:1024",
                "--storage-driver=overlay2",
                "--exec-opt=native.cgroupdriver=cgroupfs",
            ]);
        // dockerd 20.10 writes its (deprecated) trust key to /etc/docker/key.json.
        let mut dmn = Daemon::spawn(
            "dockerd",
            dir,
            &mut cmd,
            &[
                "/etc/docker/key.json",
                "/etc/docker",
                "/run/containerd/s",
                "/run/containerd",
            ],
        );
        dmn.wait_ready(|d| {
            d.sock().exists()
                && d.docker()
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success())
        });
        dmn
    }
    /// `docker import` of `image` as [`IMAGE_REF`].
    pub(crate) fn docker_import(&self, image: &Image) {
        let o = output_within(
            self.docker()
                .arg("import")
                .arg(image.rootfs_tar())
                .arg(IMAGE_REF),
            60,
        );
        assert!(
            o.status.success(),
            "docker import: {}",
            crate::oci_common::text(&o)
        );
    }

    pub(crate) fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_CONFIG", self.dir.path().join("client"))
            .arg("-H")
            .arg(format!("unix://{}", self.sock().display()));
        c
    }

    /// `docker stats` of container `name` once: its processes and the memory it uses
    /// in MiB (0 where Docker shows another unit: "3.4GiB" was the host's whole memory
    /// read from the wrong cgroup), and the command's output for a message.
    pub(crate) fn stats(&self, name: &str) -> (u64, f64, Output) {
        let o = output_within(
            self.docker().args([
                "stats",
                "--no-stream",
                "--format",
                "{{.PIDs}} {{.MemUsage}}",
                name,
            ]),
            90,
        );
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        let mut fields = text.split_whitespace();
        let pids = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        // "12.5MiB / 23.5GiB"
        let mib = fields
            .next()
            .and_then(|u| u.strip_suffix("MiB"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        (pids, mib, o)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM first (dockerd stops its containers and its containerd), then
            // SIGKILL if it does not end.
            // SAFETY: kill(2) on the pid of our own unreaped child: it cannot be reused.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if c.try_wait().ok().flatten().is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Shims and daemons' children that outlived the daemon (they are reparented).
        let me = self.dir.path().to_string_lossy().to_string();
        for pid in crate::oci_common::processes_with(&me) {
            // SAFETY: kill(2) has no memory preconditions; the pid was just found with
            // this test's private directory in its command line.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        unmount_under(self.dir.path());
        for p in &self.host_leftovers {
            if p.is_dir() {
                // Absent when the daemon started and daemons are serialized: what is
                // in it is this daemon's (a killed shim's socket stays behind).
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

impl Daemon {
    /// Whether the Docker container `name`, serving "served by hsb" on port 8080 (busybox
    /// httpd), answers at its address on the network `net` and through the port the
    /// engine published on the host's loopback; then removes the container and the
    /// network. `Err` says which was not reached and what came back.
    /// `docker run -t` with the runtime `hsb`: the container's stdin is a terminal and
    /// its exit status passes through (containerd's shim takes the terminal only once
    /// the runtime's output pipe is closed: nothing hsb leaves running may hold it).
    pub(crate) fn check_run_tty(&self) -> Result<(), String> {
        let o = output_within(
            self.docker().args([
                "run",
                "--rm",
                "-t",
                "--runtime",
                "hsb",
                "--network",
                "none",
                IMAGE_REF,
                "sh",
                "-c",
                "test -t 0 && echo tty; exit 3",
            ]),
            90,
        );
        let out = String::from_utf8_lossy(&o.stdout);
        if (o.status.code(), out.as_ref()) != (Some(3), "tty\r\n") {
            return Err(format!("docker run -t: {}", crate::oci_common::text(&o)));
        }
        Ok(())
    }

    pub(crate) fn check_served_and_remove(&self, net: &str, name: &str) -> Result<(), String> {
        let docker = |args: &[&str]| output_within(self.docker().args(args), 90);
        let out = |o: &Output| String::from_utf8_lossy(&o.stdout).trim().to_string();
        let format = format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}");
        let ip = out(&docker(&["inspect", "--format", &format, name]));
        let mut page = String::new();
        let served = eventually(20, || {
            page = http_get_at(&format!("{ip}:8080")).unwrap_or_default();
            page.contains("served by hsb")
        });
        let o = docker(&["port", name, "8080"]);
        let published = out(&o)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let mut proxied = String::new();
        let through_port = eventually(15, || {
            proxied = http_get_at(&published).unwrap_or_default();
            proxied.contains("served by hsb")
        });
        let _ = docker(&["rm", "-f", name]);
        let _ = docker(&["network", "rm", net]);
        if ip.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(format!("{name} has no address on {net}: {ip:?}"));
        }
        if !served {
            return Err(format!("{name} was not reached at {ip:?}:8080: {page}"));
        }
        if !through_port {
            return Err(format!(
                "{name} was not reached through the published port {published:?}: {proxied}"
            ));
        }
        Ok(())
    }
}

/// A plain HTTP/1.0 GET of `/` from `addr` (`HOST:PORT`).
pub(crate) fn http_get_at(addr: &str) -> std::io::Result<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(
        &addr.parse().map_err(std::io::Error::other)?,
        Duration::from_secs(2),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
