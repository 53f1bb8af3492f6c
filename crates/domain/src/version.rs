//! Automatic version numbers (R25): the previous version plus one.
//!
//! The last run of digits in the previous version is incremented and
//! everything around it kept, so `v1.2.3` becomes `v1.2.4`, `41` becomes
//! `42` and `release-9-beta` becomes `release-10-beta`. A project with no
//! numbered version yet starts at `1`.

/// The version after `previous` (the newest version of the project).
pub fn next_version(previous: Option<&str>) -> String {
    let Some(prev) = previous else { return "1".to_string() };
    let bytes = prev.as_bytes();
    let Some(end) = bytes.iter().rposition(|b| b.is_ascii_digit()).map(|i| i + 1) else {
        return format!("{prev}.1");
    };
    let start = bytes[..end].iter().rposition(|b| !b.is_ascii_digit()).map_or(0, |i| i + 1);
    let digits = &prev[start..end];
    let next = increment_decimal(digits);
    format!("{}{}{}", &prev[..start], next, &prev[end..])
}

/// The next automatic version of a project whose versions are `versions`,
/// newest first (R25).
///
/// Numbering continues from the newest version that has a number in it: a
/// tag whose name is not a version (`simple-tag`) is passed over, so the
/// builds after it go on from the last numbered one instead of becoming
/// `simple-tag.1`. Versions already taken (hand-made releases, tags) are
/// skipped.
pub fn next_version_after<S: AsRef<str>>(versions: &[S]) -> String {
    let numbered = versions.iter().map(AsRef::as_ref).find(|v| v.bytes().any(|b| b.is_ascii_digit()));
    let mut next = next_version(numbered);
    while versions.iter().any(|v| v.as_ref() == next) {
        next = next_version(Some(&next));
    }
    next
}

/// Adds one to a decimal string of any length, keeping its zero padding.
fn increment_decimal(digits: &str) -> String {
    let mut out: Vec<u8> = digits.bytes().collect();
    let mut i = out.len();
    loop {
        if i == 0 {
            out.insert(0, b'1');
            break;
        }
        i -= 1;
        if out[i] == b'9' {
            out[i] = b'0';
        } else {
            out[i] += 1;
            break;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_the_last_number() {
        for (prev, next) in [
            (None, "1"),
            (Some("41"), "42"),
            (Some("v1"), "v2"),
            (Some("v1.2.3"), "v1.2.4"),
            (Some("v1.2.9"), "v1.2.10"),
            (Some("release-9-beta"), "release-10-beta"),
            (Some("007"), "008"),
            (Some("099"), "100"),
            (Some("99999999999999999999999"), "100000000000000000000000"),
            (Some("beta"), "beta.1"),
        ] {
            assert_eq!(next_version(prev), next, "{prev:?}");
        }
    }

    #[test]
    fn numbering_passes_over_names_without_a_number() {
        assert_eq!(next_version_after::<&str>(&[]), "1");
        assert_eq!(next_version_after(&["simple-tag", "2", "1"]), "3");
        assert_eq!(next_version_after(&["simple-tag"]), "1");
        assert_eq!(next_version_after(&["beta", "simple-tag", "v1.4", "v1.3"]), "v1.5");
        // Taken versions are skipped, whoever took them.
        assert_eq!(next_version_after(&["simple-tag", "4", "5", "3"]), "6");
        assert_eq!(next_version_after(&["7", "simple-tag", "8"]), "9");
    }

    #[test]
    fn the_next_version_is_always_valid() {
        for prev in ["v1", "1.0.0+build7", "x9", "9"] {
            assert_eq!(crate::validate_version(&next_version(Some(prev))), Ok(()), "{prev}");
        }
    }
}
