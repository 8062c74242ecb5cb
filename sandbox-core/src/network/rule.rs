//! Destination rules: `HOST[:PORT]`, where HOST is a DNS name, `*.suffix`, `*`, an IPv4
//! address or an IPv4 network (`10.0.0.0/8`). Parsed once, matched by the broker.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a rule's host part matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// Exactly this name (lower case, no trailing dot).
    Name(String),
    /// Every name below this suffix (`*.example.com` stores `example.com`), not the
    /// suffix itself.
    Below(String),
    /// Every name (`*`); no address.
    AnyName,
    /// An IPv4 network: the address and the prefix length (32 for one address).
    Net(Ipv4Addr, u8),
}

/// One allow or deny rule: a host pattern and an optional port (every port when absent).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostRule {
    /// The host part.
    pub host: HostPattern,
    /// The port; `None`: every port.
    pub port: Option<u16>,
}

/// A rule could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{rule}`: {message}")]
pub struct RuleError {
    /// The rule as written.
    pub rule: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// A DNS name as the rules compare it: lower case, without a trailing dot; `None` when
/// it is not a valid host name (labels of 1 to 63 letters, digits, `-` or `_`, at most
/// 253 characters).
pub fn normalize_name(name: &str) -> Option<String> {
    let n = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    ok.then_some(n)
}

fn parse_port(rule: &str, p: &str) -> Result<u16, RuleError> {
    let err = |message: String| RuleError {
        rule: rule.to_string(),
        message,
    };
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!(
            "port `{p}` is not a number (write HOST or HOST:PORT, PORT from 1 to 65535)"
        )));
    }
    match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(err(format!("port {p} is out of range (1 to 65535)"))),
    }
}

impl FromStr for HostRule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<HostRule, RuleError> {
        let err = |message: &str| RuleError {
            rule: s.to_string(),
            message: message.to_string(),
        };
        let t = s.trim();
        if t.is_empty() {
            return Err(err("an empty rule; write HOST or HOST:PORT"));
        }
        if t.starts_with('[') || t.matches(':').count() > 1 {
            return Err(err(
                "IPv6 destinations are not supported: the sandbox's network is IPv4 only \
                 (the broker still reaches IPv6 servers by name); name the host instead",
            ));
        }
        if t.contains("://") || t.contains('/') && !t.contains(|c: char| c.is_ascii_digit()) {
            return Err(err("a rule is HOST[:PORT], not a URL"));
        }
        let (host, port) = match t.rsplit_once(':') {
            Some((h, p)) => (h, Some(parse_port(s, p)?)),
            None => (t, None),
        };
        let host = parse_host(host).map_err(|m| err(&m))?;
        Ok(HostRule { host, port })
    }
}

fn parse_host(h: &str) -> Result<HostPattern, String> {
    if h == "*" {
        return Ok(HostPattern::AnyName);
    }
    if let Some((a, len)) = h.split_once('/') {
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("`{a}` is not an IPv4 address (a network is ADDRESS/LENGTH)"))?;
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("prefix length `{len}` is out of range (0 to 32)"))?;
        if u32::from(addr) & !mask(len) != 0 {
            return Err(format!(
                "{a}/{len} has bits set past the prefix; write {}/{len}",
                Ipv4Addr::from(u32::from(addr) & mask(len))
            ));
        }
        return Ok(HostPattern::Net(addr, len));
    }
    if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return h
            .parse::<Ipv4Addr>()
            .map(|a| HostPattern::Net(a, 32))
            .map_err(|_| format!("`{h}` is not a valid IPv4 address"));
    }
    if let Some(rest) = h.strip_prefix("*.") {
        return normalize_name(rest)
            .map(HostPattern::Below)
            .ok_or_else(|| format!("`{rest}` is not a valid host name"));
    }
    if h.contains('*') {
        return Err(
            "a wildcard stands only at the start, as `*.example.com`, or alone (`*`)".into(),
        );
    }
    normalize_name(h)
        .map(HostPattern::Name)
        .ok_or_else(|| format!("`{h}` is not a valid host name (letters, digits, `-`, `_`, dots)"))
}

