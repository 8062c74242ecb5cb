//! Bad input to `hsb serve`: every malformed request gets a JSON error with a 4xx
//! status naming what is wrong, and the server goes on.

mod serve_util;

use serve_util::*;

fn error_kind(v: &serde_json::Value) -> &str {
    v["error"]["kind"].as_str().unwrap_or("<no error body>")
}

#[test]
fn malformed_requests_get_4xx_json_errors() {
    let server = Server::start(&[]);
    let (st, v) = server.json("POST", "/v1/sandboxes", "{}");
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let sb = format!("/v1/sandboxes/{id}");
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        (
            "POST",
            "/v1/sandboxes".into(),
            "{".into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            "[]".into(),
            400,
            "bad_request",
        ),
        // A sandbox destroyed as it is made is no request anyone means.
        (
            "POST",
            "/v1/sandboxes".into(),
            r#"{"idle_timeout":"0s"}"#.into(),
            400,
            "invalid",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            r#"{"lifetime":0}"#.into(),
            400,
            "invalid",
        ),
        // One object: what follows it is no part of the request.
        (
            "POST",
            format!("{sb}/exec"),
            r#"{"argv":["true"]} {"argv":["false"]}"#.into(),
            400,
            "bad_request",
        ),
        // A query parameter where the route takes none is refused, not ignored.
        (
            "POST",
            format!("{sb}/exec?timeout=1s"),
            r#"{"argv":["true"]}"#.into(),
            400,
            "bad_request",
        ),
        (
            "GET",
            "/v1/sandboxes?owner=someone-else".into(),
            String::new(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            r#"{"isolaton":"container"}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            r#"{"isolation":"kvm"}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            r#"{"limits":{"memory":"lots"}}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            r#"{"limits":{"memory":-1}}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            r#"{"lifetime":"-3s"}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            r#"{"profile":"no-such-profile"}"#.into(),
            400,
            "policy",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            r#"{"image":"no-such-image"}"#.into(),
            400,
            "image",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            r#"{"image":"/etc"}"#.into(),
            400,
            "image",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            r#"{"mounts":[{"source":"/etc","target":"/x"}]}"#.into(),
            400,
            "policy",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            "\u{0}\u{1}binary".into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            "[".repeat(100_000),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/sandboxes".into(),
            r#"{"labels":"#.repeat(100_000),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("{sb}/exec"),
            "{}".into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("{sb}/exec"),
            r#"{"argv":[]}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("{sb}/exec"),
            r#"{"argv":"true"}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("{sb}/exec"),
            r#"{"argv":["true"],"stdin":"a","stdin_base64":"YQ=="}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("{sb}/exec"),
            r#"{"argv":["true"],"stdin_base64":"***"}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("{sb}/exec"),
            r#"{"argv":["true"],"tty":{"rows":1,"cols":1}}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("{sb}/exec"),
            r#"{"argv":["true"],"timeout":"forever"}"#.into(),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("{sb}/exec"),
            r#"{"argv":["a\u0000b"]}"#.into(),
            400,
            "invalid",
        ),
        (
            "POST",
            format!("{sb}/exec"),
            r#"{"argv":["no-such-program"]}"#.into(),
            400,
            "program_not_found",
        ),
        (
            "POST",
            format!("{sb}/exec"),
            r#"{"argv":["/etc"]}"#.into(),
            400,
            "",
        ),
        (
            "GET",
            format!("{sb}/files"),
            String::new(),
            400,
            "bad_request",
        ),
        (
            "GET",
            format!("{sb}/files?path=/tmp&bogus=1"),
            String::new(),
            400,
            "bad_request",
        ),
        (
            "GET",
            format!("{sb}/files?path=/tmp&path=/etc"),
            String::new(),
            400,
            "bad_request",
        ),
        (
            "GET",
            format!("{sb}/files?path=relative"),
            String::new(),
            400,
            "invalid_path",
        ),
        (
            "GET",
            format!("{sb}/files?path=/tmp%00x"),
            String::new(),
            400,
            "invalid_path",
        ),
        (
            "GET",
            format!("{sb}/files?path=%ff%fe"),
            String::new(),
            400,
            "",
        ),
        (
            "GET",
            format!("{sb}/files?path=/no/such/file"),
            String::new(),
            404,
            "not_found",
        ),
        (
            "GET",
            format!("{sb}/files?path=/tmp&stat=maybe"),
            String::new(),
            400,
            "bad_request",
        ),
        (
            "PUT",
            format!("{sb}/files?path=/tmp/x&mode=999"),
            "x".into(),
            400,
            "bad_request",
        ),
        (
            "PUT",
            format!("{sb}/files?path=/tmp/x&mode=+644"),
            "x".into(),
            400,
            "bad_request",
        ),
        (
            "PUT",
            format!("{sb}/files?path=/tmp"),
            "x".into(),
            409,
            "is_a_directory",
        ),
        (
            "PUT",
            format!("{sb}/files?path=/etc/passwd"),
            "x".into(),
            403,
            "permission_denied",
        ),
        (
            "PUT",
            format!("{sb}/files?path=/no/dir/x"),
            "x".into(),
            404,
            "not_found",
        ),
        (
            "DELETE",
            format!("{sb}/files?path=/no/such"),
            String::new(),
            404,
            "not_found",
        ),
        (
            "POST",
            format!("{sb}/files/rename"),
            r#"{"from":"/tmp/none","to":"/tmp/y"}"#.into(),
            404,
            "not_found",
        ),
        (
            "POST",
            format!("{sb}/files/rename"),
            r#"{"from":"/tmp/none"}"#.into(),
            400,
            "bad_request",
        ),
        (
            "GET",
            format!("{sb}/exec/interactive"),
            String::new(),
            400,
            "bad_request",
        ),
        (
            "GET",
            "/v1/sandboxes/sb-000000000000000000000000".into(),
            String::new(),
            404,
            "no_such_sandbox",
        ),
        (
            "GET",
            "/v1/sandboxes/..%2F..%2Fetc".into(),
            String::new(),
            404,
            "no_such_sandbox",
        ),
        (
            "GET",
            "/v1/sandboxes/%ff".into(),
            String::new(),
            400,
            "bad_request",
        ),
        (
            "GET",
            "/v1/nothing".into(),
            String::new(),
            404,
            "no_such_route",
        ),
        (
            "PATCH",
            "/v1/sandboxes".into(),
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/v1/sandboxes".into(),
            String::new(),
            405,
            "method_not_allowed",
        ),
    ];
    for (m, p, body, want, kind) in &cases {
        let (st, _, b) = server.request(m, p, body.as_bytes());
        let v: serde_json::Value = serde_json::from_slice(&b)
            .unwrap_or_else(|_| panic!("{m} {p}: not JSON: {:?}", String::from_utf8_lossy(&b)));
        assert_eq!(st, *want, "{m} {p} {body:.80}: {v}");
        if !kind.is_empty() {
            assert_eq!(error_kind(&v), *kind, "{m} {p}: {v}");
        }
        assert!(
            !v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{v}"
        );
    }
    // A program that cannot start carries the exit status `hsb run` would give.
    let (_, v) = server.json(
        "POST",
        &format!("{sb}/exec"),
        r#"{"argv":["no-such-program"]}"#,
    );
    assert_eq!(v["exit_status"], 127, "{v}");

    // A JSON body over the limit (16 MiB): 413.
    let big = format!(r#"{{"argv":["true"],"stdin":"{}"}}"#, "a".repeat(17 << 20));
    let (st, v) = server.json("POST", &format!("{sb}/exec"), &big);
    assert_eq!((st, error_kind(&v)), (413, "too_large"), "{v}");

    // Garbage that is not HTTP, and a header that never ends: the connection is
    // closed (400 or nothing), the server goes on.
    let _ = raw_unix(
        server.socket.as_deref().unwrap(),
        b"\x16\x03\x01garbage\r\n\r\n",
    );
    let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    let _ = std::panic::catch_unwind(|| raw_unix(server.socket.as_deref().unwrap(), &huge));

    // Everything still works, and nothing of the above was a 5xx.
    let (st, v) = server.json("POST", &format!("{sb}/exec"), r#"{"argv":["echo","fine"]}"#);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["stdout"], "fine\n");
    assert_eq!(v["termination"], "exited");
    // NDJSON streaming: output events then the outcome.
    let (st, head, b) = server.request(
        "POST",
        &format!("{sb}/exec"),
        br#"{"argv":["sh","-c","echo a; echo b >&2; printf '\\377'"],"stream":true}"#,
    );
    assert_eq!(st, 200);
    assert!(head.contains("application/x-ndjson"), "{head}");
    let lines: Vec<serde_json::Value> = String::from_utf8(b)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "outcome", "{lines:?}");
    assert_eq!(last["outcome"]["exit_code"], 0);
    assert_eq!(last["outcome"]["stdout_base64"], "YQr/", "{last}");
    let mut out = Vec::new();
    for l in &lines[..lines.len() - 1] {
        assert_eq!(l["event"], "output");
        if l["stream"] == "stdout" {
            use base64::Engine as _;
            out.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(l["data"].as_str().unwrap())
                    .unwrap(),
            );
        }
    }
    assert_eq!(out, b"a\n\xff");
    // Directory listing and stat.
    let (st, head, b) = server.request("GET", &format!("{sb}/files?path=/"), b"");
    assert_eq!(st, 200);
    assert!(
        head.to_ascii_lowercase().contains("x-hsb-listing: 1"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert!(
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "tmp"),
        "{v}"
    );
    let (st, v) = server.json("GET", &format!("{sb}/files?path=/tmp&stat=true"), "");
    assert_eq!((st, &v["kind"]), (200, &serde_json::json!("dir")), "{v}");
    // The OpenAPI document.
    let (st, v) = server.json("GET", "/openapi.json", "");
    assert_eq!(st, 200);
    assert!(v["paths"]["/v1/sandboxes/{id}/exec"]["post"].is_object());
    let (st, _) = server.json("DELETE", &sb, "");
    assert_eq!(st, 204);
    let (st, v) = server.json("DELETE", &sb, "");
    assert_eq!((st, error_kind(&v)), (404, "no_such_sandbox"));
}

#[test]
fn the_cli_client_explains_a_missing_server() {
    let o = std::process::Command::new(HSB)
        .args(["sandbox", "ls", "--server", "unix:/nonexistent/hsb.sock"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("cannot reach the server at unix:/nonexistent/hsb.sock"),
        "{e}"
    );
    let o = std::process::Command::new(HSB)
        .args(["sandbox", "ls", "--server", "https://example.invalid:1"])
        .output()
        .unwrap();
    // https:// is TLS to the server (`hsb serve --tls-cert`): a host that does not
    // resolve is named as unreachable.
    assert_eq!(o.status.code(), Some(125));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("cannot reach the server at https://example.invalid:1"),
        "{e}"
    );
    let o = std::process::Command::new(HSB)
        .args(["serve", "--listen", "udp:1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unix:PATH or tcp:HOST:PORT"));
}

#[test]
fn a_streamed_exec_is_signalled_and_killed_by_its_number() {
    use std::io::{Read, Write};
    let server = Server::start(&[]);
    let (st, v) = server.json("POST", "/v1/sandboxes", "{}");
    assert_eq!(st, 201, "{v}");
    let sb = format!("/v1/sandboxes/{}", v["id"].as_str().unwrap());
    // Bad numbers and bodies.
    for (p, body, want, kind) in [
        (format!("{sb}/exec/12345/kill"), "", 404, "no_such_exec"),
        (format!("{sb}/exec/nope/kill"), "", 404, "no_such_exec"),
        (
            format!("{sb}/exec/1/signal"),
            r#"{"signal":0}"#,
            400,
            "bad_request",
        ),
        (
            format!("{sb}/exec/1/signal"),
            r#"{"sig":9}"#,
            400,
            "bad_request",
        ),
        (
            "/v1/sandboxes/sb-nope/exec/1/kill".to_string(),
            "",
            404,
            "no_such_sandbox",
        ),
    ] {
        let (st, v) = server.json("POST", &p, body);
        assert_eq!((st, error_kind(&v)), (want, kind), "{p}: {v}");
    }
    // A streamed exec: its number in the answer's header; a signal it traps, then a kill.
    let mut s = std::os::unix::net::UnixStream::connect(server.socket.as_ref().unwrap()).unwrap();
    let body = r#"{"argv":["sh","-c","trap 'echo usr1' USR1; echo ready; while :; do sleep 0.05; done"],"stream":true}"#;
    write!(
        s,
        "POST {sb}/exec HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let n: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("x-hsb-exec: "))
        .expect("x-hsb-exec header")
        .trim()
        .parse()
        .unwrap();
    // "ready" is base64 "cmVhZHkK".
    while !String::from_utf8_lossy(&got).contains("cmVhZHkK") {
        let k = s.read(&mut buf).unwrap();
        assert!(k > 0);
        got.extend_from_slice(&buf[..k]);
    }
    let (st, _) = server.json("POST", &format!("{sb}/exec/{n}/signal"), r#"{"signal":10}"#);
    assert_eq!(st, 204);
    // "usr1\n" is base64 "dXNyMQo=".
    while !String::from_utf8_lossy(&got).contains("dXNyMQo=") {
        let k = s.read(&mut buf).unwrap();
        assert!(k > 0);
        got.extend_from_slice(&buf[..k]);
    }
    let (st, _) = server.json("POST", &format!("{sb}/exec/{n}/kill"), "");
    assert_eq!(st, 204);
    s.read_to_end(&mut got).unwrap();
    let (_, _, body) = parse_answer(&got);
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&body).lines().last().unwrap()).unwrap();
    assert_eq!(last["outcome"]["termination"], "killed", "{last}");
    // Ended: its number is gone.
    let (st, v) = server.json("POST", &format!("{sb}/exec/{n}/kill"), "");
    assert_eq!((st, error_kind(&v)), (404, "no_such_exec"));
    // A client that goes away from a streamed exec that prints nothing ends it, as
    // without `stream` (it ran on, keeping an idle timeout from ever firing).
    let mut s = std::os::unix::net::UnixStream::connect(server.socket.as_ref().unwrap()).unwrap();
    let body = r#"{"argv":["sleep","600"],"stream":true}"#;
    write!(
        s,
        "POST {sb}/exec HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let k = s.read(&mut buf).unwrap();
        assert!(k > 0);
        got.extend_from_slice(&buf[..k]);
    }
    let running = || {
        let (st, v) = server.json("GET", &sb, "");
        assert_eq!(st, 200, "{v}");
        v["stats"]["execs_running"].as_u64().unwrap_or(99)
    };
    assert_eq!(running(), 1);
    drop(s);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while running() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the streamed exec outlived its client"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
