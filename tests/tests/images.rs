//! OCI images, in both backends: a two-layer busybox image (with a whiteout and an
//! opaque dir), as an OCI layout and as a `docker save` tarball, runs with its config;
//! writes are thrown away after each run (and bounded), volumes persist, the second
//! run unpacks nothing, and hostile images are clear errors (at import, or, for what a
//! layer may hold, harmless inside the sandbox).

use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hsb_tests::*;
use hybrid_sandbox::{ByteSize, ImageStore, IsolationRequest};
use sha2::{Digest, Sha256};

/// A sandbox with its own image store in a temp dir (traversable by the sandbox user).
fn setup() -> (tempfile::TempDir, Sandbox) {
    let d = tempfile::tempdir().unwrap();
    set_mode(d.path(), 0o755);
    let sb =
        Sandbox::with_default_policy().with_image_store(ImageStore::at(d.path().join("store")));
    (d, sb)
}

fn sh(iso: IsolationRequest, script: &str, image: &str) -> Workload {
    Workload::new("sh", ["-c", script])
        .image(image)
        .isolation(iso)
}

fn check_image(iso: IsolationRequest, sb: &Sandbox, reference: &str) {
    // The image's own config: cmd, env, workdir.
    let o = run_in(sb, Workload::default().image(reference).isolation(iso));
    assert_eq!(stdout(&o), "hello from the image\n", "{o:?}");
    assert_eq!(o.isolation, iso_of(iso));
    let o = run_in(sb, sh(iso, "pwd; echo $IMAGE_VAR; ls /data | tr '\\n' ' '; echo; ls /opt | tr '\\n' ' '; echo; cat /data/keep.txt /data/added.txt; id -u", reference));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"/data"), "{out} {o:?}");
    assert_eq!(lines.get(1), Some(&"from-image"), "{out}");
    assert_eq!(
        lines.get(2).map(|l| l.trim()),
        Some("added.txt keep.txt"),
        "the whited-out file must be gone: {out}"
    );
    assert_eq!(
        lines.get(3).map(|l| l.trim()),
        Some("c"),
        "the opaque directory hides the lower layer: {out}"
    );
    assert_eq!(lines.get(4..6), Some(&["lower", "upper"][..]), "{out}");
    assert_eq!(
        lines.get(6),
        Some(&"0"),
        "runs as the image's user (root of the sandbox): {out}"
    );
    // A write in one run is gone in the next.
    let o = run_in(
        sb,
        sh(
            iso,
            "echo scribble > /data/keep.txt; echo new > /etc/new; rm /data/added.txt; cat /data/keep.txt; ls /data",
            reference,
        ),
    );
    assert_eq!(stdout(&o), "scribble\nkeep.txt\n", "{o:?}");
    let o = run_in(
        sb,
        sh(
            iso,
            "cat /data/keep.txt /data/added.txt; test -e /etc/new && echo LEAKED",
            reference,
        ),
    );
    assert_eq!(stdout(&o), "lower\nupper\n", "{o:?}");
}

fn iso_of(iso: IsolationRequest) -> Isolation {
    match iso {
        IsolationRequest::MicroVm => Isolation::MicroVm,
        _ => Isolation::Container,
    }
}

fn unsafe_root_owner() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    (unsafe { libc::geteuid() } == 0).then_some((
        hybrid_sandbox::ROOT_MODE_HOST_ID,
        hybrid_sandbox::ROOT_MODE_HOST_ID,
    ))
}

fn oci_layout_image_runs_with_its_config(iso: IsolationRequest) {
    let (d, sb) = setup();
    let img = hsb_tests::image::write_oci_layout(&d.path().join("oci"), "");
    check_image(iso, &sb, img.to_str().unwrap());
}

