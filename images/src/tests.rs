//! Hostile and well-formed images, built here, against the importer.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::*;

fn hexd(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Entries of a test layer.
enum E<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Char(&'a str),
    /// A regular file whose header claims this size (the data is not there).
    Claims(&'a str, u64),
}

fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        match e {
            E::File(p, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.set_mode(*mode);
                // Written raw: the tar crate refuses to build hostile paths itself.
                let name = &mut h.as_old_mut().name;
                name.fill(0);
                name[..p.len()].copy_from_slice(p.as_bytes());
                h.set_cksum();
                b.append(&h, *data).unwrap();
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
                b.append_link(&mut h, p, t).unwrap();
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
                b.get_mut().extend_from_slice(h.as_bytes());
            }
        }
    }
    b.into_inner().unwrap()
}

/// Writes a `docker save`-style tarball with these layers; returns its path.
fn docker_tar(dir: &Path, layers: &[Vec<u8>], tamper: bool) -> std::path::PathBuf {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", hexd(l)))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/data", "User": "0" },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    })
    .to_string();
    let config_name = format!("{}.json", hexd(config.as_bytes()));
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
    add(&config_name, config.as_bytes());
    let manifest = serde_json::json!([{ "Config": config_name, "RepoTags": ["test:latest"], "Layers": names }]).to_string();
    add("manifest.json", manifest.as_bytes());
    let p = dir.join("image.tar");
    std::fs::File::create(&p)
        .unwrap()
        .write_all(&b.into_inner().unwrap())
        .unwrap();
    p
}

fn store(dir: &Path) -> ImageStore {
    ImageStore::at(dir.join("store"))
}

fn import_err(entries: &[E<'_>]) -> String {
    let d = tempfile::tempdir().unwrap();
    let img = docker_tar(d.path(), &[layer(entries)], false);
    let s = store(d.path());
    let e = s
        .import(&img, None, ImportOptions::default())
        .unwrap_err()
        .to_string();
    // Nothing is left in the store's scratch space, and no layer was published.
    assert_eq!(
        std::fs::read_dir(s.root().join("tmp")).unwrap().count(),
        0,
        "scratch left behind"
    );
    assert_eq!(
        std::fs::read_dir(s.root().join("layers/sha256"))
            .unwrap()
            .count(),
        0,
        "a refused layer was published"
    );
    e
}

#[test]
fn imports_a_docker_tarball_with_whiteouts_and_reuses_layers() {
    let d = tempfile::tempdir().unwrap();
    let l1 = layer(&[
        E::Dir("data"),
        E::File("data/keep", b"lower", 0o644),
        E::File("data/gone", b"x", 0o644),
        E::Symlink("data/link", "/data/keep"),
    ]);
    let l2 = layer(&[
        E::File("data/.wh.gone", b"", 0o644),
        E::File("data/added", b"upper", 0o600),
        E::Hardlink("data/added2", "data/added"),
    ]);
    let img = docker_tar(d.path(), &[l1, l2], false);
    let s = store(d.path());
    let r = s.import(&img, None, ImportOptions::default()).unwrap();
    assert_eq!(r.name, "test:latest");
    assert_eq!(r.config.cmd, ["/bin/sh"]);
    assert_eq!(r.config.working_dir.as_deref(), Some("/data"));
    let layers = s.lock_layers(&r).unwrap();
    assert_eq!(
        std::fs::read(layers.dirs[0].join("data/keep")).unwrap(),
        b"lower"
    );
    let wh = std::fs::symlink_metadata(layers.dirs[1].join("data/gone")).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0/0 char device"
    );
    assert_eq!(
        std::fs::read_link(layers.dirs[0].join("data/link")).unwrap(),
        Path::new("/data/keep")
    );
    assert_eq!(wh.nlink(), 1);
    assert_eq!(
        std::fs::metadata(layers.dirs[1].join("data/added2"))
            .unwrap()
            .nlink(),
        2
    );
    // A second import of the same layers unpacks nothing.
    let ino = std::fs::metadata(&layers.dirs[0]).unwrap().ino();
    let again = s
        .get(img.to_str().unwrap(), ImportOptions::default())
        .unwrap();
    assert_eq!(again.layers, r.layers);
    assert_eq!(std::fs::metadata(&layers.dirs[0]).unwrap().ino(), ino);
    assert_eq!(s.list().unwrap().len(), 2, "by tag and by path");
    drop(layers);
    s.remove("test:latest").unwrap();
    assert_eq!(
        s.remove(&again.name).unwrap(),
        2,
        "both layers collected once unreferenced"
    );
}

