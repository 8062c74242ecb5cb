//! The generated syscall section of `docs/compat.md` must be what the micro-VM's
//! syscall table says now. `HSB_BLESS=1 cargo test -p hsb-tests --test compat_doc`
//! rewrites it (the rest of the file is left as it is).

use hsb_tests::compat_doc::{path, replace_section, section, syscalls_markdown};

#[test]
fn the_syscall_section_is_current() {
    let path = path();
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = syscalls_markdown();
    if section(&doc, "syscalls") == Some(generated.trim_matches('\n')) {
        return;
    }
    if std::env::var_os("HSB_BLESS").is_some() {
        std::fs::write(&path, replace_section(&doc, "syscalls", &generated))
            .expect("write docs/compat.md");
        return;
    }
    panic!(
        "the syscall section of {} is stale: regenerate it with \
         `HSB_BLESS=1 cargo test -p hsb-tests --test compat_doc` and commit it",
        path.display()
    );
}
