//! Hostile and well-formed images, built here, against the importer: layers
//! ([`layers`]), sources that try to make the import read host files ([`sources`]),
//! limits ([`limits`]) and the store's scratch space ([`store`]).

mod layers;
mod limits;
mod sources;
mod store;

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{ImageError, ImageStore, ImportOptions};

/// What a planted host secret starts with; no error text may ever contain it.
pub(crate) const SECRET: &str = "TOP-SECRET-123";

pub(crate) fn hexd(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A host file holding a secret (over 512 bytes, shaped like /etc/shadow: the tar
/// reader's own error would quote its first 100 bytes).
pub(crate) fn plant_secret(dir: &Path) -> PathBuf {
    let p = dir.join("secret");
    let line = format!("{SECRET} root:$6$host-password-hash:19000:0:99999:7:::\n");
    std::fs::write(&p, line.repeat(20)).unwrap();
    p
}

/// A host JSON file holding a secret in a string (serde would quote it).
pub(crate) fn plant_secret_json(dir: &Path) -> PathBuf {
    let p = dir.join("secret.json");
    let v = serde_json::json!({ "rootfs": format!("{SECRET} api key"), "manifests": SECRET, "schemaVersion": SECRET });
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

/// The whole error chain, as `hsb` prints it.
pub(crate) fn chain(e: &ImageError) -> String {
    let mut out = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Imports `img` into a fresh store under `d`; the error chain, checked to hold no
/// secret and to leave nothing in the store.
pub(crate) fn refused(d: &Path, img: &Path, opts: ImportOptions) -> String {
    let s = ImageStore::at(d.join("store"));
    let e = s
        .import(img, None, opts)
        .expect_err("the import must be refused");
    let text = chain(&e);
    assert!(
        !text.contains(SECRET),
        "the error quotes the secret: {text}"
    );
    assert!(
        !format!("{e:?}").contains(SECRET),
        "the error's debug form quotes the secret: {e:?}"
    );
    assert_nothing_published(&s);
    text
}

/// No layer directory and no image record in the store, and its scratch space empty.
pub(crate) fn assert_nothing_published(s: &ImageStore) {
    let count = |d: &str, pred: &dyn Fn(&std::fs::DirEntry) -> bool| {
        std::fs::read_dir(s.root().join(d))
            .map(|rd| rd.flatten().filter(|e| pred(e)).count())
            .unwrap_or(0)
    };
    assert_eq!(count("tmp", &|_| true), 0, "scratch left behind");
    assert_eq!(
        count("layers/sha256", &|e| !e
            .file_name()
            .to_string_lossy()
            .ends_with(".lock")),
        0,
        "a layer of a refused image was published"
    );
    assert_eq!(
        count("images", &|_| true),
        0,
        "a refused image was recorded"
    );
}

/// Entries of a test layer.
pub(crate) enum E<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Char(&'a str),
    /// A regular file whose header claims this size (the data is not there).
    Claims(&'a str, u64),
    /// A file of `n` zero bytes.
    Zeros(&'a str, u64),
}

fn raw_name(h: &mut tar::Header, p: &str) {
    // Written raw: the tar crate refuses to build hostile paths itself.
    let name = &mut h.as_old_mut().name;
    name.fill(0);
    name[..p.len()].copy_from_slice(p.as_bytes());
    h.set_cksum();
}

/// Appends the entries to a tar builder writing into `w`.
pub(crate) fn append<W: Write>(b: &mut tar::Builder<W>, entries: &[E<'_>]) {
    for e in entries {
        let mut h = tar::Header::new_gnu();
        match e {
            E::File(p, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.set_mode(*mode);
                raw_name(&mut h, p);
                b.append(&h, *data).unwrap();
            }
            E::Zeros(p, n) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*n);
                h.set_mode(0o644);
                raw_name(&mut h, p);
                b.append(&h, std::io::Read::take(std::io::repeat(0), *n))
                    .unwrap();
            }
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::Symlink(p, t) | E::Hardlink(p, t) => {
                h.set_entry_type(if matches!(e, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_size(0);
                h.set_mode(0o777);
                let l = &mut h.as_old_mut().linkname;
                l.fill(0);
                l[..t.len()].copy_from_slice(t.as_bytes());
                raw_name(&mut h, p);
                b.append(&h, &[][..]).unwrap();
            }
            E::Char(p) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_size(0);
                h.set_mode(0o666);
                h.set_device_major(1).unwrap();
                h.set_device_minor(1).unwrap();
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::Claims(p, size) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(*size);
                h.set_path(p).unwrap();
                h.set_cksum();
                b.get_mut().write_all(h.as_bytes()).unwrap();
            }
        }
    }
}

/// A layer (uncompressed tar) of these entries.
pub(crate) fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    append(&mut b, entries);
    b.into_inner().unwrap()
}

pub(crate) fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// The image config for layers with these diff_ids.
pub(crate) fn config_for(diff_ids: &[String]) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(|h| format!("sha256:{h}")).collect();
    serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/data", "User": "0" },
        "rootfs": { "type": "layers", "diff_ids": ids },
    })
    .to_string()
    .into_bytes()
}

/// Writes a `docker save`-style tarball with these layers; returns its path.
pub(crate) fn docker_tar(dir: &Path, layers: &[Vec<u8>], tamper: bool) -> PathBuf {
    let diff_ids: Vec<String> = layers.iter().map(|l| hexd(l)).collect();
    let config = config_for(&diff_ids);
    let config_name = format!("{}.json", hexd(&config));
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let name = format!("l{i}/layer.tar");
        let mut data = l.clone();
        if tamper && i == 0 {
            data[600] ^= 1;
        }
        add(&name, &data);
        names.push(name);
    }
    add(&config_name, &config);
    let manifest = serde_json::json!([{ "Config": config_name, "RepoTags": ["test:latest"], "Layers": names }]).to_string();
    add("manifest.json", manifest.as_bytes());
    let p = dir.join("image.tar");
    std::fs::write(&p, b.into_inner().unwrap()).unwrap();
    p
}

/// An OCI image layout written in `dir`: where its files are, for tests to tamper with.
#[derive(Debug)]
pub(crate) struct Oci {
    pub(crate) dir: PathBuf,
    pub(crate) blobs: PathBuf,
    /// Hex digests of the layer blobs.
    pub(crate) layers: Vec<String>,
    pub(crate) config: String,
    pub(crate) manifest: String,
}

impl Oci {
    /// The layout of these layer blobs (as given: tar or gzip), with their diff_ids.
    pub(crate) fn write(dir: &Path, blobs: &[(Vec<u8>, String)]) -> Oci {
        let blob_dir = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blob_dir).unwrap();
        let put = |data: &[u8]| -> String {
            let h = hexd(data);
            std::fs::write(blob_dir.join(&h), data).unwrap();
            h
        };
        let diff_ids: Vec<String> = blobs.iter().map(|(_, d)| d.clone()).collect();
        let cfg = config_for(&diff_ids);
        let config = put(&cfg);
        let layers: Vec<String> = blobs.iter().map(|(b, _)| put(b)).collect();
        let descs: Vec<serde_json::Value> = blobs
            .iter()
            .zip(&layers)
            .map(|((b, _), h)| serde_json::json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{h}"), "size": b.len() }))
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config}"), "size": cfg.len() },
            "layers": descs,
        })
        .to_string();
        let m = put(manifest.as_bytes());
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{m}"),
                "size": manifest.len(),
                "annotations": { "org.opencontainers.image.ref.name": "oci-test:1" },
            }],
        });
        std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Oci {
            dir: dir.to_path_buf(),
            blobs: blob_dir,
            layers,
            config,
            manifest: m,
        }
    }

    /// The layout of uncompressed layers.
    pub(crate) fn of_layers(dir: &Path, layers: &[Vec<u8>]) -> Oci {
        let blobs: Vec<(Vec<u8>, String)> = layers.iter().map(|l| (l.clone(), hexd(l))).collect();
        Oci::write(dir, &blobs)
    }

    /// The path of a blob.
    pub(crate) fn blob(&self, hex: &str) -> PathBuf {
        self.blobs.join(hex)
    }
}

/// A `docker save` unpacked into `dir`, its manifest naming `config` and `layers`
/// (written as given: the tests put hostile names there).
pub(crate) fn docker_dir(dir: &Path, config: &str, layers: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let manifest =
        serde_json::json!([{ "Config": config, "RepoTags": ["dir-test:1"], "Layers": layers }]);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    dir.to_path_buf()
}

/// A store in `d`.
pub(crate) fn store(d: &Path) -> ImageStore {
    ImageStore::at(d.join("store"))
}
