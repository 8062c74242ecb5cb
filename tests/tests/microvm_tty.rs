//! Terminals in the micro-VM: a live exec started with a tty runs on a terminal whose
//! line discipline is the VMM's (echo, line editing, ^C to the foreground group, raw
//! mode, window size and SIGWINCH), driven here as a person at a keyboard would:
//! bytes typed into the exec's stdin, the screen read from its output.

use std::time::Duration;

use hsb_tests::*;
use hybrid_sandbox::{
    ExecRequest, Execution, IsolationRequest, Live, LiveOptions, OutputStream, Stdin, StdinWriter,
    TtySize,
};

/// Whether the micro-VM runs here; the tests of this file run one at a time.
fn ready() -> Option<std::sync::MutexGuard<'static, ()>> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if !backend_ready(IsolationRequest::MicroVm) {
        return None;
    }
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

async fn create() -> Live {
    sandbox()
        .create(
            Workload::default().isolation(IsolationRequest::MicroVm),
            LiveOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("create: {}", e.chain()))
}

/// An exec on a terminal: what was typed, and the screen so far.
struct Term {
    e: Box<dyn Execution>,
    keys: StdinWriter,
    out: OutputStream,
    screen: String,
}

impl Term {
    async fn start(live: &Live, argv: &[&str], size: TtySize) -> Term {
        let mut req = ExecRequest::new(argv.iter().copied());
        req.tty = Some(size);
        req.stdin = Stdin::Stream;
        let mut e = live
            .exec_streaming(req)
            .await
            .unwrap_or_else(|err| panic!("exec on a tty: {}", err.chain()));
        let keys = e.take_stdin().expect("stdin of a tty exec");
        let out = e.take_output().expect("output of a tty exec");
        Term {
            e,
            keys,
            out,
            screen: String::new(),
        }
    }

    async fn type_(&self, s: &[u8]) {
        self.keys.write(s.to_vec()).await.expect("typing");
    }

    /// Reads the screen until `want` appears after what was already seen; answers
    /// what came since the mark.
    async fn until(&mut self, mark: usize, want: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !self.screen[mark..].contains(want) {
            match tokio::time::timeout_at(deadline, self.out.recv()).await {
                Ok(Some(c)) => self.screen.push_str(&String::from_utf8_lossy(&c.data)),
                Ok(None) => panic!("the exec ended before {want:?}: {:?}", self.screen),
                Err(_) => panic!("no {want:?} on the screen: {:?}", self.screen),
            }
        }
        self.screen[mark..].to_string()
    }

    fn mark(&self) -> usize {
        self.screen.len()
    }
}

#[test]
fn an_interactive_shell_on_the_terminal() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create().await;
        let mut t = Term::start(&live, &["busybox", "sh"], TtySize { rows: 24, cols: 80 }).await;
        // Typed keys come back (echo) and the command runs.
        let m = t.mark();
        t.type_(b"echo hello$((40+2))\r").await;
        let seen = t.until(m, "hello42\r\n").await;
        assert!(seen.contains("echo hello$((40+2))"), "no echo: {seen:?}");
        // Its descriptors are a terminal with a name, and /dev/tty is it.
        let m = t.mark();
        t.type_(b"tty; busybox readlink /proc/self/fd/1; test -t 0 && test -t 2 && echo on-a-tty; echo via >/dev/tty; echo done-$((0+1))\r")
            .await;
        let seen = t.until(m, "done-1\r\n").await;
        assert!(seen.contains("\r\n/dev/pts/0\r\n/dev/pts/0\r\non-a-tty\r\nvia\r\n"), "{seen:?}");
        // The size is the exec's, and follows a resize.
        let m = t.mark();
        t.type_(b"busybox stty size\r").await;
        assert!(t.until(m, "24 80\r\n").await.contains("24 80"));
        t.e.resize(TtySize {
            rows: 40,
            cols: 100,
        })
        .unwrap();
        let m = t.mark();
        t.type_(b"busybox stty size\r").await;
        t.until(m, "40 100\r\n").await;
        // ^C interrupts the foreground job; the shell goes on.
        let m = t.mark();
        t.type_(b"busybox sleep 100; echo after-sleep $?\r").await;
        t.until(m, "sleep 100").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let m = t.mark();
        t.type_(b"\x03").await;
        t.until(m, "^C").await;
        let m = t.mark();
        t.type_(b"echo a\"\"live\r").await;
        let seen = t.until(m, "alive\r\n").await;
        assert!(!seen.contains("after-sleep 0"), "the sleep was not interrupted: {seen:?}");
        // Line editing: erase and kill, typed before the line is sent.
        let m = t.mark();
        t.type_(b"echo wrong\x15echo rigth\x7f\x7fht\r").await;
        let seen = t.until(m, "right\r\n").await;
        assert!(!seen.contains("wrong\r\n"), "{seen:?}");
        t.type_(b"exit 3\r").await;
        let o = t.e.wait().await.unwrap();
        assert_eq!(o.exit_code, Some(3), "{o:?}");
        live.destroy().await.unwrap();
    });
}

