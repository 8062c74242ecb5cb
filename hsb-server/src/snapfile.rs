//! Snapshot files over the API: `GET /v1/snapshots/{id}/file` sends a snapshot as a
//! file, `POST /v1/snapshots` loads one sent back — into this server after a restart,
//! or into another server given the same `--snapshot-key`.
//!
//! A snapshot file holds a sandbox's whole state, and loading one reads that state
//! into the VMM: the server loads only files it (or a server sharing its key) wrote.
//! The file is signed with HMAC-SHA-256 under the server's snapshot key, over every
//! byte, and names the owner that downloaded it; an upload is written to an unnamed
//! file and nothing of it is parsed beyond its framing until the signature checks.
//! The library's own checks of the snapshot (build, checksums, every bound of the
//! state, the host files it held) then run as for any load.
//!
//! **The file** (integers little-endian):
//!
//! ```text
//! "HSBSNAPF"  format u32 (1)  key id [8]  header length u32  header (JSON)
//! records: offset u64  length u64 (1..=1 MiB)  bytes      the library's snapshot
//!          file, its data only (its holes are not sent), in increasing offsets
//! end:     u64::MAX  0
//! HMAC-SHA-256 [32] of every byte before it, under the snapshot key
//! ```
//!
//! The header says who downloaded it, the snapshot and sandbox it came from, the
//! library file's length, and the create request of the sandbox (the loading server
//! builds the same sandbox under its own policy, as a create would, and the library
//! refuses the file unless that is the sandbox it was saved from).

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use hsb_client::api::{CreateRequest, SnapshotList};
use serde::{Deserialize, Serialize};

use crate::auth::Owner;
use crate::error::ApiError;
use crate::input::{SandboxId, BODY_TIMEOUT};
use crate::registry::{new_snapshot_id, SnapEntry};
use crate::routes::AppState;

const MAGIC: &[u8; 8] = b"HSBSNAPF";
const FORMAT: u32 = 1;
/// Most bytes of one record.
const RECORD: u64 = 1 << 20;
/// Most bytes of the header (its create request is a JSON body: as large as the
/// server's largest, by default).
const HEADER_MAX: u32 = 16 << 20;
const END: u64 = u64::MAX;
const MAC: usize = 32;
/// Past the largest library file (its guest memory is at most 1 TiB).
const FILE_MAX: u64 = 1 << 41;

/// The key snapshot files are signed with (`hsb serve --snapshot-key FILE`; without
/// one, a random key of the server's own: its files load only into it).
pub struct SnapshotKey {
    key: ring::hmac::Key,
    id: [u8; 8],
}

impl std::fmt::Debug for SnapshotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnapshotKey({})", hex(&self.id))
    }
}

/// Fewest bytes of a key file.
pub const MIN_KEY_LEN: usize = 32;

impl SnapshotKey {
    /// The key in `path`: at least [`MIN_KEY_LEN`] bytes (a trailing newline is not
    /// part of it), in a file only its owner may read (mode 600), as
    /// `head -c 32 /dev/urandom | base64 > FILE` makes.
    pub fn from_file(path: &Path) -> Result<SnapshotKey, String> {
        Self::from_file_of(path, "--snapshot-key")
    }

