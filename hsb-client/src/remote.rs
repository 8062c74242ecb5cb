//! A server's sandbox behind the library's [`LiveSandbox`] trait: every method is a
//! request; execs are interactive execs over a WebSocket (stdin, terminal, resizes,
//! signals, kill, output and the outcome), so they behave as in-process ones do.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hybrid_sandbox::{
    ByteStream, Decision, EndReason, EnforcementReport, ExecRequest, Execution, FileData, FileStat,
    Isolation, KillHandle, LiveError, LiveSandbox, LiveState, LiveStats, Outcome, OutputChunk,
    OutputStream, RunError, SpawnError, Stdin, StdinWriter, StreamKind, TtySize,
};
use hyper::body::Frame;
use hyper::Method;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::api::{
    ClientMessage, DirListing, ExecBody, ExecEvent, SandboxInfo, WriteResult, LISTING_HEADER,
    PREFIX,
};
use crate::client::{check, empty, enc, Client, ClientError, ReqBody};

#[derive(Debug)]
struct Remote {
    client: Client,
    id: String,
    isolation: Isolation,
    decision: Decision,
    enforcement: EnforcementReport,
    state: Mutex<(LiveState, Option<EndReason>)>,
    /// Where the host reaches its exposed ports (from create's answer).
    exposed: Vec<hybrid_sandbox::network::ExposedPort>,
    /// Destroyed when dropped (a sandbox this handle created).
    owned: bool,
}

pub(crate) fn live(client: Client, info: SandboxInfo, owned: bool) -> hybrid_sandbox::Live {
    hybrid_sandbox::Live::from_sandbox(Arc::new(Remote::new(client, info, owned)))
}

impl Remote {
    /// The server's sandbox `info`; `owned`: destroyed when the last handle goes.
    fn new(client: Client, info: SandboxInfo, owned: bool) -> Remote {
        Remote {
            client,
            id: info.id,
            isolation: info.isolation,
            decision: info.decision,
            enforcement: info.enforcement,
            state: Mutex::new((info.state, info.ended)),
            exposed: info.exposed,
            owned,
        }
    }
}

/// A snapshot on the server (`POST /v1/sandboxes/{id}/snapshot`); each start is a
/// sandbox created from it, destroyed when its last handle is dropped. The snapshot
/// itself stays on the server until deleted (`Client::delete_snapshot`).
#[derive(Debug)]
struct RemoteSnapshot {
    client: Client,
    info: crate::api::SnapshotInfo,
}

#[async_trait::async_trait]
impl hybrid_sandbox::LiveSnapshot for RemoteSnapshot {
    fn isolation(&self) -> Isolation {
        self.info.isolation
    }

    fn kept(&self) -> String {
        self.info.kept.clone()
    }

    fn memory_bytes(&self) -> u64 {
        self.info.memory_bytes
    }

    async fn start(&self) -> Result<Arc<dyn LiveSandbox>, LiveError> {
        let req = crate::api::CreateRequest {
            from_snapshot: Some(self.info.snapshot_id.clone()),
            ..Default::default()
        };
        let info = self.client.create_detached(&req).await.map_err(|e| {
            LiveError::Failed(
                "starting from a snapshot".into(),
                std::io::Error::other(e.chain()),
            )
        })?;
        Ok(Arc::new(Remote::new(self.client.clone(), info, true)))
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if !self.owned || self.state().0 == LiveState::Destroyed {
            return;
        }
        let (client, id) = (self.client.clone(), self.id.clone());
        let job = async move {
            let _ = client.destroy(&id).await;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(job);
            }
            Err(_) => {
                // No runtime here: a short-lived one on a thread of its own.
                let _ = std::thread::Builder::new()
                    .name("hsb-drop".into())
                    .spawn(move || {
                        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                        {
                            rt.block_on(job);
                        }
                    });
            }
        }
    }
}

/// The errno a file error kind stands for.
fn errno_of(kind: &str) -> Option<i32> {
    Some(match kind {
        "not_found" => libc::ENOENT,
        "exists" => libc::EEXIST,
        "not_a_directory" => libc::ENOTDIR,
        "is_a_directory" => libc::EISDIR,
        "not_empty" => libc::ENOTEMPTY,
        "permission_denied" => libc::EACCES,
        "busy" => libc::EBUSY,
        "io" => libc::EIO,
        _ => return None,
    })
}

