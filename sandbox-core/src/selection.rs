//! Choosing the backend for a run, fail closed, with the reasons in words.

use std::collections::BTreeMap;

use crate::outcome::{Decision, FallbackTaken};
use crate::types::{Isolation, IsolationRequest};

/// What the host can run: for each backend, `Ok` or the reason it is unavailable.
/// Either known up front, or asked lazily, only for the backend a decision needs.
#[derive(Clone)]
pub struct HostSupport {
    check: std::sync::Arc<dyn Fn(Isolation) -> Result<(), String> + Send + Sync>,
}

impl std::fmt::Debug for HostSupport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostSupport")
    }
}

impl HostSupport {
    /// Availability known for both backends.
    pub fn known(container: Result<(), String>, microvm: Result<(), String>) -> Self {
        HostSupport::lazy(move |i| match i {
            Isolation::Container => container.clone(),
            Isolation::MicroVm => microvm.clone(),
        })
    }

    /// Availability asked for when a decision needs it.
    pub fn lazy(f: impl Fn(Isolation) -> Result<(), String> + Send + Sync + 'static) -> Self {
        HostSupport {
            check: std::sync::Arc::new(f),
        }
    }

    /// Every backend available (for explaining a policy without probing the host).
    pub fn assume_all() -> Self {
        HostSupport::known(Ok(()), Ok(()))
    }

    /// Whether `i` can run here, and why not.
    pub fn check(&self, i: Isolation) -> Result<(), String> {
        (self.check)(i)
    }
}

/// No backend can run the workload under its policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{isolation} isolation was chosen ({why_chosen}) but is not available on this host: {reason}; {hint}")]
pub struct SelectionError {
    /// The isolation chosen.
    pub isolation: Isolation,
    /// Why it was chosen.
    pub why_chosen: String,
    /// Why it is unavailable.
    pub reason: String,
    /// What to change.
    pub hint: String,
}

/// The inputs of a decision.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) profile: &'a str,
    pub(crate) requested: IsolationRequest,
    pub(crate) fallback: Option<Isolation>,
    pub(crate) labels: &'a BTreeMap<String, String>,
    pub(crate) host: &'a HostSupport,
}

/// Labels that send a workload to the micro-VM under `auto`.
fn auto_choice(labels: &BTreeMap<String, String>) -> (Isolation, String) {
    match labels.get("trust").map(String::as_str) {
        Some("trusted") if !labels.contains_key("tenant") => (
            Isolation::Container,
            "auto: the workload is labelled trust=trusted, so the container's full Linux ABI and speed are used".into(),
        ),
        Some("trusted") => (
            Isolation::MicroVm,
            "auto: the workload is labelled with a tenant; multi-tenant code gets the micro-VM even when trusted".into(),
        ),
        Some(t) => (Isolation::MicroVm, format!("auto: the workload is labelled trust={t}, so it gets the stronger micro-VM isolation")),
        None => (
            Isolation::MicroVm,
            "auto: the workload carries no trust label; unlabelled code is treated as untrusted and gets the micro-VM".into(),
        ),
    }
}

pub(crate) fn decide(req: &Request<'_>) -> Result<Decision, SelectionError> {
    let mut reasons = Vec::new();
    let (chosen, why) = match req.requested {
        IsolationRequest::Container => (
            Isolation::Container,
            format!(
                "profile `{}` (or the run) asks for container isolation",
                req.profile
            ),
        ),
        IsolationRequest::MicroVm => (
            Isolation::MicroVm,
            format!(
                "profile `{}` (or the run) asks for micro-VM isolation",
                req.profile
            ),
        ),
        IsolationRequest::Auto => auto_choice(req.labels),
    };
    reasons.push(why.clone());
    match req.host.check(chosen) {
        Ok(()) => Ok(Decision { isolation: chosen, requested: req.requested, profile: req.profile.into(), reasons, fallback_from: None }),
        Err(reason) => match req.fallback {
            Some(fb) if fb != chosen && req.host.check(fb).is_ok() => {
                reasons.push(format!(
                    "{chosen} is unavailable here ({reason}); profile `{}` names `fallback = \"{fb}\"`, so {fb} is used",
                    req.profile
                ));
                Ok(Decision {
                    isolation: fb,
                    requested: req.requested,
                    profile: req.profile.into(),
                    reasons,
                    fallback_from: Some(FallbackTaken { from: chosen, reason }),
                })
            }
            _ => Err(SelectionError {
                isolation: chosen,
                why_chosen: why,
                reason,
                hint: match chosen {
                    Isolation::MicroVm => "run on a host with /dev/kvm, or choose `--isolation container` if the workload is trusted enough, or name a `fallback` in the policy".into(),
                    Isolation::Container => "enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces) or choose `--isolation microvm`".into(),
                },
            }),
        },
    }
}
