//! Cost of one guest syscall in the micro-VM (not a test): prints a table.
//!
//! `cargo bench -p backend-microvm --bench syscall_cost`
//!
//! The same static musl program runs `getppid`, a 1-byte `pread` of a file and a
//! 1-byte `pwrite` of a tmpfs file N times, in the micro-VM and natively; the per-call
//! time is the difference between a run with N calls and a run with none (start-up
//! cancels out), medians of 5. Not pinned: whatever serves the guest's syscalls may
//! use the second core, as it would on a host.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use backend_microvm::MicroVmBackend;
use sandbox_core::{Backend, HostSupport, MountMode, Plan, PlannedMount, Policy, Workload};

const PROG: &str = r#"#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[2]), s = 0;
    char b[1] = {'x'};
    int fd = -1;
    if (!strcmp(argv[1], "pread")) fd = open(argv[0], O_RDONLY);
    if (!strcmp(argv[1], "pwrite")) fd = open("/tmp/bench-pwrite", O_RDWR | O_CREAT, 0600);
    for (long i = 0; i < n; i++) {
        if (fd < 0) s += getppid();
        else if (argv[1][1] == 'r') s += pread(fd, b, 1, i & 1023);
        else s += pwrite(fd, b, 1, i & 1023);
    }
    printf("%ld\n", s);
    return 0;
}
"#;

fn build(dir: &Path) -> PathBuf {
    let c = dir.join("calls.c");
    std::fs::write(&c, PROG).unwrap();
    let exe = dir.join("calls");
    let ok = Command::new("musl-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&exe)
        .arg(&c)
        .status();
    assert!(
        ok.is_ok_and(|s| s.success()),
        "musl-gcc (Debian package musl-tools) is needed"
    );
    exe
}

fn plan(dir: &Path, args: &[&str]) -> Plan {
    let w = Workload::new("/bench/calls", args.iter().copied());
    let mut p = Policy::embedded_default()
        .resolve(&w, &HostSupport::assume_all())
        .unwrap();
    p.mounts.push(PlannedMount {
        source: dir.to_path_buf(),
        target: "/bench".into(),
        mode: MountMode::Ro,
        optional: false,
        system: false,
    });
    p
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !MicroVmBackend::new().probe().available {
        println!(
            "SKIPPED: no KVM: {:?}",
            MicroVmBackend::new().probe().reason
        );
        return;
    }
    let calls: u32 = std::env::var("HSB_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20000);
    let dir = std::env::temp_dir().join(format!("hsb-syscall-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = build(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let vm = |args: &[&str]| {
        let t = Instant::now();
        let o = rt.block_on(async {
            let mut e = MicroVmBackend::new()
                .spawn(plan(&dir, args))
                .await
                .expect("spawn");
            e.wait().await.expect("wait")
        });
        let d = t.elapsed();
        assert!(o.success(), "{o:?}");
        d
    };
    let native = |args: &[&str]| {
        let t = Instant::now();
        let o = Command::new(&exe).args(args).output().unwrap();
        let d = t.elapsed();
        assert!(o.status.success());
        d
    };
    for _ in 0..3 {
        vm(&["getppid", "0"]);
    }
    println!("command: cargo bench -p backend-microvm --bench syscall_cost ({calls} calls, median of 5, minus a run with none)");
    println!();
    println!("| call | micro-VM | native | ratio |");
    println!("| --- | --- | --- | --- |");
    let n = calls.to_string();
    for call in ["getppid", "pread", "pwrite"] {
        let per = |f: &dyn Fn(&[&str]) -> Duration| {
            let base = median((0..5).map(|_| f(&[call, "0"])).collect());
            let full = median((0..5).map(|_| f(&[call, &n])).collect());
            full.saturating_sub(base) / calls
        };
        let v = per(&vm);
        let nat = per(&native);
        println!(
            "| {call} | {:.2} us | {:.3} us | {:.0}x |",
            v.as_secs_f64() * 1e6,
            nat.as_secs_f64() * 1e6,
            v.as_secs_f64() / nat.as_secs_f64().max(1e-9)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
