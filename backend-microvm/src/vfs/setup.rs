//! The sandbox's filesystem as the plan describes it, with what every sandbox has:
//! an in-memory /tmp, a minimal /dev, /proc/self/exe and the generated /etc files
//! (the same as the container backend shows). With an image, `/` is the image's
//! layers under an in-memory upper layer, and the mounts are volumes on top.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;

use sandbox_core::{MountMode, Plan, PlannedMount};

use super::overlay::Overlay;
use super::source::Sources;
use super::tmpfs::TmpFs;
use super::{host, DevKind, HostSource, MountError, MountTree, Node, Vfs};
use crate::memory::Budget;

/// Builds the filesystem of `plan`; /tmp and an image's upper layer draw on `budget`.
pub(crate) fn build(plan: &Plan, budget: Rc<Budget>) -> Result<Vfs, MountError> {
    build_with(plan, budget, None)
}

/// [`build`], with the CA bundle the egress broker's interception needs at
/// [`sandbox_core::network::CA_BUNDLE_PATH`] (a generated file, as the container
/// writes it).
pub(crate) fn build_with(
    plan: &Plan,
    budget: Rc<Budget>,
    ca_bundle: Option<String>,
) -> Result<Vfs, MountError> {
    let mut tree = MountTree::new();
    let tmp_limit = plan.limits.tmp_size.map(|b| b.0).unwrap_or(u64::MAX);
    let tmp_budget = Rc::clone(&budget);
    // Each in-memory filesystem its own device number, in the order built (the same
    // for every sandbox of this plan: a snapshot file's are read back into them).
    let mut devs = std::iter::once(super::tmpfs::TMP_DEV).chain(super::tmpfs::MORE_TMP_DEVS..);
    let mut dev = move || devs.next().unwrap_or(super::tmpfs::TMP_DEV);
    // A directory root (an OCI bundle's rootfs) keeps its own /tmp, as in the container;
    // an in-memory filesystem the plan puts at /tmp replaces the sandbox's own.
    if plan.root_dir.is_none() && !plan.tmpfs.iter().any(|t| t.target == Path::new("/tmp")) {
        let tmp = TmpFs::create(tmp_limit, Rc::clone(&budget), plan.user, dev(), false);
        tree.insert(Path::new("/tmp"), Node::Tmp(tmp));
    }
    let mut sources = Vec::new();
    let mut reports = Vec::new();
    let mut opener = None;
    let root = match (&plan.root, &plan.root_dir) {
        (Some(_), Some(_)) => {
            return Err(MountError {
                mount: PlannedMount {
                    source: "image".into(),
                    target: "/".into(),
                    mode: MountMode::Ro,
                    optional: false,
                    system: false,
                    noexec: false,
                },
                error: std::io::Error::other("an image root and a directory root at once"),
            })
        }
        (None, Some(d)) => {
            // Opened as every mount source is (no symlink followed, no pseudo
            // filesystem), and, as the container backend does, not idmapped: an
            // engine's merged rootfs is overlayfs, which cannot be, and the VMM reaches
            // it as the sandbox's host identity (root-owned files read, not written).
            let pm = PlannedMount {
                source: d.path.clone(),
                target: "/".into(),
                mode: if d.readonly {
                    MountMode::Ro
                } else {
                    MountMode::Rw
                },
                optional: false,
                system: true,
                noexec: false,
            };
            let o = opener.insert(
                Sources::new(
                    crate::confine::root_caller(),
                    crate::confine::host_identity(),
                )
                .map_err(|error| MountError {
                    mount: pm.clone(),
                    error,
                })?,
            );
            let m = o.open(&pm, 0)?.ok_or_else(|| MountError {
                mount: pm.clone(),
                error: std::io::Error::from_raw_os_error(libc::ENOENT),
            })?;
            let node = m.mount;
            if !node.is_dir() {
                return Err(MountError {
                    mount: pm,
                    error: std::io::Error::from_raw_os_error(libc::ENOTDIR),
                });
            }
            sources.extend(m.source);
            reports.push(m.report);
            node
        }
        (None, None) => Node::Virtual,
        (Some(img), None) => {
            let mut layers = Vec::new();
            for l in &img.layers {
                let err = |error: std::io::Error| MountError {
                    mount: PlannedMount {
                        source: l.clone(),
                        target: "/".into(),
                        mode: MountMode::Ro,
                        optional: false,
                        system: false,
                        noexec: false,
                    },
                    error,
                };
                let fd = host::open_source(l).map_err(err)?;
                let meta = host::fstat(fd.as_raw_fd())
                    .map_err(|e| err(std::io::Error::from_raw_os_error(e.0)))?;
                if !meta.is_dir() {
                    return Err(err(std::io::Error::from_raw_os_error(libc::ENOTDIR)));
                }
                let fd = Rc::new(fd);
                sources.push(HostSource {
                    fd: Rc::clone(&fd),
                    ro: true,
                    dir: true,
                });
                layers.push(fd);
            }
            if layers.is_empty() {
                return Err(MountError {
                    mount: PlannedMount {
                        source: img.name.clone().into(),
                        target: "/".into(),
                        mode: MountMode::Ro,
                        optional: false,
                        system: false,
                        noexec: false,
                    },
                    error: std::io::Error::other("the image has no layers"),
                });
            }
            // The writable layer is capped like the container backend's (its tmpfs).
            let upper_limit = plan
                .limits
                .tmp_size
                .or(plan.limits.memory)
                .map_or(u64::MAX, |b| b.0);
            let upper = TmpFs::create(upper_limit, budget, plan.user, dev(), false);
            Node::Ovl(Overlay::root(&layers, upper, plan.user))
        }
    };
    // Parents before children, as the container applies them: the order the plan lists
    // them in changes nothing.
    let mut order: Vec<usize> = (0..plan.mounts.len()).collect();
    order.sort_by_key(|&i| plan.mounts[i].target.components().count());
    if let Some(first) = plan.mounts.first() {
        let opener = match opener.as_mut() {
            Some(o) => o,
            None => opener.insert(
                Sources::new(
                    crate::confine::root_caller(),
                    crate::confine::host_identity(),
                )
                .map_err(|error| MountError {
                    mount: first.clone(),
                    error,
                })?,
            ),
        };
        for i in order {
            let pm = &plan.mounts[i];
            let Some(mut m) = opener.open(pm, i as u32 + 1)? else {
                continue;
            };
            // `noexec` as the container's MOUNT_ATTR_NOEXEC: every node under it
            // carries the flag (`Node::noexec`).
            if pm.noexec {
                m.report.note = Some(match m.report.note.take() {
                    Some(n) => format!("{n}; noexec"),
                    None => "noexec".into(),
                });
            }
            tree.insert(&pm.target, m.mount);
            sources.extend(m.source);
            reports.push(m.report);
        }
    }
    // In-memory filesystems the plan asks for, each with its own size, charged to
    // guest memory like /tmp.
    for t in &plan.tmpfs {
        let fs = TmpFs::create(t.size, Rc::clone(&tmp_budget), plan.user, dev(), t.noexec);
        fs.mode.set(t.mode & 0o7777);
        tree.insert(&t.target, Node::Tmp(fs));
        reports.push(sandbox_core::MountReport {
            source: "tmpfs".into(),
            target: t.target.display().to_string(),
            mode: MountMode::Rw,
            kind: "tmpfs".into(),
            access: sandbox_core::MountAccess::None,
            host_ids: None,
            // `noexec` as the container's MS_NOEXEC: see `Node::noexec`.
            note: Some(format!(
                "in-memory, at most {} bytes, charged to guest memory{}",
                t.size,
                if t.noexec { "; noexec" } else { "" }
            )),
        });
    }
    tree.insert(Path::new("/proc"), Node::Proc(super::proc::ProcNode::Root));
    // What sysconf(_SC_NPROCESSORS_*) and friends read: one vCPU.
    for f in ["online", "possible", "present"] {
        tree.insert(
            &Path::new("/sys/devices/system/cpu").join(f),
            Node::Gen(Rc::from(&b"0\n"[..])),
        );
    }
    // As in the container backend: POSIX shared memory (sem_open, shm_open) lives in
    // /tmp, unless the plan puts an in-memory filesystem of its own at /dev/shm (above).
    if !plan.tmpfs.iter().any(|t| t.target == Path::new("/dev/shm")) {
        tree.insert(Path::new("/dev/shm"), Node::Link(Rc::from(&b"/tmp"[..])));
    }
    // As on Linux: the descriptors through `/proc`'s magic links (`/dev/fd/N` of a
    // pipe is that pipe opened anew: bash's `<(...)`, `cat /dev/stdin`).
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        tree.insert(
            &Path::new("/dev").join(name),
            Node::Link(Rc::from(target.as_bytes())),
        );
    }
    for (name, dev) in [
        ("null", DevKind::Null),
        ("zero", DevKind::Zero),
        ("full", DevKind::Full),
        ("random", DevKind::Random),
        ("urandom", DevKind::Random),
        ("tty", DevKind::Tty),
        ("ptmx", DevKind::Ptmx),
    ] {
        tree.insert(&Path::new("/dev").join(name), Node::Dev(dev));
    }
    // An image keeps its own users and groups; its host name and hosts file are the
    // sandbox's.
    // A directory root gets nothing generated in it (as in the container).
    // The resolver of an image is the broker too (network `egress`).
    for (path, content) in plan.generated_files() {
        if plan.root_dir.is_some()
            || (plan.root.is_some()
                && !matches!(path, "/etc/hostname" | "/etc/hosts" | "/etc/resolv.conf"))
        {
            continue;
        }
        tree.insert(Path::new(path), Node::Gen(Rc::from(content.into_bytes())));
    }
    if let (Some(bundle), None) = (ca_bundle, &plan.root_dir) {
        tree.insert(
            Path::new(sandbox_core::network::CA_BUNDLE_PATH),
            Node::Gen(Rc::from(bundle.into_bytes())),
        );
    }
    let mut vfs = Vfs::with_root(tree, sources, root);
    vfs.set_ids(crate::confine::host_identity(), plan.user);
    vfs.reports = reports;
    vfs.make_cwd(plan);
    Ok(vfs)
}

impl Vfs {
    /// A working directory that no mount provides and that does not exist is made in
    /// the root (as the container backend does): an empty directory of the mount tree,
    /// or a directory of the image's upper layer.
    fn make_cwd(&mut self, plan: &Plan) {
        let cwd = Path::new(&plan.cwd);
        let covered = ["/tmp", "/proc", "/dev", "/sys"]
            .iter()
            .any(|d| cwd.starts_with(d))
            || plan.mounts.iter().any(|m| cwd.starts_with(&m.target))
            || plan.tmpfs.iter().any(|t| cwd.starts_with(&t.target));
        let root = self.root();
        if covered || !cwd.is_absolute() || self.resolve(&root, plan.cwd.as_bytes(), true).is_ok() {
            return;
        }
        match self.root_node {
            Node::Ovl(_) => {
                let mut at = String::new();
                for c in plan.cwd.split('/').filter(|c| !c.is_empty()) {
                    at.push('/');
                    at.push_str(c);
                    let _ = self.mkdir(&root, at.as_bytes(), 0o755);
                }
            }
            _ => self.tree.insert(cwd, Node::Virtual),
        }
    }
}
