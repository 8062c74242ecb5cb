//! TLS for `https://` endpoints, and the PEM files both ends read (`hsb serve
//! --tls-cert/--tls-key`, a client's `--ca-file`).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

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
/// certificate of its own CA, or a self-signed certificate trusted directly), else the
/// host's trust store.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let mut pinned = Vec::new();
    match ca_file {
        Some(p) => {
            let certs = load_certs(p, "the CA file")?;
            pinned.clone_from(&certs);
            let (added, _) = roots.add_parsable_certificates(certs);
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
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| format!("the trusted certificates: {e}"))?;
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier { inner, pinned }))
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// WebPKI's verification (a chain to a trusted certificate, the server's name, the
/// validity period, the key's usage), and one addition: a server certificate that is
/// byte for byte one of the CA file's certificates is trusted as itself even when it
/// says `CA:TRUE`, as OpenSSL (curl, Python's `ssl`) trusts it. That is what `openssl
/// req -x509` makes by default; rustls alone refuses such a certificate as a server's
/// own. It must still name the server, be within its validity period and allow a
/// server's use: only the chain is skipped, and the handshake still proves the server
/// holds its key.
#[derive(Debug)]
struct Verifier {
    inner: Arc<WebPkiServerVerifier>,
    /// The CA file's certificates (empty with the host's trust store).
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(_)
                if self
                    .pinned
                    .iter()
                    .any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                check_trusted_leaf(end_entity, server_name, now)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn refused(why: &str) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        Refused(why.to_string()),
    ))))
}

/// Why a certificate was refused, in words.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// A failed TLS handshake in words: what was wrong with the server's certificate and,
/// where the cause is a common way of making one, what to do.
pub(crate) fn handshake_error(e: std::io::Error) -> std::io::Error {
    let Some(rustls::Error::InvalidCertificate(c)) =
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
    else {
        return e;
    };
    let why = match c {
        CertificateError::Other(o) => {
            if let Some(r) = o.0.downcast_ref::<Refused>() {
                r.0.clone()
            } else if let Some(webpki::Error::CaUsedAsEndEntity) = o.0.downcast_ref() {
                "it is a CA certificate (CA:TRUE) and not itself in the CA file: give the \
                 server's certificate itself as the CA file (--ca-file, HSB_CA_FILE), or \
                 serve a certificate the CA issued"
                    .into()
            } else {
                c.to_string()
            }
        }
        CertificateError::NotValidForNameContext { presented, .. } if presented.is_empty() => {
            format!(
                "{c}: it names no host in a subjectAltName, and a CN is not checked; make it \
                 with -addext subjectAltName=DNS:HOST (or IP:ADDRESS)"
            )
        }
        CertificateError::UnknownIssuer => "it is not issued by a certificate of the CA file \
            (--ca-file, HSB_CA_FILE) or, without one, of the host's trust store"
            .into(),
        _ => c.to_string(),
    };
    std::io::Error::new(
        e.kind(),
        format!("the server's certificate is refused: {why}"),
    )
}

/// A certificate trusted as itself: it names `server_name`, is valid `now`, and its
/// usages (where it states them) allow a TLS server.
fn check_trusted_leaf(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let unreadable = |e: &dyn std::fmt::Display| refused(&format!("it cannot be read: {e}"));
    let parsed = webpki::EndEntityCert::try_from(cert).map_err(|e| unreadable(&e))?;
    match parsed.verify_is_valid_for_subject_name(server_name) {
        Ok(()) => {}
        Err(webpki::Error::CertNotValidForName(n)) => {
            return Err(CertificateError::NotValidForNameContext {
                expected: n.expected,
                presented: n.presented,
            }
            .into())
        }
        Err(e) => return Err(refused(&format!("the server's certificate: {e}"))),
    }
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| unreadable(&e))?;
    let at = x509_parser::time::ASN1Time::from_timestamp(
        i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
    )
    .map_err(|e| refused(&format!("the time now: {e}")))?;
    let v = c.validity();
    if !v.is_valid_at(at) {
        return Err(refused(&format!(
            "it is trusted as itself (it is in the CA file), and valid from {} to {}, not now",
            v.not_before, v.not_after
        )));
    }
    // Unreadable extensions fail as a whole: a certificate whose usages cannot be read
    // is not taken as stating none.
    let ku = c.key_usage().map_err(|e| unreadable(&e))?;
    if ku.is_some_and(|k| !k.value.digital_signature() && !k.value.key_encipherment()) {
        return Err(refused(
            "it is trusted as itself (it is in the CA file), and its keyUsage allows neither digitalSignature nor keyEncipherment, which a TLS server needs",
        ));
    }
    let eku = c.extended_key_usage().map_err(|e| unreadable(&e))?;
    if eku.is_some_and(|k| !k.value.any && !k.value.server_auth) {
        return Err(refused(
            "it is trusted as itself (it is in the CA file), and its extendedKeyUsage lacks serverAuth: it is not for TLS servers",
        ));
    }
    Ok(())
}
