//! The run API over the container backend: stdio, streaming, kill, drop, concurrency,
//! errors.

use std::time::{Duration, Instant};

use hsb_tests::*;
use hybrid_sandbox::{blocking, Error, IsolationRequest, SpawnError, StreamKind};

fn c(w: Workload) -> Workload {
    w.isolation(IsolationRequest::Container)
}

#[test]
fn stdin_bytes_reach_the_workload() {
    let o = run(c(
        Workload::new("wc", ["-c"]).stdin_bytes(vec![b'x'; 300_000])
    ));
    assert_eq!(stdout(&o).trim(), "300000");
}

#[test]
fn a_workload_that_never_reads_stdin_does_not_hang_the_caller() {
    let o = run(c(
        Workload::new("true", Vec::<String>::new()).stdin_bytes(vec![0u8; 4 << 20])
    ));
    assert!(o.success());
}

#[test]
fn stdin_and_stdout_stream_while_running() {
    let rt = runtime();
    rt.block_on(async {
        let mut w = c(sh("while read l; do echo got $l; done; echo done >&2"));
        w.stdin = Stdin::Stream;
        let mut exec = sandbox().spawn(w).await.unwrap();
        let stdin = exec.take_stdin().unwrap();
        let mut out = exec.take_output().unwrap();
        stdin.write(b"one\n".to_vec()).await.unwrap();
        // The answer arrives while the workload still runs.
        let first = tokio::time::timeout(Duration::from_secs(5), out.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.stream, StreamKind::Stdout);
        assert_eq!(first.data, b"got one\n");
        stdin.write(b"two\n".to_vec()).await.unwrap();
        drop(stdin);
        let o = exec.wait().await.unwrap();
        assert_eq!(stdout(&o), "got one\ngot two\n");
        assert_eq!(o.stderr, b"done\n");
    });
}

#[test]
fn exit_codes_and_signals() {
    assert_eq!(run(c(sh("exit 42"))).exit_code, Some(42));
    let o = run(c(sh("kill -SEGV $$")));
    assert_eq!(
        (o.termination, o.signal, o.exit_code),
        (Termination::Signaled, Some(libc::SIGSEGV), None)
    );
    assert_eq!(o.shell_status(), 128 + libc::SIGSEGV);
    // SIGPIPE is at its default in the sandbox even though Rust callers ignore it.
    let o = run(c(sh("yes | head -c 10 >/dev/null; echo ${PIPESTATUS:-ok}")));
    assert!(o.success());
}

#[test]
fn kill_handle_ends_the_run() {
    let rt = runtime();
    rt.block_on(async {
        let mut exec = sandbox()
            .spawn(c(Workload::new("sleep", ["100"])))
            .await
            .unwrap();
        let k = exec.kill_handle();
        let t = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            k.kill();
        });
        let o = exec.wait().await.unwrap();
        assert_eq!(o.termination, Termination::Killed);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(matches!(
            exec.wait().await,
            Err(hybrid_sandbox::RunError::AlreadyWaited)
        ));
    });
}

#[test]
fn dropping_the_execution_kills_the_sandbox() {
    let marker = "988.1234";
    let rt = runtime();
    rt.block_on(async {
        let exec = sandbox()
            .spawn(c(Workload::new("sleep", [marker])))
            .await
            .unwrap();
        assert!(eventually(2.0, || !host_processes_with(marker).is_empty()));
        drop(exec);
    });
    assert!(
        eventually(3.0, || host_processes_with(marker).is_empty()),
        "{:?}",
        host_processes_with(marker)
    );
}

#[test]
fn fifty_concurrent_sandboxes_from_a_multithreaded_runtime() {
    let rt = runtime();
    let outcomes = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..50 {
            tasks.push(tokio::spawn(async move {
                let w = c(sh(&format!(
                    "echo {i}; cat /proc/self/status | grep -c NoNewPrivs"
                )));
                sandbox().run(w).await.map(|o| (i, o))
            }));
        }
        let mut v = Vec::new();
        for t in tasks {
            v.push(t.await.unwrap().unwrap());
        }
        v
    });
    assert_eq!(outcomes.len(), 50);
    for (i, o) in outcomes {
        assert!(o.success(), "{o:?}");
        assert_eq!(stdout(&o), format!("{i}\n1\n"));
    }
}

#[test]
fn blocking_api_from_several_threads() {
    let sb = std::sync::Arc::new(blocking::Sandbox::with_default_policy().unwrap());
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let sb = sb.clone();
            std::thread::spawn(move || sb.run(c(Workload::new("echo", [i.to_string()]))).unwrap())
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(stdout(&h.join().unwrap()), format!("{i}\n"));
    }
}

#[test]
fn program_errors_are_distinguished() {
    let rt = runtime();
    let err = rt
        .block_on(sandbox().run(c(Workload::new("no-such-program", Vec::<String>::new()))))
        .unwrap_err();
    assert!(
        matches!(err, Error::Spawn(SpawnError::ProgramNotFound(_))),
        "{err:?}"
    );
    assert_eq!(err.exit_status(), 127);
    let dir = writable_tempdir();
    std::fs::write(dir.path().join("script"), "#!/bin/sh\necho hi\n").unwrap();
    set_mode(&dir.path().join("script"), 0o644);
    let w = c(Workload::new("/x/script", Vec::<String>::new()).mount(Mount::ro(dir.path(), "/x")));
    let err = rt.block_on(sandbox().run(w)).unwrap_err();
    assert!(
        matches!(err, Error::Spawn(SpawnError::NotExecutable { .. })),
        "{err:?}"
    );
    assert_eq!(err.exit_status(), 126);
    let w =
        c(Workload::new("true", Vec::<String>::new()).mount(Mount::ro("/nonexistent/dir", "/x")));
    let err = rt.block_on(sandbox().run(w)).unwrap_err();
    assert!(err.chain().contains("/nonexistent/dir"), "{}", err.chain());
    assert_eq!(err.exit_status(), 125);
    // A working directory outside any mount is created; inside a read-only mount it
    // must exist.
    let o = run(c(sh("pwd").cwd("/work/here")));
    assert_eq!(stdout(&o), "/work/here\n");
    let err = rt
        .block_on(sandbox().run(c(
            Workload::new("true", Vec::<String>::new()).cwd("/usr/nope"),
        )))
        .unwrap_err();
    assert!(
        err.chain().contains("working directory /usr/nope"),
        "{}",
        err.chain()
    );
}

#[test]
fn cwd_env_and_labels_are_applied() {
    let o = run(c(sh("pwd; echo $GREETING")
        .cwd("/usr")
        .env("GREETING", "hello")));
    assert_eq!(stdout(&o), "/usr\nhello\n");
}

/// A workload reopens its standard streams by path as a shell script does
/// (`echo > /dev/stdout`, `cat /dev/stdin`, `/proc/self/fd/N`): the pipes hsb made
/// for them are the workload's, not host root's (whose 0600 pipes it may not open).
#[test]
fn stdio_pipes_can_be_reopened_by_path() {
    let o = run(c(sh(
        "cat /dev/stdin && echo out > /dev/stdout && echo err > /dev/stderr \
         && echo fd > /proc/self/fd/1",
    )
    .stdin_bytes(b"in\n".to_vec())));
    assert!(o.success(), "{o:?}");
    assert_eq!(stdout(&o), "in\nout\nfd\n");
    assert_eq!(o.stderr, b"err\n");
}
