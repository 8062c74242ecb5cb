//! The same workloads, passing the same way, in both backends: python3 (dynamically
//! linked, from the host's /usr), a script from a read-only mount using much of the
//! standard library (threads and subprocesses included), temp files, signals and
//! timeouts inside Python, processes sharing files under flock, lockf and sqlite's
//! locks, a Java and a Node.js program, util-linux and coreutils waiting on POSIX
//! timers and Python on a timerfd, Node.js watching files (inotify), busybox and dash pipelines, dynamically linked
//! coreutils, bash's process substitution and a renamed working directory.
//! Each check runs with `IsolationRequest::Container` and `IsolationRequest::MicroVm`
//! (the latter skipped loudly without KVM, a failure under `HSB_REQUIRE_KVM=1`).

use std::time::Duration;

use hsb_tests::*;
use hybrid_sandbox::{IsolationRequest, Outcome};

fn on(iso: IsolationRequest, mut w: Workload) -> Workload {
    w.limits.wall_time = Some(Duration::from_secs(60));
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

fn python(iso: IsolationRequest, code: &str) -> Outcome {
    run(on(iso, Workload::new("python3", ["-c", code])))
}

/// The standard library tour, as a script on a read-only mount.
const STDLIB_SCRIPT: &str = r#"
import json, re, hashlib, math, collections, itertools, datetime, struct, zlib
import threading, subprocess, sys, os
out = []
out.append(json.dumps({"k": [1, 2.5, None]}, sort_keys=True))
out.append(re.sub(r"(\d+)", lambda m: str(int(m.group(1)) * 2), "a1 b22 c333"))
out.append(hashlib.sha256(b"hybrid-sandbox").hexdigest()[:16])
out.append(hashlib.md5(b"x").hexdigest()[:8])
out.append(str(math.isqrt(10**12)) + " " + f"{math.pi:.5f}")
out.append(str(collections.Counter("mississippi").most_common(2)))
out.append(str(list(itertools.islice(itertools.accumulate(range(10)), 5))))
out.append(datetime.datetime(2024, 2, 29, 12, 30).strftime("%Y-%m-%d %H:%M") + " " + str(datetime.timedelta(days=1, hours=2)))
out.append(struct.pack("<IhQ", 1, -2, 3).hex())
out.append(str(zlib.crc32(b"hello")) + " " + str(len(zlib.compress(b"a" * 1000))))
results = [0] * 4
def work(i):
    results[i] = sum(j * j for j in range(20000 + i))
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
out.append(str(sum(results)))
lock = threading.Lock(); cond = threading.Condition(lock); box = []
def producer():
    with cond:
        box.append("item"); cond.notify()
with cond:
    threading.Thread(target=producer).start()
    cond.wait_for(lambda: box, timeout=10)
out.append(box[0])
out.append(subprocess.run(["echo", "child says hi"], capture_output=True, text=True).stdout.strip())
p = subprocess.Popen([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
out.append(p.communicate(b"piped")[0].decode().strip() + " rc=" + str(p.returncode))
out.append(str(subprocess.run(["sh", "-c", "exit 3"]).returncode))
print("\n".join(out))
"#;

const STDLIB_EXPECTED: &str = r#"{"k": [1, 2.5, null]}
a2 b44 c666
97760802290d3987
9dd4e461
1000000 3.14159
[('i', 4), ('s', 4)]
[0, 1, 3, 6, 10]
2024-02-29 12:30 1 day, 2:00:00
01000000feff0300000000000000
907060870 17
"#;

fn python_sum(iso: IsolationRequest) {
    let o = python(iso, "print(sum(range(10**6)))");
    assert_eq!(ok(&o), "499999500000\n");
}

fn python_stdlib_script_from_a_read_only_mount(iso: IsolationRequest) {
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755);
    let script = dir.path().join("check.py");
    std::fs::write(&script, STDLIB_SCRIPT).unwrap();
    set_mode(&script, 0o644);
    let o = run(on(
        iso,
        Workload::new("python3", ["/work/check.py"]).mount(Mount::ro(dir.path(), "/work")),
    ));
    let out = ok(&o);
    assert!(out.starts_with(STDLIB_EXPECTED), "{out}");
    let tail: Vec<&str> = out[STDLIB_EXPECTED.len()..].lines().collect();
    let want_sum: u64 = (0..4u64)
        .map(|i| (0..20000 + i).map(|j| j * j).sum::<u64>())
        .sum();
    assert_eq!(
        tail,
        [
            want_sum.to_string().as_str(),
            "item",
            "child says hi",
            "PIPED rc=0",
            "3"
        ],
        "{out}"
    );
    // The mount is read-only in both (the container answers EACCES first when the file
    // is not the sandbox user's: the micro-VM does not check host permission bits).
    let o = run(on(
        iso,
        Workload::new(
            "python3",
            [
                "-c",
                "import errno\ntry:\n    open('/work/check.py', 'a')\nexcept OSError as e:\n    print('refused' if e.errno in (errno.EROFS, errno.EACCES) else e)",
            ],
        )
        .mount(Mount::ro(dir.path(), "/work")),
    ));
    assert_eq!(ok(&o), "refused\n");
    // A read-only mount refuses a removal or a rename before it looks the name up
    // (EROFS, not ENOENT, for a name that is not there; test.support's forget() counts
    // on it).
    let o = run(on(
        iso,
        Workload::new(
            "python3",
            [
                "-c",
                "import os
for f in (os.unlink, os.rmdir, lambda p: os.rename(p, p + '2')):
    try:
        f('/work/missing')
    except OSError as e:
        print(e.strerror)",
            ],
        )
        .mount(Mount::ro(dir.path(), "/work")),
    ));
    assert_eq!(ok(&o), "Read-only file system\n".repeat(3));
}

fn python_temp_files(iso: IsolationRequest) {
    let code = r#"
import tempfile, os
with tempfile.TemporaryDirectory() as d:
    p = os.path.join(d, "data.bin")
    with open(p, "wb") as f:
        f.write(bytes(range(256)) * 1000)
    with open(p, "rb") as f:
        data = f.read()
    print(len(data), data[255], sorted(os.listdir(d)))
with tempfile.NamedTemporaryFile("w+") as f:
    f.write("line one\nline two\n"); f.flush(); f.seek(0)
    print(f.readlines()[1].strip())
print(os.path.exists(d))
"#;
    let o = python(iso, code);
    assert_eq!(ok(&o), "256000 255 ['data.bin']\nline two\nFalse\n");
}

fn python_signals_and_timeouts(iso: IsolationRequest) {
    let code = r#"
import signal, time, os
class Timeout(Exception): pass
def on_alarm(signum, frame): raise Timeout()
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    while True:
        sum(range(1000))
except Timeout:
    print("busy loop interrupted")
signal.alarm(1)
try:
    time.sleep(10)
except Timeout:
    print("sleep interrupted")
got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
os.kill(os.getpid(), signal.SIGUSR1)
print("usr1", got == [signal.SIGUSR1])
"#;
    let o = python(iso, code);
    assert_eq!(
        ok(&o),
        "busy loop interrupted\nsleep interrupted\nusr1 True\n"
    );
}

fn python_asyncio_and_sockets(iso: IsolationRequest) {
    let code = r#"
import asyncio, socket, selectors
async def main():
    r, w = await asyncio.open_unix_connection(sock=socket.socketpair()[0]) if False else (None, None)
    results = await asyncio.gather(*(asyncio.sleep(0.01, result=i) for i in range(5)))
    return sum(results)
print(asyncio.run(main()))
a, b = socket.socketpair()
a.sendall(b"ping")
print(b.recv(4).decode())
sel = selectors.DefaultSelector()
sel.register(b, selectors.EVENT_READ)
a.sendall(b"x")
print(len(sel.select(timeout=1)))
"#;
    let o = python(iso, code);
    assert_eq!(ok(&o), "10\nping\n1\n");
}

fn python_fork_and_pipes(iso: IsolationRequest) {
    let code = r#"
import os
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    os.write(w, b"from the child")
    os._exit(4)
os.close(w)
data = os.read(r, 100)
_, status = os.waitpid(pid, 0)
print(data.decode(), os.WEXITSTATUS(status))
"#;
    let o = python(iso, code);
    assert_eq!(ok(&o), "from the child 4\n");
}

/// Processes sharing files under locks, as package managers, build tools and databases
/// do: a held lock is refused to another process, `flock`- and `lockf`-guarded
/// read-modify-write loops of four processes lose no update, and four sqlite writers
/// (POSIX locks on the database and its journal) commit every row.
fn python_processes_share_files_under_locks(iso: IsolationRequest) {
    let code = r#"
import fcntl, os, sqlite3, time
path = "/tmp/counter"
with open(path, "w") as f:
    f.write("0")
held = open(path, "r+")
fcntl.flock(held, fcntl.LOCK_EX)
fcntl.lockf(held, fcntl.LOCK_EX)
pid = os.fork()
if pid == 0:
    other = open(path, "r+")
    for lock in (fcntl.flock, fcntl.lockf):
        try:
            lock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os._exit(1)
        except BlockingIOError:
            pass
    os._exit(0)
print("refused", os.waitpid(pid, 0)[1])
held.close()
N, K = 4, 50
for lock in (fcntl.flock, fcntl.lockf):
    with open(path, "w") as f:
        f.write("0")
    kids = []
    for _ in range(N):
        pid = os.fork()
        if pid == 0:
            for _ in range(K):
                with open(path, "r+") as f:
                    lock(f, fcntl.LOCK_EX)
                    v = int(f.read())
                    time.sleep(0.0002)
                    f.seek(0); f.write(str(v + 1)); f.truncate(); f.flush()
            os._exit(0)
        kids.append(pid)
    st = [os.waitpid(p, 0)[1] for p in kids]
    print(lock.__name__, open(path).read(), st)
db = "/tmp/t.db"
c = sqlite3.connect(db)
c.execute("create table t(n integer)"); c.execute("insert into t values(0)"); c.commit(); c.close()
kids = []
for _ in range(N):
    pid = os.fork()
    if pid == 0:
        c = sqlite3.connect(db, timeout=60, isolation_level=None)
        for _ in range(K):
            c.execute("begin immediate")
            (v,) = c.execute("select n from t").fetchone()
            time.sleep(0.0002)
            c.execute("update t set n=?", (v + 1,))
            c.execute("commit")
        os._exit(0)
    kids.append(pid)
st = [os.waitpid(p, 0)[1] for p in kids]
print("sqlite", sqlite3.connect(db).execute("select n from t").fetchone()[0], st)
"#;
    let o = python(iso, code);
    assert_eq!(
        ok(&o),
        "refused 0\nflock 200 [0, 0, 0, 0]\nlockf 200 [0, 0, 0, 0]\nsqlite 200 [0, 0, 0, 0]\n"
    );
}

/// A Java single-file program (compiled in the JVM, a thread started and joined) and
/// Node.js (a child process and a worker thread), under the default policy's mounts:
/// the JDK's configuration in /etc is there.
fn jvm_and_node_programs(iso: IsolationRequest) {
    let java = r#"public class H { public static void main(String[] a) throws Exception {
        StringBuilder b = new StringBuilder();
        Thread t = new Thread(() -> b.append("thread"));
        t.start(); t.join();
        System.out.println(b + " " + java.util.stream.IntStream.rangeClosed(1, 100).sum());
    } }"#;
    let o = run(on(
        iso,
        Workload::new(
            "/bin/sh",
            [
                "-c",
                &format!("cat > /tmp/H.java <<'EOF'\n{java}\nEOF\njava /tmp/H.java"),
            ],
        ),
    ));
    assert_eq!(ok(&o), "thread 5050\n");
    let node = r#"const cp = require("child_process");
const { Worker } = require("worker_threads");
const out = cp.execFileSync("/bin/echo", ["child"]).toString().trim();
new Worker("require('worker_threads').parentPort.postMessage(6 * 7)", { eval: true })
  .on("message", (m) => console.log(out, m));"#;
    let o = run(on(iso, Workload::new("node", ["-e", node])));
    assert_eq!(ok(&o), "child 42\n");
}