#[test]
fn canonical_input_and_end_of_file() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create().await;
        // `cat` on a cooked terminal: a line at a time; ^D at a line's start ends it.
        let mut t = Term::start(
            &live,
            &[
                "busybox",
                "sh",
                "-c",
                "busybox cat > /tmp/got; echo cat-ended",
            ],
            TtySize::default(),
        )
        .await;
        t.type_(b"one\rtwo\x7fo\r\x04").await;
        let m = 0;
        let seen = t.until(m, "cat-ended").await;
        assert!(seen.starts_with("one\r\ntwo\x08 \x08o\r\n"), "{seen:?}");
        let o = t.e.wait().await.unwrap();
        assert_eq!(o.exit_code, Some(0));
        assert_eq!(live.read_file("/tmp/got").await.unwrap(), b"one\ntwo\n");
        live.destroy().await.unwrap();
    });
}

#[test]
fn raw_mode_passes_bytes_unprocessed() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create().await;
        let mut t = Term::start(
            &live,
            &[
                "busybox",
                "sh",
                "-c",
                "busybox stty raw -echo; echo ready; busybox head -c 7 | busybox od -An -tx1; busybox stty sane; echo; echo end",
            ],
            TtySize::default(),
        )
        .await;
        t.until(0, "ready").await;
        let m = t.mark();
        // ^C, CR, LF, DEL, ^D, ^Z and a byte: data, nothing echoed, no signal.
        t.type_(b"\x03\r\n\x7f\x04\x1ax").await;
        let seen = t.until(m, "end").await;
        assert!(seen.contains("03 0d 0a 7f 04 1a 78"), "{seen:?}");
        assert!(!seen.contains("^C"), "{seen:?}");
        let o = t.e.wait().await.unwrap();
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        live.destroy().await.unwrap();
    });
}

#[test]
fn python_sees_a_terminal() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create().await;
        let mut t = Term::start(
            &live,
            &[
                "python3",
                "-c",
                "import os, sys, termios; print(os.isatty(0), os.get_terminal_size()); \
                 print(os.ttyname(1)); a = termios.tcgetattr(0); \
                 print('icanon', bool(a[3] & termios.ICANON))",
            ],
            TtySize { rows: 30, cols: 90 },
        )
        .await;
        let seen = t.until(0, "icanon").await;
        let o = t.e.wait().await.unwrap();
        let all = format!("{seen}{}", String::from_utf8_lossy(&o.stdout));
        assert_eq!(o.exit_code, Some(0), "{all}");
        assert!(
            all.contains(
                "True os.terminal_size(columns=90, lines=30)\r\n/dev/pts/0\r\nicanon True"
            ),
            "{all:?}"
        );
        live.destroy().await.unwrap();
    });
}

