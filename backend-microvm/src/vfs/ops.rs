//! Filesystem operations on resolved paths: open, create, list, remove, rename, links,
//! permission and time changes. Read-only mounts and synthetic nodes refuse writes
//! with `EROFS`; mount points and the directories that hold them cannot be removed or
//! renamed (`EBUSY`).

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use super::host::HostFd;
use super::tmpfs::{TmpData, TmpFs, TmpInode};
use super::{host, DevKind, Entry, Location, Node, Time, Vfs};
use crate::errno::{self, Errno};
use crate::pipe::Pipe;

/// An opened node, ready for I/O.
#[derive(Debug)]
pub(crate) enum Opened {
    /// A host regular file.
    Host(HostFd),
    /// A host directory (listing only).
    HostDir,
    /// A tmpfs file or directory.
    Tmp(Rc<TmpInode>),
    /// A directory of the mount tree.
    Virtual,
    /// A device.
    Dev(DevKind),
    /// A generated file.
    Gen(Rc<[u8]>),
    /// `O_PATH`: a handle for `*at` calls and `fstat`, no I/O.
    Path,
    /// A generated file of `/proc` (of process `pid`, or of the system): the kernel
    /// makes its contents.
    Proc(Option<u32>, super::proc::ProcFile),
    /// A named pipe.
    Fifo(Rc<std::cell::RefCell<Pipe>>),
    /// Descriptor `fd` of process `pid`, a file with no path (`/proc/<pid>/fd/<fd>`
    /// of a pipe, a socket, stdio): the kernel opens it anew.
    Anon(u32, u32),
}

/// A directory entry, as `getdents64` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirEntry {
    /// Inode number.
    pub(crate) ino: u64,
    /// `DT_*`.
    pub(crate) dtype: u8,
    /// Name.
    pub(crate) name: Vec<u8>,
}

/// How many symlinks an `O_CREAT` open may follow to its target.
const MAX_CREATE_LINKS: u32 = 40;

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

impl Vfs {
    /// Opens `path` with Linux `open` flags; `mode` (umask applied) for a new file.
    pub(crate) fn open(
        &self,
        base: &Location,
        path: &[u8],
        flags: i32,
        mode: u32,
    ) -> Result<(Location, Opened), Errno> {
        self.open_counted(base, path, flags, mode, 0)
    }

    fn open_counted(
        &self,
        base: &Location,
        path: &[u8],
        flags: i32,
        mode: u32,
        depth: u32,
    ) -> Result<(Location, Opened), Errno> {
        // A path handle keeps only these flags (Linux's build_open_how for open and
        // openat: O_CREAT, O_TRUNC, O_TMPFILE and the access mode of an O_PATH open
        // are dropped; openat2 refuses them, `OpenHow::checked`).
        let flags = if flags & libc::O_PATH != 0 {
            flags & crate::abi::O_PATH_FLAGS
        } else {
            flags
        };
        let follow = flags & libc::O_NOFOLLOW == 0;
        // Linux refuses a file that would be created and be a directory (6.4 on).
        if flags & libc::O_CREAT != 0 && flags & libc::O_DIRECTORY != 0 {
            return Err(errno::EINVAL);
        }
        // __O_TMPFILE needs O_DIRECTORY and no O_CREAT (EINVAL, as Linux's
        // build_open_flags); the right form is not offered.
        if flags & crate::abi::O_TMPFILE_BIT != 0 {
            if flags & (libc::O_TMPFILE | libc::O_CREAT) != libc::O_TMPFILE {
                return Err(errno::EINVAL);
            }
            return Err(errno::ENOTSUP);
        }
        let loc = if flags & libc::O_CREAT != 0 {
            let (parent, name) = self.resolve_parent(base, path)?;
            if is_dot(&name) || path.ends_with(b"/") {
                return Err(errno::EISDIR);
            }
            match self.child(parent.top(), &name) {
                Ok(child) => {
                    if flags & libc::O_EXCL != 0 {
                        return Err(errno::EEXIST);
                    }
                    if child.node.is_link() {
                        if !follow {
                            return Err(errno::ELOOP);
                        }
                        // openat2's RESOLVE_NO_SYMLINKS and _NO_MAGICLINKS hold for
                        // the link a create would follow too.
                        self.may_follow_in(&parent)?;
                        if depth >= MAX_CREATE_LINKS {
                            return Err(errno::ELOOP);
                        }
                        // `/dev/fd/N` opened to write (a shell's `> /dev/fd/3`): the
                        // magic link leads to the open file, which exists.
                        if let Node::Proc(super::proc::ProcNode::FdDir(_)) = parent.node() {
                            let loc = self.resolve(&parent, &name, true)?;
                            return self.open_resolved(loc, flags & !libc::O_CREAT);
                        }
                        let target = child.node.link_target()?;
                        return self.open_counted(&parent, &target, flags, mode, depth + 1);
                    }
                    // O_CREAT naming a directory that exists: EISDIR, whatever the
                    // access mode (Linux's do_open).
                    if child.node.is_dir() {
                        return Err(errno::EISDIR);
                    }
                    let mut l = parent;
                    l.push(child);
                    l
                }
                Err(e) if e == errno::ENOENT => {
                    return self.create_file(parent, &name, flags, mode)
                }
                Err(e) => return Err(e),
            }
        } else {
            self.resolve(base, path, follow)?
        };
        self.open_resolved(loc, flags)
    }

