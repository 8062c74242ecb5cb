//! OCI images for hybrid-sandbox: read an image where it lies (an OCI image layout
//! directory, or a `docker save` tarball — no registry pulls), verify every digest,
//! and unpack its layers once into a content-addressed store shared by all runs.
//! Backends get the layer directories (lowest first) and stack them: overlayfs with a
//! throwaway upper layer in the container, a layered view in the micro-VM.
//!
//! An image is hostile input: nothing outside it is read ([`source`]), nothing outside
//! the store is written ([`unpack`]), errors never quote what was read ([`error`]),
//! and what an import may cost is bounded per layer and per image ([`limits`]).

mod error;
mod limits;
mod name;
mod source;
mod store;
mod stream;
mod unpack;

pub use error::ImageError;
pub use limits::{LimitKind, PerImageLimits, UnpackLimits};
pub use store::{ImageConfig, ImageRecord, ImageStore, ImportOptions, LayersInUse};

#[cfg(test)]
mod tests;
