//! Files only through the plan's mounts: read-only and read-write mounts, EROFS, `..`
//! and symlink escapes refused, the in-memory /tmp, devices, generated /etc files,
//! /proc/self/exe, and host symlinks mounted as symlinks.

mod common;

use std::path::Path;

use common::*;
use sandbox_core::{ByteSize, MountMode, Plan, PlannedMount, Termination};

fn mount(p: &mut Plan, source: &Path, target: &str, mode: MountMode) {
    p.mounts.push(PlannedMount {
        source: source.to_path_buf(),
        target: target.into(),
        mode,
        optional: false,
        system: false,
        noexec: false,
    });
}

/// Runs the `fsops` test program with a script of commands (whitespace-separated).
fn fsops(script: &str) -> Plan {
    let args: Vec<&str> = script.split_whitespace().collect();
    prog_plan("fsops", Toolchain::Musl, &args)
}

#[tokio::test]
async fn read_only_mount_reads_and_refuses_writes() {
    if !kvm() {
        return;
    }
    let host = temp_dir("ro");
    std::fs::write(host.join("data.txt"), "read me").unwrap();
    let mut p = fsops(
        "cat /data/data.txt \
         mmap /data/data.txt \
         write /data/data.txt overwritten \
         write /data/new.txt x \
         mkdir /data/dir \
         rm /data/data.txt \
         rename /data/data.txt /data/other \
         symlink /etc /data/l",
    );
    mount(&mut p, &host, "/data", MountMode::Ro);
    let o = run(p).await;
    let out = stdout(&o);
    let erofs = libc::EROFS;
    assert!(out.contains("cat /data/data.txt: read me\n"), "{out}");
    assert!(out.contains("mmap /data/data.txt: read me\n"), "{out}");
    assert!(
        out.contains(&format!("write /data/data.txt error {erofs}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("write /data/new.txt error {erofs}\n")),
        "{out}"
    );
    for op in ["mkdir", "rm", "rename", "symlink"] {
        assert!(
            out.contains(&format!("{op} error {erofs}\n")),
            "{op}: {out}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(host.join("data.txt")).unwrap(),
        "read me"
    );
    assert!(!host.join("new.txt").exists() && !host.join("dir").exists());
}

/// The old `getdents` (`struct linux_dirent`: the type in the record's last byte)
/// lists what `getdents64` lists, with the record lengths Linux gives (the same
/// program prints the same lines natively), over several calls.
#[tokio::test]
async fn old_getdents_records() {
    if !kvm() {
        return;
    }
    let host = temp_dir("dents");
    std::fs::create_dir(host.join("subdir")).unwrap();
    std::fs::write(host.join("a"), "").unwrap();
    std::fs::write(host.join("a-much-longer-file-name-here"), "").unwrap();
    let mut p = fsops("getdents /d ls /d");
    mount(&mut p, &host, "/d", MountMode::Ro);
    let o = run(p).await;
    let out = stdout(&o);
    for line in [
        "dent . 4 24\n",
        "dent .. 4 24\n",
        "dent a 8 24\n",
        "dent subdir 4 32\n",
        "dent a-much-longer-file-name-here 8 48\n",
        "getdents /d end errno 0\n",
    ] {
        assert!(out.contains(line), "{line:?} missing: {out}");
    }
    assert_eq!(out.matches("dent ").count(), 5, "{out}");
    let mut listed: Vec<&str> = out
        .lines()
        .find_map(|l| l.strip_prefix("ls /d: "))
        .unwrap_or_default()
        .split(' ')
        .collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        ["a", "a-much-longer-file-name-here", "subdir"],
        "{out}"
    );
}

#[tokio::test]
async fn read_write_mount_reaches_the_host() {
    if !kvm() {
        return;
    }
    let host = temp_dir("rw");
    // Writable by the sandbox's host identity, as a container's rw mount must be.
    std::fs::set_permissions(
        host.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut p = fsops(
        "write /out/a.txt first \
         append /out/a.txt +second \
         mkdir /out/sub \
         rename /out/a.txt /out/sub/b.txt \
         cat /out/sub/b.txt \
         symlink sub/b.txt /out/link \
         cat /out/link \
         ls /out",
    );
    mount(&mut p, &host, "/out", MountMode::Rw);
    let o = run(p).await;
    let out = stdout(&o);
    assert!(o.success(), "{out}");
    assert!(out.contains("cat /out/sub/b.txt: first+second\n"), "{out}");
    assert!(out.contains("cat /out/link: first+second\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string(host.join("sub/b.txt")).unwrap(),
        "first+second"
    );
    assert_eq!(
        std::fs::read_link(host.join("link")).unwrap(),
        Path::new("sub/b.txt")
    );
    let mut names: Vec<&str> = out.lines().find(|l| l.starts_with("ls /out:")).unwrap()[8..]
        .split_whitespace()
        .collect();
    names.sort();
    assert_eq!(names, ["link", "sub"]);
    // What the workload made belongs to whom the mount is reached as: the source's
    // owner for a root caller (as the container backend's idmapped mounts), else the
    // caller; never to a VMM with root's powers.
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let owner = std::fs::metadata(host.path()).unwrap().uid();
    let want = if euid == 0 { owner } else { euid };
    assert_eq!(std::fs::metadata(host.join("sub")).unwrap().uid(), want);
}

#[tokio::test]
async fn host_permissions_apply_to_the_workload() {
    if !kvm() {
        return;
    }
    // Files owned by another user than the sandbox's.
    if !root_caller() {
        return;
    }
    let host = temp_dir("perm");
    std::fs::set_permissions(
        host.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    // The mount is reached as its owner (root, here, without root's overrides): a file
    // of another user obeys its mode bits.
    std::fs::write(host.join("theirs"), b"theirs").unwrap();
    std::fs::set_permissions(
        host.join("theirs"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    std::os::unix::fs::chown(host.join("theirs"), Some(1234), Some(1234)).unwrap();
    let mut p = fsops("append /out/theirs +x cat /out/theirs write /out/mine ok");
    mount(&mut p, &host, "/out", MountMode::Rw);
    let o = run(p).await;
    let out = stdout(&o);
    assert!(out.contains("append /out/theirs error 13"), "{out}");
    assert!(out.contains("cat /out/theirs: theirs"), "{out}");
    assert!(host.join("mine").exists(), "{out}");
    assert_eq!(std::fs::read(host.join("theirs")).unwrap(), b"theirs");
}

#[tokio::test]
async fn dotdot_and_symlink_escapes_are_refused() {
    if !kvm() {
        return;
    }
    let outer = temp_dir("escape");
    let host = outer.join("mnt");
    std::fs::create_dir_all(host.join("deep")).unwrap();
    std::fs::write(outer.join("secret"), "host secret").unwrap();
    std::os::unix::fs::symlink("../secret", host.join("up")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../secret", host.join("deep/far")).unwrap();
    std::os::unix::fs::symlink(outer.join("secret"), host.join("abs")).unwrap();
    std::os::unix::fs::symlink("/proc/self/root/etc/shadow", host.join("magic")).unwrap();
    let secret = outer.join("secret").display().to_string();
    let mut p = fsops(&format!(
        "cat /data/../secret \
         cat /data/../../../secret \
         cat /data/up \
         cat /data/deep/far \
         cat /data/abs \
         cat /data/magic \
         cat {secret} \
         write /data/up clobber \
         stat /data/up \
         readlink /data/abs"
    ));
    mount(&mut p, &host, "/data", MountMode::Rw);
    let o = run(p).await;
    let out = stdout(&o);
    assert!(!out.contains("host secret"), "an escape worked:\n{out}");
    assert_eq!(
        out.matches(&format!("error {}\n", libc::ENOENT)).count(),
        7,
        "{out}"
    );
    // The link leads to /secret in the sandbox's read-only root: creating it is refused.
    assert!(
        out.contains(&format!("write /data/up error {}\n", libc::EROFS)),
        "{out}"
    );
    assert!(out.contains("stat /data/up link"), "{out}");
    assert!(out.contains(&format!("readlink {secret}\n")), "{out}");
    assert_eq!(
        std::fs::read_to_string(outer.join("secret")).unwrap(),
        "host secret"
    );
}

#[tokio::test]
async fn tmp_devices_and_generated_files() {
    if !kvm() {
        return;
    }
    let mut p = fsops(
        "write /tmp/t.txt in-memory \
         cat /tmp/t.txt \
         cat /etc/passwd \
         cat /etc/hostname \
         cat /dev/null \
         write /dev/null gone \
         readlink /proc/self/exe \
         stat /bin \
         write /etc/passwd root::0:0::/:/bin/sh \
         cat /etc/shadow",
    );
    p.hostname = "box".into();
    let o = run(p).await;
    let out = stdout(&o);
    assert!(o.success(), "{out}");
    assert!(out.contains("cat /tmp/t.txt: in-memory\n"), "{out}");
    assert!(
        out.contains("sandbox:x:1000:1000:sandbox:/tmp:/bin/sh"),
        "{out}"
    );
    assert!(out.contains("cat /etc/hostname: box\n"), "{out}");
    assert!(out.contains("cat /dev/null: \n"), "{out}");
    assert!(out.contains("write /dev/null wrote 4"), "{out}");
    assert!(out.contains("readlink /progs/fsops-musl\n"), "{out}");
    // The default policy mounts the host's /bin, a symlink to usr/bin: it is a symlink here too.
    if std::fs::symlink_metadata("/bin")
        .unwrap()
        .file_type()
        .is_symlink()
    {
        assert!(out.contains("stat /bin link"), "{out}");
    }
    assert!(
        out.contains(&format!("write /etc/passwd error {}\n", libc::EROFS)),
        "{out}"
    );
    assert!(
        out.contains(&format!("cat /etc/shadow error {}\n", libc::ENOENT)),
        "{out}"
    );
}

#[tokio::test]
async fn tmp_is_bounded() {
    if !kvm() {
        return;
    }
    let mut p = plan(
        "/bin/busybox",
        &["dd", "if=/dev/zero", "of=/tmp/big", "bs=1024", "count=4096"],
    );
    p.limits.tmp_size = Some(ByteSize(1 << 20));
    let o = run(p).await;
    let err = stderr(&o);
    assert_eq!(
        (o.termination, o.exit_code),
        (Termination::Exited, Some(1)),
        "{err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
}

#[tokio::test]
async fn openat2_restrictions_are_linux_s() {
    if !kvm() {
        return;
    }
    // The same program natively, for the expected lines.
    let exe = prog("resolve", Toolchain::Glibc);
    let native = std::process::Command::new(&exe).output().unwrap();
    let _ = std::fs::remove_dir_all("/tmp/hsb-resolve");
    let want = String::from_utf8_lossy(&native.stdout).into_owned();
    assert!(want.contains("beneath-dotdot EXDEV"), "{want}");
    for tc in Toolchain::all() {
        let o = run(prog_plan("resolve", tc, &[])).await;
        assert_eq!(stdout(&o), want, "{tc:?}: {}", stderr(&o));
    }
}
