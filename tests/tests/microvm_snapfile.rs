//! Snapshots on disk: a snapshot saved to a file and loaded in a new process (this
//! test binary run again), where a python3 counter goes on and clones diverge; files
//! from another version, truncated, corrupt or crafted are refused with an error
//! naming the file and the problem, never a crash; a host file replaced since the save
//! is named at the start; a live micro-VM paused to disk (its memory freed from the
//! host) and resumed from it, going on where it was. A container's snapshot file
//! keeps its writable layer.

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
    // (The big counter writes "count hash"; the small one "count urandom".)
    let before = live.read_file("/tmp/out").await.ok();
    live_sh(live, &format!("echo {add} > /tmp/in")).await;
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
    let live = live_create(Workload::default().isolation(IsolationRequest::MicroVm)).await;
    live.write_file("/tmp/counter.py", COUNTER).await.unwrap();
    live_sh(
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

/// A sandbox's lifetime counts from its creation across a pause to disk (paused time
/// included, as for a pause in memory): one whose lifetime passed while it was on disk
/// ends as soon as it is resumed, where a fresh lifetime would keep it for seconds.
#[test]
fn pause_to_disk_keeps_the_lifetime_of_the_sandbox() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let lifetime = Duration::from_secs(3);
        let create = || async {
            sandbox()
                .create(
                    Workload::default().isolation(IsolationRequest::MicroVm),
                    LiveOptions {
                        lifetime: Some(lifetime),
                        ..LiveOptions::default()
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("create: {}", e.chain()))
        };
        let live = create().await;
        let created = Instant::now();
        live.write_file("/tmp/file", "kept").await.unwrap();
        let snap = live
            .pause_to_disk(dir.path())
            .await
            .unwrap_or_else(|e| panic!("pause to disk: {}", e.chain()));
        tokio::time::sleep((created + lifetime + Duration::from_millis(200)) - Instant::now())
            .await;
        let resumed = snap
            .start()
            .await
            .unwrap_or_else(|e| panic!("resume: {}", e.chain()));
        let until = Instant::now() + lifetime / 2;
        while resumed.ended().is_none() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            resumed.ended(),
            Some(hybrid_sandbox::EndReason::Lifetime),
            "a sandbox resumed past its lifetime ends at once"
        );
        // A fork (a new sandbox) gets a lifetime of its own, from its start.
        let live = create().await;
        let snap = live.snapshot().await.unwrap();
        live.destroy().await.unwrap();
        tokio::time::sleep(lifetime + Duration::from_millis(200)).await;
        let fork = snap.start().await.unwrap();
        assert_eq!(fork.exec(["true"]).await.unwrap().exit_code, Some(0));
        assert_eq!(fork.ended(), None);
        fork.destroy().await.unwrap();
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

/// A small counter (no big buffer): each line written to /tmp/in adds to it.
const SMALL_COUNTER: &str = r#"
import os
n = 0
r = os.open("/tmp/in", os.O_RDONLY | os.O_NONBLOCK)
w = os.open("/tmp/in", os.O_WRONLY)
os.set_blocking(r, True)
f = os.fdopen(r)
open("/tmp/ready", "w").close()
while True:
    n += int(f.readline())
    with open("/tmp/out.tmp", "w") as o:
        o.write("%d %s" % (n, os.urandom(8).hex()))
    os.rename("/tmp/out.tmp", "/tmp/out")
"#;

/// A micro-VM of 64 MiB (its snapshot files are 64 MiB sparse files).
fn vm() -> Workload {
    let mut w = Workload::default().isolation(IsolationRequest::MicroVm);
    w.limits.memory = Some(hybrid_sandbox::ByteSize::mib(64));
    w
}

async fn small_counter(w: Workload) -> Live {
    let live = live_create(w).await;
    live.write_file("/tmp/counter.py", SMALL_COUNTER)
        .await
        .unwrap();
    live_sh(
        &live,
        "busybox mkfifo /tmp/in && (python3 /tmp/counter.py >/dev/null 2>&1 &) && \
         while [ ! -e /tmp/ready ]; do busybox sleep 0.01; done",
    )
    .await;
    live
}

async fn load(
    path: &std::path::Path,
    w: Workload,
) -> Result<hybrid_sandbox::Snapshot, hybrid_sandbox::Error> {
    sandbox()
        .load_snapshot(path, w, LiveOptions::default())
        .await
}

/// Saves a counter's snapshot (count 5, /tmp/file "saved") to `path`; the sandbox goes on.
async fn saved_counter(path: &std::path::Path) -> Live {
    let live = small_counter(vm()).await;
    assert_eq!(feed(&live, 5).await.0, 5);
    live.write_file("/tmp/file", "saved").await.unwrap();
    let snap = live.snapshot().await.unwrap();
    let n = snap
        .save(path)
        .await
        .unwrap_or_else(|e| panic!("save: {}", e.chain()));
    assert!(n > 0);
    live
}

/// The child half of `save_and_load_in_a_new_process`: run by the parent as a new
/// process of this binary with HSB_TEST_SNAPFILE set; does nothing otherwise.
#[test]
fn child_loads_the_snapshot_file() {
    let Ok(path) = std::env::var("HSB_TEST_SNAPFILE") else {
        return;
    };
    runtime().block_on(async {
        let snap = load(std::path::Path::new(&path), vm())
            .await
            .unwrap_or_else(|e| panic!("load: {}", e.chain()));
        let a = snap
            .start()
            .await
            .unwrap_or_else(|e| panic!("start: {}", e.chain()));
        let b = snap
            .start()
            .await
            .unwrap_or_else(|e| panic!("start: {}", e.chain()));
        let file = String::from_utf8(a.read_file("/tmp/file").await.unwrap()).unwrap();
        let (na, ua) = feed(&a, 10).await;
        let (nb, ub) = feed(&b, 100).await;
        a.write_file("/tmp/file", "a").await.unwrap();
        let fb = String::from_utf8(b.read_file("/tmp/file").await.unwrap()).unwrap();
        // A sandbox started from a file is saved again (its memory: the loaded file
        // beneath the pages it changed) and that file loads and goes on from it.
        let again = std::path::Path::new(&path).with_extension("again");
        a.snapshot().await.unwrap().save(&again).await.unwrap();
        let c = load(&again, vm()).await.unwrap();
        c.verify()
            .await
            .unwrap_or_else(|e| panic!("verify: {}", e.chain()));
        let c = c.start().await.unwrap();
        let fa = String::from_utf8(c.read_file("/tmp/file").await.unwrap()).unwrap();
        let (nc, _) = feed(&c, 1).await;
        let pid = std::process::id();
        println!(
            "CHILD pid={pid} file={file} a={na} b={nb} fb={fb} same_urandom={} again={nc} fa={fa}",
            ua == ub
        );
    });
}

#[test]
fn save_and_load_in_a_new_process() {
    let Some(_serial) = ready() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("counter.hsbsnap");
    let parent = runtime().block_on(saved_counter(&path));
    // The parent goes on, its own.
    runtime().block_on(async { assert_eq!(feed(&parent, 1).await.0, 6) });
    if let Ok(keep) = std::env::var("HSB_TEST_KEEP_SNAPFILE") {
        std::fs::copy(&path, keep).unwrap();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_loads_the_snapshot_file",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HSB_TEST_SNAPFILE", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("CHILD ").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no result from the child: {stdout}"));
    assert!(
        !line.contains(&format!("pid={} ", std::process::id())),
        "a new process: {line}"
    );
    // Each clone goes on from the count and the file at the save, then diverges.
    assert!(
        line.contains("file=saved a=15 b=105 fb=saved same_urandom=false again=16 fa=a"),
        "{line}"
    );
    runtime().block_on(async {
        assert_eq!(feed(&parent, 1).await.0, 7, "the parent is untouched");
        // Loaded in this process too.
        let snap = load(&path, vm()).await.unwrap();
        let c = snap.start().await.unwrap();
        assert_eq!(feed(&c, 2).await.0, 7);
    });
}

/// The error of loading `path` (or of the first start from it).
async fn load_error(path: &std::path::Path) -> String {
    load_error_with(path, vm()).await
}

async fn load_error_with(path: &std::path::Path, w: Workload) -> String {
    match load(path, w).await {
        Err(e) => e.chain(),
        Ok(s) => match s.start().await {
            Err(e) => e.chain(),
            Ok(_) => panic!("{} loaded and started", path.display()),
        },
    }
}

/// A CRC-32 (IEEE), as the file's header uses.
fn crc32(b: &[u8]) -> u32 {
    let mut c = !0u32;
    for &x in b {
        c ^= u32::from(x);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn read_at(p: &std::path::Path, at: u64, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(p).unwrap(), &mut b, at)
        .unwrap();
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Rewrites the header's checksum after an edit of the header.
fn fix_header(b: &mut [u8]) {
    let c = crc32(&b[16..4096]);
    b[12..16].copy_from_slice(&c.to_le_bytes());
}

#[test]
fn truncated_corrupt_and_foreign_files_are_refused_by_name() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.hsbsnap");
        let live = saved_counter(&good).await;
        live.destroy().await.unwrap();
        let head = read_at(&good, 0, 4096);
        let (state_off, state_len) = (u64_at(&head, 88), u64_at(&head, 96));
        let (runs_off, runs_len) = (u64_at(&head, 104), u64_at(&head, 112));
        let len = std::fs::metadata(&good).unwrap().len();
        assert_eq!(runs_off + runs_len, len);
        let first_run = u64_at(&read_at(&good, runs_off, 8), 0);
        // A copy of the good file, edited by `edit`.
        let case = |name: &str, edit: &dyn Fn(&std::fs::File)| {
            let p = dir.path().join(name);
            std::fs::copy(&good, &p).unwrap();
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            edit(&f);
            p
        };
        let good_ref = &good;
        let flip = |at: u64, bit: u8| {
            move |f: &std::fs::File| {
                let mut b = read_at(good_ref, at, 1);
                b[0] ^= bit;
                std::os::unix::fs::FileExt::write_all_at(f, &b, at).unwrap();
            }
        };
        let header = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut h = head.clone();
            edit(&mut h);
            fix_header(&mut h);
            move |f: &std::fs::File| std::os::unix::fs::FileExt::write_all_at(f, &h, 0).unwrap()
        };
        let mut cases: Vec<(std::path::PathBuf, &str)> = Vec::new();
        cases.push((
            case("truncated", &|f| f.set_len(len - 100).unwrap()),
            "truncated",
        ));
        cases.push((
            case("header-only", &|f| f.set_len(4096).unwrap()),
            "truncated",
        ));
        cases.push((
            case("tiny", &|f| f.set_len(10).unwrap()),
            "not a snapshot file",
        ));
        cases.push((
            case("empty", &|f| f.set_len(0).unwrap()),
            "not a snapshot file",
        ));
        cases.push((
            case("magic", &|f| {
                std::os::unix::fs::FileExt::write_all_at(f, b"NOTSNAP\0", 0).unwrap()
            }),
            "not a snapshot file",
        ));
        cases.push((
            case(
                "version",
                &header(&|h| h[8..12].copy_from_slice(&2u32.to_le_bytes())),
            ),
            "format version 2",
        ));
        cases.push((
            case(
                "build",
                &header(&|h| h[16..24].copy_from_slice(b"hsb 9.9 ")),
            ),
            "saved by another build",
        ));
        cases.push((case("header", &flip(200, 1)), "header's checksum"));
        cases.push((
            case("state", &flip(state_off + state_len / 2, 0x40)),
            "state's checksum",
        ));
        cases.push((
            case("table", &flip(runs_off, 0x10)),
            "memory table's checksum",
        ));
        for (p, want) in &cases {
            let e = load_error(p).await;
            assert!(
                e.contains(&p.display().to_string()) && e.contains(want),
                "{}: {e} (expected it to name the file and say {want:?})",
                p.display()
            );
        }

        // A bit flipped in guest memory: the load returns at once (the memory is
        // checked by a thread of its own, not read first), the check fails naming the
        // file, a sandbox started meanwhile fails with it, and later starts are refused.
        let memory = case("memory", &flip(4096 + first_run + 17, 1));
        let name = memory.display().to_string();
        let snap = load(&memory, vm())
            .await
            .expect("the load does not read guest memory");
        let early = snap.start().await;
        let e = snap.verify().await.expect_err("corrupt memory").chain();
        assert!(
            e.contains(&name) && e.contains("guest memory's checksum"),
            "{e}"
        );
        match early {
            Ok(live) => {
                let e = live
                    .exec(["true"])
                    .await
                    .expect_err("a sandbox of a corrupt file has failed")
                    .chain();
                assert!(e.contains(&name) && e.contains("checksum"), "{e}");
            }
            Err(e) => assert!(e.chain().contains(&name), "{}", e.chain()),
        }
        let e = snap.start().await.expect_err("refused").chain();
        assert!(
            e.contains(&name) && e.contains("guest memory's checksum"),
            "{e}"
        );
        // The good file's memory checks out.
        load(&good, vm()).await.unwrap().verify().await.unwrap();

        // Another workload than the saved sandbox's (a mount more): refused.
        let other = writable_tempdir();
        let e = load(&good, vm().mount(Mount::rw(other.path(), "/data")))
            .await
            .expect_err("other settings");
        assert!(e.chain().contains("other settings"), "{}", e.chain());

        // The good file still loads.
        let snap = load(&good, vm()).await.unwrap();
        let c = snap.start().await.unwrap();
        assert_eq!(feed(&c, 1).await.0, 6);
    });
}

