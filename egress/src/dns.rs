//! DNS for the sandbox (answers from the pool for allowed names, NXDOMAIN for the rest,
//! nothing ever forwarded), and the broker's own look-ups of allowed names on the host
//! side (a `hosts` override, a configured server, or the system resolver).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use sandbox_core::network::{normalize_name, DnsRecord, NetworkVerdict, Verdict};

use crate::broker::Shared;

/// How long the sandbox may cache an answer (the pool address of a name never changes
/// while the sandbox lives).
const TTL: u32 = 300;

/// The answer to one DNS message from the sandbox, or `None` for garbage (dropped, as
/// a resolver would).
pub(crate) fn answer(shared: &Shared, query: &[u8]) -> Option<Vec<u8>> {
    let msg = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) if query.len() >= 2 => {
            let id = u16::from_be_bytes([query[0], query[1]]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_vec()
                .ok();
        }
        Err(_) => return None,
    };
    if msg.message_type() != MessageType::Query {
        return None;
    }
    let mut out = Message::new();
    out.set_id(msg.id())
        .set_message_type(MessageType::Response)
        .set_op_code(msg.op_code())
        .set_recursion_desired(msg.recursion_desired())
        .set_recursion_available(true);
    if msg.op_code() != OpCode::Query || msg.queries().len() != 1 {
        out.set_response_code(ResponseCode::NotImp);
        return out.to_vec().ok();
    }
    let q: &Query = &msg.queries()[0];
    out.add_query(q.clone());
    let raw = q.name().to_ascii();
    let qtype = q.query_type();
    let name = normalize_name(&raw);
    let verdict = match &name {
        Some(n) => shared.plan.decide_name(n, None),
        None => Verdict::NotAllowed,
    };
    let mut rec = DnsRecord {
        name: name
            .clone()
            .unwrap_or_else(|| raw.trim_end_matches('.').to_string()),
        qtype: qtype.to_string(),
        verdict: NetworkVerdict::Denied,
        rule: verdict.rule(),
        answer: None,
        count: 1,
    };
    match (verdict.allowed(), name) {
        (true, Some(n)) => {
            rec.verdict = NetworkVerdict::Allowed;
            if qtype == RecordType::A || qtype == RecordType::ANY {
                match shared.pool_address(&n) {
                    Some(ip) => {
                        rec.answer = Some(ip);
                        out.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
                    }
                    None => {
                        out.set_response_code(ResponseCode::ServFail);
                    }
                }
            }
            // Other types (AAAA included: the sandbox's network is IPv4): no data.
        }
        _ => {
            out.set_response_code(ResponseCode::NXDomain);
        }
    }
    shared.recorder.dns(rec);
    out.to_vec().ok()
}

/// Asks `server` (a DNS server given by the policy) for the A and AAAA records of `name`.
pub(crate) async fn upstream_lookup(server: SocketAddr, name: &str) -> Result<Vec<IpAddr>, String> {
    let qname = Name::from_str(&format!("{name}.")).map_err(|e| format!("bad name: {e}"))?;
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().map_err(|_| "address".to_string())?
    } else {
        "[::]:0".parse().map_err(|_| "address".to_string())?
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    sock.connect(server)
        .await
        .map_err(|e| format!("cannot reach the DNS server {server}: {e}"))?;
    let mut addrs = Vec::new();
    for qtype in [RecordType::A, RecordType::AAAA] {
        let id: u16 = rand_id();
        let mut m = Message::new();
        m.set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(qname.clone(), qtype));
        let bytes = m.to_vec().map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 4096];
        let mut got = None;
        for _ in 0..3 {
            sock.send(&bytes)
                .await
                .map_err(|e| format!("DNS server {server}: {e}"))?;
            match tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await {
                Ok(Ok(n)) => match Message::from_vec(&buf[..n]) {
                    Ok(r) if r.id() == id => {
                        got = Some(r);
                        break;
                    }
                    _ => continue,
                },
                Ok(Err(e)) => return Err(format!("DNS server {server}: {e}")),
                Err(_) => continue,
            }
        }
        let r = got.ok_or_else(|| format!("the DNS server {server} did not answer"))?;
        for rec in r.answers() {
            match rec.data() {
                RData::A(a) => addrs.push(IpAddr::V4(a.0)),
                RData::AAAA(a) => addrs.push(IpAddr::V6(a.0)),
                _ => {}
            }
        }
    }
    Ok(addrs)
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish() as u16
}
