//! The mount tree: which sandbox paths show what, built once from the plan.

use std::collections::BTreeMap;
use std::path::{Component, Path};
use std::rc::Rc;

use sandbox_core::PlannedMount;

use super::host::HostFd;
use super::node::Node;

#[derive(Debug, Default)]
struct TreeNode {
    children: BTreeMap<Vec<u8>, usize>,
    /// The node a mount shows here.
    mount: Option<Node>,
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
    pub(crate) fn mount(&self, at: usize) -> Option<&Node> {
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
    pub(crate) fn insert(&mut self, target: &Path, mount: Node) {
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

impl MountTree {
    /// Every mount, parents first: its sandbox path and the node it shows.
    pub(crate) fn mounts(&self) -> Vec<(Vec<u8>, &Node)> {
        let mut out = Vec::new();
        let mut stack = vec![(0usize, Vec::new())];
        while let Some((at, path)) = stack.pop() {
            if let Some(m) = self.mount(at) {
                out.push((path.clone(), m));
            }
            let mut kids: Vec<(&Vec<u8>, usize)> = self.children(at).collect();
            kids.sort();
            for (name, n) in kids.into_iter().rev() {
                let mut p = path.clone();
                p.push(b'/');
                p.extend_from_slice(name);
                stack.push((n, p));
            }
        }
        out
    }

    /// The roots of the in-memory filesystems mounted, in tree order (`savefile`).
    pub(crate) fn tmp_roots(&self) -> Vec<Rc<super::tmpfs::TmpInode>> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.mount {
                Some(Node::Tmp(t)) => Some(Rc::clone(t)),
                _ => None,
            })
            .collect()
    }
}
