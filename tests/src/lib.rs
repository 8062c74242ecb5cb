//! Helpers shared by the integration suites: test programs compiled from
//! `tests/programs/*.c`, sandboxes, and host-side checks.

pub mod compat_doc;
pub mod differential;
pub mod image;
pub mod net;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

pub use hybrid_sandbox::{
    Isolation, Mount, MountMode, Outcome, Policy, Sandbox, Stdin, Termination, Workload,
};

/// Where test programs appear inside sandboxes.
pub const PROGRAMS_IN_SANDBOX: &str = "/opt/hsb-tests";

/// Compiles `tests/programs/NAME.c` with gcc into `dir` (once per test binary, and
/// again only when the source is newer), as `NAME` (dynamically linked) and
/// `NAME-static` (`gcc -static`, which the micro-VM runs too); returns the directory.
pub fn programs(dir: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = Path::new(dir).join("programs");
    std::fs::create_dir_all(&out).expect("create programs dir");
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("programs");
    for entry in std::fs::read_dir(&src_dir).expect("read tests/programs") {
        let src = entry.expect("entry").path();
        if src.extension().is_none_or(|e| e != "c") {
            continue;
        }
        let stem = src
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        for (bin, extra) in [
            (out.join(&stem), None),
            (out.join(format!("{stem}-static")), Some("-static")),
        ] {
            let fresh = match (std::fs::metadata(&bin), std::fs::metadata(&src)) {
                (Ok(b), Ok(s)) => b.modified().ok() >= s.modified().ok(),
                _ => false,
            };
            if fresh {
                continue;
            }
            let st = Command::new("gcc")
                .args(["-O2", "-Wall"])
                .args(extra)
                .arg("-o")
                .arg(&bin)
                .arg(&src)
                .status()
                .expect("gcc must be installed (scripts/install-deps.sh)");
            assert!(st.success(), "compiling {}", src.display());
        }
    }
    out
}

/// A multithreaded runtime for tests that drive several sandboxes.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The default-policy sandbox.
pub fn sandbox() -> &'static Sandbox {
    static S: OnceLock<Sandbox> = OnceLock::new();
    S.get_or_init(Sandbox::with_default_policy)
}

/// A sandbox under a policy given as TOML text.
pub fn sandbox_with(toml: &str) -> Sandbox {
    Sandbox::from_policy(Policy::from_toml_str(toml, "test policy").expect("test policy"))
}

/// Runs a workload to its end with the default policy, on a fresh current-thread runtime.
pub fn run(w: Workload) -> Outcome {
    run_in(sandbox(), w)
}

/// Runs a workload to its end in `sb`.
pub fn run_in(sb: &Sandbox, w: Workload) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(sb.run(w))
        .unwrap_or_else(|e| panic!("run failed: {}", e.chain()))
}

/// A live sandbox of the default policy, made from `w` (a panic names the error).
pub async fn live_create(w: Workload) -> hybrid_sandbox::Live {
    sandbox()
        .create(w, hybrid_sandbox::LiveOptions::default())
        .await
        .unwrap_or_else(|e| panic!("create: {}", e.chain()))
}

/// `busybox sh -c SCRIPT` executed in `live`: its stdout, after checking it exited 0.
pub async fn live_sh(live: &hybrid_sandbox::Live, script: &str) -> String {
    let o = live
        .exec(["busybox", "sh", "-c", script])
        .await
        .unwrap_or_else(|e| panic!("exec {script}: {}", e.chain()));
    assert_eq!(o.exit_code, Some(0), "{script}: {o:?}");
    stdout(&o)
}

/// `sh -c SCRIPT` as a workload.
pub fn sh(script: &str) -> Workload {
    Workload::new("/bin/sh", ["-c", script])
}

/// A workload running the attack probe NAME (see tests/programs/attack.c).
pub fn attack(programs: &Path, args: &[&str]) -> Workload {
    Workload::new(
        format!("{PROGRAMS_IN_SANDBOX}/attack"),
        args.iter().copied(),
    )
    .mount(Mount::ro(programs, PROGRAMS_IN_SANDBOX))
}

/// stdout as text.
pub fn stdout(o: &Outcome) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A temporary directory the sandbox's user can write to (as root, sandboxes run as
/// host uid 65534).
pub fn writable_tempdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    set_mode(d.path(), 0o777);
    d
}

/// chmod.
pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Host processes whose command line contains `marker` (other than this test process).
pub fn host_processes_with(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(marker) {
                found.push(pid);
            }
        }
    }
    found
}

