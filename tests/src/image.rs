//! Test images built from Debian's static busybox: two layers (the second with a
//! whiteout and an opaque directory), written as an OCI image layout and as a
//! `docker save` tarball.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// Busybox applets linked in the test image.
pub const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "mkdir", "touch", "id", "pwd", "test", "rm", "wc", "sleep", "true",
    "env", "readlink", "stat",
];

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

struct LayerBuilder(tar::Builder<Vec<u8>>);

impl LayerBuilder {
    fn new() -> Self {
        LayerBuilder(tar::Builder::new(Vec::new()))
    }
    fn dir(&mut self, p: &str) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        self.0.append_data(&mut h, p, &[][..]).unwrap();
        self
    }
    fn file(&mut self, p: &str, data: &[u8], mode: u32) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, p, data).unwrap();
        self
    }
    fn symlink(&mut self, p: &str, target: &str) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        self.0.append_link(&mut h, p, target).unwrap();
        self
    }
    fn done(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// The two layers of the test image.
pub fn test_layers() -> Vec<Vec<u8>> {
    let busybox = std::fs::read("/bin/busybox")
        .expect("busybox-static must be installed (scripts/install-deps.sh)");
    let mut l1 = LayerBuilder::new();
    l1.dir("bin")
        .dir("etc")
        .dir("data")
        .dir("opt")
        .dir("tmp")
        .dir("home")
        .dir("home/user");
    l1.file("bin/busybox", &busybox, 0o755);
    for a in APPLETS {
        l1.symlink(&format!("bin/{a}"), "/bin/busybox");
    }
    l1.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nuser:x:1234:1234:user:/home/user:/bin/sh\n",
        0o644,
    )
    .file("etc/group", b"root:x:0:\nuser:x:1234:\n", 0o644)
    .file("etc/greeting", b"hello from the image\n", 0o644)
    .file("data/keep.txt", b"lower\n", 0o644)
    .file("data/gone.txt", b"doomed\n", 0o644)
    .file("opt/a", b"a\n", 0o644)
    .file("opt/b", b"b\n", 0o644);
    let mut l2 = LayerBuilder::new();
    l2.file("data/.wh.gone.txt", b"", 0o644)
        .file("data/added.txt", b"upper\n", 0o644)
        .file("opt/.wh..wh..opq", b"", 0o644)
        .file("opt/c", b"c\n", 0o644);
    vec![l1.done(), l2.done()]
}

/// The image config of the test image, for these layers.
fn config(layers: &[Vec<u8>], user: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha(l)))
        .collect();
    serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin", "IMAGE_VAR=from-image"],
            "Cmd": ["/bin/sh", "-c", "cat /etc/greeting"],
            "WorkingDir": "/data",
            "User": user,
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    })
    .to_string()
    .into_bytes()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// Writes the test image as an OCI image layout directory (gzip layers) at `dir`.
pub fn write_oci_layout(dir: &Path, user: &str) -> PathBuf {
    let layers = test_layers();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let h = sha(data);
        std::fs::write(blobs.join(&h), data).unwrap();
        (h, data.len())
    };
    let cfg = config(&layers, user);
    let (cfg_hex, cfg_len) = put(&cfg);
    let layer_descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let (h, n) = put(&gzip(l));
            serde_json::json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{h}"), "size": n })
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{cfg_hex}"), "size": cfg_len },
        "layers": layer_descs,
    })
    .to_string();
    let (m_hex, m_len) = put(manifest.as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{m_hex}"),
            "size": m_len,
            "annotations": { "org.opencontainers.image.ref.name": "hsb-test:oci" },
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    dir.to_path_buf()
}

/// Writes the test image as a `docker save` tarball at `path`.
pub fn write_docker_tar(path: &Path, user: &str) -> PathBuf {
    let layers = test_layers();
    let cfg = config(&layers, user);
    let cfg_name = format!("{}.json", sha(&cfg));
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut names = Vec::new();
    for l in &layers {
        let name = format!("{}/layer.tar", sha(l));
        add(&name, l);
        names.push(name);
    }
    add(&cfg_name, &cfg);
    let manifest = serde_json::json!([{ "Config": cfg_name, "RepoTags": ["hsb-test:docker"], "Layers": names }]).to_string();
    add("manifest.json", manifest.as_bytes());
    std::fs::write(path, b.into_inner().unwrap()).unwrap();
    path.to_path_buf()
}
