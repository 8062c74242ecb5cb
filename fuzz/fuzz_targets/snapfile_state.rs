//! The personality state of a snapshot file (`backend-microvm/src/linux/saved.rs`),
//! read over a fresh guest: whatever the bytes, the reader refuses or builds a kernel;
//! it never panics, hangs or allocates without bound (every length is checked against
//! the bytes left, every frame, address and reference against what exists).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = backend_microvm::fuzzing::load_state(data);
});
