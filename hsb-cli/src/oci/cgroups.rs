//! The engine's cgroup (`linux.cgroupsPath`). The supervisor, the pid the engine is
//! given as the container's, joins it as runc's container init does: engines read a
//! container's usage (`docker stats`, the CRI's `ContainerStats`) from the cgroups of
//! that pid. A micro-VM container is then there whole (the VM runs in the supervisor);
//! a container's own cgroup (its processes, with its limits) is made inside it on
//! cgroup v1 (`Workload::cgroup_parent`), so the engine's statistics and a Kubernetes
//! pod's cgroup take them in. On cgroup v2 it is not (a cgroup holding the supervisor
//! cannot give a child controllers): there the container's processes stay in hsb's own
//! cgroup and the enforcement report says so.
//!
//! The directories are made under every cgroup hierarchy this process is in, as runc's
//! cgroupfs driver makes them. The supervisor removes the ones it made as it ends
//! ([`leave`]); after a SIGKILL, `delete` or the runtime's next `create` in the same
//! state root does (`Dir::sweep_cgroups`). A cgroup the runtime
//! cannot make or join (a rootless engine, a read-only cgroupfs) leaves the supervisor
//! where it is, with a warning: hsb's own limits hold either way.

use std::path::{Component, Path, PathBuf};

/// What `linux.cgroupsPath` asks, checked: a path of plain names under each hierarchy's
/// root (a relative path is taken from the root too, which the spec allows). `Ok(Err)`
/// says why a path is not joined: the systemd driver's `slice:prefix:name` form, whose
/// units only systemd makes; an empty one. `Err`: a path that is no cgroup's (`..`, `/`).
pub(crate) fn requested(value: &str) -> Result<Result<PathBuf, String>, String> {
    if value.is_empty() {
        return Ok(Err(
            "empty: the supervisor stays in the engine's cgroup".into()
        ));
    }
    if !value.starts_with('/') && value.contains(':') {
        return Ok(Err(format!(
            "{value:?} names a systemd unit (the engine's systemd cgroup driver), which hsb does not make; \
             the supervisor stays in the engine's cgroup (use the cgroupfs driver)"
        )));
    }
    let path = Path::new(value);
    let mut clean = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => clean.push(n),
            _ => {
                return Err(format!(
                    "{value:?}: only plain names may make a cgroup path"
                ))
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(format!("{value:?} names no cgroup"));
    }
    Ok(Ok(clean))
}

/// The roots of the cgroup hierarchies mounted here (v1 controllers' and v2's), one per
/// hierarchy, from /proc/self/mountinfo.
fn hierarchy_roots() -> Vec<PathBuf> {
    hierarchies().into_iter().map(|h| h.point).collect()
}

/// A cgroup hierarchy's mount: where, and its controllers (v1; empty for v2).
struct Hierarchy {
    point: PathBuf,
    controllers: Vec<String>,
}

/// The cgroup hierarchies mounted here at their roots, one mount each.
fn hierarchies() -> Vec<Hierarchy> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((mount, fs)) = line.split_once(" - ") else {
            continue;
        };
        let m: Vec<&str> = mount.split(' ').collect();
        let f: Vec<&str> = fs.split(' ').collect();
        let (Some(root), Some(point), Some(fstype), Some(opts)) =
            (m.get(3), m.get(4), f.first(), f.get(2))
        else {
            continue;
        };
        if !matches!(*fstype, "cgroup" | "cgroup2") || *root != "/" || point.contains('\\') {
            continue;
        }
        // One mount per hierarchy: its controllers (v1) or the unified one (v2).
        let key: Vec<&str> = opts
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("nsdelegate"))
            .collect();
        let id = format!("{fstype} {}", key.join(","));
        if !seen.contains(&id) {
            seen.push(id);
            out.push(Hierarchy {
                point: PathBuf::from(point),
                controllers: if *fstype == "cgroup" {
                    key.iter().map(|c| c.to_string()).collect()
                } else {
                    Vec::new()
                },
            });
        }
    }
    out
}

/// The directories joined and those this call made (to remove at `delete`), and why any
/// hierarchy could not be joined.
#[derive(Debug, Default)]
pub(crate) struct Joined {
    pub(crate) made: Vec<PathBuf>,
    pub(crate) failed: Vec<String>,
}

