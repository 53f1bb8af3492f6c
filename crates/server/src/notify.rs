//! Notifications (R28): where something happens (a deployment starts or
//! ends, a build ends, a project changes, an emergency rollback starts), the
//! event goes into the store's outbox, one notification per rule that wants
//! it ([`ferry_domain::notify::wants`]), with what its channel sends and, for
//! e-mail, whom it addresses, resolved then so that the log shows it. A
//! background task delivers them: a webhook gets Ferry's JSON signed with
//! the rule's secret (HMAC-SHA256 of the body), a chat its incoming-webhook
//! JSON, e-mail goes out over the server's SMTP settings. Each attempt is
//! recorded; a failed one is tried again with backoff
//! (`ferry_domain::notify::retry_at`). The outbox is in the database, so a
//! restarted server goes on delivering.

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_domain::notify::{
    self, Addressed, Channel, EventFacts, Person, Recipient, address, chat_body, chat_refusal, drop_already_addressed,
    mask_url_password, recipients_for, retry_at, wants,
};
use ferry_domain::rfc3339_from_millis;
use ferry_store::{DueNotification, NewNotification, NotificationAttempt, NotificationOutcome, Project};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::{AppState, now_ms};

/// `sha256=<hex>`: the HMAC-SHA256 of the body with the rule's secret.
pub const SIGNATURE_HEADER: &str = "x-ferry-signature";
/// The event's name.
pub const EVENT_HEADER: &str = "x-ferry-event";
/// The notification's id: the same on every attempt, for receivers that
/// must not act twice.
pub const DELIVERY_HEADER: &str = "x-ferry-delivery";

/// How long a receiver or mail server may take to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the outbox is looked at.
const POLL: Duration = Duration::from_millis(250);
/// How long a claimed notification stays this process's: several attempt
/// timeouts (an e-mail may take a few), so a claim never ends mid-attempt.
const CLAIM_TTL_MS: i64 = 60_000;

/// The associated data of a notification rule's secret.
pub fn notify_context(project: &str, url: &str) -> String {
    format!("notify\0{project}\0{url}")
}

/// The signature header's value for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", crate::webhook::sign(secret, body))
}

/// The server's SMTP settings (`ferry server --smtp-url --smtp-from`).
#[derive(Clone)]
pub struct SmtpSettings {
    /// lettre's connection URL: `smtp://` (plain), `smtp://...?tls=required`
    /// (STARTTLS), `smtps://` (TLS from the start); may carry credentials.
    pub url: String,
    /// The From address of every mail.
    pub from: String,
}

/// The URL's password never reaches a log.
impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings").field("url", &mask_url_password(&self.url)).field("from", &self.from).finish()
    }
}

/// Sends e-mail over the configured SMTP server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// For messages: the URL with its password masked.
    masked: String,
}

impl Mailer {
    /// Checks the settings; connects only when a mail is sent.
    pub fn new(settings: &SmtpSettings) -> Result<Mailer, String> {
        let masked = mask_url_password(&settings.url);
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("--smtp-from '{}' is not an e-mail address: {e}", settings.from))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.url)
            .map_err(|e| format!("--smtp-url {masked}: {e}"))?;
        if let Some(tls) = smtp_tls(&settings.url).map_err(|e| format!("--smtp-url {masked}: {e}"))? {
            builder = builder.tls(tls);
        }
        let transport = builder.timeout(Some(ATTEMPT_TIMEOUT)).build();
        Ok(Mailer { transport, from, masked })
    }

    /// Where mail goes, password masked.
    pub fn describe(&self) -> String {
        format!("{} as {}", self.masked, self.from)
    }

    async fn send(&self, to: Vec<Mailbox>, subject: &str, body: &str) -> Result<(), String> {
        let mut message = Message::builder().from(self.from.clone()).subject(subject).header(ContentType::TEXT_PLAIN);
        for mailbox in to {
            message = message.to(mailbox);
        }
        let message = message.body(body.to_string()).map_err(|e| format!("building the mail: {e}"))?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| format!("sending over SMTP ({}): {e}", self.masked))
    }
}

/// The TLS the URL asks for (as lettre reads it), trusting what Ferry's
/// other clients trust: lettre's webpki roots plus the system's CA store.
fn smtp_tls(url: &str) -> Result<Option<Tls>, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    let tls_query = parsed.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    let Some(host) = parsed.host_str() else { return Ok(None) };
    let params = || {
        let mut builder = TlsParameters::builder(host.to_string());
        for cert in ferry_tls::system_ca_certificates() {
            let cert = Certificate::from_der(cert.to_vec()).map_err(|e| e.to_string())?;
            builder = builder.add_root_certificate(cert);
        }
        builder.build_rustls().map_err(|e| e.to_string())
    };
    Ok(match (parsed.scheme(), tls_query.as_deref()) {
        ("smtps", _) => Some(Tls::Wrapper(params()?)),
        ("smtp", Some("required")) => Some(Tls::Required(params()?)),
        ("smtp", Some("opportunistic")) => Some(Tls::Opportunistic(params()?)),
        _ => None,
    })
}

