//! View models and the templates that render them: one struct per page (and
//! per partial that htmx fetches on its own), plain data filled by the
//! server.

use askama::Template;

use crate::assets::LINKS;
use crate::i18n::{Lang, Text};

/// Which item of the navigation is the current page's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Dashboard,
    Users,
    Tokens,
    Projects,
    Requests,
    Fleet,
    Hosts,
    Audit,
    None,
}

/// What every page's frame needs: language, who is signed in, the CSRF
/// token its forms carry, and where the assets are.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub lang: Lang,
    pub t: &'static Text,
    pub title: String,
    /// The signed-in user's name; `None` on the sign-in page.
    pub user: Option<String>,
    /// Shows the administrators' navigation items (the pages check again).
    pub admin: bool,
    /// The session's CSRF token, put in every form.
    pub csrf: String,
    pub nav: Nav,
    /// The current path, for the language switcher to come back to.
    pub here: String,
    pub htmx_js: &'static str,
    pub sse_js: &'static str,
    pub app_js: &'static str,
    pub css: &'static str,
    /// How many release requests wait for the user, shown beside the
    /// Requests menu item.
    pub waiting: usize,
}

impl Chrome {
    /// A page's frame.
    pub fn new(lang: Lang, title: impl Into<String>, nav: Nav, here: impl Into<String>) -> Chrome {
        Chrome {
            lang,
            t: lang.text(),
            title: title.into(),
            user: None,
            admin: false,
            csrf: String::new(),
            nav,
            here: here.into(),
            htmx_js: &LINKS.htmx,
            sse_js: &LINKS.sse,
            app_js: &LINKS.app,
            css: &LINKS.css,
            waiting: 0,
        }
    }

    /// The count of requests waiting for the user, for the menu.
    pub fn waiting(mut self, n: usize) -> Chrome {
        self.waiting = n;
        self
    }

    /// The frame of a signed-in user's page.
    pub fn signed_in(mut self, user: impl Into<String>, admin: bool, csrf: impl Into<String>) -> Chrome {
        self.user = Some(user.into());
        self.admin = admin;
        self.csrf = csrf.into();
        self
    }

    /// The languages to switch to, with the URL that switches.
    /// Each is (name, language code as in `lang` and `hreflang`, URL, current).
    pub fn languages(&self) -> Vec<(&'static str, &'static str, String, bool)> {
        Lang::ALL
            .iter()
            .map(|l| {
                (l.own_name(), l.code(), format!("/lang/{}?back={}", l.code(), url_encode(&self.here)), *l == self.lang)
            })
            .collect()
    }

    /// Whether `nav` is the current page's item (for its style).
    pub fn is(&self, nav: Nav) -> bool {
        self.nav == nav
    }
}

/// Percent-encodes a path for a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A status shown as a coloured badge: its word and its CSS class.
#[derive(Debug, Clone)]
pub struct Status {
    pub word: String,
}

impl Status {
    pub fn new(word: impl Into<String>) -> Status {
        Status { word: word.into() }
    }
    /// The CSS class of the badge.
    pub fn class(&self) -> String {
        format!("st st-{}", self.word)
    }
}

/// A build in a list.
#[derive(Debug, Clone)]
pub struct BuildItem {
    pub id: i64,
    pub project: String,
    pub number: i64,
    pub git_ref: String,
    pub commit: String,
    pub status: Status,
    pub version: String,
    pub requested_by: String,
    pub created: String,
}

/// A deployment in a list.
#[derive(Debug, Clone)]
pub struct DeploymentItem {
    pub id: i64,
    pub project: String,
    pub env: String,
    pub version: String,
    pub kind: String,
    pub status: Status,
    pub created_by: String,
    pub created: String,
    /// e.g. "2/3", or empty when not running.
    pub batch: String,
    /// The command that promotes it, when it waits for that (a canary
    /// whose first batch is done); else empty.
    pub promote: String,
}

/// A host in a list.
#[derive(Debug, Clone)]
pub struct HostItem {
    pub name: String,
    pub tags: String,
    pub online: bool,
    pub agent_version: String,
    pub last_seen: String,
    /// "project/env version" for each release desired or running there.
    pub runs: Vec<String>,
}

/// The sign-in form.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub chrome: Chrome,
    pub error: bool,
    pub user: String,
    /// Where to go after signing in.
    pub next: String,
}

/// An error as a page (403, 404, 500 ...).
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub status: u16,
    pub message: String,
}

