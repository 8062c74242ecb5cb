//! Small shared vocabulary: isolation levels, network modes, seccomp actions.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The isolation a run actually used. Ordered by strength: `Container < MicroVm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Namespaces, seccomp, Landlock and cgroups on the shared host kernel.
    Container,
    /// A KVM micro-VM: the workload never issues a host syscall.
    #[serde(rename = "microvm")]
    MicroVm,
}

impl Isolation {
    /// The name used in policy files, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Container => "container",
            Isolation::MicroVm => "microvm",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The isolation a policy or a run asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IsolationRequest {
    /// The container backend.
    Container,
    /// The micro-VM backend.
    #[serde(rename = "microvm")]
    MicroVm,
    /// Chosen from the workload's labels and needs.
    Auto,
}

impl IsolationRequest {
    /// The name used in policy files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            IsolationRequest::Container => "container",
            IsolationRequest::MicroVm => "microvm",
            IsolationRequest::Auto => "auto",
        }
    }
}

impl fmt::Display for IsolationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for IsolationRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "container" => Ok(IsolationRequest::Container),
            "microvm" => Ok(IsolationRequest::MicroVm),
            "auto" => Ok(IsolationRequest::Auto),
            _ => Err(format!(
                "unknown isolation `{s}` (use container, microvm or auto)"
            )),
        }
    }
}

impl From<Isolation> for IsolationRequest {
    fn from(i: Isolation) -> Self {
        match i {
            Isolation::Container => IsolationRequest::Container,
            Isolation::MicroVm => IsolationRequest::MicroVm,
        }
    }
}

/// What network the workload gets. Ordered by how much it opens:
/// `None < Loopback < Egress`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// No interface at all, not even loopback.
    None,
    /// A private loopback interface, up, inside the sandbox only (the default): the
    /// sandbox's programs can talk to each other over TCP and UDP; nothing outside it is
    /// reachable, and nothing outside can reach in.
    #[default]
    Loopback,
    /// Its own loopback, and the outside world through the egress broker only: DNS and
    /// each connection decided by the policy's allow and deny rules.
    Egress,
}

impl Network {
    /// The name used in policy files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Loopback => "loopback",
            Network::Egress => "egress",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Network::None),
            "loopback" => Ok(Network::Loopback),
            "egress" => Ok(Network::Egress),
            _ => Err(format!(
                "unknown network `{s}` (use none, loopback or egress)"
            )),
        }
    }
}

/// What happens when a workload calls a syscall its seccomp profile does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompAction {
    /// The call fails with `EPERM` (the default): programs that probe features keep working.
    #[default]
    Errno,
    /// The whole workload is killed, and the run ends in `policy_violation`.
    Kill,
}

impl SeccompAction {
    /// The name used in policy files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SeccompAction::Errno => "errno",
            SeccompAction::Kill => "kill",
        }
    }
}

/// Something a workload declares it needs, which only some backends provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// A network (loopback) inside the sandbox.
    Network,
    /// The full Linux ABI of the host kernel (unusual syscalls, devices, /sys).
    FullLinux,
}

impl Need {
    /// The name used in policy files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Need::Network => "network",
            Need::FullLinux => "full_linux",
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Need {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "network" => Ok(Need::Network),
            "full_linux" => Ok(Need::FullLinux),
            _ => Err(format!("unknown need `{s}` (use network or full_linux)")),
        }
    }
}

impl SeccompAction {
    /// How strict: `Kill` is stricter than `Errno`.
    pub fn strictness(self) -> u8 {
        match self {
            SeccompAction::Errno => 0,
            SeccompAction::Kill => 1,
        }
    }
}
