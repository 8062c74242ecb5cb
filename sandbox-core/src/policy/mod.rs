//! Policies: which isolation, limits, mounts and environment a workload gets.
//!
//! A policy is TOML (or the same structure as JSON): `[defaults]` and named
//! `[profiles.NAME]`. Layering: built-in values < `[defaults]` < the profile < per-run
//! options. See the README's "Policy files" section for the format.

mod egress;
mod error;
mod floor;
mod locate;
mod netspec;
mod schema;
mod templates;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

pub use error::{did_you_mean, Location, PolicyError};
pub use floor::Floor;
use schema::{PolicyFile, ProfileSpec};
pub use templates::TemplateDef;

use crate::limits::Limits;
use crate::outcome::Decision;

/// Refuses limits outside what any sandbox can have (the ranges a policy file and a
/// run's options are held to: memory of at least 4 MiB, pids of at least 1, ...),
/// naming the first.
pub fn check_limit_ranges(l: &Limits) -> Result<(), PolicyError> {
    validate::limits(l).map_err(|(k, m)| PolicyError::InvalidRunOption {
        option: format!("limit {k}"),
        message: m,
    })
}
use crate::plan::{LandlockMode, Plan};
use crate::selection::{self, HostSupport, RequestSource};
use crate::types::{Isolation, IsolationRequest, Network, SeccompAction};
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
    floor: Option<Floor>,
    /// The TOML text, to find where a key is written when an error names it.
    text: Option<std::sync::Arc<str>>,
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
        let file: PolicyFile = parse_toml(text, origin)?;
        let mut p =
            Policy::from_parsed(file, origin).map_err(|e| locate_in(e, Some(text), origin))?;
        p.text = Some(text.into());
        Ok(p)
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
        let floor = file.floor.clone().map(|f| Floor::from_spec(f, origin));
        if let Some(f) = &floor {
            f.validate()?;
        }
        Ok(Policy {
            origin: origin.to_string(),
            file,
            floor,
            text: None,
        })
    }

    /// The policy's own `[floor]`, if it has one.
    pub fn floor(&self) -> Option<&Floor> {
        self.floor.as_ref()
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

    /// The profile for a workload, and why: the one it names, else the first rule that
    /// matches its program and labels, else `default`, else the bare defaults.
    fn select_profile(&self, w: &Workload) -> Result<(String, ProfileSpec, String), PolicyError> {
        if let Some(name) = &w.profile {
            let (n, spec) = self.profile_spec(Some(name))?;
            return Ok((n.clone(), spec, format!("the run names profile `{n}`")));
        }
        for (i, rule) in self.file.rules.iter().enumerate() {
            if rule_matches(rule, w) {
                let (n, spec) = self.profile_spec(Some(&rule.profile))?;
                let what = rule.description.clone().unwrap_or_else(|| {
                    let mut parts = Vec::new();
                    if let Some(p) = &rule.program {
                        parts.push(format!("program ~ `{p}`"));
                    }
                    parts.extend(rule.labels.iter().map(|(k, v)| format!("{k}={v}")));
                    parts.join(", ")
                });
                return Ok((
                    n.clone(),
                    spec,
                    format!("rule {} ({what}) picks profile `{n}`", i + 1),
                ));
            }
        }
        let (n, spec) = self.profile_spec(None)?;
        let why = if n == "defaults" {
            "no profile named and no rule matches: the policy's defaults apply".to_string()
        } else {
            format!("no profile named and no rule matches: profile `{n}`")
        };
        Ok((n, spec, why))
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
            network: spec
                .network
                .as_ref()
                .and_then(|n| n.0.mode)
                .unwrap_or_default(),
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
        self.resolve_with_floor(workload, host, None)
    }

    /// Like [`Policy::resolve`], under an operator floor besides the policy's own (the
    /// stricter of the two applies).
    pub fn resolve_with_floor(
        &self,
        w: &Workload,
        host: &HostSupport,
        extra: Option<&Floor>,
    ) -> Result<Plan, PolicyError> {
        self.resolve_inner(w, host, extra, false)
            .map_err(|e| locate_in(e, self.text.as_deref(), &self.origin))
    }

    /// Like [`Policy::resolve_with_floor`], for a live sandbox: the workload names no
    /// program (its execs come later), and everything else is decided as for a run —
    /// profile, limits, mounts, floor, isolation. A program, if given, is refused.
    pub fn resolve_live_with_floor(
        &self,
        w: &Workload,
        host: &HostSupport,
        extra: Option<&Floor>,
    ) -> Result<Plan, PolicyError> {
        if !w.program.is_empty() || !w.args.is_empty() {
            return Err(PolicyError::InvalidRunOption {
                option: "program".into(),
                message: "a live sandbox is created without a program: run it with an exec".into(),
            });
        }
        self.resolve_inner(w, host, extra, true)
            .map_err(|e| locate_in(e, self.text.as_deref(), &self.origin))
    }

    fn resolve_inner(
        &self,
        w: &Workload,
        host: &HostSupport,
        extra: Option<&Floor>,
        live: bool,
    ) -> Result<Plan, PolicyError> {
        let floor = match (self.floor.as_ref(), extra) {
            (Some(a), Some(b)) => Some(a.stricter(b)),
            (a, b) => a.or(b).cloned(),
        };
        let (profile, spec, why_profile) = self.select_profile(w)?;
        if live {
            // Everything but the program is checked as for a run.
            let mut probe = w.clone();
            probe.program = "/".into();
            validate::workload(&probe)?;
        } else {
            validate::workload(w)?;
        }
        if let Some(f) = &floor {
            f.check_run(w)?;
        }
        let mut preamble = vec![why_profile];

        let mut limits = spec.limits.clone().unwrap_or_default();
        if let Some(f) = &floor {
            preamble.extend(f.clamp_limits(&mut limits));
        }
        limits.overlay(&w.limits);

        // Image limits: profile (lowered to the floor, with a note), then the run's
        // (above the floor refused by check_run), then the defaults, lowered to the
        // floor too: the floor's maxima bind whatever is left unset.
        let mut image_limits = spec.image_limits.unwrap_or_default();
        if let Some(f) = &floor {
            preamble.extend(f.clamp_image_limits(&mut image_limits));
        }
        image_limits.overlay(&w.image_limits);
        let mut image_limits = image_limits.with_defaults();
        if let Some(f) = &floor {
            image_limits = image_limits.lowered_to(&f.max_image_limits());
        }

        let mut mounts = Vec::new();
        let image = w.image.clone().or(spec.image.clone());
        for (m, from_run) in spec
            .mounts
            .iter()
            .flatten()
            .map(|m| (m, false))
            .chain(w.mounts.iter().map(|m| (m, true)))
        {
            if m.system && (image.is_some() || w.root_dir.is_some()) {
                continue;
            }
            let planned =
                validate::plan_mount(m).map_err(|message| PolicyError::InvalidRunOption {
                    option: "mount".into(),
                    message,
                })?;
            if let Some(f) = &floor {
                f.check_mount(&planned).map_err(|message| match from_run {
                    true => PolicyError::InvalidRunOption {
                        option: "mount".into(),
                        message: format!("{message} (operator floor {})", f.origin()),
                    },
                    false => PolicyError::Invalid {
                        location: Location {
                            origin: self.origin.clone(),
                            line: None,
                            column: None,
                        },
                        key: format!("profiles.{profile}.mounts"),
                        message: format!("{message} (operator floor {})", f.origin()),
                    },
                })?;
            }
            // A later mount at the same place replaces the earlier one.
            mounts.retain(|p: &crate::plan::PlannedMount| p.target != planned.target);
            mounts.push(planned);
        }

        if w.tmpfs.len() > 64 {
            return Err(PolicyError::InvalidRunOption {
                option: "tmpfs".into(),
                message: format!("{} in-memory filesystems; at most 64", w.tmpfs.len()),
            });
        }
        let tmpfs_default = limits.tmp_size.or(limits.memory).map_or(256 << 20, |b| b.0);
        let mut tmpfs: Vec<crate::plan::PlannedTmpfs> = Vec::new();
        for t in &w.tmpfs {
            let planned = validate::plan_tmpfs(t, tmpfs_default).map_err(|message| {
                PolicyError::InvalidRunOption {
                    option: "tmpfs".into(),
                    message,
                }
            })?;
            if tmpfs.iter().any(|p| p.target == planned.target)
                || mounts.iter().any(|m| m.target == planned.target)
            {
                return Err(PolicyError::InvalidRunOption {
                    option: "tmpfs".into(),
                    message: format!(
                        "`{}` is the target of another mount too",
                        planned.target.display()
                    ),
                });
            }
            tmpfs.push(planned);
        }

        let mut env: BTreeMap<String, String> = BTreeMap::new();
        // (set mutably below when the egress network adds its variables)
        env.insert("PATH".into(), crate::DEFAULT_PATH.into());
        env.extend(spec.env.clone().unwrap_or_default());
        env.extend(w.env.clone());

        let network = match w.network {
            Some(n) => n,
            None => {
                let n = spec
                    .network
                    .as_ref()
                    .and_then(|n| n.0.mode)
                    .unwrap_or_default();
                match &floor {
                    Some(f) => {
                        let (n, note) = f.clamp_network(n);
                        preamble.extend(note);
                        n
                    }
                    None => n,
                }
            }
        };
        let mut egress_plan = None;
        if network == crate::types::Network::Egress {
            let raw = self.file.profiles.get(&profile);
            let network_key = match raw.and_then(|p| p.network.as_ref()) {
                Some(_) => format!("profiles.{profile}"),
                None => "defaults".to_string(),
            };
            let secrets_key = egress::secret_origins(&profile, &self.file.profiles);
            let res = egress::resolve(
                &spec,
                w,
                floor.as_ref(),
                &egress::Origins {
                    network_key,
                    secrets_key: &secrets_key,
                    policy: &self.origin,
                },
            )?;
            for (k, v, force) in res.env {
                if force {
                    env.insert(k, v);
                } else {
                    env.entry(k).or_insert(v);
                }
            }
            preamble.extend(res.notes);
            egress_plan = Some(res.plan);
        } else if !w.egress.is_empty() {
            return Err(PolicyError::InvalidRunOption {
                option: "network".into(),
                message: format!(
                    "--allow, --deny, --expose and --secret need the egress network, but it is \
                     `{network}`: add --network egress (or set mode = \"egress\" in the profile)"
                ),
            });
        }
        let mut seccomp_action = spec
            .seccomp
            .as_ref()
            .and_then(|s| s.action)
            .unwrap_or_default();
        let mut landlock = spec.landlock.unwrap_or(LandlockMode::BestEffort);
        if let Some(f) = &floor {
            seccomp_action = f.clamp_seccomp(seccomp_action);
            landlock = f.clamp_landlock(landlock);
        }
        let (requested, source) = match (w.isolation, spec.isolation) {
            (Some(r), _) => (r, RequestSource::Run),
            (None, Some(r)) => (r, RequestSource::Profile),
            (None, None) => (IsolationRequest::Container, RequestSource::Profile),
        };
        // The network modes are not needs: both backends give none, a private loopback and
        // egress through the broker. `Need::Network` is only ever declared by the caller
        // (the host kernel's whole network stack, which only the container has).
        let needs = w.needs.clone();

        let argv0 = w.argv0.clone().unwrap_or_else(|| w.program.clone());
        let mut plan = Plan {
            program: w.program.clone(),
            argv: std::iter::once(argv0)
                .chain(w.args.iter().cloned())
                .collect(),
            env: env.into_iter().collect(),
            cwd: w
                .cwd
                .clone()
                .or(spec.cwd.clone())
                .unwrap_or_else(|| "/tmp".into()),
            stdin: w.stdin.clone(),
            mounts,
            tmpfs,
            limits,
            network,
            egress: egress_plan,
            seccomp_action,
            landlock,
            hostname: w
                .hostname
                .clone()
                .or(spec.hostname.clone())
                .unwrap_or_else(|| "sandbox".into()),
            image,
            root: None,
            image_limits,
            user: w
                .user
                .unwrap_or((crate::plan::SANDBOX_UID, crate::plan::SANDBOX_GID)),
            groups: {
                let mut g = w.groups.clone();
                g.sort_unstable();
                g.dedup();
                g
            },
            root_dir: w.root_dir.clone(),
            netns: w.netns.clone(),
            ipcns: w.ipcns.clone(),
            utsns: w.utsns.clone(),
            cgroup_parent: w.cgroup_parent.clone(),
            decision: Decision {
                isolation: Isolation::Container,
                requested,
                profile: profile.clone(),
                reasons: Vec::new(),
                fallback_from: None,
            },
        };
        let decision = selection::decide(
            &selection::Request {
                profile: &profile,
                requested,
                source,
                fallback: spec.fallback,
                labels: &w.labels,
                needs: &needs,
                floor_min: floor.as_ref().and_then(|f| f.min_isolation(&w.labels)),
                fallback_allowed: floor.as_ref().is_none_or(Floor::allows_fallback),
                host,
                preamble,
            },
            &plan,
        )
        .map_err(PolicyError::Selection)?;
        plan.decision = decision;
        Ok(plan)
    }
}

