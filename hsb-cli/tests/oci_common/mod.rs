//! Shared by the OCI runtime tests: bundles made from host files, the runtime binary
//! under its engine-facing names, the feature rule.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) fn hsb() -> &'static str {
    env!("CARGO_BIN_EXE_hsb")
}

/// A directory with the runtime's names (`hsb-oci`, `hsb-oci-container`,
/// `hsb-oci-microvm`) linked to the built binary.
pub(crate) fn runtime_dir() -> PathBuf {
    // Next to the built binary (the build's own directory), not in /tmp: nothing of the
    // tests is left behind there, and every test process shares the same links.
    let d = Path::new(hsb())
        .parent()
        .expect("the hsb binary's directory")
        .join("oci-runtime-names");
    std::fs::create_dir_all(&d).unwrap();
    // Relative links (`../hsb`): a build directory copied elsewhere still names its own
    // binary (absolute ones kept naming the copy's origin, an older hsb). A link naming
    // anything else is replaced, atomically (another test process may read it).
    let target = Path::new("..").join(Path::new(hsb()).file_name().expect("a file name"));
    for n in ["hsb-oci", "hsb-oci-container", "hsb-oci-microvm"] {
        let l = d.join(n);
        if std::fs::read_link(&l).is_ok_and(|t| t == target) {
            continue;
        }
        let tmp = d.join(format!(".{n}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)
            .and_then(|()| std::fs::rename(&tmp, &l))
            .unwrap_or_else(|e| panic!("{}: {e}", l.display()));
    }
    d
}

/// The feature rule: a test needing what the host lacks prints a loud SKIPPED line, or
/// fails under `HSB_REQUIRE_FEATURES=1`.
pub(crate) fn require(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if std::env::var("HSB_REQUIRE_FEATURES").is_ok_and(|v| v == "1") {
        panic!("HSB_REQUIRE_FEATURES=1 but {what}");
    }
    eprintln!("SKIPPED: {what}");
    false
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub(crate) fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A fresh directory removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("hsb-oci-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A runtime root (`TempDir::new("root")`) of a test that failed half-way may
        // still hold containers: deleted by force first, so their supervisors, inits
        // and cgroups do not outlive the test.
        if std::thread::panicking() {
            for e in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
                if e.path().join("state.json").exists() {
                    let _ = Command::new(hsb())
                        .arg("oci")
                        .arg("--root")
                        .arg(&self.0)
                        .args(["delete", "--force"])
                        .arg(e.file_name())
                        .output();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A root filesystem with a static busybox (its applets as links) and `/www`.
pub(crate) fn busybox_rootfs(dir: &Path) {
    for d in ["bin", "proc", "dev", "tmp", "etc", "www"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::set_permissions(
        dir.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for a in [
        "sh", "ls", "cat", "echo", "sleep", "true", "id", "ps", "hostname", "stty", "tty", "seq",
        "tail", "wc", "head", "kill", "httpd", "nc", "env", "grep",
    ] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    std::fs::write(dir.join("www/index.html"), "served by hsb\n").unwrap();
}

/// Adds python3 (the host's, with its libraries and standard library) to a rootfs.
pub(crate) fn add_python(dir: &Path) {
    let py = std::fs::canonicalize("/usr/bin/python3").unwrap();
    let mut files: Vec<PathBuf> = vec![py.clone()];
    let ldd = Command::new("ldd").arg(&py).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        if let Some(p) = line.split_whitespace().find(|w| w.starts_with('/')) {
            files.push(PathBuf::from(p));
        }
    }
    for f in &files {
        let real = std::fs::canonicalize(f).unwrap();
        for p in [f.clone(), real.clone()] {
            let dst = dir.join(p.strip_prefix("/").unwrap());
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            if !dst.exists() {
                std::fs::copy(&real, &dst).unwrap();
            }
        }
    }
    std::os::unix::fs::symlink(&py, dir.join("bin/python3")).unwrap();
    let ver = py.file_name().unwrap().to_string_lossy().to_string();
    let stdlib = Path::new("/usr/lib").join(&ver);
    let dst = dir.join("usr/lib").join(&ver);
    let st = Command::new("cp")
        .args(["-a", "--no-preserve=ownership"])
        .arg(&stdlib)
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    for big in [
        "test",
        "idlelib",
        "tkinter",
        "ensurepip",
        "lib2to3",
        "pydoc_data",
    ] {
        let _ = std::fs::remove_dir_all(dst.join(big));
    }
}

/// A bundle: rootfs plus config.json from `runc spec`-like defaults, with `args`.
pub(crate) fn bundle(dir: &Path, args: &[&str]) {
    busybox_rootfs(&dir.join("rootfs"));
    let cfg = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "hsbtest",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid","strictatime","mode=755","size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid","noexec","nodev","ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"]
        }
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&cfg).unwrap(),
    )
    .unwrap();
}

/// Edits a bundle's config.json.
pub(crate) fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// `hsb oci --root ROOT ARGS`. Its stdout and stderr go to files read once it exits, not
/// pipes: `create` hands them to the container's supervisor (as runc hands them to the
/// container), which keeps them open until the container ends, so waiting for a pipe's
/// end would wait for the container.
pub(crate) fn oci(root: &Path, args: &[&str]) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let mut cmd = Command::new(hsb());
    // Its own process group, as an engine's runtime call is: nothing the runtime
    // signals by group reaches the test.
    let status = std::os::unix::process::CommandExt::process_group(&mut cmd, 0)
        .arg("oci")
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap();
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Processes whose command line is `hsb-init` (sandbox inits) or whose parent chain
/// came from this test's runtime root: counted to prove nothing is left.
pub(crate) fn sandbox_inits() -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            if c.starts_with(b"hsb-init") {
                n += 1;
            }
        }
    }
    n
}

/// True once no more sandbox inits are alive than `before` (within 5 s): what an
/// earlier test left may still be ending meanwhile, so the count may only go down.
pub(crate) fn no_more_inits_than(before: usize) -> bool {
    for _ in 0..500 {
        if sandbox_inits() <= before {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// Processes whose command line mentions `needle` (a state root: supervisors).
pub(crate) fn processes_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&c).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

/// Whether micro-VM live sandboxes exist: a `run` of a trivial bundle under
/// `hsb-oci-microvm` either works or says why not. `Err(reason)` when not.
pub(crate) fn microvm_live(root: &Path) -> Result<(), String> {
    let b = TempDir::new("probe");
    bundle(b.path(), &["/bin/true"]);
    let o = Command::new(runtime_dir().join("hsb-oci-microvm"))
        .arg("--root")
        .arg(root)
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(format!("probe-{}", std::process::id()))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
    }
}

/// The micro-VM rule: micro-VM live sandboxes exist, so the test runs; a host that
/// cannot run the micro-VM runtime (no KVM) follows the feature rule.
pub(crate) fn microvm_ready(root: &Path) -> bool {
    match microvm_live(root) {
        Ok(()) => true,
        Err(why) => require(
            false,
            &format!("the micro-VM runtime cannot run here: {why}"),
        ),
    }
}

/// The roots of the cgroup hierarchies mounted here (from /proc/self/mountinfo).
pub(crate) fn cgroup_roots() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (m, fs) = l.split_once(" - ")?;
            let fstype = fs.split(' ').next()?;
            let m: Vec<&str> = m.split(' ').collect();
            let point = m.get(4)?;
            (matches!(fstype, "cgroup" | "cgroup2") && m.get(3) == Some(&"/"))
                .then(|| PathBuf::from(point))
        })
        .collect()
}

