//! An exec of `/bin/true` in a live container, side by side with a one-shot run of the
//! same and a native fork/exec; then execs of a static glibc hello, of a static musl
//! `true` (`int main(void) { return 0; }`) and of the host's dynamic `/bin/true` in a
//! live micro-VM, each side by side with a one-shot micro-VM run of it and its native
//! fork/exec, and the host memory per idle
//! live micro-VM holding a sleeping shell (with where it goes, from
//! `/proc/self/smaps`); in one run. Not a test: it prints tables.
//!
//! `cargo bench -p hybrid-sandbox --bench live [-- RUNS]` (`HSB_BENCH_MICROVM_ONLY=1`: the
//! micro-VM half alone, for profiling it)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hybrid_sandbox::{IsolationRequest, LiveOptions, Mount, Sandbox, Termination, Workload};

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 95 / 100).min(v.len() - 1)]),
    )
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sandbox = Sandbox::with_default_policy();
    if std::env::var_os("HSB_BENCH_MICROVM_ONLY").is_some() {
        microvm(&rt, &sandbox, runs);
        return;
    }
    let (live_exec, one_shot, create) = rt.block_on(async {
        let live = sandbox
            .create(Workload::default(), LiveOptions::default())
            .await
            .expect("create");
        let mut live_exec = Vec::new();
        let mut one_shot = Vec::new();
        let mut create = Vec::new();
        // Interleaved, so that the machine's load hits every kind alike.
        for i in 0..runs + 10 {
            let t = Instant::now();
            let o = live.exec(["/bin/true"]).await.expect("exec");
            let d = t.elapsed();
            assert_eq!(o.termination, Termination::Exited);
            let t = Instant::now();
            let o = sandbox
                .run(Workload::new("/bin/true", Vec::<String>::new()))
                .await
                .expect("run");
            let r = t.elapsed();
            assert_eq!(o.termination, Termination::Exited);
            let t = Instant::now();
            let l = sandbox
                .create(Workload::default(), LiveOptions::default())
                .await
                .expect("create");
            let c = t.elapsed();
            l.destroy().await.expect("destroy");
            if i >= 10 {
                live_exec.push(d);
                one_shot.push(r);
                create.push(c);
            }
        }
        (live_exec, one_shot, create)
    });
    let native: Vec<Duration> = (0..runs + 10)
        .map(|_| {
            let t = Instant::now();
            let st = Command::new("/bin/true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .expect("spawn");
            assert!(st.success());
            t.elapsed()
        })
        .skip(10)
        .collect();
    let rows = [
        (
            "exec of /bin/true in a live container (`Live::exec`)",
            stats(live_exec),
        ),
        (
            "one-shot run of /bin/true (`Sandbox::run`: create + exec + destroy)",
            stats(one_shot),
        ),
        (
            "creating a live container (`Sandbox::create`)",
            stats(create),
        ),
        ("native fork/exec of /bin/true", stats(native)),
    ];
    let base = rows[3].1 .0;
    println!("live container exec vs one-shot vs native, {runs} runs each, one machine, one run");
    table(&rows, base);
    microvm(&rt, &sandbox, runs);
}

fn table(rows: &[(&str, (f64, f64))], base: f64) {
    println!("| what | median ms | p95 ms | median vs native |");
    println!("| --- | ---: | ---: | ---: |");
    for (what, (median, p95)) in rows {
        println!(
            "| {what} | {median:.3} | {p95:.3} | {:.2}x |",
            median / base
        );
    }
}

const HELLO: &str = "#include <stdio.h>\nint main(void) { printf(\"hello\\n\"); return 0; }\n";
const TRUE: &str = "int main(void) { return 0; }\n";

/// Resident KiB of each mapping of this process, by start address: (size KiB, name, Rss KiB).
fn smaps() -> std::collections::BTreeMap<u64, (u64, String, u64)> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else {
        return out;
    };
    let mut cur: Option<(u64, u64, String)> = None;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                let name = f.nth(4).unwrap_or("[anon]").to_string();
                cur = Some((a, (b - a) / 1024, name));
                continue;
            }
        }
        if first == "Rss:" {
            if let Some((a, size, name)) = cur.take() {
                let rss = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                out.insert(a, (size, name, rss));
            }
        }
    }
    out
}

