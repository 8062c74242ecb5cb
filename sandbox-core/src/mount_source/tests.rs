use std::path::{Path, PathBuf};

use super::mountinfo::MountTable;
use super::*;

/// A throwaway host directory.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir() -> Dir {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("hsb-source-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

fn resolve(p: impl AsRef<Path>) -> Result<MountSource, SourceError> {
    HostMounts::read().unwrap().resolve(p.as_ref())
}

fn refused(p: impl AsRef<Path>) -> String {
    match resolve(p.as_ref()) {
        Ok(s) => panic!("{} was accepted as {:?}", p.as_ref().display(), s.kind()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn ordinary_directories_files_and_links_resolve() {
    let d = dir();
    std::fs::create_dir(d.0.join("sub")).unwrap();
    std::fs::write(d.0.join("sub/f"), b"x").unwrap();
    std::os::unix::fs::symlink("sub", d.0.join("link")).unwrap();
    let s = resolve(d.0.join("sub")).unwrap();
    assert!(s.is_dir());
    assert_eq!(s.path(), d.0.join("sub"));
    let f = resolve(d.0.join("sub/./f")).unwrap();
    assert_eq!(f.kind(), &SourceKind::File);
    assert_eq!(f.path(), d.0.join("sub/f"), "normalized");
    let (parent, name) = f.parent().unwrap();
    assert_eq!(name, "f");
    assert!(parent.as_raw_fd() >= 0);
    // A source that is itself a symlink is the link, never followed.
    let l = resolve(d.0.join("link")).unwrap();
    assert_eq!(l.kind(), &SourceKind::Symlink("sub".into()));
}

#[test]
fn a_symlink_before_the_last_component_is_refused_naming_it() {
    let d = dir();
    std::fs::create_dir(d.0.join("real")).unwrap();
    std::fs::create_dir(d.0.join("real/inner")).unwrap();
    std::os::unix::fs::symlink(d.0.join("real"), d.0.join("via")).unwrap();
    let e = resolve(d.0.join("via/inner")).unwrap_err();
    match &e {
        SourceError::Symlink {
            link, target, real, ..
        } => {
            assert_eq!(link, &d.0.join("via"));
            assert_eq!(target, &d.0.join("real"));
            assert_eq!(real.as_deref(), Some(d.0.join("real/inner").as_path()));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("name the real path"), "{e}");
    // Links into the host's kernel interfaces, whoever owns them (root made these).
    std::os::unix::fs::symlink("/proc", d.0.join("p")).unwrap();
    std::os::unix::fs::symlink("/dev", d.0.join("d")).unwrap();
    for p in ["p/1", "p/self/root", "d/shm", "d/null"] {
        let msg = refused(d.0.join(p));
        assert!(msg.contains("symbolic link"), "{p}: {msg}");
    }
}

#[test]
fn kernel_interfaces_are_refused_by_what_they_are() {
    for (p, what) in [
        ("/proc", "proc"),
        ("/proc/1", "proc"),
        ("/proc/sys/kernel", "proc"),
        ("/sys", "sysfs"),
        ("/sys/kernel", "sysfs"),
        ("/dev", "devtmpfs"),
        ("/dev/pts", "devpts"),
    ] {
        if !Path::new(p).exists() {
            continue;
        }
        let msg = refused(p);
        assert!(
            msg.contains(what) && msg.contains("kernel interface"),
            "{p}: {msg}"
        );
    }
    // An ordinary tmpfs by type, refused by device: it is mounted in /dev.
    if Path::new("/dev/shm").is_dir() {
        let msg = refused("/dev/shm");
        assert!(
            msg.contains("/dev/shm") && msg.contains("kernel interface"),
            "{msg}"
        );
    }
    // cgroup hierarchies, wherever they are.
    let cg = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir());
    if let Some(cg) = cg {
        assert!(refused(&cg).contains("kernel interface"));
    }
    // Device nodes and FIFOs are refused as such.
    assert!(refused("/dev/null").contains("character device"));
    let d = dir();
    let fifo = d.0.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(refused(&fifo).contains("FIFO"));
}

#[test]
fn a_directory_with_a_kernel_interface_below_it_is_refused() {
    let msg = refused("/");
    assert!(msg.contains("mounted below it"), "{msg}");
    let d = dir();
    assert!(
        resolve(&d.0).is_ok(),
        "nothing is mounted below a fresh directory"
    );
}

#[test]
fn missing_and_relative_sources() {
    assert!(resolve("/definitely/not/here").unwrap_err().is_not_found());
    assert!(matches!(
        resolve("relative/path"),
        Err(SourceError::NotAbsolute { .. })
    ));
    assert!(matches!(
        resolve("/a/../b"),
        Err(SourceError::NotAbsolute { .. })
    ));
    let e = resolve("/definitely/not/here").unwrap_err().into_io();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn permission_bits_decide_allows() {
    let d = dir();
    let f = d.0.join("f");
    std::fs::write(&f, b"x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    let s = resolve(&f).unwrap();
    let (uid, gid) = s.owner();
    assert!(s.allows(uid, gid, true));
    assert!(s.allows(uid.wrapping_add(1), gid, false));
    assert!(!s.allows(uid.wrapping_add(1), gid, true));
    assert!(!s.allows(uid.wrapping_add(1), gid.wrapping_add(1), false));
    std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let s = resolve(&d.0).unwrap();
    assert!(s.allows(uid, gid, true));
    assert!(!s.allows(uid.wrapping_add(1), gid, false));
}

#[test]
fn mountinfo_lines_are_read() {
    let t = MountTable::parse(
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
         30 1 0:5 / /dev rw shared:2 - devtmpfs udev rw,size=1k\n\
         31 30 0:26 / /dev/shm rw - tmpfs tmpfs rw\n\
         40 1 8:1 / /srv/with\\040space rw - ext4 /dev/sda1 rw\n\
         41 40 0:44 / /srv/with\\040space/p rw - proc proc rw\n\
         garbage\n",
    );
    assert_eq!(t.lines.len(), 5);
    assert_eq!(t.lines[3].point, Path::new("/srv/with space"));
    assert_eq!(t.lines[1].fstype, "devtmpfs");
    assert_eq!(t.lines[2].dev, libc::makedev(0, 26));
    // /dev/shm is a plain tmpfs, a kernel interface by where it is.
    assert!(t.kernel_device(libc::makedev(0, 26)).is_some());
    assert!(t.kernel_device(libc::makedev(8, 1)).is_none());
    assert_eq!(
        t.kernel_below(Path::new("/srv/with space"))
            .map(|l| l.point.clone()),
        Some(PathBuf::from("/srv/with space/p"))
    );
    assert!(t.kernel_below(Path::new("/srv/with space/p")).is_none());
    assert!(t.kernel_below(Path::new("/srv/with")).is_none());
}

#[test]
fn a_file_bound_into_dev_taints_only_itself() {
    // A node bound on /dev/kvm from an ordinary filesystem (as a test does, or a
    // container runtime for /dev/termination-log), and /run/shm bound on /dev/shm.
    let t = MountTable::parse(
        "1 0 8:1 / / rw - ext4 /dev/vda rw\n\
         2 1 0:5 / /dev rw - devtmpfs udev rw\n\
         3 2 8:1 /tmp/x/kvm /dev/kvm rw - ext4 /dev/vda rw\n\
         4 1 0:30 / /run rw - tmpfs tmpfs rw\n\
         5 2 0:30 /shm /dev/shm rw - tmpfs tmpfs rw\n",
    );
    assert!(
        t.kernel_device(libc::makedev(8, 1)).is_none(),
        "the root filesystem is not /dev"
    );
    assert!(
        t.kernel_device(libc::makedev(0, 30)).is_none(),
        "nor all of /run"
    );
    assert!(
        t.kernel_device(libc::makedev(0, 5)).is_some(),
        "/dev's devtmpfs is"
    );
    let alias = |p: &str| t.kernel_alias(Path::new(p)).map(|l| l.point.clone());
    assert_eq!(alias("/tmp/x/kvm"), Some(PathBuf::from("/dev/kvm")));
    assert_eq!(alias("/run/shm/sem.x"), Some(PathBuf::from("/dev/shm")));
    assert_eq!(alias("/run/shm"), Some(PathBuf::from("/dev/shm")));
    assert_eq!(alias("/run"), None);
    assert_eq!(alias("/tmp/x"), None);
    assert_eq!(alias("/tmp/x/kvmx"), None);
    // `/` still has kernel interfaces below it.
    assert!(t.kernel_below(Path::new("/")).is_some());
    assert!(t.kernel_below(Path::new("/run")).is_none());
}
