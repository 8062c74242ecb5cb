//! `hsb sandbox cp SRC DST`: files and directories into or out of a server's sandbox.
//! `ID:PATH` names a sandbox path; anything else is a local path. Symlinks are not
//! copied (they are named on stderr): a sandbox's link never becomes a host link.

use std::path::{Path, PathBuf};

use hsb_client::Client;
use hybrid_sandbox::{FileKind, Live};
use tokio::io::AsyncWriteExt;

use crate::sandbox_cmd::{usage, Failed};

/// `ID:PATH` (the path absolute), or a local path.
enum Spec {
    Remote { id: String, path: String },
    Local(PathBuf),
}

fn parse(s: &str) -> Spec {
    if let Some((id, path)) = s.split_once(':') {
        if !id.is_empty() && !id.contains('/') && path.starts_with('/') {
            return Spec::Remote {
                id: id.to_string(),
                path: path.to_string(),
            };
        }
    }
    Spec::Local(PathBuf::from(s))
}

fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

fn base_name(p: &str) -> &str {
    p.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

pub(crate) async fn run(c: &Client, src: &str, dst: &str) -> Result<i32, Failed> {
    match (parse(src), parse(dst)) {
        (Spec::Local(from), Spec::Remote { id, path }) => {
            let live = c.attach(&id).await?;
            let meta =
                std::fs::metadata(&from).map_err(|e| usage(format!("{}: {e}", from.display())))?;
            // Into an existing directory: under the source's name.
            let target = match live.stat(&path).await {
                Ok(st) if st.kind == FileKind::Dir => {
                    let name = from
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    join(&path, &name)
                }
                _ => path,
            };
            if meta.is_dir() {
                upload_dir(&live, &from, &target).await?;
            } else {
                upload(&live, &from, &target).await?;
            }
            Ok(0)
        }
        (Spec::Remote { id, path }, Spec::Local(to)) => {
            let live = c.attach(&id).await?;
            let st = live.stat(&path).await?;
            let target = if to.is_dir() {
                to.join(base_name(&path))
            } else {
                to
            };
            match st.kind {
                FileKind::Dir => download_dir(&live, &path, &target, st.mode).await?,
                FileKind::Symlink => {
                    // Followed inside the sandbox, as the workload would; the target's
                    // mode is not known, the local default stays.
                    download(&live, &path, &target, None).await?
                }
                _ => download(&live, &path, &target, Some(st.mode)).await?,
            }
            Ok(0)
        }
        (Spec::Remote { .. }, Spec::Remote { .. }) => Err(usage(
            "copying from sandbox to sandbox is not supported: copy through a local path",
        )),
        (Spec::Local(_), Spec::Local(_)) => Err(usage(
            "neither SRC nor DST names a sandbox (ID:/PATH); use cp for local copies",
        )),
    }
}

async fn upload(live: &Live, from: &Path, to: &str) -> Result<(), Failed> {
    let f = tokio::fs::File::open(from)
        .await
        .map_err(|e| usage(format!("{}: {e}", from.display())))?;
    use std::os::unix::fs::PermissionsExt;
    let mode = f
        .metadata()
        .await
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o644);
    live.write_file_stream(to, Box::pin(f), mode).await?;
    Ok(())
}

fn upload_dir<'a>(
    live: &'a Live,
    from: &'a Path,
    to: &'a str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Failed>> + 'a>> {
    Box::pin(async move {
        match live.mkdir(to, true).await {
            Ok(()) => {}
            Err(e) if e.kind() == "exists" => {}
            Err(e) => return Err(e.into()),
        }
        let mut entries: Vec<_> = std::fs::read_dir(from)
            .map_err(|e| usage(format!("{}: {e}", from.display())))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let target = join(to, &name);
            match e.file_type() {
                Ok(t) if t.is_dir() => upload_dir(live, &e.path(), &target).await?,
                Ok(t) if t.is_file() => upload(live, &e.path(), &target).await?,
                _ => eprintln!(
                    "hsb: skipped {} (not a file or directory)",
                    e.path().display()
                ),
            }
        }
        Ok(())
    })
}

/// Permission bits as `docker cp` keeps them: read, write and execute for the owner,
/// group and others; never set-id or sticky bits from a sandbox.
fn kept_mode(mode: u32) -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(mode & 0o777)
}

async fn download(live: &Live, from: &str, to: &Path, mode: Option<u32>) -> Result<(), Failed> {
    let mut s = live.read_file_stream(from).await?;
    let mut f = tokio::fs::File::create(to)
        .await
        .map_err(|e| usage(format!("{}: {e}", to.display())))?;
    tokio::io::copy(&mut s, &mut f).await.map_err(|e| {
        Failed(
            format!("copying {from} to {}: {e}", to.display()),
            125,
            "io",
        )
    })?;
    f.flush()
        .await
        .map_err(|e| usage(format!("{}: {e}", to.display())))?;
    if let Some(m) = mode {
        f.set_permissions(kept_mode(m))
            .await
            .map_err(|e| usage(format!("{}: {e}", to.display())))?;
    }
    Ok(())
}

/// Copies a sandbox directory; the mode of one it creates is set once its entries are
/// in (a read-only directory still receives them).
fn download_dir<'a>(
    live: &'a Live,
    from: &'a str,
    to: &'a Path,
    mode: u32,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Failed>> + 'a>> {
    Box::pin(async move {
        let created = match std::fs::create_dir(to) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && to.is_dir() => false,
            Err(e) => return Err(usage(format!("{}: {e}", to.display()))),
        };
        for e in live.list_dir(from).await? {
            // A name is one component: never `..`, never a path.
            if e.name.is_empty() || e.name == "." || e.name == ".." || e.name.contains('/') {
                continue;
            }
            let src = join(from, &e.name);
            let dst = to.join(&e.name);
            match e.kind {
                FileKind::Dir => download_dir(live, &src, &dst, e.mode).await?,
                FileKind::File => download(live, &src, &dst, Some(e.mode)).await?,
                _ => eprintln!("hsb: skipped {src} ({:?})", e.kind),
            }
        }
        // A directory that was there keeps its mode, as with cp -r.
        if created {
            std::fs::set_permissions(to, kept_mode(mode))
                .map_err(|e| usage(format!("{}: {e}", to.display())))?;
        }
        Ok(())
    })
}
