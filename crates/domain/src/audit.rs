//! The audit trail's hash chain (R27).
//!
//! Each entry stores the hash of the entry before it, and its own hash covers
//! that link and its whole content, so changing, removing or reordering any
//! entry breaks the chain from there on. The encoding is unambiguous: every
//! field is length-prefixed, so no two different entries encode to the same
//! bytes whatever their text contains.
//!
//! A chain anyone can recompute proves nothing to someone who can write the
//! database: edit a row, recompute every hash after it, and the chain is
//! whole again. So an entry's hash is an HMAC-SHA256 under the server's
//! audit key ([`AuditKey`]), which is kept outside the database: without the
//! key no one can make a hash that verifies. Entries written before the trail
//! was keyed keep their plain SHA-256 hash ([`Scheme::Unkeyed`]); the first
//! keyed entry's hash covers the last of them, so they cannot be rewritten
//! either once a keyed entry follows.
//!
//! What a chain cannot show on its own is entries cut off at the end: a
//! shorter chain is still a valid chain. Checkpoints ([`Checkpoint`], an
//! entry's `seq` and hash) kept outside the database are the answer:
//! [`ChainVerifier::pin`] makes verification fail unless the trail still
//! reaches each pinned entry with the pinned hash.

use std::fmt;
use std::str::FromStr;

use hmac::{KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry of the audit trail, without its chain fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the trail: 1, 2, 3 ... without gaps.
    pub seq: i64,
    /// Milliseconds since the epoch.
    pub at: i64,
    /// Who: a user's name, `agent:HOST`, `anonymous` or `invalid token`.
    pub actor: String,
    /// The client's address.
    pub source: String,
    /// Method and route pattern, e.g. `POST /api/v1/projects/{project}/deployments`.
    pub action: String,
    /// The path parameters, e.g. `project=app env=prod`.
    pub object: String,
    /// HTTP status, and the error message for a failure.
    pub outcome: String,
    /// What changed: the request body with secrets masked, bounded.
    pub summary: String,
}

/// How an entry's hash was made; stored with the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `SHA-256(prev_hash || canonical encoding)`: entries written before the
    /// trail was keyed. Anyone can recompute it.
    Unkeyed,
    /// `HMAC-SHA256(audit key, prev_hash || keyed encoding)`.
    Keyed,
}

impl Scheme {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Unkeyed => "sha256",
            Scheme::Keyed => "hmac-sha256",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `tag`, then each field as its length (8 bytes, big endian) followed by
/// its bytes.
fn encode(tag: &[u8], r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + r.summary.len());
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    field(tag);
    field(&r.seq.to_be_bytes());
    field(&r.at.to_be_bytes());
    field(r.actor.as_bytes());
    field(r.source.as_bytes());
    field(r.action.as_bytes());
    field(r.object.as_bytes());
    field(r.outcome.as_bytes());
    field(r.summary.as_bytes());
    out
}

/// The canonical encoding of an unkeyed entry: a version tag, then each
/// field as its length (8 bytes, big endian) followed by its bytes.
pub fn canonical_bytes(r: &AuditRecord) -> Vec<u8> {
    encode(b"ferry-audit-v1", r)
}

/// The encoding of a keyed entry: like [`canonical_bytes`] with a tag of its
/// own, so that an unkeyed entry's bytes never pass for a keyed one's.
pub fn keyed_bytes(r: &AuditRecord) -> Vec<u8> {
    encode(b"ferry-audit-v2-keyed", r)
}

/// `SHA-256(prev_hash || canonical_bytes(record))`, as 64 lowercase hex
/// digits: the hash of entries written before the trail was keyed. Public on
/// purpose: anyone can compute it, which is why new entries are keyed.
pub fn unkeyed_hash(prev_hash: &str, record: &AuditRecord) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical_bytes(record));
    let digest: [u8; 32] = h.finalize().into();
    crate::Digest(digest).to_hex()
}

type HmacSha256 = hmac::Hmac<Sha256>;

