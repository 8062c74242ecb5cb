//! `hsb run --mount` against sources that are host kernel interfaces without being
//! spelled `/proc`, `/sys` or `/dev` (bind mounts and fresh mounts made in a private
//! mount namespace, `unshare -m`), against filesystems that refuse idmapped mounts, and
//! as a rootless caller. Both backends where both apply.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use common::{hsb_copy, kvm, root};

const HSB: &str = env!("CARGO_BIN_EXE_hsb");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn isolations() -> Vec<&'static str> {
    let mut v = vec!["container"];
    if kvm() {
        v.push("microvm");
    }
    v
}

/// Runs `script` with `sh` in a private mount namespace; `$HSB` is the binary, `$D` a
/// scratch directory.
fn in_private_mounts(script: &str, dir: &std::path::Path) -> Output {
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("HSB", HSB)
        .env("D", dir)
        .output()
        .expect("unshare (util-linux) must be installed")
}

/// Each `case NAME SOURCE[:MODE]` of `cases` run through `hsb run --mount`, after
/// `setup`, in a private mount namespace: NAME -> (exit status, stderr).
fn run_cases(
    iso: &str,
    setup: &str,
    cases: &[(&str, &str)],
) -> std::collections::BTreeMap<String, (i32, String)> {
    let dir = tempfile::tempdir().unwrap();
    let mut script = format!("set -u\n{setup}\n");
    for (name, mount) in cases {
        script.push_str(&format!(
            "\"$HSB\" run --isolation {iso} --mount \"{mount}\" -- /bin/sh -c 'echo ran' >\"$D/{name}.out\" 2>\"$D/{name}.err\"; echo $? >\"$D/{name}.rc\"\n"
        ));
    }
    let o = in_private_mounts(&script, dir.path());
    assert!(
        o.status.success(),
        "setup failed: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    cases
        .iter()
        .map(|(name, _)| {
            let read = |ext: &str| {
                std::fs::read_to_string(dir.path().join(format!("{name}.{ext}")))
                    .unwrap_or_default()
            };
            let rc = read("rc").trim().parse().unwrap_or(-1);
            (name.to_string(), (rc, read("err") + &read("out")))
        })
        .collect()
}

#[test]
fn kernel_interfaces_under_other_names_are_refused_by_what_they_are() {
    if !root() {
        return;
    }
    let cg = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir() && std::fs::read_dir(p).is_ok_and(|mut r| r.next().is_some()))
        .expect("a cgroup hierarchy");
    let setup = format!(
        "for d in procbind freshproc sys cg devbind shmbind parent parent/p ok; do mkdir -p \"$D/$d\"; done
         mount --bind /proc \"$D/procbind\"
         mount -t proc proc \"$D/freshproc\"
         mount -t sysfs sysfs \"$D/sys\"
         mount --bind {} \"$D/cg\"
         mount --bind /dev \"$D/devbind\"
         mount --bind /dev/shm \"$D/shmbind\"
         mount -t proc proc \"$D/parent/p\"
         mkdir -p \"$D/al/x\" && mount --bind \"$D/al\" /dev/shm
         chmod 755 \"$D\" \"$D/ok\"",
        cg.display()
    );
    let shm_before: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let cases = [
        ("procbind", "$D/procbind:/x"),
        ("procbind_pid", "$D/procbind/1:/x"),
        ("freshproc", "$D/freshproc/self:/x"),
        ("sysfs", "$D/sys/kernel:/x"),
        ("cgroup", "$D/cg:/x:rw"),
        ("devtmpfs", "$D/devbind:/x"),
        ("devtmpfs_dir", "$D/devbind/shm:/x:rw"),
        ("devnode", "$D/devbind/null:/x:rw"),
        ("shm", "$D/shmbind:/x:rw"),
        ("below", "$D/parent:/x"),
        ("alias", "$D/al/x:/x"),
        ("root", "/:/x"),
        ("ok", "$D/ok:/x"),
    ];
    for iso in isolations() {
        let mut got = run_cases(iso, &setup, &cases);
        let (rc, out) = got.remove("ok").unwrap();
        assert_eq!(
            (rc, out.as_str()),
            (0, "ran\n"),
            "{iso}: the harness itself"
        );
        for (name, (rc, err)) in got {
            assert_eq!(rc, 125, "{iso} {name}: ran: {err}");
            let why = match name.as_str() {
                "devnode" => "character device",
                "below" | "root" => "mounted below it",
                "alias" => "what the host binds at /dev/shm",
                _ => "kernel interface",
            };
            assert!(err.contains(why), "{iso} {name}: {err}");
        }
    }
    let shm_after: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(shm_before, shm_after);
}

