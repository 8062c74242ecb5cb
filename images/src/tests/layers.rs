//! Hostile and well-formed layers against the unpacker.

use std::path::Path;

use super::*;

fn import_err(entries: &[E<'_>]) -> String {
    let d = tempfile::tempdir().unwrap();
    let img = docker_tar(d.path(), &[layer(entries)], false);
    refused(d.path(), &img, ImportOptions::default())
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
    let e = import_err(&[E::Claims("big", 1 << 40)]);
    assert!(
        e.contains("limit file_bytes = 4GiB") && e.contains("entry `big`"),
        "{e}"
    );
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

#[test]
fn whiteouts_name_only_files_of_their_directory() {
    for name in [".wh..", ".wh...", ".wh."] {
        let e = import_err(&[E::Dir("a"), E::File(&format!("a/{name}"), b"", 0o644)]);
        assert!(e.contains("a whiteout of"), "{name}: {e}");
    }
    let e = import_err(&[E::File("a/../../.wh.etc", b"", 0o644)]);
    assert!(e.contains("path traversal"), "{e}");
    // AUFS metadata is ignored, as Docker does; the rest of the layer unpacks.
    let d = tempfile::tempdir().unwrap();
    let img = docker_tar(
        d.path(),
        &[layer(&[
            E::File(".wh..wh.plnk", b"", 0o644),
            E::File("kept", b"k", 0o644),
        ])],
        false,
    );
    let s = store(d.path());
    let r = s.import(&img, None, ImportOptions::default()).unwrap();
    let l = s.lock_layers(&r).unwrap();
    assert!(l.dirs[0].join("kept").is_file());
    assert!(std::fs::symlink_metadata(l.dirs[0].join(".wh.plnk")).is_err());
}

#[test]
fn duplicate_entries_replace_or_are_refused() {
    // A later file replaces an earlier one (tar semantics).
    let d = tempfile::tempdir().unwrap();
    let img = docker_tar(
        d.path(),
        &[layer(&[
            E::File("f", b"first", 0o644),
            E::File("f", b"second", 0o644),
        ])],
        false,
    );
    let s = store(d.path());
    let r = s.import(&img, None, ImportOptions::default()).unwrap();
    let l = s.lock_layers(&r).unwrap();
    assert_eq!(std::fs::read(l.dirs[0].join("f")).unwrap(), b"second");
    // A directory over a file, or a file through an earlier file: refused by name.
    let e = import_err(&[E::File("x", b"1", 0o644), E::Dir("x")]);
    assert!(e.contains("entry `x`"), "{e}");
    let e = import_err(&[E::File("x", b"1", 0o644), E::File("x/y", b"2", 0o644)]);
    assert!(
        e.contains("entry `x/y`") && e.contains("a symlink or a file"),
        "{e}"
    );
}

#[test]
fn entry_names_are_printed_without_terminal_sequences() {
    let e = import_err(&[E::File("\x1b]52;c;cHduZWQ=\x07/../x", b"", 0o644)]);
    assert!(!e.contains('\x1b') && !e.contains('\x07'), "{e:?}");
    assert!(e.contains("\\u{1b}]52"), "{e}");
}
