//! `AF_UNIX` sockets as real programs use them, in both backends, against the host's
//! own answers: Python's `multiprocessing.Manager()`, a `Listener`/`Client` pair on a
//! path in /tmp and on an abstract name, a `ProcessPoolExecutor` started by the
//! `forkserver` (which passes descriptors over a socket), and `socket.send_fds`. Then
//! what the micro-VM must never do with them: create a socket on the host (a bind in a
//! read-write host mount is refused), reach a host process's abstract socket, or let
//! descriptors in flight grow without bound.

use std::os::linux::net::SocketAddrExt;
use std::time::Duration;

use hsb_tests::*;
use hybrid_sandbox::{IsolationRequest, Outcome};

/// The workload: each line is a result the host computes the same way.
const MULTIPROCESSING: &str = r#"
import multiprocessing as mp, os, socket
from multiprocessing.connection import Listener, Client
from concurrent.futures import ProcessPoolExecutor

def square(x):
    return x * x

def client(address, key):
    with Client(address, authkey=key) as c:
        c.send(c.recv() + 1)

def main():
    with mp.Manager() as m:
        d = m.dict()
        l = m.list(range(3))
        d["a"] = 1
        l.append(9)
        print("manager", dict(d), list(l))
    for address in (f"/tmp/hsb-listener-{os.getpid()}.sock", f"\0hsb-listener-{os.getpid()}"):
        with Listener(address, "AF_UNIX", authkey=b"k") as lis:
            p = mp.Process(target=client, args=(lis.address, b"k"))
            p.start()
            with lis.accept() as conn:
                conn.send(41)
                print("listener", conn.recv())
            p.join()
            print("client exit", p.exitcode)
    with ProcessPoolExecutor(2, mp_context=mp.get_context("forkserver")) as ex:
        print("forkserver", sum(ex.map(square, range(10))))
    a, b = socket.socketpair()
    r, w = os.pipe()
    socket.send_fds(a, [b"fd"], [w])
    msg, fds, flags, _ = socket.recv_fds(b, 10, 4)
    os.write(fds[0], b"through the passed descriptor")
    os.close(fds[0])
    os.close(w)
    print("send_fds", msg, len(fds), flags, os.read(r, 100).decode())

if __name__ == "__main__":
    main()
"#;

