//! Which x86-64 Linux syscalls the personality answers, found by asking it: each
//! number is dispatched once, with zero arguments, on a throwaway kernel (no VM, no
//! KVM needed); the ones that reach the "not implemented" path answer `ENOSYS`.

use std::sync::Arc;
use std::time::Instant;

use crate::kick::Control;
use crate::linux::task::Process;
use crate::linux::{names, FdTable, Kernel, Limits, Settings};
use crate::memory::Memory;
use crate::mm::AddressSpace;
use crate::stdio::{Input, Output};

/// How the micro-VM answers a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented.
    Implemented,
    /// Implemented, with some variants refused (see [`SyscallSupport::note`]).
    Partial,
    /// Refused with `EPERM`, as Linux refuses an unprivileged user (mount, ptrace,
    /// modules, ...): the container backend's filter refuses them too.
    Refused,
    /// Answers `ENOSYS` (and is counted in the outcome's `unimplemented_syscalls`).
    Enosys,
}

/// One syscall of the x86-64 table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallSupport {
    /// Its number.
    pub nr: u32,
    /// Its name.
    pub name: String,
    /// How it is answered.
    pub support: Support,
    /// For partial support: what is refused.
    pub note: Option<&'static str>,
}

/// Syscalls with variants the micro-VM refuses (they are counted when used).
const PARTIAL: &[(&str, &str)] = &[
    (
        "socket",
        "no address family: there is no network stack (socketpair works)",
    ),
    ("bind", "only socket pairs exist"),
    ("connect", "only socket pairs exist"),
    ("listen", "only socket pairs exist"),
    ("accept", "only socket pairs exist"),
    ("accept4", "only socket pairs exist"),
    ("sendmsg", "no ancillary data (SCM_RIGHTS)"),
    ("mmap", "no writable MAP_SHARED mappings of host files (in-memory files and anonymous memory are shared)"),
    ("setitimer", "ITIMER_REAL only"),
    ("getitimer", "ITIMER_REAL only"),
    (
        "clone",
        "no CLONE_FILES/FS/SIGHAND between processes, no pidfd, no namespaces",
    ),
    ("futex", "no priority-inheritance operations"),
    ("mremap", "no MREMAP_FIXED/MREMAP_DONTUNMAP"),
    ("epoll_pwait", "the signal mask is not applied"),
    ("epoll_pwait2", "the signal mask is not applied"),
    ("fallocate", "mode 0 only"),
];

/// How each x86-64 syscall (0..=450) is answered.
pub fn syscall_table() -> Vec<SyscallSupport> {
    (0u32..=450)
        .filter_map(|nr| {
            let name = names::syscall_name(u64::from(nr));
            if name.starts_with("syscall_") {
                return None; // a number Linux does not assign
            }
            let enosys = answers_enosys(u64::from(nr), &name);
            let note = PARTIAL.iter().find(|(n, _)| *n == name).map(|(_, w)| *w);
            let refused = crate::linux::misc::REFUSED.contains(&name.as_str());
            let support = match (enosys, note) {
                _ if refused => Support::Refused,
                (true, _) => Support::Enosys,
                (false, Some(_)) => Support::Partial,
                (false, None) => Support::Implemented,
            };
            Some(SyscallSupport {
                nr,
                name,
                support,
                note: if support == Support::Partial {
                    note
                } else {
                    None
                },
            })
        })
        .collect()
}

/// Dispatches `nr` with zero arguments on a throwaway kernel; true when it took the
/// `ENOSYS` path.
fn answers_enosys(nr: u64, name: &str) -> bool {
    let Some(mut k) = throwaway_kernel() else {
        return false;
    };
    k.probe_syscall(nr);
    k.unimplemented.contains_key(name)
}

fn throwaway_kernel() -> Option<Kernel> {
    let mut mem = Memory::new(4 << 20).ok()?;
    let pt = crate::guest::build_supervisor(&mut mem).ok()?;
    let budget = mem.budget();
    let mut mm = AddressSpace::new(mem, pt);
    mm.start_first_space().ok()?;
    let plan = sandbox_core::Policy::embedded_default()
        .resolve(
            &sandbox_core::Workload::new("/none", Vec::<String>::new()),
            &sandbox_core::HostSupport::assume_all(),
        )
        .ok()?;
    let mut plan = plan;
    plan.mounts.clear();
    let vfs = crate::vfs::build(&plan, budget).ok()?;
    let cwd = vfs.root();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let proc = Process::first(FdTable::new(64), cwd, Vec::new(), Vec::new(), Vec::new());
    let settings = Settings {
        pids_limit: Some(4),
        limits: Limits {
            file_size: None,
            deadline: None,
            cpu: None,
            open_files: 64,
            memory: 4 << 20,
            stack: 8 << 20,
        },
        out: Output::new(tx, Some(1 << 16)),
        input: Input::Null,
        ctl: Arc::new(Control::default()),
        start: Instant::now(),
        hostname: "probe".into(),
        user: (1000, 1000),
        vdso: false,
    };
    Some(Kernel::new(mm, vfs, proc, (0x1000, 0x2000), settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_knows_what_is_implemented() {
        let t = syscall_table();
        let get = |n: &str| t.iter().find(|s| s.name == n).map(|s| s.support);
        assert_eq!(get("read"), Some(Support::Implemented));
        assert_eq!(get("fork"), Some(Support::Implemented));
        assert_eq!(get("socket"), Some(Support::Partial));
        assert_eq!(get("io_uring_setup"), Some(Support::Enosys));
        assert_eq!(get("ptrace"), Some(Support::Refused));
        assert_eq!(get("shmget"), Some(Support::Enosys));
        assert!(t.len() > 340, "{}", t.len());
    }
}
