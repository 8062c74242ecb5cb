//! Snapshots and forks of a live micro-VM, through the library: a fork goes on from
//! a running Python process's state and a file in /tmp, then diverges from its
//! parent; fifty sandboxes start from one snapshot at once; clones read different
//! random bytes and boot ids; a host file replaced under a held descriptor makes a
//! start fail, naming the file.

use std::time::{Duration, Instant};

use hsb_tests::*;
use hybrid_sandbox::{IsolationRequest, Live};

/// Whether the micro-VM runs here; the tests of this file run one at a time.
fn ready() -> Option<std::sync::MutexGuard<'static, ()>> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if !backend_ready(IsolationRequest::MicroVm) {
        return None;
    }
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

fn vm() -> Workload {
    Workload::default().isolation(IsolationRequest::MicroVm)
}

/// A Python process that keeps a counter: each line written to the FIFO /tmp/in adds
/// to it; after each, /tmp/out holds the count, fresh random bytes from `os.urandom`
/// and `random.random()` (whose generator was seeded before any snapshot).
const COUNTER: &str = r#"
import os, random
n = 0
# The FIFO stays open at both ends here: reads wait for the next line, never see
# the end of a writer.
r = os.open("/tmp/in", os.O_RDONLY | os.O_NONBLOCK)
w = os.open("/tmp/in", os.O_WRONLY)
os.set_blocking(r, True)
f = os.fdopen(r)
open("/tmp/ready", "w").close()
while True:
    n += int(f.readline())
    with open("/tmp/out.tmp", "w") as o:
        o.write("%d %s %r" % (n, os.urandom(16).hex(), random.random()))
    os.rename("/tmp/out.tmp", "/tmp/out")
"#;

