//! What `hsb serve` adds, side by side in one run (never a timed test): an exec of
//! `/bin/true` in a live container through the server over its UNIX socket — the JSON
//! `POST .../exec` on a kept-alive connection, plain and streamed, and hsb-client's
//! `Live::exec` — against the same exec in the library, interleaved; and a 64 MiB file
//! written and read back through the server.
//!
//! `cargo bench -p hsb-cli --bench server [-- RUNS]`

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hybrid_sandbox::{LiveOptions, Sandbox, Workload};

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 95 / 100).min(v.len() - 1)]),
    )
}

/// One `POST /v1/sandboxes/{id}/exec` on a kept-alive connection; the answer's body
/// (with `stream`, the NDJSON lines, read to the chunked body's end).
fn json_exec(conn: &mut BufReader<UnixStream>, id: &str, stream: bool) -> String {
    let body = if stream {
        r#"{"argv":["/bin/true"],"stream":true}"#
    } else {
        r#"{"argv":["/bin/true"]}"#
    };
    let req = format!(
        "POST /v1/sandboxes/{id}/exec HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.get_mut().write_all(req.as_bytes()).unwrap();
    let mut len = 0usize;
    let mut status = String::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        if status.is_empty() {
            status = line.clone();
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    assert!(status.contains(" 200 "), "{status}");
    if stream {
        let mut out = String::new();
        loop {
            let mut size = String::new();
            conn.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0u8; n + 2];
            conn.read_exact(&mut chunk).unwrap();
            if n == 0 {
                return out;
            }
            out.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
        }
    }
    let mut b = vec![0u8; len];
    conn.read_exact(&mut b).unwrap();
    String::from_utf8(b).unwrap()
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("hsb.sock");
    let mut server = Command::new(env!("CARGO_BIN_EXE_hsb"))
        .args(["serve", "--listen", &format!("unix:{}", sock.display())])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("hsb: serving on"), "{first}");
    let url = format!("unix:{}", sock.display());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = hsb_client::Client::from_url(&url, None).unwrap();
    let (local, remote, id) = rt.block_on(async {
        let local = Sandbox::with_default_policy()
            .create(Workload::default(), LiveOptions::default())
            .await
            .unwrap();
        let info = client
            .create_detached(&hsb_client::api::CreateRequest::default())
            .await
            .unwrap();
        let remote = client.attach(&info.id).await.unwrap();
        (local, remote, info.id)
    });
    let mut conn = BufReader::new(UnixStream::connect(&sock).unwrap());
    let (mut lib, mut ws, mut json, mut nd) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs + 10 {
        let t = Instant::now();
        let o = rt.block_on(local.exec(["/bin/true"])).unwrap();
        let d_lib = t.elapsed();
        assert_eq!(o.exit_code, Some(0));
        let t = Instant::now();
        let o = rt.block_on(remote.exec(["/bin/true"])).unwrap();
        let d_ws = t.elapsed();
        assert_eq!(o.exit_code, Some(0));
        let t = Instant::now();
        let body = json_exec(&mut conn, &id, false);
        let d_json = t.elapsed();
        assert!(body.contains("\"exit_code\":0"), "{body}");
        let t = Instant::now();
        let body = json_exec(&mut conn, &id, true);
        let d_nd = t.elapsed();
        assert!(body.contains("\"exit_code\":0"), "{body}");
        if i >= 10 {
            lib.push(d_lib);
            ws.push(d_ws);
            json.push(d_json);
            nd.push(d_nd);
        }
    }
    let (lib_m, lib_p) = stats(lib);
    let (ws_m, ws_p) = stats(ws);
    let (json_m, json_p) = stats(json);
    let (nd_m, nd_p) = stats(nd);
    println!("exec of /bin/true in a live container, {runs} runs each, interleaved:");
    println!("| what | median ms | p95 ms | added over the library (median) |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| library (`Live::exec`) | {lib_m:.3} | {lib_p:.3} | - |");
    println!(
        "| server, JSON `POST .../exec` (kept-alive UNIX connection) | {json_m:.3} | {json_p:.3} | {:+.3} ms |",
        json_m - lib_m
    );
    println!(
        "| server, JSON `POST .../exec` with `\"stream\": true` (NDJSON) | {nd_m:.3} | {nd_p:.3} | {:+.3} ms |",
        nd_m - lib_m
    );
    println!(
        "| server through hsb-client (`Live::exec` on a server's sandbox) | {ws_m:.3} | {ws_p:.3} | {:+.3} ms |",
        ws_m - lib_m
    );

    // 64 MiB through the server: write, then read back.
    let data: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let (mut w, mut r) = (Vec::new(), Vec::new());
    rt.block_on(async {
        let big = client
            .create_detached(&hsb_client::api::CreateRequest {
                limits: hybrid_sandbox::Limits {
                    tmp_size: Some(hybrid_sandbox::ByteSize(256 << 20)),
                    memory: Some(hybrid_sandbox::ByteSize(1 << 30)),
                    ..Default::default()
                },
                ..Default::default()
            })
            .await
            .unwrap();
        let big = client.attach(&big.id).await.unwrap();
        for _ in 0..5 {
            let t = Instant::now();
            assert_eq!(
                big.write_file("/tmp/big", data.clone()).await.unwrap(),
                data.len() as u64
            );
            w.push(t.elapsed());
            let t = Instant::now();
            let back = big.read_file("/tmp/big").await.unwrap();
            r.push(t.elapsed());
            assert!(back == data, "the file read back differs");
        }
        big.destroy().await.unwrap();
        remote.destroy().await.unwrap();
        local.destroy().await.unwrap();
    });
    let mbps = |d: f64| (64.0 * 1.048576) / (d / 1e3);
    let (wm, _) = stats(w);
    let (rm, _) = stats(r);
    println!();
    println!("64 MiB file through the server (UNIX socket), median of 5:");
    println!("| what | ms | MB/s |");
    println!("| --- | ---: | ---: |");
    println!("| write (`PUT .../files`) | {wm:.1} | {:.0} |", mbps(wm));
    println!("| read (`GET .../files`) | {rm:.1} | {:.0} |", mbps(rm));
    println!(
        "| write + read | {:.1} | {:.0} |",
        wm + rm,
        (2.0 * 64.0 * 1.048576) / ((wm + rm) / 1e3)
    );
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();
}
