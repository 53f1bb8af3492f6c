//! Just enough DER to name a certificate in the log: its subject and the end
//! of its validity. Anything unexpected gives `None`, never a panic.

/// One TLV: (tag, contents, what follows).
fn next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: up to four length bytes is plenty for a certificate.
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// (subject, not-after) of a DER X.509 certificate.
pub(crate) fn subject_and_not_after(cert: &[u8]) -> Option<(String, String)> {
    let (SEQUENCE, cert, _) = next(cert)? else { return None };
    let (SEQUENCE, tbs, _) = next(cert)? else { return None };
    let mut rest = tbs;
    // The optional explicit version [0].
    let (tag, _, after) = next(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    let (_serial, _, rest) = next(rest)?;
    let (_signature, _, rest) = next(rest)?;
    let (_issuer, _, rest) = next(rest)?;
    let (SEQUENCE, validity, rest) = next(rest)? else { return None };
    let (_not_before, _, validity) = next(validity)?;
    let (time_tag, not_after, _) = next(validity)?;
    let (SEQUENCE, subject, _) = next(rest)? else { return None };
    Some((name(subject)?, time(time_tag, not_after)?))
}

/// A distinguished name as `CN=..., O=...`, in certificate order.
fn name(mut rdns: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (SET, mut set, rest) = next(rdns)? else { return None };
        rdns = rest;
        while !set.is_empty() {
            let (SEQUENCE, attr, rest) = next(set)? else { return None };
            set = rest;
            let (OID, oid, attr) = next(attr)? else { return None };
            let (_, value, _) = next(attr)?;
            let label = match oid {
                [0x55, 0x04, 0x03] => "CN".to_string(),
                [0x55, 0x04, 0x06] => "C".to_string(),
                [0x55, 0x04, 0x07] => "L".to_string(),
                [0x55, 0x04, 0x08] => "ST".to_string(),
                [0x55, 0x04, 0x0a] => "O".to_string(),
                [0x55, 0x04, 0x0b] => "OU".to_string(),
                other => format!("OID:{}", hex::encode(other)),
            };
            // Strings only: control characters never reach the log.
            let text: String = String::from_utf8_lossy(value).chars().filter(|c| !c.is_control()).collect();
            parts.push(format!("{label}={text}"));
        }
    }
    if parts.is_empty() {
        return Some("(empty)".into());
    }
    Some(parts.join(", "))
}

/// `YYYY-MM-DD HH:MM:SS UTC` from a UTCTime or GeneralizedTime.
fn time(tag: u8, value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let digits = text.strip_suffix('Z')?;
    let full = match tag {
        // RFC 5280: two-digit years 50..99 are 19xx, the rest 20xx.
        UTC_TIME if digits.len() == 12 => {
            let century = if digits[..2].parse::<u8>().ok()? >= 50 { "19" } else { "20" };
            format!("{century}{digits}")
        }
        GENERALIZED_TIME if digits.len() == 14 => digits.to_string(),
        _ => return None,
    };
    if !full.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "{}-{}-{} {}:{}:{} UTC",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_gives_none() {
        assert_eq!(subject_and_not_after(b""), None);
        assert_eq!(subject_and_not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(subject_and_not_after(&[0x30, 0x03, 0x30, 0x01]), None);
        assert_eq!(time(UTC_TIME, b"2x0101000000Z"), None);
    }

    #[test]
    fn times_read_both_forms() {
        assert_eq!(time(UTC_TIME, b"270131235959Z").as_deref(), Some("2027-01-31 23:59:59 UTC"));
        assert_eq!(time(GENERALIZED_TIME, b"20500101000000Z").as_deref(), Some("2050-01-01 00:00:00 UTC"));
    }
}
