//! What a workload can make of the host resources and limits of whatever runs it (the
//! micro-VM's VMM, in the caller's process; the host kernel for the container): long
//! scans end at the limits, descriptors and memory stay the sandbox's, the report stays
//! small, guest values never overflow the VMM's arithmetic, and nothing of the host
//! (heap addresses, its timestamp counter, its CPU number) shows. Both backends where
//! both apply; Linux's own answer (the program run natively) where it is the point.

use std::path::PathBuf;
use std::time::Duration;

use hsb_tests::*;
use hybrid_sandbox::{ByteSize, IsolationRequest, Outcome};

const BOTH: [IsolationRequest; 2] = [IsolationRequest::Container, IsolationRequest::MicroVm];

/// The tests of this file one at a time: they push limits and count the process's
/// descriptors, which runs side by side would blur.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn programs() -> PathBuf {
    hsb_tests::programs(env!("CARGO_TARGET_TMPDIR"))
}

fn probe(iso: IsolationRequest, args: &[&str]) -> Workload {
    let mut w = Workload::new(
        format!("{PROGRAMS_IN_SANDBOX}/hostlimits-static"),
        args.iter().copied(),
    )
    .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
    .isolation(iso);
    w.limits.wall_time = Some(Duration::from_secs(60));
    w
}

