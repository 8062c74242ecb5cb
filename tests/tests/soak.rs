//! Soak: many sequential and concurrent sandboxes per backend leave nothing behind — no
//! fds, processes, mounts, cgroups or temp files — and the caller's memory stays bounded.
//!
//! One test per backend and kind; each counts what the caller holds before and after.
//! `HSB_SOAK_SEQUENTIAL` / `HSB_SOAK_CONCURRENT` override the counts (10,000 and 200).

use std::time::Instant;

use hsb_tests::*;
use hybrid_sandbox::IsolationRequest;

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What a caller could leak, measured on the host.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    fds: usize,
    children: usize,
    mounts: usize,
    cgroups: usize,
}

fn footprint() -> Footprint {
    let me = std::process::id();
    let children = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.split_whitespace().nth(1).map(String::from))
                })
                .flatten()
                .is_some_and(|ppid| ppid == me.to_string())
        })
        .count();
    let cgroups = ["memory", "pids", "cpuacct", ""]
        .iter()
        .filter_map(|c| std::fs::read_dir(format!("/sys/fs/cgroup/{c}/hsb")).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{me}-"))
        })
        .count();
    Footprint {
        fds: std::fs::read_dir("/proc/self/fd").unwrap().count(),
        children,
        mounts: std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .count(),
        cgroups,
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// Entries of the host's temp directory that hybrid-sandbox could have made (it makes
/// none by design; other programs on a shared machine may make theirs meanwhile).
/// The names in the temporary directory that look like ours. Compared as sets: an
/// entry another process (an earlier test's teardown) removes meanwhile is no leak;
/// one that appeared and stayed is.
fn tmp_entries() -> std::collections::BTreeSet<String> {
    std::fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("hsb"))
                .collect()
        })
        .unwrap_or_default()
}

/// The footprint once the warm-up runs have finished tearing down (no sandbox of ours
/// alive).
fn baseline() -> Footprint {
    // Teardown ends with descriptors closed by background tasks: the baseline is taken
    // once nothing of ours is alive and the footprint held still for a while.
    let mut f = footprint();
    let mut still = 0;
    for _ in 0..1000 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let next = footprint();
        if next == f && f.children == 0 && f.cgroups == 0 {
            still += 1;
            if still >= 10 {
                break;
            }
        } else {
            still = 0;
        }
        f = next;
    }
    f
}

fn settle(before: &Footprint) -> Footprint {
    // The outcome of a run is out as soon as its workload's processes are gone; init's
    // own exit (its namespaces' teardown), its reaping and the cgroup's removal follow
    // in the background, and can take seconds when hundreds end at once on a loaded host.
    let mut now = footprint();
    for _ in 0..1000 {
        if now == *before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        now = footprint();
    }
    now
}

/// The soak tests measure the whole process: they must not overlap.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn sequential(isolation: IsolationRequest, n: usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    let sb = sandbox();
    // Warm up: first-use allocations (runtime, caches) are not leaks.
    for _ in 0..20 {
        rt.block_on(sb.run(Workload::new("/usr/bin/busybox", ["true"]).isolation(isolation)))
            .unwrap();
    }
    let (before, rss0, tmp0) = (baseline(), rss_kib(), tmp_entries());
    let t = Instant::now();
    for i in 0..n {
        // Mix endings: plain exits, output, non-zero codes, and timeouts now and then.
        let w = match i % 50 {
            0 => {
                let mut w = Workload::new("/usr/bin/busybox", ["sleep", "5"]).isolation(isolation);
                w.limits.wall_time = Some(std::time::Duration::from_millis(20));
                w
            }
            1 => Workload::new(
                "/usr/bin/busybox",
                ["sh", "-c", "echo out; echo err >&2; exit 3"],
            )
            .isolation(isolation),
            _ => Workload::new("/usr/bin/busybox", ["true"]).isolation(isolation),
        };
        let o = rt
            .block_on(sb.run(w))
            .unwrap_or_else(|e| panic!("run {i}: {}", e.chain()));
        assert!(
            matches!(o.termination, Termination::Exited | Termination::Timeout),
            "run {i}: {o:?}"
        );
    }
    let elapsed = t.elapsed();
    let after = settle(&before);
    let grown = rss_kib().saturating_sub(rss0);
    println!(
        "{isolation:?}: {n} sequential sandboxes in {:.1}s ({:.0}/s); footprint {before:?} -> {after:?}; RSS +{grown} KiB",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(after, before, "something leaked");
    let left: Vec<_> = tmp_entries().difference(&tmp0).cloned().collect();
    assert!(left.is_empty(), "temp files left behind: {left:?}");
    assert!(
        grown < 16 * 1024,
        "the caller grew by {grown} KiB over {n} runs"
    );
}

fn concurrent(isolation: IsolationRequest, n: usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(sandbox().run(Workload::new("/usr/bin/busybox", ["true"]).isolation(isolation)))
        .unwrap();
    let before = baseline();
    let t = Instant::now();
    let outcomes = rt.block_on(async {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                tokio::spawn(async move {
                    let w = Workload::new("/usr/bin/busybox", ["sh", "-c", &format!("echo {i}")])
                        .isolation(isolation);
                    sandbox().run(w).await.map(|o| (i, o))
                })
            })
            .collect();
        let mut v = Vec::new();
        for t in tasks {
            v.push(t.await.unwrap());
        }
        v
    });
    for r in outcomes {
        let (i, o) = r.unwrap_or_else(|e| panic!("{}", e.chain()));
        assert_eq!(stdout(&o), format!("{i}\n"));
    }
    let after = settle(&before);
    println!(
        "{isolation:?}: {n} concurrent sandboxes in {:.2}s; footprint {before:?} -> {after:?}",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(after, before, "something leaked");
}

#[test]
fn container_sequential() {
    sequential(
        IsolationRequest::Container,
        count("HSB_SOAK_SEQUENTIAL", 10_000),
    );
}

#[test]
fn container_concurrent() {
    concurrent(
        IsolationRequest::Container,
        count("HSB_SOAK_CONCURRENT", 200),
    );
}

#[test]
fn microvm_sequential() {
    if backend_ready(IsolationRequest::MicroVm) {
        sequential(
            IsolationRequest::MicroVm,
            count("HSB_SOAK_SEQUENTIAL", 10_000),
        );
    }
}

#[test]
fn microvm_concurrent() {
    if backend_ready(IsolationRequest::MicroVm) {
        concurrent(IsolationRequest::MicroVm, count("HSB_SOAK_CONCURRENT", 200));
    }
}
