//! 200 live containers at once, with interleaved execs and files, leave the caller's
//! fds, children, mounts, cgroups and connect supervisor threads as they were. In a file of its own: it measures the
//! whole test process, so no other test may run beside it.

use std::time::Duration;

use hsb_tests::*;
use hybrid_sandbox::{Live, LiveOptions};

async fn create(opts: LiveOptions) -> Live {
    sandbox()
        .create(Workload::default(), opts)
        .await
        .unwrap_or_else(|e| panic!("create: {}", e.chain()))
}

async fn sh_out(live: &Live, script: &str) -> Outcome {
    live.exec(["sh", "-c", script])
        .await
        .unwrap_or_else(|e| panic!("exec {script}: {}", e.chain()))
}

/// What the caller holds: fds, children, mounts, its cgroups, and the threads of the
/// sandboxes' connect supervisors.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    fds: usize,
    children: usize,
    mounts: usize,
    cgroups: usize,
    supervisors: usize,
}

/// Threads of this process named as a sandbox's connect supervisor (one per sandbox).
fn supervisor_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "hsb-connect")
        })
        .count()
}

pub(crate) fn cgroups_of(pid: u32) -> Vec<std::path::PathBuf> {
    ["memory", "pids", "cpuacct", "freezer", ""]
        .iter()
        .filter_map(|c| std::fs::read_dir(format!("/sys/fs/cgroup/{c}/hsb")).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{pid}-"))
        })
        .map(|e| e.path())
        .collect()
}

fn children_of(pid: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, r)| r.split_whitespace().nth(1).map(String::from))
                })
                .is_some_and(|ppid| ppid == pid.to_string())
        })
        .count()
}

fn footprint() -> Footprint {
    let me = std::process::id();
    Footprint {
        fds: std::fs::read_dir("/proc/self/fd").unwrap().count(),
        children: children_of(me),
        mounts: std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .count(),
        cgroups: cgroups_of(me).len(),
        supervisors: supervisor_threads(),
    }
}

fn settle(before: &Footprint) -> Footprint {
    let mut now = footprint();
    for _ in 0..1500 {
        if now == *before {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        now = footprint();
    }
    now
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn two_hundred_live_sandboxes_with_interleaved_execs_leave_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let n: usize = std::env::var("HSB_LIVE_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let rt = runtime();
    // Warm up (first-use allocations are not leaks).
    rt.block_on(async {
        let live = create(LiveOptions::default()).await;
        sh_out(&live, "true").await;
        live.write_file("/tmp/x", "x").await.unwrap();
        live.destroy().await.unwrap();
    });
    let before = settle(&footprint());
    rt.block_on(async {
        let mut all = Vec::new();
        for chunk in 0..n / 20 {
            let made: Vec<_> = (0..20)
                .map(|_| tokio::spawn(create(LiveOptions::default())))
                .collect();
            for m in made {
                all.push(m.await.unwrap());
            }
            let _ = chunk;
        }
        assert_eq!(all.len(), n / 20 * 20);
        // Two rounds of execs, interleaved across every sandbox, with a file each.
        for round in 0..2 {
            let tasks: Vec<_> = all
                .iter()
                .enumerate()
                .map(|(i, live)| {
                    let live = live.clone();
                    tokio::spawn(async move {
                        if round == 0 {
                            live.write_file("/tmp/id", i.to_string()).await.unwrap();
                        }
                        let o = live.exec(["sh", "-c", "cat /tmp/id"]).await.unwrap();
                        assert_eq!(stdout(&o), i.to_string());
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
        // Each sandbox's connect supervisor lives as long as the sandbox, across execs.
        assert_eq!(supervisor_threads(), before.supervisors + all.len());
        // Half destroyed explicitly, half by dropping the last handle.
        for (i, live) in all.into_iter().enumerate() {
            if i % 2 == 0 {
                live.destroy().await.unwrap();
            }
        }
    });
    let after = settle(&before);
    assert_eq!(after, before, "something leaked");
}
