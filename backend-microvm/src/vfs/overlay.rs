//! The root filesystem of an OCI image: the image's read-only layers (directories of
//! the image store on the host, lowest first) under an in-memory upper layer that
//! belongs to one run and is charged to its memory.
//!
//! The same rules as overlayfs, which the container backend uses: the topmost layer
//! that has a name wins; a whiteout (a 0/0 character device in a layer, a
//! [`TmpData::Whiteout`] in the upper layer) hides the name in the layers below; a
//! directory marked opaque (`user.overlay.opaque=y`, or an upper directory made where
//! a whiteout was) hides what the layers below hold under that name. Anything written
//! is first copied up into the upper layer. Renaming a directory that layers below
//! provide is `EXDEV`, as overlayfs without `redirect_dir` answers (`mv` copies then).

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsRawFd;
use std::rc::Rc;

use super::host::{self, HostFd};
use super::tmpfs::{TmpData, TmpFs, TmpInode};
use super::{DirEntry, Meta};
use crate::errno::{self, Errno};

/// What the layers show under a name: the directories that merge there (topmost
/// first), or the non-directory.
type LowerView = (Vec<Rc<HostFd>>, Option<Rc<Lower>>);

/// Largest file copied up into the upper layer (it is held in memory).
const MAX_COPY_UP: u64 = 1 << 30;

/// One image root.
#[derive(Debug)]
pub(crate) struct Overlay {
    /// The upper layer's root directory.
    upper: Rc<TmpInode>,
    /// The uid and gid the layers' files show (the store owns them, on the host, for
    /// the user the workload runs as).
    owner: (u32, u32),
}

/// A directory of the merged view.
#[derive(Debug, Clone)]
pub(crate) struct OvlDir {
    ovl: Rc<Overlay>,
    /// Its path from the root, by component.
    path: Rc<[Rc<[u8]>]>,
    /// The layers' directories at that path, topmost first (none below an opaque one).
    lowers: Rc<[Rc<HostFd>]>,
}

/// A non-directory that only a layer provides (writes copy it up first).
#[derive(Debug)]
pub(crate) struct Lower {
    /// The directory it shows in.
    pub(crate) parent: OvlDir,
    /// Its name there.
    pub(crate) name: Rc<[u8]>,
    /// The layer directory holding it (`O_PATH`).
    pub(crate) dir: Rc<HostFd>,
    /// The file itself (`O_PATH`).
    pub(crate) fd: Rc<HostFd>,
    /// Type bits.
    pub(crate) kind: u32,
}

/// What a name of a merged directory is.
#[derive(Debug)]
pub(crate) enum Found {
    /// A directory (merged).
    Dir(OvlDir),
    /// A layer's non-directory.
    Lower(Rc<Lower>),
    /// A file or symlink of the upper layer.
    Upper(Rc<TmpInode>),
}

fn is_whiteout(m: &Meta) -> bool {
    m.kind() == libc::S_IFCHR && m.rdev == 0
}

