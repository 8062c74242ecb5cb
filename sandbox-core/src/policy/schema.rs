//! The policy file format, as serde reads it. Unknown keys are errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::netspec::{FloorNetworkKey, NetworkKey, SecretSpec};
use crate::image_limits::ImageLimits;
use crate::limits::Limits;
use crate::plan::LandlockMode;
use crate::types::{Isolation, IsolationRequest, SeccompAction};
use crate::workload::Mount;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyFile {
    /// Format version; only 1 exists.
    #[serde(default)]
    pub(crate) version: Option<u32>,
    /// Settings every profile starts from.
    #[serde(default)]
    pub(crate) defaults: ProfileSpec,
    /// Named profiles.
    #[serde(default)]
    pub(crate) profiles: BTreeMap<String, ProfileSpec>,
    /// Rules that pick a profile when the run names none; the first match wins.
    #[serde(default)]
    pub(crate) rules: Vec<RuleSpec>,
    /// The operator floor: what no profile and no per-run option may go below.
    #[serde(default)]
    pub(crate) floor: Option<FloorSpec>,
    /// Warm templates: a program started once and kept waiting on its stdin.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) templates: BTreeMap<String, TemplateSpec>,
}

/// `[templates.NAME]`: a program run until it first waits on its stdin; each run
/// starts from that state (micro-VM: a fork of its snapshot; container: a pre-started
/// instance from a pool) and gets the run's stdin.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct TemplateSpec {
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    /// `microvm` or `container` (required: a template's state lives in one backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) isolation: Option<String>,
    /// The program and its arguments (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) argv: Option<Vec<String>>,
    /// The profile it starts from (default: as a run naming none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) profile: Option<String>,
    /// An OCI image for the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) image: Option<String>,
    /// Mounts, added to the profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mounts: Option<Vec<Mount>>,
    /// Environment, added to the profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) env: Option<BTreeMap<String, String>>,
    /// Limits; each one set replaces the profile's. `wall_time`, `cpu_time` and
    /// `output` bound each run; the others the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) limits: Option<Limits>,
    /// `none` or `loopback` (`egress` is refused: a broker's connections are host
    /// state a snapshot cannot copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) network: Option<crate::types::Network>,
    /// Ready instances kept (container: required, 1 to 64; micro-VM: refused for now,
    /// each run is a fork started when it comes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pool: Option<u32>,
}

/// `[[rules]]`: a profile for workloads whose program and labels match.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSpec {
    /// The profile to use.
    pub(crate) profile: String,
    /// A glob on the program: on its path when the glob has a `/`, else on its name.
    #[serde(default)]
    pub(crate) program: Option<String>,
    /// Labels that must all match (values are globs).
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    /// What the rule is for.
    #[serde(default)]
    pub(crate) description: Option<String>,
}

/// `[floor.require]` entries: a minimum isolation for workloads with these labels.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct FloorRequireSpec {
    /// Labels that must all match (values are globs).
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    /// The minimum isolation.
    pub(crate) isolation: Isolation,
}

/// `[floor]`, in a policy or a file of its own.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct FloorSpec {
    /// Minimum isolation for every workload.
    #[serde(default)]
    pub(crate) min_isolation: Option<Isolation>,
    /// Minimum isolation by labels.
    #[serde(default)]
    pub(crate) require: Vec<FloorRequireSpec>,
    /// Maximum limits; a run without a limit gets the maximum.
    #[serde(default)]
    pub(crate) limits: Option<Limits>,
    /// The most network allowed (`none` forbids loopback), as a mode or a table with
    /// the allowlist runs may not widen.
    #[serde(default)]
    pub(crate) network: Option<FloorNetworkKey>,
    /// Host paths (globs; a match also allows what is below) that may be mounted.
    #[serde(default)]
    pub(crate) mounts_allowed: Option<Vec<String>>,
    /// Host paths that may be mounted read-write (a subset of the above).
    #[serde(default)]
    pub(crate) rw_mounts_allowed: Option<Vec<String>>,
    /// The least strict seccomp action allowed.
    #[serde(default)]
    pub(crate) seccomp_action: Option<SeccompAction>,
    /// `required`: Landlock must be fully enforced.
    #[serde(default)]
    pub(crate) landlock: Option<LandlockMode>,
    /// `false`: no fallback to a weaker backend is ever taken.
    #[serde(default)]
    pub(crate) allow_fallback: Option<bool>,
    /// Maximum image import limits; a run without one gets the lower of the default
    /// and the maximum.
    #[serde(default)]
    pub(crate) image_limits: Option<ImageLimits>,
}

