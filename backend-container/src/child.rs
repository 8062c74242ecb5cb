//! The sandbox's side of the fork: everything between `clone` and `execve`.
//!
//! The clone's child is a copy of a possibly multithreaded caller, so nothing here may
//! allocate, take a lock or call into glibc: every input is prepared by the parent in a
//! [`ChildSpec`], and every call goes through [`crate::sys`]. The child becomes the
//! sandbox's init (PID 1 of its namespace): it builds the root filesystem, confines
//! itself, and serves the host's execs (`crate::live::init`), reaping every process.

use std::ffi::CString;
use std::os::fd::RawFd;

use libc::c_int;

use crate::sys::{self, Errno};

/// A path inside the sandbox, as components relative to its root.
pub(crate) type Components = Vec<CString>;

/// One step of building the sandbox's root filesystem.
#[derive(Debug)]
pub(crate) enum Op {
    /// A directory, with its parents.
    Dir { path: Components },
    /// A regular file with these contents (mode 0644); `replace`: over an existing one
    /// (an image's /etc/hostname), else it must not exist.
    File {
        path: Components,
        contents: Vec<u8>,
        replace: bool,
    },
    /// A symbolic link.
    Symlink { path: Components, target: CString },
    /// A fresh filesystem (`tmpfs`, `proc`) with string options.
    Fs {
        path: Components,
        fstype: CString,
        options: Vec<(CString, CString)>,
        attrs: u64,
    },
    /// A host fact in /proc hidden (skipped when the entry does not exist): a file by a
    /// bind of `ChildSpec::sources[slot]` (/dev/null), a directory by an empty
    /// read-only tmpfs.
    Mask {
        path: Components,
        is_dir: bool,
        slot: usize,
    },
    /// An existing directory bound onto itself (with what is mounted below it) with
    /// `attrs` (read-only /proc/sys).
    Rebind { path: Components, attrs: u64 },
    /// A bind mount of `ChildSpec::sources[slot]`; `made`: a [`Source::Tree`].
    Bind {
        path: Components,
        slot: usize,
        is_dir: bool,
        attrs: u64,
        made: bool,
    },
}

/// What a bind mount shows.
#[derive(Debug)]
pub(crate) enum Source {
    /// A host path, opened by init before anything is mounted (a rootless caller cannot
    /// clone mounts of the host's namespace): by path, without following any symlink,
    /// and checked to be the inode the parent resolved and checked.
    Path { path: CString, dev: u64, ino: u64 },
    /// A detached mount tree the (root) parent made from the checked source descriptor,
    /// its attributes (and idmap) already set: init only attaches it.
    Tree { fd: RawFd },
}

/// At most this many bind sources (the policy allows 256 mounts, plus /dev's nodes).
pub(crate) const MAX_SOURCES: usize = 300;

/// An image root: overlayfs over the unpacked layers, its upper layer in the tmpfs.
#[derive(Debug)]
pub(crate) struct OverlaySpec {
    /// `lower3:lower2:lower1` (topmost first), host paths of the layer store.
    pub(crate) lowerdir: CString,
    /// `<stage>/upper` and `<stage>/work`, in the tmpfs attached at the stage.
    pub(crate) upperdir: CString,
    pub(crate) workdir: CString,
}

/// A Landlock rule to add after `pivot_root`.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) path: CString,
    pub(crate) access: u64,
}

/// The devices of the filesystems init creates for the sandbox (its tmpfs root, /tmp,
/// /dev, an image's overlay and the tmpfs under it): the only places whose UNIX sockets
/// the supervisor lets the workload connect to. Recorded without allocating.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OwnDevs {
    devs: [u64; OwnDevs::MAX],
    len: usize,
}

impl OwnDevs {
    pub(crate) const MAX: usize = 8;
    /// The wire form: a count, then the devices (native byte order).
    pub(crate) const SIZE: usize = 8 * (OwnDevs::MAX + 1);

    fn add(&mut self, dev: u64) {
        if self.len < Self::MAX && !self.devs[..self.len].contains(&dev) {
            self.devs[self.len] = dev;
            self.len += 1;
        }
    }

    fn record(&mut self, fd: RawFd) -> Result<(), Errno> {
        let (dev, _, _) = sys::fstat_id(fd)?;
        self.add(dev);
        Ok(())
    }

    /// The device overlayfs reports for files of its upper layer: a pseudo device of its
    /// own (directories report the overlay's), learnt from a file made there and removed.
    fn record_overlay_files(&mut self, root: RawFd) -> Result<(), Errno> {
        let name = c".hsb-upper-device";
        let flags =
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let fd = sys::openat(root, name, flags, 0o600)?;
        let r = self.record(fd);
        sys::close(fd);
        sys::unlinkat(root, name)?;
        r
    }

    fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..8].copy_from_slice(&(self.len as u64).to_ne_bytes());
        for (i, d) in self.devs.iter().enumerate() {
            b[8 * (i + 1)..8 * (i + 2)].copy_from_slice(&d.to_ne_bytes());
        }
        b
    }

    /// The devices sent by `to_bytes` (none when the bytes are malformed).
    pub(crate) fn from_bytes(b: &[u8]) -> Vec<u64> {
        let word = |i: usize| -> Option<u64> {
            b.get(8 * i..8 * (i + 1))
                .map(|w| u64::from_ne_bytes(w.try_into().unwrap_or_default()))
        };
        let len = word(0).unwrap_or(0).min(Self::MAX as u64) as usize;
        (1..=len).filter_map(word).collect()
    }
}

/// Where a failure happened, reported to the parent in an [`ErrorRecord`].
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Setup = 1,
    Op = 2,
    Pivot = 3,
    Landlock = 4,
    Identity = 5,
    Fork = 6,
    Stdio = 7,
    Cwd = 8,
    Rlimit = 9,
    Capabilities = 10,
    Seccomp = 11,
    Exec = 12,
    Network = 13,
    Source = 14,
    Interpreter = 15,
    Overlay = 16,
    Supervisor = 17,
    Cgroup = 18,
}

impl Stage {
    pub(crate) fn from_u32(v: u32) -> Option<Stage> {
        use Stage::*;
        Some(match v {
            1 => Setup,
            2 => Op,
            3 => Pivot,
            4 => Landlock,
            5 => Identity,
            6 => Fork,
            7 => Stdio,
            8 => Cwd,
            9 => Rlimit,
            10 => Capabilities,
            11 => Seccomp,
            12 => Exec,
            13 => Network,
            14 => Source,
            15 => Interpreter,
            16 => Overlay,
            17 => Supervisor,
            18 => Cgroup,
            _ => return None,
        })
    }
}

/// What the child writes on the error pipe when something fails: stage, errno, and the
/// index of the op (or exec candidate) involved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorRecord {
    pub(crate) stage: u32,
    pub(crate) errno: i32,
    pub(crate) index: u32,
}

impl ErrorRecord {
    pub(crate) const SIZE: usize = 12;

    pub(crate) fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.stage.to_le_bytes());
        b[4..8].copy_from_slice(&self.errno.to_le_bytes());
        b[8..12].copy_from_slice(&self.index.to_le_bytes());
        b
    }

    pub(crate) fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        ErrorRecord {
            stage: u32::from_le_bytes(word(0)),
            errno: i32::from_le_bytes(word(4)),
            index: u32::from_le_bytes(word(8)),
        }
    }
}

/// Everything the child needs, prepared by the parent.
#[derive(Debug)]
pub(crate) struct ChildSpec {
    pub(crate) sync_r: RawFd,
    pub(crate) err_w: RawFd,
    /// Init's end of the control socket: it serves the host's requests on it.
    pub(crate) control: RawFd,
    pub(crate) ruleset: Option<RawFd>,
    /// The `tasks` files of the sandbox's cgroup v1 leaves, opened by the parent: init
    /// writes `0` to each to move itself in (see `Cgroup::v1_join_files`). Not in
    /// `keep`: closed once used.
    pub(crate) cgroup_tasks: Vec<RawFd>,
    /// The sandbox's cgroup v2 directory, open: the spawner clones init into it
    /// (`CLONE_INTO_CGROUP`). The child never sees it used (not in `keep`).
    pub(crate) cgroup_v2: Option<RawFd>,
    /// Every fd above, sorted: init closes all others.
    pub(crate) keep: Vec<RawFd>,
    /// Running as host root: set the supplementary groups to `groups` (none unless
    /// asked for), instead of the caller's (setgroups is allowed).
    pub(crate) clear_groups: bool,
    /// The workload's supplementary groups (mapped in the sandbox's gid_map).
    pub(crate) groups: Vec<u32>,
    /// A host directory to attach the new root on while it is built (private mount ns).
    pub(crate) stage: CString,
    pub(crate) root_options: Vec<(CString, CString)>,
    /// An image root instead of a bare tmpfs.
    pub(crate) overlay: Option<OverlaySpec>,
    /// A host directory as the root (its slot in `sources`, and whether read-only)
    /// instead of a bare tmpfs.
    pub(crate) root_dir: Option<(usize, bool)>,
    /// A network namespace the spawner thread enters before cloning (instead of a new
    /// one); the child never sees this fd (it is not in `keep`).
    pub(crate) netns: Option<RawFd>,
    /// An IPC namespace joined the same way (a pod's).
    pub(crate) ipcns: Option<RawFd>,
    /// A UTS namespace joined the same way (a pod's); `hostname` is then empty.
    pub(crate) utsns: Option<RawFd>,
    pub(crate) sources: Vec<Source>,
    pub(crate) ops: Vec<Op>,
    pub(crate) hostname: Vec<u8>,
    pub(crate) loopback: bool,
    /// The egress link to make (network `egress`).
    pub(crate) tun: Option<crate::tun::TunSpec>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) rlimits: Vec<(c_int, u64, u64)>,
    pub(crate) seccomp: Vec<libc::sock_fprog>,
    /// The user-notification filter, installed before `seccomp`; its listener is sent
    /// over `notify_sock` to the parent's supervisor (see `crate::unotify`).
    pub(crate) notify: libc::sock_fprog,
    pub(crate) notify_sock: RawFd,
    pub(crate) last_cap: u32,
    /// The caller's argv and environment strings ([start, end) addresses), which init
    /// inherits as a copy of the caller and scrubs: /proc/1/cmdline is world-readable.
    pub(crate) scrub: [(usize, usize); 2],
}

