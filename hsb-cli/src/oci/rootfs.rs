//! Mount points in the bundle's root filesystem. The sandbox's processes reach the
//! engine's rootfs as an unprivileged host id, which cannot create directories in
//! root-owned trees; so, as runc does, the runtime (the engine's caller, usually root)
//! makes the mount points that are missing before the sandbox is built: `/proc`,
//! `/dev`, the working directory, and each bind mount's target (a directory or an empty
//! file, as its source is). Every path resolves inside the rootfs (`RESOLVE_IN_ROOT`):
//! a symlink the image planted never leads out of it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::config::Container;
use super::OciError;

fn open_in(root: &impl AsFd, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    openat2(
        root,
        rel,
        OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS),
    )
}

/// Makes `target` (absolute, inside the rootfs) if missing: a directory, or an empty
/// file when `file`.
fn make(root: &OwnedFd, target: &Path, file: bool) -> Result<(), String> {
    let comps: Vec<&std::ffi::OsStr> = target
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut rel = std::path::PathBuf::from(".");
    for (i, c) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let parent = open_in(root, &rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(|e| format!("{}: {e}", rel.display()))?;
        rel.push(c);
        if open_in(root, &rel, OFlag::O_PATH).is_ok() {
            continue;
        }
        let r = if last && file {
            nix::fcntl::openat(
                &parent,
                *c,
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop)
        } else {
            nix::sys::stat::mkdirat(&parent, *c, Mode::from_bits_truncate(0o755))
        };
        match r {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(format!("{}: {e}", target.display())),
        }
    }
    Ok(())
}

/// Resolves each bind mount's source once, symbolic links followed (the last component
/// too), as runc does: the engine's sources are host paths it trusts, and some are links
/// (Docker's `--init` binds /usr/bin/docker-init, a link to tini). The sandbox then
/// opens the resolved path as it opens every source, following no link and checking
/// what it opened, so a link swapped in after this fails rather than being followed.
pub(crate) fn resolve_sources(c: &mut Container) -> Result<(), OciError> {
    for (m, field) in c.workload.mounts.iter_mut().zip(&c.bind_fields) {
        m.source = std::fs::canonicalize(&m.source).map_err(|e| {
            OciError::msg(format!(
                "config.json: {field}.source: {}: {e}",
                m.source.display()
            ))
        })?;
    }
    Ok(())
}

/// Makes the mount points `c` needs in its rootfs.
pub(crate) fn prepare(c: &Container) -> Result<(), OciError> {
    let Some(root) = &c.workload.root_dir else {
        return Ok(());
    };
    for (field, target) in &c.copy_up {
        if has_entries(&root.path, target) {
            return Err(OciError::msg(format!(
                "config.json: {field}: `tmpcopyup`: the rootfs holds files at {}, which hsb does not copy into the tmpfs (mount it without tmpcopyup, or use a volume)",
                target.display()
            )));
        }
    }
    // `root.readonly` is the container's view (as runc, the mount points are made
    // first): the CRI plugin's pause container has a read-only root and a bind mount
    // at /etc/resolv.conf, which images rarely hold. On a rootfs that truly is
    // read-only, a missing mount point fails here, named.
    let rootfd = nix::fcntl::open(
        &root.path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        OciError::msg(format!(
            "config.json: root.path: {}: {e}",
            root.path.display()
        ))
    })?;
    let mut targets: Vec<(std::path::PathBuf, bool)> = vec![
        ("/proc".into(), false),
        ("/dev".into(), false),
        (c.process.cwd.clone().into(), false),
    ];
    for m in &c.workload.mounts {
        let file = std::fs::metadata(&m.source).is_ok_and(|s| !s.is_dir());
        targets.push((m.target_path().to_path_buf(), file));
    }
    for t in &c.workload.tmpfs {
        targets.push((t.target.clone(), false));
    }
    for (t, file) in targets {
        make(&rootfd, &t, file).map_err(|e| {
            OciError::msg(format!(
                "cannot make the mount point {} in the rootfs: {e}",
                t.display()
            ))
        })?;
    }
    Ok(())
}

/// runc's check at `create`: the container's program is in the rootfs and can be run,
/// else `create` fails in runc's words, from which Docker and Podman take the exit
/// status (127: not found; 126: not executable, a directory). Failing at `start`
/// instead gave other statuses and left Docker's shim a created task it could not
/// delete. Looked up on the host side, inside the rootfs (`RESOLVE_IN_ROOT`), before
/// the sandbox exists (the sandbox's file API would start a process in it, counted by
/// its pids limit); a path under a mount of config.json is left to `start`.
pub(crate) fn check_program(c: &Container) -> Result<(), OciError> {
    const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let (Some(root), Some(arg0)) = (&c.workload.root_dir, c.process.argv.first()) else {
        return Ok(());
    };
    let Ok(rootfd) = nix::fcntl::open(
        &root.path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return Ok(());
    };
    let mounted: Vec<&Path> = c
        .workload
        .mounts
        .iter()
        .map(|m| m.target_path())
        .chain(c.workload.tmpfs.iter().map(|t| t.target.as_path()))
        .chain([Path::new("/proc"), Path::new("/dev"), Path::new("/sys")])
        .collect();
    let searched = !arg0.contains('/');
    let candidates: Vec<std::path::PathBuf> = if searched {
        let path = c
            .process
            .env
            .get("PATH")
            .map_or(DEFAULT_PATH, String::as_str);
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join(arg0))
            .collect()
    } else {
        vec![Path::new(&c.process.cwd).join(arg0)]
    };
    if candidates.is_empty() || arg0.is_empty() {
        return Ok(());
    }
    for cand in &candidates {
        if mounted.iter().any(|m| cand.starts_with(m)) {
            return Ok(()); // what a mount holds is seen at `start`
        }
        let rel = Path::new(".").join(cand.strip_prefix("/").unwrap_or(cand));
        let why = match open_in(&rootfd, &rel, OFlag::O_PATH) {
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => continue,
            Err(_) => return Ok(()),
            Ok(fd) => match nix::sys::stat::fstat(&fd) {
                Err(_) => return Ok(()),
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => "is a directory",
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_mode & 0o111 == 0 => {
                    "permission denied"
                }
                Ok(_) => return Ok(()),
            },
        };
        // A search goes on past what cannot be run, as execvp does.
        if !searched {
            return Err(OciError::msg(format!("exec: \"{arg0}\": {why}")));
        }
    }
    Err(OciError::msg(if searched {
        format!("exec: \"{arg0}\": executable file not found in $PATH")
    } else {
        format!(
            "exec: \"{arg0}\": stat {}: no such file or directory",
            candidates[0].display()
        )
    }))
}

/// Whether `target` (absolute, resolved inside the rootfs) is anything but missing or
/// an empty directory.
fn has_entries(root: &Path, target: &Path) -> bool {
    let Ok(rootfd) = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return true;
    };
    let rel = Path::new(".").join(target.strip_prefix("/").unwrap_or(target));
    match open_in(&rootfd, &rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
        Err(nix::errno::Errno::ENOENT) => false,
        Err(_) => true,
        Ok(fd) => match nix::dir::Dir::from_fd(fd) {
            Ok(mut dir) => dir
                .iter()
                .any(|e| e.map_or(true, |e| !matches!(e.file_name().to_bytes(), b"." | b".."))),
            Err(_) => true,
        },
    }
}
