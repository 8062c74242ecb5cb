//! The egress broker against direct loopback, side by side in one run: TCP throughput
//! each way and connection setup, for the same client program run natively, in a
//! container and in a micro-VM whose only way out is the broker (the micro-VM's when
//! `/dev/kvm` is usable); and the extra start time of a sandbox with egress on, per
//! backend. Not a test: it prints a table.
//!
//! `cargo bench -p hybrid-sandbox --bench egress [-- SIZE_MIB CONNECTIONS STARTS]`

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use hybrid_sandbox::{IsolationRequest, Policy, Sandbox, Workload, EMBEDDED_DEFAULT};

/// The client, the same program natively and in the sandbox (C, so that it is not the
/// bottleneck): `down`/`up` move SIZE bytes and print the seconds; `conn` opens N
/// connections one after the other and prints each one's seconds (connect, one byte each
/// way, close) as a JSON list.
const CLIENT: &str = r#"
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static char buf[1 << 20];
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static struct addrinfo *resolve(const char *host, const char *port) {
  struct addrinfo hints = {0}, *ai; hints.ai_family = AF_INET; hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, port, &hints, &ai)) { fprintf(stderr, "resolve %s\n", host); exit(2); }
  return ai;
}
static int dial(struct addrinfo *ai) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(s, ai->ai_addr, ai->ai_addrlen)) { perror("connect"); exit(2); }
  return s;
}
static void head(int s, char mode, uint64_t n) {
  unsigned char h[9]; h[0] = mode; for (int i = 0; i < 8; i++) h[1 + i] = n >> (56 - 8 * i);
  if (write(s, h, 9) != 9) exit(3);
}
int main(int argc, char **argv) {
  const char *host = argv[1], *port = argv[2], *mode = argv[3]; uint64_t n = strtoull(argv[4], 0, 10);
  struct addrinfo *ai = resolve(host, port); /* once: connection setup is what is timed */
  if (!strcmp(mode, "conn")) {
    printf("[");
    for (uint64_t i = 0; i < n; i++) {
      double t = now(); int s = dial(ai); head(s, 'C', 0);
      if (read(s, buf, 1) != 1) exit(4); close(s);
      printf("%s%.9f", i ? "," : "", now() - t);
    }
    printf("]\n"); return 0;
  }
  int s = dial(ai); double t = now(); uint64_t got = 0;
  if (!strcmp(mode, "down")) {
    head(s, 'D', n);
    while (got < n) { ssize_t r = read(s, buf, sizeof buf); if (r <= 0) exit(5); got += r; }
  } else {
    head(s, 'U', n);
    while (got < n) { uint64_t k = n - got < sizeof buf ? n - got : sizeof buf; ssize_t w = write(s, buf, k); if (w <= 0) exit(6); got += w; }
    if (read(s, buf, 1) != 1) exit(7);
  }
  printf("%.9f\n", now() - t); return 0;
}
"#;

/// Compiles the client into a directory the sandbox can read.
fn client_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hsb-egress-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("client.c"), CLIENT).expect("write");
    let st = std::process::Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(dir.join("client"))
        .arg(dir.join("client.c"))
        .status()
        .expect("gcc (scripts/install-deps.sh)");
    assert!(st.success());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// The server on the host: `D` sends SIZE bytes, `U` reads them and answers one byte,
/// `C` answers one byte.
fn server(ip: Ipv4Addr) -> u16 {
    let l = TcpListener::bind((ip, 0)).expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let _ = s.set_nodelay(true);
                let mut head = [0u8; 9];
                if s.read_exact(&mut head).is_err() {
                    return;
                }
                let mut size = [0u8; 8];
                size.copy_from_slice(&head[1..]);
                let n = u64::from_be_bytes(size) as usize;
                let mut buf = vec![0u8; 1 << 20];
                match head[0] {
                    b'D' => {
                        let mut sent = 0;
                        while sent < n {
                            let k = buf.len().min(n - sent);
                            if s.write_all(&buf[..k]).is_err() {
                                return;
                            }
                            sent += k;
                        }
                    }
                    b'U' => {
                        let mut got = 0;
                        while got < n {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(k) => got += k,
                            }
                        }
                        let _ = s.write_all(b"k");
                    }
                    _ => {
                        let _ = s.write_all(b"c");
                    }
                }
            });
        }
    });
    port
}