fn static_limit(name: &str) -> &'static str {
    ["tmp_size", "file_size", "memory", "pids", "disk", "output"]
        .into_iter()
        .find(|n| *n == name)
        .unwrap_or("limit")
}

/// The last part of an error chain (`live sandbox: read /x: No such file` → the cause).
fn cause(message: &str) -> String {
    message.rsplit(": ").next().unwrap_or(message).to_string()
}

impl Remote {
    fn path(&self, tail: &str) -> String {
        format!("{PREFIX}/sandboxes/{}{tail}", enc(&self.id))
    }

    fn set_state(&self, state: LiveState, ended: Option<EndReason>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (state, ended);
    }

    fn state(&self) -> (LiveState, Option<EndReason>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The library's error for a failed call of `operation` on `path`.
    fn error(&self, e: ClientError, operation: &'static str, path: &str) -> LiveError {
        let ClientError::Api {
            kind,
            message,
            detail,
            ..
        } = e
        else {
            return LiveError::Failed(
                format!("{operation} through the server"),
                std::io::Error::other(e.chain()),
            );
        };
        // The server's message is its library error's whole chain; the library's own
        // error says "live sandbox" again around what is made of it here.
        let message = match message.strip_prefix("live sandbox: ") {
            Some(rest) => rest.to_string(),
            None => message,
        };
        match kind.as_str() {
            "wrong_state" | "no_such_sandbox" => {
                let state = detail.state.unwrap_or(LiveState::Destroyed);
                if state == LiveState::Destroyed {
                    self.set_state(
                        LiveState::Destroyed,
                        self.state().1.or(Some(EndReason::Destroyed)),
                    );
                }
                LiveError::WrongState {
                    state,
                    operation,
                    wanted: "running",
                }
            }
            "limit" => LiveError::Limit {
                limit: static_limit(detail.limit.as_deref().unwrap_or_default()),
                value: detail.value.unwrap_or_default(),
                message: cause(&message),
            },
            "invalid_path" => LiveError::InvalidPath {
                path: path.to_string(),
                reason: cause(&message),
            },
            // A policy's refusal (a limit above the server's floor) is the request's.
            "invalid" | "bad_request" | "too_large" | "policy" => LiveError::Invalid(message),
            "unsupported" | "unavailable" => LiveError::Unsupported(message),
            "program_not_found" => LiveError::Exec(SpawnError::ProgramNotFound(path.to_string())),
            "not_executable" => LiveError::Exec(SpawnError::NotExecutable {
                program: path.to_string(),
                source: std::io::Error::other(cause(&message)),
            }),
            "exec" => LiveError::Exec(SpawnError::Unsupported(message)),
            k => match errno_of(k) {
                Some(errno) => LiveError::File {
                    operation,
                    path: path.to_string(),
                    errno,
                    reason: cause(&message),
                },
                None => LiveError::Failed(
                    format!("{operation} through the server"),
                    std::io::Error::other(message),
                ),
            },
        }
    }

    async fn info(&self) -> Result<SandboxInfo, ClientError> {
        let info = self.client.info(&self.id).await?;
        self.set_state(info.state, info.ended);
        Ok(info)
    }

    async fn file_get(
        &self,
        path: &str,
        stat: bool,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let q = if stat { "&stat=true" } else { "" };
        let req = self
            .client
            .builder(
                Method::GET,
                &self.path(&format!("/files?path={}{q}", enc(path))),
            )
            .body(empty())
            .map_err(ClientError::http)?;
        let (resp, _conn) = self.client.send(req).await?;
        check(resp).await
    }

    async fn files_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        query: String,
    ) -> Result<T, ClientError> {
        self.client
            .call(method, &self.path(&format!("/files?{query}")), None)
            .await
    }
}

fn upload_body(data: FileData) -> ReqBody {
    match data {
        FileData::Bytes(b) => http_body_util::Full::new(bytes::Bytes::from(b))
            .map_err(|never| match never {})
            .boxed_unsync(),
        FileData::Stream(s) => {
            let frames =
                tokio_util::io::ReaderStream::with_capacity(s, 256 * 1024).map_ok(Frame::data);
            StreamBody::new(frames).boxed_unsync()
        }
    }
}

