//! The operator floor: minimum isolation, maximum limits, network and mounts allowed.
//!
//! Values of a policy file above the floor are clamped down to it (and the decision
//! says so); a per-run option (CLI flag, API field) above it is an error: the floor is
//! never silently weakened, and a request is never silently changed either.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::{Location, PolicyError};
use super::netspec::{FloorNetworkKey, FloorNetworkSpec};
use super::schema::{FloorRequireSpec, FloorSpec};
use crate::image_limits::ImageLimits;
use crate::limits::Limits;
use crate::plan::{LandlockMode, PlannedMount};
use crate::types::{Isolation, Network, SeccompAction};
use crate::units::{format_duration, ByteSize};
use crate::workload::{MountMode, Workload};

/// An operator floor, from a `[floor]` section or a file of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Floor {
    spec: FloorSpec,
    origin: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FloorFile {
    floor: FloorSpec,
}

/// Whether `value` matches the glob `pattern` (invalid globs match literally).
pub(crate) fn glob_match(pattern: &str, value: &str) -> bool {
    match glob::Pattern::new(pattern) {
        Ok(p) => p.matches(value),
        Err(_) => pattern == value,
    }
}

/// Whether every label pattern matches the workload's labels.
pub(crate) fn labels_match(
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
) -> bool {
    want.iter()
        .all(|(k, pat)| have.get(k).is_some_and(|v| glob_match(pat, v)))
}

fn path_allowed(globs: &[String], p: &Path) -> bool {
    let s = p.to_string_lossy();
    globs.iter().any(|g| {
        glob_match(g, &s)
            || p.ancestors()
                .skip(1)
                .any(|a| glob_match(g, &a.to_string_lossy()) && a != Path::new("/"))
    })
}

