//! TLS for Ferry: the server's certificate and key, and what its clients (the
//! agent and the CLI) trust.
//!
//! One crypto provider only: rustls with ring. aws-lc and openssl are never
//! built; a process that had two providers compiled in would have to pick one
//! at run time, and rustls panics when it cannot.
//!
//! Clients trust the Mozilla roots shipped in `webpki-roots` plus, optionally,
//! one PEM file (`--ca-cert`) for a private CA or a self-signed server
//! certificate. There is deliberately no way to skip verification.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Errors reading certificates and keys; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate file is missing, unreadable, or holds no usable certificate.
    #[error("cannot read the certificate file {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    /// The key file is missing, unreadable, or holds no private key.
    #[error("cannot read the private key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    /// rustls refused the pair, e.g. a key of another certificate.
    #[error("the certificate {cert} and the key {key} do not go together: {reason}")]
    Mismatch { cert: PathBuf, key: PathBuf, reason: String },
    /// The provider cannot offer the protocol versions asked for (not expected with ring).
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// Installs ring as the process's default rustls provider.
///
/// Libraries that build their TLS configuration from the process default
/// (reqwest built with `rustls-no-provider`) panic without one, so every
/// entry point calls this first. Calling it again is harmless.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed: ours, as nothing else
    // is compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file, in order (the leaf first for a chain).
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::Certificate { path: path.to_path_buf(), reason };
    // Read first so that a missing file says so, not "no certificate".
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into()));
    }
    Ok(certs)
}

/// The server side: the certificate chain and private key from PEM files.
///
/// Fails naming the file that cannot be read or parsed, or both when the key
/// does not belong to the certificate.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = read_certificates(cert)?;
    let key_fail = |reason: String| TlsError::Key { path: key.to_path_buf(), reason };
    let pem = std::fs::read(key).map_err(|e| key_fail(e.to_string()))?;
    let private =
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| key_fail(format!("no PEM private key in it: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsError::Mismatch { cert: cert.to_path_buf(), key: key.to_path_buf(), reason: e.to_string() })?;
    // HTTP/1.1 only: the server speaks nothing else, and WebSocket upgrades
    // need it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client side: webpki roots plus the certificates in `ca_cert`, if given.
pub fn client_config(ca_cert: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_cert {
        for cert in read_certificates(path)? {
            roots.add(cert).map_err(|e| TlsError::Certificate {
                path: path.to_path_buf(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// When `err` (or anything it wraps) is a rejected server certificate: a
/// message that says so and what to do about it.
pub fn untrusted_certificate(err: &(dyn StdError + 'static)) -> Option<String> {
    let reason = rustls_certificate_error(err)?;
    // webpki refuses a certificate with CA:TRUE as the server's own, even
    // when it is the one given to --ca-cert; `openssl req -x509` makes such
    // certificates unless told otherwise.
    if reason.contains("CaUsedAsEndEntity") {
        return Some(format!(
            "the server's TLS certificate is a CA certificate (basicConstraints CA:TRUE), which clients refuse as a \
             server's certificate: make it with CA:FALSE, or sign it with a separate CA and pass that to --ca-cert \
             ({reason})"
        ));
    }
    Some(format!("{CA_CERT_HINT} ({reason})"))
}

/// What rustls said about the server's certificate, if that is the error.
fn rustls_certificate_error(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(reason) = certificate_error(e) {
            return Some(reason);
        }
        // io::Error::source skips the error it wraps, so look inside it too.
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
            && let Some(reason) = certificate_error(inner)
        {
            return Some(reason);
        }
        // Some layers (hyper-util's connector) hand on only a message: rustls
        // starts its certificate errors with these words.
        let text = e.to_string();
        if let Some(at) = text.find("invalid peer certificate") {
            return Some(text[at..].to_string());
        }
        next = e.source();
    }
    None
}

fn certificate_error(e: &(dyn StdError + 'static)) -> Option<String> {
    match e.downcast_ref::<rustls::Error>() {
        Some(r @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)) => {
            Some(r.to_string())
        }
        _ => None,
    }
}

/// What to do about a server certificate that is not trusted.
const CA_CERT_HINT: &str = "the server's TLS certificate is not trusted; if it is signed by a private CA or \
     self-signed, pass --ca-cert FILE (or set FERRY_CA_CERT) with that CA's certificate in PEM";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        install_crypto_provider();
        let err = server_config(Path::new("/nonexistent/cert.pem"), Path::new("/nonexistent/key.pem")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
        let err = client_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        let dir = std::env::temp_dir().join(format!("ferry-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("empty.pem");
        std::fs::write(&file, "not a certificate\n").unwrap();
        let err = client_config(Some(&file)).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn webpki_roots_alone_build() {
        assert!(client_config(None).is_ok());
    }
}
