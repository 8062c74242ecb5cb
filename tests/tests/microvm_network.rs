//! The micro-VM's own network: `AF_INET`/`AF_INET6` TCP and UDP sockets on the VM's
//! loopback (`network = "loopback"`), as real programs use them (Python's http.server
//! and urllib across processes, asyncio, UDP), in one-shot runs and live sandboxes; and
//! what they must never do: reach the host's loopback services (a host listener on
//! 127.0.0.1 gets nothing, UDP to a host port is not delivered), reach any other address,
//! open raw and packet sockets or netlink beyond `NETLINK_ROUTE`, or see a host
//! interface through `NETLINK_ROUTE` (only the VM's `lo`). `network = "none"` is an empty namespace:
//! sockets exist, nothing is reachable. The container runs the same workloads (its own
//! loopback) as the reference where it applies.

use std::time::Duration;

use hsb_tests::*;
use hybrid_sandbox::{IsolationRequest, LiveOptions, Network, Outcome};

fn vm_ready() -> bool {
    backend_ready(IsolationRequest::MicroVm)
}

fn python(iso: IsolationRequest, net: Network, code: &str, args: &[&str]) -> Workload {
    let mut argv = vec!["-c".to_string(), code.to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let mut w = Workload::new("python3", argv).isolation(iso);
    w.network = Some(net);
    w.limits.wall_time = Some(Duration::from_secs(120));
    w.limits.pids = Some(32);
    w
}

fn ok(o: &Outcome) -> String {
    assert!(
        o.success(),
        "{:?} {:?}\nstdout: {}\nstderr: {}",
        o.isolation,
        o.termination,
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(o)
}

/// A web server in a child process, urllib in the parent; an asyncio echo server and
/// client; UDP between an IPv6 dual-stack socket and an IPv4 one; a dual-stack listener
/// accepting IPv4; a port nobody listens on.
const SERVICES: &str = r#"
import asyncio, errno, http.server, os, socket, socketserver, threading, urllib.request

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello " + self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

srv = socketserver.TCPServer(("127.0.0.1", 0), Hello)
port = srv.server_address[1]
pid = os.fork()
if pid == 0:
    srv.handle_request(); srv.handle_request()
    os._exit(0)
srv.server_close()
for path in ("/a", "/big"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        print("http", r.status, r.read().decode())
os.waitpid(pid, 0)

async def echo(reader, writer):
    data = await reader.read(100)
    writer.write(data.upper()); await writer.drain(); writer.close()

async def main():
    server = await asyncio.start_server(echo, "::1", 0)
    p = server.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("::1", p)
    w.write(b"asyncio over ipv6"); await w.drain()
    print("asyncio", (await r.read(100)).decode())
    w.close(); server.close(); await server.wait_closed()
asyncio.run(main())

u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.bind(("::", 0))
u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u4.bind(("127.0.0.1", 0))
u4.sendto(b"to six", ("127.0.0.1", u6.getsockname()[1]))
d, a = u6.recvfrom(100)
print("udp", d.decode(), a[0], a[1] == u4.getsockname()[1])

l = socket.socket(socket.AF_INET6); l.bind(("::", 0)); l.listen()
c = socket.create_connection(("127.0.0.1", l.getsockname()[1]))
s, a = l.accept()
print("dual-stack", a[0])
free = socket.socket(); free.bind(("127.0.0.1", 0)); fp = free.getsockname()[1]; free.close()
try:
    socket.create_connection(("127.0.0.1", fp))
except OSError as e:
    print("closed port", errno.errorcode[e.errno])
"#;

const SERVICES_OUT: &str = "http 200 hello /a\nhttp 200 hello /big\nasyncio ASYNCIO OVER IPV6\n\
udp to six ::ffff:127.0.0.1 True\ndual-stack ::ffff:127.0.0.1\nclosed port ECONNREFUSED\n";

#[test]
fn microvm_services_over_its_own_loopback() {
    if !vm_ready() {
        return;
    }
    let o = run(python(
        IsolationRequest::MicroVm,
        Network::Loopback,
        SERVICES,
        &[],
    ));
    assert_eq!(ok(&o), SERVICES_OUT);
    let e = &o.enforcement;
    assert_eq!(e.network, Network::Loopback);
    assert!(
        e.network_detail.contains("its own loopback")
            && e.network_detail.contains("no host socket"),
        "{}",
        e.network_detail
    );
}

#[test]
fn container_services_over_its_loopback_answer_the_same() {
    if !backend_ready(IsolationRequest::Container) {
        return;
    }
    let o = run(python(
        IsolationRequest::Container,
        Network::Loopback,
        SERVICES,
        &[],
    ));
    assert_eq!(ok(&o), SERVICES_OUT);
}

/// Connects to the host's TCP port, sends to its UDP port, then serves the TCP port
/// itself (its own port space) and connects to that; tries an address elsewhere.
const HOST_LOOPBACK: &str = r#"
import errno, socket, sys
tp, up = int(sys.argv[1]), int(sys.argv[2])
try:
    socket.create_connection(("127.0.0.1", tp), timeout=5)
    print("tcp reached something")
except OSError as e:
    print("tcp", errno.errorcode.get(e.errno, e))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print("udp sent", u.sendto(b"escape", ("127.0.0.1", up)))
l = socket.socket(); l.bind(("127.0.0.1", tp)); l.listen()
c = socket.create_connection(("127.0.0.1", tp)); s, _ = l.accept()
c.sendall(b"mine"); print("own port", s.recv(10).decode())
for host in sys.argv[3:]:
    try:
        socket.create_connection((host, tp), timeout=5)
        print(host, "reached")
    except OSError as e:
        print(host, errno.errorcode.get(e.errno, e))
for fam, ty, proto in ((socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
                       (socket.AF_PACKET, socket.SOCK_RAW, 0),
                       (socket.AF_NETLINK, socket.SOCK_RAW, 9)):
    try:
        socket.socket(fam, ty, proto)
        print(fam, "made")
    except OSError as e:
        print("refused", errno.errorcode.get(e.errno, e))
# NETLINK_ROUTE (if_nameindex's) shows the VM's interfaces, never the host's.
print("interfaces", socket.if_nameindex())
"#;

/// The host's addresses other than loopback (where a host service might listen).
fn host_addresses() -> Vec<String> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.split_whitespace().map(str::to_string).collect()
}

#[test]
fn microvm_never_reaches_the_hosts_loopback_or_any_host_address() {
    if !vm_ready() {
        return;
    }
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let tp = tcp.local_addr().unwrap().port().to_string();
    let up = udp.local_addr().unwrap().port().to_string();
    // Host services on every other address of the host too, at the same port.
    let others = host_addresses();
    let mut extra = Vec::new();
    for a in &others {
        if let Ok(l) = std::net::TcpListener::bind((a.as_str(), tcp.local_addr().unwrap().port())) {
            l.set_nonblocking(true).unwrap();
            extra.push(l);
        }
    }
    let mut args = vec![tp.as_str(), up.as_str(), "10.0.2.2", "8.8.8.8"];
    args.extend(others.iter().map(String::as_str));
    let o = run(python(
        IsolationRequest::MicroVm,
        Network::Loopback,
        HOST_LOOPBACK,
        &args,
    ));
    let out = ok(&o);
    assert!(out.contains("tcp ECONNREFUSED\n"), "{out}");
    assert!(out.contains("udp sent 6\n"), "{out}");
    assert!(out.contains("own port mine\n"), "{out}");
    assert!(!out.contains("reached"), "{out}");
    assert!(
        out.contains("10.0.2.2 ENETUNREACH\n") && out.contains("8.8.8.8 ENETUNREACH\n"),
        "{out}"
    );
    for a in &others {
        assert!(out.contains(&format!("{a} ENETUNREACH\n")), "{a}: {out}");
    }
    assert_eq!(out.matches("refused ").count(), 3, "{out}");
    assert!(!out.contains("made"), "{out}");
    assert!(out.contains("interfaces [(1, 'lo')]\n"), "{out}");
    // Nothing arrived on the host.
    assert!(tcp.accept().is_err(), "TCP reached the host's loopback");
    for l in &extra {
        assert!(l.accept().is_err(), "TCP reached a host address");
    }
    let mut buf = [0u8; 16];
    assert!(udp.recv_from(&mut buf).is_err(), "UDP reached the host");
}

#[test]
fn microvm_none_is_an_empty_namespace() {
    if !vm_ready() {
        return;
    }
    let code = r#"
import errno, socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print("listen ok")
for dst in (("127.0.0.1", s.getsockname()[1]), ("::1", 80), ("10.0.2.2", 80)):
    fam = socket.AF_INET6 if ":" in dst[0] else socket.AF_INET
    try:
        socket.socket(fam).connect(dst)
        print(dst[0], "connected")
    except OSError as e:
        print(dst[0], errno.errorcode.get(e.errno, e))
"#;
    let o = run(python(IsolationRequest::MicroVm, Network::None, code, &[]));
    assert_eq!(
        ok(&o),
        "listen ok\n127.0.0.1 ENETUNREACH\n::1 EADDRNOTAVAIL\n10.0.2.2 ENETUNREACH\n"
    );
    assert!(o.enforcement.network_detail.contains("no interface up"));
}

#[test]
fn live_microvm_serves_across_execs_on_its_loopback() {
    if !vm_ready() {
        return;
    }
    runtime().block_on(async {
        let mut w = Workload::default().isolation(IsolationRequest::MicroVm);
        w.network = Some(Network::Loopback);
        let live = sandbox()
            .create(w, LiveOptions::default())
            .await
            .unwrap_or_else(|e| panic!("create: {}", e.chain()));
        // A server started by one exec, in the background, keeps serving later execs.
        let server = "import socket\n\
             l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             l.bind(('127.0.0.1', 8765)); l.listen()\n\
             open('/tmp/ready', 'w').close()\n\
             while True:\n    c, _ = l.accept(); c.sendall(c.recv(100)[::-1]); c.close()\n";
        live.write_file("/tmp/server.py", server).await.unwrap();
        let o = live
            .exec(["busybox", "sh", "-c", "python3 /tmp/server.py >/dev/null 2>&1 &"])
            .await
            .unwrap();
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        let client = "import socket, os, time\n\
             while not os.path.exists('/tmp/ready'): time.sleep(0.05)\n\
             c = socket.create_connection(('127.0.0.1', 8765)); c.sendall(b'olleh'); print(c.recv(100).decode())\n";
        for _ in 0..2 {
            let o = live.exec(["python3", "-c", client]).await.unwrap();
            assert_eq!(stdout(&o), "hello\n", "{o:?}");
        }
        live.destroy().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------
// Network `egress` in the micro-VM: the container's egress broker, in-process, with
// the test internet of `tests/src/net.rs` (servers on 127.0.0.x of this machine).
// Addresses 127.0.0.71-89 are this file's (the container's tests use 21-31).

mod egress {
    use std::net::{IpAddr, Ipv4Addr};

    use hsb_tests::net::{self, TestCa, WebServer};
    use hsb_tests::*;
    use hybrid_sandbox::network::{ConnectionRecord, NetworkReport, NetworkVerdict};
    use hybrid_sandbox::{IsolationRequest, LiveOptions, Outcome};

    pub(super) fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    pub(super) fn sandbox(profile: &str) -> Sandbox {
        let text = net::policy_with(&format!(
            "{profile}\n[profiles.net.limits]\nwall_time = \"120s\"\npids = 64\n"
        ));
        Sandbox::from_policy(Policy::from_toml_str(&text, "egress test policy").expect("policy"))
    }

    pub(super) fn vm_sh(script: &str) -> Workload {
        Workload::new("/bin/sh", ["-c", script])
            .profile("net")
            .env("HOME", "/tmp")
            .isolation(IsolationRequest::MicroVm)
    }

    pub(super) fn network(o: &Outcome) -> &NetworkReport {
        o.network
            .as_ref()
            .expect("an egress run reports its network")
    }

    pub(super) fn conns<'a>(o: &'a Outcome, name: &str) -> Vec<&'a ConnectionRecord> {
        network(o)
            .connections
            .iter()
            .filter(|c| c.name.as_deref() == Some(name))
            .collect()
    }

    pub(super) fn show(o: &Outcome) -> String {
        format!(
            "{:?} {:?}\nstdout: {}\nstderr: {}\nnetwork: {}",
            o.isolation,
            o.termination,
            stdout(o),
            String::from_utf8_lossy(&o.stderr),
            serde_json::to_string_pretty(&o.network).unwrap_or_default()
        )
    }

    #[test]
    fn allowed_names_answer_denied_and_unknown_names_fail_with_the_rule() {
        if !super::vm_ready() {
            return;
        }
        let dir = writable_tempdir();
        std::fs::write(dir.path().join("index.html"), "hello from web.test\n").unwrap();
        let ca = TestCa::new(dir.path());
        let (cert, key) = ca.leaf(&["secure.test"]);
        let web = WebServer::start(ip(71), dir.path(), None, None);
        let tls = WebServer::start(ip(72), dir.path(), Some((&cert, &key)), None);
        let bad = WebServer::start(ip(73), dir.path(), None, None);
        let (wp, tp, bp) = (web.addr.port(), tls.addr.port(), bad.addr.port());
        let sb = sandbox(&format!(
            r#"[profiles.net.network]
mode = "egress"
allow = ["*.test"]
deny = ["bad.test"]
hosts = {{ "web.test" = "{}", "secure.test" = "{}", "bad.test" = "{}" }}
"#,
            web.addr.ip(),
            tls.addr.ip(),
            bad.addr.ip()
        ));
        let o = run_in(
            &sb,
            vm_sh(&format!(
                "curl -sS --noproxy '*' http://web.test:{wp}/index.html; \
                 curl -sS http://web.test:{wp}/index.html; \
                 curl -sS --noproxy '*' --cacert /ca/test-ca.pem https://secure.test:{tp}/index.html; \
                 curl -sS --cacert /ca/test-ca.pem https://secure.test:{tp}/index.html; \
                 curl -sS --noproxy '*' -m 5 http://bad.test:{bp}/ && echo BAD-REACHED; \
                 curl -fsS -m 5 http://bad.test:{bp}/ && echo BAD-REACHED-PROXY; \
                 python3 - <<'PY'
import asyncio, socket, urllib.request
print(urllib.request.urlopen('http://web.test:{wp}/index.html', timeout=30).read().decode(), end='')
# Non-blocking connect and epoll readiness, through asyncio.
async def main():
    r, w = await asyncio.open_connection('web.test', {wp})
    w.write(b'GET /index.html HTTP/1.0\\r\\nHost: web.test\\r\\n\\r\\n'); await w.drain()
    print((await r.read()).decode().split('\\r\\n\\r\\n', 1)[1], end='')
asyncio.run(main())
for name in ('nothere.example', 'bad.test'):
    try:
        socket.getaddrinfo(name, 80)
        print(name, 'RESOLVED')
    except socket.gaierror as e:
        print(name, 'unresolved')
PY
                 exit 0"
            ))
            .mount(Mount::ro(dir.path(), "/ca")),
        );
        let out = stdout(&o);
        assert_eq!(
            out.matches("hello from web.test").count(),
            6,
            "{}",
            show(&o)
        );
        assert!(
            !out.contains("REACHED") && !out.contains("RESOLVED"),
            "{}",
            show(&o)
        );
        assert!(
            out.contains("nothere.example unresolved") && out.contains("bad.test unresolved"),
            "{}",
            show(&o)
        );
        // Allowed: directly (decided by the name DNS gave the address for) and through
        // the proxy, each with the rule.
        let web_conns = conns(&o, "web.test");
        assert!(
            web_conns.iter().any(|c| c.via == "vm" && c.bytes_in > 0),
            "{}",
            show(&o)
        );
        assert!(web_conns.iter().any(|c| c.via == "proxy"), "{}", show(&o));
        assert!(
            web_conns
                .iter()
                .all(|c| c.verdict == NetworkVerdict::Allowed
                    && c.rule.contains("`*.test` (profiles.net.network.allow[0])")),
            "{}",
            show(&o)
        );
        assert!(conns(&o, "secure.test")
            .iter()
            .any(|c| c.via == "vm" && c.verdict == NetworkVerdict::Allowed && c.bytes_in > 0));
        // Denied by its rule, in DNS and at the proxy; an unknown name by no rule.
        let n = network(&o);
        let dns = |name: &str| {
            n.dns
                .iter()
                .find(|d| d.name == name)
                .unwrap_or_else(|| panic!("{name} asked: {}", show(&o)))
        };
        assert_eq!(dns("bad.test").verdict, NetworkVerdict::Denied);
        assert!(
            dns("bad.test")
                .rule
                .contains("`bad.test` (profiles.net.network.deny[0])"),
            "{}",
            show(&o)
        );
        assert_eq!(dns("nothere.example").verdict, NetworkVerdict::Denied);
        assert_eq!(dns("nothere.example").rule, "no allow rule matches");
        assert!(conns(&o, "bad.test")
            .iter()
            .any(|c| c.verdict == NetworkVerdict::Denied && c.rule.contains("deny[0]")));
        assert!(bad.log().is_empty(), "{}", bad.log());
        assert!(web.log().contains("GET /index.html"));
        assert_eq!(n.sandbox_address, Some(Ipv4Addr::new(100, 96, 0, 2)));
    }

    const SECRET: &str = "vm-s3cr3t-value-41c2";

    #[test]
    fn a_secret_reaches_only_its_host_through_the_brokers_ca() {
        if !super::vm_ready() {
            return;
        }
        let hosts = net::SecretHosts::start("HSB_VM_EGRESS_SECRET", SECRET, ip(74), ip(75));
        let (api, other) = (&hosts.api, &hosts.other);
        let (ap, op) = (api.addr.port(), other.addr.port());
        let sb = sandbox(&hosts.profile);
        let o = run_in(
            &sb,
            vm_sh(&format!(
                "echo \"sandbox sees: $TOKEN\"; \
                 curl -sS --noproxy '*' -H \"Authorization: Bearer $TOKEN\" https://api.test:{ap}/echo; echo; \
                 python3 - <<'PY'
import os, urllib.request
# HTTPS through the proxy (HTTPS_PROXY), trusting the broker's CA (SSL_CERT_FILE).
req = urllib.request.Request('https://api.test:{ap}/echo?via=urllib',
                             headers={{'Authorization': 'Bearer ' + os.environ['TOKEN']}})
print('urllib', urllib.request.urlopen(req, timeout=30).read().decode())
PY
                 curl -sS --noproxy '*' -H \"X-Token: $TOKEN\" http://other.test:{op}/echo; echo; \
                 env | grep -c {SECRET} || true"
            )),
        );
        let placeholder =
            net::placeholder_seen(&o).unwrap_or_else(|| panic!("the variable: {}", show(&o)));
        assert!(placeholder.starts_with("hsb-placeholder-"), "{}", show(&o));
        assert!(stdout(&o).contains("urllib "), "{}", show(&o));
        let log = api.log();
        assert_eq!(
            log.matches(&format!("Bearer {SECRET}")).count(),
            2,
            "{log}\n{}",
            show(&o)
        );
        assert!(!log.contains(&placeholder), "{log}");
        let olog = other.log();
        assert!(
            olog.contains(&placeholder) && !olog.contains(SECRET),
            "{olog}"
        );
        let json = serde_json::to_string(&o).unwrap();
        assert!(!json.contains(SECRET), "{json}");
        let api_conns = conns(&o, "api.test");
        assert!(
            api_conns.iter().any(|c| c.via == "vm" && c.intercepted),
            "{}",
            show(&o)
        );
        assert!(
            api_conns.iter().any(|c| c.via == "proxy" && c.intercepted),
            "{}",
            show(&o)
        );
        assert!(conns(&o, "other.test")
            .iter()
            .all(|c| !c.intercepted && c.secrets.is_empty()));
    }

    /// The host's addresses other than loopback.
    fn host_addresses() -> Vec<String> {
        super::host_addresses()
    }

    #[test]
    fn escapes_fail_and_host_listeners_get_nothing() {
        if !super::vm_ready() {
            return;
        }
        let dir = writable_tempdir();
        std::fs::write(dir.path().join("index.html"), "allowed\n").unwrap();
        // An allowed name's server: reached by its name only.
        let web = WebServer::start(ip(76), dir.path(), None, None);
        let wp = web.addr.port();
        // Host services: the host's loopback, every other host address, UDP.
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let port = tcp.local_addr().unwrap().port();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        let up = udp.local_addr().unwrap().port();
        let others = host_addresses();
        let mut extra = Vec::new();
        for a in &others {
            if let Ok(l) = std::net::TcpListener::bind((a.as_str(), port)) {
                l.set_nonblocking(true).unwrap();
                extra.push(l);
            }
        }
        let sb = sandbox(&format!(
            "[profiles.net.network]\nmode = \"egress\"\nallow = [\"web.test\"]\nhosts = {{ \"web.test\" = \"{}\" }}\n",
            web.addr.ip()
        ));
        let targets: Vec<String> = [
            format!("127.0.0.1:{port}"),
            format!("127.0.0.76:{wp}"),
            "169.254.169.254:80".to_string(),
            format!("100.96.0.1:{port}"),
            "198.18.3.3:80".to_string(),
            "8.8.8.8:53".to_string(),
        ]
        .into_iter()
        .chain(others.iter().map(|a| format!("{a}:{port}")))
        .collect();
        let script = format!(
            r#"
import errno, socket, sys
def attempt(name, f):
    try:
        f(); print(name, "SUCCEEDED")
    except OSError as e:
        print(name, "failed", errno.errorcode.get(e.errno, e.errno))
def tcp(host, port):
    s = socket.create_connection((host, int(port)), timeout=10); s.close()
for t in {targets:?}:
    h, p = t.rsplit(":", 1)
    attempt(t, lambda: tcp(h, p))
attempt("raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("ping", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP))
attempt("ipv6", lambda: tcp("2001:db8::7", 80))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for dst in (("127.0.0.1", {up}), ("100.96.0.1", 9999), ("198.18.0.9", 53), ("8.8.8.8", 53)) + tuple((a, {up}) for a in {others:?} if ":" not in a):
    u.sendto(b"exfil", dst)
print("udp sent")
# The allowed name still works (so the refusals above are the rules' doing).
import urllib.request
print(urllib.request.urlopen("http://web.test:{wp}/index.html", timeout=30).read().decode(), end="")
"#
        );
        let mut w = vm_sh("exec python3 -");
        w.stdin = Stdin::Bytes(script.into_bytes());
        let o = run_in(&sb, w);
        let out = stdout(&o);
        assert!(o.success(), "{}", show(&o));
        for t in &targets {
            assert!(
                out.lines().any(|l| l.starts_with(&format!("{t} failed"))),
                "{t}: {}",
                show(&o)
            );
        }
        assert!(
            out.contains(&format!("127.0.0.1:{port} failed ECONNREFUSED")),
            "{}",
            show(&o)
        );
        for probe in [
            "raw failed EPERM",
            "ping failed EACCES",
            "ipv6 failed ENETUNREACH",
        ] {
            assert!(out.contains(probe), "{probe}: {}", show(&o));
        }
        assert!(!out.contains("SUCCEEDED"), "{}", show(&o));
        assert!(out.contains("udp sent\nallowed\n"), "{}", show(&o));
        // Nothing reached the host.
        assert!(tcp.accept().is_err(), "TCP reached the host's loopback");
        for l in &extra {
            assert!(l.accept().is_err(), "TCP reached a host address");
        }
        let mut buf = [0u8; 16];
        assert!(udp.recv_from(&mut buf).is_err(), "UDP reached the host");
        assert_eq!(web.log().matches("GET").count(), 1, "{}", web.log());
        // Each refusal has its rule in the report; the dropped datagrams are counted.
        let n = network(&o);
        let denied = |a: Ipv4Addr| {
            n.connections
                .iter()
                .any(|c| c.ip == a && c.verdict == NetworkVerdict::Denied)
        };
        // (127.0.0.76, the allowed server's own address, is the VM's loopback there:
        // refused by the VM itself, as by a Linux namespace's `lo`, never the broker's.)
        for a in [
            Ipv4Addr::new(169, 254, 169, 254),
            Ipv4Addr::new(198, 18, 3, 3),
            Ipv4Addr::new(8, 8, 8, 8),
        ] {
            assert!(denied(a), "{a}: {}", show(&o));
        }
        assert!(
            n.connections
                .iter()
                .filter(|c| c.verdict == NetworkVerdict::Denied)
                .all(|c| !c.rule.is_empty()),
            "{}",
            show(&o)
        );
        assert!(
            n.dropped_packets.get("udp").copied().unwrap_or(0) >= 3,
            "{}",
            show(&o)
        );
    }

    #[test]
    fn pip_installs_a_wheel_and_git_clones_through_the_allowlist() {
        if !super::vm_ready() {
            return;
        }
        let dir = writable_tempdir();
        let wheel = net::package_index(dir.path(), "hsbvmdemo", "2.0.1");
        net::git_repo(dir.path(), "demo", "the demo repository\n");
        let server = WebServer::start(ip(77), dir.path(), None, None);
        let port = server.addr.port();
        let sb = sandbox(&format!(
            "[profiles.net.network]\nmode = \"egress\"\nallow = [\"pypi.test\", \"git.test\"]\n\
             deny = [\"nogit.test\"]\n\
             hosts = {{ \"pypi.test\" = \"{a}\", \"git.test\" = \"{a}\", \"nogit.test\" = \"{a}\" }}\n",
            a = server.addr.ip()
        ));
        let o = run_in(
            &sb,
            vm_sh(&format!(
                "python3 -m pip install --no-cache-dir --disable-pip-version-check --break-system-packages \
                   --trusted-host pypi.test --index-url http://pypi.test:{port}/simple/ \
                   --target /tmp/site hsbvmdemo 2>&1 && \
                 PYTHONPATH=/tmp/site python3 -c 'import hsbvmdemo; print(hsbvmdemo.VALUE)' && \
                 git clone -q http://git.test:{port}/demo.git /tmp/demo && cat /tmp/demo/README; \
                 git clone -q http://nogit.test:{port}/demo.git /tmp/no 2>&1 || echo CLONE-REFUSED"
            )),
        );
        let out = stdout(&o);
        assert!(o.success(), "{}", show(&o));
        assert!(out.contains("hsbvmdemo 2.0.1"), "{}", show(&o));
        assert!(out.contains("the demo repository"), "{}", show(&o));
        assert!(out.contains("CLONE-REFUSED"), "{}", show(&o));
        let log = server.log();
        assert!(log.contains(&format!("GET /files/{wheel}")), "{log}");
        assert!(
            conns(&o, "nogit.test")
                .iter()
                .any(|c| c.verdict == NetworkVerdict::Denied
                    && c.rule
                        .contains("`nogit.test` (profiles.net.network.deny[0])")),
            "{}",
            show(&o)
        );
    }

    /// A workload opening connections without end meets a cap (each relayed connection
    /// holds host descriptors of the caller's process): `EAGAIN` past it, counted.
    #[test]
    fn relayed_connections_are_capped() {
        if !super::vm_ready() {
            return;
        }
        // A server that never accepts: connections wait in its backlog.
        let l = std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, 78), 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let sb = sandbox(
            "[profiles.net.network]\nmode = \"egress\"\nallow = [\"many.test\"]\n\
             hosts = { \"many.test\" = \"127.0.0.78\" }\n",
        );
        let code = format!(
            r#"
import errno, resource, socket
resource.setrlimit(resource.RLIMIT_NOFILE, (1500, 1500))
addr = socket.getaddrinfo("many.test", {port}, socket.AF_INET)[0][4]
socks = []
for i in range(1100):
    s = socket.socket(); s.setblocking(False)
    try:
        s.connect(addr)
    except BlockingIOError as e:
        if e.errno != errno.EINPROGRESS:
            print("refused at", i, errno.errorcode[e.errno]); break
    socks.append(s)
print("opened", len(socks))
"#
        );
        let mut w = vm_sh("exec python3 -");
        w.stdin = Stdin::Bytes(code.into_bytes());
        w.limits.open_files = Some(1500);
        let o = run_in(&sb, w);
        drop(l);
        let out = stdout(&o);
        assert!(o.success(), "{}", show(&o));
        assert!(out.contains("refused at 1024 EAGAIN"), "{}", show(&o));
        assert!(
            network(&o)
                .dropped_packets
                .get("tcp_over_limit")
                .copied()
                .unwrap_or(0)
                >= 1,
            "{}",
            show(&o)
        );
    }

    /// Relayed bytes are the sandbox's memory: many connections whose server streams
    /// while the workload does not read fill its limit, and then every byte still
    /// arrives as it reads (nothing lost, no stall, no memory-limit end).
    #[test]
    fn relayed_bytes_are_charged_and_flow_at_the_memory_limit() {
        if !super::vm_ready() {
            return;
        }
        const CONNS: usize = 24;
        const EACH: usize = 4 << 20;
        let l = std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, 79), 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().take(CONNS) {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    use std::io::Write;
                    let chunk = vec![b'x'; 64 << 10];
                    for _ in 0..EACH / chunk.len() {
                        if s.write_all(&chunk).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let sb = sandbox(
            "[profiles.net.network]\nmode = \"egress\"\nallow = [\"stream.test\"]\n\
             hosts = { \"stream.test\" = \"127.0.0.79\" }\n",
        );
        let code = format!(
            r#"
import socket, time
addr = socket.getaddrinfo("stream.test", {port}, socket.AF_INET)[0][4]
socks = [socket.create_connection(addr, timeout=60) for _ in range({CONNS})]
time.sleep(2)  # the servers stream; nobody reads
total = 0
for s in socks:
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        total += len(b)
    s.close()
print("received", total)
"#
        );
        let mut w = vm_sh("exec python3 -");
        w.stdin = Stdin::Bytes(code.into_bytes());
        w.limits.memory = Some(hybrid_sandbox::ByteSize(64 << 20));
        let o = run_in(&sb, w);
        assert!(o.success(), "{}", show(&o));
        assert_eq!(
            stdout(&o).trim(),
            format!("received {}", CONNS * EACH),
            "{}",
            show(&o)
        );
        assert!(o.peak_memory_bytes <= 64 << 20, "{}", o.peak_memory_bytes);
    }

    const SERVER: &str =
        "mkdir -p /tmp/www && echo served-from-the-micro-vm > /tmp/www/index.html && \
                          cd /tmp/www && exec python3 -m http.server 8000 --bind 0.0.0.0";

    /// Asks the host's end of an exposed port until the guest's server answers.
    async fn fetch(host: std::net::SocketAddr) -> String {
        for _ in 0..200 {
            let got = tokio::task::spawn_blocking(move || {
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect(host).ok()?;
                s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                    .ok()?;
                s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                Some(out)
            })
            .await
            .unwrap();
            if let Some(b) = got.filter(|b| b.contains("served-from")) {
                return b;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        String::new()
    }

    #[test]
    fn an_exposed_port_answers_from_the_host() {
        if !super::vm_ready() {
            return;
        }
        let rt = runtime();
        let sb = sandbox("[profiles.net.network]\nmode = \"egress\"\nexpose = [8000]\n");
        rt.block_on(async {
            let mut exec = sb.spawn(vm_sh(SERVER)).await.expect("spawn");
            let ports = exec.exposed_ports();
            assert_eq!(ports.len(), 1);
            assert_eq!(ports[0].sandbox_port, 8000);
            let host = ports[0].host;
            assert!(host.ip().is_loopback());
            let body = fetch(host).await;
            assert!(body.contains("served-from-the-micro-vm"), "{body}");
            exec.kill_handle().kill();
            let o = exec.wait().await.expect("outcome");
            assert_eq!(o.isolation, hybrid_sandbox::Isolation::MicroVm);
            let n = network(&o);
            assert_eq!(n.exposed.len(), 1);
            assert!(
                n.connections
                    .iter()
                    .any(|c| c.via == "exposed" && c.port == 8000 && c.bytes_out > 0),
                "{}",
                show(&o)
            );
        });
    }

    #[test]
    fn a_live_microvm_serves_an_exposed_port_and_reports_its_network() {
        if !super::vm_ready() {
            return;
        }
        let rt = runtime();
        let sb = sandbox("[profiles.net.network]\nmode = \"egress\"\nexpose = [8000]\n");
        rt.block_on(async {
            let w = Workload::default()
                .profile("net")
                .isolation(IsolationRequest::MicroVm);
            let live = sb
                .create(w, LiveOptions::default())
                .await
                .unwrap_or_else(|e| panic!("create: {}", e.chain()));
            let mut events = live.network_events().expect("events");
            let o = live
                .exec(["/bin/sh", "-c", &format!("({SERVER}) >/dev/null 2>&1 &")])
                .await
                .unwrap();
            assert_eq!(o.exit_code, Some(0), "{o:?}");
            let n = live.network().expect("a network report");
            assert_eq!(n.exposed.len(), 1);
            let host = n.exposed[0].host;
            for _ in 0..2 {
                let body = fetch(host).await;
                assert!(body.contains("served-from-the-micro-vm"), "{body}");
            }
            let seen = tokio::time::timeout(std::time::Duration::from_secs(10), events.recv())
                .await
                .expect("an event")
                .expect("an event");
            assert!(format!("{seen:?}").contains("exposed"), "{seen:?}");
            live.destroy().await.unwrap();
            let n = live.network().expect("the final report");
            assert!(
                n.connections
                    .iter()
                    .filter(|c| c.via == "exposed" && c.port == 8000)
                    .count()
                    >= 2,
                "{n:?}"
            );
        });
    }
}

/// What `ip` (iproute2, over `NETLINK_ROUTE`) shows of the sandbox's interfaces,
/// addresses and routes.
fn ip_view(iso: IsolationRequest, net: Network) -> String {
    let mut w = Workload::new(
        "/bin/sh",
        [
            "-c",
            "/usr/sbin/ip addr && /usr/sbin/ip route show table all && /usr/sbin/ip link",
        ],
    )
    .isolation(iso);
    w.network = Some(net);
    w.limits.wall_time = Some(Duration::from_secs(60));
    ok(&run(w))
}

/// `ip addr`, `ip route` and `ip link` in the micro-VM show what they show in the
/// container (whose namespace is the reference): `lo` up with 127.0.0.1/8 and ::1, or
/// down and bare with `none`; with `egress`, `egress0` at 100.96.0.2/30 and the default
/// route through the broker (the micro-VM gives it no IPv6 link-local address); never
/// an interface of the host.
#[test]
fn ip_shows_the_sandboxs_own_interfaces_as_the_container_does() {
    if !vm_ready() || !std::path::Path::new("/usr/sbin/ip").exists() {
        return;
    }
    for net in [Network::Loopback, Network::None] {
        let vm = ip_view(IsolationRequest::MicroVm, net);
        assert!(vm.contains("1: lo: <LOOPBACK"), "{vm}");
        if backend_ready(IsolationRequest::Container) {
            assert_eq!(vm, ip_view(IsolationRequest::Container, net), "{net:?}");
        }
    }
    let vm = ip_view(IsolationRequest::MicroVm, Network::Egress);
    for want in [
        "2: egress0: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 65535",
        "inet 100.96.0.2/30 scope global egress0",
        "default via 100.96.0.1 dev egress0",
        "100.96.0.0/30 dev egress0 proto kernel scope link src 100.96.0.2",
    ] {
        assert!(vm.contains(want), "{want}: {vm}");
    }
    assert_eq!(vm.matches(": <").count(), 4, "lo and egress0, twice: {vm}");
    if backend_ready(IsolationRequest::Container) {
        // The same, but for the container's IPv6 link-local address and its routes.
        let ct = ip_view(IsolationRequest::Container, Network::Egress);
        let v4 = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| {
                    !l.contains("fe80") && !l.contains("ff00::") && !l.contains("valid_lft")
                })
                .map(str::to_string)
                .collect()
        };
        assert_eq!(v4(&vm), v4(&ct));
    }
}
