//! Where a directory is now. A [`Location`] is the path a directory was reached by,
//! each step holding the directory itself (a host handle, a tmpfs inode): once a
//! directory on that path is renamed, the names are stale though the directory is the
//! same. [`Vfs::relocate`] checks each step and, where a name no longer leads to the
//! directory it held, looks for that directory in its filesystem, as Linux's `getcwd`
//! finds a directory's path from the directory itself. The VFS counts the renames and
//! removals of directories ([`Vfs::moves`]): a location checked since the last one is
//! current.

use std::os::fd::AsRawFd;
use std::rc::Rc;

use super::{host, Location, Node, Vfs};
use crate::errno::{self, Errno};

/// Most directories one search looks in (a directory moved deep into a large host
/// tree is not looked for further: its old path is kept).
const SEARCH_MAX: usize = 4096;

/// Whether two nodes are the same directory: tmpfs inodes by identity, host
/// directories by device and inode, the mount tree's and `/proc`'s by what they are.
/// An image root's directories are known by their path only (a renamed one is not
/// found again).
fn same_dir(a: &Node, b: &Node) -> bool {
    match (a, b) {
        (Node::Tmp(x), Node::Tmp(y)) => Rc::ptr_eq(x, y),
        (Node::HostDir { fd: x, .. }, Node::HostDir { fd: y, .. }) => {
            Rc::ptr_eq(x, y)
                || match (host::fstat(x.as_raw_fd()), host::fstat(y.as_raw_fd())) {
                    (Ok(m), Ok(n)) => (m.dev, m.ino) == (n.dev, n.ino),
                    _ => false,
                }
        }
        (Node::Virtual, Node::Virtual) => true,
        (Node::Proc(x), Node::Proc(y)) => x == y,
        (Node::Ovl(x), Node::Ovl(y)) => x.same_path(y),
        _ => false,
    }
}

/// A directory that was removed (`rmdir`, or renamed over): no link left.
fn removed(n: &Node) -> Result<bool, Errno> {
    Ok(match n {
        Node::Tmp(t) => t.nlink.get() == 0,
        Node::HostDir { fd, .. } => host::fstat(fd.as_raw_fd())?.nlink == 0,
        _ => false,
    })
}

impl Vfs {
    /// How many directories were renamed or removed so far.
    pub(crate) fn moves(&self) -> u64 {
        self.moves.get()
    }

    /// Counts a rename or removal of a directory.
    pub(crate) fn moved(&self) {
        self.moves.set(self.moves.get().wrapping_add(1));
    }

    /// The current location of the directory `loc` ends at: `Some` with its path as
    /// it is now; `None` when it moved out of what one search looks at (the caller
    /// keeps the old path); `ENOENT` once it was removed.
    pub(crate) fn relocate(&self, loc: &Location) -> Result<Option<Location>, Errno> {
        let mut fresh = self.root();
        for e in &loc.entries[1..] {
            if let Ok(c) = self.child(fresh.top(), &e.name) {
                if same_dir(&c.node, &e.node) {
                    fresh.push(c);
                    continue;
                }
            }
            if removed(&e.node)? {
                return Err(errno::ENOENT);
            }
            match self.search(&fresh, &e.node) {
                Some(found) => fresh = found,
                None => return Ok(None),
            }
        }
        Ok(Some(fresh))
    }

    /// Looks for directory `target` in the filesystem `near` ends in (a rename never
    /// leaves it), breadth first from its mount point, without crossing into others.
    fn search(&self, near: &Location, target: &Node) -> Option<Location> {
        let mount = near
            .entries
            .iter()
            .rposition(|e| e.trie.is_some_and(|t| self.tree.mount(t).is_some()))
            .unwrap_or(0);
        let mut queue = std::collections::VecDeque::from([Location {
            entries: near.entries[..=mount].to_vec(),
        }]);
        let mut looked = 0;
        while let Some(dir) = queue.pop_front() {
            looked += 1;
            if looked > SEARCH_MAX {
                return None;
            }
            let Ok(list) = self.list(&dir) else {
                continue;
            };
            for d in list {
                if d.dtype != libc::DT_DIR || d.name == b"." || d.name == b".." {
                    continue;
                }
                let Ok(c) = self.child(dir.top(), &d.name) else {
                    continue;
                };
                if self.crosses(&c) || !c.node.is_dir() {
                    continue;
                }
                let mut next = dir.clone();
                let found = same_dir(&c.node, target);
                next.push(c);
                if found {
                    return Some(next);
                }
                queue.push_back(next);
            }
        }
        None
    }
}
