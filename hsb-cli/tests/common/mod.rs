//! Shared helpers of the CLI tests: the feature rule.
#![allow(dead_code, unreachable_pub)]

/// The feature rule: a test that needs what this host lacks (KVM, a root caller, a
/// device only root may open...) never skips silently. With `missing` = `None` it
/// returns true; otherwise it fails under `HSB_REQUIRE_FEATURES=1` (CI sets it; for KVM
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

/// KVM for the micro-VM, as the library probes it.
pub fn kvm() -> bool {
    let probe = hybrid_sandbox::Sandbox::with_default_policy()
        .probe()
        .into_iter()
        .find(|p| p.isolation == hybrid_sandbox::Isolation::MicroVm)
        .expect("a micro-VM probe");
    feature(
        "KVM",
        (!probe.available).then(|| probe.reason.unwrap_or_default()),
    )
}

/// A root caller (to run hsb as another user).
pub fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    feature(
        "a root caller",
        (euid != 0).then(|| format!("running as uid {euid}")),
    )
}

/// A copy of hsb that an unprivileged user can execute (the build tree may be private).
pub fn hsb_copy(dir: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("hsb");
    std::fs::copy(env!("CARGO_BIN_EXE_hsb"), &p).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}
