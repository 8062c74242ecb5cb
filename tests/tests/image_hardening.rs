//! Image import as an attack on the host, in both backends: runs naming hostile image
//! paths (a blob symlinked to a host secret, a symlinked `blobs/`, `index.json` as a
//! symlink, `../secret` in a manifest, a FIFO blob, the secret as the layer) are
//! refused with the reason and no byte of the secret, nothing is published, and the
//! same store then runs a good image; image limits from the policy and the run apply.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use hsb_tests::*;
use hybrid_sandbox::{ImageLimits, ImageStore, IsolationRequest};

const SECRET: &str = "TOP-SECRET-123";

fn setup() -> (tempfile::TempDir, Sandbox) {
    let d = tempfile::tempdir().unwrap();
    set_mode(d.path(), 0o755);
    let sb =
        Sandbox::with_default_policy().with_image_store(ImageStore::at(d.path().join("store")));
    (d, sb)
}

fn blob_of_layer(oci: &Path, n: usize) -> PathBuf {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let m = oci
        .join("blobs/sha256")
        .join(m.trim_start_matches("sha256:"));
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(m).unwrap()).unwrap();
    let l = manifest["layers"][n]["digest"].as_str().unwrap();
    oci.join("blobs/sha256")
        .join(l.trim_start_matches("sha256:"))
}

/// Hostile variants of the test image, each with what its refusal must say.
fn hostile(root: &Path) -> Vec<(PathBuf, &'static str)> {
    let secret = root.join("secret");
    let line = format!("{SECRET} root:$6$host-password-hash:19000:0:99999:7:::\n");
    std::fs::write(&secret, line.repeat(20)).unwrap();
    let mut out = Vec::new();
    let fresh = |name: &str| hsb_tests::image::write_oci_layout(&root.join(name), "");
    // A layer blob symlinked to the secret, absolutely and relatively.
    for (name, target) in [
        ("abs", secret.clone()),
        ("rel", PathBuf::from("../../../secret")),
    ] {
        let oci = fresh(name);
        let blob = blob_of_layer(&oci, 0);
        std::fs::remove_file(&blob).unwrap();
        symlink(&target, &blob).unwrap();
        out.push((oci, "points outside the image"));
    }
    // `blobs/` is a symlink to a copy of the blobs outside the image.
    let oci = fresh("blobs-link");
    std::fs::rename(oci.join("blobs"), root.join("outside-blobs")).unwrap();
    symlink(root.join("outside-blobs"), oci.join("blobs")).unwrap();
    out.push((oci, "a directory on its path is a symlink"));
    // index.json is a symlink to the secret.
    let oci = fresh("index-link");
    std::fs::remove_file(oci.join("index.json")).unwrap();
    symlink(&secret, oci.join("index.json")).unwrap();
    out.push((oci, "`index.json` is a symlink"));
    // A FIFO as the layer blob (opening it would block).
    let oci = fresh("fifo");
    let blob = blob_of_layer(&oci, 1);
    std::fs::remove_file(&blob).unwrap();
    let c = std::ffi::CString::new(blob.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    out.push((oci, "is a FIFO, not a regular file"));
    // The secret as the layer blob, its digest matching: parsed, never quoted.
    let oci = fresh("inside");
    let blob = blob_of_layer(&oci, 0);
    let data = std::fs::read(&secret).unwrap();
    let hex = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
    let m_old = blob.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::remove_file(&blob).unwrap();
    std::fs::write(blob.with_file_name(&hex), &data).unwrap();
    rewrite_manifest(&oci, &m_old, &hex, data.len());
    out.push((oci, "not a valid tar stream"));
    // A docker save directory whose manifest names `../secret` as a layer.
    let dd = root.join("dotdot");
    std::fs::create_dir_all(&dd).unwrap();
    std::fs::write(
        dd.join("manifest.json"),
        serde_json::json!([{ "Config": "c.json", "Layers": ["../secret"] }]).to_string(),
    )
    .unwrap();
    out.push((dd, "contains `..`"));
    out
}

/// Points the manifest's layer `old` at blob `new` of `size` bytes, and the index at the
/// new manifest.
fn rewrite_manifest(oci: &Path, old: &str, new: &str, size: usize) {
    let index_path = oci.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let m_hex = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let m_path = oci.join("blobs/sha256").join(&m_hex);
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&m_path).unwrap()).unwrap();
    for l in m["layers"].as_array_mut().unwrap() {
        if l["digest"] == format!("sha256:{old}") {
            l["digest"] = format!("sha256:{new}").into();
            l["size"] = size.into();
        }
    }
    let text = m.to_string();
    let new_m = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
    std::fs::remove_file(&m_path).unwrap();
    std::fs::write(oci.join("blobs/sha256").join(&new_m), &text).unwrap();
    index["manifests"][0]["digest"] = format!("sha256:{new_m}").into();
    index["manifests"][0]["size"] = text.len().into();
    std::fs::write(index_path, index.to_string()).unwrap();
}

