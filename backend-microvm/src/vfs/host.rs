//! Host filesystem calls, all relative to directory handles opened at setup.
//!
//! Every lookup is a single path component resolved with `openat2` and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`: the host kernel never
//! follows a symlink or `..` for the sandbox. The VFS walks symlinks itself, in the
//! sandbox's namespace.
//!
//! Every host descriptor the VMM keeps for the sandbox (open files, directory and
//! `O_PATH` handles, remembered lookups, file mappings) is a [`HostFd`], counted
//! against the sandbox's budget ([`set_fd_budget`]): past it, opening one more fails
//! with `ENFILE` in the guest, so a workload's descriptors cannot fill the table of
//! the process that embeds the VMM (the caller's, shared with everything else it does).

use std::cell::Cell;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::errno::{self, Errno};

use super::Meta;

/// The resolve flags of every host lookup.
const RESOLVE: u64 =
    libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;

/// A path component as a C string (no NUL, no slash: the VFS split it).
pub(crate) fn cname(name: &[u8]) -> Result<CString, Errno> {
    if name.contains(&b'/') {
        return Err(errno::EINVAL);
    }
    CString::new(name).map_err(|_| errno::EINVAL)
}

fn check(rc: libc::c_long) -> Result<libc::c_long, Errno> {
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}

fn check_int(rc: libc::c_int) -> Result<(), Errno> {
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// The mode the VMM gives a host file it creates or changes: never set-user-ID or
/// set-group-ID (EPERM, as the container's seccomp filter answers). A set-id file left
/// in a read-write mount would run as its owner for whoever on the host executes it.
/// This is the only way guest modes reach host files (`openat2` with `O_CREAT` or
/// `O_TMPFILE`, `fchmodat`); `mkdirat` ignores set-id bits itself. The in-memory /tmp
/// and an image's layer keep Linux's behaviour: their files never reach the host.
fn host_mode(mode: u32) -> Result<u32, Errno> {
    if mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
        Err(errno::EPERM)
    } else {
        Ok(mode & 0o7777)
    }
}

thread_local! {
    /// Host descriptors held for the sandbox this thread runs, and how many it may hold.
    static FDS: Cell<(usize, usize)> = const { Cell::new((0, usize::MAX)) };
}

/// Sets how many host descriptors the sandbox run by the calling thread may hold.
pub(crate) fn set_fd_budget(max: usize) {
    FDS.with(|c| c.set((c.get().0, max)));
}

/// The calling thread's count of held host descriptors and its budget, to hand to
/// another thread that works for the same sandbox (the fast-call thread, which
/// answers calls only while the vCPU thread waits for the guest).
pub(crate) fn fd_state() -> (usize, usize) {
    FDS.with(Cell::get)
}

/// Takes over a count and budget from [`fd_state`].
pub(crate) fn set_fd_state(state: (usize, usize)) {
    FDS.with(|c| c.set(state));
}

/// How many host descriptors the sandbox of the calling thread may hold.
pub(crate) fn fd_budget() -> usize {
    FDS.with(|c| c.get().1)
}

/// Takes one descriptor from the budget (before the host call that makes it).
fn charge_fd() -> Result<(), Errno> {
    FDS.with(|c| {
        let (held, max) = c.get();
        if held >= max {
            return Err(errno::ENFILE);
        }
        c.set((held + 1, max));
        Ok(())
    })
}

fn release_fd() {
    FDS.with(|c| {
        let (held, max) = c.get();
        c.set((held.saturating_sub(1), max));
    });
}

/// A host descriptor held for the sandbox, counted against its budget until dropped
/// (a snapshot's copies are counted against none: the second field is false).
#[derive(Debug)]
pub(crate) struct HostFd(OwnedFd, bool);

impl HostFd {
    /// Makes a descriptor with `make` (a host call) if the budget has room for one.
    fn make(make: impl FnOnce() -> Result<OwnedFd, Errno>) -> Result<HostFd, Errno> {
        charge_fd()?;
        match make() {
            Ok(fd) => Ok(HostFd(fd, true)),
            Err(e) => {
                release_fd();
                Err(e)
            }
        }
    }

    /// A descriptor made at setup (a mount's source), counted against the budget
    /// (set before setup, large enough for the plan's mounts) but never refused.
    pub(crate) fn setup(fd: OwnedFd) -> HostFd {
        FDS.with(|c| {
            let (held, max) = c.get();
            c.set((held + 1, max));
        });
        HostFd(fd, true)
    }

