//! `hsb_live`: a live sandbox — created once, then execs, files in and out, pause,
//! resume, stats, destroy — and `hsb_bytes`, the buffers it hands out.

use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

use hybrid_sandbox::{ExecRequest, Live, LiveOptions, Stdin, Workload};

use crate::error::{hsb_error, hsb_status, Failure};
use crate::options::hsb_run_options;
use crate::outcome::hsb_outcome;
use crate::run::{deliverer, hsb_output_callback, stream_exec};
use crate::sandbox::hsb_sandbox;
use crate::{ffi, runtime};

/// A live sandbox. Thread-safe: several threads may exec and move files at once.
/// Freed (and destroyed) with `hsb_live_free`.
#[derive(Debug)]
pub struct hsb_live {
    pub(crate) live: Live,
}

/// Bytes handed out by the library (a file's contents, JSON text), followed by a NUL
/// that `len` does not count. Freed with `hsb_bytes_free`.
#[derive(Debug)]
pub struct hsb_bytes {
    data: Vec<u8>,
}

impl hsb_bytes {
    pub(crate) fn new(mut data: Vec<u8>) -> hsb_bytes {
        data.push(0);
        hsb_bytes { data }
    }
}

/// The bytes of `b` and their number in `*len` (when `len` is not NULL); the NUL after
/// them is not counted. Valid until `hsb_bytes_free`; NULL when `b` is NULL.
///
/// # Safety
/// `b` is NULL or live bytes; `len` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn hsb_bytes_data(b: *const hsb_bytes, len: *mut usize) -> *const u8 {
    ffi::value(std::ptr::null(), || {
        // SAFETY: `b` is NULL or live bytes (contract above).
        let b = unsafe { ffi::opt_ref(b) };
        let n = b.map_or(0, |b| b.data.len() - 1);
        if !len.is_null() {
            // SAFETY: `len` is not NULL and valid for writing (contract above).
            unsafe { len.write(n) };
        }
        b.map_or(std::ptr::null(), |b| b.data.as_ptr())
    })
}

/// Frees bytes. NULL is ignored.
///
/// # Safety
/// `b` is NULL or bytes from this library, not yet freed, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn hsb_bytes_free(b: *mut hsb_bytes) {
    // SAFETY: the caller hands over NULL or bytes it owns (contract above).
    unsafe { ffi::free(b) }
}

fn ms(v: u64) -> Option<Duration> {
    (v > 0).then(|| Duration::from_millis(v))
}

/// Creates a live sandbox under `sb`'s policy with `opts` (NULL: the policy's
/// defaults) — a run's options without argv and stdin: isolation, profile, image,
/// mounts, env, cwd, labels, network, limits (memory, pids, tmp_size, file_size for its
/// whole life; wall time, CPU time and output as each exec's default). It is destroyed
/// after `idle_timeout_ms` with no exec and no call, or `lifetime_ms` after its
/// creation (0: never), by `hsb_live_destroy`, or by `hsb_live_free`.
///
/// # Safety
/// `sb` is NULL or a live sandbox; `opts` is NULL or live options not modified during
/// the call; `out` is valid for writing one pointer; `err` is NULL or valid for writing
/// one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_create(
    sb: *mut hsb_sandbox,
    opts: *const hsb_run_options,
    idle_timeout_ms: u64,
    lifetime_ms: u64,
    out: *mut *mut hsb_live,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let body = || {
        // SAFETY: `out` is valid for writing (contract above).
        unsafe { ffi::clear_out(out, "out") }?;
        no_runtime_here()?;
        // SAFETY: `sb` is NULL or a live sandbox (contract above).
        let sb = unsafe { ffi::handle(sb.cast_const(), "sandbox") }?;
        // SAFETY: `opts` is NULL or live options nobody modifies now (contract above).
        let spec = unsafe { ffi::opt_ref(opts) }
            .map(|o| o.template.clone())
            .unwrap_or_default();
        if spec.stdin != Stdin::Null {
            return Err(Failure::invalid(
                "a live sandbox has no stdin: give it to each exec (hsb_live_exec's options)",
            ));
        }
        let options = LiveOptions {
            idle_timeout: ms(idle_timeout_ms),
            lifetime: ms(lifetime_ms),
        };
        let rt = runtime::get()?;
        let live = rt.block_on(sb.inner.create(spec, options))?;
        // SAFETY: `out` was checked by `clear_out` above.
        unsafe { ffi::give(out, hsb_live { live }) };
        Ok(())
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
}

