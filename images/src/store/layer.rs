//! One layer of an import: found in the store, or unpacked into the scratch space and
//! verified, to be published with the rest of the image.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::scratch::ScratchDir;
use crate::error::{io, ImageError};
use crate::limits::{LayerBudget, LimitKind};
use crate::source::{LayerSpec, Source};
use crate::unpack::{self, UnpackOptions};

/// What a layer holds, kept next to it (`<diff_id>.json`) so an image's totals do not
/// depend on which of its layers were already in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LayerMeta {
    /// Bytes of file data.
    pub(super) bytes: u64,
    /// Bytes of the uncompressed layer.
    pub(super) stream_bytes: u64,
    /// Entries.
    pub(super) entries: u64,
}

impl LayerMeta {
    /// What the layer counts against the image's byte limit.
    pub(super) fn size(&self) -> u64 {
        self.bytes.max(self.stream_bytes)
    }

    /// The metadata of a published layer; for a layer published before metadata was
    /// kept, counted from the tree (without following links).
    pub(super) fn of(dir: &Path) -> LayerMeta {
        let meta_path = dir.with_extension("json");
        if let Some(m) = fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<LayerMeta>(&b).ok())
        {
            return m;
        }
        let mut m = LayerMeta::default();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                m.entries += 1;
                if let Ok(md) = e.metadata() {
                    if md.is_dir() {
                        stack.push(e.path());
                    } else if md.is_file() {
                        m.bytes += md.len();
                    }
                }
            }
        }
        m.stream_bytes = m.bytes;
        m
    }
}

/// A layer unpacked and verified in the scratch space, not yet published.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) dir: ScratchDir,
    pub(super) diff_id: String,
    pub(super) meta: LayerMeta,
}

impl Pending {
    /// Publishes the layer at `final_dir` (its metadata first): a rename, so the layer
    /// appears whole or not at all. Another import that published it first wins.
    pub(super) fn publish(self, final_dir: &Path) -> Result<(), ImageError> {
        let meta_tmp = self.dir.file("meta.json");
        let text = serde_json::to_vec(&self.meta).unwrap_or_default();
        fs::write(&meta_tmp, text).map_err(io(format!("writing {}", meta_tmp.display())))?;
        let meta_final = final_dir.with_extension("json");
        fs::rename(&meta_tmp, &meta_final)
            .map_err(io(format!("writing {}", meta_final.display())))?;
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            self.dir.root(),
            rustix::fs::CWD,
            final_dir,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) | Err(rustix::io::Errno::EXIST) | Err(rustix::io::Errno::NOTEMPTY) => Ok(()),
            Err(e) => Err(io(format!("publishing layer {}", self.diff_id))(e.into())),
        }
    }
}

/// Unpacks `layer` from `src` into a new scratch directory under `tmp`, within `budget`,
/// and checks its digests.
pub(super) fn unpack_layer(
    src: &Source,
    layer: &LayerSpec,
    tmp: &Path,
    opts: UnpackOptions,
    budget: LayerBudget,
) -> Result<Pending, ImageError> {
    let blob = src.open_file(&layer.blob)?;
    if let Some(declared) = layer.blob_size {
        if blob.size != declared {
            return Err(src.malformed(format!(
                "layer blob {} is {} bytes, but the manifest says {declared}",
                layer.blob, blob.size
            )));
        }
    }
    if blob.size > opts.limits.max_total {
        return Err(ImageError::Limit {
            scope: format!("layer {}", layer.diff_id),
            entry: None,
            limit: LimitKind::LayerBytes,
            max: opts.limits.max_total,
            found: format!(
                "its blob alone is {} bytes, before decompression",
                blob.size
            ),
        });
    }
    let dir = ScratchDir::new(tmp, &layer.diff_id)?;
    let out = unpack::unpack(blob.reader, &dir.root(), &layer.diff_id, opts, budget)?;
    if let Some(expected) = &layer.blob_digest {
        if out.blob_digest != expected.hex() {
            return Err(ImageError::DigestMismatch {
                what: format!("layer blob {}", layer.blob),
                expected: expected.to_string(),
                actual: out.blob_digest,
            });
        }
    }
    if out.diff_id != layer.diff_id {
        return Err(ImageError::DigestMismatch {
            what: format!("layer {} (uncompressed)", layer.blob),
            expected: format!("sha256:{}", layer.diff_id),
            actual: out.diff_id,
        });
    }
    Ok(Pending {
        dir,
        diff_id: layer.diff_id.clone(),
        meta: LayerMeta {
            bytes: out.bytes,
            stream_bytes: out.stream_bytes,
            entries: out.entries,
        },
    })
}

/// `<root>/layers/sha256/<diff_id>`.
pub(super) fn layer_dir(root: &Path, diff_id: &str) -> PathBuf {
    root.join("layers/sha256").join(diff_id)
}
