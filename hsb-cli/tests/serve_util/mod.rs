//! Shared helpers of the server tests: a real `hsb serve` started and stopped by the
//! test, raw HTTP for bad input, the isolations to run in, and the feature rule.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const HSB: &str = env!("CARGO_BIN_EXE_hsb");

/// The feature rule: a missing feature fails under `HSB_REQUIRE_FEATURES=1`, else the
/// test says SKIPPED on stderr and returns false.
pub fn feature(name: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    let on = |var: &str| std::env::var(var).is_ok_and(|v| v == "1");
    if on("HSB_REQUIRE_FEATURES") || (name == "KVM" && on("HSB_REQUIRE_KVM")) {
        panic!("this test needs {name}, which CI requires (HSB_REQUIRE_FEATURES=1): {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: needs {name}: {why}");
    false
}

/// A root caller.
pub fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    feature(
        "a root caller",
        (euid != 0).then(|| format!("running as uid {euid}")),
    )
}

/// The isolations whose live sandboxes can be tested here. The container always (its
/// own probe is the feature rule); the micro-VM when KVM is there (the feature rule)
/// and its backend can keep a sandbox alive: while `create` answers `unsupported` the
/// micro-VM cases are SKIPPED loudly (even under HSB_REQUIRE_FEATURES: the backend has
/// no live mode yet), and once it answers they run and must pass.
pub fn isolations() -> Vec<&'static str> {
    let mut out = vec!["container"];
    let sb = hybrid_sandbox::Sandbox::with_default_policy();
    let probe = sb
        .probe()
        .into_iter()
        .find(|p| p.isolation == hybrid_sandbox::Isolation::MicroVm)
        .expect("a micro-VM probe");
    if !feature(
        "KVM",
        (!probe.available).then(|| probe.reason.unwrap_or_default()),
    ) {
        return out;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let made = rt.block_on(async {
        let w = hybrid_sandbox::Workload::default()
            .isolation(hybrid_sandbox::IsolationRequest::MicroVm);
        sb.create(w, hybrid_sandbox::LiveOptions::default()).await
    });
    match made {
        Ok(live) => {
            let _ = rt.block_on(live.destroy());
            out.push("microvm");
        }
        Err(e) if e.kind() == "unsupported" => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: the micro-VM cases: its backend has no live sandboxes yet ({})",
                e.chain()
            );
        }
        Err(e) => panic!("creating a live micro-VM failed: {}", e.chain()),
    }
    out
}

/// A running `hsb serve`, stopped (SIGKILL if still running) when dropped.
pub struct Server {
    pub child: Child,
    /// `unix:PATH` or `http://IP:PORT`.
    pub url: String,
    pub socket: Option<PathBuf>,
    pub dir: tempfile::TempDir,
    /// The server's TMPDIR (empty when nothing is left behind).
    pub tmp: PathBuf,
}

impl Server {
    /// `hsb serve --listen unix:DIR/hsb.sock ARGS`.
    pub fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("hsb.sock");
        let listen = format!("unix:{}", sock.display());
        let mut all = vec!["--listen", listen.as_str()];
        all.extend_from_slice(args);
        Server::spawn(dir, &all, Some(sock))
    }

    /// `hsb serve --listen tcp:127.0.0.1:0 --token-file FILE ARGS`.
    pub fn start_tcp(tokens: &str, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let tf = token_file(dir.path(), tokens);
        let mut all = vec!["--listen", "tcp:127.0.0.1:0", "--token-file", tf.as_str()];
        all.extend_from_slice(args);
        Server::spawn(dir, &all, None)
    }

    pub fn spawn(dir: tempfile::TempDir, args: &[&str], socket: Option<PathBuf>) -> Server {
        use std::os::unix::fs::PermissionsExt;
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = Command::new(HSB)
            .arg("serve")
            .args(args)
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("hsb serve {args:?} did not start"));
        let addr = line
            .strip_prefix("hsb: serving on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let url = match addr.strip_prefix("tcp:") {
            Some(a) => format!("http://{a}"),
            None => addr,
        };
        Server {
            child,
            url,
            socket,
            dir,
            tmp,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn client(&self, token: Option<&str>) -> hsb_client::Client {
        hsb_client::Client::from_url(&self.url, token.map(str::to_string)).unwrap()
    }

    /// `hsb ARGS` against this server.
    pub fn hsb(&self, args: &[&str]) -> Output {
        self.hsb_with(args, None)
    }

    pub fn hsb_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut c = Command::new(HSB);
        c.args(args)
            .env("HSB_SERVER", &self.url)
            .env_remove("HSB_TOKEN")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(data) = stdin {
            let mut w = child.stdin.take().unwrap();
            w.write_all(data).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Sends a signal and waits for the server to exit; its exit status.
    pub fn stop(&mut self, signal: i32) -> std::process::ExitStatus {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        self.child.wait().unwrap()
    }

    /// A raw HTTP/1.1 exchange on the UNIX socket: status, headers, body.
    pub fn raw(&self, request: &[u8]) -> (u16, String, Vec<u8>) {
        raw_unix(self.socket.as_deref().expect("a UNIX server"), request)
    }

    /// A request with an optional body, on the UNIX socket.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        let mut r = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        self.raw(&r)
    }

    /// The JSON of an answer.
    pub fn json(&self, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let (s, _, b) = self.request(method, path, body.as_bytes());
        (
            s,
            serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes a private token file.
pub fn token_file(dir: &Path, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("tokens");
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

/// Reads an HTTP/1.1 answer (Connection: close, or Content-Length, or chunked).
pub fn raw_unix(socket: &Path, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // A server may answer (a refusal) before the whole request is sent.
    let _ = s.write_all(request);
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    parse_answer(&all)
}

pub fn parse_answer(all: &[u8]) -> (u16, String, Vec<u8>) {
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(all)));
    let head = String::from_utf8_lossy(&all[..end]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = all[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

/// Polls `f` until it holds or `secs` pass.
pub fn eventually(secs: f64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The cgroups (every controller) of the sandboxes a process made.
pub fn cgroups_of(pid: u32) -> Vec<PathBuf> {
    ["memory", "pids", "cpuacct", "freezer", ""]
        .iter()
        .filter_map(|c| std::fs::read_dir(format!("/sys/fs/cgroup/{c}/hsb")).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{pid}-"))
        })
        .map(|e| e.path())
        .collect()
}

/// Processes in those cgroups.
pub fn processes_in(cgroups: &[PathBuf]) -> usize {
    cgroups
        .iter()
        .map(|c| {
            std::fs::read_to_string(c.join("cgroup.procs"))
                .map(|s| s.lines().count())
                .unwrap_or(0)
        })
        .sum()
}

/// Host processes whose command line contains `needle`.
pub fn host_processes_with(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// The descendants of `pid` (children, their children, ...).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let c = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in c.split_whitespace().filter_map(|x| x.parse::<u32>().ok()) {
                out.push(k);
                todo.push(k);
            }
        }
    }
    out
}

/// The host's mounts (this process's mount namespace).
pub fn mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Mounts made since `before` that are the server's (other tests share the machine:
/// their mounts are not ours): under its directory (its TMPDIR, its socket), or of a
/// sandbox's root (a tmpfs or an overlay of an image).
pub fn mounts_added(before: &[String], server_dir: &Path) -> Vec<String> {
    let dir = server_dir.display().to_string();
    mounts()
        .into_iter()
        .filter(|m| !before.contains(m))
        .filter(|m| m.contains(&dir) || m.contains("hybrid-sandbox") || m.contains(" overlay "))
        .collect()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
