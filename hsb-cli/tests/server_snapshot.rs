//! Snapshots through the server: `hsb sandbox snapshot ID` (`POST
//! /v1/sandboxes/{id}/snapshot`), `hsb sandbox create --from-snapshot SNAP` (`POST
//! /v1/sandboxes` with `from_snapshot`), `GET`/`DELETE /v1/snapshots/{id}`; a
//! container sandbox's snapshot says it keeps the writable layer only.

mod serve_util;

use std::process::Output;

use serve_util::*;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `hsb ARGS` against `server`, which must succeed: its stdout.
fn hsb_ok(server: &Server, args: &[&str]) -> String {
    let o = server.hsb(args);
    assert!(o.status.success(), "hsb {args:?}: {}", err(&o));
    out(&o)
}

/// `hsb sandbox create --isolation ISO EXTRA...`: the new sandbox's id.
fn create(server: &Server, iso: &str, extra: &[&str]) -> String {
    let mut args = vec!["sandbox", "create", "--isolation", iso];
    args.extend_from_slice(extra);
    hsb_ok(server, &args).trim().to_string()
}

/// `hsb sandbox exec ID -- busybox sh -c SCRIPT`, which must succeed: its stdout.
fn sh_ok(server: &Server, id: &str, script: &str) -> String {
    hsb_ok(
        server,
        &["sandbox", "exec", id, "--", "busybox", "sh", "-c", script],
    )
}

#[test]
fn snapshot_and_create_from_it_through_the_cli_and_the_api() {
    let server = Server::start(&[]);
    let isos = isolations();
    if !isos.contains(&"microvm") {
        return;
    }
    let id = create(&server, "microvm", &[]);
    sh_ok(&server, &id, "echo parent > /tmp/state");

    let o = server.hsb(&["sandbox", "snapshot", &id]);
    assert!(o.status.success(), "{}", err(&o));
    let snap = out(&o).trim().to_string();
    assert!(snap.starts_with("snap-"), "{snap}");

    let o = server.hsb(&["sandbox", "create", "--from-snapshot", &snap, "--json"]);
    assert!(o.status.success(), "{}", err(&o));
    let info: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(info["isolation"], "microvm");
    let clone = info["id"].as_str().unwrap().to_string();
    assert_ne!(clone, id);
    let o = server.hsb(&[
        "sandbox",
        "exec",
        &clone,
        "--",
        "busybox",
        "sh",
        "-c",
        "busybox cat /tmp/state; echo clone > /tmp/state",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "parent\n");
    let o = server.hsb(&["sandbox", "exec", &id, "--", "busybox", "cat", "/tmp/state"]);
    assert_eq!(out(&o), "parent\n", "the clone's write stays its own");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = server.client(None);
        let s = c.snapshot_info(&snap).await.unwrap();
        assert_eq!(s.snapshot_id, snap);
        assert_eq!(s.sandbox, id);
        assert!(s.memory_bytes > 0, "{s:?}");
        // from_snapshot takes no other field.
        let bad = hsb_client::api::CreateRequest {
            from_snapshot: Some(snap.clone()),
            image: Some("x".into()),
            ..Default::default()
        };
        let e = c.create_detached(&bad).await.unwrap_err();
        assert_eq!(e.kind(), "bad_request", "{e:?}");
        c.delete_snapshot(&snap).await.unwrap();
        let e = c.snapshot_info(&snap).await.unwrap_err();
        assert_eq!(e.kind(), "no_such_snapshot", "{e:?}");
        // The clone goes on without the snapshot.
        let live = c.attach(&clone).await.unwrap();
        assert_eq!(
            live.exec(["busybox", "cat", "/tmp/state"])
                .await
                .unwrap()
                .stdout,
            b"clone\n"
        );
        // The library's fork() of a server's sandbox goes through the same endpoints.
        let remote = c.attach(&id).await.unwrap();
        let f = remote
            .fork()
            .await
            .unwrap_or_else(|e| panic!("{}", e.chain()));
        assert_eq!(
            f.exec(["busybox", "cat", "/tmp/state"])
                .await
                .unwrap()
                .stdout,
            b"parent\n"
        );
        f.destroy().await.unwrap();
        // A container sandbox's snapshot keeps its writable layer only, and says so.
        let info = c
            .create_detached(&hsb_client::api::CreateRequest {
                isolation: Some("container".parse().unwrap()),
                ..Default::default()
            })
            .await
            .unwrap();
        let s = c.snapshot(&info.id).await.unwrap();
        assert!(s.kept.contains("writable layer only"), "{s:?}");
        c.delete_snapshot(&s.snapshot_id).await.unwrap();
        for s in [&info.id, &clone, &id] {
            c.destroy(s).await.unwrap();
        }
    });
}

/// The server's descriptors open on unnamed files of `dir` (`O_TMPFILE`: the link
/// reads `DIR/#INODE (deleted)`).
fn unnamed_files_in(pid: u32, dir: &std::path::Path) -> usize {
    let prefix = format!("{}/#", dir.display());
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|l| l.to_string_lossy().starts_with(&prefix))
                .count()
        })
        .unwrap_or(0)
}