    /// Opens what a lookup found at `loc` with Linux `open` flags (no `O_CREAT`
    /// left to do): the checks and the open of [`Vfs::open`] after its lookup.
    pub(crate) fn open_resolved(
        &self,
        mut loc: Location,
        flags: i32,
    ) -> Result<(Location, Opened), Errno> {
        let acc = flags & libc::O_ACCMODE;
        if flags & libc::O_PATH != 0 {
            return Ok((loc, Opened::Path));
        }
        let node = loc.node().clone();
        if flags & libc::O_DIRECTORY != 0 && !node.is_dir() {
            return Err(errno::ENOTDIR);
        }
        if node.is_link() {
            return Err(errno::ELOOP);
        }
        // A file with no path, reached through `/proc/<pid>/fd`: the kernel opens it
        // anew (its permission is the open file's own, not a `/proc` file's).
        if let Node::Proc(super::proc::ProcNode::FdFile(pid, fd)) = node {
            return Ok((loc, Opened::Anon(pid, fd)));
        }
        let writes = acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        if node.is_dir() && writes {
            return Err(errno::EISDIR);
        }
        if writes {
            node.writable()?;
        }
        let reads = acc != libc::O_WRONLY;
        self.permission(&loc, (u32::from(reads) * 4) | (u32::from(writes) * 2))?;
        let opened = match &node {
            Node::Virtual => Opened::Virtual,
            Node::HostDir { .. } => Opened::HostDir,
            Node::HostFile {
                dir, name, kind, ..
            } => {
                // Only regular files: a host FIFO or device must never be reached.
                if *kind != libc::S_IFREG {
                    return Err(errno::EACCES);
                }
                let keep = libc::O_ACCMODE | libc::O_APPEND | libc::O_TRUNC;
                Opened::Host(host::open_file(dir.as_raw_fd(), name, flags & keep, 0)?)
            }
            // Opening a socket's node is ENXIO, as on Linux.
            Node::Tmp(t) if t.socket().is_some() => return Err(errno::ENXIO),
            Node::Tmp(t) => {
                if let Some(p) = t.fifo() {
                    // A write-only open that may not wait for a reader, with none:
                    // ENXIO, as on Linux.
                    let wronly = flags & libc::O_ACCMODE == libc::O_WRONLY;
                    if wronly && flags & libc::O_NONBLOCK != 0 && p.borrow().readers == 0 {
                        return Err(errno::ENXIO);
                    }
                    Opened::Fifo(p)
                } else {
                    if flags & libc::O_TRUNC != 0 && !t.is_dir() {
                        t.truncate(0)?;
                    }
                    Opened::Tmp(Rc::clone(t))
                }
            }
            Node::Dev(d) => Opened::Dev(*d),
            Node::Gen(b) => Opened::Gen(Rc::clone(b)),
            Node::Link(_) => return Err(errno::ELOOP),
            Node::Ovl(_) => Opened::Virtual,
            Node::Proc(super::proc::ProcNode::File(pid, f)) => Opened::Proc(*pid, *f),
            Node::Proc(_) => Opened::Virtual,
            Node::Lower(l) if writes => {
                let t = l.copy_up()?;
                if flags & libc::O_TRUNC != 0 {
                    t.truncate(0)?;
                }
                let name = Rc::clone(&loc.top().name);
                loc.pop();
                loc.push(Entry {
                    name,
                    node: Node::Tmp(Rc::clone(&t)),
                    trie: None,
                });
                Opened::Tmp(t)
            }
            Node::Lower(l) => {
                if l.kind != libc::S_IFREG {
                    return Err(errno::EACCES);
                }
                Opened::Host(host::open_file(
                    l.dir.as_raw_fd(),
                    &l.name,
                    libc::O_RDONLY,
                    0,
                )?)
            }
        };
        Ok((loc, opened))
    }

