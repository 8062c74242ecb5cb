//! Policies: which isolation, limits, mounts and environment a workload gets.
//!
//! A policy is TOML (or the same structure as JSON): `[defaults]` and named
//! `[profiles.NAME]`. Layering: built-in values < `[defaults]` < the profile < per-run
//! options. See the README's "Policy files" section for the format.

mod error;
mod schema;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

pub use error::{did_you_mean, Location, PolicyError};
use schema::{PolicyFile, ProfileSpec};

use crate::limits::Limits;
use crate::outcome::Decision;
use crate::plan::{LandlockMode, Plan};
use crate::selection::{self, HostSupport};
use crate::types::{IsolationRequest, Network, SeccompAction};
use crate::workload::Workload;

/// The embedded default policy, as text.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// Where the embedded default says it comes from in messages.
pub const EMBEDDED_ORIGIN: &str = "<embedded default policy>";

/// A loaded, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    origin: String,
    file: PolicyFile,
}

/// A profile after layering: what a run starts from before per-run options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveProfile {
    /// The profile's name (`defaults` when the policy has none to pick).
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// Isolation asked for.
    pub isolation: IsolationRequest,
    /// Limits.
    pub limits: Limits,
    /// Network.
    pub network: Network,
    /// Seccomp action.
    pub seccomp_action: SeccompAction,
}

impl Policy {
    /// The policy built into the library: safe for untrusted code.
    ///
    /// ```
    /// let p = sandbox_core::Policy::embedded_default();
    /// assert!(p.profile_names().contains(&"default"));
    /// ```
    pub fn embedded_default() -> Policy {
        // The embedded text is checked by a unit test, so this cannot fail at run time.
        Policy::from_toml_str(EMBEDDED_DEFAULT, EMBEDDED_ORIGIN)
            .unwrap_or_else(|e| panic!("embedded default policy is invalid: {e}"))
    }

