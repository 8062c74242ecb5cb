//! The egress keys of a policy: parsing, errors with their place, the floor, run options.

use super::*;
use crate::network::{EgressRequest, HostRule, SecretRequest, SecretSource, SecretValue};

fn host() -> HostSupport {
    HostSupport::assume_all()
}

const AGENT: &str = r#"version = 1
[profiles.agent.network]
mode = "egress"
allow = ["pypi.org", "*.pythonhosted.org", "github.com:443", "203.0.113.7:5432", "api.github.com"]
deny = ["*.internal.example"]
expose = [8000]
[profiles.agent.secrets]
GITHUB_TOKEN = { from_env = "HSB_TEST_EGRESS_TOKEN", hosts = ["api.github.com"] }
"#;

fn agent_run() -> Workload {
    Workload::new("curl", Vec::<String>::new()).profile("agent")
}

fn plan_of(text: &str, w: &Workload, floor: Option<&Floor>) -> Result<Plan, PolicyError> {
    Policy::from_toml_str(text, "p.toml")?.resolve_with_floor(w, &host(), floor)
}

fn env<'a>(plan: &'a Plan, k: &str) -> Option<&'a str> {
    plan.env
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_issue_example_plans_a_broker() {
    std::env::set_var("HSB_TEST_EGRESS_TOKEN", "ghp_real_value");
    let plan = plan_of(AGENT, &agent_run(), None).unwrap();
    assert_eq!(plan.network, Network::Egress);
    let e = plan.egress.as_ref().unwrap();
    assert_eq!(e.allow.len(), 5);
    assert_eq!(e.allow[2].origin, "profiles.agent.network.allow[2]");
    assert_eq!(e.expose, [8000]);
    assert!(e.decide_name("files.pythonhosted.org", Some(443)).allowed());
    assert!(!e.decide_name("db.internal.example", None).allowed());
    let s = &e.secrets[0];
    assert_eq!(s.value.expose(), "ghp_real_value");
    // The sandbox sees the placeholder, never the value; the plan never prints it.
    assert_eq!(env(&plan, "GITHUB_TOKEN"), Some(s.placeholder.as_str()));
    assert!(!format!("{plan:?}").contains("ghp_real_value"));
    assert!(!serde_json::to_string(&plan)
        .unwrap()
        .contains("ghp_real_value"));
    assert_eq!(env(&plan, "HTTPS_PROXY"), Some("http://100.96.0.1:3128"));
    assert_eq!(
        env(&plan, "SSL_CERT_FILE"),
        Some(crate::network::CA_BUNDLE_PATH)
    );
    assert!(plan
        .generated_files()
        .iter()
        .any(|(p, c)| *p == "/etc/resolv.conf" && c.contains("nameserver 100.96.0.1")));
    // The network is a need: `auto` sends such a run to the container.
    let json = Policy::from_toml_str(AGENT, "p.toml").unwrap().to_json();
    assert_eq!(json["profiles"]["agent"]["network"]["mode"], "egress");
}

#[test]
fn plain_modes_keep_their_meaning() {
    let p = Policy::from_toml_str("[defaults]\nnetwork = \"loopback\"\n", "p.toml").unwrap();
    assert_eq!(p.to_json()["defaults"]["network"], "loopback");
    let plan = p
        .resolve(&Workload::new("x", Vec::<String>::new()), &host())
        .unwrap();
    assert_eq!(plan.network, Network::Loopback);
    assert!(plan.egress.is_none());
    assert!(env(&plan, "HTTP_PROXY").is_none());
    assert!(plan
        .generated_files()
        .iter()
        .all(|(p, _)| *p != "/etc/resolv.conf"));
}

/// An error's text, which must name the file, line and column, and `key`.
fn error_at(text: &str, line: usize, key: &str, what: &str) {
    let e = match Policy::from_toml_str(text, "p.toml") {
        Ok(p) => p
            .resolve(&agent_run(), &host())
            .expect_err("the run must be refused"),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("p.toml:{line}:")), "{msg}");
    assert!(msg.contains(key), "{msg} should name {key}");
    assert!(msg.contains(what), "{msg} should say {what}");
}

