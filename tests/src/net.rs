//! A small internet on this machine for the egress tests (both backends): web servers on
//! loopback addresses (HTTP, and HTTPS with a test CA) that log what they receive, a
//! package index holding a real wheel, a git repository over HTTP, a DNS server that
//! records every question, and — as root — a network namespace with a server reached by
//! address. Everything is started and stopped by the tests.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The Debian interpreter (the sandbox sees the same one).
pub const PYTHON: &str = "/usr/bin/python3";

fn server_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("net/server.py")
}

/// A web server of the test internet. Stopped when dropped.
#[derive(Debug)]
pub struct WebServer {
    /// Where it listens.
    pub addr: SocketAddr,
    log: PathBuf,
    child: Child,
}

impl WebServer {
    /// Serves `root` on `bind` (a free port), with TLS when `tls` gives a certificate
    /// and key; `netns` runs it in that network namespace.
    pub fn start(
        bind: IpAddr,
        root: &Path,
        tls: Option<(&Path, &Path)>,
        netns: Option<&str>,
    ) -> WebServer {
        let log = root.join(format!(".requests-{bind}-{}", std::process::id()));
        let _ = std::fs::remove_file(&log);
        std::fs::write(&log, "").expect("request log");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, PYTHON]);
                c
            }
            None => Command::new(PYTHON),
        };
        cmd.arg(server_py())
            .args(["--bind", &bind.to_string(), "--port", "0", "--root"])
            .arg(root)
            .arg("--log")
            .arg(&log);
        if let Some((cert, key)) = tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be installed (scripts/install-deps.sh)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("server start");
        let port: u16 = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the test server did not start: {line:?}"));
        WebServer {
            addr: SocketAddr::new(bind, port),
            log,
            child,
        }
    }

    /// Every request head the server received so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A CA for the test internet's HTTPS servers.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    /// The CA certificate (PEM), for clients that must trust it.
    pub pem: PathBuf,
    dir: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestCa({})", self.pem.display())
    }
}

impl TestCa {
    /// A new CA, its certificate written in `dir`.
    pub fn new(dir: &Path) -> TestCa {
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hsb-tests CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("key");
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).expect("CA");
        let pem = dir.join("test-ca.pem");
        std::fs::write(&pem, issuer.pem()).expect("write CA");
        TestCa {
            issuer,
            pem,
            dir: dir.to_path_buf(),
        }
    }

    /// A server certificate for `names`, signed by the CA: (certificate, key) files.
    pub fn leaf(&self, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let stem = names[0].replace('*', "star");
        let (c, k) = (
            self.dir.join(format!("{stem}.crt")),
            self.dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("cert");
        std::fs::write(&k, key.serialize_pem()).expect("key");
        (c, k)
    }
}

/// A PEP 503 package index under `root/simple/` holding a real wheel of `name`:
/// returns the wheel's file name.
pub fn package_index(root: &Path, name: &str, version: &str) -> String {
    let files = root.join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    let out = Command::new(PYTHON)
        .arg(server_py())
        .arg("--make-wheel")
        .arg(&files)
        .args([name, version])
        .output()
        .expect("make wheel");
    assert!(out.status.success(), "make wheel: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let (wheel, sha) = (
        it.next().expect("wheel").to_string(),
        it.next().expect("sha").to_string(),
    );
    let project = root.join("simple").join(name);
    std::fs::create_dir_all(&project).expect("index dir");
    std::fs::write(
        root.join("simple/index.html"),
        format!("<html><body><a href=\"{name}/\">{name}</a></body></html>\n"),
    )
    .expect("index");
    std::fs::write(
        project.join("index.html"),
        format!(
            "<html><body><a href=\"../../files/{wheel}#sha256={sha}\">{wheel}</a></body></html>\n"
        ),
    )
    .expect("project index");
    wheel
}

/// A bare git repository `root/NAME.git` served over the dumb HTTP protocol, holding a
/// README with `content`.
pub fn git_repo(root: &Path, name: &str, content: &str) {
    let work = root.join(format!(".{name}-work"));
    std::fs::create_dir_all(&work).expect("work dir");
    std::fs::write(work.join("README"), content).expect("readme");
    let git = |dir: &Path, args: &[&str]| {
        let st = Command::new("git")
            .args([
                "-c",
                "user.name=hsb",
                "-c",
                "user.email=hsb@test",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .status()
            .expect("git must be installed (scripts/install-deps.sh)");
        assert!(st.success(), "git {args:?}");
    };
    git(&work, &["init", "-q"]);
    git(&work, &["add", "README"]);
    git(&work, &["commit", "-q", "-m", "test"]);
    let bare = root.join(format!("{name}.git"));
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            &work.to_string_lossy(),
            &bare.to_string_lossy(),
        ],
    );
    git(&bare, &["update-server-info"]);
}

