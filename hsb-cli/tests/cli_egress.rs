//! `hsb` and the egress network: flags, errors naming what is wrong, `policy explain`,
//! exposed ports reported, and rootless runs.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

const HSB: &str = env!("CARGO_BIN_EXE_hsb");

fn hsb(args: &[&str]) -> Output {
    Command::new(HSB)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("HSB_UNSET_SECRET_VAR")
        .output()
        .expect("run hsb")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_flags_are_refused_with_the_reason() {
    // Usage errors, like setup errors, exit 125.
    for (args, code, want) in [
        (
            &["--network", "wifi"][..],
            125,
            "use none, loopback or egress",
        ),
        (
            &["--network", "egress", "--allow", "a.com:99999"],
            125,
            "port 99999 is out of range",
        ),
        (&["--network", "egress", "--allow", "[::1]:80"], 125, "IPv6"),
        (
            &["--network", "egress", "--allow", "*bad*.com"],
            125,
            "wildcard",
        ),
        (
            &["--network", "egress", "--expose", "0"],
            125,
            "0 is not in 1..=65535",
        ),
        (&["--network", "egress", "--expose", "65536"], 125, "65536"),
        (&["--network", "egress", "--secret", "T=ENV"], 125, "no `@`"),
        (&["--allow", "a.com"], 125, "need the egress network"),
        (
            &[
                "--network",
                "egress",
                "--allow",
                "api.a.com",
                "--deny",
                "*.a.com",
            ],
            125,
            "overlaps deny rule",
        ),
        (
            &[
                "--network",
                "egress",
                "--allow",
                "a.com",
                "--secret",
                "T=HSB_UNSET_SECRET_VAR@a.com",
            ],
            125,
            "secret T: the variable `HSB_UNSET_SECRET_VAR` is not set",
        ),
        (
            &[
                "--network",
                "egress",
                "--allow",
                "a.com",
                "--secret",
                "T=HOME@b.com",
            ],
            125,
            "`b.com` is not within the network's allow rules",
        ),
    ] {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--", "true"]);
        let o = hsb(&full);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(want), "{args:?}: {}", err(&o));
    }
}

const POLICY: &str = r#"version = 1
[profiles.agent.network]
mode = "egress"
allow = ["pypi.org", "*.pythonhosted.org", "api.github.com:443"]
deny = ["*.internal.example"]
expose = [8000]
[profiles.agent.secrets]
GITHUB_TOKEN = { from_env = "HSB_CLI_TEST_TOKEN", hosts = ["api.github.com"] }
"#;

#[test]
fn policy_check_and_explain() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[profiles.agent.network]\nmode = \"egress\"\nallow = [\"ok.com\", \"x.com:0\"]\n",
    )
    .unwrap();
    let o = hsb(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        err(&o).contains(&format!("{}:3:", bad.display())) && err(&o).contains("x.com:0"),
        "{}",
        err(&o)
    );
    let good = dir.path().join("agent.toml");
    std::fs::write(&good, POLICY).unwrap();
    let o = Command::new(HSB)
        .args([
            "policy",
            "explain",
            good.to_str().unwrap(),
            "--workload",
            "agent",
        ])
        .env("HSB_CLI_TEST_TOKEN", "ghp_cli_value")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out.contains("network:   egress"), "{out}");
    assert!(
        out.contains("allow    `api.github.com:443` (profiles.agent.network.allow[2])"),
        "{out}"
    );
    assert!(out.contains("deny     `*.internal.example`"), "{out}");
    assert!(
        out.contains("secret   GITHUB_TOKEN for api.github.com"),
        "{out}"
    );
    assert!(!out.contains("ghp_cli_value"), "{out}");
    let o = Command::new(HSB)
        .args([
            "policy",
            "explain",
            good.to_str().unwrap(),
            "--workload",
            "agent",
            "--json",
        ])
        .env("HSB_CLI_TEST_TOKEN", "ghp_cli_value")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["network"], "egress");
    assert_eq!(v["egress"]["expose"], serde_json::json!([8000]));
    assert_eq!(v["egress"]["secrets"][0]["value"], "<redacted>");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("ghp_cli_value"));
    // The variable unset: the run cannot be planned, and the error says where.
    let o = hsb(&[
        "policy",
        "explain",
        good.to_str().unwrap(),
        "--workload",
        "agent",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        err(&o).contains(&format!("{}:8:", good.display()))
            && err(&o).contains("profiles.agent.secrets.GITHUB_TOKEN.from_env"),
        "{}",
        err(&o)
    );
}

