//! `hsb sandbox exec`: a command in a server's sandbox, with stdin from a file or hsb's
//! own, or on a terminal (`--tty`: the local terminal in raw mode, resizes forwarded).

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hsb_client::Client;
use hybrid_sandbox::{ExecLimits, ExecRequest, Outcome, Stdin, TtySize};

use crate::cli::{duration, key_value};
use crate::sandbox_cmd::{usage, Failed};

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// Run on a pseudo-terminal: the local terminal goes raw, its size follows.
    #[arg(long, short = 't')]
    tty: bool,
    /// File the command reads on stdin (`-` for hsb's own stdin); empty when absent
    /// (hsb's own stdin with --tty).
    #[arg(long, value_name = "FILE")]
    stdin: Option<PathBuf>,
    /// Set an environment variable (added to the sandbox's).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = key_value)]
    env: Vec<(String, String)>,
    /// Working directory.
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    /// Wall-clock limit of this exec, e.g. 10s.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    wall_time: Option<Duration>,
    /// Print one JSON object describing the exec (as `hsb run --json`) instead of
    /// passing output through.
    #[arg(long)]
    json: bool,
    /// Pass the command's output to a terminal unchanged (as `hsb run --raw-output`).
    /// Without it, control characters written to a terminal are shown as `^[`-style
    /// text; pipes and files get the exact bytes. With --tty, output always passes
    /// unchanged (it is a terminal session).
    #[arg(long)]
    raw_output: bool,
    /// The sandbox.
    id: String,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "PROGRAM [ARGS...]")]
    argv: Vec<String>,
}

/// The local terminal in raw mode until dropped.
struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The local terminal's size (of stdout, else stdin).
fn window_size() -> Option<TtySize> {
    nix::ioctl_read_bad!(tiocgwinsz, libc::TIOCGWINSZ, libc::winsize);
    use std::os::fd::AsRawFd;
    for fd in [std::io::stdout().as_raw_fd(), std::io::stdin().as_raw_fd()] {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one `winsize` into the struct `ws` points to, which
        // lives for the call; on a descriptor that is not a terminal it only fails.
        if unsafe { tiocgwinsz(fd, &mut ws) }.is_ok() && ws.ws_row > 0 && ws.ws_col > 0 {
            return Some(TtySize {
                rows: ws.ws_row,
                cols: ws.ws_col,
            });
        }
    }
    None
}

fn is_tty(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    nix::unistd::isatty(fd).unwrap_or(false)
}

fn request(a: &ExecArgs) -> Result<ExecRequest, Failed> {
    let stdin = match &a.stdin {
        None if a.tty => Stdin::Stream,
        None => Stdin::Null,
        Some(p) if p.as_os_str() == "-" => Stdin::Stream,
        Some(p) => Stdin::Bytes(
            std::fs::read(p).map_err(|e| usage(format!("--stdin {}: {e}", p.display())))?,
        ),
    };
    let tty = if a.tty {
        Some(window_size().unwrap_or_default())
    } else {
        None
    };
    Ok(ExecRequest {
        argv: a.argv.clone(),
        env: a.env.iter().cloned().collect(),
        cwd: a.cwd.clone(),
        stdin,
        tty,
        limits: ExecLimits {
            wall_time: a.wall_time,
            ..ExecLimits::default()
        },
    })
}

pub(crate) async fn run(c: &Client, a: ExecArgs) -> Result<i32, Failed> {
    let json = a.json;
    match exec(c, a).await {
        Err(Failed(msg, code, kind)) if json => {
            // As `hsb run --json`: the error as JSON on stdout too.
            println!(
                "{}",
                serde_json::json!({ "error": { "kind": kind, "message": msg }, "exit_status": code })
            );
            Err(Failed(msg, code, kind))
        }
        r => r,
    }
}

async fn exec(c: &Client, a: ExecArgs) -> Result<i32, Failed> {
    let req = request(&a)?;
    let streaming_stdin = req.stdin == Stdin::Stream;
    let live = c.attach(&a.id).await?;
    let mut exec = live.exec_streaming(req).await?;
    if streaming_stdin {
        if let Some(w) = exec.take_stdin() {
            // hsb's own stdin, read on a thread (it may be a terminal).
            std::thread::spawn(move || {
                use std::io::Read;
                let mut buf = vec![0u8; 64 * 1024];
                let mut input = std::io::stdin().lock();
                while let Ok(n) = input.read(&mut buf) {
                    if n == 0 || w.blocking_write(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
        }
    }
    // Raw mode only when the local side is a terminal too.
    let raw = (a.tty && is_tty(std::io::stdin().as_fd()))
        .then(RawMode::enter)
        .flatten();
    let mut winch = if a.tty {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()
    } else {
        None
    };
    let outcome = if a.json {
        let o = exec.wait().await;
        drop(raw);
        o
    } else {
        let mut out = exec.take_output();
        let mut pump = crate::run_cmd::Pump::new(crate::run_cmd::Shown::for_this_process(
            a.raw_output || a.tty,
        ));
        loop {
            tokio::select! {
                chunk = async { match out.as_mut() { Some(o) => o.recv().await, None => None } } => match chunk {
                    Some(c) => pump.write(c.stream, &c.data),
                    None => break,
                },
                _ = async { match winch.as_mut() { Some(w) => { w.recv().await; } None => std::future::pending().await } } => {
                    if let Some(size) = window_size() {
                        let _ = exec.resize(size);
                    }
                }
            }
        }
        let o = exec.wait().await;
        drop(raw);
        pump.finish();
        o
    };
    let outcome: Outcome = outcome.map_err(|e| Failed::from(hybrid_sandbox::Error::Run(e)))?;
    if a.json {
        match serde_json::to_string(&outcome) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("hsb: cannot write the outcome as JSON: {e}"),
        }
    } else if !outcome.success() && outcome.termination != hybrid_sandbox::Termination::Exited {
        eprintln!("hsb: the command ended: {}", outcome.termination);
    }
    Ok(outcome.shell_status())
}
