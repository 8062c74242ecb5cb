//! Mounts keep their modes, their sources are what they say, and a root caller's mounts
//! work without giving the workload host root: real workloads attacking each, in both
//! backends (`tests/programs/mountops.c` reports every operation's errno).
//!
//! - the order mounts are listed in changes nothing (a read-only child listed before its
//!   read-write parent stays read-only);
//! - mount points and the directories holding them are never moved or removed so that
//!   a read-only subtree becomes writable under another name (rename either way,
//!   `RENAME_EXCHANGE`, rmdir, unlink, links over them; host, tmpfs directories);
//! - a mount source never follows a symlink: links planted by an earlier run (`out/p ->
//!   /proc`, `out/d -> /dev`) or made by root redirect nothing;
//! - a root caller's `0700 root` directory mounts and reads, a root-owned read-write
//!   mount is writable, files created there belong to the source's owner on the host,
//!   and nothing else of the owner's powers comes along (no permission override).
//!
//! Kernel interfaces reached through paths not spelled `/proc`, `/sys` or `/dev` (bind
//! mounts made in a private mount namespace) are tested through `hsb` in
//! `hybrid-sandbox/tests/mounts_cli.rs`, as are rootless callers.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hsb_tests::*;
use hybrid_sandbox::{ByteSize, IsolationRequest, MountAccess};

fn programs() -> PathBuf {
    hsb_tests::programs(env!("CARGO_TARGET_TMPDIR"))
}

/// mountops-static with `args`, in `iso`.
fn ops(iso: IsolationRequest, args: &[&str]) -> Workload {
    Workload::new(
        format!("{PROGRAMS_IN_SANDBOX}/mountops-static"),
        args.iter().copied(),
    )
    .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
    .isolation(iso)
}

fn out(o: &Outcome) -> String {
    format!("{}{}", stdout(o), String::from_utf8_lossy(&o.stderr))
}

/// The line mountops printed for `op`, e.g. `rename /src/a /src/b`.
fn result<'a>(text: &'a str, op: &str) -> &'a str {
    let prefix = format!("{op}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no line for `{op}` in:\n{text}"))
}

const ORIGINAL: &str = "original\n";

/// A project directory: `.git/config`, `a/.git/config`, a file `f`, all the sandbox's
/// to write (mode 0777/0666) so that only the mounts' modes stand in the way.
fn project() -> tempfile::TempDir {
    let d = writable_tempdir();
    for sub in [".git", "a", "a/.git"] {
        std::fs::create_dir(d.path().join(sub)).unwrap();
        set_mode(&d.path().join(sub), 0o777);
    }
    for f in [".git/config", "a/.git/config", "f"] {
        std::fs::write(d.path().join(f), ORIGINAL).unwrap();
        set_mode(&d.path().join(f), 0o666);
    }
    d
}

/// Every file below any `.git` directory of `root`: it must still be exactly one
/// `config` holding the original text, whatever was renamed around it.
fn assert_git_dirs_untouched(root: &Path, what: &str) {
    fn walk(dir: &Path, in_git: bool, found: &mut Vec<(PathBuf, String)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(&p, in_git || e.file_name() == ".git", found);
            } else if in_git {
                let text = std::fs::read_to_string(&p).unwrap_or_else(|_| "<not text>".into());
                found.push((p, text));
            }
        }
    }
    let mut found = Vec::new();
    walk(root, false, &mut found);
    assert_eq!(
        found.len(),
        2,
        "{what}: files in the read-only trees: {found:?}"
    );
    for (p, text) in &found {
        assert_eq!(p.file_name().unwrap(), "config", "{what}: {found:?}");
        assert_eq!(text, ORIGINAL, "{what}: {} was written", p.display());
    }
}

