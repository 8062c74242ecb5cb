//! The sandbox's filesystem: a mount tree over host directories opened at setup, an
//! in-memory /tmp, devices and generated files. Paths are walked here, one component
//! at a time, with symlinks resolved in the sandbox's namespace (an absolute target
//! starts again at the sandbox root, `..` never leaves it).

pub(crate) mod backing;
pub(crate) mod host;
mod mount;
mod node;
mod ops;
pub(crate) mod overlay;
pub(crate) mod proc;
mod relocate;
mod setup;
mod source;
pub(crate) mod tmpfs;

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::rc::Rc;

pub(crate) use mount::{HostSource, MountError, MountTree};
pub(crate) use node::{DevKind, Meta, Node, Time};
pub(crate) use ops::{DirEntry, Opened};
pub(crate) use setup::{build, build_with};

use crate::errno::{self, Errno};
use host::HostFd;

/// Longest path accepted.
pub(crate) const PATH_MAX: usize = 4096;
/// Longest path component.
const NAME_MAX: usize = 255;
/// Symlinks followed in one lookup.
const MAX_LINKS: u32 = 40;

/// One step of a resolved path.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The name in its parent (empty for the root).
    pub(crate) name: Rc<[u8]>,
    /// What it is.
    pub(crate) node: Node,
    /// Its trie node, while the path is a prefix of a mount point.
    pub(crate) trie: Option<usize>,
}

/// A resolved path: the entries from the root down.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    entries: Vec<Entry>,
}

impl Location {
    /// The last entry.
    pub(crate) fn top(&self) -> &Entry {
        // A location always holds at least the root.
        &self.entries[self.entries.len() - 1]
    }

    /// The entry before the last, if any.
    pub(crate) fn parent(&self) -> Option<&Entry> {
        self.entries.len().checked_sub(2).map(|i| &self.entries[i])
    }

    /// The location of the directory this one is in (`None` for the root).
    pub(crate) fn parent_loc(&self) -> Option<Location> {
        (self.entries.len() > 1).then(|| Location {
            entries: self.entries[..self.entries.len() - 1].to_vec(),
        })
    }

    /// The node of the last entry.
    pub(crate) fn node(&self) -> &Node {
        &self.top().node
    }

    /// The sandbox path, as `getcwd` shows it.
    pub(crate) fn path(&self) -> Vec<u8> {
        if self.entries.len() == 1 {
            return b"/".to_vec();
        }
        let mut p = Vec::new();
        for e in &self.entries[1..] {
            p.push(b'/');
            p.extend_from_slice(&e.name);
        }
        p
    }

    /// A stable inode number for virtual nodes.
    pub(crate) fn ino(&self) -> u64 {
        0x1000 + self.top().trie.unwrap_or(0) as u64
    }

    fn push(&mut self, e: Entry) {
        self.entries.push(e);
    }

    fn pop(&mut self) {
        if self.entries.len() > 1 {
            self.entries.pop();
        }
    }
}

/// The filesystem of one sandbox.
#[derive(Debug)]
pub(crate) struct Vfs {
    tree: MountTree,
    sources: Vec<HostSource>,
    /// What `/` shows under the mounts: nothing ([`Node::Virtual`]) or an image.
    root_node: Node,
    /// What `/proc` shows of the processes.
    pub(crate) proc: proc::ProcView,
    /// The host identity files are reached as, and the workload's ids it shows as.
    ids: ((u32, u32), (u32, u32)),
    /// The plan's mounts as they were set up, for the enforcement report.
    pub(crate) reports: Vec<sandbox_core::MountReport>,
    /// The restrictions of the `openat2` being served, if any.
    restrict: std::cell::RefCell<Option<Restrict>>,
    /// Lookups in read-only host directories: subdirectories and missing names (a
    /// path walk costs three host syscalls a component; interpreters walk the same
    /// directories over and over).
    lookups: std::cell::RefCell<LookupCache>,
    /// Directories renamed or removed so far (see `relocate.rs`).
    moves: std::cell::Cell<u64>,
}

/// Remembered lookups: (directory, name) to the subdirectory, or `None` when missing.
type LookupCache = std::collections::HashMap<(DirKey, Vec<u8>), Option<Rc<HostFd>>>;

/// A host directory handle as a map key: compared by identity (the key holds it, so
/// the identity cannot be reused while the entry lives).
#[derive(Debug, Clone)]
struct DirKey(Rc<HostFd>);

