//! Choosing the backend for a run, fail closed, with the reasons in words.
//!
//! `auto` follows the container-vs-VM tradeoff: untrusted or multi-tenant code goes to
//! the micro-VM; trusted tools go to the container; a workload that needs what only the
//! container provides (a network, the full Linux ABI, a program the micro-VM cannot run
//! yet) gets the container only if it is trusted, and is refused otherwise. An operator
//! floor can raise the minimum; nothing is ever lowered silently.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::outcome::{Decision, FallbackTaken};
use crate::plan::Plan;
use crate::types::{Isolation, IsolationRequest, Need};

type Check = Arc<dyn Fn(Isolation) -> Result<(), String> + Send + Sync>;
type CanRun = Arc<dyn Fn(Isolation, &Plan) -> Result<(), String> + Send + Sync>;

/// What the host can run: for each backend, `Ok` or the reason it is unavailable; and
/// whether a backend can run a given program. Asked lazily, only for what a decision needs.
#[derive(Clone)]
pub struct HostSupport {
    check: Check,
    can_run: CanRun,
}

impl std::fmt::Debug for HostSupport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostSupport")
    }
}

impl HostSupport {
    /// Availability known for both backends; every program assumed runnable.
    pub fn known(container: Result<(), String>, microvm: Result<(), String>) -> Self {
        HostSupport::lazy(move |i| match i {
            Isolation::Container => container.clone(),
            Isolation::MicroVm => microvm.clone(),
        })
    }

    /// Availability asked for when a decision needs it.
    pub fn lazy(f: impl Fn(Isolation) -> Result<(), String> + Send + Sync + 'static) -> Self {
        HostSupport {
            check: Arc::new(f),
            can_run: Arc::new(|_, _| Ok(())),
        }
    }

    /// Adds a check of whether a backend can run a plan's program (e.g. the micro-VM
    /// and dynamically linked programs).
    pub fn with_can_run(
        mut self,
        f: impl Fn(Isolation, &Plan) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.can_run = Arc::new(f);
        self
    }

    /// Every backend available (for explaining a policy without probing the host).
    pub fn assume_all() -> Self {
        HostSupport::known(Ok(()), Ok(()))
    }

    /// Whether `i` can run here, and why not.
    pub fn check(&self, i: Isolation) -> Result<(), String> {
        (self.check)(i)
    }

    /// Whether `i` can run this plan's program, and why not.
    pub fn can_run(&self, i: Isolation, plan: &Plan) -> Result<(), String> {
        (self.can_run)(i, plan)
    }
}

/// No backend may run the workload under its policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectionError {
    /// The isolation that was chosen, if one was.
    pub isolation: Option<Isolation>,
    /// Why no backend can be used, and what to change.
    pub message: String,
    /// The reasons gathered before the refusal.
    pub reasons: Vec<String>,
}

/// Where the isolation request came from: a per-run option cannot be raised by the
/// floor (that is an error, found earlier); a profile's can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestSource {
    Run,
    Profile,
}

/// The inputs of a decision.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) profile: &'a str,
    pub(crate) requested: IsolationRequest,
    pub(crate) source: RequestSource,
    pub(crate) fallback: Option<Isolation>,
    pub(crate) labels: &'a BTreeMap<String, String>,
    pub(crate) needs: &'a [Need],
    /// The floor's minimum for these labels, and why.
    pub(crate) floor_min: Option<(Isolation, String)>,
    pub(crate) fallback_allowed: bool,
    pub(crate) host: &'a HostSupport,
    /// Extra reasons (profile choice, floor clamps) to put first.
    pub(crate) preamble: Vec<String>,
}

fn trust_of(labels: &BTreeMap<String, String>) -> (bool, String) {
    match labels.get("trust").map(String::as_str) {
        Some("trusted") => (true, "trust=trusted".into()),
        Some(t) => (false, format!("trust={t}")),
        None => (false, "no trust label (treated as untrusted)".into()),
    }
}

fn needs_text(needs: &[String]) -> String {
    needs.join(", ")
}

