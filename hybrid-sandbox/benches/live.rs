//! An exec of `/bin/true` in a live container, side by side with a one-shot run of the
//! same and a native fork/exec, in one run. Not a test: it prints a table.
//!
//! `cargo bench -p hybrid-sandbox --bench live [-- RUNS]`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hybrid_sandbox::{LiveOptions, Sandbox, Termination, Workload};

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
    println!("| what | median ms | p95 ms | median vs native |");
    println!("| --- | ---: | ---: | ---: |");
    for (what, (median, p95)) in rows {
        println!(
            "| {what} | {median:.2} | {p95:.2} | {:.2}x |",
            median / base
        );
    }
}