    fn create_file(
        &self,
        mut parent: Location,
        name: &[u8],
        flags: i32,
        mode: u32,
    ) -> Result<(Location, Opened), Errno> {
        self.may_change(&parent)?;
        let (node, opened) = match parent.node().clone() {
            Node::HostDir {
                fd,
                ro,
                noexec,
                mnt,
            } => {
                let keep =
                    libc::O_ACCMODE | libc::O_APPEND | libc::O_TRUNC | libc::O_CREAT | libc::O_EXCL;
                let file = host::open_file(fd.as_raw_fd(), name, flags & keep, mode)?;
                let path = host::open_path(fd.as_raw_fd(), name)?;
                let node = Node::HostFile {
                    dir: fd,
                    name: name.into(),
                    fd: Rc::new(path),
                    ro,
                    noexec,
                    mnt,
                    kind: libc::S_IFREG,
                };
                (
                    node,
                    if flags & libc::O_PATH != 0 {
                        Opened::Path
                    } else {
                        Opened::Host(file)
                    },
                )
            }
            Node::Ovl(d) => {
                let inode = d.create(name, TmpData::File(Default::default()), mode)?;
                (
                    Node::Tmp(Rc::clone(&inode)),
                    if flags & libc::O_PATH != 0 {
                        Opened::Path
                    } else {
                        Opened::Tmp(inode)
                    },
                )
            }
            Node::Tmp(dir) => {
                let inode = TmpFs::inode(dir.fs(), TmpData::File(Default::default()), mode);
                dir.insert(name, Rc::clone(&inode))?;
                (
                    Node::Tmp(Rc::clone(&inode)),
                    if flags & libc::O_PATH != 0 {
                        Opened::Path
                    } else {
                        Opened::Tmp(inode)
                    },
                )
            }
            _ => return Err(errno::EROFS),
        };
        parent.push(Entry {
            name: name.into(),
            node,
            trie: None,
        });
        Ok((parent, opened))
    }

    /// The entries of a directory, `.` and `..` first; mount points show over what is
    /// below them.
    pub(crate) fn list(&self, loc: &Location) -> Result<Vec<DirEntry>, Errno> {
        let top = loc.top();
        let mut by_name: BTreeMap<Vec<u8>, DirEntry> = BTreeMap::new();
        match &top.node {
            Node::HostDir { fd, .. } => {
                for e in host::read_dir(fd.as_raw_fd())? {
                    by_name.insert(
                        e.name.clone(),
                        DirEntry {
                            ino: e.ino,
                            dtype: e.dtype,
                            name: e.name,
                        },
                    );
                }
            }
            Node::Tmp(t) if t.is_dir() => {
                for (name, i) in t.entries() {
                    let m = i.meta();
                    by_name.insert(
                        name.clone(),
                        DirEntry {
                            ino: m.ino,
                            dtype: m.dtype(),
                            name,
                        },
                    );
                }
            }
            Node::Ovl(d) => {
                for e in d.list()? {
                    by_name.insert(e.name.clone(), e);
                }
            }
            Node::Proc(p) => {
                for e in self.proc.list(p)? {
                    by_name.insert(e.name.clone(), e);
                }
            }
            Node::Virtual => {}
            _ => return Err(errno::ENOTDIR),
        }
        if let Some(t) = top.trie {
            for (name, idx) in self.tree.children(t) {
                let (dtype, ino) = match self.tree.mount(idx) {
                    Some(node) => {
                        let ino = 0x1000 + idx as u64;
                        let m = node
                            .meta(ino)
                            .map(|m| (m.dtype(), m.ino))
                            .unwrap_or((libc::DT_UNKNOWN, ino));
                        (m.0, m.1)
                    }
                    None => match by_name.get(name) {
                        Some(_) => continue,
                        None => (libc::DT_DIR, 0x1000 + idx as u64),
                    },
                };
                by_name.insert(
                    name.clone(),
                    DirEntry {
                        ino,
                        dtype,
                        name: name.clone(),
                    },
                );
            }
        }
        let self_ino = self.meta(loc).map(|m| m.ino).unwrap_or(1);
        let mut out = vec![
            DirEntry {
                ino: self_ino,
                dtype: libc::DT_DIR,
                name: b".".to_vec(),
            },
            DirEntry {
                ino: 1,
                dtype: libc::DT_DIR,
                name: b"..".to_vec(),
            },
        ];
        out.extend(by_name.into_values());
        Ok(out)
    }

