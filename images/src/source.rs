//! Reading an image where it lies: an OCI image layout directory, or a tarball made by
//! `docker save` (legacy `manifest.json` layout, or the OCI layout newer Dockers write).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest, Sha256};

use crate::error::{io, ImageError};

/// Metadata files larger than this are refused (a manifest is a few KiB).
const MAX_METADATA: u64 = 16 << 20;

/// Where the image's files are.
#[derive(Debug)]
enum Kind {
    Dir(PathBuf),
    /// Entries of the tarball: name -> (offset of the data, size).
    Tar {
        file: PathBuf,
        entries: HashMap<String, (u64, u64)>,
    },
}

/// An image source.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) name: String,
    kind: Kind,
}

fn normalize(name: &str) -> String {
    name.trim_start_matches("./").to_string()
}

impl Source {
    pub(crate) fn open(path: &Path) -> Result<Source, ImageError> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(io(format!("opening image {name}")))?;
        if meta.is_dir() {
            return Ok(Source {
                name,
                kind: Kind::Dir(path.to_path_buf()),
            });
        }
        let f = File::open(path).map_err(io(format!("opening image {name}")))?;
        let mut archive = tar::Archive::new(f);
        let mut entries = HashMap::new();
        for e in archive
            .entries()
            .map_err(io(format!("reading the tarball {name}")))?
        {
            let e = e.map_err(io(format!("reading the tarball {name}")))?;
            if e.header().entry_type().is_file() {
                let p = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                entries.insert(normalize(&p), (e.raw_file_position(), e.size()));
            }
        }
        Ok(Source {
            name,
            kind: Kind::Tar {
                file: path.to_path_buf(),
                entries,
            },
        })
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        match &self.kind {
            Kind::Dir(d) => d.join(name).is_file(),
            Kind::Tar { entries, .. } => entries.contains_key(name),
        }
    }

    /// A reader over one file of the image, and its size.
    pub(crate) fn open_file(&self, name: &str) -> Result<(Box<dyn Read>, u64), ImageError> {
        let what = || format!("reading {name} in {}", self.name);
        match &self.kind {
            Kind::Dir(d) => {
                let p = d.join(name);
                let f = File::open(&p).map_err(io(what()))?;
                let size = f.metadata().map_err(io(what()))?.len();
                Ok((Box::new(f), size))
            }
            Kind::Tar { file, entries } => {
                let &(offset, size) = entries.get(name).ok_or_else(|| ImageError::Malformed {
                    source_name: self.name.clone(),
                    message: format!("the tarball has no {name}"),
                })?;
                let mut f = File::open(file).map_err(io(what()))?;
                f.seek(SeekFrom::Start(offset)).map_err(io(what()))?;
                Ok((Box::new(f.take(size)), size))
            }
        }
    }

    /// A small metadata file, whole.
    pub(crate) fn read_small(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let (mut r, size) = self.open_file(name)?;
        if size > MAX_METADATA {
            return Err(self.malformed(format!(
                "{name} is {size} bytes; metadata files are at most {MAX_METADATA}"
            )));
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.read_to_end(&mut buf)
            .map_err(io(format!("reading {name} in {}", self.name)))?;
        Ok(buf)
    }

    pub(crate) fn malformed(&self, message: String) -> ImageError {
        ImageError::Malformed {
            source_name: self.name.clone(),
            message,
        }
    }
}

/// A layer to import: where its blob is and the digests that vouch for it.
#[derive(Debug, Clone)]
pub(crate) struct LayerSpec {
    /// Path of the blob inside the source.
    pub(crate) blob: String,
    /// The blob's digest (hex), when the manifest names one (OCI).
    pub(crate) blob_digest: Option<String>,
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
    hex::encode(Sha256::digest(data))
}

/// `sha256:<64 hex>` -> the hex part; other algorithms are refused.
pub(crate) fn digest_hex(src: &Source, d: &str) -> Result<String, ImageError> {
    match d.split_once(':') {
        Some(("sha256", hex)) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(hex.to_ascii_lowercase())
        }
        _ => Err(src.malformed(format!("digest `{d}` is not sha256:<64 hex digits>"))),
    }
}

