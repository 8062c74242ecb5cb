//! Forks of a live micro-VM holding a running python3 process (blocked reading a
//! FIFO), side by side in one run with the creation of a fresh live micro-VM and a
//! native `python3 -c pass`: the latency of `fork()` (snapshot and start), of a start
//! from an existing snapshot, and of a snapshot alone; forks per second on one
//! sequential caller; and the host memory of 100 live forks of that VM, as made and
//! after each ran once (proportional set size of this process,
//! `/proc/self/smaps_rollup`: pages shared copy-on-write between the VMs count once).
//! Not a test: it prints a table.
//!
//! `cargo bench -p hybrid-sandbox --bench fork [-- RUNS]`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hybrid_sandbox::{IsolationRequest, Live, LiveOptions, Sandbox, Workload};

fn median_p95(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 95 / 100).min(v.len() - 1)]),
    )
}

/// Proportional set size of this process, KiB.
fn pss_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Where the PSS of this process is, KiB: guest RAM's pages shared with a snapshot's
/// memory file, guest RAM's pages copied on write, thread stacks, other anonymous memory
/// (malloc arenas: the VMM's own state), and the rest.
fn pss_by_kind() -> [(&'static str, u64); 5] {
    let text = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut out = [
        ("guest RAM, shared with snapshot files", 0),
        ("guest RAM, copied on write by a VM", 0),
        ("thread stacks", 0),
        ("other anonymous (VMM heaps)", 0),
        ("other", 0),
    ];
    let mut kind = 4;
    let mut pss = 0u64;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or_default();
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let name = f.nth(4).unwrap_or("");
            kind = if name.starts_with("/memfd:hsb-snapshot") {
                0
            } else if name.starts_with("[stack") {
                2
            } else if name.is_empty() || name == "[heap]" {
                3
            } else {
                4
            };
            continue;
        }
        let v: u64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        match first {
            "Pss:" => pss = v,
            // Copied-on-write pages of a file mapping are its anonymous ones (counted
            // whole: they are this VM's own).
            "Anonymous:" if kind == 0 => {
                out[1].1 += v;
                out[0].1 += pss.saturating_sub(v);
            }
            "Anonymous:" => out[kind].1 += pss,
            _ => {}
        }
    }
    out
}

const COUNTER: &str = r#"
import os
n = 0
r = os.open("/tmp/in", os.O_RDONLY | os.O_NONBLOCK)
w = os.open("/tmp/in", os.O_WRONLY)
os.set_blocking(r, True)
f = os.fdopen(r)
open("/tmp/ready", "w").close()
while True:
    n += int(f.readline())
    with open("/tmp/out", "w") as o:
        o.write(str(n))
"#;

