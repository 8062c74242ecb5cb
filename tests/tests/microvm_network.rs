//! The micro-VM's own network: `AF_INET`/`AF_INET6` TCP and UDP sockets on the VM's
//! loopback (`network = "loopback"`), as real programs use them (Python's http.server
//! and urllib across processes, asyncio, UDP), in one-shot runs and live sandboxes; and
//! what they must never do: reach the host's loopback services (a host listener on
//! 127.0.0.1 gets nothing, UDP to a host port is not delivered), reach any other address,
//! or open raw, packet and netlink sockets. `network = "none"` is an empty namespace:
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
                       (socket.AF_NETLINK, socket.SOCK_RAW, 0)):
    try:
        socket.socket(fam, ty, proto)
        print(fam, "made")
    except OSError as e:
        print("refused", errno.errorcode.get(e.errno, e))
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
fn microvm_egress_is_refused_in_words() {
    if !vm_ready() {
        return;
    }
    let w = python(IsolationRequest::MicroVm, Network::Egress, "print(1)", &[]);
    let e = runtime()
        .block_on(sandbox().run(w))
        .expect_err("egress must be refused in the micro-VM");
    let msg = e.chain();
    assert!(msg.contains("egress") && msg.contains("container"), "{msg}");
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