    /// A second descriptor for the same open file (`F_DUPFD_CLOEXEC`), counted too.
    pub(crate) fn try_clone(&self) -> Result<HostFd, Errno> {
        HostFd::make(|| self.0.try_clone().map_err(|e| Errno::from_io(&e)))
    }
}

impl Drop for HostFd {
    fn drop(&mut self) {
        if self.1 {
            release_fd();
        }
    }
}

impl HostFd {
    /// A copy for a snapshot (counted against no sandbox) or for a sandbox started
    /// from one (counted against the calling thread's).
    pub(crate) fn snap_fd(
        &self,
        m: &mut crate::snap::Memo,
    ) -> Result<HostFd, crate::snap::SnapError> {
        let fail = |e: Errno| {
            crate::snap::SnapError::new(format!(
                "duplicating a host descriptor failed: {}",
                std::io::Error::from_raw_os_error(e.0)
            ))
        };
        match m.fds {
            crate::snap::FdMode::Charged => self.try_clone().map_err(fail),
            crate::snap::FdMode::Detached => self
                .0
                .try_clone()
                .map(|fd| HostFd(fd, false))
                .map_err(|e| fail(Errno::from_io(&e))),
            crate::snap::FdMode::Moved => {
                let fd = self.0.try_clone().map_err(|e| fail(Errno::from_io(&e)))?;
                m.moved_fds += 1;
                Ok(HostFd(fd, true))
            }
        }
    }
}

impl crate::snap::Snap for HostFd {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        self.snap_fd(m)
    }
}

impl AsRawFd for HostFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl AsFd for HostFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// `openat2(dir, name, flags, mode)` beneath `dir`, never following a symlink.
pub(crate) fn openat2(dir: RawFd, name: &[u8], flags: i32, mode: u32) -> Result<HostFd, Errno> {
    HostFd::make(|| openat2_raw(dir, name, flags, mode))
}

fn openat2_raw(dir: RawFd, name: &[u8], flags: i32, mode: u32) -> Result<OwnedFd, Errno> {
    let c = cname(name)?;
    // SAFETY: open_how is plain integers; all-zero is valid.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    let extra = if flags & libc::O_PATH != 0 {
        libc::O_CLOEXEC
    } else {
        libc::O_CLOEXEC | libc::O_NOCTTY
    };
    how.flags = (flags | extra) as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        u64::from(host_mode(mode)?)
    } else {
        0
    };
    how.resolve = RESOLVE;
    // SAFETY: `c` is a valid C string, `how` a valid open_how of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    let fd = check(rc)? as RawFd;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the regular file `name` in `dir` for I/O (`flags`: access mode, `O_APPEND`,
/// `O_TRUNC`, `O_CREAT`, `O_EXCL`). What the lookup saw may have been swapped for
/// something else since (by a host process sharing the directory): the open is
/// non-blocking, so a FIFO put there never blocks the vCPU thread, and what was opened
/// must be a regular file, else `EACCES` (a host FIFO or device is never reached).
pub(crate) fn open_file(dir: RawFd, name: &[u8], flags: i32, mode: u32) -> Result<HostFd, Errno> {
    #[cfg(feature = "test-hooks")]
    hooks::before_open(dir, name);
    let fd = openat2(dir, name, flags | libc::O_NOFOLLOW | libc::O_NONBLOCK, mode)?;
    if fstat(fd.as_raw_fd())?.mode & libc::S_IFMT != libc::S_IFREG {
        return Err(errno::EACCES);
    }
    Ok(fd)
}

/// What the test hooks make host lookups do (feature `test-hooks`, this crate's tests
/// only; see `linux/hooks.rs`).
#[cfg(feature = "test-hooks")]
pub(crate) mod hooks {
    use std::os::fd::RawFd;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The next `open_file` of this process first renames `NAME.fifo` over `NAME`: the
    /// swap a host process could make between the VFS's lookup and its open. Not per
    /// thread: the open may be a fast call, made on the fast-call thread.
    static SWAP: AtomicBool = AtomicBool::new(false);

    /// Arms the swap for the next `open_file`.
    pub(crate) fn swap_before_next_open() {
        SWAP.store(true, Ordering::SeqCst);
    }

    pub(super) fn before_open(dir: RawFd, name: &[u8]) {
        if SWAP.swap(false, Ordering::SeqCst) {
            let fifo = [name, b".fifo"].concat();
            let _ = super::rename(dir, &fifo, dir, name, 0);
        }
    }
}

