//! `python3 -c pass` start to exit in the micro-VM, the container and natively, side
//! by side in one run (interleaved), then a syscall-heavy static program (many small
//! reads) the same three ways, then where the micro-VM's time goes (its exits and
//! their cost, from the `hsb` CLI with `HSB_MICROVM_STATS=1`). Not a test.
//!
//! `cargo bench -p hsb-cli --bench python_start [-- RUNS]`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hybrid_sandbox::{IsolationRequest, Mount, Sandbox, Workload};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median, p95 and mean in milliseconds.
fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
    (
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 95 / 100).min(v.len() - 1)]),
        mean,
    )
}

/// A static program doing `n` one-byte reads of a file (and nothing else).
fn reads_program(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("reads.c");
    std::fs::write(
        &src,
        "#include <fcntl.h>\n#include <stdlib.h>\n#include <unistd.h>\n\
         int main(int c, char **v) { int n = atoi(v[1]); int fd = open(v[2], O_RDONLY); char b;\n\
         long s = 0; for (int i = 0; i < n; i++) { if (pread(fd, &b, 1, i % 4096) != 1) return 1; s += b; }\n\
         return s == -1; }\n",
    )
    .unwrap();
    std::fs::write(dir.join("data"), vec![b'x'; 4096]).unwrap();
    let bin = dir.join("reads");
    let st = Command::new("gcc")
        .args(["-O2", "-static", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success());
    bin
}

struct Runner {
    rt: tokio::runtime::Runtime,
    sb: Sandbox,
}

impl Runner {
    /// Start to exit of `w` through the library (what a caller of `Sandbox::run` sees).
    fn sandboxed(&self, w: Workload) -> Duration {
        let t = Instant::now();
        let o = self
            .rt
            .block_on(self.sb.run(w))
            .unwrap_or_else(|e| panic!("{}", e.chain()));
        assert!(o.success(), "{o:?}");
        t.elapsed()
    }
}

fn native(argv: &[&str]) -> Duration {
    let t = Instant::now();
    let st = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("spawn");
    assert!(st.success(), "{argv:?}: {st}");
    t.elapsed()
}

fn table(title: &str, rows: &[(&str, Vec<Duration>)]) {
    let native = stats(rows[rows.len() - 1].1.clone()).0;
    println!("{title}");
    println!("| where | median ms | p95 ms | mean ms | median vs native |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, v) in rows {
        let (m, p, a) = stats(v.clone());
        println!("| {name} | {m:.1} | {p:.1} | {a:.1} | {:.2}x |", m / native);
    }
    println!();
}

/// Averages of the micro-VM's own counts over `n` runs of `args` through the CLI.
fn microvm_breakdown(args: &[&str], mounts: &[String], n: usize) -> Option<String> {
    let hsb = env!("CARGO_BIN_EXE_hsb");
    let mut acc = [0f64; 8];
    for _ in 0..n {
        let mut c = Command::new(hsb);
        c.args(["run", "--isolation", "microvm"]);
        for m in mounts {
            c.args(["--mount", m]);
        }
        let out = c
            .arg("--")
            .args(args)
            .env("HSB_MICROVM_STATS", "1")
            .stdout(Stdio::null())
            .output()
            .ok()?;
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find(|l| l.contains("Stats {"))?;
        let num = |key: &str| -> Option<f64> {
            let rest = &line[line.find(key)? + key.len()..];
            let v: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let x: f64 = v.parse().ok()?;
            let unit = &rest[v.len()..];
            Some(if unit.starts_with("µs") {
                x / 1000.0
            } else if unit.starts_with("ms") {
                x
            } else if unit.starts_with('s') && !unit.starts_with("sw") {
                x * 1000.0
            } else {
                x
            })
        };
        for (i, k) in [
            "syscalls: ",
            "faults: ",
            "flushes: ",
            "in_guest: ",
            "in_vmm: ",
        ]
        .iter()
        .enumerate()
        {
            acc[i] += num(k)?;
        }
        // KVM's own counters of the vCPU, when this kernel has them.
        if let Some(kvm) = err.lines().find(|l| l.contains("KVM [")) {
            for (i, k) in ["exits", "pf_fixed", "insn_emulation"].iter().enumerate() {
                let key = format!("(\"{k}\", ");
                let v = kvm.find(&key).and_then(|at| {
                    let rest = &kvm[at + key.len()..];
                    rest[..rest.find(')')?].parse::<f64>().ok()
                });
                acc[5 + i] += v.unwrap_or(0.0);
            }
        }
    }
    let a: Vec<f64> = acc.iter().map(|x| x / n as f64).collect();
    let exits = a[0] + a[1];
    Some(format!(
        "{:.0} syscall exits, {:.0} page-fault exits, {:.0} page-table flushes; {:.1} ms in the guest \
         (KVM_RUN: guest code, exits and KVM's shadow paging), {:.1} ms in the VMM between exits; \
         {:.1} µs a exit all told; inside KVM: {:.0} exits in all, {:.0} shadow-page fills, \
         {:.0} emulated instructions (guest CPL 0 code and the doorbell writes)",
        a[0],
        a[1],
        a[2],
        a[3],
        a[4],
        (a[3] + a[4]) * 1000.0 / exits.max(1.0),
        a[5],
        a[6],
        a[7]
    ))
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let r = Runner {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        sb: Sandbox::with_default_policy(),
    };
    let py = |iso| Workload::new("python3", ["-c", "pass"]).isolation(iso);
    let (mut vm, mut ct, mut nat) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs + 3 {
        let a = r.sandboxed(py(IsolationRequest::MicroVm));
        let b = r.sandboxed(py(IsolationRequest::Container));
        let c = native(&["/usr/bin/python3", "-c", "pass"]);
        if i >= 3 {
            vm.push(a);
            ct.push(b);
            nat.push(c);
        }
    }
    table(
        &format!("`python3 -c pass` start to exit, {runs} runs each, interleaved, one machine"),
        &[
            ("micro-VM (Sandbox::run)", vm),
            ("container (Sandbox::run)", ct),
            ("native (fork/exec)", nat),
        ],
    );

    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let prog = reads_program(dir.path());
    let n_reads = 20_000u32;
    let n = n_reads.to_string();
    let reads = |iso| {
        Workload::new("/b/reads", [n.as_str(), "/b/data"])
            .mount(Mount::ro(dir.path(), "/b"))
            .isolation(iso)
    };
    let (mut vm, mut ct, mut nat) = (Vec::new(), Vec::new(), Vec::new());
    let reps = (runs / 4).max(5);
    for _ in 0..reps {
        vm.push(r.sandboxed(reads(IsolationRequest::MicroVm)));
        ct.push(r.sandboxed(reads(IsolationRequest::Container)));
        let data = dir.path().join("data");
        nat.push(native(&[
            prog.to_str().unwrap(),
            &n,
            data.to_str().unwrap(),
        ]));
    }
    let per_read = |v: &[Duration]| stats(v.to_vec()).0 * 1000.0 / f64::from(n_reads);
    let (pv, pc, pn) = (per_read(&vm), per_read(&ct), per_read(&nat));
    table(
        &format!("syscall-heavy static program: {n_reads} one-byte `pread`s, {reps} runs each"),
        &[("micro-VM", vm), ("container", ct), ("native", nat)],
    );
    println!(
        "start to exit over reads: {pv:.1} µs a read in the micro-VM, {pc:.2} in the container, {pn:.2} natively\n"
    );

    println!("where the micro-VM's time goes (means of 10 runs through the hsb CLI):");
    match microvm_breakdown(&["python3", "-c", "pass"], &[], 10) {
        Some(s) => println!("- python3 -c pass: {s}"),
        None => println!("- python3 -c pass: (no counts: the hsb CLI did not run)"),
    }
    let mount = format!("{}:/b", dir.path().display());
    match microvm_breakdown(&["/b/reads", &n, "/b/data"], &[mount], 5) {
        Some(s) => println!("- {n_reads} reads: {s}"),
        None => println!("- reads: (no counts)"),
    }
}
