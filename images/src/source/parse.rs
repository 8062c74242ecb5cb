//! What an image source says about the image: its manifest, config and layers, every
//! digest verified, every name checked before anything is opened by it.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest, Sha256 as Hasher};

use super::Source;
use crate::error::ImageError;
use crate::name::{shown, EntryName, Sha256};

/// A layer to import: where its blob is and the digests that vouch for it.
#[derive(Debug, Clone)]
pub(crate) struct LayerSpec {
    /// The blob's name inside the source.
    pub(crate) blob: EntryName,
    /// The blob's digest, when the manifest names one (OCI).
    pub(crate) blob_digest: Option<Sha256>,
    /// The blob's size, when the manifest names one (OCI).
    pub(crate) blob_size: Option<u64>,
    /// The digest of the uncompressed layer (hex), from the config's rootfs.diff_ids.
    pub(crate) diff_id: String,
}

/// What an image source says about the image.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) manifest_digest: String,
    pub(crate) config_digest: String,
    pub(crate) config: ImageConfiguration,
    pub(crate) layers: Vec<LayerSpec>,
    pub(crate) tags: Vec<String>,
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Hasher::digest(data))
}

fn digest(src: &Source, d: &str) -> Result<Sha256, ImageError> {
    Sha256::parse(d).map_err(|m| src.malformed(m))
}

