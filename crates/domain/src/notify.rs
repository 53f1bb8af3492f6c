//! Notifications (R28): which events there are, the channels a rule sends
//! them through, whom an e-mail rule addresses, the text people read, and
//! when a delivery that failed is tried again. All pure: the server reads
//! the people and the rules, and this decides.
//!
//! Long file: events, channels, recipients, texts in both languages and retry
//! times, with their unit tests; one concept, read top to bottom.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::access::{Role, Subject, is_approver};

/// A build ended, whatever its outcome. Goes to whoever started it.
pub const BUILD_FINISHED: &str = "build.finished";
/// A deployment or rollback was created and starts rolling out.
pub const DEPLOY_STARTED: &str = "deploy.started";
/// A deployment ended, whatever its outcome.
pub const DEPLOY_FINISHED: &str = "deploy.finished";
/// A deployment ended failed or rolled back.
pub const DEPLOY_FAILED: &str = "deploy.failed";
/// A deployment ended rolled back (put back automatically), or a rollback
/// deployment succeeded.
pub const DEPLOY_ROLLED_BACK: &str = "deploy.rolled_back";
/// A release request waits for an approver.
pub const REQUEST_APPROVAL_NEEDED: &str = "request.approval_needed";
/// A release request was approved.
pub const REQUEST_APPROVED: &str = "request.approved";
/// A project's or an environment's settings changed.
pub const PROJECT_CHANGED: &str = "project.changed";
/// An emergency rollback started. Every e-mail rule of the project sends it
/// to every member, whatever events and recipients the rule names.
pub const ROLLBACK_EMERGENCY: &str = "rollback.emergency";
/// A project's service on a host keeps failing after its deploy (a crash
/// loop): sent once when it starts failing, with its last stderr lines (R21).
pub const SERVICE_FAILING: &str = "service.failing";
/// A service that was failing runs again.
pub const SERVICE_RECOVERED: &str = "service.recovered";

/// Every event a rule may ask for.
pub const EVENTS: [&str; 11] = [
    BUILD_FINISHED,
    DEPLOY_STARTED,
    DEPLOY_FINISHED,
    DEPLOY_FAILED,
    DEPLOY_ROLLED_BACK,
    REQUEST_APPROVAL_NEEDED,
    REQUEST_APPROVED,
    PROJECT_CHANGED,
    ROLLBACK_EMERGENCY,
    SERVICE_FAILING,
    SERVICE_RECOVERED,
];

/// Why a rule, a recipient or an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("unknown event '{0}'; events are {list}", list = EVENTS.join(", "))]
    UnknownEvent(String),
    #[error("name at least one event (--event {list})", list = EVENTS.join(","))]
    NoEvent,
    #[error("'{0}' is not an http:// or https:// URL")]
    BadUrl(String),
    #[error("unknown kind '{0}'; kinds are webhook, email, slack, dingtalk, feishu and wecom")]
    UnknownChannel(String),
    #[error("'{0}' is not an e-mail address (one @, something on each side, no spaces)")]
    BadEmail(String),
    #[error("--public-url '{url}': {why}")]
    BadPublicUrl { url: String, why: &'static str },
    #[error("name whom to send to: --to members, approvers, starter or e-mail addresses, comma-separated")]
    NoRecipient,
}

/// How a rule delivers: a signed JSON webhook, e-mail, or one of the chat
/// formats teams use (each that chat's incoming-webhook JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Ferry's own JSON, signed with the rule's secret.
    Webhook,
    /// E-mail over the server's SMTP settings.
    Email,
    /// Slack: `{"text": ...}`.
    Slack,
    /// DingTalk: `{"msgtype": "text", "text": {"content": ...}}`.
    DingTalk,
    /// Feishu / Lark: `{"msg_type": "text", "content": {"text": ...}}`.
    Feishu,
    /// WeCom (WeChat Work): `{"msgtype": "text", "text": {"content": ...}}`.
    WeCom,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 6] =
        [Channel::Webhook, Channel::Email, Channel::Slack, Channel::DingTalk, Channel::Feishu, Channel::WeCom];

    /// The name users type (`--kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Email => "email",
            Channel::Slack => "slack",
            Channel::DingTalk => "dingtalk",
            Channel::Feishu => "feishu",
            Channel::WeCom => "wecom",
        }
    }

    /// Delivers by POSTing to a URL (every channel but e-mail).
    pub fn posts(self) -> bool {
        self != Channel::Email
    }

    /// A chat's incoming webhook: the body is text for people.
    pub fn is_chat(self) -> bool {
        matches!(self, Channel::Slack | Channel::DingTalk | Channel::Feishu | Channel::WeCom)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = NotifyError;
    fn from_str(s: &str) -> Result<Self, NotifyError> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "webhook" => Ok(Channel::Webhook),
            "email" | "e-mail" | "mail" => Ok(Channel::Email),
            "slack" => Ok(Channel::Slack),
            "dingtalk" => Ok(Channel::DingTalk),
            "feishu" | "lark" => Ok(Channel::Feishu),
            "wecom" | "wechat-work" => Ok(Channel::WeCom),
            _ => Err(NotifyError::UnknownChannel(s.to_string())),
        }
    }
}

