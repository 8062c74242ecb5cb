//! Crossing the boundary: panics caught, pointers checked, C strings read. Every entry
//! point goes through [`call`] or [`value`], and reads its arguments with the helpers
//! here, which turn NULL pointers and invalid UTF-8 into `HSB_ERR_INVALID_ARGUMENT`.

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{hsb_error, hsb_status, Failure};

/// Runs the body of an entry point that reports through a status and `*err`: a panic
/// becomes `HSB_ERR_INTERNAL`; on failure `*err` gets a new error, on success NULL.
///
/// # Safety
/// `err` is NULL or valid for writing one pointer.
pub(crate) unsafe fn call(
    err: *mut *mut hsb_error,
    body: impl FnOnce() -> Result<(), Failure>,
) -> hsb_status {
    let result =
        catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|p| Err(Failure::from_panic(p)));
    let (status, error) = match result {
        Ok(()) => (hsb_status::HSB_OK, std::ptr::null_mut()),
        Err(f) if err.is_null() => (f.status(), std::ptr::null_mut()),
        Err(f) => (f.status(), Box::into_raw(Box::new(f.into_error()))),
    };
    if !err.is_null() {
        // SAFETY: `err` is not NULL, and the caller guarantees it is valid for writing.
        unsafe { err.write(error) };
    }
    status
}

/// Runs the body of an accessor: a panic gives `default`.
pub(crate) fn value<T>(default: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(default)
}

/// A NULL-or-valid pointer as an optional reference.
///
/// # Safety
/// `p` is NULL or points to a live `T` that nothing mutates during `'a`.
pub(crate) unsafe fn opt_ref<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: forwarded from the caller: NULL or a live, unaliased-for-writes `T`.
    unsafe { p.as_ref() }
}

/// A handle argument, which must not be NULL.
///
/// # Safety
/// As for [`opt_ref`].
pub(crate) unsafe fn handle<'a, T>(p: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: forwarded from the caller.
    unsafe { opt_ref(p) }.ok_or_else(|| Failure::invalid(format!("{what} is NULL")))
}

/// A handle argument to modify, which must not be NULL.
///
/// # Safety
/// `p` is NULL or points to a live `T` that nothing else uses during `'a`.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: forwarded from the caller: NULL or a live `T` used by nobody else.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::invalid(format!("{what} is NULL")))
}

/// Checks an out-parameter and sets it to NULL, so that it is NULL on every failure.
///
/// # Safety
/// `out` is NULL or valid for writing one pointer.
pub(crate) unsafe fn clear_out<T>(out: *mut *mut T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    // SAFETY: `out` is not NULL and the caller guarantees it is valid for writing.
    unsafe { out.write(std::ptr::null_mut()) };
    Ok(())
}

/// Hands a new object to the caller through `out`.
///
/// # Safety
/// `out` is valid for writing one pointer (checked by [`clear_out`] before).
pub(crate) unsafe fn give<T>(out: *mut *mut T, value: T) {
    let p = Box::into_raw(Box::new(value));
    // SAFETY: the caller guarantees `out` is valid for writing.
    unsafe { out.write(p) };
}

/// Frees an object handed out by [`give`] (NULL is ignored). A panic in a destructor is
/// caught and the object leaked.
///
/// # Safety
/// `p` is NULL or came from [`give`] with the same `T`, and is not used afterwards.
pub(crate) unsafe fn free<T>(p: *mut T) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` came from `Box::into_raw` for a `T` and ownership comes back here once.
    let boxed = unsafe { Box::from_raw(p) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

/// A C string argument as UTF-8 text.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that lives during `'a`.
pub(crate) unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    // SAFETY: `p` is not NULL, and the caller guarantees a NUL-terminated string.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        Failure::invalid(format!(
            "{what} is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// An optional C string argument: NULL gives `None`.
///
/// # Safety
/// As for [`text`].
pub(crate) unsafe fn opt_text<'a>(
    p: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded from the caller.
    unsafe { text(p, what) }.map(Some)
}

/// A byte buffer argument; `p` may be NULL when `len` is 0.
///
/// # Safety
/// `p` is NULL or valid for reading `len` bytes during `'a`.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Failure::invalid(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{what}: length {len} is too large"
        )));
    }
    // SAFETY: `p` is not NULL, `len` fits in isize, and the caller guarantees `len`
    // readable bytes that nothing writes during `'a`.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// An argv array: `argc` strings, the first the program.
