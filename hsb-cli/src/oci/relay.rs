//! Connects a process running in the sandbox (an [`Execution`]) to the stdio an engine
//! handed over (FIFOs, pipes, files, or a pty slave), and passes signals and resizes
//! on while it runs.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hybrid_sandbox::{Execution, Outcome, RunError, StreamKind, TtySize};
use tokio::sync::mpsc;

/// What the process reads and writes.
#[derive(Debug)]
pub(crate) struct Io {
    /// `None`: nothing to read (`/dev/null`).
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

/// Something to do to the running process.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cmd {
    Signal(i32),
    Resize(TtySize),
    Kill,
}

/// Whether `fd` is `/dev/null` (then the process gets no stdin stream).
pub(crate) fn is_dev_null(fd: &impl AsFd) -> bool {
    let (Ok(a), Ok(b)) = (
        nix::sys::stat::fstat(fd.as_fd()),
        nix::sys::stat::stat("/dev/null"),
    ) else {
        return false;
    };
    a.st_rdev == b.st_rdev && (a.st_mode & libc::S_IFMT) == libc::S_IFCHR
}

/// A thread writing chunks to `fd` in order; a write error (the reader went away)
/// drops what follows.
fn writer(
    fd: OwnedFd,
) -> (
    std::sync::mpsc::Sender<Vec<u8>>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let h = std::thread::spawn(move || {
        let mut f = std::fs::File::from(fd);
        let mut broken = false;
        for chunk in rx {
            if !broken && f.write_all(&chunk).is_err() {
                broken = true;
            }
        }
    });
    (tx, h)
}

/// Reads `fd` into the process's stdin until end of file, an error, or `stop`.
fn reader(fd: OwnedFd, w: hybrid_sandbox::StdinWriter, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Acquire) {
            let mut pfd = [nix::poll::PollFd::new(
                fd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            match nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(200u16)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(_) => break,
            }
            match nix::unistd::read(fd.as_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if w.blocking_write(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                // A terminal whose other side closed: end of input.
                Err(_) => break,
            }
        }
        drop(w);
        let _ = fd.as_raw_fd();
    });
}

/// Runs `exec` to its end with `io`, applying `cmds` as they come; returns its outcome.
/// All of its output is written before this returns.
pub(crate) async fn drive(
    mut exec: Box<dyn Execution>,
    io: Io,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) -> Result<Outcome, RunError> {
    let stop = Arc::new(AtomicBool::new(false));
    if let (Some(fd), Some(w)) = (io.stdin, exec.take_stdin()) {
        reader(fd, w, stop.clone());
    }
    let (out_tx, out_h) = writer(io.stdout);
    let (err_tx, err_h) = writer(io.stderr);
    if let Some(mut out) = exec.take_output_uncaptured() {
        let mut cmds_open = true;
        loop {
            tokio::select! {
                chunk = out.recv() => match chunk {
                    Some(c) => {
                        let _ = match c.stream {
                            StreamKind::Stdout => out_tx.send(c.data),
                            StreamKind::Stderr => err_tx.send(c.data),
                        };
                    }
                    // The process ended and its last output was read.
                    None => break,
                },
                cmd = cmds.recv(), if cmds_open => match cmd {
                    Some(c) => apply(exec.as_ref(), c),
                    None => cmds_open = false,
                },
            }
        }
    }
    let outcome = exec.wait().await;
    stop.store(true, Ordering::Release);
    drop((out_tx, err_tx));
    let _ = tokio::task::spawn_blocking(move || {
        let _ = out_h.join();
        let _ = err_h.join();
    })
    .await;
    outcome
}

fn apply(exec: &dyn Execution, c: Cmd) {
    match c {
        Cmd::Signal(s) => {
            let _ = exec.signal(s);
        }
        Cmd::Resize(size) => {
            let _ = exec.resize(size);
        }
        Cmd::Kill => exec.kill_handle().kill(),
    }
}

/// The exit of an outcome, as the engine will see it.
pub(crate) fn exit_of(o: &Outcome) -> super::state::Exit {
    super::state::Exit {
        code: o.exit_code,
        signal: o.signal.or(if o.exit_code.is_none() {
            Some(libc::SIGKILL)
        } else {
            None
        }),
    }
}