async fn python_vm(sandbox: &Sandbox) -> Live {
    let live = sandbox
        .create(
            Workload::default().isolation(IsolationRequest::MicroVm),
            LiveOptions::default(),
        )
        .await
        .expect("create");
    live.write_file("/tmp/counter.py", COUNTER)
        .await
        .expect("write");
    let o = live
        .exec([
            "busybox",
            "sh",
            "-c",
            "busybox mkfifo /tmp/in && (python3 /tmp/counter.py >/dev/null 2>&1 &) && \
             while [ ! -e /tmp/ready ]; do busybox sleep 0.01; done; \
             echo 1 > /tmp/in; while [ ! -e /tmp/out ]; do busybox sleep 0.01; done",
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
        .unwrap_or(100);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sandbox = Sandbox::with_default_policy();
    rt.block_on(async {
        let parent = python_vm(&sandbox).await;
        let mut fork = Vec::new();
        let mut snapshot = Vec::new();
        let mut start = Vec::new();
        let mut create = Vec::new();
        let mut native = Vec::new();
        let snap = parent.snapshot().await.expect("snapshot");
        // Interleaved, so that the machine's load hits every kind alike.
        for _ in 0..runs {
            let t = Instant::now();
            let f = parent.fork().await.expect("fork");
            fork.push(t.elapsed());
            f.destroy().await.expect("destroy");

            let t = Instant::now();
            let s = parent.snapshot().await.expect("snapshot");
            snapshot.push(t.elapsed());
            drop(s);

            let t = Instant::now();
            let f = snap.start().await.expect("start");
            start.push(t.elapsed());
            f.destroy().await.expect("destroy");

            let t = Instant::now();
            let l = sandbox
                .create(
                    Workload::default().isolation(IsolationRequest::MicroVm),
                    LiveOptions::default(),
                )
                .await
                .expect("create");
            create.push(t.elapsed());
            l.destroy().await.expect("destroy");

            let t = Instant::now();
            let st = Command::new("/usr/bin/python3")
                .args(["-c", "pass"])
                .stdout(Stdio::null())
                .status()
                .expect("python3");
            native.push(t.elapsed());
            assert!(st.success());
        }
        // Forks per second on one caller, back to back (each destroyed at once).
        let n = runs.max(50);
        let t = Instant::now();
        for _ in 0..n {
            let f = parent.fork().await.expect("fork");
            f.destroy().await.expect("destroy");
        }
        let rate_with_destroy = n as f64 / t.elapsed().as_secs_f64();

        // Memory: the parent alone, then 100 live forks of it (each fed once: running).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before_parent = {
            // The parent exists already: measure a second, identical VM's size instead.
            let p0 = pss_kib();
            let second = python_vm(&sandbox).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let size = pss_kib().saturating_sub(p0);
            second.destroy().await.expect("destroy");
            size
        };
        let base = pss_kib();
        let kinds_before = pss_by_kind();
        let t = Instant::now();
        let mut forks = Vec::new();
        for _ in 0..100 {
            forks.push(parent.fork().await.expect("fork"));
        }
        let hundred = t.elapsed();
        // First as made (each python3 blocked where the parent was), then after each
        // ran once.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let made = pss_kib();
        let kinds_made = pss_by_kind();
        for f in &forks {
            let o = f
                .exec([
                    "busybox",
                    "sh",
                    "-c",
                    "echo 1 > /tmp/in; while [ \"$(busybox cat /tmp/out)\" = 1 ]; do busybox sleep 0.01; done",
                ])
                .await
                .expect("feed");
            assert_eq!(o.exit_code, Some(0));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = pss_kib();
        let kinds_after = pss_by_kind();
        let per_fork = after.saturating_sub(base) as f64 / 100.0;
        for f in forks {
            f.destroy().await.expect("destroy");
        }

        let (fm, fp) = median_p95(fork);
        let (sm, sp) = median_p95(snapshot);
        let (tm, tp) = median_p95(start);
        let (cm, cp) = median_p95(create);
        let (nm, np) = median_p95(native);
        println!("micro-VM holding a running python3 ({runs} runs each, interleaved)");
        println!("{:<58} {:>10} {:>10}", "what", "median ms", "p95 ms");
        println!("{:<58} {:>10.3} {:>10.3}", "fork() (snapshot + start)", fm, fp);
        println!("{:<58} {:>10.3} {:>10.3}", "snapshot() alone", sm, sp);
        println!("{:<58} {:>10.3} {:>10.3}", "start() from an existing snapshot", tm, tp);
        println!("{:<58} {:>10.3} {:>10.3}", "create() of a fresh live micro-VM (empty)", cm, cp);
        println!("{:<58} {:>10.3} {:>10.3}", "native `python3 -c pass`", nm, np);
        println!(
            "ratios (medians): fork/create {:.2}, start/create {:.2}, fork/native python3 {:.2}",
            fm / cm,
            tm / cm,
            fm / nm
        );
        println!(
            "forks per second, one caller, each destroyed at once: {rate_with_destroy:.0}; 100 live forks made in {:.1} ms ({:.0}/s)",
            hundred.as_secs_f64() * 1e3,
            100.0 / hundred.as_secs_f64()
        );
        println!(
            "host memory (PSS): one such VM {before_parent} KiB; 100 live forks of it, as made: {:.0} KiB more, {:.0} KiB per fork; after each ran once (a shell fed its python3 a line, it wrote a file): {:.0} KiB more, {per_fork:.0} KiB per fork",
            made.saturating_sub(base) as f64,
            made.saturating_sub(base) as f64 / 100.0,
            after.saturating_sub(base) as f64
        );
        println!("where the 100 forks' memory is (PSS growth, KiB per fork):");
        println!("  {:<44} {:>8} {:>8}", "", "as made", "ran once");
        for ((b, m), a) in kinds_before.iter().zip(&kinds_made).zip(&kinds_after) {
            println!(
                "  {:<44} {:>8.1} {:>8.1}",
                a.0,
                (m.1 as f64 - b.1 as f64) / 100.0,
                (a.1 as f64 - b.1 as f64) / 100.0
            );
        }
        parent.destroy().await.expect("destroy");
    });
}
