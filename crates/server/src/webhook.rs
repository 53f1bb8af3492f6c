//! Push webhooks from GitHub, GitLab, Gitea and Gerrit (R5): each forge's own
//! authentication, checked over the raw body before anything is parsed, and
//! its payload reduced to "this ref moved".

use axum::http::HeaderMap;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The forges Ferry understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    GitLab,
    Gitea,
    Gerrit,
}

impl Forge {
    /// The forge a hook URL's `{forge}` segment names (`forgejo` is Gitea).
    pub fn parse(name: &str) -> Option<Forge> {
        match name {
            "github" => Some(Forge::GitHub),
            "gitlab" => Some(Forge::GitLab),
            "gitea" | "forgejo" => Some(Forge::Gitea),
            "gerrit" => Some(Forge::Gerrit),
            _ => None,
        }
    }

    /// The forge's name in hook URLs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::Gitea => "gitea",
            Forge::Gerrit => "gerrit",
        }
    }
}

/// A webhook that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A branch or tag moved to a commit (`commit`, when the forge says).
    Push { reference: Ref, delivery: String, commit: Option<String> },
    /// A ping, or an event kind Ferry does not build on.
    Other { what: String },
}

/// What was pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Branch(String),
    Tag(String),
    /// The ref was deleted: nothing to build.
    Deleted(String),
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadPayload(String),
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// HMAC-SHA256 of `body` under `secret`, as lowercase hex.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The JSON a delivery carries, and the bytes the forge signed.
///
/// GitHub and Gitea can send `application/x-www-form-urlencoded` bodies
/// (`payload=<url-encoded JSON>`); GitHub then signs the form body as sent,
/// Gitea the JSON inside it. Every other forge and content type: the body is
/// the JSON and is what is signed.
fn unwrap_body(forge: Forge, headers: &HeaderMap, body: &[u8]) -> Result<(Vec<u8>, bool), HookError> {
    let form = header(headers, "content-type")
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !form || !matches!(forge, Forge::GitHub | Forge::Gitea) {
        return Ok((body.to_vec(), false));
    }
    let mut payload = None;
    for (key, value) in form_urlencoded::parse(body) {
        if key == "payload" {
            if payload.is_some() {
                return Err(HookError::BadPayload("the form body has more than one 'payload' field".into()));
            }
            payload = Some(value.into_owned().into_bytes());
        }
    }
    let payload = payload.ok_or_else(|| HookError::BadPayload("the form body has no 'payload' field".into()))?;
    Ok((payload, forge == Forge::Gitea))
}

