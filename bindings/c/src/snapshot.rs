//! `hsb_snapshot`: a snapshot of a live sandbox (`hsb_live_snapshot`), started any
//! number of times (`hsb_snapshot_start`); `hsb_live_fork` is both in one call.

use crate::error::{hsb_error, hsb_status, Failure};
use crate::live::{hsb_bytes, hsb_live, lib, no_runtime_here};
use crate::{ffi, runtime};

/// A snapshot of a live sandbox: a micro-VM's memory, processes, open files and
/// in-memory filesystem; a container's writable layer only (`hsb_snapshot_kept` says
/// which). Thread-safe; independent of the sandbox it was taken of (which may be freed
/// first). Freed with `hsb_snapshot_free`.
#[derive(Debug)]
pub struct hsb_snapshot {
    snap: hybrid_sandbox::Snapshot,
}

/// Takes a snapshot of `live` (it goes on). A micro-VM holding a terminal or an inet
/// socket, or with network egress, gives `HSB_ERR_UNSUPPORTED` naming it.
///
/// # Safety
/// `live` is NULL or a live sandbox; `out` is valid for writing one pointer; `err` is
/// NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_snapshot(
    live: *mut hsb_live,
    out: *mut *mut hsb_snapshot,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: `live`, `out` and `err` are as `hand_out` needs (contract above).
    unsafe {
        hand_out(live.cast_const(), "live", out, err, |live, rt| {
            let snap = rt.block_on(live.live.snapshot()).map_err(lib)?;
            Ok(hsb_snapshot { snap })
        })
    }
}

/// Starts a new live sandbox from `snap`: it goes on from the state kept, then
/// diverges. Freed (and destroyed) with `hsb_live_free`.
///
/// # Safety
/// `snap` is NULL or a snapshot; `out` is valid for writing one pointer; `err` is NULL
/// or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_snapshot_start(
    snap: *const hsb_snapshot,
    out: *mut *mut hsb_live,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: `snap`, `out` and `err` are as `hand_out` needs (contract above).
    unsafe {
        hand_out(snap, "snapshot", out, err, |snap, rt| {
            let live = rt.block_on(snap.snap.start()).map_err(lib)?;
            Ok(hsb_live { live })
        })
    }
}

/// A snapshot of `live` and one start from it, in one call.
///
/// # Safety
/// As for `hsb_live_snapshot`, `out` receiving a live sandbox.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_fork(
    live: *mut hsb_live,
    out: *mut *mut hsb_live,
    err: *mut *mut hsb_error,
) -> hsb_status {
    // SAFETY: `live`, `out` and `err` are as `hand_out` needs (contract above).
    unsafe {
        hand_out(live.cast_const(), "live", out, err, |live, rt| {
            let child = rt.block_on(live.live.fork()).map_err(lib)?;
            Ok(hsb_live { live: child })
        })
    }
}

/// Bytes of memory the snapshot holds on the host; 0 for NULL.
///
/// # Safety
/// `snap` is NULL or a snapshot.
#[no_mangle]
pub unsafe extern "C" fn hsb_snapshot_memory_bytes(snap: *const hsb_snapshot) -> u64 {
    ffi::value(0, || {
        // SAFETY: `snap` is NULL or a snapshot (contract above).
        unsafe { ffi::opt_ref(snap) }.map_or(0, |s| s.snap.memory_bytes())
    })
}

/// What the snapshot keeps, in words (free with `hsb_bytes_free`); NULL for NULL.
///
/// # Safety
/// `snap` is NULL or a snapshot.
#[no_mangle]
pub unsafe extern "C" fn hsb_snapshot_kept(snap: *const hsb_snapshot) -> *mut hsb_bytes {
    ffi::value(std::ptr::null_mut(), || {
        // SAFETY: `snap` is NULL or a snapshot (contract above).
        match unsafe { ffi::opt_ref(snap) } {
            Some(s) => Box::into_raw(Box::new(hsb_bytes::new(s.snap.kept().into_bytes()))),
            None => std::ptr::null_mut(),
        }
    })
}

/// Frees a snapshot (sandboxes started from it go on). NULL is ignored.
///
/// # Safety
/// `snap` is NULL or a snapshot from this library, not yet freed, that no call is
/// using; it is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn hsb_snapshot_free(snap: *mut hsb_snapshot) {
    // SAFETY: the caller hands over NULL or a snapshot it owns (contract above).
    unsafe { ffi::free(snap) }
}

/// Writes `snap` to a file at `path` that `hsb_snapshot_load` loads (in this process or
/// another of this build on this host); `*written` (when not NULL) gets the bytes of
/// guest memory written (a container's: of its writable layer's file data).
/// `HSB_ERR_UNSUPPORTED` for what a file cannot hold: sockets, epoll, terminals,
/// shared mappings, naming it.
///
/// # Safety
/// `snap` is NULL or a snapshot; `path` NULL or a NUL-terminated string; `written` NULL
/// or valid for writing; `err` NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_snapshot_save(
    snap: *const hsb_snapshot,
    path: *const std::ffi::c_char,
    written: *mut u64,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let body = || {
        no_runtime_here()?;
        // SAFETY: `snap` is NULL or a snapshot (contract above).
        let snap = unsafe { ffi::handle(snap, "snapshot") }?;
        // SAFETY: `path` is NULL or a NUL-terminated string (contract above).
        let path = unsafe { ffi::text(path, "path") }?;
        let rt = runtime::get()?;
        let n = rt.block_on(snap.snap.save(path)).map_err(lib)?;
        if !written.is_null() {
            // SAFETY: `written` is not NULL and valid for writing (contract above).
            unsafe { written.write(n) };
        }
        Ok(())
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
}

