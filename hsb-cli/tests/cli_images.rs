//! `hsb image import` and `hsb run --image PATH` against hostile images: nothing outside
//! the image is read, no error output (text or `--json`) quotes a byte of a host secret,
//! limits are flags and obey the operator floor, and an import killed with SIGKILL
//! leaves nothing that is ever used.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::Digest;

const HSB: &str = env!("CARGO_BIN_EXE_hsb");
const SECRET: &str = "TOP-SECRET-123";

fn hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn store(&self) -> PathBuf {
        self.path().join("store")
    }
    fn hsb(&self, args: &[&str]) -> Output {
        Command::new(HSB)
            .args(args)
            .env("HSB_IMAGE_STORE", self.store())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
    /// Layer directories and image records in the store.
    fn published(&self) -> usize {
        let count = |d: &str| {
            std::fs::read_dir(self.store().join(d))
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) || d == "images")
                        .count()
                })
                .unwrap_or(0)
        };
        count("layers/sha256") + count("images")
    }
}

/// A layer tar of (name, data) files.
fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn config(diff_ids: &[String]) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(|d| format!("sha256:{d}")).collect();
    serde_json::json!({"architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": ids}})
    .to_string()
    .into_bytes()
}

/// A `docker save` unpacked in `dir`: layers `l<i>/layer.tar`.
fn docker_dir(dir: &Path, layers: &[Vec<u8>]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let ids: Vec<String> = layers.iter().map(|l| hex(l)).collect();
    let cfg = config(&ids);
    let cfg_name = format!("{}.json", hex(&cfg));
    std::fs::write(dir.join(&cfg_name), &cfg).unwrap();
    let mut names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        std::fs::create_dir_all(dir.join(format!("l{i}"))).unwrap();
        std::fs::write(dir.join(format!("l{i}/layer.tar")), l).unwrap();
        names.push(format!("l{i}/layer.tar"));
    }
    let m =
        serde_json::json!([{"Config": cfg_name, "RepoTags": ["cli-hostile:1"], "Layers": names}]);
    std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
    dir.to_path_buf()
}

/// The hostile images, each with the words its refusal must contain.
fn hostile(env: &Env) -> Vec<(PathBuf, &'static str)> {
    let root = env.path();
    let secret = root.join("secret");
    let line = format!("{SECRET} root:$6$host-password-hash:19000:0:99999:7:::\n");
    std::fs::write(&secret, line.repeat(20)).unwrap();
    let secret_json = root.join("secret.json");
    std::fs::write(
        &secret_json,
        serde_json::json!({"rootfs": SECRET, "architecture": SECRET}).to_string(),
    )
    .unwrap();
    let ok = layer(&[("etc/motd", b"hello\n")]);
    let mut out = Vec::new();
    // The layer is a symlink to the host secret.
    let d = docker_dir(&root.join("link"), std::slice::from_ref(&ok));
    std::fs::remove_file(d.join("l0/layer.tar")).unwrap();
    symlink(&secret, d.join("l0/layer.tar")).unwrap();
    out.push((d, "points outside the image"));
    // The manifest names `../secret`.
    let d = docker_dir(&root.join("dotdot"), std::slice::from_ref(&ok));
    let m = std::fs::read_to_string(d.join("manifest.json")).unwrap();
    std::fs::write(
        d.join("manifest.json"),
        m.replace("l0/layer.tar", "../secret"),
    )
    .unwrap();
    out.push((d, "contains `..`"));
    // manifest.json is a symlink to a host JSON file.
    let d = docker_dir(&root.join("mlink"), std::slice::from_ref(&ok));
    std::fs::remove_file(d.join("manifest.json")).unwrap();
    symlink(&secret_json, d.join("manifest.json")).unwrap();
    out.push((d, "`manifest.json` is a symlink"));
    // The secret is the layer itself (the tar reader would quote it).
    let d = docker_dir(&root.join("inside"), &[std::fs::read(&secret).unwrap()]);
    out.push((d, "not a valid tar stream"));
    // The secret is the config (serde would quote it).
    let d = docker_dir(&root.join("config"), std::slice::from_ref(&ok));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("manifest.json")).unwrap()).unwrap();
    let cfg = m[0]["Config"].as_str().unwrap().to_string();
    std::fs::copy(&secret_json, d.join(&cfg)).unwrap();
    std::fs::rename(d.join(&cfg), d.join("c.json")).unwrap();
    let m = m.to_string().replace(&cfg, "c.json");
    std::fs::write(d.join("manifest.json"), m).unwrap();
    out.push((d, "is JSON, but not of the image config's structure"));
    out
}

fn assert_refused_cleanly(o: &Output, want: &str, what: &str) {
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(125), "{what}: {err}");
    assert!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "{what} leaks: {out} {err}"
    );
    assert!(err.contains(want), "{what}: expected `{want}` in: {err}");
}

#[test]
fn hostile_images_are_refused_without_quoting_host_files() {
    let env = Env::new();
    for (img, want) in hostile(&env) {
        let p = img.to_str().unwrap();
        let o = env.hsb(&["image", "import", p]);
        assert_refused_cleanly(&o, want, p);
        let o = env.hsb(&["image", "import", "--json", p]);
        assert_refused_cleanly(&o, want, p);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["error"]["kind"], "image");
        assert!(v["error"]["message"].as_str().unwrap().contains(want));
        // A run importing it on the fly says the same.
        let o = env.hsb(&["run", "--json", "--image", p, "--", "true"]);
        assert_refused_cleanly(&o, want, p);
        assert_eq!(env.published(), 0, "{p}: something was published");
    }
}

