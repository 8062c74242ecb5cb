//! The routes of the API and the sandbox-level handlers (create, list, show, destroy,
//! pause, resume). Exec and files have modules of their own.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put, MethodRouter};
use axum::{Extension, Json, Router};
use hsb_client::api::{CreateRequest, PauseRequest, SandboxInfo, SandboxList};
use hybrid_sandbox::network::{EgressRequest, NetworkReport};
use hybrid_sandbox::{Live, LiveOptions, LiveState, Mount, MountMode, Sandbox, Workload};

use crate::auth::{owner_of, Owner, Peer, Tokens};
use crate::error::ApiError;
use crate::input::{read_json, SandboxId};
use crate::registry::{new_id, new_snapshot_id, Entry, Registry, Slot, SnapEntry};
use crate::{exec, files};

/// A host directory clients may mount (`hsb serve --allow-mount DIR[:rw]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedMount {
    /// The directory, canonical.
    pub dir: std::path::PathBuf,
    /// Whether read-write mounts are allowed below it.
    pub rw: bool,
}

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) sandbox: Sandbox,
    pub(crate) registry: Registry,
    pub(crate) tokens: Option<Tokens>,
    pub(crate) allowed_mounts: Vec<AllowedMount>,
    /// Largest JSON body.
    pub(crate) json_limit: usize,
    /// Where sandboxes paused to disk keep their memory (unnamed files), and snapshot
    /// files are written and received.
    pub(crate) spill_dir: std::path::PathBuf,
    /// What snapshot files are signed with.
    pub(crate) snapshot_key: Arc<crate::SnapshotKey>,
    /// Keys rotated out, still accepted on upload.
    pub(crate) snapshot_old_keys: Vec<Arc<crate::SnapshotKey>>,
    /// Most bytes of data in an uploaded snapshot file.
    pub(crate) snapshot_upload_limit: u64,
}

pub(crate) type AppState = State<Arc<App>>;

/// Every route: the path and its handlers. The OpenAPI document lists the same paths
/// (a test checks both ways).
pub(crate) fn table() -> Vec<(&'static str, MethodRouter<Arc<App>>)> {
    vec![
        ("/openapi.json", get(openapi)),
        ("/v1/sandboxes", post(create).get(list)),
        ("/v1/sandboxes/{id}", get(show).delete(destroy)),
        ("/v1/sandboxes/{id}/pause", post(pause)),
        ("/v1/sandboxes/{id}/resume", post(resume)),
        ("/v1/sandboxes/{id}/limits", post(update_limits)),
        ("/v1/sandboxes/{id}/snapshot", post(snapshot)),
        (
            "/v1/snapshots",
            get(crate::snapfile::list).post(crate::snapfile::upload),
        ),
        (
            "/v1/snapshots/{id}",
            get(show_snapshot).delete(delete_snapshot),
        ),
        ("/v1/snapshots/{id}/file", get(crate::snapfile::download)),
        ("/v1/sandboxes/{id}/network", get(network)),
        ("/v1/sandboxes/{id}/network/events", get(network_events)),
        ("/v1/sandboxes/{id}/exec", post(exec::exec)),
        (
            "/v1/sandboxes/{id}/exec/interactive",
            get(exec::interactive),
        ),
        ("/v1/sandboxes/{id}/exec/{exec}/kill", post(exec::kill)),
        ("/v1/sandboxes/{id}/exec/{exec}/signal", post(exec::signal)),
        (
            "/v1/sandboxes/{id}/files",
            put(files::put).get(files::get).delete(files::delete),
        ),
        ("/v1/sandboxes/{id}/files/rename", post(files::rename)),
    ]
}

/// The router of a server.
pub(crate) fn router(app: Arc<App>) -> Router {
    let mut r = Router::new();
    for (path, m) in table() {
        // Only the file routes take query parameters (and check them by name); any
        // other is refused rather than ignored (a client's typo would do nothing).
        let m = if path.ends_with("/files") {
            m
        } else {
            m.route_layer(middleware::from_fn(no_query))
        };
        r = r.route(path, m);
    }
    r.fallback(no_route)
        .method_not_allowed_fallback(not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), authenticate))
        .with_state(app)
}