/// The server's audit key: 32 random bytes kept outside the database. Only
/// whoever holds it can make an entry hash or a checkpoint that verifies.
/// `Debug` never shows it.
#[derive(Clone)]
pub struct AuditKey {
    /// The HMAC with the key already absorbed; cloned for every hash.
    mac: HmacSha256,
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(***)")
    }
}

impl AuditKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(key: [u8; 32]) -> AuditKey {
        // HMAC pads a key shorter than the hash's 64-byte block with zeros,
        // so padding it here gives the same MAC as the 32-byte key itself,
        // through the constructor that cannot fail.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&key);
        AuditKey { mac: HmacSha256::new(&block.into()) }
    }

    fn hex_mac(&self, parts: &[&[u8]]) -> String {
        let mut m = self.mac.clone();
        for p in parts {
            m.update(p);
        }
        let digest: [u8; 32] = m.finalize().into_bytes().into();
        crate::Digest(digest).to_hex()
    }

    /// `HMAC-SHA256(key, prev_hash || keyed_bytes(record))`, as 64 lowercase
    /// hex digits: the hash of a keyed entry.
    pub fn entry_hash(&self, prev_hash: &str, record: &AuditRecord) -> String {
        self.hex_mac(&[prev_hash.as_bytes(), &keyed_bytes(record)])
    }

    /// An entry's hash under `scheme`.
    pub fn hash(&self, scheme: Scheme, prev_hash: &str, record: &AuditRecord) -> String {
        match scheme {
            Scheme::Unkeyed => unkeyed_hash(prev_hash, record),
            Scheme::Keyed => self.entry_hash(prev_hash, record),
        }
    }

    /// The MAC of the server's anchor, so that an anchor file edited by
    /// someone without the key is noticed.
    pub fn anchor_mac(&self, a: &Anchor) -> String {
        let mut bytes = Vec::with_capacity(160);
        let mut field = |b: &[u8]| {
            bytes.extend_from_slice(&(b.len() as u64).to_be_bytes());
            bytes.extend_from_slice(b);
        };
        field(b"ferry-audit-anchor-v1");
        field(&a.head.seq.to_be_bytes());
        field(a.head.hash.as_bytes());
        field(&a.at.to_be_bytes());
        field(&a.keyed_from.to_be_bytes());
        field(&a.started_at.to_be_bytes());
        self.hex_mac(&[&bytes])
    }
}

/// An entry of the trail by its `seq` and hash: what an operator keeps
/// elsewhere, written `SEQ:HASH`. `0:` followed by [`GENESIS_HASH`] is the
/// empty trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The entry's place in the trail (0: before the first entry).
    pub seq: i64,
    /// Its hash: 64 lowercase hex digits.
    pub hash: String,
}

/// A checkpoint that is not `SEQ:HASH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a checkpoint: expected SEQ:HASH, an entry number and its 64-hex-digit hash")]
pub struct BadCheckpoint(pub String);

impl Checkpoint {
    /// The checkpoint of the empty trail.
    pub fn genesis() -> Checkpoint {
        Checkpoint { seq: 0, hash: GENESIS_HASH.into() }
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl FromStr for Checkpoint {
    type Err = BadCheckpoint;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadCheckpoint(s.to_string());
        let (seq, hash) = s.trim().split_once(':').ok_or_else(bad)?;
        let seq: i64 = seq.trim().parse().map_err(|_| bad())?;
        // Hashes are printed in lowercase; one copied in capitals is the same.
        let hash = hash.trim().to_ascii_lowercase();
        if seq < 0 || hash.parse::<crate::Digest>().is_err() {
            return Err(bad());
        }
        Ok(Checkpoint { seq, hash })
    }
}

/// The server's record, kept outside the database, of how far the trail
/// reached: the newest entry it appended, and from which entry on the trail
/// is keyed. Authenticated by [`AuditKey::anchor_mac`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The newest entry appended.
    pub head: Checkpoint,
    /// When the anchor was written, milliseconds since the epoch.
    pub at: i64,
    /// The first entry that is keyed; entries before it are unkeyed (written
    /// before the trail was keyed). 1 for a trail keyed from the start.
    pub keyed_from: i64,
    /// When this line of anchors began: when the trail was keyed, or when the
    /// anchor was made anew because its file was gone. Truncation before then
    /// cannot be seen by the server's anchor.
    pub started_at: i64,
}

