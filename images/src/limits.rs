//! What an import may cost: bounds per layer and per image, and the names they go by
//! in errors, the policy (`image_limits.KEY`) and the CLI (`--max-KEY`).

use std::fmt;

/// Bounds on what one layer may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Largest single file (`file_bytes`).
    pub max_file: u64,
    /// The layer's uncompressed size (its tar stream: headers, file data, padding), and
    /// the file data it unpacks to, each at most this (`layer_bytes`). A compressed
    /// blob larger than this is refused before it is read.
    pub max_total: u64,
    /// Number of entries: files, directories, links, whiteouts (`layer_entries`).
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_file: 4 << 30,
            max_total: 16 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// Bounds on a whole image, all its layers together (layers already in the store
/// count too: an image's size does not depend on what was imported before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerImageLimits {
    /// Number of layers (`layers`).
    pub max_layers: u64,
    /// Uncompressed size of all layers together (`image_bytes`).
    pub max_total: u64,
    /// Entries of all layers together (`image_entries`).
    pub max_entries: u64,
}

impl Default for PerImageLimits {
    fn default() -> Self {
        PerImageLimits {
            max_layers: 128,
            max_total: 32 << 30,
            max_entries: 2_000_000,
        }
    }
}

/// One of the import limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// Layers of an image.
    Layers,
    /// Uncompressed bytes of an image.
    ImageBytes,
    /// Entries of an image.
    ImageEntries,
    /// Uncompressed bytes of a layer.
    LayerBytes,
    /// Entries of a layer.
    LayerEntries,
    /// Size of one file.
    FileBytes,
}

impl LimitKind {
    /// Its key in a policy's `image_limits` table.
    pub fn key(self) -> &'static str {
        match self {
            LimitKind::Layers => "layers",
            LimitKind::ImageBytes => "image_bytes",
            LimitKind::ImageEntries => "image_entries",
            LimitKind::LayerBytes => "layer_bytes",
            LimitKind::LayerEntries => "layer_entries",
            LimitKind::FileBytes => "file_bytes",
        }
    }

    /// Whether it counts bytes (else a number of things).
    pub fn is_bytes(self) -> bool {
        matches!(
            self,
            LimitKind::ImageBytes | LimitKind::LayerBytes | LimitKind::FileBytes
        )
    }

    /// `value` in the limit's unit, for messages.
    pub fn show(self, value: u64) -> String {
        if self.is_bytes() {
            bytes(value)
        } else {
            value.to_string()
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A byte count in the units the policy uses (`16GiB`, `1.5MiB`, `100B`).
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if n >= size {
            return if n % size == 0 {
                format!("{}{unit}", n / size)
            } else {
                format!("{:.1}{unit}", n as f64 / size as f64)
            };
        }
    }
    format!("{n}B")
}

/// One cap of a layer's unpack: the value in force, which limit it comes from, and
/// that limit's configured value (what errors show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cap {
    pub(crate) cap: u64,
    pub(crate) kind: LimitKind,
    pub(crate) limit: u64,
}

/// The limits one layer's unpack works under: the layer's own, lowered to what the
/// image has left.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerBudget {
    pub(crate) max_file: u64,
    pub(crate) bytes: Cap,
    pub(crate) entries: Cap,
}

impl LayerBudget {
    /// `left` is what the image has left of `image` (the image's limits).
    pub(crate) fn new(layer: &UnpackLimits, image: &PerImageLimits, left: (u64, u64)) -> Self {
        let pick = |own: u64, own_kind, left: u64, image_kind, image_limit| {
            if left < own {
                Cap {
                    cap: left,
                    kind: image_kind,
                    limit: image_limit,
                }
            } else {
                Cap {
                    cap: own,
                    kind: own_kind,
                    limit: own,
                }
            }
        };
        LayerBudget {
            max_file: layer.max_file,
            bytes: pick(
                layer.max_total,
                LimitKind::LayerBytes,
                left.0,
                LimitKind::ImageBytes,
                image.max_total,
            ),
            entries: pick(
                layer.max_entries,
                LimitKind::LayerEntries,
                left.1,
                LimitKind::ImageEntries,
                image.max_entries,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_like_the_policy() {
        assert_eq!(bytes(16 << 30), "16GiB");
        assert_eq!(bytes(1536 << 10), "1.5MiB");
        assert_eq!(bytes(100), "100B");
        let image = PerImageLimits::default();
        let b = LayerBudget::new(&UnpackLimits::default(), &image, (1 << 30, u64::MAX));
        assert_eq!(
            (b.bytes.cap, b.bytes.kind, b.bytes.limit),
            (1 << 30, LimitKind::ImageBytes, 32 << 30)
        );
        assert_eq!(b.entries.kind, LimitKind::LayerEntries);
    }
}
