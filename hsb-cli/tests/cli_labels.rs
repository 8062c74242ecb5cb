//! The embedded default policy honours trust labels: `--label trust=untrusted` and any
//! `tenant` label run in the micro-VM, failing closed with the reason (exit 125) where it
//! is unavailable; unlabeled runs stay in the container. `hsb policy explain` says why.

mod common;

use std::process::{Command, Output, Stdio};

const HSB: &str = env!("CARGO_BIN_EXE_hsb");

fn hsb(args: &[&str]) -> Output {
    Command::new(HSB)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run hsb")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", text(&o.stdout), text(&o.stderr)))
}

#[test]
fn explain_shows_where_labels_send_a_run() {
    let v = json(&hsb(&["policy", "explain", "--json", "--", "python3"]));
    assert_eq!(v["isolation"], "container", "{v}");
    assert_eq!(v["profile"], "default", "{v}");
    let v = json(&hsb(&[
        "policy",
        "explain",
        "--label",
        "trust=trusted",
        "--json",
        "--",
        "python3",
    ]));
    assert_eq!(v["isolation"], "container", "{v}");
    for label in ["trust=untrusted", "tenant=acme", "trust=unknown-value"] {
        let o = hsb(&[
            "policy", "explain", "--label", label, "--json", "--", "python3",
        ]);
        let v = json(&o);
        // The micro-VM, or (without KVM) a refusal that says the micro-VM is missing:
        // never the container.
        match v["isolation"].as_str() {
            Some("microvm") => assert_eq!(o.status.code(), Some(0)),
            None => {
                assert_eq!(o.status.code(), Some(125), "{v}");
                let why = v["refused"].as_str().unwrap_or_default();
                assert!(why.contains("microvm isolation is not available"), "{v}");
                common::feature("KVM", Some(why.to_string()));
            }
            Some(other) => panic!("{label}: {other}: {v}"),
        }
        assert!(
            v["reasons"]
                .to_string()
                .contains(label.split('=').next().unwrap()),
            "{v}"
        );
    }
    // Asking for the container does not get around the label.
    let o = hsb(&[
        "policy",
        "explain",
        "--label",
        "trust=untrusted",
        "--isolation",
        "container",
        "--json",
        "--",
        "python3",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o.stdout));
    let v = json(&o);
    let why = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        why.contains("floor") && why.contains("requires microvm for trust=untrusted"),
        "{v}"
    );
}

#[test]
fn labelled_runs_get_the_micro_vm() {
    if !common::kvm() {
        return;
    }
    for label in ["trust=untrusted", "tenant=acme"] {
        let o = hsb(&[
            "run",
            "--label",
            label,
            "--json",
            "--",
            "/usr/bin/busybox",
            "echo",
            "in",
        ]);
        let v = json(&o);
        assert_eq!(o.status.code(), Some(0), "{v}");
        assert_eq!(v["isolation"], "microvm", "{v}");
        assert_eq!(v["stdout"], "in\n", "{v}");
        assert_eq!(v["decision"]["profile"], "labelled", "{v}");
    }
    let v = json(&hsb(&[
        "run",
        "--json",
        "--",
        "/usr/bin/busybox",
        "echo",
        "in",
    ]));
    assert_eq!(v["isolation"], "container", "{v}");
}

#[test]
fn without_kvm_labelled_runs_fail_closed_and_say_why() {
    use std::os::unix::fs::PermissionsExt;
    if !common::root() {
        return;
    }
    // uid 65534 without groups cannot open /dev/kvm when others have no access to it.
    let others = std::fs::metadata("/dev/kvm").map_or(0, |m| m.permissions().mode() & 0o006);
    if !common::feature(
        "a /dev/kvm that uid 65534 cannot open",
        (others != 0).then(|| format!("/dev/kvm is mode {others:o} for others")),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = common::hsb_copy(dir.path());
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(&bin)
            .args(args)
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .expect("setpriv (util-linux) must be installed")
    };
    for label in ["trust=untrusted", "tenant=acme"] {
        let o = as_nobody(&["run", "--label", label, "--", "/usr/bin/true"]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "{label}: {err}");
        assert!(
            err.contains("microvm isolation is not available") && err.contains("/dev/kvm"),
            "{err}"
        );
        let o = as_nobody(&["run", "--label", label, "--json", "--", "/usr/bin/true"]);
        let v = json(&o);
        assert_eq!(v["exit_status"], 125, "{v}");
        let o = as_nobody(&["policy", "explain", "--label", label]);
        assert_eq!(o.status.code(), Some(125));
        let out = text(&o.stdout);
        assert!(
            out.contains("refused")
                && out.contains("/dev/kvm")
                && out.contains(label.split('=').next().unwrap()),
            "{out}"
        );
    }
    // Unlabeled, the same user runs in the container as before.
    let o = as_nobody(&["run", "--json", "--", "/usr/bin/true"]);
    let v = json(&o);
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(v["isolation"], "container");
}
