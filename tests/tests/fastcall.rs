//! The micro-VM's fast calls (syscalls answered without a VM exit, see
//! backend-microvm/src/fastcall.rs), by a real program: file I/O and identity calls
//! give what they give natively, a signal raised by a call is handled before the call
//! returns, and the slot the workload can write is attacked directly: calls the
//! fast-call thread must refuse (exit_group, opens that create, write or reach a FIFO,
//! a terminal or /proc, mappings fixed over the program's memory, shared, executable
//! or of a file, kill, unknown numbers, buffers in the supervisor's half, in
//! read-only code or never touched, a bad descriptor) come back refused with nothing
//! done, states no stub writes change nothing, and a post whose arguments change while
//! it waits is answered once, from one reading.

use std::path::PathBuf;
use std::time::Duration;

use hsb_tests::*;
use hybrid_sandbox::{IsolationRequest, Outcome};

fn programs() -> PathBuf {
    hsb_tests::programs(env!("CARGO_TARGET_TMPDIR"))
}

fn vm(mode: &str) -> Outcome {
    let mut w = Workload::new(format!("{PROGRAMS_IN_SANDBOX}/fastcall-static"), [mode])
        .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
        .isolation(IsolationRequest::MicroVm);
    w.limits.wall_time = Some(Duration::from_secs(120));
    run(w)
}

