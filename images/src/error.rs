//! Image errors: each names the image, the layer or entry, and what to do.
//!
//! No error carries bytes of a file the import read: parser errors (tar, gzip, JSON)
//! are turned into our own words (what, where as an offset or line and column, never
//! the input), and an I/O error keeps its cause only when it is the kernel's (an errno
//! has no payload). Names from an image are printed through [`crate::name::shown`].

use crate::limits::LimitKind;

/// Why an image could not be imported, found or used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Reading or writing a file failed.
    #[error("{what}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The cause (an OS error).
        #[source]
        source: std::io::Error,
    },
    /// The source is neither an OCI layout directory nor an image tarball.
    #[error("{0} is not an OCI image layout (no index.json) nor a `docker save` tarball (no manifest.json)")]
    UnknownFormat(String),
    /// The image's metadata is malformed or inconsistent.
    #[error("{source_name}: {message}")]
    Malformed {
        /// The image source.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// A blob's content does not match its digest.
    #[error("{what} has digest sha256:{actual}, but the image says {expected}: the image is corrupt or was tampered with")]
    DigestMismatch {
        /// Which blob.
        what: String,
        /// The digest the image names.
        expected: String,
        /// The digest of the bytes read.
        actual: String,
    },
    /// A layer entry is refused.
    #[error("layer {layer}: entry `{entry}`: {reason}")]
    Refused {
        /// The layer's digest.
        layer: String,
        /// The entry's path in the layer.
        entry: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A layer uses a compression this build cannot read.
    #[error("layer {layer} is compressed with {compression}, which is not supported (gzip and uncompressed layers are)")]
    Unsupported {
        /// The layer's digest.
        layer: String,
        /// The compression.
        compression: String,
    },
    /// No image of that name.
    #[error("no image `{0}` in the image store (import it with `hsb image import PATH`, or give a path)")]
    NotFound(String),
    /// A file of the image source is refused before (or instead of) being read: a
    /// symlink leading out of the image, a name with `..`, a FIFO or device, a hard
    /// link to someone else's file.
    #[error("{source_name}: `{entry}` {reason}")]
    SourceEntry {
        /// The image source.
        source_name: String,
        /// The file's name in the source.
        entry: String,
        /// Why (never the file's content).
        reason: String,
    },
    /// A layer's stream is not a valid tar (or gzip) stream.
    #[error("layer {layer}: {reason}")]
    Corrupt {
        /// The layer's digest.
        layer: String,
        /// What is wrong and where (an offset or an entry name, never the bytes).
        reason: String,
    },
    /// An import limit was reached.
    #[error(
        "{scope}{}: {found} (limit {limit} = {}); for an image you trust, raise it with `--max-{}` or `image_limits.{limit}` in the policy",
        entry.as_ref().map(|e| format!(": entry `{e}`")).unwrap_or_default(),
        limit.show(*max),
        limit.key().replace('_', "-")
    )]
    Limit {
        /// The image or the layer.
        scope: String,
        /// The entry being read, when there is one.
        entry: Option<String>,
        /// Which limit.
        limit: LimitKind,
        /// Its value.
        max: u64,
        /// What was found.
        found: String,
    },
}

/// An OS error kept as is; any other I/O error (a parser's, which may quote its input)
/// reduced to its kind.
pub(crate) fn scrub(e: std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::from(e.kind()),
    }
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Io {
        what,
        source: scrub(source),
    }
}

pub(crate) fn rio(what: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> ImageError {
    let what = what.into();
    move |e| ImageError::Io {
        what,
        source: e.into(),
    }
}
