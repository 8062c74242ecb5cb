//! Start, arguments, environment, auxv, stdio, exit codes, kill, reports and errors.

mod common;

use std::time::Duration;

use backend_microvm::MicroVmBackend;
use common::*;
use sandbox_core::{Backend, Isolation, Network, SpawnError, Stdin, StreamKind, Termination};

#[tokio::test]
async fn args_env_and_auxv_reach_the_program() {
    if !kvm() {
        return;
    }
    for tc in Toolchain::all() {
        let mut p = prog_plan("args", tc, &["one", "two words"]);
        p.env.push(("HSB_GREETING".into(), "hi there".into()));
        p.env.push(("EXIT_CODE".into(), "7".into()));
        p.hostname = "vmhost".into();
        let o = run(p).await;
        let out = stdout(&o);
        assert_eq!(o.termination, Termination::Exited, "{tc:?}: {out}");
        assert_eq!(o.exit_code, Some(7), "{tc:?}");
        for want in [
            "argc=3\n",
            "argv[0]=args\n",
            "argv[1]=one\n",
            "argv[2]=two words\n",
            "env HSB_GREETING=hi there\n",
            "env PATH=",
            "AT_PAGESZ=4096\n",
            "AT_RANDOM=16 random bytes\n",
            "AT_PHDR=set\n",
            "AT_HWCAP=set\n",
            "AT_UID=1000 AT_EGID=1000\n",
            "uid=1000 gid=1000 euid=1000 pid=2 ppid=1\n",
            "uname=Linux vmhost x86_64\n",
            "cwd=/tmp\n",
            "tls errno=9\n",
        ] {
            assert!(out.contains(want), "{tc:?}: missing {want:?} in:\n{out}");
        }
    }
}

#[tokio::test]
async fn stdout_stderr_and_exit_codes() {
    if !kvm() {
        return;
    }
    let o = run(prog_plan("hello", Toolchain::Musl, &[])).await;
    assert!(o.success());
    assert_eq!(stdout(&o), "hello from the micro-VM\n");
    assert_eq!(stderr(&o), "to stderr\n");
    for code in [0, 1, 42, 255] {
        let mut p = prog_plan("args", Toolchain::Glibc, &[]);
        p.env.push(("EXIT_CODE".into(), code.to_string()));
        let o = run(p).await;
        assert_eq!(
            (o.termination, o.exit_code, o.signal),
            (Termination::Exited, Some(code), None)
        );
    }
}

#[tokio::test]
async fn output_is_streamed_while_running_and_capped() {
    if !kvm() {
        return;
    }
    let mut exec = MicroVmBackend::new()
        .spawn(plan(
            "/bin/busybox",
            &["sh", "-c", "echo one; echo two >&2"],
        ))
        .await
        .unwrap();
    let mut rx = exec.take_output().unwrap();
    let o = exec.wait().await.unwrap();
    let mut chunks = Vec::new();
    while let Some(c) = rx.recv().await {
        chunks.push(c);
    }
    assert!(
        chunks
            .iter()
            .any(|c| c.stream == StreamKind::Stdout && c.data == b"one\n"),
        "{chunks:?}"
    );
    assert!(
        chunks
            .iter()
            .any(|c| c.stream == StreamKind::Stderr && c.data == b"two\n"),
        "{chunks:?}"
    );
    assert_eq!(stdout(&o), "one\n");

    let mut p = plan(
        "/bin/busybox",
        &["sh", "-c", "while true; do echo 0123456789; done"],
    );
    p.limits.output = Some(sandbox_core::ByteSize(1000));
    let o = run(p).await;
    assert_eq!(o.termination, Termination::OutputLimit);
    assert_eq!(o.stdout.len(), 1000);
}