// SAFETY: the raw pointers in `seccomp` and `notify` point into 'static compiled filters
// and are only read.
unsafe impl Send for ChildSpec {}
// SAFETY: as above; nothing mutates through the pointers.
unsafe impl Sync for ChildSpec {}

const DIR_FLAGS: c_int = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
const EMPTY: &std::ffi::CStr = c"";

pub(crate) fn fail(spec: &ChildSpec, stage: Stage, errno: Errno, index: u32) -> ! {
    fail_to(spec.err_w, stage, errno, index)
}

/// Writes an [`ErrorRecord`] on `err_w` (a pipe, or a live exec's channel) and exits.
pub(crate) fn fail_to(err_w: RawFd, stage: Stage, errno: Errno, index: u32) -> ! {
    let rec = ErrorRecord {
        stage: stage as u32,
        errno,
        index,
    };
    let _ = sys::write_all(err_w, &rec.to_bytes());
    sys::exit(125)
}

/// Opens (creating when asked) the directory `comps` below `root`, never following a
/// symlink: every component is created or opened with O_NOFOLLOW.
fn open_dir(root: RawFd, comps: &[CString], create: bool) -> Result<RawFd, Errno> {
    let mut cur = sys::openat(root, c".", DIR_FLAGS, 0)?;
    for c in comps {
        if create {
            match sys::mkdirat(cur, c, 0o755) {
                Ok(_) | Err(libc::EEXIST) => {}
                Err(e) => {
                    sys::close(cur);
                    return Err(e);
                }
            }
        }
        let next = sys::openat(cur, c, DIR_FLAGS, 0);
        sys::close(cur);
        cur = next?;
    }
    Ok(cur)
}

/// Opens the parent directory of `comps` (created), returning it and the last name.
fn open_parent(root: RawFd, comps: &[CString]) -> Result<(RawFd, &CString), Errno> {
    let (last, parents) = comps.split_last().ok_or(libc::EINVAL)?;
    Ok((open_dir(root, parents, true)?, last))
}

/// An O_PATH fd for a mount point file at `comps`, created empty when missing.
fn open_file_target(root: RawFd, comps: &[CString]) -> Result<RawFd, Errno> {
    let (dir, name) = open_parent(root, comps)?;
    let created = sys::openat(
        dir,
        name,
        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
        0o644,
    );
    match created {
        Ok(fd) => sys::close(fd),
        Err(libc::EEXIST) => {}
        Err(e) => {
            sys::close(dir);
            return Err(e);
        }
    }
    let fd = sys::openat(
        dir,
        name,
        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    );
    sys::close(dir);
    fd
}

/// An O_PATH fd for the existing file at `comps` (never following a symlink).
fn open_existing(root: RawFd, comps: &[CString]) -> Result<RawFd, Errno> {
    let (last, parents) = comps.split_last().ok_or(libc::EINVAL)?;
    let dir = open_dir(root, parents, false)?;
    let fd = sys::openat(
        dir,
        last,
        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    );
    sys::close(dir);
    fd
}

/// A recursive bind of `src` (an O_PATH fd) with `attrs`, attached on `target`.
fn bind_at(src: RawFd, attrs: u64, target: RawFd) -> Result<(), Errno> {
    let tree = sys::open_tree(
        src,
        EMPTY,
        sys::OPEN_TREE_CLONE
            | sys::OPEN_TREE_CLOEXEC
            | sys::AT_RECURSIVE
            | libc::AT_EMPTY_PATH as u32,
    )?;
    let attr = sys::MountAttr {
        attr_set: attrs,
        ..Default::default()
    };
    let r = sys::mount_setattr(
        tree,
        EMPTY,
        libc::AT_EMPTY_PATH as u32 | sys::AT_RECURSIVE,
        &attr,
    )
    .and_then(|_| attach(tree, target));
    sys::close(tree);
    r
}

fn attach(tree: RawFd, target: RawFd) -> Result<(), Errno> {
    sys::move_mount(
        tree,
        EMPTY,
        target,
        EMPTY,
        sys::MOVE_MOUNT_F_EMPTY_PATH | sys::MOVE_MOUNT_T_EMPTY_PATH,
    )?;
    Ok(())
}

