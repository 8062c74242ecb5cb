//! Micro-VM benchmark (not a test): prints a table of measured figures.
//!
//! `cargo bench -p backend-microvm --bench microvm` (HSB_BENCH_RUNS=N changes the
//! number of hello runs, default 300).
//!
//! Side by side in one run: the same static musl programs through the micro-VM backend
//! (`Backend::spawn` + `wait`, everything included) and run natively (fork/exec).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use backend_microvm::MicroVmBackend;
use sandbox_core::{Backend, HostSupport, MountMode, Plan, PlannedMount, Policy, Stdin, Workload};

const HELLO: &str = r#"#include <stdio.h>
int main(void) { printf("hello\n"); return 0; }
"#;
const CPU: &str = r#"#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    unsigned long rounds = strtoul(argv[1], 0, 10), h = 1469598103934665603ul;
    for (unsigned long i = 0; i < rounds; i++) { h ^= i; h *= 1099511628211ul; }
    printf("%lx\n", h);
    return 0;
}
"#;
const CPU2: &str = r#"#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    unsigned long rounds = strtoul(argv[1], 0, 10), h = 1469598103934665603ul;
    pid_t child = fork();
    for (unsigned long i = 0; i < rounds; i++) { h ^= i; h *= 1099511628211ul; }
    if (child == 0) return (int)(h & 1);
    waitpid(child, 0, 0);
    printf("%lx\n", h);
    return 0;
}
"#;
const SYSCALLS: &str = r#"#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]), s = 0;
    for (long i = 0; i < n; i++) s += syscall(SYS_getppid);
    printf("%ld\n", s);
    return 0;
}
"#;