/// Waits until `snap` is known to be intact: a snapshot loaded from a file
/// (`hsb_snapshot_load`) starts sandboxes at once while its guest memory is still
/// checked against the file's checksum; if it does not match, they fail naming the
/// file, later starts are refused, and this returns that error. `HSB_OK` at once for
/// any other snapshot.
///
/// # Safety
/// `snap` is NULL or a snapshot; `err` NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_snapshot_verify(
    snap: *const hsb_snapshot,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let body = || {
        no_runtime_here()?;
        // SAFETY: `snap` is NULL or a snapshot (contract above).
        let snap = unsafe { ffi::handle(snap, "snapshot") }?;
        let rt = runtime::get()?;
        rt.block_on(snap.snap.verify()).map_err(lib)
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
}

/// Loads a snapshot file written by `hsb_snapshot_save` under `sb`'s policy: `opts`
/// (NULL: the defaults) are the options the saved sandbox was created with (as for
/// `hsb_live_create`); a file whose sandbox differs from the one the policy gives now
/// is refused. A file from another version, a truncated or a corrupt one gives an
/// error naming it and the problem. Start it with `hsb_snapshot_start`.
///
/// # Safety
/// `sb` is NULL or a sandbox; `path` NULL or a NUL-terminated string; `opts` NULL or
/// live options not modified during the call; `out` valid for writing one pointer;
/// `err` NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_snapshot_load(
    sb: *mut crate::sandbox::hsb_sandbox,
    path: *const std::ffi::c_char,
    opts: *const crate::options::hsb_run_options,
    out: *mut *mut hsb_snapshot,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let make = |sb: &crate::sandbox::hsb_sandbox, rt: &tokio::runtime::Runtime| {
        // SAFETY: `path` is NULL or a NUL-terminated string (contract above).
        let path = unsafe { ffi::text(path, "path") }?;
        // SAFETY: `opts` is NULL or live options nobody modifies now (contract above).
        let spec = unsafe { ffi::opt_ref(opts) }
            .map(|o| o.template.clone())
            .unwrap_or_default();
        let snap = rt
            .block_on(sb.inner.load_snapshot(path, spec, Default::default()))
            .map_err(lib)?;
        Ok(hsb_snapshot { snap })
    };
    // SAFETY: `sb`, `out` and `err` are as `hand_out` needs (contract above).
    unsafe { hand_out(sb.cast_const(), "sandbox", out, err, make) }
}

/// Pauses `live` to disk: its memory is written to an unnamed file in the directory
/// `dir` (nothing is left there), the sandbox destroyed and its memory freed; start the
/// snapshot in `*out` to resume it where it was. The handle `live` must still be freed.
///
/// # Safety
/// `live` is NULL or a live sandbox; `dir` NULL or a NUL-terminated string; `out` valid
/// for writing one pointer; `err` NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn hsb_live_pause_to_disk(
    live: *mut hsb_live,
    dir: *const std::ffi::c_char,
    out: *mut *mut hsb_snapshot,
    err: *mut *mut hsb_error,
) -> hsb_status {
    let make = |live: &hsb_live, rt: &tokio::runtime::Runtime| {
        // SAFETY: `dir` is NULL or a NUL-terminated string (contract above).
        let dir = unsafe { ffi::text(dir, "dir") }?;
        let snap = rt.block_on(live.live.pause_to_disk(dir)).map_err(lib)?;
        Ok(hsb_snapshot { snap })
    };
    // SAFETY: `live`, `out` and `err` are as `hand_out` needs (contract above).
    unsafe { hand_out(live.cast_const(), "live", out, err, make) }
}

/// The shape of the calls here that act on a handle and hand out one new object: `out`
/// cleared first, refused on the library's own runtime threads, `h` checked, then
/// `make` with the handle and the runtime; what it makes goes to `*out`. Errors and
/// panics are reported through `err` as by every call.
///
/// # Safety
/// `h` is NULL or a valid `H` not freed during the call; `out` is valid for writing one
/// pointer; `err` is NULL or valid for writing one pointer.
unsafe fn hand_out<H, T>(
    h: *const H,
    what: &str,
    out: *mut *mut T,
    err: *mut *mut hsb_error,
    make: impl FnOnce(&H, &tokio::runtime::Runtime) -> Result<T, Failure>,
) -> hsb_status {
    let body = || {
        // SAFETY: `out` is valid for writing (contract above).
        unsafe { ffi::clear_out(out, "out") }?;
        no_runtime_here()?;
        // SAFETY: `h` is NULL or a valid `H` (contract above).
        let h = unsafe { ffi::handle(h, what) }?;
        let value = make(h, runtime::get()?)?;
        // SAFETY: `out` was checked by `clear_out` above.
        unsafe { ffi::give(out, value) };
        Ok(())
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
}