/// Feeds `add` to the counter of `live` and returns what it wrote: count, urandom hex,
/// random().
async fn feed(live: &Live, add: u32) -> (u64, String, String) {
    let before = live.read_file("/tmp/out").await.ok();
    live_sh(live, &format!("echo {add} > /tmp/in")).await;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(b) = live.read_file("/tmp/out").await {
            if Some(&b) != before.as_ref() {
                let s = String::from_utf8(b).unwrap();
                let mut it = s.split(' ');
                let n = it.next().unwrap().parse().unwrap();
                let u = it.next().unwrap().to_string();
                let r = it.next().unwrap().to_string();
                return (n, u, r);
            }
        }
        assert!(Instant::now() < until, "the counter never answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `live.fork()`, failing the test (instead of hanging it) when it takes a minute.
async fn fork_within(live: &Live, what: &str) -> Live {
    match tokio::time::timeout(Duration::from_secs(60), live.fork()).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => panic!("{what}: {}", e.chain()),
        Err(_) => panic!("{what}: no answer within a minute"),
    }
}

/// A live sandbox whose Python counter runs in the background, blocked on the FIFO.
async fn counter_sandbox() -> Live {
    let live = live_create(vm()).await;
    live.write_file("/tmp/counter.py", COUNTER).await.unwrap();
    live_sh(
        &live,
        "busybox mkfifo /tmp/in && (python3 /tmp/counter.py >/dev/null 2>&1 &) && \
         while [ ! -e /tmp/ready ]; do busybox sleep 0.01; done",
    )
    .await;
    live
}

#[test]
fn fork_goes_on_from_a_running_python_process_and_diverges() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let parent = counter_sandbox().await;
        assert_eq!(feed(&parent, 5).await.0, 5);
        parent.write_file("/tmp/file", "parent").await.unwrap();

        let child = parent
            .fork()
            .await
            .unwrap_or_else(|e| panic!("fork: {}", e.chain()));
        // The child's Python process goes on from the parent's count...
        assert_eq!(child.read_file("/tmp/file").await.unwrap(), b"parent");
        let (c1, cu, cr) = feed(&child, 10).await;
        assert_eq!(c1, 15, "the fork's counter goes on from the parent's");
        // ...without touching the parent's.
        let (p1, pu, pr) = feed(&parent, 1).await;
        assert_eq!(p1, 6, "the parent's counter is its own");
        assert_eq!(feed(&child, 100).await.0, 115);
        // What the guest asks the host for is fresh in each; what was in memory at the
        // snapshot (the generator seeded at start) is shared.
        assert_ne!(cu, pu, "os.urandom differs between parent and fork");
        assert_eq!(cr, pr, "random.random() is in-memory state the fork shares");

        // Files diverge too.
        child.write_file("/tmp/file", "child").await.unwrap();
        assert_eq!(parent.read_file("/tmp/file").await.unwrap(), b"parent");
        assert_eq!(child.read_file("/tmp/file").await.unwrap(), b"child");
        // The VM identity the guest sees differs; it stays within one VM.
        let boot = "busybox cat /proc/sys/kernel/random/boot_id";
        let (pb, cb) = (live_sh(&parent, boot).await, live_sh(&child, boot).await);
        assert_ne!(pb, cb, "each start has its own boot id");
        assert_eq!(pb, live_sh(&parent, boot).await, "a VM's boot id stays");
        // The parent's memory churns (a process fills 24 MiB with bytes that are not
        // zero and ends: its frames are given back), then a second snapshot of it: a
        // layer of what changed over the first. Memory a clone's new process gets
        // reads as zero there, and the counter goes on from the parent's new count.
        live_sh(
            &parent,
            "python3 -c \"b = bytearray(b'\\xa5') * (24 << 20); print(len(b))\"",
        )
        .await;
        let second = parent.fork().await.unwrap();
        assert_eq!(feed(&second, 2).await.0, 8, "the second fork has the new count");
        let zeros = "python3 -c \"import hashlib; print(hashlib.sha256(bytes(24 << 20)).hexdigest(), sum(bytearray(24 << 20)))\"";
        let expected = live_sh(&parent, zeros).await;
        assert!(expected.ends_with(" 0\n"), "{expected}");
        assert_eq!(live_sh(&second, zeros).await, expected);
        assert_eq!(feed(&parent, 1).await.0, 7);
        second.destroy().await.unwrap();
        // Two snapshots in a row, nothing changed between: the second adds nothing
        // over the first, and a start from it is the parent as it is.
        let _first = parent.snapshot().await.unwrap();
        let again = parent.snapshot().await.unwrap();
        let third = again.start().await.unwrap();
        assert_eq!(feed(&third, 3).await.0, 10);
        assert_eq!(live_sh(&third, zeros).await, expected);
        third.destroy().await.unwrap();
        // A fork of a fork.
        let grandchild = child.fork().await.unwrap();
        assert_eq!(feed(&grandchild, 1000).await.0, 1115);
        assert_eq!(feed(&child, 1).await.0, 116);
        for l in [grandchild, child, parent] {
            l.destroy().await.unwrap();
        }
    });
}

#[test]
fn fifty_sandboxes_start_from_one_snapshot_at_once() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let parent = counter_sandbox().await;
        assert_eq!(feed(&parent, 7).await.0, 7);
        let snap = parent
            .snapshot()
            .await
            .unwrap_or_else(|e| panic!("snapshot: {}", e.chain()));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let s = snap.clone();
            set.spawn(async move { s.start().await });
        }
        let mut clones = Vec::new();
        while let Some(r) = set.join_next().await {
            clones.push(
                r.unwrap()
                    .unwrap_or_else(|e| panic!("start: {}", e.chain())),
            );
        }
        assert_eq!(clones.len(), 50);
        // Each goes on from the snapshot on its own, all at once.
        let mut set = tokio::task::JoinSet::new();
        for (i, c) in clones.into_iter().enumerate() {
            set.spawn(async move {
                let got = feed(&c, i as u32).await;
                (i, got, c)
            });
        }
        let mut randoms = std::collections::HashSet::new();
        let mut clones = Vec::new();
        while let Some(r) = set.join_next().await {
            let (i, (n, u, _), c) = r.unwrap();
            assert_eq!(n, 7 + i as u64, "clone {i}");
            randoms.insert(u);
            clones.push(c);
        }
        assert_eq!(
            randoms.len(),
            50,
            "every clone read different os.urandom bytes"
        );
        // The parent is untouched.
        assert_eq!(feed(&parent, 1).await.0, 8);
        for c in clones {
            c.destroy().await.unwrap();
        }
        parent.destroy().await.unwrap();
    });
}

