//! Live sandboxes: created once from a [`Plan`](crate::Plan) without a program, then many execs,
//! files in and out, pause and resume, stats, and destroy. A backend implements
//! [`LiveSandbox`]; [`crate::Backend::create`] makes one.
//!
//! Everything a live sandbox does acts *as the workload would*: execs start inside the
//! confinement (never a host process joining the namespaces unconfined), and file
//! operations go through the sandbox's own view of its filesystem, under its
//! confinement, so a symlink the workload planted never leads host-side code out.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use crate::backend::{Execution, SpawnError};
use crate::outcome::{Decision, EnforcementReport, Outcome};
use crate::types::Isolation;
use crate::units::ByteSize;
use crate::workload::Stdin;

/// Options of a live sandbox that a one-shot run does not have: how long it may live.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveOptions {
    /// The sandbox is destroyed this long after it was created (paused time included).
    #[serde(
        default,
        with = "crate::units::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub lifetime: Option<Duration>,
    /// The sandbox is destroyed after this long with no exec running and no API call.
    /// A paused sandbox is not idle-timed.
    #[serde(
        default,
        with = "crate::units::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_timeout: Option<Duration>,
}

impl LiveOptions {
    /// Refuses a zero `lifetime` or `idle_timeout`: a sandbox destroyed as it is made is
    /// no request anyone means (left out, there is none; the C API's 0 is "none").
    pub fn check(&self) -> Result<(), LiveError> {
        for (name, d) in [
            ("lifetime", self.lifetime),
            ("idle_timeout", self.idle_timeout),
        ] {
            if d == Some(Duration::ZERO) {
                return Err(LiveError::Invalid(format!(
                    "{name} must be more than zero (leave it out for none)"
                )));
            }
        }
        Ok(())
    }
}

/// Rows and columns of a pseudo-terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtySize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

impl Default for TtySize {
    fn default() -> Self {
        TtySize { rows: 24, cols: 80 }
    }
}

/// Limits of one exec (the sandbox's memory, pids and disk limits are shared by all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecLimits {
    /// Wall time of this exec; paused time does not count.
    #[serde(
        default,
        with = "crate::units::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub wall_time: Option<Duration>,
    /// CPU time of this exec's processes.
    #[serde(
        default,
        with = "crate::units::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_time: Option<Duration>,
    /// stdout and stderr together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ByteSize>,
}

/// A command to run in a live sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// argv; `argv[0]` is the program, an absolute sandbox path or a name searched in
    /// the sandbox's `PATH` (as a run's program is).
    pub argv: Vec<String>,
    /// Variables added to (or replacing those of) the sandbox's environment.
    pub env: BTreeMap<String, String>,
    /// Working directory (default: the sandbox's).
    pub cwd: Option<String>,
    /// Standard input.
    pub stdin: Stdin,
    /// Run on a pseudo-terminal of this size: stdin, stdout and stderr are the terminal
    /// (output arrives as stdout), and [`Execution::resize`] changes its size.
    pub tty: Option<TtySize>,
    /// Limits of this exec (unset ones: the sandbox's per-run defaults).
    pub limits: ExecLimits,
}

impl ExecRequest {
    /// A request to run `argv` with everything else default.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExecRequest {
            argv: argv.into_iter().map(Into::into).collect(),
            ..ExecRequest::default()
        }
    }
}

/// Where a live sandbox is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveState {
    /// Running: execs and file operations are served.
    Running,
    /// Paused: its processes (or vCPU) are stopped; file operations and execs wait or
    /// fail with [`LiveError::WrongState`].
    Paused,
    /// Gone: destroyed by the caller, or ended by a limit (see [`LiveSandbox::ended`]).
    Destroyed,
}

impl LiveState {
    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LiveState::Running => "running",
            LiveState::Paused => "paused",
            LiveState::Destroyed => "destroyed",
        }
    }
}

impl fmt::Display for LiveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a live sandbox ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// [`LiveSandbox::destroy`] (or the handle was dropped).
    Destroyed,
    /// Its `lifetime` passed.
    Lifetime,
    /// It was idle for `idle_timeout`.
    IdleTimeout,
    /// Its memory limit was reached by the sandbox as a whole.
    MemoryLimit,
    /// The backend could not go on (the VMM failed, init died, ...).
    Failed,
}