/// A detached filesystem of `fstype` with `options`, mounted with `attrs`.
fn new_fs(
    fstype: &std::ffi::CStr,
    options: &[(CString, CString)],
    attrs: u64,
) -> Result<RawFd, Errno> {
    let fs = sys::fsopen(fstype)?;
    let r = (|| {
        for (k, v) in options {
            sys::fsconfig_string(fs, k, v)?;
        }
        sys::fsconfig_create(fs)?;
        sys::fsmount(fs, attrs)
    })();
    sys::close(fs);
    r
}

fn run_op(root: RawFd, sources: &[RawFd], op: &Op, own: &mut OwnDevs) -> Result<(), Errno> {
    match op {
        Op::Dir { path } => open_dir(root, path, true).map(sys::close),
        Op::File {
            path,
            contents,
            replace,
        } => {
            let (dir, name) = open_parent(root, path)?;
            let excl = if *replace {
                libc::O_TRUNC
            } else {
                libc::O_EXCL
            };
            let fd = sys::openat(
                dir,
                name,
                libc::O_CREAT | excl | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644,
            );
            sys::close(dir);
            let fd = fd?;
            let r = sys::write_all(fd, contents);
            sys::close(fd);
            r
        }
        Op::Symlink { path, target } => {
            let (dir, name) = open_parent(root, path)?;
            let r = sys::symlinkat(target, dir, name).map(|_| ());
            sys::close(dir);
            r
        }
        Op::Fs {
            path,
            fstype,
            options,
            attrs,
        } => {
            let target = open_dir(root, path, true)?;
            let r = new_fs(fstype, options, *attrs).and_then(|m| {
                let r = if fstype.as_bytes() == b"tmpfs" {
                    own.record(m)
                } else {
                    Ok(())
                };
                let r = r.and_then(|_| attach(m, target));
                sys::close(m);
                r
            });
            sys::close(target);
            r
        }
        Op::Mask { path, is_dir, slot } => {
            let target = if *is_dir {
                open_dir(root, path, false)
            } else {
                open_existing(root, path)
            };
            let target = match target {
                Ok(t) => t,
                Err(libc::ENOENT) => return Ok(()),
                Err(e) => return Err(e),
            };
            let masked = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC;
            let r = if *is_dir {
                new_fs(c"tmpfs", &[], masked | sys::MOUNT_ATTR_NODEV).and_then(|m| {
                    let r = attach(m, target);
                    sys::close(m);
                    r
                })
            } else {
                // /dev/null itself: a device node, so not `nodev`.
                let src = *sources.get(*slot).ok_or(libc::EBADF)?;
                bind_at(src, masked, target)
            };
            sys::close(target);
            r
        }
        Op::Rebind { path, attrs } => {
            let target = open_dir(root, path, false)?;
            let r = bind_at(target, *attrs, target);
            sys::close(target);
            r
        }
        Op::Bind {
            path,
            slot,
            is_dir,
            attrs,
            made,
        } => {
            let src = *sources.get(*slot).ok_or(libc::EBADF)?;
            let (tree, mut r) = if *made {
                // A tree the parent made, attributes set: it is attached once and
                // closed with the other sources.
                (src, Ok(()))
            } else {
                let tree = sys::open_tree(
                    src,
                    EMPTY,
                    sys::OPEN_TREE_CLONE
                        | sys::OPEN_TREE_CLOEXEC
                        | sys::AT_RECURSIVE
                        | libc::AT_EMPTY_PATH as u32,
                )?;
                let attr = sys::MountAttr {
                    attr_set: *attrs,
                    ..Default::default()
                };
                let r = sys::mount_setattr(
                    tree,
                    EMPTY,
                    libc::AT_EMPTY_PATH as u32 | sys::AT_RECURSIVE,
                    &attr,
                )
                .map(|_| ());
                (tree, r)
            };
            if r.is_ok() {
                let target = if *is_dir {
                    open_dir(root, path, true)
                } else {
                    open_file_target(root, path)
                };
                r = target.and_then(|t| {
                    let r = attach(tree, t);
                    sys::close(t);
                    r
                });
            }
            if !*made {
                sys::close(tree);
            }
            r
        }
    }
}