fn docker_save_tarball_runs_and_is_imported_once(iso: IsolationRequest) {
    let (d, sb) = setup();
    let tar = hsb_tests::image::write_docker_tar(&d.path().join("img.tar"), "");
    let store = ImageStore::at(d.path().join("store"));
    let r = store
        .import(
            &tar,
            None,
            hybrid_sandbox::ImportOptions {
                owner: unsafe_root_owner(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.name, "hsb-test:docker");
    check_image(iso, &sb, "hsb-test:docker");
    // The second run unpacked nothing: the layer directories are the same inodes, and
    // the store's scratch space is empty.
    let inodes = || -> Vec<u64> {
        r.layers
            .iter()
            .map(|l| {
                std::fs::metadata(store.root().join("layers/sha256").join(l))
                    .unwrap()
                    .ino()
            })
            .collect()
    };
    let layers = inodes();
    let o = run_in(
        &sb,
        Workload::new("true", Vec::<String>::new())
            .image("hsb-test:docker")
            .isolation(iso),
    );
    assert!(o.success(), "{o:?}");
    assert_eq!(layers, inodes());
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0
    );
}

fn volumes_persist_and_users_come_from_the_image(iso: IsolationRequest) {
    let (d, sb) = setup();
    let img = hsb_tests::image::write_docker_tar(&d.path().join("img.tar"), "user");
    let vol = writable_tempdir();
    let w =
        |script: &str| sh(iso, script, img.to_str().unwrap()).mount(Mount::rw(vol.path(), "/vol"));
    let o = run_in(&sb, w("id -u; id -g; echo kept > /vol/state"));
    assert_eq!(stdout(&o), "1234\n1234\n", "{o:?}");
    let o = run_in(&sb, w("cat /vol/state"));
    assert_eq!(stdout(&o), "kept\n");
    assert_eq!(
        std::fs::read_to_string(vol.path().join("state")).unwrap(),
        "kept\n"
    );
}

fn image_runs_keep_the_walls(iso: IsolationRequest) {
    let (d, sb) = setup();
    let img = hsb_tests::image::write_oci_layout(&d.path().join("oci"), "");
    let o = run_in(
        &sb,
        sh(
            iso,
            "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; ls /usr 2>&1 | head -1",
            img.to_str().unwrap(),
        ),
    );
    let out = stdout(&o);
    assert!(
        out.contains("CapEff:\t0000000000000000") && out.contains("NoNewPrivs:\t1"),
        "{out}"
    );
    assert!(
        out.contains("No such file"),
        "the host's /usr must not be mounted over an image: {out}"
    );
    match iso {
        IsolationRequest::MicroVm => {
            assert!(
                o.enforcement.filesystem.contains("image"),
                "{}",
                o.enforcement.filesystem
            );
            assert!(o.enforcement.vm.is_some());
        }
        _ => {
            assert!(out.contains("Seccomp:\t2"), "{out}");
            assert!(
                o.enforcement.filesystem.contains("overlayfs"),
                "{}",
                o.enforcement.filesystem
            );
        }
    }
}

fn writes_to_the_image_root_are_bounded(iso: IsolationRequest) {
    let (d, sb) = setup();
    let img = hsb_tests::image::write_oci_layout(&d.path().join("oci"), "");
    let mut w = sh(
        iso,
        "dd if=/dev/zero of=/big bs=1048576 count=64 2>&1 | grep -o 'No space left on device'; ls -l /big | awk '{print $5}'",
        img.to_str().unwrap(),
    );
    w.limits.tmp_size = Some(ByteSize::mib(8));
    w.limits.memory = Some(ByteSize::mib(128));
    let o = run_in(&sb, w);
    let out = stdout(&o);
    assert!(out.contains("No space left on device"), "{out} {o:?}");
    let size: u64 = out
        .lines()
        .last()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(u64::MAX);
    assert!(size <= 8 << 20, "{out}");
}

fn unknown_images_and_images_without_a_program_fail_clearly(iso: IsolationRequest) {
    let (_d, sb) = setup();
    let rt = runtime();
    let e = rt
        .block_on(sb.run(Workload::default().image("no-such-image:1").isolation(iso)))
        .unwrap_err();
    assert!(
        e.chain().contains("no image `no-such-image:1`"),
        "{}",
        e.chain()
    );
    assert_eq!(e.exit_status(), 125);
}

/// One layer entry of a hand-made (possibly hostile) image.
enum Entry<'a> {
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
}

