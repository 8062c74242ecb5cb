//! Egress in a policy: checks of a profile's `network` table and `secrets`, contradictions
//! with a floor in the same file, and the [`EgressPlan`] of a run under the floor.

use std::collections::BTreeMap;

use super::error::{Location, PolicyError};
use super::floor::Floor;
use super::netspec::{FloorNetworkSpec, NetworkSpec};
use super::schema::{FloorSpec, ProfileSpec};
use crate::network::{
    normalize_name, EgressPlan, HostRule, PlannedRule, PlannedSecret, SecretSource, SecretValue,
    BROKER_ADDR, CA_BUNDLE_PATH, PROXY_PORT,
};
use crate::types::Network;
use crate::workload::Workload;

type KeyError = (String, String);

fn net(spec: &ProfileSpec) -> NetworkSpec {
    spec.network.clone().map(|n| n.0).unwrap_or_default()
}

/// Checks of a layered profile: egress keys need the egress mode, secrets go to allowed
/// hosts only, names and variables are well-formed.
pub(crate) fn check_profile(spec: &ProfileSpec) -> Result<(), KeyError> {
    let n = net(spec);
    let mode = n.mode.unwrap_or_default();
    if mode != Network::Egress && n.has_egress_keys() {
        return Err((
            "network.mode".into(),
            format!(
                "is `{mode}`, but the profile sets egress rules (`allow`, `deny`, `expose`, ...): \
                 set `mode = \"egress\"` or remove them"
            ),
        ));
    }
    super::netspec::dead_allow_rules(n.allow.as_deref(), n.deny.as_deref())
        .map_err(|m| ("network".to_string(), m))?;
    for name in n.hosts.iter().flat_map(|h| h.keys()) {
        if normalize_name(name).is_none() {
            return Err((
                format!("network.hosts.{name}"),
                format!("`{name}` is not a valid host name"),
            ));
        }
    }
    let secrets = spec.secrets.clone().unwrap_or_default();
    if !secrets.is_empty() && mode != Network::Egress {
        return Err((
            "secrets".into(),
            format!(
                "secrets are injected by the egress broker, but the network is `{mode}`: \
                 set `network.mode = \"egress\"`"
            ),
        ));
    }
    let allow = n.allow.unwrap_or_default();
    let deny = n.deny.unwrap_or_default();
    for (name, s) in &secrets {
        super::validate::env_entry(name, "").map_err(|m| (format!("secrets.{name}"), m))?;
        super::validate::env_entry(&s.from_env, "")
            .map_err(|m| (format!("secrets.{name}.from_env"), m))?;
        if s.hosts.is_empty() {
            return Err((
                format!("secrets.{name}.hosts"),
                "names no host: the secret could never be sent".into(),
            ));
        }
        for h in &s.hosts {
            secret_host_allowed(h, &allow, &deny)
                .map_err(|m| (format!("secrets.{name}.hosts"), m))?;
        }
    }
    Ok(())
}

fn secret_host_allowed(h: &HostRule, allow: &[HostRule], deny: &[HostRule]) -> Result<(), String> {
    if h.host.is_address() {
        return Err(format!(
            "`{h}` is an address: secrets go to hosts by name only (the broker checks the name \
             in TLS and HTTP)"
        ));
    }
    // The secret goes only on connections the allow rules let through anyway: its host
    // must lie within some allow rule's host, on a port that rule allows.
    let reachable = |a: &HostRule| {
        h.host.covered_by(&a.host) && (h.port.is_none() || a.port.is_none() || h.port == a.port)
    };
    if !allow.iter().any(reachable) {
        return Err(format!(
            "`{h}` is not within the network's allow rules, so the secret could never be sent: \
             allow it, or remove it"
        ));
    }
    if let Some(d) = deny.iter().find(|d| h.covered_by(d)) {
        return Err(format!("`{h}` is denied by `{d}`"));
    }
    Ok(())
}

