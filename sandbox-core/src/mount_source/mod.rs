//! The one checked path from a host path that a policy names to what a sandbox mounts.
//! Both backends resolve every mount source here, once, when a run starts, and then
//! mount (container) or serve (micro-VM) the descriptor this returns, never the path
//! again:
//!
//! - **no symlink is followed**, in any component: the path is opened with `openat2`
//!   and `RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS` from `/`. A source that is itself
//!   a symlink (`/bin -> usr/bin`) is returned as that symlink, to appear in the sandbox
//!   as one (resolved there, never on the host); a symlink anywhere before the last
//!   component is an error that names it and the real path. A link planted by an
//!   earlier run in a read-write mount (`out/p -> /proc`) therefore redirects nothing,
//!   and neither does a root-owned one.
//! - **no kernel interface**: what was opened is classified by what it *is*, not by how
//!   its path is spelled. Device nodes, FIFOs and sockets are refused; so are files on a
//!   kernel-interface filesystem (proc, sysfs, cgroup, devpts, mqueue, nsfs, ... by
//!   `statfs` magic number, `mountinfo::KERNEL_FS_MAGICS`), on the filesystem of any
//!   mount at or below the host's `/proc`, `/sys` or `/dev` (by device: `/dev` is a
//!   devtmpfs and `/dev/shm` a tmpfs, which look like any tmpfs), and directories with
//!   such a mount anywhere below them (a recursive bind would carry it along).
//!
//! The policy's own check of the spelling (`/proc`, `/sys`, `/dev` sources) stays as
//! the first, friendlier refusal; this is the one that holds.

pub mod idmap;
mod mountinfo;
#[cfg(test)]
mod tests;

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use mountinfo::{MountTable, KERNEL_FS_MAGICS};

/// What a mount source is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A directory.
    Directory,
    /// A regular file.
    File,
    /// A symbolic link, with its target: it appears in the sandbox as this link.
    Symlink(PathBuf),
}

/// A mount source, resolved and checked: an `O_PATH` descriptor of it (of the link
/// itself for a symlink) and what it is.
#[derive(Debug)]
pub struct MountSource {
    path: PathBuf,
    fd: OwnedFd,
    kind: SourceKind,
    stat: libc::stat,
}

/// Why a mount source was refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// It does not exist (an `optional` mount is then skipped).
    #[error("the source does not exist")]
    NotFound {
        /// The source.
        path: PathBuf,
    },
    /// Not an absolute path without `..`.
    #[error("the source is not an absolute path without `..`")]
    NotAbsolute {
        /// The source.
        path: PathBuf,
    },
    /// A component before the last is a symlink.
    #[error(
        "the source passes through the symbolic link {} (-> {}); mount sources are never resolved through symbolic links: name the real path{}",
        link.display(),
        target.display(),
        real.as_ref().map(|r| format!(", {}", r.display())).unwrap_or_default()
    )]
    Symlink {
        /// The source.
        path: PathBuf,
        /// The first symlink on the way.
        link: PathBuf,
        /// What it points to.
        target: PathBuf,
        /// The source with every link resolved, when it exists.
        real: Option<PathBuf>,
    },
    /// It is on a kernel-interface filesystem.
    #[error(
        "the source is on {fstype}{}, a host kernel interface: a sandbox never gets the host's /proc, /sys or /dev (it has its own)",
        at.as_ref().map(|a| format!(" (mounted at {})", a.display())).unwrap_or_default()
    )]
    KernelInterface {
        /// The source.
        path: PathBuf,
        /// The filesystem type.
        fstype: String,
        /// Where the host mounts it, when known.
        at: Option<PathBuf>,
    },
    /// The host binds it into its /proc, /sys or /dev.
    #[error(
        "the source is what the host binds at {}, inside its /proc, /sys or /dev: a sandbox never gets the host's /proc, /sys or /dev (it has its own)",
        at.display()
    )]
    KernelAlias {
        /// The source.
        path: PathBuf,
        /// Where the host binds it.
        at: PathBuf,
    },
    /// A kernel-interface filesystem is mounted below the directory.
    #[error(
        "the source has {} ({fstype}), a host kernel interface, mounted below it, which a mount would carry into the sandbox: mount the directories the workload needs instead",
        below.display()
    )]
    KernelBelow {
        /// The source.
        path: PathBuf,
        /// The mount point below it.
        below: PathBuf,
        /// Its filesystem type.
        fstype: String,
    },
    /// A device node, FIFO or socket.
    #[error("the source is a {kind}: only directories, regular files and symbolic links can be mounted into a sandbox")]
    Special {
        /// The source.
        path: PathBuf,
        /// `character device`, `block device`, `FIFO`, `socket`.
        kind: &'static str,
    },
    /// A system call failed.
    #[error("{op} {} failed", path.display())]
    Io {
        /// The source.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    /// True when the source does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SourceError::NotFound { .. })
    }

    /// As an `std::io::Error` of the matching kind (the message is this error's).
    pub fn into_io(self) -> std::io::Error {
        let kind = match &self {
            SourceError::NotFound { .. } => std::io::ErrorKind::NotFound,
            SourceError::NotAbsolute { .. } => std::io::ErrorKind::InvalidInput,
            SourceError::Io { source, .. } => source.kind(),
            _ => std::io::ErrorKind::PermissionDenied,
        };
        std::io::Error::new(kind, self)
    }
}

