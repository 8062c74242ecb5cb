//! Live container sandboxes, through the library: create once, exec many, files in and
//! out, pause and resume, limits for the sandbox's life, attacks on the file API, many
//! sandboxes at once, and nothing left behind (even after `kill -9` of the caller).

use std::time::Duration;

use hsb_tests::*;
use hybrid_sandbox::{
    EndReason, ExecLimits, ExecRequest, Live, LiveOptions, LiveState, Stdin, StreamKind, TtySize,
};

async fn create_in(sb: &Sandbox, w: Workload, opts: LiveOptions) -> Live {
    sb.create(w, opts)
        .await
        .unwrap_or_else(|e| panic!("create: {}", e.chain()))
}

async fn create(opts: LiveOptions) -> Live {
    create_in(sandbox(), Workload::default(), opts).await
}

async fn sh_out(live: &Live, script: &str) -> Outcome {
    live.exec(["sh", "-c", script])
        .await
        .unwrap_or_else(|e| panic!("exec {script}: {}", e.chain()))
}

#[test]
fn agent_scenario_state_kept_between_execs() {
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        assert_eq!(live.isolation(), Isolation::Container);
        assert!(live.enforcement().seccomp.enforced);
        assert!(live.enforcement().limits.details.contains_key("pause"));
        live.write_file(
            "/tmp/job.sh",
            "n=$(cat /tmp/count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > /tmp/count; echo run $n",
        )
        .await
        .unwrap();
        let o = sh_out(&live, "sh /tmp/job.sh").await;
        assert_eq!(stdout(&o), "run 1\n", "{o:?}");
        assert_eq!(o.termination, Termination::Exited);
        assert_eq!(live.read_file("/tmp/count").await.unwrap(), b"1\n");
        let o = sh_out(&live, "sh /tmp/job.sh").await;
        assert_eq!(stdout(&o), "run 2\n");
        assert_eq!(live.read_file("/tmp/count").await.unwrap(), b"2\n");
        // Per-exec env, cwd and stdin; the exit code and stderr come back.
        let mut req =
            ExecRequest::new(["sh", "-c", "cat; echo $GREETING; pwd; echo oops >&2; exit 7"]);
        req.env.insert("GREETING".into(), "hi".into());
        req.cwd = Some("/proc".into());
        req.stdin = Stdin::Bytes(b"in\n".to_vec());
        let o = live.exec_with(req).await.unwrap();
        assert_eq!(stdout(&o), "in\nhi\n/proc\n");
        assert_eq!(o.stderr, b"oops\n");
        assert_eq!(o.exit_code, Some(7));
        // Execs run confined as a run's workload: the sandbox user, no capabilities.
        let o = sh_out(&live, "id -u; grep CapEff /proc/self/status").await;
        assert_eq!(stdout(&o), "1000\nCapEff:\t0000000000000000\n");
        // A program that does not exist is an error, not an outcome.
        let e = live.exec(["no-such-program"]).await.unwrap_err();
        assert_eq!(e.kind(), "program_not_found", "{}", e.chain());
        assert_eq!(e.exit_status(), 127);
        live.destroy().await.unwrap();
        live.destroy().await.unwrap();
        assert_eq!(live.state(), LiveState::Destroyed);
        assert_eq!(live.ended(), Some(EndReason::Destroyed));
        assert_eq!(live.exec(["true"]).await.unwrap_err().kind(), "wrong_state");
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
    let out = writable_tempdir();
    runtime().block_on(async {
        let w = Workload::default().mount(Mount::rw(out.path(), "/out"));
        let live = create_in(sandbox(), w, LiveOptions::default()).await;
        let o = sh_out(
            &live,
            "(i=0; while :; do i=$((i+1)); echo $i > /out/tick.new; mv /out/tick.new /out/tick; sleep 0.02; done) >/dev/null 2>&1 &",
        )
        .await;
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        // The loop outlives the exec that started it, and other execs see it.
        assert!(eventually(10.0, || counter(out.path()) >= 3));
        let o = sh_out(&live, "cat /out/tick").await;
        assert!(stdout(&o).trim().parse::<u64>().unwrap() >= 3);

        live.pause().await.unwrap();
        assert_eq!(live.state(), LiveState::Paused);
        let frozen = counter(out.path());
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(counter(out.path()), frozen, "the loop ran while paused");
        // While paused, execs and file operations are refused with the state named.
        let e = live.exec(["true"]).await.unwrap_err();
        assert_eq!(e.kind(), "wrong_state", "{}", e.chain());
        assert_eq!(live.read_file("/out/tick").await.unwrap_err().kind(), "wrong_state");
        live.resume().await.unwrap();
        assert!(eventually(10.0, || counter(out.path()) > frozen + 2));
        let st = live.stats().await.unwrap();
        assert!(st.paused_ms >= 400.0, "{st:?}");
        assert!(st.processes >= 2, "{st:?}");
        assert!(st.memory_bytes > 0, "{st:?}");
    });
}

