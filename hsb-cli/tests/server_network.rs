//! A live sandbox's network through `hsb serve`: egress rules and exposed ports in the
//! create request, the exposed ports in the sandbox's state and `hsb sandbox ls`, the
//! broker's decisions in `GET .../network` (and `hsb sandbox network`) and as they
//! happen on `GET .../network/events`; bad requests refused naming the field.
//!
//! The small internet is one HTTP server on a loopback address of this machine, named
//! `web.test` by the server's policy; nothing leaves the machine.

mod serve_util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serve_util::*;

/// A one-page HTTP server on `ip` (any port), answering every request with `body`.
fn web(ip: Ipv4Addr, body: &'static str) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).expect("bind the test web server");
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `GET path` on the server's socket, returning a reader positioned at the body (the
/// events stream does not end by itself).
fn stream(server: &Server, path: &str) -> BufReader<UnixStream> {
    let mut s = UnixStream::connect(server.socket.as_ref().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains(" 200 "), "events: {line}");
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            return r;
        }
    }
}

/// The next chunked-body line of an NDJSON stream (chunk sizes skipped).
fn next_event(r: &mut BufReader<UnixStream>) -> serde_json::Value {
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line).expect("an event within 30 s");
        assert!(n > 0, "the events stream ended");
        let t = line.trim();
        if t.starts_with('{') {
            return serde_json::from_str(t).unwrap();
        }
    }
}

