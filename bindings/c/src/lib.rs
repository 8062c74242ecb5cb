//! The C API of hybrid-sandbox: `include/hsb.h`, generated from this crate by cbindgen.
//!
//! Opaque handles (`hsb_sandbox`, `hsb_run_options`, `hsb_outcome`, `hsb_error`,
//! `hsb_live` for live sandboxes, `hsb_bytes` for the buffers they hand out) made
//! by `_new` functions and released by `_free` functions; every call that can fail
//! returns an `hsb_status` (`HSB_OK` is 0) and, when asked, an error object whose
//! message is the whole chain of causes. No panic crosses the boundary: each entry point
//! catches them and reports `HSB_ERR_INTERNAL`. NULL pointers, an empty argv and text
//! that is not UTF-8 give `HSB_ERR_INVALID_ARGUMENT`.
//!
//! Threads: a sandbox may be used by several threads at once; an outcome or an error
//! may be read from several threads; options must not change while a run uses them.
//! Runs are driven by one runtime inside the library (two worker threads, created with
//! the first sandbox); a process that forks must not use the library in the child.

// The C names are the API: `hsb_status`, `HSB_OK`, ...
#![allow(non_camel_case_types)]

mod error;
mod ffi;
mod live;
mod options;
mod outcome;
mod run;
mod runtime;
mod sandbox;
mod snapshot;

pub use error::{
    hsb_error, hsb_error_exit_status, hsb_error_free, hsb_error_kind, hsb_error_message,
    hsb_error_status, hsb_status,
};
pub use live::*;
pub use options::*;
pub use outcome::*;
pub use run::{hsb_output_callback, hsb_run, hsb_run_streaming, hsb_run_template, hsb_stream};
pub use sandbox::{hsb_sandbox, hsb_sandbox_free, hsb_sandbox_new, hsb_sandbox_new_from_toml};
pub use snapshot::*;

// The handles are shared between C threads as documented in hsb.h: make the compiler
// check that what they hold allows it.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<hsb_sandbox>();
    shared::<hsb_run_options>();
    shared::<hsb_outcome>();
    shared::<hsb_error>();
    shared::<live::hsb_live>();
    shared::<live::hsb_bytes>();
    shared::<snapshot::hsb_snapshot>();
};

/// The library's version, such as `"0.1.0"`; static.
#[no_mangle]
pub extern "C" fn hsb_version() -> *const std::ffi::c_char {
    static VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
    ) {
        Ok(v) => v,
        Err(_) => c"unknown",
    };
    VERSION.as_ptr()
}
