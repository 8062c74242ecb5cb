//! The broker's shared state for one sandbox: the plan, the pool, the recorder, the TLS
//! material; and the two decisions every connection goes through (admission, then the
//! upstream address).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sandbox_core::network::{
    normalize_name, ConnectionRecord, EgressPlan, NetworkVerdict, Verdict,
};
use tokio::net::TcpStream;

use crate::pool::Pool;
use crate::record::{ConnId, Recorder};
use crate::tls::Tls;

/// How long reaching a server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the broker's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) plan: EgressPlan,
    pub(crate) pool: Mutex<Pool>,
    pub(crate) recorder: Recorder,
    pub(crate) tls: Tls,
}

/// Where an admitted connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dest {
    /// A host name (the sandbox got its pool address from DNS, or named it to the proxy).
    Name(String),
    /// An address a rule names.
    Ip(Ipv4Addr),
}

/// A connection the rules let through.
#[derive(Debug, Clone)]
pub(crate) struct Admitted {
    pub(crate) dest: Dest,
    pub(crate) port: u16,
    pub(crate) conn: ConnId,
}

impl Shared {
    pub(crate) fn new(plan: EgressPlan, recorder: Recorder, tls: Tls) -> Arc<Shared> {
        Arc::new(Shared {
            plan,
            pool: Mutex::new(Pool::default()),
            recorder,
            tls,
        })
    }

    pub(crate) fn pool_address(&self, name: &str) -> Option<Ipv4Addr> {
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .address(name)
    }

    fn pool_name(&self, ip: Ipv4Addr) -> Option<String> {
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .name(ip)
            .map(str::to_string)
    }

    fn record(
        &self,
        name: Option<String>,
        ip: Ipv4Addr,
        port: u16,
        via: &str,
        verdict: &Verdict,
        note: Option<String>,
    ) -> ConnId {
        self.recorder.opened(ConnectionRecord {
            name,
            ip,
            port,
            via: via.to_string(),
            verdict: if verdict.allowed() {
                NetworkVerdict::Allowed
            } else {
                NetworkVerdict::Denied
            },
            rule: verdict.rule(),
            note,
            intercepted: false,
            secrets: Vec::new(),
            bytes_out: 0,
            bytes_in: 0,
        })
    }

    /// Decides a connection to `ip:port` as the sandbox addressed it: a pool address is
    /// decided by its name, any other address by a rule naming it.
    pub(crate) fn admit_ip(&self, ip: Ipv4Addr, port: u16, via: &str) -> Option<Admitted> {
        if Pool::contains(ip) {
            let Some(name) = self.pool_name(ip) else {
                let v = Verdict::NotAllowed;
                self.record(
                    None,
                    ip,
                    port,
                    via,
                    &v,
                    Some("an address of the broker's pool that no DNS answer gave".into()),
                );
                return None;
            };
            let v = self.plan.decide_name(&name, Some(port));
            let conn = self.record(Some(name.clone()), ip, port, via, &v, None);
            return v.allowed().then_some(Admitted {
                dest: Dest::Name(name),
                port,
                conn,
            });
        }
        let v = self.plan.decide_ip(ip, port);
        let note = (!v.allowed()).then(|| {
            "a direct address: only addresses an allow rule names are reached; use the host's name"
                .to_string()
        });
        let conn = self.record(None, ip, port, via, &v, note);
        v.allowed().then_some(Admitted {
            dest: Dest::Ip(ip),
            port,
            conn,
        })
    }

    /// Decides a connection to `host:port` named by the sandbox (HTTP proxy requests).
    pub(crate) fn admit_host(&self, host: &str, port: u16, via: &str) -> Result<Admitted, String> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return self
                .admit_ip(ip, port, via)
                .ok_or_else(|| self.plan.decide_ip(ip, port).rule());
        }
        let Some(name) = normalize_name(host) else {
            let v = Verdict::NotAllowed;
            self.record(
                Some(host.to_string()),
                Ipv4Addr::UNSPECIFIED,
                port,
                via,
                &v,
                Some("not a host name".into()),
            );
            return Err(format!("`{host}` is not a host name"));
        };
        let v = self.plan.decide_name(&name, Some(port));
        let ip = if v.allowed() {
            self.pool_address(&name).unwrap_or(Ipv4Addr::UNSPECIFIED)
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        let conn = self.record(Some(name.clone()), ip, port, via, &v, None);
        if v.allowed() {
            Ok(Admitted {
                dest: Dest::Name(name),
                port,
                conn,
            })
        } else {
            Err(v.rule())
        }
    }

    /// The server addresses of an admitted destination. Names resolved through DNS must
    /// give public addresses: a name that resolves to loopback, private or link-local
    /// addresses reaches them only when an allow rule names the address (or the policy's
    /// `hosts` pins the name), so DNS cannot steer the broker at the host's or the LAN's
    /// services.
    pub(crate) async fn upstream(&self, dest: &Dest, port: u16) -> Result<Vec<SocketAddr>, String> {
        let name = match dest {
            Dest::Ip(ip) => return Ok(vec![SocketAddr::new(IpAddr::V4(*ip), port)]),
            Dest::Name(n) => n,
        };
        if let Some(pinned) = self.plan.hosts.get(name) {
            return Ok(pinned.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
        }
        let found: Vec<IpAddr> = match self.plan.dns {
            Some(server) => crate::dns::upstream_lookup(server, name).await?,
            None => tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|e| format!("cannot resolve `{name}`: {e}"))?
                .map(|a| a.ip())
                .collect(),
        };
        if found.is_empty() {
            return Err(format!("`{name}` has no address"));
        }
        let ok: Vec<SocketAddr> = found
            .iter()
            .filter(|ip| match ip {
                IpAddr::V4(v4) => is_public_v4(*v4) || self.plan.decide_ip(*v4, port).allowed(),
                IpAddr::V6(v6) => is_public_v6(*v6),
            })
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
        if ok.is_empty() {
            let shown: Vec<String> = found.iter().map(IpAddr::to_string).collect();
            return Err(format!(
                "`{name}` resolves only to local or private addresses ({}); an allow rule must name the address",
                shown.join(", ")
            ));
        }
        Ok(ok)
    }

    /// Connects to an admitted destination.
    pub(crate) async fn connect(&self, adm: &Admitted) -> Result<TcpStream, String> {
        let addrs = self.upstream(&adm.dest, adm.port).await?;
        let mut last = String::new();
        for a in addrs {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(a)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Ok(Err(e)) => last = format!("{a}: {e}"),
                Err(_) => last = format!("{a}: timed out"),
            }
        }
        Err(format!("cannot reach the server ({last})"))
    }
}

/// An address routed on the Internet (not loopback, private, link-local, shared,
/// reserved for documentation or benchmarks, multicast or broadcast).
pub(crate) fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x64 && s[1] == 0xff9b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for p in ["1.1.1.1", "140.82.112.3"] {
            assert!(is_public_v4(p.parse().unwrap()), "{p}");
        }
        for l in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.96.0.1",
            "198.18.0.5",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.7",
        ] {
            assert!(!is_public_v4(l.parse().unwrap()), "{l}");
        }
        assert!(!is_public_v6("::1".parse().unwrap()));
        assert!(!is_public_v6("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_public_v6("fd00::1".parse().unwrap()));
        assert!(is_public_v6("2606:4700::1111".parse().unwrap()));
    }
}
