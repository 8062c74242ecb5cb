//! The file server of a live sandbox: a process forked from init and confined exactly
//! as an exec is (the sandbox user, no capabilities, Landlock, seccomp), serving the
//! host's file operations one at a time. It resolves every path itself, inside the
//! sandbox's own mount namespace and root, as the workload's own calls would; the host
//! gets back only results and descriptors of regular files and directories, on which it
//! does I/O and nothing else (see `files::SandboxFd`).
//!
//! A fork of init, so: fixed buffers, raw system calls, no allocation.

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::sock::{self, MAX_FDS};
use super::wire::{self, FsReply};
use crate::child::{self, ChildSpec};
use crate::sys::{self, Errno};

fn raw(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(ret)
    }
}

/// Serves requests on `sock` until the host closes it. Never returns.
pub(crate) fn serve(spec: &ChildSpec, sock: RawFd) -> ! {
    let _ = sys::setsid();
    child::close_others_above(2, &[sock]);
    child::confine(spec, sock, c"/", None);
    let mut req = [0u8; wire::FS_REQ_MAX];
    loop {
        let mut fds = [-1; MAX_FDS];
        let (n, nfds) = match sock::recv(sock, &mut req, &mut fds, 0) {
            Ok((0, 0)) | Err(_) => sys::exit(0),
            Ok(r) => r,
        };
        let passed = &fds[..nfds];
        let mut out = [0u8; FsReply::MAX];
        let (reply, extra_len, fd) = match parse(&req[..n]) {
            Some(r) => dispatch(&r, passed, &mut out[FsReply::SIZE..]),
            None => (err(libc::EINVAL), 0, None),
        };
        for &f in passed {
            sys::close(f);
        }
        out[..FsReply::SIZE].copy_from_slice(&reply.to_bytes());
        let fds_out: &[RawFd] = match &fd {
            Some(f) => std::slice::from_ref(f),
            None => &[],
        };
        let sent = sock::send(sock, &out[..FsReply::SIZE + extra_len], fds_out);
        if let Some(f) = fd {
            sys::close(f);
        }
        if sent.is_err() {
            sys::exit(0)
        }
    }
}

/// A decoded request.
struct Req<'a> {
    op: u32,
    flags: u32,
    mode: u32,
    p1: &'a CStr,
    p2: &'a CStr,
}

/// op, flags, mode, path, second path (empty when absent).
fn parse(b: &[u8]) -> Option<Req<'_>> {
    if b.len() < 16 {
        return None;
    }
    let mut it = wire::CStrs::new(&b[16..]);
    let p1 = it.next()?;
    let p2 = it.next().unwrap_or(c"");
    Some(Req {
        op: wire::u32_at(b, 0),
        flags: wire::u32_at(b, 4),
        mode: wire::u32_at(b, 8),
        p1,
        p2,
    })
}

fn err(errno: Errno) -> FsReply {
    FsReply {
        errno,
        ..Default::default()
    }
}

fn stat_of(st: &libc::stat) -> FsReply {
    FsReply {
        errno: 0,
        mode: st.st_mode,
        size: st.st_size as u64,
        mtime: st.st_mtime,
        extra: 0,
    }
}

fn fstatat(dir: RawFd, path: &CStr, flags: libc::c_int) -> Result<libc::stat, Errno> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: newfstatat writes only into `st`; `path` is NUL-terminated.
    raw(unsafe {
        libc::syscall(
            libc::SYS_newfstatat,
            dir,
            path.as_ptr(),
            &mut st as *mut libc::stat,
            flags,
        )
    })?;
    Ok(st)
}

fn readlinkat(dir: RawFd, path: &CStr, out: &mut [u8]) -> usize {
    // SAFETY: readlinkat writes at most out.len() bytes into `out`.
    let n = unsafe {
        libc::syscall(
            libc::SYS_readlinkat,
            dir,
            path.as_ptr(),
            out.as_mut_ptr(),
            out.len(),
        )
    };
    n.max(0) as usize
}

const REG_FLAGS: libc::c_int = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

