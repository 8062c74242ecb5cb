//! One layer entry onto the disk, hostile input assumed.
//!
//! Nothing is ever resolved through a symlink: every directory on an entry's path is
//! opened with `O_NOFOLLOW` from the layer's root fd, so an entry cannot write through a
//! link it (or an earlier entry) planted. Paths with `..` or a leading `/`, hard links
//! that leave the layer, device nodes, setuid/setgid bits (unless stripping was asked
//! for), whiteouts naming `.`/`..`, and files beyond the limits are refused with the
//! entry's name.

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};

use super::UnpackOptions;
use crate::error::{rio, ImageError};
use crate::limits::{LayerBudget, LimitKind};
use crate::name::shown_bytes;
use crate::stream::Tap;

pub(super) struct Ctx<'a> {
    pub(super) layer: &'a str,
    pub(super) root: OwnedFd,
    pub(super) opts: UnpackOptions,
    pub(super) budget: LayerBudget,
    pub(super) tap: Tap,
    /// Bytes of file data written.
    pub(super) total: u64,
    /// Entries seen.
    pub(super) entries: u64,
    /// The entry being unpacked (shown), for errors that happen while reading it.
    pub(super) current: Option<String>,
    /// Directories whose final mode is set once everything is written into them.
    pub(super) dir_modes: Vec<(Vec<Vec<u8>>, u32)>,
}