/// Whether a layer directory is marked opaque.
fn opaque(dir: &HostFd) -> Result<bool, Errno> {
    let d = host::openat2(dir.as_raw_fd(), b".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    Ok(host::get_xattr(d.as_raw_fd(), c"user.overlay.opaque")?.as_deref() == Some(&b"y"[..]))
}

impl Overlay {
    /// The root of an image whose layers are `layers` (opened, lowest first), with an
    /// upper layer whose root is `upper`.
    pub(crate) fn root(layers: &[Rc<HostFd>], upper: Rc<TmpInode>, owner: (u32, u32)) -> OvlDir {
        let mut lowers = Vec::new();
        for l in layers.iter().rev() {
            lowers.push(Rc::clone(l));
            if opaque(l).unwrap_or(false) {
                break;
            }
        }
        OvlDir {
            ovl: Rc::new(Overlay { upper, owner }),
            path: Rc::from(Vec::new()),
            lowers: lowers.into(),
        }
    }
}

impl OvlDir {
    /// The same directory of the same image root (directories are known by path).
    pub(crate) fn same_path(&self, other: &OvlDir) -> bool {
        Rc::ptr_eq(&self.ovl, &other.ovl) && self.path == other.path
    }

    fn child_path(&self, name: &[u8]) -> Rc<[Rc<[u8]>]> {
        let mut p: Vec<Rc<[u8]>> = self.path.to_vec();
        p.push(name.into());
        p.into()
    }

    /// Its directory in the upper layer, when there is one.
    pub(crate) fn upper(&self) -> Option<Rc<TmpInode>> {
        let mut at = Rc::clone(&self.ovl.upper);
        for c in self.path.iter() {
            let next = at.child(c)?;
            if !next.is_dir() {
                return None;
            }
            at = next;
        }
        Some(at)
    }

    /// Its directory in the upper layer, made (with its parents) when missing.
    pub(crate) fn copy_up(&self) -> Result<Rc<TmpInode>, Errno> {
        let mut at = Rc::clone(&self.ovl.upper);
        for (i, c) in self.path.iter().enumerate() {
            match at.child(c) {
                Some(next) if next.is_dir() => at = next,
                Some(next) if next.is_whiteout() => return Err(errno::ENOENT),
                Some(_) => return Err(errno::ENOTDIR),
                None => {
                    let mode = if i + 1 == self.path.len() {
                        self.lower_meta().map_or(0o755, |m| m.mode & 0o7777)
                    } else {
                        0o755
                    };
                    let d = TmpFs::inode(at.fs(), TmpData::Dir(BTreeMap::new()), mode);
                    d.nlink.set(2);
                    at.insert(c, Rc::clone(&d))?;
                    at = d;
                }
            }
        }
        Ok(at)
    }

    fn lower_meta(&self) -> Option<Meta> {
        let fd = self.lowers.first()?;
        host::fstat(fd.as_raw_fd()).ok()
    }

    /// Metadata: the upper directory's, else the topmost layer's.
    pub(crate) fn meta(&self) -> Result<Meta, Errno> {
        if let Some(u) = self.upper() {
            return Ok(u.meta());
        }
        let fd = self.lowers.first().ok_or(errno::ENOENT)?;
        let mut m = host::fstat(fd.as_raw_fd())?;
        (m.uid, m.gid) = self.ovl.owner;
        Ok(m)
    }

    /// Looks `name` up in the layers only: the directories that merge under it
    /// (topmost first), or the non-directory that shows.
    fn lookup_lower(&self, name: &[u8]) -> Result<LowerView, Errno> {
        let mut dirs = Vec::new();
        for l in self.lowers.iter() {
            let fd = match host::open_path(l.as_raw_fd(), name) {
                Ok(fd) => fd,
                Err(e) if e == errno::ENOENT => continue,
                Err(e) => return Err(e),
            };
            let m = host::fstat(fd.as_raw_fd())?;
            if is_whiteout(&m) {
                break;
            }
            if m.is_dir() {
                let fd = Rc::new(fd);
                let stop = opaque(&fd)?;
                dirs.push(fd);
                if stop {
                    break;
                }
                continue;
            }
            if dirs.is_empty() {
                let lower = Lower {
                    parent: self.clone(),
                    name: name.into(),
                    dir: Rc::clone(l),
                    fd: Rc::new(fd),
                    kind: m.kind(),
                };
                return Ok((dirs, Some(Rc::new(lower))));
            }
            break; // a non-directory below a directory is hidden by it
        }
        Ok((dirs, None))
    }

    /// What `name` is in the merged view.
    pub(crate) fn lookup(&self, name: &[u8]) -> Result<Option<Found>, Errno> {
        if let Some(u) = self.upper() {
            if let Some(c) = u.child(name) {
                if c.is_whiteout() {
                    return Ok(None);
                }
                if !c.is_dir() {
                    return Ok(Some(Found::Upper(c)));
                }
                let lowers = if c.opaque.get() {
                    Vec::new()
                } else {
                    self.lookup_lower(name)?.0
                };
                return Ok(Some(Found::Dir(OvlDir {
                    ovl: Rc::clone(&self.ovl),
                    path: self.child_path(name),
                    lowers: lowers.into(),
                })));
            }
        }
        let (dirs, file) = self.lookup_lower(name)?;
        if let Some(f) = file {
            return Ok(Some(Found::Lower(f)));
        }
        if dirs.is_empty() {
            return Ok(None);
        }
        Ok(Some(Found::Dir(OvlDir {
            ovl: Rc::clone(&self.ovl),
            path: self.child_path(name),
            lowers: dirs.into(),
        })))
    }

    /// Whether some layer shows `name` (ignoring the upper layer).
    fn lower_has(&self, name: &[u8]) -> Result<bool, Errno> {
        let (dirs, file) = self.lookup_lower(name)?;
        Ok(!dirs.is_empty() || file.is_some())
    }

    /// The merged entries (without `.` and `..`).
    pub(crate) fn list(&self) -> Result<Vec<DirEntry>, Errno> {
        let mut names: BTreeMap<Vec<u8>, DirEntry> = BTreeMap::new();
        let mut hidden: BTreeSet<Vec<u8>> = BTreeSet::new();
        for l in self.lowers.iter() {
            for e in host::read_dir(l.as_raw_fd())? {
                if names.contains_key(&e.name) || hidden.contains(&e.name) {
                    continue;
                }
                if e.dtype == libc::DT_CHR || e.dtype == libc::DT_UNKNOWN {
                    let fd = host::open_path(l.as_raw_fd(), &e.name)?;
                    if is_whiteout(&host::fstat(fd.as_raw_fd())?) {
                        hidden.insert(e.name);
                        continue;
                    }
                }
                names.insert(
                    e.name.clone(),
                    DirEntry {
                        ino: e.ino,
                        dtype: e.dtype,
                        name: e.name,
                    },
                );
            }
        }
        if let Some(u) = self.upper() {
            for (name, i) in u.entries() {
                if i.is_whiteout() {
                    names.remove(&name);
                    continue;
                }
                let m = i.meta();
                names.insert(
                    name.clone(),
                    DirEntry {
                        ino: m.ino,
                        dtype: m.dtype(),
                        name,
                    },
                );
            }
        }
        Ok(names.into_values().collect())
    }

    /// Makes `name` (which must not show) in the upper layer.
    pub(crate) fn create(
        &self,
        name: &[u8],
        data: TmpData,
        mode: u32,
    ) -> Result<Rc<TmpInode>, Errno> {
        if self.lookup(name)?.is_some() {
            return Err(errno::EEXIST);
        }
        let up = self.copy_up()?;
        let dir = matches!(data, TmpData::Dir(_));
        let inode = TmpFs::inode(up.fs(), data, mode);
        if dir {
            inode.nlink.set(2);
        }
        let replaced = up.insert_over_whiteout(name, Rc::clone(&inode))?;
        if dir && replaced {
            inode.opaque.set(true);
        }
        Ok(inode)
    }

    /// Removes `name` (`dir`: a directory, which must be empty in the merged view).
    pub(crate) fn remove(&self, name: &[u8], dir: bool) -> Result<(), Errno> {
        let found = self.lookup(name)?.ok_or(errno::ENOENT)?;
        let is_dir = matches!(found, Found::Dir(_));
        match (dir, is_dir) {
            (true, false) => return Err(errno::ENOTDIR),
            (false, true) => return Err(errno::EISDIR),
            _ => {}
        }
        if let Found::Dir(d) = &found {
            if !d.list()?.is_empty() {
                return Err(errno::ENOTEMPTY);
            }
            // What is left in its upper directory only hides: drop it.
            if let Some(u) = d.upper() {
                for (n, _) in u.entries() {
                    u.detach(&n);
                }
            }
        }
        let below = self.lower_has(name)?;
        let up = self.copy_up()?;
        if up.child(name).is_some() {
            up.remove(name, dir)?;
        }
        if below {
            up.insert(name, TmpFs::inode(up.fs(), TmpData::Whiteout, 0))?;
        }
        Ok(())
    }

    /// Renames `from` here to `to` in `dst` (`noreplace`: `RENAME_NOREPLACE`).
    pub(crate) fn rename(
        &self,
        from: &[u8],
        dst: &OvlDir,
        to: &[u8],
        noreplace: bool,
    ) -> Result<(), Errno> {
        if !Rc::ptr_eq(&self.ovl, &dst.ovl) {
            return Err(errno::EXDEV);
        }
        let src = self.lookup(from)?.ok_or(errno::ENOENT)?;
        let moving = match src {
            Found::Dir(d) => {
                if !d.lowers.is_empty() {
                    return Err(errno::EXDEV);
                }
                d.upper().ok_or(errno::ENOENT)?
            }
            Found::Lower(l) => l.copy_up()?,
            Found::Upper(t) => t,
        };
        if let Some(old) = dst.lookup(to)? {
            if noreplace {
                return Err(errno::EEXIST);
            }
            match (&old, moving.is_dir()) {
                (Found::Dir(_), false) => return Err(errno::EISDIR),
                (Found::Lower(_) | Found::Upper(_), true) => return Err(errno::ENOTDIR),
                _ => {}
            }
            if let Found::Upper(t) = &old {
                if Rc::ptr_eq(t, &moving) {
                    return Ok(());
                }
            }
            if let Found::Dir(d) = &old {
                if d.upper().is_some_and(|u| Rc::ptr_eq(&u, &moving)) {
                    return Ok(());
                }
            }
            dst.remove(to, moving.is_dir())?;
        }
        if moving.is_dir() && dst.path.starts_with(&self.child_path(from)) {
            return Err(errno::EINVAL);
        }
        let below = self.lower_has(from)?;
        let src_up = self.copy_up()?;
        let dst_up = dst.copy_up()?;
        src_up.detach(from);
        if below {
            src_up.insert(from, TmpFs::inode(src_up.fs(), TmpData::Whiteout, 0))?;
        }
        let replaced = dst_up.insert_over_whiteout(to, Rc::clone(&moving))?;
        if moving.is_dir() {
            if replaced {
                moving.opaque.set(true);
            }
            if !Rc::ptr_eq(&src_up, &dst_up) {
                src_up.nlink.set(src_up.nlink.get().saturating_sub(1));
            }
        }
        Ok(())
    }

    /// Adds `name` for the existing upper inode `node` (a hard link).
    pub(crate) fn link(&self, node: Rc<TmpInode>, name: &[u8]) -> Result<(), Errno> {
        if self.lookup(name)?.is_some() {
            return Err(errno::EEXIST);
        }
        let up = self.copy_up()?;
        up.insert_over_whiteout(name, Rc::clone(&node))?;
        node.nlink.set(node.nlink.get() + 1);
        Ok(())
    }

    /// True when both belong to the same image root.
    pub(crate) fn same_root(&self, other: &OvlDir) -> bool {
        Rc::ptr_eq(&self.ovl, &other.ovl)
    }

    /// True when `t` is an inode of this image root's upper layer.
    pub(crate) fn owns(&self, t: &TmpInode) -> bool {
        Rc::ptr_eq(self.ovl.upper.fs(), t.fs())
    }
}

impl Lower {
    /// Metadata, owned by the workload's user as in the container backend.
    pub(crate) fn meta(&self) -> Result<Meta, Errno> {
        let mut m = host::fstat(self.fd.as_raw_fd())?;
        (m.uid, m.gid) = self.parent.ovl.owner;
        Ok(m)
    }

    /// Copies it into the upper layer (the write that needs it follows) and returns
    /// the copy.
    pub(crate) fn copy_up(&self) -> Result<Rc<TmpInode>, Errno> {
        let up = self.parent.copy_up()?;
        if let Some(c) = up.child(&self.name) {
            if !c.is_whiteout() {
                return Ok(c); // copied up by an earlier handle on it
            }
        }
        let meta = self.meta()?;
        let data = match self.kind {
            libc::S_IFLNK => TmpData::Link(host::readlink(self.fd.as_raw_fd())?),
            libc::S_IFREG => TmpData::File(Default::default()),
            _ => return Err(errno::EACCES),
        };
        let inode = TmpFs::inode(up.fs(), data, meta.mode);
        if self.kind == libc::S_IFREG {
            if meta.size > MAX_COPY_UP {
                return Err(errno::EFBIG);
            }
            let file = host::open_file(self.dir.as_raw_fd(), &self.name, libc::O_RDONLY, 0)?;
            let mut off = 0u64;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = host::pread(file.as_raw_fd(), &mut buf, off)?;
                if n == 0 {
                    break;
                }
                inode.write_at(off, &buf[..n])?;
                off += n as u64;
                if off > MAX_COPY_UP {
                    return Err(errno::EFBIG);
                }
            }
        }
        inode.set_times(Some(meta.atime), Some(meta.mtime));
        up.insert_over_whiteout(&self.name, Rc::clone(&inode))?;
        Ok(inode)
    }
}

