//! What this host lets the container backend do, detected once per process.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use sandbox_core::{BackendProbe, Isolation};
use serde_json::json;

use crate::{cgroup, landlock, sys};
/// Facts about the host, detected once.
#[derive(Debug, Clone)]
pub(crate) struct HostFacts {
    /// `Err(reason)` when sandboxes cannot be created here.
    pub(crate) usable: Result<(), String>,
    pub(crate) details: BTreeMap<String, serde_json::Value>,
}

/// What a run needs and can be checked without trying: seccomp and the mount API.
/// Namespace trouble (disabled, or restricted by AppArmor) shows up when the run tries.
pub(crate) fn quick() -> &'static Result<(), String> {
    static QUICK: OnceLock<Result<(), String>> = OnceLock::new();
    QUICK.get_or_init(|| {
        let seccomp = seccomp_supported();
        let attr = sys::MountAttr::default();
        let mount_api = !matches!(sys::mount_setattr(-1, c"", 0, &attr), Err(libc::ENOSYS));
        requirements(seccomp, mount_api, Ok(()))
    })
}

/// Whether the kernel has seccomp: PR_GET_SECCOMP fails with EINVAL without it.
fn seccomp_supported() -> bool {
    sys::prctl(libc::PR_GET_SECCOMP, 0).is_ok()
}

fn requirements(
    seccomp: bool,
    mount_api: bool,
    userns: Result<(), (&str, i32)>,
) -> Result<(), String> {
    if !seccomp {
        Err("the kernel has no seccomp support (CONFIG_SECCOMP_FILTER)".into())
    } else if !mount_api {
        Err("the kernel lacks the new mount API (open_tree/move_mount/mount_setattr, Linux 5.12 or later)".into())
    } else if let Err((what, errno)) = userns {
        let why = std::io::Error::from_raw_os_error(errno);
        Err(format!("{what} failed ({why}); {USERNS_HINT}"))
    } else {
        Ok(())
    }
}

/// What to do when user namespaces are not usable.
pub(crate) const USERNS_HINT: &str = "unprivileged user namespaces must be allowed \
    (sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1, \
    kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile that allows userns)";

pub(crate) fn facts() -> &'static HostFacts {
    static FACTS: OnceLock<HostFacts> = OnceLock::new();
    FACTS.get_or_init(detect)
}

fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Tries, in a short-lived child, what init will do: a user and mount namespace, and a
/// tmpfs made with the new mount API. Returns the errno of the first failure.
fn try_namespaces() -> Result<(), (&'static str, i32)> {
    let (pid, pidfd) =
        match sys::clone_pidfd((libc::CLONE_NEWUSER | libc::CLONE_NEWNS) as libc::c_ulong) {
            Ok((0, _)) => {
                let code = match sys::fsopen(c"tmpfs")
                    .and_then(|fs| sys::fsconfig_create(fs).and_then(|_| sys::fsmount(fs, 0)))
                {
                    Ok(_) => 0,
                    Err(e) => e.clamp(1, 255),
                };
                sys::exit(code)
            }
            Ok(p) => p,
            Err(e) => return Err(("creating a user namespace", e)),
        };
    let mut status = 0;
    // SAFETY: waiting for the child we just created; `status` is a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    sys::close(pidfd);
    if r != pid {
        return Err((
            "waiting for the namespace probe",
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ));
    }
    match libc::WEXITSTATUS(status) {
        0 => Ok(()),
        e => Err(("mounting a tmpfs inside a user namespace", e)),
    }
}

fn detect() -> HostFacts {
    let mut d = BTreeMap::new();
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    d.insert("rootless".into(), json!(euid != 0));
    d.insert(
        "kernel".into(),
        json!(read_trim("/proc/sys/kernel/osrelease")),
    );
    if let Some(v) = read_trim("/proc/sys/user/max_user_namespaces") {
        d.insert(
            "max_user_namespaces".into(),
            json!(v.parse::<u64>().unwrap_or(0)),
        );
    }
    if let Some(v) = read_trim("/proc/sys/kernel/unprivileged_userns_clone") {
        d.insert("unprivileged_userns_clone".into(), json!(v == "1"));
    }
    if let Some(v) = read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        d.insert(
            "apparmor_restrict_unprivileged_userns".into(),
            json!(v == "1"),
        );
    }
    let userns = try_namespaces();
    d.insert("user_namespaces".into(), json!(userns.is_ok()));
    let seccomp = seccomp_supported();
    d.insert("seccomp".into(), json!(seccomp));
    d.insert("landlock_abi".into(), json!(landlock::kernel_abi()));
    let cg = cgroup::host();
    d.insert("cgroup".into(), json!(cg.version_name()));
    if let cgroup::Host::Unusable { reason } = cg {
        d.insert("cgroup_note".into(), json!(reason));
    }
    // mount_setattr (5.12) is the newest mount call used; with a bad fd it fails with
    // EBADF where it exists and ENOSYS where it does not.
    let attr = sys::MountAttr::default();
    let mount_api = !matches!(sys::mount_setattr(-1, c"", 0, &attr), Err(libc::ENOSYS));
    d.insert("mount_api".into(), json!(mount_api));
    // A root caller's mounts are idmapped to their owners (see idmap.rs).
    let host = (
        crate::blueprint::ROOT_MODE_HOST_ID,
        crate::blueprint::ROOT_MODE_HOST_ID,
    );
    let idmap = sandbox_core::mount_source::idmap::probe(host);
    d.insert("idmapped_mounts".into(), json!(idmap.is_ok()));
    if let Err(why) = idmap {
        d.insert("idmapped_mounts_note".into(), json!(why));
    }
    // The egress network's link: init opens /dev/net/tun with the caller's identity.
    use std::os::unix::fs::MetadataExt;
    d.insert(
        "egress_tun".into(),
        json!(match std::fs::metadata("/dev/net/tun") {
            Ok(m) if m.mode() & 0o006 == 0o006 => "usable (mode 0666)".to_string(),
            Ok(m) => format!(
                "mode {:o}: usable by uid {} only (rootless egress needs mode 0666)",
                m.mode() & 0o777,
                m.uid()
            ),
            Err(e) => format!("missing ({e}): network = \"egress\" cannot run"),
        }),
    );

    let usable = requirements(seccomp, mount_api, userns);
    HostFacts { usable, details: d }
}

pub(crate) fn probe() -> BackendProbe {
    let f = facts();
    BackendProbe {
        isolation: Isolation::Container,
        available: f.usable.is_ok(),
        reason: f.usable.clone().err(),
        details: f.details.clone(),
    }
}