#[test]
fn bad_input_names_the_place_and_the_key() {
    let head = "[profiles.agent.network]\nmode = \"egress\"\n";
    error_at(
        &format!("{head}allow = [\"a.com\", \"b..com\"]\n"),
        3,
        "b..com",
        "not a valid host name",
    );
    error_at(
        &format!("{head}allow = [\"a.com:65536\"]\n"),
        3,
        "a.com:65536",
        "out of range",
    );
    error_at(
        &format!("{head}allow = [\"[::1]:80\"]\n"),
        3,
        "[::1]:80",
        "IPv6",
    );
    error_at(
        &format!("{head}expose = [8000, 99999]\n"),
        3,
        "port 99999",
        "out of range",
    );
    error_at(
        &format!("{head}allow = [\"api.x.com\"]\ndeny = [\"*.x.com\"]\n"),
        1,
        "allow rule `api.x.com`",
        "overlaps deny rule `*.x.com`",
    );
    // Overlap across layers: the defaults deny what the profile allows.
    error_at(
        "[defaults.network]\nmode = \"egress\"\ndeny = [\"*.x.com\"]\n[profiles.agent.network]\nallow = [\"a.x.com\"]\n",
        4,
        "profiles.agent.network",
        "overlaps",
    );
    error_at(
        "[profiles.agent.network]\nmode = \"loopback\"\n[profiles.agent.secrets]\nT = { from_env = \"X\", hosts = [\"a.com\"] }\n",
        3,
        "profiles.agent.secrets",
        "egress",
    );
    error_at(
        &format!("{head}allow = [\"a.com\"]\n[profiles.agent.secrets]\nT = {{ from_env = \"X\", hosts = [\"b.com\"] }}\n"),
        5,
        "profiles.agent.secrets.T.hosts",
        "not within the network's allow rules",
    );
    // Known only when the run is planned: the variable is unset.
    std::env::remove_var("HSB_TEST_EGRESS_UNSET");
    error_at(
        &format!(
            "{head}allow = [\"a.com\"]\n[profiles.agent.secrets]\nT = {{ from_env = \"HSB_TEST_EGRESS_UNSET\", hosts = [\"a.com\"] }}\n"
        ),
        5,
        "profiles.agent.secrets.T.from_env",
        "`HSB_TEST_EGRESS_UNSET` is not set",
    );
    error_at(
        "[profiles.agent.network]\nmode = \"egress\"\nalow = [\"a.com\"]\n",
        3,
        "alow",
        "did you mean `allow`",
    );
}

fn with_run(f: impl FnOnce(&mut EgressRequest)) -> Workload {
    let mut w = agent_run();
    w.network = Some(Network::Egress);
    f(&mut w.egress);
    w
}

fn rule(s: &str) -> HostRule {
    s.parse().unwrap()
}

#[test]
fn run_options_add_and_are_checked() {
    let text = "[profiles.agent.network]\nmode = \"egress\"\nallow = [\"a.com\"]\ndeny = [\"*.bad.com\"]\n";
    let w = with_run(|e| {
        e.allow.push(rule("b.com:443"));
        e.expose.push(9000);
        e.secrets.push(SecretRequest {
            name: "TOKEN".into(),
            source: SecretSource::Value(SecretValue::new("v")),
            hosts: vec![rule("b.com")],
        });
    });
    let plan = plan_of(text, &w, None).unwrap();
    let e = plan.egress.unwrap();
    assert_eq!(e.allow[1].origin, "run option --allow");
    assert_eq!(e.expose, [9000]);
    assert_eq!(e.secrets[0].value.expose(), "v");
    let bad = with_run(|e| e.allow.push(rule("x.bad.com")));
    let msg = plan_of(text, &bad, None).unwrap_err().to_string();
    assert!(msg.contains("overlaps deny rule `*.bad.com`"), "{msg}");
    let bad = with_run(|e| {
        e.secrets
            .push(SecretRequest::parse_spec("T=HSB_TEST_EGRESS_UNSET2@a.com").unwrap())
    });
    std::env::remove_var("HSB_TEST_EGRESS_UNSET2");
    let msg = plan_of(text, &bad, None).unwrap_err().to_string();
    assert!(
        msg.starts_with("secret T:") && msg.contains("not set"),
        "{msg}"
    );
    // Without the egress network, egress options are refused.
    let mut w = Workload::new("x", Vec::<String>::new());
    w.egress.allow.push(rule("a.com"));
    let msg = plan_of("", &w, None).unwrap_err().to_string();
    assert!(msg.contains("need the egress network"), "{msg}");
    for bad in ["T=ENV", "T@h", "=E@h", "T=E@", "T=E@h:0"] {
        assert!(SecretRequest::parse_spec(bad).is_err(), "{bad}");
    }
}

