//! `hsb image import|list|rm`.

use hybrid_sandbox::{Error, ImageStore, ImportOptions};

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
        } => {
            // SAFETY: geteuid has no preconditions.
            let root = unsafe { libc::geteuid() } == 0;
            let opts = ImportOptions {
                strip_setuid,
                owner: root.then_some((
                    hybrid_sandbox::ROOT_MODE_HOST_ID,
                    hybrid_sandbox::ROOT_MODE_HOST_ID,
                )),
                ..Default::default()
            };
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
