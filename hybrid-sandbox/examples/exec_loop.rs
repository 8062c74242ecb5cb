//! Execs back to back in one live sandbox: the latency of `Live::exec` alone, without
//! the creates and one-shot runs the `live` bench interleaves (whose teardown overlaps
//! the next exec there). Prints the median and the 10th percentile.
//!
//! ```sh
//! cargo run --release -p hybrid-sandbox --example exec_loop -- 500 /bin/true
//! # a micro-VM, with a host directory mounted read-only at /opt/bench:
//! cargo run --release -p hybrid-sandbox --example exec_loop -- 500 /opt/bench/true microvm /tmp/dir
//! ```

use std::time::{Duration, Instant};

use hybrid_sandbox::{IsolationRequest, LiveOptions, Mount, Sandbox, Workload};

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let program = args.next().unwrap_or_else(|| "/bin/true".into());
    let microvm = args.next().is_some_and(|s| s == "microvm");
    let mount = args.next();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sandbox = Sandbox::with_default_policy();
    rt.block_on(async {
        let mut w = Workload::default();
        if microvm {
            w = w.isolation(IsolationRequest::MicroVm);
        }
        if let Some(dir) = &mount {
            w = w.mount(Mount::ro(dir, "/opt/bench"));
        }
        let live = match sandbox.create(w, LiveOptions::default()).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("create: {}", e.chain());
                std::process::exit(1);
            }
        };
        let mut took: Vec<Duration> = Vec::with_capacity(runs);
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            match live.exec([program.as_str()]).await {
                Ok(o) if o.success() => took.push(t.elapsed()),
                Ok(o) => {
                    eprintln!("{program}: {o:?}");
                    std::process::exit(1);
                }
                Err(e) => {
                    eprintln!("exec {program}: {}", e.chain());
                    std::process::exit(1);
                }
            }
        }
        took.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{} execs of {program} in a live {}: median {:.3} ms, p10 {:.3} ms",
            took.len(),
            if microvm { "micro-VM" } else { "container" },
            ms(took[took.len() / 2]),
            ms(took[took.len() / 10]),
        );
        let _ = live.destroy().await;
    });
}
