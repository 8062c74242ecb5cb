//! Image errors: each names the image, the layer or entry, and what to do.

/// Why an image could not be imported, found or used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Reading or writing a file failed.
    #[error("{what}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The cause.
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
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Io { what, source }
}

pub(crate) fn rio(what: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> ImageError {
    let what = what.into();
    move |e| ImageError::Io {
        what,
        source: e.into(),
    }
}