/// A commit id as git writes it: 7 to 64 hex digits (SHA-1 or SHA-256).
fn is_commit_id(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks the forge's authentication, then reads the event.
pub fn verify_and_parse(forge: Forge, secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<Event, HookError> {
    let (json_bytes, json_is_signed) = unwrap_body(forge, headers, body)?;
    // The exact bytes the forge signs: the body as sent, except Gitea's
    // form deliveries, where the signature covers the JSON inside.
    let signed: &[u8] = if json_is_signed { &json_bytes } else { body };
    let expected = sign(secret, signed);
    let authentic = match forge {
        Forge::GitHub => header(headers, "x-hub-signature-256")
            .and_then(|v| v.strip_prefix("sha256="))
            .is_some_and(|sig| same(&sig.to_ascii_lowercase(), &expected)),
        Forge::Gitea => header(headers, "x-gitea-signature")
            .or_else(|| header(headers, "x-forgejo-signature"))
            .is_some_and(|sig| same(&sig.to_ascii_lowercase(), &expected)),
        Forge::GitLab => header(headers, "x-gitlab-token").is_some_and(|t| same(t, secret)),
        Forge::Gerrit => header(headers, "x-ferry-signature")
            .and_then(|v| v.strip_prefix("sha256="))
            .is_some_and(|sig| same(&sig.to_ascii_lowercase(), &expected)),
    };
    if !authentic {
        let what = match forge {
            Forge::GitHub => "X-Hub-Signature-256",
            Forge::Gitea => "X-Gitea-Signature",
            Forge::GitLab => "X-Gitlab-Token",
            Forge::Gerrit => "X-Ferry-Signature",
        };
        return Err(HookError::Unauthorized(format!("missing or wrong {what} for this project's webhook secret")));
    }
    let json: serde_json::Value = serde_json::from_slice(&json_bytes)
        .map_err(|e| HookError::BadPayload(format!("the payload is not JSON: {e}")))?;
    // Without a delivery id, the payload itself identifies a redelivery.
    let body_id = || ferry_artifact::digest_of(&json_bytes).to_hex();
    let (kind, delivery) = match forge {
        Forge::GitHub => (header(headers, "x-github-event").unwrap_or("push"), header(headers, "x-github-delivery")),
        Forge::Gitea => (
            header(headers, "x-gitea-event").or_else(|| header(headers, "x-forgejo-event")).unwrap_or("push"),
            header(headers, "x-gitea-delivery").or_else(|| header(headers, "x-forgejo-delivery")),
        ),
        // GitLab's "Resend request" sends new event UUIDs but the same
        // Idempotency-Key: that key is the delivery.
        Forge::GitLab => (
            header(headers, "x-gitlab-event").unwrap_or("Push Hook"),
            header(headers, "idempotency-key")
                .or_else(|| header(headers, "x-gitlab-event-uuid"))
                .or_else(|| header(headers, "x-gitlab-webhook-uuid")),
        ),
        Forge::Gerrit => (json["type"].as_str().unwrap_or(""), header(headers, "x-ferry-delivery")),
    };
    let delivery = delivery.filter(|d| !d.is_empty()).map(str::to_string).unwrap_or_else(body_id);
    let is_push = match forge {
        Forge::GitHub | Forge::Gitea => kind == "push",
        Forge::GitLab => kind == "Push Hook" || kind == "Tag Push Hook",
        Forge::Gerrit => kind == "ref-updated",
    };
    if !is_push {
        return Ok(Event::Other { what: kind.to_string() });
    }
    let (ref_name, new_rev) = match forge {
        Forge::Gerrit => (json["refUpdate"]["refName"].as_str(), json["refUpdate"]["newRev"].as_str()),
        // `checkout_sha` is the commit even when `after` names an annotated tag.
        Forge::GitLab => (json["ref"].as_str(), json["checkout_sha"].as_str().or_else(|| json["after"].as_str())),
        _ => (json["ref"].as_str(), json["after"].as_str()),
    };
    let ref_name = ref_name.ok_or_else(|| HookError::BadPayload("the push names no ref".into()))?;
    let deleted = new_rev.is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b == b'0'))
        || json["deleted"].as_bool() == Some(true)
        || (forge == Forge::GitLab
            && json["after"].as_str().is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b == b'0')));
    let reference = if deleted {
        Ref::Deleted(ref_name.to_string())
    } else if let Some(tag) = ref_name.strip_prefix("refs/tags/") {
        Ref::Tag(tag.to_string())
    } else if let Some(branch) = ref_name.strip_prefix("refs/heads/") {
        Ref::Branch(branch.to_string())
    } else if forge == Forge::Gerrit && !ref_name.starts_with("refs/") {
        // Older Gerrit sends short branch names.
        Ref::Branch(ref_name.to_string())
    } else {
        return Ok(Event::Other { what: format!("push to {ref_name}") });
    };
    let commit = new_rev.filter(|r| !r.is_empty()).map(str::to_ascii_lowercase);
    if let (Some(c), false) = (&commit, deleted)
        && !is_commit_id(c)
    {
        return Err(HookError::BadPayload(format!("the pushed commit '{c}' is not a commit id")));
    }
    Ok(Event::Push { reference, delivery, commit })
}

