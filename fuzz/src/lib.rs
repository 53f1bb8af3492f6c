//! What the fuzz targets share: the webhook request a forge would send.

use ferry_server::webhook::{Forge, sign, verify_and_parse};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The secret every fuzzed webhook is signed with.
const SECRET: &str = "fuzz-secret";

/// Feeds `body` to the webhook parser of `forge` the way the server does,
/// with the headers a genuine push of that forge carries (a correct
/// signature or token, a delivery id, the push event), so that every input
/// reaches the payload parser rather than stopping at authentication.
pub fn webhook(forge: Forge, body: &[u8]) {
    let signature = sign(SECRET, body);
    let pairs: &[(&str, String)] = match forge {
        Forge::GitHub => &[
            ("x-hub-signature-256", format!("sha256={signature}")),
            ("x-github-event", "push".into()),
            ("x-github-delivery", "fuzz-delivery".into()),
        ],
        Forge::Gitea => &[
            ("x-gitea-signature", signature),
            ("x-gitea-event", "push".into()),
            ("x-gitea-delivery", "fuzz-delivery".into()),
        ],
        Forge::GitLab => &[
            ("x-gitlab-token", SECRET.into()),
            ("x-gitlab-event", "Push Hook".into()),
            ("x-gitlab-event-uuid", "fuzz-delivery".into()),
        ],
        Forge::Gerrit => &[("x-ferry-signature", format!("sha256={signature}"))],
    };
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let (Ok(name), Ok(value)) = (HeaderName::try_from(*name), HeaderValue::try_from(value.as_str())) else {
            unreachable!("fixed header names and hex values are valid");
        };
        headers.insert(name, value);
    }
    // A wrong signature must never pass, whatever the body.
    assert!(verify_and_parse(forge, "another-secret", &headers, body).is_err());
    let _ = verify_and_parse(forge, SECRET, &headers, body);
}

/// Gives every non-zero 512-byte block of a tar a correct header checksum.
///
/// The tar reader refuses a header whose checksum is wrong, and a mutated
/// size or type field almost never keeps it right, so without this the
/// fuzzer would hardly get past the first header. Fixing every block, data
/// included, needs no parsing here (a data block only changes content); all
/// zero blocks are left alone, as they mark the archive's end.
pub fn fix_tar_checksums(tar: &mut [u8]) {
    for block in tar.chunks_exact_mut(512) {
        if block.iter().all(|&b| b == 0) {
            continue;
        }
        // The checksum is computed with its own field as eight spaces.
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        let field = format!("{:06o}\0 ", sum & 0o777_777);
        block[148..156].copy_from_slice(field.as_bytes());
    }
}
