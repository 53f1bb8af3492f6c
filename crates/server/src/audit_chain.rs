//! What makes the audit trail (R27) hold against someone who can write the
//! database: a key and an anchor, both kept in the data directory outside it.
//!
//! - **The key** (`DATA/audit.key`, made, kept and checked exactly like
//!   `secrets.key`, see [`crate::secrets::load_or_create_key`]) keys every new
//!   entry's hash: an HMAC-SHA256 (crates/domain `audit.rs`). Without it no
//!   one can recompute a chain that verifies.
//! - **The anchor** (`DATA/audit.checkpoint`) records the newest entry the
//!   server appended (its `seq` and keyed hash), from which entry on the trail
//!   is keyed (entries before predate keying and keep their plain SHA-256),
//!   and a MAC of both under the key. A chain cut short is still a valid
//!   chain; verification fails unless the trail reaches the anchored entry
//!   with the anchored hash. It is rewritten after every append (in place,
//!   into one of two slots: see [`SLOT`]).
//!
//! Every append goes through [`AuditChain::append`], which holds one lock
//! across the database append and the anchor update, so the anchor moves
//! strictly along the chain: an appended entry that does not follow the
//! anchored one means the trail in the database was changed behind the
//! server's back. The anchor then stays where it was, so that verification
//! keeps failing until an operator has looked (and, having looked, removes
//! the anchor file: the next start begins a new one at the newest entry).
//!
//! Not protected: someone with both the database and the key (root on the
//! server) can rewrite everything, anchor included; rolling the anchor file
//! back together with the database hides what came after the older anchor.
//! A checkpoint the operator keeps elsewhere (`verify` prints one) covers
//! both, up to that checkpoint.

use std::path::{Path, PathBuf};

use ferry_domain::audit::{Anchor, AuditKey, ChainBreak, ChainVerifier, Checkpoint, PinOrigin, Scheme};
use ferry_domain::rfc3339_from_millis;
use ferry_proto::api::{AuditBreak, AuditCheckpoint, AuditVerification};
use ferry_store::{AuditEntry, Database, NewAuditEntry, StoreError};

use crate::now_ms;
use crate::secrets::{KeyFile, SecretError, load_or_create_key};

/// The anchor's file name in the data directory.
pub const ANCHOR_FILE: &str = "audit.checkpoint";

/// The audit key: a file of its own, its id recorded in the database.
pub const AUDIT_KEY: KeyFile =
    KeyFile { file: "audit.key", id_setting: "audit_key_id", id_label: "ferry audit key id", guards: "audit entries" };

/// Entries read per page while verifying.
const VERIFY_PAGE: u32 = 1000;

/// Why the trail's key or anchor could not be set up, or an entry not be
/// appended or the trail not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// `audit.key` is unreadable, missing or not the key the database knows.
    #[error("audit key: {0}")]
    Key(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The checkpoint file could not be written at start.
    #[error("{path}: {reason}")]
    Anchor { path: PathBuf, reason: String },
}

/// The anchor as stored: one line of JSON.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorFile {
    seq: i64,
    hash: String,
    at: i64,
    keyed_from: i64,
    started_at: i64,
    mac: String,
}

/// Something about the anchor that verification must report even when the
/// chain itself is whole.
#[derive(Debug, Clone)]
struct Problem {
    /// Where it was noticed.
    seq: i64,
    message: String,
}

/// What the lock guards.
#[derive(Debug)]
struct State {
    /// The anchor last written, or read at start; `None` when the file could
    /// not be trusted at start.
    anchor: Option<Anchor>,
    /// The first keyed entry.
    keyed_from: i64,
    /// Set when the anchor stopped following the trail; it then no longer
    /// moves.
    problem: Option<Problem>,
}

/// The trail's key and anchor; see the module documentation.
#[derive(Debug)]
pub struct AuditChain {
    key: AuditKey,
    path: PathBuf,
    state: tokio::sync::Mutex<State>,
}

