//! Resource limits of one run.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::{opt_duration, ByteSize, Cpus};

/// Limits of one run. `None` means "no limit of this kind" once a plan is resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory of the whole sandbox (all its processes, its /tmp included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// Wall-clock time from start to the end of the workload.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub wall_time: Option<Duration>,
    /// CPU time of all the sandbox's processes together.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_time: Option<Duration>,
    /// Number of processes and threads alive at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// Open file descriptors per process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
    /// Largest file the workload may write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<ByteSize>,
    /// stdout and stderr together; the run ends in `output_limit` past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ByteSize>,
    /// Size of the sandbox's private /tmp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmp_size: Option<ByteSize>,
    /// CPU bandwidth of the whole sandbox: `0.5` is half of one CPU over time
    /// (container: the cgroup's CPU quota; micro-VM: its one vCPU is at most 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
}

/// Per-run limits: each one set replaces the profile's.
pub type LimitOverrides = Limits;

impl Limits {
    /// Each limit set in `other` replaces the one here.
    pub fn overlay(&mut self, other: &Limits) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(memory, wall_time, cpu_time, pids, open_files, file_size, output, tmp_size, cpus);
    }

    /// The names of the limits set here, as in a policy (`memory`, `wall_time`, ...).
    pub fn names_set(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        macro_rules! set {
            ($($f:ident),*) => { $( if self.$f.is_some() { out.push(stringify!($f)); } )* };
        }
        set!(memory, wall_time, cpu_time, pids, open_files, file_size, output, tmp_size, cpus);
        out
    }

    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}
