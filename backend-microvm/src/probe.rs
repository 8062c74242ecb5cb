//! What the host offers the micro-VM: `/dev/kvm`, its kind (VT-x, AMD-V or PVM).

use std::collections::BTreeMap;
use std::path::Path;

use kvm_ioctls::Kvm;
use sandbox_core::{BackendProbe, Isolation};

/// The KVM flavour: `vmx` (Intel VT-x), `svm` (AMD-V), `pvm` (pagetable-based), or
/// `unknown`.
pub(crate) fn kvm_kind() -> &'static str {
    static KIND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    KIND.get_or_init(detect_kind)
}

fn detect_kind() -> &'static str {
    let module = |m: &str| Path::new("/sys/module").join(m).exists();
    let flags = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("flags"))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let flag = |f: &str| flags.split_whitespace().any(|x| x == f);
    if module("kvm_pvm") {
        "pvm"
    } else if module("kvm_intel") && flag("vmx") {
        "vmx"
    } else if module("kvm_amd") && flag("svm") {
        "svm"
    } else if module("kvm_intel") {
        "vmx"
    } else if module("kvm_amd") {
        "svm"
    } else {
        "unknown"
    }
}

/// `Ok` when a VM can be created here, else why not and what to do.
pub(crate) fn availability() -> Result<i32, String> {
    match Kvm::new() {
        Ok(kvm) => {
            let v = kvm.get_api_version();
            if v == 12 {
                Ok(v)
            } else {
                Err(format!("/dev/kvm speaks KVM API version {v}, not 12; upgrade the host kernel"))
            }
        }
        Err(e) if e.errno() == libc::ENOENT => Err("/dev/kvm does not exist: this host has no KVM. Run on a host with \
             hardware virtualization (load kvm_intel or kvm_amd), or use --isolation container for trusted workloads"
            .into()),
        Err(e) if e.errno() == libc::EACCES || e.errno() == libc::EPERM => Err("no permission to open /dev/kvm: \
             add this user to the `kvm` group (or run as root)"
            .into()),
        Err(e) => Err(format!("cannot open /dev/kvm: {}", std::io::Error::from_raw_os_error(e.errno()))),
    }
}

/// The probe the facade shows (`hsb probe`).
pub(crate) fn probe() -> BackendProbe {
    let mut details = BTreeMap::new();
    details.insert("kvm".into(), serde_json::json!(kvm_kind()));
    details.insert(
        "dev_kvm".into(),
        serde_json::json!(Path::new("/dev/kvm").exists()),
    );
    details.insert(
        "landlock_abi".into(),
        serde_json::json!(crate::confine::landlock_abi()),
    );
    details.insert(
        "vmm_seccomp".into(),
        serde_json::json!(crate::confine::check().is_ok()),
    );
    details.insert(
        "guest".into(),
        serde_json::json!("x86-64 ELF programs, static or dynamically linked (the loader from the sandbox's files), processes and threads on one vCPU; Linux syscall personality in the VMM"),
    );
    let available = availability();
    if let Ok(v) = &available {
        details.insert("kvm_api_version".into(), serde_json::json!(v));
    }
    BackendProbe {
        isolation: Isolation::MicroVm,
        available: available.is_ok(),
        reason: available.err(),
        details,
    }
}
