//! The egress broker against direct loopback, side by side in one run: TCP throughput
//! each way and connection setup, for the same client program run natively and in a
//! container whose only way out is the broker; and the extra start time of a sandbox
//! with egress on. Not a test: it prints a table.
//!
//! `cargo bench -p hybrid-sandbox --bench egress [-- SIZE_MIB CONNECTIONS STARTS]`

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use hybrid_sandbox::{Policy, Sandbox, Workload, EMBEDDED_DEFAULT};

/// The client, the same natively and in the sandbox: `down`/`up` move SIZE bytes and
/// print the seconds; `conn` opens N connections one after the other and prints each
/// one's seconds (connect, one byte each way, close).
const CLIENT: &str = r#"
import socket, sys, time, json
host, port, mode, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
buf = bytearray(1 << 20)
if mode == "conn":
    out = []
    for _ in range(n):
        t = time.perf_counter()
        s = socket.create_connection((host, port))
        s.sendall(b"C" + (0).to_bytes(8, "big"))
        s.recv(1)
        s.close()
        out.append(time.perf_counter() - t)
    print(json.dumps(out))
    sys.exit(0)
s = socket.create_connection((host, port))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
t = time.perf_counter()
s.sendall((b"D" if mode == "down" else b"U") + n.to_bytes(8, "big"))
got = 0
if mode == "down":
    view = memoryview(buf)
    while got < n:
        r = s.recv_into(view)
        if r == 0:
            break
        got += r
else:
    view = memoryview(buf)
    while got < n:
        k = min(len(buf), n - got)
        s.sendall(view[:k])
        got += k
    s.recv(1)
print(json.dumps(time.perf_counter() - t))
"#;

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

fn native(args: &[String]) -> String {
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(CLIENT)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sandboxed(rt: &tokio::runtime::Runtime, sb: &Sandbox, args: &[String]) -> String {
    let w = Workload::new(
        "/usr/bin/python3",
        [vec!["-c".to_string(), CLIENT.to_string()], args.to_vec()].concat(),
    )
    .profile("bench");
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
    let ip = Ipv4Addr::new(127, 0, 0, 61);
    let port = server(ip);
    let policy = format!(
        "{EMBEDDED_DEFAULT}\n[profiles.bench.network]\nmode = \"egress\"\nallow = [\"bench.test\"]\n\
         hosts = {{ \"bench.test\" = \"{ip}\" }}\n[profiles.bench.limits]\nwall_time = \"10m\"\ncpu_time = \"10m\"\n\
         [profiles.plain.limits]\nwall_time = \"10m\"\n[profiles.none]\nnetwork = \"none\"\n"
    );
    let sb = Sandbox::from_policy(Policy::from_toml_str(&policy, "bench").expect("policy"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let size = size_mib << 20;
    let gbs = |secs: f64| size as f64 / secs / 1e9;
    println!(
        "egress broker vs direct loopback ({size_mib} MiB per transfer, median of 3, one run)\n"
    );
    println!("| measurement | direct loopback | container through the broker | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    for mode in ["down", "up"] {
        let (mut d, mut b) = (Vec::new(), Vec::new());
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
                native(&a(&ip.to_string()))
                    .trim()
                    .parse::<f64>()
                    .expect("secs"),
            );
            b.push(
                sandboxed(&rt, &sb, &a("bench.test"))
                    .trim()
                    .parse::<f64>()
                    .expect("secs"),
            );
        }
        let (d, b) = (gbs(median(d)), gbs(median(b)));
        let what = if mode == "down" {
            "TCP throughput, server to sandbox"
        } else {
            "TCP throughput, sandbox to server"
        };
        println!("| {what} | {d:.2} GB/s | {b:.2} GB/s | {:.2}x |", b / d);
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
    let d = median(parse(native(&a(&ip.to_string()))));
    let b = median(parse(sandboxed(&rt, &sb, &a("bench.test"))));
    println!(
        "| TCP connection setup (connect, 1 byte each way, close), median of {conns} | {:.0} µs | {:.0} µs | {:.2}x |",
        d * 1e6,
        b * 1e6,
        b / d
    );
    // Start time: /bin/true with no network and with egress, interleaved.
    let (mut plain, mut egress) = (Vec::new(), Vec::new());
    for i in 0..starts + 5 {
        for (profile, out) in [("none", &mut plain), ("bench", &mut egress)] {
            let w = Workload::new("/bin/true", Vec::<String>::new()).profile(profile);
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
        "\nstart to exit of /bin/true, median of {starts}: network none {p:.2} ms, egress {e:.2} ms (+{:.2} ms)",
        e - p
    );
}
