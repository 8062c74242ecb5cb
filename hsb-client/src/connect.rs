//! Where a server is (`unix:PATH` or `http://HOST:PORT`) and connections to it.

use std::path::PathBuf;
use std::pin::Pin;
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
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    /// `unix:PATH`, or `http://HOST:PORT`.
    fn from_str(s: &str) -> Result<Endpoint, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            let p = p.strip_prefix("//").unwrap_or(p);
            if p.is_empty() {
                return Err(format!("`{s}`: expected unix:PATH"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        if let Some(rest) = s.strip_prefix("http://") {
            let hostport = rest.strip_suffix('/').unwrap_or(rest);
            let ok = !hostport.contains('/')
                && hostport
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(format!("`{s}`: expected http://HOST:PORT"));
            }
            return Ok(Endpoint::Tcp(hostport.to_string()));
        }
        if s.starts_with("https://") {
            return Err(format!(
                "`{s}`: hsb serve speaks plain HTTP; put a TLS proxy in front, or use unix:PATH"
            ));
        }
        Err(format!("`{s}`: expected unix:PATH or http://HOST:PORT"))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "http://{a}"),
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

/// A connection of either kind.
#[derive(Debug)]
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Endpoint {
    pub(crate) async fn connect(&self) -> std::io::Result<Stream> {
        match self {
            Endpoint::Unix(p) => Ok(Stream::Unix(UnixStream::connect(p).await?)),
            Endpoint::Tcp(a) => {
                let s = TcpStream::connect(a.as_str()).await?;
                let _ = s.set_nodelay(true);
                Ok(Stream::Tcp(s))
            }
        }
    }

    /// The Host header's value.
    pub(crate) fn host(&self) -> &str {
        match self {
            Endpoint::Unix(_) => "localhost",
            Endpoint::Tcp(a) => a,
        }
    }
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
        assert!("https://h:1"
            .parse::<Endpoint>()
            .unwrap_err()
            .contains("TLS"));
        assert!("tcp:h:1".parse::<Endpoint>().is_err());
    }
}