/// Whom an e-mail rule addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Recipient {
    /// Every member of the project.
    Members,
    /// The project's approvers ([`is_approver`]).
    Approvers,
    /// The user who started what the event is about (the build, the
    /// deployment, the request; for `project.changed`, who changed it).
    Starter,
    /// A literal e-mail address.
    Address(String),
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::Members => f.write_str("members"),
            Recipient::Approvers => f.write_str("approvers"),
            Recipient::Starter => f.write_str("starter"),
            Recipient::Address(a) => f.write_str(a),
        }
    }
}

impl FromStr for Recipient {
    type Err = NotifyError;
    fn from_str(s: &str) -> Result<Self, NotifyError> {
        let s = s.trim();
        match s {
            "members" => Ok(Recipient::Members),
            "approvers" => Ok(Recipient::Approvers),
            "starter" => Ok(Recipient::Starter),
            _ => {
                check_email(s)?;
                Ok(Recipient::Address(s.to_string()))
            }
        }
    }
}

/// The recipients of a comma-separated list, checked, each once, in the
/// order given.
pub fn parse_recipients(list: &str) -> Result<Vec<Recipient>, NotifyError> {
    let mut out: Vec<Recipient> = Vec::new();
    for r in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let r: Recipient = r.parse()?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    if out.is_empty() {
        return Err(NotifyError::NoRecipient);
    }
    Ok(out)
}

/// A simple check of an e-mail address, enough to catch typos: exactly one
/// `@` with something on each side, a dot-free start and end, and no
/// spaces, commas or angle brackets (which would change what a mail header
/// means). Whether the mailbox exists only its server can tell.
pub fn check_email(addr: &str) -> Result<(), NotifyError> {
    let bad = || NotifyError::BadEmail(addr.to_string());
    let (local, domain) = addr.split_once('@').ok_or_else(bad)?;
    let forbidden = |c: char| c.is_whitespace() || c.is_control() || matches!(c, ',' | '<' | '>' | ';' | '"');
    if local.is_empty() || domain.is_empty() || domain.contains('@') || addr.chars().any(forbidden) || addr.len() > 254
    {
        return Err(bad());
    }
    if domain.starts_with('.') || domain.ends_with('.') || local.starts_with('.') || local.ends_with('.') {
        return Err(bad());
    }
    Ok(())
}

/// What recipient selection knows of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: Option<String>,
    /// The user's role in the project; `None`: not a member.
    pub role: Option<Role>,
    /// The production right.
    pub production: bool,
    /// A disabled user is not written to.
    pub disabled: bool,
}

/// Whom a notification goes to, resolved when it is queued so that the log
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Addressed {
    /// E-mail addresses, each once, in the order the rule names them.
    pub to: Vec<String>,
    /// Users meant but not written to, each with why ("bob (no e-mail
    /// address)").
    pub skipped: Vec<String>,
}

/// The recipients an e-mail rule has for `event`: its own, except for an
/// emergency rollback, which goes to every member (plus the rule's literal
/// addresses, who asked to hear of the project).
pub fn recipients_for(event: &str, rule: &[Recipient]) -> Vec<Recipient> {
    if event != ROLLBACK_EMERGENCY {
        return rule.to_vec();
    }
    let mut out = vec![Recipient::Members];
    out.extend(rule.iter().filter(|r| matches!(r, Recipient::Address(_))).cloned());
    out
}