impl Ctx<'_> {
    pub(super) fn refuse(&self, entry: &str, reason: impl Into<String>) -> ImageError {
        ImageError::Refused {
            layer: self.layer.to_string(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    pub(super) fn limit(&self, limit: LimitKind, max: u64, entry: Option<&str>) -> ImageError {
        let found = match limit {
            LimitKind::LayerBytes => "the layer unpacks to more than that".to_string(),
            LimitKind::ImageBytes => {
                "the image's layers unpack to more than that together".to_string()
            }
            LimitKind::LayerEntries => "the layer has more entries than that".to_string(),
            LimitKind::ImageEntries => {
                "the image's layers have more entries than that together".to_string()
            }
            LimitKind::FileBytes => "a file larger than that".to_string(),
            LimitKind::Layers => "more layers than that".to_string(),
        };
        ImageError::Limit {
            scope: format!("layer {}", self.layer),
            entry: entry.map(String::from),
            limit,
            max,
            found,
        }
    }

    /// An error out of the layer's stream, in our words (see [`crate::stream`]).
    pub(super) fn stream_error(&self, e: io::Error) -> ImageError {
        use crate::stream::Classified;
        let at = self.tap.decoded_bytes();
        let place = match &self.current {
            Some(c) => format!("in entry `{c}` (uncompressed byte {at})"),
            None if self.entries == 0 => format!("at its start (uncompressed byte {at})"),
            None => format!("after {} entries (uncompressed byte {at})", self.entries),
        };
        let corrupt = |reason: String| ImageError::Corrupt {
            layer: self.layer.to_string(),
            reason,
        };
        match self.tap.classify(e) {
            Classified::Source(source) => ImageError::Io {
                what: format!("reading layer {}", self.layer),
                source,
            },
            Classified::Limit(kind, max) => self.limit(kind, max, self.current.as_deref()),
            Classified::Decode => corrupt(format!("the gzip stream is corrupt {place}")),
            Classified::HeaderWindow => corrupt(format!(
                "an extension header (GNU long name or PAX record) over 1 MiB {place}: refused (the tar reader would hold it in memory)"
            )),
            Classified::Format => corrupt(format!(
                "not a valid tar stream {place} (the tar reader's own message is not shown: it quotes the bytes it read)"
            )),
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

fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(b)
}

/// Opens the directory `comps` below the root, creating missing ones, never following a
/// symlink.
pub(super) fn open_dir(ctx: &Ctx<'_>, shown: &str, comps: &[&[u8]]) -> Result<OwnedFd, ImageError> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut cur =
        rfs::openat(&ctx.root, ".", flags, Mode::empty()).map_err(rio("opening the layer root"))?;
    for c in comps {
        match rfs::mkdirat(&cur, os(c), Mode::from_raw_mode(0o755)) {
            // Directories a layer implies without listing them get the same owner as
            // the rest: an unmapped owner would make overlayfs refuse to copy them up.
            Ok(()) => chown(ctx, &cur, c)?,
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(rio(format!("creating a directory for {shown}"))(e)),
        }
        cur = match rfs::openat(&cur, os(c), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
                return Err(ctx.refuse(
                    shown,
                    format!("goes through `{}`, which is a symlink or a file: layers may not write through links", shown_bytes(c)),
                ))
            }
            Err(e) => return Err(rio(format!("opening a directory for {shown}"))(e)),
        };
    }
    Ok(cur)
}

/// Removes whatever is at `name` (a later entry replaces an earlier one), but not a
/// directory, which a later directory entry keeps.
fn clear(dir: &OwnedFd, name: &[u8]) {
    let _ = rfs::unlinkat(dir, os(name), AtFlags::empty());
}

pub(super) fn chown(ctx: &Ctx<'_>, dir: &OwnedFd, name: &[u8]) -> Result<(), ImageError> {
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

/// Whiteouts: `.wh..wh..opq` marks its directory opaque, `.wh.NAME` hides NAME of the
/// layers below. Returns false when `name` is not a whiteout.
fn whiteout(ctx: &Ctx<'_>, shown: &str, dir: &OwnedFd, name: &[u8]) -> Result<bool, ImageError> {
    if name == b".wh..wh..opq" {
        // xattrs need a real descriptor (the walk holds O_PATH ones).
        let real = rfs::openat(
            dir,
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
        return Ok(true);
    }
    if name.starts_with(b".wh..wh.") {
        // Other AUFS metadata (`.wh..wh.plnk`, ...): meaningless here, as in Docker.
        return Ok(true);
    }
    let Some(hidden) = name.strip_prefix(b".wh.") else {
        return Ok(false);
    };
    if matches!(hidden, b"" | b"." | b"..") {
        return Err(ctx.refuse(
            shown,
            "a whiteout of `.`, `..` or nothing: it names no file of the layers below",
        ));
    }
    clear(dir, hidden);
    rfs::mknodat(
        dir,
        os(hidden),
        rfs::FileType::CharacterDevice,
        Mode::empty(),
        rfs::makedev(0, 0),
    )
    .map_err(rio(format!("making the whiteout {shown}")))?;
    Ok(true)
}

pub(super) fn entry<R: Read>(
    ctx: &mut Ctx<'_>,
    e: &mut tar::Entry<'_, R>,
) -> Result<(), ImageError> {
    let raw = e.path_bytes().into_owned();
    let shown = shown_bytes(&raw);
    let comps = components(ctx, &shown, &raw)?;
    let Some((name, parents)) = comps.split_last() else {
        return Ok(());
    };
    let (name, parents) = (*name, parents.to_vec());
    let dir = open_dir(ctx, &shown, &parents)?;
    if whiteout(ctx, &shown, &dir, name)? {
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
            if size > ctx.budget.max_file {
                return Err(ctx.limit(LimitKind::FileBytes, ctx.budget.max_file, Some(&shown)));
            }
            // File data counts too (a sparse file's holes are not in the stream).
            ctx.total = ctx.total.saturating_add(size);
            let cap = ctx.budget.bytes;
            if ctx.total > cap.cap {
                return Err(ctx.limit(cap.kind, cap.limit, Some(&shown)));
            }
            clear(&dir, name);
            let flags =
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rfs::openat(&dir, os(name), flags, Mode::from_raw_mode(0o600))
                .map_err(rio(format!("creating {shown}")))?;
            let mut file = std::fs::File::from(fd);
            ctx.current = Some(shown.clone());
            let copied = copy(&mut e.take(size), &mut file).map_err(|c| match c {
                CopyError::Read(err) => ctx.stream_error(err),
                CopyError::Write(err) => crate::error::io(format!("writing {shown}"))(err),
            })?;
            ctx.current = None;
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
        tar::EntryType::Link => hard_link(ctx, e, &shown, &dir, name)?,
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
        // A PAX global header: metadata for the archive, nothing to unpack.
        tar::EntryType::XGlobalHeader => return Ok(()),
        other => return Err(ctx.refuse(&shown, format!("unsupported tar entry type {other:?}"))),
    }
    chown(ctx, &dir, name)
}

/// A hard link: its target must be a regular file this layer already holds, reached
/// without any symlink.
fn hard_link<R: Read>(
    ctx: &Ctx<'_>,
    e: &tar::Entry<'_, R>,
    shown: &str,
    dir: &OwnedFd,
    name: &[u8],
) -> Result<(), ImageError> {
    let target = e
        .link_name_bytes()
        .ok_or_else(|| ctx.refuse(shown, "a hard link without a target"))?
        .into_owned();
    let tshown = shown_bytes(&target);
    let tcomps = components(ctx, shown, &target)
        .map_err(|_| ctx.refuse(shown, format!("hard link to `{tshown}`, outside the layer")))?;
    let tpath: Vec<u8> = tcomps.join(&b'/');
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let tfd = rfs::openat2(
        &ctx.root,
        os(&tpath),
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        how,
    )
    .map_err(|_| {
        ctx.refuse(
            shown,
            format!("hard link to `{tshown}`, which is not a file of this layer"),
        )
    })?;
    let st = rfs::fstat(&tfd).map_err(rio(format!("checking the link target of {shown}")))?;
    if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::RegularFile {
        return Err(ctx.refuse(
            shown,
            format!("hard link to `{tshown}`, which is not a regular file"),
        ));
    }
    clear(dir, name);
    rfs::linkat(&ctx.root, os(&tpath), dir, os(name), AtFlags::empty())
        .map_err(rio(format!("creating the hard link {shown}")))
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// `io::copy` that says which side failed (a read error is the layer's, classified; a
/// write error is the store's disk).
fn copy(r: &mut impl Read, w: &mut impl io::Write) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 128 << 10];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        w.write_all(&buf[..k]).map_err(CopyError::Write)?;
        n += k as u64;
    }
}