#[async_trait]
impl LiveSandbox for Remote {
    fn isolation(&self) -> Isolation {
        self.isolation
    }
    fn decision(&self) -> &Decision {
        &self.decision
    }
    fn enforcement(&self) -> &EnforcementReport {
        &self.enforcement
    }
    fn state(&self) -> LiveState {
        Remote::state(self).0
    }
    fn ended(&self) -> Option<EndReason> {
        Remote::state(self).1
    }
    /// What was known at create: the mode and the exposed ports (the decisions so far
    /// come from [`crate::Client::network`]).
    fn network(&self) -> Option<hybrid_sandbox::network::NetworkReport> {
        (self.enforcement.network == hybrid_sandbox::Network::Egress).then(|| {
            hybrid_sandbox::network::NetworkReport {
                mode: self.enforcement.network,
                exposed: self.exposed.clone(),
                ..Default::default()
            }
        })
    }

    async fn exec(&self, request: ExecRequest) -> Result<Box<dyn Execution>, LiveError> {
        let program = request.argv.first().cloned().unwrap_or_default();
        // Without a terminal or a stdin stream, the JSON exec (streamed) is lighter than
        // the interactive one: no second connection, no upgrade.
        let big_stdin = matches!(&request.stdin, Stdin::Bytes(b) if b.len() > INLINE_STDIN_MAX);
        let started = if request.tty.is_none() && request.stdin != Stdin::Stream && !big_stdin {
            RemoteExecution::start_streamed(self, request).await
        } else {
            RemoteExecution::start(self, request).await
        };
        match started {
            Ok(e) => Ok(Box::new(e)),
            Err(e) => Err(self.error(e, "exec", &program)),
        }
    }

    async fn write_file(&self, path: &str, data: FileData, mode: u32) -> Result<u64, LiveError> {
        let call = async {
            let req = self
                .client
                .builder(
                    Method::PUT,
                    &self.path(&format!("/files?path={}&mode={mode:o}", enc(path))),
                )
                .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
                .body(upload_body(data))
                .map_err(ClientError::http)?;
            let w: WriteResult = self.client.call_request(req).await?;
            Ok(w.bytes)
        };
        call.await.map_err(|e| self.error(e, "write", path))
    }

    async fn read_file(&self, path: &str) -> Result<ByteStream, LiveError> {
        let resp = self
            .file_get(path, false)
            .await
            .map_err(|e| self.error(e, "read", path))?;
        if resp.headers().contains_key(LISTING_HEADER) {
            return Err(LiveError::file("read", path, libc::EISDIR));
        }
        let frames = BodyStream::new(resp.into_body())
            .try_filter_map(|f| async move { Ok(f.into_data().ok()) })
            .map_err(std::io::Error::other);
        Ok(Box::pin(tokio_util::io::StreamReader::new(frames)))
    }

