//! The generated-request suite: schemathesis (PyPI, installed by
//! scripts/install-deps.sh into /opt/hybrid-sandbox/tools) reads the server's
//! `/openapi.json` and sends it requests generated from it — valid ones, invalid ones,
//! and stateful sequences that follow the document's links (create, then exec, files,
//! pause, destroy on the created sandbox). Every answer must be a non-5xx whose status,
//! content type, headers and body conform to the document; the server must still serve
//! afterwards, and its stop must leave nothing.

mod serve_util;

use std::process::Command;

use serve_util::*;

fn schemathesis() -> Option<String> {
    let candidates = [
        std::env::var("HSB_SCHEMATHESIS").unwrap_or_default(),
        "/opt/hybrid-sandbox/tools/bin/schemathesis".to_string(),
        "schemathesis".to_string(),
    ];
    candidates.into_iter().filter(|c| !c.is_empty()).find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn generated_requests_find_no_5xx_and_no_crash() {
    let st = schemathesis();
    if !feature(
        "schemathesis (scripts/install-deps.sh installs it)",
        st.is_none()
            .then(|| "not in /opt/hybrid-sandbox/tools, $HSB_SCHEMATHESIS or PATH".into()),
    ) {
        return;
    }
    let st = st.unwrap();
    let token = "schemathesis-token-0123456789";
    let mounts = mounts();
    let mut server = Server::start_tcp(&format!("{token} schemathesis\n"), &["--quota", "16"]);
    let pid = server.pid();
    let report = server.dir.path().join("report");
    let out = Command::new(&st)
        .current_dir(server.dir.path())
        .args([
            "run",
            &format!("{}/openapi.json", server.url),
            "-H",
            &format!("Authorization: Bearer {token}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance",
            "--max-examples",
            "40",
            "--workers",
            "2",
            "--request-timeout",
            "60",
            "--generation-database",
            "none",
            "--no-color",
            "--report-dir",
            report.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    assert!(
        text.contains("Stateful"),
        "the stateful phase did not run:\n{text}"
    );
    assert!(!text.contains(" failed"), "{text}");
    // The server is alive and serves.
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the server died"
    );
    let rt = runtime();
    rt.block_on(async {
        let c = server.client(Some(token));
        let live = c.create(&hsb_client::api::CreateRequest::default()).await;
        match live {
            Ok(live) => {
                assert_eq!(live.exec(["echo", "ok"]).await.unwrap().stdout, b"ok\n");
                live.destroy().await.unwrap();
            }
            // What schemathesis created may fill the quota: the server says so.
            Err(e) => assert_eq!(e.kind(), "quota", "{}", e.chain()),
        }
    });
    let cgroups = cgroups_of(pid);
    assert!(server.stop(libc::SIGTERM).success());
    assert_eq!(processes_in(&cgroups), 0);
    assert!(cgroups.iter().all(|c| !c.exists()), "cgroups left");
    assert_eq!(
        mounts_added(&mounts, server.dir.path()),
        Vec::<String>::new()
    );
}
