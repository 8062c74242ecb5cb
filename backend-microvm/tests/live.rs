//! A live micro-VM whose VMM fails: through the test hook (feature `test-hooks`, on
//! for this crate's tests only) an exec makes the confined VMM thread try a host
//! syscall off its allowlist. The sandbox ends as `failed`, its calls answer
//! `LiveError::Failed` naming the violation, and the caller goes on.

mod common;

use std::time::Duration;

use common::*;
use sandbox_core::{Backend, EndReason, ExecRequest, LiveOptions, LiveState};

#[tokio::test]
async fn a_policy_violation_of_the_vmm_ends_the_sandbox_as_failed() {
    if !kvm() {
        return;
    }
    let live = backend_microvm::MicroVmBackend::new()
        .create(plan("/progs/hook-musl", &[]), LiveOptions::default())
        .await
        .expect("create");
    let mut e = live
        .exec(ExecRequest::new(["/progs/hook-musl", "syscall"]))
        .await
        .expect("exec");
    let o = e.wait().await.expect("an outcome, not a crash");
    assert_eq!(o.termination, sandbox_core::Termination::Killed, "{o:?}");
    for _ in 0..500 {
        if live.state() == LiveState::Destroyed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(live.ended(), Some(EndReason::Failed));
    let err = match live.exec(ExecRequest::new(["/progs/hello-musl"])).await {
        Err(e) => e,
        Ok(_) => panic!("an exec in a failed sandbox started"),
    };
    assert_eq!(err.kind(), "failed", "{err}");
    let chain = format!("{:?}", err);
    assert!(chain.contains("socket"), "{chain}");
    assert_eq!(live.stat("/tmp").await.unwrap_err().kind(), "failed");
    live.destroy().await.expect("destroy after a failure");
    assert_eq!(live.ended(), Some(EndReason::Failed));
}