fn on(iso: IsolationRequest, mut w: Workload) -> Workload {
    w.limits.wall_time = Some(Duration::from_secs(120));
    w.limits.pids = Some(64);
    w.isolation(iso)
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

/// What the host's own python3 prints for `code` (run from a file, as multiprocessing's
/// forkserver needs a main module it can import).
fn native(code: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("main.py");
    std::fs::write(&script, code).expect("script");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .output()
        .expect("python3 on the host");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn multiprocessing_over_unix_sockets(iso: IsolationRequest) {
    let dir = tempfile::tempdir().expect("tempdir");
    set_mode(dir.path(), 0o755);
    let script = dir.path().join("main.py");
    std::fs::write(&script, MULTIPROCESSING).expect("script");
    set_mode(&script, 0o644);
    let o = run(on(
        iso,
        Workload::new("python3", ["/work/main.py"]).mount(Mount::ro(dir.path(), "/work")),
    ));
    let want = native(MULTIPROCESSING);
    assert!(want.contains("forkserver 285"), "host: {want}");
    assert_eq!(ok(&o), want);
}

/// A C-free probe in Python of what must be refused: a socket bound in a read-write
/// host mount (the micro-VM makes no host socket: `EPERM`, and nothing appears on the
/// host), and a host process's abstract socket (the sandbox's abstract namespace is
/// its own: `ECONNREFUSED`).
const REFUSALS: &str = r#"
import errno, os, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.bind("/out/sock")
    print("bind in host mount: bound")
except OSError as e:
    print("bind in host mount:", errno.errorcode[e.errno])
c = socket.socket(socket.AF_UNIX)
try:
    c.connect(sys.argv[1].encode().replace(b"@", b"\0"))
    print("host abstract socket: connected")
except OSError as e:
    print("host abstract socket:", errno.errorcode[e.errno])
"#;

#[test]
fn microvm_never_reaches_or_makes_a_host_socket() {
    let iso = IsolationRequest::MicroVm;
    if !backend_ready(iso) {
        return;
    }
    let out = writable_tempdir();
    // A host process listening on an abstract name the workload tries to reach.
    let name = format!("hsb-host-only-{}", std::process::id());
    let host = std::os::unix::net::UnixListener::bind_addr(
        &std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract name"),
    )
    .expect("host abstract listener");
    host.set_nonblocking(true).expect("nonblocking");
    let o = run(on(
        iso,
        Workload::new("python3", ["-c", REFUSALS, &format!("@{name}")])
            .mount(Mount::rw(out.path(), "/out")),
    ));
    assert_eq!(
        ok(&o),
        "bind in host mount: EPERM\nhost abstract socket: ECONNREFUSED\n"
    );
    assert!(!out.path().join("sock").exists(), "a host socket was made");
    assert!(host.accept().is_err(), "the host listener was reached");
}

/// Descriptors sent and never received are bounded (`ETOOMANYREFS` past the open-files
/// limit, as Linux's per-user count), and a socket sent over its own connection, then
/// closed, is collected: a loop doing so runs to its end within the limits.
const IN_FLIGHT: &str = r#"
import errno, os, socket
a, b = socket.socketpair()
r, w = os.pipe()
sent = 0
try:
    for _ in range(100000):
        socket.send_fds(a, [b"x"], [w] * 200)
        sent += 200
    print("unbounded", sent)
except OSError as e:
    print("bounded", errno.errorcode[e.errno], sent <= 2 * 4096)
a.close(); b.close()
for i in range(3000):
    x, y = socket.socketpair()
    socket.send_fds(x, [b"c"], [x.fileno(), y.fileno()])
    x.close(); y.close()
print("cycles collected")
"#;

#[test]
fn microvm_descriptors_in_flight_are_bounded_and_collected() {
    let iso = IsolationRequest::MicroVm;
    if !backend_ready(iso) {
        return;
    }
    let mut w = on(iso, Workload::new("python3", ["-c", IN_FLIGHT]));
    w.limits.open_files = Some(1024);
    let o = run(w);
    assert_eq!(ok(&o), "bounded ETOOMANYREFS True\ncycles collected\n");
}

/// A chain of sockets in flight, each in the inbox of the one before, dropped at once
/// when its head is closed: the VMM drops it in a loop, not a stack frame per link (a
/// stack overflow would end the host process that runs the VMM).
const CHAIN: &str = r#"
import socket
hx, hy = socket.socketpair()
prev = hx
for i in range(20000):
    x, y = socket.socketpair()
    socket.send_fds(prev, [b"c"], [x.fileno(), y.fileno()])
    if prev is not hx:
        prev.close()
    y.close()
    prev = x
prev.close()
hx.close()
hy.close()
print("dropped")
"#;

#[test]
fn microvm_a_long_chain_of_sockets_in_flight_is_dropped_without_recursion() {
    let iso = IsolationRequest::MicroVm;
    if !backend_ready(iso) {
        return;
    }
    let mut w = on(iso, Workload::new("python3", ["-c", CHAIN]));
    w.limits.open_files = Some(65536);
    w.limits.wall_time = Some(Duration::from_secs(240));
    let o = run(w);
    assert_eq!(ok(&o), "dropped\n");
}

mod container {
    #[test]
    fn multiprocessing_over_unix_sockets() {
        super::multiprocessing_over_unix_sockets(hybrid_sandbox::IsolationRequest::Container)
    }
}

mod microvm {
    #[test]
    fn multiprocessing_over_unix_sockets() {
        let iso = hybrid_sandbox::IsolationRequest::MicroVm;
        if !hsb_tests::backend_ready(iso) {
            return;
        }
        super::multiprocessing_over_unix_sockets(iso)
    }
}