/// Programs that wait with POSIX timers (`timer_create`): util-linux `flock -w` gives
/// up on a lock another process holds, coreutils `timeout` stops a command; and a
/// timerfd read through Python's `select.epoll` (the fd made by a C library call
/// through `ctypes`).
fn timed_waits_of_real_programs(iso: IsolationRequest) {
    let script = "flock /tmp/l sleep 2 & \
                  until ! flock -n /tmp/l true; do sleep 0.05; done; \
                  flock -w 0.3 /tmp/l true; echo flock-w $?; \
                  timeout 0.3 sleep 10; echo timeout $?; \
                  timeout -s INT 0.2 sleep 10; echo timeout-int $?; wait; echo done";
    let o = run(on(iso, Workload::new("/bin/sh", ["-c", script])));
    assert_eq!(ok(&o), "flock-w 1\ntimeout 124\ntimeout-int 124\ndone\n");
    let code = r#"
import ctypes, os, select, struct, time
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.timerfd_create(1, os.O_NONBLOCK)
assert fd >= 0, ctypes.get_errno()
spec = struct.pack("qqqq", 0, 20_000_000, 0, 30_000_000)
# Taken before the timer is armed: a pause after arming (a loaded host) must not
# shorten what is measured.
t0 = time.monotonic()
assert libc.timerfd_settime(fd, 0, spec, None) == 0
ep = select.epoll()
ep.register(fd, select.EPOLLIN)
ticks = 0
while ticks < 5:
    for _ in ep.poll(5):
        ticks += struct.unpack("Q", os.read(fd, 8))[0]
waited = time.monotonic() - t0
print("ticks", ticks >= 5, "waited", waited >= 0.03 + 4 * 0.02 - 0.005)
"#;
    assert_eq!(ok(&python(iso, code)), "ticks True waited True\n");
}