/// Opens a regular file (following symlinks inside the sandbox) for reading or for
/// writing (created with `mode`, or truncated). Anything but a regular file is refused
/// before it is opened for I/O: a FIFO never blocks, a device is never opened.
///
/// A write through a dangling symlink creates the file it names, as the workload's
/// `open(O_CREAT)` would (`echo > link`): each file is created by its own name with
/// `O_EXCL | O_NOFOLLOW` (so nothing that appears meanwhile is opened unchecked), and
/// a symlink met there is followed here, by its text, at most `MAX_LINKS` times.
fn open_regular(path: &CStr, write: bool, mode: u32) -> Result<(RawFd, libc::stat), Errno> {
    const MAX_LINKS: usize = 40;
    // The path now: `path`, then the symlinks' targets.
    let mut cur = [0u8; PATH_BUF];
    let bytes = path.to_bytes_with_nul();
    if bytes.len() > PATH_BUF {
        return Err(libc::ENAMETOOLONG);
    }
    cur[..bytes.len()].copy_from_slice(bytes);
    for _ in 0..=MAX_LINKS {
        let now = CStr::from_bytes_until_nul(&cur).map_err(|_| libc::EINVAL)?;
        match open_once(now, write, mode) {
            Err(libc::EEXIST) if write => {
                let st = fstatat(libc::AT_FDCWD, now, libc::AT_SYMLINK_NOFOLLOW)?;
                // Not a symlink: something was made there meanwhile; look again.
                if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    follow(&mut cur)?;
                }
            }
            r => return r,
        }
    }
    Err(libc::ELOOP)
}

/// Bytes of a path and its NUL.
const PATH_BUF: usize = libc::PATH_MAX as usize + 1;

/// Replaces the symlink's path in `path` (NUL-terminated) by the path it names: its
/// text, or, when relative, its text after the link's directory.
fn follow(path: &mut [u8; PATH_BUF]) -> Result<(), Errno> {
    let mut text = [0u8; PATH_BUF];
    let link = CStr::from_bytes_until_nul(path).map_err(|_| libc::EINVAL)?;
    let n = readlinkat(libc::AT_FDCWD, link, &mut text[..PATH_BUF - 1]);
    if n == 0 {
        return Err(libc::ENOENT);
    }
    let len = link.to_bytes().len();
    // What stays of the link's path: nothing, or its directory with its slash.
    let keep = if text[0] == b'/' {
        0
    } else {
        path[..len]
            .iter()
            .rposition(|b| *b == b'/')
            .map_or(0, |i| i + 1)
    };
    if keep + n >= PATH_BUF {
        return Err(libc::ENAMETOOLONG);
    }
    path[keep..keep + n].copy_from_slice(&text[..n]);
    path[keep + n] = 0;
    Ok(())
}

fn open_once(path: &CStr, write: bool, mode: u32) -> Result<(RawFd, libc::stat), Errno> {
    match sys::openat(libc::AT_FDCWD, path, libc::O_PATH | libc::O_CLOEXEC, 0) {
        Ok(probe) => {
            let st = fstatat(probe, c"", libc::AT_EMPTY_PATH);
            let st = match st {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => st,
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                    sys::close(probe);
                    return Err(libc::EISDIR);
                }
                Ok(_) => {
                    sys::close(probe);
                    return Err(libc::ENXIO);
                }
                Err(e) => {
                    sys::close(probe);
                    return Err(e);
                }
            };
            // Reopen that very inode for I/O through its descriptor's magic link.
            let mut name = [0u8; 32];
            let link = fd_path(probe, &mut name);
            let flags = if write {
                libc::O_WRONLY | libc::O_TRUNC
            } else {
                libc::O_RDONLY
            };
            let fd = sys::openat(libc::AT_FDCWD, link, flags | REG_FLAGS, 0);
            sys::close(probe);
            let fd = fd?;
            match fstatat(fd, c"", libc::AT_EMPTY_PATH) {
                Ok(now) if now.st_ino == st.st_ino && now.st_dev == st.st_dev => Ok((fd, now)),
                _ => {
                    sys::close(fd);
                    Err(libc::ESTALE)
                }
            }
        }
        Err(libc::ENOENT) if write => {
            let fd = sys::openat(
                libc::AT_FDCWD,
                path,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | REG_FLAGS,
                mode & 0o777,
            )?;
            // SAFETY: fchmod on a descriptor we own; the mode has no special bits.
            let _ = unsafe { libc::syscall(libc::SYS_fchmod, fd, mode & 0o777) };
            match fstatat(fd, c"", libc::AT_EMPTY_PATH) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => Ok((fd, st)),
                Ok(_) => {
                    sys::close(fd);
                    Err(libc::ENXIO)
                }
                Err(e) => {
                    sys::close(fd);
                    Err(e)
                }
            }
        }
        Err(e) => Err(e),
    }
}