/// Whether a rule of `channel` listing `events` gets `event`: when it lists
/// it, and every e-mail rule gets an emergency rollback (the whole project
/// must hear of it).
pub fn wants(channel: Channel, events: &[String], event: &str) -> bool {
    events.iter().any(|e| e == event) || (channel == Channel::Email && event == ROLLBACK_EMERGENCY)
}

/// The addresses `recipients` name among `people` (every user, with their
/// role in the project), `starter` being the name of who started what the
/// event is about. Members means members; a starter is addressed whether a
/// member or not (an administrator may start a deploy). Users without an
/// address, disabled users and a starter who is no user are skipped, and
/// say so.
pub fn address(recipients: &[Recipient], people: &[Person], starter: Option<&str>) -> Addressed {
    let mut out = Addressed::default();
    let mut seen_people: BTreeSet<String> = BTreeSet::new();
    let mut add_person = |out: &mut Addressed, p: &Person| {
        if !seen_people.insert(p.name.clone()) {
            return;
        }
        match (&p.email, p.disabled) {
            (_, true) => out.skipped.push(format!("{} (disabled)", p.name)),
            (None, false) => out.skipped.push(format!("{} (no e-mail address)", p.name)),
            (Some(e), false) => push_address(&mut out.to, e),
        }
    };
    for r in recipients {
        match r {
            Recipient::Members => people.iter().filter(|p| p.role.is_some()).for_each(|p| add_person(&mut out, p)),
            Recipient::Approvers => people
                .iter()
                .filter(|p| is_approver(p.role, &Subject { is_admin: false, production: p.production }))
                .for_each(|p| add_person(&mut out, p)),
            Recipient::Starter => match starter {
                None => out.skipped.push("starter (the event has none)".into()),
                Some(name) => match people.iter().find(|p| p.name == name) {
                    Some(p) => add_person(&mut out, p),
                    None => out.skipped.push(format!("{name} (starter, not a user)")),
                },
            },
            Recipient::Address(a) => push_address(&mut out.to, a),
        }
    }
    out
}

/// Removes from `addressed` what an earlier rule already wrote to for the
/// same event, and remembers what is left: one event reaches an address
/// once, however many e-mail rules name it (an emergency goes to the whole
/// project through every e-mail rule).
pub fn drop_already_addressed(addressed: &mut Addressed, seen: &mut BTreeSet<String>) {
    addressed.to.retain(|a| seen.insert(a.to_ascii_lowercase()));
}

fn push_address(to: &mut Vec<String>, addr: &str) {
    if !to.iter().any(|t| t.eq_ignore_ascii_case(addr)) {
        to.push(addr.to_string());
    }
}

/// What an event is about, for the people who read of it. Every field is
/// optional: each event fills what it has. Serialised as the `data` of a
/// webhook's JSON, so its field names are that format's.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct EventFacts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<i64>,
    /// The build's number in its project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `deploy` or `rollback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// How it ended (`succeeded`, `failed`, `rolled_back` ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why a deployment ended as it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The git ref a build built.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// Why a build failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What changed (`project.changed`), in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// Who started it (deployments, requests) or changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who asked for a build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Who approved (`request.approved`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The host a service event is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A failing service's last lines of stderr (secrets masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<Vec<String>>,
    /// The web page of what the event is about (see [`page_path`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// An event as people read it: a one-line subject and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub subject: String,
    pub body: String,
}

impl Text {
    /// Subject and body in one message, for chats.
    pub fn chat(&self) -> String {
        format!("{}\n{}", self.subject, self.body)
    }
}

