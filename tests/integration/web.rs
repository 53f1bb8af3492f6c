//! The web interface (issue 7), against the real server: over plain HTTP
//! (pages, sessions, CSRF, refusals), and in a real browser (Debian's
//! chromium through chromedriver) for what needs JavaScript: the live log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use crate::harness::{Ferry, Repo, wait_until};

pub(crate) const PASSWORD: &str = "correct horse 1";

/// Creates a user with a password (and a role in `project`, if given).
pub(crate) fn user(f: &Ferry, name: &str, admin: bool, member: Option<(&str, &str)>) {
    let mut args = vec!["user", "create", name, "--password-stdin"];
    if admin {
        args.push("--admin");
    }
    let out = f.cli_stdin(&args, &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if let Some((project, role)) = member {
        f.ok(&["member", "add", project, name, role]);
    }
}

/// A browser without a browser: one session cookie, no redirects followed.
pub(crate) struct Web {
    url: String,
    cookie: Option<String>,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) location: String,
    pub(crate) body: String,
}

impl Web {
    pub(crate) fn new(f: &Ferry) -> Web {
        Web::at(&f.url)
    }

    /// A browser for the server at `url`.
    pub(crate) fn at(url: &str) -> Web {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Web { url: url.to_string(), cookie: None, rt, client }
    }

    fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", format!("ferry_session={c}")),
            None => req,
        };
        self.rt.block_on(async {
            let resp = req.send().await.unwrap();
            let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let (location, set_cookie) = (header("location"), header("set-cookie"));
            if let Some(v) = set_cookie.strip_prefix("ferry_session=") {
                let v = v.split(';').next().unwrap_or("");
                self.cookie = Some(v.to_string()).filter(|v| !v.is_empty());
            }
            Answer { status: resp.status().as_u16(), location, body: resp.text().await.unwrap_or_default() }
        })
    }

    pub(crate) fn get(&mut self, path: &str) -> Answer {
        let req = self.client.get(format!("{}{path}", self.url));
        self.send(req)
    }

    pub(crate) fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body: String = fields.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&");
        let req = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req)
    }

    pub(crate) fn head(&mut self, path: &str) -> Answer {
        let req = self.client.head(format!("{}{path}", self.url));
        self.send(req)
    }

    /// A GET with the language cookie the switcher sets.
    pub(crate) fn get_with_lang(&mut self, path: &str, lang: &str) -> Answer {
        let req = self.client.get(format!("{}{path}", self.url)).header("cookie", format!("ferry_lang={lang}"));
        self.send(req)
    }

    /// A form sent from the page at `from` (its `Referer`).
    pub(crate) fn post_from(&mut self, path: &str, fields: &[(&str, &str)], from: &str) -> Answer {
        let body: String = fields.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&");
        let req = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("referer", format!("{}{from}", self.url))
            .body(body);
        self.send(req)
    }

    pub(crate) fn sign_in(&mut self, name: &str, password: &str) -> Answer {
        self.post("/login", &[("user", name), ("password", password), ("next", "/")])
    }

    /// Opens the event stream at `path` and returns the name of its first
    /// event, or `None` if none came within `wait`.
    pub(crate) fn first_event(&mut self, path: &str, wait: Duration) -> Option<String> {
        let mut req = self.client.get(format!("{}{path}", self.url));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("ferry_session={c}"));
        }
        self.rt.block_on(async {
            let mut resp = req.send().await.ok()?;
            assert_eq!(resp.status().as_u16(), 200, "{path}");
            let mut text = String::new();
            let deadline = tokio::time::Instant::now() + wait;
            while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, resp.chunk()).await {
                text.push_str(&String::from_utf8_lossy(&chunk));
                if let Some(line) = text.lines().find(|l| l.starts_with("event:")) {
                    return Some(line["event:".len()..].trim().to_string());
                }
            }
            None
        })
    }
}

fn encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// The CSRF token a page's forms carry.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a form with its CSRF token");
    html[at + 19..].split('"').next().unwrap().to_string()
}

