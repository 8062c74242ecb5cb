//! What a path can lead to, and its metadata.

use std::os::fd::AsRawFd;
use std::rc::Rc;

use super::host::{self, HostFd};
use super::overlay::{Lower, OvlDir};
use super::proc::ProcNode;
use super::tmpfs::TmpInode;
use crate::errno::{self, Errno};

/// A point in time (`struct timespec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Time {
    /// Seconds.
    pub(crate) sec: i64,
    /// Nanoseconds.
    pub(crate) nsec: i64,
}

impl Time {
    /// The wall clock now.
    pub(crate) fn now() -> Time {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Time {
            sec: d.as_secs() as i64,
            nsec: i64::from(d.subsec_nanos()),
        }
    }
}

/// File metadata (what `stat` reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Device.
    pub(crate) dev: u64,
    /// Inode number.
    pub(crate) ino: u64,
    /// Type and permission bits.
    pub(crate) mode: u32,
    /// Link count.
    pub(crate) nlink: u64,
    /// Owner.
    pub(crate) uid: u32,
    /// Group.
    pub(crate) gid: u32,
    /// Device number, for device files.
    pub(crate) rdev: u64,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Preferred I/O size.
    pub(crate) blksize: u64,
    /// 512-byte blocks.
    pub(crate) blocks: u64,
    /// Last access.
    pub(crate) atime: Time,
    /// Last modification.
    pub(crate) mtime: Time,
    /// Last status change.
    pub(crate) ctime: Time,
}

impl Meta {
    /// From a host `stat`.
    pub(crate) fn from_host(st: &libc::stat) -> Meta {
        Meta {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            nlink: st.st_nlink,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
            size: st.st_size.max(0) as u64,
            blksize: st.st_blksize.max(0) as u64,
            blocks: st.st_blocks.max(0) as u64,
            atime: Time {
                sec: st.st_atime,
                nsec: st.st_atime_nsec,
            },
            mtime: Time {
                sec: st.st_mtime,
                nsec: st.st_mtime_nsec,
            },
            ctime: Time {
                sec: st.st_ctime,
                nsec: st.st_ctime_nsec,
            },
        }
    }

    /// Synthetic metadata: owned by root, times at the epoch of the sandbox.
    pub(crate) fn synthetic(ino: u64, mode: u32, size: u64, rdev: u64) -> Meta {
        Meta {
            dev: 0x2b,
            ino,
            mode,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev,
            size,
            blksize: 4096,
            blocks: size.div_ceil(512),
            atime: Time::default(),
            mtime: Time::default(),
            ctime: Time::default(),
        }
    }

    /// The `S_IFMT` bits.
    pub(crate) fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    /// A directory.
    pub(crate) fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }

    /// The `DT_*` type for `getdents64`.
    pub(crate) fn dtype(&self) -> u8 {
        dtype_of(self.mode)
    }
}

/// The `DT_*` value of a mode.
pub(crate) fn dtype_of(mode: u32) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => libc::DT_DIR,
        libc::S_IFREG => libc::DT_REG,
        libc::S_IFLNK => libc::DT_LNK,
        libc::S_IFCHR => libc::DT_CHR,
        libc::S_IFBLK => libc::DT_BLK,
        libc::S_IFIFO => libc::DT_FIFO,
        libc::S_IFSOCK => libc::DT_SOCK,
        _ => libc::DT_UNKNOWN,
    }
}

/// The device files of /dev.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DevKind {
    /// /dev/null.
    Null,
    /// /dev/zero.
    Zero,
    /// /dev/full.
    Full,
    /// /dev/random and /dev/urandom.
    Random,
    /// /dev/tty: the caller's controlling terminal.
    Tty,
    /// /dev/pts/N: terminal `N` (of an exec started on one, or opened by `/dev/ptmx`).
    Pts(u32),
    /// /dev/ptmx: a new pseudo-terminal at each open.
    Ptmx,
}

impl DevKind {
    /// A device nobody waits on and no call on blocks (its reads and writes finish at
    /// once): `/dev/null`, `zero`, `full`, `[u]random`.
    pub(crate) fn is_plain(self) -> bool {
        matches!(
            self,
            DevKind::Null | DevKind::Zero | DevKind::Full | DevKind::Random
        )
    }

