//! A container snapshot file's entries (`backend-container/src/live/snapshot/file.rs`),
//! behind a good header and checksum: whatever the bytes, the reader refuses them or
//! gives entries whose paths are plain paths inside the sandbox's own filesystems,
//! within the snapshot's bounds; it never panics or allocates without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = backend_container::fuzzing::decode_container_snapshot(data);
});
