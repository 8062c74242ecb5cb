//! The HTTP proxy the sandbox's `HTTP_PROXY`/`HTTPS_PROXY` point at: `CONNECT host:port`
//! tunnels (then served like any connection to that host: SNI checked, intercepted when a
//! secret goes there) and absolute-form `http://` requests, each decided by the host it
//! names. Everything else is refused.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::broker::{Dest, Shared};
use crate::intercept::{forward, reply, RespBody};
use crate::relay::Prefixed;

/// The longest request head the proxy reads.
const MAX_HEAD: usize = 32 * 1024;

/// Serves one connection to the proxy port: a `CONNECT` tunnel, or HTTP requests.
pub(crate) async fn serve<S>(shared: Arc<Shared>, mut client: S)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    // A CONNECT comes first on its connection: read its head here (hyper's upgrades
    // would need a thread-safe stream, and the stack's streams stay on its thread).
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    let connect = loop {
        let n =
            match tokio::time::timeout(std::time::Duration::from_secs(30), client.read(&mut chunk))
                .await
            {
                Ok(Ok(n)) if n > 0 => n,
                _ => return,
            };
        head.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 96];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(len)) => {
                break (req.method == Some("CONNECT"))
                    .then(|| (req.path.unwrap_or("").to_string(), len));
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => continue,
            _ => {
                let _ = client
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                return;
            }
        }
    };
    if let Some((target, len)) = connect {
        tunnel(shared, client, &target, head.split_off(len)).await;
        return;
    }
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(shared, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        .serve_connection(TokioIo::new(Prefixed::new(head, client)), svc)
        .await;
}

async fn tunnel<S>(shared: Arc<Shared>, mut client: S, target: &str, rest: Vec<u8>)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let parsed = target
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().filter(|p| *p != 0).map(|p| (h, p)));
    let Some((host, port)) = parsed else {
        let _ = client
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    match shared.admit_host(host, port, "proxy") {
        Ok(adm) => {
            if client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .is_err()
            {
                shared.recorder.closed(adm.conn, 0, 0);
                return;
            }
            crate::relay::serve(shared, adm, Prefixed::new(rest, client)).await;
        }
        Err(rule) => {
            let body = format!("hsb egress broker: {host}:{port} is denied ({rule})\n");
            let resp = format!(
                "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(resp.as_bytes()).await;
            let _ = client.shutdown().await;
        }
    }
}

fn denied(host: &str, port: u16, rule: &str) -> Response<RespBody> {
    reply(
        StatusCode::FORBIDDEN,
        format!("hsb egress broker: {host}:{port} is denied ({rule})"),
    )
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<RespBody> {
    if req.method() == http::Method::CONNECT {
        return reply(
            StatusCode::BAD_REQUEST,
            "hsb egress broker: CONNECT must be the first request of its connection".into(),
        );
    }
    let uri = req.uri().clone();
    let (Some(scheme), Some(auth)) = (uri.scheme_str(), uri.authority()) else {
        return reply(
            StatusCode::BAD_REQUEST,
            "hsb egress broker: this is a proxy: send absolute-form requests or CONNECT".into(),
        );
    };
    if scheme != "http" {
        return reply(
            StatusCode::BAD_REQUEST,
            format!(
                "hsb egress broker: only http:// requests are forwarded (use CONNECT for {scheme})"
            ),
        );
    }
    let port = auth.port_u16().unwrap_or(80);
    let adm = match shared.admit_host(auth.host(), port, "proxy") {
        Ok(a) => a,
        Err(rule) => return denied(auth.host(), port, &rule),
    };
    let name = match &adm.dest {
        Dest::Name(n) => n.clone(),
        Dest::Ip(ip) => ip.to_string(),
    };
    // To the origin server in origin form, with its Host.
    let (mut parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    parts.uri = match pq.parse() {
        Ok(u) => u,
        Err(_) => return reply(StatusCode::BAD_REQUEST, "bad request target".into()),
    };
    let host = match auth.port_u16() {
        Some(p) => format!("{}:{p}", auth.host()),
        None => auth.host().to_string(),
    };
    if let Ok(h) = http::HeaderValue::from_str(&host) {
        parts.headers.insert(http::header::HOST, h);
    }
    parts.headers.remove("proxy-connection");
    parts.headers.remove(http::header::PROXY_AUTHORIZATION);
    let req = Request::from_parts(parts, body);
    if shared.plan.intercepts(&name, port) {
        shared.recorder.update(adm.conn, |c| c.intercepted = true);
    }
    let resp = forward(&shared, &adm, &name, false, None, req).await;
    shared.recorder.closed(adm.conn, 0, 0);
    resp
}