#[test]
fn a_filesystem_that_refuses_idmaps_falls_back_and_says_so() {
    if !root() {
        return;
    }
    for iso in isolations() {
        // ramfs has no idmapped mounts.
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            "mkdir \"$D/r\" && mount -t ramfs r \"$D/r\" && echo data > \"$D/r/f\" && chmod 644 \"$D/r/f\"
            chmod 700 \"$D/r\"
            \"$HSB\" run --isolation {iso} --mount \"$D/r:/r\" -- cat /r/f; echo \"closed=$?\"
            chmod 755 \"$D/r\"
            \"$HSB\" run --json --isolation {iso} --mount \"$D/r:/r\" -- cat /r/f"
        );
        let o = in_private_mounts(&script, dir.path());
        let (out, err) = (text(&o.stdout), text(&o.stderr));
        assert!(out.contains("closed=125"), "{iso}: {out}{err}");
        for needle in [
            "uid 65534",
            "mode 0700",
            "idmapped mounts are unavailable",
            "make it readable by uid 65534",
        ] {
            assert!(err.contains(needle), "{iso}: {needle}: {err}");
        }
        let json = out
            .lines()
            .skip_while(|l| !l.starts_with('{'))
            .collect::<Vec<_>>()
            .join("\n");
        let v: serde_json::Value =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{iso}: {e}: {out}"));
        assert_eq!(v["stdout"], "data\n", "{iso}");
        let m = v["enforcement"]["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["target"] == "/r")
            .unwrap()
            .clone();
        assert_eq!(m["access"], "sandbox_identity", "{iso}: {m}");
        assert!(
            m["note"]
                .as_str()
                .is_some_and(|n| n.contains("idmapped mounts are unavailable")),
            "{iso}: {m}"
        );
    }
}

/// `bin ARGS` as uid 65534, with no capability, in a private mount namespace where
/// `kvm` (a node of the host's KVM device, mode 666) stands in for /dev/kvm (root's alone
/// on the project's machines): the host's /dev/kvm is left as it is.
fn as_nobody(kvm: &std::path::Path, bin: &str, args: &[&str]) -> Output {
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount --bind \"$0\" /dev/kvm && exec setpriv --reuid 65534 --regid 65534 \
             --clear-groups --inh-caps=-all --bounding-set=-all \"$@\"",
        )
        .arg(kvm)
        .arg(bin)
        .args(args)
        .current_dir("/")
        .output()
        .expect("unshare and setpriv (util-linux) must be installed")
}

/// A node of the host's KVM device that anyone may open, in `dir`.
fn kvm_node(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    let node = dir.join("kvm");
    let rdev = std::fs::metadata("/dev/kvm").unwrap().rdev();
    let c = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
    // SAFETY: mknod of a character device at a path we own, with the host's device number.
    let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, rdev) };
    assert_eq!(made, 0, "{}", std::io::Error::last_os_error());
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o666)).unwrap();
    node
}

/// A rootless caller (uid 65534 here), in both backends: its own private directory
/// mounts with its own access (reported `caller`), root's stays closed to it, and
/// planted symlinks are refused the same way.
#[test]
fn a_rootless_callers_mounts() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = hsb_copy(dir.path());
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("f"), "mine\n").unwrap();
    std::fs::set_permissions(mine.join("f"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("/proc", mine.join("p")).unwrap();
    std::os::unix::fs::lchown(mine.join("p"), Some(65534), Some(65534)).unwrap();
    for p in [mine.join("f"), mine.clone()] {
        std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
    }
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o700)).unwrap();
    let roots = dir.path().join("roots");
    std::fs::create_dir(&roots).unwrap();
    std::fs::set_permissions(&roots, std::fs::Permissions::from_mode(0o700)).unwrap();

    let node = kvm_node(dir.path());
    for iso in isolations() {
        let m = format!("{}:/m:rw", mine.display());
        let new = format!("/m/new-{iso}");
        let script = format!("cat /m/f; echo new > {new}");
        let args = [
            "run",
            "--json",
            "--isolation",
            iso,
            "--mount",
            &m,
            "--",
            "sh",
            "-c",
            &script,
        ];
        let o = as_nobody(&node, &bin, &args);
        assert_eq!(o.status.code(), Some(0), "{iso}: {}", text(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["stdout"], "mine\n", "{iso}");
        let rep = v["enforcement"]["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["target"] == "/m")
            .unwrap()
            .clone();
        assert_eq!(rep["access"], "caller", "{iso}: {rep}");
        assert_eq!(rep["host_ids"], serde_json::json!([65534, 65534]), "{iso}");
        use std::os::unix::fs::MetadataExt;
        let made = mine.join(format!("new-{iso}"));
        assert_eq!(std::fs::metadata(made).unwrap().uid(), 65534, "{iso}");

        let r = format!("{}:/r", roots.display());
        let o = as_nobody(
            &node,
            &bin,
            &["run", "--isolation", iso, "--mount", &r, "--", "ls", "/r"],
        );
        assert_ne!(o.status.code(), Some(0), "{iso}: {}", text(&o.stdout));
        let err = text(&o.stderr);
        assert!(err.contains("ermission denied"), "{iso}: {err}");

        let p = format!("{}/p/1:/x", mine.display());
        let o = as_nobody(
            &node,
            &bin,
            &["run", "--isolation", iso, "--mount", &p, "--", "true"],
        );
        assert_eq!(o.status.code(), Some(125), "{iso}: {}", text(&o.stderr));
        let err = text(&o.stderr);
        assert!(err.contains("symbolic link"), "{iso}: {err}");
    }
}
