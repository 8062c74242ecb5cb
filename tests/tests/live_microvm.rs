//! Live micro-VM sandboxes, through the library: the VM stays, each exec is a new
//! guest process. The agent scenario, background processes across execs, pause and
//! resume, several execs at once, stdin streams, per-exec limits, the file API under
//! attack (`..`, absolute escapes, planted symlinks), sizes charged to the sandbox,
//! stats, destroy, lifetime and idle timeout, drop, and many sandboxes at once.

use std::time::{Duration, Instant};

use hsb_tests::*;
use hybrid_sandbox::{
    EndReason, ExecLimits, ExecRequest, IsolationRequest, Live, LiveOptions, LiveState, Stdin,
    StreamKind, TtySize,
};

/// Whether the micro-VM runs here; and the tests of this file run one at a time (they
/// count the process's vCPU threads and descriptors, and share 2 cores).
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

async fn create_in(sb: &Sandbox, w: Workload, opts: LiveOptions) -> Live {
    sb.create(w, opts)
        .await
        .unwrap_or_else(|e| panic!("create: {}", e.chain()))
}

async fn create(opts: LiveOptions) -> Live {
    create_in(sandbox(), vm(), opts).await
}

async fn sh_out(live: &Live, script: &str) -> Outcome {
    live.exec(["busybox", "sh", "-c", script])
        .await
        .unwrap_or_else(|e| panic!("exec {script}: {}", e.chain()))
}

#[test]
fn agent_scenario_state_kept_between_execs() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        assert_eq!(live.isolation(), Isolation::MicroVm);
        assert!(live.enforcement().seccomp.enforced);
        assert!(live.enforcement().vm.is_some());
        live.write_file(
            "/tmp/job.sh",
            "n=$(cat /tmp/count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > /tmp/count; echo run $n",
        )
        .await
        .unwrap();
        let o = sh_out(&live, "busybox sh /tmp/job.sh").await;
        assert_eq!(stdout(&o), "run 1\n", "{o:?}");
        assert_eq!(o.termination, Termination::Exited);
        assert_eq!(o.isolation, Isolation::MicroVm);
        assert_eq!(live.read_file("/tmp/count").await.unwrap(), b"1\n");
        let o = sh_out(&live, "busybox sh /tmp/job.sh").await;
        assert_eq!(stdout(&o), "run 2\n");
        assert_eq!(live.read_file("/tmp/count").await.unwrap(), b"2\n");
        // Per-exec env, cwd and stdin; the exit code and stderr come back.
        let mut req = ExecRequest::new([
            "busybox",
            "sh",
            "-c",
            "busybox cat; echo $GREETING; pwd; echo oops >&2; exit 7",
        ]);
        req.env.insert("GREETING".into(), "hi".into());
        req.cwd = Some("/proc".into());
        req.stdin = Stdin::Bytes(b"in\n".to_vec());
        let o = live.exec_with(req).await.unwrap();
        assert_eq!(stdout(&o), "in\nhi\n/proc\n");
        assert_eq!(o.stderr, b"oops\n");
        assert_eq!(o.exit_code, Some(7));
        // Each exec is a new process of its own, child of the sandbox's init.
        let o = sh_out(&live, "echo $$ $PPID; busybox id -u").await;
        let out = stdout(&o);
        let mut it = out.split_whitespace();
        let (pid, ppid) = (it.next().unwrap(), it.next().unwrap());
        assert_ne!(pid, "1");
        assert_eq!(ppid, "1", "{out}");
        assert_eq!(it.next(), Some("1000"));
        // A program that does not exist is an error, not an outcome.
        let e = live.exec(["no-such-program"]).await.unwrap_err();
        assert_eq!(e.kind(), "program_not_found", "{}", e.chain());
        let e = live.exec(["/tmp/job.sh"]).await.unwrap_err();
        assert_eq!(e.kind(), "not_executable", "{}", e.chain());
        // An exec on a terminal (tests/tests/microvm_tty.rs has more).
        let mut req = ExecRequest::new(["busybox", "sh", "-c", "busybox tty"]);
        req.tty = Some(TtySize::default());
        let o = live.exec_with(req).await.unwrap();
        assert_eq!(stdout(&o), "/dev/pts/0\r\n", "{o:?}");
        live.destroy().await.unwrap();
        live.destroy().await.unwrap();
        assert_eq!(live.state(), LiveState::Destroyed);
        assert_eq!(live.ended(), Some(EndReason::Destroyed));
        assert_eq!(live.exec(["busybox", "true"]).await.unwrap_err().kind(), "wrong_state");
    });
}

