//! Cost of one guest syscall in the micro-VM (not a test): prints a table.
//!
//! `cargo bench -p backend-microvm --bench syscall_cost`
//!
//! The same static musl program runs `getppid`, a 1-byte `pread` of a file and a
//! 1-byte `pwrite` of a tmpfs file N times, in the micro-VM and natively; the per-call
//! time is the difference between a run with N calls and a run with none (start-up
//! cancels out), medians of 5. Not pinned: whatever serves the guest's syscalls may
//! use the second core, as it would on a host. The micro-VM is measured twice, in the
//! same run: with fast calls (the default: answered without a VM exit, see
//! `fastcall.rs`) and through the exit path only (the bench runs itself again with
//! `HSB_MICROVM_FASTCALL=0`, which a process reads once).

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
    let n = calls.to_string();
    let per = |f: &dyn Fn(&[&str]) -> Duration, call: &str| {
        let base = median((0..5).map(|_| f(&[call, "0"])).collect());
        let full = median((0..5).map(|_| f(&[call, &n])).collect());
        full.saturating_sub(base) / calls
    };
    const CALLS: [&str; 3] = ["getppid", "pread", "pwrite"];
    if std::env::var_os("HSB_BENCH_VALUES").is_some() {
        // The child run: only the micro-VM's figures, one per line.
        for call in CALLS {
            println!("{call} {}", per(&vm, call).as_secs_f64());
        }
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let exit_path = Command::new(std::env::current_exe().unwrap())
        .env("HSB_MICROVM_FASTCALL", "0")
        .env("HSB_BENCH_VALUES", "1")
        .env("HSB_BENCH_CALLS", &n)
        .arg("--bench")
        .output()
        .expect("run the bench again without fast calls");
    let exit_path = String::from_utf8_lossy(&exit_path.stdout).into_owned();
    let slow = |call: &str| -> f64 {
        exit_path
            .lines()
            .find_map(|l| l.strip_prefix(call)?.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    println!("command: cargo bench -p backend-microvm --bench syscall_cost ({calls} calls, median of 5, minus a run with none)");
    println!();
    println!("| call | micro-VM, fast calls | micro-VM, exit path | native | fast calls / native | exit path / fast calls |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for call in CALLS {
        let v = per(&vm, call).as_secs_f64();
        let nat = per(&native, call).as_secs_f64();
        let e = slow(call);
        println!(
            "| {call} | {:.2} us | {:.2} us | {:.3} us | {:.1}x | {:.1}x |",
            v * 1e6,
            e * 1e6,
            nat * 1e6,
            v / nat.max(1e-12),
            e / v.max(1e-12)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