fn verify(what: &str, data: &[u8], expected_hex: &str) -> Result<(), ImageError> {
    let actual = sha256_hex(data);
    if actual != expected_hex {
        return Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected: format!("sha256:{expected_hex}"),
            actual,
        });
    }
    Ok(())
}

fn json<T: serde::de::DeserializeOwned>(
    src: &Source,
    name: &str,
    data: &[u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(data).map_err(|e| src.malformed(format!("{name}: {e}")))
}

fn diff_ids(src: &Source, config: &ImageConfiguration) -> Result<Vec<String>, ImageError> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| digest_hex(src, d))
        .collect()
}

/// Reads the image's manifest and config, verifying their digests.
pub(crate) fn parse(src: &Source) -> Result<Parsed, ImageError> {
    if src.has("index.json") {
        parse_oci(src)
    } else if src.has("manifest.json") {
        parse_docker(src)
    } else {
        Err(ImageError::UnknownFormat(src.name.clone()))
    }
}

fn blob_path(hex: &str) -> String {
    format!("blobs/sha256/{hex}")
}

fn parse_oci(src: &Source) -> Result<Parsed, ImageError> {
    let index: ImageIndex = json(src, "index.json", &src.read_small("index.json")?)?;
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
        let hex = digest_hex(src, chosen.digest().as_ref())?;
        let bytes = src.read_small(&blob_path(&hex))?;
        verify(&format!("manifest {}", chosen.digest()), &bytes, &hex)?;
        let media = chosen.media_type().to_string();
        if media.contains("index") || media.contains("manifest.list") {
            let nested: ImageIndex = json(src, "a nested index", &bytes)?;
            manifests = nested.manifests().clone();
            continue;
        }
        let manifest: ImageManifest = json(src, "the manifest", &bytes)?;
        let config_hex = digest_hex(src, manifest.config().digest().as_ref())?;
        let config_bytes = src.read_small(&blob_path(&config_hex))?;
        verify("the image config", &config_bytes, &config_hex)?;
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
                let h = digest_hex(src, l.digest().as_ref())?;
                Ok(LayerSpec {
                    blob: blob_path(&h),
                    blob_digest: Some(h),
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
            manifest_digest: hex,
            config_digest: config_hex,
            config,
            layers,
            tags,
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

fn parse_docker(src: &Source) -> Result<Parsed, ImageError> {
    let bytes = src.read_small("manifest.json")?;
    let entries: Vec<DockerManifest> = json(src, "manifest.json", &bytes)?;
    let m = entries
        .into_iter()
        .next()
        .ok_or_else(|| src.malformed("manifest.json lists no image".into()))?;
    let config_name = normalize(&m.config);
    let config_bytes = src.read_small(&config_name)?;
    // The config's file name is its digest (`<hex>.json`, or `blobs/sha256/<hex>`).
    let stem = Path::new(&config_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let config_hex = if stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()) {
        verify("the image config", &config_bytes, &stem)?;
        stem
    } else {
        sha256_hex(&config_bytes)
    };
    let config: ImageConfiguration = json(src, "the image config", &config_bytes)?;
    let ids = diff_ids(src, &config)?;
    if ids.len() != m.layers.len() {
        return Err(src.malformed(format!(
            "manifest.json lists {} layers but the config {} diff_ids",
            m.layers.len(),
            ids.len()
        )));
    }
    let layers = m
        .layers
        .iter()
        .zip(ids)
        .map(|(blob, diff_id)| LayerSpec {
            blob: normalize(blob),
            blob_digest: None,
            diff_id,
        })
        .collect();
    Ok(Parsed {
        manifest_digest: sha256_hex(&bytes),
        config_digest: config_hex,
        config,
        layers,
        tags: m.repo_tags.unwrap_or_default(),
    })
}
