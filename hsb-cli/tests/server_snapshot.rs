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

#[test]
fn snapshot_and_create_from_it_through_the_cli_and_the_api() {
    let server = Server::start(&[]);
    let isos = isolations();
    if !isos.contains(&"microvm") {
        return;
    }
    let o = server.hsb(&["sandbox", "create", "--isolation", "microvm"]);
    assert!(o.status.success(), "{}", err(&o));
    let id = out(&o).trim().to_string();
    let o = server.hsb(&[
        "sandbox",
        "exec",
        &id,
        "--",
        "busybox",
        "sh",
        "-c",
        "echo parent > /tmp/state",
    ]);
    assert!(o.status.success(), "{}", err(&o));

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
