//! Interception for hosts that receive secrets: the broker is the HTTP (and, with the
//! sandbox's CA, the TLS) server the sandbox talks to, puts each secret's value in place
//! of its placeholder in the request head, forwards the request to the real server
//! (verified against the host's trust store), and turns the value back into the
//! placeholder in what comes back. Other hosts are never intercepted.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_LENGTH};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sandbox_core::network::PlannedSecret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;

use crate::broker::{Admitted, Shared};

pub(crate) type RespBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// A short text response from the broker itself.
pub(crate) fn reply(status: StatusCode, text: String) -> Response<RespBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(text + "\n"))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r
}

/// Serves an intercepted client connection (`tls`: terminate TLS first).
pub(crate) async fn serve<S>(shared: &Arc<Shared>, adm: &Admitted, name: &str, client: S, tls: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    shared.recorder.update(adm.conn, |c| c.intercepted = true);
    let upstream: Arc<Mutex<Option<SendRequest<Incoming>>>> = Arc::new(Mutex::new(None));
    let svc = {
        let (shared, adm, name) = (shared.clone(), adm.clone(), name.to_string());
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let (shared, adm, name, upstream) =
                (shared.clone(), adm.clone(), name.clone(), upstream.clone());
            async move {
                Ok::<_, std::convert::Infallible>(
                    forward(&shared, &adm, &name, tls, Some(&upstream), req).await,
                )
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.preserve_header_case(true);
    if tls {
        let config = match shared.tls.server_config(name) {
            Ok(c) => c,
            Err(e) => {
                shared.recorder.update(adm.conn, |c| c.note = Some(e));
                return;
            }
        };
        match tokio_rustls::TlsAcceptor::from(config)
            .accept(crate::tls::OneBuffer(client))
            .await
        {
            Ok(s) => {
                let _ = builder.serve_connection(TokioIo::new(s), svc).await;
            }
            Err(e) => shared.recorder.update(adm.conn, |c| {
                c.note = Some(format!(
                    "the sandbox's TLS client did not accept the broker's certificate (is \
                     the CA bundle trusted?): {e}"
                ))
            }),
        }
    } else {
        let _ = builder.serve_connection(TokioIo::new(client), svc).await;
    }
}

async fn open_upstream(
    shared: &Shared,
    adm: &Admitted,
    name: &str,
    tls: bool,
) -> Result<SendRequest<Incoming>, String> {
    let tcp = shared.connect(adm).await?;
    if tls {
        let config = shared.tls.client_config()?;
        let server = rustls::pki_types::ServerName::try_from(name.to_string())
            .map_err(|e| format!("`{name}`: {e}"))?;
        let s = tokio_rustls::TlsConnector::from(config)
            .connect(server, crate::tls::OneBuffer(tcp))
            .await
            .map_err(|e| format!("TLS with the real `{name}` failed (its certificate is checked against the host's trust store): {e}"))?;
        handshake(s).await
    } else {
        handshake(tcp).await
    }
}

async fn handshake<T: AsyncRead + AsyncWrite + Unpin + 'static>(
    io: T,
) -> Result<SendRequest<Incoming>, String> {
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .preserve_header_case(true)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Forwards one request of the sandbox to `name`, the secrets for it put in; with
/// `reuse`, over the connection kept for this client connection.
pub(crate) async fn forward(
    shared: &Arc<Shared>,
    adm: &Admitted,
    name: &str,
    tls: bool,
    reuse: Option<&Mutex<Option<SendRequest<Incoming>>>>,
    mut req: Request<Incoming>,
) -> Response<RespBody> {
    let secrets = shared.plan.secrets_for(name, adm.port);
    let injected = inject(&mut req, &secrets);
    if !injected.is_empty() {
        shared.recorder.update(adm.conn, |c| {
            for n in &injected {
                if !c.secrets.contains(n) {
                    c.secrets.push(n.clone());
                }
            }
        });
        req.headers_mut()
            .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
    let mut fresh = None;
    let mut guard = match reuse {
        Some(m) => Some(m.lock().await),
        None => None,
    };
    let slot: &mut Option<SendRequest<Incoming>> = match guard.as_deref_mut() {
        Some(s) => s,
        None => &mut fresh,
    };
    if slot.as_ref().is_none_or(|s| s.is_closed()) {
        match open_upstream(shared, adm, name, tls).await {
            Ok(s) => *slot = Some(s),
            Err(e) => {
                shared
                    .recorder
                    .update(adm.conn, |c| c.note = Some(e.clone()));
                return reply(StatusCode::BAD_GATEWAY, format!("hsb egress broker: {e}"));
            }
        }
    }
    let Some(sender) = slot.as_mut() else {
        return reply(
            StatusCode::BAD_GATEWAY,
            "hsb egress broker: no connection".into(),
        );
    };
    if sender.ready().await.is_err() {
        *slot = None;
        return reply(
            StatusCode::BAD_GATEWAY,
            "hsb egress broker: the server closed the connection".into(),
        );
    }
    match sender.send_request(req).await {
        Ok(resp) => {
            if injected.is_empty() {
                resp.map(|b| b.boxed_unsync())
            } else {
                scrub_response(resp, &secrets)
            }
        }
        Err(e) => {
            *slot = None;
            reply(StatusCode::BAD_GATEWAY, format!("hsb egress broker: {e}"))
        }
    }
}

/// Puts the secrets' values in place of their placeholders in the request line and
/// headers (decoding `Authorization: Basic` to look inside); returns the names used.
fn inject<B>(req: &mut Request<B>, secrets: &[&PlannedSecret]) -> Vec<String> {
    let mut used = Vec::new();
    for s in secrets {
        let (ph, val) = (s.placeholder.as_bytes(), s.value.expose().as_bytes());
        let mut hit = false;
        if let Some(pq) = req.uri().path_and_query().map(|p| p.as_str().to_string()) {
            if find(pq.as_bytes(), ph).is_some() {
                let new = replace_all(pq.as_bytes(), ph, val);
                let mut parts = req.uri().clone().into_parts();
                if let Ok(p) = http::uri::PathAndQuery::try_from(new) {
                    parts.path_and_query = Some(p);
                    if let Ok(u) = Uri::from_parts(parts) {
                        *req.uri_mut() = u;
                        hit = true;
                    }
                }
            }
        }
        for (k, v) in req.headers_mut().iter_mut() {
            let bytes = v.as_bytes();
            let mut new = None;
            if find(bytes, ph).is_some() {
                new = Some(replace_all(bytes, ph, val));
            } else if *k == AUTHORIZATION {
                if let Some(b64) = bytes.strip_prefix(b"Basic ") {
                    let engine = base64::engine::general_purpose::STANDARD;
                    if let Ok(plain) = engine.decode(b64) {
                        if find(&plain, ph).is_some() {
                            let swapped = replace_all(&plain, ph, val);
                            new = Some(format!("Basic {}", engine.encode(swapped)).into_bytes());
                        }
                    }
                }
            }
            if let Some(n) = new.and_then(|n| HeaderValue::from_bytes(&n).ok()) {
                *v = n;
                hit = true;
            }
        }
        if hit {
            used.push(s.name.clone());
        }
    }
    used
}

fn scrub_response(resp: Response<Incoming>, secrets: &[&PlannedSecret]) -> Response<RespBody> {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = secrets
        .iter()
        .map(|s| {
            (
                s.value.expose().as_bytes().to_vec(),
                s.placeholder.as_bytes().to_vec(),
            )
        })
        .collect();
    let (mut parts, body) = resp.into_parts();
    for v in parts.headers.values_mut() {
        let mut b = v.as_bytes().to_vec();
        for (from, to) in &pairs {
            b = replace_all(&b, from, to);
        }
        if let Ok(n) = HeaderValue::from_bytes(&b) {
            *v = n;
        }
    }
    // The body's length may change.
    parts.headers.remove(CONTENT_LENGTH);
    let keep = pairs.iter().map(|(f, _)| f.len()).max().unwrap_or(1) - 1;
    Response::from_parts(
        parts,
        Scrub {
            inner: body,
            pairs,
            tail: Vec::new(),
            keep,
            done: false,
        }
        .boxed_unsync(),
    )
}

/// A response body with secret values turned back into placeholders, across chunks.
struct Scrub {
    inner: Incoming,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    tail: Vec<u8>,
    keep: usize,
    done: bool,
}

impl Body for Scrub {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    let mut buf = std::mem::take(&mut self.tail);
                    buf.extend_from_slice(&data);
                    for (from, to) in &self.pairs {
                        buf = replace_all(&buf, from, to);
                    }
                    // Hold back what could be the start of a value split across chunks.
                    let cut = buf.len().saturating_sub(self.keep);
                    self.tail = buf.split_off(cut);
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(None) => {
                self.done = true;
                let rest = std::mem::take(&mut self.tail);
                if rest.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))))
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(i) = find(rest, from) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(to);
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_core::network::SecretValue;

    #[test]
    fn placeholders_become_values_in_heads_only_for_secrets() {
        let s = PlannedSecret {
            name: "TOKEN".into(),
            placeholder: "hsb-placeholder-1".into(),
            value: SecretValue::new("s3cr3t"),
            hosts: vec![],
            origin: String::new(),
        };
        let basic = base64::engine::general_purpose::STANDARD.encode("x:hsb-placeholder-1");
        let mut req = Request::builder()
            .uri("/api?token=hsb-placeholder-1")
            .header("authorization", format!("Basic {basic}"))
            .header("x-key", "Bearer hsb-placeholder-1")
            .body(())
            .unwrap();
        assert_eq!(inject(&mut req, &[&s]), ["TOKEN"]);
        assert_eq!(req.uri().query(), Some("token=s3cr3t"));
        assert_eq!(req.headers()["x-key"], "Bearer s3cr3t");
        let auth = req.headers()["authorization"].to_str().unwrap();
        let plain = base64::engine::general_purpose::STANDARD
            .decode(auth.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(plain, b"x:s3cr3t");
        let mut other = Request::builder()
            .uri("/")
            .header("a", "b")
            .body(())
            .unwrap();
        assert!(inject(&mut other, &[&s]).is_empty());
        assert_eq!(replace_all(b"aXXbXX", b"XX", b"y"), b"ayby");
    }
}
