//! The readers a tar stream goes through, and what they saw when it failed.
//!
//! A layer is read as `source → (gzip) → tar`; a tarball source as `file → tar`. The tar
//! crate's own errors quote the header they choke on (the first 100 bytes of a file that
//! is not a tar), so an error coming out of it is never shown: the readers below record
//! where a failure came from (the source's I/O, the decompressor, a limit, an oversized
//! extension header), and [`Tap::classify`] turns that into our own words.
//!
//! They also bound what the tar crate holds in memory: it reads GNU long names and PAX
//! records whole, whatever size their header claims, so the bytes it reads between two
//! entries (headers, padding, extension records) are capped at [`HEADER_WINDOW`].

use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

use crate::limits::{Cap, LimitKind};

/// Most bytes the tar reader may consume between two entries: headers, padding and the
/// extension records (long names, PAX) it keeps in memory.
pub(crate) const HEADER_WINDOW: u64 = 1 << 20;

/// Where a read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The source's own read (an OS error).
    Source,
    /// The decompressor: not a valid compressed stream.
    Decode,
    /// The uncompressed stream passed this limit.
    Limit(LimitKind, u64),
    /// Extension headers larger than [`HEADER_WINDOW`].
    HeaderWindow,
}

#[derive(Debug, Default)]
struct State {
    failure: Cell<Option<Failure>>,
    /// Bytes out of the decompressor (the uncompressed stream).
    decoded: Cell<u64>,
    /// Bytes read by the tar reader since the window was armed, when armed.
    window: Cell<Option<u64>>,
}

/// Shared view of a reader stack's state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tap(Rc<State>);

fn fail(t: &Tap, f: Failure, msg: &'static str) -> io::Error {
    if t.0.failure.get().is_none() {
        t.0.failure.set(Some(f));
    }
    io::Error::other(msg)
}

impl Tap {
    /// Wraps the source (the file or blob read).
    pub(crate) fn source<R>(&self, inner: R) -> SourceReader<R> {
        SourceReader {
            inner,
            tap: self.clone(),
        }
    }

    /// Wraps the decompressor's output, counting it against `limit`.
    pub(crate) fn decoded<R>(&self, inner: R, limit: Cap) -> DecodedReader<R> {
        DecodedReader {
            inner,
            tap: self.clone(),
            limit,
        }
    }

    /// Wraps what the tar reader reads, for the header window.
    pub(crate) fn window<R>(&self, inner: R) -> WindowReader<R> {
        WindowReader {
            inner,
            tap: self.clone(),
        }
    }

    /// Starts counting the tar reader's reads (before asking it for the next entry).
    pub(crate) fn arm(&self) {
        self.0.window.set(Some(0));
    }

    /// Stops counting (while an entry's data is read by us).
    pub(crate) fn disarm(&self) {
        self.0.window.set(None);
    }

    /// Bytes of the uncompressed stream so far.
    pub(crate) fn decoded_bytes(&self) -> u64 {
        self.0.decoded.get()
    }

    /// What failed, if one of the readers saw it.
    pub(crate) fn failure(&self) -> Option<Failure> {
        self.0.failure.get()
    }
}

/// The source's reads: failures are the OS's.
#[derive(Debug)]
pub(crate) struct SourceReader<R> {
    inner: R,
    tap: Tap,
}

impl<R: Read> Read for SourceReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| {
            if self.tap.0.failure.get().is_none() {
                self.tap.0.failure.set(Some(Failure::Source));
            }
        })
    }
}

impl<R: Seek> Seek for SourceReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// The decompressor's output: counted against the layer's (or image's) byte limit.
#[derive(Debug)]
pub(crate) struct DecodedReader<R> {
    inner: R,
    tap: Tap,
    limit: Cap,
}

impl<R: Read> Read for DecodedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                if self.tap.0.failure.get().is_none() {
                    self.tap.0.failure.set(Some(Failure::Decode));
                }
                return Err(e);
            }
        };
        let total = self.tap.0.decoded.get() + n as u64;
        self.tap.0.decoded.set(total);
        if total > self.limit.cap {
            return Err(fail(
                &self.tap,
                Failure::Limit(self.limit.kind, self.limit.limit),
                "limit",
            ));
        }
        Ok(n)
    }
}

/// The tar reader's reads, counted while the window is armed.
#[derive(Debug)]
pub(crate) struct WindowReader<R> {
    inner: R,
    tap: Tap,
}

impl<R: Read> Read for WindowReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(used) = self.tap.0.window.get() {
            let used = used + n as u64;
            self.tap.0.window.set(Some(used));
            if used > HEADER_WINDOW + 4096 {
                return Err(fail(&self.tap, Failure::HeaderWindow, "header window"));
            }
        }
        Ok(n)
    }
}

impl<R: Seek> Seek for WindowReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// A failed read, in our words.
#[derive(Debug)]
pub(crate) enum Classified {
    /// An OS error reading the source (safe to show: an errno).
    Source(io::Error),
    /// The decompressor refused the stream.
    Decode,
    /// A limit was passed.
    Limit(LimitKind, u64),
    /// Extension headers too large.
    HeaderWindow,
    /// The tar reader refused the stream (its message is not shown).
    Format,
}

impl Tap {
    /// What an error out of the stack means. The error itself is dropped unless it is
    /// the source's OS error.
    pub(crate) fn classify(&self, e: io::Error) -> Classified {
        match self.failure() {
            Some(Failure::Source) => Classified::Source(crate::error::scrub(e)),
            Some(Failure::Decode) => Classified::Decode,
            Some(Failure::Limit(k, max)) => Classified::Limit(k, max),
            Some(Failure::HeaderWindow) => Classified::HeaderWindow,
            None => Classified::Format,
        }
    }
}

/// A reader over `len` bytes of a file from `offset`, by positioned reads on one
/// descriptor (the file is never reopened by name).
#[derive(Debug)]
pub(crate) struct Range {
    file: std::sync::Arc<std::fs::File>,
    pos: u64,
    end: u64,
}

impl Range {
    pub(crate) fn new(file: std::sync::Arc<std::fs::File>, offset: u64, len: u64) -> Range {
        Range {
            file,
            pos: offset,
            end: offset.saturating_add(len),
        }
    }
}

impl Read for Range {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