/// Node.js `fs.watch` (inotify) sees a file created, written and renamed by the
/// program itself.
fn node_watches_files(iso: IsolationRequest) {
    let node = r#"const fs = require("fs");
fs.mkdirSync("/tmp/wd");
const seen = [];
const w = fs.watch("/tmp/wd", (ev, name) => {
  seen.push(ev + ":" + name);
  if (seen.length == 3) { w.close(); console.log(seen.join(" ")); }
});
setTimeout(() => {
  fs.writeFileSync("/tmp/wd/a.txt", "x");
  fs.renameSync("/tmp/wd/a.txt", "/tmp/wd/b.txt");
}, 50);"#;
    let o = run(on(iso, Workload::new("node", ["-e", node])));
    assert_eq!(ok(&o), "rename:a.txt change:a.txt rename:a.txt\n");
}

/// System V IPC as programs use it: Perl's IPC::SysV modules (a shared memory segment,
/// a semaphore a forked child posts, a message queue), and util-linux's `ipcmk`,
/// `ipcs` (which reads `/proc/sysvipc`) and `ipcrm`.
fn system_v_ipc_of_real_programs(iso: IsolationRequest) {
    let perl = r#"use IPC::SysV qw(IPC_PRIVATE S_IRUSR S_IWUSR);
use IPC::SharedMem; use IPC::Semaphore; use IPC::Msg;
my $shm = IPC::SharedMem->new(IPC_PRIVATE, 4096, S_IRUSR|S_IWUSR) or die "shm: $!";
my $sem = IPC::Semaphore->new(IPC_PRIVATE, 1, S_IRUSR|S_IWUSR) or die "sem: $!";
my $msg = IPC::Msg->new(IPC_PRIVATE, S_IRUSR|S_IWUSR) or die "msg: $!";
$sem->setval(0, 0);
my $pid = fork();
if ($pid == 0) {
  select(undef, undef, undef, 0.05);
  $shm->write("from child", 0, 10); $msg->snd(7, "ping"); $sem->op(0, 1, 0); exit 0;
}
$sem->op(0, -1, 0) or die "semop: $!";
my $buf; $msg->rcv($buf, 64, 7) or die "msgrcv: $!";
print $shm->read(0, 10), " ", $buf, " ", $sem->getval(0), "
";
waitpid($pid, 0);
$shm->remove; $sem->remove; $msg->remove;"#;
    let o = run(on(iso, Workload::new("perl", ["-e", perl])));
    assert_eq!(ok(&o), "from child ping 0\n");
    let o = run(on(
        iso,
        Workload::new(
            "/bin/sh",
            [
                "-c",
                "ipcmk -M 12345 -p 0640 >/dev/null && ipcmk -Q >/dev/null && ipcs -m | grep -c ' 640 *12345 ' \
                 && ipcs -q | grep -c ' 644 ' && ipcrm --all && { ipcs | grep -c 12345 || true; }",
            ],
        ),
    ));
    assert_eq!(ok(&o), "1\n1\n0\n");
}

