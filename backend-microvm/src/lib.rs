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

mod backend;
mod confine;
mod errno;
mod guest;
mod kick;
mod linux;
mod loader;
mod memory;
mod mm;
mod probe;
mod sandbox;
mod stdio;
mod vcpu;
mod vfs;
mod vm;

pub use backend::MicroVmBackend;
