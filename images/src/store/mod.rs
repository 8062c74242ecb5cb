//! The image store: imported images (records) and their unpacked layers, shared by all
//! runs and safe under concurrent use.
//!
//! ```text
//! <root>/layers/sha256/<diff_id>/     an unpacked layer (read-only once renamed into place)
//! <root>/layers/sha256/<diff_id>.lock shared-locked by runs using it, exclusively by gc
//! <root>/images/<name>.json           an imported image: config and layer list
//! <root>/layers/sha256/<diff_id>.json what the layer holds (bytes, entries), for limits
//! <root>/images/<name>.json           an imported image: config and layer list
//! <root>/tmp/                         unpacks in progress (renamed into place, never copied)
//! <root>/import.lock                  shared-locked by imports; see [`scratch`]
//! ```
//! An import is all or nothing: its layers are unpacked and verified in `tmp/`, and
//! published (renamed into place) only once every layer passed, within the limits; a
//! refused image leaves nothing behind, and an import killed midway leaves only scratch
//! space that the next import removes. Two processes importing the same layer unpack it
//! side by side; the first rename wins and the other copy is dropped. A layer in use by
//! a run, or by an import under way, is never removed.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

mod layer;
mod scratch;

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use crate::error::{io, ImageError};
use crate::limits::{LayerBudget, LimitKind, PerImageLimits, UnpackLimits};
use crate::source::{self, Parsed, Source};
use crate::unpack::UnpackOptions;
use layer::{layer_dir, LayerMeta, Pending};
use scratch::{open_lock, remove_tree};

/// What an image's config asks of a run (OCI `config` section).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// CMD.
    pub cmd: Vec<String>,
    /// ENV, as `KEY=VALUE`.
    pub env: Vec<String>,
    /// WORKDIR.
    pub working_dir: Option<String>,
    /// USER (`uid`, `uid:gid`, or a name).
    pub user: Option<String>,
}

/// An imported image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Its name in the store.
    pub name: String,
    /// Where it was imported from.
    pub source: String,
    /// Size and mtime of the source when imported (a path run again is not re-read).
    pub source_fingerprint: (u64, i64),
    /// sha256 of the manifest.
    pub manifest_digest: String,
    /// sha256 of the config.
    pub config_digest: String,
    /// diff_ids of the layers, lowest first.
    pub layers: Vec<String>,
    /// The config.
    pub config: ImageConfig,
    /// Bytes of unpacked file data, all layers together.
    pub size: u64,
    /// Tags the source carried.
    pub tags: Vec<String>,
}

/// How to import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Clear setuid/setgid bits instead of refusing layers that have them.
    pub strip_setuid: bool,
    /// Size limits per layer.
    pub limits: UnpackLimits,
    /// Limits on the whole image.
    pub image_limits: PerImageLimits,
    /// Owner of unpacked files (root importing for sandboxes that run as another uid).
    pub owner: Option<(u32, u32)>,
}

/// Layers of an image, locked against removal while a run uses them.
#[derive(Debug)]
pub struct LayersInUse {
    /// Unpacked layer directories, lowest first.
    pub dirs: Vec<PathBuf>,
    _locks: Vec<fs::File>,
}

/// The image store.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

fn name_file(name: &str) -> String {
    // Names may contain `/` and `:` (`library/busybox:1.36`); keep them readable.
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '+'
            }
        })
        .collect()
}

fn fingerprint(p: &Path) -> (u64, i64) {
    fs::metadata(p)
        .map(|m| (m.size(), m.mtime_nsec() + m.mtime() * 1_000_000_000))
        .unwrap_or((0, 0))
}

impl ImageStore {
    /// A store at `root` (created on first write).
    pub fn at(root: impl Into<PathBuf>) -> ImageStore {
        ImageStore { root: root.into() }
    }

    /// The default store: `$HSB_IMAGE_STORE`, else `/var/lib/hybrid-sandbox/images` for
    /// root, else `$XDG_CACHE_HOME` (or `~/.cache`) `/hybrid-sandbox/images`.
    pub fn default_location() -> PathBuf {
        if let Some(p) = std::env::var_os("HSB_IMAGE_STORE") {
            return PathBuf::from(p);
        }
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/lib/hybrid-sandbox/images");
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        base.join("hybrid-sandbox/images")
    }

