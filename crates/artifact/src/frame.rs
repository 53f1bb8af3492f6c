//! Many blobs in one HTTP body.
//!
//! Each blob is a 40-byte header, the 32 raw bytes of its SHA-256 followed by
//! its length as a big-endian `u64`, then exactly that many bytes. One request
//! carries a whole release's missing content, so a host pays one round trip,
//! not one per file. The receiver verifies every blob against its digest.

use ferry_domain::Digest;

/// Size of a frame header.
pub const HEADER_LEN: usize = 40;

/// Encodes a frame header.
pub fn header(digest: &Digest, len: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..32].copy_from_slice(&digest.0);
    h[32..].copy_from_slice(&len.to_be_bytes());
    h
}

/// One step of decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A blob starts.
    Begin { digest: Digest, len: u64 },
    /// Some bytes of the current blob.
    Data(&'a [u8]),
    /// The current blob is complete.
    End,
}

/// The body ended inside a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the blob stream ended in the middle of a blob")]
pub struct Truncated;

/// A push decoder: feed it the body's chunks as they arrive.
#[derive(Debug)]
pub struct Decoder {
    header: [u8; HEADER_LEN],
    header_have: usize,
    /// Bytes left in the current blob, when inside one.
    remaining: Option<u64>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder { header: [0; HEADER_LEN], header_have: 0, remaining: None }
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes the next event from `input`, advancing it. `None` means the
    /// input is used up; call again with the next chunk.
    pub fn next<'a>(&mut self, input: &mut &'a [u8]) -> Option<Event<'a>> {
        match self.remaining {
            Some(0) => {
                self.remaining = None;
                Some(Event::End)
            }
            Some(left) => {
                if input.is_empty() {
                    return None;
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                let (data, rest) = input.split_at(take);
                *input = rest;
                self.remaining = Some(left - take as u64);
                Some(Event::Data(data))
            }
            None => {
                let need = HEADER_LEN - self.header_have;
                let take = need.min(input.len());
                self.header[self.header_have..self.header_have + take].copy_from_slice(&input[..take]);
                *input = &input[take..];
                self.header_have += take;
                if self.header_have < HEADER_LEN {
                    return None;
                }
                self.header_have = 0;
                let mut digest = [0u8; 32];
                digest.copy_from_slice(&self.header[..32]);
                let mut len = [0u8; 8];
                len.copy_from_slice(&self.header[32..]);
                let len = u64::from_be_bytes(len);
                self.remaining = Some(len);
                Some(Event::Begin { digest: Digest(digest), len })
            }
        }
    }

    /// Call at the end of the body: an error if it stopped inside a frame.
    pub fn finish(&self) -> Result<(), Truncated> {
        if self.remaining.is_none() && self.header_have == 0 { Ok(()) } else { Err(Truncated) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(blobs: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in blobs {
            out.extend_from_slice(&header(&crate::digest_of(b), b.len() as u64));
            out.extend_from_slice(b);
        }
        out
    }

    type Blobs = Vec<(Digest, Vec<u8>)>;

    /// Decodes `body` fed in chunks of `chunk` bytes back into blobs.
    fn decode(body: &[u8], chunk: usize) -> (Blobs, Result<(), Truncated>) {
        let mut dec = Decoder::new();
        let mut out: Blobs = Vec::new();
        for piece in body.chunks(chunk) {
            let mut input = piece;
            while let Some(ev) = dec.next(&mut input) {
                match ev {
                    Event::Begin { digest, .. } => out.push((digest, Vec::new())),
                    Event::Data(d) => out.last_mut().unwrap().1.extend_from_slice(d),
                    Event::End => {}
                }
            }
        }
        (out, dec.finish())
    }

    #[test]
    fn round_trips_in_any_chunking() {
        let blobs: [&[u8]; 4] = [b"hello", b"", &[7u8; 1000], b"x"];
        let body = encode(&blobs);
        for chunk in [1, 3, 39, 40, 41, 512, 4096] {
            let (out, end) = decode(&body, chunk);
            assert_eq!(end, Ok(()), "chunk {chunk}");
            assert_eq!(out.len(), 4, "chunk {chunk}");
            for (i, b) in blobs.iter().enumerate() {
                assert_eq!(out[i].0, crate::digest_of(b));
                assert_eq!(out[i].1, *b, "chunk {chunk} blob {i}");
            }
        }
    }

    #[test]
    fn detects_truncation() {
        let body = encode(&[b"hello world"]);
        for cut in [1, 39, 40, 45] {
            let (_, end) = decode(&body[..cut], 7);
            assert_eq!(end, Err(Truncated), "cut at {cut}");
        }
    }
}