/// Waits up to `secs` for `cond`.
pub fn eventually(secs: f64, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}

/// The feature rule: a test that needs what this host lacks (KVM, usable cgroups, a
/// root caller, Landlock...) never skips silently. With `missing` = `None` it returns
/// true; otherwise it fails under `HSB_REQUIRE_FEATURES=1` (CI sets it, in `.ci/run`;
/// for KVM, `HSB_REQUIRE_KVM=1` too), else prints a loud SKIPPED line and returns false,
/// and the test skips (or checks what still holds without the feature).
pub fn feature(name: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    let on = |var: &str| std::env::var(var).is_ok_and(|v| v == "1");
    if on("HSB_REQUIRE_FEATURES") || (name == "KVM" && on("HSB_REQUIRE_KVM")) {
        panic!("this test needs {name}, which CI requires (HSB_REQUIRE_FEATURES=1): {why}");
    }
    // Straight to fd 2: the test harness captures eprintln!, and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: needs {name}: {why}");
    false
}

/// A root caller (to mount filesystems, make device nodes, own files as other users).
pub fn root_caller() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    feature(
        "a root caller",
        (euid != 0).then(|| format!("running as uid {euid}")),
    )
}

/// Whether `isolation` can run here: the micro-VM needs KVM (see [`feature`]).
pub fn backend_ready(isolation: hybrid_sandbox::IsolationRequest) -> bool {
    if isolation != hybrid_sandbox::IsolationRequest::MicroVm {
        return true;
    }
    let probe = backend_microvm_probe();
    feature(
        "KVM",
        (!probe.available).then(|| probe.reason.unwrap_or_default()),
    )
}

fn backend_microvm_probe() -> hybrid_sandbox::BackendProbe {
    sandbox()
        .probe()
        .into_iter()
        .find(|p| p.isolation == Isolation::MicroVm)
        .expect("a micro-VM probe")
}

/// Threads of this process with one of `names`.
pub fn threads_named(names: &[&str]) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| names.contains(&c.trim()))
        .count()
}

/// Descriptors open in this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A live exec's CPU time limit is the exec's, not each process's: children that each
/// stay under it, and spinners it detaches into sessions of their own, are stopped once
/// they used it together, and none is left. `cmd` prefixes each program (`busybox`
/// where the guest has only that); `limit` is the exec's CPU time.
pub async fn exec_cpu_limit_counts_every_process(
    live: &hybrid_sandbox::Live,
    cmd: &str,
    limit: std::time::Duration,
) {
    use std::time::Duration;
    // `sh -c SCRIPT`, after the prefix's program.
    let shell = |script: String| -> Vec<String> {
        cmd.split_whitespace()
            .map(String::from)
            .chain(["sh".into(), "-c".into(), script])
            .collect()
    };
    let limited = |script: String| {
        let mut req = hybrid_sandbox::ExecRequest::new(shell(script));
        req.limits.cpu_time = Some(limit);
        req.limits.wall_time = Some(Duration::from_secs(60));
        req
    };
    let spin = "while :; do :; done";
    // Each worker uses 2/3 of the limit: under it alone, over it from the second.
    let worker = format!("{:.2}", limit.as_secs_f64() * 2.0 / 3.0);
    let o = live
        .exec_with(limited(format!(
            "for i in 1 2 3 4 5 6; do {cmd}timeout {worker} {cmd}sh -c '{spin}'; done; echo all-ran"
        )))
        .await
        .unwrap();
    assert_eq!(o.termination, Termination::CpuLimit, "{o:?}");
    assert!(!stdout(&o).contains("all-ran"), "{o:?}");
    assert!(o.cpu_time >= limit, "{o:?}");
    let o = live
        .exec_with(limited(format!(
            "{cmd}setsid {cmd}sh -c '{spin}' & {cmd}setsid {cmd}sh -c '{spin}' & {cmd}sleep 30"
        )))
        .await
        .unwrap();
    assert_eq!(o.termination, Termination::CpuLimit, "{o:?}");
    // Counted by their command line (`whil[e]` matches no grep's own).
    let left = live
        .exec(shell(format!(
            "{cmd}grep -l 'whil[e]' /proc/[0-9]*/cmdline 2>/dev/null | {cmd}wc -l"
        )))
        .await
        .unwrap();
    assert_eq!(
        stdout(&left).trim(),
        "0",
        "spinners left: {}",
        stdout(&left)
    );
}
