//! The two backends side by side in one run, against the same static programs run
//! natively: start-to-exit of a static program (median, p95), sandboxes per second
//! on one core, and the slowdown of a CPU-bound program.
//!
//! `cargo bench -p hybrid-sandbox --bench backends [-- RUNS]`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hybrid_sandbox::{IsolationRequest, Mount, Sandbox, Workload};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn med_p95(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    (
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 95 / 100).min(v.len() - 1)]),
    )
}

/// A static CPU-bound program (400M iterations of a dependent add), built once.
fn spin_program(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("spin.c");
    std::fs::write(&src, "int main(void){volatile unsigned long x=0;for(unsigned long i=0;i<400000000UL;i++)x+=i;return (int)(x&1);}\n").unwrap();
    let bin = dir.join("spin");
    let st = Command::new("gcc")
        .args(["-O1", "-static", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success());
    bin
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sb = Sandbox::with_default_policy();
    let hello = |iso: IsolationRequest| Workload::new("/usr/bin/busybox", ["true"]).isolation(iso);
    let mut rows = Vec::new();
    for (name, iso) in [
        ("micro-VM", IsolationRequest::MicroVm),
        ("container", IsolationRequest::Container),
    ] {
        let times: Vec<Duration> = (0..runs + 10)
            .map(|_| {
                let t = Instant::now();
                let o = rt
                    .block_on(sb.run(hello(iso)))
                    .unwrap_or_else(|e| panic!("{name}: {}", e.chain()));
                assert!(o.success(), "{o:?}");
                t.elapsed()
            })
            .skip(10)
            .collect();
        let total: Duration = times.iter().sum();
        let (m, p) = med_p95(times.clone());
        rows.push((name, m, p, runs as f64 / total.as_secs_f64()));
    }
    let native: Vec<Duration> = (0..runs + 10)
        .map(|_| {
            let t = Instant::now();
            assert!(Command::new("/usr/bin/busybox")
                .arg("true")
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success());
            t.elapsed()
        })
        .skip(10)
        .collect();
    let total: Duration = native.iter().sum();
    let (m, p) = med_p95(native);
    rows.push(("native fork/exec", m, p, runs as f64 / total.as_secs_f64()));

    println!("static program (busybox true) start to exit, {runs} runs each, one machine, one run");
    println!("| backend | median ms | p95 ms | runs/s (sequential, one caller thread) |");
    println!("| --- | ---: | ---: | ---: |");
    for (n, m, p, r) in &rows {
        println!("| {n} | {m:.2} | {p:.2} | {r:.0} |");
    }

    // CPU-bound: the same static binary, interleaved, median of 7.
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let spin = spin_program(dir.path());
    let mut t_native = Vec::new();
    let mut t_vm = Vec::new();
    let mut t_ct = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        Command::new(&spin).status().unwrap();
        t_native.push(t.elapsed());
        for (iso, v) in [
            (IsolationRequest::MicroVm, &mut t_vm),
            (IsolationRequest::Container, &mut t_ct),
        ] {
            let w = Workload::new("/b/spin", Vec::<String>::new())
                .mount(Mount::ro(dir.path(), "/b"))
                .isolation(iso);
            let o = rt.block_on(sb.run(w)).unwrap();
            v.push(o.wall_time);
        }
    }
    let (n, _) = med_p95(t_native);
    let (v, _) = med_p95(t_vm);
    let (c, _) = med_p95(t_ct);
    println!();
    println!("CPU-bound static program (400M iterations), median of 7, interleaved");
    println!("| where | ms | vs native |");
    println!("| --- | ---: | ---: |");
    println!("| native | {n:.1} | 1.000x |");
    println!("| micro-VM (run wall time) | {v:.1} | {:.3}x |", v / n);
    println!("| container (run wall time) | {c:.1} | {:.3}x |", c / n);
}