/// What grew between two [`smaps`] snapshots, grouped: adjacent mappings (one
/// `mmap` split by `madvise`) are taken together; regions of `ram_kib` are guest RAM,
/// the rest goes by name and region size.
fn smaps_growth(
    before: &std::collections::BTreeMap<u64, (u64, String, u64)>,
    after: &std::collections::BTreeMap<u64, (u64, String, u64)>,
    ram_kib: u64,
) -> Vec<(String, i64)> {
    // Regions: runs of adjacent mappings of the same name.
    let mut regions: Vec<(u64, u64, String, i64)> = Vec::new(); // start, KiB, name, delta
    for (a, (size, name, rss)) in after {
        let old = before.get(a).map_or(0, |b| b.2 as i64);
        let delta = *rss as i64 - old;
        match regions.last_mut() {
            Some((start, kib, n, d)) if *start + *kib * 1024 == *a && n == name => {
                *kib += size;
                *d += delta;
            }
            _ => regions.push((*a, *size, name.clone(), delta)),
        }
    }
    let mut groups: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for (_, kib, name, delta) in regions {
        if delta == 0 {
            continue;
        }
        let group = if kib == ram_kib {
            "guest RAM".to_string()
        } else if name == "[anon]" {
            format!("anonymous ({kib} KiB regions)")
        } else {
            name
        };
        *groups.entry(group).or_default() += delta;
    }
    for (a, (_, name, rss)) in before {
        if !after.contains_key(a) {
            *groups.entry(format!("{name} (gone)")).or_default() -= *rss as i64;
        }
    }
    let mut v: Vec<(String, i64)> = groups.into_iter().collect();
    v.sort_by_key(|(_, d)| -d.abs());
    v
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The micro-VM half: a static hello in a live micro-VM vs a one-shot micro-VM run vs
/// native, and host memory per idle live micro-VM holding a sleeping shell.
fn microvm(rt: &tokio::runtime::Runtime, sandbox: &Sandbox, runs: usize) {
    let vm = sandbox
        .probe()
        .into_iter()
        .find(|p| p.isolation == hybrid_sandbox::Isolation::MicroVm);
    if !vm.as_ref().is_some_and(|p| p.available) {
        println!(
            "SKIPPED: the micro-VM half (no KVM: {:?})",
            vm.and_then(|p| p.reason)
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("hsb-live-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    std::fs::write(dir.join("hello.c"), HELLO).expect("hello.c");
    let st = Command::new("gcc")
        .args(["-O2", "-static", "-o"])
        .arg(dir.join("hello"))
        .arg(dir.join("hello.c"))
        .status()
        .expect("gcc");
    assert!(st.success(), "compiling hello");
    std::fs::write(dir.join("true.c"), TRUE).expect("true.c");
    let st = Command::new("musl-gcc")
        .args(["-O2", "-static", "-o"])
        .arg(dir.join("true"))
        .arg(dir.join("true.c"))
        .status()
        .expect("musl-gcc (Debian package musl-tools) is needed");
    assert!(st.success(), "compiling true");
    let w = || {
        Workload::default()
            .isolation(IsolationRequest::MicroVm)
            .mount(Mount::ro(&dir, "/opt/bench"))
    };
    for (what, path, out) in [
        ("a static glibc hello", "/opt/bench/hello", &b"hello\n"[..]),
        ("a static musl `true`", "/opt/bench/true", &b""[..]),
        ("the host's dynamic `/bin/true`", "/bin/true", &b""[..]),
    ] {
        let native_path = match path.strip_prefix("/opt/bench/") {
            Some(name) => dir.join(name),
            None => std::path::PathBuf::from(path),
        };
        let (live_exec, one_shot) = rt.block_on(async {
            let live = sandbox
                .create(w(), LiveOptions::default())
                .await
                .expect("create a live micro-VM");
            let mut live_exec = Vec::new();
            let mut one_shot = Vec::new();
            for i in 0..runs + 10 {
                let t = Instant::now();
                let o = live.exec([path]).await.expect("exec");
                let d = t.elapsed();
                assert_eq!(
                    (o.termination, o.exit_code, o.stdout.as_slice()),
                    (Termination::Exited, Some(0), out)
                );
                let t = Instant::now();
                let mut run = w();
                run.program = path.into();
                let o = sandbox.run(run).await.expect("run");
                let r = t.elapsed();
                assert_eq!(o.termination, Termination::Exited);
                if i >= 10 {
                    live_exec.push(d);
                    one_shot.push(r);
                }
            }
            live.destroy().await.expect("destroy");
            (live_exec, one_shot)
        });
        let native: Vec<Duration> = (0..runs + 10)
            .map(|_| {
                let t = Instant::now();
                let st = Command::new(&native_path)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .status()
                    .expect("spawn");
                assert!(st.success());
                t.elapsed()
            })
            .skip(10)
            .collect();
        let rows = [
            (
                format!("exec of {what} in a live micro-VM (`Live::exec`)"),
                stats(live_exec),
            ),
            (
                "one-shot micro-VM run of it (`Sandbox::run`)".to_string(),
                stats(one_shot),
            ),
            ("native fork/exec of it".to_string(), stats(native)),
        ];
        let rows: Vec<(&str, (f64, f64))> = rows.iter().map(|(w, s)| (w.as_str(), *s)).collect();
        let base = rows[2].1 .0;
        println!();
        println!("live micro-VM exec vs one-shot vs native, {runs} runs each, same run");
        table(&rows, base);
    }

    // Host memory per idle live micro-VM holding a sleeping shell.
    let n = 20;
    let before = rss_kib();
    let maps_before = smaps();
    let held = rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..n {
            let live = sandbox
                .create(w(), LiveOptions::default())
                .await
                .expect("create");
            let o = live
                .exec([
                    "busybox",
                    "sh",
                    "-c",
                    "busybox sh -c 'busybox sleep 100000' >/dev/null 2>&1 &",
                ])
                .await
                .expect("exec");
            assert_eq!(o.exit_code, Some(0));
            held.push(live);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        held
    });
    let after = rss_kib();
    let maps_after = smaps();
    println!();
    println!(
        "host memory per idle live micro-VM holding a sleeping shell: {:.2} MiB (RSS delta of this process for {n} VMs: {} KiB)",
        after.saturating_sub(before) as f64 / n as f64 / 1024.0,
        after.saturating_sub(before)
    );
    // The default policy's memory limit is the guest RAM size (1 GiB).
    let ram_kib = 1 << 20;
    println!("where it goes (RSS growth per VM, KiB, from /proc/self/smaps):");
    for (group, kib) in smaps_growth(&maps_before, &maps_after, ram_kib) {
        if kib.unsigned_abs() as usize >= n {
            println!("  {group}: {:.0}", kib as f64 / n as f64);
        }
    }
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}