#[test]
fn sigwinch_reaches_the_foreground_and_odd_ioctls_are_refused() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create().await;
        let script = "trap 'echo winch; busybox stty size' WINCH; echo armed; \
                      while :; do busybox sleep 0.05; [ -e /tmp/stop ] && break; done";
        let mut t = Term::start(&live, &["busybox", "sh", "-c", script], TtySize::default()).await;
        t.until(0, "armed").await;
        let m = t.mark();
        t.e.resize(TtySize {
            rows: 50,
            cols: 132,
        })
        .unwrap();
        t.until(m, "50 132").await;
        live.write_file("/tmp/stop", "").await.unwrap();
        let o = t.e.wait().await.unwrap();
        assert_eq!(o.exit_code, Some(0));
        // A second exec on a terminal at the same time gets the next name; typing
        // into a terminal (TIOCSTI) is refused; an exec without one has none.
        let mut a = Term::start(&live, &["busybox", "sh"], TtySize::default()).await;
        let mut b = Term::start(
            &live,
            &[
                "python3",
                "-c",
                "import fcntl, termios, os\n\
               try:\n    fcntl.ioctl(0, termios.TIOCSTI, b'x'); print('sti-allowed')\n\
               except OSError as e:\n    print('sti', e.errno)\n\
               print(os.ttyname(0))",
            ],
            TtySize::default(),
        )
        .await;
        let seen = b.until(0, "/dev/pts/").await;
        assert!(seen.contains("sti 5"), "{seen:?}");
        b.until(0, "/dev/pts/1").await;
        b.e.wait().await.unwrap();
        a.type_(b"exit\r").await;
        a.e.wait().await.unwrap();
        let mut req = ExecRequest::new([
            "busybox",
            "sh",
            "-c",
            "test -t 0 || echo no-tty; busybox tty",
        ]);
        req.stdin = Stdin::Null;
        let o = live.exec_with(req).await.unwrap();
        assert!(stdout(&o).starts_with("no-tty\n"), "{o:?}");
        assert_ne!(o.exit_code, Some(0));
        live.destroy().await.unwrap();
    });
}

#[test]
fn job_control_stops_and_resumes_the_foreground_job() {
    let Some(_serial) = ready() else {
        return;
    };
    runtime().block_on(async {
        let live = create().await;
        let mut t = Term::start(&live, &["busybox", "sh"], TtySize::default()).await;
        // The shell moves the job to a group of its own and gives it the terminal.
        let m = t.mark();
        t.type_(b"busybox sleep 100\r").await;
        t.until(m, "sleep 100").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // ^Z stops it (SIGTSTP to the foreground group, not the shell).
        let m = t.mark();
        t.type_(b"\x1a").await;
        let seen = t.until(m, "Stopped").await;
        assert!(seen.contains("^Z"), "{seen:?}");
        // The shell has the terminal back; the job can be killed by job number.
        let m = t.mark();
        t.type_(b"kill -9 %1; wait; echo job-$((6+1))-gone\r").await;
        t.until(m, "job-7-gone\r\n").await;
        // A background job that reads the terminal is stopped by SIGTTIN.
        let m = t.mark();
        t.type_(b"busybox cat &\r").await;
        t.until(m, "cat &").await;
        let m = t.mark();
        t.type_(b"sleep 1; jobs\r").await;
        let seen = t.until(m, "Stopped").await;
        assert!(seen.contains("cat"), "{seen:?}");
        t.type_(b"kill -9 %1; exit 0\r").await;
        let o = t.e.wait().await.unwrap();
        assert_eq!(o.exit_code, Some(0), "{o:?}");
        live.destroy().await.unwrap();
    });
}

/// What a program on the terminal tries against it: typing into it (`TIOCSTI`),
/// redirecting the console, hanging it up, locking its settings, and, from a new
/// session, stealing it (`TIOCSCTTY` with force), taking its foreground, or reaching
/// it as `/dev/tty`. Each is refused with Linux's errno for an unprivileged process.
#[test]
fn a_program_cannot_take_over_the_terminal() {
    let Some(_serial) = ready() else {
        return;
    };
    let script = r#"
import errno, fcntl, os, termios
def attempt(name, f):
    try:
        f()
        return name + ":ok"
    except OSError as e:
        return name + ":" + errno.errorcode[e.errno]
r = [attempt("sti", lambda: fcntl.ioctl(0, termios.TIOCSTI, b"x")),
     attempt("cons", lambda: fcntl.ioctl(0, termios.TIOCCONS)),
     attempt("vhangup", lambda: fcntl.ioctl(0, 0x5437)),
     attempt("lock", lambda: fcntl.ioctl(0, 0x5457, bytes(36)))]
pid = os.fork()
if pid == 0:
    os.setsid()
    c = [attempt("steal", lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 1)),
         attempt("fg", lambda: os.tcsetpgrp(0, os.getpgrp())),
         attempt("devtty", lambda: os.open("/dev/tty", os.O_RDWR))]
    os.write(1, (" ".join(c) + "\n").encode())
    os._exit(0)
