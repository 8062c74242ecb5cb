//! Live micro-VM sandboxes, through the library: the VM stays, each exec is a new
//! guest process. The agent scenario, background processes across execs, pause and
//! resume, several execs at once, stdin streams, per-exec limits, the file API under
//! attack (`..`, absolute escapes, planted symlinks), sizes charged to the sandbox,
//! stats, destroy, lifetime and idle timeout, drop, and many sandboxes at once.

use std::time::Duration;

use hsb_tests::*;
use hybrid_sandbox::{
    EndReason, ExecLimits, ExecRequest, IsolationRequest, Live, LiveOptions, LiveState, Stdin,
    StreamKind, TtySize,
};

fn ready() -> bool {
    backend_ready(IsolationRequest::MicroVm)
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
    if !ready() {
        return;
    }
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
        // No terminal in the micro-VM: said so, with the way out.
        let mut req = ExecRequest::new(["busybox", "true"]);
        req.tty = Some(TtySize::default());
        let e = live.exec_with(req).await.unwrap_err();
        assert_eq!(e.kind(), "unsupported");
        assert!(e.chain().contains("container"), "{}", e.chain());
        live.destroy().await.unwrap();
        live.destroy().await.unwrap();
        assert_eq!(live.state(), LiveState::Destroyed);
        assert_eq!(live.ended(), Some(EndReason::Destroyed));
        assert_eq!(live.exec(["busybox", "true"]).await.unwrap_err().kind(), "wrong_state");
    });
}