fn native(mode: &str) -> String {
    // Its files in a directory of its own, gone afterwards.
    let dir = tempfile::tempdir().expect("temp dir");
    let o = std::process::Command::new(programs().join("fastcall-static"))
        .arg(mode)
        .arg(dir.path())
        .output()
        .expect("run natively");
    assert!(o.status.success(), "native {mode}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn exited(o: &Outcome, what: &str) -> String {
    assert_eq!(
        (o.termination, o.exit_code),
        (Termination::Exited, Some(0)),
        "{what}: stdout {}\nstderr {}",
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(o)
}

#[test]
fn fast_calls_compute_what_linux_computes() {
    if !backend_ready(IsolationRequest::MicroVm) {
        return;
    }
    for mode in ["integrity", "signal"] {
        let o = vm(mode);
        assert_eq!(exited(&o, mode), native(mode), "{mode}");
    }
}

#[test]
fn the_fast_call_slot_resists_a_workload_that_writes_it() {
    if !backend_ready(IsolationRequest::MicroVm) {
        return;
    }
    let o = vm("forge");
    let out = exited(&o, "forge");
    let fast = std::env::var_os("HSB_MICROVM_FASTCALL").is_none_or(|v| v != "0")
        && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    if !fast {
        eprintln!("fast calls are off on this host: the forged posts are never taken");
        assert!(out.ends_with("alive\n"), "{out}");
        return;
    }
    assert_eq!(
        out,
        "getppid done same\n\
         exit_group slow\n\
         openat-read done open\n\
         openat-create slow\n\
         openat-rdwr slow\n\
         openat-fifo slow\n\
         openat-proc slow\n\
         openat-tty slow\n\
         openat-ptmx slow\n\
         openat-path slow\n\
         openat-trunc slow\n\
         forged file absent\n\
         mmap-anon-private done usable\n\
         mmap-fixed slow\n\
         mmap-shared slow\n\
         mmap-exec slow\n\
         mmap-file slow\n\
         mmap-populate slow\n\
         victim 42\n\
         kill slow\n\
         nr-1000000 slow\n\
         pread-kernel slow\n\
         pread-text slow\n\
         pread-untouched slow\n\
         pread-badfd slow\n\
         sigmask-kernel slow\n\
         sigmask-text slow\n\
         sigmask unchanged\n\
         close-pipe slow open\n\
         close-file done gone\n\
         stat-untouched-path slow\n\
         stat-unterminated-path slow\n\
         stat-tmp done dir\n\
         changed-posts 200/200\n\
         alive\n"
    );
}

/// A `write` or `writev` to stdout is answered without an exit while the output limit
/// holds: the text reaches the caller once, as the program's own would; one that would
/// pass the limit is refused (nothing written), so the exit path ends the run there as
/// it must.
#[test]
fn a_fast_write_to_stdout_keeps_to_the_output_limit() {
    if !backend_ready(IsolationRequest::MicroVm) {
        return;
    }
    let fast = std::env::var_os("HSB_MICROVM_FASTCALL").is_none_or(|v| v != "0")
        && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    if !fast {
        eprintln!("fast calls are off on this host: the forged posts are never taken");
        return;
    }
    let mut w = Workload::new(
        format!("{PROGRAMS_IN_SANDBOX}/fastcall-static"),
        ["forge-output"],
    )
    .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
    .isolation(IsolationRequest::MicroVm);
    w.limits.wall_time = Some(Duration::from_secs(120));
    w.limits.output = Some(hybrid_sandbox::ByteSize(256));
    let o = run(w);
    assert_eq!(
        exited(&o, "forge-output"),
        "forged-out\nwrite-stdout done 11\nforged-vec\nwritev-stdout done 11\n\
         writev-kernel slow\nwritev-unmapped slow\nwritev-array-unmapped slow\n\
         writev-too-many slow\nwritev-huge slow\nwinsize-stdout done -25\nwrite-over slow\n"
    );
}

/// A run that ends at its wall-time limit while its task makes fast calls ends (its
/// task may be left mid-post: the thread must not keep polling for it, which once
/// kept the run from ending).
#[test]
fn a_run_making_fast_calls_ends_at_its_limit() {
    if !backend_ready(IsolationRequest::MicroVm) {
        return;
    }
    for _ in 0..8 {
        let mut w = Workload::new(
            format!("{PROGRAMS_IN_SANDBOX}/fastcall-static"),
            ["forever"],
        )
        .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
        .isolation(IsolationRequest::MicroVm);
        w.limits.wall_time = Some(Duration::from_millis(300));
        let o = run(w);
        assert_eq!(o.termination, Termination::Timeout, "{o:?}");
    }
}

/// A redirected site (`backend-microvm/src/redirect.rs`): the C library's own `getppid`
/// of a dynamically linked program, rewritten to enter the fast-call slot without a
/// `syscall`. The program computes what it computes natively (registers and flags
/// kept, a jump to the `syscall` instruction, a forked child, signals in the middle of
/// calls, its own code made writable, read and changed), and the VM did redirect the
/// site (the program sees it: the one difference, as the module says).
#[test]
fn redirected_sites_compute_what_linux_computes() {
    if !backend_ready(IsolationRequest::MicroVm) {
        return;
    }
    let redirects = std::env::var_os("HSB_MICROVM_FASTCALL").is_none_or(|v| v != "0")
        && std::env::var_os("HSB_MICROVM_REDIRECT").is_none_or(|v| v != "0")
        && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    for mode in ["calls", "rewrite"] {
        let o = std::process::Command::new(programs().join("redirect"))
            .arg(mode)
            .output()
            .expect("run natively");
        assert!(o.status.success(), "native {mode}: {o:?}");
        let native = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(native.starts_with("site as built\n"), "{native}");
        let mut w = Workload::new(format!("{PROGRAMS_IN_SANDBOX}/redirect"), [mode])
            .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
            .isolation(IsolationRequest::MicroVm);
        w.limits.wall_time = Some(Duration::from_secs(120));
        let out = exited(&run(w), mode);
        let want = if redirects {
            native.replacen("site as built", "site redirected", 1)
        } else {
            native
        };
        assert_eq!(out, want, "{mode}");
    }
}

/// The user-mode entry entered by hand, as a workload may: what it answers is right,
/// what it does not goes through the exit path, and a continuation that leads out of
/// user code (nowhere, the stub's `iretq`, the supervisor's pages, a non-canonical
/// address) is the process's SIGSEGV, never the VMM's trouble.
#[test]
fn the_user_mode_entry_resists_a_workload_that_enters_it() {
    if !backend_ready(IsolationRequest::MicroVm) {
        return;
    }
    let mut w = Workload::new(format!("{PROGRAMS_IN_SANDBOX}/redirect"), ["forge"])
        .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
        .isolation(IsolationRequest::MicroVm);
    w.limits.wall_time = Some(Duration::from_secs(120));
    let out = exited(&run(w), "forge");
    let rest = out.split_once('\n').map_or("", |(_, r)| r);
    assert_eq!(
        rest,
        "written through the entry\n\
         fs through the entry: 0 0x5eed, refused -1 0x5eed\n\
         continuation 0x10: Segmentation fault\n\
         continuation 0x7fffffffd006: Segmentation fault\n\
         continuation 0xffffffffffe04000: Segmentation fault\n\
         continuation 0x8000000000000000: Segmentation fault\n\
         still here\n"
    );
}

/// The stub's warming pass (a fork started ahead for a warm template runs it before
/// its run) entered by hand, as a workload may: it touches the workload's own pages
/// and changes none of their bytes; a supervisor page or a write to a read-only page is
/// the process's SIGSEGV; its doorbell rung from user code is a plain syscall. Each pass
/// ends at its doorbell with nothing to return to: the child's SIGSEGV, never the
/// VMM's trouble.
#[test]
fn the_warming_pass_resists_a_workload_that_enters_it() {
    if !backend_ready(IsolationRequest::MicroVm) {
        return;
    }
    let mut w = Workload::new(format!("{PROGRAMS_IN_SANDBOX}/redirect"), ["warmpass"])
        .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
        .isolation(IsolationRequest::MicroVm);
    w.limits.wall_time = Some(Duration::from_secs(120));
    let out = exited(&run(w), "warmpass");
    assert_eq!(
        out,
        "own pages: Segmentation fault\n\
         supervisor page: Segmentation fault\n\
         read-only page written: Segmentation fault\n\
         doorbell as getpid: same\n\
         still here\n"
    );
}