macro_rules! both {
    ($($(#[$doc:meta])* fn $name:ident($iso:ident) $body:block)*) => {
        mod container {
            use super::*;
            $( $(#[$doc])* #[test] fn $name() { let $iso = IsolationRequest::Container; $body } )*
        }
        mod microvm {
            use super::*;
            $( $(#[$doc])* #[test] fn $name() {
                let $iso = IsolationRequest::MicroVm;
                if !backend_ready($iso) { return; }
                $body
            } )*
        }
    };
}

both! {
    /// `--mount proj/.git:/src/.git:ro --mount proj:/src:rw`: the child listed first
    /// stays mounted, read-only, and the host `.git` under the read-write parent stays
    /// hidden; the other order gives the same.
    fn a_read_only_child_listed_before_its_parent_stays_read_only(iso) {
        for child_first in [true, false] {
            let p = project();
            let child = Mount::ro(p.path().join(".git"), "/src/.git");
            let parent = Mount::rw(p.path(), "/src");
            let mut w = ops(iso, &[
                "write", "/src/.git/config",
                "create", "/src/.git/new", "644",
                "unlink", "/src/.git/config",
                "read", "/src/.git/config",
                "write", "/src/file",
            ]);
            w = if child_first { w.mount(child).mount(parent) } else { w.mount(parent).mount(child) };
            let o = run(w);
            let t = out(&o);
            assert_eq!(o.exit_code, Some(0), "{t}");
            assert_eq!(result(&t, "write /src/.git/config"), "EROFS", "child first: {child_first}");
            assert_eq!(result(&t, "create /src/.git/new 644"), "EROFS");
            assert_eq!(result(&t, "unlink /src/.git/config"), "EROFS");
            assert_eq!(result(&t, "read /src/.git/config"), "ok original");
            assert_eq!(result(&t, "write /src/file"), "ok", "the parent is read-write");
            assert!(p.path().join("file").exists());
            assert_git_dirs_untouched(p.path(), &format!("child first: {child_first}"));
        }
    }

    /// Moving or removing a mount point, or a directory holding one, never leaves a
    /// read-only tree writable by another name: host directories of a read-write mount
    /// and in-memory /tmp alike, by rename (either direction), RENAME_EXCHANGE, rmdir,
    /// unlink, and links or symlinks over them.
    fn mount_points_and_their_ancestors_stay_put(iso) {
        let p = project();
        let w = ops(
            iso,
            &[
                // The mount points themselves.
                "rename", "/src/.git", "/src/g",
                "rmdir", "/src/.git",
                "rmdir", "/src/a/.git",
                "unlink", "/src/ro-file",
                "rename", "/src/ro-file", "/src/moved",
                "symlink", "/etc", "/src/.git",
                "link", "/src/f", "/src/ro-file",
                "rmdir", "/tmp/x/y",
                // The directories holding them, then new names onto them.
                "mkdir", "/src/c",
                "exchange", "/src/a", "/src/c",
                "rename", "/src/a", "/src/b",
                "noreplace", "/src/c", "/src/n",
                "rmdir", "/src/a",
                "rename", "/src/f", "/src/a",
                "rename", "/tmp/x", "/tmp/z",
                "rmdir", "/tmp/x",
                // Writes through every name the read-only trees may have now.
                "write", "/src/.git/config",
                "write", "/src/g/config",
                "write", "/src/a/.git/config",
                "write", "/src/b/.git/config",
                "write", "/src/c/.git/config",
                "write", "/src/n/.git/config",
                "write", "/src/ro-file",
                "write", "/tmp/x/y/config",
                "write", "/tmp/z/y/config",
            ],
        )
        .mount(Mount::rw(p.path(), "/src"))
        .mount(Mount::ro(p.path().join(".git"), "/src/.git"))
        .mount(Mount::ro(p.path().join("a/.git"), "/src/a/.git"))
        .mount(Mount::ro(p.path().join("f"), "/src/ro-file"))
        .mount(Mount::ro(p.path().join(".git"), "/tmp/x/y"));
        let o = run(w);
        let t = out(&o);
        assert_eq!(o.exit_code, Some(0), "{t}");
        // The mount points themselves: EBUSY (EEXIST for a new name over one), in both.
        for op in [
            "rename /src/.git /src/g",
            "rmdir /src/.git",
            "rmdir /src/a/.git",
            "unlink /src/ro-file",
            "rename /src/ro-file /src/moved",
            "rmdir /tmp/x/y",
        ] {
            assert_eq!(result(&t, op), "EBUSY", "{op}\n{t}");
        }
        for op in ["symlink /etc /src/.git", "link /src/f /src/ro-file"] {
            assert_eq!(result(&t, op), "EEXIST", "{op}\n{t}");
        }
        if iso == IsolationRequest::MicroVm {
            // Its mounts are by path: a directory holding one is busy too, either way.
            for op in [
                "exchange /src/a /src/c",
                "rename /src/a /src/b",
                "rmdir /src/a",
                "rename /src/f /src/a",
                "rename /tmp/x /tmp/z",
                "rmdir /tmp/x",
            ] {
                let r = result(&t, op);
                // RENAME_EXCHANGE is not implemented by the personality (EINVAL).
                let ok = r == "EBUSY" || (op.starts_with("exchange") && r == "EINVAL");
                assert!(ok, "{op}: {r}\n{t}");
            }
        }
        // Linux lets a directory holding a mount point be renamed (the container shows
        // it): the mount follows it. Whatever moved, every write to a read-only tree
        // failed, and the host saw none.
        for l in t.lines().filter(|l| l.starts_with("write ")) {
            assert!(!l.ends_with(": ok"), "{l}\n{t}");
        }
        assert_git_dirs_untouched(p.path(), "after the renames");
        // The read-only file mount's source (moved to `a` by the container's rename).
        let f = ["f", "a"].iter().map(|n| p.path().join(n)).find(|f| f.is_file()).unwrap();
        assert_eq!(std::fs::read_to_string(f).unwrap(), ORIGINAL);
    }

    /// On an image root (overlay of the image's layers under a throwaway upper layer),
    /// the image's directories that hold a read-only volume stay put the same way.
    fn image_directories_holding_a_mount_stay_put(iso) {
        let d = tempfile::tempdir().unwrap();
        set_mode(d.path(), 0o755);
        let sb = Sandbox::with_default_policy()
            .with_image_store(hybrid_sandbox::ImageStore::at(d.path().join("store")));
        let img = hsb_tests::image::write_oci_layout(&d.path().join("oci"), "");
        let vol = writable_tempdir();
        std::fs::write(vol.path().join("config"), ORIGINAL).unwrap();
        set_mode(&vol.path().join("config"), 0o666);
        let w = Workload::new(
            "sh",
            [
                "-c",
                "mv /data /d2; mv /data/vol /data/v2; rmdir /data/vol; \
                 for f in /data/vol /d2/vol /data/v2; do echo x >> $f/config; done; \
                 cat /data/vol/config",
            ],
        )
        .image(img.to_str().unwrap())
        .isolation(iso)
        .mount(Mount::ro(vol.path(), "/data/vol"));
        let o = run_in(&sb, w);
        let t = out(&o);
        assert!(stdout(&o).ends_with(ORIGINAL), "{t}");
        assert_eq!(std::fs::read_to_string(vol.path().join("config")).unwrap(), ORIGINAL, "{t}");
        if iso == IsolationRequest::MicroVm {
            assert!(t.contains("mv: can't rename '/data': Device or resource busy"), "{t}");
            assert!(t.contains("mv: can't rename '/data/vol': Device or resource busy"), "{t}");
        }
    }

    /// Run 1 plants symlinks in its read-write mount; run 2 names mount sources through
    /// them: refused, naming the link. A root-owned link into /proc is refused too, and a
    /// source that is itself a symlink shows as that link, resolved in the sandbox.
    fn mount_sources_never_follow_a_symlink(iso) {
        let d = writable_tempdir();
        let o = run(ops(iso, &[
            "symlink", "/proc", "/out/p",
            "symlink", "/dev", "/out/d",
            "symlink", "/etc", "/out/e",
        ]).mount(Mount::rw(d.path(), "/out")));
        let t = out(&o);
        for l in ["p", "d", "e"] {
            assert!(t.contains(&format!("/out/{l}: ok")), "{t}");
        }
        let shm_before: Vec<_> = std::fs::read_dir("/dev/shm").map(|r| r.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        let rootp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/proc", rootp.path().join("proc")).unwrap();
        let rt = runtime();
        for (src, mode) in [
            (d.path().join("p/1"), MountMode::Ro),
            (d.path().join("p/self/root"), MountMode::Ro),
            (d.path().join("d/shm"), MountMode::Rw),
            (d.path().join("e/hostname"), MountMode::Ro),
            (rootp.path().join("proc/1"), MountMode::Ro),
        ] {
            let m = match mode { MountMode::Rw => Mount::rw(&src, "/x"), MountMode::Ro => Mount::ro(&src, "/x") };
            let w = ops(iso, &["write", "/x/planted"]).mount(m);
            let err = match rt.block_on(sandbox().run(w)) {
                Ok(o) => panic!("{} was mounted: {}", src.display(), out(&o)),
                Err(e) => e.chain(),
            };
            assert!(err.contains("symbolic link") && err.contains("name the real path"), "{}: {err}", src.display());
        }
        let shm_after: Vec<_> = std::fs::read_dir("/dev/shm").map(|r| r.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert_eq!(shm_before, shm_after, "nothing was written to the host's /dev/shm");
        // The planted link itself, mounted: the link, resolved in the sandbox (its own
        // /proc), never the host's.
        let o = run(sh("readlink /x; cat /x/1/cmdline").isolation(iso).mount(Mount::ro(d.path().join("p"), "/x")));
        let t = stdout(&o);
        assert!(t.starts_with("/proc\n"), "{}", out(&o));
        let host_init = String::from_utf8_lossy(&std::fs::read("/proc/1/cmdline").unwrap()).into_owned();
        assert!(!t.contains(&host_init), "the host's init: {t}");
    }

    /// A root caller's `0700 root` directory mounts and reads; the report says whose
    /// access the workload had.
    fn a_root_callers_private_directory_mounts_and_reads(iso) {
        if !root_caller() { return; }
        let d = tempfile::tempdir().unwrap();
        set_mode(d.path(), 0o700);
        std::fs::write(d.path().join("secret"), "job input\n").unwrap();
        set_mode(&d.path().join("secret"), 0o600);
        let o = run(ops(iso, &["read", "/job/secret", "write", "/job/secret"]).mount(Mount::ro(d.path(), "/job")));
        let t = out(&o);
        assert_eq!(result(&t, "read /job/secret"), "ok job input", "{t}");
        assert_eq!(result(&t, "write /job/secret"), "EROFS");
        let m = o.enforcement.mounts.iter().find(|m| m.target == "/job").expect("the mount is reported");
        assert_eq!((m.access, m.host_ids), (MountAccess::Idmapped, Some((0, 0))), "{m:?}");
        // The host's system directories keep the host's ownership.
        let usr = o.enforcement.mounts.iter().find(|m| m.target == "/usr").expect("/usr");
        assert_eq!(usr.access, MountAccess::SandboxIdentity);
        if iso == IsolationRequest::Container {
            assert_eq!(o.enforcement.host_uid, Some(65534));
        }
    }

    /// A root-owned read-write mount is writable; what the workload makes there belongs
    /// to the source's owner on the host and to the workload inside. The owner's access
    /// only: no permission override (a 0000 file, another user's 0600 file stay closed).
    fn a_root_owned_rw_mount_is_the_workloads_and_nothing_more(iso) {
        if !root_caller() { return; }
        let d = tempfile::tempdir().unwrap();
        set_mode(d.path(), 0o755);
        std::fs::write(d.path().join("closed"), "closed\n").unwrap();
        set_mode(&d.path().join("closed"), 0o000);
        std::fs::write(d.path().join("theirs"), "theirs\n").unwrap();
        set_mode(&d.path().join("theirs"), 0o600);
        std::os::unix::fs::chown(d.path().join("theirs"), Some(1234), Some(1234)).unwrap();
        let o = run(sh("echo made > /out/new && mkdir /out/dir && stat -c '%u %g' /out/new; \
                        cat /out/closed; cat /out/theirs; echo more >> /out/theirs; echo done")
            .isolation(iso)
            .mount(Mount::rw(d.path(), "/out")));
        let t = out(&o);
        assert!(stdout(&o).starts_with("1000 1000\n"), "the workload owns what it made: {t}");
        assert!(stdout(&o).ends_with("done\n"), "{t}");
        assert!(!t.contains("closed\n") && !t.contains("theirs\n"), "read without permission: {t}");
        for f in ["new", "dir"] {
            let m = std::fs::metadata(d.path().join(f)).unwrap();
            assert_eq!((m.uid(), m.gid()), (0, 0), "{f} belongs to the source's owner");
        }
        assert_eq!(std::fs::read_to_string(d.path().join("new")).unwrap(), "made\n");
        assert_eq!(std::fs::read_to_string(d.path().join("theirs")).unwrap(), "theirs\n");
        assert_eq!(std::fs::metadata(d.path().join("closed")).unwrap().permissions().mode() & 0o7777, 0);
    }

    /// `fallocate` on a host file of a read-write mount reaches the host's file
    /// system: a punched hole reads as zeros on the host and the size stays; a grow
    /// grows it.
    fn fallocate_reaches_a_host_file_of_a_rw_mount(iso) {
        let (d, f) = shared_file(3 * 4096);
        let o = run(sh("fallocate -p -o 4096 -l 4096 /out/f && fallocate -o 0 -l 20000 /out/f \
                        && echo ok")
            .isolation(iso)
            .mount(Mount::rw(d.path(), "/out")));
        assert_eq!(stdout(&o), "ok\n", "{}", out(&o));
        let data = std::fs::read(&f).unwrap();
        assert_eq!(data.len(), 20000);
        assert!(data[..4096].iter().all(|b| *b == b'a'));
        assert!(data[4096..8192].iter().all(|b| *b == 0), "the hole is the host's");
        assert!(data[8192..12288].iter().all(|b| *b == b'a'));
    }

    /// `madvise(MADV_REMOVE)` on a shared mapping of a host file of a read-write mount
    /// punches the hole in the host's file, as Linux: the mapping, a read and the host
    /// see zeros there, the rest and the size stay; a private mapping is refused.
    fn madvise_remove_punches_a_host_file_of_a_rw_mount(iso) {
        let (d, f) = shared_file(4 * 4096);
        let code = "import mmap, os\n\
                    fd = os.open('/out/f', os.O_RDWR)\n\
                    m = mmap.mmap(fd, 4 * 4096, mmap.MAP_SHARED)\n\
                    m[0:1] = b'b'\n\
                    m.madvise(mmap.MADV_REMOVE, 4096, 2 * 4096)\n\
                    p = mmap.mmap(fd, 4096, mmap.MAP_PRIVATE)\n\
                    try:\n    p.madvise(mmap.MADV_REMOVE)\n    e = 0\n\
                    except OSError as x:\n    e = x.errno\n\
                    print(m[0], m[4096], m[3 * 4096 - 1], m[3 * 4096], os.pread(fd, 1, 8192)[0], e)\n";
        let o = run(Workload::new("python3", ["-c", code])
            .isolation(iso)
            .mount(Mount::rw(d.path(), "/out")));
        assert_eq!(stdout(&o), "98 0 0 97 0 13\n", "{}", out(&o));
        let data = std::fs::read(&f).unwrap();
        assert_eq!(data.len(), 4 * 4096);
        assert_eq!(data[0], b'b', "written back before the hole");
        assert!(data[4096..3 * 4096].iter().all(|b| *b == 0), "the hole is the host's");
        assert!(data[3 * 4096..].iter().all(|b| *b == b'a'));
    }

    /// Files the workload makes in a root-owned read-write mount belong to root on the
    /// host: none may be set-uid or set-gid (by `chmod` or by the mode it is created
    /// with). This needs issue 12's set-id item (seccomp mode filters in both backends).
    fn a_root_owned_rw_mount_never_gets_a_host_set_id_file(iso) {
        if !root_caller() { return; }
        let d = tempfile::tempdir().unwrap();
        set_mode(d.path(), 0o755);
        let o = run(ops(iso, &[
            "create", "/out/created", "6755",
            "write", "/out/plain",
            "chmod", "/out/plain", "4755",
            "write", "/out/group",
            "chmod", "/out/group", "2755",
        ]).mount(Mount::rw(d.path(), "/out")));
        let t = out(&o);
        for f in ["created", "plain", "group"] {
            if let Ok(m) = std::fs::metadata(d.path().join(f)) {
                assert_eq!(m.mode() & 0o6000, 0, "a host set-id file owned by uid {}: {f} ({:o})\n{t}", m.uid(), m.mode());
            }
        }
    }
}

/// A directory anyone may write, holding `f`: `len` bytes of `a` anyone may write (the
/// sandbox's uid is not the caller's).
fn shared_file(len: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    set_mode(d.path(), 0o777);
    let f = d.path().join("f");
    std::fs::write(&f, vec![b'a'; len]).unwrap();
    set_mode(&f, 0o666);
    (d, f)
}

/// The enforcement report lists the mounts in the order they were applied, parents
/// first, whatever the order asked.
#[test]
fn the_report_lists_mounts_parents_first() {
    let p = project();
    let o = run(
        ops(IsolationRequest::Container, &["read", "/src/.git/config"])
            .mount(Mount::ro(p.path().join(".git"), "/src/.git"))
            .mount(Mount::rw(p.path(), "/src")),
    );
    let targets: Vec<&str> = o
        .enforcement
        .mounts
        .iter()
        .map(|m| m.target.as_str())
        .collect();
    let parent = targets.iter().position(|t| *t == "/src").expect("/src");
    let child = targets
        .iter()
        .position(|t| *t == "/src/.git")
        .expect("/src/.git");
    assert!(parent < child, "{targets:?}");
    let kinds: Vec<&str> = o
        .enforcement
        .mounts
        .iter()
        .filter(|m| m.target.starts_with("/src"))
        .map(|m| m.kind.as_str())
        .collect();
    assert_eq!(kinds, ["directory", "directory"]);
}

mod tmpfs {
    use super::*;

    /// What `noexec /tmp /ok ...` prints on Linux (a noexec tmpfs at /tmp, a tmpfs at
    /// /ok), for `a_noexec_tmpfs_runs_and_maps_nothing_executable`.
    const NOEXEC_EXPECTED: &str = "\
execve /tmp/prog: EACCES
execveat(AT_EMPTY_PATH) /tmp/prog: EACCES
execve /tmp/script (#!/bin/sh): EACCES
execve /ok/script-nx (#!/tmp/prog): EACCES
execve /ok/dyn-nx (loader /tmp/ld.so): EACCES
mmap /tmp/prog PROT_EXEC private: EPERM
mmap /tmp/prog PROT_EXEC shared: EPERM
mmap /tmp/prog PROT_READ private: ok
mprotect /tmp/prog private +PROT_EXEC: EACCES
mprotect /tmp/prog private +PROT_WRITE: ok
mmap /tmp/prog PROT_READ shared: ok
mprotect /tmp/prog shared +PROT_EXEC: EACCES
access /tmp/prog X_OK: EACCES
access /tmp/prog R_OK: ok
faccessat /tmp/prog X_OK AT_EACCESS: EACCES
access /tmp X_OK: ok
execve /ok/prog: ok
execveat(AT_EMPTY_PATH) /ok/prog: ok
execve /ok/script (#!/bin/sh): ok
execve /ok/script-ok (#!/ok/prog): ok
execve /ok/dyn-ok (loader /ok/ld.so): ok
mmap /ok/prog PROT_EXEC private: ok
mmap /ok/prog PROT_EXEC shared: ok
mmap /ok/prog PROT_READ private: ok
mprotect /ok/prog private +PROT_EXEC: ok
mprotect /ok/prog private +PROT_WRITE: ok
mmap /ok/prog PROT_READ shared: ok
mprotect /ok/prog shared +PROT_EXEC: ok
access /ok/prog X_OK: ok
access /ok/prog R_OK: ok
faccessat /ok/prog X_OK AT_EACCESS: ok
access /ok X_OK: ok
mmap anonymous PROT_EXEC: ok
mmap memfd PROT_EXEC shared: ok
mprotect memfd private +PROT_EXEC: ok
/proc/self/mountinfo /tmp: noexec
/proc/mounts /tmp: noexec
/proc/self/mountinfo /ok: exec
/proc/mounts /ok: exec
";

    both! {
        /// `--tmpfs`: an empty in-memory filesystem, made where no directory was (even
        /// inside a read-write host mount, which gets nothing of what is written to it),
        /// writable by the workload, full at its size (ENOSPC, the sandbox goes on), and
        /// gone with the run.
        fn tmpfs_mounts_are_sized_private_and_gone_after_the_run(iso) {
            let host = writable_tempdir();
            let w = |script: &str| {
                sh(script)
                    .isolation(iso)
                    .mount(Mount::rw(host.path(), "/data"))
                    .tmpfs("/data/cache", Some(ByteSize(1 << 20)))
                    .tmpfs("/scratch/deep", None)
            };
            let o = run(w(
                "echo kept > /data/cache/f && cat /data/cache/f && \
                 dd if=/dev/zero of=/data/cache/big bs=4096 count=512 2>/dev/null; echo dd=$?; \
                 echo x > /scratch/deep/y && echo deep ok; ls /data",
            ));
            let text = out(&o);
            assert_eq!(o.exit_code, Some(0), "{text}");
            assert!(text.contains("kept\n"), "{text}");
            assert!(text.contains("dd=1"), "a 2 MiB write fits a 1 MiB tmpfs: {text}");
            assert!(text.contains("deep ok"), "{text}");
            assert!(
                std::fs::read_dir(host.path()).unwrap().all(|e| e.unwrap().file_name() == "cache"),
                "what went to the tmpfs reached the host directory"
            );
            assert!(!host.path().join("cache/f").exists());
            let kinds: Vec<_> = o
                .enforcement
                .mounts
                .iter()
                .filter(|m| m.kind == "tmpfs")
                .map(|m| m.target.clone())
                .collect();
            assert_eq!(kinds.len(), 2, "{:?}", o.enforcement.mounts);
            let again = run(w("ls -A /data/cache /scratch/deep"));
            assert_eq!(stdout(&again), "/data/cache:\n\n/scratch/deep:\n", "{}", out(&again));
        }

        /// Each in-memory filesystem has its own device number: no two files of /tmp and
        /// of two `--tmpfs` mounts (one inside /tmp) share a device and inode number,
        /// which hard-link checks (`cp -a`, `tar`, `du`), `find`'s loop check and file
        /// locks rely on.
        fn each_tmpfs_has_its_own_device(iso) {
            let o = run(sh(
                "echo x > /tmp/f; echo y > /a/f; echo z > /tmp/sub/f; \
                 stat -c '%d:%i' /tmp /a /tmp/sub /tmp/f /a/f /tmp/sub/f | sort | uniq -d | wc -l; \
                 find /tmp > /dev/null && echo find ok",
            )
            .isolation(iso)
            .tmpfs("/a", None)
            .tmpfs("/tmp/sub", None));
            assert_eq!(stdout(&o), "0\nfind ok\n", "{}", out(&o));
        }

        /// `--tmpfs /tmp:noexec`, attacked by `tests/programs/noexec.c` as Linux answers
        /// it (the expected text is Linux's, a noexec tmpfs at /tmp and another at /ok):
        /// no program runs from it (nor a `#!` script on it, nor a script or a
        /// dynamically linked program elsewhere whose interpreter or loader is on it:
        /// EACCES, by path or by descriptor), none of its files is mapped executable
        /// (EPERM) nor made so (EACCES), `access(X_OK)` says EACCES, and the mount tables
        /// show `noexec`; the same on the tmpfs without it all works, and so do
        /// anonymous memory and a memfd (which, in the micro-VM, lives in /tmp's
        /// filesystem) mapped executable. The mount report says `noexec`.
        fn a_noexec_tmpfs_runs_and_maps_nothing_executable(iso) {
            let mut w = Workload::new(
                format!("{PROGRAMS_IN_SANDBOX}/noexec-static"),
                [
                    "/tmp".to_string(),
                    "/ok".to_string(),
                    format!("{PROGRAMS_IN_SANDBOX}/noexec-static"),
                    format!("{PROGRAMS_IN_SANDBOX}/noexec"),
                ],
            )
            .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
            .isolation(iso)
            .tmpfs("/ok", None);
            w.tmpfs
                .push(hybrid_sandbox::Tmpfs::parse_spec("/tmp:size=16m,noexec").unwrap());
            let o = run(w);
            let text = out(&o);
            assert_eq!(o.exit_code, Some(0), "{text}");
            assert_eq!(stdout(&o), NOEXEC_EXPECTED, "{iso:?}: {text}");
            let report = o
                .enforcement
                .mounts
                .iter()
                .find(|m| m.target == "/tmp" && m.kind == "tmpfs")
                .unwrap_or_else(|| panic!("/tmp reported: {:?}", o.enforcement.mounts));
            let note = report.note.clone().unwrap_or_default();
            assert!(note.ends_with("; noexec"), "{note}");
        }

        /// `/proc/self/mountinfo` lists the sandbox's mounts with the device numbers
        /// `stat` shows under each (what `df` and `findmnt` match files by), read-only
        /// ones marked `ro`, and `df` finds /tmp as its own filesystem.
        fn mountinfo_matches_what_stat_shows(iso) {
            let code = r#"
import os
seen = {}
for line in open("/proc/self/mountinfo"):
    f = line.split()
    target, opts, dev = f[4], f[5], f[2]
    seen[target] = (dev, opts.split(",")[0])
    st = os.stat(target)
    if "%d:%d" % (os.major(st.st_dev), os.minor(st.st_dev)) != dev:
        print("mismatch", target, dev)
print("tmp", seen["/tmp"][1], "usr", seen["/usr"][1])
"#;
            let o = run(Workload::new("python3", ["-c", code]).isolation(iso));
            assert_eq!(stdout(&o), "tmp rw usr ro\n", "{}", out(&o));
            let o = run(sh("df -P /tmp | tail -n 1 | awk '{print $6}'").isolation(iso));
            assert_eq!(stdout(&o), "/tmp\n", "{}", out(&o));
        }
    }
}

mod noexec_bind {
    use super::*;

    /// What `noexec /nx /ok ...` prints on Linux, a host directory bind-mounted
    /// `noexec` at /nx and another bound without it at /ok (taken from a native run:
    /// `mount --bind` and `mount -o remount,bind,noexec`), for
    /// `a_noexec_bind_runs_and_maps_nothing_executable`.
    const EXPECTED: &str = "\
execve /nx/prog: EACCES
execveat(AT_EMPTY_PATH) /nx/prog: EACCES
execve /nx/script (#!/bin/sh): EACCES
execve /ok/script-nx (#!/nx/prog): EACCES
execve /ok/dyn-nx (loader /nx/ld.so): EACCES
mmap /nx/prog PROT_EXEC private: EPERM
mmap /nx/prog PROT_EXEC shared: EPERM
mmap /nx/prog PROT_READ private: ok
mprotect /nx/prog private +PROT_EXEC: EACCES
mprotect /nx/prog private +PROT_WRITE: ok
mmap /nx/prog PROT_READ shared: ok
mprotect /nx/prog shared +PROT_EXEC: EACCES
access /nx/prog X_OK: EACCES
access /nx/prog R_OK: ok
faccessat /nx/prog X_OK AT_EACCESS: EACCES
access /nx X_OK: ok
execve /ok/prog: ok
execveat(AT_EMPTY_PATH) /ok/prog: ok
execve /ok/script (#!/bin/sh): ok
execve /ok/script-ok (#!/ok/prog): ok
execve /ok/dyn-ok (loader /ok/ld.so): ok
mmap /ok/prog PROT_EXEC private: ok
mmap /ok/prog PROT_EXEC shared: ok
mmap /ok/prog PROT_READ private: ok
mprotect /ok/prog private +PROT_EXEC: ok
mprotect /ok/prog private +PROT_WRITE: ok
mmap /ok/prog PROT_READ shared: ok
mprotect /ok/prog shared +PROT_EXEC: ok
access /ok/prog X_OK: ok
access /ok/prog R_OK: ok
faccessat /ok/prog X_OK AT_EACCESS: ok
access /ok X_OK: ok
mmap anonymous PROT_EXEC: ok
mmap memfd PROT_EXEC shared: ok
mprotect memfd private +PROT_EXEC: ok
/proc/self/mountinfo /nx: noexec
/proc/mounts /nx: noexec
/proc/self/mountinfo /ok: exec
/proc/mounts /ok: exec
";

    /// A host bind the plan mounts `noexec`, or not.
    fn bind(src: &Path, target: &str, noexec: bool) -> Mount {
        Mount {
            noexec,
            ..Mount::rw(src, target)
        }
    }

    /// The note the mount report gives the mount at `target`.
    fn note(o: &Outcome, target: &str) -> String {
        o.enforcement
            .mounts
            .iter()
            .find(|m| m.target == target)
            .unwrap_or_else(|| panic!("{target} reported: {:?}", o.enforcement.mounts))
            .note
            .clone()
            .unwrap_or_default()
    }

    both! {
        /// `noexec` on a host directory mount (`noexec = true`, `-v SRC:DST:noexec`),
        /// attacked by `tests/programs/noexec.c` as Linux answers it: no program on it
        /// runs (nor a `#!` script on it, nor a script or a dynamically linked program
        /// elsewhere whose interpreter or loader is on it: EACCES, by path or by
        /// descriptor), none of its files is mapped executable (EPERM) nor made so
        /// (EACCES), `access(X_OK)` says EACCES, and the mount tables show `noexec`;
        /// the same files on a bind without it all run. The mount report says `noexec`.
        fn a_noexec_bind_runs_and_maps_nothing_executable(iso) {
            let nx = writable_tempdir();
            let ok = writable_tempdir();
            let w = Workload::new(
                format!("{PROGRAMS_IN_SANDBOX}/noexec-static"),
                [
                    "/nx".to_string(),
                    "/ok".to_string(),
                    format!("{PROGRAMS_IN_SANDBOX}/noexec-static"),
                    format!("{PROGRAMS_IN_SANDBOX}/noexec"),
                ],
            )
            .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
            .mount(bind(nx.path(), "/nx", true))
            .mount(bind(ok.path(), "/ok", false))
            .isolation(iso);
            let o = run(w);
            let text = out(&o);
            assert_eq!(o.exit_code, Some(0), "{text}");
            assert_eq!(stdout(&o), EXPECTED, "{iso:?}: {text}");
            assert!(note(&o, "/nx").ends_with("noexec"), "{}", note(&o, "/nx"));
            assert!(!note(&o, "/nx").contains("not applied"), "{}", note(&o, "/nx"));
            assert!(!note(&o, "/ok").contains("noexec"), "{}", note(&o, "/ok"));
            // What the workload wrote there is on the host, unchanged.
            let prog = std::fs::metadata(nx.path().join("prog")).unwrap();
            assert_eq!(prog.permissions().mode() & 0o777, 0o755);
        }

        /// A host file mounted `noexec` does not run (the shell's 126, Permission
        /// denied), nor is it executable to `test -x`; mounted without it, the same
        /// file runs.
        fn a_noexec_file_mount_does_not_run(iso) {
            let prog = programs().join("noexec-static");
            let w = Workload::new(
                "/bin/sh",
                [
                    "-c",
                    "export NOEXEC_CHILD=1; /nxf; echo \"nxf $?\"; test -x /nxf || echo 'nxf not -x'; /okf; echo \"okf $?\"; test -x /okf && echo 'okf -x'",
                ],
            )
            .mount(Mount { noexec: true, ..Mount::ro(&prog, "/nxf") })
            .mount(Mount::ro(&prog, "/okf"))
            .isolation(iso);
            let o = run(w);
            let text = out(&o);
            assert_eq!(stdout(&o), "nxf 126\nnxf not -x\nokf 42\nokf -x\n", "{iso:?}: {text}");
            assert!(note(&o, "/nxf").ends_with("noexec"), "{}", note(&o, "/nxf"));
            assert!(!note(&o, "/okf").contains("noexec"), "{}", note(&o, "/okf"));
        }
    }
}

mod root_dir {
    use super::*;

    /// A busybox root filesystem as a host directory.
    fn rootfs(readonly_marker: &str) -> tempfile::TempDir {
        let d = writable_tempdir();
        for sub in ["bin", "tmp", "etc", "data", "proc", "dev"] {
            std::fs::create_dir(d.path().join(sub)).unwrap();
        }
        set_mode(&d.path().join("tmp"), 0o1777);
        set_mode(&d.path().join("data"), 0o777);
        std::fs::copy("/bin/busybox", d.path().join("bin/busybox")).unwrap();
        for a in ["sh", "cat", "echo", "ls"] {
            std::os::unix::fs::symlink("busybox", d.path().join("bin").join(a)).unwrap();
        }
        std::fs::write(d.path().join("etc/marker"), readonly_marker).unwrap();
        d
    }

    both! {
        /// A host directory as the root as it is (an OCI bundle's rootfs): its own
        /// files and /tmp, nothing of the host's, what the workload writes lands in it
        /// (read-write) or is refused (read-only); a link planted in it to a host path
        /// resolves inside it.
        fn a_directory_root_is_used_as_it_is(iso) {
            for readonly in [false, true] {
                let d = rootfs("from the rootfs\n");
                std::os::unix::fs::symlink("/etc/passwd", d.path().join("data/link")).unwrap();
                let mut w = Workload::new(
                    "/bin/sh",
                    ["-c", "cat /etc/marker; cat /data/link || echo no-host-passwd; ls /usr 2>&1 | head -1; echo hi > /data/out && echo wrote"],
                )
                .isolation(iso);
                w.root_dir = Some(hybrid_sandbox::RootDir { path: d.path().to_path_buf(), readonly });
                w.cwd = Some("/".into());
                let o = run(w);
                let text = out(&o);
                assert!(text.starts_with("from the rootfs\n"), "{iso:?} ro={readonly}: {text}");
                assert!(text.contains("no-host-passwd"), "the host's /etc/passwd was reached: {text}");
                assert!(!text.contains("root:x:0:0"), "{text}");
                assert!(text.contains("No such file"), "the host's /usr is visible: {text}");
                assert_eq!(text.contains("wrote"), !readonly, "{iso:?} ro={readonly}: {text}");
                assert_eq!(d.path().join("data/out").exists(), !readonly, "{text}");
            }
        }
    }
}
