//! The agent scenario through the CLI client (`hsb sandbox ...`) against a real
//! `hsb serve`: create, cp a script in, exec it, cp its file out, exec again with state
//! kept, a background process across execs, pause and resume, exit statuses as `hsb
//! run`, stdin, a terminal, ls, rm.

mod serve_util;

use std::process::Output;
use std::time::Duration;

use serve_util::*;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn agent_scenario_through_the_cli() {
    let server = Server::start(&[]);
    let local = tempfile::tempdir().unwrap();
    for iso in isolations() {
        let o = server.hsb(&[
            "sandbox",
            "create",
            "--isolation",
            iso,
            "--json",
            "--idle-timeout",
            "10m",
        ]);
        assert!(o.status.success(), "{}", err(&o));
        let info: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
        assert_eq!(info["isolation"], iso);
        assert!(
            info["enforcement"]["isolation"] == iso && info["decision"]["reasons"].is_array(),
            "{info}"
        );
        let id = info["id"].as_str().unwrap().to_string();
        // A script in, run, its file out.
        let script = local.path().join("agent.py");
        std::fs::write(&script, "import sys\nopen('/tmp/result.txt','a').write(sys.argv[1] + '\\n')\nprint(len(open('/tmp/result.txt').read().split()))\n").unwrap();
        let o = server.hsb(&[
            "sandbox",
            "cp",
            script.to_str().unwrap(),
            &format!("{id}:/tmp/agent.py"),
        ]);
        assert!(o.status.success(), "{}", err(&o));
        let o = server.hsb(&[
            "sandbox",
            "exec",
            &id,
            "--",
            "python3",
            "/tmp/agent.py",
            "first",
        ]);
        assert_eq!(o.status.code(), Some(0), "{iso}: {}", err(&o));
        assert_eq!(out(&o), "1\n");
        let fetched = local.path().join(format!("result-{iso}.txt"));
        let o = server.hsb(&[
            "sandbox",
            "cp",
            &format!("{id}:/tmp/result.txt"),
            fetched.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", err(&o));
        assert_eq!(std::fs::read_to_string(&fetched).unwrap(), "first\n");
        // Again: the state is kept.
        let o = server.hsb(&[
            "sandbox",
            "exec",
            &id,
            "--",
            "python3",
            "/tmp/agent.py",
            "second",
        ]);
        assert_eq!(out(&o), "2\n");
        // Exit statuses as `hsb run`.
        let o = server.hsb(&[
            "sandbox",
            "exec",
            &id,
            "--",
            "sh",
            "-c",
            "echo oops >&2; exit 3",
        ]);
        assert_eq!(o.status.code(), Some(3));
        assert_eq!(err(&o), "oops\n");
        let o = server.hsb(&["sandbox", "exec", &id, "--", "no-such-program"]);
        assert_eq!(o.status.code(), Some(127), "{}", err(&o));
        assert!(err(&o).contains("not found"), "{}", err(&o));
        let o = server.hsb(&[
            "sandbox",
            "exec",
            "--wall-time",
            "300ms",
            &id,
            "--",
            "sleep",
            "30",
        ]);
        assert_eq!(o.status.code(), Some(124), "{}", err(&o));
        let o = server.hsb(&["sandbox", "exec", &id, "--", "sh", "-c", "kill -9 $$"]);
        assert_eq!(o.status.code(), Some(137));
        // --json: the outcome of `hsb run --json`.
        let o = server.hsb(&[
            "sandbox",
            "exec",
            "--json",
            "--env",
            "K=v",
            "--cwd",
            "/tmp",
            &id,
            "--",
            "sh",
            "-c",
            "echo $K; pwd",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
        assert_eq!(
            (v["termination"].as_str(), v["stdout"].as_str()),
            (Some("exited"), Some("v\n/tmp\n")),
            "{v}"
        );
        assert_eq!(v["isolation"], iso);
        let o = server.hsb(&["sandbox", "exec", "--json", &id, "--", "no-such-program"]);
        assert_eq!(o.status.code(), Some(127));
        let v: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
        assert_eq!(
            (v["error"]["kind"].as_str(), v["exit_status"].as_i64()),
            (Some("program_not_found"), Some(127)),
            "{v}"
        );
        // stdin from a file, and from hsb's own stdin.
        let input = local.path().join("in.txt");
        std::fs::write(&input, "from a file\n").unwrap();
        let o = server.hsb(&[
            "sandbox",
            "exec",
            "--stdin",
            input.to_str().unwrap(),
            &id,
            "--",
            "cat",
        ]);
        assert_eq!(out(&o), "from a file\n");
        let o = server.hsb_with(
            &["sandbox", "exec", "--stdin", "-", &id, "--", "wc", "-c"],
            Some(&[b'z'; 100_000]),
        );
        assert_eq!(out(&o).trim(), "100000");
        // A terminal (no local one: its default size).
        let o = server.hsb(&[
            "sandbox",
            "exec",
            "--tty",
            &id,
            "--",
            "sh",
            "-c",
            "stty size; test -t 0 && test -t 1 && echo tty",
        ]);
        assert_eq!(o.status.code(), Some(0), "{iso}: {}", err(&o));
        assert_eq!(out(&o).replace('\r', ""), "24 80\ntty\n", "{iso}");
        // A background process survives between execs; pause stops it; resume goes on.
        let o = server.hsb(&[
            "sandbox",
            "exec",
            &id,
            "--",
            "sh",
            "-c",
            "(while :; do date +%s%N >> /tmp/ticks; sleep 0.02; done) >/dev/null 2>&1 &",
        ]);
        assert_eq!(o.status.code(), Some(0));
        std::thread::sleep(Duration::from_millis(300));
        let count = || {
            let o = server.hsb(&["sandbox", "exec", &id, "--", "wc", "-l", "/tmp/ticks"]);
            out(&o)
                .split_whitespace()
                .next()
                .unwrap_or("0")
                .parse::<u64>()
                .unwrap_or(0)
        };
        let before = count();
        assert!(before > 0);
        assert!(server.hsb(&["sandbox", "pause", &id]).status.success());
        let o = server.hsb(&["sandbox", "exec", &id, "--", "true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(err(&o).contains("paused"), "{}", err(&o));
        let o = server.hsb(&["sandbox", "ls", "--json"]);
        let list: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|s| s["id"] == id.as_str() && s["state"] == "paused"),
            "{list}"
        );
        std::thread::sleep(Duration::from_millis(400));
        assert!(server.hsb(&["sandbox", "resume", &id]).status.success());
        let after_pause = count();
        // While paused (400 ms, 20 ms per tick) nothing was written: at most the ticks
        // of the moments around the two counts.
        assert!(
            after_pause < before + 10,
            "{iso}: {before} then {after_pause} ticks across a pause"
        );
        // It goes on after resume: wait for progress (a loaded machine may take a while
        // to schedule the workload again; only "never" is a failure).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut now = count();
        while now <= after_pause + 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            now = count();
        }
        assert!(
            now > after_pause + 3,
            "{iso}: resume did not continue it ({after_pause} then {now} ticks in 20 s)"
        );
        // Directories both ways.
        let tree = local.path().join(format!("tree-{iso}"));
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("a.txt"), "A").unwrap();
        std::fs::write(tree.join("sub/b.txt"), "B").unwrap();
        let o = server.hsb(&[
            "sandbox",
            "cp",
            tree.to_str().unwrap(),
            &format!("{id}:/tmp/tree"),
        ]);
        assert!(o.status.success(), "{}", err(&o));
        let o = server.hsb(&[
            "sandbox",
            "exec",
            &id,
            "--",
            "cat",
            "/tmp/tree/a.txt",
            "/tmp/tree/sub/b.txt",
        ]);
        assert_eq!(out(&o), "AB");
        let back = local.path().join(format!("back-{iso}"));
        let o = server.hsb(&[
            "sandbox",
            "cp",
            &format!("{id}:/tmp/tree"),
            back.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", err(&o));
        assert_eq!(
            std::fs::read_to_string(back.join("sub/b.txt")).unwrap(),
            "B"
        );
        // Modes come out as they are in the sandbox (as docker cp keeps them).
        let o = server.hsb(&[
            "sandbox",
            "exec",
            &id,
            "--",
            "sh",
            "-c",
            "printf '#!/bin/sh\\n' > /tmp/run.sh && chmod 754 /tmp/run.sh && mkdir -m 710 /tmp/d && chmod 600 /tmp/tree/a.txt",
        ]);
        assert!(o.status.success(), "{}", err(&o));
        let script = local.path().join(format!("run-{iso}.sh"));
        let dir = local.path().join(format!("d-{iso}"));
        let again = local.path().join(format!("again-{iso}"));
        for (from, to) in [
            ("/tmp/run.sh", &script),
            ("/tmp/d", &dir),
            ("/tmp/tree", &again),
        ] {
            let o = server.hsb(&[
                "sandbox",
                "cp",
                &format!("{id}:{from}"),
                to.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", err(&o));
        }
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&script), 0o754, "{iso}: a copied file's mode");
        assert_eq!(mode(&dir), 0o710, "{iso}: a copied directory's mode");
        assert_eq!(
            mode(&again.join("a.txt")),
            0o600,
            "{iso}: a file in a copied tree"
        );
        // ls, then rm: gone.
        let o = server.hsb(&["sandbox", "ls"]);
        assert!(out(&o).contains(&id), "{}", out(&o));
        assert!(server.hsb(&["sandbox", "rm", &id]).status.success());
        let o = server.hsb(&["sandbox", "exec", &id, "--", "true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(err(&o).contains("no sandbox"), "{}", err(&o));
    }
}

#[test]
fn the_tty_follows_the_local_terminal() {
    // hsb sandbox exec --tty on a real local terminal (a pty made here): raw mode, its
    // size, and a resize (SIGWINCH) forwarded; in both backends (the micro-VM's
    // terminal is the VMM's own).
    let server = Server::start(&[]);
    for iso in isolations() {
        tty_follows_the_local_terminal(&server, iso);
    }
}

fn tty_follows_the_local_terminal(server: &Server, iso: &str) {
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd};
    let o = server.hsb(&["sandbox", "create", "--isolation", iso]);
    assert!(o.status.success(), "{iso}: {}", err(&o));
    let id = out(&o).trim().to_string();
    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: 33,
            ws_col: 99,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )
    .unwrap();
    let slave = pty.slave;
    let dup = |fd: &std::os::fd::OwnedFd| std::process::Stdio::from(fd.try_clone().unwrap());
    let mut child = std::process::Command::new(HSB)
        .args([
            "sandbox",
            "exec",
            "--tty",
            &id,
            "--",
            "sh",
            "-c",
            "stty size; read x; stty size; echo bye",
        ])
        .env("HSB_SERVER", &server.url)
        .stdin(dup(&slave))
        .stdout(dup(&slave))
        .stderr(dup(&slave))
        .spawn()
        .unwrap();
    drop(slave);
    // SAFETY: openpty gave us the master; this File owns it from here on.
    let mut master =
        unsafe { std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(pty.master)) };
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut read_until = |master: &mut std::fs::File, seen: &mut Vec<u8>, want: &str| {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(seen).contains(want) && std::time::Instant::now() < end {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    read_until(&mut master, &mut seen, "33 99");
    assert!(
        String::from_utf8_lossy(&seen).contains("33 99"),
        "{:?}",
        String::from_utf8_lossy(&seen)
    );
    // Resize the local terminal: hsb gets SIGWINCH and forwards the size.
    let ws = libc::winsize {
        ws_row: 44,
        ws_col: 111,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`, which lives for the call.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0);
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGWINCH) };
    std::thread::sleep(Duration::from_millis(300));
    master.write_all(b"\r").unwrap();
    read_until(&mut master, &mut seen, "bye");
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(text.contains("44 111"), "{text:?}");
    let st = child.wait().unwrap();
    assert!(st.success(), "{iso}: {st}: {text:?}");
}

#[test]
fn control_characters_to_a_terminal_are_shown_not_obeyed() {
    // As `hsb run`: without --tty, a command's escape sequences reach a local terminal
    // as visible text; pipes get the exact bytes.
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let server = Server::start(&[]);
    let id = out(&server.hsb(&["sandbox", "create"])).trim().to_string();
    let script = "printf 'a\\033]0;pwned\\007b\\n'";
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::process::Stdio::from(pty.slave.try_clone().unwrap());
    let mut child = std::process::Command::new(HSB)
        .args(["sandbox", "exec", &id, "--", "sh", "-c", script])
        .env("HSB_SERVER", &server.url)
        .stdout(slave)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(pty.slave);
    // SAFETY: openpty gave us the master; this File owns it from here on.
    let mut master =
        unsafe { std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(pty.master)) };
    let st = child.wait().unwrap();
    assert!(st.success());
    let mut seen = vec![0u8; 4096];
    let n = master.read(&mut seen).unwrap();
    let text = String::from_utf8_lossy(&seen[..n]).into_owned();
    assert!(text.contains("a^[]0;pwned^Gb"), "{text:?}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    // To a pipe: the exact bytes.
    let o = server.hsb(&["sandbox", "exec", &id, "--", "sh", "-c", script]);
    assert_eq!(o.stdout, b"a\x1b]0;pwned\x07b\n");
}

/// A terminal exec that ends at once while the client is still sending (its stdin's
/// end, the terminal size): the server's close must not lose the outcome it sent.
#[test]
fn a_quick_terminal_exec_keeps_its_outcome() {
    let server = Server::start(&[]);
    let o = server.hsb(&["sandbox", "create", "--isolation", "container"]);
    assert!(o.status.success(), "{}", err(&o));
    let id = out(&o).trim().to_string();
    // Four at once, to load the machine as CI does.
    std::thread::scope(|s| {
        for t in 0..4 {
            let (server, id) = (&server, &id);
            s.spawn(move || {
                for i in 0..25 {
                    let o =
                        server.hsb(&["sandbox", "exec", "--tty", id, "--", "sh", "-c", "exit 3"]);
                    assert_eq!(o.status.code(), Some(3), "exec {t}/{i}: {}", err(&o));
                }
            });
        }
    });
    assert!(server.hsb(&["sandbox", "rm", &id]).status.success());
}

/// `hsb sandbox update` (`POST /v1/sandboxes/{id}/limits`): a container's pids limit
/// lowered under a running sandbox stops its forks, raised lets them through; a
/// micro-VM says its limits are fixed; no limit given, or an unknown sandbox, is an
/// error that says so.
#[test]
fn limits_change_through_the_server() {
    let server = Server::start(&[]);
    let forks = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; wait";
    for iso in isolations() {
        let o = server.hsb(&["sandbox", "create", "--isolation", iso, "--pids", "64"]);
        assert!(o.status.success(), "{}", err(&o));
        let id = out(&o).trim().to_string();
        let o = server.hsb(&["sandbox", "update", "--pids", "4", &id]);
        if iso == "microvm" {
            assert_eq!(o.status.code(), Some(125), "{}", err(&o));
            assert!(err(&o).contains("fixed when it is created"), "{}", err(&o));
            assert!(server.hsb(&["sandbox", "rm", &id]).status.success());
            continue;
        }
        assert!(o.status.success(), "{}", err(&o));
        let o = server.hsb(&["sandbox", "exec", &id, "--", "sh", "-c", forks]);
        assert!(
            err(&o).contains("fork"),
            "10 children under pids 4: {}",
            err(&o)
        );
        let o = server.hsb(&[
            "sandbox", "update", "--pids", "64", "--memory", "512MiB", &id,
        ]);
        assert!(o.status.success(), "{}", err(&o));
        let o = server.hsb(&["sandbox", "exec", &id, "--", "sh", "-c", forks]);
        assert!(o.status.success() && err(&o).is_empty(), "{}", err(&o));
        let o = server.hsb(&["sandbox", "update", &id]);
        assert_eq!(o.status.code(), Some(125), "{}", err(&o));
        assert!(err(&o).contains("no limit given"), "{}", err(&o));
        assert!(server.hsb(&["sandbox", "rm", &id]).status.success());
        let o = server.hsb(&["sandbox", "update", "--pids", "10", &id]);
        assert!(!o.status.success() && err(&o).contains(&id), "{}", err(&o));
    }
}