    async fn list_dir(&self, path: &str) -> Result<Vec<FileStat>, LiveError> {
        let call = async {
            let resp = self.file_get(path, false).await?;
            let listing = resp.headers().contains_key(LISTING_HEADER);
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(ClientError::http)?
                .to_bytes();
            if !listing {
                return Ok(None);
            }
            let l: DirListing =
                serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(e.to_string()))?;
            Ok(Some(l.entries))
        };
        match call.await {
            Ok(Some(entries)) => Ok(entries),
            Ok(None) => Err(LiveError::file("list", path, libc::ENOTDIR)),
            Err(e) => Err(self.error(e, "list", path)),
        }
    }

    async fn stat(&self, path: &str) -> Result<FileStat, LiveError> {
        self.files_json(Method::GET, format!("path={}&stat=true", enc(path)))
            .await
            .map_err(|e| self.error(e, "stat", path))
    }

    async fn mkdir(&self, path: &str, parents: bool) -> Result<(), LiveError> {
        self.files_json::<WriteResult>(
            Method::PUT,
            format!("path={}&directory=true&parents={parents}", enc(path)),
        )
        .await
        .map(drop)
        .map_err(|e| self.error(e, "mkdir", path))
    }

    async fn remove(&self, path: &str, recursive: bool) -> Result<(), LiveError> {
        self.client
            .call_bytes(
                Method::DELETE,
                &self.path(&format!("/files?path={}&recursive={recursive}", enc(path))),
                None,
            )
            .await
            .map(drop)
            .map_err(|e| self.error(e, "remove", path))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), LiveError> {
        let body = serde_json::to_vec(&crate::api::RenameRequest {
            from: from.to_string(),
            to: to.to_string(),
        })
        .unwrap_or_default();
        self.client
            .call_bytes(Method::POST, &self.path("/files/rename"), Some(body))
            .await
            .map(drop)
            .map_err(|e| self.error(e, "rename", from))
    }

    async fn update_limits(&self, limits: &hybrid_sandbox::Limits) -> Result<(), LiveError> {
        self.client
            .update_limits(&self.id, limits)
            .await
            .map(drop)
            .map_err(|e| self.error(e, "update_limits", ""))
    }

    async fn snapshot(&self) -> Result<Arc<dyn hybrid_sandbox::LiveSnapshot>, LiveError> {
        let info = self
            .client
            .snapshot(&self.id)
            .await
            .map_err(|e| self.error(e, "snapshot", ""))?;
        Ok(Arc::new(RemoteSnapshot {
            client: self.client.clone(),
            info,
        }))
    }

    async fn pause(&self) -> Result<(), LiveError> {
        let info = self
            .client
            .pause(&self.id)
            .await
            .map_err(|e| self.error(e, "pause", ""))?;
        self.set_state(info.state, info.ended);
        Ok(())
    }

    async fn resume(&self) -> Result<(), LiveError> {
        let info = self
            .client
            .resume(&self.id)
            .await
            .map_err(|e| self.error(e, "resume", ""))?;
        self.set_state(info.state, info.ended);
        Ok(())
    }

    async fn stats(&self) -> Result<LiveStats, LiveError> {
        let info = self.info().await.map_err(|e| self.error(e, "stats", ""))?;
        match info.stats {
            Some(s) => Ok(s),
            None => Err(LiveError::WrongState {
                state: info.state,
                operation: "stats",
                wanted: "running or paused",
            }),
        }
    }

    async fn destroy(&self) -> Result<(), LiveError> {
        match self.client.destroy(&self.id).await {
            Ok(()) => {}
            // Already gone (destroyed by another handle, or its lifetime): idempotent.
            Err(ClientError::Api { kind, .. }) if kind == "no_such_sandbox" => {}
            Err(e) => return Err(self.error(e, "destroy", "")),
        }
        let ended = Remote::state(self).1.or(Some(EndReason::Destroyed));
        self.set_state(LiveState::Destroyed, ended);
        Ok(())
    }
}

/// What the handle asks the exec's driver task to send.
enum Control {
    Client(ClientMessage),
}

/// How the handle reaches a running exec.
#[derive(Clone)]
enum Reach {
    /// Messages on its WebSocket.
    Socket(mpsc::UnboundedSender<Control>),
    /// Requests to `.../exec/{n}/kill|signal` (a streamed JSON exec).
    Http {
        client: Client,
        path: String,
        rt: tokio::runtime::Handle,
    },
}

impl Reach {
    fn send(&self, m: ClientMessage) -> Result<(), std::io::Error> {
        match self {
            Reach::Socket(tx) => tx
                .send(Control::Client(m))
                .map_err(|_| std::io::Error::other("the exec has ended")),
            Reach::Http { client, path, rt } => {
                let (tail, body) = match m {
                    ClientMessage::Kill => ("/kill", None),
                    ClientMessage::Signal { signal } => (
                        "/signal",
                        Some(
                            serde_json::to_vec(&crate::api::SignalRequest { signal })
                                .unwrap_or_default(),
                        ),
                    ),
                    _ => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::Unsupported,
                            "this exec has no terminal and no stdin stream",
                        ))
                    }
                };
                let (client, url) = (client.clone(), format!("{path}{tail}"));
                // Asynchronous, as a signal is: an exec that ends meanwhile has nothing
                // left to signal.
                rt.spawn(async move {
                    let _ = client.call_bytes(Method::POST, &url, body).await;
                });
                Ok(())
            }
        }
    }
}

/// An exec on the server, driven over its WebSocket by a task.
struct RemoteExecution {
    isolation: Isolation,
    tty: bool,
    stdin: Option<StdinWriter>,
    output: Option<OutputStream>,
    control: Reach,
    outcome: Option<oneshot::Receiver<Result<Outcome, RunError>>>,
    driver: tokio::task::AbortHandle,
}