/// What a live sandbox uses now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveStats {
    /// Memory in use by the whole sandbox, in bytes.
    pub memory_bytes: u64,
    /// Largest memory use seen, in bytes.
    pub peak_memory_bytes: u64,
    /// CPU time used by everything that ran in it, in milliseconds.
    pub cpu_time_ms: f64,
    /// Processes and threads alive in it.
    pub processes: u64,
    /// Bytes used in its writable filesystem (tmpfs root, /tmp, the image's upper layer).
    pub disk_bytes: u64,
    /// Execs running now.
    pub execs_running: u64,
    /// Milliseconds since it was created.
    pub uptime_ms: f64,
    /// Milliseconds spent paused.
    pub paused_ms: f64,
}

/// What kind of file an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed by [`LiveSandbox::list_dir`] or [`LiveSandbox::stat`]
    /// of the link itself).
    Symlink,
    /// Anything else (FIFO, socket, device).
    Other,
}

/// Metadata of a file in the sandbox, as the workload sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// Its name (the last component of the path).
    pub name: String,
    /// What it is.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`0o644`).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// The target of a symlink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

/// A byte stream out of or into a sandbox file.
pub type ByteStream = Pin<Box<dyn AsyncRead + Send>>;

/// What to write into a file.
pub enum FileData {
    /// These bytes.
    Bytes(Vec<u8>),
    /// Everything this stream gives, until its end.
    Stream(ByteStream),
}

impl fmt::Debug for FileData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileData::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            FileData::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// Why an operation on a live sandbox failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The sandbox is not in a state that allows the operation (paused, destroyed).
    #[error("the sandbox is {state}; {operation} needs it {wanted}")]
    WrongState {
        /// Its state.
        state: LiveState,
        /// What was asked.
        operation: &'static str,
        /// The state the operation needs, in words.
        wanted: &'static str,
    },
    /// A file operation failed as the workload's own call would have.
    #[error("{operation} {path}: {reason}")]
    File {
        /// `read`, `write`, `list`, `stat`, `mkdir`, `remove`, `rename`.
        operation: &'static str,
        /// The sandbox path.
        path: String,
        /// The errno the sandbox's filesystem gave.
        errno: i32,
        /// In words (which limit, which rule...).
        reason: String,
    },
    /// A path that is not absolute, has a NUL byte, or is too long.
    #[error("invalid sandbox path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why.
        reason: String,
    },
    /// A request the sandbox cannot serve as given (empty argv, bad size, ...).
    #[error("{0}")]
    Invalid(String),
    /// A limit of the sandbox stops the operation (disk/tmp size, file size, pids...).
    #[error("the sandbox's {limit} limit ({value}) stops this: {message}")]
    Limit {
        /// The limit's name as in a policy (`tmp_size`, `file_size`, `pids`, `memory`).
        limit: &'static str,
        /// Its value, in words (`64MiB`).
        value: String,
        /// What was refused.
        message: String,
    },
    /// The exec could not start (program not found, not executable...).
    #[error("starting the command")]
    Exec(#[source] SpawnError),
    /// The backend does not offer this operation (in words: which, and why).
    #[error("{0}")]
    Unsupported(String),
    /// The sandbox failed underneath (its init or VMM is gone).
    #[error("the sandbox failed while {0}")]
    Failed(String, #[source] std::io::Error),
}

impl LiveError {
    /// A machine-readable kind for JSON errors and the bindings: `wrong_state`,
    /// `not_found`, `exists`, `not_a_directory`, `is_a_directory`, `not_empty`,
    /// `permission_denied`, `busy`, `invalid_path`, `invalid`, `limit`,
    /// `program_not_found`, `not_executable`, `exec`, `unsupported`, `failed`, `io`.
    pub fn kind(&self) -> &'static str {
        match self {
            LiveError::WrongState { .. } => "wrong_state",
            LiveError::File { errno, .. } => match *errno {
                libc::ENOENT => "not_found",
                libc::EEXIST => "exists",
                libc::ENOTDIR => "not_a_directory",
                libc::EISDIR => "is_a_directory",
                libc::ENOTEMPTY => "not_empty",
                libc::EACCES | libc::EPERM | libc::EROFS => "permission_denied",
                libc::EBUSY => "busy",
                libc::ENOSPC | libc::EDQUOT | libc::EFBIG => "limit",
                libc::ELOOP | libc::ENAMETOOLONG | libc::EINVAL | libc::EXDEV => "invalid_path",
                _ => "io",
            },
            LiveError::InvalidPath { .. } => "invalid_path",
            LiveError::Invalid(_) => "invalid",
            LiveError::Limit { .. } => "limit",
            LiveError::Exec(SpawnError::ProgramNotFound(_)) => "program_not_found",
            LiveError::Exec(SpawnError::NotExecutable { .. }) => "not_executable",
            LiveError::Exec(_) => "exec",
            LiveError::Unsupported(_) => "unsupported",
            LiveError::Failed(..) => "failed",
        }
    }

    /// A file error from an errno, with the reason in words.
    pub fn file(operation: &'static str, path: impl Into<String>, errno: i32) -> LiveError {
        LiveError::File {
            operation,
            path: path.into(),
            errno,
            reason: std::io::Error::from_raw_os_error(errno).to_string(),
        }
    }
}