    /// [`SnapshotKey::from_file`], its errors naming the option `flag` gave it by.
    pub fn from_file_of(path: &Path, flag: &str) -> Result<SnapshotKey, String> {
        use std::os::unix::fs::MetadataExt;
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("{flag} {shown}: {e}"))?;
        if meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{flag} {shown}: others may read it (mode {:o}); make it private with chmod 600",
                meta.mode() & 0o7777
            ));
        }
        let mut secret = std::fs::read(path).map_err(|e| format!("{flag} {shown}: {e}"))?;
        while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            secret.pop();
        }
        if secret.len() < MIN_KEY_LEN {
            return Err(format!(
                "{flag} {shown}: a key has at least {MIN_KEY_LEN} bytes (this one has {}); make one with: head -c 32 /dev/urandom | base64 > {shown}",
                secret.len()
            ));
        }
        Ok(SnapshotKey::from_secret(&secret))
    }

    /// A random key (the server's own).
    pub fn random() -> Result<SnapshotKey, String> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| format!("making a snapshot key: {e}"))?;
        Ok(SnapshotKey::from_secret(&secret))
    }

    fn from_secret(secret: &[u8]) -> SnapshotKey {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let tag = ring::hmac::sign(&key, b"hsb snapshot key id");
        let mut id = [0u8; 8];
        id.copy_from_slice(&tag.as_ref()[..8]);
        SnapshotKey { key, id }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What a snapshot file says of itself (signed with the rest).
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    /// The owner that downloaded it (`token NAME`, `uid N`): only it may load it.
    owner: String,
    /// The snapshot and the sandbox it was taken of.
    snapshot: String,
    sandbox: String,
    /// The library's snapshot file's length.
    file_len: u64,
    /// The create request of the sandbox it was taken of.
    create: CreateRequest,
}

/// An unnamed file in the spill directory `dir`.
fn unnamed(dir: &Path) -> Result<std::fs::File, ApiError> {
    sandbox_core::files::unnamed_file(dir).map_err(|e| {
        ApiError::new(
            "failed",
            format!(
                "making an unnamed file in the server's spill directory {}: {e}",
                dir.display()
            ),
        )
    })
}

/// A snapshot file in transfer for its owner (one at a time each), until dropped.
struct Transfer {
    app: Arc<crate::routes::App>,
    owner: Owner,
}

impl Transfer {
    fn begin(app: &Arc<crate::routes::App>, owner: &Owner) -> Result<Transfer, ApiError> {
        app.registry.begin_transfer(owner)?;
        Ok(Transfer {
            app: app.clone(),
            owner: owner.clone(),
        })
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.app.registry.end_transfer(&self.owner);
    }
}

/// `GET /v1/snapshots`: the caller's snapshots.
pub(crate) async fn list(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
) -> Json<SnapshotList> {
    Json(SnapshotList {
        snapshots: app
            .registry
            .snapshots(&owner)
            .iter()
            .map(|s| s.info())
            .collect(),
    })
}

/// `GET /v1/snapshots/{id}/file`: the snapshot as a signed file.
pub(crate) async fn download(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    SandboxId(id): SandboxId,
) -> Result<Response, ApiError> {
    let s = app.registry.snapshot(&owner, &id)?;
    let one = Transfer::begin(&app, &owner)?;
    let Some(create) = s.request.as_deref().cloned() else {
        return Err(ApiError::new(
            "unsupported",
            format!(
                "snapshot {id} is of a sandbox started from a template: the template is the server's, and a file of it could not be loaded as a sandbox of yours"
            ),
        ));
    };
    let file = match &s.file {
        Some(f) => f
            .try_clone()
            .map_err(|e| ApiError::new("failed", format!("reopening the snapshot's file: {e}")))?,
        None => {
            let f = unnamed(&app.spill_dir)?;
            s.snapshot
                .save_to(&f)
                .await
                .map_err(|e| ApiError::library(&e))?;
            f
        }
    };
    let file_len = file
        .metadata()
        .map_err(|e| ApiError::new("failed", format!("the snapshot's file: {e}")))?
        .len();
    let head = Header {
        owner: owner.to_string(),
        snapshot: s.id.clone(),
        sandbox: s.source.clone(),
        file_len,
        create,
    };
    let head = serde_json::to_vec(&head)
        .map_err(|e| ApiError::new("failed", format!("the file's header: {e}")))?;
    if head.len() > HEADER_MAX as usize {
        return Err(ApiError::new(
            "too_large",
            format!(
                "the sandbox's create request is over {HEADER_MAX} bytes, more than a snapshot file's header holds"
            ),
        ));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let key = app.snapshot_key.clone();
    tokio::task::spawn_blocking(move || {
        let _one = one;
        if let Err(e) = send(&file, file_len, &head, &key, &tx) {
            // The body ends early: the client sees a cut transfer (and a file without
            // its signature, which no server loads).
            let _ = tx.blocking_send(Err(e));
        }
    });
    let body = Body::from_stream(tokio_stream(rx));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.hsbsnap\""),
            ),
        ],
        body,
    )
        .into_response())
}

