//! The mount tree: which sandbox paths show what, built once from the plan.

use std::collections::BTreeMap;
use std::path::{Component, Path};
use std::rc::Rc;

use sandbox_core::PlannedMount;

use super::host::HostFd;
use super::node::{DevKind, Node};
use super::tmpfs::TmpInode;

/// What a mount point shows.
#[derive(Debug, Clone)]
pub(crate) enum Mount {
    /// A host directory.
    HostDir {
        /// `O_PATH` handle.
        fd: Rc<HostFd>,
        /// Read-only.
        ro: bool,
        /// Mount number.
        mnt: u32,
    },
    /// A host file.
    HostFile {
        /// `O_PATH` handle of its directory.
        dir: Rc<HostFd>,
        /// Its name there.
        name: Rc<[u8]>,
        /// `O_PATH` handle of the file.
        fd: Rc<HostFd>,
        /// Read-only.
        ro: bool,
        /// Mount number.
        mnt: u32,
        /// Type bits.
        kind: u32,
    },
    /// A symlink (a mount whose host source is a symlink shows as that symlink).
    Link(Rc<[u8]>),
    /// The in-memory /tmp.
    Tmp(Rc<TmpInode>),
    /// A device.
    Dev(DevKind),
    /// A generated file.
    Gen(Rc<[u8]>),
    /// An empty directory (a working directory nothing else provides).
    Dir,
    /// `/proc`.
    Proc,
}

impl Mount {
    /// The node at the mount point.
    pub(crate) fn node(&self) -> Node {
        match self {
            Mount::HostDir { fd, ro, mnt } => Node::HostDir {
                fd: Rc::clone(fd),
                ro: *ro,
                mnt: *mnt,
            },
            Mount::HostFile {
                dir,
                name,
                fd,
                ro,
                mnt,
                kind,
            } => Node::HostFile {
                dir: Rc::clone(dir),
                name: Rc::clone(name),
                fd: Rc::clone(fd),
                ro: *ro,
                mnt: *mnt,
                kind: *kind,
            },
            Mount::Link(t) => Node::Link(Rc::clone(t)),
            Mount::Tmp(t) => Node::Tmp(Rc::clone(t)),
            Mount::Dev(d) => Node::Dev(*d),
            Mount::Gen(b) => Node::Gen(Rc::clone(b)),
            Mount::Dir => Node::Virtual,
            Mount::Proc => Node::Proc(super::proc::ProcNode::Root),
        }
    }
}

#[derive(Debug, Default)]
struct TreeNode {
    children: BTreeMap<Vec<u8>, usize>,
    mount: Option<Mount>,
}

/// A trie of sandbox paths; node 0 is `/`.
#[derive(Debug)]
pub(crate) struct MountTree {
    nodes: Vec<TreeNode>,
}

/// A host mount source, for the VMM's Landlock rules.
#[derive(Debug, Clone)]
pub(crate) struct HostSource {
    /// `O_PATH` handle.
    pub(crate) fd: Rc<HostFd>,
    /// Read-only.
    pub(crate) ro: bool,
    /// A directory (else a file).
    pub(crate) dir: bool,
}

/// A mount could not be set up.
#[derive(Debug)]
pub(crate) struct MountError {
    /// The mount.
    pub(crate) mount: PlannedMount,
    /// Why.
    pub(crate) error: std::io::Error,
}

fn components(target: &Path) -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    target
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.as_bytes().to_vec()),
            _ => None,
        })
        .collect()
}

impl MountTree {
    /// An empty tree (`/` only).
    pub(crate) fn new() -> MountTree {
        MountTree {
            nodes: vec![TreeNode::default()],
        }
    }

    /// The child `name` of trie node `at`.
    pub(crate) fn child(&self, at: usize, name: &[u8]) -> Option<usize> {
        self.nodes.get(at)?.children.get(name).copied()
    }

    /// The mount at trie node `at`.
    pub(crate) fn mount(&self, at: usize) -> Option<&Mount> {
        self.nodes.get(at)?.mount.as_ref()
    }

    /// The children of trie node `at`.
    pub(crate) fn children(&self, at: usize) -> impl Iterator<Item = (&Vec<u8>, usize)> {
        self.nodes
            .get(at)
            .into_iter()
            .flat_map(|n| n.children.iter().map(|(k, v)| (k, *v)))
    }

    /// Mounts `mount` at `target` (absolute). Mounts already made below `target` stay
    /// (the plan's mounts come parents first, see `setup::build`; none is ever dropped,
    /// whatever the order they are listed in).
    pub(crate) fn insert(&mut self, target: &Path, mount: Mount) {
        let mut at = 0;
        for c in components(target) {
            at = match self.nodes[at].children.get(&c) {
                Some(&n) => n,
                None => {
                    self.nodes.push(TreeNode::default());
                    let n = self.nodes.len() - 1;
                    self.nodes[at].children.insert(c, n);
                    n
                }
            };
        }
        if at == 0 {
            return; // never over the root
        }
        self.nodes[at].mount = Some(mount);
    }
}

impl crate::snap::Snap for Mount {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(match self {
            Mount::HostDir { fd, ro, mnt } => Mount::HostDir {
                fd: fd.snap(m)?,
                ro: *ro,
                mnt: *mnt,
            },
            Mount::HostFile {
                dir,
                name,
                fd,
                ro,
                mnt,
                kind,
            } => Mount::HostFile {
                dir: dir.snap(m)?,
                name: m.bytes(name),
                fd: fd.snap(m)?,
                ro: *ro,
                mnt: *mnt,
                kind: *kind,
            },
            Mount::Link(t) => Mount::Link(m.bytes(t)),
            Mount::Tmp(t) => Mount::Tmp(t.snap(m)?),
            Mount::Dev(d) => Mount::Dev(*d),
            Mount::Gen(b) => Mount::Gen(m.bytes(b)),
            Mount::Dir => Mount::Dir,
            Mount::Proc => Mount::Proc,
        })
    }
}

impl crate::snap::Snap for MountTree {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        let nodes = self
            .nodes
            .iter()
            .map(|n| {
                Ok(TreeNode {
                    children: n.children.clone(),
                    mount: n.mount.snap(m)?,
                })
            })
            .collect::<Result<Vec<_>, crate::snap::SnapError>>()?;
        Ok(MountTree { nodes })
    }
}

impl crate::snap::Snap for HostSource {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(HostSource {
            fd: crate::snap::Snap::snap(&self.fd, m)?,
            ro: self.ro,
            dir: self.dir,
        })
    }
}
