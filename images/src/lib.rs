//! OCI images for hybrid-sandbox: read an image where it lies (an OCI image layout
//! directory, or a `docker save` tarball — no registry pulls), verify every digest,
//! and unpack its layers once into a content-addressed store shared by all runs.
//! Backends get the layer directories (lowest first) and stack them: overlayfs with a
//! throwaway upper layer in the container, a layered view in the micro-VM.

mod error;
mod source;
mod store;
mod unpack;

pub use error::ImageError;
pub use store::{ImageConfig, ImageRecord, ImageStore, ImportOptions, LayersInUse};
pub use unpack::UnpackLimits;

#[cfg(test)]
mod tests;