#[test]
fn a_host_file_replaced_under_a_held_descriptor_fails_the_start_naming_it() {
    let Some(_serial) = ready() else {
        return;
    };
    let dir = writable_tempdir();
    let file = dir.path().join("held.txt");
    std::fs::write(&file, "original\n").unwrap();
    set_mode(&file, 0o666);
    runtime().block_on(async {
        let live = live_create(vm().mount(Mount::rw(dir.path(), "/data"))).await;
        live_sh(
            &live,
            "(python3 -c \"import time; f = open('/data/held.txt'); open('/tmp/ready', 'w').close(); time.sleep(3600)\" >/dev/null 2>&1 &) && \
             while [ ! -e /tmp/ready ]; do busybox sleep 0.01; done",
        )
        .await;
        let snap = live.snapshot().await.unwrap();
        // Unchanged: a start reopens it and goes on.
        let ok = snap.start().await.unwrap_or_else(|e| panic!("start: {}", e.chain()));
        assert_eq!(live_sh(&ok, "busybox cat /data/held.txt").await, "original\n");
        ok.destroy().await.unwrap();
        // Replaced on the host (same name, another file): the start fails, naming it.
        let tmp = dir.path().join("new.txt");
        std::fs::write(&tmp, "replaced\n").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let err = snap.start().await.expect_err("the start must fail").chain();
        assert!(err.contains("/data/held.txt"), "{err}");
        assert!(err.contains("changed"), "{err}");
        // Changed in place (size and time): refused too.
        let snap = live.snapshot().await.unwrap();
        std::fs::write(&file, "replaced and longer\n").unwrap();
        let err = snap.start().await.expect_err("the start must fail").chain();
        assert!(err.contains("/data/held.txt"), "{err}");
        live.destroy().await.unwrap();
    });
}

#[test]
fn a_sandbox_holding_a_terminal_refuses_a_snapshot_and_goes_on() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = live_create(vm()).await;
        let mut req = hybrid_sandbox::ExecRequest::new(["busybox", "sleep", "3600"]);
        req.tty = Some(hybrid_sandbox::TtySize { rows: 24, cols: 80 });
        let _exec = live.exec_streaming(req).await.unwrap();
        let err = live.snapshot().await.expect_err("a terminal is not copied");
        assert!(err.chain().contains("terminal"), "{}", err.chain());
        assert_eq!(live_sh(&live, "echo still here").await, "still here\n");
        live.destroy().await.unwrap();
    });
}

/// A Python process counting a periodic timerfd's expiries (a blocking read) and a
/// periodic POSIX timer's signals (a handler), both every 20 ms, into /tmp/t.
const TIMERS: &str = r#"
import ctypes, os, signal, struct
libc = ctypes.CDLL(None, use_errno=True)
hits = [0]
signal.signal(signal.SIGUSR1, lambda *a: hits.__setitem__(0, hits[0] + 1))
spec = struct.pack("qqqq", 0, 20_000_000, 0, 20_000_000)
fd = libc.timerfd_create(1, 0)
assert fd >= 0 and libc.timerfd_settime(fd, 0, spec, None) == 0
sev = struct.pack("qii", 0, signal.SIGUSR1, 0) + bytes(48)
timer = ctypes.c_void_p()
assert libc.timer_create(1, sev, ctypes.byref(timer)) == 0
assert libc.timer_settime(timer, 0, spec, None) == 0
n = 0
while True:
    n += struct.unpack("Q", os.read(fd, 8))[0]
    with open("/tmp/t.tmp", "w") as o:
        o.write("%d %d" % (n, hits[0]))
    os.rename("/tmp/t.tmp", "/tmp/t")
"#;