impl Floor {
    /// A floor from the text of a floor file (`[floor]` table) or a policy with one.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Floor, PolicyError> {
        let file: FloorFile = super::parse_toml(text, origin)?;
        let f = Floor::from_spec(file.floor, origin);
        f.validate()?;
        Ok(f)
    }

    /// A floor file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Floor, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Floor::from_toml_str(&text, &path.display().to_string())
    }

    pub(crate) fn from_spec(spec: FloorSpec, origin: &str) -> Floor {
        Floor {
            spec,
            origin: origin.to_string(),
        }
    }

    /// Where it came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub(crate) fn validate(&self) -> Result<(), PolicyError> {
        if let Some(l) = &self.spec.limits {
            super::validate::limits(l).map_err(|(k, message)| PolicyError::Invalid {
                location: Location {
                    origin: self.origin.clone(),
                    line: None,
                    column: None,
                },
                key: format!("floor.limits.{k}"),
                message,
            })?;
        }
        Ok(())
    }

    /// The stricter of two floors, field by field.
    pub fn stricter(&self, other: &Floor) -> Floor {
        let (a, b) = (&self.spec, &other.spec);
        let mut limits = a.limits.clone().unwrap_or_default();
        if let Some(bl) = &b.limits {
            macro_rules! min_of {
                ($($f:ident),*) => { $( limits.$f = match (limits.$f, bl.$f) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                }; )* };
            }
            min_of!(
                memory, wall_time, cpu_time, pids, open_files, file_size, output, tmp_size, cpus
            );
        }
        let intersect = |x: &Option<Vec<String>>, y: &Option<Vec<String>>| match (x, y) {
            // Both must allow a path: keep both lists' entries that the other allows.
            (Some(x), Some(y)) => Some(
                x.iter()
                    .filter(|g| path_allowed(y, Path::new(g.as_str())))
                    .chain(y.iter().filter(|g| path_allowed(x, Path::new(g.as_str()))))
                    .cloned()
                    .collect(),
            ),
            (x, y) => x.clone().or(y.clone()),
        };
        Floor {
            spec: FloorSpec {
                min_isolation: a.min_isolation.max(b.min_isolation),
                require: a.require.iter().chain(&b.require).cloned().collect(),
                limits: (!limits.is_empty()).then_some(limits),
                network: match (&a.network, &b.network) {
                    (Some(x), Some(y)) => Some(FloorNetworkKey(stricter_network(&x.0, &y.0))),
                    (x, y) => x.clone().or(y.clone()),
                },
                mounts_allowed: intersect(&a.mounts_allowed, &b.mounts_allowed),
                rw_mounts_allowed: intersect(&a.rw_mounts_allowed, &b.rw_mounts_allowed),
                seccomp_action: match (a.seccomp_action, b.seccomp_action) {
                    (Some(x), Some(y)) => Some(if x.strictness() >= y.strictness() {
                        x
                    } else {
                        y
                    }),
                    (x, y) => x.or(y),
                },
                landlock: match (a.landlock, b.landlock) {
                    (Some(LandlockMode::Required), _) | (_, Some(LandlockMode::Required)) => {
                        Some(LandlockMode::Required)
                    }
                    (x, y) => x.or(y),
                },
                allow_fallback: match (a.allow_fallback, b.allow_fallback) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (x, y) => x.or(y),
                },
                image_limits: match (&a.image_limits, &b.image_limits) {
                    (Some(x), Some(y)) => Some(x.min_of(y)),
                    (x, y) => x.or(*y),
                },
            },
            origin: format!("{} + {}", self.origin, other.origin),
        }
    }

    /// The minimum isolation for a workload with `labels`, and why.
    pub(crate) fn min_isolation(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Option<(Isolation, String)> {
        let mut best: Option<(Isolation, String)> = self.spec.min_isolation.map(|i| {
            (
                i,
                format!(
                    "the operator floor ({}) requires at least {i} for every workload",
                    self.origin
                ),
            )
        });
        for FloorRequireSpec {
            labels: want,
            isolation,
        } in &self.spec.require
        {
            if labels_match(want, labels) && best.as_ref().is_none_or(|(b, _)| isolation > b) {
                let shown: Vec<String> = want.iter().map(|(k, v)| format!("{k}={v}")).collect();
                best = Some((
                    *isolation,
                    format!(
                        "the operator floor ({}) requires {isolation} for {}",
                        self.origin,
                        shown.join(", ")
                    ),
                ));
            }
        }
        best
    }

    /// Whether fallbacks may be taken.
    pub(crate) fn allows_fallback(&self) -> bool {
        self.spec.allow_fallback != Some(false)
    }

    fn max_limits(&self) -> Limits {
        self.spec.limits.clone().unwrap_or_default()
    }

    /// Refuses limits above the floor's maxima (a run's options, or a live sandbox's
    /// new limits), naming the first.
    pub fn check_limits(&self, l: &Limits) -> Result<(), PolicyError> {
        match exceeded(l, &self.max_limits()).into_iter().next() {
            Some((name, over)) => Err(PolicyError::InvalidRunOption {
                option: format!("limit {name}"),
                message: format!(
                    "{over} is above the maximum (operator floor {})",
                    self.origin
                ),
            }),
            None => Ok(()),
        }
    }

    /// Refuses per-run options that go below the floor.
    pub(crate) fn check_run(&self, w: &Workload) -> Result<(), PolicyError> {
        let err = |option: &str, message: String| PolicyError::InvalidRunOption {
            option: option.to_string(),
            message: format!("{message} (operator floor {})", self.origin),
        };
        self.check_limits(&w.limits)?;
        if let Some(max) = &self.spec.image_limits {
            if let Some((name, over)) = w.image_limits.exceeding(max).into_iter().next() {
                return Err(err(
                    &format!("image limit {name}"),
                    format!("{over} is above the maximum"),
                ));
            }
        }
        if let (Some(asked), Some(max)) = (w.network, self.max_network()) {
            if asked > max {
                return Err(err(
                    "network",
                    format!(
                        "{asked} is not allowed; the floor allows {}",
                        super::egress::allows(max)
                    ),
                ));
            }
        }
        if let Some(req) = w.isolation {
            if let (Some(i), Some((min, why))) =
                (requested_isolation(req), self.min_isolation(&w.labels))
            {
                if i < min {
                    return Err(err("isolation", format!("{i} was asked for, but {why}")));
                }
            }
        }
        for m in &w.mounts {
            self.check_mount_source(&m.source, m.mode)
                .map_err(|message| err("mount", message))?;
        }
        if let Some(r) = &w.root_dir {
            let mode = if r.readonly {
                MountMode::Ro
            } else {
                MountMode::Rw
            };
            self.check_mount_source(&r.path, mode)
                .map_err(|message| err("root", message))?;
        }
        if let (Some(_), Some(Network::None)) = (&w.netns, self.max_network()) {
            return Err(err(
                "network namespace",
                "joining a network namespace is not allowed; the floor allows no network".into(),
            ));
        }
        Ok(())
    }

    /// Whether a mount may be made.
    pub(crate) fn check_mount(&self, m: &PlannedMount) -> Result<(), String> {
        self.check_mount_source(&m.source, m.mode)
    }

    fn check_mount_source(&self, source: &Path, mode: MountMode) -> Result<(), String> {
        if let Some(allowed) = &self.spec.mounts_allowed {
            if !path_allowed(allowed, source) {
                return Err(format!(
                    "{} may not be mounted (allowed: {})",
                    source.display(),
                    allowed.join(", ")
                ));
            }
        }
        if mode == MountMode::Rw {
            if let Some(allowed) = &self.spec.rw_mounts_allowed {
                if !path_allowed(allowed, source) {
                    return Err(format!(
                        "{} may not be mounted read-write (allowed: {})",
                        source.display(),
                        if allowed.is_empty() {
                            "none".into()
                        } else {
                            allowed.join(", ")
                        }
                    ));
                }
            }
        }
        Ok(())
    }

    /// Lowers a policy file's limits to the floor's maxima, filling the unset ones;
    /// returns what it changed, in words.
    pub(crate) fn clamp_limits(&self, l: &mut Limits) -> Vec<String> {
        let max = self.max_limits();
        let mut notes = Vec::new();
        for (name, over) in exceeded(l, &max) {
            notes.push(format!(
                "operator floor: {name} lowered from {over} to the maximum"
            ));
        }
        macro_rules! clamp {
            ($($f:ident),*) => { $( if let Some(m) = max.$f { l.$f = Some(l.$f.map_or(m, |v| v.min(m))); } )* };
        }
        clamp!(memory, wall_time, cpu_time, pids, open_files, file_size, output, tmp_size, cpus);
        notes
    }

    /// Lowers a policy file's image limits to the floor's maxima; returns what it
    /// changed, in words. (Unset limits are lowered when the plan fills them in.)
    pub(crate) fn clamp_image_limits(&self, l: &mut ImageLimits) -> Vec<String> {
        let Some(max) = &self.spec.image_limits else {
            return Vec::new();
        };
        let notes = l
            .exceeding(max)
            .into_iter()
            .map(|(name, over)| {
                format!("operator floor: image limit {name} lowered from {over} to the maximum")
            })
            .collect();
        *l = l.lowered_to(max);
        notes
    }

    /// The image limits an import outside a run gets under this floor (`hsb image
    /// import`): a requested limit out of range or above the floor's maximum is refused;
    /// unset ones take their defaults, lowered to the maxima.
    pub fn image_limits_for(&self, requested: &ImageLimits) -> Result<ImageLimits, PolicyError> {
        let bad = |name: &str, message: String| PolicyError::InvalidRunOption {
            option: format!("image limit {name}"),
            message,
        };
        requested.check().map_err(|(k, m)| bad(k, m))?;
        if let Some((name, over)) = requested
            .exceeding(&self.max_image_limits())
            .into_iter()
            .next()
        {
            return Err(bad(
                name,
                format!(
                    "{over} is above the maximum (operator floor {})",
                    self.origin
                ),
            ));
        }
        Ok(requested
            .with_defaults()
            .lowered_to(&self.max_image_limits()))
    }

    /// The floor's maximum image limits.
    pub(crate) fn max_image_limits(&self) -> ImageLimits {
        self.spec.image_limits.unwrap_or_default()
    }

    /// The most network the floor allows.
    pub(crate) fn max_network(&self) -> Option<Network> {
        self.spec.network.as_ref().and_then(|n| n.0.mode)
    }

    /// The floor's network table (allowlist cap, added deny rules, ...).
    pub(crate) fn network(&self) -> Option<&FloorNetworkSpec> {
        self.spec.network.as_ref().map(|n| &n.0)
    }

    /// The network a policy file's value becomes.
    pub(crate) fn clamp_network(&self, n: Network) -> (Network, Option<String>) {
        match self.max_network() {
            Some(max) if n > max => (
                max,
                Some(format!("operator floor: network lowered from {n} to {max}")),
            ),
            _ => (n, None),
        }
    }

    /// The seccomp action, raised to the floor's.
    pub(crate) fn clamp_seccomp(&self, a: SeccompAction) -> SeccompAction {
        match self.spec.seccomp_action {
            Some(f) if f.strictness() > a.strictness() => f,
            _ => a,
        }
    }

    /// The Landlock mode, raised to the floor's.
    pub(crate) fn clamp_landlock(&self, m: LandlockMode) -> LandlockMode {
        if self.spec.landlock == Some(LandlockMode::Required) {
            LandlockMode::Required
        } else {
            m
        }
    }

    /// The floor as JSON (for `explain`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.spec).unwrap_or_default()
    }
}