/// A sandbox that stays: create once, exec many. Cheap to share (`Arc`); every method
/// may be called from any task, several at once. Dropping the last handle destroys it.
#[async_trait]
pub trait LiveSandbox: Send + Sync + fmt::Debug {
    /// The isolation in use.
    fn isolation(&self) -> Isolation;
    /// Which backend, and why (the same decision a run would get).
    fn decision(&self) -> &Decision;
    /// What protects the host, as a run's outcome reports it.
    fn enforcement(&self) -> &EnforcementReport;
    /// Running, paused or destroyed.
    fn state(&self) -> LiveState;
    /// Why it ended, once [`LiveState::Destroyed`].
    fn ended(&self) -> Option<EndReason>;

    /// Starts a command. Its [`Execution`] streams output, takes stdin, can be signalled
    /// and resized (with a tty), and its outcome has the same shape as a run's.
    async fn exec(&self, request: ExecRequest) -> Result<Box<dyn Execution>, LiveError>;

    /// Writes (creates or truncates) the file at `path` with `mode` (e.g. `0o644`),
    /// creating no parent directories.
    async fn write_file(&self, path: &str, data: FileData, mode: u32) -> Result<u64, LiveError>;
    /// Reads the file at `path` as a stream (symlinks followed inside the sandbox).
    async fn read_file(&self, path: &str) -> Result<ByteStream, LiveError>;
    /// The entries of the directory at `path` (without `.` and `..`), sorted by name.
    async fn list_dir(&self, path: &str) -> Result<Vec<FileStat>, LiveError>;
    /// Metadata of `path` (a final symlink is not followed).
    async fn stat(&self, path: &str) -> Result<FileStat, LiveError>;
    /// Makes the directory `path` (and its missing parents with `parents`).
    async fn mkdir(&self, path: &str, parents: bool) -> Result<(), LiveError>;
    /// Removes a file, a symlink or an empty directory (any directory with `recursive`).
    async fn remove(&self, path: &str, recursive: bool) -> Result<(), LiveError>;
    /// Renames `from` to `to`.
    async fn rename(&self, from: &str, to: &str) -> Result<(), LiveError>;

    /// Stops every process (container: the freezer; micro-VM: the vCPU). Paused time
    /// does not count against wall-time limits.
    async fn pause(&self) -> Result<(), LiveError>;
    /// Undoes [`LiveSandbox::pause`].
    async fn resume(&self) -> Result<(), LiveError>;
    /// What it uses now.
    async fn stats(&self) -> Result<LiveStats, LiveError>;
    /// Kills everything in it and frees what it holds. Idempotent.
    async fn destroy(&self) -> Result<(), LiveError>;

