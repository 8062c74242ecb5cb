//! `hsb_run` and `hsb_run_streaming`.

use std::ffi::{c_char, c_int, c_void};

use hybrid_sandbox::{Error, Execution, Outcome, OutputChunk, Sandbox, StreamKind, Workload};

use crate::error::{hsb_error, hsb_status, Failure};
use crate::options::hsb_run_options;
use crate::outcome::hsb_outcome;
use crate::sandbox::hsb_sandbox;
use crate::{ffi, runtime};

/// Which stream a chunk of output comes from (the file descriptor's number).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hsb_stream {
    /// Standard output.
    HSB_STREAM_STDOUT = 1,
    /// Standard error.
    HSB_STREAM_STDERR = 2,
}

/// Receives output while the workload runs: `len` bytes at `data` (valid only during
/// the call) from `stream`, and the `user_data` given to `hsb_run_streaming`. Called on
/// the thread that called `hsb_run_streaming`, in the order the output was read. Return
/// 0 to go on; anything else kills the run (the outcome then says `killed`) and no
/// further chunk is delivered. It must not unwind or longjmp out, nor free the sandbox;
/// a run started from inside it fails with `HSB_ERR_INVALID_ARGUMENT`.
pub type hsb_output_callback = Option<
    unsafe extern "C" fn(
        stream: hsb_stream,
        data: *const u8,
        len: usize,
        user_data: *mut c_void,
    ) -> c_int,
>;

/// The arguments every run reads, checked.
struct Request<'a> {
    sandbox: &'a Sandbox,
    workload: Workload,
}

/// Reads the arguments common to both entry points.
///
/// # Safety
/// As for `hsb_run`.
unsafe fn request<'a>(
    sb: *mut hsb_sandbox,
    argv: *const *const c_char,
    argc: usize,
    opts: *const hsb_run_options,
    out: *mut *mut hsb_outcome,
) -> Result<Request<'a>, Failure> {
    // SAFETY: `out` is valid for writing (caller's contract).
    unsafe { ffi::clear_out(out, "out") }?;
    if tokio::runtime::Handle::try_current().is_ok() {
        // The runtime cannot block on a run from inside itself.
        return Err(Failure::invalid(
            "a run cannot be started from inside an output callback",
        ));
    }
    // SAFETY: `sb` is NULL or a live sandbox (caller's contract).
    let sb = unsafe { ffi::handle(sb.cast_const(), "sandbox") }?;
    // SAFETY: `argv` is NULL or `argc` pointers to strings (caller's contract).
    let argv = unsafe { ffi::argv(argv, argc) }?;
    // SAFETY: `opts` is NULL or live options nobody modifies now (caller's contract).
    let opts = unsafe { ffi::opt_ref(opts) };
    let workload = match opts {
        Some(o) => o.workload(argv),
        None => hsb_run_options::default().workload(argv),
    };
    Ok(Request {
        sandbox: &sb.inner,
        workload,
    })
}

/// Runs `argv` (`argc` strings, the first the program: an absolute path inside the
/// sandbox or a name searched in `PATH`) to its end under the sandbox's policy, with
/// `opts` (NULL: the policy's defaults). Blocks the calling thread.
///
/// On success `*out` is the outcome (free it with `hsb_outcome_free`) and `*err` NULL.
/// A workload that fails, crashes or hits a limit is a success here: the outcome says
/// how it ended. On failure (the run could not be planned or started) `*out` is NULL
/// and `*err` a new error when `err` is not NULL.
///
/// # Safety
/// `sb` is NULL or a live sandbox; `argv` is NULL or points to `argc` pointers, each
/// NULL or a NUL-terminated string; `opts` is NULL or live options not modified during
/// the call; `out` is valid for writing one pointer; `err` is NULL or valid for writing
/// one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_run(
    sb: *mut hsb_sandbox,
    argv: *const *const c_char,
    argc: usize,
    opts: *const hsb_run_options,
    out: *mut *mut hsb_outcome,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let body = || {
        // SAFETY: the pointers follow this function's contract.
        let req = unsafe { request(sb, argv, argc, opts, out) }?;
        let rt = runtime::get()?;
        let outcome = rt.block_on(req.sandbox.run(req.workload))?;
        // SAFETY: `out` was checked by `request`.
        unsafe { ffi::give(out, hsb_outcome::new(outcome)) };
        Ok(())
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
}

