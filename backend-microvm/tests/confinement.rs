//! The VMM's own walls, proven with real runs: through the test hook (feature
//! `test-hooks`, on for this crate's tests only; see src/linux/hooks.rs) the guest
//! makes the confined VMM thread try a host syscall off its allowlist, which ends the
//! run as a policy violation the outcome shows, and open host paths outside the mounts,
//! which Landlock refuses, while a path inside a mount opens; and write a read-only
//! mount's file without the VFS's check, which the kernel refuses for a root caller
//! (whose mounts are read-only detached trees).

mod common;

use common::*;
use sandbox_core::{EnforcementLevel, SeccompAction, Termination};

#[tokio::test]
async fn a_host_syscall_off_the_allowlist_ends_the_run_as_a_violation() {
    if !kvm() {
        return;
    }
    for tc in Toolchain::all() {
        let o = run(prog_plan("hook", tc, &["syscall"])).await;
        assert_eq!(
            (o.termination, o.exit_code, o.signal),
            (Termination::PolicyViolation, None, Some(libc::SIGSYS)),
            "{tc:?}: {o:?}"
        );
        // The run ended at the violation: the workload never went on after it.
        assert_eq!(stdout(&o), "before\n", "{tc:?}");
        let err = stderr(&o);
        assert!(
            err.contains("policy violation: the VMM thread made host syscall 41 (socket)"),
            "{tc:?}: {err}"
        );
        let s = &o.enforcement.seccomp;
        assert!(s.enforced && s.applies_to == "vmm", "{s:?}");
        assert_eq!(s.action, SeccompAction::Kill, "{s:?}");
        assert_eq!(o.shell_status(), 128 + libc::SIGSYS);
    }
}

/// What glibc's malloc does on its own in the VMM thread when a thread arena trims its
/// heap (`open("/proc/sys/vm/overcommit_memory")`, made through the test hook exactly
/// as glibc makes it) fails with ENOSYS and the run goes on: the VMM's allocator never
/// takes it off its allowlist. (The real trims, from freed socket buffers and /tmp
/// symlinks, are run through the CLI in hybrid-sandbox/tests/microvm_vmm.rs: glibc
/// asks only once per process.)
#[tokio::test]
async fn a_libc_internal_open_fails_and_the_run_goes_on() {
    if !kvm() {
        return;
    }
    for tc in Toolchain::all() {
        let o = run(prog_plan("hook", tc, &["libc"])).await;
        assert_eq!(o.termination, Termination::Exited, "{tc:?}: {o:?}");
        assert_eq!(
            stdout(&o),
            format!("libc open: rc=-1 errno={}\nafter\n", libc::ENOSYS),
            "{tc:?}: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("policy violation"), "{tc:?}");
    }
}

#[tokio::test]
async fn landlock_refuses_host_paths_outside_the_mounts() {
    if !kvm() {
        return;
    }
    let inside = prog("hook", Toolchain::Musl);
    let inside = inside.to_str().unwrap();
    let o = run(prog_plan(
        "hook",
        Toolchain::Musl,
        &["open", "/etc/hostname"],
    ))
    .await;
    assert_eq!(o.termination, Termination::Exited, "{o:?}");
    let l = &o.enforcement.landlock;
    assert_eq!(l.applies_to, "vmm");
    if !feature(
        "Landlock",
        (l.level == EnforcementLevel::None).then(|| format!("this kernel enforces none: {l:?}")),
    ) {
        return;
    }
    assert!(l.enforced.iter().any(|f| f == "filesystem"), "{l:?}");
    assert_eq!(
        stdout(&o),
        format!("open /etc/hostname: rc=-1 errno={}\n", libc::EACCES),
        "{o:?}"
    );
    // A host path under a mount (the test programs, mounted read-only) opens: the walls
    // are the mounts, not everything.
    let o = run(prog_plan("hook", Toolchain::Musl, &["open", inside])).await;
    assert_eq!(
        stdout(&o),
        format!("open {inside}: rc=0 errno=0\n"),
        "{o:?}"
    );
    // Neither attempt is a seccomp violation: openat2 is on the allowlist.
    assert_eq!(o.termination, Termination::Exited, "{o:?}");
}

#[tokio::test]
async fn a_root_callers_read_only_mount_is_read_only_in_the_kernel() {
    if !kvm() {
        return;
    }
    // A rootless caller's mounts are the host paths themselves (no detached trees).
    if !root_caller() {
        return;
    }
    // A file the sandbox's identity could write, mounted read-only.
    let guard = temp_dir("ro");
    let dir = guard.path().to_path_buf();
    std::fs::write(dir.join("f"), "original").unwrap();
    for (p, mode) in [(dir.clone(), 0o777), (dir.join("f"), 0o666)] {
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let mut p = prog_plan("hook", Toolchain::Musl, &["write", "/ro/f"]);
    p.mounts.push(sandbox_core::PlannedMount {
        source: dir.clone(),
        target: "/ro".into(),
        mode: sandbox_core::MountMode::Ro,
        optional: false,
        system: false,
        noexec: false,
    });
    let o = run(p).await;
    assert_eq!(
        stdout(&o),
        format!("write /ro/f: rc=-1 errno={}\n", libc::EROFS),
        "{o:?}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "original");
}
