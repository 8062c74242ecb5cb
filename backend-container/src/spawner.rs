//! The thread that clones sandboxes.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that created a child exits, not the
//! process; a tokio blocking-pool thread or a Python thread may exit at any time. So
//! every sandbox is cloned from this one long-lived thread, and a sandbox dies exactly
//! when the caller's process does.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

use crate::child::{self, ChildSpec};
use crate::sys;

type Reply = oneshot::Sender<std::io::Result<(libc::pid_t, OwnedFd)>>;

struct Job {
    spec: Arc<ChildSpec>,
    reply: Reply,
}

fn sender() -> std::io::Result<mpsc::Sender<Job>> {
    static TX: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    if let Some(tx) = TX.get() {
        return Ok(tx.lock().unwrap_or_else(|e| e.into_inner()).clone());
    }
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("hsb-spawner".into())
        .spawn(move || {
            for job in rx {
                let _ = job.reply.send(clone_one(&job.spec));
            }
        })?;
    let cell = TX.get_or_init(|| Mutex::new(tx));
    Ok(cell.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

const NAMESPACES: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS;

fn clone_one(spec: &ChildSpec) -> std::io::Result<(libc::pid_t, OwnedFd)> {
    match sys::clone_pidfd(NAMESPACES as libc::c_ulong) {
        Ok((0, _)) => {
            sys::reset_signals();
            child::init_main(spec)
        }
        // SAFETY: CLONE_PIDFD stored a fresh pidfd that nothing else owns.
        Ok((pid, pidfd)) => Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) })),
        Err(e) => Err(std::io::Error::from_raw_os_error(e)),
    }
}

/// Clones the sandbox's init from the spawner thread; returns its pid and pidfd.
pub(crate) async fn clone_init(spec: Arc<ChildSpec>) -> std::io::Result<(libc::pid_t, OwnedFd)> {
    let (reply, rx) = oneshot::channel();
    sender()?
        .send(Job { spec, reply })
        .map_err(|_| std::io::Error::other("the sandbox spawner thread is gone"))?;
    rx.await
        .map_err(|_| std::io::Error::other("the sandbox spawner thread is gone"))?
}
