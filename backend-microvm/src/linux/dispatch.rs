//! The syscall table's machinery: what a row is ([`Syscall`]), how a call reaches its
//! handler ([`Kernel::dispatch`]), names for traces and reports. The rows themselves
//! are `table.rs`, one per x86-64 number, as gVisor keeps its syscall table: the one
//! place that says which numbers exist, what they are called, who answers them and
//! how well (the public `syscall_table()`, the counted `unimplemented_syscalls` and
//! the generated part of `docs/compat.md` all read it).
//!
//! Adding a syscall is one row (`full(nr, "name", |k, c| k.sys_name(..))`) plus its
//! handler in the file of its family.

use std::borrow::Cow;

use super::table::TABLE;
use super::{Cpu, Kernel, SysResult, UserCtx};
use crate::errno;
use crate::mm::UserPtr;

/// How a row is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// Implemented as Linux does it.
    Full,
    /// Implemented, with variants refused (counted when used) or behaviour that
    /// differs: the note says which.
    Partial,
    /// `EPERM`, as Linux answers an unprivileged user (the container's filter too).
    Refused,
    /// `ENOSYS`, counted in the outcome's `unimplemented_syscalls`.
    Enosys,
}

/// A syscall as the calling task made it: its number, its six arguments, and the CPU
/// state the few calls that change registers need.
pub(crate) struct Call<'a> {
    /// The vCPU state beyond the general registers (FS base, FPU).
    pub(crate) cpu: &'a mut dyn Cpu,
    /// The user-mode registers the task resumes with.
    pub(crate) ctx: &'a mut UserCtx,
    /// The syscall number.
    pub(crate) nr: u64,
    /// `rdi, rsi, rdx, r10, r8, r9`.
    pub(crate) a: [u64; 6],
}

impl Call<'_> {
    /// Argument `i` as a pointer to a `T` of the workload.
    pub(crate) fn ptr<T>(&self, i: usize) -> UserPtr<T> {
        UserPtr::new(self.a[i])
    }

    /// Argument `i` as a C `int` (Linux reads only the low 32 bits), sign-extended.
    pub(crate) fn int(&self, i: usize) -> i64 {
        i64::from(self.a[i] as i32)
    }
}

/// A handler: the kernel and the call; the result goes to `rax`.
pub(crate) type Handler = fn(&mut Kernel, &mut Call<'_>) -> SysResult;

/// One row of the table.
#[derive(Clone, Copy)]
pub(crate) struct Syscall {
    /// The x86-64 number.
    pub(crate) nr: u32,
    /// Its name (as in the kernel's `syscall_64.tbl`).
    pub(crate) name: &'static str,
    /// How well it is answered.
    pub(crate) level: Level,
    /// What differs from Linux, or why it is refused (empty: nothing to say).
    pub(crate) note: &'static str,
    /// Who answers it (`None` for refused and `ENOSYS` rows).
    pub(crate) handler: Option<Handler>,
    /// Made again after a handler installed with `SA_RESTART` (when it blocked).
    pub(crate) restart: bool,
}

impl std::fmt::Debug for Syscall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syscall")
            .field("nr", &self.nr)
            .field("name", &self.name)
            .field("level", &self.level)
            .field("note", &self.note)
            .finish()
    }
}

/// A row answered by `handler`, as Linux does.
pub(crate) const fn full(nr: u32, name: &'static str, handler: Handler) -> Syscall {
    Syscall {
        nr,
        name,
        level: Level::Full,
        note: "",
        handler: Some(handler),
        restart: false,
    }
}

/// A row answered by `handler`, with the differences from Linux in `note`.
pub(crate) const fn partial(
    nr: u32,
    name: &'static str,
    note: &'static str,
    handler: Handler,
) -> Syscall {
    Syscall {
        nr,
        name,
        level: Level::Partial,
        note,
        handler: Some(handler),
        restart: false,
    }
}

/// A row answered `EPERM`, as Linux answers an unprivileged user; `why` says what it
/// would need.
pub(crate) const fn refused(nr: u32, name: &'static str, why: &'static str) -> Syscall {
    Syscall {
        nr,
        name,
        level: Level::Refused,
        note: why,
        handler: None,
        restart: false,
    }
}

/// A row answered `ENOSYS` and counted.
pub(crate) const fn enosys(nr: u32, name: &'static str) -> Syscall {
    Syscall {
        nr,
        name,
        level: Level::Enosys,
        note: "",
        handler: None,
        restart: false,
    }
}

impl Syscall {
    /// The same row with a note (for full rows: a remark, not a difference).
    pub(crate) const fn note(mut self, note: &'static str) -> Syscall {
        self.note = note;
        self
    }

    /// The same row, restarted after an `SA_RESTART` handler.
    pub(crate) const fn restarts(mut self) -> Syscall {
        self.restart = true;
        self
    }
}

/// The highest number of the table.
pub(crate) const MAX_NR: usize = 469;

