//! Test hooks (cargo feature `test-hooks`, on only for this crate's own tests, never
//! in default or release builds): a syscall, number [`TEST_HOOK`], through which a
//! guest makes the confined VMM thread do what a compromised personality would, so
//! that tests prove the VMM's own walls with real runs:
//!
//! - `TEST_HOOK(1)`: a host syscall off the VMM's allowlist (`socket(AF_INET)`). The
//!   seccomp filter traps it and the run ends as `policy_violation`.
//! - `TEST_HOOK(2, path)`: `openat2` of the absolute host path `path`, without
//!   `RESOLVE_BENEATH` (the call is on the allowlist, so only Landlock stands in the
//!   way). Answers 0 when the file opened, else `-errno` (`-EACCES` from Landlock).
//! - `TEST_HOOK(3, path)`: opens the host file behind the sandbox path `path` for
//!   writing, straight through its mount's handle, skipping the VFS's own read-only
//!   check (a personality bug). Answers 0 or `-errno` (`-EROFS` where the kernel holds
//!   the mount read-only: a root caller's mounts are read-only detached trees).
//! - `TEST_HOOK(5)`: the next host file the VFS opens is swapped for a FIFO between its
//!   lookup and its open (`NAME.fifo`, made beforehand by the test, renamed over
//!   `NAME`), as a host process sharing the directory could do.
//! - `TEST_HOOK(4)`: what glibc's malloc does on its own when a thread arena trims its
//!   heap (`check_may_shrink_heap`): `open("/proc/sys/vm/overcommit_memory")`, the
//!   plain libc call. The `vmm_libc` filter answers `-ENOSYS` and the run goes on.

use super::{Kernel, SysResult};
use crate::errno;

/// The hook's syscall number ("HSB" and a zero byte: no Linux syscall).
pub(crate) const TEST_HOOK: libc::c_long = 0x4853_4200;

impl Kernel {
    pub(crate) fn sys_test_hook(&mut self, op: u64, arg: u64) -> SysResult {
        match op {
            1 => {
                // SAFETY: socket(2) with constant arguments; a descriptor it makes is
                // closed below.
                let fd = unsafe {
                    libc::syscall(
                        libc::SYS_socket,
                        libc::AF_INET,
                        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                        0,
                    )
                };
                if fd < 0 {
                    return Err(errno::Errno::last().into());
                }
                // SAFETY: `fd` was just made here and nothing else holds it.
                unsafe { libc::close(fd as libc::c_int) };
                Ok(0)
            }
            2 => {
                let path = self.path_arg(arg)?;
                let c = std::ffi::CString::new(path).map_err(|_| errno::EINVAL)?;
                // SAFETY: open_how is plain integers; all-zero is valid.
                let mut how: libc::open_how = unsafe { std::mem::zeroed() };
                how.flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
                // SAFETY: `c` is a valid C string, `how` a valid open_how of the size
                // passed; a descriptor it makes is closed below.
                let fd = unsafe {
                    libc::syscall(
                        libc::SYS_openat2,
                        libc::AT_FDCWD,
                        c.as_ptr(),
                        &how as *const libc::open_how,
                        std::mem::size_of::<libc::open_how>(),
                    )
                };
                if fd < 0 {
                    return Err(errno::Errno::last().into());
                }
                // SAFETY: `fd` was just made here and nothing else holds it.
                unsafe { libc::close(fd as libc::c_int) };
                Ok(0)
            }
            3 => {
                use std::os::fd::AsRawFd;
                let path = self.path_arg(arg)?;
                let root = self.vfs.root();
                let loc = self.vfs.resolve(&root, &path, false)?;
                let crate::vfs::Node::HostFile { dir, name, .. } = loc.node() else {
                    return Err(errno::EINVAL.into());
                };
                crate::vfs::host::openat2(dir.as_raw_fd(), name, libc::O_WRONLY, 0)?;
                Ok(0)
            }
            4 => {
                // SAFETY: a constant NUL-terminated path; a descriptor it makes is
                // closed below.
                let fd = unsafe {
                    libc::open(
                        c"/proc/sys/vm/overcommit_memory".as_ptr(),
                        libc::O_RDONLY | libc::O_CLOEXEC,
                    )
                };
                if fd < 0 {
                    return Err(errno::Errno::last().into());
                }
                // SAFETY: `fd` was just made here and nothing else holds it.
                unsafe { libc::close(fd) };
                Ok(0)
            }
            5 => {
                crate::vfs::host::hooks::swap_before_next_open();
                Ok(0)
            }
            _ => Err(errno::EINVAL.into()),
        }
    }
}
