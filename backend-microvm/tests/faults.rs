//! Limits and faults end the run as Linux would: memory_limit, timeout, cpu_limit,
//! SIGSEGV/SIGILL/SIGFPE/SIGABRT; wild pointers get EFAULT; page-table changes
//! (munmap, mprotect) reach the guest's TLB.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sandbox_core::{ByteSize, Termination};

#[tokio::test]
async fn heap_hog_ends_in_memory_limit() {
    if !kvm() {
        return;
    }
    for tc in [Toolchain::Musl, Toolchain::Glibc] {
        let mut p = prog_plan("hog", tc, &[]);
        p.limits.memory = Some(ByteSize(64 << 20));
        let o = run(p).await;
        assert_eq!(o.termination, Termination::MemoryLimit, "{tc:?}: {o:?}");
        assert!(
            o.peak_memory_bytes <= 64 << 20 && o.peak_memory_bytes > 32 << 20,
            "{}",
            o.peak_memory_bytes
        );
        assert_eq!(
            o.enforcement.vm.as_ref().unwrap().guest_memory_bytes,
            64 << 20
        );
    }
}

#[tokio::test]
async fn infinite_loop_ends_in_timeout() {
    if !kvm() {
        return;
    }
    let mut p = prog_plan("spin", Toolchain::Musl, &[]);
    p.limits.wall_time = Some(Duration::from_millis(300));
    p.limits.cpu_time = None;
    let t = Instant::now();
    let o = run(p).await;
    assert_eq!(o.termination, Termination::Timeout, "{o:?}");
    assert_eq!(o.shell_status(), 124);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(o.wall_time >= Duration::from_millis(300));
}

#[tokio::test]
async fn cpu_limit_counts_the_vcpu_thread() {
    if !kvm() {
        return;
    }
    let mut p = prog_plan("spin", Toolchain::Musl, &[]);
    p.limits.wall_time = Some(Duration::from_secs(10));
    p.limits.cpu_time = Some(Duration::from_millis(300));
    let o = run(p).await;
    assert_eq!(o.termination, Termination::CpuLimit, "{o:?}");
    assert!(o.cpu_time >= Duration::from_millis(300), "{:?}", o.cpu_time);
}

