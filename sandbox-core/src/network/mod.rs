//! Network under policy: the egress rules a run was planned with ([`EgressPlan`]), how
//! the broker decides ([`Verdict`]), and what it reports ([`NetworkReport`]).
//!
//! The broker itself (DNS, the userspace TCP/IP stack, TLS interception) lives in the
//! `sandbox-egress` crate; this module holds the plain data both backends and the
//! policy share.

mod report;
mod rule;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Serialize, Serializer};

pub use report::{
    ConnectionRecord, DnsRecord, ExposedPort, NetworkEvent, NetworkReport, NetworkVerdict,
};
pub use rule::{normalize_name, HostPattern, HostRule, Port, RuleError};

/// The broker's address inside a sandbox: its DNS server and HTTP proxy.
pub const BROKER_ADDR: Ipv4Addr = Ipv4Addr::new(100, 96, 0, 1);
/// The sandbox's own address on its egress interface.
pub const SANDBOX_ADDR: Ipv4Addr = Ipv4Addr::new(100, 96, 0, 2);
/// The prefix length of the link between the sandbox and the broker.
pub const LINK_PREFIX: u8 = 30;
/// The port of the broker's HTTP proxy (`HTTP_PROXY`, `HTTPS_PROXY`).
pub const PROXY_PORT: u16 = 3128;
/// Where the sandbox finds the CA bundle that trusts the broker's interception
/// (the host's CAs and the sandbox's own), when secrets are configured.
pub const CA_BUNDLE_PATH: &str = "/etc/hsb/ca-bundle.pem";

/// Where a per-run secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A variable of the caller's environment, read when the run is planned.
    Env(String),
    /// The value itself.
    Value(SecretValue),
}

/// A secret asked for by one run (`--secret NAME=ENV@HOST,...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRequest {
    /// The variable in the sandbox.
    pub name: String,
    /// Where the value comes from.
    pub source: SecretSource,
    /// The hosts it may be sent to.
    pub hosts: Vec<HostRule>,
}

impl SecretRequest {
    /// Reads the CLI form `NAME=ENV@HOST[,HOST...]`.
    pub fn parse_spec(spec: &str) -> Result<SecretRequest, String> {
        let bad = |why: &str| format!("secret `{spec}`: {why} (write NAME=ENV@HOST[,HOST...])");
        let (name, rest) = spec.split_once('=').ok_or_else(|| bad("no `=`"))?;
        let (env, hosts) = rest.split_once('@').ok_or_else(|| bad("no `@`"))?;
        if name.is_empty() || env.is_empty() || hosts.is_empty() {
            return Err(bad("a part is empty"));
        }
        let hosts = hosts
            .split(',')
            .map(|h| h.parse::<HostRule>().map_err(|e| bad(&e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SecretRequest {
            name: name.to_string(),
            source: SecretSource::Env(env.to_string()),
            hosts,
        })
    }
}

/// A run's own egress options, added to its profile's (`--allow`, `--deny`, `--expose`,
/// `--secret`). The operator floor holds against each: beyond it is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressRequest {
    /// More allow rules.
    pub allow: Vec<HostRule>,
    /// More deny rules.
    pub deny: Vec<HostRule>,
    /// More sandbox ports to expose.
    pub expose: Vec<u16>,
    /// More secrets.
    pub secrets: Vec<SecretRequest>,
}

impl EgressRequest {
    /// Whether nothing is asked for.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty()
            && self.deny.is_empty()
            && self.expose.is_empty()
            && self.secrets.is_empty()
    }
}

/// A rule in force for a run, with where it came from (for reports: "denied by
/// `*.internal.example` (`profiles.agent.network.deny[0]`)").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedRule {
    /// The rule.
    pub rule: HostRule,
    /// Where it was written: a policy key, `--allow`, or the operator floor.
    pub origin: String,
}

impl PlannedRule {
    /// The rule and its origin, in words.
    pub fn describe(&self) -> String {
        format!("`{}` ({})", self.rule, self.origin)
    }
}

/// A secret's real value. Never printed, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(v: impl Into<String>) -> SecretValue {
        SecretValue(v.into())
    }

    /// The value, for the broker that injects it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// A secret of a run: the sandbox's variable holds `placeholder`; the broker puts
/// `value` in its place only in requests to `hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedSecret {
    /// The variable in the sandbox.
    pub name: String,
    /// What the sandbox sees instead of the value.
    pub placeholder: String,
    /// The value (redacted in Debug and JSON).
    pub value: SecretValue,
    /// The hosts that may receive it.
    pub hosts: Vec<HostRule>,
    /// Where it was configured.
    pub origin: String,
}

/// Everything the broker needs for one run with `network = "egress"`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct EgressPlan {
    /// Allow rules, in order.
    pub allow: Vec<PlannedRule>,
    /// Deny rules (they win over allow rules).
    pub deny: Vec<PlannedRule>,
    /// Sandbox ports reachable from the host.
    pub expose: Vec<u16>,
    /// Secrets.
    pub secrets: Vec<PlannedSecret>,
    /// Host-side name overrides (a hosts file for the broker): these names resolve to
    /// these addresses, never through DNS.
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
    /// A DNS server the broker asks for allowed names instead of the system resolver.
    pub dns: Option<SocketAddr>,
    /// A CA certificate file (PEM) trusted besides the host's store when the broker
    /// verifies servers it intercepts.
    pub ca: Option<PathBuf>,
}