    /// Where a name is to be made at `path` (Linux's `filename_create`): its parent
    /// and last name; `EEXIST` when it is there (or is `.`/`..`). A trailing slash
    /// names a directory: only `mkdir` (`dir`) makes one, anything else is `ENOENT`.
    fn new_name(
        &self,
        base: &Location,
        path: &[u8],
        dir: bool,
    ) -> Result<(Location, Vec<u8>), Errno> {
        let (parent, name) = self.resolve_parent(base, path)?;
        if is_dot(&name) || self.child(parent.top(), &name).is_ok() {
            return Err(errno::EEXIST);
        }
        if !dir && path.ends_with(b"/") {
            return Err(errno::ENOENT);
        }
        Ok((parent, name))
    }

    /// `mkdir`.
    pub(crate) fn mkdir(&self, base: &Location, path: &[u8], mode: u32) -> Result<(), Errno> {
        let (parent, name) = self.new_name(base, path, true)?;
        self.may_change(&parent)?;
        match parent.node() {
            Node::HostDir { fd, .. } => host::mkdir(fd.as_raw_fd(), &name, mode),
            Node::Tmp(dir) => {
                let d = TmpFs::inode(dir.fs(), TmpData::Dir(BTreeMap::new()), mode);
                d.nlink.set(2);
                dir.insert(&name, d)
            }
            Node::Ovl(d) => d
                .create(&name, TmpData::Dir(BTreeMap::new()), mode)
                .map(|_| ()),
            _ => Err(errno::EROFS),
        }
    }

    /// True when `e` is a mount point or holds one below it: as on Linux, it can be
    /// neither removed nor renamed (`EBUSY`), in host, tmpfs and image directories alike.
    /// Moving a directory that holds a read-only mount would otherwise leave the host
    /// directory under it reachable, writable, by the new name.
    fn holds_mount(&self, e: &Entry) -> bool {
        // Trie nodes are exactly the mount points and their ancestors.
        e.trie.is_some_and(|t| t != 0)
    }

    /// `unlink` (`dir` false) and `rmdir` (`dir` true).
    pub(crate) fn unlink(&self, base: &Location, path: &[u8], dir: bool) -> Result<(), Errno> {
        if dir {
            self.moved();
        }
        let (parent, name) = self.resolve_parent(base, path)?;
        match (name.as_slice(), dir) {
            (b".", true) => return Err(errno::EINVAL),
            (b"..", true) => return Err(errno::ENOTEMPTY),
            (b"." | b"..", false) => return Err(errno::EISDIR),
            _ => {}
        }
        // A read-only mount refuses before the name is looked up (Linux's
        // mnt_want_write): removing a missing name there is EROFS, not ENOENT. (A
        // mount point stays EBUSY: the directories that hold mounts here are the
        // VFS's own, read-only, where Linux's are the parent filesystem's.)
        let child = match self.child(parent.top(), &name) {
            Ok(c) => c,
            Err(e) => {
                parent.node().writable()?;
                return Err(e);
            }
        };
        if self.holds_mount(&child) {
            return Err(errno::EBUSY);
        }
        // Linux's may_delete: the right to change the directory comes before what the
        // name turned out to be.
        self.may_change(&parent)?;
        match (dir, child.node.is_dir()) {
            (false, true) => return Err(errno::EISDIR),
            (true, false) => return Err(errno::ENOTDIR),
            // A trailing slash names a directory: `unlink("file/")` is ENOTDIR.
            (false, false) if path.ends_with(b"/") => return Err(errno::ENOTDIR),
            _ => {}
        }
        match parent.node() {
            Node::HostDir { fd, .. } => host::unlink(fd.as_raw_fd(), &name, dir),
            Node::Tmp(d) => d.remove(&name, dir).map(|_| ()),
            Node::Ovl(d) => d.remove(&name, dir),
            _ => Err(errno::EROFS),
        }
    }

