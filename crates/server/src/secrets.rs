//! Secrets at rest: secret variables (R17) and webhook secrets are sealed
//! with the server's own key before they reach the database, and opened only
//! where they are needed (a host's desired state, a webhook's signature check).
//!
//! The key is 32 random bytes, made on the first start and kept in
//! `DATA/secrets.key` (hex, mode 0600), never in the database; a database
//! file or backup alone reveals no secret. The database records the key's id,
//! so a server started with a missing or different key file refuses to start
//! instead of sealing new secrets with a key the old ones do not open with.
//!
//! Sealing is XChaCha20-Poly1305 (authenticated encryption) with a random
//! 24-byte nonce per value, stored beside the ciphertext as
//! `sealed:v1:<nonce hex>:<ciphertext hex>`. The associated data names the
//! slot a value belongs to (project, scope and name), so a sealed value copied
//! into another row does not open.
//!
//! Architecture invariant: no value opened here is ever logged, put into an
//! error message, or returned by the API.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use ferry_domain::{Secret, VarScope};
use ferry_store::{Database, StoreError, VarRow};
use rand::RngExt;

use crate::init::write_secret;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "secrets.key";
/// The setting holding the id of the key this database's secrets are sealed with.
const KEY_ID_SETTING: &str = "secrets_key_id";
/// What every sealed value starts with; the version allows a change of scheme.
const SEALED_PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;

/// Why a key could not be loaded or a value not be sealed or opened. Never
/// carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error(
        "{path} is missing, but this database's {guards} were made with the key it held; restore the file from a \
         backup of the data directory"
    )]
    KeyMissing { path: PathBuf, guards: &'static str },
    #[error(
        "{path} is not the key this database's {guards} were made with; put the original file back (from a backup \
         of the data directory)"
    )]
    KeyMismatch { path: PathBuf, guards: &'static str },
    #[error("the stored value is not sealed")]
    NotSealed,
    #[error("the stored value is damaged")]
    Malformed,
    #[error("the stored value does not open with this server's key (damaged, or moved from another slot)")]
    Forged,
    #[error("sealing failed")]
    Seal,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The server's sealing key. `Debug` shows only its id.
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

/// A 32-byte key kept in a file of the data directory (hex, mode 0600),
/// never in the database, which records only its id: so a server started
/// with a missing or different key file refuses to start instead of going on
/// with a key that does not fit what the database holds.
#[derive(Debug, Clone, Copy)]
pub struct KeyFile {
    /// The file's name in the data directory.
    pub file: &'static str,
    /// The setting holding the key's id.
    pub id_setting: &'static str,
    /// Hashed into the id, so that two keys' ids never compare equal.
    pub id_label: &'static str,
    /// What the key makes, for error messages ("sealed secrets").
    pub guards: &'static str,
}

/// The key that seals secrets at rest.
pub const SECRETS_KEY: KeyFile =
    KeyFile { file: KEY_FILE, id_setting: KEY_ID_SETTING, id_label: "ferry secrets key id", guards: "sealed secrets" };

/// A short fingerprint of a key, safe to store and show.
pub(crate) fn key_id(spec: &KeyFile, key: &[u8; 32]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(spec.id_label.as_bytes());
    h.update(b"\0");
    h.update(key);
    hex::encode(&h.finalize()[..8])
}

fn parse_key(path: &Path, text: &str) -> Result<[u8; 32], SecretError> {
    let bad = || SecretError::KeyFile { path: path.to_path_buf(), reason: "expected 64 hex digits".into() };
    let bytes = hex::decode(text.trim()).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// Reads the key `spec` names, or creates it on the first start, and checks
/// it is the key the database recorded. A lost key is never silently
/// replaced.
pub async fn load_or_create_key(db: &dyn Database, data: &Path, spec: &KeyFile) -> Result<[u8; 32], SecretError> {
    let path = data.join(spec.file);
    let key_file_err = |e: std::io::Error| SecretError::KeyFile { path: path.clone(), reason: e.to_string() };
    let from_file = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mode = std::fs::metadata(&path).map_err(key_file_err)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!("{} can be read by other users; `chmod 600` it", path.display());
            }
            Some(parse_key(&path, &text)?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(key_file_err(e)),
    };
    let recorded = db.get_setting(spec.id_setting).await?;
    let guards = spec.guards;
    let key = match (from_file, recorded) {
        (Some(key), Some(id)) if key_id(spec, &key) == id => key,
        (Some(_), Some(_)) => return Err(SecretError::KeyMismatch { path, guards }),
        (None, Some(_)) => return Err(SecretError::KeyMissing { path, guards }),
        (Some(key), None) => {
            db.init_setting(spec.id_setting, &key_id(spec, &key)).await?;
            key
        }
        (None, None) => {
            let key: [u8; 32] = rand::rng().random();
            write_secret(&path, &format!("{}\n", hex::encode(key))).map_err(key_file_err)?;
            // Another server sharing this database may have won the race:
            // then our file is not the key, and we must not go on.
            if db.init_setting(spec.id_setting, &key_id(spec, &key)).await? != key_id(spec, &key) {
                return Err(SecretError::KeyMismatch { path, guards });
            }
            tracing::info!("created {} (keep it with backups of the database)", path.display());
            key
        }
    };
    Ok(key)
}

impl SecretKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(key: [u8; 32]) -> SecretKey {
        SecretKey { cipher: XChaCha20Poly1305::new(&Key::from(key)), id: key_id(&SECRETS_KEY, &key) }
    }

    /// Reads `DATA/secrets.key`, or creates it on the first start, and checks
    /// it is the key the database's secrets were sealed with.
    pub async fn load_or_create(db: &dyn Database, data: &Path) -> Result<SecretKey, SecretError> {
        load_or_create_key(db, data, &SECRETS_KEY).await.map(SecretKey::from_bytes)
    }

    /// Seals `plaintext` for the slot named by `context`.
    pub fn seal(&self, plaintext: &str, context: &str) -> Result<String, SecretError> {
        let nonce: [u8; NONCE_LEN] = rand::rng().random();
        let sealed = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() })
            .map_err(|_| SecretError::Seal)?;
        Ok(format!("{SEALED_PREFIX}{}:{}", hex::encode(nonce), hex::encode(sealed)))
    }

    /// Opens a value sealed for the slot named by `context`.
    pub fn open(&self, stored: &str, context: &str) -> Result<Secret, SecretError> {
        let rest = stored.strip_prefix(SEALED_PREFIX).ok_or(SecretError::NotSealed)?;
        let (nonce, sealed) = rest.split_once(':').ok_or(SecretError::Malformed)?;
        let nonce: [u8; NONCE_LEN] =
            hex::decode(nonce).ok().and_then(|n| n.try_into().ok()).ok_or(SecretError::Malformed)?;
        let sealed = hex::decode(sealed).map_err(|_| SecretError::Malformed)?;
        let plain = self
            .cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: &sealed, aad: context.as_bytes() })
            .map_err(|_| SecretError::Forged)?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| SecretError::Malformed)
    }

    /// Opens a stored secret variable.
    pub fn open_var(&self, row: &VarRow) -> Result<Secret, SecretError> {
        let scope = VarScope { env: row.env.clone(), host: row.host.clone() };
        self.open(&row.value, &var_context(&row.project, &scope, &row.key))
    }
}

