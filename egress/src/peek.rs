//! The first bytes of a connection, read (and kept, to be passed on) to learn the name
//! it is for: the TLS ClientHello's SNI (parsed by rustls) or the HTTP Host header
//! (parsed by httparse).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a client may wait before it speaks first (server-first protocols then go on
/// as opaque streams).
const FIRST_BYTES: Duration = Duration::from_millis(700);
/// How long the rest of a ClientHello or of the request head may take.
const HEAD: Duration = Duration::from_secs(10);
/// Most bytes read before giving up on finding a name.
const MAX_HEAD: usize = 32 * 1024;

/// What the connection turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hello {
    /// TLS, with the server name the client asked for.
    Tls { sni: Option<String> },
    /// Plain HTTP, with the Host header (port removed).
    Http { host: Option<String> },
    /// Something else, or nothing yet.
    Opaque,
}

fn tls_sni(buf: &[u8]) -> Option<Option<Option<String>>> {
    let mut acc = rustls::server::Acceptor::default();
    let mut rd = buf;
    while !rd.is_empty() {
        if acc.read_tls(&mut rd).is_err() {
            return Some(None);
        }
    }
    match acc.accept() {
        Ok(Some(a)) => Some(Some(a.client_hello().server_name().map(str::to_string))),
        Ok(None) => None,
        Err(_) => Some(None),
    }
}

fn http_host(buf: &[u8]) -> Option<Option<String>> {
    let mut headers = [httparse::EMPTY_HEADER; 96];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => Some(
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("host"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(|v| strip_port(v.trim())),
        ),
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(None),
    }
}

/// `host:port` or `[v6]:port` without the port.
pub(crate) fn strip_port(v: &str) -> String {
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    match v.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
        _ => v.to_string(),
    }
}

fn looks_like_http(buf: &[u8]) -> bool {
    let method_len = buf.iter().take_while(|b| b.is_ascii_uppercase()).count();
    method_len >= 3 && buf.get(method_len) == Some(&b' ')
}

/// Reads the connection's first bytes into `buf` and says what they are.
pub(crate) async fn peek<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Hello {
    let mut chunk = vec![0u8; 16 * 1024];
    match tokio::time::timeout(FIRST_BYTES, s.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
        _ => return Hello::Opaque,
    }
    let deadline = tokio::time::Instant::now() + HEAD;
    loop {
        let found = if buf[0] == 0x16 {
            tls_sni(buf).map(|sni| Hello::Tls { sni: sni.flatten() })
        } else if looks_like_http(buf) {
            http_host(buf).map(|host| Hello::Http { host })
        } else {
            return Hello::Opaque;
        };
        if let Some(h) = found {
            return h;
        }
        if buf.len() >= MAX_HEAD {
            return if buf[0] == 0x16 {
                Hello::Tls { sni: None }
            } else {
                Hello::Http { host: None }
            };
        }
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => {
                return if buf[0] == 0x16 {
                    Hello::Tls { sni: None }
                } else {
                    Hello::Http { host: None }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_from_http_and_garbage() {
        let mut buf = Vec::new();
        let mut r: &[u8] = b"GET / HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n";
        assert_eq!(
            peek(&mut r, &mut buf).await,
            Hello::Http {
                host: Some("Example.COM".into())
            }
        );
        let mut buf = Vec::new();
        let mut r: &[u8] = b"SSH-2.0-OpenSSH\r\n";
        assert_eq!(peek(&mut r, &mut buf).await, Hello::Opaque);
        assert_eq!(buf, b"SSH-2.0-OpenSSH\r\n");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("a.b"), "a.b");
    }
}
