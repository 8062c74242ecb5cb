//! Files: `PUT/GET/DELETE /v1/sandboxes/{id}/files?path=P`. Paths are the sandbox's;
//! the library resolves them inside the sandbox, under its confinement and limits.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use hsb_client::api::{DirListing, RenameRequest, WriteResult, LISTING_HEADER};
use hybrid_sandbox::ByteStream;

use crate::auth::Owner;
use crate::error::ApiError;
use crate::input::{flag, query, read_json, SandboxId};
use crate::routes::AppState;

fn path_of(q: &std::collections::BTreeMap<String, String>) -> Result<String, ApiError> {
    q.get("path").cloned().ok_or_else(|| {
        ApiError::bad_request("the query parameter `path` (the sandbox path) is missing")
    })
}

/// Permission bits in octal (`644`, `0755`).
fn mode_of(q: &std::collections::BTreeMap<String, String>) -> Result<u32, ApiError> {
    match q.get("mode") {
        None => Ok(0o644),
        Some(m) => Some(m)
            .filter(|m| (1..=4).contains(&m.len()) && m.bytes().all(|b| (b'0'..=b'7').contains(&b)))
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query parameter `mode`: `{m}` is not permission bits in octal (such as 644)"
                ))
            }),
    }
}

/// How much of a refused upload is read (and thrown away) before the answer.
const DRAIN_BYTES: u64 = 1 << 30;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// The request body as a byte stream for the library, forwarded by a task that, once
/// the library stops reading (a limit), drains the rest (at most [`DRAIN_BYTES`]).
fn forwarded(body: Body) -> (ByteStream, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let pump = tokio::spawn(async move {
        let mut data = body.into_data_stream();
        let mut drained = 0u64;
        while let Some(chunk) = data.next().await {
            match chunk {
                Ok(b) => {
                    let n = b.len() as u64;
                    if tx.send(Ok(b)).await.is_err() {
                        drained += n;
                        if drained > DRAIN_BYTES {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            }
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    (Box::pin(tokio_util::io::StreamReader::new(stream)), pump)
}

fn lib(e: hybrid_sandbox::Error) -> ApiError {
    ApiError::library(&e)
}

pub(crate) async fn put(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<Json<WriteResult>, ApiError> {
    let q = query(raw.as_deref(), &["path", "mode", "parents", "directory"])?;
    let path = path_of(&q)?;
    let mode = mode_of(&q)?;
    let (parents, directory) = (flag(&q, "parents")?, flag(&q, "directory")?);
    let e = app.registry.get(&owner, &id)?;
    if directory {
        e.live()?.mkdir(&path, parents).await.map_err(lib)?;
        return Ok(Json(WriteResult { path, bytes: 0 }));
    }
    if parents {
        if let Some((dir, _)) = path.rsplit_once('/').filter(|(d, _)| !d.is_empty()) {
            match e.live()?.mkdir(dir, true).await {
                Ok(()) => {}
                Err(err) if err.kind() == "exists" => {}
                Err(err) => return Err(lib(err)),
            }
        }
    }
    let (stream, pump) = forwarded(body);
    let written = e.live()?.write_file_stream(&path, stream, mode).await;
    if written.is_err() {
        // Refused before the end of the upload (a limit): read the rest of what the
        // client sends, bounded, so that it can read the answer instead of a reset.
        let _ = tokio::time::timeout(DRAIN_TIME, pump).await;
    }
    let bytes = written.map_err(lib)?;
    Ok(Json(WriteResult { path, bytes }))
}

pub(crate) async fn get(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = query(raw.as_deref(), &["path", "stat"])?;
    let path = path_of(&q)?;
    let e = app.registry.get(&owner, &id)?;
    if flag(&q, "stat")? {
        let st = e.live()?.stat(&path).await.map_err(lib)?;
        return Ok(Json(st).into_response());
    }
    match e.live()?.read_file_stream(&path).await {
        Ok(s) => Ok((
            [(header::CONTENT_TYPE, "application/octet-stream")],
            // Large reads: the library's file may cost a blocking-thread hop per read.
            Body::from_stream(tokio_util::io::ReaderStream::with_capacity(s, 1 << 20)),
        )
            .into_response()),
        Err(err) if err.kind() == "is_a_directory" => {
            let entries = e.live()?.list_dir(&path).await.map_err(lib)?;
            let mut r = Json(DirListing { path, entries }).into_response();
            r.headers_mut()
                .insert(LISTING_HEADER, HeaderValue::from_static("1"));
            Ok(r)
        }
        Err(err) => Err(lib(err)),
    }
}

pub(crate) async fn delete(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let q = query(raw.as_deref(), &["path", "recursive"])?;
    let path = path_of(&q)?;
    let recursive = flag(&q, "recursive")?;
    let e = app.registry.get(&owner, &id)?;
    e.live()?.remove(&path, recursive).await.map_err(lib)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn rename(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let e = app.registry.get(&owner, &id)?;
    let r: RenameRequest = read_json(body, app.json_limit).await?;
    e.live()?.rename(&r.from, &r.to).await.map_err(lib)?;
    Ok(StatusCode::NO_CONTENT)
}
