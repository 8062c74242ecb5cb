//! Status codes, the error object, and the conversion of Rust errors and panics.

use std::any::Any;
use std::ffi::{c_char, c_int, CString};

use crate::ffi;

/// What a call returned: `HSB_OK` (0), or the kind of failure. The error object, when
/// asked for, says the same as a string (`hsb_error_kind`) and in words
/// (`hsb_error_message`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hsb_status {
    /// Success.
    HSB_OK = 0,
    /// A NULL pointer, an empty argv, text that is not UTF-8, or an option value that
    /// cannot be read (`invalid_argument`).
    HSB_ERR_INVALID_ARGUMENT = 1,
    /// The policy could not be loaded, or rejects the run's options (`policy`).
    HSB_ERR_POLICY = 2,
    /// The isolation chosen cannot be used on this host; the message says why and what
    /// to change (`unavailable`).
    HSB_ERR_UNAVAILABLE = 3,
    /// The program does not exist in the sandbox (`program_not_found`).
    HSB_ERR_PROGRAM_NOT_FOUND = 4,
    /// The program exists but cannot be executed (`not_executable`).
    HSB_ERR_NOT_EXECUTABLE = 5,
    /// A mount could not be prepared (`mount`).
    HSB_ERR_MOUNT = 6,
    /// The backend cannot do what the run asks for (`unsupported`).
    HSB_ERR_UNSUPPORTED = 7,
    /// A step of the sandbox's setup failed (`setup`).
    HSB_ERR_SETUP = 8,
    /// The sandbox started but its outcome could not be collected (`run`).
    HSB_ERR_RUN = 9,
    /// The library's async runtime could not be created (`runtime`).
    HSB_ERR_RUNTIME = 10,
    /// A bug in the library, caught at the boundary (`internal`).
    HSB_ERR_INTERNAL = 11,
    /// The image could not be found, imported or used: not in the store, a digest that
    /// does not match, a hostile layer, a user it does not have (`image`).
    HSB_ERR_IMAGE = 12,
    /// A live sandbox is not in a state that allows the call: paused, or destroyed
    /// (`wrong_state`).
    HSB_ERR_WRONG_STATE = 13,
    /// A file operation of a live sandbox failed as the workload's own call would; the
    /// kind says why: `not_found`, `exists`, `permission_denied`, `is_a_directory`,
    /// `not_a_directory`, `not_empty`, `busy`, `invalid_path`, `io`.
    HSB_ERR_FILE = 14,
    /// A limit of a live sandbox stops the call (`limit`): the message names it
    /// (`tmp_size`, `file_size`).
    HSB_ERR_LIMIT = 15,
}

/// Why a call failed. Created by the library, freed with `hsb_error_free`.
#[derive(Debug)]
pub struct hsb_error {
    status: hsb_status,
    kind: CString,
    message: CString,
    exit_status: c_int,
}

/// A failure inside the library, before it becomes an `hsb_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    status: hsb_status,
    kind: &'static str,
    message: String,
    exit_status: c_int,
}

impl Failure {
    /// Bad input from the caller.
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            status: hsb_status::HSB_ERR_INVALID_ARGUMENT,
            kind: "invalid_argument",
            message: message.into(),
            exit_status: 125,
        }
    }

    /// The async runtime could not be created.
    pub(crate) fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            status: hsb_status::HSB_ERR_RUNTIME,
            kind: "runtime",
            message: message.into(),
            exit_status: 125,
        }
    }

    /// A panic caught at the boundary.
    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Failure {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Failure {
            status: hsb_status::HSB_ERR_INTERNAL,
            kind: "internal",
            message: format!("internal error in libhsb (please report it): {what}"),
            exit_status: 125,
        }
    }

    pub(crate) fn status(&self) -> hsb_status {
        self.status
    }

    pub(crate) fn into_error(self) -> hsb_error {
        hsb_error {
            status: self.status,
            kind: ffi::cstring(self.kind),
            message: ffi::cstring(&self.message),
            exit_status: self.exit_status,
        }
    }
}