/// Shared mappings of a file on a read-write host mount: a child's writes through
/// `mmap` are seen by `read`, a `write` by the mapping, and the host file holds both
/// after the run; SQLite in WAL mode (whose index is such a mapping) serves two
/// processes writing and reading one database.
fn shared_mappings_of_host_files(iso: IsolationRequest) {
    let code = r#"
import mmap, os, sqlite3
fd = os.open("/data/m.bin", os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 8192)
m = mmap.mmap(fd, 8192)
pid = os.fork()
if pid == 0:
    m[100:105] = b"child"
    os._exit(0)
os.waitpid(pid, 0)
os.pwrite(fd, b"write", 5000)
print(os.pread(fd, 5, 100).decode(), m[5000:5005].decode())
m.close()
db = sqlite3.connect("/data/w.db")
print(db.execute("pragma journal_mode=wal").fetchone()[0])
db.execute("create table t(x)")
db.commit()
kids = []
for k in range(2):
    pid = os.fork()
    if pid == 0:
        c = sqlite3.connect("/data/w.db", timeout=30)
        for i in range(50):
            c.execute("insert into t values (?)", (i,))
            c.commit()
        os._exit(0)
    kids.append(pid)
print([os.waitpid(p, 0)[1] for p in kids], db.execute("select count(*), sum(x) from t").fetchone())
"#;
    let dir = writable_tempdir();
    let o = run(on(
        iso,
        Workload::new("python3", ["-c", code]).mount(Mount::rw(dir.path(), "/data")),
    ));
    assert_eq!(ok(&o), "child write\nwal\n[0, 0] (100, 2450)\n");
    let data = std::fs::read(dir.path().join("m.bin")).unwrap();
    assert_eq!(&data[100..105], b"child");
    assert_eq!(&data[5000..5005], b"write");
}