pub(crate) fn decide(req: &Request<'_>, plan: &Plan) -> Result<Decision, SelectionError> {
    let mut reasons = req.preamble.clone();
    let refuse =
        |isolation: Option<Isolation>, message: String, reasons: &Vec<String>| SelectionError {
            isolation,
            message,
            reasons: reasons.clone(),
        };
    let (trusted, trust_text) = trust_of(req.labels);
    let tenant = req.labels.get("tenant");
    // What only the container provides, for this workload.
    let mut container_only: Vec<String> = req.needs.iter().map(|n| n.to_string()).collect();
    container_only.sort();
    container_only.dedup();

    let mut chosen = match req.requested {
        IsolationRequest::Container => {
            reasons.push(format!(
                "profile `{}` or the run asks for container isolation",
                req.profile
            ));
            Isolation::Container
        }
        IsolationRequest::MicroVm => {
            reasons.push(format!(
                "profile `{}` or the run asks for micro-VM isolation",
                req.profile
            ));
            Isolation::MicroVm
        }
        IsolationRequest::Auto => {
            if req.host.check(Isolation::MicroVm).is_ok() {
                if let Err(why) = req.host.can_run(Isolation::MicroVm, plan) {
                    container_only.push(format!("a program the micro-VM cannot run yet ({why})"));
                }
            }
            match (trusted, tenant) {
                (true, None) => {
                    reasons.push(format!("auto: {trust_text}: trusted tools get the container's full Linux ABI and speed"));
                    Isolation::Container
                }
                (true, Some(t)) if !container_only.is_empty() => {
                    reasons.push(format!(
                        "auto: multi-tenant (tenant={t}) code would get the micro-VM, but it needs {} and is trusted, so the container is allowed",
                        needs_text(&container_only)
                    ));
                    Isolation::Container
                }
                (true, Some(t)) => {
                    reasons.push(format!("auto: multi-tenant code (tenant={t}) gets the micro-VM even when trusted"));
                    Isolation::MicroVm
                }
                (false, _) if !container_only.is_empty() => {
                    return Err(refuse(
                        None,
                        format!(
                            "auto: the workload is untrusted ({trust_text}) and needs {}, which only the container backend provides; \
                             untrusted code is not run in containers by `auto`: label it trust=trusted if it is, or drop the need",
                            needs_text(&container_only)
                        ),
                        &reasons,
                    ))
                }
                (false, _) => {
                    reasons.push(format!("auto: {trust_text}: untrusted code gets the stronger micro-VM isolation"));
                    Isolation::MicroVm
                }
            }
        }
    };

    if let Some((min, why)) = &req.floor_min {
        if chosen < *min {
            if req.source == RequestSource::Run {
                // Checked before planning; kept here so a decision can never go below.
                return Err(refuse(
                    Some(chosen),
                    format!("{chosen} was asked for, but {why}"),
                    &reasons,
                ));
            }
            if !container_only.is_empty() && req.requested == IsolationRequest::Auto {
                return Err(refuse(
                    Some(chosen),
                    format!(
                        "the workload needs {} (container only), but {why}",
                        needs_text(&container_only)
                    ),
                    &reasons,
                ));
            }
            reasons.push(format!("{why}: raised from {chosen} to {min}"));
            chosen = *min;
        }
    }
    if chosen == Isolation::MicroVm && req.requested != IsolationRequest::Auto {
        for n in req.needs {
            reasons.push(format!(
                "note: the workload declares it needs {n}, which the micro-VM may not provide"
            ));
        }
    }

    match req.host.check(chosen) {
        Ok(()) => Ok(Decision {
            isolation: chosen,
            requested: req.requested,
            profile: req.profile.into(),
            reasons,
            fallback_from: None,
        }),
        Err(reason) => {
            let min_ok = |fb: Isolation| req.floor_min.as_ref().is_none_or(|(m, _)| fb >= *m);
            match req.fallback {
                Some(fb)
                    if fb != chosen
                        && req.fallback_allowed
                        && min_ok(fb)
                        && req.host.check(fb).is_ok() =>
                {
                    reasons.push(format!(
                        "{chosen} is unavailable here ({reason}); profile `{}` names `fallback = \"{fb}\"`, so {fb} is used",
                        req.profile
                    ));
                    Ok(Decision {
                        isolation: fb,
                        requested: req.requested,
                        profile: req.profile.into(),
                        reasons,
                        fallback_from: Some(FallbackTaken {
                            from: chosen,
                            reason,
                        }),
                    })
                }
                fb => {
                    let why_no_fallback = match fb {
                        None => "the profile names no fallback".to_string(),
                        Some(f) if !req.fallback_allowed => {
                            format!("the operator floor forbids the fallback to {f}")
                        }
                        Some(f) if !min_ok(f) => {
                            format!("the fallback to {f} would go below the operator floor")
                        }
                        Some(f) => format!("the fallback, {f}, is unavailable too"),
                    };
                    let hint = match chosen {
                        Isolation::MicroVm => "run on a host with /dev/kvm, or choose `--isolation container` if the workload is trusted enough",
                        Isolation::Container => "enable unprivileged user namespaces (see `hsb probe`), or choose `--isolation microvm`",
                    };
                    Err(refuse(
                        Some(chosen),
                        format!("{chosen} isolation is not available on this host: {reason}; {why_no_fallback}; {hint}"),
                        &reasons,
                    ))
                }
            }
        }
    }
}