#[test]
fn layers_in_use_are_not_collected() {
    let d = tempfile::tempdir().unwrap();
    let img = docker_tar(d.path(), &[layer(&[E::File("a", b"1", 0o644)])], false);
    let s = store(d.path());
    let r = s.import(&img, Some("x"), ImportOptions::default()).unwrap();
    let held = s.lock_layers(&r).unwrap();
    assert_eq!(s.remove("x").unwrap(), 0, "a run holds the layer");
    assert!(held.dirs[0].join("a").exists());
    drop(held);
    assert_eq!(s.gc().unwrap(), 1);
}

#[test]
fn path_traversal_is_refused() {
    assert!(import_err(&[E::File("../escape", b"x", 0o644)]).contains("path traversal"));
    assert!(import_err(&[E::File("a/../../escape", b"x", 0o644)]).contains("path traversal"));
}

#[test]
fn writing_through_a_planted_symlink_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    let e = import_err(&[
        E::Symlink("evil", &target),
        E::File("evil/pwned", b"x", 0o644),
    ]);
    assert!(e.contains("symlink"), "{e}");
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "written outside the cache"
    );
    let e = import_err(&[
        E::Symlink("etc", "/etc"),
        E::File("etc/passwd", b"root::0:0::/:/bin/sh\n", 0o644),
    ]);
    assert!(e.contains("symlink"), "{e}");
}

#[test]
fn hard_links_to_host_files_are_refused() {
    assert!(import_err(&[E::Hardlink("pw", "/etc/passwd")]).contains("outside the layer"));
    assert!(
        import_err(&[E::Hardlink("pw", "../../../../etc/passwd")]).contains("outside the layer")
    );
    assert!(
        import_err(&[E::Symlink("l", "/etc"), E::Hardlink("pw", "l/passwd")])
            .contains("not a file of this layer")
    );
}

#[test]
fn devices_setuid_and_huge_files_are_refused() {
    assert!(import_err(&[E::Char("mem")]).contains("device node"));
    assert!(import_err(&[E::File("su", b"x", 0o4755)]).contains("setuid"));
    assert!(import_err(&[E::Claims("big", 1 << 40)]).contains("largest file"));
    // With --strip-setuid the bit is cleared instead.
    let d = tempfile::tempdir().unwrap();
    let img = docker_tar(d.path(), &[layer(&[E::File("su", b"x", 0o4755)])], false);
    let s = store(d.path());
    let r = s
        .import(
            &img,
            None,
            ImportOptions {
                strip_setuid: true,
                ..Default::default()
            },
        )
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.lock_layers(&r).unwrap().dirs[0].join("su"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
}

#[test]
fn digest_mismatch_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let img = docker_tar(
        d.path(),
        &[layer(&[E::File("a", &[b'a'; 2000], 0o644)])],
        true,
    );
    let s = store(d.path());
    let e = s.import(&img, None, ImportOptions::default()).unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    assert_eq!(
        std::fs::read_dir(s.root().join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn not_an_image() {
    let d = tempfile::tempdir().unwrap();
    let e = store(d.path())
        .import(d.path(), None, ImportOptions::default())
        .unwrap_err();
    assert!(matches!(e, ImageError::UnknownFormat(_)), "{e}");
    assert!(matches!(
        store(d.path()).get("nope:1", ImportOptions::default()),
        Err(ImageError::NotFound(_))
    ));
}
