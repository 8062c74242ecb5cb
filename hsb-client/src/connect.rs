//! Where a server is (`unix:PATH`, `http://HOST:PORT` or `https://HOST:PORT`) and
//! connections to it.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// A server's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A UNIX socket.
    Unix(PathBuf),
    /// TCP at `HOST:PORT`.
    Tcp(String),
    /// TLS over TCP at `HOST:PORT` (a server started with `--tls-cert`); the host part
    /// is the name its certificate must carry.
    Https(String),
}

/// `HOST:PORT` with a host and a port number, and nothing after.
fn host_port(rest: &str) -> Option<&str> {
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    let ok = !hostport.contains('/')
        && hostport
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    ok.then_some(hostport)
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    /// `unix:PATH`, `http://HOST:PORT` or `https://HOST:PORT`.
    fn from_str(s: &str) -> Result<Endpoint, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            let p = p.strip_prefix("//").unwrap_or(p);
            if p.is_empty() {
                return Err(format!("`{s}`: expected unix:PATH"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        if let Some(rest) = s.strip_prefix("http://") {
            let hostport =
                host_port(rest).ok_or_else(|| format!("`{s}`: expected http://HOST:PORT"))?;
            return Ok(Endpoint::Tcp(hostport.to_string()));
        }
        if let Some(rest) = s.strip_prefix("https://") {
            let hostport =
                host_port(rest).ok_or_else(|| format!("`{s}`: expected https://HOST:PORT"))?;
            return Ok(Endpoint::Https(hostport.to_string()));
        }
        Err(format!(
            "`{s}`: expected unix:PATH, http://HOST:PORT or https://HOST:PORT"
        ))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "http://{a}"),
            Endpoint::Https(a) => write!(f, "https://{a}"),
        }
    }
}

/// The default socket of `hsb serve`: `/run/hybrid-sandbox/hsb.sock` for root,
/// `$XDG_RUNTIME_DIR/hsb.sock` for anyone else.
pub fn default_socket() -> Result<PathBuf, String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(PathBuf::from("/run/hybrid-sandbox/hsb.sock"));
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => Ok(PathBuf::from(d).join("hsb.sock")),
        None => {
            Err("XDG_RUNTIME_DIR is not set, so there is no default socket: give unix:PATH".into())
        }
    }
}

/// A connection of any kind.
#[derive(Debug)]
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    /// Through [`sandbox_egress::OneBuffer`]: a closed connection must not raise
    /// SIGPIPE in a CLI that takes its default.
    Tls(Box<tokio_rustls::client::TlsStream<sandbox_egress::OneBuffer<TcpStream>>>),
}

impl Endpoint {
    /// A connection; `tls` gives the TLS client configuration an `https://` endpoint
    /// needs (asked only for one).
    pub(crate) async fn connect(
        &self,
        tls: impl FnOnce() -> Result<Arc<rustls::ClientConfig>, String>,
    ) -> std::io::Result<Stream> {
        match self {
            Endpoint::Unix(p) => Ok(Stream::Unix(UnixStream::connect(p).await?)),
            Endpoint::Tcp(a) => Ok(Stream::Tcp(tcp(a).await?)),
            Endpoint::Https(a) => {
                let config = tls().map_err(std::io::Error::other)?;
                let name = server_name(a)?;
                let s = sandbox_egress::OneBuffer(tcp(a).await?);
                let t = tokio_rustls::TlsConnector::from(config)
                    .connect(name, s)
                    .await
                    .map_err(crate::tls::handshake_error)?;
                Ok(Stream::Tls(Box::new(t)))
            }
        }
    }

    /// The Host header's value.
    pub(crate) fn host(&self) -> &str {
        match self {
            Endpoint::Unix(_) => "localhost",
            Endpoint::Tcp(a) | Endpoint::Https(a) => a,
        }
    }
}

async fn tcp(addr: &str) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// The name the server's certificate must carry: the host of `HOST:PORT` (a DNS name,
/// an IPv4 address, or an IPv6 address in brackets).
fn server_name(hostport: &str) -> std::io::Result<rustls::pki_types::ServerName<'static>> {
    let host = hostport.rsplit_once(':').map_or(hostport, |(h, _)| h);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{host}` is not a host name or IP address for TLS: {e}"),
        )
    })
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            "unix:/run/x.sock".parse::<Endpoint>(),
            Ok(Endpoint::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            "http://127.0.0.1:8080".parse::<Endpoint>(),
            Ok(Endpoint::Tcp("127.0.0.1:8080".into()))
        );
        assert_eq!(
            "http://[::1]:80/".parse::<Endpoint>(),
            Ok(Endpoint::Tcp("[::1]:80".into()))
        );
        assert!("http://host".parse::<Endpoint>().is_err());
        assert!("http://h:1/x".parse::<Endpoint>().is_err());
        assert_eq!(
            "https://sandbox.example:8443/".parse::<Endpoint>(),
            Ok(Endpoint::Https("sandbox.example:8443".into()))
        );
        assert!("https://h".parse::<Endpoint>().is_err());
        assert_eq!(
            server_name("[::1]:8443").unwrap(),
            rustls::pki_types::ServerName::IpAddress(std::net::Ipv6Addr::LOCALHOST.into())
        );
        assert!(matches!(
            server_name("sandbox.example:1").unwrap(),
            rustls::pki_types::ServerName::DnsName(_)
        ));
        assert!("tcp:h:1".parse::<Endpoint>().is_err());
    }
}
