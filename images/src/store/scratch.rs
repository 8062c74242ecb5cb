//! The store's scratch space: where layers are unpacked before they are published, and
//! how what a killed import left there is cleaned.
//!
//! Every import holds `<root>/import.lock` shared for its whole duration. An import (or
//! `gc`) that can take it exclusively knows no import is running anywhere, so whatever
//! is in `<root>/tmp/` was left by an import that died (`kill -9`, a crash, a power
//! cut) and is removed. A layer is only ever published by renaming a complete, verified
//! tree out of the scratch space, so a half-written layer is never seen, let alone
//! reused.

use std::fs;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::error::{io, rio, ImageError};

/// Held (shared) while an import runs.
#[derive(Debug)]
pub(super) struct ImportLock {
    _file: fs::File,
}

pub(super) fn open_lock(p: &Path) -> Result<fs::File, ImageError> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(io(format!("opening {}", p.display())))
}

/// Removes what dead imports left in `tmp`, if no import is running.
pub(super) fn clean_if_idle(root: &Path) -> Result<(), ImageError> {
    let lock = open_lock(&root.join("import.lock"))?;
    if rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
        clean(&root.join("tmp"));
    }
    Ok(())
}

fn clean(tmp: &Path) {
    if let Ok(rd) = fs::read_dir(tmp) {
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => remove_tree(&p),
                _ => {
                    let _ = fs::remove_file(&p);
                }
            }
        }
    }
}

/// Starts an import: cleans the scratch space if no other import runs, then holds the
/// import lock shared.
pub(super) fn begin_import(root: &Path) -> Result<ImportLock, ImageError> {
    let file = open_lock(&root.join("import.lock"))?;
    if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
        clean(&root.join("tmp"));
    }
    // Converts an exclusive lock, or waits out another's cleaning.
    rustix::fs::flock(&file, FlockOperation::LockShared).map_err(rio("locking the image store"))?;
    Ok(ImportLock { _file: file })
}

/// A directory of the scratch space, removed (whatever is left in it) when dropped.
#[derive(Debug)]
pub(super) struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A fresh directory with an empty `root/` inside.
    pub(super) fn new(parent: &Path, hint: &str) -> Result<ScratchDir, ImageError> {
        for i in 0..100u32 {
            let p = parent.join(format!(
                "{}-{}-{}-{i}",
                &hint[..hint.len().min(16)],
                std::process::id(),
                nanos()
            ));
            match fs::create_dir(&p) {
                Ok(()) => {
                    let dir = ScratchDir { path: p };
                    fs::create_dir(dir.root())
                        .map_err(io(format!("creating {}", dir.path.display())))?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(format!("creating {}", p.display()))(e)),
            }
        }
        Err(io("creating a temporary directory")(std::io::Error::other(
            "too many attempts",
        )))
    }

    /// Where the layer is unpacked.
    pub(super) fn root(&self) -> PathBuf {
        self.path.join("root")
    }

    /// A file next to the root (the layer's metadata before it is published).
    pub(super) fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        remove_tree(&self.path);
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Removes a tree we created, making read-only directories writable first.
pub(super) fn remove_tree(p: &Path) {
    if fs::remove_dir_all(p).is_ok() || !p.exists() {
        return;
    }
    fn chmod_all(p: &Path) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = fs::symlink_metadata(p) {
            if m.is_dir() {
                let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
                if let Ok(rd) = fs::read_dir(p) {
                    for e in rd.flatten() {
                        chmod_all(&e.path());
                    }
                }
            }
        }
    }
    chmod_all(p);
    let _ = fs::remove_dir_all(p);
}
