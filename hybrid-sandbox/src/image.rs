//! Images in the facade: a plan's image reference becomes an image root (locked layers)
//! and the image's config is applied to the plan.

use std::path::PathBuf;

use async_trait::async_trait;
use sandbox_core::{
    Execution, ImageLimits, ImageRoot, ImageSpec, Isolation, KillHandle, Outcome, OutputStream,
    Plan, RunError, StdinWriter, Workload,
};
use sandbox_images::{ImageStore, ImportOptions, LayersInUse, PerImageLimits, UnpackLimits};

use crate::sandbox::Error;

/// Import options under these limits (unset ones take their defaults). Root imports
/// files owned by the uid sandboxes run as, as runs do.
///
/// ```
/// use hybrid_sandbox::{import_options, ImageLimits};
/// let o = import_options(&ImageLimits { layers: Some(8), ..Default::default() });
/// assert_eq!(o.image_limits.max_layers, 8);
/// assert_eq!(o.limits.max_file, 4 << 30);
/// ```
pub fn import_options(limits: &ImageLimits) -> ImportOptions {
    let l = limits.with_defaults();
    let d = ImportOptions::default();
    ImportOptions {
        owner: rustix_is_root().then_some((
            sandbox_core::ROOT_MODE_HOST_ID,
            sandbox_core::ROOT_MODE_HOST_ID,
        )),
        limits: UnpackLimits {
            max_file: l.file_bytes.map_or(d.limits.max_file, |b| b.0),
            max_total: l.layer_bytes.map_or(d.limits.max_total, |b| b.0),
            max_entries: l.layer_entries.unwrap_or(d.limits.max_entries),
        },
        image_limits: PerImageLimits {
            max_layers: l.layers.unwrap_or(d.image_limits.max_layers),
            max_total: l.image_bytes.map_or(d.image_limits.max_total, |b| b.0),
            max_entries: l.image_entries.unwrap_or(d.image_limits.max_entries),
        },
        ..d
    }
}

fn rustix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Resolves `USER` of an image config to numeric ids, reading the image's own
/// /etc/passwd and /etc/group (the topmost layer that has them) for names.
fn resolve_user(image: &str, user: Option<&str>, layers: &[PathBuf]) -> Result<(u32, u32), Error> {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Ok((0, 0));
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let lookup = |file: &str, name: &str, field: usize| -> Option<(u32, Option<u32>)> {
        let text = layers
            .iter()
            .rev()
            .find_map(|l| std::fs::read_to_string(l.join(file)).ok())?;
        text.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.first() != Some(&name) {
                return None;
            }
            let id: u32 = f.get(2)?.parse().ok()?;
            Some((id, f.get(field).and_then(|x| x.parse().ok())))
        })
    };
    let bad = |what: &str| {
        Error::ImageUse(sandbox_core::ImageUseError {
            image: image.into(),
            message: format!("its USER `{user}`: {what}"),
        })
    };
    let (uid, passwd_gid) = match u.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => lookup("etc/passwd", u, 3)
            .ok_or_else(|| bad("no such user in the image's /etc/passwd"))?,
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup("etc/group", g, 2)
                .map(|(gid, _)| gid)
                .ok_or_else(|| bad("no such group in the image's /etc/group"))?,
        },
        None => passwd_gid.unwrap_or(uid),
    };
    Ok((uid, gid))
}

/// Fills the plan's image root and applies the image config; returns the layer locks
/// the run must hold.
pub(crate) fn prepare(
    store: &ImageStore,
    plan: &mut Plan,
    run: &Workload,
) -> Result<Option<LayersInUse>, Error> {
    prepare_as(store, plan, run, false)
}

/// [`prepare`], for a live sandbox (`live`): the image's entrypoint and cmd are not
/// run, its ENV, WORKDIR and USER apply to every exec.
pub(crate) fn prepare_as(
    store: &ImageStore,
    plan: &mut Plan,
    run: &Workload,
    live: bool,
) -> Result<Option<LayersInUse>, Error> {
    let Some(reference) = plan.image.clone() else {
        return Ok(None);
    };
    let record = store
        .get(&reference, import_options(&plan.image_limits))
        .map_err(Error::Image)?;
    let layers = store.lock_layers(&record).map_err(Error::Image)?;
    let user = resolve_user(&record.name, record.config.user.as_deref(), &layers.dirs)?;
    let spec = ImageSpec {
        root: Some(ImageRoot {
            name: record.name.clone(),
            digest: record.manifest_digest.clone(),
            layers: layers.dirs.clone(),
        }),
        entrypoint: record.config.entrypoint.clone(),
        cmd: record.config.cmd.clone(),
        env: record.config.env.clone(),
        working_dir: record.config.working_dir.clone(),
        user: Some(user),
    };
    if live {
        plan.apply_image_environment(run, spec);
    } else {
        plan.apply_image(run, spec).map_err(Error::ImageUse)?;
    }
    Ok(Some(layers))
}

/// An execution that holds its image's layers until it is dropped.
#[derive(Debug)]
pub(crate) struct WithLayers {
    pub(crate) inner: Box<dyn Execution>,
    pub(crate) _layers: LayersInUse,
}

#[async_trait]
impl Execution for WithLayers {
    fn isolation(&self) -> Isolation {
        self.inner.isolation()
    }
    fn take_stdin(&mut self) -> Option<StdinWriter> {
        self.inner.take_stdin()
    }
    fn take_output(&mut self) -> Option<OutputStream> {
        self.inner.take_output()
    }
    fn take_output_uncaptured(&mut self) -> Option<OutputStream> {
        self.inner.take_output_uncaptured()
    }
    fn kill_handle(&self) -> KillHandle {
        self.inner.kill_handle()
    }
    async fn wait(&mut self) -> Result<Outcome, RunError> {
        self.inner.wait().await
    }
    fn exposed_ports(&self) -> Vec<sandbox_core::network::ExposedPort> {
        self.inner.exposed_ports()
    }
    fn network_events(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<sandbox_core::network::NetworkEvent>> {
        self.inner.network_events()
    }
    fn signal(&self, signal: i32) -> Result<(), std::io::Error> {
        self.inner.signal(signal)
    }
    fn resize(&self, size: sandbox_core::live::TtySize) -> Result<(), std::io::Error> {
        self.inner.resize(size)
    }
    fn control_handle(&self) -> Option<sandbox_core::ControlHandle> {
        self.inner.control_handle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults the policy shows and the ones the importer applies are one set.
    #[test]
    fn policy_and_importer_defaults_agree() {
        let from_policy = import_options(&ImageLimits::default());
        let importer = ImportOptions::default();
        assert_eq!(from_policy.limits, importer.limits);
        assert_eq!(from_policy.image_limits, importer.image_limits);
    }
}