/// Who holds a pinned checkpoint: named in the break it causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOrigin {
    /// The server's own anchor, kept outside the database.
    Server,
    /// A checkpoint the operator kept and handed to the verification.
    Given,
}

impl fmt::Display for PinOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinOrigin::Server => "the server's checkpoint",
            PinOrigin::Given => "the given checkpoint",
        })
    }
}

/// Why an entry does not fit the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The entry's content no longer gives its stored hash: it was edited,
    /// or its hash was recomputed by someone without the key.
    #[error("entry {seq} was changed: its content does not match its hash")]
    ContentChanged { seq: i64 },
    /// The entry does not point at the entry before it: that one was
    /// replaced, or entries were reordered.
    #[error("entry {seq} does not follow entry {prev_seq}: the link between them is broken")]
    LinkBroken { seq: i64, prev_seq: i64 },
    /// The first entry does not start the chain.
    #[error("entry {seq} should start the chain but does not")]
    BadStart { seq: i64 },
    /// Entries before this one are gone.
    #[error("entries {from} to {to} are missing (before entry {seq})")]
    Missing { seq: i64, from: i64, to: i64 },
    /// An entry written after the trail was keyed is marked unkeyed (or with
    /// a scheme no server writes): it was rewritten without the key.
    #[error(
        "entry {seq} is marked '{scheme}', but every entry from {keyed_from} on is keyed: it was rewritten \
         without the audit key"
    )]
    NotKeyed { seq: i64, keyed_from: i64, scheme: String },
    /// An entry from before the trail was keyed is marked keyed.
    #[error("entry {seq} is marked '{scheme}', but entries before {keyed_from} predate keying: it was rewritten")]
    SchemeChanged { seq: i64, keyed_from: i64, scheme: String },
    /// The entry verifies, but not with the hash a checkpoint holds for it:
    /// the trail up to it was replaced (entries cut off and new ones
    /// appended in their place, or a rewrite by someone with the key).
    #[error("entry {seq} does not have the hash {origin} holds for it: the trail was rewritten up to there")]
    CheckpointMismatch { seq: i64, origin: PinOrigin },
    /// The trail ends before a checkpointed entry: its newest entries were
    /// removed.
    #[error("the trail was truncated after entry {after} ({origin} says it reaches entry {checkpoint_seq})")]
    Truncated { after: i64, checkpoint_seq: i64, origin: PinOrigin },
}

impl ChainBreak {
    /// The first entry that does not match (for a truncation, the first
    /// entry missing).
    pub fn seq(&self) -> i64 {
        match self {
            ChainBreak::ContentChanged { seq }
            | ChainBreak::LinkBroken { seq, .. }
            | ChainBreak::BadStart { seq }
            | ChainBreak::Missing { seq, .. }
            | ChainBreak::NotKeyed { seq, .. }
            | ChainBreak::SchemeChanged { seq, .. }
            | ChainBreak::CheckpointMismatch { seq, .. } => *seq,
            ChainBreak::Truncated { after, .. } => after + 1,
        }
    }

    /// A short machine-readable name of the kind of break.
    pub fn kind(&self) -> &'static str {
        match self {
            ChainBreak::ContentChanged { .. } => "content_changed",
            ChainBreak::LinkBroken { .. } | ChainBreak::BadStart { .. } => "link_broken",
            ChainBreak::Missing { .. } => "entry_missing",
            ChainBreak::NotKeyed { .. } => "not_keyed",
            ChainBreak::SchemeChanged { .. } => "scheme_changed",
            ChainBreak::CheckpointMismatch { .. } => "checkpoint_mismatch",
            ChainBreak::Truncated { .. } => "truncated",
        }
    }
}

