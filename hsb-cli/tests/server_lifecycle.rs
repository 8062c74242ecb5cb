//! Stopping `hsb serve` destroys every sandbox it holds: on SIGTERM at once, on
//! `kill -9` through the sandboxes' death signal; nothing remains (process, mount,
//! cgroup, temporary file). 200 live sandboxes at once with interleaved execs.

mod serve_util;

use std::sync::Arc;

use hsb_client::api::CreateRequest;
use hybrid_sandbox::IsolationRequest;
use serve_util::*;

fn leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Creates `n` sandboxes, each with a background `sleep MARKER`; returns their ids.
fn populate(server: &Server, iso: &str, n: usize, marker: &str) -> Vec<String> {
    let rt = runtime();
    rt.block_on(async {
        let c = server.client(None);
        let mut ids = Vec::new();
        for _ in 0..n {
            let info = c
                .create_detached(&CreateRequest {
                    isolation: Some(iso.parse::<IsolationRequest>().unwrap()),
                    ..CreateRequest::default()
                })
                .await
                .unwrap();
            let live = c.attach(&info.id).await.unwrap();
            let o = live
                .exec(["sh", "-c", &format!("sleep {marker} >/dev/null 2>&1 &")])
                .await
                .unwrap();
            assert_eq!(o.exit_code, Some(0));
            ids.push(info.id);
        }
        ids
    })
}

fn stop_leaves_nothing(signal: i32) {
    for iso in isolations() {
        let mounts = mounts();
        let mut server = Server::start(&[]);
        let pid = server.pid();
        let marker = format!(
            "{}{}",
            900_000 + signal * 1000,
            if iso == "container" { 1 } else { 2 }
        );
        let ids = populate(&server, iso, 3, &marker);
        assert_eq!(ids.len(), 3);
        let cgroups = cgroups_of(pid);
        let kids = descendants(pid);
        if iso == "container" {
            assert!(
                !cgroups.is_empty(),
                "the server's sandboxes have no cgroups"
            );
            assert!(processes_in(&cgroups) >= 6, "{}", processes_in(&cgroups));
            // The background sleeps may still be between fork and exec (their
            // cmdline unreadable for an instant): wait for all three.
            assert!(
                eventually(20.0, || host_processes_with(&format!("sleep {marker}"))
                    .len()
                    == 3),
                "{:?}",
                host_processes_with(&format!("sleep {marker}"))
            );
        }
        let st = server.stop(signal);
        if signal == libc::SIGTERM {
            assert!(st.success(), "{st}");
            assert!(
                !server.socket.as_ref().unwrap().exists(),
                "the socket was left"
            );
        }
        assert!(
            eventually(20.0, || host_processes_with(&format!("sleep {marker}"))
                .is_empty()),
            "{iso}: background processes outlived the server"
        );
        assert!(
            eventually(20.0, || kids
                .iter()
                .all(|k| !std::path::Path::new(&format!("/proc/{k}")).exists())),
            "{iso}: processes the server started are alive"
        );
        assert_eq!(processes_in(&cgroups), 0);
        assert_eq!(
            mounts_added(&mounts, server.dir.path()),
            Vec::<String>::new(),
            "{iso}: mounts were left"
        );
        assert!(
            leftovers(&server.tmp).is_empty(),
            "{iso}: left in TMPDIR: {:?}",
            leftovers(&server.tmp)
        );
        if signal == libc::SIGTERM {
            assert!(
                cgroups.iter().all(|c| !c.exists()),
                "{cgroups:?} left behind"
            );
        } else {
            // A killed server cannot remove its empty cgroups: the next one sweeps them,
            // and takes over the stale socket.
            let next = Server::spawn(
                tempfile::tempdir().unwrap(),
                &[
                    "--listen",
                    &format!("unix:{}", server.socket.as_ref().unwrap().display()),
                ],
                server.socket.clone(),
            );
            populate(&next, iso, 1, "1");
            assert!(
                eventually(10.0, || cgroups.iter().all(|c| !c.exists())),
                "{cgroups:?} left behind"
            );
        }
    }
}

#[test]
fn sigterm_destroys_every_sandbox() {
    stop_leaves_nothing(libc::SIGTERM);
}

#[test]
fn kill_9_of_the_server_leaves_nothing() {
    stop_leaves_nothing(libc::SIGKILL);
}

#[test]
fn two_hundred_live_sandboxes_with_interleaved_execs() {
    for iso in isolations() {
        let mounts = mounts();
        let mut server = Server::start(&["--quota", "200"]);
        let pid = server.pid();
        let rt = runtime();
        rt.block_on(async {
            let c = server.client(None);
            let sem = Arc::new(tokio::sync::Semaphore::new(8));
            let mut jobs = Vec::new();
            for _ in 0..200 {
                let (c, sem) = (c.clone(), sem.clone());
                let iso = iso.to_string();
                jobs.push(tokio::spawn(async move {
                    let _p = sem.acquire().await.unwrap();
                    c.create_detached(&CreateRequest {
                        isolation: Some(iso.parse::<IsolationRequest>().unwrap()),
                        ..CreateRequest::default()
                    })
                    .await
                    .unwrap()
                    .id
                }));
            }
            let mut ids = Vec::new();
            for j in jobs {
                ids.push(j.await.unwrap());
            }
            // The 201st is over the quota.
            let e = c
                .create_detached(&CreateRequest::default())
                .await
                .unwrap_err();
            assert_eq!(e.kind(), "quota");
            let lives: Vec<_> = {
                let mut v = Vec::new();
                for id in &ids {
                    v.push(c.attach(id).await.unwrap());
                }
                v
            };
            // Two rounds of execs and files, interleaved across all sandboxes.
            for round in 0..2 {
                let mut jobs = Vec::new();
                for (i, live) in lives.iter().enumerate() {
                    let (live, sem) = (live.clone(), sem.clone());
                    jobs.push(tokio::spawn(async move {
                        let _p = sem.acquire().await.unwrap();
                        let o = live
                            .exec([
                                "sh",
                                "-c",
                                &format!("echo {i}-{round} >> /tmp/n; cat /tmp/n | wc -l"),
                            ])
                            .await
                            .unwrap();
                        assert_eq!(
                            String::from_utf8_lossy(&o.stdout).trim(),
                            (round + 1).to_string()
                        );
                        live.write_file("/tmp/f", format!("{i}")).await.unwrap();
                        assert_eq!(
                            live.read_file("/tmp/f").await.unwrap(),
                            format!("{i}").as_bytes()
                        );
                    }));
                }
                for j in jobs {
                    j.await.unwrap();
                }
            }
            assert_eq!(c.list().await.unwrap().len(), 200);
            // Half destroyed by the client; the rest by the server's stop.
            for id in &ids[..100] {
                c.destroy(id).await.unwrap();
            }
            assert_eq!(c.list().await.unwrap().len(), 100);
        });
        let cgroups = cgroups_of(pid);
        let st = server.stop(libc::SIGTERM);
        assert!(st.success());
        assert_eq!(processes_in(&cgroups), 0, "{iso}");
        assert!(cgroups.iter().all(|c| !c.exists()), "{iso}: cgroups left");
        assert_eq!(
            mounts_added(&mounts, server.dir.path()),
            Vec::<String>::new(),
            "{iso}: mounts were left"
        );
        assert!(
            leftovers(&server.tmp).is_empty(),
            "{iso}: {:?}",
            leftovers(&server.tmp)
        );
    }
}
