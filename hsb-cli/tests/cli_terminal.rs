//! `hsb run` on a real terminal: the workload's control sequences (OSC 52 clipboard
//! writes, window titles, clear screen) arrive as visible text, never as sequences; a
//! pipe gets the exact bytes; `--raw-output` and `--json` keep them exact too.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

const HSB: &str = env!("CARGO_BIN_EXE_hsb");

/// What the workload writes: a clipboard write, a title, a clear screen and a cursor
/// move on stdout; a title on stderr; and a UTF-8 encoded C1 CSI.
const SCRIPT: &str = r"printf '\033]52;c;aGk=\007\033]0;pwned\007\033[2J\033[Hvisible\n'; printf '\033]2;err-title\007on stderr\n' >&2; printf 'c1:\302\2332J\n'";
const STDOUT_BYTES: &[u8] =
    b"\x1b]52;c;aGk=\x07\x1b]0;pwned\x07\x1b[2J\x1b[Hvisible\nc1:\xc2\x9b2J\n";

/// A pseudo-terminal in raw mode (no CR added, no echo): (master, slave).
fn pty() -> (OwnedFd, OwnedFd) {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    let p = nix::pty::openpty(None, None).expect("openpty");
    let mut t = tcgetattr(&p.slave).expect("tcgetattr");
    cfmakeraw(&mut t);
    tcsetattr(&p.slave, SetArg::TCSANOW, &t).expect("tcsetattr");
    (p.master, p.slave)
}

/// Runs hsb with stdout and stderr on a terminal; returns (exit code, what the terminal got).
fn on_a_terminal(args: &[&str]) -> (i32, Vec<u8>) {
    let (master, slave) = pty();
    let mut child = Command::new(HSB)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("run hsb");
    let mut seen = Vec::new();
    let mut m = std::fs::File::from(master);
    let mut buf = [0u8; 4096];
    loop {
        match m.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            // EIO: every slave descriptor is closed (hsb exited).
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => panic!("reading the terminal: {e}"),
        }
    }
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), seen)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn control_sequences_reach_a_terminal_as_visible_text() {
    let (code, seen) = on_a_terminal(&["run", "--", "sh", "-c", SCRIPT]);
    assert_eq!(code, 0, "{}", text(&seen));
    let shown = text(&seen);
    // Nothing a terminal would act on: no ESC, BEL or C1 control at all.
    assert!(
        !seen.iter().any(|&b| b == 0x1b || b == 0x07) && !shown.contains('\u{9b}'),
        "a control sequence reached the terminal: {seen:?}"
    );
    for visible in [
        "^[]52;c;aGk=^G",
        "^[]0;pwned^G",
        "^[[2J^[[Hvisible\n",
        "^[]2;err-title^Gon stderr\n",
        "c1:\\u{9b}2J\n",
    ] {
        assert!(
            shown.contains(visible),
            "{visible:?} not shown in {shown:?}"
        );
    }
    assert!(
        shown.contains("control character(s)") && shown.contains("--raw-output"),
        "{shown}"
    );
}

#[test]
fn pipes_raw_output_and_json_keep_the_exact_bytes() {
    let o = Command::new(HSB)
        .args(["run", "--", "sh", "-c", SCRIPT])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(o.stdout, STDOUT_BYTES);
    assert_eq!(o.stderr, b"\x1b]2;err-title\x07on stderr\n");

    // --raw-output: the terminal gets the sequences as they are.
    let (code, seen) = on_a_terminal(&["run", "--raw-output", "--", "sh", "-c", SCRIPT]);
    assert_eq!(code, 0, "{}", text(&seen));
    assert!(
        seen.windows(STDOUT_BYTES.len() - 9)
            .any(|w| w == &STDOUT_BYTES[..STDOUT_BYTES.len() - 9]),
        "{seen:?}"
    );
    assert!(!text(&seen).contains("control character(s)"));

    // --json on a terminal: the JSON text is plain (escapes are JSON's), and the bytes
    // it carries are exact.
    let (code, seen) = on_a_terminal(&["run", "--json", "--", "sh", "-c", SCRIPT]);
    assert_eq!(code, 0, "{}", text(&seen));
    assert!(!seen.contains(&0x1b), "{seen:?}");
    let v: serde_json::Value =
        serde_json::from_slice(&seen).unwrap_or_else(|e| panic!("{e}: {}", text(&seen)));
    assert_eq!(
        v["stdout"].as_str().unwrap().as_bytes(),
        STDOUT_BYTES,
        "{v}"
    );
}
