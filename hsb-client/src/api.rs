//! The wire types of `hsb serve`'s HTTP API (`/v1/...`), shared by the server and the
//! client so both read and write exactly the same JSON. The OpenAPI document at
//! `GET /openapi.json` describes them; the server's tests check it against the routes.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hybrid_sandbox::network::{ExposedPort, HostRule};
use hybrid_sandbox::units::opt_duration;
use hybrid_sandbox::{
    ByteSize, Decision, EndReason, EnforcementReport, FileStat, Isolation, IsolationRequest,
    Limits, LiveState, LiveStats, MountMode, Need, Network, Outcome, StreamKind, TtySize,
};
use serde::{Deserialize, Serialize};

/// The API's version prefix.
pub const PREFIX: &str = "/v1";

/// A host path mounted into the sandbox (the server's operator floor decides which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// Absolute path on the server's host.
    pub source: String,
    /// Absolute path in the sandbox (the source path when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `ro` (default) or `rw`.
    #[serde(default)]
    pub mode: MountMode,
}

/// `POST /v1/sandboxes`: the inputs of a run without the program.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// The policy profile (`hsb run --workload NAME`).
    #[serde(default, alias = "workload", skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Labels for the policy's rules (`trust = "untrusted"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `container`, `microvm` or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<IsolationRequest>,
    /// Declared needs (`network`, `full_linux`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<Need>,
    /// An image of the server's image store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Host mounts (refused unless the server's floor allows them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountSpec>,
    /// Empty in-memory filesystems (`{"target": "/run", "size": "64MiB", "mode": 493}`),
    /// charged to the sandbox and gone with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<hybrid_sandbox::Tmpfs>,
    /// Environment of every exec.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory of every exec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// `none`, `loopback` or `egress` (what the policy and the server's floor allow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// More egress allow rules (`HOST[:PORT]`, `*.example.org`, `IP[:PORT]`), within the
    /// server's floor; with network `egress`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<HostRule>,
    /// More egress deny rules (they win over allow rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<HostRule>,
    /// Sandbox ports the host may reach (each at a `127.0.0.1` port hsb chooses, shown
    /// in the sandbox's `exposed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<u16>,
    /// Limits: memory, pids, tmp_size and file_size for the sandbox's life; wall_time,
    /// cpu_time and output as each exec's default.
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
    /// The sandbox is destroyed this long after it was created.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub lifetime: Option<Duration>,
    /// The sandbox is destroyed after this long with no exec and no call.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_timeout: Option<Duration>,
    /// Start from this snapshot (`POST /v1/sandboxes/{id}/snapshot`) instead: the new
    /// sandbox goes on from the snapshotted one's state, with its settings (no other
    /// field but `lifetime` and `idle_timeout` may be given with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_snapshot: Option<String>,
    /// Start from this warm template of the server's policy (`[templates.NAME]`): the
    /// template's program reads `stdin` (or `stdin_base64`) then end of file and runs
    /// to its end in the new sandbox (its outcome is the answer's `outcome`); the
    /// sandbox stays until deleted. Only `stdin`, `stdin_base64` and `limits`
    /// (`wall_time`, `cpu_time`, `output`) may be given with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// With `template`: the program's stdin, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// With `template`: the program's stdin, in base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_base64: Option<String>,
}

/// A snapshot as the API shows it (`POST /v1/sandboxes/{id}/snapshot`'s answer,
/// `GET /v1/snapshots/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Its id (`snap-` and 24 hex digits): give it as `from_snapshot` to create.
    pub snapshot_id: String,
    /// The sandbox it was taken of.
    pub sandbox: String,
    /// The isolation of the sandboxes it starts.
    pub isolation: Isolation,
    /// What it keeps, in words.
    pub kept: String,
    /// Bytes of memory it holds on the host.
    pub memory_bytes: u64,
}

/// `GET /v1/snapshots`: the caller's snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotList {
    /// By id.
    pub snapshots: Vec<SnapshotInfo>,
}

/// A live sandbox as the API shows it (create's answer, list entries, `GET`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxInfo {
    /// Its id (`sb-` and 24 hex digits).
    pub id: String,
    /// The isolation in use.
    pub isolation: Isolation,
    /// `running`, `paused` or `destroyed`.
    pub state: LiveState,
    /// Paused to disk (`POST .../pause` with `{"to_disk": true}`): its state is in a
    /// file of the server, its memory freed; `POST .../resume` starts it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_disk: bool,
    /// Why it ended, once destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<EndReason>,
    /// Which backend, and why.
    pub decision: Decision,
    /// What protects the host.
    pub enforcement: EnforcementReport,
    /// When it was created, seconds since the epoch.
    pub created_at: f64,
    /// Its lifetime, when it has one.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub lifetime: Option<Duration>,
    /// Its idle timeout, when it has one.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_timeout: Option<Duration>,
    /// The image its root comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Its network mode (`none`, `loopback`, `egress`).
    #[serde(default)]
    pub network: Network,
    /// Where the host reaches its exposed ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed: Vec<ExposedPort>,
    /// Created from a template: the outcome of the template's program with the
    /// request's stdin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Box<OutcomeJson>>,
    /// What it uses now (`GET /v1/sandboxes/{id}` of a running or paused sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<LiveStats>,
}

/// `GET /v1/sandboxes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxList {
    /// The caller's sandboxes, oldest first.
    pub sandboxes: Vec<SandboxInfo>,
}

