//! The broker as the micro-VM will use it: in-process, DNS answers and connected stream
//! descriptors handed over without the caller making a socket, exposed ports arriving as
//! descriptors; against a real server on a loopback address.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::str::FromStr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use sandbox_core::network::{EgressPlan, NetworkVerdict, PlannedRule, BROKER_ADDR, PROXY_PORT};
use sandbox_egress::{Broker, Link};

fn rule(r: &str, origin: &str) -> PlannedRule {
    PlannedRule {
        rule: r.parse().unwrap(),
        origin: origin.into(),
    }
}

/// A one-shot HTTP server: answers one request with `body`.
fn server(ip: Ipv4Addr, body: &'static str) -> u16 {
    let l = TcpListener::bind((ip, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn resolve(broker: &sandbox_egress::BrokerHandle, name: &str) -> Result<Ipv4Addr, ResponseCode> {
    let mut q = Message::new();
    q.set_id(7)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_str(name).unwrap(), RecordType::A));
    let answer = broker.dns_answer(&q.to_vec().unwrap()).expect("an answer");
    let r = Message::from_vec(&answer).unwrap();
    assert_eq!(r.id(), 7);
    match r.answers().first().map(|a| a.data()) {
        Some(RData::A(a)) => Ok(a.0),
        _ => Err(r.response_code()),
    }
}

fn get(fd: std::os::fd::OwnedFd, host: &str) -> String {
    let mut s = UnixStream::from(fd);
    s.set_nonblocking(false).unwrap();
    write!(s, "GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn dns_connect_proxy_and_exposed_ports_in_process() {
    let ip = Ipv4Addr::new(127, 0, 0, 41);
    let port = server(ip, "hello in-process");
    let plan = EgressPlan {
        allow: vec![rule("*.test", "allow[0]")],
        deny: vec![rule("bad.test", "deny[0]")],
        expose: vec![8000],
        hosts: [("web.test".to_string(), vec![ip.into()])].into(),
        ..Default::default()
    };
    let broker = Broker::new(plan).unwrap().start(Link::InProcess).unwrap();
    // DNS: an allowed name gets a pool address; a denied one NXDOMAIN.
    let pool = resolve(&broker, "web.test.").unwrap();
    assert_eq!(pool.octets()[..2], [198, 18]);
    assert_eq!(resolve(&broker, "bad.test."), Err(ResponseCode::NXDomain));
    assert_eq!(
        resolve(&broker, "evil.example."),
        Err(ResponseCode::NXDomain)
    );
    // A connection to the pool address: a stream descriptor the broker relays.
    let fd = broker.connect(SocketAddrV4::new(pool, port)).unwrap();
    assert!(get(fd, "web.test").ends_with("hello in-process"));
    // Direct addresses without a rule, and pool addresses no answer gave: refused.
    let e = broker.connect(SocketAddrV4::new(ip, port)).unwrap_err();
    assert!(e.rule.contains("no allow rule"), "{e}");
    assert!(broker
        .connect(SocketAddrV4::new(Ipv4Addr::new(198, 18, 9, 9), port))
        .is_err());
    // The proxy, through a descriptor too.
    let fd = broker
        .connect(SocketAddrV4::new(BROKER_ADDR, PROXY_PORT))
        .unwrap();
    let mut s = UnixStream::from(fd);
    s.set_nonblocking(false).unwrap();
    write!(
        s,
        "CONNECT bad.test:{port} HTTP/1.1\r\nHost: bad.test\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.starts_with("HTTP/1.1 403") && out.contains("deny[0]"),
        "{out}"
    );
    // A host client of an exposed port arrives as a descriptor.
    let inward = broker.take_inward().expect("once");
    let host = broker.exposed()[0].host;
    let client = std::thread::spawn(move || {
        let mut c = TcpStream::connect(host).unwrap();
        c.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        b
    });
    let (sport, fd) = inward
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!(sport, 8000);
    let mut s = UnixStream::from(fd);
    s.set_nonblocking(false).unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    s.write_all(b"pong").unwrap();
    assert_eq!(&client.join().unwrap(), b"pong");
    let report = broker.stop();
    let web = report
        .connections
        .iter()
        .find(|c| c.name.as_deref() == Some("web.test"))
        .unwrap();
    assert_eq!(web.verdict, NetworkVerdict::Allowed);
    assert_eq!(web.via, "vm");
    assert!(web.bytes_in > 0 && web.bytes_out > 0, "{web:?}");
}
