//! Cost of one guest syscall in the micro-VM (not a test): prints a table.
//!
//! `cargo bench -p backend-microvm --bench syscall_cost`
//!
//! The same program runs `getppid`, a 1-byte `pread` of a file and a 1-byte `pwrite`
//! of a tmpfs file N times, in the micro-VM and natively; the per-call time is the
//! difference between a run with N calls and a run with none (start-up cancels out),
//! medians of 5. Not pinned: whatever serves the guest's syscalls may use the second
//! core, as it would on a host. The program is built twice: static (musl), whose
//! syscall sites stay fast calls (answered without a VM exit, see `fastcall.rs`), and
//! dynamically linked (glibc), whose C library's sites are redirected to the user-mode
//! entry (`redirect.rs`). The static one is also measured through the exit path only
//! (the bench runs itself again with `HSB_MICROVM_FASTCALL=0`, which a process reads
//! once).

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

/// Builds the program: static with musl-gcc (`calls`), or dynamically linked with gcc
/// (`calls-dyn`).
fn build(dir: &Path, dynamic: bool) -> PathBuf {
    let c = dir.join("calls.c");
    std::fs::write(&c, PROG).unwrap();
    let (cc, name, link): (&str, &str, &[&str]) = if dynamic {
        ("gcc", "calls-dyn", &[])
    } else {
        ("musl-gcc", "calls", &["-static"])
    };
    let exe = dir.join(name);
    let ok = Command::new(cc)
        .args(link)
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&c)
        .status();
    assert!(
        ok.is_ok_and(|s| s.success()),
        "{cc} is needed (Debian packages gcc, musl-tools)"
    );
    exe
}

fn plan(dir: &Path, exe: &str, args: &[&str]) -> Plan {
    let w = Workload::new(format!("/bench/{exe}"), args.iter().copied());
    let mut p = Policy::embedded_default()
        .resolve(&w, &HostSupport::assume_all())
        .unwrap();
    p.mounts.push(PlannedMount {
        source: dir.to_path_buf(),
        target: "/bench".into(),
        mode: MountMode::Ro,
        optional: false,
        system: false,
        noexec: false,
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
    let exe = build(&dir, false);
    let exe_dyn = build(&dir, true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let vm_of = |name: &'static str| {
        let (rt, dir) = (&rt, &dir);
        move |args: &[&str]| {
            let t = Instant::now();
            let o = rt.block_on(async {
                let mut e = MicroVmBackend::new()
                    .spawn(plan(dir, name, args))
                    .await
                    .expect("spawn");
                e.wait().await.expect("wait")
            });
            let d = t.elapsed();
            assert!(o.success(), "{o:?}");
            d
        }
    };
    let (vm, vm_dyn) = (vm_of("calls"), vm_of("calls-dyn"));
    let native_of = |exe: PathBuf| {
        move |args: &[&str]| {
            let t = Instant::now();
            let o = Command::new(&exe).args(args).output().unwrap();
            let d = t.elapsed();
            assert!(o.status.success());
            d
        }
    };
    let (native, native_dyn) = (native_of(exe), native_of(exe_dyn));
    for _ in 0..3 {
        vm(&["getppid", "0"]);
        vm_dyn(&["getppid", "0"]);
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
    println!("| call | micro-VM, redirected site (dynamic) | micro-VM, fast call (static) | micro-VM, exit path (static) | native (dynamic) | native (static) | redirected / native | fast call / native |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for call in CALLS {
        let r = per(&vm_dyn, call).as_secs_f64();
        let v = per(&vm, call).as_secs_f64();
        let nat_dyn = per(&native_dyn, call).as_secs_f64();
        let nat = per(&native, call).as_secs_f64();
        let e = slow(call);
        println!(
            "| {call} | {:.2} us | {:.2} us | {:.2} us | {:.3} us | {:.3} us | {:.1}x | {:.1}x |",
            r * 1e6,
            v * 1e6,
            e * 1e6,
            nat_dyn * 1e6,
            nat * 1e6,
            r / nat_dyn.max(1e-12),
            v / nat.max(1e-12),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