/// A counter a background loop of the sandbox writes into a host directory (so the
/// host can watch it while the sandbox is paused).
fn counter(dir: &std::path::Path) -> u64 {
    std::fs::read_to_string(dir.join("tick"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn background_process_survives_and_pause_stops_it() {
    let Some(_serial) = ready() else {
        return;
    };
    let out = writable_tempdir();
    runtime().block_on(async {
        let w = vm().mount(Mount::rw(out.path(), "/out"));
        let live = create_in(sandbox(), w, LiveOptions::default()).await;
        let o = sh_out(
            &live,
            "(i=0; while :; do i=$((i+1)); echo $i > /out/tick.new; busybox mv /out/tick.new /out/tick; \
             echo tick >> /tmp/t; busybox sleep 0.05; done) >/dev/null 2>&1 &",
        )
        .await;
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        // The loop outlives the exec that started it, and other execs see it.
        assert!(eventually(20.0, || counter(out.path()) >= 3));
        let o = sh_out(&live, "busybox cat /out/tick; busybox wc -l < /tmp/t").await;
        let nums: Vec<u64> = stdout(&o)
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        assert!(nums[0] >= 3 && nums[1] >= 3, "{nums:?}");
        let st = live.stats().await.unwrap();
        assert!(st.processes >= 1, "{st:?}");
        assert!(st.memory_bytes > 0 && st.peak_memory_bytes >= st.memory_bytes, "{st:?}");
        assert!(st.disk_bytes > 0, "{st:?}");

        live.pause().await.unwrap();
        assert_eq!(live.state(), LiveState::Paused);
        let frozen = counter(out.path());
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(counter(out.path()), frozen, "the loop ran while paused");
        // While paused, execs and file operations are refused with the state named.
        let e = live.exec(["busybox", "true"]).await.unwrap_err();
        assert_eq!(e.kind(), "wrong_state", "{}", e.chain());
        assert_eq!(live.read_file("/tmp/t").await.unwrap_err().kind(), "wrong_state");
        // Stats still answer.
        assert!(live.stats().await.unwrap().paused_ms >= 400.0);
        live.resume().await.unwrap();
        assert!(eventually(20.0, || counter(out.path()) > frozen + 2));
        live.destroy().await.unwrap();
    });
}

/// A file lock a background process holds keeps later execs from it (the VM's
/// processes lock against each other as on Linux: util-linux's `flock -n` fails,
/// `flock` waits), and goes when that process ends.
#[test]
fn a_lock_held_in_the_background_holds_across_execs() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        let o = sh_out(
            &live,
            "busybox sh -c 'exec 9>/tmp/lock; /usr/bin/flock 9; echo $$ > /tmp/holder; \
             exec busybox sleep 60' >/dev/null 2>&1 &",
        )
        .await;
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        let o = sh_out(
            &live,
            "while ! busybox test -s /tmp/holder; do busybox sleep 0.02; done; \
             /usr/bin/flock -n /tmp/lock true; echo held=$?",
        )
        .await;
        assert_eq!(stdout(&o), "held=1\n", "{o:?}");
        // A waiter in one exec; the holder ended from another.
        let waiter = {
            let live = live.clone();
            let mut req = ExecRequest::new(["/usr/bin/flock", "/tmp/lock", "echo", "got it"]);
            req.limits = ExecLimits {
                wall_time: Some(Duration::from_secs(30)),
                ..ExecLimits::default()
            };
            tokio::spawn(async move { live.exec_with(req).await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let o = sh_out(&live, "busybox kill $(busybox cat /tmp/holder)").await;
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        let o = waiter.await.unwrap();
        assert_eq!(stdout(&o), "got it\n", "{o:?}");
        let o = sh_out(&live, "/usr/bin/flock -n /tmp/lock true; echo free=$?").await;
        assert_eq!(stdout(&o), "free=0\n", "{o:?}");
        live.destroy().await.unwrap();
    });
}

#[test]
fn paused_time_is_not_counted_against_an_execs_wall_time() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        let mut req = ExecRequest::new(["busybox", "sh", "-c", "busybox sleep 1; echo done"]);
        req.limits = ExecLimits {
            wall_time: Some(Duration::from_millis(2500)),
            ..ExecLimits::default()
        };
        let mut e = live.exec_streaming(req).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        live.pause().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        live.resume().await.unwrap();
        let o = e.wait().await.unwrap();
        assert_eq!(
            (o.termination, stdout(&o).as_str()),
            (Termination::Exited, "done\n"),
            "{o:?}"
        );
        assert!(o.wall_time < Duration::from_millis(2500), "{o:?}");
        // A per-exec timeout ends the exec, not the sandbox.
        let mut req = ExecRequest::new(["busybox", "sleep", "30"]);
        req.limits.wall_time = Some(Duration::from_millis(300));
        let o = live.exec_with(req).await.unwrap();
        assert_eq!(o.termination, Termination::Timeout, "{o:?}");
        assert_eq!(live.state(), LiveState::Running);
        // CPU time too.
        let mut req = ExecRequest::new(["busybox", "sh", "-c", "while :; do :; done"]);
        req.limits.cpu_time = Some(Duration::from_millis(300));
        req.limits.wall_time = Some(Duration::from_secs(60));
        let o = live.exec_with(req).await.unwrap();
        assert_eq!(o.termination, Termination::CpuLimit, "{o:?}");
        assert_eq!(stdout(&sh_out(&live, "echo alive").await), "alive\n");
    });
}

