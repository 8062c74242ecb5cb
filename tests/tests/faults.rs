//! Faults: a full disk, a closed stdout, a flood of output, a caller that dies. The
//! workload sees the error a Linux program expects; the caller never hangs.

use std::time::Duration;

use hsb_tests::*;
use hybrid_sandbox::IsolationRequest;

fn c(w: Workload) -> Workload {
    w.isolation(IsolationRequest::Container)
}

/// A tiny tmpfs mounted on the host for the test's lifetime (needs root).
struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    fn new(size: &str) -> Option<TinyFs> {
        if !root_caller() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs");
        Some(TinyFs { dir })
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_rw_mount_gives_enospc() {
    let Some(fs) = TinyFs::new("64k") else {
        return;
    };
    let w = c(sh("dd if=/dev/zero of=/out/big bs=4k count=64 2>&1 | grep -o 'No space left on device' | head -1; ls /out")).mount(Mount::rw(fs.dir.path(), "/out"));
    let o = run(w);
    assert_eq!(stdout(&o), "No space left on device\nbig\n", "{o:?}");
}

#[test]
fn a_workload_that_closes_stdout_does_not_hang_the_caller() {
    let mut w = c(sh("exec 1>&-; sleep 0.2; echo still here >&2"));
    w.limits.wall_time = Some(Duration::from_secs(10));
    let o = run(w);
    assert!(o.success(), "{o:?}");
    assert_eq!(o.stderr, b"still here\n");
}

#[test]
fn writing_to_a_closed_reader_gets_sigpipe_like_linux() {
    let o = run(c(sh("yes | head -c 5 >/dev/null; echo ok")));
    assert_eq!(stdout(&o), "ok\n");
}

#[test]
fn a_flood_of_output_is_bounded_and_the_caller_keeps_up() {
    let mut w = c(sh("cat /dev/zero >&2 & cat /dev/urandom"));
    w.limits.output = Some(hybrid_sandbox::ByteSize::mib(8));
    w.limits.wall_time = Some(Duration::from_secs(30));
    let o = run(w);
    assert_eq!(o.termination, Termination::OutputLimit, "{o:?}");
    assert_eq!(o.stdout.len() + o.stderr.len(), 8 << 20);
}

#[test]
fn the_caller_not_reading_the_stream_does_not_block_the_workload() {
    // Output is captured even when nobody takes the stream.
    let rt = runtime();
    rt.block_on(async {
        let mut exec = sandbox()
            .spawn(c(sh("head -c 3000000 /dev/zero")))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let o = exec.wait().await.unwrap();
        assert_eq!(o.stdout.len(), 3_000_000);
    });
}

/// The same faults in the micro-VM (busybox, which is static, does the work).
mod microvm {
    use super::*;

    fn vm(args: &[&str]) -> Workload {
        Workload::new("/usr/bin/busybox", args.iter().copied()).isolation(IsolationRequest::MicroVm)
    }

    #[test]
    fn a_full_rw_mount_gives_enospc() {
        if !backend_ready(IsolationRequest::MicroVm) {
            return;
        }
        let Some(fs) = TinyFs::new("64k") else {
            return;
        };
        let o = run(
            vm(&["dd", "if=/dev/zero", "of=/out/big", "bs=4096", "count=64"])
                .mount(Mount::rw(fs.dir.path(), "/out")),
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("No space left on device"),
            "{o:?}"
        );
    }

    #[test]
    fn a_workload_that_closes_stdout_does_not_hang_the_caller() {
        if !backend_ready(IsolationRequest::MicroVm) {
            return;
        }
        let mut w = vm(&["sh", "-c", "exec 1>&-; echo still here >&2"]);
        w.limits.wall_time = Some(Duration::from_secs(10));
        let o = run(w);
        assert!(o.success(), "{o:?}");
        assert_eq!(o.stderr, b"still here\n");
    }

    #[test]
    fn a_flood_of_output_is_bounded() {
        if !backend_ready(IsolationRequest::MicroVm) {
            return;
        }
        let mut w = vm(&["cat", "/dev/zero"]);
        w.limits.output = Some(hybrid_sandbox::ByteSize::mib(8));
        w.limits.wall_time = Some(Duration::from_secs(30));
        let o = run(w);
        assert_eq!(
            o.termination,
            Termination::OutputLimit,
            "{:?}",
            o.termination
        );
        assert_eq!(o.stdout.len() + o.stderr.len(), 8 << 20);
    }

    #[test]
    fn a_workload_that_never_reads_stdin_does_not_hang_the_caller() {
        if !backend_ready(IsolationRequest::MicroVm) {
            return;
        }
        let o = run(vm(&["true"]).stdin_bytes(vec![0u8; 4 << 20]));
        assert!(o.success(), "{o:?}");
    }
}
