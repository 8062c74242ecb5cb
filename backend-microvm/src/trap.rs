//! What happens when the confined VMM thread makes a host syscall its allowlist
//! (`seccomp/vmm.json`) does not name: the filter answers `SECCOMP_RET_TRAP`, the
//! kernel sends the thread a `SIGSYS`, and the handler here records the call, makes it
//! fail with `EPERM` (so the VMM code that made it goes on, as under an errno filter)
//! and asks the vCPU out of `KVM_RUN`. The run loop sees the record at its next turn
//! and ends the run as a policy violation: the personality (the VMM's attack surface)
//! did something it never does when it works, so the run is not to be trusted. The
//! embedding process is never killed for it.
//!
//! The handler is the process's `SIGSYS` handler (installed once, like the kick's).
//! A `SIGSYS` that is not a seccomp trap of a confined VMM thread (another filter of the
//! embedding process, a `kill`) goes to the handler that was there before, or, with
//! none, takes the default action as it would have. Everything here is host-side: the
//! same on VT-x/AMD-V as on PVM.

use std::cell::Cell;
use std::sync::OnceLock;

/// `si_code` of a seccomp `SIGSYS`.
const SYS_SECCOMP: libc::c_int = 1;

thread_local! {
    /// This thread is a confined VMM thread: its `SIGSYS` are the VMM filter's.
    static WATCHED: Cell<bool> = const { Cell::new(false) };
    /// The first host syscall this thread made off its allowlist, or -1.
    static VIOLATION: Cell<i64> = const { Cell::new(-1) };
}

/// The start of a seccomp `siginfo_t` on x86-64 (`_sigsys` of the union, at 16).
#[repr(C)]
struct SigsysInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    _pad: libc::c_int,
    call_addr: u64,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

/// The `SIGSYS` action before ours.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

extern "C" fn on_sigsys(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    // Only thread-local cells, reads of initialized statics, and a volatile byte store
    // (see `kick`): async-signal-safe.
    let ours = !info.is_null() && WATCHED.with(Cell::get);
    if ours {
        // SAFETY: the kernel passes a valid siginfo_t (128 bytes, larger than
        // `SigsysInfo`, whose fields are its first ones) to an SA_SIGINFO handler.
        let si = unsafe { &*(info as *const SigsysInfo) };
        if si.code == SYS_SECCOMP && !uctx.is_null() {
            if VIOLATION.with(Cell::get) < 0 {
                VIOLATION.with(|v| v.set(i64::from(si.syscall)));
            }
            // SAFETY: an SA_SIGINFO handler's third argument is the interrupted
            // thread's ucontext_t, writable for the handler; RAX there is what the
            // trapped syscall returns when the handler returns.
            let uc = unsafe { &mut *(uctx as *mut libc::ucontext_t) };
            uc.uc_mcontext.gregs[libc::REG_RAX as usize] = -i64::from(libc::EPERM);
            crate::kick::exit_now();
            return;
        }
    }
    forward(sig, info, uctx);
}

/// Hands a `SIGSYS` that is not ours to the action that was there before ours.
fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    let Some(prev) = PREVIOUS.get() else {
        return;
    };
    match prev.sa_sigaction {
        libc::SIG_IGN => {}
        libc::SIG_DFL => {
            // Default action (the process ends with a core): put it back and raise the
            // signal again; it is taken as soon as this handler returns.
            // SAFETY: a zeroed sigaction is a valid "SIG_DFL, no flags, empty mask".
            let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
            dfl.sa_sigaction = libc::SIG_DFL;
            // SAFETY: sigaction and raise are async-signal-safe; `dfl` is valid.
            unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) };
            // SAFETY: as above.
            unsafe { libc::raise(sig) };
        }
        handler if prev.sa_flags & libc::SA_SIGINFO != 0 => {
            // SAFETY: the previous action was installed with SA_SIGINFO, so its handler
            // has this signature; the arguments are the ones the kernel gave us.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(handler) };
            f(sig, info, uctx);
        }
        handler => {
            // SAFETY: without SA_SIGINFO the previous handler takes the signal number.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
            f(sig);
        }
    }
}

/// Installs the `SIGSYS` handler (once per process).
pub(crate) fn install_handler() -> std::io::Result<()> {
    static DONE: OnceLock<Result<(), i32>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_sigsys
            as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
            as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        // SAFETY: as above.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        let err = || {
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL)
        };
        // SAFETY: a null new action only reads the current one into `old`.
        if unsafe { libc::sigaction(libc::SIGSYS, std::ptr::null(), &mut old) } != 0 {
            return Err(err());
        }
        let _ = PREVIOUS.set(old);
        // SAFETY: installs a handler that only does async-signal-safe work and hands
        // anything else to the previous action, saved above.
        if unsafe { libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) } != 0 {
            return Err(err());
        }
        Ok(())
    });
    r.map_err(std::io::Error::from_raw_os_error)
}

/// Marks the calling thread as a confined VMM thread (before its filter goes on).
pub(crate) fn watch_thread() {
    VIOLATION.with(|v| v.set(-1));
    WATCHED.with(|w| w.set(true));
}

/// True on a confined VMM thread (its filter is on, or going on).
#[cfg(not(any(test, feature = "fuzzing")))]
pub(crate) fn confined() -> bool {
    WATCHED.with(Cell::get)
}

/// The host syscall number the calling VMM thread made off its allowlist, if any.
pub(crate) fn violation() -> Option<i32> {
    let v = VIOLATION.with(Cell::get);
    (v >= 0).then_some(v as i32)
}
