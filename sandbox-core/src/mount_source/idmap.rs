//! A root caller's mounts, made from the checked source descriptor as detached mount
//! trees, idmapped to their sources' owners. Both backends use them: the container's
//! init attaches them; the micro-VM's VMM reaches host files through them.
//!
//! A sandbox's processes (or VMM thread) reach host files as uid 65534 when the caller
//! is root, so that an escape never lands as host root; a root-owned source would be out
//! of their reach. Each mount but the host's system directories therefore gets an
//! **idmap** (`MOUNT_ATTR_IDMAP`): a user namespace whose only mapping is *the source's
//! owner → 65534*, so that the workload owns what the source's owner owns, and nothing
//! else (other owners' files show as unmapped and obey their "other" permission bits;
//! no capability comes with it). Files it creates land on the host owned by that owner.
//!
//! Idmapping needs `CAP_SYS_ADMIN` over the host's user namespace, so it is done by the
//! root caller, on a detached copy (`open_tree` with `OPEN_TREE_CLONE`) of the mount
//! the checked descriptor is on: nothing is looked up by path again. Where the kernel or
//! the filesystem refuses an idmap, the tree is plain, the report says so, and a source
//! the sandbox's identity could not use fails with `EACCES`, naming the cause and the
//! fix.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::MountSource;
use crate::outcome::MountAccess;

/// `MOUNT_ATTR_RDONLY` (include/uapi/linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x01;
/// `MOUNT_ATTR_NOSUID`.
pub const MOUNT_ATTR_NOSUID: u64 = 0x02;
/// `MOUNT_ATTR_NODEV`.
pub const MOUNT_ATTR_NODEV: u64 = 0x04;
/// `MOUNT_ATTR_IDMAP`.
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
/// `OPEN_TREE_CLONE`.
const OPEN_TREE_CLONE: u32 = 1;
/// `AT_RECURSIVE`.
const AT_RECURSIVE: u32 = 0x8000;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
#[derive(Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// A user namespace whose only mapping is `owner` (uid, gid) → `to` (uid, gid), and
/// each gid of `groups` (the workload's supplementary groups, none the owner's gid or
/// `to`'s) to itself.
fn userns(owner: (u32, u32), to: (u32, u32), groups: &[u32]) -> std::io::Result<OwnedFd> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned this descriptor; we own it.
    let r = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above.
    let w = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    // The child only holds the namespace: it needs no memory of its own, and makes
    // only raw system calls (`hold_namespace`).
    // SAFETY: `hold_namespace` makes raw system calls only, reads its descriptor
    // number, and fits in CHILD_STACK (a byte and a few locals).
    let holder = unsafe {
        crate::child::MemChild::start(
            hold_namespace,
            r.as_raw_fd(),
            libc::CLONE_NEWUSER,
            CHILD_STACK,
        )
    }?;
    let pid = holder.pid();
    drop(r);
    let proc = format!("/proc/{pid}");
    let result = std::fs::write(
        format!("{proc}/uid_map"),
        format!("{} {} 1\n", owner.0, to.0),
    )
    .and_then(|_| {
        let same: String = groups
            .iter()
            .filter(|g| **g != owner.1 && **g != to.1)
            .map(|g| format!("{g} {g} 1\n"))
            .collect();
        std::fs::write(
            format!("{proc}/gid_map"),
            format!("{} {} 1\n{same}", owner.1, to.1),
        )
    })
    .and_then(|_| std::fs::File::open(format!("{proc}/ns/user")).map(OwnedFd::from));
    drop(w);
    // Whatever else holds the pipe, the child ends now (killed and reaped).
    drop(holder);
    result
}

/// Bytes of the namespace holder's stack (it calls nothing but raw system calls).
const CHILD_STACK: usize = 64 << 10;

/// The namespace holder (see [`userns`]): the child of a possibly multithreaded
/// caller, sharing its memory, so raw system calls only, no allocation. It holds the
/// namespace alive until the parent closes its end of the pipe (or dies). It runs with
/// the calling thread's thread pointer, so a failing call would set that thread's
/// `errno`; none of these fails on valid descriptors (a read ends with the byte, the
/// end of the pipe, or the kill).
extern "C" fn hold_namespace(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the descriptor number the parent keeps until this child is
    // reaped.
    let keep = unsafe { *(arg as *const RawFd) } as libc::c_uint;
    let mut b = 0u8;
    // It keeps no descriptor but its end of the pipe: a copy of another thread's pipe
    // (a concurrent fork's, a sandbox's start pipe, the write end of its own) held
    // here would keep that pipe's reader from ever seeing its end (two such children,
    // each holding the other's pipe, waited for each other forever).
    if keep > 0 {
        // SAFETY: a raw close_range on this child's own descriptor table.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                0 as libc::c_uint,
                keep - 1,
                0 as libc::c_uint,
            )
        };
    }
    // SAFETY: as above.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            keep + 1,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        )
    };
    // And it dies with the thread that made it.
    // SAFETY: a raw prctl with integer arguments.
    unsafe {
        libc::syscall(
            libc::SYS_prctl,
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
        )
    };
    // SAFETY: a raw read of one byte into this stack's buffer.
    unsafe {
        libc::syscall(
            libc::SYS_read,
            keep as libc::c_int,
            &mut b as *mut u8,
            1usize,
        )
    };
    0
}

