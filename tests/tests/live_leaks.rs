//! The leaks hardening in live container sandboxes: the connect supervisor answers every
//! process of a sandbox for its whole life, not only a run's one workload. A host UNIX
//! socket in a mount stays out of reach of a later exec and of a process an earlier exec
//! left in the background; the sandbox's own sockets in /tmp work between execs; set-id
//! modes, FIFOs in read-write mounts and /proc's host facts are refused to a later exec
//! as to a run. (The attacks on runs: `escape_catalogue`; what keeps working: `leaks`.)

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use hsb_tests::*;
use hybrid_sandbox::{ExecRequest, Live, LiveOptions, Network};

/// Tries `connect(2)` to each UNIX socket path given; prints one word per path:
/// `CONNECTED`, or the errno's name.
const CONNECT: &str = r#"
import errno, socket, sys
out = []
for path in sys.argv[1:]:
    c = socket.socket(socket.AF_UNIX)
    try:
        c.connect(path)
        out.append("CONNECTED")
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
    c.close()
print(" ".join(out))
"#;

/// A background process: waits for /tmp/go (made after the exec that started it has
/// ended), then tries the host's socket through both mounts and a planted symlink, and
/// the sandbox's own server; writes what happened to /tmp/bg.out.
const BACKGROUND: &str = r#"
import errno, os, socket, time
while not os.path.exists("/tmp/go"):
    time.sleep(0.01)
out = []
for path in ["/h/host.sock", "/w/host.sock", "/tmp/to-host.sock"]:
    c = socket.socket(socket.AF_UNIX)
    try:
        c.connect(path)
        out.append("CONNECTED")
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
    c.close()
c = socket.socket(socket.AF_UNIX)
c.connect("/tmp/srv.sock")
c.sendall(b"from-background\n")
out.append(c.makefile().readline().strip())
with open("/tmp/bg.out.new", "w") as f:
    f.write(" ".join(out) + "\n")
os.rename("/tmp/bg.out.new", "/tmp/bg.out")
"#;

/// The sandbox's own echo server, on a pathname socket in /tmp and an abstract name;
/// runs in the background of the exec that starts it, says it is ready in /tmp/srv.ready.
const SERVER: &str = r#"
import os, socket, threading
def serve(addr):
    s = socket.socket(socket.AF_UNIX)
    s.bind(addr)
    s.listen(16)
    def run():
        while True:
            c, _ = s.accept()
            line = c.makefile().readline().strip()
            c.sendall(("echo:" + line + "\n").encode())
            c.close()
    threading.Thread(target=run, daemon=True).start()
serve("/tmp/srv.sock")
serve("\0hsb-live-srv")
open("/tmp/srv.ready", "w").close()
threading.Event().wait()
"#;

/// A client of the echo server (`@name`: an abstract name).
const CLIENT: &str = r#"
import socket, sys
addr = sys.argv[1]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
c = socket.socket(socket.AF_UNIX)
c.connect(addr)
c.sendall(sys.argv[2].encode() + b"\n")
print(c.makefile().readline().strip())
"#;