/// An edit of a saved state.
type Edit = Box<dyn Fn(&mut Vec<u8>)>;

/// Crafted states (checksums made to match): lengths past the end, huge counts,
/// frames and addresses outside guest memory, references to objects never read. Each
/// must be refused (or, when the bytes happen to mean a valid state, start); the
/// loader never crashes.
#[test]
fn crafted_states_are_refused_never_crash() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.hsbsnap");
        saved_counter(&good).await.destroy().await.unwrap();
        let head = read_at(&good, 0, 4096);
        let (state_off, state_len) = (u64_at(&head, 88), u64_at(&head, 96));
        let (runs_off, runs_len) = (u64_at(&head, 104), u64_at(&head, 112));
        let good_state = read_at(&good, state_off, state_len as usize);
        let runs = read_at(&good, runs_off, runs_len as usize);
        let state_len = state_len as usize;
        // A copy of the good file whose state is edited by `edit`, its checksum and
        // the header made to match.
        let craft = |p: &std::path::Path, edit: &dyn Fn(&mut Vec<u8>)| {
            use std::os::unix::fs::FileExt;
            let mut state = good_state.clone();
            edit(&mut state);
            std::fs::copy(&good, p).unwrap();
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.set_len(state_off).unwrap();
            f.write_all_at(&state, state_off).unwrap();
            let new_runs_off = state_off + state.len() as u64;
            f.write_all_at(&runs, new_runs_off).unwrap();
            let mut h = head.clone();
            h[96..104].copy_from_slice(&(state.len() as u64).to_le_bytes());
            h[104..112].copy_from_slice(&new_runs_off.to_le_bytes());
            h[120..124].copy_from_slice(&crc32(&state).to_le_bytes());
            fix_header(&mut h);
            f.write_all_at(&h, 0).unwrap();
        };
        let mut refused = 0;
        let mut started = 0;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut edits: Vec<Edit> = Vec::new();
        // Cut short at many points.
        for i in 0..40 {
            let at = (state_len * i / 40).max(1);
            edits.push(Box::new(move |s: &mut Vec<u8>| s.truncate(at - 1)));
        }
        // Eight bytes of all ones (a huge length or count, a frame past memory) at
        // random places; random single bytes.
        for _ in 0..60 {
            let at = (next() as usize) % state_len.saturating_sub(8).max(1);
            edits.push(Box::new(move |s: &mut Vec<u8>| s[at..at + 8].fill(0xff)));
        }
        for _ in 0..60 {
            let at = (next() as usize) % state_len;
            let v = next() as u8;
            edits.push(Box::new(move |s: &mut Vec<u8>| s[at] ^= v | 1));
        }
        // Trailing garbage.
        edits.push(Box::new(|s: &mut Vec<u8>| s.extend_from_slice(&[0u8; 13])));
        for (i, edit) in edits.iter().enumerate() {
            let p = dir.path().join(format!("crafted-{i}"));
            craft(&p, edit.as_ref());
            match load(&p, vm()).await {
                Err(_) => refused += 1,
                Ok(s) => match s.start().await {
                    Err(e) => {
                        let c = e.chain();
                        assert!(!c.contains("VMM failure") && !c.contains("panick"), "{c}");
                        refused += 1;
                    }
                    Ok(live) => {
                        started += 1;
                        let _ = live.destroy().await;
                    }
                },
            }
            let _ = std::fs::remove_file(&p);
        }
        eprintln!("crafted states: {refused} refused, {started} started");
        assert!(
            refused >= 40,
            "every truncated state at least is refused ({refused})"
        );
    });
}

