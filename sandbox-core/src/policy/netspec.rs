//! The `network` and `secrets` keys of a profile, and `network` of the floor, as serde
//! reads them. `network = "none"` (a plain mode) and `[profiles.X.network]` (a table)
//! are both accepted; rules are checked as they are read, so a bad one is reported at
//! its line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::network::{HostRule, Port};
use crate::types::Network;

/// `network` of a profile: a mode, or a table with the egress rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkSpec {
    /// `none`, `loopback` or `egress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mode: Option<Network>,
    /// Destinations the sandbox may reach (`HOST[:PORT]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) allow: Option<Vec<HostRule>>,
    /// Destinations it may not (they win over `allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deny: Option<Vec<HostRule>>,
    /// Sandbox ports reachable from the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expose: Option<Vec<Port>>,
    /// Host-side name overrides: `"name" = "address"` or a list of addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hosts: Option<BTreeMap<String, Addrs>>,
    /// A DNS server (`ADDRESS:PORT`) the broker asks instead of the system resolver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dns: Option<SocketAddr>,
    /// A CA certificate file (PEM) trusted besides the host's store for intercepted hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca: Option<PathBuf>,
}

/// The profile's `network` key: a plain mode or a table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NetworkKey(pub(crate) NetworkSpec);

impl NetworkSpec {
    /// `self` with `over`'s keys applied on top (each key replaces).
    pub(crate) fn layered(&self, over: &NetworkSpec) -> NetworkSpec {
        let mut out = self.clone();
        macro_rules! replace {
            ($($f:ident),*) => { $( if over.$f.is_some() { out.$f = over.$f.clone(); } )* };
        }
        replace!(mode, allow, deny, expose, hosts, dns, ca);
        out
    }

    /// Whether any egress-only key is set.
    pub(crate) fn has_egress_keys(&self) -> bool {
        self.allow.is_some()
            || self.deny.is_some()
            || self.expose.is_some()
            || self.hosts.is_some()
            || self.dns.is_some()
            || self.ca.is_some()
    }
}

/// Addresses of a `hosts` entry: one, or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct Addrs(pub(crate) Vec<IpAddr>);

impl<'de> Deserialize<'de> for Addrs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Addrs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an IP address or a list of IP addresses")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Addrs, E> {
                parse_addr(s).map(|a| Addrs(vec![a]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Addrs, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(parse_addr(&s)?);
                }
                if out.is_empty() {
                    return Err(de::Error::custom("an empty list of addresses"));
                }
                Ok(Addrs(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_addr<E: de::Error>(s: &str) -> Result<IpAddr, E> {
    s.parse()
        .map_err(|_| E::custom(format!("`{s}` is not an IP address")))
}

impl Serialize for NetworkKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (&self.0.mode, self.0.has_egress_keys()) {
            (Some(m), false) => m.serialize(s),
            _ => self.0.serialize(s),
        }
    }
}

/// A plain mode string, or a table read with `T`'s own (strict) rules.
fn str_or_table<'de, D, T>(d: D, from_mode: fn(Network) -> T) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(fn(Network) -> T);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "`none`, `loopback`, `egress`, or a table with `mode`, `allow`, `deny`, ...",
            )
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            s.parse::<Network>().map(self.0).map_err(E::custom)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V(from_mode))
}

impl<'de> Deserialize<'de> for NetworkKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spec = str_or_table(d, |m| NetworkSpec {
            mode: Some(m),
            ..Default::default()
        })?;
        dead_allow_rules(spec.allow.as_deref(), spec.deny.as_deref()).map_err(de::Error::custom)?;
        if let Some(m) = spec.mode {
            if m != Network::Egress && spec.has_egress_keys() {
                return Err(de::Error::custom(format!(
                    "`allow`, `deny`, `expose`, `hosts`, `dns` and `ca` need `mode = \"egress\"`, not `{m}`"
                )));
            }
        }
        Ok(NetworkKey(spec))
    }
}