/// Row index of each number (`u16::MAX`: Linux assigns none), built and checked at
/// compile time: the rows must be in increasing order, without duplicates, in range.
static INDEX: [u16; MAX_NR + 1] = {
    let mut index = [u16::MAX; MAX_NR + 1];
    let mut i = 0;
    while i < TABLE.len() {
        let nr = TABLE[i].nr as usize;
        assert!(nr <= MAX_NR, "a syscall number beyond MAX_NR");
        assert!(
            i == 0 || TABLE[i - 1].nr < TABLE[i].nr,
            "table rows out of order or repeated"
        );
        let handled = TABLE[i].handler.is_some();
        let answered = matches!(TABLE[i].level, Level::Full | Level::Partial);
        assert!(
            handled == answered,
            "a row's handler does not match its level"
        );
        index[nr] = i as u16;
        i += 1;
    }
    index
};

/// The row of syscall `nr`.
pub(crate) fn lookup(nr: u64) -> Option<&'static Syscall> {
    let i = *INDEX.get(usize::try_from(nr).ok()?)?;
    TABLE.get(usize::from(i))
}

/// The name of syscall `nr`, or `syscall_<nr>` when Linux assigns none.
pub(crate) fn syscall_name(nr: u64) -> Cow<'static, str> {
    match lookup(nr) {
        Some(s) => Cow::Borrowed(s.name),
        None => Cow::Owned(format!("syscall_{nr}")),
    }
}

/// Whether `nr` is made again after a handler installed with `SA_RESTART`.
pub(crate) fn restartable(nr: u64) -> bool {
    lookup(nr).is_some_and(|s| s.restart)
}

impl Kernel {
    /// Answers syscall `nr` of the current task through its row of the table.
    pub(crate) fn dispatch(
        &mut self,
        cpu: &mut dyn Cpu,
        ctx: &mut UserCtx,
        nr: u64,
        a: [u64; 6],
    ) -> SysResult {
        #[cfg(feature = "test-hooks")]
        if nr == super::hooks::TEST_HOOK as u64 {
            return self.sys_test_hook(a[0], a[1]);
        }
        let Some(row) = lookup(nr) else {
            return self.enosys(nr);
        };
        match (row.handler, row.level) {
            (Some(handler), _) => {
                self.current = Some(row);
                let r = handler(self, &mut Call { cpu, ctx, nr, a });
                self.current = None;
                r
            }
            (None, Level::Refused) => Err(errno::EPERM.into()),
            (None, _) => self.enosys(nr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_linux_numbers() {
        assert_eq!(syscall_name(0), "read");
        assert_eq!(syscall_name(59), "execve");
        assert_eq!(syscall_name(231), "exit_group");
        assert_eq!(syscall_name(334), "rseq");
        assert_eq!(syscall_name(335), "syscall_335");
        assert_eq!(syscall_name(424), "pidfd_send_signal");
        assert_eq!(syscall_name(452), "fchmodat2");
        assert_eq!(syscall_name(462), "mseal");
        assert_eq!(syscall_name(469), "file_setattr");
        assert_eq!(syscall_name(470), "syscall_470");
        assert_eq!(syscall_name(u64::MAX), format!("syscall_{}", u64::MAX));
    }

    #[test]
    fn names_agree_with_the_libc_crate() {
        use libc::*;
        for (nr, name) in [
            (SYS_read, "read"),
            (SYS_rt_sigreturn, "rt_sigreturn"),
            (SYS_clone3, "clone3"),
            (SYS_futex_waitv, "futex_waitv"),
            (SYS_set_mempolicy_home_node, "set_mempolicy_home_node"),
            (SYS_fchmodat2, "fchmodat2"),
            (SYS_mseal, "mseal"),
            (SYS_statx, "statx"),
            (SYS_openat2, "openat2"),
        ] {
            assert_eq!(syscall_name(nr as u64), name);
        }
    }

    #[test]
    fn every_row_is_answered_as_its_level_says() {
        for row in TABLE.iter() {
            assert_eq!(
                row.handler.is_some(),
                matches!(row.level, Level::Full | Level::Partial),
                "{}",
                row.name
            );
            if row.level == Level::Partial {
                assert!(!row.note.is_empty(), "partial {} needs a note", row.name);
            }
            if row.level == Level::Refused {
                assert!(!row.note.is_empty(), "refused {} needs a reason", row.name);
            }
        }
    }

    #[test]
    fn the_restarted_calls_are_linux_s() {
        let restarted: Vec<&str> = TABLE.iter().filter(|r| r.restart).map(|r| r.name).collect();
        for n in [
            "read", "write", "wait4", "futex", "openat", "recvmsg", "accept4",
        ] {
            assert!(restarted.contains(&n), "{n}");
        }
        for n in ["nanosleep", "pause", "rt_sigsuspend", "poll", "select"] {
            assert!(!restarted.contains(&n), "{n}");
        }
    }
}
