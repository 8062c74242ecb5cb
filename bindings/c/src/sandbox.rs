//! `hsb_sandbox`: a policy and the backends it chooses from.

use std::ffi::c_char;

use hybrid_sandbox::{Policy, Sandbox};

use crate::error::{hsb_error, hsb_status};
use crate::{ffi, runtime};

/// A policy and the backends it chooses from. Thread-safe: one sandbox may run
/// workloads from several threads at once.
#[derive(Debug)]
pub struct hsb_sandbox {
    pub(crate) inner: Sandbox,
}

/// Creates a sandbox under the policy file `policy_path` (TOML, or JSON when the name
/// ends in `.json`), or under the embedded default policy when `policy_path` is NULL.
///
/// On success `*out` is the new sandbox (free it with `hsb_sandbox_free`) and `*err`
/// NULL; on failure `*out` is NULL and `*err` a new error (when `err` is not NULL).
///
/// The first sandbox sets SIGPIPE to SIG_IGN if its action is still SIG_DFL, so that a
/// workload closing its stdin gives the library EPIPE instead of killing the process; a
/// handler or disposition set by the program is left alone.
///
/// # Safety
/// `policy_path` is NULL or a NUL-terminated string; `out` is valid for writing one
/// pointer; `err` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_sandbox_new(
    policy_path: *const c_char,
    out: *mut *mut hsb_sandbox,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let body = || {
        // SAFETY: `out` is valid for writing (contract above).
        unsafe { ffi::clear_out(out, "out") }?;
        // SAFETY: `policy_path` is NULL or a NUL-terminated string (contract above).
        let path = unsafe { ffi::opt_text(policy_path, "policy_path") }?;
        runtime::ignore_sigpipe_once();
        runtime::get()?;
        let inner = match path {
            Some(p) => Sandbox::from_policy_file(p)?,
            None => Sandbox::with_default_policy(),
        };
        // SAFETY: `out` was checked by `clear_out` above.
        unsafe { ffi::give(out, hsb_sandbox { inner }) };
        Ok(())
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
}

/// Creates a sandbox under a policy given as TOML text; `origin` names it in error
/// messages (NULL: `<string>`). Otherwise as `hsb_sandbox_new`.
///
/// # Safety
/// `toml` is a NUL-terminated string; `origin` NULL or one; `out` is valid for writing
/// one pointer; `err` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_sandbox_new_from_toml(
    toml: *const c_char,
    origin: *const c_char,
    out: *mut *mut hsb_sandbox,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let body = || {
        // SAFETY: `out` is valid for writing (contract above).
        unsafe { ffi::clear_out(out, "out") }?;
        // SAFETY: `toml` is NULL or a NUL-terminated string (contract above).
        let text = unsafe { ffi::text(toml, "toml") }?;
        // SAFETY: `origin` is NULL or a NUL-terminated string (contract above).
        let origin = unsafe { ffi::opt_text(origin, "origin") }?.unwrap_or("<string>");
        runtime::ignore_sigpipe_once();
        runtime::get()?;
        let policy = Policy::from_toml_str(text, origin).map_err(hybrid_sandbox::Error::Policy)?;
        // SAFETY: `out` was checked by `clear_out` above.
        unsafe {
            ffi::give(
                out,
                hsb_sandbox {
                    inner: Sandbox::from_policy(policy),
                },
            )
        };
        Ok(())
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
}

/// Frees a sandbox. NULL is ignored. Runs started from it must have returned.
///
/// # Safety
/// `sb` is NULL or a sandbox from this library, not yet freed, that no call is using;
/// it is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn hsb_sandbox_free(sb: *mut hsb_sandbox) {
    // SAFETY: the caller hands over NULL or a live sandbox it owns (contract above).
    unsafe { ffi::free(sb) }
}