    /// Takes a snapshot: what it holds, frozen, to start any number of new live
    /// sandboxes from ([`LiveSnapshot::start`]). The sandbox goes on. Micro-VM: guest
    /// memory (shared copy-on-write with everything started from it) and every
    /// process, open file and buffer. Backends without snapshots say so.
    async fn snapshot(&self) -> Result<std::sync::Arc<dyn LiveSnapshot>, LiveError> {
        Err(LiveError::Unsupported(format!(
            "snapshots of a live {} sandbox are not supported",
            self.isolation()
        )))
    }

    /// Pauses the sandbox to disk: a snapshot whose guest memory is written to an
    /// unnamed file in the directory `dir` (nothing is left there: the file goes with
    /// the snapshot), then the sandbox is destroyed, its memory freed from the host.
    /// Starting the snapshot resumes it where it was (once or any number of times).
    /// Backends without it say so.
    async fn pause_to_disk(
        &self,
        dir: &std::path::Path,
    ) -> Result<std::sync::Arc<dyn LiveSnapshot>, LiveError> {
        let _ = dir;
        Err(LiveError::Unsupported(format!(
            "pausing a live {} sandbox to disk is not supported",
            self.isolation()
        )))
    }

    /// A snapshot and one start from it, in one call: a new live sandbox that goes on
    /// from this one's state and then diverges from it.
    async fn fork(&self) -> Result<std::sync::Arc<dyn LiveSandbox>, LiveError> {
        self.snapshot().await?.start().await
    }

    /// Starts `request` (its stdin a stream nothing is written to) and waits, at most
    /// `within`, until it first blocks reading its stdin with nothing to read — the
    /// state of a warm template — or ends. Micro-VM only; the condition is the
    /// backend's (see `backend-microvm`'s `live/park.rs`).
    async fn exec_parked(
        &self,
        _request: ExecRequest,
        _within: std::time::Duration,
    ) -> Result<Parked, LiveError> {
        Err(LiveError::Unsupported(format!(
            "a live {} sandbox cannot tell when a program waits on its stdin",
            self.isolation()
        )))
    }

    /// Gives the calling thread filesystem attributes of its own (`unshare(CLONE_FS)`)
    /// and moves it into the sandbox's mount namespace: its root and working directory
    /// become the sandbox's root, so `/proc/PID/root` and `/proc/PID/ns/mnt` of a
    /// process whose main thread calls this show the sandbox's filesystem (Podman's
    /// `cp` and `top` go through them), never the host's. The thread must then use
    /// no host path. Backends without one on the host (a micro-VM's) say so.
    fn enter_mount_namespace(&self) -> Result<(), LiveError> {
        Err(LiveError::Unsupported(format!(
            "a live {} sandbox has no mount namespace of the host to enter",
            self.isolation()
        )))
    }

    /// Moves the calling thread into the sandbox's network, IPC and UTS namespaces
    /// (its own, or those it joined), so that `/proc/PID/ns/{net,ipc,uts}` of a process
    /// whose main thread calls this names the sandbox's: an OCI engine joins a pod's
    /// namespaces through its sandbox container's pid. Nothing else of the thread
    /// changes (its mount and user namespaces, its credentials). Backends whose
    /// sandbox has no such namespaces on the host (a micro-VM's) say so.
    fn enter_namespaces(&self) -> Result<(), LiveError> {
        Err(LiveError::Unsupported(format!(
            "a live {} sandbox has no network, IPC or UTS namespace of the host to enter",
            self.isolation()
        )))
    }

    /// Changes limits of the whole sandbox while it lives: each one set in `limits`
    /// replaces the one in force (the caller has checked them against the floor; see
    /// `Live::update_limits`). Only what the backend can change on running processes
    /// may be set — container: `memory`, `pids`, `cpus`, through its cgroup; anything
    /// else is refused naming it, and nothing is changed. Backends that fix their
    /// limits at creation say so.
    async fn update_limits(&self, limits: &crate::limits::Limits) -> Result<(), LiveError> {
        let _ = limits;
        Err(LiveError::Unsupported(format!(
            "the limits of a live {} sandbox are fixed when it is created",
            self.isolation()
        )))
    }