/// Opens every bind source into `fds`, before the staging root hides any host path.
fn open_sources(spec: &ChildSpec, fds: &mut [RawFd; MAX_SOURCES]) {
    let resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    for (i, s) in spec.sources.iter().enumerate().take(MAX_SOURCES) {
        let (path, dev, ino) = match s {
            Source::Tree { fd } => {
                fds[i] = *fd;
                continue;
            }
            Source::Path { path, dev, ino } => (path, *dev, *ino),
        };
        let fd = match sys::openat2(
            libc::AT_FDCWD,
            path,
            (libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64,
            resolve,
        ) {
            Ok(fd) => fd,
            Err(err) => fail(spec, Stage::Source, err, i as u32),
        };
        match sys::fstat_id(fd) {
            Ok((d, n, _)) if d == dev && n == ino => fds[i] = fd,
            Ok(_) => fail(spec, Stage::Source, libc::ESTALE, i as u32),
            Err(err) => fail(spec, Stage::Source, err, i as u32),
        }
    }
}

/// Closes every fd but those in `keep` (sorted).
fn close_others(keep: &[RawFd]) {
    let mut next: u32 = 0;
    for &fd in keep {
        let fd = fd as u32;
        if fd > next {
            let _ = sys::close_range(next, fd - 1);
        }
        next = fd + 1;
    }
    let _ = sys::close_range(next, u32::MAX);
}

/// Builds the root filesystem and moves into it.
fn build_root(spec: &ChildSpec, sources: &[RawFd; MAX_SOURCES], own: &mut OwnDevs) {
    if let Some((slot, readonly)) = spec.root_dir {
        let root = match dir_root(spec, sources, slot, readonly) {
            Ok(fd) => fd,
            Err(err) => fail(spec, Stage::Setup, err, 0),
        };
        // The engine's root filesystem is the container's own: its UNIX sockets are the
        // container's to reach.
        if let Err(err) = own.record(root) {
            fail(spec, Stage::Setup, err, 0)
        }
        return finish_root(spec, sources, root, readonly, own);
    }
    let tmpfs = match new_fs(
        c"tmpfs",
        &spec.root_options,
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
    ) {
        Ok(fd) => fd,
        Err(err) => fail(spec, Stage::Setup, err, 0),
    };
    if let Err(err) = own.record(tmpfs) {
        fail(spec, Stage::Setup, err, 0)
    }
    if let Err(err) = sys::move_mount(
        tmpfs,
        EMPTY,
        libc::AT_FDCWD,
        &spec.stage,
        sys::MOVE_MOUNT_F_EMPTY_PATH,
    ) {
        fail(spec, Stage::Setup, err, 0)
    }
    let root = match &spec.overlay {
        None => tmpfs,
        Some(o) => match overlay_root(tmpfs, o, &spec.stage) {
            Ok(fd) => {
                sys::close(tmpfs);
                if let Err(err) = own.record(fd) {
                    fail(spec, Stage::Overlay, err, 0)
                }
                // Best effort: where the image's root is not the sandbox user's to write
                // in, its files' device stays unknown, and sockets there unreachable.
                let _ = own.record_overlay_files(fd);
                fd
            }
            Err(err) => fail(spec, Stage::Overlay, err, 0),
        },
    };
    // An image root is the sandbox's own throwaway layer: it stays writable.
    finish_root(spec, sources, root, spec.overlay.is_none(), own)
}

/// A clone of the host directory in `sources[slot]` (and the mounts below it), attached
/// at the stage, to be the root as it is: what the workload writes lands in it.
fn dir_root(
    spec: &ChildSpec,
    sources: &[RawFd; MAX_SOURCES],
    slot: usize,
    readonly: bool,
) -> Result<RawFd, Errno> {
    let src = *sources.get(slot).ok_or(libc::EBADF)?;
    let tree = sys::open_tree(
        src,
        EMPTY,
        sys::OPEN_TREE_CLONE
            | sys::OPEN_TREE_CLOEXEC
            | sys::AT_RECURSIVE
            | libc::AT_EMPTY_PATH as u32,
    )?;
    let attr = sys::MountAttr {
        attr_set: sys::MOUNT_ATTR_NOSUID
            | sys::MOUNT_ATTR_NODEV
            | if readonly { sys::MOUNT_ATTR_RDONLY } else { 0 },
        ..Default::default()
    };
    let r = sys::mount_setattr(
        tree,
        EMPTY,
        libc::AT_EMPTY_PATH as u32 | sys::AT_RECURSIVE,
        &attr,
    )
    .and_then(|_| {
        sys::move_mount(
            tree,
            EMPTY,
            libc::AT_FDCWD,
            &spec.stage,
            sys::MOVE_MOUNT_F_EMPTY_PATH,
        )
    });
    match r {
        Ok(_) => Ok(tree),
        Err(e) => {
            sys::close(tree);
            Err(e)
        }
    }
}

/// Runs the ops on the new root, moves into it, and makes it read-only if asked.
fn finish_root(
    spec: &ChildSpec,
    sources: &[RawFd; MAX_SOURCES],
    root: RawFd,
    readonly: bool,
    own: &mut OwnDevs,
) {
    for (i, op) in spec.ops.iter().enumerate() {
        if let Err(err) = run_op(root, sources, op, own) {
            fail(spec, Stage::Op, err, i as u32)
        }
    }
    if let Err(err) = sys::fchdir(root)
        .and_then(|_| sys::pivot_root(c".", c"."))
        .and_then(|_| sys::umount2(c".", libc::MNT_DETACH))
        .and_then(|_| sys::chdir(c"/"))
    {
        fail(spec, Stage::Pivot, err, 0)
    }
    sys::close(root);
    for &fd in sources.iter().take(spec.sources.len()) {
        sys::close(fd);
    }
    if !readonly {
        return;
    }
    let ro = sys::MountAttr {
        attr_set: sys::MOUNT_ATTR_RDONLY,
        ..Default::default()
    };
    if let Err(err) = sys::mount_setattr(libc::AT_FDCWD, c"/", 0, &ro) {
        fail(spec, Stage::Pivot, err, 0)
    }
}

/// An overlay of the image's layers with its upper and work directories in the tmpfs
/// attached at `stage`; attached over it, and returned.
fn overlay_root(tmpfs: RawFd, o: &OverlaySpec, stage: &std::ffi::CStr) -> Result<RawFd, Errno> {
    for d in [c"upper", c"work"] {
        sys::mkdirat(tmpfs, d, 0o755)?;
    }
    let fs = sys::fsopen(c"overlay")?;
    let r = (|| {
        sys::fsconfig_string(fs, c"lowerdir", &o.lowerdir)?;
        sys::fsconfig_string(fs, c"upperdir", &o.upperdir)?;
        sys::fsconfig_string(fs, c"workdir", &o.workdir)?;
        // Overlay metadata as user.* xattrs: what overlayfs needs inside a user namespace.
        sys::fsconfig_flag(fs, c"userxattr")?;
        sys::fsconfig_create(fs)?;
        sys::fsmount(fs, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV)
    })();
    sys::close(fs);
    let root = r?;
    if let Err(e) = sys::move_mount(
        root,
        EMPTY,
        libc::AT_FDCWD,
        stage,
        sys::MOVE_MOUNT_F_EMPTY_PATH,
    ) {
        sys::close(root);
        return Err(e);
    }
    Ok(root)
}

/// Adds the Landlock rules on the sandbox's own paths (after `pivot_root`).
fn add_rules(spec: &ChildSpec, ruleset: RawFd) {
    for (i, rule) in spec.rules.iter().enumerate() {
        let fd = match sys::openat(
            libc::AT_FDCWD,
            &rule.path,
            libc::O_PATH | libc::O_CLOEXEC,
            0,
        ) {
            Ok(fd) => fd,
            Err(err) => fail(spec, Stage::Landlock, err, i as u32),
        };
        let r = sys::landlock_add_path_rule(ruleset, fd, rule.access);
        sys::close(fd);
        if let Err(err) = r {
            fail(spec, Stage::Landlock, err, i as u32)
        }
    }
}

/// The clone's child: becomes init of the sandbox. Never returns.
pub(crate) fn init_main(spec: &ChildSpec) -> ! {
    // Die with the parent thread.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    scrub_caller_strings(spec);
    let mut go = [0u8; 1];
    // The parent writes one byte once the id maps and cgroups are set; EOF means it died.
    loop {
        match sys::read(spec.sync_r, &mut go) {
            Ok(1) => break,
            Err(libc::EINTR) => continue,
            _ => sys::exit(125),
        }
    }
    // Into the cgroup before anything else, and before this process's cgroup
    // namespace is made (its root is the leaf).
    for (i, &fd) in spec.cgroup_tasks.iter().enumerate() {
        if let Err(err) = sys::write_all(fd, b"0") {
            fail(spec, Stage::Cgroup, err, i as u32)
        }
    }
    // Keep the workload away from this process's memory, a copy of the caller's (no
    // ptrace, no /proc/1/mem, root-owned /proc/1). Not before "go": a rootless parent
    // writes the id maps in /proc/<pid>, which this makes root-owned.
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
    close_others(&spec.keep);
    if spec.clear_groups {
        if let Err(err) = sys::setgroups(&spec.groups) {
            fail(spec, Stage::Identity, err, 0)
        }
    }
    if let Err(err) = sys::unshare(libc::CLONE_NEWCGROUP) {
        fail(spec, Stage::Setup, err, 0)
    }
    if let Err(err) = sys::mount(
        None,
        c"/",
        None,
        (libc::MS_REC | libc::MS_PRIVATE) as libc::c_ulong,
    ) {
        fail(spec, Stage::Setup, err, 0)
    }
    // Bind sources are opened with the caller's host identity (the workload's own access
    // to their contents is checked later, as the sandbox user).
    let mut sources = [-1; MAX_SOURCES];
    open_sources(spec, &mut sources);
    // The egress link: /dev/net/tun is opened with the caller's host identity too.
    if let Some(t) = &spec.tun {
        if let Err((step, err)) = crate::tun::setup(t) {
            fail(spec, Stage::Network, err, step as u32)
        }
        sys::close(t.sock);
    }
    // Become the sandbox user before creating anything: files made in the new root must
    // belong to an id mapped in the namespace. Capabilities in the namespace stay until exec.
    if let Err(err) = sys::setresgid(spec.gid).and_then(|_| sys::setresuid(spec.uid)) {
        fail(spec, Stage::Identity, err, 0)
    }
    let mut own = OwnDevs::default();
    build_root(spec, &sources, &mut own);
    // A joined UTS namespace keeps its owner's name (and is not ours to rename).
    if spec.utsns.is_none() {
        if let Err(err) = sys::sethostname(&spec.hostname) {
            fail(spec, Stage::Network, err, 0)
        }
    }
    if spec.loopback {
        if let Err(err) = sys::loopback_up() {
            fail(spec, Stage::Network, err, 0)
        }
    }
    if let Some(rs) = spec.ruleset {
        add_rules(spec, rs);
    }
    // A credential change clears these two; set them again, then make sure the parent
    // did not die in between (its end of the sync pipe stays open for the whole run).
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
    if sys::poll_hup(spec.sync_r) {
        sys::exit(125)
    }
    // Init serves execs and file operations until the host goes (a run is a sandbox
    // with one exec).
    crate::live::init::serve(spec, spec.control, &own)
}

/// Overwrites the caller's command line and environment in init's copy of memory, and
/// names the process `hsb-init`.
fn scrub_caller_strings(spec: &ChildSpec) {
    for (i, &(start, end)) in spec.scrub.iter().enumerate() {
        if start == 0 || end <= start {
            continue;
        }
        // SAFETY: [start, end) is the argv (or environ) string area of this process, as
        // the kernel reported it for the parent before the fork; the child has its own
        // copy-on-write copy of that writable stack memory, and no code in the child
        // reads it (Rust's cached argv pointers are never used here).
        unsafe { std::ptr::write_bytes(start as *mut u8, 0, end - start) };
        if i == 0 && end - start > 8 {
            // SAFETY: as above; 8 bytes fit in the area (checked).
            unsafe { std::ptr::copy_nonoverlapping(b"hsb-init".as_ptr(), start as *mut u8, 8) };
        }
    }
    let _ = sys::prctl(libc::PR_SET_NAME, c"hsb-init".as_ptr() as libc::c_ulong);
}

/// Where to look for the program: `count` NUL-terminated paths at the start of a block
/// (an exec's request, see `live::wire`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidates<'a> {
    pub(crate) block: &'a [u8],
    pub(crate) count: usize,
}

