//! The manifest validator, on the JSON a client sends when it registers a
//! release (`POST /api/v1/projects/P/releases`).
#![no_main]

use ferry_domain::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = serde_json::from_slice::<Manifest>(data) else { return };
    let verdict = manifest.validate();
    // Order must not matter to the verdict's outcome: the reader sorts, a
    // client need not.
    let sorted = Manifest::new(manifest.entries.clone());
    assert_eq!(sorted.validate().is_ok(), verdict.is_ok(), "{verdict:?}");
    if verdict.is_ok() {
        // A valid manifest survives the trip through JSON unchanged.
        let json = serde_json::to_vec(&manifest).expect("a manifest serialises");
        let back: Manifest = serde_json::from_slice(&json).expect("its own JSON parses");
        assert_eq!(back, manifest);
    }
});
