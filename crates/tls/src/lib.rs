//! TLS for Ferry: the server's certificate and key, and what its clients (the
//! agent and the CLI) trust.
//!
//! One crypto provider only: rustls with ring. aws-lc and openssl are never
//! built; a process that had two providers compiled in would have to pick one
//! at run time, and rustls panics when it cannot.
//!
//! Clients trust the Mozilla roots shipped in `webpki-roots`, the system's CA
//! store (as `rustls-native-certs` finds it, honouring `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`) and, optionally, one PEM file (`--ca-cert`) for a private
//! CA or a self-signed server certificate. There is deliberately no way to
//! skip verification.
//!
//! The server's certificate sits behind [`ServerCertificate`], which can read
//! its files again (SIGHUP) without touching connections already made.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;

mod der;

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

/// The server's certificate and key as read from their PEM files, ready to be
/// replaced by a newer pair ([`ServerCertificate::reload`]).
///
/// Each TLS handshake takes the pair current at that moment: connections
/// already made keep the one they started with.
#[derive(Debug)]
pub struct ServerCertificate {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Served>,
}

/// The pair in service and what it says about itself.
#[derive(Debug, Clone)]
struct Served {
    key: Arc<CertifiedKey>,
    info: CertificateInfo,
}

/// What the log says about a certificate: enough to tell which one is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject's distinguished name, e.g. `CN=ferry.example.org, O=Example`.
    pub subject: String,
    /// The end of its validity, e.g. `2027-01-31 23:59:59 UTC`.
    pub not_after: String,
    /// SHA-256 of the DER certificate, colon-separated upper-case hex (as
    /// `openssl x509 -fingerprint -sha256` prints it).
    pub sha256: String,
}

impl std::fmt::Display for CertificateInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "subject {}, valid until {}, SHA-256 {}", self.subject, self.not_after, self.sha256)
    }
}

impl CertificateInfo {
    /// Describes one DER certificate. Fields it cannot parse read "unknown":
    /// rustls has already accepted the certificate, this is only for the log.
    pub fn of(cert: &CertificateDer<'_>) -> CertificateInfo {
        let parsed = der::subject_and_not_after(cert.as_ref());
        let (subject, not_after) = parsed.unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        CertificateInfo { subject, not_after, sha256: fingerprint(cert.as_ref()) }
    }
}

/// SHA-256 of `der`, as `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    let hex = hex::encode_upper(sha2::Sha256::digest(der));
    let pairs: Vec<&str> = hex.as_bytes().chunks(2).filter_map(|p| std::str::from_utf8(p).ok()).collect();
    pairs.join(":")
}

impl ServerCertificate {
    /// Reads the pair; fails naming the file that cannot be read or parsed,
    /// or both when the key does not belong to the certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<ServerCertificate, TlsError> {
        let served = read_pair(cert, key)?;
        Ok(ServerCertificate { cert: cert.to_path_buf(), key: key.to_path_buf(), current: RwLock::new(served) })
    }

    /// Reads the files again. A good pair is served from the next handshake
    /// on and described in the answer; a bad one changes nothing.
    pub fn reload(&self) -> Result<CertificateInfo, TlsError> {
        let served = read_pair(&self.cert, &self.key)?;
        let info = served.info.clone();
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = served;
        Ok(info)
    }

    /// The certificate in service now.
    pub fn info(&self) -> CertificateInfo {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).info.clone()
    }

    /// The certificate file (for messages).
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).key.clone())
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<Served, TlsError> {
    let chain = read_certificates(cert)?;
    let key_fail = |reason: String| TlsError::Key { path: key.to_path_buf(), reason };
    let pem = std::fs::read(key).map_err(|e| key_fail(e.to_string()))?;
    let private =
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| key_fail(format!("no PEM private key in it: {e}")))?;
    let info = CertificateInfo::of(&chain[0]);
    let mismatch = |reason: String| TlsError::Mismatch { cert: cert.to_path_buf(), key: key.to_path_buf(), reason };
    let certified = CertifiedKey::from_der(chain, private, &provider()).map_err(|e| mismatch(e.to_string()))?;
    // from_der lets a key whose public half it cannot tell pass; ring can
    // always tell, so anything but a match is refused here.
    certified.keys_match().map_err(|e| mismatch(e.to_string()))?;
    Ok(Served { key: Arc::new(certified), info })
}

/// The server side: serves whatever `cert` holds at each handshake.
pub fn server_config(cert: Arc<ServerCertificate>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    // HTTP/1.1 only: the server speaks nothing else, and WebSocket upgrades
    // need it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The system's CA certificates rustls can use as roots, read once per
/// process (`SSL_CERT_FILE` and `SSL_CERT_DIR` honoured). Unreadable or
/// unparsable entries are skipped (a broken file in /etc/ssl/certs must not
/// stop a client that does not need it), said once at debug level.
///
/// For clients whose TLS configuration another library builds (lettre's
/// SMTP); [`client_config`] includes these already.
pub fn system_ca_certificates() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("skipping part of the system CA store: {e}");
        }
        let total = found.certs.len();
        let usable: Vec<_> =
            found.certs.into_iter().filter(|c| rustls::RootCertStore::empty().add(c.clone()).is_ok()).collect();
        tracing::debug!(
            usable = usable.len(),
            skipped = total - usable.len(),
            "system CA store read (certificates rustls cannot use are skipped)"
        );
        usable
    })
}

/// The client side: webpki roots, the system's CA store, and the
/// certificates in `ca_cert`, if given.
pub fn client_config(ca_cert: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    roots.add_parsable_certificates(system_ca_certificates().iter().cloned());
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
        let err =
            ServerCertificate::load(Path::new("/nonexistent/cert.pem"), Path::new("/nonexistent/key.pem")).unwrap_err();
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

    /// A certificate for `name` with its own key: (certificate PEM, key PEM, DER).
    fn pair(name: &str) -> (String, String, Vec<u8>) {
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    #[test]
    fn reload_serves_a_good_new_pair_and_keeps_the_old_one_otherwise() {
        let dir = tempfile_dir("reload");
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        let (a_cert, a_key, a_der) = pair("a.example");
        std::fs::write(&cert, &a_cert).unwrap();
        std::fs::write(&key, &a_key).unwrap();
        let served = ServerCertificate::load(&cert, &key).unwrap();
        let a = served.info();
        assert_eq!(a.sha256, fingerprint(&a_der));
        assert!(a.subject.contains("CN=a.example"), "{a}");
        assert!(a.not_after.ends_with(" UTC") && a.not_after.len() == 23, "{a}");

        // A key of another certificate: refused, naming both files; A stays.
        let (b_cert, b_key, b_der) = pair("b.example");
        std::fs::write(&cert, &b_cert).unwrap();
        let err = served.reload().unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains(cert.to_str().unwrap()), "{err}");
        assert_eq!(served.info(), a);

        // Garbage in the key file: refused, naming it.
        std::fs::write(&key, "garbage").unwrap();
        let err = served.reload().unwrap_err();
        assert!(err.to_string().contains(key.to_str().unwrap()), "{err}");
        assert_eq!(served.info(), a);

        std::fs::write(&key, &b_key).unwrap();
        let b = served.reload().unwrap();
        assert_eq!(b.sha256, fingerprint(&b_der));
        assert_eq!(served.info(), b);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(what: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferry-tls-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn webpki_roots_alone_build() {
        assert!(client_config(None).is_ok());
    }
}