/// An allow rule that a deny rule covers entirely can never match: an overlap the
/// author should resolve.
pub(crate) fn dead_allow_rules(
    allow: Option<&[HostRule]>,
    deny: Option<&[HostRule]>,
) -> Result<(), String> {
    for a in allow.unwrap_or_default() {
        if let Some(d) = deny.unwrap_or_default().iter().find(|d| a.covered_by(d)) {
            return Err(format!(
                "allow rule `{a}` overlaps deny rule `{d}`, which covers it entirely (deny wins): \
                 remove one of them"
            ));
        }
    }
    Ok(())
}

/// `[profiles.X.secrets]` entries: `NAME = { from_env = "VAR", hosts = ["api.example.com"] }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretSpec {
    /// The variable of hsb's own environment that holds the value.
    pub(crate) from_env: String,
    /// The hosts the value may be sent to.
    pub(crate) hosts: Vec<HostRule>,
}

/// `network` of the floor: the most network allowed, as a mode or a table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FloorNetworkSpec {
    /// The most open mode allowed (`none < loopback < egress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mode: Option<Network>,
    /// Every allow rule of every run must lie within these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) allow: Option<Vec<HostRule>>,
    /// Added to every run's deny rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deny: Option<Vec<HostRule>>,
    /// The sandbox ports that may be exposed (none when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expose: Option<Vec<Port>>,
    /// `false`: no secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) secrets: Option<bool>,
    /// `false`: no `hosts`, `dns` or `ca` overrides of name resolution and trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) overrides: Option<bool>,
}

/// The floor's `network` key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FloorNetworkKey(pub(crate) FloorNetworkSpec);

impl FloorNetworkSpec {
    fn only_mode(&self) -> bool {
        self.allow.is_none()
            && self.deny.is_none()
            && self.expose.is_none()
            && self.secrets.is_none()
            && self.overrides.is_none()
    }
}

impl Serialize for FloorNetworkKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (&self.0.mode, self.0.only_mode()) {
            (Some(m), true) => m.serialize(s),
            _ => self.0.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for FloorNetworkKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_or_table(d, |m| FloorNetworkSpec {
            mode: Some(m),
            ..Default::default()
        })
        .map(FloorNetworkKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct P {
        network: NetworkKey,
    }

    #[test]
    fn string_or_table() {
        let p: P = toml::from_str("network = \"loopback\"").unwrap();
        assert_eq!(p.network.0.mode, Some(Network::Loopback));
        let p: P = toml::from_str(
            "[network]\nmode = \"egress\"\nallow = [\"a.com:443\"]\nexpose = [8000]\nhosts = { \"a.com\" = \"127.0.0.2\" }",
        )
        .unwrap();
        assert_eq!(p.network.0.allow.as_ref().unwrap().len(), 1);
        assert_eq!(p.network.0.expose, Some(vec![Port(8000)]));
        for (bad, want) in [
            ("network = \"wifi\"", "unknown network `wifi`"),
            (
                "[network]\nmode = \"egress\"\nallow = [\"a.com:99999\"]",
                "out of range",
            ),
            (
                "[network]\nmode = \"egress\"\nexpose = [0]",
                "port 0 is out of range",
            ),
            (
                "[network]\nmode = \"egress\"\nexpose = [70000]",
                "out of range",
            ),
            (
                "[network]\nmode = \"egress\"\nalow = []",
                "unknown field `alow`",
            ),
            (
                "[network]\nmode = \"egress\"\nallow = [\"api.x.com\"]\ndeny = [\"*.x.com\"]",
                "overlaps deny rule `*.x.com`",
            ),
            (
                "[network]\nmode = \"loopback\"\nallow = [\"a.com\"]",
                "need `mode = \"egress\"`",
            ),
            (
                "[network]\nmode = \"egress\"\nhosts = { \"a\" = \"nope\" }",
                "not an IP address",
            ),
        ] {
            let e = toml::from_str::<P>(bad).err().unwrap().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