/// Sets `attrs` (and the idmap of `userns`) on every mount of the detached `tree`. All
/// or nothing: on an error the tree is unchanged.
fn set(tree: BorrowedFd<'_>, attrs: u64, userns: Option<BorrowedFd<'_>>) -> Result<(), i32> {
    let attr = MountAttr {
        attr_set: attrs | userns.map_or(0, |_| MOUNT_ATTR_IDMAP),
        userns_fd: userns.map_or(0, |u| u.as_raw_fd() as u64),
        ..Default::default()
    };
    // SAFETY: a valid descriptor, an empty C string, and a mount_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH as u32) | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// A detached copy of the mount `at` is on, rooted at `at` (with the mounts below it
/// when `recursive`).
fn clone_tree(at: BorrowedFd<'_>, recursive: bool) -> Result<OwnedFd, i32> {
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as u32
        | libc::AT_EMPTY_PATH as u32
        | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: a valid descriptor and an empty C string.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, at.as_raw_fd(), c"".as_ptr(), flags) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: open_tree returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A root caller's mount, as a detached tree, and how it reaches the host's files.
#[derive(Debug)]
pub struct RootMount {
    /// The detached tree's root (an `O_PATH` handle: attach it, or look up beneath it).
    pub tree: OwnedFd,
    /// Whose access the workload has.
    pub access: MountAccess,
    /// The host ids of that access.
    pub host_ids: (u32, u32),
    /// Why the idmap wanted could not be had, when it could not.
    pub note: Option<String>,
}

/// The user namespaces of one run's idmaps, one per source owner.
#[derive(Debug)]
pub struct Idmaps {
    host: (u32, u32),
    groups: Vec<u32>,
    spaces: Vec<((u32, u32), OwnedFd)>,
}

impl Idmaps {
    /// Idmaps onto `host`, the sandbox's host uid and gid.
    pub fn new(host: (u32, u32)) -> Idmaps {
        Idmaps {
            host,
            groups: Vec::new(),
            spaces: Vec::new(),
        }
    }

    /// Idmaps that also map each of `groups`, the workload's supplementary groups
    /// (which it holds as the same host gids), to itself: a file of such a group shows
    /// as that group, and its group permission applies, as on the host.
    pub fn with_groups(host: (u32, u32), groups: &[u32]) -> Idmaps {
        Idmaps {
            groups: groups.to_vec(),
            ..Idmaps::new(host)
        }
    }

    fn space(&mut self, owner: (u32, u32)) -> std::io::Result<BorrowedFd<'_>> {
        let i = match self.spaces.iter().position(|(o, _)| *o == owner) {
            Some(i) => i,
            None => {
                let ns = userns(owner, self.host, &self.groups)?;
                self.spaces.push((owner, ns));
                self.spaces.len() - 1
            }
        };
        Ok(self.spaces[i].1.as_fd())
    }

    /// The detached tree of a root caller's mount of `src`, rooted at `root` (`src`'s
    /// own descriptor, or its directory's for a micro-VM file mount), with `attrs`;
    /// idmapped to `src`'s owner unless `system`. `write`: the mount is read-write (for
    /// the check of a source that could not be idmapped).
    pub fn tree(
        &mut self,
        src: &MountSource,
        root: BorrowedFd<'_>,
        attrs: u64,
        system: bool,
        write: bool,
    ) -> std::io::Result<RootMount> {
        let host = self.host;
        let owner = src.owner();
        let tree = clone_tree(root, src.is_dir()).map_err(std::io::Error::from_raw_os_error)?;
        let plain = |tree: OwnedFd, note| -> std::io::Result<RootMount> {
            set(tree.as_fd(), attrs, None).map_err(std::io::Error::from_raw_os_error)?;
            Ok(RootMount {
                tree,
                access: MountAccess::SandboxIdentity,
                host_ids: host,
                note,
            })
        };
        if system {
            return plain(tree, None);
        }
        let refused = match set(tree.as_fd(), attrs, Some(self.space(owner)?)) {
            Ok(()) => {
                return Ok(RootMount {
                    tree,
                    access: MountAccess::Idmapped,
                    host_ids: owner,
                    note: None,
                })
            }
            Err(e) => e,
        };
        let why = format!(
            "idmapped mounts are unavailable for this source (the kernel refused: {}; they need Linux 5.12+ and a filesystem that supports them)",
            std::io::Error::from_raw_os_error(refused)
        );
        if !src.allows(host.0, host.1, write) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "the sandbox reaches host files as uid {} gid {}, which may not {} {} (mode {:04o}, owner {}:{}), and {why}: make it {} by uid {} (chown, chmod or an ACL), or run as its owner (rootless)",
                    host.0,
                    host.1,
                    if write { "read and write" } else { "read" },
                    src.path().display(),
                    src.mode(),
                    owner.0,
                    owner.1,
                    if write { "readable and writable" } else { "readable" },
                    host.0
                ),
            ));
        }
        let note = format!("{why}: the workload reaches it as uid {}", host.0);
        plain(tree, Some(note))
    }
}