impl AuditChain {
    /// Loads (or on the first start, makes) the key, then reads the anchor, or
    /// begins one at the newest entry when there is none: on the first start
    /// with keying, entries already stored predate it.
    pub async fn open(db: &dyn Database, data: &Path) -> Result<AuditChain, AuditError> {
        let key = AuditKey::from_bytes(load_or_create_key(db, data, &AUDIT_KEY).await?);
        let path = data.join(ANCHOR_FILE);
        let head = db.audit_head().await?;
        let head_cp = head.as_ref().map_or_else(Checkpoint::genesis, checkpoint_of);
        let first_keyed = db.audit_first_with_scheme(Scheme::Keyed.as_str()).await?;
        let state = match read_anchor(&path, &key) {
            Ok(Some(anchor)) => {
                let keyed_from = anchor.keyed_from;
                let mut state = State { anchor: Some(anchor), keyed_from, problem: None };
                catch_up(db, &key, &path, &mut state, &head_cp).await?;
                state
            }
            Ok(None) => {
                let keyed_from = first_keyed.unwrap_or(head_cp.seq + 1);
                if first_keyed.is_some() {
                    // Keyed entries but no anchor: the file was removed (by an
                    // operator after a reported break, or by someone covering
                    // up a truncation).
                    tracing::warn!(
                        "{} was missing: a new audit checkpoint begins at entry {}; entries removed before now \
                         cannot be detected by it",
                        path.display(),
                        head_cp.seq
                    );
                } else if head_cp.seq > 0 {
                    tracing::info!(
                        "the audit trail is keyed from entry {keyed_from} on; its {} entries before predate keying",
                        head_cp.seq
                    );
                }
                let now = now_ms();
                let anchor = Anchor { head: head_cp, at: now, keyed_from, started_at: now };
                write_anchor(&path, &key, &anchor)
                    .map_err(|e| AuditError::Anchor { path: path.clone(), reason: e.to_string() })?;
                State { anchor: Some(anchor), keyed_from, problem: None }
            }
            Err(reason) => {
                // Left in place as evidence; verification reports it until an
                // operator has looked and removed it.
                let message = format!("the server's checkpoint file cannot be trusted: {reason}");
                tracing::error!("{}: {message}", path.display());
                let keyed_from = first_keyed.unwrap_or(head_cp.seq + 1);
                State { anchor: None, keyed_from, problem: Some(Problem { seq: head_cp.seq, message }) }
            }
        };
        Ok(AuditChain { key, path, state: tokio::sync::Mutex::new(state) })
    }

    /// Appends an entry, keyed, and moves the anchor to it.
    pub async fn append(&self, db: &dyn Database, entry: &NewAuditEntry) -> Result<AuditEntry, AuditError> {
        // Held across both steps: the anchor must see the appends in the
        // order the database chained them.
        let mut state = self.state.lock().await;
        let stored = db.append_audit(entry, &self.key).await?;
        let seq = stored.record.seq;
        if state.problem.is_some() {
            return Ok(stored);
        }
        let Some(anchor) = &state.anchor else { return Ok(stored) };
        if seq == anchor.head.seq + 1 && stored.prev_hash == anchor.head.hash {
            let next = Anchor { head: checkpoint_of(&stored), at: now_ms(), ..anchor.clone() };
            if let Err(e) = write_anchor(&self.path, &self.key, &next) {
                // The file stays at an older entry, which still holds; the
                // verification says that it lags.
                tracing::error!("cannot write {}: {e}", self.path.display());
            }
            state.anchor = Some(next);
        } else {
            let message = format!(
                "entry {seq} was appended after entry {}, but the server's checkpoint is at entry {}: the trail \
                 in the database was changed behind the server's back, and the checkpoint stays there",
                seq - 1,
                anchor.head.seq
            );
            tracing::error!("audit trail: {message}");
            state.problem = Some(Problem { seq, message });
        }
        Ok(stored)
    }

    /// Recomputes the whole chain, checks that it reaches the server's anchor
    /// and `given` (a checkpoint the operator kept), and names the first
    /// thing that does not match.
    pub async fn verify(&self, db: &dyn Database, given: Option<Checkpoint>) -> Result<AuditVerification, AuditError> {
        // The anchor in memory and its file, read together: no append can
        // slip in between. Entries appended later only extend the chain.
        let (anchor, keyed_from, problem) = {
            let state = self.state.lock().await;
            let problem = state.problem.clone().or_else(|| self.file_problem(state.anchor.as_ref()));
            (state.anchor.clone(), state.keyed_from, problem)
        };
        let mut verifier = ChainVerifier::new(&self.key, keyed_from);
        if let Some(a) = &anchor {
            verifier.pin(a.head.clone(), PinOrigin::Server);
        }
        if let Some(c) = given {
            verifier.pin(c, PinOrigin::Given);
        }
        let mut after = 0;
        let mut broken = None;
        'pages: loop {
            let page = db.audit_chain(after, VERIFY_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.record.seq;
            for e in &page {
                if let Err(b) = verifier.push(&e.record, &e.scheme, &e.prev_hash, &e.hash) {
                    broken = Some(break_of(&b));
                    break 'pages;
                }
            }
        }
        if broken.is_none() {
            broken = verifier.finish().err().map(|b| break_of(&b));
        }
        if broken.is_none() {
            broken = problem.map(|p| AuditBreak { seq: p.seq, kind: "checkpoint".into(), message: p.message });
        }
        let head = verifier.head();
        Ok(AuditVerification {
            ok: broken.is_none(),
            verified: verifier.count(),
            head_seq: head.map(|(s, _)| s),
            head_hash: head.map(|(_, h)| h.to_string()),
            broken,
            unkeyed: verifier.unkeyed(),
            keyed_from: Some(keyed_from),
            checkpoint: anchor.map(|a| AuditCheckpoint {
                seq: a.head.seq,
                hash: a.head.hash,
                at: rfc3339_from_millis(a.at),
                since: rfc3339_from_millis(a.started_at),
            }),
        })
    }