    fn rdev(self) -> u64 {
        let (major, minor) = match self {
            DevKind::Null => (1, 3),
            DevKind::Zero => (1, 5),
            DevKind::Full => (1, 7),
            DevKind::Random => (1, 9),
            DevKind::Tty => (5, 0),
            DevKind::Ptmx => (5, 2),
            DevKind::Pts(n) => (136, u64::from(n)),
        };
        // The kernel's encoding (`new_encode_dev`).
        (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
    }
}

/// What a path leads to.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// A directory that exists only in the mount tree (the root, /dev, /proc, ...).
    Virtual,
    /// A host directory.
    HostDir {
        /// `O_PATH` handle.
        fd: Rc<HostFd>,
        /// Read-only mount.
        ro: bool,
        /// `noexec` mount (see [`Node::noexec`]).
        noexec: bool,
        /// Which mount (renames and links stay inside one).
        mnt: u32,
    },
    /// A host non-directory (file, symlink, device...).
    HostFile {
        /// `O_PATH` handle of its directory.
        dir: Rc<HostFd>,
        /// Its name there.
        name: Rc<[u8]>,
        /// `O_PATH` handle of the file itself.
        fd: Rc<HostFd>,
        /// Read-only mount.
        ro: bool,
        /// `noexec` mount (see [`Node::noexec`]).
        noexec: bool,
        /// Which mount.
        mnt: u32,
        /// Type bits (`S_IFMT`).
        kind: u32,
    },
    /// A node of the in-memory /tmp.
    Tmp(Rc<TmpInode>),
    /// A device file.
    Dev(DevKind),
    /// A file generated by the sandbox (/etc/passwd...).
    Gen(Rc<[u8]>),
    /// A symlink of the mount tree (/bin -> usr/bin, /proc/self/exe).
    Link(Rc<[u8]>),
    /// A directory of an image root (its layers merged under the upper layer).
    Ovl(OvlDir),
    /// A non-directory of an image root that only its layers provide.
    Lower(Rc<Lower>),
    /// A node of `/proc`.
    Proc(ProcNode),
}

impl Node {
    /// A directory.
    pub(crate) fn is_dir(&self) -> bool {
        match self {
            Node::Virtual | Node::HostDir { .. } | Node::Ovl(_) => true,
            Node::Tmp(t) => t.is_dir(),
            Node::Proc(p) => p.is_dir(),
            _ => false,
        }
    }

    /// Opening it read-only only makes an open file of it: a regular file or a
    /// directory (host, /tmp, image layer, the mount tree's own) or a device nobody
    /// waits on. Not a FIFO (an open waits for the other end), a terminal (an open may
    /// make it the controlling one), `/dev/ptmx` (an open makes a terminal), a
    /// `/proc` file (made from the process's state at the open), a socket or a link.
    /// Fast calls open only these (`fastcall.rs`); the open itself still decides.
    pub(crate) fn opens_plain(&self) -> bool {
        match self {
            Node::Virtual | Node::HostDir { .. } | Node::Ovl(_) | Node::Gen(_) => true,
            Node::HostFile { kind, .. } => *kind == libc::S_IFREG,
            Node::Lower(l) => l.kind == libc::S_IFREG,
            Node::Tmp(t) => t.fifo().is_none() && t.socket().is_none() && t.link_target().is_none(),
            Node::Dev(d) => d.is_plain(),
            Node::Link(_) | Node::Proc(_) => false,
        }
    }

    /// A symlink.
    pub(crate) fn is_link(&self) -> bool {
        match self {
            Node::Link(_) => true,
            Node::HostFile { kind, .. } => *kind == libc::S_IFLNK,
            Node::Lower(l) => l.kind == libc::S_IFLNK,
            Node::Tmp(t) => t.link_target().is_some(),
            _ => false,
        }
    }

    /// A symlink's target.
    pub(crate) fn link_target(&self) -> Result<Vec<u8>, Errno> {
        match self {
            Node::Link(t) => Ok(t.to_vec()),
            Node::HostFile { fd, kind, .. } if *kind == libc::S_IFLNK => {
                host::readlink(fd.as_raw_fd())
            }
            Node::Lower(l) if l.kind == libc::S_IFLNK => host::readlink(l.fd.as_raw_fd()),
            Node::Tmp(t) => t.link_target().ok_or(errno::EINVAL),
            _ => Err(errno::EINVAL),
        }
    }

