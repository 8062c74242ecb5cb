//! What the hardening against leaks keeps working: the sandbox's own UNIX sockets and
//! FIFOs (in /tmp), connects on its own loopback, and ordinary tools' modes in
//! read-write mounts. The attacks themselves are in the escape catalogue.

use hsb_tests::*;
use hybrid_sandbox::{IsolationRequest, Network};

fn python(script: &str) -> Workload {
    Workload::new("python3", ["-c", script]).isolation(IsolationRequest::Container)
}

/// Every line the script prints is `ok ...`; the run succeeds.
fn all_ok(o: &Outcome) {
    let out = stdout(o);
    assert!(o.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !out.is_empty() && out.lines().all(|l| l.starts_with("ok ")),
        "{out}"
    );
}

/// Pathname, relative, symlinked, seqpacket, abstract and socket-pair UNIX sockets of
/// the sandbox's own; and connect errors as Linux gives them.
const OWN_SOCKETS: &str = r#"
import errno, os, socket, threading

def serve(kind, addr):
    s = socket.socket(socket.AF_UNIX, kind)
    s.bind(addr)
    s.listen(8)
    def run():
        c, _ = s.accept()
        c.sendall(b"hi")
        c.close()
    t = threading.Thread(target=run)
    t.start()
    return s, t

def client(kind, addr):
    c = socket.socket(socket.AF_UNIX, kind)
    c.connect(addr)
    return c.recv(2)

for kind, name in [(socket.SOCK_STREAM, "stream"), (socket.SOCK_SEQPACKET, "seqpacket")]:
    path = f"/tmp/{name}.sock"
    s, t = serve(kind, path)
    assert client(kind, path) == b"hi"
    t.join()
    print("ok", name, "pathname")
os.makedirs("/tmp/d", exist_ok=True)
s, t = serve(socket.SOCK_STREAM, "/tmp/d/rel.sock")
os.chdir("/tmp/d")
assert client(socket.SOCK_STREAM, "rel.sock") == b"hi"
t.join()
print("ok relative path")
os.symlink("/tmp/d/rel2.sock", "/tmp/link.sock")
s, t = serve(socket.SOCK_STREAM, "/tmp/d/rel2.sock")
assert client(socket.SOCK_STREAM, "/tmp/link.sock") == b"hi"
t.join()
print("ok through a symlink")
s, t = serve(socket.SOCK_STREAM, "\0hsb-abstract")
assert client(socket.SOCK_STREAM, "\0hsb-abstract") == b"hi"
t.join()
print("ok abstract")
a, b = socket.socketpair()
a.sendall(b"x")
assert b.recv(1) == b"x"
print("ok socketpair")

def err(addr):
    c = socket.socket(socket.AF_UNIX)
    try:
        c.connect(addr)
    except OSError as e:
        return e.errno
    return 0

assert err("/tmp/nothing-here") == errno.ENOENT
open("/tmp/file", "w").close()
assert err("/tmp/file") == errno.ECONNREFUSED
stale = socket.socket(socket.AF_UNIX)
stale.bind("/tmp/stale.sock")
stale.close()
assert err("/tmp/stale.sock") == errno.ECONNREFUSED
print("ok errors as Linux gives them")

# A connect that waits (the listener's backlog is full, nobody accepts) holds up no other.
full = socket.socket(socket.AF_UNIX)
full.bind("/tmp/full.sock")
full.listen(0)
fillers = []
waiting = threading.Event()
def fill():
    while True:
        c = socket.socket(socket.AF_UNIX)
        c.setblocking(False)
        try:
            c.connect("/tmp/full.sock")
            fillers.append(c)
        except BlockingIOError:
            break
    blocked = socket.socket(socket.AF_UNIX)
    waiting.set()
    blocked.connect("/tmp/full.sock")
    fillers.append(blocked)
t = threading.Thread(target=fill)
t.start()
waiting.wait()
s, t2 = serve(socket.SOCK_STREAM, "/tmp/other.sock")
assert client(socket.SOCK_STREAM, "/tmp/other.sock") == b"hi"
t2.join()
print("ok a waiting connect holds up no other")
while t.is_alive():
    full.accept()
    t.join(0.05)
print("ok the waiting connect completes once accepted")
"#;

#[test]
fn the_sandboxs_own_unix_sockets_keep_working() {
    all_ok(&run(python(OWN_SOCKETS)));
}

#[test]
fn tcp_on_the_sandboxs_own_loopback_keeps_working() {
    let script = r#"
import asyncio, errno, socket, threading
srv = socket.create_server(("127.0.0.1", 0))
port = srv.getsockname()[1]
def run():
    c, _ = srv.accept()
    c.sendall(b"tcp")
    c.close()
t = threading.Thread(target=run)
t.start()
assert socket.create_connection(("127.0.0.1", port), timeout=5).recv(3) == b"tcp"
t.join()
print("ok blocking TCP connect")
async def main():
    async def handle(r, w):
        w.write(b"async")
        await w.drain()
        w.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    p = server.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", p)
    assert await r.read(5) == b"async"
    w.close()
    server.close()
asyncio.run(main())
print("ok non-blocking TCP connect (asyncio)")
c = socket.socket()
try:
    c.connect(("127.0.0.1", 1))
except OSError as e:
    assert e.errno == errno.ECONNREFUSED, e
print("ok refused where nothing listens")
"#;
    let mut w = python(script);
    w.network = Some(Network::Loopback);
    all_ok(&run(w));
    // Without a network, a TCP connect is refused at once (Landlock's answer).
    let mut w = python(
        "import socket\ntry:\n  socket.create_connection(('127.0.0.1', 1))\nexcept PermissionError:\n  print('ok refused')",
    );
    w.network = Some(Network::None);
    all_ok(&run(w));
}

