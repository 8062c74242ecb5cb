//! The workload's seccomp filters: a default-deny allowlist kept as reviewable data in
//! `seccomp/workload.json` (one line and one reason per syscall), compiled with
//! seccompiler at build time (see `build.rs`) into a binary-search program.

use sandbox_core::SeccompAction;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/seccomp_filters.rs"));
}

/// The profile as shipped, for tests.
#[cfg(test)]
pub(crate) const PROFILE_JSON: &str = include_str!("../seccomp/workload.json");
/// The profile's name in enforcement reports.
pub(crate) const PROFILE_NAME: &str = "hybrid-sandbox/workload (default-deny allowlist)";

/// The filters, installed in this order: the user-notification filter (its listener
/// goes to the supervisor, see `crate::unotify`), the allowlist, the filter giving
/// credential calls that name another user EPERM (built per identity, see `ids`), then
/// the filter that
/// turns `clone3` and `openat2` into ENOSYS (the later filter wins ties between errno
/// actions). An errno action outranks a notification: a call the allowlist refuses
/// never reaches the supervisor.
#[derive(Debug)]
pub(crate) struct Filters {
    pub(crate) user_notif: &'static [libc::sock_filter],
    pub(crate) allowlist: &'static [libc::sock_filter],
    pub(crate) enosys: &'static [libc::sock_filter],
    /// Distinct syscalls the allowlist names.
    pub(crate) allowed_syscalls: usize,
}

/// The filters for `action`.
pub(crate) fn filters(action: SeccompAction) -> Filters {
    Filters {
        allowlist: match action {
            SeccompAction::Errno => &generated::WORKLOAD_ERRNO,
            SeccompAction::Kill => &generated::WORKLOAD_KILL,
        },
        user_notif: &generated::USER_NOTIF,
        enosys: &generated::ENOSYS,
        allowed_syscalls: generated::ALLOWED_SYSCALLS,
    }
}

/// A `sock_fprog` for the raw seccomp(2) call in the child.
pub(crate) fn fprog(prog: &'static [libc::sock_filter]) -> libc::sock_fprog {
    libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    }
}

pub(crate) mod ids;
#[cfg(test)]
mod tests;