impl crate::snap::Snap for Overlay {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(Overlay {
            upper: crate::snap::Snap::snap(&self.upper, m)?,
            owner: self.owner,
        })
    }
}

impl crate::snap::Snap for OvlDir {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        let path = Rc::clone(&self.path);
        let new_path = m.rc_dyn(&self.path, move |m| {
            Ok(path.iter().map(|c| m.bytes(c)).collect::<Rc<[Rc<[u8]>]>>())
        })?;
        let lowers = Rc::clone(&self.lowers);
        let new_lowers = m.rc_dyn(&self.lowers, move |m| {
            Ok(lowers
                .iter()
                .map(|l| l.snap(m))
                .collect::<Result<Vec<_>, _>>()?
                .into())
        })?;
        Ok(OvlDir {
            ovl: self.ovl.snap(m)?,
            path: new_path,
            lowers: new_lowers,
        })
    }
}

impl crate::snap::Snap for Lower {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(Lower {
            parent: self.parent.snap(m)?,
            name: m.bytes(&self.name),
            dir: self.dir.snap(m)?,
            fd: self.fd.snap(m)?,
            kind: self.kind,
        })
    }
}

impl OvlDir {
    /// The root of the overlay's upper layer (`savefile`).
    pub(crate) fn upper_root(&self) -> Rc<TmpInode> {
        Rc::clone(&self.ovl.upper)
    }
}