/// What an e-mail notification carries.
#[derive(serde::Serialize, serde::Deserialize)]
struct MailPayload {
    subject: String,
    body: String,
}

/// Queues `event` of a project for every rule that wants it. `starter` is
/// the name of the user who started what the event is about (the build,
/// the deployment, the request; who changed the project), where known: e-mail
/// rules addressed to `starter` write to them. Never fails the caller: what
/// happened has happened, whether anyone hears of it or not.
pub async fn emit(state: &AppState, project: &str, event: &str, starter: Option<&str>, facts: EventFacts) {
    if let Err(e) = queue(state, project, event, starter, &facts).await {
        tracing::error!(project, event, "queueing notifications: {e}");
    }
}

async fn queue(
    state: &AppState,
    project: &str,
    event: &str,
    starter: Option<&str>,
    facts: &EventFacts,
) -> Result<(), ferry_store::StoreError> {
    let p = state.db.project(project).await?;
    let rules: Vec<_> =
        state.db.notification_rules(&p).await?.into_iter().filter(|r| wants(r.kind, &r.events, event)).collect();
    if rules.is_empty() {
        return Ok(());
    }
    // Every message links back to the page of what it is about.
    let mut facts = facts.clone();
    facts.url = Some(format!("{}{}", state.public_url, notify::page_path(project, &facts)));
    let facts = &facts;
    let json = serde_json::json!({
        "event": event,
        "project": project,
        "at": rfc3339_from_millis(now_ms()),
        "data": facts,
    })
    .to_string();
    let text = notify::text(event, project, facts);
    let people = if rules.iter().any(|r| r.kind == Channel::Email) { people(state, &p).await? } else { Vec::new() };
    // One event reaches an address once, however many e-mail rules name it.
    let mut seen = BTreeSet::new();
    let mut items = Vec::new();
    for rule in rules {
        let (payload, addressed) = match rule.kind {
            Channel::Webhook => (json.clone(), Addressed::default()),
            Channel::Email => {
                let wanted: Vec<Recipient> = rule.recipients.iter().filter_map(|r| r.parse().ok()).collect();
                let mut addressed = address(&recipients_for(event, &wanted), &people, starter);
                let before = addressed.to.len();
                drop_already_addressed(&mut addressed, &mut seen);
                if before > 0 && addressed.to.is_empty() {
                    // An earlier rule wrote to everyone this one would.
                    continue;
                }
                let mail = MailPayload { subject: text.subject.clone(), body: text.body.clone() };
                let payload =
                    serde_json::to_string(&mail).map_err(|e| ferry_store::StoreError::Backend(e.to_string()))?;
                (payload, addressed)
            }
            chat => (chat_body(chat, &text.chat()).unwrap_or_default(), Addressed::default()),
        };
        items.push(NewNotification {
            rule_id: rule.id,
            kind: rule.kind,
            webhook_url: rule.webhook_url,
            payload,
            recipients: addressed.to,
            skipped: addressed.skipped,
        });
    }
    state.db.enqueue_notifications(p.id, event, &items, now_ms()).await?;
    Ok(())
}

/// Every user, with their role in the project: whom e-mail rules choose from.
async fn people(state: &AppState, p: &Project) -> Result<Vec<Person>, ferry_store::StoreError> {
    let members = state.db.members(p).await?;
    Ok(state
        .db
        .users()
        .await?
        .into_iter()
        .map(|u| Person {
            role: members.iter().find(|m| m.user == u.name).map(|m| m.role),
            name: u.name,
            email: u.email,
            production: u.production,
            disabled: u.disabled,
        })
        .collect())
}

