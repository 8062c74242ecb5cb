//! A client of `hsb serve`: HTTP/1.1 over a UNIX socket or TCP (kept-alive connections
//! reused), JSON in and out, errors as the server named them.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{CreateRequest, ErrorBody, SandboxInfo, SandboxList, PREFIX};
use crate::connect::Endpoint;

pub(crate) type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// The hint a connection error gets when nothing answered at all.
fn not_there(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused | NotFound => " (is `hsb serve` running there?)",
        _ => "",
    }
}

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached.
    #[error("cannot reach the server at {endpoint}{}", not_there(source))]
    Connect {
        /// Where.
        endpoint: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("talking to the server")]
    Http(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The server answered with an error.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error's kind (`no_such_sandbox`, `quota`, `limit`, ...).
        kind: String,
        /// The server's message.
        message: String,
        /// For an exec that could not start: the exit status `hsb run` would give.
        exit_status: Option<i32>,
        /// The whole error detail (limit, value, state).
        detail: Box<crate::api::ErrorDetail>,
    },
    /// The server's answer is not what the API says.
    #[error("the server's answer is not what its API says: {0}")]
    Protocol(String),
    /// A local file (one to send, or to write what the server sent) failed.
    #[error("{0}")]
    Local(String),
}

/// The kinds the API uses, as static names (for bindings that keep a `&'static str`).
const KINDS: &[&str] = &[
    "wrong_state",
    "not_found",
    "exists",
    "not_a_directory",
    "is_a_directory",
    "not_empty",
    "permission_denied",
    "busy",
    "invalid_path",
    "invalid",
    "limit",
    "program_not_found",
    "not_executable",
    "exec",
    "unsupported",
    "failed",
    "io",
    "policy",
    "unavailable",
    "mount",
    "setup",
    "run",
    "runtime",
    "image",
    "bad_request",
    "unauthorized",
    "no_such_sandbox",
    "no_such_snapshot",
    "no_such_route",
    "method_not_allowed",
    "too_large",
    "quota",
    "timeout",
];

impl ClientError {
    /// A machine-readable kind: the server's for its errors, `connect`, `http`,
    /// `protocol` or `io` (a local file) for the client's own.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Connect { .. } => "connect",
            ClientError::Http(_) => "http",
            ClientError::Protocol(_) => "protocol",
            ClientError::Local(_) => "io",
            ClientError::Api { kind, .. } => KINDS
                .iter()
                .find(|k| **k == kind.as_str())
                .copied()
                .unwrap_or("server"),
        }
    }

    /// The exit status a command-line tool should use: the server's for an exec that
    /// could not start (127, 126), else 125.
    pub fn exit_status(&self) -> i32 {
        match self {
            ClientError::Api {
                exit_status: Some(s),
                ..
            } => *s,
            _ => 125,
        }
    }

    /// The message of the whole chain on one line.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur = std::error::Error::source(self);
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }

    pub(crate) fn http(e: impl std::error::Error + Send + Sync + 'static) -> ClientError {
        ClientError::Http(Box::new(e))
    }
}

struct Shared {
    endpoint: Endpoint,
    token: Option<String>,
    /// The CA an `https://` server's certificate is checked against (none: the host's
    /// trust store).
    ca_file: Option<std::path::PathBuf>,
    /// The TLS client configuration, made at the first `https://` connection that
    /// could make it (a CA file that is fixed later is read again).
    tls: std::sync::OnceLock<Arc<rustls::ClientConfig>>,
    idle: Mutex<Vec<SendRequest<ReqBody>>>,
}

/// A client of one server. Cheap to clone; safe to use from several tasks at once.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.shared.endpoint.to_string())
            .field("token", &self.shared.token.as_ref().map(|_| "<set>"))
            .field("ca_file", &self.shared.ca_file)
            .finish()
    }
}