#[test]
fn pages_render_for_a_signed_in_user_and_every_form_needs_its_csrf_token() {
    let f = Ferry::start();
    f.ok(&["project", "create", "app"]);
    f.ok(&["env", "create", "app", "prod", "--select", "role=web", "--production"]);
    f.ok(&["project", "create", "secret-project"]);
    user(&f, "dev", false, Some(("app", "developer")));
    let mut web = Web::new(&f);

    // Not signed in: every page leads to the sign-in form.
    let a = web.get("/projects/app");
    assert_eq!((a.status, a.location.as_str()), (303, "/login?next=/projects/app"));
    assert!(web.get("/login").body.contains(r#"name="password""#));

    // A wrong password is refused and recorded like the API's.
    let a = web.sign_in("dev", "wrong password");
    assert_eq!(a.status, 401);
    assert!(a.body.contains("login-error") && web.cookie.is_none());
    let audit = f.ok(&["audit", "--limit", "5"]);
    assert!(audit.contains("POST /login") && audit.contains("401"), "{audit}");
    assert!(!audit.contains("wrong password"), "the password never reaches the trail: {audit}");

    let a = web.sign_in("dev", PASSWORD);
    assert_eq!((a.status, a.location.as_str()), (303, "/"));
    assert!(web.cookie.is_some());
    for page in ["/", "/projects", "/projects/app", "/fleet", "/hosts"] {
        let a = web.get(page);
        assert_eq!(a.status, 200, "{page}: {}", a.body);
        assert!(a.body.contains(r#"id="me">dev<"#), "{page} names who is signed in");
    }
    let projects = web.get("/projects").body;
    assert!(projects.contains("/projects/app") && !projects.contains("secret-project"), "{projects}");
    assert_eq!(web.get("/projects/secret-project").status, 403);
    let audit = web.get("/audit");
    assert_eq!(audit.status, 403, "the audit log is the administrators'");
    assert!(audit.body.contains("managing users"), "the refusal says why: {}", audit.body);

    // Language: the browser's, or the one chosen.
    let zh = web.rt.block_on(async {
        let req = web.client.get(format!("{}/projects", f.url)).header("accept-language", "zh-CN,zh;q=0.9");
        let req = req.header("cookie", format!("ferry_session={}", web.cookie.clone().unwrap_or_default()));
        req.send().await.unwrap().text().await.unwrap()
    });
    assert!(zh.contains("<h1>项目</h1>"), "{zh}");
    let a = web.get("/lang/zh-CN?back=/hosts");
    assert_eq!((a.status, a.location.as_str()), (303, "/hosts"));

    // The static files are served with a long cache life under hashed names.
    let page = web.get("/").body;
    let htmx = page.split(r#"<script src=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
    assert!(htmx.starts_with("/static/htmx."), "{htmx}");
    assert_eq!(web.get(&htmx).status, 200);

    // My API tokens: a new one is shown once, and works with the API.
    let csrf = csrf_of(&page);
    let a = web.post("/tokens", &[("csrf", &csrf), ("name", "laptop")]);
    assert_eq!(a.status, 200, "{}", a.body);
    let marker = r#"id="new-token">"#;
    let at = a.body.find(marker).expect("the new token is shown");
    let token = a.body[at + marker.len()..].split('<').next().unwrap().to_string();
    assert!(f.cli_token(&token, &["whoami"]).status.success());
    assert!(!web.get("/tokens").body.contains(&token), "shown once only");
    assert_eq!(web.get("/users").status, 403, "users are the administrators'");

    // An administrator creates a user and makes them a member, in forms.
    user(&f, "ada", true, None);
    let mut admin = Web::new(&f);
    admin.sign_in("ada", PASSWORD);
    let admin_csrf = csrf_of(&admin.get("/users").body);
    let a = admin.post("/users", &[("csrf", &admin_csrf), ("name", "eve"), ("password", PASSWORD)]);
    assert_eq!((a.status, a.location.as_str()), (303, "/users"), "{}", a.body);
    let a = admin.post("/projects/app/members", &[("csrf", &admin_csrf), ("user", "eve"), ("role", "viewer")]);
    assert_eq!(a.status, 303, "{}", a.body);
    let mut eve = Web::new(&f);
    assert_eq!(eve.sign_in("eve", PASSWORD).status, 303);
    assert!(eve.get("/projects").body.contains("/projects/app"));
    for since in ["2h", "2020-01-31", "2020-01-31T10:00:00Z"] {
        let a = admin.get(&format!("/audit?since={}", encode(since)));
        assert_eq!(a.status, 200, "since={since}: {}", a.body);
        assert!(a.body.contains("POST /users"), "since={since}");
    }
    let users = admin.get("/users").body;
    assert!(users.contains("<td>eve</td>"), "{users}");
    let audit = f.ok(&["audit", "--limit", "5"]);
    assert!(audit.contains("POST /users") && !audit.contains(PASSWORD), "{audit}");

    // No form is accepted without the session's CSRF token.
    let a = web.post("/logout", &[]);
    assert_eq!(a.status, 403, "sign-out without the token: {}", a.body);
    let a = web.post("/logout", &[("csrf", "0123456789abcdef0123456789abcdef")]);
    assert_eq!(a.status, 403);
    let a = web.post("/logout", &[("csrf", &csrf)]);
    assert_eq!((a.status, a.location.as_str()), (303, "/login"));
    assert!(web.cookie.is_none());
    assert_eq!(web.get("/").status, 303, "signed out");
}

#[test]
fn a_viewer_s_deployment_controls_are_refused_though_no_button_is_shown() {
    let f = Ferry::fleet_on_v1(&["web-1", "web-2"]);
    user(&f, "vic", false, Some(("app", "viewer")));
    user(&f, "olga", false, Some(("app", "owner")));
    // One host at a time, each batch waiting for a promotion: it stays running.
    let id = f.deploy_held("v2");
    wait_until(Duration::from_secs(30), "the first batch to wait for its promotion", || {
        f.deployment_held_for_promote(id)
    });

    let mut web = Web::new(&f);
    web.sign_in("vic", PASSWORD);
    // The project's delivery (R29): v1's deploy succeeded, v2's still runs.
    let project = web.get("/projects/app").body;
    let delivery = &project[project.find(r#"id="delivery""#).expect("a delivery table")..];
    assert!(delivery.contains("<title>1 succeeded</title>"), "{delivery}");
    let page = web.get(&format!("/deployments/{id}"));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("web-1") && page.body.contains("v2"), "{}", page.body);
    assert!(!page.body.contains("/cancel\""), "a viewer is shown no controls");
    let csrf = csrf_of(&page.body);
    for action in ["pause", "resume", "cancel", "promote"] {
        let a = web.post(&format!("/deployments/{id}/{action}"), &[("csrf", &csrf)]);
        assert_eq!(a.status, 403, "{action}: {}", a.body);
        assert!(a.body.contains("deploying"), "{action} refused by the access rule: {}", a.body);
    }
    let audit = f.ok(&["audit", "--limit", "10"]);
    assert!(audit.contains("POST /deployments/{id}/{action}") && audit.contains("403"), "{audit}");

    // An owner is shown the controls, and they work: promote, then pause.
    let mut owner = Web::new(&f);
    owner.sign_in("olga", PASSWORD);
    let page = owner.get(&format!("/deployments/{id}")).body;
    assert!(page.contains(&format!("/deployments/{id}/promote")), "{page}");
    let csrf = csrf_of(&page);
    let a = owner.post(&format!("/deployments/{id}/promote"), &[("csrf", &csrf)]);
    assert_eq!((a.status, a.location.clone()), (303, format!("/deployments/{id}")), "{}", a.body);
    wait_until(Duration::from_secs(30), "the second batch to start", || {
        let live = owner.get(&format!("/deployments/{id}/live")).body;
        live.matches("st-succeeded").count() >= 1 && !live.contains("<html")
    });
    let a = owner.post(&format!("/deployments/{id}/cancel"), &[("csrf", &csrf)]);
    assert_eq!(a.status, 303, "{}", a.body);
    wait_until(Duration::from_secs(30), "the deployment to end", || {
        f.json(&["deployment", "show", &id.to_string()])["status"] != "running"
    });
    // A deployment that ended short can be retried on the hosts that did
    // not succeed: offered to the owner, refused to the viewer.
    assert!(owner.get(&format!("/deployments/{id}")).body.contains(&format!("/deployments/{id}/retry")));
    assert!(!web.get(&format!("/deployments/{id}")).body.contains("/retry\""));
    let viewer_csrf = csrf_of(&web.get("/").body);
    let a = web.post(&format!("/deployments/{id}/retry"), &[("csrf", &viewer_csrf)]);
    assert_eq!(a.status, 403);
    assert!(a.body.contains("deploying"), "refused by the access rule, not the CSRF check: {}", a.body);

    // The deploy dialog: a release, the environment's hosts filtered by tag,
    // and a chosen subset of them (R9).
    let form = owner.get("/projects/app/deploy?env=prod&tag=role%3Dweb").body;
    assert!(form.contains(r#"value="web-1""#) && form.contains(r#"value="web-2""#), "{form}");
    assert!(!owner.get("/projects/app/deploy?env=prod&tag=role%3Ddb").body.contains(r#"value="web-1""#));
    let fields = [("csrf", csrf.as_str()), ("env", "prod"), ("version", "v1"), ("scope", "chosen"), ("hosts", "web-2")];
    let a = owner.post("/projects/app/deployments", &fields);
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(a.location.starts_with("/deployments/"), "{}", a.location);
    f.wait_version("web-2", "app", "v1");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v2"), "only the chosen host");
    wait_until(Duration::from_secs(30), "the deployment to web-2 to end", || {
        f.json(&["deployments", "app"])[0]["status"] != "running"
    });

    // v2 everywhere, then roll back from the project page: to v1, the
    // previous good release.
    let all = [("csrf", csrf.as_str()), ("env", "prod"), ("version", "v2"), ("scope", "all")];
    assert_eq!(owner.post("/projects/app/deployments", &all).status, 303);
    wait_until(Duration::from_secs(30), "v2 everywhere", || {
        f.json(&["deployments", "app"])[0]["status"] == "succeeded"
    });
    let page = owner.get("/projects/app").body;
    assert!(page.contains("/projects/app/environments/prod/rollback"), "{page}");
    let a = owner.post("/projects/app/environments/prod/rollback", &[("csrf", &csrf)]);
    assert_eq!(a.status, 303, "{}", a.body);
    let rollback = f.json(&["deployments", "app"])[0].clone();
    assert_eq!(rollback["kind"], "rollback", "{rollback}");
    f.wait_version("web-1", "app", "v1");
    // The viewer may not deploy, whatever the form says.
    assert_eq!(web.post("/projects/app/deployments", &fields).status, 403);
    assert_eq!(web.get("/projects/app/deploy").status, 403);

    // The project page groups the deployments by release, the release
    // deployed last first: v1 (the first deployment, the one to web-2 and
    // the rollback), then v2.
    let project = web.get("/projects/app").body;
    assert_eq!(project.matches("<h3>Version v1").count(), 1, "{project}");
    let (v2, v1) = (project.find("<h3>Version v2").unwrap(), project.find("<h3>Version v1").unwrap());
    assert!(v1 < v2, "{project}");
    assert_eq!(project[v1..v2].matches("href=\"/deployments/").count(), 3, "every deployment of v1 in its group");
    // The fleet matrix shows what runs where.
    let fleet = web.get("/fleet").body;
    assert!(fleet.contains("app/prod") && fleet.contains("web-1"), "{fleet}");
}

/// chromedriver on an OS-given port, with its own chromium profile; both
/// end when this is dropped.
pub(crate) struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    /// Where chromedriver listens.
    pub(crate) fn url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver ends the chromium it started when it exits.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

impl Driver {
    /// A headless chromium session with the driver's own profile, 1280
    /// pixels wide (see [`browser`]).
    pub(crate) async fn connect(&self) -> fantoccini::Client {
        browser(self, 1280).await
    }
}

/// Starts chromedriver, or says loudly why the browser test cannot run
/// (and fails when `FERRY_REQUIRE_BROWSER=1`).
pub(crate) fn chromedriver() -> Option<Driver> {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        let msg = format!("{CHROMEDRIVER} or {CHROMIUM} is missing: apt-get install chromium chromium-driver");
        if std::env::var("FERRY_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("{msg}");
        }
        eprintln!("\n!!!!! SKIPPING THE BROWSER TEST: {msg} !!!!!\n");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::env::temp_dir().join(format!("ferry-chromedriver-{port}.log"));
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}"), _profile: tempfile::tempdir().unwrap() };
    wait_until(Duration::from_secs(20), "chromedriver to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Some(driver)
}

/// A headless chromium session of `driver`, `width` pixels wide, whose
/// console log chromedriver keeps (`goog:loggingPrefs`).
pub(crate) async fn browser(driver: &Driver, width: u32) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    let profile = driver._profile.path().display().to_string();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", format!("--user-data-dir={profile}"), format!("--window-size={width},900")],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), serde_json::json!({"browser": "ALL"}));
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

/// The page's text of the element with this id, or "" while it is absent.
pub(crate) async fn text_of(c: &fantoccini::Client, id: &str) -> String {
    match c.find(fantoccini::Locator::Id(id)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Saves what the browser shows as `NAME.png` in `$FERRY_WEB_SCREENSHOTS`,
/// when that is set: for looking at the pages after a change.
pub(crate) async fn shot(c: &fantoccini::Client, name: &str) {
    if let Some(dir) = std::env::var_os("FERRY_WEB_SCREENSHOTS") {
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = c.screenshot().await {
            let _ = std::fs::write(Path::new(&dir).join(format!("{name}.png")), png);
        }
    }
}

/// Polls `cond` on the page until it holds.
pub(crate) async fn eventually(
    c: &fantoccini::Client,
    what: &str,
    timeout: Duration,
    mut cond: impl AsyncFnMut(&fantoccini::Client) -> bool,
) {
    let start = Instant::now();
    while !cond(c).await {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs in as `name` (signing out whoever is signed in), landing on `path`.
pub(crate) async fn sign_in_as(c: &fantoccini::Client, url: &str, name: &str, path: &str) {
    use fantoccini::Locator::{Css, Id};
    if c.find(Css("form[action='/logout'] button")).await.is_ok() {
        c.find(Css("form[action='/logout'] button")).await.unwrap().click().await.unwrap();
    }
    c.goto(&format!("{url}{path}")).await.unwrap();
    eventually(c, "the sign-in form", Duration::from_secs(10), async |c| c.find(Id("user")).await.is_ok()).await;
    c.find(Id("user")).await.unwrap().send_keys(name).await.unwrap();
    c.find(Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    c.find(Id("sign-in")).await.unwrap().click().await.unwrap();
    eventually(c, "signed in", Duration::from_secs(10), async |c| text_of(c, "me").await == name).await;
}

/// Clicks the button with this id on request `id`'s page and waits for the
/// request to be in `state`, reloading the page while its deployment runs.
async fn request_step(c: &fantoccini::Client, url: &str, id: &str, button: &str, state: &str) {
    use fantoccini::Locator::Id;
    c.goto(&format!("{url}/requests/{id}")).await.unwrap();
    c.find(Id(button)).await.unwrap().click().await.unwrap();
    eventually(c, &format!("request {id} to be {state}"), Duration::from_secs(60), async |c| {
        let now = match c.find(Id("request-state")).await {
            Ok(e) => e.attr("data-state").await.ok().flatten().unwrap_or_default(),
            Err(_) => String::new(),
        };
        if now != state {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = c.refresh().await;
        }
        now == state
    })
    .await;
}

/// Builds the project's main branch from its page, and waits for success.
async fn build_main(c: &fantoccini::Client, url: &str) {
    use fantoccini::Locator::Css;
    c.goto(&format!("{url}/projects/app")).await.unwrap();
    c.find(Css("input[name=git_ref]")).await.unwrap().send_keys("main").await.unwrap();
    c.find(Css("form.filters button.primary")).await.unwrap().click().await.unwrap();
    eventually(c, "the build page", Duration::from_secs(10), async |c| {
        c.current_url().await.is_ok_and(|u| u.path().starts_with("/builds/"))
    })
    .await;
    eventually(c, "the build to succeed", Duration::from_secs(60), async |c| {
        text_of(c, "build-status").await.contains("succeeded")
    })
    .await;
}

/// A release request's whole way in the browser (R24): ann asks, bob (a
/// second user) approves it from his inbox, ann releases it; then the same
/// for a rollback.
async fn request_release_and_roll_back(c: &fantoccini::Client, f: &Ferry) {
    use fantoccini::Locator::{Css, Id};
    let url = &f.url;
    build_main(c, url).await;
    user(f, "bob", false, Some(("app", "owner")));
    f.ok(&["env", "update", "app", "prod", "--require-approval", "true"]);

    // ann asks for the newest version to go to prod.
    let project_page = format!("{url}/projects/app");
    c.goto(&project_page).await.unwrap();
    // On a loaded machine the first load can miss; load it again until the link is there.
    eventually(c, "the project page's request link", Duration::from_secs(20), async |c| {
        c.find(Id("request-link")).await.is_ok() || {
            let _ = c.goto(&project_page).await;
            false
        }
    })
    .await;
    c.find(Id("request-link")).await.unwrap().click().await.unwrap();
    eventually(c, "the request form", Duration::from_secs(10), async |c| c.find(Id("request-form")).await.is_ok())
        .await;
    c.find(Css("#request-form textarea[name=reason]")).await.unwrap().send_keys("the second build").await.unwrap();
    c.find(Id("submit-request")).await.unwrap().click().await.unwrap();
    eventually(c, "the request page", Duration::from_secs(10), async |c| c.find(Id("request-state")).await.is_ok())
        .await;
    let id = c.current_url().await.unwrap().path().trim_start_matches("/requests/").to_string();
    let state = c.find(Id("request-state")).await.unwrap().attr("data-state").await.unwrap();
    assert_eq!(state.as_deref(), Some("awaiting_approval"));
    assert!(c.find(Id("do-approve")).await.is_err(), "no approve button for the requester");
    shot(c, "request").await;

    // bob finds it waiting for him and approves it.
    sign_in_as(c, url, "bob", "/requests").await;
    let waiting = text_of(c, "waiting").await;
    assert!(waiting.contains("the second build"), "{waiting}");
    request_step(c, url, &id, "do-approve", "approved").await;

    // ann releases it; it rolls out and the request is done.
    sign_in_as(c, url, "ann", "/").await;
    request_step(c, url, &id, "do-release", "done").await;
    let history = text_of(c, "request-history").await;
    for who in ["ann", "bob", "ferry"] {
        assert!(history.contains(who), "{who} in {history}");
    }
    let released = f.version_on("web-1", "app").expect("web-1 runs the release");
    assert_eq!(f.version_on("web-2", "app").as_deref(), Some(released.as_str()));

    // A rollback of the guarded environment goes the same way.
    c.goto(&format!("{url}/projects/app/requests/new")).await.unwrap();
    c.find(Css("#request-form input[name=rollback]")).await.unwrap().click().await.unwrap();
    c.find(Css("#request-form textarea[name=reason]")).await.unwrap().send_keys("too slow").await.unwrap();
    c.find(Id("submit-request")).await.unwrap().click().await.unwrap();
    eventually(c, "the rollback request", Duration::from_secs(10), async |c| {
        c.current_url().await.is_ok_and(|u| u.path() != format!("/requests/{id}") && u.path().starts_with("/requests/"))
    })
    .await;
    let rollback = c.current_url().await.unwrap().path().trim_start_matches("/requests/").to_string();
    sign_in_as(c, url, "bob", "/").await;
    assert!(text_of(c, "waiting").await.contains("too slow"), "on bob's dashboard");
    request_step(c, url, &rollback, "do-approve", "approved").await;
    sign_in_as(c, url, "ann", "/").await;
    request_step(c, url, &rollback, "do-release", "done").await;
    wait_until(Duration::from_secs(20), "both hosts back on the earlier version", || {
        let (one, two) = (f.version_on("web-1", "app"), f.version_on("web-2", "app"));
        one == two && one.is_some_and(|v| v != released)
    });
}

async fn browse(c: &fantoccini::Client, url: &str, repo: &str) {
    use fantoccini::Locator::{Css, Id};
    // Sign in, on the way to the projects.
    c.goto(&format!("{url}/projects")).await.unwrap();
    c.find(Id("user")).await.unwrap().send_keys("ann").await.unwrap();
    c.find(Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    c.find(Id("sign-in")).await.unwrap().click().await.unwrap();
    eventually(c, "the projects page", Duration::from_secs(10), async |c| c.find(Id("create-project")).await.is_ok())
        .await;
    assert_eq!(text_of(c, "me").await, "ann");

    // Create a project that builds from git, and its environment.
    c.find(Css("#create-project input[name=name]")).await.unwrap().send_keys("app").await.unwrap();
    c.find(Css("#create-project input[name=repo]")).await.unwrap().send_keys(repo).await.unwrap();
    c.find(Css("#create-project button")).await.unwrap().click().await.unwrap();
    eventually(c, "the project page", Duration::from_secs(10), async |c| c.find(Id("create-env")).await.is_ok()).await;
    c.find(Css("#create-env input[name=name]")).await.unwrap().send_keys("prod").await.unwrap();
    c.find(Css("#create-env input[name=selector]")).await.unwrap().send_keys("role=web").await.unwrap();
    c.find(Css("#create-env button")).await.unwrap().click().await.unwrap();
    eventually(c, "the environment", Duration::from_secs(10), async |c| {
        text_of(c, "environments").await.contains("prod")
    })
    .await;

    // Start a build and watch its log arrive line by line.
    c.find(Css("input[name=git_ref]")).await.unwrap().send_keys("main").await.unwrap();
    c.find(Css("form.filters button.primary")).await.unwrap().click().await.unwrap();
    eventually(c, "the build page", Duration::from_secs(10), async |c| {
        c.current_url().await.is_ok_and(|u| u.path().starts_with("/builds/"))
    })
    .await;
    let mut seen_partial = false;
    eventually(c, "the whole log", Duration::from_secs(60), async |c| {
        let log = text_of(c, "log").await;
        if log.contains("step 1") && !log.contains("step 8") {
            seen_partial = true;
        }
        log.contains("step 8")
    })
    .await;
    assert!(seen_partial, "the log grew while the page was open, not all at once");
    shot(c, "build").await;
    eventually(c, "the build to succeed", Duration::from_secs(30), async |c| {
        text_of(c, "build-status").await.contains("succeeded")
    })
    .await;

    // Deploy what it made to one of the two hosts, and watch it finish. The
    // link appears when the page reloads itself at the build's end.
    eventually(c, "the deploy link", Duration::from_secs(10), async |c| c.find(Id("deploy-build")).await.is_ok()).await;
    c.find(Id("deploy-build")).await.unwrap().click().await.unwrap();
    eventually(c, "the deploy dialog", Duration::from_secs(10), async |c| c.find(Id("deploy-form")).await.is_ok())
        .await;
    shot(c, "deploy").await;
    c.find(Id("scope-chosen")).await.unwrap().click().await.unwrap();
    c.find(Id("host-web-2")).await.unwrap().click().await.unwrap();
    c.find(Id("deploy")).await.unwrap().click().await.unwrap();
    eventually(c, "the deployment to succeed", Duration::from_secs(60), async |c| {
        text_of(c, "deployment-status").await.contains("succeeded")
    })
    .await;
    let hosts = text_of(c, "deployment-hosts").await;
    assert!(hosts.contains("web-2") && !hosts.contains("web-1"), "{hosts}");
    // What the host logged while installing, shown as it arrived.
    eventually(c, "the host's log", Duration::from_secs(10), async |c| {
        text_of(c, "deployment-log").await.contains("web-2")
    })
    .await;

    shot(c, "deployment").await;
    for (name, path) in [("dashboard", "/"), ("project", "/projects/app"), ("fleet", "/fleet"), ("hosts", "/hosts")] {
        c.goto(&format!("{url}{path}")).await.unwrap();
        shot(c, name).await;
    }

    // The audit log shows all of it.
    c.goto(&format!("{url}/audit?project=app")).await.unwrap();
    shot(c, "audit").await;
    let audit = text_of(c, "audit").await;
    for action in [
        "POST /projects/{project}/builds",
        "POST /projects/{project}/deployments",
        "POST /projects/{project}/environments",
    ] {
        assert!(audit.contains(action), "{action} in {audit}");
    }
}

#[test]
fn in_a_browser_build_watch_the_live_log_deploy_to_one_host_read_the_audit_log_approve_a_request_and_roll_back() {
    let Some(driver) = chromedriver() else { return };
    let mut f = Ferry::start();
    f.start_agents(&["web-1", "web-2"], "role=web");
    // Eight lines, half a second apart: the page is open before the
    // build ends, so the log has to arrive live.
    let script = "for i in 1 2 3 4 5 6 7 8; do echo \"step $i\"; sleep 0.5; done\nmkdir -p dist\necho \"$FERRY_VERSION\" > dist/VERSION";
    let repo = Repo::new(f.dir.path(), script);
    user(&f, "ann", true, None);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let shots: PathBuf = f.dir.path().join("failure.png");
    rt.block_on(async {
        let c = browser(&driver, 1280).await;
        let scenario = async {
            browse(&c, &f.url, &repo.url()).await;
            request_release_and_roll_back(&c, &f).await;
        };
        let outcome = std::panic::AssertUnwindSafe(scenario).catch_unwind().await;
        if outcome.is_err() {
            // Keep what the browser showed: the test's directory is removed
            // with it, so the picture goes under target/.
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-test-screenshots");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("failure-{}.png", std::process::id()));
            match c.screenshot().await {
                Ok(png) => match std::fs::write(&path, &png).and_then(|()| std::fs::write(&shots, &png)) {
                    Ok(()) => eprintln!("screenshot of the failure: {}", path.display()),
                    Err(e) => eprintln!("cannot save the screenshot at {}: {e}", path.display()),
                },
                Err(e) => eprintln!("no screenshot could be taken: {e}"),
            }
        }
        let _ = c.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}

#[test]
fn request_pages_refuse_what_the_request_s_rules_refuse() {
    let f = Ferry::start();
    f.ok(&["project", "create", "app"]);
    f.ok(&["env", "create", "app", "prod", "--select", "role=web", "--require-approval"]);
    f.upload("app", "v1");
    user(&f, "dev", false, Some(("app", "developer")));
    user(&f, "olga", false, Some(("app", "owner")));

    let mut dev = Web::new(&f);
    dev.sign_in("dev", PASSWORD);
    let form = dev.get("/projects/app/requests/new");
    assert!(form.body.contains("requires approval") && form.body.contains("v1"), "{}", form.body);
    let csrf = csrf_of(&form.body);
    let empty =
        dev.post("/projects/app/requests", &[("csrf", &csrf), ("env", "prod"), ("version", "v1"), ("reason", " ")]);
    assert_eq!(empty.status, 400, "a reason is needed: {}", empty.body);
    let made =
        dev.post("/projects/app/requests", &[("csrf", &csrf), ("env", "prod"), ("version", "v1"), ("reason", "go")]);
    assert_eq!((made.status, made.location.as_str()), (303, "/requests/1"), "{}", made.body);
    let page = dev.get("/requests/1");
    assert!(page.body.contains(r#"data-state="awaiting_approval""#), "{}", page.body);
    assert!(!page.body.contains("do-approve"), "no approve button for the requester");
    // A developer without the production right is no approver: the rule refuses it.
    let a = dev.post("/requests/1/approve", &[("csrf", &csrf)]);
    assert_eq!(a.status, 403, "{}", a.body);
    // Nor can they go past the approval with an emergency rollback.
    let rollback = "/projects/app/environments/prod/rollback";
    let e = dev.post(rollback, &[("csrf", &csrf), ("emergency", "on"), ("reason", "outage")]);
    assert_eq!(e.status, 403, "{}", e.body);
    assert!(e.body.contains("past its approval needs the production right"), "{}", e.body);
    let plain = dev.post(rollback, &[("csrf", &csrf)]);
    assert!(plain.body.contains("requires an approved release request"), "{}", plain.body);

    // An owner approves from the dashboard's list; then only the requester releases.
    let mut olga = Web::new(&f);
    olga.sign_in("olga", PASSWORD);
    let dashboard = olga.get("/");
    assert!(dashboard.body.contains(r#"href="/requests/1""#), "waiting for olga: {}", dashboard.body);
    let csrf = csrf_of(&dashboard.body);
    let approved = olga.post("/requests/1/approve", &[("csrf", &csrf), ("note", "fine")]);
    assert_eq!(approved.status, 303, "{}", approved.body);
    let refused = olga.post("/requests/1/release", &[("csrf", &csrf)]);
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains("only the requester"), "{}", refused.body);
    assert!(dev.get("/requests/1").body.contains(r#"data-state="approved""#));
}