/// See [`exec_cpu_limit_counts_every_process`].
#[test]
fn an_execs_cpu_time_counts_every_process_it_starts() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        exec_cpu_limit_counts_every_process(&live, "busybox ", Duration::from_millis(600)).await;
    });
}

#[test]
fn several_execs_at_once() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let live = live.clone();
                tokio::spawn(async move {
                    let o = live
                        .exec([
                            "busybox",
                            "sh",
                            "-c",
                            &format!("busybox sleep 0.3; echo {i}"),
                        ])
                        .await
                        .unwrap();
                    (i, o)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(live.stats().await.unwrap().execs_running >= 1);
        for t in tasks {
            let (i, o) = t.await.unwrap();
            assert_eq!(stdout(&o), format!("{i}\n"));
        }
        assert_eq!(live.stats().await.unwrap().execs_running, 0);
    });
}

#[test]
fn streaming_stdin_signal_and_kill() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        // stdin as a stream, output streamed back as it comes.
        let mut req = ExecRequest::new(["busybox", "cat"]);
        req.stdin = Stdin::Stream;
        let mut e = live.exec_streaming(req).await.unwrap();
        let stdin = e.take_stdin().unwrap();
        let mut out = e.take_output().unwrap();
        stdin.write(b"one\n".to_vec()).await.unwrap();
        let first = out.recv().await.unwrap();
        assert_eq!(
            (first.stream, first.data.as_slice()),
            (StreamKind::Stdout, &b"one\n"[..])
        );
        stdin.write(b"two\n".to_vec()).await.unwrap();
        drop(stdin);
        let o = e.wait().await.unwrap();
        assert_eq!((o.exit_code, stdout(&o).as_str()), (Some(0), "one\ntwo\n"));
        // A writer faster than the program reads is held back (as by a full pipe):
        // the host does not keep what the program has not taken.
        let mut req = ExecRequest::new(["busybox", "sh", "-c", "busybox sleep 30"]);
        req.stdin = Stdin::Stream;
        let mut e = live.exec_streaming(req).await.unwrap();
        let stdin = e.take_stdin().unwrap();
        let mut taken = 0usize;
        let piece = vec![b'x'; 1 << 20];
        let writes = async {
            while taken < 256 << 20 {
                stdin.write(piece.clone()).await.unwrap();
                taken += piece.len();
            }
        };
        let held = tokio::time::timeout(Duration::from_secs(3), writes)
            .await
            .is_err();
        assert!(
            held && taken <= 32 << 20,
            "{} MiB of stdin taken while the program read none",
            taken >> 20
        );
        e.kill_handle().kill();
        let _ = e.wait().await;
        // Its end gone, the writer is told (not left waiting for room).
        let after = tokio::time::timeout(Duration::from_secs(20), stdin.write(piece.clone())).await;
        assert!(
            matches!(after, Ok(Err(ref err)) if err.kind() == std::io::ErrorKind::BrokenPipe),
            "a write after the exec ended: {after:?}"
        );
        // A signal the program handles.
        let req = ExecRequest::new([
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-term; exit 5' TERM; echo ready; while :; do busybox sleep 0.05; done",
        ]);
        let mut e = live.exec_streaming(req).await.unwrap();
        let mut out = e.take_output().unwrap();
        let first = out.recv().await.unwrap();
        assert_eq!(first.data, b"ready\n");
        e.signal(libc::SIGTERM).unwrap();
        let o = e.wait().await.unwrap();
        assert_eq!(o.exit_code, Some(5), "{o:?}");
        // The kill handle ends an exec, not the sandbox.
        let mut e = live
            .exec_streaming(ExecRequest::new(["busybox", "sleep", "30"]))
            .await
            .unwrap();
        e.kill_handle().kill();
        let o = e.wait().await.unwrap();
        assert_eq!(o.termination, Termination::Killed, "{o:?}");
        assert_eq!(live.state(), LiveState::Running);
        // An output limit ends the exec only.
        let mut req = ExecRequest::new(["busybox", "yes"]);
        req.limits.output = Some(hybrid_sandbox::ByteSize(10_000));
        let o = live.exec_with(req).await.unwrap();
        assert_eq!(o.termination, Termination::OutputLimit, "{o:?}");
        assert_eq!(o.stdout.len(), 10_000);
        assert_eq!(stdout(&sh_out(&live, "echo alive").await), "alive\n");
    });
}

