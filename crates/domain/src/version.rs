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
    fn the_next_version_is_always_valid() {
        for prev in ["v1", "1.0.0+build7", "x9", "9"] {
            assert_eq!(crate::validate_version(&next_version(Some(prev))), Ok(()), "{prev}");
        }
    }
}
