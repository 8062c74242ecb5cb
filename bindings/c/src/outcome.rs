//! `hsb_outcome`: everything about a finished run, and its accessors.
//!
//! Every string and buffer returned is owned by the outcome and valid until
//! `hsb_outcome_free`. Accessors only read: one outcome may be read from several threads.

use std::ffi::{c_char, c_double, c_int, CString};

use hybrid_sandbox::Outcome;

use crate::ffi;

/// A finished run: how it ended, its output, costs, the decision and the enforcement
/// report. Freed with `hsb_outcome_free`.
#[derive(Debug)]
pub struct hsb_outcome {
    outcome: Outcome,
    termination: CString,
    isolation: CString,
    profile: CString,
    reasons: Vec<CString>,
    json: CString,
    enforcement_json: CString,
    decision_json: CString,
}

impl hsb_outcome {
    pub(crate) fn new(outcome: Outcome) -> hsb_outcome {
        let json = |v: Result<String, serde_json::Error>| {
            ffi::cstring(&v.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
        };
        hsb_outcome {
            termination: ffi::cstring(outcome.termination.as_str()),
            isolation: ffi::cstring(outcome.isolation.as_str()),
            profile: ffi::cstring(&outcome.decision.profile),
            reasons: outcome
                .decision
                .reasons
                .iter()
                .map(|r| ffi::cstring(r))
                .collect(),
            json: json(serde_json::to_string(&outcome)),
            enforcement_json: json(serde_json::to_string(&outcome.enforcement)),
            decision_json: json(serde_json::to_string(&outcome.decision)),
            outcome,
        }
    }
}

/// Reads a field of a NULL-or-live outcome, with `default` for NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
unsafe fn read<T>(o: *const hsb_outcome, default: T, f: impl FnOnce(&hsb_outcome) -> T) -> T {
    // SAFETY: forwarded from the caller: NULL or a live outcome.
    let o = unsafe { ffi::opt_ref(o) };
    match o {
        Some(o) => ffi::value(default, || f(o)),
        None => default,
    }
}

/// The workload's exit code when it exited by itself; -1 otherwise (or when `o` is
/// NULL).
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_exit_code(o: *const hsb_outcome) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { read(o, -1, |o| o.outcome.exit_code.unwrap_or(-1)) }
}

/// The signal that ended the workload; -1 when none did (or when `o` is NULL).
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_signal(o: *const hsb_outcome) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { read(o, -1, |o| o.outcome.signal.unwrap_or(-1)) }
}

/// Why the run ended: `exited`, `signaled`, `timeout`, `memory_limit`, `cpu_limit`,
/// `pids_limit`, `output_limit`, `policy_violation` or `killed`. NULL when `o` is NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_termination(o: *const hsb_outcome) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { read(o, std::ptr::null(), |o| o.termination.as_ptr()) }
}

/// The isolation used: `container` or `microvm`. NULL when `o` is NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_isolation(o: *const hsb_outcome) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { read(o, std::ptr::null(), |o| o.isolation.as_ptr()) }
}

/// Returns a byte buffer and stores its length.
///
/// # Safety
/// `o` is NULL or a live outcome; `len` is NULL or valid for writing one `size_t`.
unsafe fn buffer(
    o: *const hsb_outcome,
    len: *mut usize,
    f: impl FnOnce(&Outcome) -> &[u8],
) -> *const u8 {
    // SAFETY: forwarded contract.
    let (p, n) = unsafe {
        read(o, (std::ptr::null(), 0), |o| {
            let b = f(&o.outcome);
            (b.as_ptr(), b.len())
        })
    };
    if !len.is_null() {
        // SAFETY: `len` is not NULL and the caller guarantees it is valid for writing.
        unsafe { len.write(n) };
    }
    p
}

/// The captured stdout (exact bytes, not NUL-terminated; at most the output limit);
/// its length in `*len`. NULL and length 0 when `o` is NULL. `len` may be NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed; `len` is NULL or valid
/// for writing one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_stdout(o: *const hsb_outcome, len: *mut usize) -> *const u8 {
    // SAFETY: forwarded contract.
    unsafe { buffer(o, len, |o| &o.stdout) }
}

/// The captured stderr, as `hsb_outcome_stdout`.
///
/// # Safety
/// As for `hsb_outcome_stdout`.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_stderr(o: *const hsb_outcome, len: *mut usize) -> *const u8 {
    // SAFETY: forwarded contract.
    unsafe { buffer(o, len, |o| &o.stderr) }
}

/// Wall time from start to end, in milliseconds; -1 when `o` is NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_wall_time_ms(o: *const hsb_outcome) -> c_double {
    // SAFETY: forwarded contract.
    unsafe { read(o, -1.0, |o| o.outcome.wall_time.as_secs_f64() * 1e3) }
}

/// CPU time of all the workload's processes, in milliseconds; -1 when `o` is NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_cpu_time_ms(o: *const hsb_outcome) -> c_double {
    // SAFETY: forwarded contract.
    unsafe { read(o, -1.0, |o| o.outcome.cpu_time.as_secs_f64() * 1e3) }
}

/// Largest memory use seen, in bytes; 0 when unknown or when `o` is NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_peak_memory(o: *const hsb_outcome) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { read(o, 0, |o| o.outcome.peak_memory_bytes) }
}

/// The exit status a shell would report: the exit code, 128+signal, 124 on timeout;
/// -1 when `o` is NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_shell_status(o: *const hsb_outcome) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { read(o, -1, |o| o.outcome.shell_status()) }
}

/// The policy profile the run used; NULL when `o` is NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_profile(o: *const hsb_outcome) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { read(o, std::ptr::null(), |o| o.profile.as_ptr()) }
}

/// How many reasons the decision gives for the isolation chosen; 0 when `o` is NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_reason_count(o: *const hsb_outcome) -> usize {
    // SAFETY: forwarded contract.
    unsafe { read(o, 0, |o| o.reasons.len()) }
}

/// The decision's reason number `i` (from 0), in words; NULL when `i` is out of range
/// or `o` is NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_reason(o: *const hsb_outcome, i: usize) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe {
        read(o, std::ptr::null(), |o| {
            o.reasons.get(i).map_or(std::ptr::null(), |r| r.as_ptr())
        })
    }
}

/// The whole outcome as one JSON object, exactly what `hsb run --json` prints for the
/// same run. Output that is not UTF-8 appears lossily there; use `hsb_outcome_stdout`
/// for the exact bytes. NULL when `o` is NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_json(o: *const hsb_outcome) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { read(o, std::ptr::null(), |o| o.json.as_ptr()) }
}

/// The enforcement report as JSON: which protections were really in force (namespaces,
/// seccomp, Landlock, limits and their mechanism, network, VM). NULL when `o` is NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_enforcement_json(o: *const hsb_outcome) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { read(o, std::ptr::null(), |o| o.enforcement_json.as_ptr()) }
}

/// The decision as JSON: isolation, what was requested, profile, reasons, and the
/// fallback taken if any. NULL when `o` is NULL.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_decision_json(o: *const hsb_outcome) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { read(o, std::ptr::null(), |o| o.decision_json.as_ptr()) }
}

/// Frees an outcome and everything its accessors returned. NULL is ignored.
///
/// # Safety
/// `o` is NULL or an outcome from this library, not yet freed; it is not used
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn hsb_outcome_free(o: *mut hsb_outcome) {
    // SAFETY: the caller hands over NULL or a live outcome it owns (contract above).
    unsafe { ffi::free(o) }
}