async fn exec_ok(live: &Live, req: ExecRequest) -> String {
    let argv = req.argv.join(" ");
    let o = live
        .exec_with(req)
        .await
        .unwrap_or_else(|e| panic!("exec {argv}: {}", e.chain()));
    assert!(
        o.success(),
        "{argv}: {o:?} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

async fn sh_ok(live: &Live, script: &str) -> String {
    exec_ok(live, ExecRequest::new(["sh", "-c", script])).await
}

/// Waits (up to 20 s) for a file the sandbox writes; returns its contents.
async fn wait_file(live: &Live, path: &str) -> String {
    for _ in 0..2000 {
        if let Ok(b) = live.read_file(path).await {
            return String::from_utf8_lossy(&b).into_owned();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{path} never appeared in the sandbox");
}

/// A host service's socket, world-reachable, in a directory the sandbox mounts.
fn host_service(dir: &Path) -> UnixListener {
    let sock = dir.join("host.sock");
    let l = UnixListener::bind(&sock).unwrap();
    l.set_nonblocking(true).unwrap();
    set_mode(&sock, 0o777);
    l
}

#[test]
fn host_socket_refused_to_later_execs_and_background_processes_own_sockets_work_between_execs() {
    let dir = writable_tempdir();
    let listener = host_service(dir.path());
    host_socket_scenario(dir.path());
    assert!(
        listener.accept().is_err(),
        "the host service got a connection"
    );
}

/// Serves the host's socket in `dir` to the sandbox's mounts, then tries it from later
/// execs and from a background process, and the sandbox's own server between execs.
fn host_socket_scenario(dir: &Path) {
    runtime().block_on(async {
        for network in [Network::None, Network::Loopback] {
            let mut w = Workload::default()
                .mount(Mount::ro(dir, "/h"))
                .mount(Mount::rw(dir, "/w"));
            w.network = Some(network);
            let live = sandbox()
                .create(w, LiveOptions::default())
                .await
                .unwrap_or_else(|e| panic!("create: {}", e.chain()));
            for (name, body) in [
                ("connect.py", CONNECT),
                ("bg.py", BACKGROUND),
                ("srv.py", SERVER),
                ("client.py", CLIENT),
            ] {
                live.write_file(&format!("/tmp/{name}"), body)
                    .await
                    .unwrap();
            }
            // The first exec: nothing of the sockets yet.
            assert_eq!(sh_ok(&live, "echo first").await, "first\n");

            // The own server starts in the background of one exec...
            sh_ok(
                &live,
                "python3 /tmp/srv.py >/dev/null 2>&1 & \
                 while [ ! -e /tmp/srv.ready ]; do sleep 0.01; done",
            )
            .await;
            // ...and answers clients of later execs: by path, relative to an exec's own
            // working directory, and by abstract name.
            for (addr, cwd) in [
                ("/tmp/srv.sock", None),
                ("srv.sock", Some("/tmp")),
                ("@hsb-live-srv", None),
            ] {
                let mut req = ExecRequest::new(["python3", "/tmp/client.py", addr, "hello"]);
                req.cwd = cwd.map(String::from);
                assert_eq!(
                    exec_ok(&live, req).await,
                    "echo:hello\n",
                    "{addr:?} under {network:?}"
                );
            }

            // A later exec cannot reach the host's socket: through the read-only mount,
            // the read-write one, relative to the mount, or through a planted symlink.
            sh_ok(&live, "ln -s /h/host.sock /tmp/to-host.sock").await;
            let got = sh_ok(
                &live,
                "python3 /tmp/connect.py /h/host.sock /w/host.sock /tmp/to-host.sock",
            )
            .await;
            assert_eq!(got, "EACCES EACCES EACCES\n", "under {network:?}");
            let mut req = ExecRequest::new(["python3", "/tmp/connect.py", "host.sock"]);
            req.cwd = Some("/h".into());
            assert_eq!(exec_ok(&live, req).await, "EACCES\n", "under {network:?}");

            // Nor can a process an earlier exec left behind: it connects only once /tmp/go
            // exists, which the host makes after that exec (and another) have ended.
            sh_ok(&live, "python3 /tmp/bg.py >/dev/null 2>&1 &").await;
            assert_eq!(sh_ok(&live, "echo between").await, "between\n");
            live.write_file("/tmp/go", "").await.unwrap();
            let got = wait_file(&live, "/tmp/bg.out").await;
            assert_eq!(
                got, "EACCES EACCES EACCES echo:from-background\n",
                "under {network:?}"
            );
            live.destroy().await.unwrap();
        }
    });
}

/// The same for a rootless caller (this test binary run again as uid 65534): the
/// supervisor takes a later exec's socket with `pidfd_getfd`, which needs ptrace access
/// to a process of a sandbox the caller made without privilege.
#[test]
fn a_rootless_callers_live_sandbox_closes_the_host_socket_too() {
    if !root_caller() {
        return;
    }
    // The build tree may be private: a copy an unprivileged user can execute. Made by
    // another process: a sandbox cloned meanwhile by a test of this one would inherit
    // our descriptor open for writing on it, and exec would fail with ETXTBSY.
    let bin_dir = tempfile::tempdir().unwrap();
    set_mode(bin_dir.path(), 0o755);
    let bin = bin_dir.path().join("live_leaks");
    let st = std::process::Command::new("install")
        .args(["-m", "0755"])
        .arg(std::env::current_exe().unwrap())
        .arg(&bin)
        .status()
        .expect("install (coreutils)");
    assert!(st.success());
    let dir = writable_tempdir();
    let listener = host_service(dir.path());
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(["--inh-caps=-all", "--bounding-set=-all"])
        .arg(&bin)
        .args([
            "--exact",
            "rootless_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HSB_LIVE_LEAKS_DIR", dir.path())
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("setpriv (util-linux) must be installed");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("HSB-ROOTLESS-LIVE-OK"),
        "{text}"
    );
    assert!(
        listener.accept().is_err(),
        "the host service got a connection"
    );
}

/// The child half of `a_rootless_callers_live_sandbox_closes_the_host_socket_too`.
#[test]
fn rootless_child() {
    let Some(dir) = std::env::var_os("HSB_LIVE_LEAKS_DIR") else {
        return;
    };
    // The parent holds the host service's listener.
    host_socket_scenario(Path::new(&dir));
    println!("HSB-ROOTLESS-LIVE-OK");
}

/// Set-id modes, FIFOs and sockets in a read-write mount, and /proc's host facts are
/// refused to an exec of a live sandbox as to a run (here after other execs, and from a
/// background process).
#[test]
fn set_id_fifo_and_proc_protections_hold_for_later_execs() {
    let dir = writable_tempdir();
    runtime().block_on(async {
        let w = Workload::default().mount(Mount::rw(dir.path(), "/w"));
        let live = sandbox()
            .create(w, LiveOptions::default())
            .await
            .unwrap_or_else(|e| panic!("create: {}", e.chain()));
        assert_eq!(sh_ok(&live, "echo first").await, "first\n");
        let probe = r#"
import errno, os, socket
def err(f):
    try:
        f()
        return "ALLOWED"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
open("/w/f", "w").close()
print("chmod", err(lambda: os.chmod("/w/f", 0o4755)))
print("creat", err(lambda: os.close(os.open("/w/g", os.O_CREAT | os.O_WRONLY, 0o2755))))
print("mkfifo", err(lambda: os.mkfifo("/w/fifo")))
print("bind", err(lambda: socket.socket(socket.AF_UNIX).bind("/w/sock")))
print("cmdline", repr(open("/proc/cmdline").read()))
print("boot_id", repr(open("/proc/sys/kernel/random/boot_id").read()))
print("sys read-only", bool(os.statvfs("/proc/sys").f_flag & os.ST_RDONLY))
"#;
        live.write_file("/tmp/probe.py", probe).await.unwrap();
        let want = "chmod EPERM\ncreat EPERM\nmkfifo EACCES\nbind EACCES\ncmdline ''\nboot_id ''\nsys read-only True\n";
        assert_eq!(sh_ok(&live, "python3 /tmp/probe.py").await, want);
        // From a background process started by an exec that has ended.
        sh_ok(
            &live,
            "(sleep 0.2; python3 /tmp/probe.py > /tmp/bg.new 2>&1; mv /tmp/bg.new /tmp/bg.out) >/dev/null 2>&1 &",
        )
        .await;
        assert_eq!(wait_file(&live, "/tmp/bg.out").await, want);
        // Nothing set-id, FIFO or socket reached the host directory.
        for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
            use std::os::unix::fs::{FileTypeExt, PermissionsExt};
            let m = e.metadata().unwrap();
            assert!(m.file_type().is_file(), "{:?} is not a plain file", e.path());
            assert_eq!(m.permissions().mode() & 0o6000, 0, "{:?}", e.path());
            assert!(!m.file_type().is_fifo() && !m.file_type().is_socket());
        }
        live.destroy().await.unwrap();
    });
}

/// Each exec's process shares init's memory until its `execve` (`CLONE_VFORK`) and maps
/// its request there: init takes it back every time, for execs that run and for execs
/// that fail before their program starts, so that init's mappings and descriptors stay
/// as they were however many execs a sandbox lives through.
#[test]
fn init_keeps_nothing_of_its_execs() {
    runtime().block_on(async {
        let live = sandbox()
            .create(Workload::default(), LiveOptions::default())
            .await
            .unwrap_or_else(|e| panic!("create: {}", e.chain()));
        // A background process with a marker finds init: its parent.
        sh_ok(&live, "sleep 77.123 </dev/null >/dev/null 2>&1 &").await;
        let mut init = None;
        assert!(
            eventually(10.0, || {
                init = host_processes_with("77.123").into_iter().find_map(|pid| {
                    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                    let ppid = st.rsplit(')').next()?.split_whitespace().nth(1)?;
                    ppid.parse::<u32>().ok()
                });
                init.is_some()
            }),
            "the marked background process never showed"
        );
        let init = init.unwrap();
        let count = |what: &str| {
            let p = format!("/proc/{init}/{what}");
            match what {
                "fd" => std::fs::read_dir(&p).map(|d| d.count()).unwrap_or(0),
                _ => std::fs::read_to_string(&p).map_or(0, |s| s.lines().count()),
            }
        };
        // Once, so that anything init makes on its first exec is there before counting.
        live.exec(["/bin/true"]).await.expect("exec");
        let (maps, fds) = (count("maps"), count("fd"));
        assert!(maps > 0 && fds > 0, "init {init}'s /proc files unreadable");
        for i in 0..150 {
            let o = live.exec(["/bin/true"]).await.expect("exec");
            assert!(o.success(), "exec {i}: {o:?}");
            // A program that cannot start: the exec's process ends before any execve.
            assert!(live.exec(["/no/such/program"]).await.is_err());
        }
        // The last exec's outcome may reach us a moment before init has let go of
        // its request (a failed exec reports before its process ends and init wakes).
        let settled = eventually(10.0, || count("maps") == maps && count("fd") == fds);
        assert!(
            settled,
            "init's mappings or descriptors grew with execs: {} mappings (were {maps}), {} descriptors (were {fds})",
            count("maps"),
            count("fd")
        );
        live.destroy().await.expect("destroy");
    });
}