fn native(args: &[&str]) -> String {
    let o = std::process::Command::new(programs().join("hostlimits-static"))
        .args(args)
        .output()
        .expect("run hostlimits natively");
    assert!(o.status.success(), "native {args:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn exited(o: &Outcome) -> String {
    assert_eq!(
        (o.termination, o.exit_code),
        (Termination::Exited, Some(0)),
        "{:?}: stdout {}\nstderr {}",
        o.isolation,
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(o)
}

/// mincore over 16 GiB cut into 4,000 mappings, in a loop: the wall-time, CPU-time and
/// kill limits end it (the micro-VM's scan took 9.5 s past a 1 s limit, unkillable).
/// The bound on the outcome's wall time is generous (load on a shared machine): what it
/// catches is a scan that ignores the limit for seconds.
#[test]
fn a_long_scan_ends_at_the_limits() {
    let _one = serial();
    for iso in BOTH {
        if !backend_ready(iso) {
            continue;
        }
        let mut w = probe(iso, &["mincore", "16", "4000"]);
        w.limits.wall_time = Some(Duration::from_secs(2));
        let o = run(w);
        assert_eq!(o.termination, Termination::Timeout, "{iso:?}: {o:?}");
        assert!(
            o.wall_time < Duration::from_secs(5),
            "{iso:?}: {:?}",
            o.wall_time
        );

        let mut w = probe(iso, &["mincore", "16", "4000"]);
        w.limits.cpu_time = Some(Duration::from_secs(1));
        w.limits.wall_time = Some(Duration::from_secs(60));
        let o = run(w);
        assert_eq!(o.termination, Termination::CpuLimit, "{iso:?}: {o:?}");
        assert!(
            o.cpu_time < Duration::from_secs(4),
            "{iso:?}: {:?}",
            o.cpu_time
        );

        let rt = runtime();
        let o = rt.block_on(async {
            let mut exec = sandbox()
                .spawn(probe(iso, &["mincore", "16", "4000"]))
                .await
                .expect("spawn");
            let mut out = exec.take_output().expect("output");
            // Killed once it is scanning.
            while let Some(chunk) = out.recv().await {
                if chunk.data.ends_with(b"scanning\n") {
                    break;
                }
            }
            exec.kill_handle().kill();
            exec.wait().await.expect("wait")
        });
        assert_eq!(o.termination, Termination::Killed, "{iso:?}: {o:?}");
    }
}

/// Twenty-five processes each open one file until open fails: in each backend every
/// one ends on EMFILE or ENFILE, and the caller's own descriptor table grows by no more
/// than the micro-VM reports it may hold (the VMM is a thread of the caller: 25 such
/// processes used to take all 20,000 of its descriptors).
#[test]
fn descriptors_stay_the_sandboxs() {
    let _one = serial();
    for iso in BOTH {
        if !backend_ready(iso) {
            continue;
        }
        let before = open_fds();
        let rt = runtime();
        let (o, during) = rt.block_on(async {
            let mut w = probe(
                iso,
                &[
                    "fds",
                    "25",
                    &format!("{PROGRAMS_IN_SANDBOX}/hostlimits-static"),
                ],
            );
            w.stdin = Stdin::Stream;
            let mut exec = sandbox().spawn(w).await.expect("spawn");
            let stdin = exec.take_stdin().expect("stdin");
            let mut out = exec.take_output().expect("output");
            let mut seen = Vec::new();
            while let Some(chunk) = out.recv().await {
                seen.extend_from_slice(&chunk.data);
                if seen.ends_with(b"ready\n") {
                    break;
                }
            }
            let during = open_fds();
            // The caller can still open files.
            assert!(std::fs::File::open("/dev/null").is_ok(), "{iso:?}");
            stdin.write(b"go\n".to_vec()).await.expect("stdin");
            drop(stdin);
            (exec.wait().await.expect("wait"), during)
        });
        assert!(
            stdout(&o).starts_with("children 25: EMFILE or ENFILE 25, other 0\nready\n"),
            "{iso:?}: {}",
            stdout(&o)
        );
        let budget = match iso {
            IsolationRequest::MicroVm => {
                let d = &o.enforcement.limits.details["host_descriptors"];
                d.split_whitespace()
                    .find_map(|w| w.parse::<usize>().ok())
                    .unwrap_or_else(|| panic!("no budget in {d}"))
            }
            _ => 64, // the container's descriptors are its processes', not ours
        };
        // The VMM's own handles (KVM's VM and vCPU, timers, the output channel) come
        // on top of the sandbox's budget.
        assert!(
            during <= before + budget + 32,
            "{iso:?}: the caller went from {before} to {during} descriptors (budget {budget})"
        );
        // What the run held goes when its teardown (supervisor and spawner threads)
        // finishes, which may be just after the outcome on a loaded machine.
        drop(rt);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut now = open_fds();
        while now > before + 8 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
            now = open_fds();
        }
        assert!(
            now <= before + 8,
            "{iso:?}: descriptors left behind ({before} before, {now} 20 s after the end)"
        );
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Twenty thousand calls of numbers no kernel has, under a 1 KiB output limit: the
/// run goes on and the micro-VM's `unimplemented_syscalls` report stays small (it
/// reached 952 KB).
#[test]
fn the_unimplemented_report_is_bounded() {
    let _one = serial();
    for iso in BOTH {
        if !backend_ready(iso) {
            continue;
        }
        let mut w = probe(iso, &["unimpl", "20000"]);
        w.limits.output = Some(ByteSize(1024));
        let o = run(w);
        assert_eq!(exited(&o), "refused 20000 of 20000\n", "{iso:?}");
        let report = serde_json::to_string(&o.unimplemented_syscalls).unwrap();
        assert!(report.len() < 32 * 1024, "{iso:?}: {} bytes", report.len());
        assert!(o.unimplemented_syscalls.len() <= 513, "{iso:?}");
    }
}

/// ITIMER_REAL with an interval of centuries: one SIGALRM and the timer stays armed,
/// as on Linux (the VMM's next expiry overflowed `Instant + Duration`).
#[test]
fn an_interval_timer_of_centuries() {
    let _one = serial();
    let want = native(&["itimer"]);
    assert_eq!(want, "alarms 1, getitimer 0, armed 1\n");
    for iso in BOTH {
        if !backend_ready(iso) {
            continue;
        }
        assert_eq!(exited(&run(probe(iso, &["itimer"]))), want, "{iso:?}");
    }
}

/// Pipe and socket inode numbers behave as pipefs and sockfs numbers do (both ends of
/// a pipe share one, /proc's links name it): the micro-VM's came from its heap
/// addresses, one per open file.
#[test]
fn inode_numbers_are_linuxs() {
    let _one = serial();
    let want = native(&["inodes"]);
    for iso in BOTH {
        if !backend_ready(iso) {
            continue;
        }
        assert_eq!(exited(&run(probe(iso, &["inodes"]))), want, "{iso:?}");
    }
}

/// The guest's timestamp counter is its own where the hypervisor can offset it
/// (VT-x, AMD-V: near zero at VM start, rdtscp's TSC_AUX 0), and the report says so;
/// on PVM, which cannot, the report says the guest reads the host's.
#[test]
fn the_timestamp_counter_is_reported_and_per_vm_where_possible() {
    let _one = serial();
    if !backend_ready(IsolationRequest::MicroVm) {
        return;
    }
    let o = run(probe(IsolationRequest::MicroVm, &["tsc"]));
    let out = exited(&o);
    let vm = o.enforcement.vm.as_ref().expect("vm report");
    let note = vm.timestamp_counter.as_deref().unwrap_or_default();
    let words: Vec<&str> = out.split_whitespace().collect();
    let (tsc, aux): (u64, u32) = (words[1].parse().unwrap(), words[3].parse().unwrap());
    if vm.kvm_kind == "pvm" {
        assert!(note.starts_with("the host's"), "{note}");
        eprintln!(
            "PVM: the guest reads the host's counter ({tsc}) and TSC_AUX ({aux}), as reported"
        );
    } else {
        assert!(note.starts_with("per VM"), "{note}");
        // A second of a 5 GHz counter is 5e9: the run is far shorter than 100 s.
        assert!(tsc < 500_000_000_000, "rdtsc {tsc} is not near zero");
        assert_eq!(aux, 0, "rdtscp gives the host CPU");
    }
}

/// Symlinks with 4,000-byte targets in /tmp until one fails, under a 64 MiB memory
/// limit: in the micro-VM their names and targets (the VMM's memory) are charged to the
/// sandbox, so the workload gets ENOSPC near the limit and goes on (it used to grow the
/// caller's memory without bound).
#[test]
fn tmp_names_and_targets_are_charged_to_the_sandbox() {
    let _one = serial();
    if !backend_ready(IsolationRequest::MicroVm) {
        return;
    }
    let mut w = probe(IsolationRequest::MicroVm, &["links", "4000"]);
    w.limits.memory = Some(ByteSize::mib(64));
    let o = run(w);
    let out = exited(&o);
    let n: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(out.ends_with("then errno 28\n"), "{out}");
    assert!(n > 1000 && n * 4000 < 64 << 20, "{out}");
    assert!(o.peak_memory_bytes <= 64 << 20, "{}", o.peak_memory_bytes);
}

/// Pipes filled to the brim until something gives, under a 16 MiB memory limit: the
/// micro-VM's pipe buffers (the VMM's memory) are the sandbox's, and the run ends at its
/// memory limit instead of growing the caller.
#[test]
fn pipe_buffers_are_charged_to_the_sandbox() {
    let _one = serial();
    if !backend_ready(IsolationRequest::MicroVm) {
        return;
    }
    let mut w = probe(IsolationRequest::MicroVm, &["pipes"]);
    w.limits.memory = Some(ByteSize::mib(16));
    w.limits.open_files = Some(4096);
    let o = run(w);
    assert_eq!(o.termination, Termination::MemoryLimit, "{o:?}");
    assert!(o.peak_memory_bytes <= 16 << 20, "{}", o.peak_memory_bytes);
}

/// Watches and timers a workload makes without end stay bounded in the micro-VM's
/// VMM, with Linux's answers at Linux's limits: inotify instances stop at 128
/// (`EMFILE`), a queue past 16,384 events ends with one `IN_Q_OVERFLOW`, and POSIX
/// timers stop at 65,536 (`EAGAIN`). (The container's are the host kernel's, per
/// host user: not compared.)
#[test]
fn watches_and_timers_stay_bounded() {
    let _one = serial();
    let iso = IsolationRequest::MicroVm;
    if !backend_ready(iso) {
        return;
    }
    let code = r#"
import ctypes, os, struct
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while len(fds) < 1000:
    fd = libc.inotify_init1(os.O_NONBLOCK)
    if fd < 0:
        break
    fds.append(fd)
print("instances", len(fds), os.strerror(ctypes.get_errno()))
fd = fds[0]
print("watch", libc.inotify_add_watch(fd, b"/tmp", 0x100))
for i in range(16500):
    os.close(os.open("/tmp/f%d" % i, os.O_CREAT | os.O_WRONLY))
masks = []
while True:
    try:
        b = os.read(fd, 65536)
    except BlockingIOError:
        break
    off = 0
    while off < len(b):
        wd, mask, cookie, ln = struct.unpack_from("iIII", b, off)
        masks.append(mask)
        off += 16 + ln
print("events", len(masks), hex(masks[-1]))
timer = ctypes.c_void_p()
sev = struct.pack("qii", 0, 0, 1) + bytes(48)
n = 0
while n < 70000 and libc.timer_create(1, sev, ctypes.byref(timer)) == 0:
    n += 1
print("timers", n, os.strerror(ctypes.get_errno()))
"#;
    let mut w = Workload::new("python3", ["-c", code]).isolation(iso);
    w.limits.wall_time = Some(Duration::from_secs(300));
    let o = run(w);
    assert_eq!(
        exited(&o),
        "instances 128 Too many open files\nwatch 1\nevents 16385 0x4000\n\
         timers 65536 Resource temporarily unavailable\n"
    );
}

/// System V IPC objects are bounded as on Linux (32,000 queues, 4,096 segments), and
/// what they hold in the VMM (messages, semaphores) is charged to the sandbox's memory:
/// a workload filling queues and making semaphore sets without end gets `ENOMEM`
/// within its limit, never the host's memory. (The container's are the host kernel's,
/// in its own IPC namespace: not compared.)
#[test]
fn system_v_objects_stay_bounded() {
    let _one = serial();
    let iso = IsolationRequest::MicroVm;
    if !backend_ready(iso) {
        return;
    }
    let code = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
err = lambda: os.strerror(ctypes.get_errno())
qs = []
while len(qs) < 40000:
    q = libc.msgget(0, 0o600)
    if q < 0:
        break
    qs.append(q)
print("queues", len(qs), err())
buf = ctypes.create_string_buffer(b"\1" + bytes(8199))
sent = 0
for q in qs:
    if libc.msgsnd(q, buf, 8192, 0o4000) or libc.msgsnd(q, buf, 8192, 0o4000):
        break
    sent += 2
print("filled", sent * 8192 < (64 << 20), err())
for q in qs:
    libc.msgctl(q, 0, None)
sets = []
while len(sets) < 1000:
    s = libc.semget(0, 32000, 0o600)
    if s < 0:
        break
    sets.append(s)
print("sets", len(sets) < 1000, err())
for s in sets:
    libc.semctl(s, 0, 0)
segs = []
while len(segs) < 5000:
    s = libc.shmget(0, 1 << 30, 0o600)
    if s < 0:
        break
    segs.append(s)
print("segments", len(segs), err())
"#;
    let mut w = Workload::new("python3", ["-c", code]).isolation(iso);
    w.limits.memory = Some(ByteSize::mib(64));
    w.limits.wall_time = Some(Duration::from_secs(300));
    let o = run(w);
    assert_eq!(
        exited(&o),
        "queues 32000 No space left on device\nfilled True Cannot allocate memory\n\
         sets True Cannot allocate memory\nsegments 4096 No space left on device\n"
    );
}
