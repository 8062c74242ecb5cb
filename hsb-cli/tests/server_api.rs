//! `hsb serve` through its API: the agent scenario with the Rust client, file paths
//! that try to leave the sandbox, uploads past its limits, owners kept apart, the
//! quota. Each test starts and stops a real server; each live case runs in every
//! isolation that can keep a sandbox alive here.

mod serve_util;

use std::time::Duration;

use hsb_client::api::CreateRequest;
use hybrid_sandbox::{ExecRequest, IsolationRequest, LiveState, Stdin, Termination, TtySize};
use serve_util::*;

fn create_req(iso: &str) -> CreateRequest {
    CreateRequest {
        isolation: Some(iso.parse::<IsolationRequest>().unwrap()),
        ..CreateRequest::default()
    }
}

async fn sh(live: &hybrid_sandbox::Live, script: &str) -> hybrid_sandbox::Outcome {
    live.exec(["sh", "-c", script]).await.unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn agent_scenario_through_the_client() {
    let server = Server::start(&[]);
    let rt = runtime();
    for iso in isolations() {
        rt.block_on(async {
            let c = server.client(None);
            let live = c.create(&create_req(iso)).await.unwrap();
            assert_eq!(live.isolation().to_string(), iso);
            assert_eq!(live.enforcement().isolation.to_string(), iso);
            assert!(!live.decision().reasons.is_empty());
            // Write a script, run it, read the file it wrote.
            live.write_file(
                "/tmp/agent.sh",
                "echo \"run $1\" >> /tmp/log; cat /tmp/log | wc -l",
            )
            .await
            .unwrap();
            let o = live.exec(["sh", "/tmp/agent.sh", "one"]).await.unwrap();
            assert_eq!(
                (o.termination, o.exit_code),
                (Termination::Exited, Some(0)),
                "{iso}: {}",
                text(&o.stderr)
            );
            assert_eq!(text(&o.stdout).trim(), "1");
            assert_eq!(live.read_file("/tmp/log").await.unwrap(), b"run one\n");
            // Run again: the state is kept.
            let o = live.exec(["sh", "/tmp/agent.sh", "two"]).await.unwrap();
            assert_eq!(text(&o.stdout).trim(), "2");
            let names: Vec<String> = live
                .list_dir("/tmp")
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
            assert!(
                names.contains(&"agent.sh".to_string()) && names.contains(&"log".to_string()),
                "{names:?}"
            );
            // env, cwd, stdin, exit code, stderr, exact bytes.
            let mut r = ExecRequest::new([
                "sh",
                "-c",
                "pwd; echo $V; cat; printf '\\377\\000x' >&2; exit 7",
            ]);
            r.env.insert("V".into(), "vee".into());
            r.cwd = Some("/tmp".into());
            r.stdin = Stdin::Bytes(b"in\n".to_vec());
            let o = live.exec_with(r).await.unwrap();
            assert_eq!(o.exit_code, Some(7));
            assert_eq!(text(&o.stdout), "/tmp\nvee\nin\n");
            assert_eq!(o.stderr, b"\xff\x00x");
            // A program that does not exist: the error of the library, exit status 127.
            let e = live.exec(["no-such-program"]).await.unwrap_err();
            assert_eq!(
                (e.kind(), e.exit_status()),
                ("program_not_found", 127),
                "{}",
                e.chain()
            );
            // A background process survives between execs; pause stops it, resume
            // continues it.
            sh(
                &live,
                "(while :; do date +%s%N >> /tmp/ticks; sleep 0.02; done) >/dev/null 2>&1 &",
            )
            .await;
            assert!(
                wait_ticks_after(&live, now_ns()).await,
                "{iso}: the background process is not running"
            );
            live.pause().await.unwrap();
            assert_eq!(live.state(), LiveState::Paused);
            let paused_at = now_ns();
            // Execs and file calls wait for resume.
            assert_eq!(live.exec(["true"]).await.unwrap_err().kind(), "wrong_state");
            assert_eq!(
                live.read_file("/tmp/ticks").await.unwrap_err().kind(),
                "wrong_state"
            );
            tokio::time::sleep(Duration::from_millis(400)).await;
            let resumed_at = now_ns();
            live.resume().await.unwrap();
            assert!(
                wait_ticks_after(&live, resumed_at).await,
                "{iso}: resume did not continue it"
            );
            let ticks = ticks(&live).await;
            let during: Vec<_> = ticks
                .iter()
                .filter(|t| **t > paused_at + 50_000_000 && **t < resumed_at)
                .collect();
            assert!(during.is_empty(), "{iso}: ticks while paused: {during:?}");
            let st = live.stats().await.unwrap();
            assert!(st.processes >= 2 && st.paused_ms > 0.0, "{st:?}");
            // Streaming with stdin and signals, as in-process.
            let mut r = ExecRequest::new([
                "sh",
                "-c",
                "trap 'echo term; exit 9' TERM; read x; echo got $x; while :; do sleep 0.05; done",
            ]);
            r.stdin = Stdin::Stream;
            let mut e = live.exec_streaming(r).await.unwrap();
            let w = e.take_stdin().unwrap();
            let mut out = e.take_output().unwrap();
            w.write(b"hello\n".to_vec()).await.unwrap();
            assert_eq!(out.recv().await.unwrap().data, b"got hello\n");
            e.signal(libc::SIGTERM).unwrap();
            let o = e.wait().await.unwrap();
            assert_eq!(o.exit_code, Some(9));
            // A kill ends the exec, not the sandbox.
            let mut e = live
                .exec_streaming(ExecRequest::new(["sleep", "100"]))
                .await
                .unwrap();
            e.kill_handle().kill();
            assert_eq!(e.wait().await.unwrap().termination, Termination::Killed);
            // A terminal, resized (in both backends).
            {
                let mut r = ExecRequest::new([
                    "sh",
                    "-c",
                    "stty size; read x; stty size; test -t 0 && echo tty",
                ]);
                r.tty = Some(TtySize { rows: 24, cols: 80 });
                r.stdin = Stdin::Stream;
                let mut e = live.exec_streaming(r).await.unwrap();
                let w = e.take_stdin().unwrap();
                let mut out = e.take_output().unwrap();
                let mut seen = Vec::new();
                while !text(&seen).contains("24 80") {
                    seen.extend(out.recv().await.unwrap().data);
                }
                e.resize(TtySize {
                    rows: 40,
                    cols: 100,
                })
                .unwrap();
                w.write(b"\n".to_vec()).await.unwrap();
                while let Some(c) = out.recv().await {
                    seen.extend(c.data);
                }
                let o = e.wait().await.unwrap();
                assert!(
                    text(&seen).contains("40 100") && text(&seen).contains("tty"),
                    "{:?}",
                    text(&seen)
                );
                assert_eq!(o.exit_code, Some(0));
            }
            // Wall time of one exec; the sandbox goes on.
            let mut r = ExecRequest::new(["sleep", "30"]);
            r.limits.wall_time = Some(Duration::from_millis(300));
            assert_eq!(
                live.exec_with(r).await.unwrap().termination,
                Termination::Timeout
            );
            assert_eq!(sh(&live, "echo alive").await.stdout, b"alive\n");
            // Rename, stat, mkdir, remove.
            live.mkdir("/tmp/d/e", true).await.unwrap();
            live.rename("/tmp/log", "/tmp/d/log").await.unwrap();
            assert_eq!(live.stat("/tmp/d/log").await.unwrap().size, 16);
            assert_eq!(live.stat("/tmp/log").await.unwrap_err().kind(), "not_found");
            live.remove("/tmp/d", true).await.unwrap();
            assert_eq!(live.stat("/tmp/d").await.unwrap_err().kind(), "not_found");
            // Destroy; then it is gone.
            live.destroy().await.unwrap();
            assert_eq!(live.state(), LiveState::Destroyed);
            assert_eq!(live.exec(["true"]).await.unwrap_err().kind(), "wrong_state");
            live.destroy().await.unwrap();
            assert!(c.list().await.unwrap().is_empty());
        });
    }
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The times the background loop wrote (the host's clock, read in the sandbox).
async fn ticks(live: &hybrid_sandbox::Live) -> Vec<u128> {
    text(&live.read_file("/tmp/ticks").await.unwrap_or_default())
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits (up to 10 s) for a tick later than `after`.
async fn wait_ticks_after(live: &hybrid_sandbox::Live, after: u128) -> bool {
    for _ in 0..200 {
        if ticks(live).await.iter().any(|t| *t > after) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[test]
fn file_paths_stay_inside_the_sandbox() {
    let server = Server::start(&[]);
    let host = tempfile::tempdir().unwrap();
    let secret = host.path().join("secret");
    std::fs::write(&secret, "host secret").unwrap();
    let rt = runtime();
    for iso in isolations() {
        rt.block_on(async {
            let c = server.client(None);
            let live = c.create(&create_req(iso)).await.unwrap();
            live.write_file("/tmp/own", "sandbox file").await.unwrap();
            // `..` stops at the sandbox's root; absolute escapes are the sandbox's paths.
            for p in ["/tmp/../../../../tmp/own", "/../tmp/own", "//tmp//own"] {
                assert_eq!(live.read_file(p).await.unwrap(), b"sandbox file", "{p}");
            }
            // Symlinks planted by the workload lead nowhere on the host.
            let s = secret.display().to_string();
            let dir = host.path().display().to_string();
            let o = sh(&live, &format!("ln -s {s} /tmp/to-secret; ln -s {dir} /tmp/to-dir; ln -s / /tmp/to-root; ln -s /proc/self/root{s} /tmp/via-proc")).await;
            assert_eq!(o.exit_code, Some(0), "{}", text(&o.stderr));
            for p in ["/tmp/to-secret", "/tmp/to-dir/secret", "/tmp/via-proc", &format!("/proc/1/root{s}"), &s] {
                match live.read_file(p).await {
                    Ok(b) => assert_ne!(b, b"host secret", "{iso}: {p} read the host's file"),
                    Err(e) => assert!(["not_found", "permission_denied", "invalid_path", "not_a_directory"].contains(&e.kind()), "{p}: {}", e.chain()),
                }
            }
            // Writes through them touch nothing on the host.
            for p in ["/tmp/to-secret", "/tmp/to-dir/secret", "/tmp/to-dir/new"] {
                let _ = live.write_file(p, "overwritten").await;
            }
            assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
            assert!(!host.path().join("new").exists());
            // A link to / lists the sandbox's root.
            let names: Vec<String> = live.list_dir("/tmp/to-root").await.unwrap().into_iter().map(|e| e.name).collect();
            assert!(names.contains(&"tmp".to_string()), "{names:?}");
            // Relative paths are refused.
            assert_eq!(live.read_file("tmp/own").await.unwrap_err().kind(), "invalid_path");
            // Through raw HTTP too: a percent-encoded `..` is still the sandbox's.
            let id = c.list().await.unwrap()[0].id.clone();
            let (st, _, body) = server.request("GET", &format!("/v1/sandboxes/{id}/files?path=%2Ftmp%2F..%2F..%2Ftmp%2Fown"), b"");
            assert_eq!((st, body.as_slice()), (200, &b"sandbox file"[..]));
            let (st, v) = server.json("GET", &format!("/v1/sandboxes/{id}/files?path=/tmp/to-secret"), "");
            assert_eq!(st, 404, "{v}");
            live.destroy().await.unwrap();
        });
    }
}

#[test]
fn uploads_beyond_the_limits_are_refused_naming_the_limit() {
    let server = Server::start(&[]);
    for iso in isolations() {
        let body =
            format!(r#"{{"isolation":"{iso}","limits":{{"tmp_size":"2MiB","file_size":"1MiB"}}}}"#);
        let (st, v) = server.json("POST", "/v1/sandboxes", &body);
        assert_eq!(st, 201, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        // One file past file_size: 413, named.
        let big = vec![b'x'; (1 << 20) + 4096];
        let (st, _, b) = server.request(
            "PUT",
            &format!("/v1/sandboxes/{id}/files?path=/tmp/big"),
            &big,
        );
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(st, 413, "{iso}: {v}");
        assert_eq!(v["error"]["kind"], "limit");
        assert_eq!(v["error"]["limit"], "file_size");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("file_size"),
            "{v}"
        );
        // Files that together pass tmp_size: 507, named.
        let part = vec![b'y'; 900 << 10];
        let mut last = (0, serde_json::Value::Null);
        for i in 0..4 {
            let (st, _, b) = server.request(
                "PUT",
                &format!("/v1/sandboxes/{id}/files?path=/tmp/part{i}"),
                &part,
            );
            last = (st, serde_json::from_slice(&b).unwrap());
            if st != 200 {
                break;
            }
        }
        assert_eq!(last.0, 507, "{iso}: {}", last.1);
        assert_eq!(last.1["error"]["limit"], "tmp_size");
        // Through the client: the library's error, the limit named.
        let rt = runtime();
        rt.block_on(async {
            let live = server.client(None).attach(&id).await.unwrap();
            for i in 0..4 {
                let _ = live.remove(&format!("/tmp/part{i}"), false).await;
            }
            let e = live
                .write_file("/tmp/big", vec![0u8; 3 << 20])
                .await
                .unwrap_err();
            assert_eq!(e.kind(), "limit", "{}", e.chain());
            assert!(e.chain().contains("file_size"), "{}", e.chain());
            let src: hybrid_sandbox::ByteStream =
                Box::pin(std::io::Cursor::new(vec![1u8; 3 << 20]));
            let e = live
                .write_file_stream("/tmp/big", src, 0o644)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), "limit", "{}", e.chain());
            // The sandbox goes on.
            live.write_file("/tmp/small", "ok").await.unwrap();
            assert_eq!(live.read_file("/tmp/small").await.unwrap(), b"ok");
        });
        let (st, _) = server.json("DELETE", &format!("/v1/sandboxes/{id}"), "");
        assert_eq!(st, 204);
    }
}

#[test]
fn another_owners_sandbox_is_404_and_tokens_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(
        dir.path(),
        "alice-token-0123456789 alice\nbob-token-0123456789abc bob\n",
    );
    let server = Server::start(&["--token-file", &tf]);
    let rt = runtime();
    rt.block_on(async {
        let alice = server.client(Some("alice-token-0123456789"));
        let bob = server.client(Some("bob-token-0123456789abc"));
        let uid = server.client(None);
        let live = alice.create(&CreateRequest::default()).await.unwrap();
        let id = alice.list().await.unwrap()[0].id.clone();
        for other in [&bob, &uid] {
            assert!(other.list().await.unwrap().is_empty());
            for e in [
                other.info(&id).await.unwrap_err(),
                other.destroy(&id).await.unwrap_err(),
                other.pause(&id).await.unwrap_err(),
                other.attach(&id).await.unwrap_err(),
            ] {
                assert_eq!(e.kind(), "no_such_sandbox", "{}", e.chain());
                assert!(matches!(e, hsb_client::ClientError::Api { status: 404, .. }));
            }
        }
        // Exec and files of another owner's sandbox: 404 on the raw API too.
        for (m, p, b) in [
            ("POST", format!("/v1/sandboxes/{id}/exec"), r#"{"argv":["true"]}"#),
            ("GET", format!("/v1/sandboxes/{id}/files?path=/tmp"), ""),
            ("PUT", format!("/v1/sandboxes/{id}/files?path=/tmp/x"), "x"),
            ("DELETE", format!("/v1/sandboxes/{id}"), ""),
        ] {
            let (st, v) = server.json(m, &p, b);
            assert_eq!(st, 404, "{m} {p}: {v}");
        }
        // A bad token is 401, not another owner.
        let (st, _, head) = {
            let r = "GET /v1/sandboxes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope-nope-nope-nope\r\nConnection: close\r\n\r\n";
            let (s, h, b) = server.raw(r.as_bytes());
            (s, b, h)
        };
        assert_eq!(st, 401);
        assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{head}");
        // Alice still has it.
        assert_eq!(live.exec(["true"]).await.unwrap().exit_code, Some(0));
        live.destroy().await.unwrap();
    });
}

#[test]
fn unix_peers_are_owners_by_uid() {
    if !root() {
        return;
    }
    let server = Server::start(&["--socket-mode", "666"]);
    let c = server.client(None);
    let rt = runtime();
    let info = rt
        .block_on(c.create_detached(&CreateRequest::default()))
        .unwrap();
    // Another uid on the same socket sees nothing of root's, and cannot reach it.
    let copy = server.dir.path().join("hsb-copy");
    std::fs::copy(HSB, &copy).unwrap();
    let as_nobody = |args: &[&str]| {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(&copy)
            .args(args)
            .env("HSB_SERVER", &server.url)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let o = as_nobody(&["sandbox", "ls", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
    let o = as_nobody(&["sandbox", "exec", &info.id, "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no sandbox"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = as_nobody(&["sandbox", "rm", &info.id]);
    assert_eq!(o.status.code(), Some(125));
    // Nobody's own sandbox is nobody's.
    let o = as_nobody(&["sandbox", "create"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rt.block_on(c.list()).unwrap().len(), 1);
    // A socket closed to others (the default 600) refuses them outright.
    let closed = Server::start(&[]);
    let o = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(&copy)
            .args(["sandbox", "ls"])
            .env("HSB_SERVER", &closed.url)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot reach the server"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn tcp_needs_tokens_and_the_quota_is_kept() {
    // No token file: refused before it listens.
    let o = std::process::Command::new(HSB)
        .args(["serve", "--listen", "tcp:127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--token-file"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A token file others can read: refused.
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path(), "some-token-0123456789\n");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let o = std::process::Command::new(HSB)
        .args(["serve", "--listen", "tcp:127.0.0.1:0", "--token-file", &tf])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("chmod 600"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let server = Server::start_tcp(
        "t1-token-0123456789 one\nt2-token-0123456789 two\n",
        &["--quota", "2"],
    );
    let rt = runtime();
    rt.block_on(async {
        let anon = server.client(None);
        let e = anon.list().await.unwrap_err();
        assert!(
            matches!(e, hsb_client::ClientError::Api { status: 401, .. }),
            "{}",
            e.chain()
        );
        let one = server.client(Some("t1-token-0123456789"));
        let two = server.client(Some("t2-token-0123456789"));
        let a = one
            .create_detached(&CreateRequest::default())
            .await
            .unwrap();
        let _b = one
            .create_detached(&CreateRequest::default())
            .await
            .unwrap();
        let e = one
            .create_detached(&CreateRequest::default())
            .await
            .unwrap_err();
        assert!(
            matches!(e, hsb_client::ClientError::Api { status: 429, .. }),
            "{}",
            e.chain()
        );
        assert_eq!(e.kind(), "quota");
        // The quota is per token.
        let c = two
            .create_detached(&CreateRequest::default())
            .await
            .unwrap();
        one.destroy(&a.id).await.unwrap();
        one.create_detached(&CreateRequest::default())
            .await
            .unwrap();
        // Exec over TCP.
        let live = two.attach(&c.id).await.unwrap();
        assert_eq!(live.exec(["echo", "tcp"]).await.unwrap().stdout, b"tcp\n");
    });
}

/// `tmpfs` and `cpus` in a create request: an in-memory filesystem of that size in the
/// sandbox (a write past it fails inside, the sandbox goes on), the CPU quota in the
/// report; a bad tmpfs is a 400 naming it, never a 5xx.
#[test]
fn tmpfs_and_cpus_in_a_create_request() {
    let server = Server::start(&[]);
    for iso in isolations() {
        let cpus = if iso == "microvm" { "1" } else { "0.5" };
        let body = format!(
            r#"{{"isolation":"{iso}","tmpfs":[{{"target":"/scratch","size":"1MiB","mode":448}}],"limits":{{"cpus":{cpus}}}}}"#
        );
        let (st, v) = server.json("POST", "/v1/sandboxes", &body);
        assert_eq!(st, 201, "{iso}: {v}");
        assert!(
            v["enforcement"]["limits"]["details"]["cpus"].is_string(),
            "{iso}: {v}"
        );
        let id = v["id"].as_str().unwrap().to_string();
        let exec = r#"{"argv":["sh","-c","stat -c %a /scratch; dd if=/dev/zero of=/scratch/f bs=4096 count=512 2>/dev/null; echo dd=$?"]}"#;
        let (st, v) = server.json("POST", &format!("/v1/sandboxes/{id}/exec"), exec);
        assert_eq!(st, 200, "{iso}: {v}");
        let out = v["stdout"].as_str().unwrap_or_default().to_string();
        assert!(
            out.starts_with("700\n") && out.contains("dd=1"),
            "{iso}: {v}"
        );
        let (st, _) = server.json("DELETE", &format!("/v1/sandboxes/{id}"), "");
        assert_eq!(st, 204);
        // A tmpfs at /tmp replaces the sandbox's own (Podman's --read-only asks for one).
        let body =
            format!(r#"{{"isolation":"{iso}","tmpfs":[{{"target":"/tmp","size":"1MiB"}}]}}"#);
        let (st, v) = server.json("POST", "/v1/sandboxes", &body);
        assert_eq!(st, 201, "{iso}: {v}");
        let id = v["id"].as_str().unwrap().to_string();
        let exec = r#"{"argv":["sh","-c","dd if=/dev/zero of=/tmp/f bs=4096 count=512 2>/dev/null; echo dd=$?"]}"#;
        let (st, v) = server.json("POST", &format!("/v1/sandboxes/{id}/exec"), exec);
        assert_eq!(st, 200, "{iso}: {v}");
        assert_eq!(
            v["stdout"], "dd=1\n",
            "{iso}: the 1 MiB /tmp holds 2 MiB: {v}"
        );
        let (st, _) = server.json("DELETE", &format!("/v1/sandboxes/{id}"), "");
        assert_eq!(st, 204);
        for bad in [
            r#"[{"target":"relative"}]"#,
            r#"[{"target":"/x","mode":99999}]"#,
            r#"[{"target":"/x","size":0}]"#,
            r#"[{"target":"/x","extra":1}]"#,
        ] {
            let body = format!(r#"{{"isolation":"{iso}","tmpfs":{bad}}}"#);
            let (st, v) = server.json("POST", "/v1/sandboxes", &body);
            assert_eq!(st, 400, "{iso} {bad}: {v}");
        }
    }
}