#[test]
fn file_paths_stay_inside_the_sandbox() {
    let Some(_serial) = ready() else {
        return;
    };
    // A host file the sandbox must never reach, whatever link it plants.
    let host = tempfile::tempdir().unwrap();
    let secret = host.path().join("secret");
    std::fs::write(&secret, "host secret").unwrap();
    let secret_s = secret.display().to_string();
    let marker = format!("hsb-live-vm-{}", std::process::id());
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        // `..` and absolute escapes resolve in the sandbox's own root.
        let e = live
            .read_file("/tmp/../../../etc/shadow")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "not_found", "{}", e.chain());
        let e = live.read_file(&secret_s).await.unwrap_err();
        assert_eq!(e.kind(), "not_found", "{}", e.chain());
        let e = live.write_file("/tmp/../etc/evil", "x").await.unwrap_err();
        assert!(
            matches!(e.kind(), "permission_denied" | "not_found"),
            "{}",
            e.chain()
        );
        assert!(!std::path::Path::new("/etc/evil").exists());
        // Symlinks the workload plants: to a host path, to /etc, to the root, upwards.
        let o = sh_out(
            &live,
            &format!(
                "busybox ln -s {secret_s} /tmp/l1; busybox ln -s /etc /tmp/etc; \
                 busybox ln -s ../../../../.. /tmp/up; busybox ln -s / /tmp/root; \
                 busybox ln -s {} /tmp/dir; busybox mkfifo /tmp/fifo",
                host.path().display()
            ),
        )
        .await;
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        for l in ["/tmp/l1", "/tmp/dir/secret"] {
            let e = live.read_file(l).await.unwrap_err();
            assert_eq!(e.kind(), "not_found", "{l}: {}", e.chain());
        }
        // Writing through a link to a host path creates nothing on the host.
        let _ = live.write_file("/tmp/l1", "overwritten").await;
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
        // Upwards and absolute links land in the sandbox's own root.
        live.write_file(&format!("/tmp/up/tmp/{marker}"), "inside")
            .await
            .unwrap();
        assert!(!std::path::Path::new("/tmp").join(&marker).exists());
        assert_eq!(
            live.read_file(&format!("/tmp/{marker}")).await.unwrap(),
            b"inside"
        );
        let e = live.read_file("/tmp/etc/shadow").await.unwrap_err();
        assert_eq!(e.kind(), "not_found", "{}", e.chain());
        let names: Vec<String> = live
            .list_dir("/tmp/root")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(
            names.contains(&"proc".to_string()) && names.contains(&"tmp".to_string()),
            "{names:?}"
        );
        let st = live.stat("/tmp/l1").await.unwrap();
        assert_eq!(st.kind, hybrid_sandbox::FileKind::Symlink);
        assert_eq!(st.link_target.as_deref(), Some(secret_s.as_str()));
        // FIFOs and devices are refused at once, never opened.
        for p in ["/tmp/fifo", "/dev/zero"] {
            let r = tokio::time::timeout(Duration::from_secs(20), live.read_file(p))
                .await
                .expect("a FIFO or device blocked the file API");
            let e = r.unwrap_err();
            assert_eq!(e.kind(), "invalid_path", "{p}: {}", e.chain());
        }
        // mkdir, rename, remove act in the sandbox as the workload's own calls.
        live.mkdir("/tmp/a/b/c", true).await.unwrap();
        live.write_file("/tmp/a/b/c/f", "x").await.unwrap();
        live.rename("/tmp/a/b/c/f", "/tmp/a/g").await.unwrap();
        assert_eq!(live.read_file("/tmp/a/g").await.unwrap(), b"x");
        assert_eq!(
            live.remove("/tmp/a", false).await.unwrap_err().kind(),
            "not_empty"
        );
        live.remove("/tmp/a", true).await.unwrap();
        assert_eq!(live.stat("/tmp/a").await.unwrap_err().kind(), "not_found");
        // Relative paths are refused before anything is resolved.
        assert_eq!(
            live.read_file("tmp/x").await.unwrap_err().kind(),
            "invalid_path"
        );
        // A file written by the host is the workload's to read.
        let o = sh_out(&live, &format!("busybox cat /tmp/{marker}")).await;
        assert_eq!(stdout(&o), "inside");
    });
}

