//! Credential calls in the container answer as Linux answers a process without
//! capabilities: another user's id is EPERM (never the user namespace's EINVAL), the
//! sandbox's own ids and "unchanged" work, and no call makes the workload anyone else.

use hsb_tests::*;
use hybrid_sandbox::{IsolationRequest, Workload};

const SCRIPT: &str = r#"
import os, errno
def try_(name, f, *a):
    try:
        f(*a)
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
u, g = os.getuid(), os.getgid()
open("/tmp/f", "w").close()
try_("chown-root", os.chown, "/tmp/f", 0, -1)
try_("chown-other", os.chown, "/tmp/f", 65534, -1)
try_("chown-group", os.chown, "/tmp/f", -1, 0)
try_("lchown-other", os.lchown, "/tmp/f", 4242, -1)
try_("fchown-other", lambda: os.fchown(os.open("/tmp/f", os.O_RDONLY), 1, 1))
try_("chown-own", os.chown, "/tmp/f", u, g)
try_("chown-keep", os.chown, "/tmp/f", -1, -1)
try_("setuid-root", os.setuid, 0)
try_("setgid-root", os.setgid, 0)
try_("setreuid-other", os.setreuid, -1, 0)
try_("setresuid-other", os.setresuid, -1, -1, 0)
try_("setresgid-other", os.setresgid, 5, -1, -1)
try_("setresuid-own", os.setresuid, u, u, -1)
try_("setuid-own", os.setuid, u)
print("still", os.getresuid(), os.getresgid(), os.stat("/tmp/f").st_uid)
"#;

#[test]
fn another_users_id_is_eperm_and_changes_nothing() {
    let o =
        run(Workload::new("/usr/bin/python3", ["-c", SCRIPT])
            .isolation(IsolationRequest::Container));
    let out = stdout(&o);
    assert_eq!(
        o.exit_code,
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for line in [
        "chown-root EPERM",
        "chown-other EPERM",
        "chown-group EPERM",
        "lchown-other EPERM",
        "fchown-other EPERM",
        "chown-own ok",
        "chown-keep ok",
        "setuid-root EPERM",
        "setgid-root EPERM",
        "setreuid-other EPERM",
        "setresuid-other EPERM",
        "setresgid-other EPERM",
        "setresuid-own ok",
        "setuid-own ok",
        "still (1000, 1000, 1000) (1000, 1000, 1000) 1000",
    ] {
        assert!(out.lines().any(|l| l == line), "want {line:?} in:\n{out}");
    }
}

#[test]
fn python_subprocess_as_another_user_is_a_permission_error() {
    let o = run(Workload::new(
        "/usr/bin/python3",
        [
            "-c",
            "import subprocess, sys\n\
             for kw in ({'user': 65534}, {'group': 0}, {'extra_groups': [0]}):\n\
             \x20   try:\n\
             \x20       subprocess.run(['true'], **kw)\n\
             \x20       print(kw, 'ran')\n\
             \x20   except PermissionError:\n\
             \x20       print(kw, 'PermissionError')\n",
        ],
    )
    .isolation(IsolationRequest::Container));
    let out = stdout(&o);
    assert!(
        out.contains("{'user': 65534} PermissionError")
            && out.contains("{'group': 0} PermissionError")
            && out.contains("{'extra_groups': [0]} PermissionError"),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
