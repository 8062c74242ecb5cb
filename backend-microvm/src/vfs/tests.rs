use std::path::{Path, PathBuf};

use super::*;
use crate::memory::Memory;
use sandbox_core::{MountMode, PlannedMount};

struct Fixture {
    _dir: TempDir,
    host: PathBuf,
    vfs: Vfs,
    _mem: Memory,
}

/// A throwaway host directory.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture() -> Fixture {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let host = std::env::temp_dir().join(format!("hsb-vfs-{}-{n}", std::process::id()));
    std::fs::create_dir_all(host.join("ro/sub")).unwrap();
    std::fs::create_dir_all(host.join("rw")).unwrap();
    std::fs::write(host.join("ro/file"), b"content").unwrap();
    std::fs::write(host.join("secret"), b"host secret").unwrap();
    std::os::unix::fs::symlink("/data/file", host.join("ro/abs")).unwrap();
    std::os::unix::fs::symlink("../../secret", host.join("ro/sub/escape")).unwrap();
    std::os::unix::fs::symlink(host.join("secret"), host.join("ro/hostabs")).unwrap();
    std::os::unix::fs::symlink("ro", host.join("link-to-ro")).unwrap();
    let mounts = [
        PlannedMount {
            source: host.join("ro"),
            target: "/data".into(),
            mode: MountMode::Ro,
            optional: false,
            system: false,
            noexec: false,
        },
        PlannedMount {
            source: host.join("rw"),
            target: "/out".into(),
            mode: MountMode::Rw,
            optional: false,
            system: false,
            noexec: false,
        },
        PlannedMount {
            source: host.join("link-to-ro"),
            target: "/alias".into(),
            mode: MountMode::Ro,
            optional: false,
            system: false,
            noexec: false,
        },
        PlannedMount {
            source: host.join("missing"),
            target: "/opt".into(),
            mode: MountMode::Ro,
            optional: true,
            system: false,
            noexec: false,
        },
    ];
    let mem = Memory::new(2 << 20).unwrap();
    let mut tree = MountTree::new();
    let tmp = tmpfs::TmpFs::create(1 << 20, mem.budget(), (1000, 1000), tmpfs::TMP_DEV, false);
    tree.insert(Path::new("/tmp"), Node::Tmp(tmp));
    let mut sources = Vec::new();
    // As a rootless caller's: the host paths themselves (no idmapped trees).
    let mut opener = source::Sources::new(false, (u32::MAX, u32::MAX)).unwrap();
    for (i, pm) in mounts.iter().enumerate() {
        if let Some(m) = opener.open(pm, i as u32).unwrap() {
            tree.insert(&pm.target, m.mount);
            sources.extend(m.source);
        }
    }
    Fixture {
        host: host.clone(),
        _dir: TempDir(host),
        vfs: Vfs::new(tree, sources),
        _mem: mem,
    }
}