/// `/proc/self/fd/N` in `buf`.
fn fd_path(fd: RawFd, buf: &mut [u8; 32]) -> &CStr {
    let prefix = b"/proc/self/fd/";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 10];
    let mut n = fd as u32;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[prefix.len() + i] = digits[len - 1 - i];
    }
    buf[prefix.len() + len] = 0;
    CStr::from_bytes_with_nul(&buf[..prefix.len() + len + 1]).unwrap_or(c"/")
}

fn dispatch(req: &Req<'_>, passed: &[RawFd], extra: &mut [u8]) -> (FsReply, usize, Option<RawFd>) {
    let (op, mode, p1, p2) = (req.op, req.mode, req.p1, req.p2);
    let done = |r: Result<(), Errno>| match r {
        Ok(()) => (FsReply::default(), 0, None),
        Err(e) => (err(e), 0, None),
    };
    match op {
        wire::FS_OPEN_READ | wire::FS_OPEN_WRITE => {
            match open_regular(p1, op == wire::FS_OPEN_WRITE, mode) {
                Ok((fd, st)) => (stat_of(&st), 0, Some(fd)),
                Err(e) => (err(e), 0, None),
            }
        }
        wire::FS_STAT => match fstatat(libc::AT_FDCWD, p1, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let mut r = stat_of(&st);
                let mut len = 0;
                if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    len = readlinkat(libc::AT_FDCWD, p1, extra);
                    r.extra = len as u64;
                }
                (r, len, None)
            }
            Err(e) => (err(e), 0, None),
        },
        wire::FS_LIST => match passed.first() {
            Some(&memfd) => match list(p1, memfd) {
                Ok(count) => (
                    FsReply {
                        extra: count,
                        ..Default::default()
                    },
                    0,
                    None,
                ),
                Err(e) => (err(e), 0, None),
            },
            None => (err(libc::EINVAL), 0, None),
        },
        wire::FS_MKDIR => done(mkdir(p1, mode & 0o777, req.flags & wire::FS_FLAG_DEEP != 0)),
        wire::FS_REMOVE => done(remove(p1, req.flags & wire::FS_FLAG_DEEP != 0)),
        // SAFETY: renameat2 reads two NUL-terminated paths.
        wire::FS_RENAME => done(
            raw(unsafe {
                libc::syscall(
                    libc::SYS_renameat2,
                    libc::AT_FDCWD,
                    p1.as_ptr(),
                    libc::AT_FDCWD,
                    p2.as_ptr(),
                    0,
                )
            })
            .map(|_| ()),
        ),
        wire::FS_STATFS => {
            // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
            let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
            // SAFETY: statfs writes only into `sf`.
            match raw(unsafe {
                libc::syscall(libc::SYS_statfs, p1.as_ptr(), &mut sf as *mut libc::statfs)
            }) {
                Ok(_) => (
                    FsReply {
                        size: sf.f_blocks.saturating_mul(sf.f_bsize as u64),
                        extra: (sf.f_blocks - sf.f_bfree).saturating_mul(sf.f_bsize as u64),
                        mode: sf.f_type as u32,
                        ..Default::default()
                    },
                    0,
                    None,
                ),
                Err(e) => (err(e), 0, None),
            }
        }
        _ => (err(libc::EINVAL), 0, None),
    }
}

/// Writes one record per entry of the directory `path` into `memfd`.
fn list(path: &CStr, memfd: RawFd) -> Result<u64, Errno> {
    let dir = sys::openat(
        libc::AT_FDCWD,
        path,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        0,
    )?;
    let mut count = 0u64;
    let mut buf = [0u8; 8192];
    let r = (|| loop {
        // SAFETY: getdents64 writes at most buf.len() bytes into `buf`.
        let n =
            raw(unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len()) })?
                as usize;
        if n == 0 {
            return Ok(count);
        }
        let mut off = 0;
        while off + 19 < n {
            let reclen = u16::from_le_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 || off + reclen > n {
                break;
            }
            let name_area = &buf[off + 19..off + reclen];
            off += reclen;
            let Some(end) = name_area.iter().position(|&c| c == 0) else {
                continue;
            };
            let name = &name_area[..=end];
            if name == b".\0" || name == b"..\0" {
                continue;
            }
            let Ok(cname) = CStr::from_bytes_with_nul(name) else {
                continue;
            };
            let Ok(st) = fstatat(dir, cname, libc::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            let mut link = [0u8; 4096];
            let link_len = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                readlinkat(dir, cname, &mut link)
            } else {
                0
            };
            let mut head = [0u8; wire::ENTRY_HEAD];
            head[0..2].copy_from_slice(&(end as u16).to_le_bytes());
            head[2..4].copy_from_slice(&(link_len as u16).to_le_bytes());
            head[4..8].copy_from_slice(&st.st_mode.to_le_bytes());
            head[8..16].copy_from_slice(&(st.st_size as u64).to_le_bytes());
            head[16..24].copy_from_slice(&st.st_mtime.to_le_bytes());
            sys::write_all(memfd, &head)?;
            sys::write_all(memfd, &name[..end])?;
            sys::write_all(memfd, &link[..link_len])?;
            count += 1;
        }
    })();
    sys::close(dir);
    r
}

