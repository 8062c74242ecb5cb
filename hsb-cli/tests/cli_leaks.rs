//! The leak classes closed for a rootless caller too (`hsb` run as uid 65534): a host
//! UNIX socket in a read-write mount is unreachable, no set-id mode or FIFO is made in
//! it, and /proc's host facts are masked. (The escape catalogue runs the same attacks
//! as root, in both backends.)

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A directory owned by uid 65534 (the rootless caller of these tests).
fn nobodys_dir(parent: &std::path::Path) -> std::path::PathBuf {
    let d = parent.join("w");
    std::fs::create_dir(&d).unwrap();
    std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
    d
}

fn as_nobody(bin: &str, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(["--inh-caps=-all", "--bounding-set=-all"])
        .arg(bin)
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv (util-linux) must be installed")
}

const PROBE: &str = r#"
import os, socket
c = socket.socket(socket.AF_UNIX)
try:
    c.connect("/w/host.sock")
    print("connect: allowed")
except OSError as e:
    print("connect: blocked", e.errno)
open("/w/f", "w").close()
for mode in (0o4755, 0o2755):
    try:
        os.chmod("/w/f", mode)
        print("chmod: allowed")
    except OSError as e:
        print("chmod: blocked", e.errno)
try:
    os.mkfifo("/w/fifo")
    print("mkfifo: allowed")
except OSError as e:
    print("mkfifo: blocked", e.errno)
print("cmdline:", "allowed" if open("/proc/cmdline").read() else "blocked")
"#;

#[test]
fn a_rootless_container_closes_the_same_leaks() {
    if !common::root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = common::hsb_copy(tmp.path());
    let w = nobodys_dir(tmp.path());
    let sock = w.join("host.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mount = format!("{}:/w:rw", w.display());
    let o = as_nobody(
        &bin,
        &["run", "--mount", &mount, "--", "python3", "-c", PROBE],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(!out.contains("allowed"), "{out}");
    assert!(
        listener.accept().is_err(),
        "the host service got a connection"
    );
    let mode = std::fs::metadata(w.join("f")).unwrap().permissions().mode();
    assert_eq!(mode & 0o6000, 0, "{mode:o}");
    assert!(!w.join("fifo").exists());
}

#[test]
fn a_rootless_micro_vm_refuses_set_id_modes() {
    if !common::root() || !common::kvm() {
        return;
    }
    // An unprivileged user needs access to /dev/kvm (root's alone on the project's
    // machines, mode 600). The test gives uid 65534 a node of the same device, but only
    // in a mount namespace of its own: the host's /dev/kvm is left as it is.
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let node = tmp.path().join("kvm");
    let rdev = std::fs::metadata("/dev/kvm").unwrap().rdev();
    let c = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
    // SAFETY: mknod of a character device at a path we own, with the host's device number.
    let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, rdev) };
    assert_eq!(made, 0, "{}", std::io::Error::last_os_error());
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o666)).unwrap();
    let bin = common::hsb_copy(tmp.path());
    let w = nobodys_dir(tmp.path());
    let script = format!(
        "mount --bind {node} /dev/kvm && exec setpriv --reuid 65534 --regid 65534 \
         --clear-groups --inh-caps=-all --bounding-set=-all {bin} run --isolation microvm \
         --mount {w}:/w:rw -- /usr/bin/busybox sh -c \
         'touch /w/f; chmod 4755 /w/f; chmod 2755 /w/f; mkfifo /w/p; true'",
        node = node.display(),
        w = w.display(),
    );
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("unshare (util-linux) must be installed");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("chmod") && err.contains("mkfifo"), "{err}");
    let mode = std::fs::metadata(w.join("f")).unwrap().permissions().mode();
    assert_eq!(mode & 0o6000, 0, "{mode:o}");
    assert!(!w.join("p").exists());
}
