//! Image sources that try to make the import read a host file: symlinked blobs,
//! symlinked `blobs/` directories, `index.json` as a symlink, `../secret` in a manifest,
//! FIFOs and devices as blobs, hard links to someone else's file; and a secret that
//! *is* the blob, which the parsers must refuse without quoting. Every error is checked
//! to hold no byte of the secret, and the store to hold nothing.

use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;

fn ok_layer() -> Vec<u8> {
    layer(&[E::Dir("etc"), E::File("etc/motd", b"hello\n", 0o644)])
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn a_blob_symlinked_to_a_host_file_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let secret = plant_secret(d.path());
    for (i, target) in [
        secret.to_str().unwrap().to_string(),
        "../../../secret".to_string(),
        "../../../../../../../../../..".to_string() + secret.to_str().unwrap(),
    ]
    .iter()
    .enumerate()
    {
        let oci = Oci::of_layers(&d.path().join(format!("oci{i}")), &[ok_layer()]);
        let blob = oci.blob(&oci.layers[0]);
        std::fs::remove_file(&blob).unwrap();
        symlink(target, &blob).unwrap();
        let e = refused(d.path(), &oci.dir, ImportOptions::default());
        assert!(
            e.contains("is a symlink to") && e.contains("points outside the image"),
            "{e}"
        );
    }
}

#[test]
fn metadata_symlinked_to_a_host_file_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let secret = plant_secret_json(d.path());
    // index.json itself.
    let oci = Oci::of_layers(&d.path().join("a"), &[ok_layer()]);
    std::fs::remove_file(oci.dir.join("index.json")).unwrap();
    symlink(&secret, oci.dir.join("index.json")).unwrap();
    let e = refused(d.path(), &oci.dir, ImportOptions::default());
    assert!(e.contains("`index.json` is a symlink"), "{e}");
    // The config blob.
    let oci = Oci::of_layers(&d.path().join("b"), &[ok_layer()]);
    let cfg = oci.blob(&oci.config);
    std::fs::remove_file(&cfg).unwrap();
    symlink(&secret, &cfg).unwrap();
    let e = refused(d.path(), &oci.dir, ImportOptions::default());
    assert!(e.contains("is a symlink"), "{e}");
    // manifest.json of an unpacked docker save.
    let dd = docker_dir(&d.path().join("c"), "x.json", &[]);
    std::fs::remove_file(dd.join("manifest.json")).unwrap();
    symlink(&secret, dd.join("manifest.json")).unwrap();
    let e = refused(d.path(), &dd, ImportOptions::default());
    assert!(e.contains("`manifest.json` is a symlink"), "{e}");
}

#[test]
fn symlinked_blob_directories_are_refused() {
    let d = tempfile::tempdir().unwrap();
    // The blobs live outside the image; the image's `blobs/` (or `blobs/sha256/`)
    // points there.
    for link in ["blobs", "blobs/sha256"] {
        let outside = d.path().join(format!("outside-{}", link.replace('/', "-")));
        let oci = Oci::of_layers(&outside, &[ok_layer()]);
        let img = d.path().join(format!("img-{}", link.replace('/', "-")));
        std::fs::create_dir_all(&img).unwrap();
        std::fs::copy(oci.dir.join("index.json"), img.join("index.json")).unwrap();
        if link == "blobs/sha256" {
            std::fs::create_dir(img.join("blobs")).unwrap();
        }
        symlink(outside.join(link), img.join(link)).unwrap();
        let e = refused(d.path(), &img, ImportOptions::default());
        assert!(
            e.contains("a directory on its path is a symlink"),
            "{link}: {e}"
        );
    }
}