/// The special range `ip` lies in, if any.
fn special_range(ip: Ipv4Addr) -> Option<(Ipv4Addr, u8)> {
    const RANGES: [([u8; 4], u8); 7] = [
        ([127, 0, 0, 0], 8),
        ([0, 0, 0, 0], 8),
        ([169, 254, 0, 0], 16),
        ([100, 96, 0, 0], 30),
        ([198, 18, 0, 0], 15),
        ([224, 0, 0, 0], 4),
        ([240, 0, 0, 0], 4),
    ];
    RANGES
        .iter()
        .map(|(a, l)| (Ipv4Addr::from(*a), *l))
        .find(|(a, l)| u32::from(ip) & mask(*l) == u32::from(*a))
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl HostPattern {
    /// Whether this pattern matches the (normalized) name.
    pub fn matches_name(&self, name: &str) -> bool {
        match self {
            HostPattern::Name(n) => n == name,
            HostPattern::Below(s) => {
                name.len() > s.len() + 1 && name.ends_with(s.as_str()) && {
                    name.as_bytes()[name.len() - s.len() - 1] == b'.'
                }
            }
            HostPattern::AnyName => true,
            HostPattern::Net(..) => false,
        }
    }

    /// Whether this pattern matches the address. An address of a special range (the
    /// host's loopback, link-local addresses such as cloud metadata services, "this
    /// network", the egress link and pool, multicast, broadcast) is matched only by a
    /// rule inside that range: `127.0.0.1:8080` reaches the host's loopback,
    /// `0.0.0.0/0` does not.
    pub fn matches_ip(&self, ip: Ipv4Addr) -> bool {
        match self {
            HostPattern::Net(a, len) => {
                u32::from(ip) & mask(*len) == u32::from(*a)
                    && special_range(ip).is_none_or(|(s, sl)| {
                        *len >= sl && u32::from(*a) & mask(sl) == u32::from(s)
                    })
            }
            _ => false,
        }
    }

    /// Whether everything this pattern matches, `other` matches too.
    pub fn covered_by(&self, other: &HostPattern) -> bool {
        use HostPattern::*;
        match (self, other) {
            (Name(n), o) => o.matches_name(n),
            (Below(s), Below(t)) => s == t || Below(t.clone()).matches_name(s),
            (Below(_), AnyName) | (AnyName, AnyName) => true,
            (Net(a, l), Net(b, m)) => {
                m <= l
                    && u32::from(*a) & mask(*m) == u32::from(*b)
                    // Inside a special range, only a rule inside it covers (see matches_ip).
                    && special_range(*a).is_none_or(|(s, sl)| {
                        *m >= sl && u32::from(*b) & mask(sl) == u32::from(s)
                    })
            }
            _ => false,
        }
    }

    /// Whether the pattern names addresses rather than names.
    pub fn is_address(&self) -> bool {
        matches!(self, HostPattern::Net(..))
    }
}

impl HostRule {
    /// Whether the rule matches `name` on `port` (`None`: on some port).
    pub fn matches_name(&self, name: &str, port: Option<u16>) -> bool {
        self.host.matches_name(name) && self.port_ok(port)
    }

    /// Whether the rule matches `ip` on `port`.
    pub fn matches_ip(&self, ip: Ipv4Addr, port: u16) -> bool {
        self.host.matches_ip(ip) && self.port_ok(Some(port))
    }

    fn port_ok(&self, port: Option<u16>) -> bool {
        match (self.port, port) {
            (Some(p), Some(q)) => p == q,
            _ => true,
        }
    }

    /// Whether every destination this rule matches, `other` matches too.
    pub fn covered_by(&self, other: &HostRule) -> bool {
        self.host.covered_by(&other.host)
            && match (self.port, other.port) {
                (_, None) => true,
                (Some(p), Some(q)) => p == q,
                (None, Some(_)) => false,
            }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Name(n) => f.write_str(n),
            HostPattern::Below(s) => write!(f, "*.{s}"),
            HostPattern::AnyName => f.write_str("*"),
            HostPattern::Net(a, 32) => write!(f, "{a}"),
            HostPattern::Net(a, l) => write!(f, "{a}/{l}"),
        }
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

impl Serialize for HostRule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: RuleError| serde::de::Error::custom(format!("rule {e}")))
    }
}