fn read_all(f: &Fixture, path: &[u8]) -> Result<Vec<u8>, Errno> {
    let (_, opened) = f.vfs.open(&f.vfs.root(), path, libc::O_RDONLY, 0)?;
    match opened {
        Opened::Host(fd) => {
            let mut buf = vec![0u8; 100];
            let n = host::pread(fd.as_raw_fd(), &mut buf, 0)?;
            buf.truncate(n);
            Ok(buf)
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn reads_through_mounts_and_refuses_writes_on_ro() {
    let f = fixture();
    assert_eq!(read_all(&f, b"/data/file").unwrap(), b"content");
    assert_eq!(read_all(&f, b"/data/sub/../file").unwrap(), b"content");
    let root = f.vfs.root();
    assert_eq!(
        f.vfs
            .open(&root, b"/data/file", libc::O_WRONLY, 0)
            .unwrap_err(),
        errno::EROFS
    );
    assert_eq!(
        f.vfs
            .open(&root, b"/data/new", libc::O_WRONLY | libc::O_CREAT, 0o644)
            .unwrap_err(),
        errno::EROFS
    );
    assert_eq!(
        f.vfs.mkdir(&root, b"/data/d", 0o755).unwrap_err(),
        errno::EROFS
    );
    assert_eq!(
        f.vfs.unlink(&root, b"/data/file", false).unwrap_err(),
        errno::EROFS
    );
    assert_eq!(
        f.vfs.mkdir(&root, b"/newdir", 0o755).unwrap_err(),
        errno::EROFS
    );
    assert_eq!(
        f.vfs.resolve(&root, b"/opt", true).unwrap_err(),
        errno::ENOENT
    );
}

#[test]
fn writes_on_rw_reach_the_host() {
    let f = fixture();
    let root = f.vfs.root();
    let (_, opened) = f
        .vfs
        .open(
            &root,
            b"/out/new.txt",
            libc::O_WRONLY | libc::O_CREAT,
            0o644,
        )
        .unwrap();
    let Opened::Host(fd) = opened else { panic!() };
    host::pwrite(fd.as_raw_fd(), b"written", 0).unwrap();
    assert_eq!(
        std::fs::read(f.host.join("rw/new.txt")).unwrap(),
        b"written"
    );
    f.vfs.mkdir(&root, b"/out/d", 0o755).unwrap();
    f.vfs
        .rename(&root, b"/out/new.txt", &root, b"/out/d/moved", 0)
        .unwrap();
    assert!(f.host.join("rw/d/moved").exists());
    assert_eq!(
        f.vfs
            .rename(&root, b"/out/d/moved", &root, b"/tmp/x", 0)
            .unwrap_err(),
        errno::EXDEV
    );
}

#[test]
fn dotdot_and_symlinks_stay_in_the_sandbox() {
    let f = fixture();
    let root = f.vfs.root();
    // `..` from a mount root goes to the sandbox's parent, not the host's.
    let loc = f.vfs.resolve(&root, b"/data/../../../", true).unwrap();
    assert_eq!(loc.path(), b"/");
    assert_eq!(
        f.vfs.resolve(&root, b"/data/../secret", true).unwrap_err(),
        errno::ENOENT
    );
    // A relative link climbing out of the mount lands in the sandbox root.
    assert_eq!(
        f.vfs.resolve(&root, b"/data/sub/escape", true).unwrap_err(),
        errno::ENOENT
    );
    // An absolute link resolves against the sandbox root...
    assert_eq!(read_all(&f, b"/data/abs").unwrap(), b"content");
    // ... so the host path it names does not exist here.
    assert_eq!(
        f.vfs.resolve(&root, b"/data/hostabs", true).unwrap_err(),
        errno::ENOENT
    );
    // Not following the last link shows the link.
    let l = f.vfs.resolve(&root, b"/data/abs", false).unwrap();
    assert_eq!(l.node().link_target().unwrap(), b"/data/file");
}

#[test]
fn a_symlink_source_is_a_symlink_inside() {
    let f = fixture();
    let root = f.vfs.root();
    let l = f.vfs.resolve(&root, b"/alias", false).unwrap();
    assert!(l.node().is_link());
    assert_eq!(l.node().link_target().unwrap(), b"ro");
    let names: Vec<Vec<u8>> = f
        .vfs
        .list(&root)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        [&b"."[..], b"..", b"alias", b"data", b"out", b"tmp"].map(<[u8]>::to_vec)
    );
}

#[test]
fn tmp_is_writable_and_listed() {
    let f = fixture();
    let root = f.vfs.root();
    f.vfs.mkdir(&root, b"/tmp/a", 0o755).unwrap();
    f.vfs
        .open(&root, b"/tmp/a/f", libc::O_CREAT | libc::O_WRONLY, 0o600)
        .unwrap();
    f.vfs.symlink(b"f", &root, b"/tmp/a/l").unwrap();
    let names: Vec<Vec<u8>> = f
        .vfs
        .list(&f.vfs.resolve(&root, b"/tmp/a", true).unwrap())
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, [&b"."[..], b"..", b"f", b"l"].map(<[u8]>::to_vec));
    f.vfs.rename(&root, b"/tmp/a", &root, b"/tmp/b", 0).unwrap();
    assert!(f.vfs.resolve(&root, b"/tmp/b/l", true).is_ok());
    assert_eq!(
        f.vfs.unlink(&root, b"/tmp/b", true).unwrap_err(),
        errno::ENOTEMPTY
    );
    assert_eq!(
        f.vfs.unlink(&root, b"/tmp", true).unwrap_err(),
        errno::EBUSY
    );
    // A missing name in the read-only root: EROFS before ENOENT, as Linux.
    assert_eq!(
        f.vfs.unlink(&root, b"/missing", false).unwrap_err(),
        errno::EROFS
    );
}

/// An image root: two layers (the upper with a whiteout and an opaque directory)
/// under an in-memory upper layer; the host layers never change.
#[test]
fn image_layers_merge_whiteouts_hide_and_writes_copy_up() {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let host = std::env::temp_dir().join(format!("hsb-ovl-{}-{n}", std::process::id()));
    let _guard = TempDir(host.clone());
    let (l1, l2) = (host.join("l1"), host.join("l2"));
    for d in ["data", "opt", "etc/deep"] {
        std::fs::create_dir_all(l1.join(d)).unwrap();
    }
    std::fs::create_dir_all(l2.join("data")).unwrap();
    std::fs::create_dir_all(l2.join("opt")).unwrap();
    std::fs::write(l1.join("data/keep"), b"lower").unwrap();
    std::fs::write(l1.join("data/gone"), b"doomed").unwrap();
    std::fs::write(l1.join("opt/a"), b"a").unwrap();
    std::fs::write(l1.join("etc/deep/f"), b"f").unwrap();
    std::fs::write(l2.join("data/added"), b"upper").unwrap();
    std::fs::write(l2.join("opt/c"), b"c").unwrap();
    let wh = std::ffi::CString::new(l2.join("data/gone").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C string; a 0/0 character device is an overlay whiteout.
    let rc = unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR | 0o644, 0) };
    assert_eq!(rc, 0);
    let opt = std::ffi::CString::new(l2.join("opt").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C strings and value buffer.
    let rc = unsafe {
        libc::setxattr(
            opt.as_ptr(),
            c"user.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(rc, 0, "the test's filesystem needs user xattrs");

    let mem = Memory::new(4 << 20).unwrap();
    let mut plan = sandbox_core::Policy::embedded_default()
        .resolve(
            &sandbox_core::Workload::new("/bin/true", Vec::<String>::new()),
            &sandbox_core::HostSupport::assume_all(),
        )
        .unwrap();
    plan.mounts.clear();
    plan.cwd = "/work/here".into();
    plan.user = (0, 0);
    plan.root = Some(sandbox_core::ImageRoot {
        name: "test".into(),
        digest: String::new(),
        layers: vec![l1.clone(), l2.clone()],
    });
    let vfs = crate::vfs::build(&plan, mem.budget()).unwrap();
    let root = vfs.root();
    let names = |p: &[u8]| -> Vec<String> {
        vfs.list(&vfs.resolve(&root, p, true).unwrap())
            .unwrap()
            .into_iter()
            .map(|e| String::from_utf8(e.name).unwrap())
            .filter(|n| n != "." && n != "..")
            .collect()
    };
    let read = |p: &[u8]| -> Vec<u8> {
        let (_, o) = vfs.open(&root, p, libc::O_RDONLY, 0).unwrap();
        let mut buf = vec![0u8; 64];
        let n = match o {
            Opened::Host(fd) => host::pread(fd.as_raw_fd(), &mut buf, 0).unwrap(),
            Opened::Tmp(t) => t.read_at(0, &mut buf).unwrap(),
            other => panic!("{other:?}"),
        };
        buf.truncate(n);
        buf
    };
    assert_eq!(
        names(b"/data"),
        ["added", "keep"],
        "the whiteout hides `gone`"
    );
    assert_eq!(
        names(b"/opt"),
        ["c"],
        "the opaque directory hides the lower one"
    );
    assert!(
        names(b"/").contains(&"work".to_string()),
        "the cwd was made"
    );
    assert_eq!(read(b"/data/keep"), b"lower");
    assert_eq!(
        vfs.resolve(&root, b"/data/gone", true).unwrap_err(),
        errno::ENOENT
    );

    // A write copies up; the layer on the host is untouched.
    let (_, o) = vfs
        .open(&root, b"/data/keep", libc::O_WRONLY | libc::O_TRUNC, 0)
        .unwrap();
    let Opened::Tmp(t) = o else { panic!() };
    t.write_at(0, b"changed").unwrap();
    assert_eq!(read(b"/data/keep"), b"changed");
    assert_eq!(std::fs::read(l1.join("data/keep")).unwrap(), b"lower");
    // Removing a lower file leaves a whiteout; a directory made there hides the lower.
    vfs.unlink(&root, b"/data/added", false).unwrap();
    assert_eq!(names(b"/data"), ["keep"]);
    assert!(l2.join("data/added").exists());
    vfs.mkdir(&root, b"/etc/new", 0o755).unwrap();
    vfs.open(&root, b"/etc/new/f", libc::O_CREAT | libc::O_WRONLY, 0o644)
        .unwrap();
    assert_eq!(
        vfs.unlink(&root, b"/etc/deep", true).unwrap_err(),
        errno::ENOTEMPTY
    );
    vfs.unlink(&root, b"/etc/deep/f", false).unwrap();
    vfs.unlink(&root, b"/etc/deep", true).unwrap();
    vfs.mkdir(&root, b"/etc/deep", 0o755).unwrap();
    assert!(
        names(b"/etc/deep").is_empty(),
        "a new directory over a whiteout is opaque"
    );
    // Renames: files move (copied up), lower directories are EXDEV as in overlayfs.
    vfs.rename(&root, b"/data/keep", &root, b"/etc/new/moved", 0)
        .unwrap();
    assert_eq!(read(b"/etc/new/moved"), b"changed");
    assert!(names(b"/data").is_empty());
    assert_eq!(
        vfs.rename(&root, b"/opt", &root, b"/opt2", 0).unwrap_err(),
        errno::EXDEV
    );
    vfs.rename(&root, b"/etc/new", &root, b"/etc/renamed", 0)
        .unwrap();
    assert_eq!(names(b"/etc/renamed"), ["f", "moved"]);
    // Generated files: the sandbox's host name, not the image's users.
    assert!(vfs.resolve(&root, b"/etc/hostname", true).is_ok());
    assert_eq!(
        vfs.meta(&vfs.resolve(&root, b"/opt/c", true).unwrap())
            .unwrap()
            .uid,
        0
    );
}

#[test]
fn a_moved_directory_is_found_again_and_a_removed_one_is_gone() {
    let f = fixture();
    let root = f.vfs.root();
    // A host directory (rw mount) and a tmpfs one.
    for base in ["/out", "/tmp"] {
        let p = |s: &str| format!("{base}/{s}").into_bytes();
        f.vfs.mkdir(&root, &p("a"), 0o755).unwrap();
        f.vfs.mkdir(&root, &p("a/b"), 0o755).unwrap();
        f.vfs.mkdir(&root, &p("c"), 0o755).unwrap();
        let cwd = f.vfs.resolve(&root, &p("a/b"), true).unwrap();
        let before = f.vfs.moves();
        f.vfs.rename(&root, &p("a"), &root, &p("c/d"), 0).unwrap();
        assert_ne!(f.vfs.moves(), before, "{base}");
        let now = f.vfs.relocate(&cwd).unwrap().expect("found");
        assert_eq!(now.path(), p("c/d/b"), "{base}");
        // `..` is its new parent.
        assert_eq!(now.parent_loc().unwrap().path(), p("c/d"), "{base}");
        f.vfs.unlink(&root, &p("c/d/b"), true).unwrap();
        assert_eq!(f.vfs.relocate(&cwd).err(), Some(errno::ENOENT), "{base}");
        // Nothing is made in a removed directory.
        assert_eq!(
            f.vfs.mkdir(&cwd, b"x", 0o755).err(),
            Some(errno::ENOENT),
            "{base}"
        );
    }
}

/// A tmpfs the plan mounts `noexec` is so for every file in it, its root and what is
/// made in it later, and for nothing else (the sandbox's own /tmp, another tmpfs); its
/// report says `noexec` and no longer that it is not applied.
#[test]
fn a_noexec_tmpfs_is_noexec_for_its_files_only() {
    let mem = Memory::new(4 << 20).unwrap();
    let mut plan = sandbox_core::Policy::embedded_default()
        .resolve(
            &sandbox_core::Workload::new("/bin/true", Vec::<String>::new()),
            &sandbox_core::HostSupport::assume_all(),
        )
        .unwrap();
    plan.mounts.clear();
    plan.tmpfs = ["/nx", "/ok"]
        .into_iter()
        .map(|t| sandbox_core::PlannedTmpfs {
            target: t.into(),
            size: 1 << 20,
            mode: 0o1777,
            noexec: t == "/nx",
        })
        .collect();
    let vfs = crate::vfs::build(&plan, mem.budget()).unwrap();
    let root = vfs.root();
    for (dir, noexec) in [("/nx", true), ("/ok", false), ("/tmp", false)] {
        let file = format!("{dir}/f");
        let (loc, _) = vfs
            .open(&root, file.as_bytes(), libc::O_CREAT | libc::O_RDWR, 0o755)
            .unwrap();
        assert_eq!(loc.node().noexec(), noexec, "{file}");
        let d = vfs.resolve(&root, dir.as_bytes(), true).unwrap();
        assert_eq!(d.node().noexec(), noexec, "{dir}");
    }
    let note = |t: &str| {
        vfs.reports
            .iter()
            .find(|r| r.target == t)
            .and_then(|r| r.note.clone())
            .unwrap_or_default()
    };
    assert!(note("/nx").ends_with("; noexec"), "{}", note("/nx"));
    assert!(!note("/ok").contains("noexec"), "{}", note("/ok"));
}

/// A host bind the plan mounts `noexec` is so for its mount point and everything
/// looked up or made under it (a read-only one's cached directories too, and a file
/// mount), and for nothing else: a bind without it, an in-memory filesystem mounted
/// inside it, an image root's layers and its upper layer. Its report says `noexec`.
#[test]
fn a_noexec_bind_is_noexec_for_what_is_under_it_only() {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let host = std::env::temp_dir().join(format!("hsb-vfs-nx-{}-{n}", std::process::id()));
    let _dir = TempDir(host.clone());
    for d in ["layer/bin", "nx/sub", "nxro/sub", "ok", "files"] {
        std::fs::create_dir_all(host.join(d)).unwrap();
    }
    for f in [
        "layer/bin/prog",
        "nx/sub/f",
        "nxro/sub/f",
        "ok/f",
        "files/f",
    ] {
        std::fs::write(host.join(f), b"\x7fELF").unwrap();
    }
    for d in ["nx", "ok"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(host.join(d), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let mem = Memory::new(4 << 20).unwrap();
    let mut plan = sandbox_core::Policy::embedded_default()
        .resolve(
            &sandbox_core::Workload::new("/bin/true", Vec::<String>::new()),
            &sandbox_core::HostSupport::assume_all(),
        )
        .unwrap();
    plan.user = (0, 0);
    plan.root = Some(sandbox_core::ImageRoot {
        name: "test".into(),
        digest: String::new(),
        layers: vec![host.join("layer")],
    });
    let mount = |src: &str, target: &str, mode, noexec| PlannedMount {
        source: host.join(src),
        target: target.into(),
        mode,
        optional: false,
        system: false,
        noexec,
    };
    plan.mounts = vec![
        mount("nx", "/nx", MountMode::Rw, true),
        mount("nxro", "/nxro", MountMode::Ro, true),
        mount("files/f", "/nxf", MountMode::Ro, true),
        mount("ok", "/ok", MountMode::Rw, false),
    ];
    plan.tmpfs = vec![sandbox_core::PlannedTmpfs {
        target: "/nx/t".into(),
        size: 1 << 20,
        mode: 0o1777,
        noexec: false,
    }];
    let vfs = crate::vfs::build(&plan, mem.budget()).unwrap();
    let root = vfs.root();
    // (Files made on a host mount: `made_on_a_noexec_bind_is_noexec`, as a root
    // caller's idmapped tree takes no file made by uid 0.)
    for new in ["/nx/t/new", "/made"] {
        vfs.open(&root, new.as_bytes(), libc::O_CREAT | libc::O_RDWR, 0o755)
            .unwrap();
    }
    let noexec = |p: &str| {
        vfs.resolve(&root, p.as_bytes(), true)
            .unwrap()
            .node()
            .noexec()
    };
    for p in [
        "/nx",
        "/nx/sub",
        "/nx/sub/f",
        "/nx/sub/../sub/f",
        "/nxro",
        "/nxro/sub/f",
        // Looked up again: a read-only mount's directories are cached.
        "/nxro/sub/f",
        "/nxf",
    ] {
        assert!(noexec(p), "{p}");
    }
    for p in [
        "/ok",
        "/ok/f",
        "/nx/t",
        "/nx/t/new",
        "/",
        "/bin/prog",
        "/made",
        "/tmp",
    ] {
        assert!(!noexec(p), "{p}");
    }
    let note = |t: &str| {
        vfs.reports
            .iter()
            .find(|r| r.target == t)
            .and_then(|r| r.note.clone())
            .unwrap_or_default()
    };
    for t in ["/nx", "/nxro", "/nxf"] {
        assert!(note(t).ends_with("noexec"), "{t}: {}", note(t));
        assert!(!note(t).contains("not applied"), "{t}: {}", note(t));
    }
    assert!(!note("/ok").contains("noexec"), "{}", note("/ok"));
}

/// What is made on a `noexec` host bind (a file, a directory, a file in that) is on it:
/// `noexec` too; not on the bind beside it.
#[test]
fn made_on_a_noexec_bind_is_noexec() {
    let f = fixture();
    let mut tree = MountTree::new();
    let mut opener = source::Sources::new(false, (u32::MAX, u32::MAX)).unwrap();
    for (i, (target, noexec)) in [("/nx", true), ("/ok", false)].into_iter().enumerate() {
        let pm = PlannedMount {
            source: f.host.join("rw"),
            target: target.into(),
            mode: MountMode::Rw,
            optional: false,
            system: false,
            noexec,
        };
        let m = opener.open(&pm, i as u32).unwrap().unwrap();
        tree.insert(&pm.target, m.mount);
    }
    let vfs = Vfs::new(tree, Vec::new());
    let root = vfs.root();
    vfs.mkdir(&root, b"/nx/d", 0o755).unwrap();
    for p in ["/nx/new", "/nx/d/new"] {
        let (loc, _) = vfs
            .open(&root, p.as_bytes(), libc::O_CREAT | libc::O_RDWR, 0o755)
            .unwrap();
        assert!(loc.node().noexec(), "{p}");
    }
    for p in ["/nx/d", "/nx/d/new", "/nx/new"] {
        assert!(
            vfs.resolve(&root, p.as_bytes(), true)
                .unwrap()
                .node()
                .noexec(),
            "{p}"
        );
    }
    // The same host files, through the bind without `noexec`.
    for p in ["/ok/d", "/ok/d/new", "/ok/new"] {
        assert!(
            !vfs.resolve(&root, p.as_bytes(), true)
                .unwrap()
                .node()
                .noexec(),
            "{p}"
        );
    }
}
