//! Run untrusted workloads under the isolation their policy picks: a container on the
//! shared host kernel (fast, full Linux ABI) or a KVM micro-VM (the workload never
//! touches the host kernel).
//!
//! ```no_run
//! use hybrid_sandbox::{Sandbox, Workload};
//!
//! # async fn demo() -> Result<(), hybrid_sandbox::Error> {
//! let sandbox = Sandbox::with_default_policy();
//! let outcome = sandbox.run(Workload::new("python3", ["-c", "print(6 * 7)"])).await?;
//! assert_eq!(outcome.stdout, b"42\n");
//! # Ok(()) }
//! ```
//!
//! Without an async runtime, use [`blocking::Sandbox`]. Every run returns an
//! [`Outcome`] with the isolation used, how the run ended, its output and costs, the
//! decision's reasons, and an [`EnforcementReport`] of what was really in force.

pub mod blocking;
mod image;
mod live;
mod sandbox;
mod template;

pub use image::import_options;
pub use live::{Live, Snapshot};
pub use sandbox::{Error, Sandbox};
pub use sandbox_images::{
    ImageConfig, ImageError, ImageRecord, ImageStore, ImportOptions, LimitKind, PerImageLimits,
    UnpackLimits,
};
pub use template::{TemplateInfo, TemplateRun};

pub use sandbox_core::network;
pub use sandbox_core::{
    check_signal, units, Backend, BackendProbe, ByteSize, ControlHandle, Decision,
    EnforcementLevel, EnforcementReport, Execution, Floor, HostSupport, ImageLimits, Isolation,
    IsolationRequest, KillHandle, LandlockReport, LimitMechanism, Limits, LimitsReport, Mount,
    MountAccess, MountMode, MountReport, Need, Network, Outcome, OutputChunk, OutputStream, Plan,
    Policy, PolicyError, RootDir, RunError, SeccompAction, SeccompReport, SelectionError,
    SpawnError, Stdin, StdinWriter, StreamKind, Termination, Tmpfs, VmReport, Workload,
    DEFAULT_PATH, EMBEDDED_DEFAULT, ROOT_MODE_HOST_ID,
};
pub use sandbox_core::{
    live::ByteStream, EndReason, ExecLimits, ExecRequest, FileData, FileKind, FileStat, LiveError,
    LiveOptions, LiveSandbox, LiveSnapshot, LiveState, LiveStats, Parked, ParkedExec, TemplateDef,
    TtySize,
};
