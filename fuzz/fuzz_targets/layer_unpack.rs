//! One image layer (gzip or plain tar), hostile, unpacked as an import does
//! (`images/src/unpack`): whatever the bytes, the unpacker refuses or finishes; it
//! never panics, never writes outside its directory (a sibling stays empty, the
//! parent holds nothing new), and makes nothing but files, directories, symbolic links,
//! FIFOs and whiteouts (character devices 0/0): no other device node.
#![no_main]

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sandbox_images::UnpackLimits;

/// This process's jail: `dest` (unpacked into, emptied after each input) and
/// `outside` (must stay empty), alone in a private directory.
fn jail() -> &'static (PathBuf, PathBuf) {
    static JAIL: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    JAIL.get_or_init(|| {
        let base = std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
        let root = base.join(format!("hsb-fuzz-unpack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("outside")).unwrap();
        (root.clone(), root.join("dest"))
    })
}

/// Removes `p` whatever modes the layer gave its directories.
fn wipe(p: &Path) {
    if std::fs::remove_dir_all(p).is_ok() || !p.exists() {
        return;
    }
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+rwx"])
        .arg(p)
        .status();
    std::fs::remove_dir_all(p).expect("the unpacked layer can be removed");
}

/// Every entry under `dir`, never following a link.
fn check_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let t = e.file_type().unwrap();
        let p = e.path();
        if t.is_dir() {
            check_tree(&p);
        } else if t.is_char_device() {
            let m = std::fs::symlink_metadata(&p).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                m.rdev(),
                0,
                "a device other than a whiteout: {}",
                p.display()
            );
        } else {
            assert!(
                t.is_file() || t.is_symlink() || t.is_fifo(),
                "an entry that is no file, directory, link, FIFO or whiteout: {}",
                p.display()
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (root, dest) = jail();
    std::fs::create_dir(dest).unwrap();
    let limits = UnpackLimits {
        max_file: 1 << 20,
        max_total: 8 << 20,
        max_entries: 4096,
    };
    let strip = data.first().is_some_and(|b| b & 1 == 1);
    let _ = sandbox_images::fuzzing::unpack_layer(data, dest, limits, strip);
    check_tree(dest);
    let outside: Vec<_> = std::fs::read_dir(root.join("outside")).unwrap().collect();
    assert!(outside.is_empty(), "the layer wrote beside its directory");
    let mut names: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["dest", "outside"],
        "the layer wrote into its parent"
    );
    wipe(dest);
});
