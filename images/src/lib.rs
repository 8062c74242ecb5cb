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

/// Entry points of the fuzz targets (`fuzz/`: `layer_unpack`, `image_import`); not an
/// API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use std::path::Path;

    use crate::limits::{LayerBudget, PerImageLimits, UnpackLimits};
    use crate::unpack::{unpack, UnpackOptions};
    use crate::ImageError;

    /// Unpacks `blob` (a layer: gzip or plain tar) into the empty directory `dest`
    /// under `limits`, as an import does; the bytes of file data written.
    pub fn unpack_layer(
        blob: &[u8],
        dest: &Path,
        limits: UnpackLimits,
        strip_setuid: bool,
    ) -> Result<u64, ImageError> {
        let opts = UnpackOptions {
            limits,
            strip_setuid,
            owner: None,
        };
        let image = PerImageLimits::default();
        let budget = LayerBudget::new(&limits, &image, (image.max_total, image.max_entries));
        unpack(blob, dest, "fuzz", opts, budget).map(|u| u.bytes)
    }
}