/// `mkdir`, or `mkdir -p` with `parents`.
fn mkdir(path: &CStr, mode: u32, parents: bool) -> Result<(), Errno> {
    if !parents {
        return sys::mkdirat(libc::AT_FDCWD, path, mode).map(|_| ());
    }
    let bytes = path.to_bytes();
    let mut buf = [0u8; 4097];
    if bytes.len() >= buf.len() {
        return Err(libc::ENAMETOOLONG);
    }
    buf[..bytes.len()].copy_from_slice(bytes);
    for i in 1..=bytes.len() {
        if i < bytes.len() && bytes[i] != b'/' {
            continue;
        }
        let saved = buf[i];
        buf[i] = 0;
        let r = match CStr::from_bytes_with_nul(&buf[..=i]) {
            Ok(part) => match sys::mkdirat(libc::AT_FDCWD, part, mode) {
                Ok(_) => Ok(()),
                // An existing directory (or a symlink to one, followed inside the sandbox) is fine.
                Err(libc::EEXIST) => match fstatat(libc::AT_FDCWD, part, 0) {
                    Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Ok(()),
                    Ok(_) => Err(libc::ENOTDIR),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            Err(_) => Err(libc::EINVAL),
        };
        buf[i] = saved;
        r?;
    }
    Ok(())
}

/// Removes a file, a symlink, or a directory (its contents too with `recursive`),
/// never following a symlink.
fn remove(path: &CStr, recursive: bool) -> Result<(), Errno> {
    match unlinkat(libc::AT_FDCWD, path, 0) {
        Err(libc::EISDIR) => match unlinkat(libc::AT_FDCWD, path, libc::AT_REMOVEDIR) {
            Err(libc::ENOTEMPTY) if recursive => {
                empty_dir(libc::AT_FDCWD, path, 0)?;
                unlinkat(libc::AT_FDCWD, path, libc::AT_REMOVEDIR)
            }
            r => r,
        },
        r => r,
    }
}

fn unlinkat(dir: RawFd, path: &CStr, flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: unlinkat reads a NUL-terminated path.
    raw(unsafe { libc::syscall(libc::SYS_unlinkat, dir, path.as_ptr(), flags) }).map(|_| ())
}

/// The deepest directory tree [`remove`] empties.
const MAX_DEPTH: usize = 64;

fn empty_dir(parent: RawFd, name: &CStr, depth: usize) -> Result<(), Errno> {
    if depth >= MAX_DEPTH {
        return Err(libc::ELOOP);
    }
    let dir = sys::openat(
        parent,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )?;
    let mut buf = [0u8; 2048];
    let r = (|| loop {
        // Start over after each batch: the directory changes under the reads.
        // SAFETY: lseek on a descriptor we own.
        let _ = unsafe { libc::syscall(libc::SYS_lseek, dir, 0, libc::SEEK_SET) };
        // SAFETY: getdents64 writes at most buf.len() bytes into `buf`.
        let n =
            raw(unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len()) })?
                as usize;
        let mut off = 0;
        let mut removed = 0;
        while off + 19 < n {
            let reclen = u16::from_le_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 || off + reclen > n {
                break;
            }
            let area = &buf[off + 19..off + reclen];
            off += reclen;
            let Ok(entry) = CStr::from_bytes_until_nul(area) else {
                continue;
            };
            if entry == c"." || entry == c".." {
                continue;
            }
            match unlinkat(dir, entry, 0) {
                Err(libc::EISDIR) => {
                    empty_dir(dir, entry, depth + 1)?;
                    unlinkat(dir, entry, libc::AT_REMOVEDIR)?;
                }
                r => r?,
            }
            removed += 1;
        }
        if removed == 0 {
            return Ok(());
        }
    })();
    sys::close(dir);
    r
}
