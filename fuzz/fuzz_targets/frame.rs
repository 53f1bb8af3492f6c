//! The blob frame decoder of `POST /api/v1/blobs` and of agents' downloads,
//! fed the body in chunks as the network would cut it.
#![no_main]

use ferry_artifact::frame::{Decoder, Event, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the chunk size.
    let Some((&cut, body)) = data.split_first() else { return };
    let chunk = usize::from(cut).max(1);
    let mut decoder = Decoder::new();
    // The events, encoded again: they must give back the body.
    let mut rebuilt = Vec::new();
    let mut left: Option<u64> = None;
    for piece in body.chunks(chunk) {
        let mut input = piece;
        while let Some(event) = decoder.next(&mut input) {
            match event {
                Event::Begin { digest, len } => {
                    assert_eq!(left, None, "a blob began inside another");
                    rebuilt.extend_from_slice(&header(&digest, len));
                    left = Some(len);
                }
                Event::Data(bytes) => {
                    let Some(l) = left else { panic!("data outside a blob") };
                    assert!(!bytes.is_empty() && bytes.len() as u64 <= l, "{} bytes of {l}", bytes.len());
                    left = Some(l - bytes.len() as u64);
                    rebuilt.extend_from_slice(bytes);
                }
                Event::End => {
                    assert_eq!(left, Some(0), "a blob ended early");
                    left = None;
                }
            }
        }
        assert!(input.is_empty(), "the decoder asked for more with input left");
    }
    assert!(body.starts_with(&rebuilt));
    if decoder.finish().is_ok() {
        assert_eq!(rebuilt, body);
        assert_eq!(left, None);
    }
});