async fn no_query(req: Request, next: Next) -> Response {
    match req.uri().query() {
        Some(q) if !q.is_empty() => {
            let name = q
                .split('&')
                .next()
                .unwrap_or(q)
                .split('=')
                .next()
                .unwrap_or(q);
            ApiError::bad_request(format!(
                "unknown query parameter `{}` (this path takes none)",
                name.chars().take(64).collect::<String>()
            ))
            .into_response()
        }
        _ => next.run(req).await,
    }
}

async fn no_route() -> ApiError {
    ApiError::new(
        "no_such_route",
        "no such path in this API (GET /openapi.json lists them)",
    )
}

async fn not_allowed() -> ApiError {
    ApiError::new(
        "method_not_allowed",
        "this path does not take this method (GET /openapi.json lists them)",
    )
}

/// Finds the request's owner (bearer token, else the UNIX peer's uid) or answers 401.
async fn authenticate(State(app): AppState, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<Peer>().copied().unwrap_or(Peer::Tcp);
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|h| h.as_bytes().to_vec());
    match owner_of(app.tokens.as_ref(), peer, auth.as_deref()) {
        Ok(owner) => {
            req.extensions_mut().insert(owner);
            next.run(req).await
        }
        Err(message) => {
            let mut r = ApiError::new("unauthorized", message).into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            r
        }
    }
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::DOCUMENT,
    )
        .into_response()
}

impl App {
    /// The workload and options of a create request (not `from_snapshot` nor
    /// `template`): its image in the store, its mounts allowed.
    pub(crate) fn spec_of(&self, req: &CreateRequest) -> Result<(Workload, LiveOptions), ApiError> {
        if let Some(image) = &req.image {
            self.check_image(image)?;
        }
        if let Some(i) = req.expose.iter().position(|&p| p == 0) {
            return Err(ApiError::bad_request(format!(
            "expose[{i}]: port 0 is no port: give the sandbox port a server listens on (1-65535)"
        )));
        }
        let mounts = self.mounts(req)?;
        let spec = Workload {
            env: req.env.clone(),
            cwd: req.cwd.clone(),
            mounts,
            tmpfs: req.tmpfs.clone(),
            labels: req.labels.clone(),
            profile: req.profile.clone(),
            isolation: req.isolation,
            limits: req.limits.clone(),
            network: req.network,
            egress: EgressRequest {
                allow: req.allow.clone(),
                deny: req.deny.clone(),
                expose: req.expose.clone(),
                secrets: Vec::new(),
            },
            needs: req.needs.clone(),
            image: req.image.clone(),
            ..Workload::default()
        };
        let options = LiveOptions {
            lifetime: req.lifetime,
            idle_timeout: req.idle_timeout,
        };
        Ok((spec, options))
    }

