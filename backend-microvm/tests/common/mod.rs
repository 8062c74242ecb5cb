//! Shared helpers of the micro-VM tests: the KVM rule, test programs built once, plans.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use backend_microvm::MicroVmBackend;
use sandbox_core::{Backend, HostSupport, Outcome, Plan, Policy, Workload};

/// The KVM rule: tests never skip silently. Without a usable /dev/kvm they fail when
/// `HSB_REQUIRE_KVM=1` (CI), else print a loud SKIPPED line and return `false`.
pub fn kvm() -> bool {
    static STATE: OnceLock<Result<(), String>> = OnceLock::new();
    let state = STATE.get_or_init(|| {
        let probe = MicroVmBackend::new().probe();
        if probe.available {
            Ok(())
        } else {
            Err(probe.reason.unwrap_or_else(|| "unknown".into()))
        }
    });
    match state {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var("HSB_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("HSB_REQUIRE_KVM=1 but KVM is unusable: {reason}");
            }
            eprintln!("SKIPPED: no KVM: {reason}");
            false
        }
    }
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

/// A directory holding every test program, compiled once per test binary:
/// `<name>-musl`, `<name>-glibc`, `<name>-glibc-pie`.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("hsb-microvm-progs-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let mut jobs = Vec::new();
        for entry in std::fs::read_dir(programs_src()).unwrap() {
            let src = entry.unwrap().path();
            if src.extension().is_none_or(|e| e != "c") {
                continue;
            }
            let stem = src.file_stem().unwrap().to_string_lossy().to_string();
            for tc in Toolchain::all() {
                let exe = out.join(format!("{stem}-{}", tc.suffix()));
                let mut cmd = match tc {
                    Toolchain::Musl => {
                        let mut c = Command::new("musl-gcc");
                        c.arg("-static");
                        c
                    }
                    Toolchain::Glibc => {
                        let mut c = Command::new("gcc");
                        c.arg("-static");
                        c
                    }
                    Toolchain::GlibcPie => {
                        let mut c = Command::new("gcc");
                        c.arg("-static-pie");
                        c
                    }
                };
                cmd.args(["-O1", "-o"]).arg(&exe).arg(&src);
                jobs.push((
                    cmd.spawn()
                        .unwrap_or_else(|e| panic!("cannot run the compiler for {tc:?}: {e}")),
                    src.clone(),
                    tc,
                ));
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

/// A fresh host directory for a test.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("hsb-microvm-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
