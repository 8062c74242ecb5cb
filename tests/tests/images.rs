//! OCI images: a two-layer busybox image (with a whiteout and an opaque directory), as an
//! OCI layout and as a `docker save` tarball, runs with its config; writes are thrown
//! away after each run, volumes persist, and the second run unpacks nothing.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use hsb_tests::*;
use hybrid_sandbox::{ImageStore, IsolationRequest};

/// A sandbox with its own image store in a temp dir (traversable by the sandbox user).
fn setup() -> (tempfile::TempDir, Sandbox) {
    let d = tempfile::tempdir().unwrap();
    set_mode(d.path(), 0o755);
    let sb =
        Sandbox::with_default_policy().with_image_store(ImageStore::at(d.path().join("store")));
    (d, sb)
}

fn container(w: Workload) -> Workload {
    w.isolation(IsolationRequest::Container)
}

fn check_image(sb: &Sandbox, reference: &str) {
    // The image's own config: cmd, env, workdir.
    let o = run_in(sb, container(Workload::default().image(reference)));
    assert_eq!(stdout(&o), "hello from the image\n", "{o:?}");
    let o = run_in(sb, container(Workload::new("sh", ["-c", "pwd; echo $IMAGE_VAR; ls /data | tr '\\n' ' '; echo; ls /opt | tr '\\n' ' '; echo; cat /data/keep.txt /data/added.txt; id -u"]).image(reference)));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"/data"), "{out}");
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
    assert_eq!(&lines[4..6], ["lower", "upper"], "{out}");
    assert_eq!(
        lines.get(6),
        Some(&"0"),
        "runs as the image's user (root of the user namespace): {out}"
    );
    // A write in one run is gone in the next.
    let o = run_in(
        sb,
        container(
            Workload::new(
                "sh",
                [
                    "-c",
                    "echo scribble > /data/keep.txt; echo new > /etc/new; cat /data/keep.txt",
                ],
            )
            .image(reference),
        ),
    );
    assert_eq!(stdout(&o), "scribble\n", "{o:?}");
    let o = run_in(
        sb,
        container(
            Workload::new(
                "sh",
                ["-c", "cat /data/keep.txt; test -e /etc/new && echo LEAKED"],
            )
            .image(reference),
        ),
    );
    assert_eq!(stdout(&o), "lower\n", "{o:?}");
}

#[test]
fn oci_layout_image_runs_with_its_config() {
    let (d, sb) = setup();
    let img = hsb_tests::image::write_oci_layout(&d.path().join("oci"), "");
    check_image(&sb, img.to_str().unwrap());
}

#[test]
fn docker_save_tarball_runs_and_is_imported_once() {
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
    check_image(&sb, "hsb-test:docker");
    // The second run unpacked nothing: the layer directories are the same inodes, and
    // the store's scratch space is empty.
    let layers: Vec<u64> = r
        .layers
        .iter()
        .map(|l| {
            std::fs::metadata(store.root().join("layers/sha256").join(l))
                .unwrap()
                .ino()
        })
        .collect();
    run_in(
        &sb,
        container(Workload::new("true", Vec::<String>::new()).image("hsb-test:docker")),
    );
    let again: Vec<u64> = r
        .layers
        .iter()
        .map(|l| {
            std::fs::metadata(store.root().join("layers/sha256").join(l))
                .unwrap()
                .ino()
        })
        .collect();
    assert_eq!(layers, again);
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0
    );
}

fn unsafe_root_owner() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    (unsafe { libc::geteuid() } == 0).then_some((
        hybrid_sandbox::ROOT_MODE_HOST_ID,
        hybrid_sandbox::ROOT_MODE_HOST_ID,
    ))
}

#[test]
fn volumes_persist_and_users_come_from_the_image() {
    let (d, sb) = setup();
    let img = hsb_tests::image::write_docker_tar(&d.path().join("img.tar"), "user");
    let vol = writable_tempdir();
    let w = |script: &str| {
        container(
            Workload::new("sh", ["-c", script])
                .image(img.to_str().unwrap())
                .mount(Mount::rw(vol.path(), "/vol")),
        )
    };
    let o = run_in(&sb, w("id -u; id -g; echo kept > /vol/state"));
    assert_eq!(stdout(&o), "1234\n1234\n", "{o:?}");
    let o = run_in(&sb, w("cat /vol/state"));
    assert_eq!(stdout(&o), "kept\n");
    assert_eq!(
        std::fs::read_to_string(vol.path().join("state")).unwrap(),
        "kept\n"
    );
}

#[test]
fn image_runs_keep_the_walls() {
    let (d, sb) = setup();
    let img = hsb_tests::image::write_oci_layout(&d.path().join("oci"), "");
    let o = run_in(&sb, container(Workload::new("sh", ["-c", "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; ls /usr 2>&1 | head -1"]).image(img.to_str().unwrap())));
    let out = stdout(&o);
    assert!(
        out.contains("CapEff:\t0000000000000000")
            && out.contains("NoNewPrivs:\t1")
            && out.contains("Seccomp:\t2"),
        "{out}"
    );
    assert!(
        out.contains("No such file"),
        "the host's /usr must not be mounted over an image: {out}"
    );
    assert!(
        o.enforcement.filesystem.contains("overlayfs"),
        "{}",
        o.enforcement.filesystem
    );
}

#[test]
fn unknown_images_and_images_without_a_program_fail_clearly() {
    let (_d, sb) = setup();
    let rt = runtime();
    let e = rt
        .block_on(sb.run(container(Workload::default().image("no-such-image:1"))))
        .unwrap_err();
    assert!(
        e.chain().contains("no image `no-such-image:1`"),
        "{}",
        e.chain()
    );
    assert_eq!(e.exit_status(), 125);
    let _ = Path::new("/");
}