/// A key under which a redelivered payload is recognised whatever its
/// delivery id (Gitea's "Replay" sends the same body under a new id).
pub fn payload_key(forge: Forge, headers: &HeaderMap, body: &[u8]) -> String {
    let json = unwrap_body(forge, headers, body).map(|(j, _)| j).unwrap_or_else(|_| body.to_vec());
    format!("body:{}", ferry_artifact::digest_of(&json).to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const PUSH: &[u8] = br#"{"ref":"refs/heads/main","after":"1234abcd"}"#;

    #[test]
    fn github_and_gitea_check_the_hmac() {
        let sig = sign("s3cret", PUSH);
        let ok = headers(&[("x-hub-signature-256", format!("sha256={sig}")), ("x-github-delivery", "d1".into())]);
        assert_eq!(
            verify_and_parse(Forge::GitHub, "s3cret", &ok, PUSH),
            Ok(Event::Push {
                reference: Ref::Branch("main".into()),
                delivery: "d1".into(),
                commit: Some("1234abcd".into())
            })
        );
        assert!(matches!(verify_and_parse(Forge::GitHub, "other", &ok, PUSH), Err(HookError::Unauthorized(_))));
        let tampered = br#"{"ref":"refs/heads/evil","after":"1234abcd"}"#;
        assert!(verify_and_parse(Forge::GitHub, "s3cret", &ok, tampered).is_err());
        assert!(verify_and_parse(Forge::GitHub, "s3cret", &HeaderMap::new(), PUSH).is_err());
        let gitea = headers(&[("x-gitea-signature", sig.clone()), ("x-gitea-event", "push".into())]);
        assert!(matches!(verify_and_parse(Forge::Gitea, "s3cret", &gitea, PUSH), Ok(Event::Push { .. })));
    }

    #[test]
    fn gitlab_checks_the_token_and_gerrit_the_shared_secret() {
        let tag = br#"{"ref":"refs/tags/v2.0","after":"abababab"}"#;
        let gl = headers(&[("x-gitlab-token", "s3cret".into()), ("x-gitlab-event", "Tag Push Hook".into())]);
        assert!(matches!(
            verify_and_parse(Forge::GitLab, "s3cret", &gl, tag),
            Ok(Event::Push { reference: Ref::Tag(t), .. }) if t == "v2.0"
        ));
        let wrong = headers(&[("x-gitlab-token", "guess".into())]);
        assert!(verify_and_parse(Forge::GitLab, "s3cret", &wrong, tag).is_err());

        let body = br#"{"type":"ref-updated","refUpdate":{"refName":"main","newRev":"ff00ff00"}}"#;
        let gerrit = headers(&[("x-ferry-signature", format!("sha256={}", sign("s3cret", body)))]);
        assert!(matches!(
            verify_and_parse(Forge::Gerrit, "s3cret", &gerrit, body),
            Ok(Event::Push { reference: Ref::Branch(b), .. }) if b == "main"
        ));
    }

    #[test]
    fn pings_and_deletions_build_nothing() {
        let ping = br#"{"zen":"hi"}"#;
        let h = headers(&[
            ("x-hub-signature-256", format!("sha256={}", sign("k", ping))),
            ("x-github-event", "ping".into()),
        ]);
        assert_eq!(verify_and_parse(Forge::GitHub, "k", &h, ping), Ok(Event::Other { what: "ping".into() }));
        let del = br#"{"ref":"refs/heads/old","after":"0000000000000000000000000000000000000000","deleted":true}"#;
        let h = headers(&[("x-hub-signature-256", format!("sha256={}", sign("k", del)))]);
        assert!(matches!(
            verify_and_parse(Forge::GitHub, "k", &h, del),
            Ok(Event::Push { reference: Ref::Deleted(_), .. })
        ));
    }

    #[test]
    fn form_bodies_are_checked_over_what_each_forge_signs() {
        let json = r#"{"ref":"refs/heads/main","after":"1234abcd"}"#;
        let form = form_urlencoded::Serializer::new(String::new()).append_pair("payload", json).finish();
        let form_type = ("content-type", "application/x-www-form-urlencoded".to_string());
        let gh =
            headers(&[form_type.clone(), ("x-hub-signature-256", format!("sha256={}", sign("k", form.as_bytes())))]);
        assert!(matches!(verify_and_parse(Forge::GitHub, "k", &gh, form.as_bytes()), Ok(Event::Push { .. })));
        let gh =
            headers(&[form_type.clone(), ("x-hub-signature-256", format!("sha256={}", sign("k", json.as_bytes())))]);
        assert!(verify_and_parse(Forge::GitHub, "k", &gh, form.as_bytes()).is_err());
        let gt = headers(&[form_type.clone(), ("x-gitea-signature", sign("k", json.as_bytes()))]);
        assert!(matches!(verify_and_parse(Forge::Gitea, "k", &gt, form.as_bytes()), Ok(Event::Push { .. })));
        let gt = headers(&[form_type, ("x-gitea-signature", sign("k", form.as_bytes()))]);
        assert!(verify_and_parse(Forge::Gitea, "k", &gt, form.as_bytes()).is_err());
    }

    #[test]
    fn gitlab_resends_keep_their_idempotency_key_and_commits_must_be_ids() {
        let body = br#"{"ref":"refs/heads/main","after":"1234abcd","checkout_sha":"1234abcd"}"#;
        let resend = headers(&[
            ("x-gitlab-token", "k".into()),
            ("x-gitlab-event-uuid", "new-uuid".into()),
            ("idempotency-key", "same-key".into()),
        ]);
        assert!(matches!(
            verify_and_parse(Forge::GitLab, "k", &resend, body),
            Ok(Event::Push { delivery, .. }) if delivery == "same-key"
        ));
        let odd = br#"{"ref":"refs/heads/main","after":"--upload-pack=x"}"#;
        let h = headers(&[("x-hub-signature-256", format!("sha256={}", sign("k", odd)))]);
        assert!(matches!(verify_and_parse(Forge::GitHub, "k", &h, odd), Err(HookError::BadPayload(_))));
    }
}