/// One project's deployments of a period by outcome (R29), drawn as a
/// stacked bar.
#[derive(Debug, Clone)]
pub struct StatBar {
    pub project: String,
    pub total: u32,
    /// Each outcome with its count and its part of the bar: (class, word,
    /// count, x, width), x and width in per cent of the bar.
    pub segments: Vec<(&'static str, &'static str, u32, f32, f32)>,
}

impl StatBar {
    /// A bar from the counts of succeeded, failed, rolled back and canceled
    /// deployments, with the words for them.
    pub fn new(project: impl Into<String>, counts: [u32; 4], t: &Text) -> StatBar {
        let total: u32 = counts.iter().sum();
        let kinds =
            [("ok", t.stat_succeeded), ("bad", t.stat_failed), ("back", t.stat_rolled_back), ("off", t.stat_canceled)];
        let mut x = 0.0;
        let mut segments = Vec::new();
        for ((class, word), n) in kinds.into_iter().zip(counts) {
            if n == 0 || total == 0 {
                continue;
            }
            let w = 100.0 * n as f32 / total as f32;
            segments.push((class, word, n, x, w));
            x += w;
        }
        StatBar { project: project.into(), total, segments }
    }
}

/// The dashboard.
#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub chrome: Chrome,
    /// Deployments of the last 30 days, per project.
    pub stats: Vec<StatBar>,
    pub running: Vec<DeploymentItem>,
    pub builds: Vec<BuildItem>,
    pub deployments: Vec<DeploymentItem>,
    pub offline: Vec<HostItem>,
    /// Release requests waiting for me: to test or to approve.
    pub waiting: Vec<crate::requests::RequestItem>,
}

/// A project in the list.
#[derive(Debug, Clone)]
pub struct ProjectItem {
    pub name: String,
    /// The user's role, or "administrator".
    pub role: String,
    pub environments: Vec<String>,
}

/// The projects the user may see.
#[derive(Template)]
#[template(path = "projects.html")]
pub struct ProjectsPage {
    pub chrome: Chrome,
    pub projects: Vec<ProjectItem>,
    /// Whether the form to create a project is worth showing.
    pub may_create: bool,
}

/// An environment on its project's page.
#[derive(Debug, Clone)]
pub struct EnvItem {
    pub name: String,
    pub production: bool,
    pub selector: String,
    /// What its hosts run now: `v1`, or `v1 (2) / v2 (1)` when they differ;
    /// empty for nothing.
    pub current: String,
    pub mixed: bool,
    /// Where its rollback takes the hosts (`v1`, or host by host where they
    /// differ); empty when none would move or the viewer may not deploy.
    pub rollback_to: String,
    /// Deployments need an approved release request (R24).
    pub requires_approval: bool,
    /// Where requests for it are tested first; empty for nowhere.
    pub staging: String,
}

/// One environment of the project page's grid of versions (R23), in the
/// order versions travel.
#[derive(Debug, Clone)]
pub struct GridCell {
    pub env: String,
    /// The environment it comes after; empty for none.
    pub after: String,
    /// What its hosts run: `v1`, `v1 (2) / v2 (1)` when mixed, `-` for none.
    pub versions: String,
    pub mixed: bool,
    /// The environment before runs a version this one lacks: a promote
    /// button is worth showing (the server checks again).
    pub behind: bool,
    /// Its last deployment in a few words (version, by whom, when); empty
    /// for none.
    pub last: String,
    pub last_id: Option<i64>,
    pub last_status: Option<Status>,
    /// Its hosts, and how many of them are online.
    pub hosts: usize,
    pub online: usize,
    /// Hosts that do not run what they should.
    pub drift: usize,
    /// Hosts whose agent reports an error for the project.
    pub errors: usize,
    /// What to do there next.
    pub next: NextStep,
}

/// The next thing to do in an environment, as the project's grid offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// A deployment runs there: follow it.
    Watch(i64),
    /// A release request for it waits for an approval.
    Approve(i64),
    /// Its last deployment did not succeed: retry it where it failed.
    Retry(i64),
    /// The environment before runs a version it lacks.
    Promote,
    Nothing,
}

/// Deployments of one release, on the project page (R10).
#[derive(Debug, Clone)]
pub struct DeploymentGroup {
    pub version: String,
    /// The build the release came from, if it was built by Ferry.
    pub build: Option<(i64, i64)>,
    pub deployments: Vec<DeploymentItem>,
}