#[test]
fn manifest_names_that_leave_the_image_are_refused() {
    let d = tempfile::tempdir().unwrap();
    plant_secret(d.path());
    plant_secret_json(d.path());
    let img = d.path().join("img");
    let cases: [(&str, &[&str], &str); 4] = [
        ("../secret.json", &[], "contains `..`"),
        ("/etc/passwd", &[], "is absolute"),
        ("ok.json", &["../secret"], "contains `..`"),
        ("ok.json", &["a/../../secret"], "contains `..`"),
    ];
    for (config, layers, why) in cases {
        let _ = std::fs::remove_dir_all(&img);
        docker_dir(&img, config, layers);
        std::fs::write(img.join("ok.json"), config_for(&["0".repeat(64)])).unwrap();
        let e = refused(d.path(), &img, ImportOptions::default());
        assert!(
            e.contains(why) && e.contains("named as"),
            "{config} {layers:?}: {e}"
        );
    }
    // An OCI digest that is not a digest never becomes a path.
    for (digest, why) in [
        (
            "sha256:../../../../../secret".to_string(),
            "index.json is JSON, but not of",
        ),
        (
            format!("sha512:{}", "0".repeat(128)),
            "is not sha256:<64 hex digits>",
        ),
    ] {
        let oci = Oci::of_layers(&d.path().join("oci"), &[ok_layer()]);
        let index = std::fs::read_to_string(oci.dir.join("index.json")).unwrap();
        let bad = index.replace(&format!("sha256:{}", oci.manifest), &digest);
        std::fs::write(oci.dir.join("index.json"), bad).unwrap();
        let e = refused(d.path(), &oci.dir, ImportOptions::default());
        assert!(e.contains(why), "{digest}: {e}");
        std::fs::remove_dir_all(&oci.dir).unwrap();
    }
}

#[test]
fn fifos_and_devices_are_refused_without_being_read() {
    let d = tempfile::tempdir().unwrap();
    let oci = Oci::of_layers(&d.path().join("oci"), &[ok_layer()]);
    let blob = oci.blob(&oci.layers[0]);
    std::fs::remove_file(&blob).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &blob,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    // With no writer, opening the FIFO for reading would block forever: the import runs
    // on a thread so that a regression fails instead of hanging the suite.
    let (tx, rx) = std::sync::mpsc::channel();
    let root = d.path().to_path_buf();
    let dir = oci.dir.clone();
    std::thread::spawn(move || {
        let _ = tx.send(refused(&root, &dir, ImportOptions::default()));
    });
    let e = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the import blocked on a FIFO");
    assert!(e.contains("is a FIFO, not a regular file"), "{e}");
    if is_root() {
        // /dev/zero's numbers: an endless stream if it were read.
        std::fs::remove_file(&blob).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &blob,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o644),
            rustix::fs::makedev(1, 5),
        )
        .unwrap();
        let e = refused(d.path(), &oci.dir, ImportOptions::default());
        assert!(e.contains("is a character device"), "{e}");
    } else {
        eprintln!("SKIPPED (not root): the device-node case of fifos_and_devices_are_refused_without_being_read");
    }
    // The image source itself as a FIFO.
    let fifo = d.path().join("image.fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let e = refused(d.path(), &fifo, ImportOptions::default());
    assert!(e.contains("is a FIFO: an image is a directory"), "{e}");
}

