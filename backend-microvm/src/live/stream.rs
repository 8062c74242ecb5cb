//! A byte stream fed by chunks from a task: how a file read leaves the sandbox with
//! bounded memory (a few chunks in flight, however large the file).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

/// Chunks (or an error) in order; the stream ends when the sender goes.
#[derive(Debug)]
pub(super) struct ChunkReader {
    rx: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    at: usize,
}

impl ChunkReader {
    pub(super) fn new(rx: mpsc::Receiver<std::io::Result<Vec<u8>>>) -> ChunkReader {
        ChunkReader {
            rx,
            cur: Vec::new(),
            at: 0,
        }
    }
}

impl AsyncRead for ChunkReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if self.at < self.cur.len() {
                let n = buf.remaining().min(self.cur.len() - self.at);
                let at = self.at;
                buf.put_slice(&self.cur[at..at + n]);
                self.at += n;
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    self.cur = chunk;
                    self.at = 0;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