/// The timerfd expiries and timer signals /tmp/t counts, once both passed `past`.
async fn timers_past(live: &Live, past: (u64, u64)) -> (u64, u64) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(b) = live.read_file("/tmp/t").await {
            let s = String::from_utf8(b).unwrap();
            let (n, h) = s.split_once(' ').unwrap();
            let now = (n.parse().unwrap(), h.parse().unwrap());
            if now.0 > past.0 && now.1 > past.1 {
                return now;
            }
        }
        assert!(Instant::now() < until, "the timers stopped at {past:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fork goes on with its processes' timers: the timerfd still wakes its reader and
/// the POSIX timer still signals, in the fork and in the parent alike.
#[test]
fn a_fork_keeps_its_processes_timers() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let parent = live_create(vm()).await;
        parent.write_file("/tmp/timers.py", TIMERS).await.unwrap();
        live_sh(&parent, "(python3 /tmp/timers.py >/tmp/log 2>&1 &)").await;
        let at_fork = timers_past(&parent, (2, 2)).await;
        let child = fork_within(&parent, "fork of a sandbox with timers").await;
        let later = timers_past(&child, at_fork).await;
        timers_past(&child, (later.0 + 3, later.1 + 3)).await;
        timers_past(&parent, (later.0 + 3, later.1 + 3)).await;
        for l in [child, parent] {
            l.destroy().await.unwrap();
        }
    });
}

/// A live container's snapshot keeps its writable layer only, and says so: files,
/// directories and symlinks of /tmp come back in each start; processes do not.
#[test]
fn a_container_snapshot_keeps_the_writable_layer_only() {
    if !backend_ready(IsolationRequest::Container) {
        return;
    }
    runtime().block_on(async {
        let w = Workload::default().isolation(IsolationRequest::Container);
        let live = live_create(w).await;
        let o = live
            .exec([
                "sh",
                "-c",
                "mkdir -p /tmp/d/e && echo kept > /tmp/d/e/f && chmod 700 /tmp/d && \
                 ln -s d/e/f /tmp/link && (sleep 3600 >/dev/null 2>&1 &)",
            ])
            .await
            .unwrap();
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        let snap = live
            .snapshot()
            .await
            .unwrap_or_else(|e| panic!("{}", e.chain()));
        assert!(
            snap.kept().contains("writable layer only"),
            "{}",
            snap.kept()
        );
        assert!(
            snap.kept().contains("processes are not kept"),
            "{}",
            snap.kept()
        );
        let clone = snap
            .start()
            .await
            .unwrap_or_else(|e| panic!("{}", e.chain()));
        let o = clone
            .exec([
                "sh",
                "-c",
                "cat /tmp/link; stat -c %a /tmp/d; ps -eo comm | grep -c '^sleep$' || true",
            ])
            .await
            .unwrap();
        assert_eq!(stdout(&o), "kept\n700\n0\n", "{o:?}");
        // The original's files are its own.
        clone.write_file("/tmp/d/e/f", "changed").await.unwrap();
        assert_eq!(live.read_file("/tmp/d/e/f").await.unwrap(), b"kept\n");
        clone.destroy().await.unwrap();
        live.destroy().await.unwrap();
    });
}

/// A micro-VM with network egress (its relayed connections are host state) refuses a
/// snapshot, saying why, and goes on.
#[test]
fn a_micro_vm_with_egress_refuses_a_snapshot() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let mut w = vm();
        w.network = Some(hybrid_sandbox::Network::Egress);
        let live = live_create(w).await;
        let err = live.snapshot().await.expect_err("egress is host state");
        assert_eq!(err.kind(), "unsupported", "{}", err.chain());
        assert!(err.chain().contains("egress"), "{}", err.chain());
        assert_eq!(live_sh(&live, "echo still here").await, "still here\n");
        live.destroy().await.unwrap();
    });
}