#[test]
fn uploads_beyond_the_limits_are_refused_with_the_limit_named() {
    let Some(_serial) = ready() else {
        return;
    };
    let mut w = vm();
    w.limits.tmp_size = Some(hybrid_sandbox::ByteSize(1 << 20));
    w.limits.file_size = Some(hybrid_sandbox::ByteSize(600 << 10));
    runtime().block_on(async {
        let live = create_in(sandbox(), w, LiveOptions::default()).await;
        let e = live
            .write_file("/tmp/big", vec![7u8; 700 << 10])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "limit", "{}", e.chain());
        assert!(e.chain().contains("file_size"), "{}", e.chain());
        // Streams are counted too.
        let data: hybrid_sandbox::ByteStream = Box::pin(std::io::Cursor::new(vec![3u8; 700 << 10]));
        let e = live
            .write_file_stream("/tmp/c", data, 0o600)
            .await
            .unwrap_err();
        assert!(e.chain().contains("file_size"), "{}", e.chain());
        // Under file_size each, but two of them overflow /tmp.
        live.write_file("/tmp/a", vec![1u8; 550 << 10])
            .await
            .unwrap();
        let e = live
            .write_file("/tmp/b", vec![2u8; 550 << 10])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "limit", "{}", e.chain());
        assert!(e.chain().contains("tmp_size"), "{}", e.chain());
        // What the workload sees is consistent: the refused files are empty.
        let o = sh_out(&live, "busybox wc -c < /tmp/a; busybox wc -c < /tmp/b").await;
        assert_eq!(stdout(&o), format!("{}\n0\n", 550 << 10));
        assert!(live.stats().await.unwrap().disk_bytes >= 550 << 10);
        // A large stream in and out, in chunks.
        let big: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
        live.remove("/tmp/a", false).await.unwrap();
        let e = live.write_file("/tmp/big", big.clone()).await.unwrap_err();
        assert_eq!(e.kind(), "limit");
    });
}