#[test]
fn a_host_file_replaced_since_the_save_is_named_at_the_start() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let dir = writable_tempdir();
        std::fs::write(dir.path().join("held.txt"), "original").unwrap();
        let w = || vm().mount(Mount::rw(dir.path(), "/data"));
        let live = live_create(w()).await;
        live_sh(
            &live,
            "(python3 -c \"import time; f = open('/data/held.txt'); open('/tmp/ready', 'w').close(); time.sleep(3600)\" >/dev/null 2>&1 &) && \
             while [ ! -e /tmp/ready ]; do busybox sleep 0.01; done",
        )
        .await;
        let files = tempfile::tempdir().unwrap();
        let path = files.path().join("held.hsbsnap");
        live.snapshot().await.unwrap().save(&path).await.unwrap();
        live.destroy().await.unwrap();
        // Unchanged: it starts.
        let snap = load(&path, w()).await.unwrap();
        let c = snap.start().await.unwrap_or_else(|e| panic!("start: {}", e.chain()));
        c.destroy().await.unwrap();
        // Replaced (a new inode at the path): the start fails, naming it.
        let tmp = dir.path().join("new.txt");
        std::fs::write(&tmp, "replaced").unwrap();
        std::fs::rename(&tmp, dir.path().join("held.txt")).unwrap();
        let e = load_error_with(&path, w()).await;
        assert!(e.contains("/data/held.txt") && e.contains("changed"), "{e}");
    });
}

