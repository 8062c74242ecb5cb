//! Import limits, per layer and per image: each exceeded for real (zip bombs, streams
//! that go on past the tar's end, oversized long-name headers, many layers, many
//! entries), with the limit, the layer and the way to raise it named, and nothing left
//! in the store.

use std::io::Write;

use super::*;
use crate::{LimitKind, PerImageLimits, UnpackLimits};

fn opts(layer: UnpackLimits, image: PerImageLimits) -> ImportOptions {
    ImportOptions {
        limits: layer,
        image_limits: image,
        ..Default::default()
    }
}

fn image(max_layers: u64, max_total: u64, max_entries: u64) -> PerImageLimits {
    PerImageLimits {
        max_layers,
        max_total,
        max_entries,
    }
}

fn small_layer(tag: &str, n: usize) -> Vec<u8> {
    let names: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let entries: Vec<E<'_>> = names.iter().map(|n| E::File(n, b"x", 0o644)).collect();
    layer(&entries)
}

#[test]
fn too_many_layers() {
    let d = tempfile::tempdir().unwrap();
    let layers: Vec<Vec<u8>> = (0..3).map(|i| small_layer(&format!("l{i}"), 1)).collect();
    let img = docker_tar(d.path(), &layers, false);
    let e = refused(
        d.path(),
        &img,
        opts(UnpackLimits::default(), image(2, u64::MAX, u64::MAX)),
    );
    assert!(
        e.contains("it has 3 layers (limit layers = 2)") && e.contains("`--max-layers`"),
        "{e}"
    );
}

#[test]
fn image_bytes_count_every_layer_and_nothing_is_published() {
    let d = tempfile::tempdir().unwrap();
    let big = vec![7u8; 600 << 10];
    let l1 = layer(&[E::File("a", &big, 0o644)]);
    let l2 = layer(&[E::File("b", &big, 0o644)]);
    let img = docker_tar(d.path(), &[l1, l2], false);
    let e = refused(
        d.path(),
        &img,
        opts(UnpackLimits::default(), image(10, 1 << 20, u64::MAX)),
    );
    // The second layer runs into what the first left of the image's budget; the first,
    // though complete and verified, was not published.
    assert!(
        e.contains("entry `b`")
            && e.contains("the image's layers unpack to more than that together")
            && e.contains("limit image_bytes = 1MiB")
            && e.contains("image_limits.image_bytes"),
        "{e}"
    );
}

#[test]
fn entries_per_layer_and_per_image() {
    let d = tempfile::tempdir().unwrap();
    let img = docker_tar(d.path(), &[small_layer("a", 20)], false);
    let layer_limits = UnpackLimits {
        max_entries: 10,
        ..Default::default()
    };
    let e = refused(
        d.path(),
        &img,
        opts(layer_limits, PerImageLimits::default()),
    );
    assert!(e.contains("limit layer_entries = 10"), "{e}");
    let img = docker_tar(
        d.path(),
        &[small_layer("a", 10), small_layer("b", 10)],
        false,
    );
    let e = refused(
        d.path(),
        &img,
        opts(UnpackLimits::default(), image(10, u64::MAX, 15)),
    );
    assert!(e.contains("limit image_entries = 15"), "{e}");
}

/// A gzip layer blob and the diff_id of what it decompresses to.
fn gz_layer(tar: &[u8]) -> (Vec<u8>, String) {
    (gzip(tar), hexd(tar))
}

