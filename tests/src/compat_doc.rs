//! The generated parts of `docs/compat.md`: each lives between a `BEGIN GENERATED`
//! and an `END GENERATED` marker naming it, and is rewritten whole by its generator;
//! the rest of the file is written by hand.
//!
//! - `syscalls`: the micro-VM's syscall table, from `backend_microvm::syscall_table()`
//!   (no KVM needed). `cargo test -p hsb-tests --test compat_doc` fails when the
//!   committed section is stale; `HSB_BLESS=1` rewrites it.
//! - `differential`: the differential harness's table (`tests/tests/differential.rs`,
//!   `scripts/differential.sh`).

use std::path::PathBuf;

use backend_microvm::{syscall_table, Support, SyscallSupport};

/// The path of `docs/compat.md`.
pub fn path() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/compat.md")
}

fn begin(name: &str) -> String {
    format!("<!-- BEGIN GENERATED: {name} -->")
}

fn end(name: &str) -> String {
    format!("<!-- END GENERATED: {name} -->")
}

/// The generated section `name` of `doc`, markers excluded.
pub fn section<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let (b, e) = (begin(name), end(name));
    let start = doc.find(&b)? + b.len();
    let stop = start + doc[start..].find(&e)?;
    Some(doc[start..stop].trim_matches('\n'))
}

/// `doc` with section `name` replaced by `body` (appended, markers and all, when the
/// document has no such section yet).
pub fn replace_section(doc: &str, name: &str, body: &str) -> String {
    let (b, e) = (begin(name), end(name));
    let block = format!("{b}\n{}\n{e}", body.trim_matches('\n'));
    match (doc.find(&b), doc.find(&e)) {
        (Some(s), Some(t)) if s < t => format!("{}{block}{}", &doc[..s], &doc[t + e.len()..]),
        _ => format!("{}\n\n{block}\n", doc.trim_end()),
    }
}

fn level(s: Support) -> &'static str {
    match s {
        Support::Implemented => "implemented",
        Support::Partial => "partial",
        Support::Refused => "`EPERM`",
        Support::Enosys => "`ENOSYS`",
    }
}

/// The syscall section, from the micro-VM's syscall table.
pub fn syscalls_markdown() -> String {
    render_syscalls(&syscall_table())
}

/// The syscall section of `table`.
pub fn render_syscalls(table: &[SyscallSupport]) -> String {
    let count = |s: Support| table.iter().filter(|x| x.support == s).count();
    let mut out = String::new();
    out.push_str(&format!(
        "### Syscalls of the micro-VM (x86-64, {} numbers)\n\n",
        table.len()
    ));
    out.push_str(
        "Generated from the personality's syscall table (`backend-microvm/src/linux/table.rs`), \
         which also dispatches the calls: what it says is what runs. \
         `cargo test -p hsb-tests --test compat_doc` fails when this section is stale; \
         `HSB_BLESS=1` rewrites it.\n\n",
    );
    out.push_str(&format!(
        "- implemented: {} (of which {} partially: what differs is in the note; refused variants are counted in `Outcome::unimplemented_syscalls` when used)\n",
        count(Support::Implemented) + count(Support::Partial),
        count(Support::Partial)
    ));
    out.push_str(&format!(
        "- refused with `EPERM`, as Linux refuses an unprivileged user (the container backend's filter refuses them too): {}\n",
        count(Support::Refused)
    ));
    out.push_str(&format!(
        "- `ENOSYS`, counted in `Outcome::unimplemented_syscalls`: {}\n\n",
        count(Support::Enosys)
    ));
    out.push_str("(gVisor, for scale, implements about 237 of about 350.)\n\n");
    out.push_str("| nr | syscall | answer | note |\n| ---: | --- | --- | --- |\n");
    for s in table {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            s.nr,
            s.name,
            level(s.support),
            s.note.unwrap_or_default().replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_found_and_replaced() {
        let doc = "# T\n\nhand\n";
        let d = replace_section(doc, "x", "one");
        assert_eq!(section(&d, "x"), Some("one"));
        let d2 = replace_section(&d, "x", "two\n");
        assert_eq!(section(&d2, "x"), Some("two"));
        assert!(d2.starts_with("# T\n\nhand\n"));
        assert_eq!(d2.matches("BEGIN GENERATED").count(), 1);
    }
}