/// What this process joined: the hierarchies' roots, and the directories it made.
static JOINED: std::sync::Mutex<(Vec<PathBuf>, Vec<PathBuf>)> =
    std::sync::Mutex::new((Vec::new(), Vec::new()));

/// Makes `path` under every hierarchy and moves this process (all its threads) there.
pub(crate) fn join(path: &Path) -> Joined {
    let mut j = Joined::default();
    let roots = hierarchy_roots();
    for root in &roots {
        let target = root.join(path);
        // Make what is missing, top down, and note it.
        let mut at = root.clone();
        let mut ok = true;
        for c in path.components() {
            enable_controllers(&at);
            at.push(c);
            match std::fs::create_dir(&at) {
                Ok(()) => {
                    j.made.push(at.clone());
                    inherit_cpuset(&at);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    j.failed.push(format!("{}: {e}", at.display()));
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            let pid = std::process::id().to_string();
            if let Err(e) = std::fs::write(target.join("cgroup.procs"), &pid) {
                j.failed
                    .push(format!("{}: {e}", target.join("cgroup.procs").display()));
            }
        }
    }
    *JOINED.lock().unwrap_or_else(|e| e.into_inner()) = (roots, j.made.clone());
    j
}

/// The supervisor's last act, its sandbox gone: it moves to each hierarchy's root (a
/// cgroup any process may be in, v2's included) and removes what it made. A `delete`
/// may never come, or not to this runtime root (Podman's cleanup after a container ends
/// by itself drops the `--runtime-flag`s it was given, a `--root` among them), and what
/// `delete` would remove is then gone already.
pub(crate) fn leave() {
    let (roots, made) = std::mem::take(&mut *JOINED.lock().unwrap_or_else(|e| e.into_inner()));
    if made.is_empty() {
        return;
    }
    let pid = std::process::id().to_string();
    for root in &roots {
        let _ = std::fs::write(root.join("cgroup.procs"), &pid);
    }
    remove(&made);
}

/// cgroup v2: a child has a controller's files (`memory.current`, which engines read)
/// only where its parent enables it for its children, as runc enables them down the
/// path. A parent that holds processes refuses (the root excepted): then nothing is
/// changed. No-op on v1 (no such file).
fn enable_controllers(parent: &Path) {
    let Ok(available) = std::fs::read_to_string(parent.join("cgroup.controllers")) else {
        return;
    };
    for c in available.split_whitespace() {
        let _ = std::fs::write(parent.join("cgroup.subtree_control"), format!("+{c}"));
    }
}

/// A new v1 cpuset cgroup starts with no CPUs and no memory nodes, and takes no process
/// until it has some: it gets its parent's, as runc gives them.
fn inherit_cpuset(dir: &Path) {
    let Some(parent) = dir.parent() else {
        return;
    };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let empty = std::fs::read_to_string(dir.join(f)).is_ok_and(|v| v.trim().is_empty());
        if empty {
            if let Ok(v) = std::fs::read_to_string(parent.join(f)) {
                let _ = std::fs::write(dir.join(f), v.trim());
            }
        }
    }
}

/// Sets a container's CPU and memory-node sets (`linux.resources.cpu.cpus`, `mems`) on
/// its cgroup `path` (`linux.cgroupsPath`) in the cgroup v1 `cpuset` hierarchy, after
/// checking that `pid` (its supervisor) is there: the container's processes, cloned
/// from the supervisor and never moved in that hierarchy, inherit it, a micro-VM's
/// threads are the supervisor's, and `sched_setaffinity` inside stays within it.
/// Never written elsewhere (an engine's own cgroup, a hierarchy's root). On cgroup v2
/// hsb's container processes are not in `path` (see `Workload::cgroup_parent`), so
/// this refuses there. Returns the directory written and the sets it had before (for
/// [`restore_cpuset`]).
pub(crate) fn set_cpuset(
    pid: i32,
    path: &Path,
    set: &super::config::CpuSet,
) -> Result<(PathBuf, super::config::CpuSet), String> {
    let Some(root) = cpuset_root() else {
        return Err(if hierarchy_roots().is_empty() {
            "no cgroup hierarchy is mounted on this host".into()
        } else {
            "CPU sets need a cgroup v1 cpuset hierarchy: on cgroup v2 hsb's container \
             processes are not in linux.cgroupsPath (a CPU quota is supported: --cpus)"
                .into()
        });
    };
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrls, p) = (f.next()?, f.next()?, f.next()?);
                ctrls
                    .split(',')
                    .any(|c| c == "cpuset")
                    .then(|| p.to_string())
            })
        })
        .ok_or_else(|| format!("the cpuset cgroup of the container's process {pid} is unknown"))?;
    let want = Path::new("/").join(path);
    if Path::new(&own) != want {
        return Err(format!(
            "the container's process {pid} is in the cpuset cgroup {own}, not in linux.cgroupsPath {}: \
             CPU sets are set only there",
            want.display()
        ));
    }
    let dir = root.join(path);
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .map(|v| v.trim().to_string())
    };
    let before = super::config::CpuSet {
        cpus: read("cpuset.cpus"),
        mems: read("cpuset.mems"),
    };
    write_cpuset(&dir, set)?;
    Ok((dir, before))
}