/// Fills in the line and column of an error that names a key of the policy's own text.
fn locate_in(e: PolicyError, text: Option<&str>, origin: &str) -> PolicyError {
    match (e, text) {
        (
            PolicyError::Invalid {
                location,
                key,
                message,
            },
            Some(text),
        ) if location.line.is_none() && location.origin == origin => {
            let (line, column) = match locate::key_offset(text, &key) {
                Some(off) => {
                    let (l, c) = line_col(text, off);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            PolicyError::Invalid {
                location: Location {
                    line,
                    column,
                    ..location
                },
                key,
                message,
            }
        }
        (e, _) => e,
    }
}

/// Whether a rule matches a workload's program and labels.
fn rule_matches(rule: &schema::RuleSpec, w: &Workload) -> bool {
    let program_ok = rule.program.as_deref().is_none_or(|pat| {
        let subject = if pat.contains('/') {
            w.program.as_str()
        } else {
            w.program.rsplit('/').next().unwrap_or(&w.program)
        };
        floor::glob_match(pat, subject)
    });
    program_ok && floor::labels_match(&rule.labels, &w.labels)
}

/// Parses TOML into `T`, turning errors into [`PolicyError::Syntax`] with the file, line
/// and column, and a "did you mean" for unknown keys.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<T, PolicyError> {
    toml::from_str(text).map_err(|e| {
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
    })
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
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

#[cfg(test)]
mod egress_tests;