/// Whether idmapped mounts work here (a detached copy of `/` idmapped to the sandbox's
/// host identity), for `hsb probe`. Root only; `Err` says why not.
pub fn probe(host: (u32, u32)) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not needed: a rootless run's workload has the caller's own access".into());
    }
    let ns =
        userns((0, 0), host, &[]).map_err(|e| format!("creating a user namespace failed: {e}"))?;
    let root = std::fs::File::open("/").map_err(|e| e.to_string())?;
    let tree = clone_tree(root.as_fd(), false)
        .map_err(|e| format!("open_tree failed: {}", std::io::Error::from_raw_os_error(e)))?;
    set(tree.as_fd(), 0, Some(ns.as_fd())).map_err(|e| {
        format!(
            "the kernel refused to idmap the root filesystem ({}); Linux 5.12+ and a filesystem that supports idmapped mounts are needed",
            std::io::Error::from_raw_os_error(e)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// The namespace [`userns`] returns maps exactly the owner given (seen through a
    /// tree idmapped with it: the owner's file shows as the target id, another's as
    /// unmapped), and the child that held it is gone (reaped, not a zombie) when the
    /// call returns. Root only (idmapping needs it).
    #[test]
    fn the_namespace_maps_the_owner_and_its_holder_is_reaped() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: idmapped mounts need root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("hsb-idmap-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mine"), b"x").unwrap();
        std::fs::write(dir.join("other"), b"x").unwrap();
        std::os::unix::fs::chown(dir.join("mine"), Some(1234), Some(1234)).unwrap();
        std::os::unix::fs::chown(dir.join("other"), Some(4321), Some(4321)).unwrap();
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() };
        let children =
            || std::fs::read_to_string(format!("/proc/self/task/{me}/children")).unwrap();
        let before = children();
        let ns = userns((1234, 1234), (2000, 2000), &[]).unwrap();
        assert_eq!(
            children(),
            before,
            "the namespace's holder is still a child"
        );
        let link = std::fs::read_link(format!("/proc/self/fd/{}", ns.as_raw_fd())).unwrap();
        assert!(link.to_string_lossy().starts_with("user:["), "{link:?}");
        let d = std::fs::File::open(&dir).unwrap();
        let tree = clone_tree(d.as_fd(), false).unwrap();
        if set(tree.as_fd(), 0, Some(ns.as_fd())).is_err() {
            eprintln!("skipped: this filesystem cannot be idmapped");
            std::fs::remove_dir_all(&dir).unwrap();
            return;
        }
        let seen = |name: &str| {
            let p = format!("/proc/self/fd/{}/{name}", tree.as_raw_fd());
            let m = std::fs::metadata(p).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(seen("mine"), (2000, 2000));
        // Unmapped: the kernel's overflow ids.
        let overflow = |f: &str| -> u32 {
            std::fs::read_to_string(format!("/proc/sys/fs/{f}"))
                .map_or(65534, |s| s.trim().parse().unwrap_or(65534))
        };
        assert_eq!(
            seen("other"),
            (overflow("overflowuid"), overflow("overflowgid"))
        );
        // A supplementary group of the workload's maps to itself: the other owner's
        // file shows with its group, its owner still unmapped.
        let ns = userns((1234, 1234), (2000, 2000), &[4321]).unwrap();
        let grouped = clone_tree(d.as_fd(), false).unwrap();
        set(grouped.as_fd(), 0, Some(ns.as_fd())).unwrap();
        let m = std::fs::metadata(format!("/proc/self/fd/{}/other", grouped.as_raw_fd())).unwrap();
        assert_eq!((m.uid(), m.gid()), (overflow("overflowuid"), 4321));
        drop(grouped);
        drop(tree);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
