//! The sandbox's filesystem as the plan describes it, with what every sandbox has:
//! an in-memory /tmp, a minimal /dev, /proc/self/exe and the generated /etc files
//! (the same as the container backend shows).

use std::path::Path;
use std::rc::Rc;

use sandbox_core::Plan;

use super::tmpfs::TmpFs;
use super::{DevKind, Mount, MountError, MountTree, Vfs};
use crate::memory::Budget;

/// Builds the filesystem of `plan`; /tmp draws on `budget`.
pub(crate) fn build(plan: &Plan, budget: Rc<Budget>) -> Result<Vfs, MountError> {
    let mut tree = MountTree::new();
    let tmp_limit = plan.limits.tmp_size.map(|b| b.0).unwrap_or(u64::MAX);
    let tmp = TmpFs::create(tmp_limit, budget);
    tree.insert(Path::new("/tmp"), Mount::Tmp(tmp));
    let mut sources = Vec::new();
    for (i, pm) in plan.mounts.iter().enumerate() {
        if let Some((m, src)) = MountTree::host_mount(pm, i as u32 + 1)? {
            tree.insert(&pm.target, m);
            sources.extend(src);
        }
    }
    for (name, dev) in [
        ("null", DevKind::Null),
        ("zero", DevKind::Zero),
        ("full", DevKind::Full),
        ("random", DevKind::Random),
        ("urandom", DevKind::Random),
        ("stdin", DevKind::Fd(0)),
        ("stdout", DevKind::Fd(1)),
        ("stderr", DevKind::Fd(2)),
    ] {
        tree.insert(&Path::new("/dev").join(name), Mount::Dev(dev));
    }
    for (path, content) in plan.generated_files() {
        tree.insert(Path::new(path), Mount::Gen(Rc::from(content.into_bytes())));
    }
    Ok(Vfs::new(tree, sources))
}
