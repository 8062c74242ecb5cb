//! Limits on importing an OCI image: how many layers, how many bytes and entries per
//! image and per layer, how large one file. An image is imported when `hsb image
//! import` reads it, or when a run names a path (`--image PATH`) not imported yet.

use serde::{Deserialize, Deserializer, Serialize};

use crate::units::ByteSize;

/// Image import limits (`image_limits` in a profile or the floor, `--max-*` on the
/// command line). Each one unset takes its default ([`ImageLimits::DEFAULTS`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageLimits {
    /// Layers of an image.
    #[serde(
        default,
        deserialize_with = "de::layers",
        skip_serializing_if = "Option::is_none"
    )]
    pub layers: Option<u64>,
    /// Uncompressed size of all of an image's layers together.
    #[serde(
        default,
        deserialize_with = "de::image_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub image_bytes: Option<ByteSize>,
    /// Entries (files, directories, links) of all of an image's layers together.
    #[serde(
        default,
        deserialize_with = "de::image_entries",
        skip_serializing_if = "Option::is_none"
    )]
    pub image_entries: Option<u64>,
    /// Uncompressed size of one layer (and the file data it unpacks to).
    #[serde(
        default,
        deserialize_with = "de::layer_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub layer_bytes: Option<ByteSize>,
    /// Entries of one layer.
    #[serde(
        default,
        deserialize_with = "de::layer_entries",
        skip_serializing_if = "Option::is_none"
    )]
    pub layer_entries: Option<u64>,
    /// Size of one file in a layer.
    #[serde(
        default,
        deserialize_with = "de::file_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_bytes: Option<ByteSize>,
}

const MAX_COUNT: u64 = 1 << 32;
const MAX_BYTES: u64 = 1 << 50;

fn count<'de, D: Deserializer<'de>>(d: D, key: &str) -> Result<Option<u64>, D::Error> {
    let v = u64::deserialize(d)?;
    check_count(v).map_err(|m| serde::de::Error::custom(format!("{key}: {m}")))?;
    Ok(Some(v))
}

fn size<'de, D: Deserializer<'de>>(d: D, key: &str) -> Result<Option<ByteSize>, D::Error> {
    let v = ByteSize::deserialize(d)?;
    check_size(v).map_err(|m| serde::de::Error::custom(format!("{key}: {m}")))?;
    Ok(Some(v))
}

/// One deserializer per key, so that a bad value's message names its key.
mod de {
    use super::*;
    macro_rules! field {
        ($f:ident, $kind:ident, $t:ty) => {
            pub(super) fn $f<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$t>, D::Error> {
                super::$kind(d, stringify!($f))
            }
        };
    }
    field!(layers, count, u64);
    field!(image_bytes, size, ByteSize);
    field!(image_entries, count, u64);
    field!(layer_bytes, size, ByteSize);
    field!(layer_entries, count, u64);
    field!(file_bytes, size, ByteSize);
}

fn check_count(v: u64) -> Result<(), String> {
    if (1..=MAX_COUNT).contains(&v) {
        Ok(())
    } else {
        Err(format!("{v} is out of range (1 to {MAX_COUNT})"))
    }
}

fn check_size(v: ByteSize) -> Result<(), String> {
    if (1..=MAX_BYTES).contains(&v.0) {
        Ok(())
    } else {
        Err(format!(
            "{v} is out of range (1B to {})",
            ByteSize(MAX_BYTES)
        ))
    }
}

macro_rules! each_limit {
    ($m:ident) => {
        $m!(layers, count);
        $m!(image_bytes, size);
        $m!(image_entries, count);
        $m!(layer_bytes, size);
        $m!(layer_entries, count);
        $m!(file_bytes, size);
    };
}

impl ImageLimits {
    /// The defaults: 128 layers, 32GiB and 2,000,000 entries per image; 16GiB and
    /// 1,000,000 entries per layer; 4GiB per file. Large real images (CUDA, full
    /// distributions) are a few GiB and a few hundred thousand files in under 100
    /// layers.
    pub const DEFAULTS: ImageLimits = ImageLimits {
        layers: Some(128),
        image_bytes: Some(ByteSize(32 << 30)),
        image_entries: Some(2_000_000),
        layer_bytes: Some(ByteSize(16 << 30)),
        layer_entries: Some(1_000_000),
        file_bytes: Some(ByteSize(4 << 30)),
    };

    /// Each limit set in `other` replaces the one here.
    pub fn overlay(&mut self, other: &ImageLimits) {
        macro_rules! take {
            ($f:ident, $k:ident) => {
                if other.$f.is_some() {
                    self.$f = other.$f;
                }
            };
        }
        each_limit!(take);
    }

    /// Every limit set: the unset ones take their defaults.
    pub fn with_defaults(&self) -> ImageLimits {
        let mut out = ImageLimits::DEFAULTS;
        out.overlay(self);
        out
    }

    /// Checks each set value's range; the error names the key.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        macro_rules! check {
            ($f:ident, count) => {
                if let Some(v) = self.$f {
                    check_count(v).map_err(|m| (stringify!($f), m))?;
                }
            };
            ($f:ident, size) => {
                if let Some(v) = self.$f {
                    check_size(v).map_err(|m| (stringify!($f), m))?;
                }
            };
        }
        each_limit!(check);
        Ok(())
    }

    /// The limits of `self` above `max`, as (key, "VALUE (maximum MAX)").
    pub fn exceeding(&self, max: &ImageLimits) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        macro_rules! over {
            ($f:ident, $k:ident) => {
                if let (Some(v), Some(m)) = (self.$f, max.$f) {
                    if v > m {
                        out.push((stringify!($f), format!("{v} (maximum {m})")));
                    }
                }
            };
        }
        each_limit!(over);
        out
    }

    /// Each limit lowered to `max`'s where `max` sets one (unset ones included).
    pub fn lowered_to(&self, max: &ImageLimits) -> ImageLimits {
        let mut out = *self;
        macro_rules! low {
            ($f:ident, $k:ident) => {
                out.$f = match (out.$f, max.$f) {
                    (Some(v), Some(m)) => Some(v.min(m)),
                    (v, m) => v.or(m),
                };
            };
        }
        each_limit!(low);
        out
    }

    /// The stricter of two sets of maxima, limit by limit.
    pub fn min_of(&self, other: &ImageLimits) -> ImageLimits {
        self.lowered_to(other)
    }

    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == ImageLimits::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layering_and_maxima() {
        let mut l = ImageLimits {
            layers: Some(10),
            ..Default::default()
        };
        l.overlay(&ImageLimits {
            image_bytes: Some(ByteSize::mib(1)),
            ..Default::default()
        });
        let full = l.with_defaults();
        assert_eq!(full.layers, Some(10));
        assert_eq!(full.image_bytes, Some(ByteSize::mib(1)));
        assert_eq!(full.layer_entries, ImageLimits::DEFAULTS.layer_entries);
        let max = ImageLimits {
            layers: Some(4),
            ..Default::default()
        };
        assert_eq!(
            l.exceeding(&max),
            [("layers", "10 (maximum 4)".to_string())]
        );
        assert_eq!(full.lowered_to(&max).layers, Some(4));
        assert!(ImageLimits {
            layers: Some(0),
            ..Default::default()
        }
        .check()
        .is_err());
    }
}