#[test]
fn limits_are_flags_and_obey_the_floor() {
    let env = Env::new();
    let two = docker_dir(
        &env.path().join("two"),
        &[layer(&[("a", b"1"), ("b", b"2")]), layer(&[("c", b"3")])],
    );
    let two = two.to_str().unwrap();
    let o = env.hsb(&["image", "import", "--max-layers", "1", two]);
    assert_refused_cleanly(&o, "it has 2 layers (limit layers = 1)", "max-layers");
    assert!(text(&o.stderr).contains("`--max-layers`"));
    let o = env.hsb(&[
        "run",
        "--image",
        two,
        "--max-layer-entries",
        "1",
        "--",
        "true",
    ]);
    assert_refused_cleanly(&o, "limit layer_entries = 1", "run --max-layer-entries");
    let o = env.hsb(&["image", "import", "--max-image-bytes", "0", two]);
    assert_refused_cleanly(&o, "image limit image_bytes: 0B is out of range", "zero");
    // A policy's image_limits apply to runs.
    let policy = env.path().join("p.toml");
    std::fs::write(&policy, "[defaults.image_limits]\nlayers = 1\n").unwrap();
    let o = env.hsb(&[
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--image",
        two,
        "--",
        "true",
    ]);
    assert_refused_cleanly(&o, "limit layers = 1", "policy");
    // The floor caps what a flag may ask, and binds what is left unset.
    let floor = env.path().join("floor.toml");
    std::fs::write(&floor, "[floor.image_limits]\nlayers = 1\n").unwrap();
    let f = floor.to_str().unwrap();
    let o = env.hsb(&["image", "import", "--floor", f, "--max-layers", "5", two]);
    assert_refused_cleanly(
        &o,
        "5 (maximum 1) is above the maximum (operator floor",
        "floor flag",
    );
    let o = env.hsb(&["image", "import", "--floor", f, two]);
    assert_refused_cleanly(&o, "limit layers = 1", "floor unset");
    let o = env.hsb(&[
        "run",
        "--floor",
        f,
        "--max-layers",
        "5",
        "--image",
        two,
        "--",
        "true",
    ]);
    assert_refused_cleanly(&o, "above the maximum", "run floor");
    assert_eq!(env.published(), 0);
    // Within the limits it imports.
    let o = env.hsb(&[
        "image",
        "import",
        "--max-layers",
        "2",
        "--max-layer-entries",
        "2",
        two,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

/// A `docker save` directory whose one layer holds a `size`-byte file of zeros (the
/// tar is sparse on disk).
fn big_image(dir: &Path, size: u64) -> PathBuf {
    std::fs::create_dir_all(dir.join("l0")).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_path("big").unwrap();
    h.set_cksum();
    let pad = (512 - size % 512) % 512;
    let total = 512 + size + pad + 1024;
    let layer_path = dir.join("l0/layer.tar");
    let f = std::fs::File::create(&layer_path).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, h.as_bytes(), 0).unwrap();
    f.set_len(total).unwrap();
    let mut hasher = sha2::Sha256::new();
    hasher.update(h.as_bytes());
    let zeros = vec![0u8; 1 << 20];
    let mut left = total - 512;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        hasher.update(&zeros[..n]);
        left -= n as u64;
    }
    let diff: String = hasher
        .finalize()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    let cfg = config(&[diff]);
    let cfg_name = format!("{}.json", hex(&cfg));
    std::fs::write(dir.join(&cfg_name), &cfg).unwrap();
    let m = serde_json::json!([{"Config": cfg_name, "RepoTags": ["big:1"], "Layers": ["l0/layer.tar"]}]);
    std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
    dir.to_path_buf()
}

#[test]
fn an_import_killed_midway_leaves_nothing_that_is_used() {
    let env = Env::new();
    let size = 64u64 << 20;
    let img = big_image(&env.path().join("big"), size);
    let mut child = Command::new(HSB)
        .args(["image", "import", img.to_str().unwrap()])
        .env("HSB_IMAGE_STORE", env.store())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the layer is being written in the scratch space, then SIGKILL.
    let partial = || -> Option<PathBuf> {
        let rd = std::fs::read_dir(env.store().join("tmp")).ok()?;
        rd.flatten()
            .map(|e| e.path().join("root/big"))
            .find(|p| p.exists())
    };
    let mut seen = None;
    while seen.is_none() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the import ended ({status}) before it could be killed midway");
        }
        seen = partial();
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed midway"
    );
    // Left: a half-written scratch tree; published: nothing.
    let left = seen.unwrap();
    assert!(
        std::fs::metadata(&left).unwrap().len() < size,
        "it was midway"
    );
    assert_eq!(env.published(), 0);
    // The next import removes it, unpacks the layer afresh, whole, and publishes it.
    let o = env.hsb(&["image", "import", img.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        !left.exists(),
        "the killed import's scratch was not removed"
    );
    assert_eq!(
        std::fs::read_dir(env.store().join("tmp")).unwrap().count(),
        0
    );
    let layers: Vec<PathBuf> = std::fs::read_dir(env.store().join("layers/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        std::fs::metadata(layers[0].join("big")).unwrap().len(),
        size
    );
}