impl std::fmt::Debug for RemoteExecution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteExecution").finish_non_exhaustive()
    }
}

impl Drop for RemoteExecution {
    fn drop(&mut self) {
        // Closing the socket kills the exec on the server.
        self.driver.abort();
    }
}

type Ws = tokio_tungstenite::WebSocketStream<crate::connect::Stream>;

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> ClientError {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Http(resp) => {
            let status = resp.status().as_u16();
            let body = resp.body().clone().unwrap_or_default();
            match serde_json::from_slice::<crate::api::ErrorBody>(&body) {
                Ok(b) => ClientError::Api {
                    status,
                    kind: b.error.kind.clone(),
                    message: b.error.message.clone(),
                    exit_status: b.exit_status,
                    detail: Box::new(b.error),
                },
                Err(_) => ClientError::Protocol(format!("status {status} to a WebSocket upgrade")),
            }
        }
        other => ClientError::http(other),
    }
}

/// Stdin bytes up to this size go inline in the exec's JSON request (base64, within
/// the server's 16 MiB request limit); more go as a stdin stream.
const INLINE_STDIN_MAX: usize = 8 << 20;

/// The pieces a stdin stream given as bytes is sent in.
const STDIN_PIECE: usize = 256 << 10;

impl RemoteExecution {
    /// A non-interactive exec: `POST .../exec` with `"stream": true`, NDJSON back.
    async fn start_streamed(
        r: &Remote,
        request: ExecRequest,
    ) -> Result<RemoteExecution, ClientError> {
        let stdin_base64 = match &request.stdin {
            Stdin::Bytes(b) => Some(crate::api::B64.encode(b)),
            _ => None,
        };
        let body = ExecBody {
            argv: request.argv,
            env: request.env,
            cwd: request.cwd,
            stdin: None,
            stdin_base64,
            timeout: request.limits.wall_time,
            cpu_time: request.limits.cpu_time,
            output: request.limits.output,
            stream: true,
            tty: None,
            stdin_stream: false,
        };
        let req = r
            .client
            .builder(Method::POST, &r.path("/exec"))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(crate::client::full(Client::json(&body)?))
            .map_err(ClientError::http)?;
        let (resp, conn) = r.client.send(req).await?;
        let resp = check(resp).await?;
        let n = resp
            .headers()
            .get(crate::api::EXEC_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        let client = r.client.clone();
        let task = tokio::spawn(async move {
            let result = read_events(resp.into_body(), &out_tx).await;
            drop(out_tx);
            let _ = done_tx.send(result);
            client.give_back(conn);
        });
        Ok(RemoteExecution {
            isolation: r.isolation,
            tty: false,
            stdin: None,
            output: Some(out_rx),
            control: Reach::Http {
                client: r.client.clone(),
                path: r.path(&format!("/exec/{}", enc(&n))),
                rt: tokio::runtime::Handle::current(),
            },
            outcome: Some(done_rx),
            driver: task.abort_handle(),
        })
    }

    async fn start(r: &Remote, request: ExecRequest) -> Result<RemoteExecution, ClientError> {
        let tty = request.tty.is_some();
        // Bytes too many for one request body (the server's JSON limit) are sent as a
        // stdin stream, then its end.
        let (stdin_bytes, stdin_stream, feed) = match &request.stdin {
            Stdin::Null => (None, false, None),
            Stdin::Bytes(b) if b.len() > INLINE_STDIN_MAX => (None, true, Some(b.clone())),
            Stdin::Bytes(b) => (Some(b.clone()), false, None),
            Stdin::Stream => (None, true, None),
        };
        let body = ExecBody {
            argv: request.argv,
            env: request.env,
            cwd: request.cwd,
            stdin: None,
            stdin_base64: stdin_bytes.map(|b| crate::api::B64.encode(b)),
            timeout: request.limits.wall_time,
            cpu_time: request.limits.cpu_time,
            output: request.limits.output,
            stream: false,
            tty: request.tty,
            stdin_stream,
        };
        let url = format!(
            "ws://{}{}",
            r.client.endpoint().host(),
            r.path("/exec/interactive")
        );
        let mut req = url.into_client_request().map_err(ClientError::http)?;
        if let Some(t) = r.client.token() {
            let v = format!("Bearer {t}")
                .parse()
                .map_err(|_| ClientError::Protocol("the token is not a header value".into()))?;
            req.headers_mut().insert(hyper::header::AUTHORIZATION, v);
        }
        let stream = r.client.connect().await?;
        let (mut ws, _) = tokio_tungstenite::client_async(req, stream)
            .await
            .map_err(ws_error)?;
        let text =
            serde_json::to_string(&body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        ws.send(Message::text(text))
            .await
            .map_err(ClientError::http)?;
        // The first answer: started, or why not.
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ExecEvent>(t.as_str()) {
                    Ok(ExecEvent::Started) => break,
                    Ok(ExecEvent::Error { error, exit_status }) => {
                        return Err(ClientError::Api {
                            status: 400,
                            kind: error.kind.clone(),
                            message: error.message.clone(),
                            exit_status,
                            detail: Box::new(error),
                        })
                    }
                    _ => {
                        return Err(ClientError::Protocol(format!(
                            "unexpected first message {t}"
                        )))
                    }
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => {
                    return Err(ClientError::Protocol(format!(
                        "unexpected first message {m:?}"
                    )))
                }
                Some(Err(e)) => return Err(ClientError::http(e)),
                None => return Err(ClientError::Protocol("the server closed the exec".into())),
            }
        }
        let (mut stdin, stdin_rx) = if stdin_stream {
            let (w, rx) = StdinWriter::channel();
            (Some(w), Some(rx))
        } else {
            (None, None)
        };
        if let Some(bytes) = feed {
            // The caller gave bytes, not a stream: it gets no writer, as for inline bytes.
            let w = stdin.take();
            tokio::spawn(async move {
                let Some(w) = w else { return };
                for piece in bytes.chunks(STDIN_PIECE) {
                    // The exec ended without reading it all: the rest is not wanted.
                    if w.write(piece.to_vec()).await.is_err() {
                        break;
                    }
                }
            });
        }
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        let task = tokio::spawn(drive(ws, stdin_rx, out_tx, ctl_rx, done_tx));
        Ok(RemoteExecution {
            isolation: r.isolation,
            tty,
            stdin,
            output: Some(out_rx),
            control: Reach::Socket(ctl_tx),
            outcome: Some(done_rx),
            driver: task.abort_handle(),
        })
    }
}

/// Reads NDJSON exec events: output to `out`, and the outcome (the last event).
async fn read_events(
    body: hyper::body::Incoming,
    out: &mpsc::UnboundedSender<OutputChunk>,
) -> Result<Outcome, RunError> {
    let mut frames = BodyStream::new(body);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            match serde_json::from_slice::<ExecEvent>(&line) {
                Ok(ExecEvent::Output { stream, data }) => {
                    let data = crate::api::B64
                        .decode(data)
                        .map_err(|e| lost(&format!("an output event: {e}")))?;
                    if !out.is_closed() {
                        let _ = out.send(OutputChunk { stream, data });
                    }
                }
                Ok(ExecEvent::Outcome { outcome }) => {
                    // The body's end follows: read it, so the connection can be reused.
                    while let Some(Ok(_)) = frames.next().await {}
                    return outcome
                        .into_outcome()
                        .map_err(|e| lost(&format!("its outcome's output: {e}")));
                }
                Ok(ExecEvent::Error { error, .. }) => return Err(lost(&error.message)),
                Ok(ExecEvent::Started) => {}
                Err(e) => return Err(lost(&format!("an event that is not the API's: {e}"))),
            }
        }
        match frames.next().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    buf.extend_from_slice(&d);
                }
            }
            Some(Err(e)) => return Err(lost(&e.to_string())),
            None => return Err(lost("the server closed the exec before its outcome")),
        }
    }
}