/// Checks a trail entry by entry, oldest first, so a long trail can be read
/// in pages; then [`ChainVerifier::finish`] checks that the trail reaches
/// every pinned checkpoint.
#[derive(Debug, Clone)]
pub struct ChainVerifier<'k> {
    key: &'k AuditKey,
    keyed_from: i64,
    pins: Vec<(Checkpoint, PinOrigin)>,
    last: Option<(i64, String)>,
    count: u64,
    unkeyed: u64,
}

impl<'k> ChainVerifier<'k> {
    /// A verifier for a trail keyed with `key` from entry `keyed_from` on
    /// (1: keyed from the start).
    pub fn new(key: &'k AuditKey, keyed_from: i64) -> Self {
        ChainVerifier { key, keyed_from, pins: Vec::new(), last: None, count: 0, unkeyed: 0 }
    }

    /// Requires the trail to hold `checkpoint`'s entry with its hash.
    pub fn pin(&mut self, checkpoint: Checkpoint, origin: PinOrigin) {
        self.pins.push((checkpoint, origin));
    }

    /// Checks the next entry against the previous one, its scheme, its own
    /// hash and any checkpoint pinned on it. `scheme` is the stored name.
    pub fn push(&mut self, record: &AuditRecord, scheme: &str, prev_hash: &str, hash: &str) -> Result<(), ChainBreak> {
        let seq = record.seq;
        match &self.last {
            None => {
                if seq > 1 {
                    return Err(ChainBreak::Missing { seq, from: 1, to: seq - 1 });
                }
                if prev_hash != GENESIS_HASH {
                    return Err(ChainBreak::BadStart { seq });
                }
            }
            Some((last_seq, last_hash)) => {
                if seq > last_seq + 1 {
                    return Err(ChainBreak::Missing { seq, from: last_seq + 1, to: seq - 1 });
                }
                if seq <= *last_seq || prev_hash != last_hash {
                    return Err(ChainBreak::LinkBroken { seq, prev_seq: *last_seq });
                }
            }
        }
        // Which scheme an entry uses follows from its position, never from
        // what the row says: otherwise a rewritten row would simply claim
        // the scheme anyone can recompute.
        let expected = if seq >= self.keyed_from { Scheme::Keyed } else { Scheme::Unkeyed };
        if scheme != expected.as_str() {
            let scheme = scheme.to_string();
            return Err(match expected {
                Scheme::Keyed => ChainBreak::NotKeyed { seq, keyed_from: self.keyed_from, scheme },
                Scheme::Unkeyed => ChainBreak::SchemeChanged { seq, keyed_from: self.keyed_from, scheme },
            });
        }
        if !same(&self.key.hash(expected, prev_hash, record), hash) {
            return Err(ChainBreak::ContentChanged { seq });
        }
        if let Some((_, origin)) = self.pins.iter().find(|(c, _)| c.seq == seq && c.hash != hash) {
            return Err(ChainBreak::CheckpointMismatch { seq, origin: *origin });
        }
        self.last = Some((seq, hash.to_string()));
        self.count += 1;
        if expected == Scheme::Unkeyed {
            self.unkeyed += 1;
        }
        Ok(())
    }

    /// After the last entry: fails when the trail ends before a pinned
    /// checkpoint (its newest entries were cut off).
    pub fn finish(&self) -> Result<(), ChainBreak> {
        let head = self.last.as_ref().map_or(0, |(s, _)| *s);
        // The newest pin past the end says the most about what is missing.
        let beyond = self.pins.iter().filter(|(c, _)| c.seq > head).max_by_key(|(c, _)| c.seq);
        if let Some((c, origin)) = beyond {
            return Err(ChainBreak::Truncated { after: head, checkpoint_seq: c.seq, origin: *origin });
        }
        if let Some((_, origin)) = self.pins.iter().find(|(c, _)| c.seq == 0 && c.hash != GENESIS_HASH) {
            return Err(ChainBreak::CheckpointMismatch { seq: 0, origin: *origin });
        }
        Ok(())
    }