#[test]
fn paused_time_is_not_counted_against_an_execs_wall_time() {
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        let mut req = ExecRequest::new(["sleep", "1"]);
        req.limits = ExecLimits {
            wall_time: Some(Duration::from_secs(3)),
            ..Default::default()
        };
        let mut e = live.exec_streaming(req).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        live.pause().await.unwrap();
        tokio::time::sleep(Duration::from_millis(3500)).await;
        live.resume().await.unwrap();
        let o = e.wait().await.unwrap();
        assert_eq!(o.termination, Termination::Exited, "{o:?}");
        assert!(o.wall_time < Duration::from_millis(3000), "{o:?}");
        // And the limit still ends an exec that runs past it.
        let mut req = ExecRequest::new(["sleep", "30"]);
        req.limits.wall_time = Some(Duration::from_millis(300));
        let o = live.exec_with(req).await.unwrap();
        assert_eq!(o.termination, Termination::Timeout, "{o:?}");
        // The sandbox itself goes on.
        assert_eq!(stdout(&sh_out(&live, "echo alive").await), "alive\n");
    });
}

/// See [`exec_cpu_limit_counts_every_process`].
#[test]
fn an_execs_cpu_time_counts_every_process_it_starts() {
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        exec_cpu_limit_counts_every_process(&live, "", Duration::from_secs(1)).await;
    });
}

#[test]
fn several_execs_at_once() {
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let live = live.clone();
                tokio::spawn(async move {
                    let o = live
                        .exec(["sh", "-c", &format!("sleep 0.3; echo {i}")])
                        .await
                        .unwrap();
                    (i, o)
                })
            })
            .collect();
        // While they run, the sandbox counts them.
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
fn streaming_signal_and_kill() {
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        let mut req = ExecRequest::new([
            "sh",
            "-c",
            "trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.05; done",
        ]);
        req.stdin = Stdin::Null;
        let mut e = live.exec_streaming(req).await.unwrap();
        let mut out = e.take_output().unwrap();
        let first = out.recv().await.unwrap();
        assert_eq!(
            (first.stream, first.data.as_slice()),
            (StreamKind::Stdout, &b"ready\n"[..])
        );
        e.signal(libc::SIGTERM).unwrap();
        let o = e.wait().await.unwrap();
        assert_eq!(o.exit_code, Some(5), "{o:?}");
        assert!(stdout(&o).contains("got-term"));
        // The kill handle ends an exec, not the sandbox.
        let mut e = live
            .exec_streaming(ExecRequest::new(["sleep", "30"]))
            .await
            .unwrap();
        e.kill_handle().kill();
        let o = e.wait().await.unwrap();
        assert_eq!(o.termination, Termination::Killed, "{o:?}");
        assert_eq!(live.state(), LiveState::Running);
    });
}

