//! The micro-VM backend of hybrid-sandbox: a KVM VMM that runs static (and static-PIE)
//! x86-64 Linux programs in guest user mode, with the Linux syscall ABI answered by the
//! VMM itself (a personality, as gVisor's Sentry does).
//!
//! Layout: `vm` creates the VM, `guest` is the tiny supervisor (descriptor tables and a
//! few dozen instructions that turn syscalls and exceptions into exits), `memory` and
//! `mm` the guest's frames and address space, `loader` the ELF loader, `linux` the
//! syscall personality (one file per family), `vfs` the sandbox's filesystem over the
//! plan's mounts, `confine` the VMM thread's own seccomp and Landlock, `vcpu` the run
//! loop, `backend` the `sandbox_core::Backend` implementation.
//!
//! ```no_run
//! use backend_microvm::MicroVmBackend;
//! use sandbox_core::{Backend, HostSupport, Policy, Workload};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = MicroVmBackend::new();
//! if !backend.probe().available {
//!     return Ok(()); // the probe says why (no /dev/kvm, no permission...)
//! }
//! let workload = Workload::new("busybox", ["echo", "hello from a micro-VM"]);
//! let plan = Policy::embedded_default().resolve(&workload, &HostSupport::assume_all())?;
//! let mut run = backend.spawn(plan).await?;
//! let outcome = run.wait().await?;
//! assert_eq!(outcome.stdout, b"hello from a micro-VM\n");
//! # Ok(())
//! # }
//! ```
//!
//! How the guest reaches the VMM (see `guest/supervisor.S`): `LSTAR` points at a stub
//! in a user-accessible page (on PVM the `LSTAR` handler runs with user privilege)
//! that writes a doorbell page backed by no memory: the write exits to the VMM, which
//! answers the syscall and resumes the stub at an `iretq`. CPU exceptions go through
//! the IDT (IST stack, CPL0) to handlers that report with an `out` to a port user mode
//! cannot reach. Page-table entries the VMM takes away or narrows are rewritten by the
//! guest itself at CPL0, followed by a CR3 reload, before user mode runs again: PVM's
//! shadow paging only notices guest writes, and a VT-x/AMD-V TLB may hold the old entry.

mod abi;
mod backend;
mod confine;
mod cpuid_cache;
mod errno;
mod fastcall;
mod guest;
mod kick;
mod kvmstats;
mod linux;
mod live;
mod loader;
mod memory;
mod mm;
mod net;
mod pipe;
mod probe;
mod redirect;
mod sandbox;
mod savefile;
mod snap;
mod stdio;
mod support;
mod sync;
mod trap;
mod tty;
mod vcpu;
mod vfs;
mod vm;
mod warm;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use backend::MicroVmBackend;
pub use live::{load_snapshot, load_snapshot_file};
pub use support::{syscall_table, Support, SyscallSupport};

/// The layering of the modules, checked on the sources: the filesystem (`vfs`) and
/// the personality (`linux`) do not import each other's insides (the personality
/// uses the filesystem; the filesystem knows nothing of processes or syscalls), and
/// the pieces both use (`pipe`, `errno`, the ABI types of `abi`) depend on neither.
#[cfg(test)]
mod layering {
    use std::path::Path;

    fn sources(rel: &str) -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(rel);
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                for e in std::fs::read_dir(&p).expect("read_dir") {
                    stack.push(e.expect("entry").path());
                }
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).expect("read");
                out.push((p.display().to_string(), text));
            }
        }
        assert!(!out.is_empty(), "no sources under {rel}");
        out
    }

    fn forbid(rel: &str, modules: &[&str]) {
        for (file, text) in sources(rel) {
            for m in modules {
                for pat in [
                    format!("crate::{m}"),
                    format!("super::{m}::"),
                    format!("super::super::{m}"),
                ] {
                    assert!(
                        !text.contains(&pat),
                        "{file} uses `{pat}`: {rel} must not depend on {m}"
                    );
                }
            }
        }
    }

    #[test]
    fn vfs_does_not_reach_into_the_personality() {
        forbid("vfs", &["linux", "vcpu", "sandbox", "backend"]);
    }

    #[test]
    fn shared_pieces_depend_on_neither() {
        forbid("pipe.rs", &["linux", "vfs"]);
        forbid("abi", &["linux", "vfs", "mm"]);
        forbid("errno.rs", &["linux", "vfs"]);
    }
}
