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
    let (status, body) = server.json("POST", &format!("{path}/limits"), r#"{"pids": 64}"#);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["kind"], "wrong_state", "{body}");
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

/// A private key file for `hsb serve --snapshot-key`.
fn key_file(dir: &std::path::Path, name: &str, key: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, key).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

/// `hsb sandbox snapshot-save SNAP FILE` (`GET /v1/snapshots/{id}/file`) and
/// `snapshot-load FILE` (`POST /v1/snapshots`): a micro-VM's files and background
/// process come back in a new server given the same `--snapshot-key` (the first one
/// stopped: its sandboxes are gone); a file changed in one byte, cut short, extended,
/// signed with another key or loaded by another owner is refused, naming why; nothing
/// is left in the spill directory.
#[test]
fn snapshot_files_outlive_the_server_and_refuse_tampering() {
    if !isolations().contains(&"microvm") {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(keys.path(), "key", "0123456789abcdef0123456789abcdef-one\n");
    let spill = tempfile::tempdir().unwrap();
    let spill_s = spill.path().to_str().unwrap();
    let mut first = Server::start(&["--snapshot-key", &key, "--spill-dir", spill_s]);
    let id = create(&first, "microvm", &[]);
    sh_ok(
        &first,
        &id,
        "echo saved > /tmp/state; busybox sleep 1000 & echo $! > /tmp/pid",
    );
    let snap = hsb_ok(&first, &["sandbox", "snapshot", &id])
        .trim()
        .to_string();
    let ls = hsb_ok(&first, &["sandbox", "snapshot-ls"]);
    assert!(ls.lines().any(|l| l.starts_with(&snap)), "{ls}");
    let file = keys.path().join("saved.hsbsnap");
    let f = file.to_str().unwrap();
    hsb_ok(&first, &["sandbox", "snapshot-save", &snap, f]);
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"HSBSNAPF"), "{:?}", &bytes[..16]);
    // The guest's zero pages are not sent: far less than its memory.
    assert!(bytes.len() < 128 << 20, "{} bytes", bytes.len());
    assert_eq!(
        std::fs::read_dir(spill.path()).unwrap().count(),
        0,
        "nothing named in the spill directory"
    );
    // A container's snapshot (its writable layer) goes to a file too.
    let ct_file = keys.path().join("container.hsbsnap");
    let ct = create(&first, "container", &[]);
    hsb_ok(
        &first,
        &[
            "sandbox",
            "exec",
            &ct,
            "--",
            "sh",
            "-c",
            "echo layer > /tmp/kept",
        ],
    );
    let s = hsb_ok(&first, &["sandbox", "snapshot", &ct])
        .trim()
        .to_string();
    hsb_ok(
        &first,
        &["sandbox", "snapshot-save", &s, ct_file.to_str().unwrap()],
    );
    // A snapshot that cannot be a file (a process holds a socket) says why, and the
    // failed save keeps what was at the path.
    let held = create(&first, "microvm", &[]);
    sh_ok(
        &first,
        &held,
        "python3 -c 'import socket, time; s = socket.socket(socket.AF_UNIX); \
         s.bind(\"/tmp/s\"); s.listen(); open(\"/tmp/up\", \"w\").close(); time.sleep(1000)' & \
         while [ ! -e /tmp/up ]; do busybox sleep 0.01; done",
    );
    let s = hsb_ok(&first, &["sandbox", "snapshot", &held])
        .trim()
        .to_string();
    let o = first.hsb(&["sandbox", "snapshot-save", &s, f]);
    assert!(!o.status.success());
    assert!(err(&o).contains("socket"), "{}", err(&o));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        bytes,
        "a failed save keeps the file"
    );
    first.stop(libc::SIGTERM);

    let second = Server::start(&["--snapshot-key", &key, "--spill-dir", spill_s]);
    let loaded = hsb_ok(&second, &["sandbox", "snapshot-load", f])
        .trim()
        .to_string();
    assert!(loaded.starts_with("snap-"), "{loaded}");
    let o = second.hsb(&["sandbox", "create", "--from-snapshot", &loaded]);
    assert!(o.status.success(), "{}", err(&o));
    let back = out(&o).trim().to_string();
    assert_eq!(
        sh_ok(
            &second,
            &back,
            "busybox cat /tmp/state; busybox kill -0 $(busybox cat /tmp/pid) && echo alive"
        ),
        "saved\nalive\n"
    );
    let loaded_ct = hsb_ok(
        &second,
        &["sandbox", "snapshot-load", ct_file.to_str().unwrap()],
    )
    .trim()
    .to_string();
    let o = second.hsb(&["sandbox", "create", "--from-snapshot", &loaded_ct]);
    assert!(o.status.success(), "{}", err(&o));
    let ct_back = out(&o).trim().to_string();
    let o = second.hsb(&["sandbox", "exec", &ct_back, "--", "cat", "/tmp/kept"]);
    assert_eq!(out(&o), "layer\n", "{}", err(&o));
    // A loaded snapshot is sent again as it came.
    let again = keys.path().join("again.hsbsnap");
    hsb_ok(
        &second,
        &["sandbox", "snapshot-save", &loaded, again.to_str().unwrap()],
    );
    assert!(std::fs::metadata(&again).unwrap().len() > 0);

    // Tampered files: each refused, naming why.
    let bad = keys.path().join("bad.hsbsnap");
    let refused = |data: &[u8], why: &str| {
        std::fs::write(&bad, data).unwrap();
        let o = second.hsb(&["sandbox", "snapshot-load", bad.to_str().unwrap()]);
        assert!(!o.status.success(), "{why}: loaded");
        assert!(err(&o).contains(why), "{why}: {}", err(&o));
    };
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    refused(&flipped, "signature does not match");
    let mut last = bytes.clone();
    *last.last_mut().unwrap() ^= 0x80;
    refused(&last, "signature does not match");
    refused(&bytes[..bytes.len() - 1], "cut short");
    refused(&bytes[..bytes.len() / 3], "cut short");
    let mut longer = bytes.clone();
    longer.push(0);
    refused(&longer, "goes on past its signature");
    refused(b"#!/bin/sh\necho not a snapshot\n", "not a snapshot file");
    refused(b"", "cut short");
    // The header is signed too: another owner's name in it breaks the signature.
    let text = String::from_utf8_lossy(&bytes[..4096.min(bytes.len())]).into_owned();
    assert!(text.contains("\"owner\":\"uid 0\""), "{text}");
    let at = bytes.windows(5).position(|w| w == b"uid 0").unwrap();
    let mut other = bytes.clone();
    other[at + 4] = b'1';
    refused(&other, "signature does not match");
    let (status, body) = second.json("POST", "/v1/snapshots", "{}");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["kind"], "invalid", "{body}");

    // Another key: refused by name.
    let other_key = key_file(keys.path(), "key2", "fedcba9876543210fedcba9876543210-two");
    let third = Server::start(&["--snapshot-key", &other_key]);
    let o = third.hsb(&["sandbox", "snapshot-load", f]);
    assert!(!o.status.success());
    assert!(err(&o).contains("another server's key"), "{}", err(&o));
    // A key rotated out: its files still load where it is given as an old key, and
    // come back signed with the new one, which the old key's servers refuse.
    let rotated = Server::start(&["--snapshot-key", &other_key, "--snapshot-old-key", &key]);
    let l = hsb_ok(&rotated, &["sandbox", "snapshot-load", f])
        .trim()
        .to_string();
    let resigned = keys.path().join("resigned.hsbsnap");
    hsb_ok(
        &rotated,
        &["sandbox", "snapshot-save", &l, resigned.to_str().unwrap()],
    );
    hsb_ok(
        &third,
        &["sandbox", "snapshot-load", resigned.to_str().unwrap()],
    );
    let o = second.hsb(&["sandbox", "snapshot-load", resigned.to_str().unwrap()]);
    assert!(err(&o).contains("another server's key"), "{}", err(&o));
    // A changed byte is refused under an old key as under the current one.
    let o = rotated.hsb(&["sandbox", "snapshot-load", bad.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", out(&o));
    drop(rotated);
    // An old key is checked as a key is, and needs a current one.
    let loose = keys.path().join("loose");
    std::fs::write(&loose, "0123456789abcdef0123456789abcdef-one").unwrap();
    for (args, says) in [
        (
            vec![
                "--snapshot-key",
                &other_key,
                "--snapshot-old-key",
                loose.to_str().unwrap(),
            ],
            "--snapshot-old-key",
        ),
        (vec!["--snapshot-old-key", &key], "--snapshot-key"),
    ] {
        let o = std::process::Command::new(HSB)
            .arg("serve")
            .args([
                "--listen",
                &format!("unix:{}", keys.path().join("s.sock").display()),
            ])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        assert!(err(&o).contains(says), "{args:?}: {}", err(&o));
    }
    // Another owner (a token, where the file was the uid's): 403.
    let tok = "tok-0123456789abcdef0123456789abcdef";
    let fourth = Server::start_tcp(&format!("{tok} alice\n"), &["--snapshot-key", &key]);
    let rt = runtime();
    rt.block_on(async {
        let c = fourth.client(Some(tok));
        let e = c.upload_snapshot(&file).await.unwrap_err();
        assert_eq!(e.kind(), "permission_denied", "{e:?}");
        assert!(e.to_string().contains("uid 0"), "{e}");
        // Unknown snapshots are 404, to download or delete.
        let e = c
            .download_snapshot("snap-000000000000000000000000", &bad)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "no_such_snapshot", "{e:?}");
    });
    // More data than the server takes: 413, naming the limit.
    let small = Server::start(&["--snapshot-key", &key, "--snapshot-upload-limit", "1M"]);
    let o = small.hsb(&["sandbox", "snapshot-load", f]);
    assert!(!o.status.success());
    assert!(err(&o).contains("--snapshot-upload-limit"), "{}", err(&o));
    drop(small);
    // Bad key files are refused at start, naming the fault.
    for (text, mode, why) in [
        ("short", 0o600, "at least 32 bytes"),
        ("0123456789abcdef0123456789abcdef", 0o644, "chmod 600"),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let p = keys.path().join("badkey");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_hsb"))
            .args([
                "serve",
                "--listen",
                "unix:/nonexistent/x.sock",
                "--snapshot-key",
            ])
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(125), "{}", err(&o));
        assert!(err(&o).contains(why), "{why}: {}", err(&o));
    }
    drop(second);
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
}
