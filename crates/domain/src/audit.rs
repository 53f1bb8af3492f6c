//! The audit trail's hash chain (R27).
//!
//! Each entry's hash is `SHA-256(prev_hash || canonical encoding of the
//! entry)`, and each entry stores the hash of the one before it, so changing,
//! removing or reordering any entry breaks the chain from there on. The
//! encoding is unambiguous: every field is length-prefixed, so no two
//! different entries encode to the same bytes whatever their text contains.
//!
//! What the chain cannot show on its own is entries cut off at the end: the
//! newest entry's `seq` and hash (given by every verification) are the
//! anchor to keep elsewhere.

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

/// The canonical encoding hashed into the chain: a version tag, then each
/// field as its length (8 bytes, big endian) followed by its bytes.
pub fn canonical_bytes(r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + r.summary.len());
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    field(b"ferry-audit-v1");
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

/// `SHA-256(prev_hash || canonical_bytes(record))`, as 64 lowercase hex digits.
pub fn entry_hash(prev_hash: &str, record: &AuditRecord) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical_bytes(record));
    let digest: [u8; 32] = h.finalize().into();
    crate::Digest(digest).to_hex()
}

/// Why an entry does not fit the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The entry's content no longer gives its stored hash: it was edited.
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
}

impl ChainBreak {
    /// The first entry that does not match.
    pub fn seq(&self) -> i64 {
        match self {
            ChainBreak::ContentChanged { seq }
            | ChainBreak::LinkBroken { seq, .. }
            | ChainBreak::BadStart { seq }
            | ChainBreak::Missing { seq, .. } => *seq,
        }
    }

    /// A short machine-readable name of the kind of break.
    pub fn kind(&self) -> &'static str {
        match self {
            ChainBreak::ContentChanged { .. } => "content_changed",
            ChainBreak::LinkBroken { .. } | ChainBreak::BadStart { .. } => "link_broken",
            ChainBreak::Missing { .. } => "entry_missing",
        }
    }
}

/// Checks a trail entry by entry, oldest first, so a long trail can be read
/// in pages.
#[derive(Debug, Clone, Default)]
pub struct ChainVerifier {
    last: Option<(i64, String)>,
    count: u64,
}

impl ChainVerifier {
    pub fn new() -> Self {
        ChainVerifier::default()
    }

    /// Checks the next entry against the previous one and its own hash.
    pub fn push(&mut self, record: &AuditRecord, prev_hash: &str, hash: &str) -> Result<(), ChainBreak> {
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
        if entry_hash(prev_hash, record) != hash {
            return Err(ChainBreak::ContentChanged { seq });
        }
        self.last = Some((seq, hash.to_string()));
        self.count += 1;
        Ok(())
    }

    /// Entries checked so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The newest entry checked: its `seq` and hash.
    pub fn head(&self) -> Option<(i64, &str)> {
        self.last.as_ref().map(|(s, h)| (*s, h.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A chain of `n` entries: (record, prev_hash, hash).
    fn chain(n: i64) -> Vec<(AuditRecord, String, String)> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let r = record(seq, &format!("{{\"name\":\"p{seq}\"}}"));
                let hash = entry_hash(&prev, &r);
                let out = (r, prev.clone(), hash.clone());
                prev = hash;
                out
            })
            .collect()
    }

    fn verify(entries: &[(AuditRecord, String, String)]) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::new();
        for (r, prev, hash) in entries {
            v.push(r, prev, hash)?;
        }
        Ok(v.count())
    }

    #[test]
    fn the_hash_depends_on_every_field_and_the_previous_hash() {
        let r = record(1, "x");
        let h = entry_hash(GENESIS_HASH, &r);
        assert_eq!(h.len(), 64);
        assert_eq!(h, entry_hash(GENESIS_HASH, &r.clone()));
        assert_ne!(h, entry_hash(&"1".repeat(64), &r));
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
            assert_ne!(entry_hash(GENESIS_HASH, v), h, "{v:?}");
        }
    }

    #[test]
    fn the_encoding_is_unambiguous() {
        // Moving text from one field to the next must change the encoding.
        let a = AuditRecord { actor: "ab".into(), source: "c".into(), ..record(1, "") };
        let b = AuditRecord { actor: "a".into(), source: "bc".into(), ..record(1, "") };
        assert_ne!(canonical_bytes(&a), canonical_bytes(&b));
        assert_ne!(entry_hash(GENESIS_HASH, &a), entry_hash(GENESIS_HASH, &b));
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
        assert_eq!(verify(&[]), Ok(0));
        let mut v = ChainVerifier::new();
        for (r, p, h) in &chain(3) {
            v.push(r, p, h).unwrap();
        }
        assert_eq!(v.head().map(|(s, _)| s), Some(3));
    }

    #[test]
    fn an_edited_entry_is_named() {
        let mut c = chain(5);
        c[2].0.summary = "{\"name\":\"other\"}".into();
        assert_eq!(verify(&c), Err(ChainBreak::ContentChanged { seq: 3 }));
    }

    #[test]
    fn an_edited_entry_with_a_recomputed_hash_breaks_the_next_link() {
        let mut c = chain(5);
        c[2].0.actor = "eve".into();
        c[2].2 = entry_hash(&c[2].1, &c[2].0);
        assert_eq!(verify(&c), Err(ChainBreak::LinkBroken { seq: 4, prev_seq: 3 }));
    }

    #[test]
    fn missing_entries_are_named() {
        let mut c = chain(5);
        c.remove(2);
        assert_eq!(verify(&c), Err(ChainBreak::Missing { seq: 4, from: 3, to: 3 }));
        let c = chain(5);
        assert_eq!(verify(&c[2..]), Err(ChainBreak::Missing { seq: 3, from: 1, to: 2 }));
    }

    #[test]
    fn a_renumbered_or_reordered_trail_breaks() {
        let mut c = chain(4);
        c.swap(1, 2);
        assert!(matches!(verify(&c), Err(ChainBreak::Missing { seq: 3, .. })));
        let mut c = chain(4);
        c.remove(1);
        for (r, _, _) in c.iter_mut().skip(1) {
            r.seq -= 1;
        }
        assert_eq!(verify(&c), Err(ChainBreak::LinkBroken { seq: 2, prev_seq: 1 }));
        let mut c = chain(2);
        c[0].1 = "f".repeat(64);
        assert_eq!(verify(&c), Err(ChainBreak::BadStart { seq: 1 }));
    }
}