///
/// # Safety
/// `argv` is NULL or points to `argc` pointers, each NULL or a NUL-terminated string.
pub(crate) unsafe fn argv(argv: *const *const c_char, argc: usize) -> Result<Vec<String>, Failure> {
    if argv.is_null() {
        return Err(Failure::invalid("argv is NULL"));
    }
    if argc == 0 {
        return Err(Failure::invalid(
            "argc is 0: argv needs at least the program",
        ));
    }
    if argc > (isize::MAX as usize) / std::mem::size_of::<*const c_char>() {
        return Err(Failure::invalid(format!("argc {argc} is too large")));
    }
    // SAFETY: `argv` is not NULL, `argc` pointers fit in isize, and the caller
    // guarantees `argc` readable pointers that nothing writes during the call.
    let ptrs = unsafe { std::slice::from_raw_parts(argv, argc) };
    let mut out = Vec::with_capacity(argc);
    for (i, &p) in ptrs.iter().enumerate() {
        // SAFETY: the caller guarantees each entry is NULL or a NUL-terminated string.
        let s = unsafe { text(p, &format!("argv[{i}]")) }?;
        out.push(s.to_owned());
    }
    if out[0].is_empty() {
        return Err(Failure::invalid("argv[0] (the program) is empty"));
    }
    Ok(out)
}

/// Text for C: a NUL inside (never expected) becomes U+FFFD.
pub(crate) fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of a live error.
    fn text_of(e: *const hsb_error) -> String {
        // SAFETY: the tests pass live errors only.
        let p = unsafe { crate::error::hsb_error_message(e) };
        // SAFETY: a live error's message is a NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    fn message(f: Failure) -> String {
        text_of(&f.into_error())
    }

    #[test]
    fn argv_checks() {
        let (echo, hi, bad) = (c"echo", c"hi", b"caf\xe9\0");
        let ok = [echo.as_ptr(), hi.as_ptr()];
        // SAFETY: `ok` holds two NUL-terminated strings.
        assert_eq!(unsafe { argv(ok.as_ptr(), 2) }.unwrap(), ["echo", "hi"]);
        // SAFETY: NULL and argc 0 are checked before any read.
        let e = unsafe { argv(std::ptr::null(), 1) }.unwrap_err();
        assert_eq!(message(e), "argv is NULL");
        // SAFETY: as above.
        let e = unsafe { argv(ok.as_ptr(), 0) }.unwrap_err();
        assert!(message(e).starts_with("argc is 0"));
        let with_null = [echo.as_ptr(), std::ptr::null()];
        // SAFETY: two readable pointers, one NULL (checked).
        let e = unsafe { argv(with_null.as_ptr(), 2) }.unwrap_err();
        assert_eq!(message(e), "argv[1] is NULL");
        let not_utf8 = [echo.as_ptr(), bad.as_ptr().cast::<c_char>()];
        // SAFETY: two NUL-terminated strings.
        let e = unsafe { argv(not_utf8.as_ptr(), 2) }.unwrap_err();
        assert_eq!(
            message(e),
            "argv[1] is not valid UTF-8 (invalid byte at offset 3)"
        );
    }

    #[test]
    fn bytes_checks() {
        // SAFETY: length 0 reads nothing.
        assert!(unsafe { bytes(std::ptr::null(), 0, "data") }
            .unwrap()
            .is_empty());
        // SAFETY: NULL with a length is refused before any read.
        let e = unsafe { bytes(std::ptr::null(), 3, "data") }.unwrap_err();
        assert_eq!(message(e), "data is NULL but its length is 3");
    }

    #[test]
    fn panics_become_errors() {
        let mut err: *mut hsb_error = std::ptr::null_mut();
        // SAFETY: `err` is valid for writing.
        let st = unsafe { call(&mut err, || panic!("boom")) };
        assert_eq!(st, hsb_status::HSB_ERR_INTERNAL);
        assert!(text_of(err).contains("boom"));
        // SAFETY: handing the error back once.
        unsafe { crate::error::hsb_error_free(err) };
    }

    #[test]
    fn nul_in_text_for_c() {
        assert_eq!(cstring("a\0b").to_str().unwrap(), "a\u{FFFD}b");
    }
}
