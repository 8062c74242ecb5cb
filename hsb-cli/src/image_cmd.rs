//! `hsb image import|list|rm`.

use hybrid_sandbox::{Error, ImageStore, PolicyError};

use crate::cli::ImageCommand;

fn store() -> ImageStore {
    ImageStore::at(ImageStore::default_location())
}

pub(crate) fn run(cmd: ImageCommand) -> i32 {
    match cmd {
        ImageCommand::Import {
            path,
            name,
            strip_setuid,
            json,
            floor,
            limits,
        } => {
            // The limits asked for, under the operator floor.
            let limits = crate::cli::floor(floor.as_deref()).and_then(|f| {
                f.unwrap_or_default()
                    .image_limits_for(&limits.limits())
                    .map_err(|e: PolicyError| Error::Policy(e))
            });
            let limits = match limits {
                Ok(l) => l,
                Err(e) => return crate::run_cmd::fail(&e, json),
            };
            let mut opts = hybrid_sandbox::import_options(&limits);
            opts.strip_setuid = strip_setuid;
            match store().import(&path, name.as_deref(), opts) {
                Ok(r) => {
                    if json {
                        println!("{}", serde_json::to_string(&r).unwrap_or_default());
                    } else {
                        println!(
                            "{}: {} layers, {} bytes, sha256:{}",
                            r.name,
                            r.layers.len(),
                            r.size,
                            r.manifest_digest
                        );
                    }
                    0
                }
                Err(e) => crate::run_cmd::fail(&Error::Image(e), json),
            }
        }
        ImageCommand::List { json } => match store().list() {
            Ok(list) => {
                if json {
                    println!("{}", serde_json::to_string(&list).unwrap_or_default());
                } else {
                    for r in list {
                        println!(
                            "{}\tsha256:{}\t{} layers\t{} bytes",
                            r.name,
                            &r.manifest_digest[..12],
                            r.layers.len(),
                            r.size
                        );
                    }
                }
                0
            }
            Err(e) => crate::run_cmd::fail(&Error::Image(e), json),
        },
        ImageCommand::Rm { name } => match store().remove(&name) {
            Ok(n) => {
                println!("removed {name} ({n} layers freed)");
                0
            }
            Err(e) => crate::run_cmd::fail(&Error::Image(e), false),
        },
    }
}