/// What one exec needs besides the spec.
#[derive(Debug)]
pub(crate) struct ExecParams<'a> {
    /// Where a failure is reported ([`ErrorRecord`]); close-on-exec.
    pub(crate) err_w: RawFd,
    /// Standard input; `None`: /dev/null.
    pub(crate) stdin: Option<RawFd>,
    pub(crate) stdout: RawFd,
    pub(crate) stderr: RawFd,
    pub(crate) cwd: &'a std::ffi::CStr,
    pub(crate) candidates: Candidates<'a>,
    pub(crate) argv: *const *const libc::c_char,
    pub(crate) envp: *const *const libc::c_char,
    /// RLIMIT_CPU (soft, hard) replacing the spec's.
    pub(crate) cpu: Option<(u64, u64)>,
}

/// A process that runs a program of the sandbox: stdio, limits, credentials, Landlock,
/// seccomp, exec.
pub(crate) fn exec_confined(spec: &ChildSpec, p: &ExecParams<'_>) -> ! {
    let _ = sys::setsid();
    let stdin = match p.stdin {
        Some(fd) => Ok(fd),
        None => sys::openat(libc::AT_FDCWD, c"/dev/null", libc::O_RDONLY, 0),
    };
    let stdio = stdin
        .and_then(|fd| sys::dup2(fd, 0))
        .and_then(|_| sys::dup2(p.stdout, 1))
        .and_then(|_| sys::dup2(p.stderr, 2));
    if let Err(err) = stdio {
        fail_to(p.err_w, Stage::Stdio, err, 0)
    }
    // Only 0, 1, 2 survive exec: the error channel is close-on-exec.
    close_others_above(2, &[p.err_w]);
    confine(spec, p.err_w, p.cwd, p.cpu);
    // Search like execvp: ENOENT/ENOTDIR move on, EACCES is remembered. A candidate that
    // exists but fails with ENOENT lacks its interpreter (ELF loader or #! program).
    let mut eacces: Option<(Errno, u32)> = None;
    let mut try_one = |i: usize, path: &std::ffi::CStr| match sys::execve(path, p.argv, p.envp) {
        libc::ENOENT if sys::exists(path) => {
            fail_to(p.err_w, Stage::Interpreter, libc::ENOENT, i as u32)
        }
        libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::ENAMETOOLONG => {}
        e @ (libc::EACCES | libc::EPERM) => eacces = eacces.or(Some((e, i as u32))),
        e => fail_to(p.err_w, Stage::Exec, e, i as u32),
    };
    let Candidates { block, count } = p.candidates;
    for (i, path) in crate::live::wire::CStrs::new(block).take(count).enumerate() {
        try_one(i, path);
    }
    match eacces {
        Some((e, i)) => fail_to(p.err_w, Stage::Exec, e, i),
        None => fail_to(p.err_w, Stage::Exec, libc::ENOENT, u32::MAX),
    }
}