const NET_FLOOR: &str = r#"[floor.network]
mode = "egress"
allow = ["*.pypi.org", "github.com:443", "203.0.113.0/24"]
deny = ["evil.pypi.org"]
expose = [8000]
secrets = false
"#;

#[test]
fn the_floor_caps_egress() {
    let floor = Floor::from_toml_str(NET_FLOOR, "floor.toml").unwrap();
    let text = "[profiles.agent.network]\nmode = \"egress\"\nallow = [\"files.pypi.org\", \"github.com\", \"203.0.113.7:5432\"]\nexpose = [8000, 8001]\n[profiles.agent.secrets]\nT = { from_env = \"HOME\", hosts = [\"files.pypi.org\"] }\n";
    let plan = plan_of(text, &agent_run(), Some(&floor)).unwrap();
    let e = plan.egress.as_ref().unwrap();
    let allowed: Vec<String> = e.allow.iter().map(|r| r.rule.to_string()).collect();
    // `github.com` (every port) is wider than the floor's `github.com:443`: dropped.
    assert_eq!(allowed, ["files.pypi.org", "203.0.113.7:5432"]);
    assert!(matches!(
        e.decide_name("evil.pypi.org", Some(443)),
        crate::network::Verdict::Denied(r) if r.origin.contains("floor.toml")
    ));
    assert_eq!(e.expose, [8000]);
    assert!(e.secrets.is_empty());
    let reasons = plan.decision.reasons.join("\n");
    for note in [
        "allow rule `github.com` dropped",
        "port 8001",
        "secret `T` not given",
    ] {
        assert!(reasons.contains(note), "{reasons}");
    }
    // Per-run options beyond the floor are errors.
    for (w, want) in [
        (
            with_run(|e| e.allow.push(rule("pypi.org"))),
            "outside the floor's allowlist",
        ),
        (
            with_run(|e| e.expose.push(22)),
            "port 22 may not be exposed",
        ),
        (
            with_run(|e| {
                e.secrets
                    .push(SecretRequest::parse_spec("T=HOME@files.pypi.org").unwrap())
            }),
            "no secrets are allowed",
        ),
    ] {
        let msg = plan_of(text, &w, Some(&floor)).unwrap_err().to_string();
        assert!(msg.contains(want) && msg.contains("floor.toml"), "{msg}");
    }
    // A floor allowing at most loopback lowers egress, and refuses --network egress.
    let lo = Floor::from_toml_str("[floor]\nnetwork = \"loopback\"\n", "lo.toml").unwrap();
    let plan = plan_of(text, &agent_run(), Some(&lo)).unwrap();
    assert_eq!(plan.network, Network::Loopback);
    assert!(plan.egress.is_none());
    let msg = plan_of(text, &with_run(|_| {}), Some(&lo))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("egress is not allowed"), "{msg}");
    // In the same file, going beyond the floor is a contradiction.
    let same = format!(
        "{NET_FLOOR}\n{}",
        text.replace(
            "[profiles.agent.secrets]\nT = { from_env = \"HOME\", hosts = [\"files.pypi.org\"] }\n",
            ""
        )
    );
    let msg = Policy::from_toml_str(&same, "p.toml")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("outside the floor's allowlist"), "{msg}");
    // Two floors: the stricter of each.
    let other = Floor::from_toml_str(
        "[floor.network]\nallow = [\"files.pypi.org\", \"github.com\"]\ndeny = [\"x.pypi.org\"]\n",
        "other.toml",
    )
    .unwrap();
    let both = floor.stricter(&other).to_json();
    assert_eq!(
        both["network"]["allow"],
        serde_json::json!(["files.pypi.org", "github.com:443"])
    );
    assert_eq!(both["network"]["deny"].as_array().unwrap().len(), 2);
}