/// Why the exec's socket closed without an outcome.
fn closed_early(send_failed: Option<&str>) -> String {
    match send_failed {
        Some(e) => format!("the server closed the exec before its outcome (a send failed: {e})"),
        None => "the server closed the exec before its outcome".into(),
    }
}

fn lost(what: &str) -> RunError {
    RunError::Supervision(
        "following the exec on the server".into(),
        std::io::Error::other(what.to_string()),
    )
}

/// Moves stdin and control messages to the server, output and the outcome back.
async fn drive(
    mut ws: Ws,
    mut stdin: Option<mpsc::Receiver<Vec<u8>>>,
    out: mpsc::UnboundedSender<OutputChunk>,
    mut control: mpsc::UnboundedReceiver<Control>,
    done: oneshot::Sender<Result<Outcome, RunError>>,
) {
    // A send that fails (the server finished the exec and is closing) is not the end:
    // the outcome may already be on its way; sending stops, reading goes on.
    let mut send_failed: Option<String> = None;
    let result = loop {
        // In order: a control message (a resize, a signal) sent before stdin data
        // reaches the server before it, as the caller issued them.
        tokio::select! {
            biased;
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) if !b.is_empty() => {
                    let stream = if b[0] == 2 { StreamKind::Stderr } else { StreamKind::Stdout };
                    if !out.is_closed() {
                        let _ = out.send(OutputChunk { stream, data: b[1..].to_vec() });
                    }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ExecEvent>(t.as_str()) {
                    Ok(ExecEvent::Outcome { outcome }) => {
                        break outcome.into_outcome().map_err(|e| lost(&format!("its outcome's output: {e}")));
                    }
                    Ok(ExecEvent::Error { error, exit_status: None }) if error.kind == "bad_request" => {
                        // A control message the server refused; the exec goes on.
                    }
                    Ok(ExecEvent::Error { error, .. }) => break Err(lost(&error.message)),
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None => break Err(lost(&closed_early(send_failed.as_deref()))),
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(lost(&match &send_failed {
                    Some(s) => format!("{e} (after a failed send: {s})"),
                    None => e.to_string(),
                })),
            },
            c = control.recv() => match c {
                Some(Control::Client(m)) if send_failed.is_none() => {
                    let text = serde_json::to_string(&m).unwrap_or_default();
                    if let Err(e) = ws.send(Message::text(text)).await {
                        send_failed = Some(e.to_string());
                        stdin = None;
                    }
                }
                Some(Control::Client(_)) => {}
                // The handle is gone: the abort comes next.
                None => std::future::pending::<()>().await,
            },
            data = async { match stdin.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                let sent = match data {
                    Some(d) => ws.send(Message::binary(d)).await,
                    None => {
                        stdin = None;
                        ws.send(Message::text(serde_json::to_string(&ClientMessage::Eof).unwrap_or_default())).await
                    }
                };
                if let Err(e) = sent {
                    send_failed = Some(e.to_string());
                    stdin = None;
                }
            },
        }
    };
    drop(out);
    let _ = done.send(result);
    let _ = ws.close(None).await;
}

