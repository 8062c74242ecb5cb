//! Execs: `POST .../exec` (the outcome, or NDJSON events then the outcome) and the
//! interactive exec over a WebSocket (`GET .../exec/interactive`): stdin, a terminal,
//! resizes and signals from the client; output and the outcome from the server.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use hsb_client::api::{ClientMessage, ExecBody, ExecEvent, OutcomeJson, B64};
use hybrid_sandbox::{Error, ExecLimits, ExecRequest, Execution, Stdin, StreamKind, TtySize};
use tokio::sync::mpsc;

use crate::auth::Owner;
use crate::error::ApiError;
use crate::input::{read_json, SandboxId};
use crate::registry::{Entry, ExecSignal};
use crate::routes::AppState;

/// Stdin is queued for the exec in pieces of at most this many bytes.
const STDIN_PIECE: usize = 64 * 1024;

/// How long an interactive exec's client may take to send its request.
const FIRST_MESSAGE: Duration = Duration::from_secs(30);

/// The library's request for an API exec body.
pub(crate) fn request(b: &ExecBody) -> Result<ExecRequest, ApiError> {
    let stdin = match (&b.stdin, &b.stdin_base64, b.stdin_stream) {
        (Some(_), Some(_), _) => {
            return Err(ApiError::bad_request(
                "give `stdin` or `stdin_base64`, not both",
            ))
        }
        (Some(_), _, true) | (_, Some(_), true) => {
            return Err(ApiError::bad_request(
                "`stdin_stream` takes stdin from the client's messages: no `stdin` with it",
            ))
        }
        (Some(t), None, false) => Stdin::Bytes(t.clone().into_bytes()),
        (None, Some(b), false) => Stdin::Bytes(B64.decode(b).map_err(|e| {
            ApiError::bad_request(format!("the request body's `stdin_base64`: {e}"))
        })?),
        (None, None, true) => Stdin::Stream,
        (None, None, false) => Stdin::Null,
    };
    if b.argv.is_empty() {
        return Err(ApiError::bad_request(
            "the request body's `argv` is empty: name a program",
        ));
    }
    if let Some(t) = b.tty {
        if t.rows == 0 || t.cols == 0 {
            return Err(ApiError::bad_request(
                "the request body's `tty`: rows and cols must be at least 1",
            ));
        }
    }
    Ok(ExecRequest {
        argv: b.argv.clone(),
        env: b.env.clone(),
        cwd: b.cwd.clone(),
        stdin,
        tty: b.tty,
        limits: ExecLimits {
            wall_time: b.timeout,
            cpu_time: b.cpu_time,
            output: b.output,
        },
    })
}