/// An empty request body.
pub(crate) fn empty() -> ReqBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub(crate) fn full(b: Vec<u8>) -> ReqBody {
    Full::new(Bytes::from(b))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Percent-encodes a query value.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks an answer's status: an error answer becomes [`ClientError::Api`].
pub(crate) async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>, ClientError> {
    if resp.status().is_success() || resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(ClientError::http)?
        .to_bytes();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => Err(ClientError::Api {
            status,
            kind: e.error.kind.clone(),
            message: e.error.message.clone(),
            exit_status: e.exit_status,
            detail: Box::new(e.error),
        }),
        Err(_) => Err(ClientError::Protocol(format!(
            "status {status} with a body that is not an API error: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))),
    }
}

impl Client {
    /// A client of the server at `endpoint` (`unix:PATH`, `http://HOST:PORT` or
    /// `https://HOST:PORT`), with a bearer token (needed over TCP). An `https://`
    /// server's certificate is checked against the host's trust store; see
    /// [`Client::with_ca_file`] for a server with a certificate of its own CA.
    pub fn new(endpoint: Endpoint, token: Option<String>) -> Client {
        Client::make(endpoint, token, None)
    }

    fn make(
        endpoint: Endpoint,
        token: Option<String>,
        ca_file: Option<std::path::PathBuf>,
    ) -> Client {
        Client {
            shared: Arc::new(Shared {
                endpoint,
                token: token.filter(|t| !t.is_empty()),
                ca_file,
                tls: std::sync::OnceLock::new(),
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The same client, checking an `https://` server's certificate against the CA
    /// certificates of the PEM file `ca_file` (instead of the host's trust store). The
    /// file is read at the first connection; what is wrong with it is that
    /// connection's error.
    pub fn with_ca_file(self, ca_file: impl Into<std::path::PathBuf>) -> Client {
        Client::make(
            self.shared.endpoint.clone(),
            self.shared.token.clone(),
            Some(ca_file.into()),
        )
    }

    /// The TLS client configuration (made once it can be).
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        if let Some(c) = self.shared.tls.get() {
            return Ok(c.clone());
        }
        let c = crate::tls::client_config(self.shared.ca_file.as_deref())?;
        Ok(self.shared.tls.get_or_init(|| c).clone())
    }

    /// A new connection to the server.
    pub(crate) async fn connect(&self) -> Result<crate::connect::Stream, ClientError> {
        self.shared
            .endpoint
            .connect(|| self.tls())
            .await
            .map_err(|source| ClientError::Connect {
                endpoint: self.shared.endpoint.to_string(),
                source,
            })
    }

    /// A client from a URL string.
    pub fn from_url(url: &str, token: Option<String>) -> Result<Client, String> {
        Ok(Client::new(url.parse()?, token))
    }

    /// Where the server is.
    pub fn endpoint(&self) -> &Endpoint {
        &self.shared.endpoint
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.shared.token.as_deref()
    }

    async fn connection(&self) -> Result<SendRequest<ReqBody>, ClientError> {
        loop {
            let idle = self
                .shared
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            match idle {
                Some(mut s) => {
                    if s.ready().await.is_ok() {
                        return Ok(s);
                    }
                }
                None => break,
            }
        }
        let stream = self.connect().await?;
        let (send, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::http)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    pub(crate) fn give_back(&self, s: SendRequest<ReqBody>) {
        if !s.is_closed() {
            let mut idle = self.shared.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < 16 {
                idle.push(s);
            }
        }
    }

    pub(crate) fn builder(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.shared.endpoint.host());
        if let Some(t) = &self.shared.token {
            b = b.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b
    }

    /// Sends a request; the connection goes back to the pool once `keep` says the
    /// answer was read (`done` resolves).
    pub(crate) async fn send(
        &self,
        req: Request<ReqBody>,
    ) -> Result<(Response<Incoming>, SendRequest<ReqBody>), ClientError> {
        let mut conn = self.connection().await?;
        let resp = conn.send_request(req).await.map_err(ClientError::http)?;
        Ok((resp, conn))
    }

    /// A request whose JSON answer is read whole.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let bytes = self.call_bytes(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// A request whose answer (any status of success) is read whole.
    pub(crate) async fn call_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        let mut b = self.builder(method, path);
        if body.is_some() {
            b = b.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = b
            .body(body.map_or_else(empty, full))
            .map_err(ClientError::http)?;
        let (resp, conn) = self.send(req).await?;
        let resp = check(resp).await;
        let out = match resp {
            Ok(r) => r
                .into_body()
                .collect()
                .await
                .map_err(ClientError::http)
                .map(|c| c.to_bytes()),
            Err(e) => Err(e),
        };
        self.give_back(conn);
        out
    }

    pub(crate) fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, ClientError> {
        serde_json::to_vec(v).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Creates a live sandbox on the server. The [`hybrid_sandbox::Live`] returned is
    /// destroyed when its last clone is dropped, as the library's own.
    pub async fn create(
        &self,
        request: &CreateRequest,
    ) -> Result<hybrid_sandbox::Live, ClientError> {
        let info = self.create_detached(request).await?;
        Ok(crate::remote::live(self.clone(), info, true))
    }

    /// Creates a live sandbox that stays until it is destroyed (`DELETE`), its
    /// lifetime or idle timeout passes, or the server stops (`hsb sandbox create`).
    pub async fn create_detached(
        &self,
        request: &CreateRequest,
    ) -> Result<SandboxInfo, ClientError> {
        self.call(
            Method::POST,
            &format!("{PREFIX}/sandboxes"),
            Some(Client::json(request)?),
        )
        .await
    }

    /// The handle on a sandbox this client created with [`Client::create_detached`]:
    /// it is destroyed when the handle's last clone is dropped.
    pub fn adopt(&self, info: SandboxInfo) -> hybrid_sandbox::Live {
        crate::remote::live(self.clone(), info, true)
    }

    /// A handle on a sandbox that exists on the server (`hsb sandbox exec ID`). Dropping
    /// it leaves the sandbox alone.
    pub async fn attach(&self, id: &str) -> Result<hybrid_sandbox::Live, ClientError> {
        let info = self.info(id).await?;
        Ok(crate::remote::live(self.clone(), info, false))
    }

    /// The caller's sandboxes.
    pub async fn list(&self) -> Result<Vec<SandboxInfo>, ClientError> {
        let l: SandboxList = self
            .call(Method::GET, &format!("{PREFIX}/sandboxes"), None)
            .await?;
        Ok(l.sandboxes)
    }

    /// One sandbox, with its stats.
    pub async fn info(&self, id: &str) -> Result<SandboxInfo, ClientError> {
        self.call(
            Method::GET,
            &format!("{PREFIX}/sandboxes/{}", enc(id)),
            None,
        )
        .await
    }

    /// Destroys a sandbox.
    pub async fn destroy(&self, id: &str) -> Result<(), ClientError> {
        self.call_bytes(
            Method::DELETE,
            &format!("{PREFIX}/sandboxes/{}", enc(id)),
            None,
        )
        .await
        .map(drop)
    }

    /// Pauses a sandbox.
    pub async fn pause(&self, id: &str) -> Result<SandboxInfo, ClientError> {
        self.call(
            Method::POST,
            &format!("{PREFIX}/sandboxes/{}/pause", enc(id)),
            None,
        )
        .await
    }

    /// Pauses a sandbox to disk: its state goes to a file of the server and its memory
    /// is freed until [`Client::resume`] starts it again (micro-VM only).
    pub async fn pause_to_disk(&self, id: &str) -> Result<SandboxInfo, ClientError> {
        let body = Self::json(&crate::api::PauseRequest { to_disk: true })?;
        let info: SandboxInfo = self
            .call(
                Method::POST,
                &format!("{PREFIX}/sandboxes/{}/pause", enc(id)),
                Some(body),
            )
            .await?;
        // A server from before pause to disk ignores the body and pauses in memory:
        // that is said, never taken for a pause to disk.
        if !info.on_disk {
            return Err(ClientError::Protocol(format!(
                "the server paused sandbox {id} but did not put it on disk (a server \
                 without pause to disk?); it stays paused in memory"
            )));
        }
        Ok(info)
    }

    /// Takes a snapshot of a sandbox (it goes on): create from it with
    /// [`CreateRequest::from_snapshot`](crate::api::CreateRequest::from_snapshot).
    pub async fn snapshot(&self, id: &str) -> Result<crate::api::SnapshotInfo, ClientError> {
        self.call(
            Method::POST,
            &format!("{PREFIX}/sandboxes/{}/snapshot", enc(id)),
            None,
        )
        .await
    }

    /// A snapshot.
    pub async fn snapshot_info(&self, id: &str) -> Result<crate::api::SnapshotInfo, ClientError> {
        self.call(
            Method::GET,
            &format!("{PREFIX}/snapshots/{}", enc(id)),
            None,
        )
        .await
    }

    /// Deletes a snapshot (the sandboxes started from it go on).
    pub async fn delete_snapshot(&self, id: &str) -> Result<(), ClientError> {
        self.call_bytes(
            Method::DELETE,
            &format!("{PREFIX}/snapshots/{}", enc(id)),
            None,
        )
        .await
        .map(drop)
    }

    /// The caller's snapshots.
    pub async fn list_snapshots(&self) -> Result<Vec<crate::api::SnapshotInfo>, ClientError> {
        let l: crate::api::SnapshotList = self
            .call(Method::GET, &format!("{PREFIX}/snapshots"), None)
            .await?;
        Ok(l.snapshots)
    }

    /// Writes snapshot `id` as a file at `path` (`GET /v1/snapshots/{id}/file`):
    /// signed by the server, it loads with [`Client::upload_snapshot`] into this server
    /// (after a restart too, given a `--snapshot-key`) or another with the same key,
    /// for the same owner. Written beside `path` and renamed once whole; the bytes
    /// written.
    pub async fn download_snapshot(
        &self,
        id: &str,
        path: &std::path::Path,
    ) -> Result<u64, ClientError> {
        use tokio::io::AsyncWriteExt;
        let req = self
            .builder(Method::GET, &format!("{PREFIX}/snapshots/{}/file", enc(id)))
            .body(empty())
            .map_err(ClientError::http)?;
        let (resp, _conn) = self.send(req).await?;
        let mut body = check(resp).await?.into_body();
        let local = |e: std::io::Error| ClientError::Local(format!("{}: {e}", path.display()));
        let tmp = partial(path);
        let mut f = tokio::fs::File::create(&tmp).await.map_err(local)?;
        let mut n = 0u64;
        let got = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| {
                    ClientError::Protocol(format!("the snapshot file was cut short: {e}"))
                })?;
                if let Ok(d) = frame.into_data() {
                    f.write_all(&d).await.map_err(local)?;
                    n += d.len() as u64;
                }
            }
            f.flush().await.map_err(local)?;
            tokio::fs::rename(&tmp, path).await.map_err(local)
        }
        .await;
        if got.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        got.map(|()| n)
    }

    /// Loads the snapshot file at `path` ([`Client::download_snapshot`]) as a new
    /// snapshot of the caller (`POST /v1/snapshots`); create from it with
    /// [`CreateRequest::from_snapshot`](crate::api::CreateRequest::from_snapshot).
    pub async fn upload_snapshot(
        &self,
        path: &std::path::Path,
    ) -> Result<crate::api::SnapshotInfo, ClientError> {
        let f = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::Local(format!("{}: {e}", path.display())))?;
        let frames = futures_util::TryStreamExt::map_ok(
            tokio_util::io::ReaderStream::with_capacity(f, 1 << 20),
            hyper::body::Frame::data,
        );
        let req = self
            .builder(Method::POST, &format!("{PREFIX}/snapshots"))
            .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
            .body(http_body_util::StreamBody::new(frames).boxed_unsync())
            .map_err(ClientError::http)?;
        self.call_request(req).await
    }

    /// Sends a request made with [`Client::builder`] and reads its JSON answer whole.
    pub(crate) async fn call_request<T: DeserializeOwned>(
        &self,
        req: Request<ReqBody>,
    ) -> Result<T, ClientError> {
        let (resp, conn) = self.send(req).await?;
        let body = check(resp)
            .await?
            .into_body()
            .collect()
            .await
            .map_err(ClientError::http)?
            .to_bytes();
        self.give_back(conn);
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Resumes a sandbox.
    pub async fn resume(&self, id: &str) -> Result<SandboxInfo, ClientError> {
        self.call(
            Method::POST,
            &format!("{PREFIX}/sandboxes/{}/resume", enc(id)),
            None,
        )
        .await
    }

    /// Changes a sandbox's limits while it runs: each one set in `limits` replaces the
    /// one in force (container: memory, pids, cpus; within the server's floor).
    pub async fn update_limits(
        &self,
        id: &str,
        limits: &hybrid_sandbox::Limits,
    ) -> Result<SandboxInfo, ClientError> {
        let body = Self::json(limits)?;
        self.call(
            Method::POST,
            &format!("{PREFIX}/sandboxes/{}/limits", enc(id)),
            Some(body),
        )
        .await
    }

    /// A sandbox's network report: the broker's decisions so far, the exposed ports.
    pub async fn network(
        &self,
        id: &str,
    ) -> Result<hybrid_sandbox::network::NetworkReport, ClientError> {
        self.call(
            Method::GET,
            &format!("{PREFIX}/sandboxes/{}/network", enc(id)),
            None,
        )
        .await
    }
}

/// Where a download goes until it is whole: beside `path`.
fn partial(path: &std::path::Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "snapshot".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.partial", std::process::id()))
}