    /// Entries checked so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Entries checked so far that predate keying.
    pub fn unkeyed(&self) -> u64 {
        self.unkeyed
    }

    /// The newest entry checked: its `seq` and hash.
    pub fn head(&self) -> Option<(i64, &str)> {
        self.last.as_ref().map(|(s, h)| (*s, h.as_str()))
    }
}

/// Compares two hashes in time independent of where they first differ, so
/// that timing does not help anyone forge a keyed hash byte by byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::from_bytes([7; 32])
    }

    fn record(seq: i64, summary: &str) -> AuditRecord {
        AuditRecord {
            seq,
            at: 1_700_000_000_000 + seq,
            actor: "admin".into(),
            source: "127.0.0.1".into(),
            action: "POST /api/v1/projects".into(),
            object: String::new(),
            outcome: "201".into(),
            summary: summary.into(),
        }
    }

    /// One stored entry: (record, scheme, prev_hash, hash).
    type Row = (AuditRecord, String, String, String);

    /// A chain of `n` entries, the first `unkeyed` of them written before
    /// keying.
    fn chain(k: &AuditKey, n: i64, unkeyed: i64) -> Vec<Row> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let r = record(seq, &format!("{{\"name\":\"p{seq}\"}}"));
                let scheme = if seq <= unkeyed { Scheme::Unkeyed } else { Scheme::Keyed };
                let hash = k.hash(scheme, &prev, &r);
                let out = (r, scheme.as_str().to_string(), prev.clone(), hash.clone());
                prev = hash;
                out
            })
            .collect()
    }

    fn verifier_over<'k>(k: &'k AuditKey, keyed_from: i64, entries: &[Row]) -> Result<ChainVerifier<'k>, ChainBreak> {
        let mut v = ChainVerifier::new(k, keyed_from);
        for (r, scheme, prev, hash) in entries {
            v.push(r, scheme, prev, hash)?;
        }
        Ok(v)
    }

    fn verify(entries: &[Row]) -> Result<u64, ChainBreak> {
        let k = key();
        let v = verifier_over(&k, 1, entries)?;
        v.finish()?;
        Ok(v.count())
    }

    /// What someone with the database but not the key can do: recompute every
    /// hash from entry `from` on with the public algorithm.
    fn recompute_unkeyed(c: &mut [Row], from: usize, relabel: bool) {
        let mut prev = if from == 0 { GENESIS_HASH.to_string() } else { c[from - 1].3.clone() };
        for row in c.iter_mut().skip(from) {
            row.2 = prev.clone();
            row.3 = unkeyed_hash(&row.2, &row.0);
            if relabel {
                row.1 = Scheme::Unkeyed.as_str().into();
            }
            prev = row.3.clone();
        }
    }

    #[test]
    fn the_hash_depends_on_every_field_the_previous_hash_and_the_key() {
        let k = key();
        let r = record(1, "x");
        let h = k.entry_hash(GENESIS_HASH, &r);
        assert_eq!(h.len(), 64);
        assert_eq!(h, k.entry_hash(GENESIS_HASH, &r.clone()));
        assert_ne!(h, k.entry_hash(&"1".repeat(64), &r));
        assert_ne!(h, AuditKey::from_bytes([8; 32]).entry_hash(GENESIS_HASH, &r), "another key");
        assert_ne!(h, unkeyed_hash(GENESIS_HASH, &r), "the public algorithm");
        let variants = [
            AuditRecord { seq: 2, ..r.clone() },
            AuditRecord { at: 0, ..r.clone() },
            AuditRecord { actor: "eve".into(), ..r.clone() },
            AuditRecord { source: "10.0.0.1".into(), ..r.clone() },
            AuditRecord { action: "DELETE /x".into(), ..r.clone() },
            AuditRecord { object: "project=app".into(), ..r.clone() },
            AuditRecord { outcome: "500".into(), ..r.clone() },
            AuditRecord { summary: "y".into(), ..r.clone() },
        ];
        for v in &variants {
            assert_ne!(k.entry_hash(GENESIS_HASH, v), h, "{v:?}");
            assert_ne!(unkeyed_hash(GENESIS_HASH, v), unkeyed_hash(GENESIS_HASH, &r), "{v:?}");
        }
    }

    #[test]
    fn the_keyed_hash_is_the_standard_hmac_of_the_32_byte_key() {
        let r = record(1, "x");
        let mut m = <HmacSha256 as hmac::KeyInit>::new_from_slice(&[7; 32]).unwrap();
        m.update(GENESIS_HASH.as_bytes());
        m.update(&keyed_bytes(&r));
        let expected: [u8; 32] = m.finalize().into_bytes().into();
        assert_eq!(key().entry_hash(GENESIS_HASH, &r), crate::Digest(expected).to_hex());
        assert_eq!(format!("{:?}", key()), "AuditKey(***)", "Debug never shows the key");
    }

    #[test]
    fn the_unkeyed_hash_is_the_one_servers_wrote_before_keying() {
        // Pinned: entries stored by earlier servers must keep verifying.
        let r = record(1, "x");
        let mut h = Sha256::new();
        h.update(GENESIS_HASH.as_bytes());
        h.update(canonical_bytes(&r));
        let expected: [u8; 32] = h.finalize().into();
        assert_eq!(unkeyed_hash(GENESIS_HASH, &r), crate::Digest(expected).to_hex());
    }

    #[test]
    fn the_encoding_is_unambiguous() {
        // Moving text from one field to the next must change the encoding.
        let a = AuditRecord { actor: "ab".into(), source: "c".into(), ..record(1, "") };
        let b = AuditRecord { actor: "a".into(), source: "bc".into(), ..record(1, "") };
        assert_ne!(canonical_bytes(&a), canonical_bytes(&b));
        assert_ne!(keyed_bytes(&a), keyed_bytes(&b));
        assert_ne!(canonical_bytes(&a), keyed_bytes(&a));
        assert_ne!(key().entry_hash(GENESIS_HASH, &a), key().entry_hash(GENESIS_HASH, &b));
    }

    #[test]
    fn an_intact_chain_verifies() {
        let k = key();
        assert_eq!(verify(&chain(&k, 5, 0)), Ok(5));
        assert_eq!(verify(&[]), Ok(0));
        let v = verifier_over(&k, 1, &chain(&k, 3, 0)).unwrap();
        assert_eq!(v.head().map(|(s, _)| s), Some(3));
        assert_eq!(v.unkeyed(), 0);
    }

    #[test]
    fn entries_from_before_keying_verify_the_old_way_and_are_counted() {
        let k = key();
        let c = chain(&k, 6, 4);
        let v = verifier_over(&k, 5, &c).unwrap();
        assert_eq!((v.count(), v.unkeyed()), (6, 4));
        // A trail upgraded but not yet appended to: every entry predates keying.
        let c = chain(&k, 3, 3);
        let v = verifier_over(&k, 4, &c).unwrap();
        assert_eq!((v.count(), v.unkeyed()), (3, 3));
    }

    #[test]
    fn an_edited_entry_is_named() {
        let k = key();
        let mut c = chain(&k, 5, 0);
        c[2].0.summary = "{\"name\":\"other\"}".into();
        assert_eq!(verify(&c), Err(ChainBreak::ContentChanged { seq: 3 }));
    }

    #[test]
    fn an_edited_entry_with_a_chain_recomputed_without_the_key_is_named() {
        let k = key();
        // Recomputed with the public algorithm, the rows still saying keyed.
        let mut c = chain(&k, 5, 0);
        c[2].0.actor = "eve".into();
        recompute_unkeyed(&mut c, 2, false);
        assert_eq!(verify(&c), Err(ChainBreak::ContentChanged { seq: 3 }));
        // ... and relabelled as written before keying.
        let mut c = chain(&k, 5, 0);
        c[2].0.actor = "eve".into();
        recompute_unkeyed(&mut c, 2, true);
        let err = verify(&c).unwrap_err();
        assert!(matches!(err, ChainBreak::NotKeyed { seq: 3, keyed_from: 1, .. }), "{err:?}");
        assert!(err.to_string().contains("without the audit key"), "{err}");
        // The whole trail relabelled: the first entry is named.
        let mut c = chain(&k, 5, 0);
        recompute_unkeyed(&mut c, 0, true);
        assert!(matches!(verify(&c), Err(ChainBreak::NotKeyed { seq: 1, .. })));
        // A keyed entry marked with a scheme no server writes.
        let mut c = chain(&k, 2, 0);
        c[1].1 = "md5".into();
        assert!(matches!(verify(&c), Err(ChainBreak::NotKeyed { seq: 2, .. })));
    }

    #[test]
    fn entries_from_before_keying_are_protected_by_the_first_keyed_one() {
        let k = key();
        // An old entry edited and the old part recomputed: the first keyed
        // entry's hash covers the last old one.
        let mut c = chain(&k, 6, 4);
        c[1].0.summary = "forged".into();
        let mut prev = c[0].3.clone();
        for row in c.iter_mut().take(4).skip(1) {
            row.2 = prev.clone();
            row.3 = unkeyed_hash(&row.2, &row.0);
            prev = row.3.clone();
        }
        assert_eq!(verifier_over(&k, 5, &c).err(), Some(ChainBreak::LinkBroken { seq: 5, prev_seq: 4 }));
        // ... and its link moved to match: its own hash no longer does.
        c[4].2 = prev;
        assert_eq!(verifier_over(&k, 5, &c).err(), Some(ChainBreak::ContentChanged { seq: 5 }));
        // An old entry claiming to be keyed.
        let mut c = chain(&k, 6, 4);
        c[0].1 = Scheme::Keyed.as_str().into();
        assert!(matches!(verifier_over(&k, 5, &c).err(), Some(ChainBreak::SchemeChanged { seq: 1, .. })));
    }

    #[test]
    fn missing_entries_are_named() {
        let k = key();
        let mut c = chain(&k, 5, 0);
        c.remove(2);
        assert_eq!(verify(&c), Err(ChainBreak::Missing { seq: 4, from: 3, to: 3 }));
        let c = chain(&k, 5, 0);
        assert_eq!(verify(&c[2..]), Err(ChainBreak::Missing { seq: 3, from: 1, to: 2 }));
    }

    #[test]
    fn a_renumbered_or_reordered_trail_breaks() {
        let k = key();
        let mut c = chain(&k, 4, 0);
        c.swap(1, 2);
        assert!(matches!(verify(&c), Err(ChainBreak::Missing { seq: 3, .. })));
        let mut c = chain(&k, 4, 0);
        c.remove(1);
        for (r, _, _, _) in c.iter_mut().skip(1) {
            r.seq -= 1;
        }
        assert_eq!(verify(&c), Err(ChainBreak::LinkBroken { seq: 2, prev_seq: 1 }));
        let mut c = chain(&k, 2, 0);
        c[0].2 = "f".repeat(64);
        assert_eq!(verify(&c), Err(ChainBreak::BadStart { seq: 1 }));
    }

    #[test]
    fn a_truncated_trail_is_caught_by_a_checkpoint() {
        let k = key();
        let c = chain(&k, 8, 0);
        let at = |seq: usize| Checkpoint { seq: seq as i64, hash: c[seq - 1].3.clone() };
        // Without a checkpoint, the first five entries are a valid trail.
        assert_eq!(verify(&c[..5]), Ok(5));
        let mut v = ChainVerifier::new(&k, 1);
        v.pin(at(8), PinOrigin::Server);
        for (r, s, p, h) in &c[..5] {
            v.push(r, s, p, h).unwrap();
        }
        let err = v.finish().unwrap_err();
        assert_eq!(err, ChainBreak::Truncated { after: 5, checkpoint_seq: 8, origin: PinOrigin::Server });
        assert_eq!((err.seq(), err.kind()), (6, "truncated"));
        assert_eq!(
            err.to_string(),
            "the trail was truncated after entry 5 (the server's checkpoint says it reaches entry 8)"
        );
        // The whole trail and the checkpoint of it: fine, also when pinned twice.
        let mut v = verifier_over(&k, 1, &[]).unwrap();
        v.pin(at(8), PinOrigin::Server);
        v.pin(at(3), PinOrigin::Given);
        for (r, s, p, h) in &c {
            v.push(r, s, p, h).unwrap();
        }
        assert_eq!(v.finish(), Ok(()));
        // Everything removed.
        let mut v = ChainVerifier::new(&k, 1);
        v.pin(at(3), PinOrigin::Given);
        assert_eq!(v.finish(), Err(ChainBreak::Truncated { after: 0, checkpoint_seq: 3, origin: PinOrigin::Given }));
        // The empty trail's checkpoint.
        let mut v = ChainVerifier::new(&k, 1);
        v.pin(Checkpoint::genesis(), PinOrigin::Server);
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn a_trail_cut_and_refilled_does_not_match_its_checkpoint() {
        let k = key();
        let c = chain(&k, 6, 0);
        let pinned = Checkpoint { seq: 5, hash: c[4].3.clone() };
        // Entries 4 to 6 removed, and the server (holding the key) appended
        // new entries in their place.
        let mut refilled = c[..3].to_vec();
        let mut prev = c[2].3.clone();
        for seq in 4..=6 {
            let r = record(seq, "after the cut");
            let hash = k.entry_hash(&prev, &r);
            refilled.push((r, Scheme::Keyed.as_str().into(), prev.clone(), hash.clone()));
            prev = hash;
        }
        assert_eq!(verify(&refilled), Ok(6), "the chain alone cannot tell");
        let mut v = ChainVerifier::new(&k, 1);
        v.pin(pinned, PinOrigin::Given);
        let err = refilled.iter().try_for_each(|(r, s, p, h)| v.push(r, s, p, h)).unwrap_err();
        assert_eq!(err, ChainBreak::CheckpointMismatch { seq: 5, origin: PinOrigin::Given });
        assert_eq!(err.kind(), "checkpoint_mismatch");
    }

    #[test]
    fn checkpoints_read_and_print_as_seq_colon_hash() {
        let hash = "ab".repeat(32);
        let c: Checkpoint = format!("42:{hash}").parse().unwrap();
        assert_eq!(c, Checkpoint { seq: 42, hash: hash.clone() });
        assert_eq!(c.to_string(), format!("42:{hash}"));
        assert_eq!(format!(" 42:{} ", hash.to_uppercase()).parse::<Checkpoint>(), Ok(c));
        for bad in ["", "42", ":abc", "x:ab", "-1:00", &format!("42:{}", &hash[1..]), &format!("42:{hash}0")] {
            assert!(bad.parse::<Checkpoint>().is_err(), "{bad}");
        }
        assert_eq!(Checkpoint::genesis().to_string().parse::<Checkpoint>(), Ok(Checkpoint::genesis()));
    }

    #[test]
    fn the_anchor_mac_covers_every_field_and_needs_the_key() {
        let k = key();
        let a = Anchor { head: Checkpoint { seq: 9, hash: "cd".repeat(32) }, at: 5, keyed_from: 3, started_at: 1 };
        let mac = k.anchor_mac(&a);
        assert_eq!(mac, k.anchor_mac(&a.clone()));
        assert_ne!(mac, AuditKey::from_bytes([8; 32]).anchor_mac(&a));
        let variants = [
            Anchor { head: Checkpoint { seq: 8, ..a.head.clone() }, ..a.clone() },
            Anchor { head: Checkpoint { hash: "ce".repeat(32), ..a.head.clone() }, ..a.clone() },
            Anchor { at: 6, ..a.clone() },
            Anchor { keyed_from: 1, ..a.clone() },
            Anchor { started_at: 2, ..a.clone() },
        ];
        for v in &variants {
            assert_ne!(k.anchor_mac(v), mac, "{v:?}");
        }
    }
}