os.waitpid(pid, 0)
print(" ".join(r), "fg-still", os.tcgetpgrp(0) == os.getpgrp())
"#;
    runtime().block_on(async {
        let live = create().await;
        let mut t = Term::start(&live, &["python3", "-c", script], TtySize::default()).await;
        let seen = t.until(0, "fg-still").await;
        let o = t.e.wait().await.unwrap();
        let all = format!("{seen}{}", String::from_utf8_lossy(&o.stdout));
        assert_eq!(o.exit_code, Some(0), "{all}");
        assert!(
            all.contains("steal:EPERM fg:ENOTTY devtty:ENXIO"),
            "{all:?}"
        );
        assert!(
            all.contains("sti:EIO cons:EPERM vhangup:EPERM lock:EPERM fg-still True"),
            "{all:?}"
        );
        // A flood typed without a line end holds at most a line: the reader gets
        // 4095 bytes and the end of the line, the VMM no more.
        let mut t = Term::start(
            &live,
            &[
                "busybox",
                "sh",
                "-c",
                "busybox stty -echo; echo ready; read -r x; echo ${#x}",
            ],
            TtySize::default(),
        )
        .await;
        t.until(0, "ready").await;
        let m = t.mark();
        for _ in 0..64 {
            t.type_(&[b'x'; 16 * 1024]).await;
        }
        t.type_(b"\r").await;
        t.until(m, "4095").await;
        t.e.wait().await.unwrap();
        live.destroy().await.unwrap();
    });
}

fn vm_run(w: Workload) -> Outcome {
    run(w.isolation(IsolationRequest::MicroVm))
}

/// Programs open pseudo-terminals of their own (`/dev/ptmx`), as in the container
/// backend: `openpty`, typing into the master, Python's `pty.fork` (a child on the
/// slave as its controlling terminal, the master reading it to the end, then `EIO`).
#[test]
fn a_run_opens_pseudo_terminals_of_its_own() {
    let Some(_serial) = ready() else {
        return;
    };
    let o = vm_run(Workload::new(
        "/usr/bin/python3",
        [
            "-c",
            "import os, pty, sys, tty\n\
             m, s = os.openpty()\n\
             print(os.ttyname(s), os.isatty(s))\n\
             os.write(m, b'typed\\n')\n\
             print(os.read(s, 64), os.read(m, 64))\n\
             pid, fd = pty.fork()\n\
             if pid == 0:\n\
             \x20   print('child on', os.ttyname(0), os.isatty(1), os.getsid(0) == os.getpid())\n\
             \x20   sys.stdout.flush()\n\
             \x20   os._exit(7)\n\
             out = b''\n\
             while True:\n\
             \x20   try:\n\
             \x20       d = os.read(fd, 1024)\n\
             \x20   except OSError:\n\
             \x20       break\n\
             \x20   if not d:\n\
             \x20       break\n\
             \x20   out += d\n\
             print(out.decode().strip(), os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n",
        ],
    ));
    let out = stdout(&o);
    assert_eq!(
        o.exit_code,
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.starts_with("/dev/pts/0 True\n"), "{out}");
    // The slave read the line; the master read its echo (ONLCR: CR LF).
    assert!(out.contains("b'typed\\n' b'typed\\r\\n'"), "{out}");
    assert!(out.contains("child on /dev/pts/1 True True 7"), "{out}");
}

/// A program cannot make terminals without bound: 64 at most, then `ENOSPC`.
#[test]
fn a_program_cannot_open_terminals_without_bound() {
    let Some(_serial) = ready() else {
        return;
    };
    let o = vm_run(Workload::new(
        "/usr/bin/python3",
        [
            "-c",
            "import os\n\
             held = []\n\
             try:\n\
             \x20   for i in range(10000):\n\
             \x20       held.append(os.openpty())\n\
             except OSError as e:\n\
             \x20   print(len(held), e.errno)\n",
        ],
    ));
    let out = stdout(&o);
    assert_eq!(out.trim(), format!("64 {}", libc::ENOSPC), "{out}");
}
