//! Turns a [`Plan`] into a [`ChildSpec`]: every path, string, filter and fd the child
//! needs, prepared while allocation is still allowed.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sandbox_core::mount_source::idmap::Idmaps;
use sandbox_core::mount_source::{HostMounts, SourceKind};
use sandbox_core::{MountAccess, MountMode, MountReport, Network, Plan, SpawnError};

use crate::child::{ChildSpec, Components, Op, Rule, Source, MAX_SOURCES};
use crate::landlock::Masks;
use crate::sys::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

/// Device nodes every sandbox gets, bound from the host.
const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// Host facts a private /proc still shows, hidden as /dev/null: the kernel's command
/// line and configuration, the boot id (a host fingerprint), kernel memory and symbols,
/// modules, keys, timers and scheduler internals, interrupt counts (a side channel),
/// and sysrq. The list runc masks, plus the hardening issue's.
const PROC_MASKED_FILES: [&str; 15] = [
    "cmdline",
    "config.gz",
    "kcore",
    "kallsyms",
    "modules",
    "keys",
    "key-users",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "latency_stats",
    "interrupts",
    "softirqs",
    "sysrq-trigger",
    "sys/kernel/random/boot_id",
];

/// Directories of host facts in /proc, hidden under an empty read-only tmpfs: pressure
/// stall information (PSI: the host's load, a side channel), hardware (ACPI, buses,
/// drivers, sound, SCSI, IRQ routing) and filesystem internals.
const PROC_MASKED_DIRS: [&str; 8] = [
    "pressure", "acpi", "asound", "bus", "driver", "fs", "irq", "scsi",
];

/// The host uid/gid a sandbox's processes run as when the caller is root: an
/// unprivileged id, so that an escape does not land as host root.
pub(crate) use sandbox_core::ROOT_MODE_HOST_ID;

/// The parent's ends of the pipes, kept by the execution.
#[derive(Debug)]
pub(crate) struct ParentEnds {
    /// Where init sends the egress link's TUN descriptor.
    pub(crate) tun_r: Option<OwnedFd>,
    pub(crate) sync_w: OwnedFd,
    pub(crate) err_r: OwnedFd,
    /// The host's end of init's control socket (see `live::init`).
    pub(crate) control: OwnedFd,
    /// Receives the seccomp listener init creates (SCM_RIGHTS; see `crate::unotify`).
    pub(crate) notify: OwnedFd,
}

/// The child's ends: closed in the parent once the child holds them.
#[derive(Debug)]
pub(crate) struct ChildEnds {
    _fds: Vec<OwnedFd>,
}

/// What the spec was built from, for turning error records back into messages.
#[derive(Debug, Default)]
pub(crate) struct Labels {
    /// Per op: (host source or description, sandbox path).
    pub(crate) ops: Vec<(String, String)>,
    pub(crate) sources: Vec<String>,
    pub(crate) rules: Vec<String>,
}

fn cstr(s: impl AsRef<[u8]>, what: &str) -> Result<CString, SpawnError> {
    CString::new(s.as_ref())
        .map_err(|_| SpawnError::Unsupported(format!("{what} contains a NUL byte")))
}

fn components(p: &Path) -> Result<Components, SpawnError> {
    p.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(cstr(n.as_bytes(), "a path")),
            _ => None,
        })
        .collect()
}

fn mount_err(source_path: &Path, target: &Path, source: std::io::Error) -> SpawnError {
    SpawnError::Mount {
        source_path: source_path.display().to_string(),
        target: target.display().to_string(),
        source,
    }
}

fn setup_err(step: &str, source: std::io::Error) -> SpawnError {
    SpawnError::Setup {
        step: step.to_string(),
        source,
    }
}

/// A close-on-exec pipe whose ends are both >= 3 (so dup2 onto 0..2 never clobbers).
fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(setup_err(
            "creating a pipe",
            std::io::Error::last_os_error(),
        ));
    }
    lift_pair(fds)
}

/// A close-on-exec AF_UNIX seqpacket pair, both ends >= 3.
fn socket_pair() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(setup_err(
            "creating a socket pair",
            std::io::Error::last_os_error(),
        ));
    }
    lift_pair(fds)
}

