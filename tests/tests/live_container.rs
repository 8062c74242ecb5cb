//! Live container sandboxes, through the library: create once, exec many, files in and
//! out, pause and resume, limits for the sandbox's life, attacks on the file API, many
//! sandboxes at once, and nothing left behind.

use std::time::Duration;

use hsb_tests::*;
use hybrid_sandbox::{
    EndReason, ExecRequest, Live, LiveOptions, LiveState, Stdin, TtySize, Workload,
};

fn live_rt() -> tokio::runtime::Runtime {
    runtime()
}

async fn create(opts: LiveOptions) -> Live {
    sandbox()
        .create(Workload::default(), opts)
        .await
        .unwrap_or_else(|e| panic!("create: {}", e.chain()))
}

async fn sh_out(live: &Live, script: &str) -> hybrid_sandbox::Outcome {
    live.exec(["sh", "-c", script])
        .await
        .unwrap_or_else(|e| panic!("exec {script}: {}", e.chain()))
}

#[test]
fn agent_scenario_state_kept_between_execs() {
    live_rt().block_on(async {
        let live = create(LiveOptions::default()).await;
        assert_eq!(live.isolation(), hybrid_sandbox::Isolation::Container);
        assert!(live.enforcement().seccomp.enforced);
        live.write_file(
            "/tmp/job.sh",
            "n=$(cat /tmp/count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > /tmp/count; echo run $n",
        )
        .await
        .unwrap();
        let o = sh_out(&live, "sh /tmp/job.sh").await;
        assert_eq!(stdout(&o), "run 1\n", "{o:?}");
        assert_eq!(live.read_file("/tmp/count").await.unwrap(), b"1\n");
        let o = sh_out(&live, "sh /tmp/job.sh").await;
        assert_eq!(stdout(&o), "run 2\n");
        assert_eq!(live.read_file("/tmp/count").await.unwrap(), b"2\n");
        // Per-exec env, cwd and stdin; the exit code and stderr come back.
        let mut req = ExecRequest::new(["sh", "-c", "cat; echo $GREETING; pwd; echo oops >&2; exit 7"]);
        req.env.insert("GREETING".into(), "hi".into());
        req.cwd = Some("/proc".into());
        req.stdin = Stdin::Bytes(b"in\n".to_vec());
        let o = live.exec_with(req).await.unwrap();
        assert_eq!(stdout(&o), "in\nhi\n/proc\n");
        assert_eq!(o.stderr, b"oops\n");
        assert_eq!(o.exit_code, Some(7));
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
