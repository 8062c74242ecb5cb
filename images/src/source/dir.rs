//! A directory source (an OCI image layout, an unpacked `docker save`): the one way a
//! file of it is opened.
//!
//! Everything goes through [`DirSource::open`]: `openat2` from the directory's
//! descriptor with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`, so
//! the kernel refuses any path that leaves the directory or passes through a symlink
//! (a symlinked `blobs/` included). A symlink as the *last* component (how `docker
//! save` writes a layer it already wrote) is read, not followed: its target is resolved
//! inside the image by [`EntryName::resolve_link`] and opened the same way, so a link to
//! `/etc/shadow` or `../../secret` is refused by name. What is opened must be a regular
//! file: it is first looked at through an `O_PATH` descriptor (a FIFO or a device is
//! never opened for reading), then opened `O_NONBLOCK` and checked again to be the same
//! regular file. A file with other hard links that its directory's owner does not own is
//! refused too: it may be a host file linked into the image.

use std::fs::File;
use std::os::fd::OwnedFd;

use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::{Blob, SourceRef};
use crate::error::{rio, ImageError};
use crate::name::{shown_bytes, EntryName};

/// Longest chain of symlinks followed (inside the image) to reach a file.
const MAX_HOPS: usize = 8;

/// An image directory, held by descriptor.
#[derive(Debug)]
pub(crate) struct DirSource {
    fd: OwnedFd,
    owner: u32,
}

fn how() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

/// What a file type is called in messages.
pub(crate) fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "a file of unknown type",
    }
}

impl DirSource {
    /// The directory open as `fd` (an `O_PATH` descriptor is enough).
    pub(crate) fn new(fd: OwnedFd, src: SourceRef<'_>) -> Result<DirSource, ImageError> {
        let st = rfs::fstat(&fd).map_err(rio(format!("reading {}", src.0)))?;
        Ok(DirSource {
            fd,
            owner: st.st_uid,
        })
    }

    /// `name` looked at without opening it for reading: `None` when it does not exist.
    fn probe(
        &self,
        src: SourceRef<'_>,
        shown: &EntryName,
        name: &EntryName,
    ) -> Result<Option<(OwnedFd, rfs::Stat)>, ImageError> {
        let fd = match self.open_at(name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.refusal(src, shown, name, e)),
        };
        let st = rfs::fstat(&fd).map_err(rio(format!("reading {shown} in {}", src.0)))?;
        Ok(Some((fd, st)))
    }

    fn open_at(&self, name: &EntryName, flags: OFlags) -> Result<OwnedFd, Errno> {
        // EAGAIN: a concurrent rename in the directory; the kernel asks to retry.
        let mut tries = 0;
        loop {
            match rfs::openat2(&self.fd, name.as_str(), flags, Mode::empty(), how()) {
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                other => return other,
            }
        }
    }

    fn refusal(
        &self,
        src: SourceRef<'_>,
        shown: &EntryName,
        name: &EntryName,
        e: Errno,
    ) -> ImageError {
        let via = if name == shown {
            String::new()
        } else {
            format!(" (reached as `{name}`)")
        };
        let reason = match e {
            Errno::LOOP => format!("cannot be opened{via}: a directory on its path is a symlink, and an image's files are read without following links"),
            Errno::XDEV => format!("cannot be opened{via}: its path leaves the image directory"),
            Errno::NOTDIR => format!("cannot be opened{via}: a component of its path is not a directory"),
            Errno::NOSYS => "cannot be opened: this kernel has no openat2 (Linux 5.6 or later is needed to read image directories safely; import a tarball instead)".to_string(),
            e => {
                return ImageError::Io {
                    what: format!("opening {shown} in {}", src.0),
                    source: e.into(),
                }
            }
        };
        src.refuse(shown, reason)
    }

    /// Whether `name` exists (whatever it is).
    pub(crate) fn exists(&self, src: SourceRef<'_>, name: &EntryName) -> Result<bool, ImageError> {
        Ok(self.probe(src, name, name)?.is_some())
    }

    /// Opens the regular file `name` for reading, following symlinks only inside the
    /// image (see the module's doc).
    pub(crate) fn open(&self, src: SourceRef<'_>, name: &EntryName) -> Result<Blob, ImageError> {
        let mut cur = name.clone();
        for _ in 0..=MAX_HOPS {
            let Some((fd, st)) = self.probe(src, name, &cur)? else {
                return Err(src.missing(name, &cur));
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => {
                    let target = rfs::readlinkat(&fd, "", Vec::new())
                        .map_err(rio(format!("reading the symlink {cur} in {}", src.0)))?;
                    cur = cur.resolve_link(target.as_bytes()).map_err(|why| {
                        src.refuse(
                            name,
                            format!(
                                "is a symlink to `{}`, whose name {why}: an image's files are read only from inside it",
                                shown_bytes(target.as_bytes())
                            ),
                        )
                    })?;
                }
                FileType::RegularFile => return self.open_regular(src, name, &cur, &st),
                other => {
                    return Err(src.refuse(
                        name,
                        format!(
                            "is {}, not a regular file: refused without being opened",
                            type_name(other)
                        ),
                    ))
                }
            }
        }
        Err(src.refuse(name, format!("is a chain of more than {MAX_HOPS} symlinks")))
    }

    fn open_regular(
        &self,
        src: SourceRef<'_>,
        name: &EntryName,
        cur: &EntryName,
        seen: &rfs::Stat,
    ) -> Result<Blob, ImageError> {
        if seen.st_nlink > 1 && seen.st_uid != self.owner {
            return Err(src.refuse(
                name,
                format!(
                    "has {} hard links and belongs to uid {}, not to the owner of the image directory (uid {}): it may be a host file linked into the image; copy it instead of linking it",
                    seen.st_nlink, seen.st_uid, self.owner
                ),
            ));
        }
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = self
            .open_at(cur, flags)
            .map_err(|e| self.refusal(src, name, cur, e))?;
        let st = rfs::fstat(&fd).map_err(rio(format!("reading {name} in {}", src.0)))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
            || (st.st_dev, st.st_ino) != (seen.st_dev, seen.st_ino)
        {
            return Err(src.refuse(name, "changed while it was being opened: refused"));
        }
        let size = u64::try_from(st.st_size).unwrap_or(0);
        Ok(Blob::file(File::from(fd), size))
    }
}