    /// `renameat2` (flags: `RENAME_NOREPLACE` or `RENAME_EXCHANGE`, besides 0; checks in
    /// Linux's order).
    pub(crate) fn rename(
        &self,
        b1: &Location,
        from: &[u8],
        b2: &Location,
        to: &[u8],
        flags: u32,
    ) -> Result<(), Errno> {
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0
            || (exchange && flags & libc::RENAME_NOREPLACE != 0)
        {
            return Err(errno::EINVAL);
        }
        let (p1, n1) = self.resolve_parent(b1, from)?;
        let (p2, n2) = self.resolve_parent(b2, to)?;
        if is_dot(&n1) || is_dot(&n2) {
            return Err(errno::EBUSY);
        }
        // As unlink: a read-only mount refuses a missing name with EROFS.
        let src = match self.child(p1.top(), &n1) {
            Ok(c) => c,
            Err(e) => {
                p1.node().writable()?;
                p2.node().writable()?;
                return Err(e);
            }
        };
        if self.holds_mount(&src) {
            return Err(errno::EBUSY);
        }
        let dst = self.child(p2.top(), &n2).ok();
        // A directory may move or be replaced: the working directories are looked
        // for again (a file's rename, the common case, costs them nothing).
        if src.node.is_dir() || dst.as_ref().is_some_and(|d| d.node.is_dir()) {
            self.moved();
        }
        if let Some(d) = &dst {
            if self.holds_mount(d) {
                return Err(errno::EBUSY);
            }
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(errno::EEXIST);
            }
        }
        if exchange {
            // Both names must exist; a trailing slash on one needs a directory there.
            let Some(d) = &dst else {
                return Err(errno::ENOENT);
            };
            if !d.node.is_dir() && to.ends_with(b"/") {
                return Err(errno::ENOTDIR);
            }
        }
        // A trailing slash on the source (or, but for an exchange, on the target) needs
        // the source to be a directory.
        if !src.node.is_dir() && (from.ends_with(b"/") || (!exchange && to.ends_with(b"/"))) {
            return Err(errno::ENOTDIR);
        }
        self.may_change(&p1)?;
        self.may_change(&p2)?;
        match (p1.node(), p2.node()) {
            (Node::HostDir { fd: a, mnt: m1, .. }, Node::HostDir { fd: b, mnt: m2, .. })
                if m1 == m2 =>
            {
                host::rename(a.as_raw_fd(), &n1, b.as_raw_fd(), &n2, flags)
            }
            (Node::Tmp(a), Node::Tmp(b)) if Rc::ptr_eq(a.fs(), b.fs()) && exchange => {
                let (
                    Node::Tmp(one),
                    Some(Entry {
                        node: Node::Tmp(other),
                        ..
                    }),
                ) = (&src.node, &dst)
                else {
                    return Err(errno::EXDEV);
                };
                if Rc::ptr_eq(one, other) {
                    return Ok(());
                }
                // Neither may be an ancestor of the other's new place.
                if above(&p2, one) || above(&p1, other) {
                    return Err(errno::EINVAL);
                }
                b.swap_in(&n2, Rc::clone(one))?;
                if let Err(e) = a.swap_in(&n1, Rc::clone(other)) {
                    // Put the target back: nothing changed.
                    let _ = b.swap_in(&n2, Rc::clone(other));
                    return Err(e);
                }
                // A directory that changed parents takes its `..` link along.
                if !Rc::ptr_eq(a, b) {
                    for (dir, from, to) in [(one, a, b), (other, b, a)] {
                        if dir.is_dir() {
                            from.nlink.set(from.nlink.get().saturating_sub(1));
                            to.nlink.set(to.nlink.get() + 1);
                        }
                    }
                }
                Ok(())
            }
            (Node::Tmp(a), Node::Tmp(b)) if Rc::ptr_eq(a.fs(), b.fs()) => {
                let Node::Tmp(moving) = &src.node else {
                    return Err(errno::EXDEV);
                };
                if let Some(Entry {
                    node: Node::Tmp(d), ..
                }) = &dst
                {
                    if Rc::ptr_eq(d, moving) {
                        return Ok(());
                    }
                }
                // The source above the target's place: EINVAL; the target above the
                // source: ENOTEMPTY (Linux's `trap` checks, before the kinds are).
                if above(&p2, moving) {
                    return Err(errno::EINVAL);
                }
                if let Some(Entry {
                    node: Node::Tmp(d), ..
                }) = &dst
                {
                    if above(&p1, d) {
                        return Err(errno::ENOTEMPTY);
                    }
                }
                b.replace(&n2, Rc::clone(moving))?;
                a.detach(&n1);
                if moving.is_dir() && !Rc::ptr_eq(a, b) {
                    a.nlink.set(a.nlink.get().saturating_sub(1));
                    b.nlink.set(b.nlink.get() + 1);
                }
                Ok(())
            }
            // An image's layered root makes no exchange (its copy-up and whiteouts
            // are for one name at a time).
            (Node::Ovl(_), Node::Ovl(_)) if exchange => Err(errno::EINVAL),
            (Node::Ovl(a), Node::Ovl(b)) => {
                a.rename(&n1, b, &n2, flags & libc::RENAME_NOREPLACE != 0)
            }
            _ => Err(errno::EXDEV),
        }
    }

    /// `mknod` of a FIFO.
    pub(crate) fn mkfifo(&self, base: &Location, path: &[u8], mode: u32) -> Result<(), Errno> {
        let (parent, name) = self.new_name(base, path, false)?;
        self.may_change(&parent)?;
        let pipe = Pipe::fifo;
        match parent.node() {
            Node::Tmp(dir) => {
                dir.insert(&name, TmpFs::inode(dir.fs(), TmpData::Fifo(pipe()), mode))
            }
            Node::Ovl(d) => d.create(&name, TmpData::Fifo(pipe()), mode).map(|_| ()),
            // A FIFO on the host would let the host's processes in: refused.
            _ => Err(errno::EPERM),
        }
    }

    /// `bind` of an `AF_UNIX` socket to `path`: a socket node holding `key`, made in
    /// the sandbox's in-memory filesystems only. A host-backed read-write mount refuses
    /// it with `EPERM`, the errno of Linux's `vfs_mknod` for a filesystem that makes no
    /// such node: a socket on the host would be a way to reach the host's processes
    /// (or theirs to reach in). An existing name is `EADDRINUSE`, as `bind` says it.
    pub(crate) fn mksock(
        &self,
        base: &Location,
        path: &[u8],
        mode: u32,
        key: u64,
    ) -> Result<(), Errno> {
        let (parent, name) = self.resolve_parent(base, path)?;
        if is_dot(&name) || self.child(parent.top(), &name).is_ok() {
            return Err(errno::EADDRINUSE);
        }
        self.may_change(&parent)?;
        match parent.node() {
            Node::Tmp(dir) => dir.insert(&name, TmpFs::inode(dir.fs(), TmpData::Socket(key), mode)),
            Node::Ovl(d) => d.create(&name, TmpData::Socket(key), mode).map(|_| ()),
            _ => Err(errno::EPERM),
        }
    }

    /// The filesystem of /tmp (for anonymous in-memory files).
    pub(crate) fn tmp_fs(&self) -> Option<Rc<TmpFs>> {
        let root = self.root();
        match self.resolve(&root, b"/tmp", true).ok()?.node() {
            Node::Tmp(t) => Some(Rc::clone(t.fs())),
            _ => None,
        }
    }

    /// `symlinkat`.
    pub(crate) fn symlink(&self, target: &[u8], base: &Location, path: &[u8]) -> Result<(), Errno> {
        let (parent, name) = self.new_name(base, path, false)?;
        self.may_change(&parent)?;
        match parent.node() {
            Node::HostDir { fd, .. } => host::symlink(target, fd.as_raw_fd(), &name),
            Node::Tmp(dir) => dir.insert(
                &name,
                TmpFs::inode(dir.fs(), TmpData::Link(target.to_vec()), 0o777),
            ),
            Node::Ovl(d) => d
                .create(&name, TmpData::Link(target.to_vec()), 0o777)
                .map(|_| ()),
            _ => Err(errno::EROFS),
        }
    }

    /// `linkat`: a new name for the non-directory at `src`.
    pub(crate) fn link(&self, src: &Location, base: &Location, path: &[u8]) -> Result<(), Errno> {
        let (parent, name) = self.new_name(base, path, false)?;
        if src.node().is_dir() {
            return Err(errno::EPERM);
        }
        self.may_change(&parent)?;
        match (src.node(), parent.node()) {
            (
                Node::HostFile {
                    dir,
                    name: n,
                    mnt: m1,
                    ..
                },
                Node::HostDir { fd, mnt: m2, .. },
            ) if m1 == m2 => host::link(dir.as_raw_fd(), n, fd.as_raw_fd(), &name),
            (Node::Tmp(t), Node::Tmp(d)) if Rc::ptr_eq(t.fs(), d.fs()) => {
                d.insert(&name, Rc::clone(t))?;
                t.nlink.set(t.nlink.get() + 1);
                Ok(())
            }
            (Node::Tmp(t), Node::Ovl(d)) if d.owns(t) => d.link(Rc::clone(t), &name),
            (Node::Lower(l), Node::Ovl(d)) if d.same_root(&l.parent) => d.link(l.copy_up()?, &name),
            _ => Err(errno::EXDEV),
        }
    }

    /// The host directory and name of a host node, for calls by name.
    fn host_name(loc: &Location) -> Option<(std::os::fd::RawFd, &[u8])> {
        match loc.node() {
            Node::HostFile { dir, name, .. } => Some((dir.as_raw_fd(), name)),
            Node::HostDir { mnt, .. } => match loc.parent().map(|p| &p.node) {
                Some(Node::HostDir { fd, mnt: pm, .. }) if pm == mnt => {
                    Some((fd.as_raw_fd(), &loc.top().name))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// `chmod`.
    pub(crate) fn chmod(&self, loc: &Location, mode: u32) -> Result<(), Errno> {
        loc.node().writable()?;
        match loc.node() {
            Node::Tmp(t) => {
                t.chmod(mode);
                Ok(())
            }
            Node::Lower(l) => {
                l.copy_up()?.chmod(mode);
                Ok(())
            }
            Node::Ovl(d) => {
                d.copy_up()?.chmod(mode);
                Ok(())
            }
            _ => match Self::host_name(loc) {
                Some((dir, name)) => host::chmod(dir, name, mode),
                None => Err(errno::EPERM),
            },
        }
    }

    /// `utimensat`: `None` leaves a time as is.
    pub(crate) fn utimens(
        &self,
        loc: &Location,
        atime: Option<Time>,
        mtime: Option<Time>,
    ) -> Result<(), Errno> {
        loc.node().writable()?;
        match loc.node() {
            Node::Tmp(t) => {
                t.set_times(atime, mtime);
                Ok(())
            }
            Node::Lower(l) => {
                l.copy_up()?.set_times(atime, mtime);
                Ok(())
            }
            Node::Ovl(d) => {
                d.copy_up()?.set_times(atime, mtime);
                Ok(())
            }
            _ => match Self::host_name(loc) {
                Some((dir, name)) => {
                    let ts = |t: Option<Time>| match t {
                        Some(t) => libc::timespec {
                            tv_sec: t.sec,
                            tv_nsec: t.nsec,
                        },
                        None => libc::timespec {
                            tv_sec: 0,
                            tv_nsec: libc::UTIME_OMIT,
                        },
                    };
                    host::utimens(dir, name, &[ts(atime), ts(mtime)])
                }
                None => Err(errno::EPERM),
            },
        }
    }

    /// `truncate` by path.
    pub(crate) fn truncate(&self, loc: &Location, len: u64) -> Result<(), Errno> {
        if loc.node().is_dir() {
            return Err(errno::EISDIR);
        }
        loc.node().writable()?;
        self.permission(loc, 2)?;
        match loc.node() {
            Node::Tmp(t) => t.truncate(len),
            Node::Lower(l) if l.kind == libc::S_IFREG => l.copy_up()?.truncate(len),
            Node::HostFile {
                dir, name, kind, ..
            } if *kind == libc::S_IFREG => {
                let f = host::open_file(dir.as_raw_fd(), name, libc::O_WRONLY, 0)?;
                host::ftruncate(f.as_raw_fd(), len)
            }
            _ => Err(errno::EINVAL),
        }
    }
}

/// Whether in-memory node `n` is on the path `l` (an ancestor of, or, `l`'s last).
fn above(l: &Location, n: &Rc<TmpInode>) -> bool {
    l.entries
        .iter()
        .any(|e| matches!(&e.node, Node::Tmp(t) if Rc::ptr_eq(t, n)))
}