#[test]
fn egress_rules_exposed_ports_and_decisions_through_the_api() {
    if !root() {
        return;
    }
    let site = web(Ipv4Addr::new(127, 0, 0, 41), "hello from web.test\n");
    let other = web(Ipv4Addr::new(127, 0, 0, 42), "other\n");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "{}\n[profiles.net.network]\nmode = \"egress\"\n\
             hosts = {{ \"web.test\" = \"{}\", \"other.test\" = \"{}\" }}\n",
            hybrid_sandbox::EMBEDDED_DEFAULT,
            site.ip(),
            other.ip()
        ),
    )
    .unwrap();
    let server = Server::start(&["--policy", policy.to_str().unwrap()]);

    // Bad requests: each refused naming what is wrong, nothing created.
    for (body, want) in [
        (r#"{"profile":"net","expose":[0]}"#, "expose[0]"),
        (r#"{"profile":"net","expose":[70000]}"#, "expose"),
        (r#"{"profile":"net","allow":["*bad*.test"]}"#, "wildcard"),
        (r#"{"profile":"net","allow":["a.test:99999"]}"#, "99999"),
        (r#"{"profile":"net","allow":"web.test"}"#, "allow"),
        (
            r#"{"profile":"net","allow":["api.a.test"],"deny":["*.a.test"]}"#,
            "overlaps",
        ),
        (
            r#"{"profile":"net","secrets":{"T":"X@web.test"}}"#,
            "secrets",
        ),
    ] {
        let (st, v) = server.json("POST", "/v1/sandboxes", body);
        assert_eq!(st, 400, "{body}: {v}");
        assert!(v.to_string().contains(want), "{body}: want {want}: {v}");
    }
    let (_, v) = server.json("GET", "/v1/sandboxes", "");
    assert_eq!(v["sandboxes"].as_array().map(Vec::len), Some(0), "{v}");

    // A sandbox allowed web.test only, with port 8000 exposed.
    let body = r#"{"profile":"net","isolation":"container","network":"egress","allow":["web.test"],"expose":[8000]}"#;
    let (st, v) = server.json("POST", "/v1/sandboxes", body);
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["network"], "egress", "{v}");
    assert_eq!(v["exposed"][0]["sandbox_port"], 8000, "{v}");
    let host: SocketAddr = v["exposed"][0]["host"].as_str().unwrap().parse().unwrap();
    assert!(host.ip().is_loopback(), "{v}");
    let id = v["id"].as_str().unwrap().to_string();

    // Decisions stream as they happen.
    let mut events = stream(&server, &format!("/v1/sandboxes/{id}/network/events"));
    let script = format!(
        "curl -sS --noproxy '*' -m 10 http://web.test:{}/; \
         curl -sS --noproxy '*' -m 5 http://other.test:{}/ && echo OTHER-REACHED; exit 0",
        site.port(),
        other.port()
    );
    let exec = serde_json::json!({ "argv": ["sh", "-c", script] }).to_string();
    let (st, v) = server.json("POST", &format!("/v1/sandboxes/{id}/exec"), &exec);
    assert_eq!(st, 200, "{v}");
    let stdout = v["stdout"].as_str().unwrap_or_default();
    assert!(stdout.contains("hello from web.test"), "{v}");
    assert!(!stdout.contains("OTHER-REACHED"), "{v}");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && !seen.iter().any(|e: &serde_json::Value| {
            e["type"] == "connection_opened" && e["name"] == "web.test"
        })
    {
        seen.push(next_event(&mut events));
    }
    assert!(
        seen.iter()
            .any(|e| e["type"] == "dns" && e["name"] == "web.test" && e["verdict"] == "allowed"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| e["type"] == "connection_opened" && e["name"] == "web.test"),
        "{seen:?}"
    );

    // The report: web.test allowed, other.test denied with the rule named.
    let (st, n) = server.json("GET", &format!("/v1/sandboxes/{id}/network"), "");
    assert_eq!(st, 200, "{n}");
    assert_eq!(n["mode"], "egress");
    let dns = n["dns"].as_array().unwrap();
    assert!(
        dns.iter()
            .any(|d| d["name"] == "other.test" && d["verdict"] == "denied"),
        "{n}"
    );
    assert!(
        n["connections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "web.test"
                && c["verdict"] == "allowed"
                && c["bytes_in"].as_u64().unwrap_or(0) > 0),
        "{n}"
    );

    // The exposed port answers from the host once a server listens in the sandbox.
    serves_on_exposed_port(&server, &id, host, "sandbox");

    // The CLI shows the same.
    let o = server.hsb(&["sandbox", "ls"]);
    let ls = out(&o);
    assert!(
        ls.contains("egress") && ls.contains(&format!("{host}->8000")),
        "{ls}"
    );
    let o = server.hsb(&["sandbox", "network", &id]);
    let text = out(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("network: egress")
            && text.contains("dns other.test A: denied")
            && text.contains("connect web.test"),
        "{text}"
    );
    assert!(
        text.contains(&format!("exposed: sandbox port 8000 at {host}")),
        "{text}"
    );

    // A sandbox without a broker: its mode, and no event stream.
    let (st, v) = server.json("POST", "/v1/sandboxes", r#"{"isolation":"container"}"#);
    assert_eq!(st, 201, "{v}");
    let plain = v["id"].as_str().unwrap().to_string();
    assert!(v.get("exposed").is_none(), "{v}");
    let (st, n) = server.json("GET", &format!("/v1/sandboxes/{plain}/network"), "");
    assert_eq!((st, n["mode"].as_str()), (200, Some("loopback")), "{n}");
    let (st, e) = server.json("GET", &format!("/v1/sandboxes/{plain}/network/events"), "");
    assert_eq!(st, 409, "{e}");
    assert!(e.to_string().contains("egress"), "{e}");

    // Destroying the sandbox ends the event stream.
    let (st, _) = server.json("DELETE", &format!("/v1/sandboxes/{id}"), "");
    assert_eq!(st, 204);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ended = false;
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        match events.read_line(&mut line) {
            Ok(0) => {
                ended = true;
                break;
            }
            Ok(_) if line.trim() == "0" => {
                ended = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(ended, "the events stream went on after destroy");
    let (st, _) = server.json("DELETE", &format!("/v1/sandboxes/{plain}"), "");
    assert_eq!(st, 204);
}

/// The same through the API with a live micro-VM: its egress decided by the broker
/// in-process, the decisions streamed and reported, its exposed port in `hsb sandbox
/// ls` answering from the host.
#[test]
fn microvm_egress_and_exposed_port_through_the_api() {
    if !isolations().contains(&"microvm") {
        return;
    }
    let site = web(Ipv4Addr::new(127, 0, 0, 43), "hello from vm.test\n");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "{}\n[profiles.net.network]\nmode = \"egress\"\nhosts = {{ \"vm.test\" = \"{}\" }}\n",
            hybrid_sandbox::EMBEDDED_DEFAULT,
            site.ip(),
        ),
    )
    .unwrap();
    let server = Server::start(&["--policy", policy.to_str().unwrap()]);
    let body = r#"{"profile":"net","isolation":"microvm","network":"egress","allow":["vm.test"],"expose":[8000]}"#;
    let (st, v) = server.json("POST", "/v1/sandboxes", body);
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["isolation"], "microvm", "{v}");
    assert_eq!(v["exposed"][0]["sandbox_port"], 8000, "{v}");
    let host: SocketAddr = v["exposed"][0]["host"].as_str().unwrap().parse().unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let mut events = stream(&server, &format!("/v1/sandboxes/{id}/network/events"));
    let script = format!(
        "curl -sS --noproxy '*' -m 10 http://vm.test:{}/; \
         curl -sS --noproxy '*' -m 5 http://other.test:{}/ && echo OTHER-REACHED; exit 0",
        site.port(),
        site.port()
    );
    let exec = serde_json::json!({ "argv": ["sh", "-c", script] }).to_string();
    let (st, v) = server.json("POST", &format!("/v1/sandboxes/{id}/exec"), &exec);
    assert_eq!(st, 200, "{v}");
    let stdout = v["stdout"].as_str().unwrap_or_default();
    assert!(stdout.contains("hello from vm.test"), "{v}");
    assert!(!stdout.contains("OTHER-REACHED"), "{v}");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && !seen.iter().any(|e: &serde_json::Value| {
            e["type"] == "connection_opened" && e["name"] == "vm.test" && e["via"] == "vm"
        })
    {
        seen.push(next_event(&mut events));
    }
    assert!(
        seen.iter()
            .any(|e| e["type"] == "connection_opened" && e["name"] == "vm.test"),
        "{seen:?}"
    );
    let (st, n) = server.json("GET", &format!("/v1/sandboxes/{id}/network"), "");
    assert_eq!(st, 200, "{n}");
    assert!(
        n["dns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "other.test" && d["verdict"] == "denied"),
        "{n}"
    );
    serves_on_exposed_port(&server, &id, host, "vm");
    let o = server.hsb(&["sandbox", "ls"]);
    let ls = out(&o);
    assert!(
        ls.contains("egress") && ls.contains(&format!("{host}->8000")),
        "{ls}"
    );
    let (st, _) = server.json("DELETE", &format!("/v1/sandboxes/{id}"), "");
    assert_eq!(st, 204);
}

/// Starts a web server on port 8000 inside the sandbox `id` (through an exec) and checks
/// that the host reaches it at the exposed address `host`, serving `served-by-the-TAG`.
fn serves_on_exposed_port(server: &Server, id: &str, host: SocketAddr, tag: &str) {
    let serve = format!(
        r#"{{"argv":["sh","-c","mkdir -p /tmp/www && echo served-by-the-{tag} > /tmp/www/index.html && cd /tmp/www && (python3 -m http.server 8000 --bind 0.0.0.0 >/dev/null 2>&1 &)"]}}"#
    );
    let (st, v) = server.json("POST", &format!("/v1/sandboxes/{id}/exec"), &serve);
    assert_eq!(st, 200, "{v}");
    let want = format!("served-by-the-{tag}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut page = String::new();
    while Instant::now() < deadline && !page.contains(&want) {
        if let Ok(mut s) = TcpStream::connect(host) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
            page.clear();
            let _ = s.read_to_string(&mut page);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(page.contains(&want), "{page}");
}