/// A project: environments, builds, deployments by build.
#[derive(Template)]
#[template(path = "project.html")]
pub struct ProjectPage {
    pub chrome: Chrome,
    pub name: String,
    /// The environments in order with their versions (R23).
    pub grid: Vec<GridCell>,
    pub envs: Vec<EnvItem>,
    pub builds: Vec<BuildItem>,
    pub groups: Vec<DeploymentGroup>,
    /// Whether the build form is worth showing (the server checks again).
    pub may_build: bool,
    /// Whether the deploy dialog is worth linking to (the server checks again).
    pub may_deploy: bool,
    /// (user, role)
    pub members: Vec<(String, String)>,
    /// Whether the member forms are worth showing (the server checks again).
    pub may_manage: bool,
    pub builds_from_git: bool,
    /// Each environment's delivery over the last 30 days (R29).
    pub delivery: Vec<DeliveryRow>,
    /// Hosts whose service keeps failing after its deploy (R21).
    pub failing: Vec<FailingService>,
}

/// A host whose service of the project keeps failing (R21).
#[derive(Debug, Clone)]
pub struct FailingService {
    pub host: String,
    pub env: String,
    pub version: String,
    pub reason: String,
    pub since: String,
    /// Its last lines of stderr, secrets masked.
    pub stderr: Vec<String>,
}

/// One environment's statistics (R29) as the project page shows them: the
/// outcomes as a bar, and the delivery metrics in words.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    /// The bar; its `project` is the environment's name.
    pub bar: StatBar,
    /// Successful deploys per day, e.g. `0.43`.
    pub per_day: String,
    /// Median commit-to-production time, or `-`.
    pub lead_time: String,
    /// e.g. `25% (1 of 4)`, or `-`.
    pub failure_rate: String,
    /// Median time to restore, or `-`.
    pub restore: String,
}

/// A host the deploy dialog offers.
#[derive(Debug, Clone)]
pub struct PickHost {
    pub name: String,
    pub tags: String,
    pub online: bool,
    /// The project's version it runs now, `-` for none.
    pub version: String,
}

/// A release the deploy dialog offers: version, its build, and whether it
/// is marked bad.
#[derive(Debug, Clone)]
pub struct PickRelease {
    pub version: String,
    pub label: String,
    pub bad: bool,
    /// Chosen when the dialog opens (`?version=`).
    pub selected: bool,
}

/// The deploy dialog (R9): a release, an environment, a strategy, and all of
/// the environment's hosts or some, picked from a list filtered by tag.
#[derive(Template)]
#[template(path = "deploy.html")]
pub struct DeployPage {
    pub chrome: Chrome,
    pub project: String,
    /// (name, production)
    pub envs: Vec<(String, bool)>,
    pub env: String,
    /// The tag filter of the host list, e.g. `dc=bj`.
    pub tag: String,
    pub releases: Vec<PickRelease>,
    pub hosts: Vec<PickHost>,
    /// The environment's rollout, in words.
    pub default_rollout: String,
    /// Shown again because the environment was changed after its hosts
    /// were listed: nothing was deployed.
    pub env_changed: bool,
    /// The environment was just picked: its select takes the focus again.
    pub focus_env: bool,
}

/// One host of a plan shown before it is carried out: what it runs and
/// where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    pub host: String,
    /// The version it runs now, `-` for none.
    pub now: String,
    /// The version it goes to, or why it stays.
    pub to: String,
    /// Whether it changes.
    pub moves: bool,
}

/// A confirm page: what a destructive action will do, and the form that
/// does it. The button that leads here is a link, so this works without
/// JavaScript; cancelling is leaving.
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub chrome: Chrome,
    pub heading: String,
    /// What the action does, in words.
    pub explain: String,
    /// Why the page is shown again (the plan changed), or empty.
    pub notice: String,
    /// Host by host, for rollbacks; empty for other actions.
    pub plan: Vec<PlanRow>,
    /// Where the form posts.
    pub action: String,
    /// The form's hidden fields besides the CSRF token.
    pub hidden: Vec<(String, String)>,
    /// Ask for a reason (required), recorded in the audit trail.
    pub reason: bool,
    /// The confirm button's words; empty when there is nothing to do.
    pub confirm: String,
    pub danger: bool,
    /// Where cancelling goes.
    pub back: String,
}

/// A line of a log.
#[derive(Debug, Clone)]
pub struct LogLineView {
    /// When the line was written (UTC, to the second).
    pub at: String,
    pub stream: String,
    pub line: String,
}

impl LogLineView {
    /// The CSS class of the line.
    pub fn class(&self) -> String {
        format!("ln ln-{}", self.stream)
    }
}

/// One log line, as the SSE stream sends it (appended by htmx).
#[derive(Template)]
#[template(path = "log_line.html")]
pub struct LogLineFragment<'a> {
    pub l: &'a LogLineView,
}

