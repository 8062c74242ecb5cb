//! The syscall table: each x86-64 number to its handler (unknown ones to `ENOSYS`,
//! counted; the calls Linux refuses an unprivileged user to `EPERM`).

use std::time::Duration;

use super::{misc, names, Cpu, Kernel, SysResult, UserCtx};
use crate::errno::{self, Errno};

impl Kernel {
    #[allow(non_upper_case_globals)]
    pub(crate) fn dispatch(
        &mut self,
        cpu: &mut dyn Cpu,
        ctx: &mut UserCtx,
        nr: u64,
        a: [u64; 6],
    ) -> SysResult {
        use libc::*;
        let n = nr as c_long;
        match n {
            SYS_read => self.sys_read(a[0], a[1], a[2]),
            SYS_write => self.sys_write(a[0], a[1], a[2]),
            SYS_open => self.sys_openat(AT_FDCWD as u64, a[0], a[1], a[2]),
            SYS_close => self.sys_close(a[0]),
            SYS_stat => self.sys_newfstatat(AT_FDCWD as u64, a[0], a[1], 0),
            SYS_fstat => self.sys_fstat(a[0], a[1]),
            SYS_lstat => {
                self.sys_newfstatat(AT_FDCWD as u64, a[0], a[1], AT_SYMLINK_NOFOLLOW as u64)
            }
            SYS_poll => self.sys_poll(a[0], a[1], a[2] as i32 as i64),
            SYS_lseek => self.sys_lseek(a[0], a[1] as i64, a[2]),
            SYS_mmap => self.sys_mmap(a),
            SYS_mprotect => self.sys_mprotect(a[0], a[1], a[2]),
            SYS_munmap => self.sys_munmap(a[0], a[1]),
            SYS_brk => self.sys_brk(a[0]),
            SYS_rt_sigaction => self.sys_rt_sigaction(a[0], a[1], a[2], a[3]),
            SYS_rt_sigprocmask => self.sys_rt_sigprocmask(a[0], a[1], a[2], a[3]),
            SYS_rt_sigreturn => self.sys_rt_sigreturn(cpu, ctx),
            SYS_ioctl => self.sys_ioctl(a[0], a[1], a[2]),
            SYS_pread64 => self.sys_pread(a[0], a[1], a[2], a[3]),
            SYS_pwrite64 => self.sys_pwrite(a[0], a[1], a[2], a[3]),
            SYS_readv => self.sys_readv(a[0], a[1], a[2], None),
            SYS_writev => self.sys_writev(a[0], a[1], a[2], None),
            SYS_preadv => self.sys_readv(a[0], a[1], a[2], Some(a[3])),
            SYS_pwritev => self.sys_writev(a[0], a[1], a[2], Some(a[3])),
            SYS_access => self.sys_faccessat(AT_FDCWD as u64, a[0], a[1], 0),
            SYS_pipe => self.sys_pipe2(a[0], 0),
            SYS_select => self.sys_select(a[0], a[1], a[2], a[3], a[4], false),
            SYS_sched_yield => Ok(0),
            SYS_mremap => self.sys_mremap(a),
            SYS_msync => Ok(0),
            SYS_mincore => self.sys_mincore(a[0], a[1], a[2]),
            SYS_madvise => self.sys_madvise(a[0], a[1], a[2]),
            SYS_dup => self.sys_dup(a[0]),
            SYS_dup2 => self.sys_dup3(a[0], a[1], 0, true),
            SYS_pause => self.sys_pause(),
            SYS_nanosleep => self.sys_nanosleep(a[0], a[1]),
            SYS_alarm => self.sys_alarm(a[0]),
            SYS_getitimer => self.sys_getitimer(a[0], a[1]),
            SYS_setitimer => self.sys_setitimer(a[0], a[1], a[2]),
            SYS_getpid => Ok(u64::from(self.proc.pid)),
            SYS_sendfile => self.sys_sendfile(a[0], a[1], a[2], a[3]),
            SYS_exit => self.sys_exit(a[0]),
            SYS_exit_group => self.sys_exit_group(a[0]),
            SYS_wait4 => self.sys_wait4(a[0] as i32 as i64, a[1], a[2], a[3]),
            SYS_waitid => self.sys_waitid(a[0], a[1], a[2], a[3], a[4]),
            SYS_kill => self.sys_kill(a[0] as i32 as i64, a[1]),
            SYS_uname => self.sys_uname(a[0]),
            SYS_fcntl => self.sys_fcntl(a[0], a[1], a[2]),
            SYS_flock => self.proc.files.get(a[0]).map(|_| 0).map_err(Into::into),
            SYS_fsync | SYS_fdatasync => self.sys_fsync(a[0], n == SYS_fdatasync),
            SYS_truncate => self.sys_truncate(a[0], a[1]),
            SYS_ftruncate => self.sys_ftruncate(a[0], a[1]),
            SYS_getdents64 => self.sys_getdents64(a[0], a[1], a[2]),
            SYS_getcwd => self.sys_getcwd(a[0], a[1]),
            SYS_chdir => self.sys_chdir(a[0]),
            SYS_fchdir => self.sys_fchdir(a[0]),
            SYS_rename => self.sys_renameat2(AT_FDCWD as u64, a[0], AT_FDCWD as u64, a[1], 0),
            SYS_mkdir => self.sys_mkdirat(AT_FDCWD as u64, a[0], a[1]),
            SYS_rmdir => self.sys_unlinkat(AT_FDCWD as u64, a[0], AT_REMOVEDIR as u64),
            SYS_creat => self.sys_openat(
                AT_FDCWD as u64,
                a[0],
                (O_CREAT | O_WRONLY | O_TRUNC) as u64,
                a[1],
            ),
            SYS_link => self.sys_linkat(AT_FDCWD as u64, a[0], AT_FDCWD as u64, a[1], 0),
            SYS_unlink => self.sys_unlinkat(AT_FDCWD as u64, a[0], 0),
            SYS_symlink => self.sys_symlinkat(a[0], AT_FDCWD as u64, a[1]),
            SYS_readlink => self.sys_readlinkat(AT_FDCWD as u64, a[0], a[1], a[2]),
            SYS_chmod => self.sys_fchmodat(AT_FDCWD as u64, a[0], a[1], 0),
            SYS_fchmod => self.sys_fchmod(a[0], a[1]),
            SYS_chown | SYS_lchown => self.sys_chown(Some((AT_FDCWD as u64, a[0])), a[1], a[2]),
            SYS_fchown => self
                .sys_chown(None, a[1], a[2])
                .and_then(|v| self.proc.files.get(a[0]).map(|_| v).map_err(Into::into)),
            SYS_fchownat => self.sys_chown(Some((a[0], a[1])), a[2], a[3]),
            SYS_umask => {
                let old = self.proc.umask;
                self.proc.umask = a[0] as u32 & 0o777;
                Ok(u64::from(old))
            }
            SYS_gettimeofday => self.sys_gettimeofday(a[0]),
            SYS_getrlimit => self.sys_prlimit(0, a[0], 0, a[1]),
            SYS_setrlimit => self.sys_prlimit(0, a[0], a[1], 0),
            SYS_prlimit64 => self.sys_prlimit(a[0], a[1], a[2], a[3]),
            SYS_getrusage => self.sys_getrusage(a[0], a[1]),
            SYS_sysinfo => self.sys_sysinfo(a[0]),
            SYS_times => self.sys_times(a[0]),
            SYS_getuid | SYS_geteuid => Ok(u64::from(self.user.0)),
            SYS_getgid | SYS_getegid => Ok(u64::from(self.user.1)),
            SYS_getresuid => self.sys_getres(a, self.user.0),
            SYS_getresgid => self.sys_getres(a, self.user.1),
            SYS_setuid | SYS_setgid | SYS_setreuid | SYS_setregid | SYS_setresuid
            | SYS_setresgid | SYS_setgroups | SYS_setfsuid | SYS_setfsgid => self.sys_setid(n, a),
            SYS_getgroups => self.sys_getgroups(a[0], a[1]),
            SYS_getppid => Ok(u64::from(self.proc.ppid)),
            SYS_getpgrp => Ok(u64::from(self.proc.pgid)),
            SYS_getpgid => self.sys_getpgid(a[0]),
            SYS_getsid => self.sys_getsid(a[0]),
            SYS_setpgid => self.sys_setpgid(a[0], a[1]),
            SYS_setsid => self.sys_setsid(),
            SYS_rt_sigpending => self.sys_rt_sigpending(a[0], a[1]),
            SYS_rt_sigsuspend => self.sys_rt_sigsuspend(a[0], a[1]),
            SYS_rt_sigtimedwait => self.sys_rt_sigtimedwait(a[0], a[1], a[2], a[3]),
            SYS_sigaltstack => self.sys_sigaltstack(a[0], a[1]),
            SYS_statfs => self.sys_statfs(Some(a[0]), None, a[1]),
            SYS_fstatfs => self.sys_statfs(None, Some(a[0]), a[1]),
            SYS_getpriority => Ok(20),
            SYS_setpriority => Ok(0),
            SYS_sched_getaffinity => self.sys_sched_getaffinity(a[1], a[2]),
            SYS_sched_setaffinity => Ok(0),
            SYS_sched_getscheduler | SYS_sched_getparam => Ok(0),
            SYS_prctl => self.sys_prctl(a),
            SYS_arch_prctl => self.sys_arch_prctl(cpu, a[0], a[1]),
            SYS_gettid => Ok(u64::from(self.task.tid)),
            SYS_time => self.sys_time(a[0]),
            SYS_futex => self.sys_futex(a),
            SYS_set_tid_address => {
                self.task.clear_tid = a[0];
                Ok(u64::from(self.task.tid))
            }
            SYS_set_robust_list => Ok(0),
            SYS_clock_gettime => self.sys_clock_gettime(a[0], a[1]),
            SYS_clock_getres => self.sys_clock_getres(a[0], a[1]),
            SYS_clock_nanosleep => self.sys_clock_nanosleep(a[0], a[1], a[2], a[3]),
            SYS_tgkill => self.sys_tgkill(a[0] as i32 as i64, a[1] as i32 as i64, a[2]),
            SYS_tkill => self.sys_tgkill(-1, a[0] as i32 as i64, a[1]),
            SYS_openat => self.sys_openat(a[0], a[1], a[2], a[3]),
            SYS_openat2 => self.sys_openat2(a[0], a[1], a[2], a[3]),
            SYS_mkdirat => self.sys_mkdirat(a[0], a[1], a[2]),
            SYS_newfstatat => self.sys_newfstatat(a[0], a[1], a[2], a[3]),
            SYS_unlinkat => self.sys_unlinkat(a[0], a[1], a[2]),
            SYS_renameat => self.sys_renameat2(a[0], a[1], a[2], a[3], 0),
            SYS_renameat2 => self.sys_renameat2(a[0], a[1], a[2], a[3], a[4]),
            SYS_linkat => self.sys_linkat(a[0], a[1], a[2], a[3], a[4]),
            SYS_symlinkat => self.sys_symlinkat(a[0], a[1], a[2]),
            SYS_readlinkat => self.sys_readlinkat(a[0], a[1], a[2], a[3]),
            SYS_fchmodat => self.sys_fchmodat(a[0], a[1], a[2], 0),
            SYS_faccessat => self.sys_faccessat(a[0], a[1], a[2], 0),
            SYS_faccessat2 => self.sys_faccessat(a[0], a[1], a[2], a[3]),
            SYS_pselect6 => self.sys_select(a[0], a[1], a[2], a[3], a[4], true),
            SYS_ppoll => self.sys_ppoll(a[0], a[1], a[2]),
            SYS_utimensat => self.sys_utimensat(a[0], a[1], a[2], a[3]),
            SYS_utimes => self.sys_utimes(a[0], a[1]),
            SYS_fallocate => self.sys_fallocate(a[0], a[1], a[2], a[3]),
            SYS_dup3 => self.sys_dup3(a[0], a[1], a[2], false),
            SYS_pipe2 => self.sys_pipe2(a[0], a[1]),
            SYS_getrandom => self.sys_getrandom(a[0], a[1], a[2]),
            SYS_statx => self.sys_statx(a[0], a[1], a[2], a[3], a[4]),
            SYS_membarrier => Ok(0),
            SYS_copy_file_range => Err(errno::EXDEV.into()),
            SYS_fadvise64 => self.proc.files.get(a[0]).map(|_| 0).map_err(Into::into),
            SYS_socket => self.sys_socket(a[0]),
            SYS_socketpair => self.sys_socketpair(a[0], a[1], a[2], a[3]),
            SYS_sendto => self.sys_sendto(a[0], a[1], a[2], a[3], a[4], a[5]),
            SYS_recvfrom => self.sys_recvfrom(a[0], a[1], a[2], a[3], a[4], a[5]),
            SYS_sendmsg => self.sys_sendmsg(a[0], a[1], a[2]),
            SYS_recvmsg => self.sys_recvmsg(a[0], a[1], a[2]),
            SYS_shutdown => self.sys_shutdown(a[0], a[1]),
            SYS_getsockname | SYS_getpeername => self.sys_getsockname(a[0], a[1], a[2]),
            SYS_getsockopt => self.sys_getsockopt(a[0], a[1], a[2], a[3], a[4]),
            SYS_setsockopt => self.sys_setsockopt(a[0], a[1]),
            SYS_bind | SYS_listen | SYS_accept | SYS_accept4 => self
                .sys_getsockname(a[0], 0, 0)
                .and(Err(errno::EINVAL.into())),
            SYS_connect => self
                .sys_getsockname(a[0], 0, 0)
                .and(Err(errno::EISCONN.into())),
            SYS_epoll_create => {
                if a[0] as i32 <= 0 {
                    Err(errno::EINVAL.into())
                } else {
                    self.sys_epoll_create1(0)
                }
            }
            SYS_epoll_create1 => self.sys_epoll_create1(a[0]),
            SYS_epoll_ctl => self.sys_epoll_ctl(a[0], a[1], a[2], a[3]),
            SYS_epoll_wait | SYS_epoll_pwait => {
                let t = (a[3] as i32 >= 0).then(|| Duration::from_millis(a[3] as i32 as u64));
                self.sys_epoll_wait(a[0], a[1], a[2], t)
            }
            SYS_epoll_pwait2 => {
                let t = if a[3] == 0 {
                    None
                } else {
                    Some(self.timespec(a[3])?)
                };
                self.sys_epoll_wait(a[0], a[1], a[2], t)
            }
            SYS_eventfd => self.sys_eventfd2(a[0], 0),
            SYS_eventfd2 => self.sys_eventfd2(a[0], a[1]),
            SYS_close_range => self.sys_close_range(a[0], a[1], a[2]),
            SYS_getdents => self.sys_getdents(a[0], a[1], a[2]),
            SYS_mknod => self.sys_mknodat(AT_FDCWD as u64, a[0], a[1]),
            SYS_mknodat => self.sys_mknodat(a[0], a[1], a[2]),
            SYS_utime => self.sys_utime(a[0], a[1]),
            SYS_futimesat => self.sys_futimesat(a[0], a[1], a[2]),
            SYS_sched_setparam => self.sys_sched_set(None, a[1]),
            SYS_sched_setscheduler => self.sys_sched_set(Some(a[1]), a[2]),
            SYS_sched_get_priority_max | SYS_sched_get_priority_min => match a[0] {
                0 | 3 | 5 => Ok(0),
                1 | 2 => Ok(if n == SYS_sched_get_priority_max {
                    99
                } else {
                    1
                }),
                _ => Err(errno::EINVAL.into()),
            },
            SYS_sched_rr_get_interval => self.sys_sched_rr_get_interval(a[1]),
            SYS_getcpu => self.sys_getcpu(a[0], a[1]),
            SYS_mlock | SYS_munlock | SYS_mlock2 | SYS_mlockall | SYS_munlockall => Ok(0),
            SYS_sync => Ok(0),
            SYS_syncfs | SYS_readahead | SYS_sync_file_range => self.fd_ok(a[0]),
            SYS_capget => self.sys_capget(a[0], a[1]),
            SYS_capset => self.sys_capset(a[1]),
            SYS_getxattr => self.sys_xattr("get", a[0], true, false),
            SYS_lgetxattr => self.sys_xattr("get", a[0], false, false),
            SYS_fgetxattr => self.sys_xattr("get", a[0], true, true),
            SYS_listxattr => self.sys_xattr("list", a[0], true, false),
            SYS_llistxattr => self.sys_xattr("list", a[0], false, false),
            SYS_flistxattr => self.sys_xattr("list", a[0], true, true),
            SYS_setxattr | SYS_removexattr => self.sys_xattr("set", a[0], true, false),
            SYS_lsetxattr | SYS_lremovexattr => self.sys_xattr("set", a[0], false, false),
            SYS_fsetxattr | SYS_fremovexattr => self.sys_xattr("set", a[0], true, true),
            SYS_memfd_create => self.sys_memfd_create(a[0], a[1]),
            SYS_preadv2 => self.sys_prwv2(false, a),
            SYS_pwritev2 => self.sys_prwv2(true, a),
            SYS_splice => self.sys_splice(a),
            SYS_sendmmsg => self.sys_mmsg(true, a[0], a[1], a[2], a[3]),
            SYS_recvmmsg => self.sys_mmsg(false, a[0], a[1], a[2], a[3]),
            SYS_rt_sigqueueinfo => self.sys_sigqueue(a[0], None, a[1], a[2]),
            SYS_rt_tgsigqueueinfo => self.sys_sigqueue(a[0], Some(a[1]), a[2], a[3]),
            SYS_restart_syscall => Err(Errno(libc::EINTR).into()),
            SYS_unshare => self.sys_unshare(a[0]),
            SYS_personality => self.sys_personality(a[0]),
            SYS_get_robust_list => self.sys_get_robust_list(a[0], a[1], a[2]),
            SYS_ioprio_get => Ok(0x4004),
            SYS_ioprio_set => Ok(0),
            SYS_clone => self.sys_clone(cpu, ctx, a),
            // As in the container backend (whose filter cannot see clone3's flags):
            // ENOSYS, and glibc falls back to clone; both backends behave alike.
            SYS_clone3 => self.enosys(nr),
            SYS_fork => self.sys_fork(cpu, ctx),
            SYS_vfork => self.sys_vfork(cpu, ctx),
            SYS_execve => self.sys_execve(cpu, ctx, AT_FDCWD as u64, a[0], a[1], a[2], 0),
            SYS_execveat => self.sys_execve(cpu, ctx, a[0], a[1], a[2], a[3], a[4]),
            #[cfg(feature = "test-hooks")]
            super::hooks::TEST_HOOK => self.sys_test_hook(a[0], a[1]),
            _ => {
                if misc::REFUSED.contains(&names::syscall_name(nr).as_str()) {
                    // What an unprivileged Linux user gets (the container's filter too).
                    Err(errno::EPERM.into())
                } else {
                    self.enosys(nr)
                }
            }
        }
    }
}