#[test]
fn tty_exec_sees_its_size_and_resizes() {
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        let mut req = ExecRequest::new([
            "sh",
            "-c",
            "stty size; test -t 0 && echo tty; read x; stty size",
        ]);
        req.tty = Some(TtySize { rows: 24, cols: 80 });
        req.stdin = Stdin::Stream;
        let mut e = live.exec_streaming(req).await.unwrap();
        let stdin = e.take_stdin().unwrap();
        let mut out = e.take_output().unwrap();
        let mut seen = String::new();
        while !seen.contains("tty") {
            let c = out.recv().await.expect("output before the first size");
            seen.push_str(&String::from_utf8_lossy(&c.data));
        }
        assert!(seen.starts_with("24 80\r\n"), "{seen:?}");
        e.resize(TtySize {
            rows: 40,
            cols: 100,
        })
        .unwrap();
        stdin.write(b"\n".to_vec()).await.unwrap();
        let o = e.wait().await.unwrap();
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        let all = format!("{seen}{}", String::from_utf8_lossy(&o.stdout));
        assert!(all.contains("40 100"), "{all:?}");
        // Without a terminal, resize says so.
        let e = live
            .exec_streaming(ExecRequest::new(["true"]))
            .await
            .unwrap();
        assert!(e.resize(TtySize { rows: 1, cols: 1 }).is_err());
    });
}

#[test]
fn file_paths_stay_inside_the_sandbox() {
    // A host file the sandbox must never reach, whatever link it plants.
    let host = tempfile::tempdir().unwrap();
    let secret = host.path().join("secret");
    std::fs::write(&secret, "host secret").unwrap();
    let secret_s = secret.display().to_string();
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        // `..` and absolute escapes resolve in the sandbox's own root.
        let e = live.read_file("/tmp/../../../etc/shadow").await.unwrap_err();
        assert_eq!(e.kind(), "not_found", "{}", e.chain());
        let passwd = live.read_file("/../../etc/passwd").await.unwrap();
        assert!(String::from_utf8_lossy(&passwd).contains("sandbox:x:1000"), "not the sandbox's passwd");
        let e = live.read_file(&secret_s).await.unwrap_err();
        assert_eq!(e.kind(), "not_found", "{}", e.chain());
        let e = live.write_file("/tmp/../etc/evil", "x").await.unwrap_err();
        assert_eq!(e.kind(), "permission_denied", "{}", e.chain());
        assert!(!std::path::Path::new("/etc/evil").exists());
        // Symlinks the workload plants: to a host path, through /proc/self/root and
        // /proc/1/root, to the root.
        let o = sh_out(
            &live,
            &format!(
                "ln -s {secret_s} /tmp/l1; ln -s /proc/self/root{secret_s} /tmp/l2; \
                 ln -s /proc/1/root/etc/passwd /tmp/l3; ln -s / /tmp/root; ln -s {} /tmp/dir; mkfifo /tmp/fifo",
                host.path().display()
            ),
        )
        .await;
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        for l in ["/tmp/l1", "/tmp/l2", "/tmp/dir/secret"] {
            let e = live.read_file(l).await.unwrap_err();
            assert_eq!(e.kind(), "not_found", "{l}: {}", e.chain());
        }
        let e = live.read_file("/tmp/l3").await.unwrap_err();
        assert!(matches!(e.kind(), "permission_denied" | "not_found"), "{}", e.chain());
        // Writing through a link to a host path creates nothing on the host.
        assert!(live.write_file("/tmp/l1", "overwritten").await.is_err());
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
        // The link to / lists the sandbox's root, not the host's.
        let names: Vec<String> = live
            .list_dir("/tmp/root")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(names.contains(&"proc".to_string()) && !names.contains(&"home".to_string()), "{names:?}");
        let st = live.stat("/tmp/l1").await.unwrap();
        assert_eq!(st.kind, hybrid_sandbox::FileKind::Symlink);
        assert_eq!(st.link_target.as_deref(), Some(secret_s.as_str()));
        // FIFOs and devices are refused at once, never opened (a FIFO would block).
        for p in ["/tmp/fifo", "/dev/zero", "/dev/null"] {
            let r = tokio::time::timeout(Duration::from_secs(20), live.read_file(p))
                .await
                .expect("a FIFO or device blocked the file API");
            let e = r.unwrap_err();
            assert_eq!(e.kind(), "invalid_path", "{p}: {}", e.chain());
            assert!(e.chain().contains("not a regular file"), "{}", e.chain());
        }
        let r = tokio::time::timeout(Duration::from_secs(20), live.write_file("/tmp/fifo", "x"))
            .await
            .expect("writing a FIFO blocked");
        assert!(r.is_err());
        // Relative paths are refused before anything is resolved.
        assert_eq!(live.read_file("tmp/x").await.unwrap_err().kind(), "invalid_path");
    });
}