fn tokio_stream(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

/// Writes the signed file of `file` (the library's, `len` bytes) to `tx`: its data
/// extents, holes left out.
fn send(
    file: &std::fs::File,
    len: u64,
    head: &[u8],
    key: &SnapshotKey,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
) -> std::io::Result<()> {
    let mut mac = ring::hmac::Context::with_key(&key.key);
    let mut put = |b: Vec<u8>| -> std::io::Result<()> {
        mac.update(&b);
        tx.blocking_send(Ok(b.into()))
            .map_err(|_| std::io::Error::other("the client went away"))
    };
    let mut first = Vec::with_capacity(24 + head.len());
    first.extend_from_slice(MAGIC);
    first.extend_from_slice(&FORMAT.to_le_bytes());
    first.extend_from_slice(&key.id);
    first.extend_from_slice(&(head.len() as u32).to_le_bytes());
    first.extend_from_slice(head);
    put(first)?;
    let mut at = 0u64;
    while let Some((start, end)) = sandbox_core::files::data_extent(file, at, len) {
        let mut off = start;
        while off < end {
            let n = (end - off).min(RECORD);
            let mut b = vec![0u8; 16 + n as usize];
            b[..8].copy_from_slice(&off.to_le_bytes());
            b[8..16].copy_from_slice(&n.to_le_bytes());
            file.read_exact_at(&mut b[16..], off)?;
            put(b)?;
            off += n;
        }
        at = end;
    }
    let mut last = Vec::with_capacity(16);
    last.extend_from_slice(&END.to_le_bytes());
    last.extend_from_slice(&0u64.to_le_bytes());
    put(last)?;
    let tag = mac.sign();
    tx.blocking_send(Ok(bytes::Bytes::copy_from_slice(tag.as_ref())))
        .map_err(|_| std::io::Error::other("the client went away"))
}

/// The request body, read as a sequence of exact-length pieces, each chunk within
/// [`BODY_TIMEOUT`], everything read counted into the signature.
struct Reader {
    body: axum::body::BodyDataStream,
    buf: bytes::BytesMut,
    /// The signature so far, once the key the file names is known; before that, the
    /// bytes read (signed too) wait in `unsigned`.
    mac: Option<ring::hmac::Context>,
    unsigned: Vec<u8>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new("invalid", message)
}

impl Reader {
    /// Fills the buffer to `n` bytes; fewer at the end of the body.
    async fn fill(&mut self, n: usize) -> Result<(), ApiError> {
        while self.buf.len() < n {
            match tokio::time::timeout(BODY_TIMEOUT, self.body.next()).await {
                Err(_) => {
                    return Err(ApiError::new(
                        "timeout",
                        format!(
                            "the snapshot file stopped arriving for {}s",
                            BODY_TIMEOUT.as_secs()
                        ),
                    ))
                }
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => {
                    return Err(ApiError::bad_request(format!("reading the body: {e}")))
                }
                Ok(Some(Ok(b))) => self.buf.extend_from_slice(&b),
            }
        }
        Ok(())
    }

    /// The next `n` bytes (signed), or an error saying the file is cut short.
    async fn take(&mut self, n: usize, what: &str) -> Result<bytes::Bytes, ApiError> {
        self.fill(n).await?;
        if self.buf.len() < n {
            return Err(invalid(format!(
                "the snapshot file is cut short (in {what}): send the whole file GET /v1/snapshots/ID/file gave"
            )));
        }
        let b = self.buf.split_to(n).freeze();
        match &mut self.mac {
            Some(m) => m.update(&b),
            None => self.unsigned.extend_from_slice(&b),
        }
        Ok(b)
    }

    /// From now on the bytes read are checked against `key` (and those read before).
    fn sign_with(&mut self, key: &SnapshotKey) {
        let mut m = ring::hmac::Context::with_key(&key.key);
        m.update(&std::mem::take(&mut self.unsigned));
        self.mac = Some(m);
    }

    async fn u64(&mut self, what: &str) -> Result<u64, ApiError> {
        let b = self.take(8, what).await?;
        Ok(u64::from_le_bytes(b[..].try_into().unwrap_or_default()))
    }

    async fn u32(&mut self, what: &str) -> Result<u32, ApiError> {
        let b = self.take(4, what).await?;
        Ok(u32::from_le_bytes(b[..].try_into().unwrap_or_default()))
    }
}

/// `POST /v1/snapshots`: loads a snapshot file `GET /v1/snapshots/{id}/file` gave (by
/// this server or one with the same key, to the same owner) as a new snapshot of the
/// caller.
pub(crate) async fn upload(
    State(app): AppState,
    Extension(owner): Extension<Owner>,
    body: Body,
) -> Result<Response, ApiError> {
    let mut r = Reader {
        body: body.into_data_stream(),
        buf: bytes::BytesMut::new(),
        mac: None,
        unsigned: Vec::new(),
    };
    let done = load(&app, owner, &mut r).await;
    if done.is_err() {
        // Refused before the end of the file: read the rest the client sends (bounded)
        // so that it reads the answer instead of a reset.
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            let mut drained = 0u64;
            while let Some(Ok(b)) = r.body.next().await {
                drained += b.len() as u64;
                if drained > DRAIN_BYTES {
                    break;
                }
            }
        })
        .await;
    }
    done
}