pub(crate) fn no_runtime_here() -> Result<(), Failure> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Failure::invalid(
            "a live sandbox cannot be used from inside an output callback",
        ));
    }
    Ok(())
}

/// An exec's request: argv and what of `opts` an exec takes (env, cwd, stdin, wall
/// time, CPU time, output); anything else set there is refused, naming it.
fn exec_request(argv: Vec<String>, opts: Option<&hsb_run_options>) -> Result<ExecRequest, Failure> {
    let mut r = ExecRequest::new(argv);
    let Some(o) = opts else {
        return Ok(r);
    };
    let t: &Workload = &o.template;
    let refused = [
        ("isolation", t.isolation.is_some()),
        ("workload (profile)", t.profile.is_some()),
        ("image", t.image.is_some()),
        ("mounts", !t.mounts.is_empty()),
        ("labels", !t.labels.is_empty()),
        ("needs", !t.needs.is_empty()),
        ("network", t.network.is_some()),
        ("memory", t.limits.memory.is_some()),
        ("pids", t.limits.pids.is_some()),
        ("cpus", t.limits.cpus.is_some()),
        ("open_files", t.limits.open_files.is_some()),
        ("file_size", t.limits.file_size.is_some()),
        ("tmp_size", t.limits.tmp_size.is_some()),
        ("tmpfs", !t.tmpfs.is_empty()),
        ("allow/deny/expose/secret", !t.egress.is_empty()),
    ];
    if let Some((what, _)) = refused.iter().find(|(_, set)| *set) {
        return Err(Failure::invalid(format!(
            "an exec's options take env, cwd, stdin, wall time, CPU time and output; \
             {what} belongs to the live sandbox (hsb_live_create)"
        )));
    }
    r.env = t.env.clone();
    r.cwd = t.cwd.clone();
    r.stdin = t.stdin.clone();
    r.limits.wall_time = t.limits.wall_time;
    r.limits.cpu_time = t.limits.cpu_time;
    r.limits.output = t.limits.output;
    Ok(r)
}