/// The host's mounts, read once per run: what the checks compare against.
#[derive(Debug, Clone)]
pub struct HostMounts {
    table: MountTable,
}

fn cpath(p: &Path) -> Result<CString, SourceError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| SourceError::NotAbsolute {
        path: p.to_path_buf(),
    })
}

/// `openat2` with `how`, as an owned descriptor or an errno.
fn openat2(dir: RawFd, path: &CString, flags: i32, resolve: u64) -> Result<OwnedFd, i32> {
    // SAFETY: open_how is plain integers; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: `path` is a valid C string and `how` a valid open_how of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

/// Opens `path` (absolute) without following any symlink; a symlink as the last
/// component comes back as a handle on the link.
fn open_nofollow(path: &CString) -> Result<OwnedFd, i32> {
    openat2(
        libc::AT_FDCWD,
        path,
        libc::O_PATH | libc::O_NOFOLLOW,
        libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    )
}

fn fstat(fd: BorrowedFd<'_>) -> std::io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st)
}

fn fstatfs_type(fd: BorrowedFd<'_>) -> std::io::Result<i64> {
    // SAFETY: an all-zero statfs is a valid buffer for fstatfs to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor (O_PATH handles are allowed) and buffer.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_type as i64)
}

/// The target of the symlink handle `fd` (`O_PATH`).
fn readlink(fd: BorrowedFd<'_>) -> std::io::Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: an empty path with an O_PATH symlink handle reads that link; the buffer is
    // valid for its length.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// `/a/./b//c` → `/a/b/c`; `None` for a relative path or one with `..`.
fn normalize(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

impl HostMounts {
    /// Reads this process's mount table.
    pub fn read() -> Result<HostMounts, SourceError> {
        let table = MountTable::read().map_err(|source| SourceError::Io {
            path: "/proc/self/mountinfo".into(),
            op: "reading",
            source,
        })?;
        Ok(HostMounts { table })
    }

    /// Opens and checks the mount source `path` (see the module's documentation).
    pub fn resolve(&self, path: &Path) -> Result<MountSource, SourceError> {
        let path = normalize(path).ok_or_else(|| SourceError::NotAbsolute {
            path: path.to_path_buf(),
        })?;
        let c = cpath(&path)?;
        let fd = match open_nofollow(&c) {
            Ok(fd) => fd,
            Err(libc::ENOENT) => return Err(SourceError::NotFound { path }),
            Err(libc::ELOOP) => return Err(symlink_on_the_way(&path)),
            Err(e) => {
                return Err(SourceError::Io {
                    path,
                    op: "opening",
                    source: std::io::Error::from_raw_os_error(e),
                })
            }
        };
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| SourceError::Io { path, op, source }
        };
        let stat = fstat(fd.as_fd()).map_err(io("examining", &path))?;
        let kind = match stat.st_mode & libc::S_IFMT {
            libc::S_IFDIR => SourceKind::Directory,
            libc::S_IFREG => SourceKind::File,
            libc::S_IFLNK => {
                SourceKind::Symlink(readlink(fd.as_fd()).map_err(io("reading the link", &path))?)
            }
            libc::S_IFCHR => {
                return Err(SourceError::Special {
                    path,
                    kind: "character device",
                })
            }
            libc::S_IFBLK => {
                return Err(SourceError::Special {
                    path,
                    kind: "block device",
                })
            }
            libc::S_IFIFO => return Err(SourceError::Special { path, kind: "FIFO" }),
            _ => {
                return Err(SourceError::Special {
                    path,
                    kind: "socket",
                })
            }
        };
        let magic = fstatfs_type(fd.as_fd()).map_err(io("examining the filesystem of", &path))?;
        if let Some((_, name)) = KERNEL_FS_MAGICS.iter().find(|(m, _)| *m == magic) {
            let at = self
                .table
                .kernel_device(stat.st_dev)
                .map(|l| l.point.clone());
            return Err(SourceError::KernelInterface {
                path,
                fstype: (*name).to_string(),
                at,
            });
        }
        if let Some(line) = self.table.kernel_device(stat.st_dev) {
            return Err(SourceError::KernelInterface {
                path,
                fstype: line.fstype.clone(),
                at: Some(line.point.clone()),
            });
        }
        if let Some(line) = self.table.kernel_alias(&path) {
            return Err(SourceError::KernelAlias {
                at: line.point.clone(),
                path,
            });
        }
        if kind == SourceKind::Directory {
            if let Some(line) = self.table.kernel_below(&path) {
                return Err(SourceError::KernelBelow {
                    below: line.point.clone(),
                    fstype: line.fstype.clone(),
                    path,
                });
            }
        }
        Ok(MountSource {
            path,
            fd,
            kind,
            stat,
        })
    }
}

/// The error for a path that `openat2` refused with `ELOOP`: the first symlink on it
/// (looked up again only to say which; nothing is decided from it).
fn symlink_on_the_way(path: &Path) -> SourceError {
    let mut prefix = PathBuf::from("/");
    for c in path.components().skip(1) {
        prefix.push(c);
        let Ok(cp) = cpath(&prefix) else { break };
        let Ok(fd) = open_nofollow(&cp) else { break };
        let is_link = fstat(fd.as_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK);
        if is_link {
            return SourceError::Symlink {
                path: path.to_path_buf(),
                target: readlink(fd.as_fd()).unwrap_or_default(),
                link: prefix,
                real: std::fs::canonicalize(path).ok(),
            };
        }
    }
    SourceError::Io {
        path: path.to_path_buf(),
        op: "opening",
        source: std::io::Error::from_raw_os_error(libc::ELOOP),
    }
}

impl MountSource {
    /// The source's path (absolute, normalized, without symlinks but perhaps the last
    /// component).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What it is.
    pub fn kind(&self) -> &SourceKind {
        &self.kind
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == SourceKind::Directory
    }

    /// The `O_PATH` handle (of the link itself for a symlink).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The handle, owned.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Device and inode number.
    pub fn id(&self) -> (u64, u64) {
        (self.stat.st_dev, self.stat.st_ino)
    }

    /// Owner uid and gid.
    pub fn owner(&self) -> (u32, u32) {
        (self.stat.st_uid, self.stat.st_gid)
    }

    /// Permission bits.
    pub fn mode(&self) -> u32 {
        self.stat.st_mode & 0o7777
    }

    /// Whether `uid`/`gid` (with no supplementary groups and no capabilities) may use
    /// the source by its permission bits (ACLs aside): list and enter a directory, read
    /// a file, and write it too when `write`.
    pub fn allows(&self, uid: u32, gid: u32, write: bool) -> bool {
        let shift = if self.stat.st_uid == uid {
            6
        } else if self.stat.st_gid == gid {
            3
        } else {
            0
        };
        let bits = (self.stat.st_mode >> shift) & 0o7;
        let need = match (self.is_dir(), write) {
            (true, false) => 0o5,
            (true, true) => 0o7,
            (false, false) => 0o4,
            (false, true) => 0o6,
        };
        bits & need == need
    }

    /// The directory holding the source (an `O_PATH` handle, opened without following
    /// symlinks) and the source's name in it, checked to name this very inode.
    pub fn parent(&self) -> Result<(OwnedFd, OsString), SourceError> {
        let err = |op, source| SourceError::Io {
            path: self.path.clone(),
            op,
            source,
        };
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return Err(err(
                "finding the directory of",
                std::io::Error::from_raw_os_error(libc::EINVAL),
            ));
        };
        let dir_fd = open_nofollow(&cpath(dir)?).map_err(|e| {
            err(
                "opening the directory of",
                std::io::Error::from_raw_os_error(e),
            )
        })?;
        let cname = CString::new(name.as_bytes()).map_err(|_| SourceError::NotAbsolute {
            path: self.path.clone(),
        })?;
        let again = openat2(
            dir_fd.as_raw_fd(),
            &cname,
            libc::O_PATH | libc::O_NOFOLLOW,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
        )
        .map_err(|e| err("opening", std::io::Error::from_raw_os_error(e)))?;
        let st = fstat(again.as_fd()).map_err(|e| err("examining", e))?;
        if (st.st_dev, st.st_ino) != self.id() {
            return Err(err(
                "opening",
                std::io::Error::from_raw_os_error(libc::ESTALE),
            ));
        }
        Ok((dir_fd, name.to_os_string()))
    }
}
