//! Core API of hybrid-sandbox: what to run ([`Workload`]), under which rules
//! ([`Policy`], [`Limits`]), how it ended ([`Outcome`]), and the contract of an isolation
//! backend ([`Backend`], [`Execution`]).
//!
//! This crate holds no platform code but one checked path both backends share:
//! [`mount_source`], which opens and classifies every host mount source. The backends
//! (`backend-container`, `backend-microvm`) implement [`Backend`], and the
//! `hybrid-sandbox` facade ties them together.

mod backend;
pub mod child;
pub mod files;
mod image_limits;
mod limits;
pub mod live;
pub mod mount_source;
pub mod network;
mod outcome;
mod plan;
mod policy;
mod selection;
mod types;
pub mod units;
mod workload;

pub use backend::{
    check_signal, Backend, BackendProbe, ControlHandle, Execution, KillHandle, OutputChunk,
    OutputStream, RunError, SpawnError, StdinReceiver, StdinWriter, StreamKind,
};
pub use image_limits::ImageLimits;
pub use limits::{LimitOverrides, Limits};
pub use live::{
    EndReason, ExecLimits, ExecRequest, FileData, FileKind, FileStat, LiveError, LiveOptions,
    LiveSandbox, LiveSnapshot, LiveState, LiveStats, Parked, ParkedExec, PreStarted, TtySize,
};
pub use outcome::{
    Decision, EnforcementLevel, EnforcementReport, FallbackTaken, LandlockReport, LimitMechanism,
    LimitsReport, MountAccess, MountReport, Outcome, SeccompReport, Termination, VmReport,
};
pub use plan::{
    ImageRoot, ImageSpec, ImageUseError, LandlockMode, Plan, PlannedMount, PlannedTmpfs, RootDir,
    ROOT_MODE_HOST_ID, SANDBOX_GID, SANDBOX_UID,
};
pub use policy::{
    check_limit_ranges, did_you_mean, EffectiveProfile, Floor, Location, Policy, PolicyError,
    TemplateDef, EMBEDDED_DEFAULT, EMBEDDED_ORIGIN,
};
pub use selection::{HostSupport, SelectionError};
pub use types::{Isolation, IsolationRequest, Need, Network, SeccompAction};
pub use units::{ByteSize, Cpus};
pub use workload::{Mount, MountMode, Stdin, Tmpfs, Workload};

/// The `PATH` a workload gets when neither the policy nor the run sets one.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin";