/// A VM forked hundreds of times while it changes (each fork a new layer of what
/// changed) still starts many live clones at once: the layers' host mappings stay
/// bounded (each VM's RAM is at most a few hundred host mappings).
#[test]
fn hundreds_of_forks_of_a_changing_vm_stay_within_host_limits() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let parent = counter_sandbox().await;
        let mut count = 0;
        for i in 0..300 {
            if i % 10 == 0 {
                count += 1;
                assert_eq!(feed(&parent, 1).await.0, count);
            }
            // Each fork comes right after the counter answered, while its Python
            // blocks again: a snapshot asked for between that syscall's exit and the
            // scheduler's sleep must still be taken (it once waited for the next
            // command, forever).
            let f = fork_within(&parent, &format!("fork {i}")).await;
            f.destroy().await.unwrap();
        }
        let mut clones = Vec::new();
        for i in 0..60 {
            clones.push(fork_within(&parent, &format!("live fork {i}")).await);
        }
        for (i, c) in clones.iter().enumerate() {
            assert_eq!(feed(c, i as u32).await.0, count + i as u64, "clone {i}");
        }
        for c in clones {
            c.destroy().await.unwrap();
        }
        parent.destroy().await.unwrap();
    });
}

/// Forks of a sandbox whose processes hold host files open: each fork goes on with
/// them (the files it took over are its own), the sandbox keeps one thread with a VM
/// made ahead for its next fork, and once the forks and the sandbox are destroyed no
/// thread, VM or descriptor of theirs is left in this process.
#[test]
fn forks_hold_their_parents_files_and_leave_nothing_behind() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let fds = vmm_baseline().await;

        let parent = counter_sandbox().await;
        live_sh(
            &parent,
            "(busybox sleep 1000 < /etc/os-release &) && (busybox sleep 1000 9< /etc/passwd &)",
        )
        .await;
        let mut forks = Vec::new();
        for i in 0..4u32 {
            let f = fork_within(&parent, &format!("fork {i}")).await;
            assert_eq!(feed(&f, 10 + i).await.0, u64::from(10 + i), "fork {i}");
            // The files its processes hold are open in it, readable through them.
            let o = live_sh(&f, "busybox cat /proc/*/fd/9 2>/dev/null | busybox head -1").await;
            assert!(o.starts_with("root:"), "fork {i}: {o:?}");
            forks.push(f);
        }
        // A fork forks in turn (its own first fork, then one from its spare): each
        // goes on from its own parent's count.
        for (j, add) in [(0, 100u32), (1, 200)] {
            let g = fork_within(&forks[0], &format!("fork of a fork {j}")).await;
            assert_eq!(
                feed(&g, add).await.0,
                10 + u64::from(add),
                "fork of a fork {j}"
            );
            g.destroy().await.unwrap();
        }
        // One thread with a VM waits for each forked sandbox's next fork.
        assert!(eventually(10.0, || threads_named(&["hsb-spare"]) == 2));
        // Every VMM thread of the parent and the forks runs under its seccomp filter
        // and with no new privileges (a fork's confines itself before its snapshot
        // comes).
        let vcpus = vcpu_thread_status();
        assert_eq!(vcpus.len(), 5, "the parent and four forks");
        for st in &vcpus {
            assert!(st.contains("\nSeccomp:\t2\n"), "{st}");
            assert!(st.contains("\nNoNewPrivs:\t1\n"), "{st}");
        }
        for f in forks {
            f.destroy().await.unwrap();
        }
        parent.destroy().await.unwrap();
        assert_vmm_gone(fds);
    });
}

/// The VMM's threads of this process.
const VMM_THREADS: [&str; 3] = ["hsb-vcpu", "hsb-spare", "hsb-fastcall"];

/// This process's descriptors once a first sandbox and fork opened the process-wide
/// handles opened lazily, and every VMM thread of theirs ended.
async fn vmm_baseline() -> usize {
    let warm = live_create(vm()).await;
    fork_within(&warm, "warm-up fork")
        .await
        .destroy()
        .await
        .unwrap();
    warm.destroy().await.unwrap();
    assert!(eventually(10.0, || threads_named(&VMM_THREADS) == 0));
    open_fds()
}

/// No VMM thread is left, nor more descriptors than `fds`.
fn assert_vmm_gone(fds: usize) {
    assert!(eventually(10.0, || threads_named(&VMM_THREADS) == 0));
    assert!(
        eventually(10.0, || open_fds() <= fds),
        "descriptors left: {} > {fds}",
        open_fds()
    );
}