#[test]
fn large_files_stream_in_and_out() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        let big: Vec<u8> = (0..(16u32 << 20)).map(|i| (i % 251) as u8).collect();
        let data: hybrid_sandbox::ByteStream = Box::pin(std::io::Cursor::new(big.clone()));
        let n = live
            .write_file_stream("/tmp/big", data, 0o644)
            .await
            .unwrap();
        assert_eq!(n, big.len() as u64);
        assert_eq!(live.stat("/tmp/big").await.unwrap().size, big.len() as u64);
        let back = live.read_file("/tmp/big").await.unwrap();
        assert!(back == big, "the file read back differs");
        let o = sh_out(&live, "busybox md5sum /tmp/big").await;
        assert!(
            stdout(&o).starts_with(&format!("{:x}", md5_of(&big))),
            "{o:?}"
        );
    });
}

fn md5_of(data: &[u8]) -> u128 {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, data).unwrap();
    let o = std::process::Command::new("md5sum")
        .arg(&p)
        .output()
        .unwrap();
    u128::from_str_radix(
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap(),
        16,
    )
    .unwrap()
}

#[test]
fn memory_limit_ends_the_process_not_the_sandbox() {
    let Some(_serial) = ready() else {
        return;
    };
    let mut w = vm();
    w.limits.memory = Some(hybrid_sandbox::ByteSize(64 << 20));
    runtime().block_on(async {
        let live = create_in(sandbox(), w, LiveOptions::default()).await;
        // A shell that keeps growing a string until memory runs out.
        let o = sh_out(&live, "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done").await;
        assert_eq!(o.termination, Termination::MemoryLimit, "{o:?}");
        assert_eq!(live.state(), LiveState::Running);
        assert_eq!(stdout(&sh_out(&live, "echo alive").await), "alive\n");
    });
}

/// Polls until `live` is destroyed.
async fn wait_destroyed(live: &Live) -> Option<EndReason> {
    for _ in 0..1000 {
        if live.state() == LiveState::Destroyed {
            return live.ended();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[test]
fn lifetime_and_idle_timeout_destroy_the_sandbox() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create(LiveOptions {
            lifetime: Some(Duration::from_millis(400)),
            idle_timeout: None,
        })
        .await;
        assert_eq!(wait_destroyed(&live).await, Some(EndReason::Lifetime));
        assert_eq!(
            live.exec(["busybox", "true"]).await.unwrap_err().kind(),
            "wrong_state"
        );

        let live = create(LiveOptions {
            lifetime: None,
            idle_timeout: Some(Duration::from_millis(400)),
        })
        .await;
        // An exec running longer than the idle timeout keeps it alive.
        let o = sh_out(&live, "busybox sleep 1; echo done").await;
        assert_eq!(stdout(&o), "done\n");
        assert_eq!(live.state(), LiveState::Running);
        assert_eq!(wait_destroyed(&live).await, Some(EndReason::IdleTimeout));
    });
}

/// vCPU threads: one per live micro-VM.
fn vcpu_threads() -> usize {
    threads_named(&["hsb-vcpu"])
}

/// Whether micro-VMs answer syscalls without an exit here (they do with two host CPUs,
/// unless `HSB_MICROVM_FASTCALL=0`).
fn fast_calls_on() -> bool {
    std::env::var_os("HSB_MICROVM_FASTCALL").is_none_or(|v| v != "0")
        && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
}

/// Every VMM thread: vCPU threads and the fast-call threads some of them started.
fn vmm_threads() -> usize {
    threads_named(&["hsb-vcpu", "hsb-fastcall"])
}

#[test]
fn drop_and_destroy_leave_nothing_behind() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        // Warm up (lazily opened process-wide handles), then count.
        drop(create(LiveOptions::default()).await);
        assert!(eventually(10.0, || vmm_threads() == 0));
        let fds = open_fds();
        for _ in 0..3 {
            let live = create(LiveOptions::default()).await;
            let _bg = sh_out(&live, "busybox sleep 100 &").await;
            // Enough syscalls (4,000 reads and writes) for the VM to start its
            // fast-call thread, which must go with it.
            let o = sh_out(
                &live,
                "busybox dd if=/dev/zero of=/dev/null bs=1 count=2000 2>/dev/null",
            )
            .await;
            assert_eq!(o.exit_code, Some(0), "{o:?}");
            assert_eq!(vcpu_threads(), 1);
            assert_eq!(
                threads_named(&["hsb-fastcall"]),
                usize::from(fast_calls_on())
            );
            drop(live); // the last handle: destroys
                        // Joined by the drop; a joined thread may still be listed in /proc for
                        // the moment the kernel takes to reap it (long on a loaded machine).
            assert!(
                eventually(10.0, || vmm_threads() == 0),
                "the vCPU thread outlived the dropped sandbox: {} VMM threads",
                vmm_threads()
            );
        }
        let live = create(LiveOptions::default()).await;
        live.destroy().await.unwrap();
        assert!(eventually(10.0, || vmm_threads() == 0));
        assert!(
            open_fds() <= fds,
            "host descriptors left: {} > {fds}",
            open_fds()
        );
    });
}