/// Puts back the sets [`set_cpuset`] found in `dir` (an `update` whose other limits
/// were refused changes nothing).
pub(crate) fn restore_cpuset(dir: &Path, before: &super::config::CpuSet) {
    let _ = write_cpuset(dir, before);
}

fn write_cpuset(dir: &Path, set: &super::config::CpuSet) -> Result<(), String> {
    for (file, value) in [("cpuset.cpus", &set.cpus), ("cpuset.mems", &set.mems)] {
        if let Some(v) = value {
            std::fs::write(dir.join(file), v)
                .map_err(|e| format!("{v:?} into {}: {e}", dir.join(file).display()))?;
        }
    }
    Ok(())
}

/// The mount point of the cgroup v1 hierarchy that has the `cpuset` controller.
fn cpuset_root() -> Option<PathBuf> {
    v1_root("cpuset")
}

/// The mount point of the cgroup v1 hierarchy that has `controller`.
fn v1_root(controller: &str) -> Option<PathBuf> {
    hierarchies()
        .into_iter()
        .find(|h| h.controllers.iter().any(|c| c == controller))
        .map(|h| h.point)
}

/// cgroup v1: the memory limit of the sandbox's own cgroup (hsb's `<pid>-<n>`, made by
/// the supervisor inside `linux.cgroupsPath`), put on `cgroupsPath` as well, memory+swap
/// included. Engines learn of an OOM kill from the memory cgroup of the pid they were
/// given: containerd's shim registers an eventfd on that cgroup's `memory.oom_control`,
/// which the kernel signals for an OOM of that cgroup or an ancestor, never of a child;
/// `docker stats` reads the limit there too. With the limit on `cgroupsPath`, the
/// supervisor's own memory counts against it (the child's stays as the sandbox's own
/// bound). Both directories are held open: `update` reaches them from a thread in the
/// container's mount namespace, where no cgroup filesystem is mounted.
pub(crate) struct MemoryMirror {
    parent: std::os::fd::OwnedFd,
    child: std::os::fd::OwnedFd,
    /// `cgroupsPath` in the memory hierarchy, for messages.
    pub(crate) dir: PathBuf,
}

impl MemoryMirror {
    /// Finds the sandbox's cgroup that supervisor `pid` made in `path`. `None` where
    /// there is nothing to mirror: no v1 memory hierarchy (cgroup v2: the container's
    /// processes are not in `path`), or no sandbox cgroup in `path` (a micro-VM
    /// container: its VM is the supervisor's memory, limited by its own size).
    pub(crate) fn find(pid: u32, path: &Path) -> Result<Option<MemoryMirror>, String> {
        let Some(root) = v1_root("memory") else {
            return Ok(None);
        };
        let dir = root.join(path);
        let prefix = format!("{pid}-");
        let leaf = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .flatten()
            .map(|e| e.file_name())
            .find(|n| {
                n.to_str()
                    .is_some_and(|n| is_sandbox_leaf(n) && n.starts_with(&prefix))
            });
        let Some(leaf) = leaf else {
            return Ok(None);
        };
        let open = |d: &Path| {
            nix::fcntl::open(
                d,
                nix::fcntl::OFlag::O_PATH
                    | nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| format!("{}: {e}", d.display()))
        };
        Ok(Some(MemoryMirror {
            parent: open(&dir)?,
            child: open(&dir.join(leaf))?,
            dir,
        }))
    }