#[test]
fn zip_bombs_stop_at_the_byte_limit() {
    let d = tempfile::tempdir().unwrap();
    // 64 MiB of zeros in one file, a few KiB compressed.
    let (blob, diff) = gz_layer(&layer(&[E::Zeros("bomb", 64 << 20)]));
    assert!(blob.len() < 1 << 20);
    let oci = Oci::write(&d.path().join("a"), &[(blob, diff)]);
    let limits = UnpackLimits {
        max_total: 8 << 20,
        ..Default::default()
    };
    let e = refused(d.path(), &oci.dir, opts(limits, PerImageLimits::default()));
    assert!(
        e.contains("entry `bomb`")
            && e.contains("limit layer_bytes = 8MiB")
            && e.contains("`--max-layer-bytes`"),
        "{e}"
    );
    // The same amount after the tar's end: not a file, still bounded.
    let mut tar = layer(&[E::File("small", b"x", 0o644)]);
    tar.extend(std::iter::repeat_n(0u8, 64 << 20));
    let (blob, diff) = gz_layer(&tar);
    let oci = Oci::write(&d.path().join("b"), &[(blob, diff)]);
    let e = refused(d.path(), &oci.dir, opts(limits, PerImageLimits::default()));
    assert!(
        e.contains("the layer unpacks to more than that") && e.contains("layer_bytes"),
        "{e}"
    );
}

#[test]
fn an_oversized_long_name_header_is_refused_before_it_fills_memory() {
    let d = tempfile::tempdir().unwrap();
    // A GNU long-name entry claiming 64 MiB of name: the tar reader would read it whole.
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(64 << 20);
    h.set_mode(0o644);
    {
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..13].copy_from_slice(b"././@LongLink");
    }
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend(std::iter::repeat_n(b'a', 64 << 20));
    tar.extend_from_slice(&layer(&[E::File("x", b"x", 0o644)]));
    let (blob, diff) = gz_layer(&tar);
    let oci = Oci::write(d.path(), &[(blob, diff)]);
    let e = refused(d.path(), &oci.dir, ImportOptions::default());
    assert!(
        e.contains("an extension header (GNU long name or PAX record) over 1 MiB"),
        "{e}"
    );
}

#[test]
fn blobs_are_checked_against_their_size_before_they_are_read() {
    let d = tempfile::tempdir().unwrap();
    let l = small_layer("a", 3);
    // Larger than the whole layer may be uncompressed: refused unread.
    let oci = Oci::of_layers(&d.path().join("big"), std::slice::from_ref(&l));
    let limits = UnpackLimits {
        max_total: 1024,
        ..Default::default()
    };
    let e = refused(d.path(), &oci.dir, opts(limits, PerImageLimits::default()));
    assert!(
        e.contains("its blob alone is") && e.contains("limit layer_bytes = 1KiB"),
        "{e}"
    );
    // A blob that grew past what its descriptor says (or was swapped): refused unread.
    let oci = Oci::of_layers(&d.path().join("grown"), &[l]);
    let blob = oci.blob(&oci.layers[0]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&blob)
        .unwrap();
    f.write_all(&[0u8; 4096]).unwrap();
    let e = refused(d.path(), &oci.dir, ImportOptions::default());
    assert!(e.contains("but the manifest says"), "{e}");
}

#[test]
fn layers_already_in_the_store_count_toward_the_image() {
    let d = tempfile::tempdir().unwrap();
    let big = vec![7u8; 600 << 10];
    let shared = layer(&[E::File("a", &big, 0o644)]);
    let own = layer(&[E::File("b", &big, 0o644)]);
    let s = store(d.path());
    let first = d.path().join("first");
    std::fs::create_dir(&first).unwrap();
    let r = s
        .import(
            &docker_tar(&first, std::slice::from_ref(&shared), false),
            Some("first"),
            ImportOptions::default(),
        )
        .unwrap();
    assert_eq!(r.size, 600 << 10);
    let both = docker_tar(d.path(), &[shared, own], false);
    let e = s
        .import(
            &both,
            Some("both"),
            opts(UnpackLimits::default(), image(10, 1 << 20, u64::MAX)),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            ImageError::Limit {
                limit: LimitKind::ImageBytes,
                ..
            }
        ),
        "{e}"
    );
    // Without the limit it imports, and its size counts both layers, cached or not.
    let r = s
        .import(&both, Some("both"), ImportOptions::default())
        .unwrap();
    assert_eq!(r.size, 1200 << 10);
}
