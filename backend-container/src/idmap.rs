//! A root caller's bind mounts, made in the parent from the checked source descriptor.
//!
//! The sandbox's processes are host uid 65534 when the caller is root (an escape must
//! not land as host root), so a root-owned source would be out of their reach. Each bind
//! mount but the host's system directories gets an **idmap** (`MOUNT_ATTR_IDMAP`): a
//! user namespace whose only mapping is *source owner → 65534*, so that the workload
//! owns what the source's owner owns (and nothing else: other owners' files show as
//! unmapped and obey their "other" permission bits). Files it creates land on the host
//! owned by the source's owner.
//!
//! Idmapping needs `CAP_SYS_ADMIN` over the filesystem's user namespace (the host's), so
//! only the root parent can do it, on a detached copy of the mount (`open_tree` with
//! `OPEN_TREE_CLONE` on the descriptor `mount_source` resolved: nothing is looked up by
//! path again). The sandbox's init then only attaches the tree.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::sys::{self, Errno};

/// `MOUNT_ATTR_IDMAP` (include/uapi/linux/mount.h).
pub(crate) const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// A user namespace mapping only `owner` (uid, gid) to `to` (uid, gid), for an idmap.
pub(crate) fn userns(owner: (u32, u32), to: (u32, u32)) -> std::io::Result<OwnedFd> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned this descriptor; we own it.
    let r = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above.
    let w = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    let (pid, pidfd) = match sys::clone_pidfd(libc::CLONE_NEWUSER as libc::c_ulong) {
        Ok((0, _)) => {
            // The child of a possibly multithreaded caller: raw syscalls only. It holds
            // the namespace alive until the parent closes the pipe (or dies).
            sys::close(w.as_raw_fd());
            let mut b = [0u8; 1];
            let _ = sys::read(r.as_raw_fd(), &mut b);
            sys::exit(0)
        }
        Ok(p) => p,
        Err(e) => return Err(std::io::Error::from_raw_os_error(e)),
    };
    // SAFETY: CLONE_PIDFD stored a fresh pidfd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(r);
    let proc = format!("/proc/{pid}");
    let result = std::fs::write(
        format!("{proc}/uid_map"),
        format!("{} {} 1\n", owner.0, to.0),
    )
    .and_then(|_| {
        std::fs::write(
            format!("{proc}/gid_map"),
            format!("{} {} 1\n", owner.1, to.1),
        )
    })
    .and_then(|_| std::fs::File::open(format!("{proc}/ns/user")).map(OwnedFd::from));
    drop(w);
    // SAFETY: an all-zero siginfo_t is a valid out-parameter.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waiting on a pidfd we own; waitid writes only into `info`. The child exits
    // as soon as the pipe is closed (above).
    unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::__WALL,
        )
    };
    result
}

/// A detached recursive copy of the mount at `src` with `attrs` set; idmapped with
/// `idmap` when given. On an idmap the kernel refuses, the error (the tree is then
/// unchanged: `mount_setattr` applies all or nothing).
fn set(tree: BorrowedFd<'_>, attrs: u64, idmap: Option<BorrowedFd<'_>>) -> Result<(), Errno> {
    let attr = sys::MountAttr {
        attr_set: attrs | idmap.map_or(0, |_| MOUNT_ATTR_IDMAP),
        userns_fd: idmap.map_or(0, |u| u.as_raw_fd() as u64),
        ..Default::default()
    };
    sys::mount_setattr(
        tree.as_raw_fd(),
        c"",
        libc::AT_EMPTY_PATH as u32 | sys::AT_RECURSIVE,
        &attr,
    )
    .map(|_| ())
}

/// What [`detached`] made.
#[derive(Debug)]
pub(crate) struct Tree {
    /// The detached mount tree, for the child to attach.
    pub(crate) fd: OwnedFd,
    /// Why the idmap asked for could not be applied (the tree is then plain).
    pub(crate) idmap_refused: Option<Errno>,
}

/// A detached recursive copy of the mount at `src`, with `attrs`, idmapped with
/// `idmap` when given and the kernel and filesystem allow it.
pub(crate) fn detached(
    src: BorrowedFd<'_>,
    attrs: u64,
    idmap: Option<BorrowedFd<'_>>,
) -> Result<Tree, Errno> {
    let fd = sys::open_tree(
        src.as_raw_fd(),
        c"",
        sys::OPEN_TREE_CLONE
            | sys::OPEN_TREE_CLOEXEC
            | sys::AT_RECURSIVE
            | libc::AT_EMPTY_PATH as u32,
    )?;
    // SAFETY: open_tree returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let idmap_refused = match idmap {
        None => None,
        Some(u) => set(fd.as_fd(), attrs, Some(u)).err(),
    };
    if idmap.is_none() || idmap_refused.is_some() {
        set(fd.as_fd(), attrs, None)?;
    }
    Ok(Tree { fd, idmap_refused })
}

/// Whether idmapped mounts work here, for `hsb probe`: a detached copy of `/` idmapped
/// to the sandbox's host identity (root only; `Err` says why not).
pub(crate) fn probe() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not needed: a rootless run's workload has the caller's own access".into());
    }
    let id = (
        crate::blueprint::ROOT_MODE_HOST_ID,
        crate::blueprint::ROOT_MODE_HOST_ID,
    );
    let ns = userns((0, 0), id).map_err(|e| format!("creating a user namespace failed: {e}"))?;
    let root = std::fs::File::open("/").map_err(|e| e.to_string())?;
    let tree = sys::open_tree(
        root.as_raw_fd(),
        c"",
        sys::OPEN_TREE_CLONE | sys::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32,
    )
    .map_err(|e| format!("open_tree failed: {}", std::io::Error::from_raw_os_error(e)))?;
    // SAFETY: open_tree returned a fresh descriptor that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(tree) };
    set(tree.as_fd(), 0, Some(ns.as_fd())).map_err(|e| {
        format!(
            "the kernel refused to idmap the root filesystem ({}); Linux 5.12+ and a filesystem that supports idmapped mounts are needed",
            std::io::Error::from_raw_os_error(e)
        )
    })
}
