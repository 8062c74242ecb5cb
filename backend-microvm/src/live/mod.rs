//! Live micro-VM sandboxes: the VM stays, each exec is a new guest process.
//!
//! `create` builds the sandbox exactly as a run does (`sandbox::prepare`: guest memory,
//! the VFS, the VM, the thread's seccomp filter and Landlock) on its own thread,
//! `hsb-vcpu`, but loads no program: the only process is a virtual init (`guest.rs`).
//! That thread then runs the scheduler for ever, serving a command queue (`cmd.rs`)
//! between guest instructions: execs, file calls (`files.rs`), signals, pause, stats.
//! The host's async side (`host.rs`, `exec.rs`) sends commands and waits for answers;
//! no other thread ever touches the guest. Destroying the sandbox kills the thread's
//! loop; the thread frees the VM, guest memory and host descriptors as it ends, and
//! `destroy` returns once it did.

mod cmd;
mod exec;
mod files;
pub(crate) mod guest;
mod host;
mod park;
pub(crate) mod snapshot;
mod stream;
mod thread;

pub(crate) use host::create;
pub use host::{load_snapshot, load_snapshot_file};