impl PartialEq for DirKey {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for DirKey {}

impl std::hash::Hash for DirKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (Rc::as_ptr(&self.0) as usize).hash(h);
    }
}

/// What `openat2`'s `RESOLVE_*` flags forbid, for the lookups of one call.
#[derive(Debug, Clone, Default)]
pub(crate) struct Restrict {
    /// `RESOLVE_BENEATH` / `RESOLVE_IN_ROOT`: the directory lookups start from.
    pub(crate) floor: Option<Location>,
    /// `RESOLVE_IN_ROOT` (else, with a floor, `RESOLVE_BENEATH`).
    pub(crate) in_root: bool,
    /// `RESOLVE_NO_SYMLINKS`.
    pub(crate) no_symlinks: bool,
    /// `RESOLVE_NO_MAGICLINKS`.
    pub(crate) no_magiclinks: bool,
    /// `RESOLVE_NO_XDEV`.
    pub(crate) no_xdev: bool,
}

impl Restrict {
    /// Whether a link found in `dir` may be followed: never with `RESOLVE_NO_SYMLINKS`,
    /// nor a `/proc` magic link (in a process's directory or its `fd`) with
    /// `RESOLVE_NO_MAGICLINKS`.
    fn may_follow(&self, dir: &Location) -> Result<(), Errno> {
        let magic = matches!(
            dir.node(),
            Node::Proc(proc::ProcNode::Pid(_) | proc::ProcNode::FdDir(_))
        );
        if self.no_symlinks || (self.no_magiclinks && magic) {
            return Err(errno::ELOOP);
        }
        Ok(())
    }
}

/// The id unmapped owners show as (`overflowuid`).
const OVERFLOW_ID: u32 = 65534;

/// Most lookups remembered (each positive one holds a directory handle open).
const LOOKUP_CACHE: usize = 2048;

fn split(path: &[u8]) -> VecDeque<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

impl Vfs {
    /// A filesystem over `tree`.
    #[cfg(test)]
    pub(crate) fn new(tree: MountTree, sources: Vec<HostSource>) -> Vfs {
        Vfs {
            tree,
            sources,
            root_node: Node::Virtual,
            proc: proc::ProcView::default(),
            ids: ((u32::MAX, u32::MAX), (0, 0)),
            reports: Vec::new(),
            restrict: Default::default(),
            lookups: Default::default(),
            moves: Default::default(),
        }
    }

    /// A filesystem over `tree` whose `/` shows `root` (an image) under the mounts.
    pub(crate) fn with_root(tree: MountTree, sources: Vec<HostSource>, root: Node) -> Vfs {
        Vfs {
            tree,
            sources,
            root_node: root,
            proc: proc::ProcView::default(),
            ids: ((u32::MAX, u32::MAX), (0, 0)),
            reports: Vec::new(),
            restrict: Default::default(),
            lookups: Default::default(),
            moves: Default::default(),
        }
    }

    /// Whether the lookup being made may follow a link found in `dir` (`openat2`'s
    /// `RESOLVE_NO_SYMLINKS`, `RESOLVE_NO_MAGICLINKS`): `ELOOP` if not.
    pub(crate) fn may_follow_in(&self, dir: &Location) -> Result<(), Errno> {
        match self.restrict.borrow().as_ref() {
            Some(r) => r.may_follow(dir),
            None => Ok(()),
        }
    }

    /// Runs `f` with lookups restricted as `r` says (`openat2`).
    pub(crate) fn restricted<T>(&self, r: Restrict, f: impl FnOnce(&Self) -> T) -> T {
        *self.restrict.borrow_mut() = Some(r);
        let out = f(self);
        *self.restrict.borrow_mut() = None;
        out
    }

    /// True when the lookup being made may not cross into `e` (`RESOLVE_NO_XDEV`).
    fn crosses(&self, e: &Entry) -> bool {
        e.trie.is_some_and(|t| self.tree.mount(t).is_some())
    }

    /// A remembered lookup of `name` in the read-only host directory `dir`: `Some`
    /// of the subdirectory or of nothing (missing).
    fn cached(&self, dir: &Rc<HostFd>, name: &[u8]) -> Option<Option<Rc<HostFd>>> {
        self.lookups
            .borrow()
            .get(&(DirKey(Rc::clone(dir)), name.to_vec()))
            .cloned()
    }