    /// Copies the child's limits to the parent: memory+swap, which stays at least the
    /// memory limit, raised first and lowered last (absent without swap accounting).
    pub(crate) fn apply(&self) -> Result<(), String> {
        use std::io::{Read, Write};
        let file = |d: &std::os::fd::OwnedFd, f: &str, flags: nix::fcntl::OFlag| {
            nix::fcntl::openat(
                d,
                f,
                flags | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map(std::fs::File::from)
        };
        let read = |d: &std::os::fd::OwnedFd, f: &str| -> Option<u64> {
            let mut text = String::new();
            file(d, f, nix::fcntl::OFlag::O_RDONLY)
                .ok()?
                .read_to_string(&mut text)
                .ok()?;
            text.trim().parse().ok()
        };
        let write = |f: &str, v: u64| {
            file(&self.parent, f, nix::fcntl::OFlag::O_WRONLY)
                .map_err(std::io::Error::from)
                .and_then(|mut w| w.write_all(v.to_string().as_bytes()))
                .map_err(|e| format!("{v} into {}: {e}", self.dir.join(f).display()))
        };
        let limit = read(&self.child, "memory.limit_in_bytes")
            .ok_or_else(|| "the sandbox's cgroup has no memory limit to read".to_string())?;
        let memsw = read(&self.child, "memory.memsw.limit_in_bytes");
        let now = read(&self.parent, "memory.limit_in_bytes").unwrap_or(u64::MAX);
        if let Some(m) = memsw.filter(|_| limit > now) {
            write("memory.memsw.limit_in_bytes", m)?;
        }
        write("memory.limit_in_bytes", limit)?;
        if let Some(m) = memsw.filter(|_| limit <= now) {
            write("memory.memsw.limit_in_bytes", m)?;
        }
        Ok(())
    }
}

/// Removes the directories a supervisor made (deepest first), once what was in them is
/// gone: a cgroup whose last process just exited may stay busy a moment. The sandbox's
/// own cgroup inside (hsb's `<pid>-<n>`, on cgroup v1) goes first: a supervisor killed
/// with SIGKILL could not remove it.
pub(crate) fn remove(made: &[PathBuf]) {
    for d in made.iter().rev() {
        if let Ok(entries) = std::fs::read_dir(d) {
            for e in entries.flatten() {
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                if is_dir && e.file_name().to_str().is_some_and(is_sandbox_leaf) {
                    remove_dir(&e.path());
                }
            }
        }
        remove_dir(d);
    }
}

/// Whether a cgroup's name is one hsb's container backend gives a sandbox's own
/// (`<creator pid>-<n>`): never an engine's container id, nor a pod's.
fn is_sandbox_leaf(name: &str) -> bool {
    name.split_once('-').is_some_and(|(pid, n)| {
        [pid, n]
            .iter()
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Removes one cgroup directory, waiting up to a second for it to empty; one still in
/// use by others (or gone) is left as it is.
fn remove_dir(d: &Path) {
    for _ in 0..100 {
        match std::fs::remove_dir(d) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hsbs_own_cgroups_are_taken_for_a_sandboxs() {
        assert!(is_sandbox_leaf("4242-0") && is_sandbox_leaf("1-17"));
        for other in [
            "4242",
            "-0",
            "4242-",
            "1-2-3",
            "docker-4242",
            "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "kubepods-besteffort",
        ] {
            assert!(!is_sandbox_leaf(other), "{other}");
        }
    }

    #[test]
    fn a_cgroup_path_is_plain_names_under_the_root() {
        assert_eq!(
            requested("/docker/abc"),
            Ok(Ok(PathBuf::from("docker/abc")))
        );
        assert_eq!(
            requested("kubepods/pod1/c2"),
            Ok(Ok(PathBuf::from("kubepods/pod1/c2")))
        );
        assert!(matches!(requested(""), Ok(Err(_))));
        for bad in ["/docker/../../etc", "../x", "/"] {
            assert!(requested(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            requested("system.slice:docker:abc"),
            Ok(Err(why)) if why.contains("systemd")
        ));
    }
}
