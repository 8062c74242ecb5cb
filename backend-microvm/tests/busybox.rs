//! Debian's static busybox: echo, cat, ls, wc, sort, grep, sha256sum and `sh -c` with
//! builtins, unmodified, in the micro-VM.

mod common;

use common::*;
use sandbox_core::{MountMode, PlannedMount, Stdin};

async fn bb(args: &[&str]) -> sandbox_core::Outcome {
    run(plan("/bin/busybox", args)).await
}

async fn bb_ok(args: &[&str]) -> String {
    let o = bb(args).await;
    assert!(
        o.success(),
        "busybox {args:?}: {o:?}\nstderr: {}",
        stderr(&o)
    );
    stdout(&o)
}

#[tokio::test]
async fn echo_cat_wc() {
    if !kvm() {
        return;
    }
    assert_eq!(bb_ok(&["echo", "hello", "world"]).await, "hello world\n");
    assert!(bb_ok(&["cat", "/etc/passwd"])
        .await
        .contains("sandbox:x:1000"));
    let mut p = plan("/bin/busybox", &["wc"]);
    p.stdin = Stdin::Bytes(b"one two\nthree\n".to_vec());
    let o = run(p).await;
    let out = stdout(&o);
    let counts: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(counts, ["2", "3", "14"]);
}

#[tokio::test]
async fn ls_sort_grep() {
    if !kvm() {
        return;
    }
    let host = temp_dir("bb");
    for (n, c) in [
        ("b.txt", "banana\n"),
        ("a.txt", "apple\ncherry\n"),
        ("c.log", "log\n"),
    ] {
        std::fs::write(host.join(n), c).unwrap();
    }
    let mut p = plan("/bin/busybox", &["ls", "-1", "/data"]);
    p.mounts.push(PlannedMount {
        source: host.to_path_buf(),
        target: "/data".into(),
        mode: MountMode::Ro,
        optional: false,
        system: false,
        noexec: false,
    });
    let o = run(p).await;
    assert_eq!(stdout(&o), "a.txt\nb.txt\nc.log\n", "{}", stderr(&o));

    let mut p = plan("/bin/busybox", &["ls", "-la", "/"]);
    p.mounts.push(PlannedMount {
        source: host.to_path_buf(),
        target: "/data".into(),
        mode: MountMode::Ro,
        optional: false,
        system: false,
        noexec: false,
    });
    let out = stdout(&run(p).await);
    assert!(
        out.contains(" data") && out.contains(" tmp") && out.contains(" proc"),
        "{out}"
    );

    let mut p = plan("/bin/busybox", &["sort", "-r"]);
    p.stdin = Stdin::Bytes(b"pear\napple\nzucchini\nfig\n".to_vec());
    assert_eq!(stdout(&run(p).await), "zucchini\npear\nfig\napple\n");

    let mut p = plan(
        "/bin/busybox",
        &["grep", "-n", "an", "/data/a.txt", "/data/b.txt"],
    );
    p.mounts.push(PlannedMount {
        source: host.to_path_buf(),
        target: "/data".into(),
        mode: MountMode::Ro,
        optional: false,
        system: false,
        noexec: false,
    });
    assert_eq!(stdout(&run(p).await), "/data/b.txt:1:banana\n");
    let o = bb(&["grep", "nothing-matches", "/etc/passwd"]).await;
    assert_eq!(o.exit_code, Some(1));
}

#[tokio::test]
async fn sha256sum_matches_the_host() {
    if !kvm() {
        return;
    }
    let host = temp_dir("sha");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    std::fs::write(host.join("blob"), &data).unwrap();
    let expected = std::process::Command::new("sha256sum")
        .arg(host.join("blob"))
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&expected.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let mut p = plan("/bin/busybox", &["sha256sum", "/data/blob"]);
    p.mounts.push(PlannedMount {
        source: host.to_path_buf(),
        target: "/data".into(),
        mode: MountMode::Ro,
        optional: false,
        system: false,
        noexec: false,
    });
    let o = run(p).await;
    assert_eq!(stdout(&o), format!("{expected}  /data/blob\n"));
}

#[tokio::test]
async fn sh_with_builtins() {
    if !kvm() {
        return;
    }
    let script = r#"
        x=3; y=4
        echo "sum=$((x + y))"
        for w in a b c; do printf '%s-' "$w"; done; echo
        cd /tmp && pwd
        echo "written by sh" > /tmp/f && read line < /tmp/f && echo "read: $line"
        test -d /proc && echo "has proc"
        case "$HOME" in */tmp) echo home-tmp;; *) echo "home=$HOME";; esac
        exit 5
    "#;
    let o = bb(&["sh", "-c", script]).await;
    assert_eq!(o.exit_code, Some(5), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).lines().take(5).collect::<Vec<_>>(),
        ["sum=7", "a-b-c-", "/tmp", "read: written by sh", "has proc"]
    );
}
