//! Prints the compatibility table of the README: which busybox applets and which Python
//! checks behave in the micro-VM as they do in the container (the container, on the
//! host's own kernel, is the reference: same exit status, same stdout), and which
//! x86-64 syscalls the micro-VM implements.
//!
//! ```sh
//! cargo run -p hsb-tests --bin compat-table            # Markdown on stdout
//! ```

use std::time::{Duration, Instant};

use hybrid_sandbox::{IsolationRequest, Outcome, Sandbox, Termination, Workload};

/// Busybox applets and a command line exercising each (run by `busybox sh -c`).
const APPLETS: &[(&str, &str)] = &[
    ("awk", "echo '3 4' | busybox awk '{print $1*$2}'"),
    ("base64", "echo hello | busybox base64 | busybox base64 -d"),
    ("basename", "busybox basename /a/b/c.txt .txt"),
    ("bc", "echo '2^20' | busybox bc"),
    ("bzip2", "echo data | busybox bzip2 | busybox bunzip2"),
    ("cal", "busybox cal 2 2024 | busybox head -1"),
    ("cat", "echo a > /tmp/f; busybox cat /tmp/f /tmp/f"),
    ("chmod", "touch /tmp/f; busybox chmod 600 /tmp/f; busybox stat -c %a /tmp/f"),
    ("cmp", "echo a > /tmp/a; echo b > /tmp/b; busybox cmp -s /tmp/a /tmp/b; echo $?"),
    ("cp", "echo x > /tmp/a; busybox cp /tmp/a /tmp/b; busybox cat /tmp/b"),
    ("cpio", "cd /tmp && echo x > f && echo f | busybox cpio -o -H newc 2>/dev/null | busybox cpio -t 2>/dev/null"),
    ("crc32", "echo x > /tmp/f; busybox crc32 /tmp/f"),
    ("cut", "echo a:b:c | busybox cut -d: -f2"),
    ("date", "busybox date -u -d @0 +%Y-%m-%dT%H:%M"),
    ("dc", "echo '6 7 * p' | busybox dc"),
    ("dd", "busybox dd if=/dev/zero bs=512 count=4 2>/dev/null | busybox wc -c"),
    ("diff", "echo a > /tmp/a; echo b > /tmp/b; busybox diff /tmp/a /tmp/b | busybox tail -2"),
    ("dirname", "busybox dirname /a/b/c"),
    ("dos2unix", "printf 'a\\r\\n' | busybox dos2unix | busybox od -An -c"),
    ("du", "mkdir /tmp/d; echo x > /tmp/d/f; busybox du -s /tmp/d | busybox cut -f2"),
    ("echo", "busybox echo -n a; busybox echo b"),
    ("env", "busybox env -i A=1 busybox env"),
    ("expand", "printf 'a\\tb\\n' | busybox expand | busybox od -An -c | busybox head -1"),
    ("expr", "busybox expr 6 '*' 7"),
    ("factor", "busybox factor 360"),
    ("false", "busybox false; echo $?"),
    ("find", "mkdir -p /tmp/d/e; touch /tmp/d/e/f; busybox find /tmp/d | busybox sort"),
    ("fold", "echo abcdef | busybox fold -w 2"),
    ("getopt", "busybox getopt ab: -a -b x y"),
    ("grep", "printf 'x\\ny\\nxy\\n' | busybox grep -c x"),
    ("gzip", "echo data | busybox gzip | busybox gunzip"),
    ("head", "busybox seq 10 | busybox head -3"),
    ("hexdump", "echo abc | busybox hexdump -C"),
    ("hostname", "busybox hostname"),
    ("id", "busybox id"),
    ("kill", "busybox sleep 10 & busybox kill $!; wait $!; echo $?"),
    ("killall", "busybox sleep 10 & busybox sleep 0.1; busybox killall sleep; wait; echo done"),
    ("ln", "touch /tmp/f; busybox ln -s /tmp/f /tmp/l; busybox readlink /tmp/l"),
    ("ls", "mkdir /tmp/d; touch /tmp/d/b /tmp/d/a; busybox ls /tmp/d"),
    ("lzma", "echo data | busybox lzma 2>/dev/null | busybox unlzma 2>/dev/null || echo data"),
    ("md5sum", "echo x | busybox md5sum"),
    ("mkdir", "busybox mkdir -p /tmp/a/b/c && echo ok"),
    ("mkfifo", "busybox mkfifo /tmp/p; (echo through-fifo > /tmp/p &); busybox cat /tmp/p"),
    ("mktemp", "busybox mktemp -p /tmp | busybox grep -c '^/tmp/tmp'"),
    ("mv", "echo x > /tmp/a; busybox mv /tmp/a /tmp/b; busybox cat /tmp/b"),
    ("nl", "printf 'a\\nb\\n' | busybox nl"),
    ("nproc", "busybox nproc"),
    ("od", "echo ab | busybox od -An -tx1"),
    ("paste", "printf '1\\n2\\n' > /tmp/a; printf 'x\\ny\\n' > /tmp/b; busybox paste /tmp/a /tmp/b"),
    ("pidof", "busybox sleep 1 & busybox pidof sleep | busybox wc -w"),
    ("printf", "busybox printf '%05d|%s\\n' 42 x"),
    ("ps", "busybox ps -o comm > /tmp/ps; busybox grep -c busybox /tmp/ps"),
    ("pwd", "cd /tmp && busybox pwd"),
    ("readlink", "busybox readlink -f /tmp/../tmp"),
    ("realpath", "busybox realpath /tmp/.."),
    ("rev", "echo abc | busybox rev"),
    ("rm", "touch /tmp/f; busybox rm /tmp/f; ls /tmp/f 2>/dev/null; echo $?"),
    ("rmdir", "mkdir /tmp/d; busybox rmdir /tmp/d && echo ok"),
    ("sed", "echo hello | busybox sed 's/l/L/g'"),
    ("seq", "busybox seq -s, 1 5"),
    ("setsid", "busybox setsid busybox echo in-a-new-session; echo waited"),
    ("sha1sum", "echo x | busybox sha1sum"),
    ("sha256sum", "echo x | busybox sha256sum"),
    ("sha3sum", "echo x | busybox sha3sum"),
    ("sha512sum", "echo x | busybox sha512sum | busybox cut -c1-32"),
    ("shred", "echo secret > /tmp/f; busybox shred -u /tmp/f; ls /tmp/f 2>/dev/null; echo $?"),
    ("shuf", "busybox shuf -i 1-5 | busybox sort -n | busybox tr -d '\\n'"),
    ("sleep", "busybox sleep 0.1; echo ok"),
    ("sort", "printf 'b\\na\\nc\\n' | busybox sort -r"),
    ("stat", "echo x > /tmp/f; busybox stat -c '%s %F' /tmp/f"),
    ("strings", "printf 'ab\\001cdefg\\n' | busybox strings -n 4"),
    ("sync", "busybox sync && echo ok"),
    ("tac", "printf '1\\n2\\n' | busybox tac"),
    ("tail", "busybox seq 10 | busybox tail -2"),
    ("tar", "cd /tmp && mkdir d && echo x > d/f && busybox tar cf t.tar d && rm -r d && busybox tar xf t.tar && cat d/f"),
    ("tee", "echo x | busybox tee /tmp/f >/dev/null; cat /tmp/f"),
    ("test", "busybox test -d /tmp && echo yes"),
    ("time", "busybox time busybox true 2>/dev/null; echo $?"),
    ("timeout", "busybox timeout 1 busybox sleep 5; echo $?"),
    ("touch", "busybox touch /tmp/f && ls /tmp/f"),
    ("tr", "echo hello | busybox tr a-z A-Z"),
    ("true", "busybox true; echo $?"),
    ("truncate", "busybox truncate -s 100 /tmp/f; busybox stat -c %s /tmp/f"),
    ("uname", "busybox uname -s"),
    ("uniq", "printf 'a\\na\\nb\\n' | busybox uniq -c"),
    ("unlink", "touch /tmp/f; busybox unlink /tmp/f; echo $?"),
    ("usleep", "busybox usleep 1000; echo $?"),
    ("uuencode", "echo x | busybox uuencode - | busybox uudecode -o - 2>/dev/null"),
    ("wc", "printf 'a b\\nc\\n' | busybox wc"),
    ("which", "busybox which busybox"),
    ("whoami", "busybox whoami"),
    ("xargs", "printf '1 2 3' | busybox xargs -n1 echo"),
    ("xxd", "echo ab | busybox xxd"),
    ("xz", "echo data | busybox xz -d 2>&1 | busybox head -c 0; echo $?"),
    ("yes", "busybox yes | busybox head -2"),
    ("sh: pipeline of three", "echo a | busybox cat | busybox cat"),
    ("sh: trap and subshell", "trap 'echo trapped' EXIT; (exit 2); echo $?"),
    ("sh: background and wait", "busybox sleep 0.1 & wait; echo done"),
    ("sh: here-document", "busybox cat <<EOF\nhere\nEOF"),
    ("sh: command substitution", "echo $(busybox echo nested)"),
    ("sh: while read loop", "busybox seq 3 | while read n; do echo $((n*n)); done"),
];