/// Runs `argv` in the live sandbox to its end and gives its outcome (the shape of a
/// run's), with `opts` (NULL: none): env (added to the sandbox's), cwd, stdin, wall
/// time, CPU time and output limit; other options belong to `hsb_live_create` and are
/// refused. Processes it leaves in the background keep running. Blocks the calling
/// thread. `callback` (NULL: none) gets the output as it comes, as for
/// `hsb_run_streaming`; returning non-zero kills the exec (not the sandbox).
///
/// # Safety
/// `live` is NULL or a live sandbox; `argv` is NULL or `argc` pointers to NUL-terminated
/// strings; `opts` is NULL or live options not modified during the call; `callback` is
/// NULL or may be called with `user_data` on this thread during the call; `out` is
/// valid for writing one pointer; `err` is NULL or valid for writing one pointer.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C signature: each argument is one thing
pub unsafe extern "C" fn hsb_live_exec(
    live: *mut hsb_live,
    argv: *const *const c_char,
    argc: usize,
    opts: *const hsb_run_options,
    callback: hsb_output_callback,
    user_data: *mut c_void,
    out: *mut *mut hsb_outcome,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let body = || {
        // SAFETY: `out` is valid for writing (contract above).
        unsafe { ffi::clear_out(out, "out") }?;
        no_runtime_here()?;
        // SAFETY: `live` is NULL or a live sandbox (contract above).
        let live = unsafe { ffi::handle(live.cast_const(), "live") }?;
        // SAFETY: `argv` is NULL or `argc` pointers to strings (contract above).
        let argv = unsafe { ffi::argv(argv, argc) }?;
        // SAFETY: `opts` is NULL or live options nobody modifies now (contract above).
        let req = exec_request(argv, unsafe { ffi::opt_ref(opts) })?;
        let rt = runtime::get()?;
        let outcome = rt.block_on(async {
            let exec = live.live.exec_streaming(req).await?;
            match callback {
                // SAFETY: the caller lets `cb` be called with `user_data` on this
                // thread during this call.
                Some(cb) => stream_exec(exec, unsafe { deliverer(cb, user_data) }).await,
                None => stream_exec(exec, |_| true).await,
            }
        })?;
        // SAFETY: `out` was checked by `clear_out` above.
        unsafe { ffi::give(out, hsb_outcome::new(outcome)) };
        Ok(())
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
}

/// Runs a file operation: checks `live` and `path`, blocks on `f`.
///
/// # Safety
/// `live` is NULL or a live sandbox; `path` NULL or a NUL-terminated string; `err` NULL
/// or valid for writing one pointer.
unsafe fn file_call<F, Fut>(
    live: *mut hsb_live,
    path: *const c_char,
    err: *mut *mut hsb_error,
    f: F,
) -> hsb_status
where
    F: FnOnce(Live, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let body = || {
        no_runtime_here()?;
        // SAFETY: `live` is NULL or a live sandbox (contract above).
        let live = unsafe { ffi::handle(live.cast_const(), "live") }?;
        // SAFETY: `path` is NULL or a NUL-terminated string (contract above).
        let path = unsafe { ffi::text(path, "path") }?.to_string();
        let rt = runtime::get()?;
        rt.block_on(f(live.live.clone(), path))
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
}

pub(crate) fn lib(e: hybrid_sandbox::Error) -> Failure {
    e.into()
}

/// Writes `len` bytes at `data` to the file at `path` in the sandbox (created with
/// `mode`, such as 0644, or truncated), as its workload would: paths resolve inside it,
/// its limits apply (`HSB_ERR_LIMIT` names `tmp_size` or `file_size`).
///
/// # Safety
/// `live` is NULL or a live sandbox; `path` NULL or a NUL-terminated string; `data`
/// NULL (when `len` is 0) or `len` readable bytes; `err` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_write_file(
    live: *mut hsb_live,
    path: *const c_char,
    data: *const u8,
    len: usize,
    mode: u32,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: `data` is NULL or `len` readable bytes (contract above); a bad one is
    // reported through `err` below.
    let bytes = unsafe { ffi::bytes(data, len, "data") }.map(<[u8]>::to_vec);
    // SAFETY: the other pointers follow this function's contract.
    unsafe {
        file_call(live, path, err, |live, path| async move {
            let s: hybrid_sandbox::ByteStream = Box::pin(std::io::Cursor::new(bytes?));
            live.write_file_stream(&path, s, mode)
                .await
                .map(drop)
                .map_err(lib)
        })
    }
}

/// Reads the file at `path` (symlinks followed inside the sandbox) into `*out`.
///
/// # Safety
/// As for `hsb_live_write_file`; `out` is valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_read_file(
    live: *mut hsb_live,
    path: *const c_char,
    out: *mut *mut hsb_bytes,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: `out` is valid for writing (contract); a NULL one is reported below.
    let checked = unsafe { ffi::clear_out(out, "out") };
    let f = |live: Live, path: String| async move {
        checked?;
        let data = live.read_file(&path).await.map_err(lib)?;
        // SAFETY: `out` was checked by `clear_out` above.
        unsafe { ffi::give(out, hsb_bytes::new(data)) };
        Ok(())
    };
    // SAFETY: the other pointers follow this function's contract.
    unsafe { file_call(live, path, err, f) }
}

/// The entries of the directory at `path` as JSON text in `*out`: an array of
/// `{"name", "kind" ("file", "dir", "symlink", "other"), "size", "mode", "mtime",
/// "link_target"?}` sorted by name. With `stat` non-zero, the metadata of `path` itself
/// (one such object; a final symlink not followed).
///
/// # Safety
/// As for `hsb_live_read_file`.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_list_dir(
    live: *mut hsb_live,
    path: *const c_char,
    stat: c_int,
    out: *mut *mut hsb_bytes,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: `out` is valid for writing (contract); a NULL one is reported below.
    let checked = unsafe { ffi::clear_out(out, "out") };
    let f = |live: Live, path: String| async move {
        checked?;
        let json = if stat != 0 {
            serde_json::to_vec(&live.stat(&path).await.map_err(lib)?)
        } else {
            serde_json::to_vec(&live.list_dir(&path).await.map_err(lib)?)
        }
        .map_err(|e| Failure::invalid(e.to_string()))?;
        // SAFETY: `out` was checked by `clear_out` above.
        unsafe { ffi::give(out, hsb_bytes::new(json)) };
        Ok(())
    };
    // SAFETY: the other pointers follow this function's contract.
    unsafe { file_call(live, path, err, f) }
}

/// Makes the directory `path` (and its missing parents when `parents` is non-zero).
///
/// # Safety
/// `live` is NULL or a live sandbox; `path` NULL or a NUL-terminated string; `err` NULL
/// or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_mkdir(
    live: *mut hsb_live,
    path: *const c_char,
    parents: c_int,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: the pointers follow this function's contract.
    unsafe {
        file_call(live, path, err, |live, path| async move {
            live.mkdir(&path, parents != 0).await.map_err(lib)
        })
    }
}