/// Delivers due notifications until `stop`.
pub async fn run_delivery(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    // reqwest panics without a process-wide rustls provider.
    ferry_tls::install_crypto_provider();
    let http = match reqwest::Client::builder().timeout(ATTEMPT_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("notifications are off: building the HTTP client: {e}");
            return;
        }
    };
    loop {
        // One at a time, each claimed for this process before it is sent: a
        // claim outlives one attempt, so another replica never sends it at
        // the same time; if this process dies, the claim expires and another
        // sends it (at least once).
        loop {
            match state.db.claim_due_notifications(crate::replica::holder(), now_ms(), CLAIM_TTL_MS, 1).await {
                Ok(due) if due.is_empty() => break,
                Ok(due) => {
                    for n in due {
                        deliver(&state, &http, n).await;
                    }
                }
                Err(e) => {
                    tracing::error!("claiming due notifications: {e}");
                    break;
                }
            }
            if stop.has_changed().unwrap_or(true) {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One attempt, recorded with what follows from it.
async fn deliver(state: &AppState, http: &reqwest::Client, n: DueNotification) {
    let made = n.attempts + 1;
    let (status_code, error, final_) = match n.kind {
        Channel::Webhook => post_webhook(state, http, &n).await,
        Channel::Email => send_mail(state, &n).await,
        chat => post_chat(http, chat, &n).await,
    };
    state.metrics.notification_attempted(&n.kind.to_string(), error.is_none());
    let now = now_ms();
    let outcome = match &error {
        None => NotificationOutcome::Delivered,
        // Nothing to try again with: nobody to write to.
        Some(_) if final_ => NotificationOutcome::GaveUp,
        Some(_) => retry_at(made, now).map_or(NotificationOutcome::GaveUp, NotificationOutcome::RetryAt),
    };
    if let Some(e) = &error {
        let target = if n.kind == Channel::Email { n.recipients.join(", ") } else { n.webhook_url.clone() };
        tracing::warn!(notification = n.id, attempt = made, kind = %n.kind, %target, "notification not delivered: {e}");
    }
    let attempt = NotificationAttempt { at: now, status_code, error };
    if let Err(e) = state.db.record_notification_attempt(n.id, &attempt, outcome).await {
        tracing::error!(notification = n.id, "recording a delivery attempt: {e}");
    }
}

/// An attempt's HTTP status if any, why it failed if it did, and whether
/// trying again cannot help.
type Attempted = (Option<u16>, Option<String>, bool);

async fn post_webhook(state: &AppState, http: &reqwest::Client, n: &DueNotification) -> Attempted {
    let mut req = http
        .post(&n.webhook_url)
        .header("content-type", "application/json")
        .header(EVENT_HEADER, &n.event)
        .header(DELIVERY_HEADER, n.id.to_string())
        .body(n.payload.clone());
    if let Some(sealed) = &n.secret {
        match state.secrets.open(sealed.expose(), &notify_context(&n.project, &n.webhook_url)) {
            Ok(secret) => req = req.header(SIGNATURE_HEADER, sign(secret.expose(), n.payload.as_bytes())),
            // An unsigned body must not go where a signed one is expected.
            Err(e) => return (None, Some(format!("cannot open the rule's secret: {e}")), false),
        }
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => (Some(resp.status().as_u16()), None, false),
        Ok(resp) => (Some(resp.status().as_u16()), Some(format!("the receiver answered {}", resp.status())), false),
        Err(e) => (None, Some(format!("sending: {e}")), false),
    }
}

async fn post_chat(http: &reqwest::Client, chat: Channel, n: &DueNotification) -> Attempted {
    let req = http.post(&n.webhook_url).header("content-type", "application/json").body(n.payload.clone());
    match req.send().await {
        Ok(resp) if resp.status().is_success() => {
            let code = resp.status().as_u16();
            // Some chats answer 200 with an error code in the body.
            let answer = resp.text().await.unwrap_or_default();
            (Some(code), chat_refusal(chat, &answer), false)
        }
        Ok(resp) => (Some(resp.status().as_u16()), Some(format!("{chat} answered {}", resp.status())), false),
        Err(e) => (None, Some(format!("sending: {e}")), false),
    }
}

async fn send_mail(state: &AppState, n: &DueNotification) -> Attempted {
    if n.recipients.is_empty() {
        return (None, Some("nobody to write to: no recipient has an e-mail address".into()), true);
    }
    let Some(mailer) = &state.mailer else {
        // The settings may come back with a restart: keep trying until then.
        return (
            None,
            Some("the server has no SMTP settings (start it with --smtp-url and --smtp-from)".into()),
            false,
        );
    };
    let mail: MailPayload = match serde_json::from_str(&n.payload) {
        Ok(m) => m,
        Err(e) => return (None, Some(format!("the queued mail is unreadable: {e}")), true),
    };
    // An address the mail library refuses stays refused: no retry helps.
    let to: Result<Vec<Mailbox>, String> = n
        .recipients
        .iter()
        .map(|a| a.parse().map_err(|e| format!("'{a}' is not an e-mail address the mail library takes: {e}")))
        .collect();
    let to = match to {
        Ok(to) => to,
        Err(e) => return (None, Some(e), true),
    };
    match mailer.send(to, &mail.subject, &mail.body).await {
        Ok(()) => (None, None, false),
        Err(e) => (None, Some(e), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_tls_follows_the_url_as_lettre_reads_it() {
        ferry_tls::install_crypto_provider();
        assert!(smtp_tls("smtp://mail.example:25").unwrap().is_none());
        assert!(matches!(smtp_tls("smtps://u:p@mail.example").unwrap(), Some(Tls::Wrapper(_))));
        assert!(matches!(smtp_tls("smtp://mail.example:587?tls=required").unwrap(), Some(Tls::Required(_))));
        assert!(matches!(smtp_tls("smtp://mail.example?tls=opportunistic").unwrap(), Some(Tls::Opportunistic(_))));
        let settings = SmtpSettings { url: "smtps://mail.example".into(), from: "ferry@example.com".into() };
        assert!(Mailer::new(&settings).is_ok());
    }

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