/// A status badge alone, as the SSE stream's last event sends it.
#[derive(Template)]
#[template(source = r#"<span class="{{ status.class() }}">{{ t.word(status.word) }}</span>"#, ext = "html")]
pub struct StatusFragment<'a> {
    pub status: &'a Status,
    pub t: &'static Text,
}

/// A build with its log, live while it runs.
#[derive(Template)]
#[template(path = "build.html")]
pub struct BuildPage {
    pub chrome: Chrome,
    pub build: BuildItem,
    pub error: String,
    pub release_id: Option<i64>,
    pub lines: Vec<LogLineView>,
    /// The build has not ended: the log is followed over SSE from `last_seq`.
    pub live: bool,
    pub last_seq: i64,
    pub may_build: bool,
    pub may_retry: bool,
    pub may_cancel: bool,
    /// Whether the link to deploy what the build made is worth showing.
    pub may_deploy: bool,
}

/// A host's row of a deployment.
#[derive(Debug, Clone)]
pub struct DeploymentHostView {
    pub host: String,
    pub batch: u32,
    pub state: Status,
    pub started: String,
    pub finished: String,
    pub error: String,
    pub downloaded: String,
    pub reused: String,
}

/// One batch of a rollout's picture.
#[derive(Debug, Clone)]
pub struct BatchView {
    /// From 1.
    pub number: u32,
    /// The batch the rollout is at.
    pub current: bool,
    /// Each host with its state.
    pub hosts: Vec<(String, Status)>,
}

/// A rollout as a picture: batches as a bar of host cells, the gate it
/// waits at, and what it does next.
#[derive(Debug, Clone, Default)]
pub struct RolloutPicture {
    pub batches: Vec<BatchView>,
    /// What the next step will do, in words; empty once it has ended.
    pub next: String,
    /// It waits at a promotion gate (or a canary's soak): the promote
    /// button belongs here.
    pub gate: bool,
}

/// The part of a deployment page that changes while it runs.
#[derive(Debug, Clone)]
pub struct DeploymentLive {
    pub id: i64,
    pub item: DeploymentItem,
    pub running: bool,
    pub paused: bool,
    pub hold: String,
    pub reason: String,
    pub hosts: Vec<DeploymentHostView>,
    pub events: Vec<(String, String)>,
    /// Whether the control buttons are worth showing (the server checks
    /// every press against the same rule).
    pub may_control: bool,
    /// Ended without every host succeeding, and the user may deploy there.
    pub may_retry: bool,
    pub waits_for_promotion: bool,
    /// The rollout as a picture.
    pub picture: RolloutPicture,
    pub csrf: String,
    pub t: &'static Text,
}

/// A line of a deployment's log, with its host.
#[derive(Debug, Clone)]
pub struct HostLogLine {
    pub host: String,
    pub at: String,
    pub line: LogLineView,
}

/// One line of a deployment's log, as its SSE stream sends it.
#[derive(Template)]
#[template(
    source = r#"<div class="{{ l.line.class() }}"><span class="muted">{{ l.at }} {{ l.host }}</span> {{ l.line.line }}</div>"#,
    ext = "html"
)]
pub struct HostLogLineFragment<'a> {
    pub l: &'a HostLogLine,
}

/// A deployment: batches, hosts, history, controls, and what the hosts
/// logged (R10).
#[derive(Template)]
#[template(path = "deployment.html")]
pub struct DeploymentPage {
    pub chrome: Chrome,
    pub live: DeploymentLive,
    /// The hosts to filter the log by, and the one chosen ("" for all).
    pub log_hosts: Vec<String>,
    pub log_host: String,
    pub log: Vec<HostLogLine>,
    /// The last line shown; while the deployment runs, the rest arrives over
    /// SSE from there.
    pub log_last_seq: i64,
}

/// The live part alone, for htmx's refresh.
#[derive(Template)]
#[template(path = "deployment_live.html")]
pub struct DeploymentLivePartial {
    pub live: DeploymentLive,
}

/// A cell of the fleet matrix.
#[derive(Debug, Clone)]
pub struct FleetCell {
    /// The version running there, empty if none.
    pub version: String,
    /// The colour class of that version (`v0`..`v7`).
    pub colour: &'static str,
    /// Runs something other than what it should.
    pub drift: bool,
    /// What it should run, for the tooltip.
    pub desired: String,
}

/// A host's row of the fleet matrix.
#[derive(Debug, Clone)]
pub struct FleetRow {
    pub host: String,
    pub online: bool,
    pub cells: Vec<FleetCell>,
}