/// What each process the sandbox runs sets for itself: limits and its working directory.
/// Everything else it inherits from init (see [`confine_init`]).
pub(crate) fn confine(
    spec: &ChildSpec,
    err_w: RawFd,
    cwd: &std::ffi::CStr,
    cpu: Option<(u64, u64)>,
) {
    for (i, &(res, soft, hard)) in spec.rlimits.iter().enumerate() {
        if let Err(err) = sys::prlimit(res, soft, hard) {
            fail_to(err_w, Stage::Rlimit, err, i as u32)
        }
    }
    if let Some((soft, hard)) = cpu {
        if let Err(err) = sys::prlimit(libc::RLIMIT_CPU as c_int, soft, hard) {
            fail_to(err_w, Stage::Rlimit, err, spec.rlimits.len() as u32)
        }
    }
    if let Err(err) = sys::chdir(cwd) {
        fail_to(err_w, Stage::Cwd, err, 0)
    }
}

/// The confinement init enters before it serves, and every process of the sandbox
/// inherits: no capabilities (for good: secure bits locked), no_new_privs, the seccomp
/// filters. (Landlock: init enters the sandbox's one domain just before.) Init itself
/// then only forks, signals, reaps and passes messages, all on the allowlist.
///
/// The user-notification filter comes first, and its listener goes to the host's
/// connect supervisor (`crate::unotify`) with `own`, the devices of the sandbox's own
/// filesystems: every exec, the file server and whatever they start inherit the filter,
/// so every `connect(2)` of the sandbox, for its whole life, is the supervisor's. Once
/// the allowlist is in force no further listener may be created (it refuses
/// SECCOMP_FILTER_FLAG_NEW_LISTENER), and the kernel allows one per filter tree anyway.
pub(crate) fn confine_init(spec: &ChildSpec, own: &OwnDevs) {
    drop_capabilities(spec, spec.err_w);
    let listener = match sys::seccomp_set_listener(&spec.notify) {
        Ok(fd) => fd,
        Err(err) => fail(spec, Stage::Supervisor, err, 0),
    };
    if let Err(err) = sys::send_fd(spec.notify_sock, listener, &own.to_bytes()) {
        fail(spec, Stage::Supervisor, err, 1)
    }
    sys::close(listener);
    sys::close(spec.notify_sock);
    for (i, prog) in spec.seccomp.iter().enumerate() {
        if let Err(err) = sys::seccomp_set_filter(prog) {
            fail(spec, Stage::Seccomp, err, i as u32)
        }
    }
}