#[tokio::test]
async fn stdin_bytes_and_stream() {
    if !kvm() {
        return;
    }
    let mut p = plan("/bin/busybox", &["cat"]);
    p.stdin = Stdin::Bytes(b"from bytes\n".to_vec());
    assert_eq!(stdout(&run(p).await), "from bytes\n");

    let mut p = plan("/bin/busybox", &["wc", "-l"]);
    p.stdin = Stdin::Stream;
    let mut exec = MicroVmBackend::new().spawn(p).await.unwrap();
    let w = exec.take_stdin().unwrap();
    for i in 0..3 {
        w.write(format!("line {i}\n")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(w);
    let o = exec.wait().await.unwrap();
    assert!(o.success(), "{o:?}");
    assert_eq!(stdout(&o).trim(), "3");
}

#[tokio::test]
async fn kill_and_drop_end_the_vm() {
    if !kvm() {
        return;
    }
    let mut exec = MicroVmBackend::new()
        .spawn(prog_plan("spin", Toolchain::Musl, &[]))
        .await
        .unwrap();
    let k = exec.kill_handle();
    tokio::time::sleep(Duration::from_millis(100)).await;
    k.kill();
    let o = exec.wait().await.unwrap();
    assert_eq!(o.termination, Termination::Killed);
    assert!(matches!(
        exec.wait().await,
        Err(sandbox_core::RunError::AlreadyWaited)
    ));

    // A VM blocked in a VMM wait (stdin that never comes) is killed too.
    let mut p = plan("/bin/busybox", &["cat"]);
    p.stdin = Stdin::Stream;
    let mut exec = MicroVmBackend::new().spawn(p).await.unwrap();
    let _w = exec.take_stdin();
    let k = exec.kill_handle();
    tokio::time::sleep(Duration::from_millis(50)).await;
    k.kill();
    assert_eq!(exec.wait().await.unwrap().termination, Termination::Killed);

    // Dropping the execution kills the VM: its thread ends (the CPU is free again).
    let exec = MicroVmBackend::new()
        .spawn(prog_plan("spin", Toolchain::Musl, &[]))
        .await
        .unwrap();
    drop(exec);
}

#[tokio::test]
async fn enforcement_report_says_what_was_in_force() {
    if !kvm() {
        return;
    }
    let o = run(prog_plan("hello", Toolchain::Musl, &[])).await;
    assert_eq!(o.isolation, Isolation::MicroVm);
    let e = &o.enforcement;
    let vm = e.vm.as_ref().expect("vm report");
    assert!(
        ["vmx", "svm", "pvm"].contains(&vm.kvm_kind.as_str()),
        "{vm:?}"
    );
    assert_eq!(vm.vcpus, 1);
    assert_eq!(vm.guest_memory_bytes, 1 << 30);
    assert!(e.seccomp.enforced);
    assert_eq!(e.seccomp.applies_to, "vmm");
    assert!(e.seccomp.allowed_syscalls > 20);
    assert_eq!(e.landlock.applies_to, "vmm");
    assert_eq!(e.limits.mechanism, sandbox_core::LimitMechanism::Vm);
    assert!(
        o.peak_memory_bytes > 0 && o.peak_memory_bytes < 8 << 20,
        "{}",
        o.peak_memory_bytes
    );
    assert!(o.wall_time > Duration::ZERO && o.cpu_time > Duration::ZERO);
}

#[tokio::test]
async fn unimplemented_syscalls_are_counted() {
    if !kvm() {
        return;
    }
    let o = run(prog_plan("tasks", Toolchain::Musl, &["unimpl"])).await;
    assert_eq!(stdout(&o), "io_uring_setup -1 ENOSYS\n");
    assert_eq!(
        o.unimplemented_syscalls.get("io_uring_setup"),
        Some(&1),
        "{:?}",
        o.unimplemented_syscalls
    );
}

#[tokio::test]
async fn spawn_errors_are_precise() {
    if !kvm() {
        return;
    }
    let b = MicroVmBackend::new();
    let e = b.spawn(plan("no-such-program", &[])).await.unwrap_err();
    assert!(
        matches!(e, SpawnError::ProgramNotFound(ref p) if p == "no-such-program"),
        "{e:?}"
    );

    // A dynamically linked program whose loader is not in the sandbox.
    let mut p = plan("/bin/bash", &["-c", "true"]);
    p.mounts.retain(|m| !m.target.starts_with("/lib"));
    let e = b.spawn(p).await.unwrap_err();
    match &e {
        SpawnError::NotExecutable { source, .. } => {
            assert!(
                source
                    .to_string()
                    .contains("ld-linux-x86-64.so.2 is not in the sandbox"),
                "{source}"
            )
        }
        other => panic!("{other:?}"),
    }

    let e = b.spawn(plan("/etc/hostname", &[])).await.unwrap_err();
    assert!(matches!(e, SpawnError::NotExecutable { .. }), "{e:?}");

    // Egress is the broker's; in a namespace an engine made, it is the engine's.
    let mut p = plan("/bin/busybox", &["true"]);
    p.network = Network::Egress;
    p.netns = Some("/proc/self/ns/net".into());
    let e = b.spawn(p).await.unwrap_err();
    assert!(
        matches!(e, SpawnError::Unsupported(ref m) if m.contains("egress") && m.contains("engine")),
        "{e:?}"
    );

    let mut p = plan("/bin/busybox", &["true"]);
    p.mounts.push(sandbox_core::PlannedMount {
        source: "/nonexistent/hsb".into(),
        target: "/data".into(),
        mode: sandbox_core::MountMode::Ro,
        optional: false,
        system: false,
        noexec: false,
    });
    let e = b.spawn(p).await.unwrap_err();
    assert!(
        matches!(e, SpawnError::Mount { ref target, .. } if target == "/data"),
        "{e:?}"
    );
}

#[tokio::test]
async fn program_is_searched_in_path() {
    if !kvm() {
        return;
    }
    let o = run(plan("busybox", &["echo", "found"])).await;
    assert_eq!(stdout(&o), "found\n");
    // argv[0] is what the plan says; /proc/self/exe is where it was found.
    let o = run(plan("busybox", &["readlink", "/proc/self/exe"])).await;
    assert!(stdout(&o).ends_with("/busybox\n"), "{}", stdout(&o));
}