#[test]
fn hard_links_to_files_of_another_owner_are_refused() {
    if !is_root() {
        eprintln!(
            "SKIPPED (not root): hard_links_to_files_of_another_owner_are_refused needs chown"
        );
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let secret = plant_secret(d.path());
    let oci = Oci::of_layers(&d.path().join("oci"), &[ok_layer()]);
    // The image belongs to uid 4321 (the attacker), the secret to root.
    for e in walk(&oci.dir) {
        rustix::fs::chownat(
            rustix::fs::CWD,
            &e,
            Some(rustix::fs::Uid::from_raw(4321)),
            Some(rustix::fs::Gid::from_raw(4321)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
    let blob = oci.blob(&oci.layers[0]);
    std::fs::remove_file(&blob).unwrap();
    std::fs::hard_link(&secret, &blob).unwrap();
    let e = refused(d.path(), &oci.dir, ImportOptions::default());
    assert!(e.contains("hard links and belongs to uid 0"), "{e}");
    // A hard link among the image owner's own files is fine.
    let oci = Oci::of_layers(&d.path().join("own"), &[ok_layer()]);
    std::fs::hard_link(oci.blob(&oci.layers[0]), d.path().join("own-extra-link")).unwrap();
    store(d.path())
        .import(&oci.dir, None, ImportOptions::default())
        .unwrap();
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![p.to_path_buf()];
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[test]
fn a_secret_inside_the_image_is_never_quoted() {
    let d = tempfile::tempdir().unwrap();
    let secret = std::fs::read(plant_secret(d.path())).unwrap();
    let secret_json = std::fs::read(plant_secret_json(d.path())).unwrap();
    // As the layer: the tar reader's own message quotes the header's name field.
    let oci = Oci::write(&d.path().join("tar"), &[(secret.clone(), hexd(&secret))]);
    let e = refused(d.path(), &oci.dir, ImportOptions::default());
    assert!(e.contains("not a valid tar stream at its start"), "{e}");
    // As a gzip layer that is not gzip past its magic.
    let mut gz = vec![0x1f, 0x8b];
    gz.extend_from_slice(&secret);
    let oci = Oci::write(&d.path().join("gz"), &[(gz.clone(), hexd(&gz))]);
    let e = refused(d.path(), &oci.dir, ImportOptions::default());
    assert!(e.contains("the gzip stream is corrupt"), "{e}");
    // As the config (serde would say `invalid type: string "TOP-SECRET..."`).
    let oci = Oci::of_layers(&d.path().join("cfg"), &[ok_layer()]);
    replace_blob(&oci, &oci.config.clone(), &secret_json);
    let e = refused(d.path(), &oci.dir, ImportOptions::default());
    assert!(e.contains("the image config is JSON, but not of"), "{e}");
    // As index.json.
    let oci = Oci::of_layers(&d.path().join("idx"), &[ok_layer()]);
    std::fs::write(oci.dir.join("index.json"), &secret_json).unwrap();
    let e = refused(d.path(), &oci.dir, ImportOptions::default());
    assert!(e.contains("index.json is JSON, but not of"), "{e}");
    // As manifest.json of a docker save directory, and in a tarball source.
    let dd = docker_dir(&d.path().join("dd"), "x", &[]);
    std::fs::write(dd.join("manifest.json"), &secret).unwrap();
    let e = refused(d.path(), &dd, ImportOptions::default());
    assert!(e.contains("manifest.json is not valid JSON"), "{e}");
    let tarball = d.path().join("secret.tar");
    std::fs::write(&tarball, &secret).unwrap();
    let e = refused(d.path(), &tarball, ImportOptions::default());
    assert!(e.contains("not a valid tarball"), "{e}");
}

/// Puts `data` where the blob `hex` was, and fixes up the digests that name it so the
/// image is consistent (the config's digest in the manifest, the manifest's in the
/// index): the import must get as far as parsing `data`.
fn replace_blob(oci: &Oci, hex: &str, data: &[u8]) {
    assert_eq!(hex, oci.config, "only the config is replaced");
    std::fs::remove_file(oci.blob(hex)).unwrap();
    std::fs::write(oci.blob(&hexd(data)), data).unwrap();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.blob(&oci.manifest)).unwrap()).unwrap();
    m["config"]["digest"] = format!("sha256:{}", hexd(data)).into();
    m["config"]["size"] = data.len().into();
    let m = m.to_string();
    std::fs::write(oci.blob(&hexd(m.as_bytes())), &m).unwrap();
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"] = format!("sha256:{}", hexd(m.as_bytes())).into();
    index["manifests"][0]["size"] = m.len().into();
    std::fs::write(oci.dir.join("index.json"), index.to_string()).unwrap();
}

#[test]
fn tarball_sources_read_only_their_own_entries() {
    let d = tempfile::tempdir().unwrap();
    plant_secret(d.path());
    let l = ok_layer();
    let diff = hexd(&l);
    let cfg = config_for(std::slice::from_ref(&diff));
    let cfg_name = format!("{}.json", hexd(&cfg));
    let build = |name: &str, extra: &[E<'_>], layers: &[&str], with_layer: bool| {
        let mut b = tar::Builder::new(Vec::new());
        append(&mut b, extra);
        if with_layer {
            append(&mut b, &[E::File("l0/layer.tar", &l, 0o644)]);
        }
        append(&mut b, &[E::File(&cfg_name, &cfg, 0o644)]);
        let m = serde_json::json!([{ "Config": cfg_name, "RepoTags": ["t:1"], "Layers": layers }])
            .to_string();
        append(&mut b, &[E::File("manifest.json", m.as_bytes(), 0o644)]);
        let p = d.path().join(name);
        std::fs::write(&p, b.into_inner().unwrap()).unwrap();
        p
    };
    // A layer entry that is a symlink to a host file, absolute or climbing.
    for (i, target) in ["/etc/shadow", "../../secret", "../l0/../../secret"]
        .iter()
        .enumerate()
    {
        let p = build(
            &format!("s{i}.tar"),
            &[E::Symlink("l1/layer.tar", target)],
            &["l1/layer.tar"],
            true,
        );
        let e = refused(d.path(), &p, ImportOptions::default());
        assert!(
            e.contains("is a link whose target points outside the image"),
            "{target}: {e}"
        );
    }
    // A hard link entry to a host path.
    let p = build(
        "h.tar",
        &[E::Hardlink("l1/layer.tar", "/etc/shadow")],
        &["l1/layer.tar"],
        true,
    );
    let e = refused(d.path(), &p, ImportOptions::default());
    assert!(e.contains("is a link whose target is absolute"), "{e}");
    // A name with `..` in the manifest.
    let p = build("n.tar", &[], &["../secret"], true);
    let e = refused(d.path(), &p, ImportOptions::default());
    assert!(e.contains("contains `..`"), "{e}");
    // Two entries of one name: which is meant is ambiguous.
    let p = build(
        "dup.tar",
        &[E::File("l0/layer.tar", b"other", 0o644)],
        &["l0/layer.tar"],
        true,
    );
    let e = refused(d.path(), &p, ImportOptions::default());
    assert!(e.contains("appears more than once"), "{e}");
    // A FIFO entry.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Fifo);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_data(&mut h, "l1/layer.tar", &[][..]).unwrap();
    let fifo_entry = b.into_inner().unwrap();
    let p = build("f.tar", &[], &["l1/layer.tar"], true);
    let mut bytes = fifo_entry[..512].to_vec();
    bytes.extend_from_slice(&std::fs::read(&p).unwrap());
    std::fs::write(&p, bytes).unwrap();
    let e = refused(d.path(), &p, ImportOptions::default());
    assert!(e.contains("is a FIFO in the tarball"), "{e}");
}

#[test]
fn links_inside_the_image_are_followed_inside_it() {
    // `docker save` writes a layer it already wrote as a relative symlink; an unpacked
    // save keeps it. Both forms import.
    let d = tempfile::tempdir().unwrap();
    let l = ok_layer();
    let diff = hexd(&l);
    let cfg = config_for(&[diff.clone(), diff.clone()]);
    let cfg_name = format!("{}.json", hexd(&cfg));
    let mut b = tar::Builder::new(Vec::new());
    append(
        &mut b,
        &[
            E::File("l0/layer.tar", &l, 0o644),
            E::Symlink("l1/layer.tar", "../l0/layer.tar"),
            E::File(&cfg_name, &cfg, 0o644),
        ],
    );
    let m = serde_json::json!([{ "Config": cfg_name, "RepoTags": ["t:1"], "Layers": ["l0/layer.tar", "l1/layer.tar"] }]).to_string();
    append(&mut b, &[E::File("manifest.json", m.as_bytes(), 0o644)]);
    let p = d.path().join("save.tar");
    std::fs::write(&p, b.into_inner().unwrap()).unwrap();
    let r = store(d.path())
        .import(&p, None, ImportOptions::default())
        .unwrap();
    assert_eq!(r.layers, [diff.clone(), diff.clone()]);
    // The same, unpacked into a directory.
    let dir = d.path().join("unpacked");
    std::fs::create_dir_all(dir.join("l0")).unwrap();
    std::fs::create_dir_all(dir.join("l1")).unwrap();
    std::fs::write(dir.join("l0/layer.tar"), &l).unwrap();
    symlink("../l0/layer.tar", dir.join("l1/layer.tar")).unwrap();
    std::fs::write(dir.join(&cfg_name), &cfg).unwrap();
    std::fs::write(dir.join("manifest.json"), &m).unwrap();
    let r = ImageStore::at(d.path().join("store2"))
        .import(&dir, None, ImportOptions::default())
        .unwrap();
    assert_eq!(r.layers.len(), 2);
}