/// Seccomp settings of a profile.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeccompSpec {
    /// `errno` (EPERM, default) or `kill`.
    #[serde(default)]
    pub(crate) action: Option<SeccompAction>,
}

/// One profile (or the defaults). Every key is optional; a profile's keys replace the
/// defaults', except `mounts` and `env`, which add to them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileSpec {
    /// What the profile is for.
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// `container`, `microvm` or `auto`.
    #[serde(default)]
    pub(crate) isolation: Option<IsolationRequest>,
    /// The backend to use when the chosen one is unavailable on the host.
    #[serde(default)]
    pub(crate) fallback: Option<Isolation>,
    /// Limits; each one set replaces the defaults'.
    #[serde(default)]
    pub(crate) limits: Option<Limits>,
    /// Mounts, added to the defaults'.
    #[serde(default)]
    pub(crate) mounts: Option<Vec<Mount>>,
    /// Environment, added to the defaults'.
    #[serde(default)]
    pub(crate) env: Option<BTreeMap<String, String>>,
    /// `none`, `loopback` or `egress` (then a table with the rules).
    #[serde(default)]
    pub(crate) network: Option<NetworkKey>,
    /// Secrets the broker injects for approved hosts; added to the defaults'.
    #[serde(default)]
    pub(crate) secrets: Option<BTreeMap<String, SecretSpec>>,
    /// Seccomp settings.
    #[serde(default)]
    pub(crate) seccomp: Option<SeccompSpec>,
    /// `best_effort` or `required`.
    #[serde(default)]
    pub(crate) landlock: Option<LandlockMode>,
    /// Working directory inside the sandbox.
    #[serde(default)]
    pub(crate) cwd: Option<String>,
    /// Host name inside the sandbox.
    #[serde(default)]
    pub(crate) hostname: Option<String>,
    /// An OCI image for the root (a store name or a path); the profile's `system`
    /// mounts are then left out.
    #[serde(default)]
    pub(crate) image: Option<String>,
    /// Limits on importing images; each one set replaces the defaults'.
    #[serde(default)]
    pub(crate) image_limits: Option<ImageLimits>,
}

impl ProfileSpec {
    /// `self` with `over`'s keys applied on top.
    pub(crate) fn layered(&self, over: &ProfileSpec) -> ProfileSpec {
        let mut out = self.clone();
        macro_rules! replace {
            ($($f:ident),*) => { $( if over.$f.is_some() { out.$f = over.$f.clone(); } )* };
        }
        replace!(
            description,
            isolation,
            fallback,
            landlock,
            cwd,
            hostname,
            image
        );
        if let Some(l) = &over.limits {
            out.limits.get_or_insert_with(Limits::default).overlay(l);
        }
        if let Some(l) = &over.image_limits {
            out.image_limits
                .get_or_insert_with(ImageLimits::default)
                .overlay(l);
        }
        if let Some(m) = &over.mounts {
            out.mounts
                .get_or_insert_with(Vec::new)
                .extend(m.iter().cloned());
        }
        if let Some(n) = &over.network {
            let base = out.network.take().unwrap_or_default();
            out.network = Some(NetworkKey(base.0.layered(&n.0)));
        }
        if let Some(s) = &over.secrets {
            out.secrets
                .get_or_insert_with(BTreeMap::new)
                .extend(s.clone());
        }
        if let Some(e) = &over.env {
            out.env.get_or_insert_with(BTreeMap::new).extend(e.clone());
        }
        if let Some(s) = &over.seccomp {
            let cur = out.seccomp.get_or_insert_with(SeccompSpec::default);
            if s.action.is_some() {
                cur.action = s.action;
            }
        }
        out
    }
}