/// The text of `event` of `project`: a subject that says what happened in
/// one line, and a body with the details, one per line.
pub fn text(event: &str, project: &str, f: &EventFacts) -> Text {
    let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
    let env = or(&f.env, "?");
    let version = or(&f.version, "?");
    let dep = f.deployment.map(|d| format!("deployment {d}")).unwrap_or_else(|| "a deployment".into());
    let is_rollback = f.kind.as_deref() == Some("rollback");
    let what = if is_rollback { "rollback" } else { "deploy" };
    let status = or(&f.status, "ended");
    let subject = match event {
        BUILD_FINISHED => {
            let n = f.number.map(|n| format!("build #{n}")).unwrap_or_else(|| "a build".into());
            let of = f.git_ref.as_deref().map(|r| format!(" of {r}")).unwrap_or_default();
            let made = f.version.as_deref().map(|v| format!(": {v}")).unwrap_or_default();
            format!("{project}: {n}{of} {status}{made}")
        }
        DEPLOY_STARTED => format!("{project}: {what} of {version} to {env} started ({dep})"),
        DEPLOY_FINISHED => format!("{project}: {what} of {version} to {env} {status} ({dep})"),
        DEPLOY_FAILED => format!("{project}: {what} of {version} to {env} FAILED ({dep}, {status})"),
        DEPLOY_ROLLED_BACK if is_rollback => format!("{project}: {env} rolled back to {version} ({dep})"),
        DEPLOY_ROLLED_BACK => format!("{project}: {version} to {env} was rolled back ({dep})"),
        REQUEST_APPROVAL_NEEDED => {
            let r = f.request.map(|r| format!("release request {r}")).unwrap_or_else(|| "a release request".into());
            format!("{project}: {r} ({version} to {env}) needs approval")
        }
        REQUEST_APPROVED => {
            let r = f.request.map(|r| format!("release request {r}")).unwrap_or_else(|| "a release request".into());
            let by = f.approved_by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
            format!("{project}: {r} ({version} to {env}) approved{by}")
        }
        PROJECT_CHANGED => format!("{project}: {}", or(&f.change, "settings changed")),
        ROLLBACK_EMERGENCY => format!("EMERGENCY ROLLBACK of {project} in {env} to {version} ({dep})"),
        SERVICE_FAILING => {
            format!("{project}: the service on {} ({env}, {version}) is FAILING", or(&f.host, "a host"))
        }
        SERVICE_RECOVERED => {
            format!("{project}: the service on {} ({env}, {version}) runs again", or(&f.host, "a host"))
        }
        other => format!("{project}: {other}"),
    };
    let mut lines = vec![format!("Project: {project}")];
    let mut line = |label: &str, v: Option<String>| {
        if let Some(v) = v {
            lines.push(format!("{label}: {v}"));
        }
    };
    line("Event", Some(event.to_string()));
    line("Environment", f.env.clone());
    line("Version", f.version.clone());
    line("Deployment", f.deployment.map(|d| d.to_string()));
    line("Build", f.number.map(|n| format!("#{n}")));
    line("Request", f.request.map(|r| r.to_string()));
    line("Ref", f.git_ref.clone());
    line("Status", f.status.clone());
    line("Reason", f.reason.clone());
    line("Error", f.error.clone());
    line("Change", f.change.clone());
    line("Host", f.host.clone());
    line("Started by", f.created_by.clone().or_else(|| f.requested_by.clone()));
    line("Approved by", f.approved_by.clone());
    line("Started at", f.created_at.clone());
    line("Finished at", f.finished_at.clone());
    line("Link", f.url.clone());
    if let Some(stderr) = f.stderr.as_ref().filter(|l| !l.is_empty()) {
        lines.push("Last lines of its stderr:".to_string());
        lines.extend(stderr.iter().map(|l| format!("  {l}")));
    }
    Text { subject: format!("[ferry] {subject}"), body: lines.join("\n") + "\n" }
}

/// The JSON body a chat's incoming webhook takes for `text`. `None` for the
/// channels that are not chats.
pub fn chat_body(channel: Channel, text: &str) -> Option<String> {
    let v = match channel {
        Channel::Slack => serde_json::json!({ "text": text }),
        Channel::DingTalk | Channel::WeCom => serde_json::json!({ "msgtype": "text", "text": { "content": text } }),
        Channel::Feishu => serde_json::json!({ "msg_type": "text", "content": { "text": text } }),
        Channel::Webhook | Channel::Email => return None,
    };
    Some(v.to_string())
}

/// Why a chat that answered 2xx still did not take a message: DingTalk and
/// WeCom answer `{"errcode": N, "errmsg": ...}`, Feishu `{"code": N, "msg":
/// ...}`, with N other than 0 on error. Anything else (Slack's `ok`, an
/// empty body, a proxy's page) counts as taken.
pub fn chat_refusal(channel: Channel, answer: &str) -> Option<String> {
    let (code_key, msg_key) = match channel {
        Channel::DingTalk | Channel::WeCom => ("errcode", "errmsg"),
        Channel::Feishu => ("code", "msg"),
        _ => return None,
    };
    let v: serde_json::Value = serde_json::from_str(answer).ok()?;
    let code = v.get(code_key)?.as_i64()?;
    if code == 0 {
        return None;
    }
    let msg = v.get(msg_key).and_then(|m| m.as_str()).unwrap_or("");
    Some(format!("{channel} refused the message: {code_key} {code} {msg}").trim_end().to_string())
}

