//! Listening: a UNIX socket (peers known by `SO_PEERCRED`) or TCP (bearer tokens only,
//! in TLS when the server has a certificate), HTTP/1.1 connections served by hyper with
//! bounded handshake and header time, and the shutdown that destroys every sandbox.

use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::auth::{Peer, Tokens};
use crate::registry::Registry;
use crate::routes::{router, AllowedMount, App};

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A UNIX socket at this path.
    Unix(PathBuf),
    /// TCP on `HOST:PORT`.
    Tcp(String),
}

impl std::str::FromStr for Listen {
    type Err = String;

    /// `unix:PATH` or `tcp:HOST:PORT`.
    fn from_str(s: &str) -> Result<Listen, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err("`unix:` needs a path: unix:PATH".into());
            }
            return Ok(Listen::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp:") {
            let ok = a
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(format!("`{s}`: expected tcp:HOST:PORT"));
            }
            return Ok(Listen::Tcp(a.to_string()));
        }
        Err(format!("`{s}`: expected unix:PATH or tcp:HOST:PORT"))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
            Listen::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// How a server is set up.
#[derive(Debug)]
pub struct Config {
    /// Where it listens.
    pub listen: Listen,
    /// The policy (and floor) sandboxes are created under.
    pub sandbox: hybrid_sandbox::Sandbox,
    /// Bearer tokens (needed for TCP).
    pub tokens: Option<Tokens>,
    /// Live sandboxes per owner.
    pub quota: usize,
    /// Permission bits of the UNIX socket.
    pub socket_mode: u32,
    /// Host directories clients may mount.
    pub allowed_mounts: Vec<AllowedMount>,
    /// Largest JSON body (and interactive message).
    pub json_limit: usize,
    /// Where sandboxes paused to disk keep their memory: unnamed files (`O_TMPFILE`),
    /// gone with the sandbox or the server, even after `kill -9`.
    pub spill_dir: PathBuf,
    /// TLS for a TCP listener ([`Tls::from_pem`]): every connection must speak it.
    pub tls: Option<Arc<Tls>>,
    /// What snapshot files (`GET /v1/snapshots/{id}/file`) are signed with, and uploads
    /// (`POST /v1/snapshots`) checked against; `None`: a random key of this server's
    /// own (its files load only into it).
    pub snapshot_key: Option<crate::SnapshotKey>,
    /// Keys rotated out: files signed with them still load (uploads are checked
    /// against the key their file names); new files are signed with `snapshot_key`.
    pub snapshot_old_keys: Vec<crate::SnapshotKey>,
    /// Most bytes of data an uploaded snapshot file may hold (its holes not counted).
    pub snapshot_upload_limit: u64,
}