    /// What is wrong with the anchor file, if it is not the anchor the server
    /// last wrote.
    fn file_problem(&self, anchor: Option<&Anchor>) -> Option<Problem> {
        let anchor = anchor?;
        let seq = anchor.head.seq;
        let message = match read_anchor(&self.path, &self.key) {
            Ok(Some(file)) if file == *anchor => return None,
            Ok(Some(file)) => format!(
                "the server's checkpoint file says entry {}, but the server last checkpointed entry {seq}: the file \
                 was replaced, or could not be written (see the server's log)",
                file.head.seq
            ),
            Ok(None) => format!(
                "the server's checkpoint file is gone (the server last checkpointed entry {seq}); it is written \
                 again with the next entry"
            ),
            Err(reason) => format!("the server's checkpoint file cannot be trusted: {reason}"),
        };
        Some(Problem { seq, message })
    }
}

/// An entry's checkpoint.
fn checkpoint_of(e: &AuditEntry) -> Checkpoint {
    Checkpoint { seq: e.record.seq, hash: e.hash.clone() }
}

fn break_of(b: &ChainBreak) -> AuditBreak {
    AuditBreak { seq: b.seq(), kind: b.kind().into(), message: b.to_string() }
}

/// At start, with an anchor read from its file: the trail must still reach
/// it. Entries after it are those a server stopped between appending and
/// writing the anchor; the anchor moves on to the newest.
async fn catch_up(
    db: &dyn Database,
    key: &AuditKey,
    path: &Path,
    state: &mut State,
    head: &Checkpoint,
) -> Result<(), AuditError> {
    let Some(anchor) = state.anchor.clone() else { return Ok(()) };
    if *head == anchor.head {
        return Ok(());
    }
    let anchored_entry_holds = if anchor.head.seq == 0 {
        anchor.head.hash == ferry_domain::audit::GENESIS_HASH
    } else {
        let found = db.audit_chain(anchor.head.seq - 1, 1).await?;
        found.first().is_some_and(|e| e.record.seq == anchor.head.seq && e.hash == anchor.head.hash)
    };
    if head.seq > anchor.head.seq && anchored_entry_holds {
        let next = Anchor { head: head.clone(), at: now_ms(), ..anchor };
        write_anchor(path, key, &next)
            .map_err(|e| AuditError::Anchor { path: path.to_path_buf(), reason: e.to_string() })?;
        state.anchor = Some(next);
        return Ok(());
    }
    let (seq, message) = if head.seq < anchor.head.seq {
        let message = format!(
            "the trail in the database ends at entry {}, but the server's checkpoint says it reaches entry {}: \
             entries were removed",
            head.seq, anchor.head.seq
        );
        (head.seq + 1, message)
    } else {
        let message = format!(
            "entry {} in the database does not have the hash the server's checkpoint holds for it: the trail was \
             rewritten",
            anchor.head.seq
        );
        (anchor.head.seq, message)
    };
    tracing::error!("audit trail: {message}");
    state.problem = Some(Problem { seq, message });
    Ok(())
}

/// The anchor file holds two slots of this many bytes; each anchor is
/// written into the slot its `seq`'s parity picks, as one line of JSON padded
/// with spaces. Replacing a file by rename costs about a millisecond on ext4
/// (it flushes the new file's data first), several times the database append
/// itself; overwriting a slot in place costs microseconds. A write torn by a
/// power failure spoils one slot, and the other still holds the anchor before
/// it, which the trail still reaches.
const SLOT: usize = 512;