/// The broker's answer for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed by this rule.
    Allowed(PlannedRule),
    /// Denied by this deny rule.
    Denied(PlannedRule),
    /// No allow rule matches.
    NotAllowed,
}

impl Verdict {
    /// Whether the destination may be reached.
    pub fn allowed(&self) -> bool {
        matches!(self, Verdict::Allowed(_))
    }

    /// The rule that decided, in words.
    pub fn rule(&self) -> String {
        match self {
            Verdict::Allowed(r) | Verdict::Denied(r) => r.describe(),
            Verdict::NotAllowed => "no allow rule matches".into(),
        }
    }
}

impl EgressPlan {
    /// The verdict for a connection to `name` on `port`; `None` asks whether the name
    /// may be resolved at all (some allow rule names it, and no deny rule without a
    /// port does).
    pub fn decide_name(&self, name: &str, port: Option<u16>) -> Verdict {
        let Some(name) = normalize_name(name) else {
            return Verdict::NotAllowed;
        };
        let deny = self.deny.iter().find(|d| match port {
            Some(p) => d.rule.matches_name(&name, Some(p)),
            None => d.rule.port.is_none() && d.rule.host.matches_name(&name),
        });
        if let Some(d) = deny {
            return Verdict::Denied(d.clone());
        }
        match self.allow.iter().find(|a| a.rule.matches_name(&name, port)) {
            Some(a) => Verdict::Allowed(a.clone()),
            None => Verdict::NotAllowed,
        }
    }

    /// The verdict for a connection to the address `ip` on `port` (a rule must name the
    /// address; names never match addresses).
    pub fn decide_ip(&self, ip: Ipv4Addr, port: u16) -> Verdict {
        if let Some(d) = self.deny.iter().find(|d| d.rule.matches_ip(ip, port)) {
            return Verdict::Denied(d.clone());
        }
        match self.allow.iter().find(|a| a.rule.matches_ip(ip, port)) {
            Some(a) => Verdict::Allowed(a.clone()),
            None => Verdict::NotAllowed,
        }
    }

    /// The secrets that go to `name` on `port`.
    pub fn secrets_for(&self, name: &str, port: u16) -> Vec<&PlannedSecret> {
        let Some(name) = normalize_name(name) else {
            return Vec::new();
        };
        self.secrets
            .iter()
            .filter(|s| s.hosts.iter().any(|h| h.matches_name(&name, Some(port))))
            .collect()
    }

    /// Whether traffic to `name` on `port` is intercepted (some secret goes there).
    pub fn intercepts(&self, name: &str, port: u16) -> bool {
        !self.secrets_for(name, port).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str], origin: &str) -> Vec<PlannedRule> {
        list.iter()
            .map(|r| PlannedRule {
                rule: r.parse().unwrap(),
                origin: origin.into(),
            })
            .collect()
    }

    #[test]
    fn deny_wins_and_ports_count() {
        let p = EgressPlan {
            allow: rules(
                &["*.example.com", "github.com:443", "203.0.113.7:5432"],
                "allow",
            ),
            deny: rules(&["bad.example.com", "api.example.com:80"], "deny"),
            ..Default::default()
        };
        assert!(p.decide_name("www.example.com", Some(80)).allowed());
        assert!(matches!(
            p.decide_name("bad.example.com", None),
            Verdict::Denied(_)
        ));
        // A deny on one port leaves the name resolvable and other ports open.
        assert!(p.decide_name("api.example.com", None).allowed());
        assert!(p.decide_name("api.example.com", Some(443)).allowed());
        assert!(matches!(
            p.decide_name("api.example.com", Some(80)),
            Verdict::Denied(_)
        ));
        assert!(p.decide_name("github.com", Some(443)).allowed());
        assert_eq!(p.decide_name("github.com", Some(22)), Verdict::NotAllowed);
        assert_eq!(p.decide_name("evil.test", None), Verdict::NotAllowed);
        assert!(p.decide_ip("203.0.113.7".parse().unwrap(), 5432).allowed());
        assert_eq!(
            p.decide_ip("203.0.113.7".parse().unwrap(), 22),
            Verdict::NotAllowed
        );
        assert_eq!(
            p.decide_ip("203.0.113.8".parse().unwrap(), 5432),
            Verdict::NotAllowed
        );
        assert!(p.decide_name("not a name", None) == Verdict::NotAllowed);
    }

    #[test]
    fn secret_values_never_print() {
        let s = PlannedSecret {
            name: "T".into(),
            placeholder: "ph".into(),
            value: SecretValue::new("hunter2"),
            hosts: vec![],
            origin: "x".into(),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&s).unwrap().contains("hunter2"));
    }
}
