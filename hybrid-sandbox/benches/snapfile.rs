//! Snapshots saved to a file and loaded back, side by side in one run with the
//! in-memory snapshot and fork of the same VM: a live micro-VM of 64 MiB whose python3
//! process holds 40 MiB of random bytes (so the file's memory part is 40 MiB of data,
//! not holes). Measured: `snapshot()`, `fork()`; `save(path)` of that snapshot (the
//! whole file written, not synced to the disk); `load_snapshot(path)` (the header,
//! the state and the memory table checked; the guest memory's checksum is checked by
//! a thread of its own meanwhile); `start()` of the loaded snapshot (the filesystem
//! built, the state read back, the VM made and its thread confined: the guest's next
//! instruction runs when it returns); load + start together; and, after the start,
//! how much longer the memory check went on (`verify()`). Not a test: it prints a
//! table. The file goes in $TMPDIR (a tmpfs on many hosts: the figures are then those
//! of the page cache, not of a disk). Each save makes a new file (the one before is
//! removed after its load, untimed): ext4 writes a file back at once when it is
//! renamed over an existing one (`auto_da_alloc`), so replacing a file costs more.
//!
//! `cargo bench -p hybrid-sandbox --bench snapfile [-- RUNS]`

use std::time::{Duration, Instant};

use hybrid_sandbox::{ByteSize, IsolationRequest, Live, LiveOptions, Sandbox, Workload};

fn median_p95(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 95 / 100).min(v.len() - 1)]),
    )
}

fn workload() -> Workload {
    let mut w = Workload::default().isolation(IsolationRequest::MicroVm);
    w.limits.memory = Some(ByteSize::mib(64));
    w
}

async fn python_vm(sandbox: &Sandbox) -> Live {
    let live = sandbox
        .create(workload(), LiveOptions::default())
        .await
        .expect("create");
    let o = live
        .exec([
            "busybox",
            "sh",
            "-c",
            "(python3 -c \"import os, time; b = os.urandom(40 << 20); open('/tmp/ready', 'w').close(); time.sleep(3600)\" >/dev/null 2>&1 &) && \
             while [ ! -e /tmp/ready ]; do busybox sleep 0.01; done",
        ])
        .await
        .expect("start python3");
    assert_eq!(o.exit_code, Some(0), "{o:?}");
    live
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sandbox = Sandbox::with_default_policy();
    let dir = std::env::temp_dir().join(format!("hsb-bench-snapfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut path = dir.join("vm.hsbsnap");
    rt.block_on(async {
        let parent = python_vm(&sandbox).await;
        let (mut snap_t, mut fork_t, mut save_t, mut load_t, mut start_t, mut both_t) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut verify_t = vec![];
        let mut written = 0;
        for run in 0..runs {
            let _ = std::fs::remove_file(&path);
            path = dir.join(format!("vm-{run}.hsbsnap"));
            let t = Instant::now();
            let snap = parent.snapshot().await.expect("snapshot");
            snap_t.push(t.elapsed());
            let t = Instant::now();
            let f = parent.fork().await.expect("fork");
            fork_t.push(t.elapsed());
            f.destroy().await.expect("destroy");
            let t = Instant::now();
            written = snap.save(&path).await.expect("save");
            save_t.push(t.elapsed());
            drop(snap);
            let t0 = Instant::now();
            let loaded = sandbox
                .load_snapshot(&path, workload(), LiveOptions::default())
                .await
                .expect("load");
            let t1 = Instant::now();
            let live = loaded.start().await.expect("start");
            let t2 = Instant::now();
            loaded.verify().await.expect("the file's memory checks out");
            load_t.push(t1 - t0);
            start_t.push(t2 - t1);
            both_t.push(t2 - t0);
            verify_t.push(t2.elapsed());
            live.destroy().await.expect("destroy");
        }
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let blocks = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&path).map(|m| m.blocks() * 512).unwrap_or(0)
        };
        let rows = [
            ("snapshot() in memory", median_p95(snap_t)),
            ("fork() in memory (snapshot + start)", median_p95(fork_t.clone())),
            ("save(path): the snapshot written to a file", median_p95(save_t)),
            ("load_snapshot(path): header, state, table checked", median_p95(load_t)),
            ("start() of the loaded snapshot", median_p95(start_t)),
            ("load + start (to the guest's next instruction)", median_p95(both_t.clone())),
            ("memory check's end after the start (verify())", median_p95(verify_t)),
        ];
        println!("a live micro-VM of 64 MiB, python3 holding 40 MiB of random bytes ({runs} runs each, interleaved)");
        println!("{:<52} {:>10} {:>10}", "what", "median ms", "p95 ms");
        for (what, (m, p)) in &rows {
            println!("{what:<52} {m:>10.3} {p:>10.3}");
        }
        println!(
            "file: {:.1} MiB long, {:.1} MiB on disk (zero pages are holes); guest memory written {:.1} MiB",
            size as f64 / 1048576.0,
            blocks as f64 / 1048576.0,
            written as f64 / 1048576.0
        );
        let fork_m = rows[1].1 .0;
        println!(
            "load + start / in-memory fork: {:.2}",
            rows[5].1 .0 / fork_m
        );
        parent.destroy().await.expect("destroy");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