/// Reads the anchor file: `None` when there is none, an error (saying why)
/// when it holds no slot whose MAC matches. Of two good slots the newer
/// anchor wins.
fn read_anchor(path: &Path, key: &AuditKey) -> Result<Option<Anchor>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut newest: Option<Anchor> = None;
    let mut why = "it holds no checkpoint".to_string();
    for slot in bytes.chunks(SLOT) {
        // A slot never written is zeros (a file begun with the other slot).
        let text = String::from_utf8_lossy(slot);
        let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        if text.is_empty() {
            continue;
        }
        match parse_slot(text, key) {
            Ok(a) if newest.as_ref().is_none_or(|n| a.head.seq > n.head.seq) => newest = Some(a),
            Ok(_) => {}
            Err(e) => why = e,
        }
    }
    newest.map(Some).ok_or(why)
}

fn parse_slot(text: &str, key: &AuditKey) -> Result<Anchor, String> {
    let f: AnchorFile = serde_json::from_str(text).map_err(|e| format!("it is damaged ({e})"))?;
    let anchor = Anchor {
        head: Checkpoint { seq: f.seq, hash: f.hash },
        at: f.at,
        keyed_from: f.keyed_from,
        started_at: f.started_at,
    };
    if key.anchor_mac(&anchor) != f.mac {
        return Err("it was not written by this server (its MAC does not match): it was edited".into());
    }
    Ok(anchor)
}