/// Removes a file, symlink or empty directory (any directory when `recursive` is
/// non-zero).
///
/// # Safety
/// As for `hsb_live_mkdir`.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_remove(
    live: *mut hsb_live,
    path: *const c_char,
    recursive: c_int,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: the pointers follow this function's contract.
    unsafe {
        file_call(live, path, err, |live, path| async move {
            live.remove(&path, recursive != 0).await.map_err(lib)
        })
    }
}

/// Renames `from` to `to`.
///
/// # Safety
/// As for `hsb_live_mkdir`; `to` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_rename(
    live: *mut hsb_live,
    from: *const c_char,
    to: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: `to` is NULL or a NUL-terminated string (contract); checked below.
    let to = unsafe { ffi::text(to, "to") }.map(str::to_string);
    // SAFETY: the pointers follow this function's contract.
    unsafe {
        file_call(live, from, err, |live, from| async move {
            live.rename(&from, &to?).await.map_err(lib)
        })
    }
}

/// Runs a call on the sandbox itself.
///
/// # Safety
/// `live` is NULL or a live sandbox; `err` NULL or valid for writing.
unsafe fn live_call<F, Fut>(live: *mut hsb_live, err: *mut *mut hsb_error, f: F) -> hsb_status
where
    F: FnOnce(Live) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let body = || {
        no_runtime_here()?;
        // SAFETY: `live` is NULL or a live sandbox (contract above).
        let live = unsafe { ffi::handle(live.cast_const(), "live") }?;
        let rt = runtime::get()?;
        rt.block_on(f(live.live.clone()))
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
}

/// Stops every process of the sandbox (paused time does not count against wall time);
/// execs and file calls give `HSB_ERR_WRONG_STATE` until `hsb_live_resume`.
///
/// # Safety
/// `live` is NULL or a live sandbox; `err` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_pause(
    live: *mut hsb_live,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: forwarded contract.
    unsafe { live_call(live, err, |l| async move { l.pause().await.map_err(lib) }) }
}

/// Changes one limit of the running sandbox, named and written as for
/// `hsb_run_options_set_limit`: container isolation, `memory`, `pids` or `cpus`,
/// through its cgroup, within the policy's ranges and floor (`HSB_ERR_POLICY` naming
/// the limit otherwise, nothing changed). Other limits, and a micro-VM's, are fixed
/// when the sandbox is created (an error says so). A memory limit below what the
/// sandbox uses now is refused, not enforced by killing it.
///
/// # Safety
/// `live` is NULL or a live sandbox; `name` and `value` NULL or NUL-terminated
/// strings; `err` NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_update_limit(
    live: *mut hsb_live,
    name: *const c_char,
    value: *const c_char,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let parsed = || {
        // SAFETY: `name` is NULL or a NUL-terminated string (contract above).
        let name = unsafe { ffi::text(name, "limit name") }?;
        // SAFETY: `value` is NULL or a NUL-terminated string (contract above).
        let value = unsafe { ffi::text(value, "limit value") }?;
        let mut w = Workload::default();
        crate::options::set_limit_text(&mut w, name, value)?;
        Ok::<_, Failure>(w.limits)
    };
    let limits = parsed();
    // SAFETY: forwarded contract.
    unsafe {
        live_call(live, err, |l| async move {
            l.update_limits(&limits?).await.map_err(lib)
        })
    }
}

/// Undoes `hsb_live_pause`.
///
/// # Safety
/// As for `hsb_live_pause`.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_resume(
    live: *mut hsb_live,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: forwarded contract.
    unsafe { live_call(live, err, |l| async move { l.resume().await.map_err(lib) }) }
}

/// Destroys the sandbox: everything in it killed, what it held freed. Idempotent; the
/// handle must still be freed with `hsb_live_free`.
///
/// # Safety
/// As for `hsb_live_pause`.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_destroy(
    live: *mut hsb_live,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: forwarded contract.
    unsafe { live_call(live, err, |l| async move { l.destroy().await.map_err(lib) }) }
}