/// A server's TLS certificate and key, read from PEM files and read again by
/// [`Tls::reload`] (`hsb serve` does on SIGHUP): a certificate renewed on disk is served
/// from the next handshake on, with no restart (a restart would destroy every
/// sandbox). Connections already made keep theirs.
#[derive(Debug)]
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl Tls {
    /// Reads the certificate chain (PEM, leaf first) and its private key (PEM: PKCS#8,
    /// PKCS#1 or SEC1). Errors name the file and what it lacked, or say that the key is
    /// not the certificate's.
    pub fn from_pem(cert: &Path, key: &Path) -> Result<Arc<Tls>, ServeError> {
        let current = Tls::read(cert, key)?;
        Ok(Arc::new(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: std::sync::RwLock::new(Arc::new(current)),
        }))
    }

    fn read(cert: &Path, key: &Path) -> Result<rustls::sign::CertifiedKey, ServeError> {
        let chain = hsb_client::tls::load_certs(cert, "--tls-cert").map_err(ServeError::Config)?;
        let key = hsb_client::tls::load_key(key, "--tls-key").map_err(ServeError::Config)?;
        rustls::sign::CertifiedKey::from_der(chain, key, &hsb_client::tls::provider()).map_err(
            |e| {
                ServeError::Config(format!(
                    "--tls-cert and --tls-key: {e} (is the key the certificate's?)"
                ))
            },
        )
    }

    /// Reads the files again: the new certificate is served from the next handshake
    /// on. A file that is now missing or wrong changes nothing (the error says why).
    pub fn reload(&self) -> Result<(), ServeError> {
        let new = Tls::read(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        Ok(())
    }

    /// The rustls configuration serving the current certificate (TLS 1.2 and 1.3,
    /// ALPN `http/1.1`, no client certificates: clients are known by their tokens).
    fn server_config(self: &Arc<Tls>) -> Result<Arc<rustls::ServerConfig>, ServeError> {
        let mut c = rustls::ServerConfig::builder_with_provider(hsb_client::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ServeError::Config(format!("TLS: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(c))
    }
}

impl rustls::server::ResolvesServerCert for Tls {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

impl Config {
    /// Defaults: quota 64, socket mode 0600, no mounts, 16 MiB JSON bodies, sandboxes
    /// paused to disk in `/var/tmp`.
    pub fn new(listen: Listen, sandbox: hybrid_sandbox::Sandbox) -> Config {
        Config {
            spill_dir: PathBuf::from("/var/tmp"),
            listen,
            sandbox,
            tokens: None,
            quota: 64,
            socket_mode: 0o600,
            allowed_mounts: Vec::new(),
            json_limit: 16 << 20,
            tls: None,
            snapshot_key: None,
            snapshot_old_keys: Vec::new(),
            snapshot_upload_limit: 16 << 30,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration cannot be served.
    #[error("{0}")]
    Config(String),
    /// Listening failed.
    #[error("listening on {listen}")]
    Listen {
        /// Where.
        listen: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener, Option<tokio_rustls::TlsAcceptor>),
}

/// A bound server, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: Listener,
    app: Arc<App>,
    address: String,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listener::Unix(_, p) => write!(f, "unix:{}", p.display()),
            Listener::Tcp(l, tls) => write!(
                f,
                "tcp:{:?}{}",
                l.local_addr().ok(),
                if tls.is_some() { " (TLS)" } else { "" }
            ),
        }
    }
}

/// At most this many connections are served at once (more wait to be accepted).
const MAX_CONNECTIONS: usize = 1024;
/// A request's header must arrive within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How often ended sandboxes are looked for without a request.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

fn listen_err(listen: &Listen) -> impl Fn(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::Listen {
        listen: listen.to_string(),
        source,
    }
}

/// Binds a UNIX socket at `path`: a stale socket there is replaced, a live one or any
/// other file is left alone and refused.
fn bind_unix(path: &Path, mode: u32, listen: &Listen) -> Result<UnixListener, ServeError> {
    let err = listen_err(listen);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(&err)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(&err)?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::Config(format!(
                    "another server already listens on {} (stop it, or choose another \
                     --listen unix:PATH)",
                    path.display()
                )));
            }
            std::fs::remove_file(path).map_err(&err)?;
        }
        Ok(_) => {
            return Err(ServeError::Config(format!(
                "{} exists and is not a socket: remove it or choose another --listen unix:PATH",
                path.display()
            )))
        }
        Err(_) => {}
    }
    let l = UnixListener::bind(path).map_err(&err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(&err)?;
    Ok(l)
}

/// Binds the server's socket (so its address is known before it serves).
pub async fn bind(config: Config) -> Result<Server, ServeError> {
    let listen = config.listen.clone();
    let (listener, address) = match &listen {
        Listen::Unix(_) if config.tls.is_some() => {
            return Err(ServeError::Config(format!(
                "TLS is for a TCP listener (--listen tcp:HOST:PORT); {listen} is reached only \
                 from this host, by its file permissions: drop --tls-cert and --tls-key"
            )));
        }
        Listen::Unix(p) => {
            let l = bind_unix(p, config.socket_mode, &listen)?;
            (Listener::Unix(l, p.clone()), listen.to_string())
        }
        Listen::Tcp(a) => {
            if config.tokens.as_ref().is_none_or(|t| t.is_empty()) {
                return Err(ServeError::Config(format!(
                    "TCP ({listen}) is served only with bearer tokens: give --token-file FILE \
                     (one token per line, optionally followed by a name)"
                )));
            }
            let l = TcpListener::bind(a.as_str())
                .await
                .map_err(listen_err(&listen))?;
            let local = l.local_addr().map_err(listen_err(&listen))?;
            let tls = match &config.tls {
                Some(t) => Some(tokio_rustls::TlsAcceptor::from(t.server_config()?)),
                None => None,
            };
            (Listener::Tcp(l, tls), format!("tcp:{local}"))
        }
    };
    if config.quota == 0 {
        return Err(ServeError::Config("--quota must be at least 1".into()));
    }
    let snapshot_key = match config.snapshot_key {
        Some(k) => k,
        None => crate::SnapshotKey::random().map_err(ServeError::Config)?,
    };
    let app = Arc::new(App {
        snapshot_key: Arc::new(snapshot_key),
        snapshot_old_keys: config.snapshot_old_keys.into_iter().map(Arc::new).collect(),
        snapshot_upload_limit: config.snapshot_upload_limit,
        sandbox: config.sandbox,
        registry: Registry::new(config.quota),
        tokens: config.tokens,
        allowed_mounts: config.allowed_mounts,
        json_limit: config.json_limit,
        spill_dir: config.spill_dir,
    });
    Ok(Server {
        listener,
        app,
        address,
    })
}