    /// Where the store lives.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn layer_dir(&self, diff_id: &str) -> PathBuf {
        layer_dir(&self.root, diff_id)
    }

    fn lock_path(&self, diff_id: &str) -> PathBuf {
        self.root
            .join("layers/sha256")
            .join(format!("{diff_id}.lock"))
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.root
            .join("images")
            .join(format!("{}.json", name_file(name)))
    }

    fn ensure_dirs(&self) -> Result<(), ImageError> {
        for d in ["layers/sha256", "images", "tmp"] {
            let p = self.root.join(d);
            fs::create_dir_all(&p).map_err(io(format!("creating {}", p.display())))?;
        }
        Ok(())
    }

    /// Imports the image at `path` (an OCI layout directory or a tarball) under `name`
    /// (default: its first tag, else its path). Layers already in the store are not
    /// unpacked again. All or nothing: a refused image leaves nothing in the store.
    pub fn import(
        &self,
        path: &Path,
        name: Option<&str>,
        opts: ImportOptions,
    ) -> Result<ImageRecord, ImageError> {
        self.ensure_dirs()?;
        let _import = scratch::begin_import(&self.root)?;
        let max_tar_entries = opts
            .image_limits
            .max_layers
            .saturating_mul(8)
            .saturating_add(64)
            .max(16_384);
        let src = Source::open(path, max_tar_entries)?;
        let parsed: Parsed = source::parse(&src)?;
        let layers = parsed.layers.len() as u64;
        if layers > opts.image_limits.max_layers {
            return Err(ImageError::Limit {
                scope: format!("image {}", src.name),
                entry: None,
                limit: LimitKind::Layers,
                max: opts.image_limits.max_layers,
                found: format!("it has {layers} layers"),
            });
        }
        let (pending, size, mut held) = self.unpack_all(&src, &parsed, opts)?;
        for p in pending {
            // Held from before it is published until the record names it.
            held.push(self.hold(&p.diff_id)?);
            let dir = self.layer_dir(&p.diff_id);
            p.publish(&dir)?;
        }
        let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let name = name
            .map(String::from)
            .or_else(|| parsed.tags.first().cloned())
            .unwrap_or_else(|| canonical.display().to_string());
        let c = parsed.config.config().clone().unwrap_or_default();
        let record = ImageRecord {
            name: name.clone(),
            source: canonical.display().to_string(),
            source_fingerprint: fingerprint(path),
            manifest_digest: parsed.manifest_digest,
            config_digest: parsed.config_digest,
            layers: parsed.layers.iter().map(|l| l.diff_id.clone()).collect(),
            config: ImageConfig {
                entrypoint: c.entrypoint().clone().unwrap_or_default(),
                cmd: c.cmd().clone().unwrap_or_default(),
                env: c.env().clone().unwrap_or_default(),
                working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
                user: c.user().clone().filter(|u| !u.is_empty()),
            },
            size,
            tags: parsed.tags,
        };
        self.write_record(&record)?;
        Ok(record)
    }

    /// Unpacks the layers the store lacks into the scratch space, counting every layer
    /// (new or not) against the image's limits. Returns the layers to publish, the
    /// image's file bytes, and shared locks that keep its layers from `gc` until the
    /// record is written.
    fn unpack_all(
        &self,
        src: &Source,
        parsed: &Parsed,
        opts: ImportOptions,
    ) -> Result<(Vec<Pending>, u64, Vec<fs::File>), ImageError> {
        let uopts = UnpackOptions {
            limits: opts.limits,
            strip_setuid: opts.strip_setuid,
            owner: opts.owner,
        };
        let limits = opts.image_limits;
        let (mut bytes_left, mut entries_left) = (limits.max_total, limits.max_entries);
        let mut pending: Vec<Pending> = Vec::new();
        let mut held = Vec::new();
        let mut size = 0u64;
        let tmp = self.root.join("tmp");
        for spec in &parsed.layers {
            let dir = self.layer_dir(&spec.diff_id);
            let meta = if let Some(p) = pending.iter().find(|p| p.diff_id == spec.diff_id) {
                p.meta
            } else if dir.is_dir() {
                held.push(self.hold(&spec.diff_id)?);
                LayerMeta::of(&dir)
            } else {
                let budget = LayerBudget::new(&uopts.limits, &limits, (bytes_left, entries_left));
                let p = layer::unpack_layer(src, spec, &tmp, uopts, budget)?;
                let meta = p.meta;
                pending.push(p);
                meta
            };
            let over = |limit, max, found: String| ImageError::Limit {
                scope: format!("image {}", src.name),
                entry: None,
                limit,
                max,
                found,
            };
            bytes_left = bytes_left.checked_sub(meta.size()).ok_or_else(|| {
                over(
                    LimitKind::ImageBytes,
                    limits.max_total,
                    format!(
                        "its layers unpack to more than that together (at layer {})",
                        spec.diff_id
                    ),
                )
            })?;
            entries_left = entries_left.checked_sub(meta.entries).ok_or_else(|| {
                over(
                    LimitKind::ImageEntries,
                    limits.max_entries,
                    format!(
                        "its layers have more entries than that together (at layer {})",
                        spec.diff_id
                    ),
                )
            })?;
            size += meta.bytes;
        }
        Ok((pending, size, held))
    }

    /// A shared lock on a layer: no `gc` removes it while held.
    fn hold(&self, diff_id: &str) -> Result<fs::File, ImageError> {
        let lock = open_lock(&self.lock_path(diff_id))?;
        rustix::fs::flock(&lock, FlockOperation::LockShared)
            .map_err(|e| io("locking a layer")(e.into()))?;
        Ok(lock)
    }

    fn write_record(&self, r: &ImageRecord) -> Result<(), ImageError> {
        let path = self.record_path(&r.name);
        let tmp = self.root.join("tmp").join(format!(
            "record-{}-{}",
            std::process::id(),
            name_file(&r.name)
        ));
        let text = serde_json::to_vec_pretty(r).unwrap_or_default();
        fs::write(&tmp, text).map_err(io(format!("writing {}", tmp.display())))?;
        fs::rename(&tmp, &path).map_err(io(format!("writing {}", path.display())))
    }

    /// An image by name, or by path (imported on first use; a path already imported and
    /// unchanged since is not read again).
    pub fn get(&self, reference: &str, opts: ImportOptions) -> Result<ImageRecord, ImageError> {
        if let Some(r) = self.find(reference)? {
            if r.layers.iter().all(|l| self.layer_dir(l).is_dir()) {
                return Ok(r);
            }
        }
        let path = Path::new(reference);
        if path.exists() {
            let canonical = fs::canonicalize(path).map_err(io(format!("resolving {reference}")))?;
            let key = canonical.display().to_string();
            if let Some(r) = self.find(&key)? {
                if r.source_fingerprint == fingerprint(path)
                    && r.layers.iter().all(|l| self.layer_dir(l).is_dir())
                {
                    return Ok(r);
                }
            }
            return self.import(path, Some(&key), opts);
        }
        Err(ImageError::NotFound(reference.to_string()))
    }

    fn find(&self, name: &str) -> Result<Option<ImageRecord>, ImageError> {
        let p = self.record_path(name);
        match fs::read(&p) {
            Ok(bytes) => {
                let r: ImageRecord = serde_json::from_slice(&bytes).map_err(|_| {
                    io(format!(
                        "reading {}: not an image record (remove it, and import the image again)",
                        p.display()
                    ))(std::io::Error::from(std::io::ErrorKind::InvalidData))
                })?;
                Ok((r.name == name).then_some(r))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(format!("reading {}", p.display()))(e)),
        }
    }

    /// Every imported image.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let dir = self.root.join("images");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            if let Ok(bytes) = fs::read(e.path()) {
                if let Ok(r) = serde_json::from_slice::<ImageRecord>(&bytes) {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes an image, and the layers no other image uses and no run holds.
    /// Returns the number of layers removed.
    pub fn remove(&self, name: &str) -> Result<usize, ImageError> {
        if self.find(name)?.is_none() {
            return Err(ImageError::NotFound(name.to_string()));
        }
        let p = self.record_path(name);
        fs::remove_file(&p).map_err(io(format!("removing {}", p.display())))?;
        self.gc()
    }

    /// Removes layers no image references and no run or import holds, and what dead
    /// imports left in the scratch space.
    pub fn gc(&self) -> Result<usize, ImageError> {
        if self.root.join("tmp").is_dir() {
            scratch::clean_if_idle(&self.root)?;
        }
        let referenced: std::collections::HashSet<String> =
            self.list()?.into_iter().flat_map(|r| r.layers).collect();
        let dir = self.root.join("layers/sha256");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut removed = 0;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json") {
                // Metadata whose layer is gone (an import died between the two renames).
                if !dir.join(id).exists() && !referenced.contains(id) {
                    let _ = fs::remove_file(e.path());
                }
                continue;
            }
            if name.ends_with(".lock") || referenced.contains(&name) {
                continue;
            }
            let lock = open_lock(&dir.join(format!("{name}.lock")))?;
            if rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
                remove_tree(&e.path());
                let _ = fs::remove_file(dir.join(format!("{name}.json")));
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The image's layer directories, locked (shared) against removal until dropped.
    pub fn lock_layers(&self, r: &ImageRecord) -> Result<LayersInUse, ImageError> {
        let mut dirs = Vec::new();
        let mut locks = Vec::new();
        for l in &r.layers {
            let lock = open_lock(&self.lock_path(l))?;
            rustix::fs::flock(&lock, FlockOperation::LockShared)
                .map_err(|e| io("locking a layer")(e.into()))?;
            let d = self.layer_dir(l);
            if !d.is_dir() {
                return Err(ImageError::NotFound(format!(
                    "{} (layer {l} is missing: import it again)",
                    r.name
                )));
            }
            dirs.push(d);
            locks.push(lock);
        }
        Ok(LayersInUse {
            dirs,
            _locks: locks,
        })
    }
}
