//! C API of hybrid-sandbox (in progress).
