//! The workload's standard streams: stdin from the plan, stdout/stderr streamed to the
//! caller while the run goes on and captured (up to the output limit) for the outcome.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use sandbox_core::{OutputChunk, StreamKind};
use tokio::sync::mpsc;

/// The output limit was passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutputLimitReached;

/// stdout and stderr.
#[derive(Debug)]
pub(crate) struct Output {
    tx: Option<mpsc::UnboundedSender<OutputChunk>>,
    /// Captured stdout.
    pub(crate) stdout: Vec<u8>,
    /// Captured stderr.
    pub(crate) stderr: Vec<u8>,
    limit: Option<u64>,
    total: u64,
}

impl Output {
    /// Output going to `tx`, at most `limit` bytes in all.
    pub(crate) fn new(tx: mpsc::UnboundedSender<OutputChunk>, limit: Option<u64>) -> Output {
        Output {
            tx: Some(tx),
            stdout: Vec::new(),
            stderr: Vec::new(),
            limit,
            total: 0,
        }
    }

    /// Writes `data`; past the limit, what fits is kept and the run must end.
    pub(crate) fn write(
        &mut self,
        stream: StreamKind,
        data: &[u8],
    ) -> Result<(), OutputLimitReached> {
        let room = self
            .limit
            .map_or(u64::MAX, |l| l.saturating_sub(self.total));
        let take = (data.len() as u64).min(room) as usize;
        if take > 0 {
            let kept = &data[..take];
            match stream {
                StreamKind::Stdout => self.stdout.extend_from_slice(kept),
                StreamKind::Stderr => self.stderr.extend_from_slice(kept),
            }
            if let Some(tx) = &self.tx {
                if tx
                    .send(OutputChunk {
                        stream,
                        data: kept.to_vec(),
                    })
                    .is_err()
                {
                    self.tx = None; // nobody listens; the outcome still has it
                }
            }
        }
        self.total += take as u64;
        if take < data.len() {
            return Err(OutputLimitReached);
        }
        Ok(())
    }

    /// Whether `len` more bytes stay within the output limit (a write of them then
    /// only appends and sends: it ends nothing).
    pub(crate) fn fits(&self, len: u64) -> bool {
        self.limit
            .is_none_or(|l| self.total.saturating_add(len) <= l)
    }

    /// Closes the live stream (the run ended).
    pub(crate) fn close(&mut self) {
        self.tx = None;
    }
}

/// Bytes a streamed stdin holds for the workload before its writer waits: a pipe's
/// (Linux's default 64 KiB), so a writer faster than the workload reads is held back
/// instead of filling the host's memory.
const STDIN_QUEUE_MAX: usize = 64 * 1024;

/// Bytes written to a streamed stdin, waiting for the workload.
#[derive(Debug, Default)]
pub(crate) struct StdinQueue {
    inner: Mutex<(VecDeque<u8>, bool)>,
    /// Woken as the workload takes bytes, and when its reader goes.
    room: tokio::sync::Notify,
    /// The workload's end is gone (its exec or run ended): the writer hears so.
    reader_gone: std::sync::atomic::AtomicBool,
}

impl StdinQueue {
    /// Moves what the host writes (`rx`) into the queue, as the queue has room, then
    /// marks the end of input; `arrived` tells the vCPU thread after each piece.
    /// Once the workload's end is gone, it returns: dropping `rx` makes the writer's
    /// next write fail (BrokenPipe) instead of waiting for room that never comes.
    pub(crate) async fn pump(&self, mut rx: sandbox_core::StdinReceiver, arrived: impl Fn()) {
        while let Some(chunk) = rx.recv().await {
            loop {
                // Made before the checks: a take or the reader's end between them
                // still wakes it.
                let room = self.room.notified();
                if self.gone() {
                    return;
                }
                if crate::sync::locked(&self.inner).0.len() < STDIN_QUEUE_MAX {
                    break;
                }
                room.await;
            }
            self.push(&chunk);
            arrived();
        }
        self.close();
        arrived();
    }

    fn gone(&self) -> bool {
        self.reader_gone.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The workload's end is gone: the pump stops, the writer's writes fail.
    fn end_reader(&self) {
        self.reader_gone
            .store(true, std::sync::atomic::Ordering::Release);
        self.room.notify_waiters();
    }

    /// Appends data.
    pub(crate) fn push(&self, data: &[u8]) {
        let mut g = crate::sync::locked(&self.inner);
        g.0.extend(data);
    }

    /// Marks the end of input.
    pub(crate) fn close(&self) {
        crate::sync::locked(&self.inner).1 = true;
    }

    /// Takes up to `max` bytes: `Some(bytes)` (empty at end of input), or `None` when
    /// nothing is there yet.
    pub(crate) fn take(&self, max: usize) -> Option<Vec<u8>> {
        let mut g = crate::sync::locked(&self.inner);
        if g.0.is_empty() {
            return if g.1 { Some(Vec::new()) } else { None };
        }
        let n = max.min(g.0.len());
        let taken = g.0.drain(..n).collect();
        drop(g);
        self.room.notify_waiters();
        Some(taken)
    }

    /// True when a read would not block.
    pub(crate) fn ready(&self) -> bool {
        let g = crate::sync::locked(&self.inner);
        !g.0.is_empty() || g.1
    }
}

impl Drop for Input {
    /// The workload's end of a stream goes with its exec (or run): the host's writer is
    /// told (its next write fails), as a pipe's writer is once no reader is left.
    fn drop(&mut self) {
        if let Input::Stream(q) = self {
            q.end_reader();
        }
    }
}

/// The workload's stdin.
#[derive(Debug)]
pub(crate) enum Input {
    /// End of file at once.
    Null,
    /// Fixed bytes and the read position.
    Bytes(Vec<u8>, usize),
    /// Written while the run goes on.
    Stream(Arc<StdinQueue>),
}