fn line(ev: &ExecEvent) -> Bytes {
    let mut v = serde_json::to_vec(ev).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn outcome_event(r: Result<hybrid_sandbox::Outcome, hybrid_sandbox::RunError>) -> ExecEvent {
    match r {
        Ok(o) => ExecEvent::Outcome {
            outcome: Box::new(OutcomeJson::from(o)),
        },
        Err(e) => {
            let e = ApiError::library(&Error::Run(e));
            ExecEvent::Error {
                error: e.body().error,
                exit_status: None,
            }
        }
    }
}

pub(crate) async fn exec(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
    body: Body,
) -> Result<Response, ApiError> {
    let entry = app.registry.get(&owner, &id)?;
    let b: ExecBody = read_json(body, app.json_limit).await?;
    if b.tty.is_some() || b.stdin_stream {
        return Err(ApiError::bad_request(
            "`tty` and `stdin_stream` need the interactive exec (a WebSocket at \
             GET /v1/sandboxes/{id}/exec/interactive)",
        ));
    }
    let req = request(&b)?;
    let mut e = entry
        .live()?
        .exec_streaming(req)
        .await
        .map_err(|e| ApiError::exec(&e))?;
    if !b.stream {
        // Dropped (killed) if the client goes away first.
        let outcome = e
            .wait()
            .await
            .map_err(|e| ApiError::library(&Error::Run(e)))?;
        return Ok(Json(OutcomeJson::from(outcome)).into_response());
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let n = entry.add_exec(ctl_tx);
    tokio::spawn(async move {
        let ended = || entry.remove_exec(n);
        stream_events(e, tx, ctl_rx, ended).await;
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (header::HeaderName::from_static(EXEC_HEADER), n.to_string()),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// Output events, then the outcome; signals and kills from the exec endpoints on the
/// way. A client that goes away drops the receiver: the exec is then dropped, which
/// kills it.
async fn stream_events(
    mut e: Box<dyn Execution>,
    tx: mpsc::Sender<Bytes>,
    mut control: mpsc::UnboundedReceiver<ExecSignal>,
    ended: impl FnOnce(),
) {
    // However it ends (the client gone included), its number goes first.
    struct OnEnd<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for OnEnd<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    let mut on_end = OnEnd(Some(ended));
    if let Some(mut out) = e.take_output() {
        loop {
            tokio::select! {
                c = out.recv() => match c {
                    Some(c) => {
                        let ev = ExecEvent::Output {
                            stream: c.stream,
                            data: B64.encode(&c.data),
                        };
                        if tx.send(line(&ev)).await.is_err() {
                            return;
                        }
                    }
                    None => break,
                },
                Some(s) = control.recv() => match s {
                    ExecSignal::Kill => e.kill_handle().kill(),
                    ExecSignal::Signal(n) => {
                        let _ = e.signal(n);
                    }
                },
                // The client went away while the program printed nothing (`sleep`):
                // dropping the exec kills it, as for a client gone without `stream`.
                () = tx.closed() => return,
            }
        }
    }
    // Signals and kills still reach it while it runs on without output.
    let handle = e.control_handle();
    let kill = e.kill_handle();
    let wait = e.wait();
    tokio::pin!(wait);
    let r = loop {
        tokio::select! {
            r = &mut wait => break r,
            Some(s) = control.recv() => match s {
                ExecSignal::Kill => kill.kill(),
                ExecSignal::Signal(n) => {
                    if let Some(h) = &handle {
                        let _ = h.signal(n);
                    }
                }
            },
            () = tx.closed() => return,
        }
    };
    // Before the outcome goes out: a kill after it finds no exec.
    if let Some(f) = on_end.0.take() {
        f();
    }
    let ev = outcome_event(r);
    let _ = tx.send(line(&ev)).await;
}

/// The header of a streamed exec's answer: its number, for `.../exec/{n}/kill|signal`.
pub(crate) const EXEC_HEADER: &str = hsb_client::api::EXEC_HEADER;

/// The sandbox and exec number of `.../exec/{n}/...`.
pub(crate) struct ExecPath(String, String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ExecPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<(String, String)>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path((id, n))) => Ok(ExecPath(id, n)),
            Err(e) => Err(ApiError::bad_request(format!("the path: {e}"))),
        }
    }
}

/// `POST /v1/sandboxes/{id}/exec/{n}/kill`: ends a streamed exec that is still running
/// (its outcome says `killed`).
pub(crate) async fn kill(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    ExecPath(id, n): ExecPath,
) -> Result<axum::http::StatusCode, ApiError> {
    send_control(&app, &owner, &id, &n, ExecSignal::Kill)
}

/// `POST /v1/sandboxes/{id}/exec/{n}/signal` (`{"signal": N}`): signals a streamed exec
/// that is still running.
pub(crate) async fn signal(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    ExecPath(id, n): ExecPath,
    body: Body,
) -> Result<axum::http::StatusCode, ApiError> {
    let b: hsb_client::api::SignalRequest = read_json(body, app.json_limit).await?;
    if !(1..=64).contains(&b.signal) {
        return Err(ApiError::bad_request(format!(
            "{} is not a signal number (1 to 64)",
            b.signal
        )));
    }
    send_control(&app, &owner, &id, &n, ExecSignal::Signal(b.signal))
}

fn send_control(
    app: &crate::routes::App,
    owner: &Owner,
    id: &str,
    n: &str,
    what: ExecSignal,
) -> Result<axum::http::StatusCode, ApiError> {
    let entry = app.registry.get(owner, id)?;
    let ctl = n
        .parse::<u64>()
        .ok()
        .and_then(|n| entry.exec(n))
        .ok_or_else(|| {
            ApiError::new(
                "no_such_exec",
                format!("no streamed exec {n:?} running in this sandbox (it ended, or never was)"),
            )
        })?;
    // The exec may end meanwhile: then there is nothing left to signal.
    let _ = ctl.send(what);
    Ok(axum::http::StatusCode::NO_CONTENT)
}

pub(crate) async fn interactive(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let entry = app.registry.get(&owner, &id)?;
    let ws = ws.map_err(|r| {
        ApiError::bad_request(format!(
            "the interactive exec is a WebSocket (GET with Upgrade: websocket): {r}"
        ))
    })?;
    let limit = app.json_limit;
    Ok(ws
        .max_message_size(limit)
        .on_upgrade(move |socket| session(socket, entry)))
}

async fn send_event(ws: &mut WebSocket, ev: &ExecEvent) -> bool {
    let text = serde_json::to_string(ev).unwrap_or_default();
    ws.send(Message::Text(text.into())).await.is_ok()
}

async fn close(mut ws: WebSocket) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}

/// Reads the exec request (the first text message) and starts it.
async fn start(ws: &mut WebSocket, entry: &Arc<Entry>) -> Result<Box<dyn Execution>, ApiError> {
    let first = tokio::time::timeout(FIRST_MESSAGE, ws.recv())
        .await
        .map_err(|_| {
            ApiError::new(
                "timeout",
                "the interactive exec's request (a JSON text message) did not come in 30s",
            )
        })?;
    let b: ExecBody = match first {
        Some(Ok(Message::Text(t))) => serde_json::from_str(t.as_str())
            .map_err(|e| ApiError::bad_request(format!("the exec request: {e}")))?,
        _ => {
            return Err(ApiError::bad_request(
                "the interactive exec starts with its request as a JSON text message",
            ))
        }
    };
    if b.stream {
        return Err(ApiError::bad_request(
            "`stream` is for POST .../exec; the interactive exec always streams",
        ));
    }
    let req = request(&b)?;
    entry
        .live()?
        .exec_streaming(req)
        .await
        .map_err(|e| ApiError::exec(&e))
}

async fn session(mut ws: WebSocket, entry: Arc<Entry>) {
    let mut e = match start(&mut ws, &entry).await {
        Ok(e) => e,
        Err(err) => {
            let ev = ExecEvent::Error {
                error: err.body().error,
                exit_status: err.exit_status,
            };
            send_event(&mut ws, &ev).await;
            close(ws).await;
            return;
        }
    };
    if !send_event(&mut ws, &ExecEvent::Started).await {
        return;
    }
    let mut stdin = e.take_stdin();
    let Some(mut out) = e.take_output() else {
        let ev = outcome_event(e.wait().await);
        send_event(&mut ws, &ev).await;
        close(ws).await;
        return;
    };
    loop {
        tokio::select! {
            chunk = out.recv() => match chunk {
                Some(c) => {
                    let mut frame = Vec::with_capacity(c.data.len() + 1);
                    frame.push(match c.stream { StreamKind::Stdout => 1u8, StreamKind::Stderr => 2u8 });
                    frame.extend_from_slice(&c.data);
                    if ws.send(Message::Binary(frame.into())).await.is_err() {
                        return; // the client is gone: dropping the exec kills it
                    }
                }
                // The exec ended and its last output was read.
                None => break,
            },
            msg = ws.recv() => match msg {
                Some(Ok(Message::Binary(data))) => {
                    if let Some(w) = &stdin {
                        // In pieces: the stdin queue holds a few messages, so what waits
                        // for a slow reader stays small whatever the message size.
                        for piece in data.chunks(STDIN_PIECE) {
                            if w.write(piece.to_vec()).await.is_err() {
                                stdin = None;
                                break;
                            }
                        }
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    let r = match serde_json::from_str::<ClientMessage>(t.as_str()) {
                        Ok(ClientMessage::Resize { rows, cols }) if rows > 0 && cols > 0 => {
                            e.resize(TtySize { rows, cols }).map_err(|e| e.to_string())
                        }
                        Ok(ClientMessage::Resize { .. }) => Err("rows and cols must be at least 1".into()),
                        Ok(ClientMessage::Signal { signal }) => e.signal(signal).map_err(|e| e.to_string()),
                        Ok(ClientMessage::Kill) => {
                            e.kill_handle().kill();
                            Ok(())
                        }
                        Ok(ClientMessage::Eof) => {
                            stdin = None;
                            Ok(())
                        }
                        Err(err) => Err(format!("not a message of the interactive exec: {err}")),
                    };
                    if let Err(message) = r {
                        // Told, not fatal: the exec goes on.
                        let ev = ExecEvent::Error {
                            error: hsb_client::api::ErrorDetail { kind: "bad_request".into(), message, ..Default::default() },
                            exit_status: None,
                        };
                        if !send_event(&mut ws, &ev).await {
                            return;
                        }
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                // Closed or broken: the client is gone.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
        }
    }
    drop(stdin);
    let ev = outcome_event(e.wait().await);
    send_event(&mut ws, &ev).await;
    close(ws).await;
}