    fn remember(&self, dir: &Rc<HostFd>, name: &[u8], child: Option<Rc<HostFd>>) {
        let mut c = self.lookups.borrow_mut();
        // Each remembered subdirectory holds a host descriptor: a quarter of the
        // sandbox's budget at most.
        if c.len() >= LOOKUP_CACHE.min(host::fd_budget() / 4) {
            c.clear();
        }
        c.insert((DirKey(Rc::clone(dir)), name.to_vec()), child);
    }

    /// Which process `/proc/self` names.
    pub(crate) fn set_self(&self, pid: u32) {
        self.proc.me.set(pid);
    }

    /// The program of process `pid` (`/proc/<pid>/exe`).
    pub(crate) fn set_exe(&self, pid: u32, exe: &[u8]) {
        self.proc.procs.borrow_mut().entry(pid).or_default().exe = exe.to_vec();
    }

    /// The host mount sources (for Landlock).
    /// Adds the device node `path` (a terminal's `/dev/pts/N`, made when the terminal
    /// is; it stays, and opens fail once no terminal has that number).
    pub(crate) fn add_dev(&mut self, path: &str, dev: DevKind) {
        self.tree.insert(std::path::Path::new(path), Node::Dev(dev));
    }

    pub(crate) fn sources(&self) -> &[HostSource] {
        &self.sources
    }

    /// The root.
    pub(crate) fn root(&self) -> Location {
        Location {
            entries: vec![Entry {
                name: Rc::from(&b""[..]),
                node: self.root_node.clone(),
                trie: Some(0),
            }],
        }
    }

    /// The child `name` of the directory `dir`.
    pub(crate) fn child(&self, dir: &Entry, name: &[u8]) -> Result<Entry, Errno> {
        if name.len() > NAME_MAX {
            return Err(errno::ENAMETOOLONG);
        }
        if !dir.node.is_dir() {
            return Err(errno::ENOTDIR);
        }
        let trie = dir.trie.and_then(|t| self.tree.child(t, name));
        if let Some(m) = trie.and_then(|t| self.tree.mount(t)) {
            return Ok(Entry {
                name: name.into(),
                node: m.clone(),
                trie,
            });
        }
        let under = match &dir.node {
            Node::HostDir {
                fd,
                ro: true,
                noexec,
                mnt,
            } if self.cached(fd, name).is_some() => self.cached(fd, name).and_then(|c| {
                c.map(|child| Node::HostDir {
                    fd: child,
                    ro: true,
                    noexec: *noexec,
                    mnt: *mnt,
                })
            }),
            Node::HostDir {
                fd,
                ro,
                noexec,
                mnt,
            } => match host::open_path(fd.as_raw_fd(), name) {
                Ok(child) => {
                    let meta = host::fstat(child.as_raw_fd())?;
                    Some(if meta.is_dir() {
                        let child = Rc::new(child);
                        if *ro {
                            self.remember(fd, name, Some(Rc::clone(&child)));
                        }
                        Node::HostDir {
                            fd: child,
                            ro: *ro,
                            noexec: *noexec,
                            mnt: *mnt,
                        }
                    } else {
                        Node::HostFile {
                            dir: Rc::clone(fd),
                            name: name.into(),
                            fd: Rc::new(child),
                            ro: *ro,
                            noexec: *noexec,
                            mnt: *mnt,
                            kind: meta.kind(),
                        }
                    })
                }
                Err(e) if e == errno::ENOENT => {
                    if *ro {
                        self.remember(fd, name, None);
                    }
                    None
                }
                Err(e) => return Err(e),
            },
            Node::Tmp(t) => t.child(name).map(Node::Tmp),
            Node::Proc(p) => Some(self.proc.child(p, name)?),
            Node::Ovl(d) => d.lookup(name)?.map(|f| match f {
                overlay::Found::Dir(d) => Node::Ovl(d),
                overlay::Found::Lower(l) => Node::Lower(l),
                overlay::Found::Upper(t) => Node::Tmp(t),
            }),
            _ => None,
        };
        match (under, trie) {
            (Some(node), trie) => Ok(Entry {
                name: name.into(),
                node,
                trie,
            }),
            (None, Some(t)) => Ok(Entry {
                name: name.into(),
                node: Node::Virtual,
                trie: Some(t),
            }),
            (None, None) => Err(errno::ENOENT),
        }
    }

    /// Resolves `path` from `base` (for relative paths). The last component is followed
    /// when it is a symlink only if `follow` (or the path ends with a slash).
    pub(crate) fn resolve(
        &self,
        base: &Location,
        path: &[u8],
        follow: bool,
    ) -> Result<Location, Errno> {
        self.resolve_counted(base, path, follow, &mut 0)
    }