/// A DNS server that answers A questions from a table and records every name asked.
#[derive(Debug)]
pub struct DnsSpy {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsSpy {
    /// Listens on `bind`, answering the names of `table`.
    pub fn start(bind: Ipv4Addr, table: HashMap<String, Ipv4Addr>) -> DnsSpy {
        use hickory_proto::op::{Message, MessageType, ResponseCode};
        use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
        let sock = UdpSocket::bind((bind, 0)).expect("dns bind");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (asked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut r = Message::new();
                r.set_id(q.id()).set_message_type(MessageType::Response);
                for query in q.queries() {
                    let name = query.name().to_ascii().trim_end_matches('.').to_lowercase();
                    a.lock().unwrap().push(name.clone());
                    r.add_query(query.clone());
                    match table.get(&name) {
                        Some(ip) if query.query_type() == RecordType::A => {
                            r.add_answer(Record::from_rdata(
                                query.name().clone(),
                                5,
                                RData::A(A(*ip)),
                            ));
                        }
                        Some(_) => {}
                        None => {
                            r.set_response_code(ResponseCode::NXDomain);
                        }
                    }
                }
                if let Ok(bytes) = r.to_vec() {
                    let _ = sock.send_to(&bytes, from);
                }
            }
        });
        DnsSpy {
            addr,
            asked,
            stop,
            thread: Some(thread),
        }
    }

    /// Every name asked so far.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for DnsSpy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A network namespace of the tests' own (root only), linked to the host by a veth
/// pair with addresses from 192.0.2.0/24 (TEST-NET-1, never routed): a "remote" host
/// reached by address. Removed when dropped.
#[derive(Debug)]
pub struct TestNetns {
    /// The namespace's name (for `ip netns exec`).
    pub name: String,
    /// The host's end.
    pub host_ip: Ipv4Addr,
    /// The namespace's end.
    pub ns_ip: Ipv4Addr,
    veth: String,
}

impl TestNetns {
    /// Creates it, or `None` when not root (or `ip` cannot).
    pub fn create(tag: u8) -> Option<TestNetns> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let name = format!("hsbeg{}-{tag}", std::process::id());
        let veth = format!("hsbv{}{tag}", std::process::id() % 100000);
        let (host_ip, ns_ip) = (
            Ipv4Addr::new(192, 0, 2, tag * 4 + 1),
            Ipv4Addr::new(192, 0, 2, tag * 4 + 2),
        );
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let ok = ip(&["netns", "add", &name])
            && ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &name,
            ])
            && ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &veth])
            && ip(&["link", "set", &veth, "up"])
            && ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{ns_ip}/30"),
                "dev",
                "eth0",
            ])
            && ip(&["-n", &name, "link", "set", "eth0", "up"])
            && ip(&["-n", &name, "link", "set", "lo", "up"]);
        let ns = TestNetns {
            name,
            host_ip,
            ns_ip,
            veth,
        };
        ok.then_some(ns)
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The embedded default policy with `extra` (profiles, ...) appended: the system
/// directories mounted, as the tests' workloads need.
pub fn policy_with(extra: &str) -> String {
    format!("{}\n{extra}\n", hybrid_sandbox::EMBEDDED_DEFAULT)
}

/// Two servers for the secret tests: `api.test` over HTTPS with a certificate of a test
/// CA the broker trusts, `other.test` over plain HTTP, and the profile `net` that allows
/// both and gives the secret `TOKEN` (read from the variable `var`, set here to
/// `secret`) to `api.test` only.
#[derive(Debug)]
pub struct SecretHosts {
    /// Where the CA and the servers' files live.
    pub dir: tempfile::TempDir,
    /// The host that gets the secret.
    pub api: WebServer,
    /// A host that must see only the placeholder.
    pub other: WebServer,
    /// The profile's TOML (append `[profiles.net.limits]` and the like after it).
    pub profile: String,
}

impl SecretHosts {
    /// Starts both servers at `api_ip` and `other_ip`.
    pub fn start(var: &str, secret: &str, api_ip: IpAddr, other_ip: IpAddr) -> SecretHosts {
        std::env::set_var(var, secret);
        let dir = crate::writable_tempdir();
        let ca = TestCa::new(dir.path());
        let (cert, key) = ca.leaf(&["api.test"]);
        let api = WebServer::start(api_ip, dir.path(), Some((&cert, &key)), None);
        let other = WebServer::start(other_ip, dir.path(), None, None);
        let profile = format!(
            r#"[profiles.net.network]
mode = "egress"
allow = ["api.test", "other.test"]
hosts = {{ "api.test" = "{}", "other.test" = "{}" }}
ca = "{}"
[profiles.net.secrets]
TOKEN = {{ from_env = "{var}", hosts = ["api.test"] }}
"#,
            api.addr.ip(),
            other.addr.ip(),
            ca.pem.display()
        );
        SecretHosts {
            dir,
            api,
            other,
            profile,
        }
    }
}

/// The placeholder the sandbox saw for `TOKEN`: the rest of its stdout line starting
/// with `sandbox sees: `.
pub fn placeholder_seen(o: &crate::Outcome) -> Option<String> {
    o.stdout
        .split(|b| *b == b'\n')
        .find_map(|l| std::str::from_utf8(l).ok()?.strip_prefix("sandbox sees: "))
        .map(str::to_string)
}
