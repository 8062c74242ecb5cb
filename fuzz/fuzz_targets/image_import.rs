//! A whole image, hostile, imported from a `docker save` tarball
//! (`ImageStore::import`): the tarball's own entries, `manifest.json`, the config and
//! its digests, then every layer through the unpacker (streamed, so a layer whose
//! digest will not match is still read first). Whatever the bytes, the import fails or
//! succeeds without panicking, writes nothing outside its store, and a refused image
//! leaves no record and no layer behind (all or nothing).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sandbox_images::{ImageStore, ImportOptions, PerImageLimits, UnpackLimits};

/// This process's directory: the tarball, the store, and a sibling that stays empty.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
        let d = base.join(format!("hsb-fuzz-import-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("outside")).unwrap();
        d
    })
}

fn count(p: &std::path::Path) -> usize {
    std::fs::read_dir(p).map_or(0, |d| d.count())
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    let tarball = d.join("image.tar");
    std::fs::write(&tarball, data).unwrap();
    let store_dir = d.join("store");
    let store = ImageStore::at(&store_dir);
    let opts = ImportOptions {
        strip_setuid: data.last().is_some_and(|b| b & 1 == 1),
        limits: UnpackLimits {
            max_file: 1 << 20,
            max_total: 8 << 20,
            max_entries: 4096,
        },
        image_limits: PerImageLimits {
            max_layers: 8,
            max_total: 16 << 20,
            max_entries: 8192,
        },
        owner: None,
    };
    let imported = store.import(&tarball, Some("fuzz:latest"), opts);
    if imported.is_err() {
        assert_eq!(
            count(&store_dir.join("images")),
            0,
            "a refused image left its record"
        );
        let layers: Vec<_> = std::fs::read_dir(store_dir.join("layers/sha256"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            layers
                .iter()
                .all(|n| n.to_string_lossy().ends_with(".lock")),
            "a refused image left a layer: {layers:?}"
        );
        assert_eq!(
            count(&store_dir.join("tmp")),
            0,
            "a refused image left scratch files"
        );
    }
    assert_eq!(
        count(&d.join("outside")),
        0,
        "the import wrote beside its store"
    );
    assert_eq!(count(d), 3, "the import wrote beside its store");
    if std::fs::remove_dir_all(&store_dir).is_err() {
        let _ = std::process::Command::new("chmod")
            .args(["-R", "u+rwx"])
            .arg(&store_dir)
            .status();
        std::fs::remove_dir_all(&store_dir).expect("the store can be removed");
    }
});