    /// Whether the mount this node is on is `noexec` (Linux's `path_noexec`): the one
    /// answer `execve` (the program, a `#!` interpreter, the ELF loader), `mmap` with
    /// `PROT_EXEC` and `access(X_OK)` take. Only a mount the plan makes `noexec` is:
    /// an in-memory filesystem (each is mounted once, so its flag is its mount's) or a
    /// host bind, whose flag every node looked up under it carries, as `ro` (a mount
    /// point's own node is the mount's, whatever is under it). An image root's layers
    /// and a directory root never are. An open file asks it of the location it was
    /// opened at (`OpenFile::noexec`): a memfd, opened at no path, is on Linux's
    /// internal mount, never `noexec`.
    pub(crate) fn noexec(&self) -> bool {
        match self {
            Node::HostDir { noexec, .. } | Node::HostFile { noexec, .. } => *noexec,
            Node::Tmp(t) => t.fs().noexec(),
            _ => false,
        }
    }

    /// Whether writes through this node (or into this directory) are refused, and how
    /// (an image root's layers are written by copying up).
    pub(crate) fn writable(&self) -> Result<(), Errno> {
        match self {
            Node::HostDir { ro: true, .. } | Node::HostFile { ro: true, .. } => Err(errno::EROFS),
            Node::HostDir { .. }
            | Node::HostFile { .. }
            | Node::Tmp(_)
            | Node::Dev(_)
            | Node::Ovl(_)
            | Node::Lower(_) => Ok(()),
            Node::Virtual | Node::Gen(_) | Node::Link(_) => Err(errno::EROFS),
            Node::Proc(_) => Err(errno::EACCES),
        }
    }

    /// Metadata; `ino` names virtual nodes.
    pub(crate) fn meta(&self, ino: u64) -> Result<Meta, Errno> {
        Ok(match self {
            Node::Virtual => {
                let mut m = Meta::synthetic(ino, libc::S_IFDIR | 0o755, 4096, 0);
                m.nlink = 2;
                m
            }
            Node::HostDir { fd, .. } | Node::HostFile { fd, .. } => host::fstat(fd.as_raw_fd())?,
            Node::Tmp(t) => t.meta(),
            Node::Dev(d) => Meta::synthetic(ino, libc::S_IFCHR | 0o666, 0, d.rdev()),
            Node::Gen(b) => Meta::synthetic(ino, libc::S_IFREG | 0o644, b.len() as u64, 0),
            Node::Link(t) => Meta::synthetic(ino, libc::S_IFLNK | 0o777, t.len() as u64, 0),
            Node::Ovl(d) => d.meta()?,
            Node::Lower(l) => l.meta()?,
            Node::Proc(p) if p.is_dir() => {
                let mut m = Meta::synthetic(ino, libc::S_IFDIR | 0o555, 0, 0);
                m.nlink = 2;
                m.dev = 0x2c;
                m
            }
            Node::Proc(_) => {
                let mut m = Meta::synthetic(ino, libc::S_IFREG | 0o444, 0, 0);
                m.dev = 0x2c;
                m
            }
        })
    }
}

impl crate::snap::Snap for Node {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(match self {
            Node::Virtual => Node::Virtual,
            Node::HostDir {
                fd,
                ro,
                noexec,
                mnt,
            } => Node::HostDir {
                fd: fd.snap(m)?,
                ro: *ro,
                noexec: *noexec,
                mnt: *mnt,
            },
            Node::HostFile {
                dir,
                name,
                fd,
                ro,
                noexec,
                mnt,
                kind,
            } => Node::HostFile {
                dir: dir.snap(m)?,
                name: m.bytes(name),
                fd: fd.snap(m)?,
                ro: *ro,
                noexec: *noexec,
                mnt: *mnt,
                kind: *kind,
            },
            Node::Tmp(t) => Node::Tmp(t.snap(m)?),
            Node::Dev(d) => Node::Dev(*d),
            Node::Gen(b) => Node::Gen(m.bytes(b)),
            Node::Link(t) => Node::Link(m.bytes(t)),
            Node::Ovl(d) => Node::Ovl(d.snap(m)?),
            Node::Lower(l) => Node::Lower(l.snap(m)?),
            Node::Proc(p) => Node::Proc(p.clone()),
        })
    }
}