    fn resolve_counted(
        &self,
        base: &Location,
        path: &[u8],
        follow: bool,
        links: &mut u32,
    ) -> Result<Location, Errno> {
        if path.is_empty() {
            return Err(errno::ENOENT);
        }
        if path.len() >= PATH_MAX {
            return Err(errno::ENAMETOOLONG);
        }
        let mut must_dir = path.ends_with(b"/");
        let r = self.restrict.borrow().clone().unwrap_or_default();
        let floor = r.floor.as_ref().map_or(1, |f| f.entries.len());
        // Where an absolute path (or symlink target) starts over.
        let restart = || -> Result<Location, Errno> {
            match &r.floor {
                Some(f) if r.in_root => Ok(f.clone()),
                Some(_) => Err(errno::EXDEV),
                None => Ok(self.root()),
            }
        };
        let mut loc = if path[0] == b'/' {
            restart()?
        } else {
            base.clone()
        };
        let mut queue = split(path);
        while let Some(comp) = queue.pop_front() {
            let last = queue.is_empty();
            if !loc.node().is_dir() {
                return Err(errno::ENOTDIR);
            }
            // Every component is looked up in a directory that must be searchable,
            // `.` and `..` too (Linux's may_lookup comes before the name is read).
            self.may_search(&loc)?;
            match comp.as_slice() {
                b"." => continue,
                b".." => {
                    if loc.entries.len() <= floor && r.floor.is_some() {
                        if r.in_root {
                            continue; // `..` of the root is the root
                        }
                        return Err(errno::EXDEV);
                    }
                    if r.no_xdev && self.crosses(loc.top()) {
                        return Err(errno::EXDEV);
                    }
                    loc.pop();
                    continue;
                }
                _ => {}
            }
            let child = self.child(loc.top(), &comp)?;
            if r.no_xdev && self.crosses(&child) {
                return Err(errno::EXDEV);
            }
            if child.node.is_link() && (!last || follow || must_dir) {
                r.may_follow(&loc)?;
                *links += 1;
                if *links > MAX_LINKS {
                    return Err(errno::ELOOP);
                }
                if let Node::Proc(proc::ProcNode::FdDir(pid)) = *loc.node() {
                    // A magic link leads to the open file, wherever it is now. A
                    // restricted lookup may not jump (Linux's nd_jump_link: EXDEV).
                    if r.floor.is_some() || r.no_xdev {
                        return Err(errno::EXDEV);
                    }
                    loc = self.proc.fd_target(pid, &comp, &loc)?;
                    continue;
                }
                let target = child.node.link_target()?;
                if target.is_empty() {
                    return Err(errno::ENOENT);
                }
                if target[0] == b'/' {
                    loc = restart()?;
                }
                // A last link whose target ends in a slash names a directory.
                if last && target.ends_with(b"/") {
                    must_dir = true;
                }
                let mut next = split(&target);
                next.extend(queue.drain(..));
                queue = next;
                continue;
            }
            loc.push(child);
        }
        if must_dir && !loc.node().is_dir() {
            return Err(errno::ENOTDIR);
        }
        Ok(loc)
    }

    /// Resolves everything but the last component of `path`: the parent directory and
    /// the last name (which may be `.` or `..`; trailing slashes are dropped).
    pub(crate) fn resolve_parent(
        &self,
        base: &Location,
        path: &[u8],
    ) -> Result<(Location, Vec<u8>), Errno> {
        if path.is_empty() {
            return Err(errno::ENOENT);
        }
        if path.len() >= PATH_MAX {
            return Err(errno::ENAMETOOLONG);
        }
        let trimmed = {
            let mut end = path.len();
            while end > 1 && path[end - 1] == b'/' {
                end -= 1;
            }
            &path[..end]
        };
        let (dir, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
            None => (&b""[..], trimmed),
        };
        if name.is_empty() {
            // The root itself.
            return Ok((self.root(), b".".to_vec()));
        }
        if name.len() > NAME_MAX {
            return Err(errno::ENAMETOOLONG);
        }
        let parent = if dir.is_empty() {
            base.clone()
        } else {
            self.resolve(base, dir, true)?
        };
        if !parent.node().is_dir() {
            return Err(errno::ENOTDIR);
        }
        // The last name is looked up in the parent, which must be searchable (Linux's
        // path walk checks it before it returns the parent of a create or removal).
        self.may_search(&parent)?;
        Ok((parent, name.to_vec()))
    }

