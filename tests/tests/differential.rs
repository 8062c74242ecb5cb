//! The differential harness (see `hsb_tests::differential`): each syscall family's
//! probe runs natively, in the container and in the micro-VM; every answer that
//! differs from Linux's must be a deliberate difference listed, with its reason, in
//! `tests/differential/expected.txt`. The table in `docs/compat.md` is checked current
//! (`HSB_BLESS=1` rewrites it). `scripts/differential.sh` runs more random calls.

use hsb_tests::differential::{check_doc_row, compare, FAMILIES};

fn family(name: &str) {
    assert!(FAMILIES.contains(&name));
    let report = compare(name);
    println!("{}", report.text());
    let mut problems = Vec::new();
    if !report.failures.is_empty() {
        problems.push(format!("{} runs failed", report.failures.len()));
    }
    let unexplained = report.unexplained().len();
    if unexplained > 0 {
        problems.push(format!(
            "{unexplained} answers differ from Linux without a reason in tests/differential/expected.txt"
        ));
    }
    if !report.stale.is_empty() {
        problems.push(format!(
            "{} entries of expected.txt match no difference any more (remove them)",
            report.stale.len()
        ));
    }
    if report.checks == 0 {
        problems.push("no check ran".into());
    }
    if let Some(doc) = check_doc_row(&report) {
        problems.push(doc);
    }
    assert!(
        problems.is_empty(),
        "{name}: {}\n{}",
        problems.join("; "),
        report.text()
    );
}

#[test]
fn io() {
    family("io");
}

#[test]
fn fs() {
    family("fs");
}

#[test]
fn proc() {
    family("proc");
}

#[test]
fn signal() {
    family("signal");
}

#[test]
fn time() {
    family("time");
}

#[test]
fn mm() {
    family("mm");
}

#[test]
fn socket() {
    family("socket");
}

#[test]
fn thread() {
    family("thread");
}

#[test]
fn misc() {
    family("misc");
}

#[test]
fn ipc() {
    family("ipc");
}

#[test]
fn net() {
    family("net");
}

#[test]
fn netnone() {
    family("netnone");
}
