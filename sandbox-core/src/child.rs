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

/// A child of this process that shares its memory (`CLONE_VM`) and runs `main(args)` on
/// a stack of its own: a helper that needs none of its own memory (a fork of a large,
/// multithreaded caller would copy its page tables and shoot down the TLBs of every
/// CPU it ran on, and make every page it writes later a copy). The stack and the
/// arguments live until the child is reaped: dropping it kills and reaps the child
/// first, then frees them.
#[derive(Debug)]
pub struct MemChild<A> {
    pidfd: OwnedFd,
    pid: libc::pid_t,
    // Read by the child: freed only after it was reaped (see `Drop`).
    _args: Box<A>,
    _stack: Vec<u8>,
}

impl<A> MemChild<A> {
    /// Starts `main` with a pointer to `args` in a child cloned with `flags` (besides
    /// `CLONE_VM | CLONE_PIDFD | SIGCHLD`; without `CLONE_FILES` it has its own copy of
    /// the descriptor table) on a stack of `stack` bytes.
    ///
    /// # Safety
    /// `main` runs on this process's memory with the calling thread's thread pointer:
    /// it may make raw system calls only (no allocation, no locks, no libc function
    /// that touches `errno` or thread state), read `args` (never write through it, the
    /// owner holds a shared reference), and must fit in `stack` bytes. `flags` must
    /// not include `CLONE_SETTLS`, `CLONE_*TID` or `CLONE_THREAD`.
    pub unsafe fn start(
        main: extern "C" fn(*mut libc::c_void) -> libc::c_int,
        args: A,
        flags: libc::c_int,
        stack: usize,
    ) -> std::io::Result<MemChild<A>> {
        use std::os::fd::{FromRawFd, RawFd};
        let args = Box::new(args);
        let mut stack = vec![0u8; stack];
        // The top of the stack, 16-byte aligned as the ABI wants at a call.
        let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
        let mut pidfd: RawFd = -1;
        // SAFETY: glibc's clone runs `main` in the child on `top` (a live, exclusively
        // owned buffer kept, with `args`, until the child is reaped in `drop`), with
        // `args` as its argument; CLONE_PIDFD stores a descriptor in `pidfd`. What
        // `main` may do is the caller's promise (see the function's contract).
        let pid = unsafe {
            libc::clone(
                main,
                top as *mut libc::c_void,
                flags | libc::CLONE_VM | libc::CLONE_PIDFD | libc::SIGCHLD,
                &*args as *const A as *mut libc::c_void,
                &mut pidfd as *mut RawFd,
            )
        };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(MemChild {
            // SAFETY: CLONE_PIDFD stored a fresh pidfd that nothing else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
            pid,
            _args: args,
            _stack: stack,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }
}

impl<A> Drop for MemChild<A> {
    fn drop(&mut self) {
        // The child ends before its stack and arguments go, on every path out, an
        // unwinding one included (the fields are dropped after this).
        kill_and_reap(&self.pidfd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" fn exit_with(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the u8 the owner keeps until this child is reaped.
        let code = unsafe { *(arg as *const u8) };
        // SAFETY: a raw pause: waits for the kill (or returns at once on a signal).
        unsafe { libc::syscall(libc::SYS_pause) };
        code as libc::c_int
    }

    #[test]
    fn a_memory_sharing_child_runs_and_is_reaped_on_drop() {
        // SAFETY: `exit_with` reads its argument and makes one raw system call.
        let c = unsafe { MemChild::start(exit_with, 7u8, 0, 16 << 10) }.unwrap();
        let pid = c.pid();
        assert!(pid > 0);
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        drop(c);
        // Reaped: no zombie is left under that pid (it may be reused, but not this soon
        // by a process of ours in a test).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(!stat.contains(" Z "), "{stat}");
    }
}
