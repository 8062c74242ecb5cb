//! Unpacking one layer into an empty directory of the cache, hostile input assumed.
//!
//! The blob goes through `source → hash → (gzip) → count → hash → tar` (see
//! [`crate::stream`]): the uncompressed stream is bounded by the layer's (or what is
//! left of the image's) byte limit, whatever the compression ratio, so a zip bomb or a
//! stream that never ends stops at the limit; the tar reader's memory is bounded by the
//! header window; its errors are reported in our words, never quoting the stream.
//! [`entry`] puts each entry on disk.
//! Whiteouts become overlayfs whiteouts (0/0 character devices, which need no
//! privilege) and opaque directories `user.overlay.opaque=y`.

mod entry;

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use sha2::{Digest, Sha256};

use crate::error::{rio, ImageError};
use crate::limits::{LayerBudget, UnpackLimits};
use crate::stream::Tap;
use entry::{open_dir, Ctx};

/// Options of an unpack.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UnpackOptions {
    pub(crate) limits: UnpackLimits,
    /// Clear setuid/setgid bits instead of refusing the layer.
    pub(crate) strip_setuid: bool,
    /// Give every entry this owner (root importing for sandboxes that run as nobody).
    pub(crate) owner: Option<(u32, u32)>,
}

/// A reader that hashes what goes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Reads to the end (trailing padding counts in the digest) and returns the digest.
    fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self.inner, &mut HashSink(&mut self.hasher))?;
        Ok(hex::encode(self.hasher.finalize()))
    }
}

struct HashSink<'a>(&'a mut Sha256);

impl io::Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Digests and sizes of an unpacked layer.
#[derive(Debug)]
pub(crate) struct Unpacked {
    /// sha256 of the blob as read (compressed or not).
    pub(crate) blob_digest: String,
    /// sha256 of the uncompressed tar (the diff_id).
    pub(crate) diff_id: String,
    /// Bytes of file data written.
    pub(crate) bytes: u64,
    /// Bytes of the uncompressed stream.
    pub(crate) stream_bytes: u64,
    /// Entries of the layer.
    pub(crate) entries: u64,
}

/// Unpacks a layer blob (gzip or uncompressed tar) into the empty directory `dest`.
pub(crate) fn unpack(
    blob: impl Read,
    dest: &Path,
    layer: &str,
    opts: UnpackOptions,
    budget: LayerBudget,
) -> Result<Unpacked, ImageError> {
    let root = rfs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(rio(format!("opening {}", dest.display())))?;
    if let Some((u, g)) = opts.owner {
        rfs::chown(
            dest,
            Some(rfs::Uid::from_raw(u)),
            Some(rfs::Gid::from_raw(g)),
        )
        .map_err(rio(format!("setting the owner of {}", dest.display())))?;
    }
    let tap = Tap::default();
    let mut ctx = Ctx {
        layer,
        root,
        opts,
        budget,
        tap: tap.clone(),
        total: 0,
        entries: 0,
        current: None,
        dir_modes: Vec::new(),
    };
    let mut outer = Hashing::new(BufReader::with_capacity(256 << 10, tap.source(blob)));
    let magic = {
        let mut peek = [0u8; 4];
        let buf = outer.inner.fill_buf().map_err(|e| ctx.stream_error(e))?;
        let n = buf.len().min(4);
        peek[..n].copy_from_slice(&buf[..n]);
        peek
    };
    let unsupported = |compression: &str| ImageError::Unsupported {
        layer: layer.to_string(),
        compression: compression.into(),
    };
    let decompressed: Box<dyn Read + '_> = match magic {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(&mut outer)),
        [0x28, 0xb5, 0x2f, 0xfd] => return Err(unsupported("zstd")),
        [b'B', b'Z', b'h', _] => return Err(unsupported("bzip2")),
        [0xfd, b'7', b'z', b'X'] => return Err(unsupported("xz")),
        _ => Box::new(&mut outer),
    };
    let mut inner = Hashing::new(tap.decoded(decompressed, budget.bytes));
    {
        let mut archive = tar::Archive::new(tap.window(&mut inner));
        let mut entries = archive.entries().map_err(|e| ctx.stream_error(e))?;
        loop {
            tap.arm();
            let next = entries.next();
            tap.disarm();
            let mut e = match next {
                None => break,
                Some(Ok(e)) => e,
                Some(Err(err)) => return Err(ctx.stream_error(err)),
            };
            ctx.entries += 1;
            let cap = budget.entries;
            if ctx.entries > cap.cap {
                return Err(ctx.limit(cap.kind, cap.limit, None));
            }
            entry::entry(&mut ctx, &mut e)?;
            // Data the entry did not use (a directory or link with a size) is read here,
            // outside the header window, still under the byte limit.
            io::copy(&mut e, &mut io::sink()).map_err(|err| ctx.stream_error(err))?;
        }
    }
    set_dir_modes(&ctx)?;
    let diff_id = inner.finish().map_err(|e| ctx.stream_error(e))?;
    let stream_bytes = tap.decoded_bytes();
    let blob_digest = outer.finish().map_err(|e| ctx.stream_error(e))?;
    Ok(Unpacked {
        blob_digest,
        diff_id,
        bytes: ctx.total,
        stream_bytes,
        entries: ctx.entries,
    })
}

/// Directory modes last, deepest first, so read-only directories could be filled.
fn set_dir_modes(ctx: &Ctx<'_>) -> Result<(), ImageError> {
    let mut dirs: Vec<&(Vec<Vec<u8>>, u32)> = ctx.dir_modes.iter().collect();
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    for (path, mode) in dirs {
        let slices: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
        let Some((name, parents)) = slices.split_last() else {
            continue;
        };
        // Still a directory reached without links (chmodat would follow a final link).
        open_dir(ctx, "a directory", &slices)?;
        let parent = open_dir(ctx, "a directory", parents)?;
        rfs::chmodat(
            &parent,
            std::ffi::OsStr::from_bytes(name),
            Mode::from_raw_mode(*mode | 0o700),
            AtFlags::empty(),
        )
        .map_err(rio("setting a directory's mode"))?;
    }
    Ok(())
}

use std::os::unix::ffi::OsStrExt as _;
