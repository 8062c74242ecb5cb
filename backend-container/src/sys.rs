//! Thin wrappers over raw system calls.
//!
//! Everything here is safe to call in the child between `clone` and `execve`: no
//! allocation, no lock, no glibc state (the child of a raw `clone` from a multithreaded
//! process must not touch malloc or glibc's thread list). Errors are plain errno values.

use std::ffi::CStr;
use std::os::fd::RawFd;

use libc::{c_int, c_long, c_uint, c_ulong, c_void};

/// An errno value.
pub(crate) type Errno = i32;
/// A syscall's result: its non-negative return value, or errno.
pub(crate) type SysResult = Result<c_long, Errno>;

fn errno() -> Errno {
    // Reads this thread's errno; allocates nothing.
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(ret: c_long) -> SysResult {
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

macro_rules! syscall {
    ($nr:expr $(, $a:expr)* $(,)?) => {{
        // SAFETY: each wrapper below passes only integers, or pointers derived from
        // references that stay valid for the duration of the call, matching the
        // kernel's expected argument types for that syscall number.
        check(unsafe { libc::syscall($nr $(, $a)*) })
    }};
}

// Constants of the new mount API (include/uapi/linux/mount.h), not all in `libc`.
pub(crate) const OPEN_TREE_CLONE: c_uint = 1;
pub(crate) const OPEN_TREE_CLOEXEC: c_uint = libc::O_CLOEXEC as c_uint;
pub(crate) const MOVE_MOUNT_F_EMPTY_PATH: c_uint = 0x04;
pub(crate) const MOVE_MOUNT_T_EMPTY_PATH: c_uint = 0x40;
pub(crate) const FSOPEN_CLOEXEC: c_uint = 1;
pub(crate) const FSCONFIG_SET_STRING: c_uint = 1;
pub(crate) const FSCONFIG_CMD_CREATE: c_uint = 6;
pub(crate) const FSMOUNT_CLOEXEC: c_uint = 1;
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x01;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x02;
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x04;
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x08;
pub(crate) const AT_RECURSIVE: c_uint = 0x8000;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MountAttr {
    pub(crate) attr_set: u64,
    pub(crate) attr_clr: u64,
    pub(crate) propagation: u64,
    pub(crate) userns_fd: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the uapi header).
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
struct LandlockPathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}

const LANDLOCK_RULE_PATH_BENEATH: c_uint = 1;

pub(crate) fn close(fd: RawFd) {
    let _ = syscall!(libc::SYS_close, fd);
}

pub(crate) fn close_range(first: c_uint, last: c_uint) -> SysResult {
    syscall!(libc::SYS_close_range, first, last, 0)
}

pub(crate) fn dup2(old: RawFd, new: RawFd) -> SysResult {
    if old == new {
        // dup2 to itself keeps FD_CLOEXEC: clear it so the fd survives execve.
        return syscall!(libc::SYS_fcntl, old, libc::F_SETFD, 0);
    }
    syscall!(libc::SYS_dup3, old, new, 0)
}

pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> SysResult {
    syscall!(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len())
}

/// Writes all of `buf`, retrying on EINTR and short writes.
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match syscall!(libc::SYS_write, fd, buf.as_ptr(), buf.len()) {
            Ok(n) => buf = &buf[n as usize..],
            Err(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(crate) fn openat(dir: RawFd, path: &CStr, flags: c_int, mode: c_uint) -> Result<RawFd, Errno> {
    syscall!(libc::SYS_openat, dir, path.as_ptr(), flags, mode).map(|fd| fd as RawFd)
}

/// openat2(2) with `how.resolve` flags.
pub(crate) fn openat2(dir: RawFd, path: &CStr, flags: u64, resolve: u64) -> Result<RawFd, Errno> {
    // SAFETY: an all-zero `open_how` is a valid value of this plain C struct.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags;
    how.resolve = resolve;
    syscall!(
        libc::SYS_openat2,
        dir,
        path.as_ptr(),
        &how as *const libc::open_how,
        std::mem::size_of::<libc::open_how>()
    )
    .map(|fd| fd as RawFd)
}

/// Whether `path` exists (without following a final symlink).
pub(crate) fn exists(path: &CStr) -> bool {
    syscall!(
        libc::SYS_faccessat,
        libc::AT_FDCWD,
        path.as_ptr(),
        libc::F_OK,
        0
    )
    .is_ok()
}

pub(crate) fn mkdirat(dir: RawFd, name: &CStr, mode: c_uint) -> SysResult {
    syscall!(libc::SYS_mkdirat, dir, name.as_ptr(), mode)
}

pub(crate) fn unlinkat(dir: RawFd, name: &CStr) -> Result<(), Errno> {
    syscall!(libc::SYS_unlinkat, dir, name.as_ptr(), 0).map(|_| ())
}

pub(crate) fn symlinkat(target: &CStr, dir: RawFd, name: &CStr) -> SysResult {
    syscall!(libc::SYS_symlinkat, target.as_ptr(), dir, name.as_ptr())
}

/// `fstat`, returning (st_dev, st_ino, st_mode).
pub(crate) fn fstat_id(fd: RawFd) -> Result<(u64, u64, u32), Errno> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    syscall!(libc::SYS_fstat, fd, &mut st as *mut libc::stat)?;
    Ok((st.st_dev, st.st_ino, st.st_mode))
}

pub(crate) fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
) -> SysResult {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    syscall!(
        libc::SYS_mount,
        p(src),
        target.as_ptr(),
        p(fstype),
        flags,
        std::ptr::null::<c_void>()
    )
}

pub(crate) fn open_tree(dir: RawFd, path: &CStr, flags: c_uint) -> Result<RawFd, Errno> {
    syscall!(libc::SYS_open_tree, dir, path.as_ptr(), flags).map(|fd| fd as RawFd)
}

pub(crate) fn move_mount(
    from_dir: RawFd,
    from: &CStr,
    to_dir: RawFd,
    to: &CStr,
    flags: c_uint,
) -> SysResult {
    syscall!(
        libc::SYS_move_mount,
        from_dir,
        from.as_ptr(),
        to_dir,
        to.as_ptr(),
        flags
    )
}

pub(crate) fn mount_setattr(dir: RawFd, path: &CStr, flags: c_uint, attr: &MountAttr) -> SysResult {
    syscall!(
        libc::SYS_mount_setattr,
        dir,
        path.as_ptr(),
        flags,
        attr as *const MountAttr,
        std::mem::size_of::<MountAttr>()
    )
}

pub(crate) fn fsopen(fstype: &CStr) -> Result<RawFd, Errno> {
    syscall!(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC).map(|fd| fd as RawFd)
}

pub(crate) fn fsconfig_string(fs: RawFd, key: &CStr, value: &CStr) -> SysResult {
    syscall!(
        libc::SYS_fsconfig,
        fs,
        FSCONFIG_SET_STRING,
        key.as_ptr(),
        value.as_ptr(),
        0
    )
}

/// fsconfig(FSCONFIG_SET_FLAG, key).
pub(crate) fn fsconfig_flag(fs: RawFd, key: &CStr) -> SysResult {
    syscall!(
        libc::SYS_fsconfig,
        fs,
        0 as c_uint,
        key.as_ptr(),
        std::ptr::null::<c_void>(),
        0
    )
}

pub(crate) fn fsconfig_create(fs: RawFd) -> SysResult {
    syscall!(
        libc::SYS_fsconfig,
        fs,
        FSCONFIG_CMD_CREATE,
        std::ptr::null::<c_void>(),
        std::ptr::null::<c_void>(),
        0
    )
}

pub(crate) fn fsmount(fs: RawFd, attrs: u64) -> Result<RawFd, Errno> {
    syscall!(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs).map(|fd| fd as RawFd)
}

pub(crate) fn pivot_root(new_root: &CStr, put_old: &CStr) -> SysResult {
    syscall!(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr())
}

pub(crate) fn umount2(target: &CStr, flags: c_int) -> SysResult {
    syscall!(libc::SYS_umount2, target.as_ptr(), flags)
}

pub(crate) fn fchdir(fd: RawFd) -> SysResult {
    syscall!(libc::SYS_fchdir, fd)
}

pub(crate) fn chdir(path: &CStr) -> SysResult {
    syscall!(libc::SYS_chdir, path.as_ptr())
}

pub(crate) fn sethostname(name: &[u8]) -> SysResult {
    syscall!(libc::SYS_sethostname, name.as_ptr(), name.len())
}

pub(crate) fn unshare(flags: c_int) -> SysResult {
    syscall!(libc::SYS_unshare, flags)
}

pub(crate) fn prctl(option: c_int, arg2: c_ulong) -> SysResult {
    syscall!(
        libc::SYS_prctl,
        option,
        arg2,
        0 as c_ulong,
        0 as c_ulong,
        0 as c_ulong
    )
}

pub(crate) fn setresuid(uid: u32) -> SysResult {
    syscall!(libc::SYS_setresuid, uid, uid, uid)
}

pub(crate) fn setresgid(gid: u32) -> SysResult {
    syscall!(libc::SYS_setresgid, gid, gid, gid)
}

/// Sets the supplementary groups to exactly `groups` (none when empty).
pub(crate) fn setgroups(groups: &[u32]) -> SysResult {
    syscall!(libc::SYS_setgroups, groups.len(), groups.as_ptr())
}

pub(crate) fn setsid() -> SysResult {
    syscall!(libc::SYS_setsid)
}

pub(crate) fn prlimit(resource: c_int, soft: u64, hard: u64) -> SysResult {
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    syscall!(
        libc::SYS_prlimit64,
        0,
        resource,
        &lim as *const libc::rlimit64,
        std::ptr::null_mut::<libc::rlimit64>()
    )
}

/// Drops every capability: effective, permitted and inheritable sets.
pub(crate) fn capset_none() -> SysResult {
    let hdr = libc_cap_header {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [libc_cap_data::default(); 2];
    syscall!(
        libc::SYS_capset,
        &hdr as *const libc_cap_header,
        data.as_ptr()
    )
}

#[repr(C)]
#[allow(non_camel_case_types)]
struct libc_cap_header {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
#[allow(non_camel_case_types)]
struct libc_cap_data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

pub(crate) fn landlock_add_path_rule(ruleset: RawFd, path_fd: RawFd, access: u64) -> SysResult {
    let attr = LandlockPathBeneath {
        allowed_access: access,
        parent_fd: path_fd,
    };
    syscall!(
        libc::SYS_landlock_add_rule,
        ruleset,
        LANDLOCK_RULE_PATH_BENEATH,
        &attr as *const LandlockPathBeneath,
        0
    )
}

pub(crate) fn landlock_restrict_self(ruleset: RawFd) -> SysResult {
    syscall!(libc::SYS_landlock_restrict_self, ruleset, 0)
}

/// Installs a seccomp BPF program on the calling thread (needs no_new_privs).
pub(crate) fn seccomp_set_filter(prog: &libc::sock_fprog) -> SysResult {
    syscall!(
        libc::SYS_seccomp,
        libc::SECCOMP_SET_MODE_FILTER,
        0,
        prog as *const libc::sock_fprog
    )
}

/// Installs a seccomp filter whose user notifications go to a new listener; returns
/// the listener (close-on-exec). The notifying thread ignores non-fatal signals once
/// the supervisor has received its notification (so a call the supervisor makes for it
/// is never restarted behind its back); kernels before 5.19 lack that flag and get the
/// filter without it.
pub(crate) fn seccomp_set_listener(prog: &libc::sock_fprog) -> Result<RawFd, Errno> {
    let with = |flags: c_ulong| {
        syscall!(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            prog as *const libc::sock_fprog
        )
    };
    let listener = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    match with(listener | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) {
        Err(libc::EINVAL) => with(listener).map(|fd| fd as RawFd),
        r => r.map(|fd| fd as RawFd),
    }
}

/// Sends the descriptor `fd` over the connected socket `sock` (SCM_RIGHTS), with `data`
/// (at least one byte).
pub(crate) fn send_fd(sock: RawFd, fd: RawFd, data: &[u8]) -> SysResult {
    // The control buffer: one cmsghdr and one int, aligned as cmsghdr needs.
    #[repr(C)]
    struct Control {
        hdr: libc::cmsghdr,
        fd: c_int,
        _pad: c_int,
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut control: Control = unsafe { std::mem::zeroed() };
    control.hdr.cmsg_len = std::mem::size_of::<libc::cmsghdr>() + std::mem::size_of::<c_int>();
    control.hdr.cmsg_level = libc::SOL_SOCKET;
    control.hdr.cmsg_type = libc::SCM_RIGHTS;
    control.fd = fd;
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut control as *mut Control).cast();
    msg.msg_controllen = std::mem::size_of::<Control>();
    syscall!(
        libc::SYS_sendmsg,
        sock,
        &msg as *const libc::msghdr,
        libc::MSG_NOSIGNAL
    )
}

/// execve(2); only returns on failure.
pub(crate) fn execve(
    path: &CStr,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> Errno {
    match syscall!(libc::SYS_execve, path.as_ptr(), argv, envp) {
        Ok(_) => 0,
        Err(e) => e,
    }
}

/// fork(2) through the raw clone syscall (glibc's fork runs atfork handlers that may
/// take locks).
pub(crate) fn fork() -> SysResult {
    syscall!(
        libc::SYS_clone,
        libc::SIGCHLD as c_ulong,
        0 as c_ulong,
        0 as c_ulong,
        0 as c_ulong,
        0 as c_ulong
    )
}

/// wait4(-1, ..., __WALL | WNOHANG) with the child's resource usage: a child that
/// ended, or 0 when none has.
pub(crate) fn wait_any(status: &mut c_int, usage: &mut libc::rusage) -> SysResult {
    syscall!(
        libc::SYS_wait4,
        -1,
        status as *mut c_int,
        libc::__WALL | libc::WNOHANG,
        usage as *mut libc::rusage
    )
}

pub(crate) fn kill(pid: c_int, sig: c_int) -> SysResult {
    syscall!(libc::SYS_kill, pid, sig)
}

pub(crate) fn poll_hup(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    syscall!(libc::SYS_poll, &mut p as *mut libc::pollfd, 1, 0).is_ok()
        && p.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

/// Brings the loopback interface up (in the sandbox's own network namespace).
pub(crate) fn loopback_up() -> SysResult {
    let sock = syscall!(
        libc::SYS_socket,
        libc::AF_INET,
        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
        0
    )? as RawFd;
    // SAFETY: an all-zero `ifreq` is a valid value of this plain C struct.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    let r = syscall!(
        libc::SYS_ioctl,
        sock,
        libc::SIOCGIFFLAGS,
        &mut ifr as *mut libc::ifreq
    )
    .and_then(|_| {
        // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
        unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        syscall!(
            libc::SYS_ioctl,
            sock,
            libc::SIOCSIFFLAGS,
            &mut ifr as *mut libc::ifreq
        )
    });
    close(sock);
    r
}

/// Ends the calling process at once, without running any userspace cleanup.
pub(crate) fn exit(code: c_int) -> ! {
    loop {
        let _ = syscall!(libc::SYS_exit_group, code);
    }
}

pub(crate) fn prctl_ambient_clear() -> SysResult {
    syscall!(
        libc::SYS_prctl,
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0 as c_ulong,
        0 as c_ulong,
        0 as c_ulong
    )
}

pub(crate) fn prctl_no_new_privs() -> SysResult {
    syscall!(
        libc::SYS_prctl,
        libc::PR_SET_NO_NEW_PRIVS,
        1 as c_ulong,
        0 as c_ulong,
        0 as c_ulong,
        0 as c_ulong
    )
}

/// The kernel's `struct sigaction` for rt_sigaction(2) on x86-64.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Every signal back to its default action, and none blocked: the caller's handlers
/// (and ignored signals such as SIGPIPE in Rust programs) must not leak into the sandbox.
pub(crate) fn reset_signals() {
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            let _ = syscall!(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8
            );
        }
    }
    let empty: u64 = 0;
    let _ = syscall!(
        libc::SYS_rt_sigprocmask,
        libc::SIG_SETMASK,
        &empty as *const u64,
        std::ptr::null_mut::<u64>(),
        8
    );
}

/// clone3(2) as [`clone_pidfd`], the child starting in the cgroup v2 directory open as
/// `cgroup` (`CLONE_INTO_CGROUP`, Linux 5.7+): no write of its pid into `cgroup.procs`,
/// which takes the kernel's global threadgroup lock for writing (and so waits for an
/// RCU grace period). `ENOSYS` or `E2BIG`: a kernel (or a seccomp filter) without it.
/// Nothing was cloned when it fails.
pub(crate) fn clone3_into_cgroup(
    flags: c_ulong,
    cgroup: RawFd,
) -> Result<(libc::pid_t, RawFd), Errno> {
    /// `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let mut pidfd: c_int = -1;
    let args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64 | CLONE_INTO_CGROUP,
        pidfd: &mut pidfd as *mut c_int as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        // No stack: the child runs on its copy of this one, as after fork.
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup as u64,
    };
    let pid = syscall!(
        libc::SYS_clone3,
        &args as *const CloneArgs,
        std::mem::size_of::<CloneArgs>()
    )?;
    Ok((pid as libc::pid_t, pidfd))
}

/// clone(2) with fork semantics (own copy of memory, child continues here), `flags`
/// plus CLONE_PIDFD; returns the pid (0 in the child) and, in the parent, the pidfd.
pub(crate) fn clone_pidfd(flags: c_ulong) -> Result<(libc::pid_t, RawFd), Errno> {
    let mut pidfd: c_int = -1;
    let pid = syscall!(
        libc::SYS_clone,
        flags | libc::CLONE_PIDFD as c_ulong | libc::SIGCHLD as c_ulong,
        0 as c_ulong,
        &mut pidfd as *mut c_int,
        0 as c_ulong,
        0 as c_ulong
    )?;
    Ok((pid as libc::pid_t, pidfd))
}
