//! Snapshots on disk: a live micro-VM paused to disk (its memory freed from the host)
//! and resumed from it, going on where it was.

use std::time::{Duration, Instant};

use hsb_tests::*;
use hybrid_sandbox::{IsolationRequest, Live, LiveOptions};

/// Whether the micro-VM runs here; the tests of this file run one at a time.
fn ready() -> Option<std::sync::MutexGuard<'static, ()>> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if !backend_ready(IsolationRequest::MicroVm) {
        return None;
    }
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

async fn create(w: Workload) -> Live {
    sandbox()
        .create(w, LiveOptions::default())
        .await
        .unwrap_or_else(|e| panic!("create: {}", e.chain()))
}

async fn sh(live: &Live, script: &str) -> String {
    let o = live
        .exec(["busybox", "sh", "-c", script])
        .await
        .unwrap_or_else(|e| panic!("exec {script}: {}", e.chain()));
    assert_eq!(o.exit_code, Some(0), "{script}: {o:?}");
    stdout(&o)
}

/// A Python process that keeps a counter (each line written to the FIFO /tmp/in adds
/// to it; /tmp/out holds the count) and 48 MiB of its own memory filled with a pattern
/// whose hash it writes beside the count.
const COUNTER: &str = r#"
import hashlib, os
n = 0
big = bytearray(b"\xa5\x5a" * (24 << 20))
r = os.open("/tmp/in", os.O_RDONLY | os.O_NONBLOCK)
w = os.open("/tmp/in", os.O_WRONLY)
os.set_blocking(r, True)
f = os.fdopen(r)
open("/tmp/ready", "w").close()
while True:
    n += int(f.readline())
    with open("/tmp/out.tmp", "w") as o:
        o.write("%d %s" % (n, hashlib.sha256(big).hexdigest()[:16]))
    os.rename("/tmp/out.tmp", "/tmp/out")
"#;

async fn feed(live: &Live, add: u32) -> (u64, String) {
    let before = live.read_file("/tmp/out").await.ok();
    sh(live, &format!("echo {add} > /tmp/in")).await;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(b) = live.read_file("/tmp/out").await {
            if Some(&b) != before.as_ref() {
                let s = String::from_utf8(b).unwrap();
                let (n, h) = s.split_once(' ').unwrap();
                return (n.parse().unwrap(), h.to_string());
            }
        }
        assert!(Instant::now() < until, "the counter never answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn counter_sandbox() -> Live {
    let live = create(Workload::default().isolation(IsolationRequest::MicroVm)).await;
    live.write_file("/tmp/counter.py", COUNTER).await.unwrap();
    sh(
        &live,
        "busybox mkfifo /tmp/in && (python3 /tmp/counter.py >/dev/null 2>&1 &) && \
         while [ ! -e /tmp/ready ]; do busybox sleep 0.01; done",
    )
    .await;
    live
}

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn pause_to_disk_frees_the_memory_and_resumes_where_it_was() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let live = counter_sandbox().await;
        let (n, hash) = feed(&live, 5).await;
        assert_eq!(n, 5);
        live.write_file("/tmp/file", "kept").await.unwrap();
        let before = rss();
        let snap = live
            .pause_to_disk(dir.path())
            .await
            .unwrap_or_else(|e| panic!("pause to disk: {}", e.chain()));
        assert_eq!(live.state(), hybrid_sandbox::LiveState::Destroyed);
        let after = rss();
        assert!(
            after + (40 << 20) < before,
            "the sandbox's memory is freed from the host (RSS {before} -> {after})"
        );
        // Nothing named is left in the directory (the memory file is unnamed).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(snap.memory_bytes() >= 48 << 20, "{}", snap.memory_bytes());

        let resumed = snap
            .start()
            .await
            .unwrap_or_else(|e| panic!("resume: {}", e.chain()));
        assert_eq!(resumed.read_file("/tmp/file").await.unwrap(), b"kept");
        let (n, h) = feed(&resumed, 10).await;
        assert_eq!(n, 15, "the counter goes on where it was");
        assert_eq!(h, hash, "its 48 MiB of memory are the same");
        // Resumed again from the same file: a second copy, from the same point.
        let again = snap.start().await.unwrap();
        assert_eq!(feed(&again, 1).await.0, 6);
        assert_eq!(feed(&resumed, 1).await.0, 16);
        drop(snap);
        resumed.destroy().await.unwrap();
        again.destroy().await.unwrap();
    });
}

#[test]
fn pause_to_disk_into_a_missing_directory_fails_and_the_sandbox_goes_on() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = counter_sandbox().await;
        assert_eq!(feed(&live, 2).await.0, 2);
        let e = live
            .pause_to_disk("/nonexistent/hsb-dir")
            .await
            .expect_err("no such directory");
        assert!(e.chain().contains("/nonexistent/hsb-dir"), "{}", e.chain());
        assert_eq!(feed(&live, 3).await.0, 5, "the sandbox goes on");
    });
}