/// How much of a refused upload is read (and thrown away) before the answer.
const DRAIN_BYTES: u64 = 1 << 30;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(30);

async fn load(
    app: &Arc<crate::routes::App>,
    owner: Owner,
    r: &mut Reader,
) -> Result<Response, ApiError> {
    app.registry.snapshot_room(&owner)?;
    let _one = Transfer::begin(app, &owner)?;
    let file = unnamed(&app.spill_dir)?;
    let keys: Vec<&SnapshotKey> = std::iter::once(&*app.snapshot_key)
        .chain(app.snapshot_old_keys.iter().map(|k| &**k))
        .collect();
    let head = receive(r, &file, &keys, app.snapshot_upload_limit).await?;
    // Signed: the server (or one with its key) wrote every byte.
    let head: Header = serde_json::from_slice(&head)
        .map_err(|e| invalid(format!("the snapshot file's header: {e}")))?;
    if head.owner != owner.to_string() {
        return Err(ApiError::new(
            "permission_denied",
            format!(
                "this snapshot file was downloaded by {}: only it may load it",
                head.owner
            ),
        ));
    }
    file.set_len(head.file_len)
        .map_err(|e| storage(e, "sizing the snapshot's file"))?;
    let (spec, options) = app.spec_of(&head.create)?;
    let keep = file
        .try_clone()
        .map_err(|e| ApiError::new("failed", format!("the snapshot's file: {e}")))?;
    let name = format!("uploaded from snapshot {}", head.snapshot);
    let snapshot = app
        .sandbox
        .load_snapshot_file(file, &name, spec, options.clone())
        .await
        .map_err(|e| ApiError::library(&e))?;
    let id =
        new_snapshot_id().map_err(|e| ApiError::new("failed", format!("making an id: {e}")))?;
    let s = app.registry.add_snapshot(SnapEntry {
        id,
        owner,
        snapshot,
        source: head.sandbox,
        options,
        image: head.create.image.clone(),
        request: Some(Arc::new(head.create)),
        file: Some(Arc::new(keep)),
    })?;
    tracing::info!(id = %s.id, from = %head.snapshot, "snapshot loaded from a file");
    Ok(crate::routes::created(
        format!("/v1/snapshots/{}", s.id),
        s.info(),
    ))
}