fn verify(what: &str, data: &[u8], expected: &Sha256) -> Result<(), ImageError> {
    let actual = sha256_hex(data);
    if actual != expected.hex() {
        return Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Parses JSON metadata. serde's messages may quote the input (`invalid type: string
/// "..."`), so they are replaced by the category and position; only "missing field",
/// which names a field of our own types, is kept.
fn json<T: serde::de::DeserializeOwned>(
    src: &Source,
    what: &str,
    data: &[u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(data).map_err(|e| {
        use serde_json::error::Category;
        let at = format!("line {}, column {}", e.line(), e.column());
        let msg = e.to_string();
        let why = match e.classify() {
            Category::Syntax => format!("is not valid JSON ({at})"),
            Category::Eof => "is not valid JSON: it ends early (truncated)".to_string(),
            Category::Data if msg.starts_with("missing field `") => {
                let field = msg.split('`').nth(1).unwrap_or_default();
                format!("lacks the field `{}` ({at})", shown(field))
            }
            Category::Data => format!(
                "is JSON, but not of {what}'s structure: a value has the wrong type or is not allowed ({at}; the value is not shown)"
            ),
            Category::Io => "could not be read".to_string(),
        };
        src.malformed(format!("{what} {why}"))
    })
}

fn diff_ids(src: &Source, config: &ImageConfiguration) -> Result<Vec<String>, ImageError> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| digest(src, d).map(|d| d.hex().to_string()))
        .collect()
}

/// Tags are printed by `hsb image list` and become store names: no control characters.
fn check_tags(src: &Source, tags: Vec<String>) -> Result<Vec<String>, ImageError> {
    for (i, t) in tags.iter().enumerate() {
        if t.is_empty() || t.len() > 256 || t.chars().any(char::is_control) {
            return Err(src.malformed(format!(
                "tag {} (`{}`) is empty, over 256 bytes, or has control characters",
                i + 1,
                shown(t)
            )));
        }
    }
    Ok(tags)
}

/// Reads the image's manifest and config, verifying their digests.
pub(crate) fn parse(src: &Source) -> Result<Parsed, ImageError> {
    let index = EntryName::parse("index.json").expect("a plain name");
    let manifest = EntryName::parse("manifest.json").expect("a plain name");
    if src.exists(&index)? {
        parse_oci(src, &index)
    } else if src.exists(&manifest)? {
        parse_docker(src, &manifest)
    } else {
        Err(ImageError::UnknownFormat(src.name.clone()))
    }
}

/// A metadata blob named by a descriptor: its size checked before it is read, its
/// digest after.
fn read_blob(src: &Source, what: &str, d: &Descriptor) -> Result<(Sha256, Vec<u8>), ImageError> {
    let dg = digest(src, d.digest().as_ref())?;
    if d.size() > super::MAX_METADATA {
        return Err(src.malformed(format!(
            "{what} {dg} is declared as {} bytes; metadata files are at most {}",
            d.size(),
            super::MAX_METADATA
        )));
    }
    let bytes = src.read_small(&dg.blob_name())?;
    if bytes.len() as u64 != d.size() {
        return Err(src.malformed(format!(
            "{what} {dg} is {} bytes, but its descriptor says {}",
            bytes.len(),
            d.size()
        )));
    }
    verify(&format!("{what} {dg}"), &bytes, &dg)?;
    Ok((dg, bytes))
}

fn parse_oci(src: &Source, index_name: &EntryName) -> Result<Parsed, ImageError> {
    let index: ImageIndex = json(src, "index.json", &src.read_small(index_name)?)?;
    let mut manifests = index.manifests().clone();
    // Follow nested indexes (multi-platform images) to a linux/amd64 manifest.
    for _ in 0..4 {
        let chosen = manifests
            .iter()
            .find(|m| {
                m.platform().as_ref().is_none_or(|p| {
                    p.os().to_string() == "linux" && p.architecture().to_string() == "amd64"
                })
            })
            .cloned()
            .ok_or_else(|| src.malformed("no linux/amd64 manifest in index.json".into()))?;
        let media = chosen.media_type().to_string();
        let is_index = media.contains("index") || media.contains("manifest.list");
        let (hex, bytes) = read_blob(
            src,
            if is_index {
                "the nested index"
            } else {
                "the manifest"
            },
            &chosen,
        )?;
        if is_index {
            let nested: ImageIndex = json(src, "a nested index", &bytes)?;
            manifests = nested.manifests().clone();
            continue;
        }
        let manifest: ImageManifest = json(src, "the manifest", &bytes)?;
        let (config_hex, config_bytes) = read_blob(src, "the image config", manifest.config())?;
        let config: ImageConfiguration = json(src, "the image config", &config_bytes)?;
        let ids = diff_ids(src, &config)?;
        if ids.len() != manifest.layers().len() {
            return Err(src.malformed(format!(
                "the manifest lists {} layers but the config {} diff_ids",
                manifest.layers().len(),
                ids.len()
            )));
        }
        let layers = manifest
            .layers()
            .iter()
            .zip(ids)
            .map(|(l, diff_id)| {
                let h = digest(src, l.digest().as_ref())?;
                Ok(LayerSpec {
                    blob: h.blob_name(),
                    blob_digest: Some(h),
                    blob_size: Some(l.size()),
                    diff_id,
                })
            })
            .collect::<Result<Vec<_>, ImageError>>()?;
        let tags = index
            .manifests()
            .iter()
            .filter_map(|m| {
                m.annotations()
                    .as_ref()?
                    .get("org.opencontainers.image.ref.name")
                    .cloned()
            })
            .collect();
        return Ok(Parsed {
            manifest_digest: hex.hex().to_string(),
            config_digest: config_hex.hex().to_string(),
            config,
            layers,
            tags: check_tags(src, tags)?,
        });
    }
    Err(src.malformed("index.json nests indexes too deeply".into()))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// A name from `manifest.json`, checked before anything is opened by it.
fn docker_name(src: &Source, what: &str, raw: &str) -> Result<EntryName, ImageError> {
    EntryName::parse(raw).map_err(|why| ImageError::SourceEntry {
        source_name: src.name.clone(),
        entry: shown(raw),
        reason: format!("(named as {what} by manifest.json) is refused: the name {why}"),
    })
}

fn parse_docker(src: &Source, manifest_name: &EntryName) -> Result<Parsed, ImageError> {
    let bytes = src.read_small(manifest_name)?;
    let entries: Vec<DockerManifest> = json(src, "manifest.json", &bytes)?;
    let m = entries
        .into_iter()
        .next()
        .ok_or_else(|| src.malformed("manifest.json lists no image".into()))?;
    let config_name = docker_name(src, "the config", &m.config)?;
    let layer_names = m
        .layers
        .iter()
        .map(|l| docker_name(src, "a layer", l))
        .collect::<Result<Vec<_>, _>>()?;
    let config_bytes = src.read_small(&config_name)?;
    // The config's file name is its digest (`<hex>.json`, or `blobs/sha256/<hex>`).
    let stem = config_name.as_str().rsplit('/').next().unwrap_or_default();
    let stem = stem.strip_suffix(".json").unwrap_or(stem);
    let config_hex = match Sha256::from_hex(stem) {
        Some(d) => {
            verify("the image config", &config_bytes, &d)?;
            d.hex().to_string()
        }
        None => sha256_hex(&config_bytes),
    };
    let config: ImageConfiguration = json(src, "the image config", &config_bytes)?;
    let ids = diff_ids(src, &config)?;
    if ids.len() != layer_names.len() {
        return Err(src.malformed(format!(
            "manifest.json lists {} layers but the config {} diff_ids",
            layer_names.len(),
            ids.len()
        )));
    }
    let layers = layer_names
        .into_iter()
        .zip(ids)
        .map(|(blob, diff_id)| LayerSpec {
            blob,
            blob_digest: None,
            blob_size: None,
            diff_id,
        })
        .collect();
    Ok(Parsed {
        manifest_digest: sha256_hex(&bytes),
        config_digest: config_hex,
        config,
        layers,
        tags: check_tags(src, m.repo_tags.unwrap_or_default())?,
    })
}