/// Whether CPU sets can be given to a container here: a cgroup v1 cpuset hierarchy
/// (hsb refuses them on v2) and a second CPU to pin to.
pub(crate) fn cpu_sets_here() -> bool {
    std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
        && cgroup_roots()
            .iter()
            .any(|r| r.join("cpuset.cpus").exists() && !r.join("cgroup.controllers").exists())
}

/// The cgroup of `pid` in the hierarchy of controller `ctrl` (v2's where no v1
/// hierarchy has it), from /proc/PID/cgroup.
pub(crate) fn cgroup_of(pid: i32, ctrl: &str) -> Option<String> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let line = cg
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == ctrl))
        })
        .or_else(|| cg.lines().find(|l| l.starts_with("0::")))?;
    line.splitn(3, ':').nth(2).map(str::to_string)
}

/// Asserts that `pid` (the container's pid an engine was given) is in the cgroup
/// `path` (the config's `linux.cgroupsPath`) for memory and pids, where engines read
/// its statistics; returns the directories of `path` under every hierarchy.
pub(crate) fn assert_in_cgroup(pid: i32, path: &str) -> Vec<PathBuf> {
    for ctrl in ["memory", "pids"] {
        let cg = cgroup_of(pid, ctrl);
        assert_eq!(cg.as_deref(), Some(path), "{ctrl} cgroup of {pid}");
    }
    let rel = path.trim_start_matches('/');
    cgroup_roots().iter().map(|r| r.join(rel)).collect()
}

/// The supervisor (the pid an engine is given) of the container or pod `id`.
pub(crate) fn supervisor_of(id: &str) -> Option<i32> {
    processes_with(id).into_iter().find(|p| {
        std::fs::read(format!("/proc/{p}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("_supervise"))
    })
}