/// Process descriptors as Python uses them: `os.pidfd_open`, `poll` until the child
/// exits, `waitid(P_PIDFD)`, `signal.pidfd_send_signal`, and asyncio's
/// `PidfdChildWatcher` running subprocesses.
fn python_pidfds(iso: IsolationRequest) {
    let code = r#"
import asyncio, os, select, signal, time, warnings
warnings.simplefilter("ignore", DeprecationWarning)
pid = os.fork()
if pid == 0:
    time.sleep(0.1)
    os._exit(7)
fd = os.pidfd_open(pid)
p = select.poll()
p.register(fd, select.POLLIN)
print(p.poll(0), p.poll(10000), os.waitid(os.P_PIDFD, fd, os.WEXITED).si_status)
pid = os.fork()
if pid == 0:
    time.sleep(60)
    os._exit(0)
fd = os.pidfd_open(pid)
signal.pidfd_send_signal(fd, signal.SIGTERM)
print(os.waitid(os.P_PIDFD, fd, os.WEXITED).si_status == signal.SIGTERM)
async def main():
    procs = [await asyncio.create_subprocess_exec("sh", "-c", "exit %d" % i) for i in range(3)]
    return [await q.wait() for q in procs]
asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
print(asyncio.run(main()))
"#;
    assert_eq!(ok(&python(iso, code)), "[] [(3, 1)] 7\nTrue\n[0, 1, 2]\n");
}