/// Like `hsb_run`, and calls `callback` with each chunk of stdout and stderr as the
/// workload writes it (see `hsb_output_callback`). The outcome still holds all the
/// output. `callback` may be NULL (then this is `hsb_run`).
///
/// # Safety
/// As for `hsb_run`; `callback` is NULL or a function that may be called with
/// `user_data` on this thread until this call returns.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C signature: each argument is one thing
pub unsafe extern "C" fn hsb_run_streaming(
    sb: *mut hsb_sandbox,
    argv: *const *const c_char,
    argc: usize,
    opts: *const hsb_run_options,
    callback: hsb_output_callback,
    user_data: *mut c_void,
    out: *mut *mut hsb_outcome,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let body = || {
        // SAFETY: the pointers follow this function's contract.
        let req = unsafe { request(sb, argv, argc, opts, out) }?;
        let rt = runtime::get()?;
        let outcome = match callback {
            None => rt.block_on(req.sandbox.run(req.workload))?,
            Some(cb) => {
                // SAFETY: the caller guarantees `cb` may be called with `user_data` on
                // this thread during this call.
                let deliver = unsafe { deliverer(cb, user_data) };
                rt.block_on(stream(req.sandbox, req.workload, deliver))?
            }
        };
        // SAFETY: `out` was checked by `request`.
        unsafe { ffi::give(out, hsb_outcome::new(outcome)) };
        Ok(())
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
}

/// The closure that hands chunks to a C callback; false when it asks to stop.
///
/// # Safety
/// `cb` may be called with `user_data` on the calling thread while the closure lives.
pub(crate) unsafe fn deliverer(
    cb: unsafe extern "C" fn(hsb_stream, *const u8, usize, *mut c_void) -> c_int,
    user_data: *mut c_void,
) -> impl FnMut(OutputChunk) -> bool {
    move |chunk: OutputChunk| {
        let stream = match chunk.stream {
            StreamKind::Stdout => hsb_stream::HSB_STREAM_STDOUT,
            StreamKind::Stderr => hsb_stream::HSB_STREAM_STDERR,
        };
        // SAFETY: the function's contract: `cb` may be called with `user_data` on this
        // thread; `data` is valid for `len` bytes for the duration of the callback.
        unsafe { cb(stream, chunk.data.as_ptr(), chunk.data.len(), user_data) == 0 }
    }
}

/// Runs a workload, handing each output chunk to `deliver` (on this task, so on the
/// caller's thread) until it returns false, which kills the run.
async fn stream(
    sandbox: &Sandbox,
    workload: Workload,
    deliver: impl FnMut(OutputChunk) -> bool,
) -> Result<Outcome, Error> {
    let exec = sandbox.spawn(workload).await?;
    stream_exec(exec, deliver).await
}

/// Follows a started execution (a run's or a live sandbox's exec), handing each output
/// chunk to `deliver` until it returns false, which kills it.
pub(crate) async fn stream_exec(
    mut exec: Box<dyn Execution>,
    mut deliver: impl FnMut(OutputChunk) -> bool,
) -> Result<Outcome, Error> {
    let Some(mut rx) = exec.take_output() else {
        return exec.wait().await.map_err(Error::Run);
    };
    let kill = exec.kill_handle();
    let mut listening = true;
    let mut take = |chunk: OutputChunk| {
        if listening && !deliver(chunk) {
            listening = false;
            kill.kill();
        }
    };
    let outcome = {
        let wait = exec.wait();
        tokio::pin!(wait);
        let mut open = true;
        loop {
            tokio::select! {
                biased;
                chunk = rx.recv(), if open => match chunk {
                    Some(c) => take(c),
                    None => open = false,
                },
                r = &mut wait => break r,
            }
        }
    };
    // The stream ends once the backend lets go of it; what is left was written before
    // the end of the run.
    drop(exec);
    while let Some(c) = rx.recv().await {
        take(c);
    }
    outcome.map_err(Error::Run)
}

/// Runs the policy's warm template `name` (`[templates.NAME]`) to its end: its program,
/// started once and waiting on its stdin (a fork of its micro-VM snapshot, or a
/// pre-started container of its pool), reads the stdin set in `opts`
/// (`hsb_run_options_set_stdin`; none: empty) then end of file. Of `opts`, only the
/// stdin and the wall-time, CPU-time and output limits apply; any other option set is
/// `HSB_ERR_INVALID_ARGUMENT` (the sandbox is the template's, as the policy defines it).
/// The template is built at its first run and kept as long as the sandbox `sb`; a
/// program that ends before it waits on its stdin is an error of kind `template` with
/// its stderr. The outcome's first reason says which template and how it started.
///
/// # Safety
/// `sb` is NULL or a live sandbox; `name` is NULL or a NUL-terminated string; `opts`
/// is NULL or live options not modified during the call; `out` is valid for writing
/// one pointer; `err` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_run_template(
    sb: *mut hsb_sandbox,
    name: *const c_char,
    opts: *const hsb_run_options,
    out: *mut *mut hsb_outcome,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let body = || {
        // SAFETY: `out` is valid for writing (contract above).
        unsafe { ffi::clear_out(out, "out") }?;
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Failure::invalid(
                "a run cannot be started from inside an output callback",
            ));
        }
        // SAFETY: `sb` is NULL or a live sandbox (contract above).
        let sb = unsafe { ffi::handle(sb.cast_const(), "sandbox") }?;
        // SAFETY: `name` is NULL or a NUL-terminated string (contract above).
        let name = unsafe { ffi::text(name, "name") }?;
        // SAFETY: `opts` is NULL or live options nobody modifies now (contract above).
        let w = unsafe { ffi::opt_ref(opts) }
            .map(|o| o.template.clone())
            .unwrap_or_default();
        let allowed = Workload {
            stdin: w.stdin.clone(),
            limits: hybrid_sandbox::Limits {
                wall_time: w.limits.wall_time,
                cpu_time: w.limits.cpu_time,
                output: w.limits.output,
                ..hybrid_sandbox::Limits::default()
            },
            ..Workload::default()
        };
        if w != allowed {
            return Err(Failure::invalid(
                "a template run takes only the stdin and the wall-time, CPU-time and output limits of its options: the sandbox is the template's, as the policy defines it",
            ));
        }
        let stdin = match w.stdin {
            hybrid_sandbox::Stdin::Bytes(b) => b,
            _ => Vec::new(),
        };
        let run = hybrid_sandbox::TemplateRun {
            stdin,
            limits: hybrid_sandbox::ExecLimits {
                wall_time: w.limits.wall_time,
                cpu_time: w.limits.cpu_time,
                output: w.limits.output,
            },
        };
        let rt = runtime::get()?;
        let outcome = rt.block_on(sb.inner.run_template(name, run))?;
        // SAFETY: `out` was checked above.
        unsafe { ffi::give(out, hsb_outcome::new(outcome)) };
        Ok(())
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
}