    /// Metadata of the node a location ends at (host owners as the sandbox shows them).
    pub(crate) fn meta(&self, loc: &Location) -> Result<Meta, Errno> {
        let m = loc.node().meta(loc.ino())?;
        Ok(match loc.node() {
            Node::HostDir { .. } | Node::HostFile { .. } => self.show_owner(m),
            _ => m,
        })
    }

    /// Host ownership as a user namespace would show it: the sandbox's host identity
    /// is the workload's user, any other id the overflow id (65534), as the container
    /// backend shows them.
    pub(crate) fn show_owner(&self, mut m: Meta) -> Meta {
        let (host, user) = self.ids;
        m.uid = if m.uid == host.0 { user.0 } else { OVERFLOW_ID };
        m.gid = if m.gid == host.1 { user.1 } else { OVERFLOW_ID };
        m
    }

    /// Linux's permission check (`generic_permission`) for the workload on the node
    /// `loc` ends at, for `want` (4 read, 2 write, 1 search or execute): the owner's,
    /// the group's or the others' bits, as the owner shows here; a root workload passes
    /// everything but executing a file nobody may execute. Host files are checked
    /// again by the host kernel when the VMM reaches them.
    pub(crate) fn permission(&self, loc: &Location, want: u32) -> Result<(), Errno> {
        let m = self.meta(loc)?;
        Self::allowed(&m, self.ids.1, want)
    }

    fn allowed(m: &Meta, (uid, gid): (u32, u32), want: u32) -> Result<(), Errno> {
        if want == 0 {
            return Ok(());
        }
        if uid == 0 {
            if want & 1 != 0 && !m.is_dir() && m.mode & 0o111 == 0 {
                return Err(errno::EACCES);
            }
            return Ok(());
        }
        let bits = if m.uid == uid {
            m.mode >> 6
        } else if m.gid == gid {
            m.mode >> 3
        } else {
            m.mode
        } & 7;
        if bits & want == want {
            Ok(())
        } else {
            Err(errno::EACCES)
        }
    }

    /// Whether the workload may add or remove names in directory `dir`: a writable
    /// filesystem (`EROFS`), and write and search permission on it (`EACCES`).
    pub(crate) fn may_change(&self, dir: &Location) -> Result<(), Errno> {
        dir.node().writable()?;
        self.permission(dir, 3)
    }

    /// Search permission on an in-memory directory on a path's way (host directories
    /// are searched by the host kernel).
    fn may_search(&self, dir: &Location) -> Result<(), Errno> {
        match dir.node() {
            Node::Tmp(_) | Node::Ovl(_) | Node::Lower(_) => self.permission(dir, 1),
            _ => Ok(()),
        }
    }

    /// Sets the host identity and the workload's ids for [`Vfs::show_owner`].
    pub(crate) fn set_ids(&mut self, host: (u32, u32), user: (u32, u32)) {
        self.ids = (host, user);
    }
}

#[cfg(test)]
mod tests;

impl crate::snap::Snap for Entry {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(Entry {
            name: m.bytes(&self.name),
            node: crate::snap::Snap::snap(&self.node, m)?,
            trie: self.trie,
        })
    }
}

impl crate::snap::Snap for Location {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(Location {
            entries: crate::snap::Snap::snap(&self.entries, m)?,
        })
    }
}

impl crate::snap::Snap for Vfs {
    /// The remembered lookups are not copied (a cache: the copy starts without).
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(Vfs {
            tree: self.tree.snap(m)?,
            sources: self.sources.snap(m)?,
            root_node: self.root_node.snap(m)?,
            proc: self.proc.snap(m)?,
            ids: self.ids,
            reports: self.reports.clone(),
            restrict: Default::default(),
            lookups: Default::default(),
            moves: std::cell::Cell::new(self.moves.get()),
        })
    }
}

impl Vfs {
    /// The roots of every in-memory filesystem (the image's upper layer first, then the
    /// mounts in tree order), for `savefile`: a sandbox built from the same plan has
    /// them in the same order.
    /// Every mount of the tree, parents first: its sandbox path and its node.
    pub(crate) fn mounts(&self) -> Vec<(Vec<u8>, &Node)> {
        self.tree.mounts()
    }

    pub(crate) fn tmp_roots(&self) -> Vec<Rc<tmpfs::TmpInode>> {
        let mut v = Vec::new();
        if let Node::Ovl(d) = &self.root_node {
            v.push(d.upper_root());
        }
        v.extend(self.tree.tmp_roots());
        v
    }
}