fn build(dir: &Path, name: &str, src: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let exe = dir.join(name);
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

fn plan(dir: &Path, prog: &str, args: &[&str]) -> Plan {
    let w = Workload::new(format!("/bench/{prog}"), args.iter().copied());
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

async fn vm_run(p: Plan) -> Duration {
    let t = Instant::now();
    let mut e = MicroVmBackend::new().spawn(p).await.expect("spawn");
    let o = e.wait().await.expect("wait");
    let d = t.elapsed();
    assert!(o.success(), "{o:?}");
    d
}

fn native_run(exe: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let o = Command::new(exe).args(args).output().unwrap();
    let d = t.elapsed();
    assert!(o.status.success());
    d
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn pin_to_one_cpu() {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET only writes into the local set.
    unsafe { libc::CPU_SET(0, &mut set) };
    // SAFETY: sets the calling thread's affinity from a valid set; threads created
    // afterwards inherit it.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
}

fn mem_stats() -> (u64, u64, u64) {
    let field = |text: &str, key: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let smaps = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    (
        field(&status, "VmRSS:"),
        field(&smaps, "Pss:"),
        field(&meminfo, "MemAvailable:"),
    )
}

fn main() {
    if !MicroVmBackend::new().probe().available {
        println!(
            "SKIPPED: no KVM: {:?}",
            MicroVmBackend::new().probe().reason
        );
        return;
    }
    let runs: usize = std::env::var("HSB_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dir = std::env::temp_dir().join(format!("hsb-microvm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hello = build(&dir, "hello", HELLO);
    let cpu = build(&dir, "cpu", CPU);
    let cpu2 = build(&dir, "cpu2", CPU2);
    let sys = build(&dir, "syscalls", SYSCALLS);
    pin_to_one_cpu();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Warm-up (page cache, KVM module state, the seccomp filter compiled once).
    for _ in 0..10 {
        rt.block_on(vm_run(plan(&dir, "hello", &[])));
        native_run(&hello, &[]);
    }

    // Start-to-exit and throughput, one core, sequential.
    let t = Instant::now();
    let mut vm: Vec<Duration> = (0..runs)
        .map(|_| rt.block_on(vm_run(plan(&dir, "hello", &[]))))
        .collect();
    let vm_rate = runs as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut nat: Vec<Duration> = (0..runs).map(|_| native_run(&hello, &[])).collect();
    let nat_rate = runs as f64 / t.elapsed().as_secs_f64();

    // Host memory per running VM: N VMs blocked reading stdin.
    let n = 20;
    let (rss0, pss0, avail0) = mem_stats();
    let mut running = Vec::new();
    for _ in 0..n {
        let mut p = plan(&dir, "hello", &[]);
        p.program = "/bin/busybox".into();
        p.argv = vec!["cat".into()];
        p.stdin = Stdin::Stream;
        let mut e = rt.block_on(MicroVmBackend::new().spawn(p)).expect("spawn");
        let w = e.take_stdin();
        running.push((e, w));
    }
    std::thread::sleep(Duration::from_millis(300));
    let (rss1, pss1, avail1) = mem_stats();
    for (e, w) in running.iter_mut() {
        drop(w.take());
        let _ = rt.block_on(e.wait());
    }
    drop(running);
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / n as f64 / 1024.0;

    // CPU-bound slowdown: VM and native runs interleaved, so load from elsewhere on the
    // machine hits both alike.
    let rounds = "400000000";
    let (mut vm_cpu, mut nat_cpu) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        vm_cpu.push(rt.block_on(vm_run(plan(&dir, "cpu", &[rounds]))));
        nat_cpu.push(native_run(&cpu, &[rounds]));
    }
    let (vc, nc) = (pct(&mut vm_cpu, 0.5), pct(&mut nat_cpu, 0.5));

    // Preemption's cost: two processes computing side by side share the one vCPU in
    // 10 ms slices (a kick and a switch each); against twice one process's time, both
    // in the micro-VM, interleaved.
    let (mut two, mut one) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        two.push(rt.block_on(vm_run(plan(&dir, "cpu2", &[rounds]))));
        one.push(rt.block_on(vm_run(plan(&dir, "cpu", &[rounds]))));
    }
    let _ = &cpu2;
    let (t2, t1) = (pct(&mut two, 0.5), pct(&mut one, 0.5));

    // Cost of one syscall: (t(N) - t(0)) / N.
    let calls = 20000u32;
    let per_call = |f: &mut dyn FnMut(&str) -> Duration| {
        let mut base: Vec<Duration> = (0..5).map(|_| f("0")).collect();
        let mut full: Vec<Duration> = (0..5).map(|_| f(&calls.to_string())).collect();
        pct(&mut full, 0.5).saturating_sub(pct(&mut base, 0.5)) / calls
    };
    let vm_sys = per_call(&mut |a| rt.block_on(vm_run(plan(&dir, "syscalls", &[a]))));
    let nat_sys = per_call(&mut |a| native_run(&sys, &[a]));

    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let kind = MicroVmBackend::new()
        .probe()
        .details
        .get("kvm")
        .cloned()
        .unwrap_or_default();
    println!();
    println!("micro-VM benchmark: {cpu_model}, KVM {kind}, pinned to one CPU, {runs} hello runs");
    println!("command: cargo bench -p backend-microvm --bench microvm");
    println!();
    println!("| measurement | micro-VM | native (fork/exec) | target |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| static hello (musl), start to exit, median | {} | {} | <= 5 ms |",
        ms(pct(&mut vm, 0.5)),
        ms(pct(&mut nat, 0.5))
    );
    println!(
        "| static hello (musl), start to exit, p95 | {} | {} | |",
        ms(pct(&mut vm, 0.95)),
        ms(pct(&mut nat, 0.95))
    );
    println!("| sandboxes per second, one core, sequential | {vm_rate:.0}/s | {nat_rate:.0}/s | >= 150/s |");
    println!(
        "| host memory per running VM ({n} VMs blocked in `cat`): RSS / PSS / MemAvailable drop | {:.2} / {:.2} / {:.2} MiB | | <= 8 MiB |",
        per(rss0, rss1),
        per(pss0, pss1),
        per(avail1, avail0)
    );
    println!(
        "| CPU-bound loop ({rounds} rounds), median of 7 | {} | {} | slowdown {:+.1}% (target <= 3%) |",
        ms(vc),
        ms(nc),
        (vc.as_secs_f64() / nc.as_secs_f64() - 1.0) * 100.0
    );
    println!(
        "| two processes computing side by side ({rounds} rounds each, 10 ms slices), median of 5 | {} | 2 x {} alone | slicing cost {:+.1}% |",
        ms(t2),
        ms(t1),
        (t2.as_secs_f64() / (2.0 * t1.as_secs_f64()) - 1.0) * 100.0
    );
    println!(
        "| one syscall (getppid), {calls} calls | {:.2} us | {:.3} us | |",
        vm_sys.as_secs_f64() * 1e6,
        nat_sys.as_secs_f64() * 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
}
