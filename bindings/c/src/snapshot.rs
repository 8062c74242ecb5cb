//! `hsb_snapshot`: a snapshot of a live sandbox (`hsb_live_snapshot`), started any
//! number of times (`hsb_snapshot_start`); `hsb_live_fork` is both in one call.

use crate::error::{hsb_error, hsb_status};
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
    let body = || {
        // SAFETY: `out` is valid for writing (contract above).
        unsafe { ffi::clear_out(out, "out") }?;
        no_runtime_here()?;
        // SAFETY: `live` is NULL or a live sandbox (contract above).
        let live = unsafe { ffi::handle(live.cast_const(), "live") }?;
        let rt = runtime::get()?;
        let snap = rt.block_on(live.live.snapshot()).map_err(lib)?;
        // SAFETY: `out` was checked by `clear_out` above.
        unsafe { ffi::give(out, hsb_snapshot { snap }) };
        Ok(())
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
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
    let body = || {
        // SAFETY: `out` is valid for writing (contract above).
        unsafe { ffi::clear_out(out, "out") }?;
        no_runtime_here()?;
        // SAFETY: `snap` is NULL or a snapshot (contract above).
        let snap = unsafe { ffi::handle(snap, "snapshot") }?;
        let rt = runtime::get()?;
        let live = rt.block_on(snap.snap.start()).map_err(lib)?;
        // SAFETY: `out` was checked by `clear_out` above.
        unsafe { ffi::give(out, hsb_live { live }) };
        Ok(())
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
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
    let body = || {
        // SAFETY: `out` is valid for writing (contract above).
        unsafe { ffi::clear_out(out, "out") }?;
        no_runtime_here()?;
        // SAFETY: `live` is NULL or a live sandbox (contract above).
        let live = unsafe { ffi::handle(live.cast_const(), "live") }?;
        let rt = runtime::get()?;
        let child = rt.block_on(live.live.fork()).map_err(lib)?;
        // SAFETY: `out` was checked by `clear_out` above.
        unsafe { ffi::give(out, hsb_live { live: child }) };
        Ok(())
    };
    // SAFETY: `err` is NULL or valid for writing (contract above).
    unsafe { ffi::call(err, body) }
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