impl Server {
    /// Where it listens: `unix:PATH` or `tcp:IP:PORT` (the port chosen when 0 was asked).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether its connections speak TLS (clients reach it at `https://IP:PORT`).
    pub fn tls(&self) -> bool {
        matches!(self.listener, Listener::Tcp(_, Some(_)))
    }

    /// Serves until `shutdown` completes, then destroys every sandbox it holds and
    /// removes its UNIX socket.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let router = router(self.app.clone());
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        // Without requests, ended sandboxes and the files of those whose lifetime
        // passed on disk are still freed.
        let app = Arc::downgrade(&self.app);
        let sweeper = tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match app.upgrade() {
                    Some(app) => app.registry.sweep_now(),
                    None => return,
                }
            }
        });
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
                _ = &mut shutdown => break,
            };
            let accepted = tokio::select! {
                a = accept(&self.listener) => a,
                _ = &mut shutdown => break,
            };
            let (io, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: wait a little, go on.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let router = router.clone();
            let tls = match &self.listener {
                Listener::Tcp(_, tls) => tls.clone(),
                Listener::Unix(..) => None,
            };
            tokio::spawn(async move {
                let io = match tls {
                    Some(tls) => match handshake(&tls, io).await {
                        Some(io) => io,
                        None => return drop(permit),
                    },
                    None => io,
                };
                let io = TokioIo::new(io);
                let svc = hyper::service::service_fn(
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(peer);
                        router.clone().oneshot(req.map(Body::new))
                    },
                );
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(io, svc)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!("connection: {e}");
                }
                drop(permit);
            });
        }
        sweeper.abort();
        self.shutdown().await;
        Ok(())
    }

    async fn shutdown(self) {
        if let Listener::Unix(_, p) = &self.listener {
            let _ = std::fs::remove_file(p);
        }
        let all = self.app.registry.drain();
        tracing::info!("shutting down: destroying {} sandboxes", all.len());
        let jobs = all.into_iter().map(|e| async move {
            if let Err(err) = e.destroy().await {
                tracing::warn!(id = %e.id, "destroying: {}", err.chain());
            }
        });
        futures_util::future::join_all(jobs).await;
    }
}

async fn accept(l: &Listener) -> std::io::Result<(Conn, Peer)> {
    match l {
        Listener::Unix(l, _) => {
            let (s, _) = l.accept().await?;
            let uid = s.peer_cred()?.uid();
            Ok((Conn::Unix(s), Peer::Unix { uid }))
        }
        Listener::Tcp(l, _) => {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Conn::Tcp(s), Peer::Tcp))
        }
    }
}

/// What a client speaking plain HTTP to a TLS listener is told before it is hung up on:
/// the API's own error, written by hand (no HTTP connection is served).
fn plain_to_tls() -> Vec<u8> {
    let e = crate::error::ApiError::bad_request("this server speaks TLS: use https://HOST:PORT");
    let body = serde_json::to_string(&e.body()).unwrap_or_default();
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The TLS handshake of a TCP connection, within the header time. A client that
/// speaks plain HTTP (its first byte is no TLS record's) gets a 400 saying to use
/// `https://`; any other failure just ends the connection. `None`: no connection to
/// serve.
async fn handshake(tls: &tokio_rustls::TlsAcceptor, io: Conn) -> Option<Conn> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Conn::Tcp(mut s) = io else {
        return Some(io);
    };
    let shake = async {
        let mut first = [0u8; 1];
        // A TLS connection starts with a handshake record (content type 22).
        if s.peek(&mut first).await.ok()? == 1 && first[0] != 22 {
            let _ = s.write_all(&plain_to_tls()).await;
            let _ = s.shutdown().await;
            // What the client sent is read and dropped (a little, for a little while):
            // closing with it unread would reset the connection, and the client could
            // lose the answer before reading it.
            let mut sink = [0u8; 4096];
            let drain = async {
                let mut left = 64usize << 10;
                while left > 0 {
                    match s.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => left = left.saturating_sub(n),
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
            return None;
        }
        // One buffer at a time: an embedding process that takes SIGPIPE's default must
        // not die of a client that closed (see `OneBuffer`).
        match tls.accept(sandbox_egress::OneBuffer(s)).await {
            Ok(t) => Some(Conn::Tls(Box::new(t))),
            Err(e) => {
                tracing::debug!("TLS handshake: {e}");
                None
            }
        }
    };
    tokio::time::timeout(HEADER_TIMEOUT, shake).await.ok()?
}

/// A connection of any kind.
enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<sandbox_egress::OneBuffer<tokio::net::TcpStream>>>),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Conn::Unix($s) => {
                let $s = std::pin::Pin::new($s);
                $e
            }
            Conn::Tcp($s) => {
                let $s = std::pin::Pin::new($s);
                $e
            }
            Conn::Tls($s) => {
                let $s = std::pin::Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl tokio::io::AsyncRead for Conn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl tokio::io::AsyncWrite for Conn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}