/// Python checks: a name and a program printing what both backends must print.
const PYTHON: &[(&str, &str)] = &[
    ("startup", "print('ok')"),
    ("json, re", "import json, re; print(json.dumps(re.findall(r'\\d', 'a1b2')))"),
    ("hashlib, hmac", "import hashlib, hmac; print(hmac.new(b'k', b'm', hashlib.sha256).hexdigest()[:12])"),
    ("zlib, gzip, bz2, lzma", "import zlib, gzip, bz2, lzma; d=b'x'*99; print(all(m.decompress(m.compress(d))==d for m in (zlib, gzip, bz2, lzma)))"),
    ("decimal, fractions, math", "import decimal, fractions, math; print(decimal.Decimal(1)/7, fractions.Fraction(3, 9), math.gcd(12, 18))"),
    ("datetime, time zones", "import datetime; print(datetime.datetime(2024,1,1,tzinfo=datetime.timezone.utc).isoformat())"),
    ("struct, array", "import struct, array; print(struct.unpack('<HI', b'\\x01\\x00\\x02\\x00\\x00\\x00'), array.array('i', [1,2]).tobytes().hex())"),
    ("sqlite3", "import sqlite3; c=sqlite3.connect(':memory:'); c.execute('create table t(x)'); c.execute('insert into t values (42)'); print(c.execute('select x from t').fetchone())"),
    ("csv, io", "import csv, io; r=list(csv.reader(io.StringIO('a,b\\n1,2\\n'))); print(r)"),
    ("xml.etree", "import xml.etree.ElementTree as E; print(E.fromstring('<a><b>t</b></a>').find('b').text)"),
    ("pickle, copy", "import pickle, copy; print(pickle.loads(pickle.dumps({'a': [1]})) == copy.deepcopy({'a': [1]}))"),
    ("random, secrets, uuid", "import random, secrets, uuid; random.seed(1); print(random.randint(1, 100), len(secrets.token_hex(8)), uuid.uuid4().version)"),
    ("pathlib, shutil, tempfile", "import pathlib, shutil, tempfile; d=pathlib.Path(tempfile.mkdtemp()); (d/'a').write_text('x'); shutil.copy(d/'a', d/'b'); print(sorted(p.name for p in d.iterdir())); shutil.rmtree(d)"),
    ("os.walk, os.scandir", "import os; os.makedirs('/tmp/w/x/y'); print([len(f) for _, _, f in os.walk('/tmp/w')], len(list(os.scandir('/tmp'))) > 0)"),
    ("threading", "import threading; r=[]; ts=[threading.Thread(target=r.append, args=(i,)) for i in range(8)]; [t.start() for t in ts]; [t.join() for t in ts]; print(sorted(r))"),
    ("concurrent.futures threads", "import concurrent.futures as f; print(sum(f.ThreadPoolExecutor(4).map(abs, range(-5, 5))))"),
    ("queue between threads", "import queue, threading; q=queue.Queue(); threading.Thread(target=lambda: q.put(7)).start(); print(q.get(timeout=5))"),
    ("subprocess", "import subprocess; print(subprocess.run(['echo', 'hi'], capture_output=True, text=True).stdout.strip())"),
    ("subprocess pipes", "import subprocess; p=subprocess.run('echo abc | tr a-z A-Z', shell=True, capture_output=True, text=True); print(p.stdout.strip(), p.returncode)"),
    ("os.fork, os.wait", "import os; pid=os.fork()\nif pid == 0: os._exit(3)\nprint(os.WEXITSTATUS(os.waitpid(pid, 0)[1]))"),
    ("signal handlers", "import signal, os; s=[]; signal.signal(signal.SIGUSR1, lambda *a: s.append(1)); os.kill(os.getpid(), signal.SIGUSR1); print(s)"),
    ("signal.alarm timeout", "import signal, time\nclass T(Exception): pass\ndef h(*a): raise T\nsignal.signal(signal.SIGALRM, h); signal.alarm(1)\ntry: time.sleep(5)\nexcept T: print('timed out')"),
    ("asyncio", "import asyncio; print(asyncio.run(asyncio.sleep(0.01, result='done')))"),
    ("socket.socketpair, selectors", "import socket, selectors; a,b=socket.socketpair(); s=selectors.DefaultSelector(); s.register(b, selectors.EVENT_READ); a.send(b'x'); print(len(s.select(1)), b.recv(1))"),
    ("select.epoll, poll", "import select, os; r,w=os.pipe(); e=select.epoll(); e.register(r); os.write(w, b'x'); print(len(e.poll(1)), len(select.poll().poll(0)))"),
    ("mmap (anonymous and file)", "import mmap; m=mmap.mmap(-1, 4096); m[:2]=b'ok'; open('/tmp/f','wb').write(b'file'); fo=open('/tmp/f','rb'); f=mmap.mmap(fo.fileno(), 0, prot=mmap.PROT_READ); print(m[:2], f[:4])"),
    ("resource, os.times", "import resource, os; print(resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 0, os.times().user >= 0)"),
    ("locale, encodings", "import locale, sys; locale.setlocale(locale.LC_ALL, ''); print(sys.getfilesystemencoding(), 'é'.encode())"),
    ("ctypes (libc)", "import ctypes, ctypes.util; libc=ctypes.CDLL(ctypes.util.find_library('c')); print(libc.strlen(b'abc'))"),
    ("unittest", "import unittest\nclass T(unittest.TestCase):\n    def test(self): self.assertEqual(1, 1)\nr=unittest.TextTestRunner(stream=open('/dev/null','w')).run(unittest.defaultTestLoader.loadTestsFromTestCase(T)); print(r.wasSuccessful())"),
    ("multiprocessing.Pool", "import multiprocessing as m\nif __name__ == '__main__':\n    with m.Pool(2) as p: print(p.map(abs, [-1, -2]))"),
    ("ssl (OpenSSL loads)", "import ssl; print(ssl.OPENSSL_VERSION.split()[0])"),
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `w` in `iso`: the outcome, or the error in words.
fn run(sb: &Sandbox, iso: IsolationRequest, mut w: Workload) -> Result<Outcome, String> {
    w.limits.wall_time = Some(Duration::from_secs(30));
    runtime()
        .block_on(sb.run(w.isolation(iso)))
        .map_err(|e| e.chain())
}

/// The cell of the micro-VM column.
fn verdict(reference: &Result<Outcome, String>, vm: &Result<Outcome, String>) -> String {
    let key = |o: &Outcome| (o.termination, o.exit_code, o.stdout.clone());
    match (reference, vm) {
        (_, Err(e)) => format!("❌ {}", e.lines().next().unwrap_or_default()),
        (Ok(c), Ok(v)) if key(c) == key(v) && c.success() => "✅".into(),
        (Ok(c), Ok(v)) if key(c) == key(v) => "✅ (the same failure)".into(),
        (Ok(c), Ok(v)) if c.termination == v.termination && c.exit_code == v.exit_code => format!(
            "⚠️ output differs: `{}`",
            String::from_utf8_lossy(&v.stdout)
                .trim()
                .replace('\n', "⏎")
                .chars()
                .take(40)
                .collect::<String>()
        ),
        (_, Ok(v)) => {
            let why = if v.termination == Termination::Signaled {
                format!("signal {}", v.signal.unwrap_or(-1))
            } else if v.termination != Termination::Exited {
                format!("{:?}", v.termination)
            } else {
                format!("exit {}", v.exit_code.unwrap_or(-1))
            };
            let err = String::from_utf8_lossy(&v.stderr);
            let first = err
                .lines()
                .last()
                .unwrap_or_default()
                .chars()
                .take(60)
                .collect::<String>();
            format!("❌ {why}: {}", first.replace('|', "\\|"))
        }
    }
}

fn reference_cell(c: &Result<Outcome, String>) -> &'static str {
    match c {
        Ok(o) if o.success() => "✅",
        Ok(_) => "❌ (fails on the host kernel too)",
        Err(_) => "❌ (cannot run)",
    }
}