/// A layer written raw: the tar crate refuses to build hostile paths itself.
fn layer(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        match e {
            Entry::File(p, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.set_mode(*mode);
                let name = &mut h.as_old_mut().name;
                name.fill(0);
                name[..p.len()].copy_from_slice(p.as_bytes());
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            Entry::Symlink(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                b.append_link(&mut h, p, t).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn hex_sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A `docker save` tarball of `layers` whose command is `sh`.
fn docker_tar(dir: &Path, layers: &[Vec<u8>]) -> PathBuf {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", hex_sha(l)))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    })
    .to_string();
    let config_name = format!("{}.json", hex_sha(config.as_bytes()));
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
        add(&name, l);
        names.push(name);
    }
    add(&config_name, config.as_bytes());
    let manifest =
        serde_json::json!([{ "Config": config_name, "RepoTags": ["hostile:1"], "Layers": names }])
            .to_string();
    add("manifest.json", manifest.as_bytes());
    let p = dir.join("hostile.tar");
    std::fs::File::create(&p)
        .unwrap()
        .write_all(&b.into_inner().unwrap())
        .unwrap();
    p
}

fn hostile_images_are_clear_errors(iso: IsolationRequest) {
    let (d, sb) = setup();
    let rt = runtime();
    // A layer that climbs out of its directory: refused at import, nothing written
    // outside the store.
    let img = docker_tar(d.path(), &[layer(&[Entry::File("../escape", b"x", 0o644)])]);
    let e = rt
        .block_on(
            sb.run(
                Workload::new("sh", Vec::<String>::new())
                    .image(img.to_str().unwrap())
                    .isolation(iso),
            ),
        )
        .unwrap_err();
    assert!(e.chain().contains("path traversal"), "{}", e.chain());
    assert_eq!(e.exit_status(), 125);
    assert!(!d.path().join("escape").exists());
    assert!(!d.path().join("store").join("escape").exists());
    // Symlinks pointing out of the image are harmless: they resolve inside the sandbox.
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let img = docker_tar(
        d.path(),
        &[layer(&[
            Entry::File("bin/busybox", &busybox, 0o755),
            Entry::Symlink("bin/sh", "/bin/busybox"),
            Entry::Symlink("bin/cat", "/bin/busybox"),
            Entry::Symlink("abs", "/etc/shadow"),
            Entry::Symlink("rel", "../../../../../../etc/shadow"),
        ])],
    );
    let o = run_in(
        &sb,
        Workload::new("sh", ["-c", "cat /abs; cat /rel; echo end"])
            .image(img.to_str().unwrap())
            .isolation(iso),
    );
    assert_eq!(stdout(&o), "end\n", "{o:?}");
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("root:"),
        "{o:?}"
    );
}

/// An image's own /etc/resolv.conf gives way to the egress broker's, so names resolve
/// by the policy inside an image too.
fn egress_resolves_names_in_an_image(iso: IsolationRequest) {
    let (d, sb) = setup();
    let img = hsb_tests::image::write_oci_layout(&d.path().join("oci"), "");
    let mut w = sh(
        iso,
        "cat /etc/resolv.conf; nslookup x.test 2>&1; nslookup y.test >/dev/null 2>&1 || echo y-unresolved",
        img.to_str().unwrap(),
    );
    w.network = Some(hybrid_sandbox::Network::Egress);
    w.egress.allow = vec!["x.test".parse().unwrap()];
    let o = run_in(&sb, w);
    let out = stdout(&o);
    assert!(out.contains("nameserver 100.96.0.1"), "{out} {o:?}");
    assert!(out.contains("198.18."), "{out} {o:?}");
    assert!(out.contains("y-unresolved"), "{out} {o:?}");
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
    oci_layout_image_runs_with_its_config,
    docker_save_tarball_runs_and_is_imported_once,
    volumes_persist_and_users_come_from_the_image,
    image_runs_keep_the_walls,
    writes_to_the_image_root_are_bounded,
    unknown_images_and_images_without_a_program_fail_clearly,
    hostile_images_are_clear_errors,
    egress_resolves_names_in_an_image,
);
