//! Unpacking one layer into an empty directory of the cache, hostile input assumed.
//!
//! Nothing is ever resolved through a symlink: every directory on an entry's path is
//! opened with `O_NOFOLLOW` from the layer's root fd, so an entry cannot write through a
//! link it (or an earlier entry) planted. Paths with `..` or a leading `/`, hard links
//! that leave the layer, device nodes, setuid/setgid bits (unless stripping was asked
//! for), and files or layers beyond the size limits are refused with the entry's name.
//! Whiteouts become overlayfs whiteouts (0/0 character devices, which need no
//! privilege) and opaque directories `user.overlay.opaque=y`.

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};
use sha2::{Digest, Sha256};

use crate::error::{io, rio, ImageError};

/// Bounds on what one layer may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Largest single file.
    pub max_file: u64,
    /// All files of the layer together.
    pub max_total: u64,
    /// Number of entries.
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_file: 4 << 30,
            max_total: 16 << 30,
            max_entries: 1_000_000,
        }
    }
}

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
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Reads to the end (trailing padding counts in the digest) and returns the digest.
    fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(
            &mut self.inner,
            &mut HashSink(&mut self.hasher, &mut self.bytes),
        )?;
        Ok((hex::encode(self.hasher.finalize()), self.bytes))
    }
}

struct HashSink<'a>(&'a mut Sha256, &'a mut u64);

impl io::Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        *self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Digests of an unpacked layer.
#[derive(Debug)]
pub(crate) struct Unpacked {
    /// sha256 of the blob as read (compressed or not).
    pub(crate) blob_digest: String,
    /// sha256 of the uncompressed tar (the diff_id).
    pub(crate) diff_id: String,
    /// Bytes of file data written.
    pub(crate) bytes: u64,
}

struct Ctx<'a> {
    layer: &'a str,
    root: OwnedFd,
    opts: UnpackOptions,
    total: u64,
    /// Directories whose final mode is set once everything is written into them.
    dir_modes: Vec<(Vec<Vec<u8>>, u32)>,
}