/// An SMTP URL with its password replaced by `***`, for logs and messages.
pub fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') { format!("{user}:***") } else { user.to_string() };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Attempts made before a notification is given up.
pub const MAX_ATTEMPTS: u32 = 8;

/// The events of a comma-separated list, checked, each once, in the order
/// given.
pub fn parse_events(list: &str) -> Result<Vec<String>, NotifyError> {
    let mut events: Vec<String> = Vec::new();
    for e in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if !EVENTS.contains(&e) {
            return Err(NotifyError::UnknownEvent(e.to_string()));
        }
        if !events.iter().any(|known| known == e) {
            events.push(e.to_string());
        }
    }
    if events.is_empty() {
        return Err(NotifyError::NoEvent);
    }
    Ok(events)
}

/// Checks a webhook URL: http or https, with a host, no spaces.
pub fn check_url(url: &str) -> Result<(), NotifyError> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !url.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(NotifyError::BadUrl(url.to_string())),
    }
}

/// Checks the address people reach the web interface at (`--public-url`)
/// and returns it without a trailing `/`: http or https, a host, no
/// credentials (links go out in notifications), no query or fragment (page
/// paths are appended to it), no spaces.
pub fn check_public_url(url: &str) -> Result<String, NotifyError> {
    let bad = |why| NotifyError::BadPublicUrl { url: mask_url_password(url), why };
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else { return Err(bad("it must start with http:// or https://")) };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it must not contain spaces"));
    }
    if url.contains(['?', '#']) {
        return Err(bad("it must not have a query or fragment"));
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return Err(bad("it must not carry credentials (links with it go out in notifications)"));
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(bad("it must name a host"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The web interface's page about what `facts` describe, as a path: the
/// deployment, the build, the release request, or else the project.
pub fn page_path(project: &str, facts: &EventFacts) -> String {
    if let Some(d) = facts.deployment {
        format!("/deployments/{d}")
    } else if let Some(b) = facts.build {
        format!("/builds/{b}")
    } else if let Some(r) = facts.request {
        format!("/requests/{r}")
    } else {
        // Project names are plain words (`names`); encoded all the same, so a
        // link can never point elsewhere.
        let name: String = form_encode(project);
        format!("/projects/{name}")
    }
}

/// Percent-encodes everything but unreserved characters.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// When to try again after `attempts` failed attempts made by `now`:
/// 1 s, 2 s, 4 s ... doubling up to 5 minutes; `None` once
/// [`MAX_ATTEMPTS`] have been made. Deterministic (no jitter): one server
/// delivers to a few receivers, not a fleet to one.
pub fn retry_at(attempts: u32, now: i64) -> Option<i64> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let delay = 1_000i64.saturating_mul(1i64 << attempts.saturating_sub(1).min(20)).min(300_000);
    Some(now.saturating_add(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked_and_deduplicated() {
        assert_eq!(
            parse_events("deploy.failed, build.finished,deploy.failed").unwrap(),
            ["deploy.failed", "build.finished"]
        );
        assert_eq!(parse_events("deploy.done"), Err(NotifyError::UnknownEvent("deploy.done".into())));
        assert!(NotifyError::UnknownEvent("x".into()).to_string().contains("rollback.emergency"));
        assert_eq!(parse_events(&EVENTS.join(",")).unwrap().len(), EVENTS.len());
        assert_eq!(parse_events(" , "), Err(NotifyError::NoEvent));
    }

    fn person(name: &str, email: Option<&str>, role: Option<Role>, production: bool) -> Person {
        Person { name: name.into(), email: email.map(Into::into), role, production, disabled: false }
    }

    fn team() -> Vec<Person> {
        vec![
            person("alice", Some("alice@example.com"), Some(Role::Owner), false),
            person("bob", Some("bob@example.com"), Some(Role::Developer), false),
            person("carol", None, Some(Role::Developer), true),
            person("dave", Some("dave@example.com"), Some(Role::Viewer), true),
            person("erin", Some("erin@example.com"), None, true),
            Person { disabled: true, ..person("frank", Some("frank@example.com"), Some(Role::Developer), false) },
        ]
    }

    #[test]
    fn channels_parse_and_print() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), c);
        }
        assert_eq!("Lark".parse::<Channel>().unwrap(), Channel::Feishu);
        assert_eq!("sms".parse::<Channel>(), Err(NotifyError::UnknownChannel("sms".into())));
        assert!(!Channel::Email.posts() && Channel::Webhook.posts() && !Channel::Webhook.is_chat());
    }

    #[test]
    fn e_mail_addresses_get_a_simple_check() {
        for good in ["a@b", "first.last+tag@mail.example.com"] {
            assert!(check_email(good).is_ok(), "{good}");
        }
        for bad in ["", "a", "@b", "a@", "a@@b", "a@b@c", "a b@c", "a@b c", "a@b,c@d", "<a@b>", "a@.b", "a@b.", ".a@b"]
        {
            assert_eq!(check_email(bad), Err(NotifyError::BadEmail(bad.into())), "{bad:?}");
        }
    }

    #[test]
    fn recipients_are_checked_and_deduplicated() {
        assert_eq!(
            parse_recipients("members, starter,ops@example.com,members").unwrap(),
            [Recipient::Members, Recipient::Starter, Recipient::Address("ops@example.com".into())]
        );
        assert_eq!(parse_recipients("approvers").unwrap(), [Recipient::Approvers]);
        assert_eq!(parse_recipients("everyone"), Err(NotifyError::BadEmail("everyone".into())));
        assert_eq!(parse_recipients(" ,"), Err(NotifyError::NoRecipient));
    }

    #[test]
    fn members_are_members_with_an_address() {
        let a = address(&[Recipient::Members], &team(), None);
        assert_eq!(a.to, ["alice@example.com", "bob@example.com", "dave@example.com"]);
        assert_eq!(a.skipped, ["carol (no e-mail address)", "frank (disabled)"]);
    }

    #[test]
    fn approvers_are_owners_and_developers_with_the_production_right() {
        let a = address(&[Recipient::Approvers], &team(), None);
        // erin has the right but is not a member; dave has it but only reads.
        assert_eq!(a.to, ["alice@example.com"]);
        assert_eq!(a.skipped, ["carol (no e-mail address)"]);
    }

    #[test]
    fn the_starter_is_addressed_member_or_not() {
        let a = address(&[Recipient::Starter, Recipient::Address("ops@example.com".into())], &team(), Some("erin"));
        assert_eq!(a.to, ["erin@example.com", "ops@example.com"]);
        let a = address(&[Recipient::Starter], &team(), Some("carol"));
        assert_eq!((a.to.len(), a.skipped), (0, vec!["carol (no e-mail address)".to_string()]));
        let a = address(&[Recipient::Starter], &team(), Some("webhook"));
        assert_eq!(a.skipped, ["webhook (starter, not a user)"]);
        assert_eq!(address(&[Recipient::Starter], &team(), None).skipped, ["starter (the event has none)"]);
    }

    #[test]
    fn everyone_is_addressed_once() {
        let rule = [
            Recipient::Starter,
            Recipient::Members,
            Recipient::Address("BOB@example.com".into()),
            Recipient::Approvers,
        ];
        let a = address(&rule, &team(), Some("bob"));
        assert_eq!(a.to, ["bob@example.com", "alice@example.com", "dave@example.com"]);
        assert_eq!(a.skipped, ["carol (no e-mail address)", "frank (disabled)"]);
    }

    #[test]
    fn an_emergency_reaches_the_whole_project_through_every_e_mail_rule_once() {
        let rule = [Recipient::Starter, Recipient::Address("ops@example.com".into())];
        assert_eq!(recipients_for(DEPLOY_FINISHED, &rule), rule);
        let r = recipients_for(ROLLBACK_EMERGENCY, &rule);
        assert_eq!(r, [Recipient::Members, Recipient::Address("ops@example.com".into())]);
        assert!(wants(Channel::Email, &[BUILD_FINISHED.into()], ROLLBACK_EMERGENCY));
        assert!(!wants(Channel::Slack, &[BUILD_FINISHED.into()], ROLLBACK_EMERGENCY));
        assert!(wants(Channel::Slack, &[ROLLBACK_EMERGENCY.into()], ROLLBACK_EMERGENCY));
        assert!(!wants(Channel::Email, &[BUILD_FINISHED.into()], DEPLOY_FINISHED));

        let mut seen = BTreeSet::new();
        let mut first = address(&r, &team(), None);
        drop_already_addressed(&mut first, &mut seen);
        assert_eq!(first.to.len(), 4);
        let mut second = address(&recipients_for(ROLLBACK_EMERGENCY, &[]), &team(), None);
        drop_already_addressed(&mut second, &mut seen);
        assert!(second.to.is_empty(), "{second:?}");
    }

    fn deployment(kind: &str, status: &str) -> EventFacts {
        EventFacts {
            deployment: Some(7),
            env: Some("prod".into()),
            version: Some("v1.2".into()),
            kind: Some(kind.into()),
            status: Some(status.into()),
            created_by: Some("alice".into()),
            ..EventFacts::default()
        }
    }

    #[test]
    fn each_event_reads_as_what_happened() {
        let build = EventFacts {
            build: Some(3),
            number: Some(12),
            git_ref: Some("main".into()),
            status: Some("succeeded".into()),
            version: Some("v1.2".into()),
            requested_by: Some("bob".into()),
            ..EventFacts::default()
        };
        let request = EventFacts {
            request: Some(4),
            env: Some("prod".into()),
            version: Some("v1.2".into()),
            approved_by: Some("carol".into()),
            ..EventFacts::default()
        };
        let change = EventFacts { change: Some("environment 'prod' is now production".into()), ..Default::default() };
        let cases = [
            (BUILD_FINISHED, build, "[ferry] shop: build #12 of main succeeded: v1.2"),
            (
                DEPLOY_STARTED,
                deployment("deploy", "running"),
                "[ferry] shop: deploy of v1.2 to prod started (deployment 7)",
            ),
            (
                DEPLOY_FINISHED,
                deployment("deploy", "succeeded"),
                "[ferry] shop: deploy of v1.2 to prod succeeded (deployment 7)",
            ),
            (
                DEPLOY_FAILED,
                deployment("deploy", "failed"),
                "[ferry] shop: deploy of v1.2 to prod FAILED (deployment 7, failed)",
            ),
            (
                DEPLOY_ROLLED_BACK,
                deployment("deploy", "rolled_back"),
                "[ferry] shop: v1.2 to prod was rolled back (deployment 7)",
            ),
            (
                DEPLOY_ROLLED_BACK,
                deployment("rollback", "succeeded"),
                "[ferry] shop: prod rolled back to v1.2 (deployment 7)",
            ),
            (REQUEST_APPROVAL_NEEDED, request.clone(), "[ferry] shop: release request 4 (v1.2 to prod) needs approval"),
            (REQUEST_APPROVED, request, "[ferry] shop: release request 4 (v1.2 to prod) approved by carol"),
            (PROJECT_CHANGED, change, "[ferry] shop: environment 'prod' is now production"),
            (
                ROLLBACK_EMERGENCY,
                deployment("rollback", "running"),
                "[ferry] EMERGENCY ROLLBACK of shop in prod to v1.2 (deployment 7)",
            ),
        ];
        for (event, facts, subject) in cases {
            let t = text(event, "shop", &facts);
            assert_eq!(t.subject, subject, "{event}");
            assert!(t.body.starts_with("Project: shop\nEvent: "), "{event}: {}", t.body);
            assert!(t.body.contains(&format!("Event: {event}\n")), "{event}: {}", t.body);
            assert!(!t.subject.contains('\n'), "a subject is one line");
        }
        let t = text(
            DEPLOY_FAILED,
            "shop",
            &EventFacts { reason: Some("web-1: crash loop".into()), ..deployment("deploy", "failed") },
        );
        assert!(t.body.contains("Reason: web-1: crash loop\n") && t.body.contains("Started by: alice\n"), "{}", t.body);
    }

    #[test]
    fn chat_bodies_are_each_chats_format() {
        let v = |s: Option<String>| serde_json::from_str::<serde_json::Value>(&s.unwrap()).unwrap();
        assert_eq!(v(chat_body(Channel::Slack, "hi \"x\"")), serde_json::json!({"text": "hi \"x\""}));
        assert_eq!(
            v(chat_body(Channel::DingTalk, "hi")),
            serde_json::json!({"msgtype": "text", "text": {"content": "hi"}})
        );
        assert_eq!(
            v(chat_body(Channel::WeCom, "hi")),
            serde_json::json!({"msgtype": "text", "text": {"content": "hi"}})
        );
        assert_eq!(
            v(chat_body(Channel::Feishu, "hi")),
            serde_json::json!({"msg_type": "text", "content": {"text": "hi"}})
        );
        assert_eq!(chat_body(Channel::Webhook, "hi"), None);
        assert_eq!(chat_body(Channel::Email, "hi"), None);
    }

    #[test]
    fn chats_that_answer_200_may_still_refuse() {
        assert_eq!(chat_refusal(Channel::DingTalk, r#"{"errcode":0,"errmsg":"ok"}"#), None);
        assert_eq!(
            chat_refusal(Channel::DingTalk, r#"{"errcode":310000,"errmsg":"keywords not in content"}"#).as_deref(),
            Some("dingtalk refused the message: errcode 310000 keywords not in content")
        );
        assert!(chat_refusal(Channel::Feishu, r#"{"code":19021,"msg":"sign match fail"}"#).is_some());
        assert_eq!(chat_refusal(Channel::Feishu, r#"{"code":0}"#), None);
        assert!(chat_refusal(Channel::WeCom, r#"{"errcode":93000}"#).is_some());
        assert_eq!(chat_refusal(Channel::Slack, "ok"), None);
        assert_eq!(chat_refusal(Channel::DingTalk, "<html>"), None);
    }

    #[test]
    fn smtp_passwords_are_masked() {
        assert_eq!(mask_url_password("smtps://me:pa:ss@mail.example:465"), "smtps://me:***@mail.example:465");
        assert_eq!(
            mask_url_password("smtp://me:s3cret@127.0.0.1:2525?tls=required"),
            "smtp://me:***@127.0.0.1:2525?tls=required"
        );
        assert_eq!(mask_url_password("smtp://127.0.0.1:25"), "smtp://127.0.0.1:25");
        assert_eq!(mask_url_password("smtp://me@host"), "smtp://me@host");
    }

    #[test]
    fn public_urls_are_http_without_credentials() {
        assert_eq!(check_public_url("https://ferry.example/").unwrap(), "https://ferry.example");
        assert_eq!(check_public_url("http://10.0.0.1:8080/ferry").unwrap(), "http://10.0.0.1:8080/ferry");
        for bad in
            ["ftp://x", "ferry.example", "https://", "https://me:pw@x", "https://x?a=b", "https://x/#f", "http://a b"]
        {
            let e = check_public_url(bad).unwrap_err().to_string();
            assert!(e.starts_with("--public-url"), "{bad}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn links_name_the_page_of_what_the_event_is_about() {
        let f = EventFacts { deployment: Some(7), build: Some(3), ..EventFacts::default() };
        assert_eq!(page_path("shop", &f), "/deployments/7");
        assert_eq!(page_path("shop", &EventFacts { build: Some(3), ..EventFacts::default() }), "/builds/3");
        assert_eq!(page_path("shop", &EventFacts { request: Some(2), ..EventFacts::default() }), "/requests/2");
        assert_eq!(page_path("a/b", &EventFacts::default()), "/projects/a%2Fb");
        let with = EventFacts { url: Some("https://f.example/deployments/7".into()), ..f };
        assert!(text(DEPLOY_FINISHED, "shop", &with).body.contains("Link: https://f.example/deployments/7\n"));
    }

    #[test]
    fn urls_are_http_with_a_host() {
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("https://chat.example/x").is_ok());
        for bad in ["ftp://x", "http://", "http:///x", "https://a b", "example.com"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retries_back_off_then_give_up() {
        assert_eq!(retry_at(1, 0), Some(1_000));
        assert_eq!(retry_at(2, 0), Some(2_000));
        assert_eq!(retry_at(4, 10), Some(8_010));
        assert_eq!(retry_at(MAX_ATTEMPTS - 1, 0), Some(64_000));
        assert_eq!(retry_at(MAX_ATTEMPTS, 0), None);
        assert_eq!(retry_at(0, 5), Some(1_005), "a first attempt that never ran waits a second too");
    }
}