/// A container's snapshot file keeps its writable layer (`/tmp` and its tmpfs
/// mounts: files with their modes, directories, symlinks) and gives it back to each
/// start of a loaded copy; a file changed in any byte, one of another plan, or a
/// micro-VM's loaded as a container's is refused, naming why.
#[test]
fn a_container_snapshot_file_keeps_the_writable_layer() {
    runtime().block_on(async {
        let w = || {
            let mut w = Workload::default().isolation(IsolationRequest::Container);
            w.tmpfs = vec![hybrid_sandbox::Tmpfs::parse_spec("/work").unwrap()];
            w
        };
        let live = live_create(w()).await;
        let o = live
            .exec([
                "sh",
                "-c",
                "mkdir -p /tmp/a/b && echo secret > /tmp/a/b/f && chmod 600 /tmp/a/b/f && \
                 mkdir /tmp/ro && echo in > /tmp/ro/x && chmod 555 /tmp/ro && \
                 ln -s a/b/f /tmp/link && printf '\\377\\0bin' > /work/bin",
            ])
            .await
            .unwrap();
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        let snap = live.snapshot().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.hsbsnap");
        assert!(snap.save(&path).await.unwrap() > 0);
        // Into an unnamed file too, byte for byte the same.
        let unnamed = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_TMPFILE)
                .open(dir.path())
                .unwrap()
        };
        snap.save_to(&unnamed).await.unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            std::fs::read(format!("/proc/self/fd/{}", {
                use std::os::fd::AsRawFd;
                unnamed.as_raw_fd()
            }))
            .unwrap(),
            bytes
        );
        live.destroy().await.unwrap();

        let loaded = load(&path, w())
            .await
            .unwrap_or_else(|e| panic!("{}", e.chain()));
        for _ in 0..2 {
            let c = loaded
                .start()
                .await
                .unwrap_or_else(|e| panic!("{}", e.chain()));
            let o = c
                .exec([
                    "sh",
                    "-c",
                    "cat /tmp/link; stat -c '%a %n' /tmp/a/b/f /tmp/ro; cat /tmp/ro/x; \
                     readlink /tmp/link; od -An -c /work/bin",
                ])
                .await
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&o.stdout),
                "secret\n600 /tmp/a/b/f\n555 /tmp/ro\nin\na/b/f\n 377  \\0   b   i   n\n",
                "{o:?}"
            );
            c.destroy().await.unwrap();
        }

        // Another plan (here: another environment) refuses it.
        let mut other = w();
        other.env.insert("X".into(), "1".into());
        let e = load_error_with(&path, other).await;
        assert!(e.contains("other settings"), "{e}");
        // Any byte changed: refused before anything starts.
        let bad = dir.path().join("bad.hsbsnap");
        for at in [8, bytes.len() / 2, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[at] ^= 1;
            std::fs::write(&bad, &b).unwrap();
            let e = load_error_with(&bad, w()).await;
            assert!(e.contains("bad.hsbsnap"), "{e}");
        }
        std::fs::write(&bad, &bytes[..bytes.len() - 10]).unwrap();
        let e = load_error_with(&bad, w()).await;
        assert!(e.contains("checksum"), "{e}");
        // A micro-VM's file, loaded where the policy gives a container.
        let mut micro = b"HSBSNAP\0".to_vec();
        micro.resize(8192, 0);
        std::fs::write(&bad, &micro).unwrap();
        let e = load_error_with(&bad, w()).await;
        assert!(e.contains("micro-VM"), "{e}");
    });
}