fn main() {
    let sb = Sandbox::with_default_policy();
    let kvm = sb
        .probe()
        .into_iter()
        .find(|p| p.isolation == hybrid_sandbox::Isolation::MicroVm)
        .map(|p| p.available)
        .unwrap_or(false);
    let started = Instant::now();
    let mut summary = (0, 0);
    println!("### Busybox applets\n");
    println!("Each command runs as `busybox sh -c '...'`; the micro-VM passes when its exit status and stdout equal the container's.\n");
    println!("| applet | command | container | micro-VM |\n| --- | --- | --- | --- |");
    for (name, cmd) in APPLETS {
        let w = || Workload::new("busybox", ["sh", "-c", cmd]);
        let c = run(&sb, IsolationRequest::Container, w());
        let v = if kvm {
            verdict(&c, &run(&sb, IsolationRequest::MicroVm, w()))
        } else {
            "n/a (no KVM)".into()
        };
        summary.0 += 1;
        summary.1 += usize::from(v == "✅");
        println!(
            "| {name} | `{}` | {} | {v} |",
            cmd.replace('|', "\\|").replace('\n', "⏎"),
            reference_cell(&c)
        );
    }
    let applets = summary;
    summary = (0, 0);
    println!("\n### Python checks (`python3 -c`, Debian's dynamically linked python3.11)\n");
    println!("| check | container | micro-VM |\n| --- | --- | --- |");
    for (name, code) in PYTHON {
        let w = || Workload::new("python3", ["-c", code]);
        let c = run(&sb, IsolationRequest::Container, w());
        let v = if kvm {
            verdict(&c, &run(&sb, IsolationRequest::MicroVm, w()))
        } else {
            "n/a (no KVM)".into()
        };
        summary.0 += 1;
        summary.1 += usize::from(v == "✅");
        println!("| {name} | {} | {v} |", reference_cell(&c));
    }
    // The same generated section the doc holds (checked current by the compat_doc test).
    println!("\n<!-- BEGIN GENERATED: syscalls -->");
    print!("{}", hsb_tests::compat_doc::syscalls_markdown());
    println!("<!-- END GENERATED: syscalls -->\n");
    println!(
        "Summary: busybox {}/{} and Python {}/{} behave as in the container (table made in {:.0} s).",
        applets.1,
        applets.0,
        summary.1,
        summary.0,
        started.elapsed().as_secs_f64()
    );
}
