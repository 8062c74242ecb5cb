//! `hsb serve` with TLS (`--tls-cert`, `--tls-key`): real clients (the CLI, curl, raw
//! TCP) reach it only through TLS and only when they trust its CA; bad certificate
//! files fail the start with the file and the fault named.

mod serve_util;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use serve_util::*;

const TOKEN: &str = "tls-test-token-0123456789";

struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// A CA that signed nothing of the server's.
    other_ca: PathBuf,
    /// A key that is not the certificate's.
    other_key: PathBuf,
}

fn ca(name: &str) -> (KeyPair, CertificateParams, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let pem = p.clone().self_signed(&key).unwrap().pem();
    (key, p, pem)
}

/// A CA, a certificate of it for 127.0.0.1 and localhost, and decoys.
fn pki(dir: &Path) -> Pki {
    let (ca_key, ca_params, ca_pem) = ca("hsb test CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let (_, _, other_ca_pem) = ca("someone else's CA");
    let w = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca: w("ca.pem", ca_pem),
        cert: w("cert.pem", leaf.pem()),
        key: w("key.pem", leaf_key.serialize_pem()),
        other_ca: w("other-ca.pem", other_ca_pem),
        other_key: w(
            "other-key.pem",
            KeyPair::generate().unwrap().serialize_pem(),
        ),
    }
}

fn start(pki: &Pki) -> (Server, String) {
    serve(&pki.cert, &pki.key)
}

/// `hsb serve` on TCP with the certificate `cert` and its key `key`.
fn serve(cert: &Path, key: &Path) -> (Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path(), &format!("{TOKEN} tls\n"));
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let server = Server::spawn(
        dir,
        &[
            "--listen",
            "tcp:127.0.0.1:0",
            "--token-file",
            &tf,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        None,
    );
    let https = server.url.replace("http://", "https://");
    (server, https)
}

