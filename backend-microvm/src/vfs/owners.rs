//! Whose filesystem ids the VMM thread uses on each mount's host files.
//!
//! The thread's usual ids are the sandbox's host identity (the caller's, or uid 65534
//! for a root caller: `confine::host_identity`). For a root caller, each mount but the
//! host's system directories is reached with its **source owner's** ids instead, as the
//! container backend's idmapped mounts do: the workload can read a `0700 root` job
//! directory, and write a root-owned read-write mount (its new files belong to the
//! owner). The switch (`setfsuid`/`setfsgid`, this thread only) wraps exactly one host
//! call and is undone right after it, so a call that is not wrapped runs with the usual
//! ids: the safe side. The thread holds no capability but `CAP_SETUID`/`CAP_SETGID`
//! (`confine`), so acting as uid 0 is acting as the *owner* of root's files, never with
//! root's overrides; its seccomp filter lets it take only the ids listed here, and
//! Landlock still keeps it to the mounts.

use std::cell::Cell;
use std::collections::BTreeMap;

use crate::errno::{self, Errno};

/// The mount owners of one sandbox.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    /// The thread's usual filesystem ids.
    usual: (u32, u32),
    /// Mount number → the (uid, gid) its host calls are made with, when not the usual.
    by_mount: BTreeMap<u32, (u32, u32)>,
    /// A switch back to the usual ids failed: no host call is made any more.
    broken: Cell<bool>,
}

/// Sets this thread's filesystem id with `nr` (`SYS_setfsuid`/`SYS_setfsgid`); returns
/// the previous one, or `None` when the new one does not hold (the calls report the
/// previous id, never an error).
fn set(nr: libc::c_long, id: u32) -> Option<u32> {
    // SAFETY: setfsuid/setfsgid change only the calling thread's filesystem ids.
    let before = unsafe { libc::syscall(nr, id) } as u32;
    // SAFETY: as above; setting the same id again returns the current one.
    let now = unsafe { libc::syscall(nr, id) } as u32;
    (now == id).then_some(before)
}

/// Takes the filesystem ids `(uid, gid)`; returns the previous ones.
fn become_ids((uid, gid): (u32, u32)) -> Option<(u32, u32)> {
    let gid_before = set(libc::SYS_setfsgid, gid)?;
    let uid_before = set(libc::SYS_setfsuid, uid)?;
    Some((uid_before, gid_before))
}

impl Owners {
    /// Mounts reached with the usual ids `usual` until [`Owners::act_as_owner`] says
    /// otherwise.
    pub(crate) fn new(usual: (u32, u32)) -> Owners {
        Owners {
            usual,
            ..Default::default()
        }
    }

    /// Host calls on mount `mnt` are made as `owner`.
    pub(crate) fn act_as_owner(&mut self, mnt: u32, owner: (u32, u32)) {
        if owner != self.usual {
            self.by_mount.insert(mnt, owner);
        }
    }

    /// The host ids mount `mnt`'s files are reached with.
    pub(crate) fn of(&self, mnt: u32) -> (u32, u32) {
        self.by_mount.get(&mnt).copied().unwrap_or(self.usual)
    }

    /// Every id the thread may take: the usual ones and the owners'.
    pub(crate) fn ids(&self) -> (Vec<u32>, Vec<u32>) {
        let mut uids = vec![self.usual.0];
        let mut gids = vec![self.usual.1];
        for &(u, g) in self.by_mount.values() {
            uids.push(u);
            gids.push(g);
        }
        uids.sort_unstable();
        uids.dedup();
        gids.sort_unstable();
        gids.dedup();
        (uids, gids)
    }

    /// Runs the host call `f` on mount `mnt` with that mount's ids, then takes the
    /// thread's ids back (the usual ones once the thread is confined; root's while the
    /// sandbox is set up, before it opens /dev/kvm).
    pub(crate) fn with<T>(
        &self,
        mnt: u32,
        f: impl FnOnce() -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        if self.broken.get() {
            return Err(errno::EACCES);
        }
        let Some(&owner) = self.by_mount.get(&mnt) else {
            return f();
        };
        let Some(before) = become_ids(owner) else {
            if become_ids(self.usual).is_none() {
                self.broken.set(true);
            }
            return Err(errno::EACCES);
        };
        let out = f();
        if become_ids(before).is_none() {
            self.broken.set(true);
            return Err(errno::EACCES);
        }
        out
    }
}