    /// Its network (`egress`): the mode, every decision of the broker so far (final once
    /// destroyed) and where the host reaches its exposed ports. `None` without a broker.
    fn network(&self) -> Option<crate::network::NetworkReport> {
        None
    }
    /// The broker's decisions as they happen (network `egress`).
    fn network_events(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<crate::network::NetworkEvent>> {
        None
    }
}

/// A snapshot of a live sandbox ([`LiveSandbox::snapshot`]). Cheap to share; every
/// method may be called from any task, several at once.
#[async_trait]
pub trait LiveSnapshot: Send + Sync + fmt::Debug {
    /// The isolation of the sandbox it was taken of (and of those it starts).
    fn isolation(&self) -> Isolation;
    /// What it keeps, in words (micro-VM: memory and processes; container: the
    /// writable layer only).
    fn kept(&self) -> String;
    /// Bytes of memory it holds on the host (its memory file's pages).
    fn memory_bytes(&self) -> u64;
    /// Starts a new live sandbox from it.
    async fn start(&self) -> Result<std::sync::Arc<dyn LiveSandbox>, LiveError>;

    /// Starts a new live sandbox from it and takes over `exec`, parked on its stdin
    /// when the snapshot was taken ([`LiveSandbox::exec_parked`]): it reads `stdin`
    /// then end of file, under `limits` (unset ones: the sandbox's), and its
    /// execution streams and reports as any exec's.
    async fn start_parked(
        &self,
        _exec: ParkedExec,
        _stdin: Vec<u8>,
        _limits: ExecLimits,
    ) -> Result<(std::sync::Arc<dyn LiveSandbox>, Box<dyn Execution>), LiveError> {
        Err(LiveError::Unsupported(format!(
            "a {} snapshot cannot take over a parked exec",
            self.isolation()
        )))
    }

    /// [`LiveSnapshot::start_parked`] in two steps, for a pool of ready instances:
    /// starts a sandbox now whose parked `exec` keeps waiting on its stdin, under the
    /// CPU and output limits of `limits` (unset ones: the sandbox's); its
    /// [`PreStarted::feed`] later gives it a run's stdin and wall time.
    async fn prestart_parked(
        &self,
        _exec: ParkedExec,
        _limits: ExecLimits,
    ) -> Result<Box<dyn PreStarted>, LiveError> {
        Err(LiveError::Unsupported(format!(
            "a {} snapshot cannot pre-start a parked exec",
            self.isolation()
        )))
    }

    /// Writes it to a file at `path` that another process of this build on this host
    /// can load (micro-VM: see `backend_microvm::load_snapshot`); returns the bytes of
    /// guest memory written. Backends whose snapshots cannot be saved say so.
    async fn save(&self, path: &std::path::Path) -> Result<u64, LiveError> {
        let _ = path;
        Err(LiveError::Unsupported(format!(
            "snapshots of a live {} sandbox cannot be saved to a file",
            self.isolation()
        )))
    }

    /// [`LiveSnapshot::save`] into `file`, empty and open for writing (an unnamed
    /// file, say: nothing is left behind if the process dies while writing it).
    async fn save_to(&self, file: &std::fs::File) -> Result<u64, LiveError> {
        let _ = file;
        Err(LiveError::Unsupported(format!(
            "snapshots of a live {} sandbox cannot be saved to a file",
            self.isolation()
        )))
    }

    /// Waits until everything in the snapshot is known to be intact. A snapshot loaded
    /// from a file starts at once while its guest memory is still being checked
    /// against the file's checksum (`backend_microvm::load_snapshot`); this returns
    /// that check's outcome (the error names the file). Nothing to wait for otherwise.
    async fn verify(&self) -> Result<(), LiveError> {
        Ok(())
    }
}

/// A sandbox started from a snapshot whose parked exec still waits for its stdin
/// ([`LiveSnapshot::prestart_parked`]).
pub trait PreStarted: Send + fmt::Debug {
    /// The sandbox (running; its exec blocked reading an empty stdin).
    fn sandbox(&self) -> std::sync::Arc<dyn LiveSandbox>;
    /// Gives the exec `stdin`, then end of file; `wall` (unset: the sandbox's) counts
    /// from now. Its execution streams and reports as any exec's.
    fn feed(
        self: Box<Self>,
        stdin: Vec<u8>,
        wall: Option<std::time::Duration>,
    ) -> Box<dyn Execution>;
    /// Pages of the workload whose address translations were filled while it waited
    /// (micro-VM: the pages an earlier run from the same snapshot touched), so that
    /// the run does not fault on them; 0 when none were.
    fn warmed_pages(&self) -> u64 {
        0
    }
}

/// An exec waiting on its stdin ([`LiveSandbox::exec_parked`]): which one, for
/// [`LiveSnapshot::start_parked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkedExec {
    /// The exec's id in its sandbox.
    pub id: u32,
    /// Its leader's pid in the sandbox.
    pub pid: u32,
}