/// Owns two fresh descriptors, moved to numbers >= 3 when they are below.
fn lift_pair(fds: [RawFd; 2]) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let lift = |fd: RawFd| -> Result<OwnedFd, SpawnError> {
        // SAFETY: pipe2 just returned `fd`; we own it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        if fd >= 3 {
            return Ok(owned);
        }
        // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd we own, or -1.
        let high = unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
        if high < 0 {
            return Err(setup_err(
                "creating a pipe",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: fcntl returned a fresh descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(high) })
    };
    Ok((lift(fds[0])?, lift(fds[1])?))
}

/// A close-on-exec `AF_UNIX` datagram-boundary pair for handing a descriptor over.
fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(setup_err(
            "creating the egress link's socket",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: socketpair just returned this descriptor; we own it.
    let a = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above, the other end.
    let b = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    Ok((a, b))
}

/// The [start, end) addresses of this process's argv and environment strings, from
/// /proc/self/stat (fields 48 to 51); zeros when unknown.
fn caller_string_areas() -> [(usize, usize); 2] {
    // The areas are fixed for the life of the process: read them once.
    static AREAS: std::sync::OnceLock<[(usize, usize); 2]> = std::sync::OnceLock::new();
    *AREAS.get_or_init(read_caller_string_areas)
}

fn read_caller_string_areas() -> [(usize, usize); 2] {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    // After ") " the fields start at number 3.
    let f: Vec<usize> = after_comm
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |n: usize| f.get(n - 3).copied().unwrap_or(0);
    [(at(48), at(49)), (at(50), at(51))]
}

fn last_cap() -> u32 {
    static LAST: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *LAST.get_or_init(read_last_cap)
}

fn read_last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// A host directory to build the new root on (in the sandbox's private mount namespace,
/// so nothing appears on the host): the first of a few usual ones that holds none of the
/// image's layers, which must stay reachable by path while the root is built.
fn staging_dir(image: Option<&sandbox_core::ImageRoot>) -> Result<PathBuf, SpawnError> {
    for cand in ["/tmp", "/mnt", "/run", "/var/tmp", "/opt", "/srv", "/media"] {
        let p = Path::new(cand);
        if !p.is_dir() {
            continue;
        }
        if image.is_some_and(|img| img.layers.iter().any(|l| l.starts_with(p))) {
            continue;
        }
        return Ok(p.to_path_buf());
    }
    Err(SpawnError::Unsupported(
        "no directory to build the sandbox's root on (tried /tmp, /mnt, /run, ...)".into(),
    ))
}

fn overlay_spec(
    img: &sandbox_core::ImageRoot,
    stage: &Path,
) -> Result<crate::child::OverlaySpec, SpawnError> {
    if img.layers.is_empty() {
        return Err(SpawnError::Unsupported(format!(
            "image {} has no layers",
            img.name
        )));
    }
    let mut lower = Vec::new();
    for l in img.layers.iter().rev() {
        let b = l.as_os_str().as_bytes();
        if b.contains(&b':') || b.contains(&b',') || b.contains(&b'\\') {
            return Err(SpawnError::Unsupported(format!(
                "layer path {} has a character overlayfs cannot take",
                l.display()
            )));
        }
        if !lower.is_empty() {
            lower.push(b':');
        }
        lower.extend_from_slice(b);
    }
    Ok(crate::child::OverlaySpec {
        lowerdir: cstr(lower, "the layer list")?,
        upperdir: cstr(
            stage.join("upper").as_os_str().as_bytes(),
            "the upper directory",
        )?,
        workdir: cstr(
            stage.join("work").as_os_str().as_bytes(),
            "the work directory",
        )?,
    })
}

/// Everything prepared for one run.
#[derive(Debug)]
pub(crate) struct Blueprint {
    pub(crate) spec: ChildSpec,
    pub(crate) parent: ParentEnds,
    pub(crate) child_ends: ChildEnds,
    pub(crate) ruleset: Option<OwnedFd>,
    pub(crate) labels: Labels,
    pub(crate) host_uid: u32,
    pub(crate) host_gid: u32,
    pub(crate) root_mode: bool,
    /// The uid and gid inside the sandbox.
    pub(crate) inside: (u32, u32),
    /// The workload's supplementary groups besides that gid (mapped to the same host
    /// gids).
    pub(crate) groups: Vec<u32>,
    /// The plan's mounts as they were set up.
    pub(crate) mounts: Vec<MountReport>,
}

/// Inputs besides the plan.
pub(crate) struct Inputs<'a> {
    pub(crate) masks: Masks,
    pub(crate) ruleset: Option<OwnedFd>,
    pub(crate) seccomp: &'a crate::seccomp::Filters,
    /// Without cgroup limits, these become rlimits.
    pub(crate) rlimit_memory: bool,
    pub(crate) rlimit_pids: bool,
    /// The CA bundle the sandbox trusts, when its egress broker intercepts.
    pub(crate) ca_bundle: Option<String>,
    /// The cgroup v1 `tasks` files init joins, and the v2 directory it is cloned into
    /// (see `ChildSpec::cgroup_tasks`, `ChildSpec::cgroup_v2`).
    pub(crate) cgroup_tasks: Vec<OwnedFd>,
    pub(crate) cgroup_v2: Option<OwnedFd>,
}