#[async_trait]
impl Execution for RemoteExecution {
    fn isolation(&self) -> Isolation {
        self.isolation
    }
    fn take_stdin(&mut self) -> Option<StdinWriter> {
        self.stdin.take()
    }
    fn take_output(&mut self) -> Option<OutputStream> {
        self.output.take()
    }
    fn kill_handle(&self) -> KillHandle {
        let reach = self.control.clone();
        KillHandle::new(move || {
            let _ = reach.send(ClientMessage::Kill);
        })
    }
    async fn wait(&mut self) -> Result<Outcome, RunError> {
        self.output = None;
        let rx = self.outcome.take().ok_or(RunError::AlreadyWaited)?;
        rx.await
            .unwrap_or_else(|_| Err(lost("the exec's driver stopped")))
    }
    fn signal(&self, signal: i32) -> Result<(), std::io::Error> {
        remote_signal(&self.control, signal)
    }
    fn resize(&self, size: TtySize) -> Result<(), std::io::Error> {
        remote_resize(&self.control, self.tty, size)
    }
    fn control_handle(&self) -> Option<hybrid_sandbox::ControlHandle> {
        let (a, b, tty) = (self.control.clone(), self.control.clone(), self.tty);
        Some(hybrid_sandbox::ControlHandle::new(
            move |sig| remote_signal(&a, sig),
            move |size| remote_resize(&b, tty, size),
        ))
    }
}

fn remote_signal(control: &Reach, signal: i32) -> std::io::Result<()> {
    hybrid_sandbox::check_signal(signal)?;
    control.send(ClientMessage::Signal { signal })
}

fn remote_resize(control: &Reach, tty: bool, size: TtySize) -> std::io::Result<()> {
    if !tty {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this exec has no terminal (start it with a tty)",
        ));
    }
    control.send(ClientMessage::Resize {
        rows: size.rows,
        cols: size.cols,
    })
}
