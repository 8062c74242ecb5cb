//! How a run ended, what it printed, what it cost, and what protected the host meanwhile.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::types::{Isolation, IsolationRequest, Network, SeccompAction};

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// The workload exited by itself; see `exit_code`.
    Exited,
    /// The workload was ended by a signal it did not ask for from us; see `signal`.
    Signaled,
    /// The wall-time limit was reached.
    Timeout,
    /// The memory limit was reached.
    MemoryLimit,
    /// The CPU-time limit was reached.
    CpuLimit,
    /// The process/thread limit was reached.
    PidsLimit,
    /// The workload wrote more output than allowed.
    OutputLimit,
    /// The workload did something its policy forbids with `kill` (a seccomp kill).
    PolicyViolation,
    /// The caller killed the run.
    Killed,
}

impl Termination {
    /// The name used in JSON and the C/Python APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Termination::Exited => "exited",
            Termination::Signaled => "signaled",
            Termination::Timeout => "timeout",
            Termination::MemoryLimit => "memory_limit",
            Termination::CpuLimit => "cpu_limit",
            Termination::PidsLimit => "pids_limit",
            Termination::OutputLimit => "output_limit",
            Termination::PolicyViolation => "policy_violation",
            Termination::Killed => "killed",
        }
    }
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which backend was chosen, and why, in words a person can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The backend that runs the workload.
    pub isolation: Isolation,
    /// What the policy (or the run) asked for.
    pub requested: IsolationRequest,
    /// The policy profile used.
    pub profile: String,
    /// Why, one reason per line of thought.
    pub reasons: Vec<String>,
    /// Set when the policy's fallback was taken: the isolation first chosen, and why it
    /// could not be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_from: Option<FallbackTaken>,
}

/// A fallback the policy allowed and the run took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FallbackTaken {
    /// The isolation first chosen.
    pub from: Isolation,
    /// Why it was not available.
    pub reason: String,
}

/// How much of a protection is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnforcementLevel {
    /// Everything asked for is in force.
    Full,
    /// Some of it is (the details say what is missing).
    Partial,
    /// None of it is.
    None,
}

/// The seccomp filter in force, and on whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompReport {
    /// Whether a filter is installed.
    pub enforced: bool,
    /// Who runs under it: `workload` (container) or `vmm` (the micro-VM's own threads).
    pub applies_to: String,
    /// The profile's name.
    pub profile: String,
    /// What a call outside the allowlist gets.
    pub action: SeccompAction,
    /// Number of syscalls the allowlist names.
    pub allowed_syscalls: usize,
}

/// The Landlock ruleset in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockReport {
    /// Full, partial or none.
    pub level: EnforcementLevel,
    /// Who runs under it: `workload` or `vmm`.
    pub applies_to: String,
    /// The kernel's Landlock ABI version (0 when Landlock is absent).
    pub abi: u32,
    /// What is enforced: `filesystem`, `tcp_bind`, `tcp_connect`, `scope_abstract_unix`,
    /// `scope_signal`, `ioctl_dev`, `truncate`, `refer`.
    pub enforced: Vec<String>,
    /// What was wanted but the kernel cannot do.
    pub missing: Vec<String>,
}

/// Through what the limits are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitMechanism {
    /// A cgroup v2 subtree.
    CgroupV2,
    /// cgroup v1 controllers.
    CgroupV1,
    /// Per-process rlimits only (no cgroup could be used).
    Rlimit,
    /// The micro-VM: guest RAM and the VMM's own accounting.
    Vm,
}

/// How each limit is enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsReport {
    /// The main mechanism.
    pub mechanism: LimitMechanism,
    /// Per limit, the mechanism in words (`memory` → `cgroup v1 memory.limit_in_bytes`).
    pub details: BTreeMap<String, String>,
    /// Why a stronger mechanism could not be used, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The micro-VM in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmReport {
    /// `vmx`, `svm` or `pvm`.
    pub kvm_kind: String,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Guest RAM in bytes.
    pub guest_memory_bytes: u64,
    /// What the guest's timestamp counter (`rdtsc`, `rdtscp`) shows, in words: its
    /// own (from zero at VM start) or the host's (where the hypervisor cannot offset it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_counter: Option<String>,
}

