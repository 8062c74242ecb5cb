//! Warm templates through the server: `POST /v1/sandboxes` with `"template"` runs the
//! template's program on the request's stdin in a new sandbox (a fork of the
//! template's micro-VM, or a container of its pool) and answers the sandbox with the
//! outcome; the sandbox stays (its files can be read, it can be deleted); fields that
//! do not go with a template are refused; an unknown template is a policy error. And
//! `hsb run --template` exits as `hsb run` does.

mod serve_util;

use serve_util::*;

#[test]
fn create_from_a_template() {
    let server = Server::start(&[]);
    let isos = isolations();
    for (iso, name) in [("microvm", "py"), ("container", "py-container")] {
        if !isos.contains(&iso) {
            continue;
        }
        let body = serde_json::json!({
            "template": name,
            "stdin": "import os\nopen('/tmp/made', 'w').write('by the template run')\nprint(6*7)\n",
        });
        let (status, v) = server.json("POST", "/v1/sandboxes", &body.to_string());
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["isolation"], iso, "{v}");
        assert_eq!(v["outcome"]["stdout"], "42\n", "{v}");
        assert_eq!(v["outcome"]["exit_code"], 0, "{v}");
        let reason = v["outcome"]["decision"]["reasons"][0]
            .as_str()
            .unwrap_or_default();
        assert!(reason.contains(&format!("template `{name}`")), "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        // The sandbox stays: the run's file is there.
        let o = server.hsb(&["sandbox", "exec", &id, "--", "cat", "/tmp/made"]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "by the template run",
            "{o:?}"
        );
        let (status, _) = server.json("DELETE", &format!("/v1/sandboxes/{id}"), "");
        assert!(status == 204 || status == 200, "{status}");

        // stdin_base64, and a limit of the run.
        let body = serde_json::json!({
            "template": name,
            "stdin_base64": "aW1wb3J0IHRpbWUKdGltZS5zbGVlcCgzMCkK", // import time; time.sleep(30)
            "limits": { "wall_time": "300ms" },
        });
        let (status, v) = server.json("POST", "/v1/sandboxes", &body.to_string());
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["outcome"]["termination"], "timeout", "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        server.json("DELETE", &format!("/v1/sandboxes/{id}"), "");
    }
    // Refusals.
    for (body, want) in [
        (
            serde_json::json!({"template": "py", "image": "x"}),
            "template takes only",
        ),
        (
            serde_json::json!({"template": "py", "limits": {"memory": "1GiB"}}),
            "template takes only",
        ),
        (
            serde_json::json!({"template": "py", "stdin": "a", "stdin_base64": "YQ=="}),
            "not both",
        ),
        (serde_json::json!({"stdin": "a"}), "go with `template`"),
    ] {
        let (status, v) = server.json("POST", "/v1/sandboxes", &body.to_string());
        assert_eq!(status, 400, "{body} => {v}");
        assert!(v.to_string().contains(want), "{body} => {v}");
    }
    let (status, v) = server.json(
        "POST",
        "/v1/sandboxes",
        &serde_json::json!({"template": "nope"}).to_string(),
    );
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("no template `nope`"), "{v}");
}

#[test]
fn hsb_run_template_exit_codes() {
    let isos = isolations();
    if !isos.contains(&"microvm") {
        return;
    }
    let hsb = env!("CARGO_BIN_EXE_hsb");
    let run = |stdin: &str, extra: &[&str]| {
        let mut c = std::process::Command::new(hsb);
        c.args(["run", "--template", "py", "--stdin", "-"])
            .args(extra);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let o = run("print(6*7)", &[]);
    assert_eq!(
        (o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()),
        (Some(0), "42\n"),
        "{o:?}"
    );
    let o = run("import sys; sys.exit(7)", &[]);
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    let o = run("import time; time.sleep(30)", &["--wall-time", "300ms"]);
    assert_eq!(o.status.code(), Some(124), "{o:?}");
    let o = run("print(1)", &["--env", "A=B"]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--env cannot be used"),
        "{o:?}"
    );
    let o = std::process::Command::new(hsb)
        .args(["run", "--template", "nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no template `nope`"),
        "{o:?}"
    );
    let o = std::process::Command::new(hsb)
        .args(["template", "build", "py", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["isolation"], "microvm", "{v}");
}
