//! The web interface shows what is true now: pages opened before a deploy
//! follow it without being loaded again, every page of the menu loads
//! without a missing resource or a script error, and the records and small
//! things (sign-ins, uploads, times, batches, roles, HEAD, the language
//! switch after a form) are what they say.

use std::time::Duration;

use futures_util::FutureExt;
use serde_json::Value;

use crate::harness::Ferry;
use crate::web::{PASSWORD, Web, browser, chromedriver, eventually, sign_in_as, text_of, user};

/// The status classes of deployment `id`'s rows on the page (`st-running`,
/// `st-succeeded`, ...), through JavaScript so that what counts is the live
/// DOM, not a new load of the page.
async fn statuses_of(c: &fantoccini::Client, id: i64) -> Vec<String> {
    let js = r#"var id = arguments[0]; var out = [];
        document.querySelectorAll('a[href="/deployments/' + id + '"]').forEach(function (a) {
          var tr = a.closest('tr'); var st = tr && tr.querySelector('.st');
          if (st) { out.push(st.className.replace('st ', '')); }
        });
        return out;"#;
    match c.execute(js, vec![Value::from(id)]).await {
        Ok(Value::Array(v)) => v.into_iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// The marker set on `window` before waiting: gone if the page was loaded again.
async fn marker(c: &fantoccini::Client) -> Value {
    c.execute("return window.ferryTestMarker || null;", vec![]).await.unwrap_or(Value::Null)
}

async fn live_mode(c: &fantoccini::Client) -> String {
    let js = "var b = document.getElementById('live-state'); return b && !b.hidden ? b.getAttribute('data-mode') : '';";
    c.execute(js, vec![]).await.ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Runs a browser scenario, keeping chromium's session tidy whatever happens.
fn in_browser(width: u32, scenario: impl AsyncFnOnce(&fantoccini::Client, &str)) {
    let Some(driver) = chromedriver() else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = browser(&driver, width).await;
        let session = c.session_id().await.ok().flatten().unwrap_or_default();
        let outcome = std::panic::AssertUnwindSafe(scenario(&c, &format!("{}|{session}", driver_url(&driver))))
            .catch_unwind()
            .await;
        let _ = c.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}

fn driver_url(d: &crate::web::Driver) -> String {
    d.url()
}

/// How soon a page shows a change: generous for a loaded machine, yet well
/// below the live stream's periodic refresh, so only a notice meets it.
const NOTICE: Duration = Duration::from_secs(25);

#[test]
fn pages_opened_before_a_deploy_follow_it_live_without_a_reload() {
    let f = Ferry::fleet_on_v1(&["web-1", "web-2"]);
    user(&f, "ann", true, None);
    in_browser(1280, async |c, _| {
        let url = f.url.as_str();
        sign_in_as(c, url, "ann", "/").await;
        eventually(c, "the live indicator", Duration::from_secs(20), async |c| live_mode(c).await == "on").await;
        assert!(!text_of(c, "live-state").await.is_empty(), "the indicator says it is live");
        c.execute("window.ferryTestMarker = 42;", vec![]).await.unwrap();

        // One host at a time, waiting for a promotion after the first.
        let id = f.deploy_held("v2");
        // Well within the streams' periodic refresh (60 s) and the fallback
        // poll: only a change notice shows it this soon.
        eventually(c, "the dashboard to show the deployment running", NOTICE, async |c| {
            statuses_of(c, id).await.iter().any(|s| s == "st-running")
        })
        .await;
        assert_eq!(marker(c).await, 42, "the dashboard was not loaded again");

        // The fleet matrix, opened while it runs, follows the promotion.
        c.goto(&format!("{url}/fleet")).await.unwrap();
        eventually(c, "the fleet's live indicator", Duration::from_secs(20), async |c| live_mode(c).await == "on")
            .await;
        c.execute("window.ferryTestMarker = 43;", vec![]).await.unwrap();
        let row_of = async |c: &fantoccini::Client, host: &str| {
            let js = "var a = document.querySelector('#fleet a[href=\"/hosts#host-' + arguments[0] + '\"]');
                      return a ? a.closest('tr').innerText : '';";
            c.execute(js, vec![Value::from(host)])
                .await
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        assert!(row_of(c, "web-2").await.contains("v1"), "web-2 still runs v1: {}", row_of(c, "web-2").await);
        f.ok(&["deployment", "promote", &id.to_string()]);
        eventually(c, "the fleet to show web-2 on v2", NOTICE, async |c| row_of(c, "web-2").await.contains("v2")).await;
        assert_eq!(marker(c).await, 43, "the fleet matrix was not loaded again");
        assert_eq!(live_mode(c).await, "on", "it stayed on the stream, not on the fallback poll");
        assert_eq!(f.version_on("web-2", "app").as_deref(), Some("v2"));

        // The project page, opened after, shows it ended; and the dashboard.
        c.goto(&format!("{url}/")).await.unwrap();
        eventually(c, "the deployment to show as succeeded", Duration::from_secs(30), async |c| {
            let s = statuses_of(c, id).await;
            !s.is_empty() && s.iter().all(|s| s == "st-succeeded")
        })
        .await;

        // More tabs than a session may follow live: the newest are live, the
        // oldest (this one) polls instead, says so, and still shows changes.
        let first = c.window().await.unwrap();
        for _ in 0..4 {
            let tab = c.new_window(true).await.unwrap();
            c.switch_to_window(tab.handle).await.unwrap();
            c.goto(&format!("{url}/")).await.unwrap();
            eventually(c, "the new tab to be live", Duration::from_secs(20), async |c| live_mode(c).await == "on")
                .await;
        }
        c.switch_to_window(first).await.unwrap();
        eventually(c, "the first tab to fall back to polling", Duration::from_secs(20), async |c| {
            live_mode(c).await == "poll"
        })
        .await;
        c.execute("window.ferryTestMarker = 44;", vec![]).await.unwrap();
        f.ok(&["deploy", "app", "prod", "--version", "v1"]);
        let again = f.json(&["deployments", "app"])[0]["id"].as_i64().unwrap();
        assert_ne!(again, id);
        eventually(c, "the polling tab to show the new deployment", Duration::from_secs(40), async |c| {
            !statuses_of(c, again).await.is_empty()
        })
        .await;
        assert_eq!(marker(c).await, 44, "the polling tab was not loaded again");
    });
}

/// Every page a menu leads to, as an administrator sees them.
const PAGES: &[&str] = &[
    "/",
    "/projects",
    "/projects/app",
    "/projects/app/deploy",
    "/projects/app/audit",
    "/requests",
    "/fleet",
    "/hosts",
    "/audit",
    "/users",
    "/tokens",
    "/deployments/1",
];

#[test]
fn every_page_loads_without_a_missing_resource_or_console_error_labels_its_inputs_and_fits_a_phone() {
    let f = Ferry::fleet_on_v1(&["web-1"]);
    user(&f, "ann", true, None);
    // The icon browsers ask for on every page.
    let mut web = Web::new(&f);
    let icon = web.get("/favicon.ico");
    assert_eq!(icon.status, 200);
    assert!(icon.body.starts_with("<svg"), "{}", icon.body);
    in_browser(1280, async |c, driver| {
        let url = f.url.as_str();
        sign_in_as(c, url, "ann", "/").await;
        for page in PAGES {
            c.goto(&format!("{url}{page}")).await.unwrap();
            eventually(c, &format!("{page} to load"), Duration::from_secs(20), async |c| {
                c.execute("return document.readyState;", vec![]).await.ok() == Some(Value::from("complete"))
            })
            .await;
            assert!(!text_of(c, "me").await.is_empty(), "{page} is a signed-in page");
            // Resources that failed (a 4xx/5xx answer).
            let failed = c
                .execute(
                    "return performance.getEntriesByType('resource')
                       .filter(function (e) { return e.responseStatus >= 400; })
                       .map(function (e) { return e.name + ' ' + e.responseStatus; });",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(failed, Value::Array(vec![]), "{page}");
            // Every visible control has a name a screen reader can say.
            let unlabelled = c
                .execute(
                    "return Array.prototype.filter.call(document.querySelectorAll('input, select, textarea'), function (i) {
                       if (i.type === 'hidden') { return false; }
                       if (i.getAttribute('aria-label') || i.closest('label')) { return false; }
                       return !(i.id && document.querySelector('label[for=\"' + i.id + '\"]'));
                     }).map(function (i) { return i.outerHTML; });",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(unlabelled, Value::Array(vec![]), "unlabelled controls on {page}");
            // Every time shown says its zone.
            let zoneless = c
                .execute(
                    "var m = document.body.innerText.match(/\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?! UTC)/g);
                     return m || [];",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(zoneless, Value::Array(vec![]), "times without their zone on {page}");
            if ["/", "/audit", "/deployments/1"].contains(page) {
                let text = c.execute("return document.body.innerText;", vec![]).await.unwrap();
                assert!(text.as_str().unwrap().contains(" UTC"), "{page} shows times: {text}");
            }
            // The language switch names its language by code, as `lang` does.
            let hreflang = c
                .execute(
                    "return Array.prototype.map.call(document.querySelectorAll('footer a[hreflang]'),
                       function (a) { return a.getAttribute('hreflang'); });",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(hreflang, serde_json::json!(["zh-CN"]), "{page}");
        }
        // What the browser's console said on all of them.
        let (driver_url, session) = driver.split_once('|').unwrap();
        let logs: Value = reqwest::Client::new()
            .post(format!("{driver_url}/session/{session}/se/log"))
            .json(&serde_json::json!({"type": "browser"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let severe: Vec<&Value> =
            logs["value"].as_array().into_iter().flatten().filter(|e| e["level"] == "SEVERE").collect();
        assert!(severe.is_empty(), "console errors: {severe:?}");
        // A phone: nothing is wider than the screen; wide tables scroll in their box.
        c.set_window_size(375, 800).await.unwrap();
        for page in PAGES {
            c.goto(&format!("{url}{page}")).await.unwrap();
            let js = "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];";
            let w = c.execute(js, vec![]).await.unwrap();
            let (scroll, client) = (w[0].as_i64().unwrap(), w[1].as_i64().unwrap());
            assert!(scroll <= client + 1, "{page} is {scroll} px wide on a {client} px screen");
        }
    });
}

/// The audit entries of `user`, as the CLI shows them.
fn audit_of(f: &Ferry, user: &str) -> Vec<Value> {
    f.json(&["audit", "--user", user, "--limit", "50"]).as_array().cloned().unwrap_or_default()
}

#[test]
fn records_and_small_things_over_plain_http() {
    let f = Ferry::fleet_on_v1(&["web-1", "web-2"]);
    user(&f, "ann", true, None);
    user(&f, "dev", false, Some(("app", "developer")));

    // HEAD / signed out is answered as GET is: a redirect to the sign-in page.
    let mut anon = Web::new(&f);
    let (head, get) = (anon.head("/"), anon.get("/"));
    assert_eq!((head.status, &head.location), (get.status, &get.location));
    assert!(head.status == 303 && head.location.starts_with("/login"), "{}", head.status);

    // Sign-ins through the form are recorded under the user they were for.
    let mut web = Web::new(&f);
    let bad = web.sign_in("dev", "wrong password");
    assert_eq!(bad.status, 401);
    let ok = web.sign_in("dev", PASSWORD);
    assert_eq!(ok.status, 303, "{}", ok.body);
    let entries = audit_of(&f, "dev");
    let logins: Vec<&Value> = entries.iter().filter(|e| e["action"] == "POST /login").collect();
    assert!(logins.iter().any(|e| e["outcome"].as_str().unwrap().starts_with("401")), "{entries:?}");
    assert!(logins.iter().any(|e| e["outcome"].as_str().unwrap().starts_with("303")), "{entries:?}");
    assert!(logins.iter().all(|e| !e["summary"].as_str().unwrap().contains(PASSWORD)), "{logins:?}");

    // An upload's entry is a summary of its manifest, not the manifest.
    let upload = f.json(&["audit", "--limit", "200"]);
    let release = upload
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "POST /api/v1/projects/{project}/releases")
        .cloned()
        .expect("the upload's entry");
    let summary: Value = serde_json::from_str(release["summary"].as_str().unwrap()).unwrap();
    assert!(summary["version"] == "v1" || summary["version"] == "v2", "{summary}");
    assert!(summary["files"].as_u64().unwrap() >= 20, "{summary}");
    assert!(summary["total_bytes"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["manifest_sha256"].as_str().unwrap().len(), 64, "{summary}");
    assert!(release["summary"].as_str().unwrap().len() < 512, "{release}");
    assert!(!release["summary"].as_str().unwrap().contains("\"entries\":["), "{release}");

    // Times carry their zone; batches count from 1 (two hosts, one a batch).
    let id = f.deploy_held("v2");
    crate::harness::wait_until(Duration::from_secs(30), "the first batch to wait", || {
        f.deployment_held_for_promote(id)
    });
    let page = web.get(&format!("/deployments/{id}")).body;
    let utc = regex_like_time_with_zone(&page);
    assert!(utc, "times with their zone: {page}");
    let hosts = &page[page.find("id=\"deployment-hosts\"").unwrap()..];
    let batches: Vec<&str> = hosts.split("<tr><td>").skip(1).map(|r| r.split('<').next().unwrap()).collect();
    assert_eq!(batches.len(), 2, "{hosts}");
    assert!(batches.contains(&"1") && batches.contains(&"2") && !batches.contains(&"0"), "{batches:?}");
    let dashboard = web.get("/").body;
    assert!(dashboard.contains(">1/2<"), "the running batch counts from 1: {dashboard}");
    // An empty log says so (the placeholder the style sheet shows).
    assert!(page.contains("data-empty=\""), "{page}");
    f.ok(&["deployment", "cancel", &id.to_string()]);

    // A live page's notices are only for what the page's reader may read.
    f.ok(&["project", "create", "other"]);
    assert_eq!(web.get("/live?page=/projects/other").status, 403);
    assert_eq!(web.get("/live?page=/requests/999").status, 403);

    // Role names in the Chinese interface.
    let mut zh = Web::new(&f);
    zh.sign_in("ann", PASSWORD);
    zh.get("/lang/zh-CN?back=/");
    let projects = zh.get_with_lang("/projects/app", "zh-CN").body;
    assert!(projects.contains("开发者") && !projects.contains(">developer<"), "{projects}");
    assert!(projects.contains("<html lang=\"zh-CN\">"), "{projects}");

    // An error after a form keeps the menu, and its language switch leads
    // to a page (the form's own page), not to the form's POST address.
    let csrf = crate::web::csrf_of(&web.get("/projects/app").body);
    let err = web.post_from(
        "/projects/app/environments",
        &[("csrf", &csrf), ("name", "bad name!"), ("selector", "")],
        "/projects/app",
    );
    assert!(err.status >= 400, "{}", err.body);
    assert!(err.body.contains("action=\"/logout\"") && err.body.contains("href=\"/fleet\""), "{}", err.body);
    assert!(err.body.contains("/lang/zh-CN?back=/projects/app\""), "{}", err.body);
    assert!(!err.body.contains("back=/projects/app/environments"), "{}", err.body);
    let err = web.post("/projects/app/environments", &[("csrf", &csrf), ("name", "bad name!"), ("selector", "")]);
    assert!(err.body.contains("/lang/zh-CN?back=/\""), "without a referring page, the dashboard: {}", err.body);
}

/// Whether the page shows a time as `2026-12-04 13:05:09 UTC`.
fn regex_like_time_with_zone(page: &str) -> bool {
    page.match_indices(" UTC").any(|(at, _)| {
        at >= 19 && {
            let t = &page.as_bytes()[at - 19..at];
            t[4] == b'-' && t[7] == b'-' && t[10] == b' ' && t[13] == b':' && t[16] == b':'
        }
    })
}