fn native(dir: &std::path::Path, args: &[String]) -> String {
    let out = std::process::Command::new(dir.join("client"))
        .args(args)
        .output()
        .expect("the client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sandboxed(
    rt: &tokio::runtime::Runtime,
    sb: &Sandbox,
    iso: IsolationRequest,
    dir: &std::path::Path,
    args: &[String],
) -> String {
    let w = Workload::new("/opt/bench/client", args.to_vec())
        .profile("bench")
        .isolation(iso)
        .mount(hybrid_sandbox::Mount::ro(dir, "/opt/bench"));
    let o = rt.block_on(sb.run(w)).expect("run");
    assert!(
        o.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        serde_json::to_string(&o.network).unwrap_or_default()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let size_mib: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let conns: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let starts: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(40);
    let dir = client_dir();
    let ip = Ipv4Addr::new(127, 0, 0, 61);
    let port = server(ip);
    let policy = format!(
        "{EMBEDDED_DEFAULT}\n[profiles.bench.network]\nmode = \"egress\"\nallow = [\"bench.test\"]\n\
         hosts = {{ \"bench.test\" = \"{ip}\" }}\n[profiles.bench.limits]\nwall_time = \"10m\"\ncpu_time = \"10m\"\n\
         [profiles.none]\nnetwork = \"none\"\n\
         [profiles.none.limits]\nwall_time = \"10m\"\ncpu_time = \"10m\"\n"
    );
    let sb = Sandbox::from_policy(Policy::from_toml_str(&policy, "bench").expect("policy"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let size = size_mib << 20;
    let gbs = |secs: f64| size as f64 / secs / 1e9;
    // The micro-VM's column when its backend can run here.
    let vm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let isos: Vec<IsolationRequest> = if vm {
        vec![IsolationRequest::Container, IsolationRequest::MicroVm]
    } else {
        println!("(no usable /dev/kvm: the micro-VM's column is left out)\n");
        vec![IsolationRequest::Container]
    };
    println!(
        "egress broker vs direct loopback ({size_mib} MiB per transfer, median of 3, one run)\n"
    );
    println!(
        "| measurement | direct loopback | container through the broker | ratio | micro-VM through the broker | ratio |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let cell = |v: Option<f64>, d: f64, f: &dyn Fn(f64) -> String| match v {
        Some(v) => format!("{} | {:.2}x", f(v), v / d),
        None => "- | -".to_string(),
    };
    for mode in ["down", "up"] {
        let (mut d, mut b) = (Vec::new(), vec![Vec::new(); isos.len()]);
        for _ in 0..3 {
            let a = |h: &str| {
                vec![
                    h.to_string(),
                    port.to_string(),
                    mode.to_string(),
                    size.to_string(),
                ]
            };
            d.push(
                native(&dir, &a(&ip.to_string()))
                    .trim()
                    .parse::<f64>()
                    .expect("secs"),
            );
            for (i, iso) in isos.iter().enumerate() {
                b[i].push(
                    sandboxed(&rt, &sb, *iso, &dir, &a("bench.test"))
                        .trim()
                        .parse::<f64>()
                        .expect("secs"),
                );
            }
        }
        let d = gbs(median(d));
        let b: Vec<f64> = b.into_iter().map(|v| gbs(median(v))).collect();
        let what = if mode == "down" {
            "TCP throughput, server to sandbox"
        } else {
            "TCP throughput, sandbox to server"
        };
        let gb = |v: f64| format!("{v:.2} GB/s");
        println!(
            "| {what} | {d:.2} GB/s | {} | {} |",
            cell(b.first().copied(), d, &gb),
            cell(b.get(1).copied(), d, &gb)
        );
    }
    let a = |h: &str| {
        vec![
            h.to_string(),
            port.to_string(),
            "conn".to_string(),
            conns.to_string(),
        ]
    };
    let parse = |s: String| -> Vec<f64> { serde_json::from_str(s.trim()).expect("json") };
    let d = median(parse(native(&dir, &a(&ip.to_string()))));
    let b: Vec<f64> = isos
        .iter()
        .map(|iso| median(parse(sandboxed(&rt, &sb, *iso, &dir, &a("bench.test")))))
        .collect();
    let us = |v: f64| format!("{:.0} µs", v * 1e6);
    println!(
        "| TCP connection setup (connect, 1 byte each way, close), median of {conns} | {:.0} µs | {} | {} |",
        d * 1e6,
        cell(b.first().copied(), d, &us),
        cell(b.get(1).copied(), d, &us)
    );
    // Start time: /bin/true with no network and with egress, interleaved, per backend.
    println!();
    for iso in &isos {
        let (mut plain, mut egress) = (Vec::new(), Vec::new());
        for i in 0..starts + 5 {
            // Alternating which goes first: a run's teardown (the broker's threads
            // end in the background) must not weigh on one side only.
            let mut pair = [("none", &mut plain), ("bench", &mut egress)];
            if i % 2 == 1 {
                pair.reverse();
            }
            for (profile, out) in pair {
                let w = Workload::new("/bin/true", Vec::<String>::new())
                    .profile(profile)
                    .isolation(*iso);
                let t = Instant::now();
                let o = rt.block_on(sb.run(w)).expect("run");
                assert!(o.success());
                if i >= 5 {
                    out.push(t.elapsed());
                }
            }
        }
        let ms = |v: Vec<Duration>| median(v.into_iter().map(|d| d.as_secs_f64() * 1e3).collect());
        let (p, e) = (ms(plain), ms(egress));
        println!(
            "start to exit of /bin/true in the {iso:?} backend, median of {starts}: network none {p:.2} ms, egress {e:.2} ms ({:+.2} ms)",
            e - p
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