fn busybox_pipelines(iso: IsolationRequest) {
    let o = run(on(
        iso,
        Workload::new(
            "busybox",
            [
                "sh",
                "-c",
                "echo 'b a c' | busybox tr ' ' '\\n' | busybox sort | busybox tr -d '\\n'; echo; \
                 busybox seq 1 500 | busybox grep 7 | busybox wc -l; \
                 echo hi > /tmp/x && busybox cat /tmp/x | busybox sed s/hi/ho/",
            ],
        ),
    ));
    assert_eq!(ok(&o), "abc\n95\nho\n");
}

fn dash_and_coreutils_pipelines(iso: IsolationRequest) {
    let o = run(on(
        iso,
        Workload::new(
            "/bin/sh",
            [
                "-c",
                "printf '%s\\n' 3 1 2 | sort -n | tr '\\n' ,; echo; ls / | grep -c -x tmp; \
                 x=$(echo sub | cut -c1-2); echo $x; (exit 7) || echo status $?",
            ],
        ),
    ));
    assert_eq!(ok(&o), "1,2,3,\n1\nsu\nstatus 7\n");
}

/// bash's process substitution (`/dev/fd/N` of a pipe, to read and to write) and
/// `/dev/stdin` of a pipe; `pwd -P` after the working directory was renamed (the new
/// path) and removed (none). (Not `/dev/stdout` of the run: the container's is a pipe
/// of the host's user, which its workload may not open, as on Linux.)
fn bash_dev_fd_and_moved_cwd(iso: IsolationRequest) {
    let o = run(on(
        iso,
        Workload::new(
            "bash",
            [
                "-c",
                "cat <(echo sub); echo piped | cat /dev/stdin; \
                 echo tee > >(tr a-z A-Z > /tmp/t); wait $!; cat /tmp/t; \
                 cd /tmp && mkdir d && cd d && mv ../d ../e && pwd -P; \
                 cd /tmp && mkdir r && cd r && rmdir ../r && (pwd -P 2>/dev/null || echo gone)",
            ],
        ),
    ));
    assert_eq!(ok(&o), "sub\npiped\nTEE\n/tmp/e\ngone\n");
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod container {
            $( #[test] fn $name() { super::$name(hybrid_sandbox::IsolationRequest::Container) } )*
        }
        mod microvm {
            $( #[test] fn $name() {
                let iso = hybrid_sandbox::IsolationRequest::MicroVm;
                if !hsb_tests::backend_ready(iso) { return; }
                super::$name(iso)
            } )*
        }
    };
}

both_backends!(
    python_sum,
    python_stdlib_script_from_a_read_only_mount,
    python_temp_files,
    python_signals_and_timeouts,
    python_asyncio_and_sockets,
    python_fork_and_pipes,
    python_processes_share_files_under_locks,
    jvm_and_node_programs,
    timed_waits_of_real_programs,
    node_watches_files,
    system_v_ipc_of_real_programs,
    shared_mappings_of_host_files,
    python_pidfds,
    busybox_pipelines,
    dash_and_coreutils_pipelines,
    bash_dev_fd_and_moved_cwd,
);