fn layer_dirs(store: &Path) -> usize {
    std::fs::read_dir(store.join("layers/sha256"))
        .map(|rd| rd.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0)
}

fn hostile_images_read_nothing_outside_and_the_store_still_runs(iso: IsolationRequest) {
    let (d, sb) = setup();
    let rt = runtime();
    for (img, want) in hostile(d.path()) {
        let w = Workload::new("cat", ["/etc/greeting"])
            .image(img.to_str().unwrap())
            .isolation(iso);
        let (tx, rx) = std::sync::mpsc::channel();
        let sb2 = sb.clone();
        let rt2 = runtime();
        // On a thread: a regression that blocks on the FIFO fails instead of hanging.
        std::thread::spawn(move || {
            let _ = tx.send(rt2.block_on(sb2.run(w)).map(|o| format!("{o:?}")));
        });
        let e = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("the run blocked")
            .expect_err("a hostile image must be refused");
        let chain = e.chain();
        assert!(chain.contains(want), "{}: {chain}", img.display());
        assert!(!chain.contains(SECRET), "{}: leaks: {chain}", img.display());
        assert!(
            !format!("{e:?}").contains(SECRET),
            "{}: leaks in Debug",
            img.display()
        );
        assert_eq!(e.exit_status(), 125);
        assert_eq!(layer_dirs(&d.path().join("store")), 0, "{}", img.display());
    }
    drop(rt);
    // The store is fine: a good image imports and runs.
    let good = hsb_tests::image::write_oci_layout(&d.path().join("good"), "");
    let o = run_in(
        &sb,
        Workload::new("cat", ["/etc/greeting"])
            .image(good.to_str().unwrap())
            .isolation(iso),
    );
    assert_eq!(stdout(&o), "hello from the image\n", "{o:?}");
}

fn image_limits_of_the_policy_and_the_run_apply(iso: IsolationRequest) {
    let d = tempfile::tempdir().unwrap();
    set_mode(d.path(), 0o755);
    let policy = format!(
        "{}\n[defaults.image_limits]\nlayers = 1\n",
        hybrid_sandbox::EMBEDDED_DEFAULT
    );
    let sb = sandbox_with(&policy).with_image_store(ImageStore::at(d.path().join("store")));
    let img = hsb_tests::image::write_oci_layout(&d.path().join("oci"), "");
    let w = || {
        Workload::new("cat", ["/etc/greeting"])
            .image(img.to_str().unwrap())
            .isolation(iso)
    };
    let e = runtime().block_on(sb.run(w())).unwrap_err();
    assert!(
        e.chain().contains("it has 2 layers (limit layers = 1)"),
        "{}",
        e.chain()
    );
    // The run raises it (no floor forbids it), and the image runs.
    let mut raised = w();
    raised.image_limits = ImageLimits {
        layers: Some(2),
        ..Default::default()
    };
    let o = run_in(&sb, raised);
    assert_eq!(stdout(&o), "hello from the image\n", "{o:?}");
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod container {
            $( #[test] fn $name() { super::$name(hybrid_sandbox::IsolationRequest::Container) } )*
        }
        mod microvm {
            $( #[test] fn $name() {
                let iso = hybrid_sandbox::IsolationRequest::MicroVm;
                if !hsb_tests::backend_ready(iso) { return; }
                super::$name(iso)
            } )*
        }
    };
}

both_backends!(
    hostile_images_read_nothing_outside_and_the_store_still_runs,
    image_limits_of_the_policy_and_the_run_apply,
);
