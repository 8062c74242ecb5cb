//! Which x86-64 Linux syscalls the personality answers: the public view of its
//! syscall table. A test dispatches every number on a throwaway kernel and checks
//! that each row answers as its level says.

use crate::linux::dispatch::Level;
use crate::linux::TABLE;

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
    /// What differs from Linux (partial support), why it is refused, or a remark.
    pub note: Option<&'static str>,
}

/// How each x86-64 syscall Linux assigns is answered, in number order: the
/// personality's syscall table itself (`linux/table.rs`), which also dispatches the
/// calls, so what this says is what runs.
pub fn syscall_table() -> Vec<SyscallSupport> {
    TABLE
        .iter()
        .map(|row| SyscallSupport {
            nr: row.nr,
            name: row.name.to_owned(),
            support: match row.level {
                Level::Full => Support::Implemented,
                Level::Partial => Support::Partial,
                Level::Refused => Support::Refused,
                Level::Enosys => Support::Enosys,
            },
            note: (!row.note.is_empty()).then_some(row.note),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::errno;
    use crate::kick::Control;
    use crate::linux::task::Process;
    use crate::linux::{FdTable, Kernel, Limits, Settings};
    use crate::memory::Memory;
    use crate::mm::AddressSpace;
    use crate::stdio::{Input, Output};

    /// A kernel with no VM behind it, for tests of its bookkeeping.
    pub(crate) fn throwaway_kernel() -> Option<Kernel> {
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
            network: crate::linux::inet::NetMode::None,
            egress: None,
        };
        Some(Kernel::new(mm, vfs, proc, (0x1000, 0x2000), settings))
    }

    #[test]
    fn the_table_knows_what_is_implemented() {
        let t = syscall_table();
        let get = |n: &str| t.iter().find(|s| s.name == n).map(|s| s.support);
        assert_eq!(get("read"), Some(Support::Implemented));
        assert_eq!(get("fork"), Some(Support::Implemented));
        assert_eq!(get("socket"), Some(Support::Partial));
        assert_eq!(get("io_uring_setup"), Some(Support::Enosys));
        assert_eq!(get("ptrace"), Some(Support::Refused));
        assert_eq!(get("shmget"), Some(Support::Implemented));
        assert_eq!(get("io_setup"), Some(Support::Enosys));
        assert!(t.len() > 370, "{}", t.len());
        assert!(t.windows(2).all(|w| w[0].nr < w[1].nr));
    }

    /// Every row answers a call with zero arguments as its level says: `ENOSYS` rows
    /// count it as unimplemented, refused rows answer `EPERM`, the others neither.
    #[test]
    fn every_row_answers_as_its_level_says() {
        for row in TABLE.iter() {
            let mut k = throwaway_kernel().expect("a throwaway kernel");
            let r = k.probe_syscall(u64::from(row.nr));
            let counted = k.unimplemented.contains_key(row.name);
            match row.level {
                Level::Enosys => {
                    assert!(counted, "{} is not counted", row.name);
                    assert_eq!(r, Err(errno::ENOSYS.into()), "{}", row.name);
                }
                Level::Refused => {
                    assert!(!counted, "{}", row.name);
                    assert_eq!(r, Err(errno::EPERM.into()), "{}", row.name);
                }
                Level::Full | Level::Partial => {
                    assert!(!counted, "{} counted as unimplemented", row.name);
                    assert_ne!(r, Err(errno::ENOSYS.into()), "{}", row.name);
                }
            }
        }
    }
}
