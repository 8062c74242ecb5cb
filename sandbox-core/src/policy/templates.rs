//! `[templates.NAME]`: warm templates. A template names a backend, a program and the
//! profile keys of the sandbox it runs in; the library starts the program once, lets
//! it run until it first waits on its stdin, and starts each run from that state.

use super::error::{did_you_mean, Location, PolicyError};
use super::schema::{PolicyFile, ProfileSpec, TemplateSpec};
use super::Policy;
use crate::types::{Isolation, IsolationRequest, Network};
use crate::workload::Workload;

/// Most templates a policy may name.
const MAX_TEMPLATES: usize = 100;
/// Most pre-started instances a template keeps.
pub(crate) const MAX_POOL: u32 = 64;

/// A template as the policy defines it, ready to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateDef {
    /// Its name (`[templates.NAME]`).
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The backend its state lives in.
    pub isolation: Isolation,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Ready instances kept (container: 1 to 64, required; micro-VM: 0 to 64, forks of
    /// its snapshot started ahead, 0 when unset: each run forks when it comes).
    pub pool: u32,
    /// The sandbox it runs in, as a live sandbox's spec (no program): its profile,
    /// image, mounts, env, limits and network, isolation forced to `isolation`.
    pub spec: Workload,
}

fn invalid(origin: &str, key: String, message: String) -> PolicyError {
    PolicyError::Invalid {
        location: Location {
            origin: origin.to_string(),
            line: None,
            column: None,
        },
        key,
        message,
    }
}

/// Checks every `[templates.NAME]` of a policy file.
pub(crate) fn check(file: &PolicyFile, origin: &str) -> Result<(), PolicyError> {
    if file.templates.len() > MAX_TEMPLATES {
        return Err(invalid(
            origin,
            "templates".into(),
            format!(
                "{} templates; at most {MAX_TEMPLATES}",
                file.templates.len()
            ),
        ));
    }
    for (name, t) in &file.templates {
        check_one(file, name, t).map_err(|(k, m)| invalid(origin, k, m))?;
    }
    Ok(())
}

fn check_one(file: &PolicyFile, name: &str, t: &TemplateSpec) -> Result<(), (String, String)> {
    let key = format!("templates.{name}");
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err((
            key,
            "template names are 1 to 64 letters, digits, `-`, `_` or `.`".into(),
        ));
    }
    let isolation = match t.isolation.as_deref() {
        None => {
            return Err((
                format!("{key}.isolation"),
                "missing: a template names its backend, isolation = \"microvm\" or \"container\""
                    .into(),
            ))
        }
        Some("microvm") => Isolation::MicroVm,
        Some("container") => Isolation::Container,
        Some(other) => {
            return Err((
                format!("{key}.isolation"),
                format!(
                    "`{other}` is not a template isolation; use \"microvm\" (each run is a fork of the template's snapshot) or \"container\" (each run takes a pre-started instance from its pool)"
                ),
            ))
        }
    };
    match &t.argv {
        None => {
            return Err((
                format!("{key}.argv"),
                "missing: the program a template runs, e.g. argv = [\"python3\", \"-c\", \"...\"]"
                    .into(),
            ))
        }
        Some(a) if a.is_empty() || a[0].is_empty() => {
            return Err((
                format!("{key}.argv"),
                "empty: argv[0] is the program to run".into(),
            ))
        }
        Some(a) => {
            if let Some(i) = a.iter().position(|s| s.contains('\0')) {
                return Err((format!("{key}.argv[{i}]"), "contains a NUL byte".into()));
            }
        }
    }
    match (isolation, t.pool) {
        (Isolation::Container, None) => {
            return Err((
                format!("{key}.pool"),
                format!(
                    "missing: a container template keeps pre-started instances; set pool = N (1 to {MAX_POOL})"
                ),
            ))
        }
        (Isolation::Container, Some(0)) => {
            return Err((
                format!("{key}.pool"),
                format!("a container template needs at least one ready instance (1 to {MAX_POOL})"),
            ))
        }
        (_, Some(n)) if n > MAX_POOL => {
            return Err((format!("{key}.pool"), format!("{n}; at most {MAX_POOL}")))
        }
        _ => {}
    }
    if t.network == Some(Network::Egress) {
        return Err((
            format!("{key}.network"),
            "templates run with network \"none\" or \"loopback\": the egress network's broker and connections are host state that a template's snapshot or pooled instance cannot hand to each run".into(),
        ));
    }
    if let Some(p) = &t.profile {
        if !file.profiles.contains_key(p) {
            let hint = did_you_mean(p, file.profiles.keys().map(String::as_str))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err((
                format!("{key}.profile"),
                format!("there is no profile `{p}`{hint}"),
            ));
        }
    }
    // The profile keys are checked as a profile's are.
    let as_profile = ProfileSpec {
        limits: t.limits.clone(),
        mounts: t.mounts.clone(),
        env: t.env.clone(),
        ..ProfileSpec::default()
    };
    super::validate::profile_keys(&as_profile, &key)?;
    Ok(())
}

impl Policy {
    /// The names of its templates.
    pub fn template_names(&self) -> Vec<&str> {
        self.file.templates.keys().map(String::as_str).collect()
    }

    /// The template `name`, or an error naming the ones there are.
    pub fn template(&self, name: &str) -> Result<TemplateDef, PolicyError> {
        let Some(t) = self.file.templates.get(name) else {
            let names = self.template_names();
            let hint = did_you_mean(name, names.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(PolicyError::InvalidRunOption {
                option: "template".into(),
                message: format!(
                    "policy {} has no template `{name}`{hint}; it has {}",
                    self.origin,
                    if names.is_empty() {
                        "none (add a [templates.NAME] table)".to_string()
                    } else {
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            });
        };
        // Checked when the policy was loaded.
        let isolation = match t.isolation.as_deref() {
            Some("container") => Isolation::Container,
            _ => Isolation::MicroVm,
        };
        let spec = Workload {
            profile: t.profile.clone(),
            isolation: Some(IsolationRequest::from(isolation)),
            image: t.image.clone(),
            mounts: t.mounts.clone().unwrap_or_default(),
            env: t.env.clone().unwrap_or_default(),
            limits: t.limits.clone().unwrap_or_default(),
            network: t.network,
            ..Workload::default()
        };
        Ok(TemplateDef {
            name: name.to_string(),
            description: t.description.clone(),
            isolation,
            argv: t.argv.clone().unwrap_or_default(),
            pool: t.pool.unwrap_or(0),
            spec,
        })
    }
}
