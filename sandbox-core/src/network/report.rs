//! What the broker reports: every DNS answer and connection decision, with the rule that
//! decided and the bytes each way. The outcome's `network` section, and the events a
//! live sandbox streams.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::types::Network;

/// Allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkVerdict {
    /// Let through.
    Allowed,
    /// Refused.
    Denied,
}

/// A sandbox port reachable from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposedPort {
    /// The port a server listens on inside the sandbox.
    pub sandbox_port: u16,
    /// Where the host reaches it (`127.0.0.1:<port chosen by hsb>`).
    pub host: SocketAddr,
}

/// One DNS question the sandbox asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// The name asked for.
    pub name: String,
    /// The record type (`A`, `AAAA`, ...).
    pub qtype: String,
    /// Answered (`allowed`) or NXDOMAIN (`denied`).
    pub verdict: NetworkVerdict,
    /// The rule that decided, in words.
    pub rule: String,
    /// The address given to the sandbox (from the broker's private pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Ipv4Addr>,
    /// How many times this question was asked.
    pub count: u64,
}

/// One TCP connection the sandbox opened (or tried to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    /// The host name the connection was decided by, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The address the sandbox connected to.
    pub ip: Ipv4Addr,
    /// The port.
    pub port: u16,
    /// `tun` (the sandbox's own interface), `proxy` (HTTP_PROXY) or `exposed`
    /// (a host client reaching an exposed port).
    pub via: String,
    /// Allowed or denied.
    pub verdict: NetworkVerdict,
    /// The rule that decided, in words.
    pub rule: String,
    /// Why a connection ended early, or was refused beyond the rule (a TLS SNI or
    /// HTTP Host naming another host, an unreachable server...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// TLS terminated by the broker (a secret goes to this host).
    pub intercepted: bool,
    /// Names of the secrets put into requests on this connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Bytes from the sandbox to the server.
    pub bytes_out: u64,
    /// Bytes from the server to the sandbox.
    pub bytes_in: u64,
}

/// The outcome's `network` section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetworkReport {
    /// The network mode.
    pub mode: Network,
    /// The sandbox's own address on its interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_address: Option<Ipv4Addr>,
    /// The broker's address inside the sandbox: DNS server and HTTP proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_address: Option<Ipv4Addr>,
    /// Exposed ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed: Vec<ExposedPort>,
    /// DNS questions, in the order first asked.
    #[serde(default)]
    pub dns: Vec<DnsRecord>,
    /// Connections, in the order they were decided.
    #[serde(default)]
    pub connections: Vec<ConnectionRecord>,
    /// Packets refused without a connection, by kind (`udp`, `icmp`, `ipv6`, `other`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dropped_packets: BTreeMap<String, u64>,
    /// Set when there were more records than the report keeps (the oldest are kept).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// One thing the broker did, as it happens (for a live sandbox's event stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NetworkEvent {
    /// A DNS question was answered or refused.
    Dns(DnsRecord),
    /// A connection was decided (`bytes_*` are zero) ...
    ConnectionOpened(ConnectionRecord),
    /// ... or ended (with its byte counts).
    ConnectionClosed(ConnectionRecord),
    /// A packet was refused.
    Dropped {
        /// `udp`, `icmp`, `ipv6` or `other`.
        kind: String,
    },
}