impl Ctx<'_> {
    fn refuse(&self, entry: &str, reason: impl Into<String>) -> ImageError {
        ImageError::Refused {
            layer: self.layer.to_string(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }
}

/// Splits an entry path into clean components; refuses `..` and absolute paths.
fn components<'p>(ctx: &Ctx<'_>, shown: &str, raw: &'p [u8]) -> Result<Vec<&'p [u8]>, ImageError> {
    if raw.first() == Some(&b'/') {
        return Err(ctx.refuse(
            shown,
            "absolute path: layer paths are relative to the image root",
        ));
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(ctx.refuse(
                    shown,
                    "path traversal (`..`): the entry would land outside the layer",
                ))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Opens the directory `comps` below the root, creating missing ones, never following a
/// symlink.
fn open_dir(ctx: &Ctx<'_>, shown: &str, comps: &[&[u8]]) -> Result<OwnedFd, ImageError> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut cur =
        rfs::openat(&ctx.root, ".", flags, Mode::empty()).map_err(rio("opening the layer root"))?;
    for c in comps {
        let name = std::ffi::OsStr::from_encoded_bytes_checked(c);
        match rfs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
            // Directories a layer implies without listing them get the same owner as
            // the rest: an unmapped owner would make overlayfs refuse to copy them up.
            Ok(()) => chown(ctx, &cur, c)?,
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(rio(format!("creating a directory for {shown}"))(e)),
        }
        cur = match rfs::openat(&cur, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
                return Err(ctx.refuse(
                    shown,
                    format!("goes through `{}`, which is a symlink or a file: layers may not write through links", String::from_utf8_lossy(c)),
                ))
            }
            Err(e) => return Err(rio(format!("opening a directory for {shown}"))(e)),
        };
    }
    Ok(cur)
}

trait OsStrExt2 {
    fn from_encoded_bytes_checked(b: &[u8]) -> &std::ffi::OsStr;
}

impl OsStrExt2 for std::ffi::OsStr {
    fn from_encoded_bytes_checked(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(b)
}

/// Removes whatever is at `name` (a later entry replaces an earlier one), but not a
/// directory, which a later directory entry keeps.
fn clear(dir: &OwnedFd, name: &[u8]) {
    let _ = rfs::unlinkat(dir, os(name), AtFlags::empty());
}

fn chown(ctx: &Ctx<'_>, dir: &OwnedFd, name: &[u8]) -> Result<(), ImageError> {
    if let Some((u, g)) = ctx.opts.owner {
        rfs::chownat(
            dir,
            os(name),
            Some(rfs::Uid::from_raw(u)),
            Some(rfs::Gid::from_raw(g)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(rio("setting the owner of an entry"))?;
    }
    Ok(())
}

fn entry<R: Read>(ctx: &mut Ctx<'_>, e: &mut tar::Entry<'_, R>) -> Result<(), ImageError> {
    let raw = e.path_bytes().into_owned();
    let shown = String::from_utf8_lossy(&raw).into_owned();
    let comps = components(ctx, &shown, &raw)?;
    let Some((name, parents)) = comps.split_last() else {
        return Ok(());
    };
    let (name, parents) = (*name, parents.to_vec());
    let dir = open_dir(ctx, &shown, &parents)?;

    // Whiteouts.
    if name == b".wh..wh..opq" {
        // xattrs need a real descriptor (the walk holds O_PATH ones).
        let real = rfs::openat(
            &dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(rio(format!("opening the directory of {shown}")))?;
        rfs::fsetxattr(&real, "user.overlay.opaque", b"y", rfs::XattrFlags::empty()).map_err(
            rio(format!(
                "marking {shown} opaque (the cache's filesystem needs user xattrs)"
            )),
        )?;
        return Ok(());
    }
    if let Some(hidden) = name.strip_prefix(b".wh.") {
        clear(&dir, hidden);
        rfs::mknodat(
            &dir,
            os(hidden),
            rfs::FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(0, 0),
        )
        .map_err(rio(format!("making the whiteout {shown}")))?;
        return Ok(());
    }

    let header = e.header();
    let mode = header.mode().unwrap_or(0o644);
    let kind = header.entry_type();
    let special = mode & 0o6000;
    if special != 0
        && !ctx.opts.strip_setuid
        && (kind.is_file() || kind == tar::EntryType::Continuous)
    {
        return Err(ctx.refuse(
            &shown,
            "setuid/setgid bit: refused (import with --strip-setuid to clear such bits; no_new_privs makes them inert anyway)",
        ));
    }
    let perm = Mode::from_raw_mode(mode & 0o1777);
    match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            let size = e.size();
            if size > ctx.opts.limits.max_file {
                return Err(ctx.refuse(
                    &shown,
                    format!(
                        "{size} bytes; the largest file a layer may hold is {}",
                        ctx.opts.limits.max_file
                    ),
                ));
            }
            ctx.total += size;
            if ctx.total > ctx.opts.limits.max_total {
                return Err(ctx.refuse(
                    &shown,
                    format!(
                        "the layer unpacks to more than {} bytes",
                        ctx.opts.limits.max_total
                    ),
                ));
            }
            clear(&dir, name);
            let flags =
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rfs::openat(&dir, os(name), flags, Mode::from_raw_mode(0o600))
                .map_err(rio(format!("creating {shown}")))?;
            let mut file = std::fs::File::from(fd);
            let copied =
                io::copy(&mut e.take(size), &mut file).map_err(io(format!("writing {shown}")))?;
            if copied != size {
                return Err(ctx.refuse(
                    &shown,
                    "the layer ends inside this file (truncated tarball)",
                ));
            }
            rfs::fchmod(file.as_fd(), perm).map_err(rio(format!("setting the mode of {shown}")))?;
        }
        tar::EntryType::Directory => {
            match rfs::mkdirat(&dir, os(name), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(rio(format!("creating {shown}"))(e)),
            }
            // It must really be a directory (not a symlink left by an earlier entry).
            let mut full: Vec<Vec<u8>> = parents.iter().map(|c| c.to_vec()).collect();
            full.push(name.to_vec());
            let as_slices: Vec<&[u8]> = full.iter().map(Vec::as_slice).collect();
            open_dir(ctx, &shown, &as_slices)?;
            ctx.dir_modes.push((full, mode & 0o1777));
        }
        tar::EntryType::Symlink => {
            let target = e
                .link_name_bytes()
                .ok_or_else(|| ctx.refuse(&shown, "a symlink without a target"))?
                .into_owned();
            clear(&dir, name);
            rfs::symlinkat(os(&target), &dir, os(name))
                .map_err(rio(format!("creating the symlink {shown}")))?;
        }
        tar::EntryType::Link => {
            let target = e
                .link_name_bytes()
                .ok_or_else(|| ctx.refuse(&shown, "a hard link without a target"))?
                .into_owned();
            let tshown = String::from_utf8_lossy(&target).into_owned();
            let tcomps = components(ctx, &shown, &target).map_err(|_| {
                ctx.refuse(
                    &shown,
                    format!("hard link to `{tshown}`, outside the layer"),
                )
            })?;
            let tpath: Vec<u8> = tcomps.join(&b'/');
            // The target must be a regular file this layer already holds, reached
            // without any symlink.
            let how =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            let tfd = rfs::openat2(
                &ctx.root,
                os(&tpath),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                how,
            )
            .map_err(|_| {
                ctx.refuse(
                    &shown,
                    format!("hard link to `{tshown}`, which is not a file of this layer"),
                )
            })?;
            let st =
                rfs::fstat(&tfd).map_err(rio(format!("checking the link target of {shown}")))?;
            if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::RegularFile {
                return Err(ctx.refuse(
                    &shown,
                    format!("hard link to `{tshown}`, which is not a regular file"),
                ));
            }
            clear(&dir, name);
            rfs::linkat(&ctx.root, os(&tpath), &dir, os(name), AtFlags::empty())
                .map_err(rio(format!("creating the hard link {shown}")))?;
        }
        tar::EntryType::Fifo => {
            clear(&dir, name);
            rfs::mknodat(&dir, os(name), rfs::FileType::Fifo, perm, 0)
                .map_err(rio(format!("creating the fifo {shown}")))?;
        }
        tar::EntryType::Char | tar::EntryType::Block => {
            return Err(ctx.refuse(
                &shown,
                "device node: images may not carry devices (the sandbox provides /dev)",
            ));
        }
        other => return Err(ctx.refuse(&shown, format!("unsupported tar entry type {other:?}"))),
    }
    chown(ctx, &dir, name)
}

/// Unpacks a layer blob (gzip or uncompressed tar) into the empty directory `dest`.
pub(crate) fn unpack(
    blob: impl Read,
    dest: &Path,
    layer: &str,
    opts: UnpackOptions,
) -> Result<Unpacked, ImageError> {
    let root = rfs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(rio(format!("opening {}", dest.display())))?;
    let mut outer = Hashing::new(BufReader::with_capacity(256 << 10, blob));
    let magic = {
        let mut peek = [0u8; 4];
        let buf = outer
            .inner
            .fill_buf()
            .map_err(io(format!("reading layer {layer}")))?;
        let n = buf.len().min(4);
        peek[..n].copy_from_slice(&buf[..n]);
        peek
    };
    let decompressed: Box<dyn Read + '_> = match magic {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(&mut outer)),
        [0x28, 0xb5, 0x2f, 0xfd] => {
            return Err(ImageError::Unsupported {
                layer: layer.to_string(),
                compression: "zstd".into(),
            })
        }
        [b'B', b'Z', b'h', _] => {
            return Err(ImageError::Unsupported {
                layer: layer.to_string(),
                compression: "bzip2".into(),
            })
        }
        _ => Box::new(&mut outer),
    };
    let mut inner = Hashing::new(decompressed);
    if let Some((u, g)) = opts.owner {
        rfs::chown(
            dest,
            Some(rfs::Uid::from_raw(u)),
            Some(rfs::Gid::from_raw(g)),
        )
        .map_err(rio(format!("setting the owner of {}", dest.display())))?;
    }
    let mut ctx = Ctx {
        layer,
        root,
        opts,
        total: 0,
        dir_modes: Vec::new(),
    };
    {
        let mut archive = tar::Archive::new(&mut inner);
        let mut count = 0u64;
        for e in archive
            .entries()
            .map_err(io(format!("reading layer {layer}")))?
        {
            let mut e = e.map_err(io(format!(
                "reading layer {layer} (a corrupt or truncated tarball)"
            )))?;
            count += 1;
            if count > opts.limits.max_entries {
                return Err(ctx.refuse(
                    "*",
                    format!("more than {} entries", opts.limits.max_entries),
                ));
            }
            entry(&mut ctx, &mut e)?;
        }
    }
    // Directory modes last, deepest first, so read-only directories could be filled.
    ctx.dir_modes
        .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    for (path, mode) in &ctx.dir_modes {
        let slices: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
        let d = open_dir(&ctx, "a directory", &slices)?;
        let (name, parents) = slices.split_last().expect("non-empty");
        let parent = open_dir(&ctx, "a directory", parents)?;
        drop(d);
        rfs::chmodat(
            &parent,
            os(name),
            Mode::from_raw_mode(*mode | 0o700),
            AtFlags::empty(),
        )
        .map_err(rio("setting a directory's mode"))?;
    }
    let (diff_id, _) = inner
        .finish()
        .map_err(io(format!("reading layer {layer}")))?;
    let (blob_digest, _) = outer
        .finish()
        .map_err(io(format!("reading layer {layer}")))?;
    Ok(Unpacked {
        blob_digest,
        diff_id,
        bytes: ctx.total,
    })
}
