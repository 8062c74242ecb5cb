//! TLS for interception: a CA of the sandbox's own (made when it has secrets; the
//! sandbox trusts it through its CA bundle), certificates for the hosts it intercepts,
//! and the verification of the real servers against the host's trust store (and a CA the
//! policy names).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sandbox_core::network::EgressPlan;

use crate::EgressError;

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca")
    }
}

/// The sandbox's TLS material.
#[derive(Debug)]
pub(crate) struct Tls {
    ca: Option<Ca>,
    extra_ca: Option<std::path::PathBuf>,
    upstream: OnceLock<Result<Arc<ClientConfig>, String>>,
    leaves: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

/// The crypto provider of every TLS end of this project (ring): the broker's, and
/// `hsb serve`'s and its clients'.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn host_roots() -> Vec<CertificateDer<'static>> {
    rustls_native_certs::load_native_certs().certs
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

impl Tls {
    /// The material for `plan`: a CA when it has secrets.
    pub(crate) fn new(plan: &EgressPlan) -> Result<Tls, EgressError> {
        let ca = if plan.secrets.is_empty() {
            None
        } else {
            let key = KeyPair::generate().map_err(|e| EgressError::Tls(e.to_string()))?;
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(
                DnType::CommonName,
                "hybrid-sandbox egress broker CA (one sandbox only)",
            );
            params.distinguished_name = dn;
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let issuer = CertifiedIssuer::self_signed(params, key)
                .map_err(|e| EgressError::Tls(e.to_string()))?;
            Some(Ca { issuer })
        };
        if let Some(p) = &plan.ca {
            // Read it now: a missing file is the run's error, not a later handshake's.
            load_pem_certs(p, POLICY_CA).map_err(EgressError::Tls)?;
        }
        Ok(Tls {
            ca,
            extra_ca: plan.ca.clone(),
            upstream: OnceLock::new(),
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA bundle for the sandbox: the host's CAs, and the sandbox's own.
    pub(crate) fn bundle(&self) -> Option<String> {
        let ca = self.ca.as_ref()?;
        let mut out = String::new();
        for c in host_roots() {
            out.push_str(&pem(&c));
        }
        out.push_str("# hybrid-sandbox: this sandbox's own CA, for the hosts its secrets go to\n");
        out.push_str(&ca.issuer.pem());
        Some(out)
    }

    /// The TLS server side for an intercepted host: a certificate for `name` from the
    /// sandbox's CA.
    pub(crate) fn server_config(&self, name: &str) -> Result<Arc<ServerConfig>, String> {
        let ca = self
            .ca
            .as_ref()
            .ok_or_else(|| "no CA: the sandbox has no secrets".to_string())?;
        let mut leaves = self.leaves.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = leaves.get(name) {
            return Ok(c.clone());
        }
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params =
            CertificateParams::new(vec![name.to_string()]).map_err(|e| e.to_string())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params
            .signed_by(&key, &ca.issuer)
            .map_err(|e| e.to_string())?;
        let chain = vec![cert.der().clone(), ca.issuer.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        leaves.insert(name.to_string(), config.clone());
        Ok(config)
    }

    /// The TLS client side toward real servers: the host's trust store and the
    /// policy's CA.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        self.upstream
            .get_or_init(|| {
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(host_roots());
                if let Some(p) = &self.extra_ca {
                    roots.add_parsable_certificates(load_pem_certs(p, POLICY_CA)?);
                }
                if roots.is_empty() {
                    return Err("no trusted CA on the host (install ca-certificates) and none named by the policy".into());
                }
                http1_client_config(roots)
            })
            .clone()
    }
}

/// A TLS client configuration that trusts `roots` and offers HTTP/1.1 (ALPN): the
/// broker's toward real servers, and `hsb serve`'s clients'.
pub fn http1_client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// How errors name the CA file a policy gives.
const POLICY_CA: &str = "the policy's CA file";

/// The certificates of the PEM file `p`; `what` names the file in errors, which say
/// what it lacked.
pub fn load_pem_certs(
    p: &std::path::Path,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let f = std::fs::File::open(p).map_err(|e| format!("{what} {}: {e}", p.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut std::io::BufReader::new(f))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} {}: not PEM: {e}", p.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
            p.display()
        ));
    }
    Ok(certs)
}

/// A stream that TLS writes one buffer at a time. rustls writes its records with
/// `write_vectored`, which on a socket is `writev(2)`: unlike the `send(2)` with
/// `MSG_NOSIGNAL` of a plain write, it raises SIGPIPE when the peer has closed, and a
/// process that takes SIGPIPE's default (the `hsb` CLI, so that `| head` ends it
/// quietly) dies of it. Under TLS every socket goes through this: not vectored, each
/// write is a plain one.
#[derive(Debug)]
pub struct OneBuffer<S>(pub S);

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for OneBuffer<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for OneBuffer<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
    // `poll_write_vectored` and `is_write_vectored` keep tokio's defaults: one buffer
    // at a time, through `poll_write`.
}
