//! Shared helpers of the micro-VM tests: the KVM rule, test programs built once, plans.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use backend_microvm::MicroVmBackend;
use sandbox_core::{Backend, HostSupport, Outcome, Plan, Policy, Workload};

/// The feature rule: a test that needs what this host lacks (KVM, a root caller,
/// Landlock...) never skips silently. With `missing` = `None` it returns true; otherwise
/// it fails under `HSB_REQUIRE_FEATURES=1` (CI sets it, in `.ci/run`; for KVM,
/// `HSB_REQUIRE_KVM=1` too), else prints a loud SKIPPED line and returns false.
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

/// A usable /dev/kvm (see [`feature`]).
pub fn kvm() -> bool {
    static STATE: OnceLock<Option<String>> = OnceLock::new();
    let missing = STATE.get_or_init(|| {
        let probe = MicroVmBackend::new().probe();
        (!probe.available).then(|| probe.reason.unwrap_or_else(|| "unknown".into()))
    });
    feature("KVM", missing.clone())
}

/// A root caller (see [`feature`]).
pub fn root_caller() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    feature(
        "a root caller",
        (euid != 0).then(|| format!("running as uid {euid}")),
    )
}

/// How a test program is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Toolchain {
    /// `musl-gcc -static`.
    Musl,
    /// `gcc -static` (glibc).
    Glibc,
    /// `gcc -static-pie` (glibc).
    GlibcPie,
}

impl Toolchain {
    pub fn all() -> [Toolchain; 3] {
        [Toolchain::Musl, Toolchain::Glibc, Toolchain::GlibcPie]
    }

    fn suffix(self) -> &'static str {
        match self {
            Toolchain::Musl => "musl",
            Toolchain::Glibc => "glibc",
            Toolchain::GlibcPie => "glibc-pie",
        }
    }
}

fn programs_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

/// A directory holding every test program: `<name>-musl`, `<name>-glibc`,
/// `<name>-glibc-pie`. Compiled once per set of sources (under cargo's target tmpdir,
/// keyed by a hash of the sources, published by an atomic rename), so test binaries
/// running side by side share it.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut sources: Vec<PathBuf> = std::fs::read_dir(programs_src())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "c"))
            .collect();
        sources.sort();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for src in &sources {
            for b in src
                .file_name()
                .unwrap()
                .as_encoded_bytes()
                .iter()
                .chain(std::fs::read(src).unwrap().iter())
            {
                hash = (hash ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("microvm-programs");
        let out = root.join(format!("{hash:016x}"));
        if out.is_dir() {
            return out;
        }
        let tmp = root.join(format!("tmp-{}-{hash:016x}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let mut jobs = Vec::new();
        for src in &sources {
            let stem = src.file_stem().unwrap().to_string_lossy().to_string();
            for tc in Toolchain::all() {
                let exe = tmp.join(format!("{stem}-{}", tc.suffix()));
                let (compiler, mode) = match tc {
                    Toolchain::Musl => ("musl-gcc", "-static"),
                    Toolchain::Glibc => ("gcc", "-static"),
                    Toolchain::GlibcPie => ("gcc", "-static-pie"),
                };
                let mut cmd = Command::new(compiler);
                cmd.args([mode, "-O1", "-o"]).arg(&exe).arg(src);
                let child = cmd.spawn().unwrap_or_else(|e| {
                    panic!("cannot run {compiler} (install musl-tools and gcc): {e}")
                });
                jobs.push((child, src.clone(), tc));
            }
        }
        for (mut child, src, tc) in jobs {
            let st = child.wait().unwrap();
            assert!(
                st.success(),
                "compiling {} with {tc:?} failed",
                src.display()
            );
        }
        if std::fs::rename(&tmp, &out).is_err() {
            // Another test binary published the same set first.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        out
    })
}

/// The path of a compiled test program.
pub fn prog(name: &str, tc: Toolchain) -> PathBuf {
    bin_dir().join(format!("{name}-{}", tc.suffix()))
}

/// A plan from the embedded default policy for `program args...`, with the test
/// programs' directory mounted read-only at /progs.
pub fn plan(program: &str, args: &[&str]) -> Plan {
    let w = Workload::new(program, args.iter().copied());
    let mut plan = Policy::embedded_default()
        .resolve(&w, &HostSupport::assume_all())
        .expect("default policy resolves");
    plan.mounts.push(sandbox_core::PlannedMount {
        source: bin_dir().to_path_buf(),
        target: "/progs".into(),
        mode: sandbox_core::MountMode::Ro,
        optional: false,
        system: false,
        noexec: false,
    });
    plan.limits.wall_time = Some(Duration::from_secs(20));
    plan
}

/// A plan running test program `name` built with `tc`.
pub fn prog_plan(name: &str, tc: Toolchain, args: &[&str]) -> Plan {
    let path = format!("/progs/{name}-{}", tc.suffix());
    let mut p = plan(&path, args);
    p.argv[0] = name.to_string();
    p
}

/// Runs a plan to its outcome.
pub async fn run(plan: Plan) -> Outcome {
    let mut exec = MicroVmBackend::new().spawn(plan).await.expect("spawn");
    exec.wait().await.expect("wait")
}

/// stdout as text.
pub fn stdout(o: &Outcome) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Outcome) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A host directory for one test, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh host directory for a test (under cargo's target tmpdir).
pub fn temp_dir(tag: &str) -> TempDir {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("microvm-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}