#[test]
fn exposed_ports_are_reported() {
    let o = hsb(&[
        "run",
        "--network",
        "egress",
        "--expose",
        "8000",
        "--json",
        "--",
        "true",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("the sandbox's port 8000 is at 127.0.0.1:"),
        "{}",
        err(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["network"]["mode"], "egress");
    assert_eq!(v["network"]["exposed"][0]["sandbox_port"], 8000);
    assert!(v["network"]["exposed"][0]["host"]
        .as_str()
        .is_some_and(|h| h.starts_with("127.0.0.1:")));
    assert_eq!(v["enforcement"]["network"], "egress");
}

/// The micro-VM has the same egress from the CLI: its DNS answers by the rules, the
/// exposed port and the report in the JSON outcome, the enforcement report saying how
/// (no TUN device: the broker is in-process).
#[test]
fn microvm_egress_from_the_cli() {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        eprintln!("SKIPPED: no usable /dev/kvm for the micro-VM");
        return;
    }
    let o = hsb(&[
        "run",
        "--isolation",
        "microvm",
        "--network",
        "egress",
        "--allow",
        "x.test",
        "--expose",
        "8000",
        "--json",
        "--",
        "sh",
        "-c",
        "getent hosts x.test; getent hosts y.test || echo y-unresolved",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["isolation"], "microvm", "{v}");
    let out = v["stdout"].as_str().unwrap_or_default();
    assert!(out.starts_with("198.18.") && out.contains("x.test"), "{v}");
    assert!(out.contains("y-unresolved"), "{v}");
    assert_eq!(v["network"]["mode"], "egress");
    assert_eq!(v["network"]["exposed"][0]["sandbox_port"], 8000);
    let dns = v["network"]["dns"].as_array().cloned().unwrap_or_default();
    assert!(
        dns.iter()
            .any(|d| d["name"] == "x.test" && d["verdict"] == "allowed"),
        "{v}"
    );
    assert!(
        dns.iter()
            .any(|d| d["name"] == "y.test" && d["verdict"] == "denied"),
        "{v}"
    );
    assert!(
        v["enforcement"]["network_detail"]
            .as_str()
            .is_some_and(|d| d.contains("egress broker, in-process")),
        "{v}"
    );
}

/// Rootless, the sandbox's init opens /dev/net/tun as the caller: it works where the
/// device is open to every user (the udev default), and fails closed, naming the
/// device, where it is not.
#[test]
fn rootless_egress_works_or_says_why_not() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the rootless egress test runs as root (it drops to uid 65534)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("hsb");
    std::fs::copy(HSB, &bin).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(["--inh-caps=-all", "--bounding-set=-all"])
        .arg(&bin)
        .args([
            "run",
            "--network",
            "egress",
            "--allow",
            "x.test",
            "--json",
            "--",
        ])
        .args(["sh", "-c", "getent hosts x.test"])
        .current_dir("/")
        .output()
        .expect("setpriv (util-linux) must be installed");
    let mode = std::fs::metadata("/dev/net/tun").map(|m| m.permissions().mode() & 0o777);
    if mode.is_ok_and(|m| m & 0o006 == 0o006) {
        assert!(o.status.success(), "{}", err(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["enforcement"]["rootless"], true);
        assert!(v["stdout"].as_str().unwrap().starts_with("198.18."), "{v}");
    } else {
        assert_eq!(o.status.code(), Some(125), "{}", err(&o));
        assert!(err(&o).contains("/dev/net/tun"), "{}", err(&o));
    }
}
