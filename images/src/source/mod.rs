//! Reading an image where it lies: an OCI image layout directory, or a tarball made by
//! `docker save` (legacy `manifest.json` layout, or the OCI layout newer Dockers write),
//! or such a tarball unpacked into a directory.
//!
//! A source hands out files by [`EntryName`] only (checked relative names), and reads
//! nothing but its own files: see [`dir`] and [`tarball`] for how each kind makes sure.

mod dir;
mod parse;
mod tarball;

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{self as rfs, FileType, Mode, OFlags};

pub(crate) use parse::{parse, LayerSpec, Parsed};

use crate::error::{rio, ImageError};
use crate::name::EntryName;
use crate::stream::Range;

/// Metadata files larger than this are refused (a manifest is a few KiB).
pub(crate) const MAX_METADATA: u64 = 16 << 20;

/// A file of the source, open for reading, and its size.
pub(crate) struct Blob {
    pub(crate) reader: Box<dyn Read>,
    pub(crate) size: u64,
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob").field("size", &self.size).finish()
    }
}

impl Blob {
    /// A regular file, read up to the size it had when opened (a file that grows while
    /// it is read does not make the read endless).
    fn file(f: File, size: u64) -> Blob {
        Blob {
            reader: Box::new(f.take(size)),
            size,
        }
    }

    fn range(f: Arc<File>, offset: u64, size: u64) -> Blob {
        Blob {
            reader: Box::new(Range::new(f, offset, size)),
            size,
        }
    }
}

#[derive(Debug)]
enum Kind {
    Dir(dir::DirSource),
    Tar(tarball::TarSource),
}

/// An image source.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) name: String,
    kind: Kind,
}

/// The source's name, for building its errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceRef<'a>(pub(crate) &'a str);

impl SourceRef<'_> {
    pub(crate) fn refuse(self, entry: &EntryName, reason: impl Into<String>) -> ImageError {
        ImageError::SourceEntry {
            source_name: self.0.to_string(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn missing(self, name: &EntryName, reached: &EntryName) -> ImageError {
        if name == reached {
            self.refuse(name, "is missing from the image")
        } else {
            self.refuse(
                name,
                format!("leads to `{reached}`, which is missing from the image"),
            )
        }
    }

    pub(crate) fn malformed(self, message: String) -> ImageError {
        ImageError::Malformed {
            source_name: self.0.to_string(),
            message,
        }
    }
}

impl Source {
    /// Opens the image at `path` (the caller's path: a symlink there is followed, it is
    /// the caller's choice). A directory is an image directory, a regular file a tarball
    /// (of at most `max_tar_entries` entries); anything else is refused without being
    /// opened for reading.
    pub(crate) fn open(path: &Path, max_tar_entries: u64) -> Result<Source, ImageError> {
        let name = path.display().to_string();
        let src = SourceRef(&name);
        let what = || format!("opening image {name}");
        let fd =
            rfs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).map_err(rio(what()))?;
        let st = rfs::fstat(&fd).map_err(rio(what()))?;
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Kind::Dir(dir::DirSource::new(fd, src)?),
            FileType::RegularFile => {
                let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
                let f = rfs::open(path, flags, Mode::empty()).map_err(rio(what()))?;
                let again = rfs::fstat(&f).map_err(rio(what()))?;
                if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
                    return Err(src.malformed("changed while it was being opened".into()));
                }
                Kind::Tar(tarball::TarSource::index(
                    File::from(f),
                    src,
                    max_tar_entries,
                )?)
            }
            other => {
                return Err(src.malformed(format!(
                    "is {}: an image is a directory (OCI layout) or a tarball (`docker save`)",
                    dir::type_name(other)
                )))
            }
        };
        Ok(Source { name, kind })
    }

    pub(crate) fn src(&self) -> SourceRef<'_> {
        SourceRef(&self.name)
    }

    /// Whether the image has a file (or link, or directory) of that name.
    pub(crate) fn exists(&self, name: &EntryName) -> Result<bool, ImageError> {
        match &self.kind {
            Kind::Dir(d) => d.exists(self.src(), name),
            Kind::Tar(t) => Ok(t.exists(name)),
        }
    }

    /// A reader over one file of the image, and its size.
    pub(crate) fn open_file(&self, name: &EntryName) -> Result<Blob, ImageError> {
        match &self.kind {
            Kind::Dir(d) => d.open(self.src(), name),
            Kind::Tar(t) => t.open(self.src(), name),
        }
    }

    /// A small metadata file, whole.
    pub(crate) fn read_small(&self, name: &EntryName) -> Result<Vec<u8>, ImageError> {
        let mut blob = self.open_file(name)?;
        if blob.size > MAX_METADATA {
            return Err(self.malformed(format!(
                "{name} is {} bytes; metadata files are at most {MAX_METADATA}",
                blob.size
            )));
        }
        let mut buf = Vec::with_capacity(blob.size as usize);
        blob.reader
            .read_to_end(&mut buf)
            .map_err(crate::error::io(format!("reading {name} in {}", self.name)))?;
        Ok(buf)
    }

    pub(crate) fn malformed(&self, message: String) -> ImageError {
        self.src().malformed(message)
    }
}