/// How the workload's accesses through a mount reach the host's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountAccess {
    /// As the caller (a rootless run): the caller's own permissions.
    Caller,
    /// As the sandbox's unprivileged host identity (`host_uid`, 65534 for a root
    /// caller): a system mount, or one that could not be idmapped (see `note`).
    SandboxIdentity,
    /// Root caller: an idmapped mount (`MOUNT_ATTR_IDMAP`) shows what the source's owner
    /// owns as the sandbox's (`host_ids` is that owner); files the workload creates
    /// belong, on the host, to that owner. The container's workload and the micro-VM's
    /// VMM both reach the files through it, as uid 65534 with no capability.
    Idmapped,
    /// Nothing is reached on the host: the mount is a symlink, resolved in the sandbox.
    None,
}

/// One mount of the run, as it was really set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountReport {
    /// The host path (resolved without following any symlink).
    pub source: String,
    /// Where it appears in the sandbox.
    pub target: String,
    /// `ro` or `rw`.
    pub mode: crate::MountMode,
    /// `directory`, `file` or `symlink`.
    pub kind: String,
    /// Whose access the workload has to the source's files.
    pub access: MountAccess,
    /// The host uid and gid of that access (absent for a symlink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ids: Option<(u32, u32)>,
    /// Why the access is what it is, when it is not what was wanted (an idmapped mount
    /// the kernel or filesystem refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Which protections were really in force during the run. Returned, never only logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcementReport {
    /// The isolation level.
    pub isolation: Isolation,
    /// Namespaces the workload (container) or the VMM (micro-VM) was placed in.
    pub namespaces: Vec<String>,
    /// True when no host privilege was used (no root, no setuid helper).
    pub rootless: bool,
    /// The host uid the sandbox's processes run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_uid: Option<u32>,
    /// Capabilities: `all dropped` or what remains.
    pub capabilities: String,
    /// `PR_SET_NO_NEW_PRIVS` set.
    pub no_new_privs: bool,
    /// The seccomp filter.
    pub seccomp: SeccompReport,
    /// The Landlock ruleset.
    pub landlock: LandlockReport,
    /// The limits.
    pub limits: LimitsReport,
    /// The network mode.
    pub network: Network,
    /// How the network mode is enforced, in words: what the workload can reach, host
    /// UNIX sockets in mounted directories included.
    #[serde(default)]
    pub network_detail: String,
    /// The root filesystem, in words.
    pub filesystem: String,
    /// The micro-VM, for `microvm` runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmReport>,
    /// The plan's mounts, in the order they were applied (parents first), and how each
    /// reaches the host's files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountReport>,
}

/// Everything about a finished run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The isolation used.
    pub isolation: Isolation,
    /// Why the run ended.
    pub termination: Termination,
    /// Exit code, when the workload exited by itself.
    pub exit_code: Option<i32>,
    /// The signal that ended the workload, when one did.
    pub signal: Option<i32>,
    /// Captured stdout (at most the output limit).
    #[serde(with = "bytes_as_text")]
    pub stdout: Vec<u8>,
    /// Captured stderr (at most the output limit).
    #[serde(with = "bytes_as_text")]
    pub stderr: Vec<u8>,
    /// Wall time from start to end.
    #[serde(with = "duration_ms", rename = "wall_time_ms")]
    pub wall_time: Duration,
    /// CPU time of all the workload's processes.
    #[serde(with = "duration_ms", rename = "cpu_time_ms")]
    pub cpu_time: Duration,
    /// Largest memory use seen, in bytes (0 when unknown).
    pub peak_memory_bytes: u64,
    /// Which backend, and why.
    pub decision: Decision,
    /// What protected the host.
    pub enforcement: EnforcementReport,
    /// The egress broker's report: every DNS answer and connection decision, exposed
    /// ports (runs with `network = "egress"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::network::NetworkReport>,
    /// Syscalls the micro-VM's personality does not implement, and how often each was called.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unimplemented_syscalls: BTreeMap<String, u64>,
}

impl Outcome {
    /// The exit status a shell would report: the exit code, 128+signal, 124 on timeout.
    pub fn shell_status(&self) -> i32 {
        match (self.termination, self.exit_code, self.signal) {
            (Termination::Timeout, _, _) => 124,
            (Termination::Exited, Some(code), _) => code,
            (_, _, Some(sig)) => 128 + sig,
            (_, Some(code), None) => code,
            _ => 137,
        }
    }

    /// True when the workload exited by itself with code 0.
    pub fn success(&self) -> bool {
        self.termination == Termination::Exited && self.exit_code == Some(0)
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(ms.max(0.0) / 1e3))
    }
}

/// Output bytes as a JSON string: UTF-8 text as is, anything else lossily (the C and
/// Python APIs give the exact bytes).
mod bytes_as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(b))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(String::deserialize(d)?.into_bytes())
    }
}