/// Writes the anchor into its slot of the file, in place (see [`SLOT`]).
/// Not synced to disk, like the database's own commits (`synchronous =
/// NORMAL`): syncing would cost every audited request a disk flush.
fn write_anchor(path: &Path, key: &AuditKey, a: &Anchor) -> std::io::Result<()> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let file = AnchorFile {
        seq: a.head.seq,
        hash: a.head.hash.clone(),
        at: a.at,
        keyed_from: a.keyed_from,
        started_at: a.started_at,
        mac: key.anchor_mac(a),
    };
    let mut line = serde_json::to_string(&file).map_err(std::io::Error::other)?;
    if line.len() >= SLOT {
        return Err(std::io::Error::other("the checkpoint does not fit its slot"));
    }
    line.extend(std::iter::repeat_n(' ', SLOT - 1 - line.len()));
    line.push('\n');
    let offset = if a.head.seq % 2 == 0 { 0 } else { SLOT as u64 };
    // Opened each time rather than kept open: a file removed meanwhile is
    // made again, not written to behind its unlinked name.
    let f = std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
    f.write_all_at(line.as_bytes(), offset)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use ferry_store::prelude::*;
    use ferry_store::sqlite::SqliteDatabase;

    use super::*;

    /// The audit key's file is told apart from the secrets key's by its id,
    /// even holding the same bytes.
    #[test]
    fn the_audit_key_id_differs_from_the_secrets_key_id() {
        use crate::secrets::{SECRETS_KEY, key_id};
        assert_ne!(key_id(&AUDIT_KEY, &[7; 32]), key_id(&SECRETS_KEY, &[7; 32]));
    }

    fn entry(n: i64) -> NewAuditEntry {
        NewAuditEntry {
            at: 1_700_000_000_000 + n,
            actor: "admin".into(),
            source: "127.0.0.1".into(),
            action: "POST /api/v1/projects".into(),
            object: format!("project=p{n}"),
            outcome: "201".into(),
            summary: String::new(),
        }
    }

    async fn open(dir: &Path) -> (SqliteDatabase, AuditChain) {
        let db = SqliteDatabase::open(&dir.join("ferry.db")).await.unwrap();
        let chain = AuditChain::open(&db, dir).await.unwrap();
        (db, chain)
    }

    fn anchor_on_disk(dir: &Path) -> Anchor {
        let key = std::fs::read_to_string(dir.join("audit.key")).unwrap();
        let key = AuditKey::from_bytes(hex::decode(key.trim()).unwrap().try_into().unwrap());
        read_anchor(&dir.join(ANCHOR_FILE), &key).unwrap().unwrap()
    }

    #[tokio::test]
    async fn appends_are_keyed_and_anchored_and_verify_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (db, chain) = open(dir.path()).await;
        for file in ["audit.key", ANCHOR_FILE] {
            let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let v = chain.verify(&db, None).await.unwrap();
        assert!(v.ok && v.verified == 0, "{v:?}");
        assert_eq!(v.checkpoint.as_ref().map(|c| c.seq), Some(0));

        let mut last = None;
        for n in 1..=3 {
            last = Some(chain.append(&db, &entry(n)).await.unwrap());
        }
        let last = last.unwrap();
        assert_eq!(last.scheme, Scheme::Keyed.as_str());
        let on_disk = anchor_on_disk(dir.path());
        assert_eq!((on_disk.head.seq, on_disk.head.hash.as_str(), on_disk.keyed_from), (3, last.hash.as_str(), 1));
        let v = chain.verify(&db, None).await.unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!((v.verified, v.unkeyed, v.keyed_from), (3, 0, Some(1)));
        assert_eq!(v.checkpoint.as_ref().map(|c| (c.seq, c.hash.clone())), Some((3, last.hash.clone())));

        // A checkpoint kept elsewhere still holds; a wrong one does not.
        let kept = Checkpoint { seq: 2, hash: db.audit_chain(1, 1).await.unwrap()[0].hash.clone() };
        assert!(chain.verify(&db, Some(kept.clone())).await.unwrap().ok);
        let wrong = Checkpoint { seq: 2, hash: "0".repeat(64) };
        let b = chain.verify(&db, Some(wrong)).await.unwrap().broken.unwrap();
        assert_eq!((b.seq, b.kind.as_str()), (2, "checkpoint_mismatch"), "{b:?}");
        let ahead = Checkpoint { seq: 9, hash: "0".repeat(64) };
        let b = chain.verify(&db, Some(ahead)).await.unwrap().broken.unwrap();
        assert_eq!((b.seq, b.kind.as_str()), (4, "truncated"), "{b:?}");
        assert!(b.message.contains("the given checkpoint says it reaches entry 9"), "{b:?}");

        // The next start reads the same key and anchor.
        drop(chain);
        let chain = AuditChain::open(&db, dir.path()).await.unwrap();
        assert!(chain.verify(&db, Some(kept)).await.unwrap().ok);
        chain.append(&db, &entry(4)).await.unwrap();
        let v = chain.verify(&db, None).await.unwrap();
        assert!(v.ok && v.verified == 4, "{v:?}");
    }

    #[tokio::test]
    async fn a_server_stopped_between_append_and_anchor_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let (db, chain) = open(dir.path()).await;
        chain.append(&db, &entry(1)).await.unwrap();
        // As if the server died after the database committed entry 2.
        let key = AuditKey::from_bytes(load_or_create_key(&db, dir.path(), &AUDIT_KEY).await.unwrap());
        let two = db.append_audit(&entry(2), &key).await.unwrap();
        drop(chain);
        let chain = AuditChain::open(&db, dir.path()).await.unwrap();
        assert_eq!(anchor_on_disk(dir.path()).head, Checkpoint { seq: 2, hash: two.hash });
        assert!(chain.verify(&db, None).await.unwrap().ok);
    }

    #[tokio::test]
    async fn an_edited_missing_or_rolled_back_anchor_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (db, chain) = open(dir.path()).await;
        chain.append(&db, &entry(1)).await.unwrap();
        let one = std::fs::read_to_string(dir.path().join(ANCHOR_FILE)).unwrap();
        chain.append(&db, &entry(2)).await.unwrap();

        // Rolled back while the server runs.
        std::fs::write(dir.path().join(ANCHOR_FILE), &one).unwrap();
        let b = chain.verify(&db, None).await.unwrap().broken.unwrap();
        assert_eq!(b.kind, "checkpoint", "{b:?}");
        assert!(b.message.contains("says entry 1, but the server last checkpointed entry 2"), "{b:?}");
        // Removed: written again with the next entry.
        std::fs::remove_file(dir.path().join(ANCHOR_FILE)).unwrap();
        let b = chain.verify(&db, None).await.unwrap().broken.unwrap();
        assert!(b.message.contains("is gone"), "{b:?}");
        chain.append(&db, &entry(3)).await.unwrap();
        assert!(chain.verify(&db, None).await.unwrap().ok);

        // Edited without the key: the next start does not trust it, and says so.
        let mut forged = std::fs::read_to_string(dir.path().join(ANCHOR_FILE)).unwrap();
        let three = db.audit_chain(2, 1).await.unwrap()[0].hash.clone();
        let two = db.audit_chain(1, 1).await.unwrap()[0].hash.clone();
        forged = forged.replace("\"seq\":3", "\"seq\":2").replace(&three, &two);
        std::fs::write(dir.path().join(ANCHOR_FILE), &forged).unwrap();
        drop(chain);
        let chain = AuditChain::open(&db, dir.path()).await.unwrap();
        let v = chain.verify(&db, None).await.unwrap();
        let b = v.broken.unwrap();
        assert_eq!(b.kind, "checkpoint", "{b:?}");
        assert!(b.message.contains("MAC does not match"), "{b:?}");
        assert_eq!(v.checkpoint, None);
        chain.append(&db, &entry(4)).await.unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(ANCHOR_FILE)).unwrap(), forged, "left as evidence");

        // Removed by an operator who has looked: a new anchor begins.
        std::fs::remove_file(dir.path().join(ANCHOR_FILE)).unwrap();
        drop(chain);
        let chain = AuditChain::open(&db, dir.path()).await.unwrap();
        let v = chain.verify(&db, None).await.unwrap();
        assert!(v.ok && v.verified == 4, "{v:?}");
        assert_eq!(anchor_on_disk(dir.path()).keyed_from, 1, "keying still began at entry 1");
    }

    #[test]
    fn the_anchor_file_keeps_the_newer_of_two_slots_and_survives_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ANCHOR_FILE);
        let key = AuditKey::from_bytes([5; 32]);
        let anchor = |seq: i64| Anchor {
            head: Checkpoint { seq, hash: format!("{seq:064x}") },
            at: 10 + seq,
            keyed_from: 1,
            started_at: 1,
        };
        assert_eq!(read_anchor(&path, &key), Ok(None));
        write_anchor(&path, &key, &anchor(7)).unwrap();
        assert_eq!(read_anchor(&path, &key), Ok(Some(anchor(7))), "only the second slot written");
        write_anchor(&path, &key, &anchor(8)).unwrap();
        assert_eq!(read_anchor(&path, &key), Ok(Some(anchor(8))));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * SLOT as u64);
        write_anchor(&path, &key, &anchor(9)).unwrap();
        assert_eq!(read_anchor(&path, &key), Ok(Some(anchor(9))));
        // The newer slot torn: the older one still holds.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[SLOT + 20..SLOT + 40].fill(b'#');
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_anchor(&path, &key), Ok(Some(anchor(8))));
        // Both spoilt, or under another key: not trusted.
        assert!(read_anchor(&path, &AuditKey::from_bytes([6; 32])).unwrap_err().contains("MAC"));
        bytes[..10].fill(b'#');
        std::fs::write(&path, &bytes).unwrap();
        assert!(read_anchor(&path, &key).is_err());
        std::fs::write(&path, &bytes[..SLOT]).unwrap();
        assert!(read_anchor(&path, &key).unwrap_err().contains("damaged"));
        std::fs::write(&path, b"").unwrap();
        assert!(read_anchor(&path, &key).is_err(), "an empty file is not a missing one");
    }

    #[tokio::test]
    async fn a_lost_audit_key_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let (db, chain) = open(dir.path()).await;
        chain.append(&db, &entry(1)).await.unwrap();
        drop(chain);
        let key = dir.path().join("audit.key");
        let saved = std::fs::read_to_string(&key).unwrap();
        std::fs::remove_file(&key).unwrap();
        let err = AuditChain::open(&db, dir.path()).await.unwrap_err();
        assert!(matches!(err, AuditError::Key(SecretError::KeyMissing { .. })), "{err}");
        assert!(err.to_string().contains("audit entries"), "{err}");
        assert!(!key.exists(), "a lost key is never silently replaced");
        // Another key: refused too.
        std::fs::write(&key, format!("{}\n", hex::encode([9u8; 32]))).unwrap();
        let err = AuditChain::open(&db, dir.path()).await.unwrap_err();
        assert!(matches!(err, AuditError::Key(SecretError::KeyMismatch { .. })), "{err}");
        std::fs::write(&key, saved).unwrap();
        let chain = AuditChain::open(&db, dir.path()).await.unwrap();
        assert!(chain.verify(&db, None).await.unwrap().ok);
    }

    #[tokio::test]
    async fn the_audit_key_is_not_the_secrets_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&dir.path().join("ferry.db")).await.unwrap();
        crate::secrets::SecretKey::load_or_create(&db, dir.path()).await.unwrap();
        AuditChain::open(&db, dir.path()).await.unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_ne!(read("secrets.key"), read("audit.key"));
        assert_ne!(db.get_setting("secrets_key_id").await.unwrap(), db.get_setting("audit_key_id").await.unwrap());
    }
}