/// The stricter of two floors' network tables: the lesser mode, allowlists intersected,
/// deny rules and exposable ports combined, each switch off if either is.
fn stricter_network(a: &FloorNetworkSpec, b: &FloorNetworkSpec) -> FloorNetworkSpec {
    use crate::network::HostRule;
    let allow = match (&a.allow, &b.allow) {
        (Some(x), Some(y)) => {
            let within = |r: &HostRule, list: &[HostRule]| list.iter().any(|o| r.covered_by(o));
            let mut out: Vec<HostRule> = x.iter().filter(|r| within(r, y)).cloned().collect();
            out.extend(y.iter().filter(|r| within(r, x)).cloned());
            out.sort();
            out.dedup();
            Some(out)
        }
        (x, y) => x.clone().or(y.clone()),
    };
    let deny = match (&a.deny, &b.deny) {
        (Some(x), Some(y)) => Some(x.iter().chain(y).cloned().collect()),
        (x, y) => x.clone().or(y.clone()),
    };
    let expose = match (&a.expose, &b.expose) {
        (Some(x), Some(y)) => Some(x.iter().filter(|p| y.contains(p)).copied().collect()),
        (x, y) => x.clone().or(y.clone()),
    };
    let and = |x: Option<bool>, y: Option<bool>| match (x, y) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (x, y) => x.or(y),
    };
    FloorNetworkSpec {
        mode: match (a.mode, b.mode) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
        allow,
        deny,
        expose,
        secrets: and(a.secrets, b.secrets),
        overrides: and(a.overrides, b.overrides),
    }
}

fn requested_isolation(r: crate::types::IsolationRequest) -> Option<Isolation> {
    match r {
        crate::types::IsolationRequest::Container => Some(Isolation::Container),
        crate::types::IsolationRequest::MicroVm => Some(Isolation::MicroVm),
        crate::types::IsolationRequest::Auto => None,
    }
}

/// Limits of `l` above `max`, as (name, value shown).
fn exceeded(l: &Limits, max: &Limits) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let size = |v: ByteSize| v.to_string();
    macro_rules! check {
        ($f:ident, $show:expr) => {
            if let (Some(v), Some(m)) = (l.$f, max.$f) {
                if v > m {
                    out.push((
                        stringify!($f),
                        format!("{} (maximum {})", $show(v), $show(m)),
                    ));
                }
            }
        };
    }
    check!(memory, size);
    check!(file_size, size);
    check!(output, size);
    check!(tmp_size, size);
    check!(wall_time, format_duration);
    check!(cpu_time, format_duration);
    check!(pids, |v: u64| v.to_string());
    check!(open_files, |v: u64| v.to_string());
    check!(cpus, |v: crate::units::Cpus| v.to_string());
    out
}
