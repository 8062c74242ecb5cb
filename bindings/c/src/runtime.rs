//! The library's one async runtime, shared by every sandbox, and the process-wide
//! setting it needs (SIGPIPE).

use std::sync::{Once, OnceLock};

use crate::error::Failure;

/// The runtime: created on first use, never dropped (a C caller may free its last
/// sandbox from any thread, even from inside a callback).
pub(crate) fn get() -> Result<&'static tokio::runtime::Runtime, Failure> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hsb-runtime")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Failure::runtime(format!("creating the async runtime: {e}")))
}

/// Ignores SIGPIPE when it still has its default action (which kills the process): the
/// library writes a workload's stdin into a pipe the workload may have closed, and that
/// must give EPIPE, not kill the caller. A handler or disposition the caller set is kept.
/// The sandbox resets every signal to its default before the workload starts.
pub(crate) fn ignore_sigpipe_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: an all-zero `sigaction` is a valid value of this plain C struct.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: querying only (NULL new action); `old` is a valid place to write.
        let r = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) };
        if r != 0 || old.sa_sigaction != libc::SIG_DFL {
            return;
        }
        // SAFETY: an all-zero `sigaction` is a valid value of this plain C struct.
        let mut ign: libc::sigaction = unsafe { std::mem::zeroed() };
        ign.sa_sigaction = libc::SIG_IGN;
        // SAFETY: `ign` is a fully initialised action (SIG_IGN, empty mask, no flags).
        unsafe { libc::sigaction(libc::SIGPIPE, &ign, std::ptr::null_mut()) };
    });
}