/// A sparse file costs the sandbox no disk, but read whole it would take the caller's
/// memory (a failed allocation aborts the caller): a read into memory stops at
/// `READ_TO_END_MAX` with an error, and the stream still gives it.
#[test]
fn a_planted_sparse_file_does_not_take_the_callers_memory() {
    let mut w = Workload::default();
    w.limits.file_size = Some("64GiB".parse().unwrap());
    runtime().block_on(async {
        let live = create_in(sandbox(), w, LiveOptions::default()).await;
        let o = sh_out(&live, "truncate -s 32G /tmp/huge && echo made").await;
        assert_eq!(
            stdout(&o),
            "made\n",
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let e = live.read_file("/tmp/huge").await.unwrap_err();
        assert_eq!(e.kind(), "limit", "{}", e.chain());
        assert!(e.chain().contains("as a stream"), "{}", e.chain());
        let mut s = live.read_file_stream("/tmp/huge").await.unwrap();
        let mut first = [1u8; 4096];
        tokio::io::AsyncReadExt::read_exact(&mut s, &mut first)
            .await
            .unwrap();
        assert!(first.iter().all(|&b| b == 0));
    });
}

#[test]
fn uploads_beyond_the_limits_are_refused_with_the_limit_named() {
    let sb = sandbox_with(
        "version = 1\n[defaults]\nisolation = \"container\"\n[defaults.limits]\ntmp_size = \"1MiB\"\nfile_size = \"600KiB\"\nmemory = \"256MiB\"\n\
         [[defaults.mounts]]\nsource = \"/usr\"\n[[defaults.mounts]]\nsource = \"/bin\"\n[[defaults.mounts]]\nsource = \"/lib\"\n\
         [[defaults.mounts]]\nsource = \"/lib64\"\noptional = true\n",
    );
    runtime().block_on(async {
        let live = create_in(&sb, Workload::default(), LiveOptions::default()).await;
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
        let o = sh_out(&live, "wc -c < /tmp/a; wc -c < /tmp/b").await;
        assert_eq!(stdout(&o), format!("{}\n0\n", 550 << 10));
        assert!(live.stats().await.unwrap().disk_bytes >= 550 << 10);
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
    runtime().block_on(async {
        let live = create(LiveOptions {
            lifetime: Some(Duration::from_millis(400)),
            idle_timeout: None,
        })
        .await;
        assert_eq!(wait_destroyed(&live).await, Some(EndReason::Lifetime));
        assert_eq!(live.exec(["true"]).await.unwrap_err().kind(), "wrong_state");

        let live = create(LiveOptions {
            lifetime: None,
            idle_timeout: Some(Duration::from_millis(400)),
        })
        .await;
        // An exec running longer than the idle timeout keeps it alive.
        let o = sh_out(&live, "sleep 1; echo done").await;
        assert_eq!(stdout(&o), "done\n");
        assert_eq!(live.state(), LiveState::Running);
        // Execs that fail to start stop counting as running (they kept the sandbox
        // from ever idling: init's report of their exit raced their failure).
        for _ in 0..20 {
            let e = live.exec(["/nonexistent"]).await.unwrap_err();
            assert_eq!(e.kind(), "program_not_found", "{}", e.chain());
        }
        assert_eq!(live.stats().await.unwrap().execs_running, 0);
        assert_eq!(wait_destroyed(&live).await, Some(EndReason::IdleTimeout));
    });
}

fn cgroups_of(pid: u32) -> Vec<std::path::PathBuf> {
    ["memory", "pids", "cpuacct", "freezer", ""]
        .iter()
        .filter_map(|c| std::fs::read_dir(format!("/sys/fs/cgroup/{c}/hsb")).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{pid}-"))
        })
        .map(|e| e.path())
        .collect()
}

/// The child half of `kill_9_of_the_caller_leaves_nothing`: creates live sandboxes with
/// background processes, says so, and waits to be killed.
#[test]
fn live_child_process() {
    if std::env::var("HSB_LIVE_CHILD").is_err() {
        return;
    }
    runtime().block_on(async {
        let mut keep = Vec::new();
        for _ in 0..3 {
            let live = create(LiveOptions::default()).await;
            sh_out(&live, "sleep 1000 >/dev/null 2>&1 &").await;
            keep.push(live);
        }
        // One left by an exec with a CPU time limit: in that exec's own cgroup, which
        // outlives the exec (and must go with the sandbox's).
        let mut req = ExecRequest::new(["sh", "-c", "sleep 1000 >/dev/null 2>&1 &"]);
        req.limits.cpu_time = Some(Duration::from_secs(5));
        assert!(keep[0].exec_with(req).await.unwrap().success());
        // A paused one too: its frozen processes act on no SIGKILL until thawed.
        keep[2].pause().await.unwrap();
        println!("HSB-LIVE-READY");
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

#[test]
fn kill_9_of_the_caller_leaves_nothing() {
    use std::io::BufRead;
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "live_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HSB_LIVE_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("HSB-LIVE-READY"))),
        "the child never got ready"
    );
    let cgroups = cgroups_of(pid);
    assert!(!cgroups.is_empty(), "the child's sandboxes have no cgroups");
    let in_sandboxes = |cgs: &[std::path::PathBuf]| -> usize {
        cgs.iter()
            .map(|c| {
                std::fs::read_to_string(c.join("cgroup.procs"))
                    .map(|s| s.lines().count())
                    .unwrap_or(0)
            })
            .sum()
    };
    // Inits, file servers and the background sleeps.
    assert!(in_sandboxes(&cgroups) >= 6, "{}", in_sandboxes(&cgroups));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        eventually(20.0, || in_sandboxes(&cgroups) == 0),
        "processes of the killed caller's sandboxes are still alive"
    );
    assert!(host_processes_with("sleep 1000").is_empty());
    assert_eq!(
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .count(),
        mounts_before
    );
    // The next hybrid-sandbox process sweeps the empty cgroups the killed one left.
    let st = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "live_child_sweeper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HSB_LIVE_SWEEPER", "1")
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        eventually(10.0, || cgroups.iter().all(|c| !c.exists())),
        "{cgroups:?} left behind"
    );
}

/// A new hybrid-sandbox process: its first sandbox sweeps what dead ones left.
#[test]
fn live_child_sweeper() {
    if std::env::var("HSB_LIVE_SWEEPER").is_err() {
        return;
    }
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        live.destroy().await.unwrap();
    });
}

