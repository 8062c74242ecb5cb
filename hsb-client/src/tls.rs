//! TLS for `https://` endpoints, and the PEM files both ends read (`hsb serve
//! --tls-cert/--tls-key`, a client's `--ca-file`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::PrivateKeyDer;
use rustls::{ClientConfig, RootCertStore};

pub use sandbox_egress::{load_pem_certs as load_certs, tls_provider as provider};

fn open(path: &Path, what: &str) -> Result<std::io::BufReader<std::fs::File>, String> {
    std::fs::File::open(path)
        .map(std::io::BufReader::new)
        .map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// The private key of a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn load_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>, String> {
    rustls_pemfile::private_key(&mut open(path, what)?)
        .map_err(|e| format!("{what} {}: not PEM: {e}", path.display()))?
        .ok_or_else(|| {
            format!(
                "{what} {}: no private key in it (expected PEM: PKCS#8, PKCS#1 or SEC1)",
                path.display()
            )
        })
}

/// The client side of TLS: the certificates of `ca_file` when given (a server with a
/// certificate of its own CA), else the host's trust store.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(p) => {
            let (added, _) = roots.add_parsable_certificates(load_certs(p, "the CA file")?);
            if added == 0 {
                return Err(format!(
                    "the CA file {}: no certificate in it could be used",
                    p.display()
                ));
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(
                    "no trusted CA on this host (install ca-certificates), and no CA \
                            file was given (--ca-file FILE or HSB_CA_FILE)"
                        .into(),
                );
            }
        }
    }
    sandbox_egress::http1_client_config(roots)
}