/// `POST /v1/sandboxes/{id}/exec` (and the first message of the interactive exec).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecBody {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Variables added to the sandbox's environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Standard input as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Standard input as base64 (binary data); not with `stdin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_base64: Option<String>,
    /// Wall time of this exec (paused time not counted).
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// CPU time of this exec.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_time: Option<Duration>,
    /// stdout and stderr together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ByteSize>,
    /// Answer with NDJSON events, then the outcome.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Interactive exec only: run on a pseudo-terminal of this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<TtySize>,
    /// Interactive exec only: stdin comes from the client's binary messages.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_stream: bool,
}

/// An exec's outcome: `hsb run --json`'s object, plus the exact bytes of an output that
/// is not UTF-8 (`stdout`/`stderr` are then lossy text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeJson {
    /// The outcome, as `hsb run --json` prints it.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// stdout in base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_base64: Option<String>,
    /// stderr in base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_base64: Option<String>,
}

fn exact(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes)
        .is_err()
        .then(|| B64.encode(bytes))
}

/// The base64 alphabet of the API (standard, padded).
pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl From<Outcome> for OutcomeJson {
    fn from(outcome: Outcome) -> Self {
        OutcomeJson {
            stdout_base64: exact(&outcome.stdout),
            stderr_base64: exact(&outcome.stderr),
            outcome,
        }
    }
}

impl OutcomeJson {
    /// The outcome with its exact output bytes.
    pub fn into_outcome(self) -> Result<Outcome, base64::DecodeError> {
        let mut o = self.outcome;
        if let Some(b) = self.stdout_base64 {
            o.stdout = B64.decode(b)?;
        }
        if let Some(b) = self.stderr_base64 {
            o.stderr = B64.decode(b)?;
        }
        Ok(o)
    }
}

/// One line of a streamed exec (`"stream": true`, NDJSON), or one text message of an
/// interactive exec from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ExecEvent {
    /// The exec started (interactive exec only: a streamed exec's start is its 200).
    Started,
    /// Output, in the order it was read.
    Output {
        /// `stdout` or `stderr`.
        stream: StreamKind,
        /// The bytes, base64.
        data: String,
    },
    /// The exec ended: its outcome (always the last event).
    Outcome {
        /// The outcome.
        outcome: Box<OutcomeJson>,
    },
    /// The exec could not start, or its outcome could not be had (the last event).
    Error {
        /// What went wrong.
        error: ErrorDetail,
        /// The exit status `hsb run` would give (127 not found, 126 not executable).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_status: Option<i32>,
    },
}

/// A text message of the client in an interactive exec (binary messages are stdin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Change the terminal's size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// Kill the exec (its outcome says `killed`).
    Kill,
    /// Send a signal to the exec.
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// End of stdin.
    Eof,
}

/// The body of every error answer: `{"error": {"kind", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
    /// For an exec that could not start: the exit status `hsb run` would give
    /// (127 not found, 126 not executable, 125 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
}

/// An error's kind and message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A machine-readable kind (`not_found`, `wrong_state`, `limit`, `quota`, ...).
    pub kind: String,
    /// In words, naming what is wrong and what to do.
    pub message: String,
    /// For `limit`: the limit's name as in a policy (`tmp_size`, `file_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// For `limit`: its value (`64MiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// For `wrong_state`: the sandbox's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<LiveState>,
}

/// `PUT /v1/sandboxes/{id}/files`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResult {
    /// The sandbox path written.
    pub path: String,
    /// Bytes written (0 for a directory made).
    pub bytes: u64,
}

/// `GET /v1/sandboxes/{id}/files` of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirListing {
    /// The directory.
    pub path: String,
    /// Its entries, sorted by name.
    pub entries: Vec<FileStat>,
}

/// `POST /v1/sandboxes/{id}/pause` (an empty body pauses in memory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// Pause to disk: the sandbox's state goes to a file of the server (an unnamed
    /// file in its `--spill-dir`), and the sandbox, its memory with it, is freed until
    /// `POST .../resume`. Micro-VM only.
    #[serde(default)]
    pub to_disk: bool,
}

/// `POST /v1/sandboxes/{id}/files/rename`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// The sandbox path to rename.
    pub from: String,
    /// Its new sandbox path.
    pub to: String,
}

/// `POST /v1/sandboxes/{id}/exec/{n}/signal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// The signal number.
    pub signal: i32,
}

/// The header of a streamed exec's answer: its number, for
/// `POST /v1/sandboxes/{id}/exec/{n}/kill` and `.../signal`.
pub const EXEC_HEADER: &str = "x-hsb-exec";

/// The HTTP header a directory listing (instead of a file's bytes) is marked with.
pub const LISTING_HEADER: &str = "x-hsb-listing";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_body_reads_durations_and_refuses_unknown_keys() {
        let b: ExecBody =
            serde_json::from_str(r#"{"argv":["true"],"timeout":"1.5s","stream":true}"#).unwrap();
        assert_eq!(b.timeout, Some(Duration::from_millis(1500)));
        assert!(b.stream);
        let e = serde_json::from_str::<ExecBody>(r#"{"argv":["true"],"timeuot":1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeuot"), "{e}");
    }

    #[test]
    fn events_are_tagged() {
        let e = ExecEvent::Output {
            stream: StreamKind::Stderr,
            data: B64.encode(b"x"),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"output","stream":"stderr","data":"eA=="}"#
        );
        let m: ClientMessage =
            serde_json::from_str(r#"{"op":"resize","rows":3,"cols":4}"#).unwrap();
        assert_eq!(m, ClientMessage::Resize { rows: 3, cols: 4 });
    }
}