#[tokio::test]
async fn sleeping_workload_times_out_too() {
    if !kvm() {
        return;
    }
    let mut p = plan("/bin/busybox", &["sleep", "30"]);
    p.limits.wall_time = Some(Duration::from_millis(200));
    let t = Instant::now();
    let o = run(p).await;
    assert_eq!(o.termination, Termination::Timeout, "{o:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

async fn crash(how: &str, tc: Toolchain) -> sandbox_core::Outcome {
    run(prog_plan("crash", tc, &[how])).await
}

#[tokio::test]
async fn faults_end_in_the_signal_linux_sends() {
    if !kvm() {
        return;
    }
    for tc in Toolchain::all() {
        for (how, sig) in [
            ("null", libc::SIGSEGV),
            ("ill", libc::SIGILL),
            ("div", libc::SIGFPE),
            ("abort", libc::SIGABRT),
            ("bus", libc::SIGBUS),
        ] {
            let o = crash(how, tc).await;
            assert_eq!(
                (o.termination, o.signal),
                (Termination::Signaled, Some(sig)),
                "{how} {tc:?}: {o:?}"
            );
            let out = stdout(&o);
            assert!(
                out.starts_with(&format!("armed {how}\n")),
                "{how} {tc:?}: {out}"
            );
            if how == "bus" {
                assert_eq!(out, "armed bus\nfirst page: 0123456789\n", "{tc:?}");
            } else {
                assert_eq!(out, format!("armed {how}\n"), "{how} {tc:?}");
            }
            assert_eq!(o.shell_status(), 128 + sig);
        }
    }
}

#[tokio::test]
async fn a_handler_catches_sigsegv() {
    if !kvm() {
        return;
    }
    for tc in Toolchain::all() {
        let o = crash("handler", tc).await;
        assert_eq!(o.exit_code, Some(42), "{tc:?}: {o:?} {}", stdout(&o));
        let out = stdout(&o);
        assert!(
            ["(nil)", "0x0", "0"]
                .iter()
                .any(|a| out.contains(&format!("caught signal 11 at {a}\n"))),
            "{out}"
        );
    }
}

/// The run ended by SIGSEGV.
fn assert_segv(o: &sandbox_core::Outcome, tc: Toolchain) {
    assert_eq!(
        (o.termination, o.signal),
        (Termination::Signaled, Some(libc::SIGSEGV)),
        "{tc:?}: {}",
        stdout(o)
    );
}

#[tokio::test]
async fn touching_an_unmapped_page_is_sigsegv() {
    if !kvm() {
        return;
    }
    for tc in Toolchain::all() {
        let o = crash("munmap", tc).await;
        assert_segv(&o, tc);
        assert!(
            !stdout(&o).contains("after munmap"),
            "{tc:?}: the stale page was still readable"
        );
    }
}

#[tokio::test]
async fn writing_a_read_only_page_is_sigsegv() {
    if !kvm() {
        return;
    }
    for tc in Toolchain::all() {
        let o = crash("mprotect", tc).await;
        assert_segv(&o, tc);
        assert!(
            stdout(&o).contains("read after mprotect: x"),
            "{tc:?}: {}",
            stdout(&o)
        );
        assert!(!stdout(&o).contains("wrote after mprotect"), "{tc:?}");
        // The frame stays (PROT_NONE keeps contents): only the guest-side flush can
        // make the old translation go.
        let o = crash("protnone", tc).await;
        assert_segv(&o, tc);
        assert!(!stdout(&o).contains("read after PROT_NONE"), "{tc:?}");
    }
}

#[tokio::test]
async fn wild_pointers_get_efault() {
    if !kvm() {
        return;
    }
    for tc in Toolchain::all() {
        let o = run(prog_plan("efault", tc, &[])).await;
        let out = stdout(&o);
        assert!(o.success(), "{tc:?}: {o:?}");
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| {
                l.starts_with("read ") || l.starts_with("write 0") || l.starts_with("openat ")
            })
            .collect();
        assert_eq!(lines.len(), 15, "{out}");
        for l in lines {
            assert!(
                l.ends_with(&format!("rc=-1 errno={}", libc::EFAULT)),
                "{tc:?}: {l}"
            );
        }
        assert!(out.contains("ok\nwrite partial rc=3 errno=0"), "{out}");
    }
}

#[tokio::test]
async fn random_syscalls_never_break_the_vmm() {
    if !kvm() {
        return;
    }
    // HSB_FUZZ_SEEDS=N runs more seeds (the default keeps the suite fast).
    let seeds: u32 = std::env::var("HSB_FUZZ_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let base: u32 = std::env::var("HSB_FUZZ_BASE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for seed in base + 1..=base + seeds {
        let tc = Toolchain::all()[seed as usize % 3];
        let mode = ["any", "mm", "io", "proc"][(seed as usize / 3) % 4];
        let mut p = prog_plan("fuzz", tc, &[&seed.to_string(), "3000", mode]);
        p.limits.wall_time = Some(Duration::from_secs(10));
        p.limits.memory = Some(ByteSize(128 << 20));
        p.limits.output = Some(ByteSize(1 << 20));
        p.limits.file_size = None;
        let o = {
            use sandbox_core::Backend;
            let mut e = backend_microvm::MicroVmBackend::new()
                .spawn(p)
                .await
                .expect("spawn");
            e.wait()
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: the VMM failed: {e:?}"))
        };
        if std::env::var_os("HSB_FUZZ_SEEDS").is_some() {
            eprintln!(
                "seed {seed} {tc:?} {mode}: {:?} {:?} {}",
                o.termination,
                o.signal,
                stdout(&o).trim()
            );
        }
        assert!(
            matches!(
                o.termination,
                Termination::Exited
                    | Termination::Signaled
                    | Termination::OutputLimit
                    | Termination::MemoryLimit
                    | Termination::PidsLimit
            ),
            "seed {seed} {tc:?}: {o:?}"
        );
        if o.termination == Termination::Exited {
            assert!(stdout(&o).contains("made "), "seed {seed}: {}", stdout(&o));
        }
    }
}

#[tokio::test]
async fn an_odd_memory_limit_is_kept_to_the_page() {
    if !kvm() {
        return;
    }
    // 3 MiB + 5 KiB: RAM is mapped in 2 MiB steps, the frames stay within the limit.
    let limit = (3 << 20) + 5 * 1024;
    let mut p = prog_plan("hog", Toolchain::Musl, &[]);
    p.limits.memory = Some(ByteSize(limit));
    let o = run(p).await;
    assert_eq!(o.termination, Termination::MemoryLimit, "{o:?}");
    assert!(
        o.peak_memory_bytes <= limit,
        "{} > {limit}",
        o.peak_memory_bytes
    );
    let mut p = prog_plan("hog", Toolchain::Musl, &[]);
    p.limits.memory = Some(ByteSize(512 << 10));
    let e = backend_microvm::MicroVmBackend::new();
    let err = sandbox_core::Backend::spawn(&e, p).await.unwrap_err();
    assert!(
        matches!(err, sandbox_core::SpawnError::Unsupported(ref m) if m.contains("minimum")),
        "{err:?}"
    );
}

/// Regression: a task whose saved return address leaves user code (forged by entering
/// the syscall stub directly) was killed, and then the vCPU was entered anyway, at the
/// stub's `iretq` with the workload's frame: the dead child ran on and made syscalls.
#[tokio::test]
async fn a_forged_return_address_ends_the_process_for_good() {
    if !kvm() {
        return;
    }
    for tc in Toolchain::all() {
        let o = run(prog_plan("forged", tc, &[])).await;
        assert!(o.success(), "{tc:?}: {o:?}");
        assert_eq!(
            stdout(&o),
            "child signal 11, zombie did not run\n",
            "{tc:?}"
        );
    }
}

/// Regression: an entry point outside user code (non-canonical, the supervisor's pages,
/// the stub) went straight into KVM_RUN; it ends the program with SIGSEGV, the VMM
/// intact (on VT-x a non-canonical RIP would fail the VM entry itself).
#[tokio::test]
async fn an_entry_point_outside_user_code_is_sigsegv() {
    if !kvm() {
        return;
    }
    let dir = temp_dir("entry");
    let elf = std::fs::read(prog("hello", Toolchain::Musl)).unwrap();
    for entry in [
        0x0000_8000_0000_0000u64,
        0xffff_ffff_ffe0_4000,
        0x7fff_ffff_d000,
        0x7fff_ffff_e000,
    ] {
        let mut bad = elf.clone();
        bad[24..32].copy_from_slice(&entry.to_le_bytes());
        let f = dir.join(format!("entry-{entry:x}"));
        std::fs::write(&f, &bad).unwrap();
        std::fs::set_permissions(
            &f,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
        )
        .unwrap();
        let mut p = plan(&format!("/e/entry-{entry:x}"), &[]);
        p.mounts.push(sandbox_core::PlannedMount {
            source: dir.to_path_buf(),
            target: "/e".into(),
            mode: sandbox_core::MountMode::Ro,
            optional: false,
            system: false,
            noexec: false,
        });
        let o = run(p).await;
        assert_eq!(
            (o.termination, o.signal),
            (Termination::Signaled, Some(libc::SIGSEGV)),
            "entry {entry:#x}: {o:?}"
        );
    }
}

/// Guest RAM is given to KVM in memory slots that grow with the frames in use: a
/// program filling 200 MiB of a 512 MiB guest (past two slot boundaries), whose 16
/// children each copy a part of it on write and exit (their page tables retired, then
/// reclaimed with a reload of every slot), reads back every page as it wrote it.
#[tokio::test]
async fn memory_past_the_first_slots_reads_back_across_forks_and_reloads() {
    if !kvm() {
        return;
    }
    let mut p = prog_plan("bigmem", Toolchain::Musl, &["200", "16"]);
    p.limits.memory = Some(ByteSize(512 << 20));
    p.limits.wall_time = Some(Duration::from_secs(120));
    let o = run(p).await;
    assert_eq!(o.termination, Termination::Exited, "{o:?}");
    assert_eq!(stdout(&o).trim(), "ok 200", "{o:?}");
    assert!(o.peak_memory_bytes > 200 << 20, "{}", o.peak_memory_bytes);
}