/// Hands JSON text (`serde_json::to_vec` of a value) out in `*out`.
///
/// # Safety
/// `out` was checked by `ffi::clear_out` (valid for writing one pointer).
unsafe fn give_json(
    out: *mut *mut hsb_bytes,
    json: serde_json::Result<Vec<u8>>,
) -> Result<(), Failure> {
    let json = json.map_err(|e| Failure::invalid(e.to_string()))?;
    // SAFETY: forwarded from the caller.
    unsafe { ffi::give(out, hsb_bytes::new(json)) };
    Ok(())
}

/// What the sandbox uses now, as JSON text in `*out`: `{"memory_bytes",
/// "peak_memory_bytes", "cpu_time_ms", "processes", "disk_bytes", "execs_running",
/// "uptime_ms", "paused_ms"}`.
///
/// # Safety
/// As for `hsb_live_pause`; `out` is valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_stats(
    live: *mut hsb_live,
    out: *mut *mut hsb_bytes,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: `out` is valid for writing (contract); a NULL one is reported below.
    let checked = unsafe { ffi::clear_out(out, "out") };
    let f = |l: Live| async move {
        checked?;
        let s = l.stats().await.map_err(lib)?;
        // SAFETY: `out` was checked by `clear_out` above.
        unsafe { give_json(out, serde_json::to_vec(&s)) }
    };
    // SAFETY: forwarded contract.
    unsafe { live_call(live, err, f) }
}

/// Its network as JSON text in `*out` (network `egress`): `{"mode", "exposed":
/// [{"sandbox_port", "host"}], "dns": [...], "connections": [...]}` — the broker's
/// decisions so far with the rule that decided each, and where the host reaches the
/// exposed ports. Without a broker: `{"mode": "none"}` or `"loopback"`.
///
/// # Safety
/// As for `hsb_live_pause`; `out` is valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_network(
    live: *mut hsb_live,
    out: *mut *mut hsb_bytes,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: `out` is valid for writing (contract); a NULL one is reported below.
    let checked = unsafe { ffi::clear_out(out, "out") };
    let f = |l: Live| async move {
        checked?;
        let report = l
            .network()
            .unwrap_or_else(|| hybrid_sandbox::network::NetworkReport {
                mode: l.enforcement().network,
                ..Default::default()
            });
        // SAFETY: `out` was checked by `clear_out` above.
        unsafe { give_json(out, serde_json::to_vec(&report)) }
    };
    // SAFETY: forwarded contract.
    unsafe { live_call(live, err, f) }
}

/// `"running"`, `"paused"` or `"destroyed"` (static); NULL when `live` is NULL.
///
/// # Safety
/// `live` is NULL or a live sandbox.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_state(live: *const hsb_live) -> *const c_char {
    ffi::value(std::ptr::null(), || {
        // SAFETY: `live` is NULL or a live sandbox (contract above).
        match unsafe { ffi::opt_ref(live) } {
            Some(l) => match l.live.state() {
                hybrid_sandbox::LiveState::Running => c"running".as_ptr(),
                hybrid_sandbox::LiveState::Paused => c"paused".as_ptr(),
                hybrid_sandbox::LiveState::Destroyed => c"destroyed".as_ptr(),
            },
            None => std::ptr::null(),
        }
    })
}

/// `"container"` or `"microvm"` (static); NULL when `live` is NULL.
///
/// # Safety
/// `live` is NULL or a live sandbox.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_isolation(live: *const hsb_live) -> *const c_char {
    ffi::value(std::ptr::null(), || {
        // SAFETY: `live` is NULL or a live sandbox (contract above).
        match unsafe { ffi::opt_ref(live) }.map(|l| l.live.isolation()) {
            Some(hybrid_sandbox::Isolation::Container) => c"container".as_ptr(),
            Some(hybrid_sandbox::Isolation::MicroVm) => c"microvm".as_ptr(),
            None => std::ptr::null(),
        }
    })
}

/// Frees the handle, destroying the sandbox. NULL is ignored.
///
/// # Safety
/// `live` is NULL or a live sandbox from this library, not yet freed, that no call is
/// using; it is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_free(live: *mut hsb_live) {
    if live.is_null() {
        return;
    }
    if let Ok(rt) = runtime::get() {
        // SAFETY: `live` is a live sandbox nobody else uses (contract above).
        if let Some(l) = unsafe { ffi::opt_ref(live.cast_const()) } {
            let l = l.live.clone();
            if tokio::runtime::Handle::try_current().is_err() {
                let _ = ffi::value(Ok(()), || rt.block_on(l.destroy()));
            }
        }
    }
    // SAFETY: the caller hands over a live sandbox it owns (contract above).
    unsafe { ffi::free(live) }
}