/// What [`LiveSandbox::exec_parked`] found.
pub enum Parked {
    /// It waits on its stdin; keep `execution` while the state is needed (dropping it
    /// kills the exec).
    Waiting {
        /// Which exec.
        exec: ParkedExec,
        /// Its execution (output so far, its end).
        execution: Box<dyn Execution>,
        /// Its stdin, open and empty (dropping it is the end of its input).
        stdin: Option<crate::StdinWriter>,
    },
    /// It ended before it waited on its stdin.
    Ended(Box<Outcome>),
}

impl fmt::Debug for Parked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parked::Waiting { exec, .. } => write!(f, "Waiting({exec:?})"),
            Parked::Ended(o) => write!(f, "Ended({:?})", o.termination),
        }
    }
}

/// Most bytes [`read_to_end`] takes into memory. A workload can make a file far larger
/// than its disk limit (a sparse one costs no blocks): read whole, it would take the
/// caller's memory, and a failed allocation aborts the caller's process.
pub const READ_TO_END_MAX: usize = 1 << 30;

/// Reads a whole [`ByteStream`] (for callers that want bytes): at most
/// [`READ_TO_END_MAX`] bytes, `EFBIG` past them (read such a file as a stream), and
/// `ENOMEM` (an error, not an abort) when the memory for it cannot be had.
pub async fn read_to_end(mut s: ByteStream) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut v = Vec::new();
    let mut piece = vec![0u8; 64 << 10];
    loop {
        let n = s.read(&mut piece).await?;
        if n == 0 {
            return Ok(v);
        }
        if v.len() + n > READ_TO_END_MAX {
            return Err(std::io::Error::from_raw_os_error(libc::EFBIG));
        }
        v.try_reserve(n)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
        v.extend_from_slice(&piece[..n]);
    }
}

/// The error a backend gives for [`crate::Backend::create`] when it has no live mode.
pub fn no_live_mode(isolation: Isolation) -> SpawnError {
    SpawnError::Unsupported(format!(
        "the {isolation} backend cannot keep a sandbox alive yet"
    ))
}

/// What a task blocked in system call `nr` (first two arguments `a0`, `a1`) may be
/// waiting to read: the one test both backends make to see whether a template's
/// program is parked on its stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockedRead {
    /// Reading descriptor `fd`: the first argument of `read`, `readv`, `splice` and
    /// `copy_file_range`, the second of `sendfile(out, in, ...)` (busybox `cat` copies
    /// stdin with it).
    Fd(u64),
    /// Waiting on many descriptors at once: `poll`, `select`, `epoll_wait` and their
    /// variants.
    Poll,
    /// Anything else.
    Other,
}

/// See [`BlockedRead`].
pub fn blocked_read(nr: u64, a0: u64, a1: u64) -> BlockedRead {
    const READS: [libc::c_long; 4] = [
        libc::SYS_read,
        libc::SYS_readv,
        libc::SYS_splice,
        libc::SYS_copy_file_range,
    ];
    const POLLS: [libc::c_long; 7] = [
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_select,
        libc::SYS_pselect6,
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_pwait2,
    ];
    let Ok(nr) = libc::c_long::try_from(nr) else {
        return BlockedRead::Other;
    };
    if READS.contains(&nr) {
        BlockedRead::Fd(a0)
    } else if nr == libc::SYS_sendfile {
        BlockedRead::Fd(a1)
    } else if POLLS.contains(&nr) {
        BlockedRead::Poll
    } else {
        BlockedRead::Other
    }
}
