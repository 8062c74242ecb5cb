//! Children a library process makes for itself (helpers that share its memory).

use std::os::fd::{AsRawFd, OwnedFd};

/// Kills the child `pidfd` names (a pidfd of this process's own child) and reaps it.
pub fn kill_and_reap(pidfd: &OwnedFd) {
    // SAFETY: a pidfd names our child; a NULL siginfo sends a plain SIGKILL.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    // SAFETY: an all-zero siginfo_t is a valid out-parameter.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting on a pidfd of our child, killed above; waitid writes only
        // into `info`.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::__WALL,
            )
        };
        if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
}