/// A profile that asks for more network than a floor in the same file allows.
pub(crate) fn floor_contradictions(floor: &FloorSpec, spec: &ProfileSpec) -> Result<(), KeyError> {
    let Some(f) = floor.network.as_ref().map(|n| &n.0) else {
        return Ok(());
    };
    let n = net(spec);
    if let (Some(asked), Some(max)) = (n.mode, f.mode) {
        if asked > max {
            return Err((
                "network".into(),
                format!(
                    "asks for {asked}, but the floor in the same file allows {}",
                    allows(max)
                ),
            ));
        }
    }
    let same = |m: String| format!("{m} (floor.network in the same file)");
    if let Some(r) = outside_allow(f, n.allow.as_deref().unwrap_or_default()).first() {
        return Err((
            "network.allow".into(),
            same(format!("`{r}` is outside the floor's allowlist")),
        ));
    }
    if let Some(p) = outside_expose(f, &ports(&n)).first() {
        return Err((
            "network.expose".into(),
            same(format!("port {p} may not be exposed")),
        ));
    }
    if f.secrets == Some(false) && spec.secrets.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(("secrets".into(), same("the floor allows no secrets".into())));
    }
    if f.overrides == Some(false) && (n.hosts.is_some() || n.dns.is_some() || n.ca.is_some()) {
        return Err((
            "network".into(),
            same("the floor allows no `hosts`, `dns` or `ca` overrides".into()),
        ));
    }
    Ok(())
}

/// "no network" or "at most loopback", as the floor's mode allows.
pub(crate) fn allows(max: Network) -> String {
    match max {
        Network::None => "no network".into(),
        m => format!("at most {m}"),
    }
}

fn ports(n: &NetworkSpec) -> Vec<u16> {
    n.expose.iter().flatten().map(|p| p.0).collect()
}

fn outside_allow(f: &FloorNetworkSpec, rules: &[HostRule]) -> Vec<HostRule> {
    match &f.allow {
        Some(cap) => rules
            .iter()
            .filter(|r| !cap.iter().any(|c| r.covered_by(c)))
            .cloned()
            .collect(),
        None => Vec::new(),
    }
}

fn outside_expose(f: &FloorNetworkSpec, ports: &[u16]) -> Vec<u16> {
    match &f.expose {
        Some(ok) => ports
            .iter()
            .filter(|p| !ok.iter().any(|o| o.0 == **p))
            .copied()
            .collect(),
        None => Vec::new(),
    }
}

/// What a run with `network = "egress"` gets: the broker's plan, the variables to set in
/// the sandbox, and notes on what the floor changed.
pub(crate) struct EgressResolution {
    pub(crate) plan: EgressPlan,
    pub(crate) env: Vec<(String, String, bool)>,
    pub(crate) notes: Vec<String>,
}

/// Where the profile's keys came from, for reports and errors.
pub(crate) struct Origins<'a> {
    /// `profiles.NAME` when the profile's own table set the key, else `defaults`.
    pub(crate) network_key: String,
    pub(crate) secrets_key: &'a dyn Fn(&str) -> String,
    pub(crate) policy: &'a str,
}