/// Environment x host -> version (R12).
#[derive(Template)]
#[template(path = "fleet.html")]
pub struct FleetPage {
    pub chrome: Chrome,
    /// Column headings: "project/env".
    pub columns: Vec<String>,
    pub rows: Vec<FleetRow>,
    /// Each version shown, with its colour class.
    pub legend: Vec<(String, &'static str)>,
}

/// The colour class of a version: stable for a version, so the same version
/// has the same colour in every column.
pub fn version_colour(version: &str) -> &'static str {
    const CLASSES: [&str; 8] = ["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"];
    let mut h: u32 = 2_166_136_261;
    for b in version.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(16_777_619);
    }
    CLASSES[(h % 8) as usize]
}

/// Every host.
#[derive(Template)]
#[template(path = "hosts.html")]
pub struct HostsPage {
    pub chrome: Chrome,
    pub hosts: Vec<HostItem>,
}

/// A user on the users page.
#[derive(Debug, Clone)]
pub struct UserItem {
    pub name: String,
    pub admin: bool,
    pub production: bool,
    pub disabled: bool,
}

/// Users, for administrators: create, disable, enable.
#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub chrome: Chrome,
    pub users: Vec<UserItem>,
}

/// One's own API tokens: create (shown once), revoke.
#[derive(Template)]
#[template(path = "tokens.html")]
pub struct TokensPage {
    pub chrome: Chrome,
    /// (id, name, created)
    pub tokens: Vec<(i64, String, String)>,
    /// A token just made, shown this once.
    pub new_token: Option<String>,
}

/// An entry of the audit log.
#[derive(Debug, Clone)]
pub struct AuditItem {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub object: String,
    pub outcome: String,
    /// What changed, secrets masked.
    pub summary: String,
    pub ok: bool,
}

/// The audit log with its filters (R27).
#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    /// Where the filter form goes: `/audit` (the whole trail), or
    /// `/projects/P/audit` (one project's, for its owners).
    pub action: String,
    /// The project is the page's own and cannot be changed in the form.
    pub project_fixed: bool,
    pub project: String,
    pub actor: String,
    pub since: String,
    pub entries: Vec<AuditItem>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render;

    fn chrome(lang: Lang) -> Chrome {
        Chrome::new(lang, "t", Nav::Dashboard, "/").signed_in("ann", true, "tok")
    }

    #[test]
    fn pages_render_in_both_languages_and_escape_data() {
        for lang in Lang::ALL {
            let page = HostsPage {
                chrome: chrome(lang),
                hosts: vec![HostItem {
                    name: "<script>".into(),
                    tags: "env=prod".into(),
                    online: false,
                    agent_version: "0.1".into(),
                    last_seen: "now".into(),
                    runs: vec!["app/prod v1".into()],
                }],
            };
            let html = render(&page).unwrap();
            assert!(html.contains("&#60;script&#62;") && !html.contains("<td><script>"), "{html}");
            assert!(html.contains(lang.text().nav_hosts));
            assert!(html.contains(r#"name="csrf" value="tok""#), "the sign-out form carries the token");
        }
    }

    #[test]
    fn a_confirm_page_shows_the_plan_and_holds_the_real_form_in_both_languages() {
        for lang in Lang::ALL {
            let page = ConfirmPage {
                chrome: chrome(lang),
                heading: "h".into(),
                explain: lang.text().emergency_explain.into(),
                notice: String::new(),
                plan: vec![PlanRow { host: "<b>".into(), now: "v2".into(), to: "v1".into(), moves: true }],
                action: "/projects/app/environments/prod/rollback".into(),
                hidden: vec![("plan".into(), "web-1=v1".into())],
                reason: true,
                confirm: "go".into(),
                danger: true,
                back: "/projects/app".into(),
            };
            let html = render(&page).unwrap();
            assert!(html.contains(r#"<form method="post" action="/projects/app/environments/prod/rollback""#));
            assert!(html.contains(r#"name="plan" value="web-1=v1""#) && html.contains(r#"name="reason""#));
            assert!(html.contains("&#60;b&#62;") && html.contains("→ v1"), "{html}");
            assert!(html.contains(r#"href="/projects/app" id="cancel-confirm""#));
        }
    }

    #[test]
    fn a_version_keeps_its_colour() {
        assert_eq!(version_colour("v1.2.3"), version_colour("v1.2.3"));
        let colours: std::collections::BTreeSet<_> = (0..50).map(|i| version_colour(&format!("v{i}"))).collect();
        assert!(colours.len() > 4);
    }
}