/// `/proc/self/task/*/status` of the threads named `hsb-vcpu`.
fn vcpu_thread_status() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            (comm.trim() == "hsb-vcpu").then(|| std::fs::read_to_string(dir.join("status")).ok())?
        })
        .collect()
}

/// A fork racing its original's destroy either succeeds or fails with an error
/// (never hangs), and leaves no thread, VM or descriptor behind either way: the
/// fork's thread, waiting for a snapshot that never comes, ends.
#[test]
fn a_fork_racing_its_originals_destroy_ends_cleanly() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let fds = vmm_baseline().await;
        let (mut made, mut refused) = (0, 0);
        for i in 0..12 {
            let parent = live_create(vm()).await;
            if i % 2 == 1 {
                // A spare waits for the next fork from here on.
                fork_within(&parent, "first fork")
                    .await
                    .destroy()
                    .await
                    .unwrap();
            }
            let fork = tokio::time::timeout(Duration::from_secs(60), parent.fork());
            let (forked, destroyed) = tokio::join!(fork, parent.destroy());
            destroyed.unwrap();
            match forked.expect("the fork never answered") {
                Ok(f) => {
                    made += 1;
                    f.destroy().await.unwrap();
                }
                Err(e) => {
                    refused += 1;
                    let msg = e.chain();
                    assert!(
                        msg.contains("destroyed") || msg.contains("snapshot"),
                        "round {i}: {msg}"
                    );
                }
            }
        }
        assert_eq!(made + refused, 12);
        assert_vmm_gone(fds);
    });
}

/// Reads the System V objects of key `IPC_KEY` (a segment, a semaphore, a queue) and
/// the POSIX message queue `/hsb`, creating them the first time, then leaves its
/// argument in each.
const SYSV: &str = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
K, C = 0x48534231, 0o1000 | 0o600
shm, sem, q = libc.shmget(K, 4096, C), libc.semget(K, 1, C), libc.msgget(K, C)
p = libc.shmat(shm, None, 0)
was = ctypes.string_at(p, 8).rstrip(b"\0").decode() or "-"
buf = ctypes.create_string_buffer(72)
n = libc.msgrcv(q, buf, 64, 0, 0o4000)
msg = buf.raw[8:8 + n].decode() if n >= 0 else "-"
mq = libc.mq_open(b"/hsb", 0o4000 | 0o100 | 2, 0o600, None)
big = ctypes.create_string_buffer(8192)
n = libc.mq_receive(mq, big, 8192, None)
print(was, libc.semctl(sem, 0, 12), msg, big.raw[:n].decode() if n >= 0 else "-")
me = sys.argv[1].encode()
ctypes.memmove(p, me + bytes(8 - len(me)), 8)
libc.semctl(sem, 0, 16, len(me))
libc.msgsnd(q, ctypes.create_string_buffer(b"\1" + bytes(7) + me), len(me), 0)
libc.mq_send(mq, me, len(me), 1)
"#;

/// A fork has the System V IPC objects and POSIX message queues its parent had, with
/// their contents (a segment's memory, semaphore values, queued messages), and from
/// then on its own:
/// what one changes, the other does not see.
#[test]
fn a_fork_has_its_own_system_v_objects() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let parent = live_create(vm()).await;
        parent.write_file("/tmp/sysv.py", SYSV).await.unwrap();
        let py = |l: &Live, arg: &str| {
            let l = l.clone();
            let script = format!("python3 /tmp/sysv.py {arg}");
            async move { live_sh(&l, &script).await }
        };
        assert_eq!(py(&parent, "parent").await, "- 0 - -\n");
        let child = fork_within(&parent, "fork of a sandbox with System V IPC objects").await;
        assert_eq!(py(&child, "child").await, "parent 6 parent parent\n");
        assert_eq!(py(&parent, "again").await, "parent 6 parent parent\n");
        assert_eq!(py(&child, "x").await, "child 5 child child\n");
        assert_eq!(py(&parent, "y").await, "again 5 again again\n");
        for l in [child, parent] {
            l.destroy().await.unwrap();
        }
    });
}
