//! The host side of files moving under the VMM: a host process sharing a read-write
//! mount can swap what the VFS looked up for something else before the VFS opens it.
//! The test hook (feature `test-hooks`, src/linux/hooks.rs) makes the swap happen in
//! exactly that window, every time.

mod common;

use common::*;
use sandbox_core::{MountMode, PlannedMount, Termination};

/// A regular file swapped for a FIFO between lookup and open: the open never blocks
/// the vCPU thread (it used to wait forever for a writer, beyond any limit or kill), and
/// the workload gets EACCES, as for any host FIFO. Through the exit path (`swap`) and
/// as a fast call, answered on the fast-call thread (`swap-fast`).
#[tokio::test]
async fn a_file_swapped_for_a_fifo_is_refused_without_blocking() {
    if !kvm() {
        return;
    }
    let runs = Toolchain::all()
        .into_iter()
        .flat_map(|tc| ["swap", "swap-fast"].map(|mode| (tc, mode)));
    for (tc, mode) in runs {
        let dir = temp_dir("swap");
        std::fs::write(dir.join("f"), b"regular").unwrap();
        let fifo = std::ffi::CString::new(dir.join("f.fifo").to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o666) }, 0);
        // As root the VMM reaches files as an unprivileged id: let it rename here.
        std::process::Command::new("chmod")
            .arg("0777")
            .arg(dir.path())
            .status()
            .unwrap();
        let mut plan = prog_plan("hook", tc, &[mode, "/data/f"]);
        plan.mounts.push(PlannedMount {
            source: dir.to_path_buf(),
            target: "/data".into(),
            mode: MountMode::Rw,
            optional: false,
            system: false,
            noexec: false,
        });
        let o = run(plan).await;
        assert_eq!(o.termination, Termination::Exited, "{tc:?} {mode}: {o:?}");
        assert_eq!(
            stdout(&o),
            format!("open /data/f: rc=-1 errno={}\n", libc::EACCES),
            "{tc:?} {mode}: {}",
            stderr(&o)
        );
        let kind = std::fs::symlink_metadata(dir.join("f"))
            .unwrap()
            .file_type();
        use std::os::unix::fs::FileTypeExt;
        assert!(kind.is_fifo(), "{tc:?} {mode}: the swap happened");
    }
}