/// Closes every fd above `above` except those in `keep` (sorted).
pub(crate) fn close_others_above(above: RawFd, keep: &[RawFd]) {
    let mut next = (above + 1) as u32;
    for &fd in keep {
        let fd = fd as u32;
        if fd >= next {
            if fd > next {
                let _ = sys::close_range(next, fd - 1);
            }
            next = fd + 1;
        }
    }
    let _ = sys::close_range(next, u32::MAX);
}

/// Drops every capability for good: secure bits locked, bounding and ambient sets
/// cleared, then the process sets; and no_new_privs.
fn drop_capabilities(spec: &ChildSpec, err_w: RawFd) {
    let bits = libc::SECBIT_NOROOT
        | libc::SECBIT_NOROOT_LOCKED
        | libc::SECBIT_NO_SETUID_FIXUP
        | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
        | libc::SECBIT_KEEP_CAPS_LOCKED
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    let r = sys::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong)
        .and_then(|_| {
            for cap in 0..=spec.last_cap {
                sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong)?;
            }
            Ok(0)
        })
        .and_then(|_| sys::prctl_ambient_clear())
        .and_then(|_| sys::capset_none())
        .and_then(|_| sys::prctl_no_new_privs());
    if let Err(err) = r {
        fail_to(err_w, Stage::Capabilities, err, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_round_trip() {
        for v in 1..=18 {
            assert_eq!(Stage::from_u32(v).map(|s| s as u32), Some(v));
        }
        assert!(Stage::from_u32(0).is_none() && Stage::from_u32(19).is_none());
        let r = ErrorRecord {
            stage: 12,
            errno: 2,
            index: 7,
        };
        let back = ErrorRecord::from_bytes(&r.to_bytes());
        assert_eq!((back.stage, back.errno, back.index), (12, 2, 7));
    }
}