/// Tools that set modes keep working in a read-write mount when nothing asks for a
/// set-id bit; a set-id source file is copied without it.
fn tools_in_a_rw_mount(iso: IsolationRequest, script: &str) {
    if !backend_ready(iso) {
        return;
    }
    let dir = writable_tempdir();
    let w = sh(script)
        .mount(Mount::rw(dir.path(), "/out"))
        .isolation(iso);
    let o = run(w);
    assert!(
        o.success(),
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(dir.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("script"), 0o755);
    assert_eq!(mode("installed"), 0o750);
    assert_eq!(mode("shared"), 0o1777);
    assert_eq!(mode("unpacked/data"), 0o640);
    assert_eq!(mode("copy-of-setuid") & 0o6000, 0);
    assert_eq!(mode("copied"), 0o600);
}

#[test]
fn chmod_cp_install_and_tar_keep_working_in_the_container() {
    tools_in_a_rw_mount(
        IsolationRequest::Container,
        "set -e; cd /out; echo x > script; chmod 755 script; install -m 750 script installed; \
         mkdir shared; chmod 1777 shared; mkdir src; echo d > src/data; chmod 640 src/data; \
         tar -C src -cf t.tar data; mkdir unpacked; tar -C unpacked -xpf t.tar; \
         echo c > orig; chmod 600 orig; cp -p orig copied; cp -p /usr/bin/passwd copy-of-setuid",
    );
}

#[test]
fn chmod_cp_install_and_tar_keep_working_in_the_micro_vm() {
    tools_in_a_rw_mount(
        IsolationRequest::MicroVm,
        "set -e; cd /out; echo x > script; chmod 755 script; install -m 750 script installed; \
         mkdir shared; chmod 1777 shared; mkdir src; echo d > src/data; chmod 640 src/data; \
         tar -C src -cf t.tar data; mkdir unpacked; tar -C unpacked -xpf t.tar; \
         echo c > orig; chmod 600 orig; cp -p orig copied; cp /usr/bin/passwd copy-of-setuid",
    );
}

#[test]
fn git_keeps_working_in_a_rw_mount() {
    let has_git = ["/usr/bin/git", "/usr/local/bin/git"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    if !feature("git", (!has_git).then(|| "git is not installed".into())) {
        return;
    }
    let dir = writable_tempdir();
    let w = sh(
        "set -e; cd /out; git init -q repo; cd repo; echo a > f; chmod +x f; git add f; \
         git -c user.name=t -c user.email=t@t commit -qm one; git log --oneline | wc -l",
    )
    .mount(Mount::rw(dir.path(), "/out"))
    .isolation(IsolationRequest::Container)
    .env("HOME", "/tmp");
    let o = run(w);
    assert!(o.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&o).trim(), "1");
}

#[test]
fn fifos_and_sockets_in_tmp_keep_working() {
    for iso in [IsolationRequest::Container, IsolationRequest::MicroVm] {
        if !backend_ready(iso) {
            continue;
        }
        let o = run(sh("mkfifo /tmp/p && test -p /tmp/p && echo fifo").isolation(iso));
        assert_eq!(stdout(&o), "fifo\n", "{iso:?}: {o:?}");
    }
}

/// An image root: the sandbox's own writable layer takes its own sockets; a read-write
/// host mount under it takes neither FIFOs nor sockets, and a host socket there stays
/// unreachable (the layer's rights do not reach down into the mount).
#[test]
fn an_image_roots_own_sockets_work_and_its_rw_mounts_stay_closed() {
    use hybrid_sandbox::ImageStore;
    let d = tempfile::tempdir().unwrap();
    set_mode(d.path(), 0o755);
    let sb =
        Sandbox::with_default_policy().with_image_store(ImageStore::at(d.path().join("store")));
    let img = hsb_tests::image::write_oci_layout(&d.path().join("oci"), "");
    let img = img.to_str().unwrap();
    let programs = programs(env!("CARGO_TARGET_TMPDIR"));
    let probe = |args: &[&str], rw: Option<&std::path::Path>| {
        let mut w = Workload::new(
            format!("{PROGRAMS_IN_SANDBOX}/attack-static"),
            args.iter().copied(),
        )
        .image(img)
        .mount(Mount::ro(&programs, PROGRAMS_IN_SANDBOX))
        .isolation(IsolationRequest::Container);
        if let Some(dir) = rw {
            w = w.mount(Mount::rw(dir, "/out"));
        }
        let o = run_in(&sb, w);
        let out = stdout(&o);
        assert!(!out.contains(": allowed"), "{out}");
        out
    };
    assert_eq!(probe(&["unix-own", "/own.sock"], None), "unix-own: works\n");
    let dir = writable_tempdir();
    let sock = dir.path().join("host.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    set_mode(&sock, 0o777);
    for args in [
        &["mkfifo", "/out/fifo"][..],
        &["unix-bind", "/out/bound"],
        &["unix-connect", "/out/host.sock"],
        &["unix-connect-via-link", "/out/host.sock", "/link.sock"],
    ] {
        let out = probe(args, Some(dir.path()));
        assert!(out.contains(": blocked"), "{args:?}: {out}");
    }
    assert!(
        listener.accept().is_err(),
        "the host service got a connection"
    );
    assert!(!dir.path().join("fifo").exists() && !dir.path().join("bound").exists());
}
