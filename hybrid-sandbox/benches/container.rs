//! Container start-to-exit of `/bin/true`, side by side with bubblewrap and a bare
//! fork/exec, in one run. Not a test: it prints a table and the ratios.
//!
//! `cargo bench -p hybrid-sandbox --bench container [-- RUNS]`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hybrid_sandbox::{Sandbox, Workload};

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = ms(v[v.len() / 2]);
    let p95 = ms(v[(v.len() * 95 / 100).min(v.len() - 1)]);
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
    (median, p95, mean)
}

fn time_cmd(argv: &[&str], runs: usize) -> Vec<Duration> {
    (0..runs + 10)
        .map(|_| {
            let t = Instant::now();
            let st = Command::new(argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .expect("spawn");
            assert!(st.success(), "{argv:?} failed: {st}");
            t.elapsed()
        })
        .skip(10)
        .collect()
}

/// bwrap with the same view as the default policy's plan: every mount of the plan
/// (read-only, host symlinks kept as symlinks), fresh /proc, minimal /dev, tmpfs /tmp,
/// every namespace unshared, a new session, and death with its parent.
fn bwrap_argv(plan: &hybrid_sandbox::Plan) -> Vec<String> {
    let mut a: Vec<String> = [
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
    ]
    .map(String::from)
    .to_vec();
    let mut mounts = plan.mounts.clone();
    mounts.sort_by_key(|m| m.target.components().count());
    for m in &mounts {
        let (src, dst) = (
            m.source.display().to_string(),
            m.target.display().to_string(),
        );
        match std::fs::symlink_metadata(&m.source) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let text = std::fs::read_link(&m.source).expect("readlink");
                a.extend(["--symlink".into(), text.display().to_string(), dst]);
            }
            Ok(_) => a.extend(["--ro-bind".into(), src, dst]),
            Err(_) => {}
        }
    }
    a.extend(
        [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "/bin/true",
        ]
        .map(String::from),
    );
    a
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let hsb = env!("CARGO_BIN_EXE_hsb");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sandbox = Sandbox::with_default_policy();
    let lib: Vec<Duration> = (0..runs + 10)
        .map(|_| {
            let t = Instant::now();
            let o = rt
                .block_on(sandbox.run(Workload::new("/bin/true", Vec::<String>::new())))
                .expect("run");
            assert!(o.success(), "{o:?}");
            t.elapsed()
        })
        .skip(10)
        .collect();
    let cli = time_cmd(&[hsb, "run", "--", "/bin/true"], runs);
    let plan = sandbox
        .plan(&Workload::new("/bin/true", Vec::<String>::new()))
        .expect("plan");
    let bwrap = bwrap_argv(&plan);
    let bwrap_ref: Vec<&str> = bwrap.iter().map(String::as_str).collect();
    let bw = time_cmd(&bwrap_ref, runs);
    let native = time_cmd(&["/bin/true"], runs);

    let (bw_med, bw_p95, _) = stats(bw);
    println!("container start-to-exit of /bin/true, {runs} runs each, one machine, one run");
    println!("bwrap command: {}", bwrap.join(" "));
    println!("| what | median ms | p95 ms | median vs bwrap |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, v) in [
        ("hybrid-sandbox library (Sandbox::run, full isolation)", lib),
        ("hybrid-sandbox CLI (`hsb run -- /bin/true`)", cli),
        (
            "bwrap --unshare-all --die-with-parent (same mounts, /proc, /dev, /tmp)",
            vec![],
        ),
        ("native fork/exec of /bin/true", native),
    ] {
        let (med, p95) = if v.is_empty() {
            (bw_med, bw_p95)
        } else {
            let (m, p, _) = stats(v);
            (m, p)
        };
        println!("| {name} | {med:.2} | {p95:.2} | {:.2}x |", med / bw_med);
    }
}
