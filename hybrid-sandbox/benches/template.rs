//! Warm templates, side by side in one run: `print(6*7)` from the `py` template of the
//! embedded default policy (a fork of its micro-VM snapshot, python3 waiting on stdin),
//! the same template with `pool = 2` (a fork started ahead takes the run), from its
//! container pool (`py-container`), against a native `python3 -c
//! 'print(6*7)'`, a one-shot micro-VM run and a one-shot container run of the same
//! command. Each figure is the caller's time from the call to the outcome (the
//! program's exit and its output collected). Interleaved, so that the machine's load
//! hits every kind alike. Not a test: it prints a table with ratios.
//!
//! `cargo bench -p hybrid-sandbox --bench template [-- RUNS]`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hybrid_sandbox::{IsolationRequest, Sandbox, TemplateRun, Workload};

fn median_p95(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 95 / 100).min(v.len() - 1)]),
    )
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|s| s.parse().ok())
        .unwrap_or(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The default policy plus `py-pool`: its `py` template with forks started ahead.
    let d = hybrid_sandbox::EMBEDDED_DEFAULT;
    let py = &d[d.find("[templates.py]\n").expect("py")
        ..d.find("[templates.py-container]").expect("py-container")];
    let text = format!(
        "{d}\n{}pool = 2\n",
        py.replacen("[templates.py]", "[templates.py-pool]", 1)
    );
    let sandbox = Sandbox::from_policy(
        hybrid_sandbox::Policy::from_toml_str(&text, "bench policy").expect("policy"),
    );
    rt.block_on(async {
        let t = Instant::now();
        let info = sandbox.build_template("py").await.expect("build py");
        let build_vm = t.elapsed();
        let t = Instant::now();
        sandbox
            .build_template("py-container")
            .await
            .expect("build py-container");
        let build_ct = t.elapsed();
        let code = "print(6*7)";
        let (mut tvm, mut tct, mut native, mut onevm, mut onect) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut tvp = Vec::new();
        sandbox.build_template("py-pool").await.expect("build py-pool");
        let (mut pooled, mut vm_pooled) = (0, 0);
        // Before each measured run, both pools are full again (a fork of `py-pool`
        // counts once it is warm): a refill going on beside a run would take a core
        // from it on this 2-core machine.
        let settle = || async {
            let until = Instant::now() + Duration::from_secs(10);
            for name in ["py-pool", "py-container"] {
                while sandbox.build_template(name).await.expect("info").ready < 2
                    && Instant::now() < until
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        for _ in 0..runs {
            settle().await;
            let t = Instant::now();
            let o = sandbox
                .run_template("py-pool", TemplateRun::new(code))
                .await
                .expect("py-pool");
            tvp.push(t.elapsed());
            assert_eq!(o.stdout, b"42\n", "{o:?}");
            if o.decision.reasons[0].contains("from its pool") {
                vm_pooled += 1;
            }

            settle().await;
            let t = Instant::now();
            let o = sandbox
                .run_template("py", TemplateRun::new(code))
                .await
                .expect("py");
            tvm.push(t.elapsed());
            assert_eq!(o.stdout, b"42\n", "{o:?}");

            settle().await;
            let t = Instant::now();
            let o = sandbox
                .run_template("py-container", TemplateRun::new(code))
                .await
                .expect("py-container");
            tct.push(t.elapsed());
            assert_eq!(o.stdout, b"42\n", "{o:?}");
            if o.decision.reasons[0].contains("from its pool") {
                pooled += 1;
            }

            // The interpreter the sandboxes run (their PATH finds it): not whatever
            // `python3` the caller's PATH finds first (a pyenv shim costs ~80 ms).
            settle().await;
            let t = Instant::now();
            let st = Command::new("/usr/bin/python3")
                .args(["-c", code])
                .stdout(Stdio::null())
                .status()
                .expect("python3");
            native.push(t.elapsed());
            assert!(st.success());

            for (iso, v) in [
                (IsolationRequest::MicroVm, &mut onevm),
                (IsolationRequest::Container, &mut onect),
            ] {
                settle().await;
                let t = Instant::now();
                let o = sandbox
                    .run(Workload::new("python3", ["-c", code]).isolation(iso))
                    .await
                    .expect("one-shot run");
                v.push(t.elapsed());
                assert_eq!(o.stdout, b"42\n", "{o:?}");
            }
        }
        let nat = median_p95(native.clone()).0;
        println!(
            "print(6*7), {runs} runs each, median ms (p95); ratio = median / native python3's"
        );
        println!("| what | median ms | p95 ms | / native |");
        println!("| --- | ---: | ---: | ---: |");
        for (name, v) in [
            ("`py` template (micro-VM fork)", tvm),
            ("`py` with `pool = 2` (a micro-VM fork started ahead)", tvp),
            ("`py-container` template (pool)", tct),
            ("native `python3 -c 'print(6*7)'`", native),
            ("one-shot micro-VM run", onevm),
            ("one-shot container run", onect),
        ] {
            let (m, p) = median_p95(v);
            println!("| {name} | {m:.2} | {p:.2} | {:.3} |", m / nat);
        }
        println!(
            "builds: `py` {:.1} ms (snapshot {} KiB), `py-container` first instance {:.1} ms; runs from a pool: micro-VM {vm_pooled}/{runs}, container {pooled}/{runs}",
            build_vm.as_secs_f64() * 1e3,
            info.memory_bytes / 1024,
            build_ct.as_secs_f64() * 1e3
        );
    });
}