/// An `O_PATH` handle on `name` in `dir` (the symlink itself when it is one).
pub(crate) fn open_path(dir: RawFd, name: &[u8]) -> Result<HostFd, Errno> {
    openat2(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)
}

/// Opens a host path given by the policy (setup only; the host resolves it once).
pub(crate) fn open_source(path: &std::path::Path) -> std::io::Result<HostFd> {
    HostFd::make(|| open_source_raw(path).map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO))))
        .map_err(|e| std::io::Error::from_raw_os_error(e.0))
}

fn open_source_raw(path: &std::path::Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid C string; the result is checked.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstat` of a handle.
pub(crate) fn fstat(fd: RawFd) -> Result<Meta, Errno> {
    // SAFETY: zeroed `stat` is a valid buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid buffer pointer.
    check_int(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(Meta::from_host(&st))
}

/// The target of a symlink handle (`O_PATH`).
pub(crate) fn readlink(fd: RawFd) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: empty path with an O_PATH symlink handle reads that link; buffer is valid.
    let n = unsafe { libc::readlinkat(fd, c"".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(Errno::last());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// The value of the extended attribute `name` of the open file `fd` (`None` when it
/// has none).
pub(crate) fn get_xattr(fd: RawFd, name: &std::ffi::CStr) -> Result<Option<Vec<u8>>, Errno> {
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C string and a buffer of the length passed.
    let n = unsafe { libc::fgetxattr(fd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = Errno::last();
        return if e.0 == libc::ENODATA || e.0 == libc::ENOTSUP || e.0 == libc::ERANGE {
            Ok(None)
        } else {
            Err(e)
        };
    }
    buf.truncate(n as usize);
    Ok(Some(buf))
}

/// A directory entry of a host directory.
#[derive(Debug, Clone)]
pub(crate) struct HostDirent {
    /// Inode number.
    pub(crate) ino: u64,
    /// `DT_*` type.
    pub(crate) dtype: u8,
    /// Name.
    pub(crate) name: Vec<u8>,
}

/// All entries of the directory handle `dir` (without `.` and `..`).
pub(crate) fn read_dir(dir: RawFd) -> Result<Vec<HostDirent>, Errno> {
    let fd = openat2(dir, b".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if crate::kick::must_stop() {
            return Err(errno::EINTR); // a limit was reached: the run ends at the next turn
        }
        // SAFETY: valid descriptor and buffer of the length passed.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        let n = check(n)? as usize;
        if n == 0 {
            break;
        }
        let mut off = 0;
        while off + 19 <= n {
            let ino = u64::from_ne_bytes(buf[off..off + 8].try_into().unwrap_or_default());
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let dtype = buf[off + 18];
            if reclen == 0 || off + reclen > n {
                break;
            }
            let name_bytes = &buf[off + 19..off + reclen];
            let len = name_bytes
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(name_bytes.len());
            let name = name_bytes[..len].to_vec();
            if name != b"." && name != b".." {
                out.push(HostDirent { ino, dtype, name });
            }
            off += reclen;
        }
    }
    Ok(out)
}

/// `mkdirat`.
pub(crate) fn mkdir(dir: RawFd, name: &[u8], mode: u32) -> Result<(), Errno> {
    let c = cname(name)?;
    // SAFETY: valid C string.
    check_int(unsafe { libc::mkdirat(dir, c.as_ptr(), mode & 0o7777) })
}

/// `unlinkat` (with `AT_REMOVEDIR` for directories).
pub(crate) fn unlink(dir: RawFd, name: &[u8], is_dir: bool) -> Result<(), Errno> {
    let c = cname(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid C string.
    check_int(unsafe { libc::unlinkat(dir, c.as_ptr(), flags) })
}

/// `renameat2`.
pub(crate) fn rename(
    from_dir: RawFd,
    from: &[u8],
    to_dir: RawFd,
    to: &[u8],
    flags: u32,
) -> Result<(), Errno> {
    let (a, b) = (cname(from)?, cname(to)?);
    // SAFETY: valid C strings.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            from_dir,
            a.as_ptr(),
            to_dir,
            b.as_ptr(),
            flags,
        )
    };
    check(rc).map(|_| ())
}

/// `symlinkat`.
pub(crate) fn symlink(target: &[u8], dir: RawFd, name: &[u8]) -> Result<(), Errno> {
    let t = CString::new(target).map_err(|_| errno::EINVAL)?;
    let c = cname(name)?;
    // SAFETY: valid C strings.
    check_int(unsafe { libc::symlinkat(t.as_ptr(), dir, c.as_ptr()) })
}

/// `linkat` (never following a symlink).
pub(crate) fn link(from_dir: RawFd, from: &[u8], to_dir: RawFd, to: &[u8]) -> Result<(), Errno> {
    let (a, b) = (cname(from)?, cname(to)?);
    // SAFETY: valid C strings.
    check_int(unsafe { libc::linkat(from_dir, a.as_ptr(), to_dir, b.as_ptr(), 0) })
}

/// `fchmodat` of `name` in `dir` (not following symlinks: a link's mode is not changed).
pub(crate) fn chmod(dir: RawFd, name: &[u8], mode: u32) -> Result<(), Errno> {
    let c = cname(name)?;
    let mode = host_mode(mode)?;
    // SAFETY: valid C string.
    check_int(unsafe { libc::fchmodat(dir, c.as_ptr(), mode, 0) })
}

/// `utimensat` of `name` in `dir`, not following symlinks.
pub(crate) fn utimens(dir: RawFd, name: &[u8], times: &[libc::timespec; 2]) -> Result<(), Errno> {
    let c = cname(name)?;
    // SAFETY: valid C string and a two-element timespec array.
    check_int(unsafe {
        libc::utimensat(dir, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
    })
}

/// `pread` into a buffer.
pub(crate) fn pread(fd: RawFd, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
    // SAFETY: valid buffer of the length passed.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off as libc::off_t) };
    check(n as libc::c_long).map(|n| n as usize)
}

/// `pwrite` from a buffer.
pub(crate) fn pwrite(fd: RawFd, buf: &[u8], off: u64) -> Result<usize, Errno> {
    // SAFETY: valid buffer of the length passed.
    let n = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), off as libc::off_t) };
    check(n as libc::c_long).map(|n| n as usize)
}

/// `ftruncate`.
pub(crate) fn ftruncate(fd: RawFd, len: u64) -> Result<(), Errno> {
    let len = libc::off_t::try_from(len).map_err(|_| errno::EFBIG)?;
    // SAFETY: plain syscall on a descriptor.
    check_int(unsafe { libc::ftruncate(fd, len) })
}

/// `fallocate` (the mode checked by the caller).
pub(crate) fn fallocate(fd: RawFd, mode: i32, off: u64, len: u64) -> Result<(), Errno> {
    let off = libc::off_t::try_from(off).map_err(|_| errno::EFBIG)?;
    let len = libc::off_t::try_from(len).map_err(|_| errno::EFBIG)?;
    // SAFETY: plain syscall on a descriptor; no memory is passed.
    check_int(unsafe { libc::fallocate(fd, mode, off, len) })
}

/// `fsync`/`fdatasync`.
pub(crate) fn fsync(fd: RawFd, data_only: bool) -> Result<(), Errno> {
    let rc = if data_only {
        // SAFETY: plain syscall on a descriptor.
        unsafe { libc::fdatasync(fd) }
    } else {
        // SAFETY: plain syscall on a descriptor.
        unsafe { libc::fsync(fd) }
    };
    check_int(rc)
}

/// `fstatfs`.
pub(crate) fn fstatfs(fd: RawFd) -> Result<libc::statfs, Errno> {
    // SAFETY: zeroed statfs is a valid buffer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid buffer pointer.
    check_int(unsafe { libc::fstatfs(fd, &mut st) })?;
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fork's snapshot copies the original's host descriptors counted for no thread
    /// while copied; the fork's thread takes their number over, and closing them
    /// brings its count back to what it held before: its budget is neither exceeded
    /// nor used up by them.
    #[test]
    fn moved_descriptors_are_counted_by_the_thread_they_move_to() {
        let copied = std::thread::spawn(|| {
            let fd = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
            let original = HostFd::setup(fd);
            let before = fd_state().0;
            let mut m = crate::snap::Memo::new(crate::snap::FdMode::Moved);
            let copies: Vec<HostFd> = (0..3).map(|_| original.snap_fd(&mut m).unwrap()).collect();
            assert_eq!(fd_state().0, before, "the original's thread is not charged");
            assert_eq!(m.moved_fds, 3);
            (copies, m.moved_fds)
        })
        .join()
        .unwrap();
        std::thread::spawn(move || {
            let (copies, n) = copied;
            set_fd_state((n, 3));
            assert_eq!(charge_fd(), Err(errno::ENFILE), "they fill the budget");
            drop(copies);
            assert_eq!(fd_state(), (0, 3), "closing them gives it back");
            assert!(charge_fd().is_ok());
        })
        .join()
        .unwrap();
    }
}