#[test]
fn image_root_writable_layer_persists_across_execs() {
    let d = tempfile::tempdir().unwrap();
    set_mode(d.path(), 0o755);
    let sb = Sandbox::with_default_policy()
        .with_image_store(hybrid_sandbox::ImageStore::at(d.path().join("store")));
    let layout = hsb_tests::image::write_oci_layout(&d.path().join("oci"), "");
    runtime().block_on(async {
        let w = Workload::default().image(layout.display().to_string());
        let live = create_in(&sb, w, LiveOptions::default()).await;
        // The image's ENV and WORKDIR apply to execs; its CMD does not run.
        let o = sh_out(&live, "pwd; echo $IMAGE_VAR; echo changed > /etc/greeting").await;
        assert_eq!(stdout(&o), "/data\nfrom-image\n", "{o:?}");
        // The throwaway layer lasts as long as the sandbox.
        assert_eq!(live.read_file("/etc/greeting").await.unwrap(), b"changed\n");
        live.write_file("/data/new.txt", "uploaded").await.unwrap();
        let o = sh_out(&live, "cat /etc/greeting /data/new.txt").await;
        assert_eq!(stdout(&o), "changed\nuploaded");
        assert!(live.stats().await.unwrap().disk_bytes > 0);
        live.destroy().await.unwrap();
        // A new sandbox starts from the image again.
        let live = create_in(
            &sb,
            Workload::default().image(layout.display().to_string()),
            LiveOptions::default(),
        )
        .await;
        assert_eq!(
            stdout(&sh_out(&live, "cat /etc/greeting").await),
            "hello from the image\n"
        );
    });
}

