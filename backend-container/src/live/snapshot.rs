//! Snapshots of a live container: its writable layer only. Processes are not kept
//! (a container's processes are host processes: nothing copies them), and the result
//! says so ([`LiveSnapshot::kept`]).
//!
//! The writable layer of a container is its in-memory filesystems: `/tmp` and the
//! plan's tmpfs mounts (host mounts, read-write ones included, are the host's files:
//! they are not copied). Their files, directories (with modes) and symlinks are read
//! through the sandbox's own file API (as the workload would see them, never a host
//! path) and written back into a new live sandbox of the same plan on each start.
//! The copy is bounded ([`MAX_BYTES`], [`MAX_ENTRIES`]): past it the snapshot fails.
//! A FIFO, socket or device there makes it fail too, naming it. An image root's own
//! changes outside these filesystems are not kept (said in `kept`).
//!
//! Saved to a file (`file`), it loads in another process of this build into a
//! sandbox of the same plan.

mod file;

use std::sync::Arc;

use async_trait::async_trait;
use sandbox_core::{FileData, FileKind, Isolation, LiveError, LiveOptions, LiveSandbox, Plan};

/// Most bytes of file data a container snapshot holds.
const MAX_BYTES: u64 = 256 << 20;
/// Most entries (files, directories, symlinks).
const MAX_ENTRIES: usize = 100_000;

/// One entry of the writable layer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Saved {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Link {
        path: String,
        target: String,
    },
}

/// A snapshot of a live container.
#[derive(Debug)]
pub(crate) struct ContainerSnapshot {
    plan: Plan,
    options: LiveOptions,
    roots: Vec<String>,
    saved: Vec<Saved>,
    bytes: u64,
}

/// Reads the writable layer of `live` (a sandbox of `plan`).
pub(crate) async fn take(
    live: &dyn LiveSandbox,
    plan: Plan,
    options: LiveOptions,
) -> Result<ContainerSnapshot, LiveError> {
    let roots = roots_of(&plan);
    let mut saved = Vec::new();
    let mut bytes = 0u64;
    let mut stack: Vec<String> = roots.clone();
    while let Some(dir) = stack.pop() {
        let entries = match live.list_dir(&dir).await {
            Ok(e) => e,
            // A tmpfs root the plan names but nothing shows (never for /tmp).
            Err(LiveError::File { errno, .. }) if errno == libc::ENOENT => continue,
            Err(e) => return Err(e),
        };
        for e in entries {
            let path = format!("{}/{}", dir.trim_end_matches('/'), e.name);
            if saved.len() >= MAX_ENTRIES {
                return Err(too_big(format!("more than {MAX_ENTRIES} entries")));
            }
            match e.kind {
                FileKind::Dir => {
                    saved.push(Saved::Dir {
                        path: path.clone(),
                        mode: e.mode,
                    });
                    stack.push(path);
                }
                FileKind::File => {
                    let data = sandbox_core::live::read_to_end(live.read_file(&path).await?)
                        .await
                        .map_err(|err| LiveError::Failed(format!("reading {path}"), err))?;
                    bytes += data.len() as u64;
                    if bytes > MAX_BYTES {
                        return Err(too_big(format!("more than {MAX_BYTES} bytes of files")));
                    }
                    saved.push(Saved::File {
                        path,
                        mode: e.mode,
                        data,
                    });
                }
                FileKind::Symlink => saved.push(Saved::Link {
                    path,
                    target: e.link_target.unwrap_or_default(),
                }),
                FileKind::Other => {
                    return Err(LiveError::Unsupported(format!(
                        "a snapshot of a live container keeps files, directories and symlinks: {path} is none of them (a FIFO, socket or device)"
                    )))
                }
            }
        }
    }
    Ok(ContainerSnapshot {
        plan,
        options,
        roots,
        saved,
        bytes,
    })
}

/// The writable filesystems of a sandbox of `plan`: `/tmp` and its tmpfs mounts.
fn roots_of(plan: &Plan) -> Vec<String> {
    let mut roots = vec!["/tmp".to_string()];
    for t in &plan.tmpfs {
        let t = t.target.display().to_string();
        // One at /tmp is the sandbox's /tmp.
        if !roots.contains(&t) {
            roots.push(t);
        }
    }
    roots
}