/// How many live micro-VMs `many_sandboxes_at_once` makes (`HSB_LIVE_VMS`, default 24:
/// `scripts/live-microvm-200.sh` runs it with 200).
fn how_many() -> usize {
    std::env::var("HSB_LIVE_VMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

#[test]
fn many_sandboxes_at_once_with_interleaved_execs() {
    let Some(_serial) = ready() else {
        return;
    };
    let n = how_many();
    runtime().block_on(async {
        let mut w = vm();
        w.limits.memory = Some(hybrid_sandbox::ByteSize(64 << 20));
        let mut all = Vec::new();
        for _ in 0..n {
            all.push(create_in(sandbox(), w.clone(), LiveOptions::default()).await);
        }
        assert_eq!(vcpu_threads(), n);
        // Each keeps its own state; execs of all of them interleave.
        for round in 0..3 {
            let tasks: Vec<_> = all
                .iter()
                .enumerate()
                .map(|(i, live)| {
                    let live = live.clone();
                    tokio::spawn(async move {
                        let o = live
                            .exec([
                                "busybox",
                                "sh",
                                "-c",
                                &format!("echo {i}-{round} >> /tmp/log; busybox cat /tmp/log"),
                            ])
                            .await
                            .unwrap();
                        (i, o)
                    })
                })
                .collect();
            for t in tasks {
                let (i, o) = t.await.unwrap();
                let want: String = (0..=round).map(|r| format!("{i}-{r}\n")).collect();
                assert_eq!(stdout(&o), want);
            }
        }
        drop(all);
        assert!(eventually(10.0, || vmm_threads() == 0));
    });
}

#[test]
fn resume_continues_at_once() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        let o = sh_out(
            &live,
            "(python3 -c 'import time\nwhile True:\n    with open(\"/tmp/ticks\", \"a\") as f: f.write(f\"{time.time_ns()}\\n\")\n    time.sleep(0.02)' >/dev/null 2>&1 &)",
        )
        .await;
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        // The ticks the loop wrote (nanoseconds since the epoch, the host's clock).
        let ticks = |live: Live| async move {
            let o = live.exec(["busybox", "cat", "/tmp/ticks"]).await.unwrap();
            stdout(&o)
                .lines()
                .filter_map(|l| l.trim().parse::<u128>().ok())
                .collect::<Vec<_>>()
        };
        let now_ns = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        };
        // Running: ticks come (however loaded the machine is).
        let until = Instant::now() + Duration::from_secs(60);
        while ticks(live.clone()).await.len() < 4 {
            assert!(Instant::now() < until, "the loop never ticked");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        live.pause().await.unwrap();
        let paused = now_ns();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let resuming = now_ns();
        live.resume().await.unwrap();
        // Paused: no tick was written while it was (20 ms of slack at each end: a
        // tick in flight as the pause came, the guest's clock against the host's).
        let during: Vec<_> = ticks(live.clone())
            .await
            .into_iter()
            .filter(|&t| t > paused + 20_000_000 && t + 20_000_000 < resuming)
            .collect();
        assert!(during.is_empty(), "ticks while paused: {during:?}");
        // Resumed: it goes on.
        let until = Instant::now() + Duration::from_secs(60);
        while ticks(live.clone())
            .await
            .iter()
            .filter(|&&t| t > resuming)
            .count()
            < 3
        {
            assert!(Instant::now() < until, "no tick after the resume");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}