#[test]
fn a_later_exec_can_stop_a_background_process_of_an_earlier_one() {
    runtime().block_on(async {
        let live = create(LiveOptions::default()).await;
        let o = sh_out(&live, "sleep 1000 >/dev/null 2>&1 & echo $! > /tmp/pid").await;
        assert_eq!(o.exit_code, Some(0));
        let o = sh_out(&live, "kill $(cat /tmp/pid) && echo killed").await;
        assert_eq!(stdout(&o), "killed\n", "{o:?}");
        // The OOM killer prefers an exec's process to init.
        let mut e = live
            .exec_streaming(ExecRequest::new(["sh", "-c", "echo $$; exec sleep 1000"]))
            .await
            .unwrap();
        let mut out = e.take_output().unwrap();
        let pid = String::from_utf8(out.recv().await.unwrap().data).unwrap();
        let mut adj = String::new();
        for _ in 0..500 {
            adj = stdout(
                &sh_out(
                    &live,
                    &format!(
                        "cat /proc/{}/oom_score_adj /proc/1/oom_score_adj",
                        pid.trim()
                    ),
                )
                .await,
            );
            if adj == "1000\n0\n" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(adj, "1000\n0\n");
        e.kill_handle().kill();
        // Init itself holds no capability and runs under the seccomp filter.
        let o = sh_out(
            &live,
            "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/1/status",
        )
        .await;
        assert_eq!(
            stdout(&o),
            "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n",
            "{o:?}"
        );
        // The sandbox's init stays out of reach.
        let o = sh_out(&live, "kill -9 1; kill -9 -1; echo still-here").await;
        assert!(
            stdout(&o).contains("still-here") || o.signal == Some(9),
            "{o:?}"
        );
        assert_eq!(stdout(&sh_out(&live, "echo alive").await), "alive\n");
    });
}

/// `update_limits` on a live container: a pids limit set after creation stops forks at
/// once and a raised one lets them through; the policy's floor bounds new limits (the
/// error names the limit and the floor, nothing changes); a limit that cannot change
/// on running processes is refused by name.
#[test]
fn limits_change_while_it_lives_within_the_floor() {
    let sb = sandbox_with(
        "version = 1\n[defaults]\nisolation = \"container\"\n[defaults.limits]\npids = 64\n\
         [[defaults.mounts]]\nsource = \"/usr\"\n[[defaults.mounts]]\nsource = \"/bin\"\n[[defaults.mounts]]\nsource = \"/lib\"\n\
         [[defaults.mounts]]\nsource = \"/lib64\"\noptional = true\n[floor]\nlimits = { pids = 100 }\n",
    );
    let forks = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; wait";
    let err = |o: &Outcome| String::from_utf8_lossy(&o.stderr).into_owned();
    runtime().block_on(async {
        let live = create_in(&sb, Workload::default(), LiveOptions::default()).await;
        let o = sh_out(&live, forks).await;
        assert!(o.success() && o.stderr.is_empty(), "{}", err(&o));
        let few = hybrid_sandbox::Limits {
            pids: Some(4),
            ..Default::default()
        };
        live.update_limits(&few)
            .await
            .unwrap_or_else(|e| panic!("update: {}", e.chain()));
        let o = sh_out(&live, forks).await;
        assert!(
            err(&o).contains("fork"),
            "10 children under pids 4: {}",
            err(&o)
        );
        let over = hybrid_sandbox::Limits {
            pids: Some(1000),
            ..Default::default()
        };
        let e = live.update_limits(&over).await.unwrap_err();
        assert!(
            e.chain().contains("pids") && e.chain().contains("floor"),
            "{}",
            e.chain()
        );
        let fixed = hybrid_sandbox::Limits {
            wall_time: Some(Duration::from_secs(5)),
            pids: Some(50),
            ..Default::default()
        };
        let e = live.update_limits(&fixed).await.unwrap_err();
        assert!(e.chain().contains("wall_time"), "{}", e.chain());
        // Out of any sandbox's range (a policy could not say it either).
        let none = hybrid_sandbox::Limits {
            pids: Some(0),
            ..Default::default()
        };
        let e = live.update_limits(&none).await.unwrap_err();
        assert!(e.chain().contains("pids"), "{}", e.chain());
        // Neither refusal changed anything: still pids 4.
        let o = sh_out(&live, forks).await;
        assert!(err(&o).contains("fork"), "{}", err(&o));
        let back = hybrid_sandbox::Limits {
            pids: Some(100),
            ..Default::default()
        };
        live.update_limits(&back).await.unwrap();
        let o = sh_out(&live, forks).await;
        assert!(o.success() && o.stderr.is_empty(), "{}", err(&o));
        // A CPU quota: on cgroup v1 with cpu and cpuacct apart (this machine), a
        // sandbox created without one has no cpu group, and says how to get one; the
        // pids limit asked with it is not applied either.
        let half_and_few = hybrid_sandbox::Limits {
            cpus: Some("0.5".parse().unwrap()),
            pids: Some(4),
            ..Default::default()
        };
        if let Err(e) = live.update_limits(&half_and_few).await {
            assert!(
                e.chain().contains("created without a cpus limit"),
                "{}",
                e.chain()
            );
            let o = sh_out(&live, forks).await;
            assert!(o.success() && o.stderr.is_empty(), "{}", err(&o));
        }
        let half = hybrid_sandbox::Limits {
            cpus: Some("0.5".parse().unwrap()),
            ..Default::default()
        };
        live.destroy().await.unwrap();
        let e = live.update_limits(&back).await.unwrap_err();
        assert!(e.chain().contains("destroyed"), "{}", e.chain());
        // Created with one, its quota changes (and is the cgroup's: read back).
        let mut w = Workload::default();
        w.limits.cpus = Some("1".parse().unwrap());
        let live = create_in(&sb, w, LiveOptions::default()).await;
        live.update_limits(&half)
            .await
            .unwrap_or_else(|e| panic!("cpus 0.5: {}", e.chain()));
        let v1 = std::path::Path::new("/sys/fs/cgroup/cpu/hsb");
        if v1.is_dir() {
            let mine = format!("{}-", std::process::id());
            let quotas: Vec<String> = std::fs::read_dir(v1)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&mine))
                .filter_map(|e| std::fs::read_to_string(e.path().join("cpu.cfs_quota_us")).ok())
                .map(|q| q.trim().to_string())
                .collect();
            assert!(quotas.iter().any(|q| q == "50000"), "{quotas:?}");
        }
        live.destroy().await.unwrap();
    });
}