/// Builds the plan of a run with the egress network.
pub(crate) fn resolve(
    spec: &ProfileSpec,
    w: &Workload,
    floor: Option<&Floor>,
    origins: &Origins<'_>,
) -> Result<EgressResolution, PolicyError> {
    let n = net(spec);
    let f = floor.and_then(Floor::network).cloned().unwrap_or_default();
    let floor_origin = floor.map(|f| f.origin().to_string()).unwrap_or_default();
    let run_err = |option: &str, message: String| PolicyError::InvalidRunOption {
        option: option.into(),
        message,
    };
    let at_floor = |m: String| format!("{m} (operator floor {floor_origin})");
    let mut notes = Vec::new();
    let mut plan = EgressPlan::default();
    let key = &origins.network_key;

    // Allow rules: the profile's (the floor clamps them), then the run's (the floor
    // refuses them).
    for (i, r) in n.allow.iter().flatten().enumerate() {
        if outside_allow(&f, std::slice::from_ref(r)).is_empty() {
            plan.allow.push(PlannedRule {
                rule: r.clone(),
                origin: format!("{key}.network.allow[{i}]"),
            });
        } else {
            notes.push(format!(
                "operator floor: allow rule `{r}` dropped (outside the floor's allowlist)"
            ));
        }
    }
    for r in &w.egress.allow {
        if !outside_allow(&f, std::slice::from_ref(r)).is_empty() {
            return Err(run_err(
                "allow",
                at_floor(format!("`{r}` is outside the floor's allowlist")),
            ));
        }
        plan.allow.push(PlannedRule {
            rule: r.clone(),
            origin: "run option --allow".into(),
        });
    }
    for (i, r) in n.deny.iter().flatten().enumerate() {
        plan.deny.push(PlannedRule {
            rule: r.clone(),
            origin: format!("{key}.network.deny[{i}]"),
        });
    }
    for r in &w.egress.deny {
        plan.deny.push(PlannedRule {
            rule: r.clone(),
            origin: "run option --deny".into(),
        });
    }
    for (i, r) in f.deny.iter().flatten().enumerate() {
        plan.deny.push(PlannedRule {
            rule: r.clone(),
            origin: format!("operator floor {floor_origin}: deny[{i}]"),
        });
    }
    // A run's own allow rule that a deny rule covers would never match.
    for r in &w.egress.allow {
        if let Some(d) = plan.deny.iter().find(|d| r.covered_by(&d.rule)) {
            return Err(run_err(
                "allow",
                format!(
                    "`{r}` overlaps deny rule {}, which covers it entirely (deny wins)",
                    d.describe()
                ),
            ));
        }
    }

    // Exposed ports.
    for p in ports(&n) {
        if outside_expose(&f, &[p]).is_empty() {
            plan.expose.push(p);
        } else {
            notes.push(format!(
                "operator floor: port {p} is not exposed (not allowed)"
            ));
        }
    }
    for &p in &w.egress.expose {
        if p == 0 {
            return Err(run_err(
                "expose",
                "port 0 is out of range (1 to 65535)".into(),
            ));
        }
        if !outside_expose(&f, &[p]).is_empty() {
            return Err(run_err(
                "expose",
                at_floor(format!("port {p} may not be exposed")),
            ));
        }
        plan.expose.push(p);
    }
    plan.expose.sort_unstable();
    plan.expose.dedup();

    // Name resolution and trust overrides.
    if n.hosts.is_some() || n.dns.is_some() || n.ca.is_some() {
        if f.overrides == Some(false) {
            notes.push(
                "operator floor: the profile's `hosts`, `dns` and `ca` overrides are ignored"
                    .into(),
            );
        } else {
            plan.hosts = n
                .hosts
                .iter()
                .flatten()
                .filter_map(|(k, v)| normalize_name(k).map(|k| (k, v.0.clone())))
                .collect();
            plan.dns = n.dns;
            plan.ca = n.ca.clone();
        }
    }

    // Secrets: the profile's, then the run's.
    let allow_rules: Vec<HostRule> = plan.allow.iter().map(|r| r.rule.clone()).collect();
    let deny_rules: Vec<HostRule> = plan.deny.iter().map(|r| r.rule.clone()).collect();
    let mut wanted: Vec<(String, SecretSource, Vec<HostRule>, String, bool)> = Vec::new();
    for (name, s) in spec.secrets.iter().flatten() {
        if f.secrets == Some(false) {
            notes.push(format!(
                "operator floor: secret `{name}` not given (no secrets allowed)"
            ));
            continue;
        }
        wanted.push((
            name.clone(),
            SecretSource::Env(s.from_env.clone()),
            s.hosts.clone(),
            (origins.secrets_key)(name),
            false,
        ));
    }
    for s in &w.egress.secrets {
        if f.secrets == Some(false) {
            return Err(run_err(
                &format!("secret {}", s.name),
                at_floor("no secrets are allowed".into()),
            ));
        }
        super::validate::env_entry(&s.name, "")
            .map_err(|m| run_err(&format!("secret {}", s.name), m))?;
        if s.hosts.is_empty() {
            return Err(run_err(
                &format!("secret {}", s.name),
                "names no host".into(),
            ));
        }
        wanted.push((
            s.name.clone(),
            s.source.clone(),
            s.hosts.clone(),
            "run option --secret".into(),
            true,
        ));
    }
    for (name, source, hosts, origin, from_run) in wanted {
        let located = |message: String, sub: &str| -> PolicyError {
            if from_run {
                run_err(&format!("secret {name}"), message)
            } else {
                PolicyError::Invalid {
                    location: Location {
                        origin: origins.policy.to_string(),
                        line: None,
                        column: None,
                    },
                    key: format!("{origin}{sub}"),
                    message,
                }
            }
        };
        for h in &hosts {
            secret_host_allowed(h, &allow_rules, &deny_rules).map_err(|m| located(m, ".hosts"))?;
        }
        let value = match source {
            SecretSource::Value(v) => v,
            SecretSource::Env(var) => match std::env::var(&var) {
                Ok(v) if !v.is_empty() => SecretValue::new(v),
                Ok(_) => {
                    return Err(located(
                        format!(
                        "the variable `{var}` is empty in hsb's environment; set it to the secret"
                    ),
                        ".from_env",
                    ))
                }
                Err(_) => {
                    return Err(located(
                        format!(
                            "the variable `{var}` is not set in hsb's environment (or is not \
                             UTF-8): set it to the secret, or remove the secret"
                        ),
                        ".from_env",
                    ))
                }
            },
        };
        plan.secrets.retain(|s| s.name != name);
        plan.secrets.push(PlannedSecret {
            placeholder: placeholder(&name)?,
            name,
            value,
            hosts,
            origin,
        });
    }

    // The sandbox's environment: proxies for programs that honour them (the others go
    // through the broker all the same), and the CA bundle when it intercepts.
    let proxy = format!("http://{BROKER_ADDR}:{PROXY_PORT}");
    let mut env: Vec<(String, String, bool)> = Vec::new();
    for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        env.push((k.into(), proxy.clone(), false));
    }
    for k in ["NO_PROXY", "no_proxy"] {
        env.push((k.into(), "localhost,127.0.0.1,::1".into(), false));
    }
    if !plan.secrets.is_empty() {
        for k in [
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
            "CURL_CA_BUNDLE",
            "GIT_SSL_CAINFO",
            "PIP_CERT",
        ] {
            env.push((k.into(), CA_BUNDLE_PATH.into(), false));
        }
    }
    for s in &plan.secrets {
        env.push((s.name.clone(), s.placeholder.clone(), true));
    }
    Ok(EgressResolution { plan, env, notes })
}

/// A placeholder for a secret: recognisable, unique to the run, and never the value.
fn placeholder(name: &str) -> Result<String, PolicyError> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).map_err(|e| PolicyError::InvalidRunOption {
        option: format!("secret {name}"),
        message: format!("no randomness for its placeholder: {e}"),
    })?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("hsb-placeholder-{hex}"))
}

/// The secrets' keys as written in the policy.
pub(crate) fn secret_origins(
    profile: &str,
    profiles: &BTreeMap<String, ProfileSpec>,
) -> impl Fn(&str) -> String {
    let in_profile: Vec<String> = profiles
        .get(profile)
        .and_then(|p| p.secrets.as_ref())
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default();
    let profile = profile.to_string();
    move |name: &str| {
        if in_profile.iter().any(|n| n == name) {
            format!("profiles.{profile}.secrets.{name}")
        } else {
            format!("defaults.secrets.{name}")
        }
    }
}
