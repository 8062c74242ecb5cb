//! The committed `include/hsb.h` must be what cbindgen generates from the sources now.
//! `HSB_BLESS=1 cargo test -p hybrid-sandbox-c --test header` rewrites it.

use std::path::Path;

#[test]
fn header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen cannot generate the header")
        .write(&mut generated);
    let path = dir.join("include/hsb.h");
    let committed = std::fs::read(&path).unwrap_or_default();
    if generated == committed {
        return;
    }
    if std::env::var_os("HSB_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/hsb.h");
        return;
    }
    panic!(
        "{} is stale: regenerate it with `HSB_BLESS=1 cargo test -p hybrid-sandbox-c --test header` \
         and commit it",
        path.display()
    );
}