    /// Loads a policy file: `.json` files as JSON, anything else as TOML.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| PolicyError::Read {
            path: origin.clone(),
            source,
        })?;
        if meta.len() > validate::MAX_POLICY_BYTES {
            return Err(PolicyError::Syntax {
                location: Location {
                    origin,
                    line: None,
                    column: None,
                },
                message: format!(
                    "the file is {} bytes; a policy may be at most {} bytes",
                    meta.len(),
                    validate::MAX_POLICY_BYTES
                ),
            });
        }
        let bytes = std::fs::read(path).map_err(|source| PolicyError::Read {
            path: origin.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let (line, column) = line_col(
                &String::from_utf8_lossy(e.as_bytes()),
                e.utf8_error().valid_up_to(),
            );
            PolicyError::Syntax {
                location: Location {
                    origin: origin.clone(),
                    line: Some(line),
                    column: Some(column),
                },
                message: "the file is not valid UTF-8".into(),
            }
        })?;
        if path.extension().is_some_and(|e| e == "json") {
            Policy::from_json_str(&text, &origin)
        } else {
            Policy::from_toml_str(&text, &origin)
        }
    }

    /// Reads a policy from TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            let (line, column) = match e.span() {
                Some(span) => {
                    let (l, c) = line_col(text, span.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            PolicyError::Syntax {
                location: Location {
                    origin: origin.to_string(),
                    line,
                    column,
                },
                message: validate::improve_serde_message(e.message()),
            }
        })?;
        Policy::from_parsed(file, origin)
    }

    /// Reads a policy from JSON text of the same structure as the TOML format.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = serde_json::from_str(text).map_err(|e| PolicyError::Syntax {
            location: Location {
                origin: origin.to_string(),
                line: Some(e.line()),
                column: Some(e.column()),
            },
            message: validate::improve_serde_message(&strip_json_position(&e.to_string())),
        })?;
        Policy::from_parsed(file, origin)
    }

    fn from_parsed(file: PolicyFile, origin: &str) -> Result<Policy, PolicyError> {
        validate::policy(&file, origin)?;
        Ok(Policy {
            origin: origin.to_string(),
            file,
        })
    }

    /// Where the policy came from (its path, or the embedded default).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The names of its profiles.
    pub fn profile_names(&self) -> Vec<&str> {
        self.file.profiles.keys().map(String::as_str).collect()
    }

    /// The policy as JSON (the same structure as the TOML file).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.file).unwrap_or(serde_json::Value::Null)
    }

    fn profile_spec(&self, name: Option<&str>) -> Result<(String, ProfileSpec), PolicyError> {
        let name = match name {
            Some(n) => n,
            None if self.file.profiles.contains_key("default") => "default",
            None => return Ok(("defaults".into(), self.file.defaults.clone())),
        };
        match self.file.profiles.get(name) {
            Some(p) => Ok((name.to_string(), self.file.defaults.layered(p))),
            None => Err(PolicyError::UnknownProfile {
                name: name.to_string(),
                origin: self.origin.clone(),
                suggestion: did_you_mean(name, self.file.profiles.keys().map(String::as_str)),
            }),
        }
    }

    /// The profile a workload would start from, after layering on the defaults.
    pub fn effective_profile(&self, name: Option<&str>) -> Result<EffectiveProfile, PolicyError> {
        let (name, spec) = self.profile_spec(name)?;
        Ok(EffectiveProfile {
            name,
            description: spec.description.clone(),
            isolation: spec.isolation.unwrap_or(IsolationRequest::Container),
            limits: spec.limits.clone().unwrap_or_default(),
            network: spec.network.unwrap_or_default(),
            seccomp_action: spec
                .seccomp
                .as_ref()
                .and_then(|s| s.action)
                .unwrap_or_default(),
        })
    }

    /// Applies the policy to a workload: picks the profile, layers the per-run options
    /// on it, validates them, and decides the isolation given what the host supports.
    pub fn resolve(&self, workload: &Workload, host: &HostSupport) -> Result<Plan, PolicyError> {
        let (profile, spec) = self.profile_spec(workload.profile.as_deref())?;
        validate::workload(workload)?;

        let mut limits = spec.limits.clone().unwrap_or_default();
        limits.overlay(&workload.limits);

        let mut mounts = Vec::new();
        for m in spec.mounts.iter().flatten().chain(&workload.mounts) {
            let planned =
                validate::plan_mount(m).map_err(|message| PolicyError::InvalidRunOption {
                    option: "mount".into(),
                    message,
                })?;
            // A later mount at the same place replaces the earlier one.
            mounts.retain(|p: &crate::plan::PlannedMount| p.target != planned.target);
            mounts.push(planned);
        }

        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert("PATH".into(), crate::DEFAULT_PATH.into());
        env.extend(spec.env.clone().unwrap_or_default());
        env.extend(workload.env.clone());

        let cwd = workload
            .cwd
            .clone()
            .or(spec.cwd.clone())
            .unwrap_or_else(|| "/tmp".into());
        let requested = workload
            .isolation
            .or(spec.isolation)
            .unwrap_or(IsolationRequest::Container);
        let decision: Decision = selection::decide(&selection::Request {
            profile: &profile,
            requested,
            fallback: spec.fallback,
            labels: &workload.labels,
            host,
        })
        .map_err(PolicyError::Selection)?;

        let argv0 = workload
            .argv0
            .clone()
            .unwrap_or_else(|| workload.program.clone());
        Ok(Plan {
            program: workload.program.clone(),
            argv: std::iter::once(argv0)
                .chain(workload.args.iter().cloned())
                .collect(),
            env: env.into_iter().collect(),
            cwd,
            stdin: workload.stdin.clone(),
            mounts,
            limits,
            network: workload.network.or(spec.network).unwrap_or_default(),
            seccomp_action: spec
                .seccomp
                .as_ref()
                .and_then(|s| s.action)
                .unwrap_or_default(),
            landlock: spec.landlock.unwrap_or(LandlockMode::BestEffort),
            hostname: spec.hostname.clone().unwrap_or_else(|| "sandbox".into()),
            decision,
        })
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, col)
}

fn strip_json_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests;
