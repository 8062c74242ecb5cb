//! A plan's host mounts, opened at setup through the one checked path both backends
//! share (`sandbox_core::mount_source`: no symlink followed in any component, no kernel
//! interface). For a root caller, each but the host's system directories becomes a
//! detached mount tree made from the checked descriptor (`mount_source::idmap`),
//! read-only in the kernel when the mount is, and idmapped so that the source owner's
//! files are the sandbox's host identity's: the VMM reaches them through it, still as
//! uid 65534 with no capability, as the container's workload does. (System directories
//! stay the host paths: a detached tree costs a mount teardown, ~0.1 ms, per run.)

use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;

use sandbox_core::mount_source::idmap::{
    Idmaps, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};
use sandbox_core::mount_source::{HostMounts, MountSource, SourceKind};
use sandbox_core::{MountAccess, MountMode, MountReport, PlannedMount};

use super::{host, HostSource, MountError, Node};

/// A plan mount, opened.
#[derive(Debug)]
pub(crate) struct HostMount {
    /// What its mount point shows.
    pub(crate) mount: Node,
    /// Its host handle, for Landlock (none for a symlink).
    pub(crate) source: Option<HostSource>,
    /// How it reaches the host, for the enforcement report.
    pub(crate) report: MountReport,
}

/// What a run's mounts are opened with.
#[derive(Debug)]
pub(crate) struct Sources {
    host_mounts: HostMounts,
    /// A root caller's idmaps; `None` for a rootless caller (its own access applies).
    idmaps: Option<Idmaps>,
    host: (u32, u32),
}

/// May `ids` search the directory of `dir_stat`, as seen through an idmap of `owner`
/// onto `ids` (or with no idmap when `owner` is `ids`)?
fn searchable(dir: &libc::stat, owner: (u32, u32)) -> bool {
    let shift = if dir.st_uid == owner.0 {
        6
    } else if dir.st_gid == owner.1 {
        3
    } else {
        0
    };
    (dir.st_mode >> shift) & 0o1 != 0
}

impl Sources {
    /// Reads the host's mount table; `root_caller`: mounts become idmapped trees
    /// onto `host`.
    pub(crate) fn new(root_caller: bool, host: (u32, u32)) -> std::io::Result<Sources> {
        Ok(Sources {
            host_mounts: HostMounts::read().map_err(|e| e.into_io())?,
            idmaps: root_caller.then(|| Idmaps::new(host)),
            host,
        })
    }

    /// How a mount that is not idmapped reaches the host: as the caller (rootless), or
    /// as the sandbox's identity (a root caller's system directories: the host paths
    /// themselves, Landlock read-only, no tree to make and dissolve at each run).
    fn plain_access(&self) -> MountAccess {
        if self.idmaps.is_some() {
            MountAccess::SandboxIdentity
        } else {
            MountAccess::Caller
        }
    }

