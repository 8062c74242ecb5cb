//! The store's scratch space: what a killed import leaves is removed by the next one
//! (never while an import may still be using it), and never published.

use super::*;

fn junk(s: &ImageStore) {
    // What `kill -9` in the middle of an unpack leaves: a half-written layer tree and a
    // record being written.
    let half = s.root().join("tmp/abcdef0123456789-999-1-0/root/bin");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("busybox"), b"half a binary").unwrap();
    std::fs::write(s.root().join("tmp/record-999-x"), b"{").unwrap();
}

fn scratch_count(s: &ImageStore) -> usize {
    std::fs::read_dir(s.root().join("tmp")).unwrap().count()
}

#[test]
fn what_a_killed_import_left_is_removed_and_never_used() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path());
    let img = docker_tar(
        d.path(),
        &[layer(&[E::File("bin/busybox", b"the whole binary", 0o755)])],
        false,
    );
    // A first import creates the store.
    s.import(&img, Some("a"), ImportOptions::default()).unwrap();
    s.remove("a").unwrap();
    junk(&s);
    // While another import runs (it holds the import lock shared), its scratch space
    // may be in use: left alone.
    let other = std::fs::File::open(s.root().join("import.lock")).unwrap();
    rustix::fs::flock(&other, rustix::fs::FlockOperation::LockShared).unwrap();
    let r = s.import(&img, Some("b"), ImportOptions::default()).unwrap();
    assert_eq!(
        scratch_count(&s),
        2,
        "scratch of a running import was removed"
    );
    drop(other);
    // The layer was unpacked afresh, whole.
    let l = s.lock_layers(&r).unwrap();
    assert_eq!(
        std::fs::read(l.dirs[0].join("bin/busybox")).unwrap(),
        b"the whole binary"
    );
    drop(l);
    // With no import running, the next import (or gc) removes it.
    s.import(&img, Some("c"), ImportOptions::default()).unwrap();
    assert_eq!(scratch_count(&s), 0);
    junk(&s);
    s.gc().unwrap();
    assert_eq!(scratch_count(&s), 0);
}

#[test]
fn layer_metadata_goes_with_its_layer() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path());
    let img = docker_tar(d.path(), &[layer(&[E::File("f", b"12345", 0o644)])], false);
    let r = s.import(&img, Some("a"), ImportOptions::default()).unwrap();
    let meta = s.root().join(format!("layers/sha256/{}.json", r.layers[0]));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(
        (v["bytes"].as_u64(), v["entries"].as_u64()),
        (Some(5), Some(1))
    );
    assert_eq!(s.remove("a").unwrap(), 1);
    assert!(!meta.exists());
}