    /// The request's mounts, each inside a directory the operator allows.
    fn mounts(&self, req: &CreateRequest) -> Result<Vec<Mount>, ApiError> {
        let mut out = Vec::new();
        for m in &req.mounts {
            let refuse =
                |why: String| ApiError::new("policy", format!("mount of {}: {why}", m.source));
            if self.allowed_mounts.is_empty() {
                return Err(refuse(
                    "this server takes no host mounts from requests (the operator allows \
                     directories with hsb serve --allow-mount DIR[:rw]; or use a profile \
                     of the server's policy that mounts what you need)"
                        .into(),
                ));
            }
            let source = std::path::Path::new(&m.source);
            if !source.is_absolute() {
                return Err(refuse("the host path must be absolute".into()));
            }
            // Symlinks resolved now, so the check and the mount see the same path.
            let real = std::fs::canonicalize(source)
                .map_err(|e| refuse(format!("the host path cannot be resolved: {e}")))?;
            let ok = self
                .allowed_mounts
                .iter()
                .any(|a| real.starts_with(&a.dir) && (m.mode == MountMode::Ro || a.rw));
            if !ok {
                return Err(refuse(format!(
                    "{} is outside the directories this server allows{} ({})",
                    real.display(),
                    if m.mode == MountMode::Rw {
                        " read-write"
                    } else {
                        ""
                    },
                    self.allowed_mounts
                        .iter()
                        .map(|a| format!("{}{}", a.dir.display(), if a.rw { ":rw" } else { "" }))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let target = m.target.clone().unwrap_or_else(|| m.source.clone());
            out.push(match m.mode {
                MountMode::Ro => Mount::ro(real, target),
                MountMode::Rw => Mount::rw(real, target),
            });
        }
        Ok(out)
    }

    /// An image reference must name an image of the store (never a host path).
    fn check_image(&self, image: &str) -> Result<(), ApiError> {
        let store = self.sandbox.image_store();
        let names = store
            .list()
            .map_err(|e| ApiError::library(&hybrid_sandbox::Error::Image(e)))?;
        if names.iter().any(|r| r.name == image) {
            return Ok(());
        }
        Err(ApiError::new(
            "image",
            format!(
                "no image {image:?} in the server's image store (import it on the server's \
                 host with hsb image import; a server never reads image paths from requests)"
            ),
        ))
    }
}

async fn create(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    body: Body,
) -> Result<Response, ApiError> {
    let req: CreateRequest = read_json(body, app.json_limit).await?;
    if let Some(snap) = &req.from_snapshot {
        return create_from_snapshot(&app, owner, snap, &req).await;
    }
    if let Some(name) = &req.template {
        return create_from_template(&app, owner, name, &req).await;
    }
    if req.stdin.is_some() || req.stdin_base64.is_some() {
        return Err(ApiError::bad_request(
            "`stdin` and `stdin_base64` go with `template` (an exec's stdin is in its own request)",
        ));
    }
    let (spec, options) = app.spec_of(&req)?;
    let slot = app.registry.reserve(&owner)?;
    let live = app
        .sandbox
        .create(spec, options.clone())
        .await
        .map_err(|e| ApiError::library(&e))?;
    let entry = register(
        slot,
        owner,
        live.clone(),
        (options, req.image.clone(), Some(Arc::new(req.clone()))),
    )
    .await?;
    tracing::info!(id = %entry.id, owner = %entry.owner, isolation = %live.isolation(), "created");
    Ok(created(format!("/v1/sandboxes/{}", entry.id), entry.info()))
}

/// Gives a started sandbox an id and the slot `reserve` kept for it; a sandbox that
/// cannot be registered is destroyed, so nothing outlives a failed create.
async fn register(
    slot: Slot<'_>,
    owner: Owner,
    live: Live,
    (options, image, request): (LiveOptions, Option<String>, Option<Arc<CreateRequest>>),
) -> Result<Arc<Entry>, ApiError> {
    let registered = new_id()
        .map_err(|e| ApiError::new("failed", format!("making an id: {e}")))
        .and_then(|id| slot.commit(Entry::new(id, owner, live.clone(), options, image, request)));
    if registered.is_err() {
        let _ = live.destroy().await;
    }
    registered
}

/// `201 Created` with the new resource's `Location` and its description.
pub(crate) fn created(location: String, body: impl serde::Serialize) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

/// `POST /v1/sandboxes` with `from_snapshot`: a sandbox started from the snapshot,
/// with the snapshotted sandbox's settings (no other field may be given).
async fn create_from_snapshot(
    app: &App,
    owner: Owner,
    snap: &str,
    req: &CreateRequest,
) -> Result<Response, ApiError> {
    let only = CreateRequest {
        from_snapshot: Some(snap.to_string()),
        ..CreateRequest::default()
    };
    if req != &only {
        return Err(ApiError::bad_request(
            "from_snapshot takes no other field: the sandbox gets the snapshotted one's settings",
        ));
    }
    let s = app.registry.snapshot(&owner, snap)?;
    let slot = app.registry.reserve(&owner)?;
    let live = s
        .snapshot
        .start()
        .await
        .map_err(|e| ApiError::library(&e))?;
    let entry = register(
        slot,
        owner,
        live,
        (s.options.clone(), s.image.clone(), s.request.clone()),
    )
    .await?;
    tracing::info!(id = %entry.id, owner = %entry.owner, snapshot = %s.id, "created from a snapshot");
    Ok(created(format!("/v1/sandboxes/{}", entry.id), entry.info()))
}

/// `POST /v1/sandboxes` with `template`: a sandbox started from the policy's warm
/// template (a fork of its micro-VM, or a pre-started container of its pool) whose
/// program reads the request's stdin and runs to its end; the answer is the sandbox,
/// with that outcome. The sandbox stays, as any other, until deleted.
async fn create_from_template(
    app: &App,
    owner: Owner,
    name: &str,
    req: &CreateRequest,
) -> Result<Response, ApiError> {
    use base64::Engine as _;
    let only = CreateRequest {
        template: Some(name.to_string()),
        stdin: req.stdin.clone(),
        stdin_base64: req.stdin_base64.clone(),
        limits: hybrid_sandbox::Limits {
            wall_time: req.limits.wall_time,
            cpu_time: req.limits.cpu_time,
            output: req.limits.output,
            ..hybrid_sandbox::Limits::default()
        },
        ..CreateRequest::default()
    };
    if req != &only {
        return Err(ApiError::bad_request(
            "template takes only `stdin` (or `stdin_base64`) and `limits` (wall_time, cpu_time, output): the sandbox is the template's, as the server's policy defines it",
        ));
    }
    let stdin = match (&req.stdin, &req.stdin_base64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give `stdin` or `stdin_base64`, not both",
            ))
        }
        (Some(t), None) => t.clone().into_bytes(),
        (None, Some(b)) => hsb_client::api::B64.decode(b).map_err(|e| {
            ApiError::bad_request(format!("the request body's `stdin_base64`: {e}"))
        })?,
        (None, None) => Vec::new(),
    };
    let run = hybrid_sandbox::TemplateRun {
        stdin,
        limits: hybrid_sandbox::ExecLimits {
            wall_time: req.limits.wall_time,
            cpu_time: req.limits.cpu_time,
            output: req.limits.output,
        },
    };
    let slot = app.registry.reserve(&owner)?;
    let (live, mut exec) = app
        .sandbox
        .start_template(name, run)
        .await
        .map_err(|e| ApiError::library(&e))?;
    let outcome = match exec.wait().await {
        Ok(o) => o,
        Err(e) => {
            let _ = live.destroy().await;
            return Err(ApiError::library(&hybrid_sandbox::Error::Run(e)));
        }
    };
    drop(exec);
    let entry = register(slot, owner, live, (LiveOptions::default(), None, None)).await?;
    tracing::info!(id = %entry.id, owner = %entry.owner, template = %name, "created from a template");
    let mut info = entry.info();
    info.outcome = Some(Box::new(outcome.into()));
    Ok(created(format!("/v1/sandboxes/{}", entry.id), info))
}

/// `POST /v1/sandboxes/{id}/snapshot`: a snapshot of the sandbox (it goes on).
async fn snapshot(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
) -> Result<Response, ApiError> {
    let e = app.registry.get(&owner, &id)?;
    let snapshot = e
        .live()?
        .snapshot()
        .await
        .map_err(|e| ApiError::library(&e))?;
    let snap_id =
        new_snapshot_id().map_err(|e| ApiError::new("failed", format!("making an id: {e}")))?;
    let s = app.registry.add_snapshot(SnapEntry {
        id: snap_id,
        owner,
        snapshot,
        source: e.id.clone(),
        options: e.options.clone(),
        image: e.image.clone(),
        request: e.request.clone(),
        file: None,
    })?;
    tracing::info!(id = %s.id, sandbox = %e.id, "snapshot taken");
    Ok(created(format!("/v1/snapshots/{}", s.id), s.info()))
}

/// `GET /v1/snapshots/{id}`.
async fn show_snapshot(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
) -> Result<Json<hsb_client::api::SnapshotInfo>, ApiError> {
    Ok(Json(app.registry.snapshot(&owner, &id)?.info()))
}

/// `DELETE /v1/snapshots/{id}`: the sandboxes started from it go on.
async fn delete_snapshot(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
) -> Result<StatusCode, ApiError> {
    app.registry.remove_snapshot(&owner, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list(State(app): AppState, Extension(owner): Extension<Owner>) -> Json<SandboxList> {
    Json(SandboxList {
        sandboxes: app.registry.list(&owner).iter().map(|e| e.info()).collect(),
    })
}

async fn show(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
) -> Result<Json<SandboxInfo>, ApiError> {
    let e = app.registry.get(&owner, &id)?;
    let mut info = e.info();
    // Not while it is on disk, or going there or coming back (no sandbox to ask).
    if let (true, Ok(live)) = (info.state != LiveState::Destroyed, e.live()) {
        // A sandbox ending meanwhile has no stats; that is not an error.
        info.stats = live.stats().await.ok();
        info.state = live.state();
        info.ended = live.ended();
    }
    Ok(Json(info))
}

async fn destroy(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
) -> Result<StatusCode, ApiError> {
    let e = app.registry.remove(&owner, &id)?;
    e.destroy().await.map_err(|e| ApiError::library(&e))?;
    tracing::info!(id = %e.id, owner = %e.owner, "destroyed");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/sandboxes/{id}/pause`: stops its vCPU or freezes its processes; with
/// `{"to_disk": true}`, writes its state to an unnamed file of the server's spill
/// directory and frees the sandbox (micro-VM only) until `resume`.
async fn pause(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
    body: Body,
) -> Result<Json<SandboxInfo>, ApiError> {
    let req: PauseRequest = read_json(body, app.json_limit).await?;
    let e = app.registry.get(&owner, &id)?;
    let _held = e.hold().await;
    if e.on_disk() {
        return Ok(Json(e.info())); // already paused, on disk
    }
    let live = e.current();
    if req.to_disk {
        let snapshot = live
            .pause_to_disk(&app.spill_dir)
            .await
            .map_err(|err| ApiError::library(&err))?;
        e.went_to_disk(snapshot);
        tracing::info!(id = %e.id, dir = %app.spill_dir.display(), "paused to disk");
    } else {
        live.pause().await.map_err(|e| ApiError::library(&e))?;
    }
    Ok(Json(e.info()))
}

/// `POST /v1/sandboxes/{id}/limits`: each limit given replaces the one in force
/// (within the floor; see `Live::update_limits`). Not for a sandbox paused to disk.
async fn update_limits(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
    body: Body,
) -> Result<Json<SandboxInfo>, ApiError> {
    let limits: hybrid_sandbox::Limits = read_json(body, app.json_limit).await?;
    let e = app.registry.get(&owner, &id)?;
    let held = e.hold().await;
    e.live_held(&held)?
        .update_limits(&limits)
        .await
        .map_err(|err| ApiError::library(&err))?;
    Ok(Json(e.info()))
}

/// `POST /v1/sandboxes/{id}/resume`: undoes `pause`; a sandbox paused to disk starts
/// again from its file, under the same id.
async fn resume(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
) -> Result<Json<SandboxInfo>, ApiError> {
    let e = app.registry.get(&owner, &id)?;
    let _held = e.hold().await;
    match e.disk() {
        Some(snapshot) => {
            // On failure it stays on disk: resume may be tried again.
            let live = snapshot.start().await.map_err(|e| ApiError::library(&e))?;
            e.came_back(live);
            tracing::info!(id = %e.id, "resumed from disk");
        }
        None => e
            .current()
            .resume()
            .await
            .map_err(|e| ApiError::library(&e))?,
    }
    Ok(Json(e.info()))
}

/// `GET /v1/sandboxes/{id}/network`: the network report so far (every DNS question and
/// connection the broker decided, with the rule and the bytes each way; the exposed
/// ports). Without a broker (network `none` or `loopback`): the mode alone.
async fn network(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
) -> Result<Json<NetworkReport>, ApiError> {
    let e = app.registry.get(&owner, &id)?;
    let live = e.current();
    Ok(Json(live.network().unwrap_or_else(|| NetworkReport {
        mode: live.enforcement().network,
        ..NetworkReport::default()
    })))
}

/// `GET /v1/sandboxes/{id}/network/events`: the broker's decisions as they happen, one
/// JSON object per line, until the sandbox is destroyed or the client goes. A sandbox
/// without a broker answers 409 (`wrong_state`), naming its mode.
async fn network_events(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
) -> Result<Response, ApiError> {
    let e = app.registry.get(&owner, &id)?;
    let live = e.current();
    let Some(mut rx) = live.network_events() else {
        return Err(ApiError::new(
            "wrong_state",
            format!(
                "sandbox {id} has network `{}`: only network `egress` has a broker whose \
                 decisions stream here",
                live.enforcement().network
            ),
        ));
    };
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(16);
    tokio::spawn(async move {
        loop {
            let line = tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        let mut line = serde_json::to_vec(&ev).unwrap_or_default();
                        line.push(b'\n');
                        line
                    }
                    // A slow reader missed some: say how many, go on.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        format!("{{\"type\":\"lagged\",\"missed\":{n}}}\n").into_bytes()
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                () = tx.closed() => break,
                () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                    if live.state() == LiveState::Destroyed {
                        break;
                    }
                    continue;
                }
            };
            if tx.send(Ok(line)).await.is_err() {
                break;
            }
        }
    });
    let stream =
        futures_util::stream::unfold(
            body_rx,
            |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
        );
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}