/// Whether a stored value is sealed (rather than plaintext written by a
/// server from before sealing).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// The associated data of a secret variable: its project, scope and name.
pub fn var_context(project: &str, scope: &VarScope, key: &str) -> String {
    let env = scope.env.as_deref().unwrap_or("*");
    let host = scope.host.as_deref().unwrap_or("*");
    format!("var\0{project}\0{env}\0{host}\0{key}")
}

/// The associated data of a project's webhook secret.
pub fn webhook_context(project: &str) -> String {
    format!("webhook\0{project}")
}

/// Seals the webhook secrets that servers from before sealing stored in the
/// clear. Runs at every start; once every value is sealed it changes nothing.
pub async fn seal_plaintext_webhook_secrets(db: &dyn Database, key: &SecretKey) -> Result<usize, SecretError> {
    let mut sealed = 0;
    for project in db.projects().await? {
        let Some(secret) = project.source.as_ref().and_then(|s| s.webhook_secret.as_ref()) else { continue };
        if is_sealed(secret.expose()) {
            continue;
        }
        let value = key.seal(secret.expose(), &webhook_context(&project.name))?;
        db.set_webhook_secret(&project, Some(&value)).await?;
        sealed += 1;
    }
    if sealed > 0 {
        tracing::info!(projects = sealed, "webhook secrets stored in the clear are now sealed");
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use ferry_store::prelude::*;
    use ferry_store::sqlite::SqliteDatabase;
    use ferry_store::{NewProject, ProjectSource};

    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_bytes([7; 32])
    }

    #[test]
    fn sealed_values_open_only_in_their_own_slot() {
        let k = key();
        let sealed = k.seal("hunter2", "ctx-a").unwrap();
        assert!(is_sealed(&sealed) && !sealed.contains("hunter2"));
        assert_ne!(sealed, k.seal("hunter2", "ctx-a").unwrap(), "a fresh nonce every time");
        assert_eq!(k.open(&sealed, "ctx-a").unwrap().expose(), "hunter2");
        assert!(matches!(k.open(&sealed, "ctx-b"), Err(SecretError::Forged)));
        assert!(matches!(SecretKey::from_bytes([8; 32]).open(&sealed, "ctx-a"), Err(SecretError::Forged)));
        let mut tampered = sealed.clone();
        let last = if tampered.ends_with('0') { "1" } else { "0" };
        tampered.replace_range(tampered.len() - 1.., last);
        assert!(matches!(k.open(&tampered, "ctx-a"), Err(SecretError::Forged)));
        assert!(matches!(k.open("hunter2", "ctx-a"), Err(SecretError::NotSealed)));
        assert!(matches!(k.open("sealed:v1:zz:00", "ctx-a"), Err(SecretError::Malformed)));
        assert_eq!(k.open(&k.seal("", "c").unwrap(), "c").unwrap().expose(), "");
    }

    #[test]
    fn contexts_tell_slots_apart() {
        let project = VarScope::project();
        let host = VarScope { env: None, host: Some("web-1".into()) };
        assert_ne!(var_context("app", &project, "K"), var_context("app", &host, "K"));
        assert_ne!(var_context("app", &project, "K"), var_context("other", &project, "K"));
        assert_ne!(var_context("app", &project, "K"), webhook_context("app"));
        assert!(!format!("{:?}", key()).contains("0707"), "Debug shows the id, not the key");
    }

    #[test]
    fn the_secrets_key_id_is_the_one_databases_already_record() {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"ferry secrets key id\0");
        h.update([7u8; 32]);
        assert_eq!(key_id(&SECRETS_KEY, &[7; 32]), hex::encode(&h.finalize()[..8]));
    }

    #[tokio::test]
    async fn the_key_is_made_once_kept_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&dir.path().join("ferry.db")).await.unwrap();
        let first = SecretKey::load_or_create(&db, dir.path()).await.unwrap();
        let path = dir.path().join(KEY_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let sealed = first.seal("v", "c").unwrap();
        let again = SecretKey::load_or_create(&db, dir.path()).await.unwrap();
        assert_eq!(again.open(&sealed, "c").unwrap().expose(), "v", "the same key on the next start");

        let saved = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{}\n", hex::encode([1u8; 32]))).unwrap();
        let err = SecretKey::load_or_create(&db, dir.path()).await.unwrap_err();
        assert!(matches!(err, SecretError::KeyMismatch { .. }), "{err}");
        std::fs::remove_file(&path).unwrap();
        let err = SecretKey::load_or_create(&db, dir.path()).await.unwrap_err();
        assert!(matches!(err, SecretError::KeyMissing { .. }) && err.to_string().contains("backup"), "{err}");
        assert!(!path.exists(), "a lost key is never silently replaced");
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(SecretKey::load_or_create(&db, dir.path()).await, Err(SecretError::KeyFile { .. })));
        std::fs::write(&path, saved).unwrap();
        SecretKey::load_or_create(&db, dir.path()).await.unwrap();
    }

    #[tokio::test]
    async fn plaintext_webhook_secrets_are_sealed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&dir.path().join("ferry.db")).await.unwrap();
        let source = ProjectSource {
            repo_url: "file:///r".into(),
            webhook_secret: Some(Secret::new("plain-hook-secret")),
            branches: vec![],
            push_tags: false,
        };
        db.create_project(
            &NewProject { name: "git".into(), keep_releases: 5, source: Some(source), host_scope: None },
            1,
        )
        .await
        .unwrap();
        let k = key();
        assert_eq!(seal_plaintext_webhook_secrets(&db, &k).await.unwrap(), 1);
        assert_eq!(seal_plaintext_webhook_secrets(&db, &k).await.unwrap(), 0, "only once");
        let stored = db.project("git").await.unwrap().source.unwrap().webhook_secret.unwrap();
        assert!(is_sealed(stored.expose()));
        assert_eq!(k.open(stored.expose(), &webhook_context("git")).unwrap().expose(), "plain-hook-secret");
    }
}