/// `hsb sandbox pause --to-disk ID` (`POST .../pause` with `{"to_disk": true}`): the
/// micro-VM's state goes to an unnamed file of the server's `--spill-dir`, execs and
/// files answer 409 meanwhile, `resume` starts it again under the same id with its
/// files and its background process; deleting it leaves nothing in the directory. A
/// container says it cannot; bad bodies are 400.
#[test]
fn pause_to_disk_and_resume_through_the_cli_and_the_api() {
    let spill = tempfile::tempdir().unwrap();
    let server = Server::start(&["--spill-dir", spill.path().to_str().unwrap()]);
    let isos = isolations();
    if !isos.contains(&"microvm") {
        return;
    }
    let id = create(&server, "microvm", &[]);
    sh_ok(
        &server,
        &id,
        "echo before > /tmp/state; busybox sleep 1000 & echo $! > /tmp/pid",
    );

    hsb_ok(&server, &["sandbox", "pause", "--to-disk", &id]);
    assert_eq!(
        unnamed_files_in(server.pid(), spill.path()),
        1,
        "the state is in an unnamed file of the spill directory"
    );
    assert_eq!(
        std::fs::read_dir(spill.path()).unwrap().count(),
        0,
        "nothing named is left in the spill directory"
    );
    let path = format!("/v1/sandboxes/{id}");
    let (status, info) = server.json("GET", &path, "");
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["state"], "paused", "{info}");
    assert_eq!(info["on_disk"], true, "{info}");
    assert!(info.get("stats").is_none(), "{info}");
    let o = server.hsb(&["sandbox", "ls"]);
    assert!(
        out(&o)
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("on-disk")),
        "{}",
        out(&o)
    );
    // Execs and files wait for the resume.
    let o = server.hsb(&["sandbox", "exec", &id, "--", "busybox", "true"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("paused"), "{}", err(&o));
    let (status, body) = server.json("GET", &format!("{path}/files?path=/tmp/state"), "");
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["kind"], "wrong_state", "{body}");
    let (status, body) = server.json("POST", &format!("{path}/snapshot"), "");
    assert_eq!(status, 409, "{body}");
    // Pausing again changes nothing; bad bodies are refused.
    let (status, body) = server.json("POST", &format!("{path}/pause"), r#"{"to_disk": true}"#);
    assert_eq!(
        (status, &body["on_disk"]),
        (200, &serde_json::json!(true)),
        "{body}"
    );
    for bad in [
        r#"{"to_disk": "yes"}"#,
        r#"{"to_dsk": true}"#,
        "[true]",
        "{",
    ] {
        let (status, body) = server.json("POST", &format!("{path}/pause"), bad);
        assert_eq!(status, 400, "{bad}: {body}");
    }

    hsb_ok(&server, &["sandbox", "resume", &id]);
    let (status, info) = server.json("GET", &path, "");
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["state"], "running", "{info}");
    assert!(info.get("on_disk").is_none(), "{info}");
    // Its memory is read from the file as it is touched: the file goes with it.
    assert!(unnamed_files_in(server.pid(), spill.path()) <= 1);
    let o = sh_ok(
        &server,
        &id,
        "busybox cat /tmp/state; busybox kill -0 $(busybox cat /tmp/pid) && echo alive",
    );
    assert_eq!(o, "before\nalive\n");

    // Looked at while it goes to disk and comes back, it is never seen destroyed, and
    // an exec meanwhile either runs or is refused with 409.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, info) = server.json("GET", &path, "");
                assert_eq!(status, 200, "{info}");
                seen.insert(info["state"].as_str().unwrap_or("?").to_string());
                let (status, body) = server.json(
                    "POST",
                    &format!("{path}/exec"),
                    r#"{"argv": ["busybox", "true"]}"#,
                );
                assert!(status == 200 || status == 409, "{status} {body}");
            }
            seen
        });
        for _ in 0..3 {
            hsb_ok(&server, &["sandbox", "pause", "--to-disk", &id]);
            hsb_ok(&server, &["sandbox", "resume", &id]);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let seen = watcher.join().unwrap();
        assert!(!seen.contains("destroyed"), "{seen:?}");
    });

    // To disk again, then deleted there: nothing is left.
    hsb_ok(&server, &["sandbox", "pause", "--to-disk", &id]);
    hsb_ok(&server, &["sandbox", "rm", &id]);
    assert!(
        eventually(10.0, || unnamed_files_in(server.pid(), spill.path()) == 0),
        "the file of a deleted sandbox stayed open"
    );
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);

    // A lifetime counts on disk too: once it passed, the file is freed and the sandbox
    // shows it ended.
    let short = create(&server, "microvm", &["--lifetime", "2s"]);
    hsb_ok(&server, &["sandbox", "pause", "--to-disk", &short]);
    assert_eq!(unnamed_files_in(server.pid(), spill.path()), 1);
    // Freed by the server itself: no request comes until the file is gone.
    assert!(
        eventually(15.0, || unnamed_files_in(server.pid(), spill.path()) == 0),
        "the file of a sandbox past its lifetime stayed open"
    );
    let (status, info) = server.json("GET", &format!("/v1/sandboxes/{short}"), "");
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        (&info["state"], &info["ended"]),
        (
            &serde_json::json!("destroyed"),
            &serde_json::json!("lifetime")
        ),
        "{info}"
    );
    let o = server.hsb(&["sandbox", "resume", &short]);
    assert!(
        !o.status.success(),
        "a sandbox past its lifetime is not resumed"
    );

    // A container cannot go to disk, and says so; it keeps running.
    if isos.contains(&"container") {
        let ct = create(&server, "container", &[]);
        let (status, body) = server.json(
            "POST",
            &format!("/v1/sandboxes/{ct}/pause"),
            r#"{"to_disk": true}"#,
        );
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["kind"], "unsupported", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("disk"),
            "{body}"
        );
        hsb_ok(&server, &["sandbox", "exec", &ct, "--", "true"]);
        hsb_ok(&server, &["sandbox", "rm", &ct]);
    }
}