impl Blueprint {
    pub(crate) fn build(plan: &Plan, inputs: Inputs<'_>) -> Result<Blueprint, SpawnError> {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        // SAFETY: getegid has no preconditions.
        let egid = unsafe { libc::getegid() };
        let root_mode = euid == 0;
        let (host_uid, host_gid) = if root_mode {
            (ROOT_MODE_HOST_ID, ROOT_MODE_HOST_ID)
        } else {
            (euid, egid)
        };
        let groups = supplementary_groups(plan, root_mode)?;
        let masks = inputs.masks;
        let mut labels = Labels::default();
        let mut ops: Vec<Op> = Vec::new();
        let mut sources: Vec<Source> = Vec::new();
        let mut rules: Vec<Rule> = Vec::new();
        let mut trees: Vec<OwnedFd> = Vec::new();
        let mut mounts: Vec<MountReport> = Vec::new();
        let mut rule = |path: &str, access: u64, labels: &mut Labels| -> Result<(), SpawnError> {
            if access != 0 {
                rules.push(Rule {
                    path: cstr(path, "a mount target")?,
                    access,
                });
                labels.rules.push(path.to_string());
            }
            Ok(())
        };
        // A rule covers everything beneath its directory, mounts included: the full mask
        // of the sandbox's own writable filesystems (an image's layer, /tmp) would also
        // let the workload make FIFOs and sockets in a read-write host mount below them.
        let own_mask = |at: &str| {
            let host_rw_below = plan
                .mounts
                .iter()
                .any(|m| m.mode == MountMode::Rw && m.target.starts_with(at));
            if host_rw_below {
                masks.rw_mount
            } else {
                masks.rw_dir
            }
        };
        // An image root is the sandbox's own writable layer; a bare root is read-only; a
        // directory root is as writable as the plan says.
        let image = plan.root.as_ref();
        let dir_root = plan.root_dir.as_ref();
        rule(
            "/",
            match (image, dir_root) {
                (Some(_), _) => own_mask("/"),
                (None, Some(d)) if !d.readonly => own_mask("/"),
                (None, Some(_)) => masks.ro_dir,
                (None, None) => masks.root,
            },
            &mut labels,
        )?;
        // A directory root is the caller's (an engine's bundle): nothing is generated
        // in it, and it keeps its own /tmp.
        let own_root = dir_root.is_none();
        let mounted = |p: &str| plan.mounts.iter().any(|m| m.target == Path::new(p));
        // An in-memory filesystem the plan puts at /tmp replaces the sandbox's own.
        let own_tmp = own_root && !plan.tmpfs.iter().any(|t| t.target == Path::new("/tmp"));

        macro_rules! op {
            ($label:expr, $op:expr) => {{
                labels.ops.push($label);
                ops.push($op);
            }};
        }
        // Generated /etc files, before any mount can cover /etc. An image keeps its own
        // users and groups; its host name and hosts file are the sandbox's, and so is
        // its resolver with egress (the broker: an image's own names a server that
        // cannot be reached).
        for (path, contents) in plan.generated_files() {
            if !own_root {
                continue;
            }
            if image.is_some()
                && !matches!(path, "/etc/hostname" | "/etc/hosts" | "/etc/resolv.conf")
            {
                continue;
            }
            op!(
                ("generated".into(), path.into()),
                Op::File {
                    path: components(Path::new(path))?,
                    contents: contents.into_bytes(),
                    replace: image.is_some(),
                }
            );
        }
        if let Some(bundle) = &inputs.ca_bundle {
            op!(
                (
                    "generated".into(),
                    sandbox_core::network::CA_BUNDLE_PATH.into()
                ),
                Op::File {
                    path: components(Path::new(sandbox_core::network::CA_BUNDLE_PATH))?,
                    contents: bundle.clone().into_bytes(),
                    replace: image.is_some(),
                }
            );
        }
        let fs_opts = |pairs: &[(&str, String)]| -> Result<Vec<(CString, CString)>, SpawnError> {
            pairs
                .iter()
                .map(|(k, v)| Ok((cstr(k, "an option")?, cstr(v, "an option")?)))
                .collect()
        };
        op!(
            ("proc".into(), "/proc".into()),
            Op::Fs {
                path: components(Path::new("/proc"))?,
                fstype: c"proc".into(),
                options: vec![],
                attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            }
        );
        op!(
            ("tmpfs".into(), "/dev".into()),
            Op::Fs {
                path: components(Path::new("/dev"))?,
                fstype: c"tmpfs".into(),
                options: fs_opts(&[("size", "64k".into()), ("mode", "0755".into())])?,
                attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            }
        );
        for d in DEVICES {
            let host = format!("/dev/{d}");
            let meta = std::fs::metadata(&host)
                .map_err(|e| setup_err(&format!("looking at {host}"), e))?;
            sources.push(Source::Path {
                path: cstr(&host, "a device")?,
                dev: meta.dev(),
                ino: meta.ino(),
            });
            labels.sources.push(host.clone());
            op!(
                (host.clone(), host.clone()),
                Op::Bind {
                    path: components(Path::new(&host))?,
                    slot: sources.len() - 1,
                    is_dir: false,
                    attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
                    made: false,
                }
            );
            rule(&host, masks.device, &mut labels)?;
        }
        // /proc's host facts (the entries this kernel has), then /proc/sys read-only.
        let null_slot = sources.len() - DEVICES.len();
        for (names, is_dir) in [
            (&PROC_MASKED_FILES[..], false),
            (&PROC_MASKED_DIRS[..], true),
        ] {
            for name in names {
                let at = Path::new("/proc").join(name);
                if std::fs::symlink_metadata(&at).is_err() {
                    continue;
                }
                op!(
                    ("masked".into(), at.display().to_string()),
                    Op::Mask {
                        path: components(&at)?,
                        is_dir,
                        slot: null_slot,
                    }
                );
            }
        }
        op!(
            ("read-only".into(), "/proc/sys".into()),
            Op::Rebind {
                path: components(Path::new("/proc/sys"))?,
                // Not nodev: the boot id masked inside is /dev/null.
                attrs: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
            }
        );
        for (name, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("shm", "/tmp"),
        ] {
            // POSIX shared memory lives in /tmp, unless the plan has an in-memory
            // filesystem of its own at /dev/shm (Docker's, with its size).
            let at = format!("/dev/{name}");
            if mounted(&at) || plan.tmpfs.iter().any(|t| t.target == Path::new(&at)) {
                continue;
            }
            op!(
                ("symlink".into(), format!("/dev/{name}")),
                Op::Symlink {
                    path: components(&Path::new("/dev").join(name))?,
                    target: cstr(target, "a link")?
                }
            );
        }
        // The IPC namespace's POSIX message queues, where mq_overview(7) puts them: a
        // file there is what mq_open opens, and Landlock lets a workload open only
        // what a rule covers (the queues' filesystem has no other path). Only in the
        // sandbox's own namespace: a pod's, joined by path, belongs to a user namespace
        // the sandbox has no privilege in (its queues stay out of reach, as before).
        if !mounted("/dev/mqueue") && plan.ipcns.is_none() {
            op!(
                ("mqueue".into(), "/dev/mqueue".into()),
                Op::Fs {
                    path: components(Path::new("/dev/mqueue"))?,
                    fstype: c"mqueue".into(),
                    options: vec![],
                    attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                }
            );
            rule("/dev/mqueue", masks.file_only, &mut labels)?;
        }
        let tmp_size = plan
            .limits
            .tmp_size
            .or(plan.limits.memory)
            .map_or(256 << 20, |s| s.0);
        if own_tmp {
            op!(
                ("tmpfs".into(), "/tmp".into()),
                Op::Fs {
                    path: components(Path::new("/tmp"))?,
                    fstype: c"tmpfs".into(),
                    options: fs_opts(&[("size", tmp_size.to_string()), ("mode", "1777".into())])?,
                    attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                }
            );
        }
        // The directory root's source: opened by the child before anything is mounted.
        let root_slot = match dir_root {
            None => None,
            Some(d) => {
                // Resolved like every mount source: no symlink followed in any
                // component, no pseudo filesystem.
                let src = HostMounts::read()
                    .and_then(|h| h.resolve(&d.path))
                    .map_err(|e| mount_err(&d.path, Path::new("/"), e.into_io()))?;
                if !src.is_dir() {
                    return Err(mount_err(
                        &d.path,
                        Path::new("/"),
                        std::io::Error::from_raw_os_error(libc::ENOTDIR),
                    ));
                }
                let (dev, ino) = src.id();
                sources.push(Source::Path {
                    path: cstr(src.path().as_os_str().as_bytes(), "the root directory")?,
                    dev,
                    ino,
                });
                labels.sources.push(src.path().display().to_string());
                Some((sources.len() - 1, d.readonly))
            }
        };
        // The tmpfs's rule, unless a mount covers /tmp (the rule would then land on the
        // mounted host directory: a rule names what its path reaches after pivot_root)
        // or the root is a directory (its /tmp is the root's, under the root's rule).
        if own_tmp && !plan.mounts.iter().any(|m| m.target == Path::new("/tmp")) {
            rule("/tmp", own_mask("/tmp"), &mut labels)?;
        }
        let netns = open_ns(&plan.netns, "network", None)?;
        let ipcns = open_ns(&plan.ipcns, "IPC", Some("ipc"))?;
        let utsns = open_ns(&plan.utsns, "UTS", Some("uts"))?;

        // The plan's mounts, parents before children (the order they are listed in does
        // not matter: a child listed first would otherwise be hidden by its parent).
        // In-memory filesystems (`tmpfs` in the plan) are ordered with them.
        let mut order: Vec<(usize, bool)> = (0..plan.mounts.len())
            .map(|i| (i, false))
            .chain((0..plan.tmpfs.len()).map(|i| (i, true)))
            .collect();
        order.sort_by_key(|&(i, tmpfs)| match tmpfs {
            false => plan.mounts[i].target.components().count(),
            true => plan.tmpfs[i].target.components().count(),
        });
        let host_mounts = HostMounts::read()
            .map_err(|e| setup_err("reading the host's mount table", e.into_io()))?;
        let mut idmaps = Idmaps::with_groups((host_uid, host_gid), &groups);
        for (i, tmpfs) in order {
            if tmpfs {
                let t = &plan.tmpfs[i];
                let target_s = t.target.display().to_string();
                op!(
                    ("tmpfs".into(), target_s.clone()),
                    Op::Fs {
                        path: components(&t.target)?,
                        fstype: c"tmpfs".into(),
                        options: fs_opts(&[
                            ("size", t.size.to_string()),
                            ("mode", format!("{:o}", t.mode)),
                            ("uid", plan.user.0.to_string()),
                            ("gid", plan.user.1.to_string()),
                        ])?,
                        attrs: MOUNT_ATTR_NOSUID
                            | MOUNT_ATTR_NODEV
                            | if t.noexec { MOUNT_ATTR_NOEXEC } else { 0 },
                    }
                );
                rule(&target_s, own_mask(&target_s), &mut labels)?;
                mounts.push(MountReport {
                    source: "tmpfs".into(),
                    target: target_s,
                    mode: MountMode::Rw,
                    kind: "tmpfs".into(),
                    access: MountAccess::None,
                    host_ids: None,
                    note: Some(format!(
                        "in-memory, at most {} bytes, charged to the sandbox's memory{}",
                        t.size,
                        if t.noexec { "; noexec" } else { "" }
                    )),
                });
                continue;
            }
            let m = &plan.mounts[i];
            let target_s = m.target.display().to_string();
            let err = |source: std::io::Error| SpawnError::Mount {
                source_path: m.source.display().to_string(),
                target: target_s.clone(),
                source,
            };
            let src = match host_mounts.resolve(&m.source) {
                Ok(src) => src,
                Err(e) if e.is_not_found() && m.optional => continue,
                Err(e) => return Err(err(e.into_io())),
            };
            let source_s = src.path().display().to_string();
            let is_dir = match src.kind() {
                SourceKind::Symlink(text) => {
                    // A host symlink (/bin -> usr/bin) stays a symlink, resolved in the sandbox.
                    op!(
                        (source_s.clone(), target_s.clone()),
                        Op::Symlink {
                            path: components(&m.target)?,
                            target: cstr(text.as_os_str().as_bytes(), "a link")?
                        }
                    );
                    mounts.push(MountReport {
                        source: source_s,
                        target: target_s,
                        mode: m.mode,
                        kind: "symlink".into(),
                        access: MountAccess::None,
                        host_ids: None,
                        note: None,
                    });
                    continue;
                }
                SourceKind::Directory => true,
                SourceKind::File => false,
            };
            if sources.len() >= MAX_SOURCES {
                return Err(SpawnError::Unsupported(format!(
                    "more than {MAX_SOURCES} mounts"
                )));
            }
            let ro = m.mode == MountMode::Ro;
            let attrs = MOUNT_ATTR_NOSUID
                | MOUNT_ATTR_NODEV
                | if ro { MOUNT_ATTR_RDONLY } else { 0 }
                | if m.noexec { MOUNT_ATTR_NOEXEC } else { 0 };
            let (made, access, host_ids, note) = if root_mode {
                // Made here from the checked descriptor, idmapped to its owner.
                let b = idmaps
                    .tree(&src, src.fd(), attrs, m.system, !ro)
                    .map_err(err)?;
                sources.push(Source::Tree {
                    fd: b.tree.as_raw_fd(),
                });
                trees.push(b.tree);
                (true, b.access, b.host_ids, b.note)
            } else {
                let (dev, ino) = src.id();
                sources.push(Source::Path {
                    path: cstr(src.path().as_os_str().as_bytes(), "a mount source")?,
                    dev,
                    ino,
                });
                (false, MountAccess::Caller, (host_uid, host_gid), None)
            };
            labels.sources.push(source_s.clone());
            op!(
                (source_s.clone(), target_s.clone()),
                Op::Bind {
                    path: components(&m.target)?,
                    slot: sources.len() - 1,
                    is_dir,
                    attrs,
                    made,
                }
            );
            let dir_mask = if ro { masks.ro_dir } else { masks.rw_mount };
            rule(
                &target_s,
                if is_dir {
                    dir_mask
                } else {
                    dir_mask & masks.file_only
                },
                &mut labels,
            )?;
            mounts.push(MountReport {
                source: source_s,
                target: target_s,
                mode: m.mode,
                kind: if is_dir { "directory" } else { "file" }.into(),
                access,
                host_ids: Some(host_ids),
                note: match (note, m.noexec) {
                    (note, false) => note,
                    (None, true) => Some("noexec".into()),
                    (Some(n), true) => Some(format!("{n}; noexec")),
                },
            });
        }

        // The working directory exists even when nothing is mounted there (a directory
        // of the read-only root); inside a mount it must exist in the mounted tree.
        let cwd = Path::new(&plan.cwd);
        let covered = ["/tmp", "/proc", "/dev"]
            .iter()
            .any(|d| own_root && cwd.starts_with(d))
            || plan.mounts.iter().any(|m| cwd.starts_with(&m.target))
            || plan.tmpfs.iter().any(|t| cwd.starts_with(&t.target));
        if !covered && cwd != Path::new("/") {
            op!(
                ("working directory".into(), plan.cwd.clone()),
                Op::Dir {
                    path: components(cwd)?
                }
            );
        }

        let stage = staging_dir(image)?;

        // Pipes, and init's control socket.
        let (sync_r, sync_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (control, control_init) = crate::live::control_pair()?;
        let (notify_parent, notify_child) = socket_pair()?;
        let (tun_r, tun_w) = match plan.network {
            Network::Egress if plan.netns.is_some() => {
                return Err(SpawnError::Unsupported(
                    "network `egress` in a joined network namespace: the namespace's owner \
                     (the engine) makes its network"
                        .into(),
                ))
            }
            Network::Egress => {
                let (r, w) = seqpacket_pair()?;
                (Some(r), Some(w))
            }
            _ => (None, None),
        };
        let ruleset_raw = inputs.ruleset.as_ref().map(|f| f.as_raw_fd());
        let mut keep: Vec<RawFd> = [&sync_r, &err_w, &control_init, &notify_child]
            .iter()
            .map(|f| f.as_raw_fd())
            .chain(tun_w.as_ref().map(|f| f.as_raw_fd()))
            .chain(ruleset_raw)
            .chain(trees.iter().map(|t| t.as_raw_fd()))
            .collect();
        keep.sort_unstable();

        // Limits that are per process.
        let mut rlimits = vec![(libc::RLIMIT_CORE as libc::c_int, 1, 1)];
        if let Some(n) = plan.limits.open_files {
            rlimits.push((libc::RLIMIT_NOFILE as libc::c_int, n, n));
        }
        if let Some(s) = plan.limits.file_size {
            rlimits.push((libc::RLIMIT_FSIZE as libc::c_int, s.0, s.0));
        }
        if let Some(d) = plan.limits.cpu_time {
            let secs = d.as_secs_f64().ceil() as u64;
            rlimits.push((libc::RLIMIT_CPU as libc::c_int, secs, secs + 1));
        }
        if inputs.rlimit_memory {
            if let Some(m) = plan.limits.memory {
                rlimits.push((libc::RLIMIT_AS as libc::c_int, m.0, m.0));
            }
        }
        if inputs.rlimit_pids {
            if let Some(p) = plan.limits.pids {
                rlimits.push((libc::RLIMIT_NPROC as libc::c_int, p, p));
            }
        }

        let spec = ChildSpec {
            sync_r: sync_r.as_raw_fd(),
            err_w: err_w.as_raw_fd(),
            control: control_init.as_raw_fd(),
            ruleset: ruleset_raw,
            cgroup_tasks: inputs.cgroup_tasks.iter().map(|f| f.as_raw_fd()).collect(),
            cgroup_v2: inputs.cgroup_v2.as_ref().map(|f| f.as_raw_fd()),
            keep,
            clear_groups: root_mode,
            groups: groups.clone(),
            root_dir: root_slot,
            netns: netns.as_ref().map(|f| f.as_raw_fd()),
            ipcns: ipcns.as_ref().map(|f| f.as_raw_fd()),
            utsns: utsns.as_ref().map(|f| f.as_raw_fd()),
            overlay: match image {
                Some(img) => Some(overlay_spec(img, &stage)?),
                None => None,
            },
            stage: cstr(stage.as_os_str().as_bytes(), "the staging directory")?,
            // A bare root only holds mount points and a few files; an image root's
            // tmpfs holds the writable layer, capped like /tmp.
            root_options: fs_opts(&[
                (
                    "size",
                    if image.is_some() {
                        tmp_size.to_string()
                    } else {
                        "4m".into()
                    },
                ),
                ("mode", "0755".into()),
            ])?,
            sources,
            ops,
            hostname: plan.hostname.as_bytes().to_vec(),
            // A joined namespace is the engine's: its loopback is its business.
            loopback: plan.network != Network::None && plan.netns.is_none(),
            tun: tun_w.as_ref().map(|w| {
                let (addr, peer, prefix) = sandbox_egress::link_addresses();
                crate::tun::TunSpec {
                    sock: w.as_raw_fd(),
                    addr,
                    peer,
                    prefix,
                    mtu: sandbox_egress::MTU as u32,
                }
            }),
            rules,
            uid: plan.user.0,
            gid: plan.user.1,
            rlimits,
            seccomp: vec![
                crate::seccomp::fprog(inputs.seccomp.allowlist),
                crate::seccomp::fprog(
                    crate::seccomp::ids::filter(plan.user.0, plan.user.1).map_err(|e| {
                        SpawnError::Unsupported(format!(
                            "compiling the seccomp filter for the sandbox's identity: {e}"
                        ))
                    })?,
                ),
                crate::seccomp::fprog(inputs.seccomp.enosys),
            ],
            notify: crate::seccomp::fprog(inputs.seccomp.user_notif),
            notify_sock: notify_child.as_raw_fd(),
            last_cap: last_cap(),
            scrub: caller_string_areas(),
        };
        let child_ends = ChildEnds {
            _fds: [sync_r, err_w, control_init, notify_child]
                .into_iter()
                .chain(tun_w)
                .chain(trees)
                .chain(netns)
                .chain(ipcns)
                .chain(utsns)
                .chain(inputs.cgroup_tasks)
                .chain(inputs.cgroup_v2)
                .collect(),
        };
        Ok(Blueprint {
            spec,
            parent: ParentEnds {
                tun_r,
                sync_w,
                err_r,
                control,
                notify: notify_parent,
            },
            child_ends,
            ruleset: inputs.ruleset,
            labels,
            host_uid,
            host_gid,
            root_mode,
            inside: plan.user,
            groups,
            mounts,
        })
    }

    /// The id maps and setgroups policy the parent writes for the child.
    /// In the order they must be written (gid before uid, as tools do).
    pub(crate) fn id_maps(&self) -> [(&'static str, String); 2] {
        // Each supplementary group is the same gid on the host (see
        // `supplementary_groups`: a root caller's, never a group the host names).
        let extra: String = self.groups.iter().map(|g| format!("{g} {g} 1\n")).collect();
        [
            (
                "gid_map",
                format!("{} {} 1\n{extra}", self.inside.1, self.host_gid),
            ),
            (
                "uid_map",
                format!("{} {} 1\n", self.inside.0, self.host_uid),
            ),
        ]
    }
}

/// The most supplementary groups a sandbox may be given (each a line of its gid_map,
/// which takes 340).
const MAX_GROUPS: usize = 64;

/// The plan's supplementary groups besides its gid, checked: each becomes a line of the
/// sandbox's gid_map, the same gid on the host, and init sets them (setgroups) before
/// it becomes the workload's user. That needs a root caller (a rootless one may map
/// only its own gid, and must deny setgroups to map even that), and it gives the
/// workload that host gid's access (as runc gives its containers): never a group the
/// host names (`disk`, `shadow`, `docker`, its `nogroup`, the sandbox's own host gid),
/// whose rights an escape would keep.
fn supplementary_groups(plan: &Plan, root_mode: bool) -> Result<Vec<u32>, SpawnError> {
    let groups = plan.extra_groups();
    if groups.is_empty() {
        return Ok(groups);
    }
    let refuse = |g: u32, why: String| {
        Err(SpawnError::Unsupported(format!(
            "supplementary group {g} (an OCI bundle's process.user.additionalGids) cannot be mapped into the sandbox's user namespace: {why}"
        )))
    };
    if !root_mode {
        return refuse(
            groups[0],
            "a rootless sandbox's user namespace maps only the caller's own group (and must deny setgroups to map it); run as root for supplementary groups, or drop them".into(),
        );
    }
    if groups.len() > MAX_GROUPS {
        return refuse(
            groups[MAX_GROUPS],
            format!("at most {MAX_GROUPS} supplementary groups are given"),
        );
    }
    for &g in &groups {
        if g == ROOT_MODE_HOST_ID {
            return refuse(
                g,
                format!("{g} is the host gid the sandbox's own group maps to"),
            );
        }
        match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(g)) {
            Ok(None) => {}
            Ok(Some(named)) => {
                return refuse(
                    g,
                    format!(
                        "gid {g} is the host's group `{}`; a supplementary group is given as the same host gid, and hsb does not hand a workload the rights of a group the host names (use a gid the host has no group for)",
                        named.name
                    ),
                )
            }
            Err(e) => {
                return refuse(
                    g,
                    format!("looking up whether the host has a group {g} failed: {e}"),
                )
            }
        }
    }
    Ok(groups)
}

/// Opens a namespace to join by path. With `own` (its /proc name), the host's own
/// namespace of that type (this process's, or init's) is refused: joining it would
/// share the host's SysV IPC or host name with the workload, which no pod needs.
fn open_ns(
    path: &Option<std::path::PathBuf>,
    what: &str,
    own: Option<&str>,
) -> Result<Option<OwnedFd>, SpawnError> {
    let Some(p) = path else { return Ok(None) };
    let f = std::fs::File::open(p)
        .map_err(|e| setup_err(&format!("opening the {what} namespace {}", p.display()), e))?;
    if let Some(name) = own {
        let id = |m: std::fs::Metadata| (m.dev(), m.ino());
        let joined = f.metadata().map(id).map_err(|e| {
            setup_err(
                &format!("looking at the {what} namespace {}", p.display()),
                e,
            )
        })?;
        for host in [
            format!("/proc/self/ns/{name}"),
            format!("/proc/1/ns/{name}"),
        ] {
            if std::fs::metadata(&host).map(id).is_ok_and(|h| h == joined) {
                return Err(SpawnError::Unsupported(format!(
                    "{} is the host's own {what} namespace ({host}); a sandbox joins only a namespace made for it (a pod's)",
                    p.display()
                )));
            }
        }
    }
    Ok(Some(OwnedFd::from(f)))
}