/// `hsb sandbox ARGS` against `url`, trusting `ca` (none: the host's trust store).
fn sandbox(url: &str, ca: Option<&Path>, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = Command::new(HSB);
    c.arg("sandbox")
        .args(["--server", url, "--token", TOKEN])
        .env_remove("HSB_CA_FILE")
        .env_remove("HSB_SERVER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ca) = ca {
        c.arg("--ca-file").arg(ca);
    }
    c.args(args);
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_tls_server_serves_clients_that_trust_its_ca_and_no_others() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (server, url) = start(&pki);

    // The CLI: create, exec (its output streamed over a WebSocket in TLS, stdin
    // included), list, remove.
    let o = sandbox(
        &url,
        Some(&pki.ca),
        &["create", "--isolation", "container"],
        b"",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let id = text(&o.stdout).trim().to_string();
    let o = sandbox(
        &url,
        Some(&pki.ca),
        &[
            "exec",
            "--stdin",
            "-",
            &id,
            "--",
            "/bin/sh",
            "-c",
            "read x; echo got $x",
        ],
        b"through-tls\n",
    );
    assert!(
        o.status.success(),
        "{:?}: {} / {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(text(&o.stdout), "got through-tls\n");
    let o = sandbox(&url, Some(&pki.ca), &["ls"], b"");
    assert!(text(&o.stdout).contains(&id), "{}", text(&o.stdout));

    // The CA file from the environment, as HSB_TOKEN and HSB_SERVER.
    let o = Command::new(HSB)
        .args(["sandbox", "ls"])
        .env("HSB_SERVER", &url)
        .env("HSB_TOKEN", TOKEN)
        .env("HSB_CA_FILE", &pki.ca)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(&id));

    // Not trusted: another CA, or the host's trust store.
    for ca in [Some(pki.other_ca.as_path()), None] {
        let o = sandbox(&url, ca, &["ls"], b"");
        assert!(!o.status.success());
        let e = text(&o.stderr);
        assert!(e.contains("certificate"), "{ca:?}: {e}");
    }

    // curl: with the CA and the token it gets the list; without the CA it refuses
    // the server (exit 60); without the token the server refuses it.
    let port = url.rsplit(':').next().unwrap().to_string();
    let curl = |args: &[&str]| {
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .expect("curl (scripts/install-deps.sh)")
    };
    let list = format!("https://127.0.0.1:{port}/v1/sandboxes");
    let auth = format!("Authorization: Bearer {TOKEN}");
    let ca = pki.ca.display().to_string();
    let o = curl(&["--cacert", &ca, "-H", &auth, &list]);
    let s = text(&o.stdout);
    assert!(
        s.ends_with("\n200") && s.contains(&id),
        "{s} {}",
        text(&o.stderr)
    );
    let o = curl(&[
        "--cacert",
        &ca,
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        "-H",
        &auth,
        &format!("https://localhost:{port}/openapi.json"),
    ]);
    assert!(text(&o.stdout).ends_with("\n200"), "{}", text(&o.stderr));
    let o = curl(&["-H", &auth, &list]);
    assert_eq!(o.status.code(), Some(60), "{}", text(&o.stderr));
    let o = curl(&["--cacert", &ca, &list]);
    assert!(text(&o.stdout).ends_with("\n401"), "{}", text(&o.stdout));

    // Plain HTTP to the TLS port: a 400 that says to use https, then the end.
    let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(format!("GET /v1/sandboxes HTTP/1.1\r\nHost: x\r\n{auth}\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("https://"),
        "{answer}"
    );
    assert!(!answer.contains(&id), "{answer}");
    // A client that never finishes its handshake holds nothing up: others go on.
    let _silent = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let o = sandbox(&url, Some(&pki.ca), &["rm", &id], b"");
    assert!(o.status.success(), "{}", text(&o.stderr));
    drop(server);
}

#[test]
fn bad_tls_options_fail_the_start_with_the_file_and_the_fault_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let tf = token_file(dir.path(), &format!("{TOKEN}\n"));
    let serve = |args: &[&str]| {
        Command::new(HSB)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let path = |p: &Path| p.display().to_string();
    let tcp = ["--listen", "tcp:127.0.0.1:0", "--token-file", tf.as_str()];
    let missing = dir.path().join("missing.pem");
    let cases: Vec<(Vec<String>, i32, &[&str])> = vec![
        (
            vec!["--tls-cert".into(), path(&pki.cert)],
            125,
            &["--tls-key"],
        ),
        (
            vec!["--tls-key".into(), path(&pki.key)],
            125,
            &["--tls-cert"],
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&missing),
                "--tls-key".into(),
                path(&pki.key),
            ],
            125,
            &["--tls-cert", "missing.pem", "No such file"],
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&pki.key),
                "--tls-key".into(),
                path(&pki.key),
            ],
            125,
            &["--tls-cert", "no certificate"],
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&pki.cert),
                "--tls-key".into(),
                path(&pki.cert),
            ],
            125,
            &["--tls-key", "no private key"],
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&pki.cert),
                "--tls-key".into(),
                path(&pki.other_key),
            ],
            125,
            &["key"],
        ),
    ];
    for (extra, code, words) in cases {
        let mut args: Vec<&str> = tcp.to_vec();
        args.extend(extra.iter().map(String::as_str));
        let o = serve(&args);
        let e = text(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{extra:?}: {e}");
        for w in words {
            assert!(e.contains(w), "{extra:?}: {w:?} not in {e}");
        }
    }
    // TLS on a UNIX socket is refused, not ignored.
    let sock = dir.path().join("s.sock");
    let o = serve(&[
        "--listen",
        &format!("unix:{}", sock.display()),
        "--tls-cert",
        &path(&pki.cert),
        "--tls-key",
        &path(&pki.key),
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        text(&o.stderr).contains("TLS is for a TCP listener"),
        "{}",
        text(&o.stderr)
    );
    assert!(!sock.exists());
}

#[test]
fn sighup_serves_a_renewed_certificate_and_keeps_the_old_one_if_the_new_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let (old, new) = (pki(&a), pki(&b));
    // The files the server reads: A's now.
    let live = Pki {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
        ca: old.ca.clone(),
        other_ca: new.ca.clone(),
        other_key: new.key.clone(),
    };
    std::fs::copy(&old.cert, &live.cert).unwrap();
    std::fs::copy(&old.key, &live.key).unwrap();
    let (server, url) = start(&live);
    let trusts = |ca: &Path| sandbox(&url, Some(ca), &["ls"], b"").status.success();
    assert!(trusts(&old.ca) && !trusts(&new.ca));
    let o = sandbox(
        &url,
        Some(&old.ca),
        &["create", "--isolation", "container"],
        b"",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let id = text(&o.stdout).trim().to_string();

    // Renewed on disk: still the old one until SIGHUP.
    std::fs::copy(&new.cert, &live.cert).unwrap();
    std::fs::copy(&new.key, &live.key).unwrap();
    assert!(trusts(&old.ca) && !trusts(&new.ca));
    let hup = |pid: u32| {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    };
    let until = |what: &dyn Fn() -> bool| {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !what() {
            assert!(std::time::Instant::now() < end, "the server did not reload");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    hup(server.pid());
    until(&|| trusts(&new.ca));
    assert!(!trusts(&old.ca));
    // The sandbox made before the reload is still there.
    let o = sandbox(&url, Some(&new.ca), &["ls"], b"");
    assert!(text(&o.stdout).contains(&id), "{}", text(&o.stdout));

    // A bad key on disk: SIGHUP changes nothing, the server goes on with B.
    std::fs::write(&live.key, "not a key\n").unwrap();
    hup(server.pid());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(trusts(&new.ca) && !trusts(&old.ca));
    let o = sandbox(&url, Some(&new.ca), &["rm", &id], b"");
    assert!(o.status.success(), "{}", text(&o.stderr));
    drop(server);
}

/// A self-signed certificate with `CA:TRUE`, as `openssl req -x509` makes by default,
/// for the names `sans`; `tweak` changes it before it is signed. Its certificate and
/// key files in `dir`, named after `name`.
fn self_signed(
    dir: &Path,
    name: &str,
    sans: &[&str],
    tweak: impl FnOnce(&mut CertificateParams),
) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    tweak(&mut p);
    let cert = p.self_signed(&key).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

#[test]
fn a_self_signed_ca_certificate_is_trusted_as_itself_when_it_names_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = ["127.0.0.1", "localhost"];
    let (cert, key) = self_signed(d, "pinned", &names, |_| {});
    let (server, url) = serve(&cert, &key);

    // The CLI, as curl: the certificate file itself is the CA file.
    let o = sandbox(&url, Some(&cert), &["ls"], b"");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let port = url.rsplit(':').next().unwrap().to_string();
    let o = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(&cert)
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .arg(format!("https://127.0.0.1:{port}/v1/sandboxes"))
        .output()
        .expect("curl (scripts/install-deps.sh)");
    assert_eq!(text(&o.stdout), "200", "{}", text(&o.stderr));
    // In a bundle with other certificates.
    let (decoy, _) = self_signed(d, "decoy", &names, |_| {});
    let bundle = d.join("bundle.pem");
    let pem = |p: &Path| std::fs::read_to_string(p).unwrap();
    std::fs::write(&bundle, pem(&decoy) + &pem(&cert)).unwrap();
    assert!(sandbox(&url, Some(&bundle), &["ls"], b"").status.success());
    // Another self-signed certificate for the same names is not this one.
    let o = sandbox(&url, Some(&decoy), &["ls"], b"");
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("not itself in the CA file"),
        "{}",
        text(&o.stderr)
    );
    drop(server);

    // Trusted as itself, it is still checked: the names it gives, its validity
    // period, its purpose. Each refusal says what is wrong.
    // A name, its subjectAltNames, a change, what the refusal says.
    type Case<'a> = (&'a str, Vec<&'a str>, fn(&mut CertificateParams), &'a str);
    let refused: [Case; 4] = [
        ("no-names", vec![], |_| {}, "subjectAltName=DNS:HOST"),
        (
            "other-name",
            vec!["sandbox.example"],
            |_| {},
            "only valid for DnsName(\"sandbox.example\")",
        ),
        (
            "expired",
            names.to_vec(),
            |p| {
                p.not_before = rcgen::date_time_ymd(2020, 1, 1);
                p.not_after = rcgen::date_time_ymd(2021, 1, 1);
            },
            "not now",
        ),
        (
            "client-only",
            names.to_vec(),
            |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
            "serverAuth",
        ),
    ];
    for (name, sans, tweak, says) in refused {
        let (cert, key) = self_signed(d, name, &sans, tweak);
        let (server, url) = serve(&cert, &key);
        let o = sandbox(&url, Some(&cert), &["ls"], b"");
        assert!(!o.status.success(), "{name}: trusted");
        assert!(
            text(&o.stderr).contains(says),
            "{name}: {}",
            text(&o.stderr)
        );
        drop(server);
    }
}