/// A port of the sandbox, 1 to 65535 (`expose = [8000]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        u16::try_from(n)
            .ok()
            .filter(|p| *p != 0)
            .map(Port)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("port {n} is out of range (1 to 65535)"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> HostRule {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parsing() {
        assert_eq!(
            r("PyPI.org."),
            HostRule {
                host: HostPattern::Name("pypi.org".into()),
                port: None
            }
        );
        assert_eq!(r("github.com:443").port, Some(443));
        assert_eq!(
            r("*.pythonhosted.org").host,
            HostPattern::Below("pythonhosted.org".into())
        );
        assert_eq!(
            r("203.0.113.7:5432").host,
            HostPattern::Net("203.0.113.7".parse().unwrap(), 32)
        );
        assert_eq!(
            r("10.0.0.0/8").host,
            HostPattern::Net("10.0.0.0".parse().unwrap(), 8)
        );
        assert_eq!(r("*").host, HostPattern::AnyName);
        for (bad, why) in [
            ("", "empty"),
            ("a.com:0", "out of range"),
            ("a.com:70000", "out of range"),
            ("a.com:http", "not a number"),
            ("[::1]:443", "IPv6"),
            ("2001:db8::1", "IPv6"),
            ("https://a.com", "URL"),
            ("a*.com", "wildcard"),
            ("a..com", "valid host name"),
            ("-a.com", "valid host name"),
            ("300.1.1.1", "IPv4"),
            ("10.0.0.1/8", "bits set"),
            ("10.0.0.0/33", "out of range"),
        ] {
            let e = bad.parse::<HostRule>().unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn matching_and_covering() {
        assert!(r("*.example.com").matches_name("a.b.example.com", Some(1)));
        assert!(!r("*.example.com").matches_name("example.com", None));
        assert!(!r("*.example.com").matches_name("badexample.com", None));
        assert!(r("a.com:443").matches_name("a.com", None));
        assert!(!r("a.com:443").matches_name("a.com", Some(80)));
        assert!(r("10.0.0.0/8").matches_ip("10.2.3.4".parse().unwrap(), 9));
        assert!(!r("10.0.0.0/8").matches_name("10.2.3.4", None));
        assert!(r("api.example.com:443").covered_by(&r("*.example.com")));
        assert!(r("*.a.example.com").covered_by(&r("*.example.com")));
        assert!(!r("*.example.com").covered_by(&r("*.a.example.com")));
        assert!(!r("a.com").covered_by(&r("a.com:443")));
        assert!(r("10.1.0.0/16").covered_by(&r("10.0.0.0/8")));
        assert!(!r("10.0.0.0/8").covered_by(&r("10.1.0.0/16")));
        assert!(r("x.y").covered_by(&r("*")));
        // Wide networks do not reach special ranges; rules inside them do.
        let lo: Ipv4Addr = "127.0.0.1".parse().unwrap();
        assert!(!r("0.0.0.0/0").matches_ip(lo, 22));
        assert!(!r("0.0.0.0/1").matches_ip(lo, 22));
        assert!(!r("0.0.0.0/0").matches_ip("169.254.169.254".parse().unwrap(), 80));
        assert!(r("127.0.0.1:22").matches_ip(lo, 22));
        assert!(r("127.0.0.0/8").matches_ip(lo, 22));
        assert!(r("0.0.0.0/0").matches_ip("203.0.113.9".parse().unwrap(), 1));
        assert!(!r("127.0.0.1").covered_by(&r("0.0.0.0/0")));
        assert!(r("127.0.0.1").covered_by(&r("127.0.0.0/8")));
        assert!(!r("1.2.3.4").covered_by(&r("*")));
    }
}