impl From<hybrid_sandbox::Error> for Failure {
    fn from(e: hybrid_sandbox::Error) -> Failure {
        let kind = e.kind();
        let status = match kind {
            "policy" => hsb_status::HSB_ERR_POLICY,
            "unavailable" => hsb_status::HSB_ERR_UNAVAILABLE,
            "program_not_found" => hsb_status::HSB_ERR_PROGRAM_NOT_FOUND,
            "not_executable" => hsb_status::HSB_ERR_NOT_EXECUTABLE,
            "mount" => hsb_status::HSB_ERR_MOUNT,
            "unsupported" => hsb_status::HSB_ERR_UNSUPPORTED,
            "setup" => hsb_status::HSB_ERR_SETUP,
            "run" => hsb_status::HSB_ERR_RUN,
            "runtime" => hsb_status::HSB_ERR_RUNTIME,
            "image" => hsb_status::HSB_ERR_IMAGE,
            "wrong_state" => hsb_status::HSB_ERR_WRONG_STATE,
            "limit" => hsb_status::HSB_ERR_LIMIT,
            "not_found" | "exists" | "permission_denied" | "is_a_directory" | "not_a_directory"
            | "not_empty" | "busy" | "invalid_path" | "io" => hsb_status::HSB_ERR_FILE,
            "invalid" => hsb_status::HSB_ERR_INVALID_ARGUMENT,
            "exec" | "template" => hsb_status::HSB_ERR_SETUP,
            "failed" => hsb_status::HSB_ERR_RUN,
            _ => hsb_status::HSB_ERR_INTERNAL,
        };
        Failure {
            status,
            kind,
            message: e.chain(),
            exit_status: e.exit_status(),
        }
    }
}

/// The error's message: the whole chain of causes on one line (`a: b: c`). Valid until
/// the error is freed; NULL when `e` is NULL.
///
/// # Safety
/// `e` is NULL or an error from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_error_message(e: *const hsb_error) -> *const c_char {
    // SAFETY: the caller passes NULL or a live error (contract above).
    let e = unsafe { ffi::opt_ref(e) };
    ffi::value(std::ptr::null(), || {
        e.map_or(std::ptr::null(), |e| e.message.as_ptr())
    })
}

/// The kind of failure as a short string: `invalid_argument`, `policy`, `unavailable`,
/// `program_not_found`, `not_executable`, `mount`, `image`, `unsupported`, `setup`,
/// `run`, `runtime` or `internal` (the names of the Python exceptions' `kind`). Valid until the
/// error is freed; NULL when `e` is NULL.
///
/// # Safety
/// `e` is NULL or an error from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_error_kind(e: *const hsb_error) -> *const c_char {
    // SAFETY: the caller passes NULL or a live error (contract above).
    let e = unsafe { ffi::opt_ref(e) };
    ffi::value(std::ptr::null(), || {
        e.map_or(std::ptr::null(), |e| e.kind.as_ptr())
    })
}

/// The status the failed call returned; `HSB_ERR_INVALID_ARGUMENT` when `e` is NULL.
///
/// # Safety
/// `e` is NULL or an error from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_error_status(e: *const hsb_error) -> hsb_status {
    // SAFETY: the caller passes NULL or a live error (contract above).
    let e = unsafe { ffi::opt_ref(e) };
    ffi::value(hsb_status::HSB_ERR_INVALID_ARGUMENT, || {
        e.map_or(hsb_status::HSB_ERR_INVALID_ARGUMENT, |e| e.status)
    })
}

/// The exit status a command-line tool should use for this error, as `hsb run` does:
/// 127 when the program is not found, 126 when it cannot be executed, else 125.
///
/// # Safety
/// `e` is NULL or an error from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_error_exit_status(e: *const hsb_error) -> c_int {
    // SAFETY: the caller passes NULL or a live error (contract above).
    let e = unsafe { ffi::opt_ref(e) };
    ffi::value(125, || e.map_or(125, |e| e.exit_status))
}

/// Frees an error. NULL is ignored.
///
/// # Safety
/// `e` is NULL or an error from this library, not yet freed; it is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn hsb_error_free(e: *mut hsb_error) {
    // SAFETY: the caller hands over NULL or a live error it owns (contract above).
    unsafe { ffi::free(e) }
}
