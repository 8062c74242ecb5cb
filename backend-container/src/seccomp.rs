//! The workload's seccomp filters: a default-deny allowlist kept as reviewable data in
//! `seccomp/workload.json` (one line and one reason per syscall), compiled with
//! seccompiler once per process and action.

use std::sync::OnceLock;

use sandbox_core::SeccompAction;
use seccompiler::{BpfProgram, TargetArch};

/// The profile as shipped. `mismatch_action` is replaced by the policy's action.
pub(crate) const PROFILE_JSON: &str = include_str!("../seccomp/workload.json");
/// The profile's name in enforcement reports.
pub(crate) const PROFILE_NAME: &str = "hybrid-sandbox/workload (default-deny allowlist)";

/// The compiled filters, installed in this order: the allowlist, then the filter that
/// turns `clone3` into ENOSYS (the later filter wins ties between errno actions).
#[derive(Debug)]
pub(crate) struct Filters {
    pub(crate) allowlist: BpfProgram,
    pub(crate) clone3_enosys: BpfProgram,
    /// Distinct syscalls the allowlist names.
    pub(crate) allowed_syscalls: usize,
}

/// Why the embedded profile could not be compiled (a build defect, caught by tests).
#[derive(Debug, thiserror::Error)]
#[error("the embedded seccomp profile does not compile")]
pub(crate) struct ProfileError(#[source] Box<dyn std::error::Error + Send + Sync>);

fn compile(action: SeccompAction) -> Result<Filters, ProfileError> {
    let mut doc: serde_json::Value =
        serde_json::from_str(PROFILE_JSON).map_err(|e| ProfileError(Box::new(e)))?;
    let mismatch = match action {
        SeccompAction::Errno => serde_json::json!({ "errno": libc::EPERM }),
        SeccompAction::Kill => serde_json::json!("kill_process"),
    };
    doc["workload"]["mismatch_action"] = mismatch;
    let allowed_syscalls = doc["workload"]["filter"]
        .as_array()
        .map(|rules| {
            let mut names: Vec<&str> = rules.iter().filter_map(|r| r["syscall"].as_str()).collect();
            names.sort_unstable();
            names.dedup();
            names.len()
        })
        .unwrap_or(0);
    let text = doc.to_string();
    let mut map = seccompiler::compile_from_json(text.as_bytes(), TargetArch::x86_64)
        .map_err(|e| ProfileError(Box::new(e)))?;
    let missing = || ProfileError("profile lacks a filter".into());
    Ok(Filters {
        allowlist: map.remove("workload").ok_or_else(missing)?,
        clone3_enosys: map.remove("clone3_enosys").ok_or_else(missing)?,
        allowed_syscalls,
    })
}

/// The filters for `action`, compiled on first use.
pub(crate) fn filters(action: SeccompAction) -> Result<&'static Filters, &'static ProfileError> {
    static ERRNO: OnceLock<Result<Filters, ProfileError>> = OnceLock::new();
    static KILL: OnceLock<Result<Filters, ProfileError>> = OnceLock::new();
    let cell = match action {
        SeccompAction::Errno => &ERRNO,
        SeccompAction::Kill => &KILL,
    };
    cell.get_or_init(|| compile(action)).as_ref()
}

/// A `sock_fprog` pointing into `prog`, for the raw seccomp(2) call in the child.
pub(crate) fn fprog(prog: &BpfProgram) -> libc::sock_fprog {
    libc::sock_fprog {
        len: prog.len() as u16,
        // seccompiler's `sock_filter` is `#[repr(C)]` with the kernel's layout
        // (u16 code, u8 jt, u8 jf, u32 k), identical to libc's.
        filter: prog.as_ptr() as *mut libc::sock_filter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_compiles_for_both_actions() {
        for action in [SeccompAction::Errno, SeccompAction::Kill] {
            let f = filters(action).unwrap();
            assert!(f.allowed_syscalls > 200, "{}", f.allowed_syscalls);
            assert!(f.allowlist.len() < u16::MAX as usize);
        }
    }

    #[test]
    fn dangerous_calls_are_not_listed() {
        let doc: serde_json::Value = serde_json::from_str(PROFILE_JSON).unwrap();
        let names: Vec<&str> = doc["workload"]["filter"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["syscall"].as_str())
            .collect();
        for bad in [
            "unshare",
            "setns",
            "mount",
            "umount2",
            "pivot_root",
            "move_mount",
            "open_tree",
            "fsopen",
            "fsmount",
            "mount_setattr",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "bpf",
            "keyctl",
            "add_key",
            "request_key",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "perf_event_open",
            "userfaultfd",
            "init_module",
            "finit_module",
            "delete_module",
            "kexec_load",
            "kexec_file_load",
            "reboot",
            "swapon",
            "acct",
            "iopl",
            "ioperm",
            "chroot",
            "open_by_handle_at",
            "modify_ldt",
            "syslog",
            "settimeofday",
            "clock_settime",
        ] {
            assert!(!names.contains(&bad), "{bad} is allowed");
        }
        for rule in doc["workload"]["filter"].as_array().unwrap() {
            assert!(
                rule.get("comment").is_some()
                    || rule["syscall"] == "personality"
                    || rule["syscall"] == "socket",
                "{rule} has no reason"
            );
        }
    }
}