/// Loads a container snapshot file (`LiveSnapshot::save`) open as `f`, named `name`
/// in errors, for sandboxes of `plan` (the one it was saved from) and `options`.
pub(crate) async fn load(
    f: std::fs::File,
    name: &str,
    plan: Plan,
    options: LiveOptions,
) -> Result<Arc<dyn sandbox_core::LiveSnapshot>, LiveError> {
    use std::io::Read;
    let failed = |why: String| {
        LiveError::Failed(
            format!("loading the snapshot file {name}"),
            std::io::Error::new(std::io::ErrorKind::InvalidData, why),
        )
    };
    let bytes = tokio::task::spawn_blocking(move || {
        let mut b = Vec::new();
        f.take(file::FILE_MAX + 1).read_to_end(&mut b).map(|_| b)
    })
    .await
    .map_err(|e| LiveError::Failed("loading a snapshot".into(), std::io::Error::other(e)))?
    .map_err(|e| failed(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > file::FILE_MAX {
        return Err(failed("larger than a container snapshot can be".into()));
    }
    let roots = roots_of(&plan);
    let d = match file::decode(&bytes, plan.fingerprint(), &roots) {
        Ok(d) => d,
        Err(file::Bad::File(why)) => return Err(failed(why)),
        Err(file::Bad::OtherPlan) => return Err(LiveError::Unsupported(format!(
            "the snapshot file {name} was saved from a sandbox with other settings (mounts, image, limits, network or environment): load it with the workload it was created with"
        ))),
    };
    Ok(Arc::new(ContainerSnapshot {
        plan,
        options,
        roots,
        saved: d.saved,
        bytes: d.bytes,
    }))
}

/// See `crate::fuzzing::decode_container_snapshot`.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_decode(body: &[u8]) -> bool {
    use sha2::Digest;
    let roots = ["/tmp".to_string(), "/work".to_string()];
    let mut b = Vec::with_capacity(body.len() + 76);
    b.extend_from_slice(file::MAGIC);
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&[0; 32]);
    b.extend_from_slice(body);
    let sum = sha2::Sha256::digest(&b);
    b.extend_from_slice(&sum);
    match file::decode(&b, [0; 32], &roots) {
        Ok(d) => {
            for s in &d.saved {
                let (Saved::Dir { path, .. } | Saved::File { path, .. } | Saved::Link { path, .. }) =
                    s;
                assert!(
                    path.starts_with("/tmp/") || path.starts_with("/work/"),
                    "{path}"
                );
                assert!(!path.split('/').any(|c| c == ".."), "{path}");
            }
            assert!(d.bytes <= MAX_BYTES);
            true
        }
        Err(_) => false,
    }
}

fn too_big(what: String) -> LiveError {
    LiveError::Limit {
        limit: "snapshot",
        value: format!("{MAX_BYTES} bytes, {MAX_ENTRIES} entries"),
        message: format!("the container's writable layer has {what}"),
    }
}

#[async_trait]
impl sandbox_core::LiveSnapshot for ContainerSnapshot {
    fn isolation(&self) -> Isolation {
        Isolation::Container
    }

    fn kept(&self) -> String {
        format!(
            "the writable layer only: the files, directories and symlinks of {} ({} entries, {} bytes); processes are not kept, nor an image root's changes outside these",
            self.roots.join(", "),
            self.saved.len(),
            self.bytes
        )
    }

    fn memory_bytes(&self) -> u64 {
        self.bytes
    }

    async fn save(&self, path: &std::path::Path) -> Result<u64, LiveError> {
        let bytes = self.encode();
        let p = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            sandbox_core::files::write_replacing(&p, |mut f| {
                std::io::Write::write_all(&mut f, &bytes)
            })
        })
        .await
        .map_err(|e| LiveError::Failed("saving a snapshot".into(), std::io::Error::other(e)))?
        .map_err(|e| LiveError::Failed(format!("saving the snapshot to {}", path.display()), e))?;
        Ok(self.bytes)
    }

    async fn save_to(&self, out: &std::fs::File) -> Result<u64, LiveError> {
        use std::io::Write;
        let bytes = self.encode();
        let mut out = out
            .try_clone()
            .map_err(|e| LiveError::Failed("saving the snapshot to a file".into(), e))?;
        tokio::task::spawn_blocking(move || out.write_all(&bytes))
            .await
            .map_err(|e| LiveError::Failed("saving a snapshot".into(), std::io::Error::other(e)))?
            .map_err(|e| LiveError::Failed("saving the snapshot to a file".into(), e))?;
        Ok(self.bytes)
    }

    async fn start(&self) -> Result<Arc<dyn LiveSandbox>, LiveError> {
        let live = super::create(self.plan.clone(), self.options.clone())
            .await
            .map_err(LiveError::Exec)?;
        if let Err(e) = self.restore(live.as_ref()).await {
            let _ = live.destroy().await;
            return Err(e);
        }
        Ok(live)
    }
}

impl ContainerSnapshot {
    /// Its file (see `file`).
    fn encode(&self) -> Vec<u8> {
        file::encode(self.plan.fingerprint(), &self.roots, &self.saved)
    }

    async fn restore(&self, live: &dyn LiveSandbox) -> Result<(), LiveError> {
        for s in &self.saved {
            match s {
                Saved::Dir { path, .. } => live.mkdir(path, true).await?,
                Saved::File { path, mode, data } => {
                    live.write_file(path, FileData::Bytes(data.clone()), *mode)
                        .await?;
                }
                Saved::Link { path, target } => {
                    run_tool(
                        live,
                        ["ln", "-s", "--", target.as_str(), path.as_str()],
                        &format!("making the symlink {path}"),
                    )
                    .await?;
                }
            }
        }
        // Directory modes last (a read-only directory takes no files); `mkdir` made
        // them 0755.
        for s in &self.saved {
            if let Saved::Dir { path, mode } = s {
                if mode & 0o7777 == 0o755 {
                    continue;
                }
                run_tool(
                    live,
                    ["chmod", &format!("{mode:o}"), "--", path.as_str()],
                    &format!("setting the mode of {path}"),
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// Runs a tool of the sandbox's own (`ln`, `chmod`) inside it, as the workload would:
/// a failure to start it or a non-zero exit is an error saying what it was `doing`,
/// with the tool's stderr.
async fn run_tool<const N: usize>(
    live: &dyn LiveSandbox,
    argv: [&str; N],
    doing: &str,
) -> Result<(), LiveError> {
    let failed = |why: String| LiveError::Failed(doing.to_string(), std::io::Error::other(why));
    let o = live
        .exec(sandbox_core::ExecRequest::new(argv))
        .await?
        .wait()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if o.exit_code != Some(0) {
        return Err(failed(String::from_utf8_lossy(&o.stderr).into_owned()));
    }
    Ok(())
}