fn storage(e: std::io::Error, what: &str) -> ApiError {
    if e.raw_os_error() == Some(libc::EFBIG) {
        ApiError::new(
            "too_large",
            format!("{what}: larger than the spill directory's filesystem takes ({e})"),
        )
    } else if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
        ApiError::new(
            "limit",
            format!("{what}: the server's spill directory is full ({e})"),
        )
    } else {
        ApiError::new("failed", format!("{what}: {e}"))
    }
}

/// Reads a signed file from `r` into `file`; its header's bytes once the signature
/// checked.
async fn receive(
    r: &mut Reader,
    file: &std::fs::File,
    keys: &[&SnapshotKey],
    limit: u64,
) -> Result<Vec<u8>, ApiError> {
    let magic = r.take(8, "its first bytes").await?;
    if &magic[..] != MAGIC {
        return Err(invalid(
            "not a snapshot file of hsb serve (GET /v1/snapshots/ID/file gives one)",
        ));
    }
    let format = r.u32("its format").await?;
    if format != FORMAT {
        return Err(invalid(format!(
            "a snapshot file of format {format}; this server reads format {FORMAT}"
        )));
    }
    let id = r.take(8, "its key id").await?;
    let Some(key) = keys.iter().find(|k| id[..] == k.id) else {
        return Err(invalid(
            "this snapshot file was signed by another server's key: load it into that server, or give both servers the same --snapshot-key (a key rotated out still loads its files given as --snapshot-old-key)",
        ));
    };
    r.sign_with(key);
    let n = r.u32("its header").await?;
    if n > HEADER_MAX {
        return Err(invalid("the snapshot file's header is too long"));
    }
    let head = r.take(n as usize, "its header").await?.to_vec();
    let mut next = 0u64;
    let mut data = 0u64;
    loop {
        let off = r.u64("a record").await?;
        let len = r.u64("a record").await?;
        if off == END && len == 0 {
            break;
        }
        if off < next || len == 0 || len > RECORD || off.saturating_add(len) > FILE_MAX {
            return Err(invalid(
                "the snapshot file's records are out of order or out of bounds",
            ));
        }
        data += len;
        if data > limit {
            return Err(ApiError::new(
                "too_large",
                format!("the snapshot file holds more than {limit} bytes of data, the server's limit (hsb serve --snapshot-upload-limit)"),
            ));
        }
        let b = r.take(len as usize, "a record").await?;
        let f = file
            .try_clone()
            .map_err(|e| ApiError::new("failed", format!("the snapshot's file: {e}")))?;
        tokio::task::spawn_blocking(move || f.write_all_at(&b, off))
            .await
            .map_err(|e| ApiError::new("failed", format!("writing the snapshot's file: {e}")))?
            .map_err(|e| storage(e, "writing the snapshot's file"))?;
        next = off + len;
    }
    r.fill(MAC).await?;
    if r.buf.len() < MAC {
        return Err(invalid(
            "the snapshot file is cut short (in its signature): send the whole file GET /v1/snapshots/ID/file gave",
        ));
    }
    let tag = r.buf.split_to(MAC);
    r.fill(1).await?;
    if !r.buf.is_empty() {
        return Err(invalid("the snapshot file goes on past its signature"));
    }
    let Some(mac) = r.mac.take().map(ring::hmac::Context::sign) else {
        return Err(ApiError::new(
            "failed",
            "the snapshot file was never checked",
        ));
    };
    if !bool::from(subtle::ConstantTimeEq::ct_eq(mac.as_ref(), &tag[..])) {
        return Err(invalid(
            "the snapshot file's signature does not match its bytes: it was changed or damaged after the server wrote it",
        ));
    }
    Ok(head)
}
