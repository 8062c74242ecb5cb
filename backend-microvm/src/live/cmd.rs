//! The command queue from the host's async side to a live sandbox's vCPU thread.
//!
//! The host pushes a [`Cmd`] and kicks the thread ([`Control::input_arrived`]: a
//! signal out of `KVM_RUN`, a wake-up of its wait); the thread takes the queue at its
//! next turn (every VM exit and every scheduler wait look at one atomic flag) and
//! answers on the oneshot channel each command carries. Nothing of the guest is
//! touched from any other thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use sandbox_core::{FileStat, LiveError, Termination, TtySize};
use tokio::sync::oneshot;

use crate::kick::Control;
use crate::linux::task::ExitStatus;
use crate::stdio::{Input, Output};

/// How an exec's leader ended, as the vCPU thread reports it.
#[derive(Debug)]
pub(crate) struct ExecEnd {
    /// Exit code or signal.
    pub(crate) status: ExitStatus,
    /// The limit (or kill) that ended it, when one did.
    pub(crate) why: Option<Termination>,
    /// CPU time of the leader and the children it waited for.
    pub(crate) cpu: Duration,
    /// Captured stdout and stderr.
    pub(crate) stdout: Vec<u8>,
    /// Captured stderr.
    pub(crate) stderr: Vec<u8>,
    /// The sandbox's peak guest memory so far.
    pub(crate) peak: u64,
}

/// A command to start.
#[derive(Debug)]
pub(crate) struct ExecCmd {
    /// The exec's id (its stdio channel).
    pub(crate) id: u32,
    /// Paths to try, in order (an absolute path, or `PATH` joined with the name).
    pub(crate) candidates: Vec<String>,
    /// argv.
    pub(crate) argv: Vec<String>,
    /// `KEY=VALUE` entries.
    pub(crate) env: Vec<Vec<u8>>,
    /// Working directory.
    pub(crate) cwd: String,
    /// Its stdin.
    pub(crate) input: Input,
    /// Its stdout/stderr.
    pub(crate) output: Output,
    /// CPU time limit of its processes.
    pub(crate) cpu: Option<Duration>,
    /// On a terminal of this size: its stdin, stdout and stderr are the terminal.
    pub(crate) tty: Option<TtySize>,
    /// Started (its pid), or why not.
    pub(crate) started: oneshot::Sender<Result<u32, LiveError>>,
    /// Its end.
    pub(crate) done: oneshot::Sender<ExecEnd>,
}

/// A file operation, done by the vCPU thread through the sandbox's own VFS.
#[derive(Debug)]
pub(crate) enum FileOp {
    /// Creates or truncates for writing; answers a handle.
    OpenWrite { path: String, mode: u32 },
    /// Appends a chunk to a handle from `OpenWrite`; answers the size so far.
    Write { handle: u64, data: Vec<u8> },
    /// Opens for reading; answers a handle.
    OpenRead { path: String },
    /// Reads up to `max` bytes of a handle; an empty chunk is the end.
    Read { handle: u64, max: usize },
    /// Forgets a handle.
    Close { handle: u64 },
    /// Entries of a directory.
    List { path: String },
    /// Metadata (a final symlink not followed).
    Stat { path: String },
    /// Makes a directory.
    Mkdir { path: String, parents: bool },
    /// Removes a file, a link or a directory.
    Remove { path: String, recursive: bool },
    /// Renames.
    Rename { from: String, to: String },
}

/// What a file operation answers.
#[derive(Debug)]
pub(crate) enum FileOk {
    /// Nothing.
    Done,
    /// A handle.
    Handle(u64),
    /// A count of bytes.
    Size(u64),
    /// Bytes read.
    Data(Vec<u8>),
    /// Entries.
    List(Vec<FileStat>),
    /// One entry.
    Stat(FileStat),
}

/// What the vCPU thread knows of the sandbox's use.
#[derive(Debug, Clone, Default)]
pub(crate) struct VmStats {
    pub(crate) memory: u64,
    pub(crate) peak: u64,
    pub(crate) cpu: Duration,
    pub(crate) tasks: u64,
    pub(crate) disk: u64,
}

/// A command for the vCPU thread.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Start a process.
    Exec(Box<ExecCmd>),
    /// Send `sig` to an exec's process group; `why` records a limit or kill.
    Signal {
        id: u32,
        sig: i32,
        why: Option<Termination>,
    },
    /// Check the CPU time of the execs that have a limit.
    CheckCpu,
    /// Input arrived for an exec on a terminal: its line discipline takes it.
    TtyInput(u32),
    /// An exec's terminal has a new size.
    Resize { id: u32, size: TtySize },
    /// A file operation.
    File(FileOp, oneshot::Sender<Result<FileOk, LiveError>>),
    /// Stop running the guest (answered once it stopped).
    Pause(oneshot::Sender<()>),
    /// Run it again.
    Resume,
    /// Use figures.
    Stats(oneshot::Sender<VmStats>),
    /// Take a snapshot (`snapshot.rs`).
    Snapshot(super::snapshot::SnapReq),
    /// Whether an exec waits on its stdin (`park.rs`).
    Park {
        id: u32,
        reply: oneshot::Sender<super::park::ParkState>,
    },
}

/// The queue.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    queue: Mutex<VecDeque<Cmd>>,
    pending: AtomicBool,
    /// The vCPU thread ended ([`Hub::close`]).
    closed: AtomicBool,
}

impl Hub {
    /// Queues `cmd` and kicks the vCPU thread. Once the thread ended, `cmd` is dropped
    /// at once: whoever waits for its answer learns the sandbox is gone.
    pub(crate) fn send(&self, ctl: &Control, cmd: Cmd) {
        {
            let mut q = crate::sync::locked(&self.queue);
            if self.closed.load(Ordering::SeqCst) {
                drop(q);
                drop(cmd);
                return;
            }
            q.push_back(cmd);
        }
        self.pending.store(true, Ordering::SeqCst);
        ctl.input_arrived();
    }

    /// The vCPU thread ended: the commands still queued (sent after its last look)
    /// are dropped, their answers' senders with them, and so is every later one. A
    /// caller waiting for an answer (an exec, a file operation, a snapshot) gets an
    /// error instead of waiting forever.
    pub(crate) fn close(&self) {
        let left = {
            let mut q = crate::sync::locked(&self.queue);
            self.closed.store(true, Ordering::SeqCst);
            std::mem::take(&mut *q)
        };
        drop(left);
    }

    /// True when commands wait (one atomic load: asked at every VM exit).
    pub(crate) fn pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }

    /// Takes every queued command.
    pub(crate) fn take(&self) -> VecDeque<Cmd> {
        let mut q = crate::sync::locked(&self.queue);
        self.pending.store(false, Ordering::SeqCst);
        std::mem::take(&mut *q)
    }
}
