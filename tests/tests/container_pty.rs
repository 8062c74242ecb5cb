//! Pseudo-terminals in the container: every sandbox (a run's too) has its own devpts
//! instance. Real programs get terminals (`openpty`, `script`-like use through Python's
//! pty module); a sandbox sees none of the host's terminals nor another sandbox's, and
//! cannot exhaust the kernel's pool that every container on the host shares.

use hsb_tests::*;
use hybrid_sandbox::IsolationRequest;

fn container(w: Workload) -> Workload {
    w.isolation(IsolationRequest::Container)
}

#[test]
fn a_run_has_working_terminals() {
    let o = run(container(Workload::new(
        "/usr/bin/python3",
        [
            "-c",
            "import os, pty, sys, tty\n\
             m, s = os.openpty()\n\
             print(os.ttyname(s), os.isatty(s))\n\
             os.write(m, b'typed\\n')\n\
             print(os.read(s, 64))\n\
             pid, fd = pty.fork()\n\
             if pid == 0:\n\
             \x20   print('child on', os.ttyname(0), os.isatty(1))\n\
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
    )));
    let out = stdout(&o);
    assert_eq!(
        o.exit_code,
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.starts_with("/dev/pts/0 True\n"), "{out}");
    assert!(out.contains("b'typed\\n'"), "{out}");
    assert!(out.contains("child on /dev/pts/1 True 7"), "{out}");
}

#[test]
fn no_host_terminal_and_no_other_sandboxs_terminal_is_visible() {
    // The host holds a terminal open while the sandbox looks.
    let host = host_pty().expect("a host pty");
    let host_name = std::fs::read_link(format!("/proc/self/fd/{}", host.1)).unwrap();
    // A sandbox holding its own terminal open, and a second one looking at /dev/pts.
    let rt = runtime();
    let sb = sandbox();
    rt.block_on(async {
        let mut holder = sb
            .spawn(container(sh(
                "exec python3 -c 'import os,time; m,s=os.openpty(); print(os.ttyname(s), flush=True); time.sleep(30)'",
            )))
            .await
            .expect("spawn");
        let mut out = holder.take_output().expect("output");
        let first = out.recv().await.expect("the holder's terminal");
        assert!(
            String::from_utf8_lossy(&first.data).starts_with("/dev/pts/0"),
            "{first:?}"
        );
        let o = sb
            .run(container(sh(
                "ls /dev/pts | sort | tr '\\n' ' '; echo; \
                 for n in 0 1 2 3 4 5 6 7 8 9; do \
                   [ -e /dev/pts/$n ] && echo present-$n; \
                   ( : > /dev/pts/$n ) 2>/dev/null && echo opened-$n; done; \
                 cat /proc/tty/drivers >/dev/null 2>&1; exit 0",
            )))
            .await
            .expect("run");
        let seen = stdout(&o);
        assert_eq!(seen.lines().next(), Some("ptmx "), "{seen}");
        assert!(!seen.contains("present-") && !seen.contains("opened-"), "{seen}");
        assert!(host_name.starts_with("/dev/pts/"), "{host_name:?}");
        holder.kill_handle().kill();
        let _ = holder.wait().await;
    });
    close(host);
}

#[test]
fn a_sandbox_cannot_exhaust_the_hosts_terminals() {
    let o = run(container(Workload::new(
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
    )));
    let out = stdout(&o);
    let (n, errno) = out
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("no limit met: {out}"));
    let n: usize = n.parse().unwrap();
    assert!((1..=64).contains(&n), "{n} terminals held: {out}");
    // ENOSPC from the instance's own `max`.
    assert_eq!(errno, libc::ENOSPC.to_string(), "{out}");
    // The host can still make terminals.
    close(host_pty().expect("the host still makes terminals"));
}

/// A terminal of the host's own devpts: (master, slave).
fn host_pty() -> std::io::Result<(i32, i32)> {
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty writes two descriptors into the out-pointers, which are valid; the
    // name, termios and size pointers are NULL (allowed).
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((m, s))
}

fn close((m, s): (i32, i32)) {
    // SAFETY: closing a descriptor this test opened and owns.
    unsafe { libc::close(m) };
    // SAFETY: as above.
    unsafe { libc::close(s) };
}