    /// Opens planned mount number `mnt`; `None` for a missing optional one.
    pub(crate) fn open(
        &mut self,
        pm: &PlannedMount,
        mnt: u32,
    ) -> Result<Option<HostMount>, MountError> {
        let err = |error: std::io::Error| MountError {
            mount: pm.clone(),
            error,
        };
        let src = match self.host_mounts.resolve(&pm.source) {
            Ok(src) => src,
            Err(e) if e.is_not_found() && pm.optional => return Ok(None),
            Err(e) => return Err(err(e.into_io())),
        };
        let report = |kind: &str, access, host_ids, note| MountReport {
            source: src.path().display().to_string(),
            target: pm.target.display().to_string(),
            mode: pm.mode,
            kind: kind.into(),
            access,
            host_ids,
            note,
        };
        let ro = pm.mode == MountMode::Ro;
        match src.kind().clone() {
            SourceKind::Symlink(target) => {
                use std::os::unix::ffi::OsStrExt;
                let report = report("symlink", MountAccess::None, None, None);
                Ok(Some(HostMount {
                    mount: Node::Link(target.as_os_str().as_bytes().into()),
                    source: None,
                    report,
                }))
            }
            SourceKind::Directory => {
                let (fd, access, ids, note) = match self.idmaps.as_mut().filter(|_| !pm.system) {
                    None => (
                        src.fd().try_clone_to_owned().map_err(err)?,
                        self.plain_access(),
                        self.host,
                        None,
                    ),
                    Some(idmaps) => {
                        let t = idmaps
                            .tree(&src, src.fd(), attrs(ro), pm.system, !ro)
                            .map_err(err)?;
                        (t.tree, t.access, t.host_ids, t.note)
                    }
                };
                let report = report("directory", access, Some(ids), note);
                let fd = Rc::new(host::HostFd::setup(fd));
                Ok(Some(HostMount {
                    mount: Node::HostDir {
                        fd: Rc::clone(&fd),
                        ro,
                        noexec: pm.noexec,
                        mnt,
                    },
                    source: Some(HostSource { fd, ro, dir: true }),
                    report,
                }))
            }
            SourceKind::File => self.file(pm, mnt, &src).map(Some).map_err(err),
        }
    }

    /// A file mount: the VMM opens the file by name in its directory (for each open
    /// mode the workload asks), so a root caller's tree is of that directory, and the
    /// file must be found in it as the inode resolved.
    fn file(
        &mut self,
        pm: &PlannedMount,
        mnt: u32,
        src: &MountSource,
    ) -> Result<HostMount, std::io::Error> {
        use std::os::unix::ffi::OsStrExt;
        let ro = pm.mode == MountMode::Ro;
        let (dir, name) = src.parent().map_err(|e| e.into_io())?;
        let plain = self.plain_access();
        let (dir, access, ids, note) = match self.idmaps.as_mut().filter(|_| !pm.system) {
            None => (dir, plain, self.host, None),
            Some(idmaps) => {
                // SAFETY: an all-zero stat is a valid buffer for fstat to fill.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                // SAFETY: a valid descriptor and buffer.
                if unsafe { libc::fstat(dir.as_raw_fd(), &mut st) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let t = idmaps.tree(src, dir.as_fd(), attrs(ro), pm.system, !ro)?;
                if !searchable(&st, t.host_ids) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!(
                            "the micro-VM reaches a file mount through its directory, which uid {} may not search ({}: mode {:04o}, owner {}:{}): mount the directory, or make it searchable",
                            self.host.0,
                            src.path().parent().unwrap_or(src.path()).display(),
                            st.st_mode & 0o7777,
                            st.st_uid,
                            st.st_gid
                        ),
                    ));
                }
                (t.tree, t.access, t.host_ids, t.note)
            }
        };
        let fd = host::open_path(dir.as_raw_fd(), name.as_bytes())
            .map_err(|e| std::io::Error::from_raw_os_error(e.0))?;
        let m = host::fstat(fd.as_raw_fd()).map_err(|e| std::io::Error::from_raw_os_error(e.0))?;
        if (m.dev, m.ino) != src.id() {
            return Err(std::io::Error::from_raw_os_error(libc::ESTALE));
        }
        let fd = Rc::new(fd);
        Ok(HostMount {
            mount: Node::HostFile {
                dir: Rc::new(host::HostFd::setup(dir)),
                name: name.as_bytes().into(),
                fd: Rc::clone(&fd),
                ro,
                noexec: pm.noexec,
                mnt,
                kind: libc::S_IFREG,
            },
            source: Some(HostSource { fd, ro, dir: false }),
            report: MountReport {
                source: src.path().display().to_string(),
                target: pm.target.display().to_string(),
                mode: pm.mode,
                kind: "file".into(),
                access,
                host_ids: Some(ids),
                note,
            },
        })
    }
}

/// The attributes of a root caller's tree (nosuid and nodev, as the container's).
fn attrs(ro: bool) -> u64 {
    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | if ro { MOUNT_ATTR_RDONLY } else { 0 }
}
