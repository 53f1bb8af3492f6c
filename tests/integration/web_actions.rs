//! The web interface does what it shows (R9, R11, R24): the deploy dialog
//! deploys to the environment it shows, a rollback goes where its button
//! says, destructive actions ask first (with and without JavaScript), and a
//! request shows each person what waits for them.

use std::time::Duration;

use fantoccini::Locator::{Css, Id};
use futures_util::FutureExt;
use serde_json::Value;

use crate::harness::{Ferry, wait_until};
use crate::web::{PASSWORD, Web, chromedriver, csrf_of, eventually, shot, sign_in_as, text_of, user};

/// Hosts web-1..3 (prod) and stage-1 (staging) running `app` v1, v2 uploaded.
fn two_environments() -> Ferry {
    let mut f = Ferry::start();
    f.start_agents(&["web-1", "web-2", "web-3"], "role=web");
    f.start_agents(&["stage-1"], "role=stage");
    f.ok(&["project", "create", "app"]);
    // Staging first: the dialog opens on it.
    f.ok(&["env", "create", "app", "staging", "--select", "role=stage"]);
    f.ok(&["env", "create", "app", "prod", "--select", "role=web"]);
    f.upload("app", "v1");
    f.upload("app", "v2");
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    f
}

fn deployments(f: &Ferry) -> Vec<Value> {
    f.json(&["deployments", "app"]).as_array().cloned().unwrap_or_default()
}

/// The value of the hidden field `name` of the form on `html`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let at = html.find(&marker).unwrap_or_else(|| panic!("a field {name} in {html}"));
    html[at + marker.len()..].split('"').next().unwrap().to_string()
}

/// Waits for the newest deployment of `app` to end.
fn wait_ended(f: &Ferry) {
    wait_until(Duration::from_secs(60), "the newest deployment to end", || {
        let d = deployments(f);
        d.first().is_some_and(|d| !matches!(d["status"].as_str(), Some("running" | "pending" | "queued")))
    });
}

async fn scenario(c: &fantoccini::Client, f: &Ferry) {
    let url = &f.url;
    sign_in_as(c, url, "ann", "/projects/app/deploy?env=staging").await;
    assert_eq!(text_of(c, "hosts-env").await, "staging");
    assert!(c.find(Id("host-stage-1")).await.is_ok());

    // Picking prod shows prod's hosts at once, each with what it runs.
    c.find(Css("#env option[value=prod]")).await.unwrap().click().await.unwrap();
    eventually(c, "prod's hosts", Duration::from_secs(10), async |c| text_of(c, "hosts-env").await == "prod").await;
    assert!(c.find(Id("host-stage-1")).await.is_err(), "staging's host is gone");
    let focused = c.active_element().await.unwrap().attr("id").await.unwrap();
    assert_eq!(focused.as_deref(), Some("env"), "the focus stays on the environment's select");
    assert_eq!(text_of(c, "runs-web-1").await, "v1");
    shot(c, "deploy-prod").await;
    c.find(Css("#version option[value=v2]")).await.unwrap().click().await.unwrap();
    c.find(Id("scope-chosen")).await.unwrap().click().await.unwrap();
    c.find(Id("host-web-1")).await.unwrap().click().await.unwrap();
    let button = text_of(c, "deploy").await;
    assert!(button.contains("prod"), "the button names where it deploys: {button}");
    let before = deployments(f).len();
    c.find(Id("deploy")).await.unwrap().click().await.unwrap();
    eventually(c, "the deployment page", Duration::from_secs(10), async |c| {
        c.current_url().await.is_ok_and(|u| u.path().starts_with("/deployments/"))
    })
    .await;
    f.wait_version("web-1", "app", "v2");
    wait_ended(f);
    c.refresh().await.unwrap();
    shot(c, "deployment-rollout").await;
    let all = deployments(f);
    assert_eq!(all.len(), before + 1);
    assert_eq!((all[0]["env"].as_str(), all[0]["version"].as_str()), (Some("prod"), Some("v2")), "{}", all[0]);
    assert_eq!(f.version_on("stage-1", "app"), None, "staging untouched");
    assert_eq!(f.version_on("web-2", "app").as_deref(), Some("v1"));

    // The project page says what runs, and where the rollback goes.
    c.goto(&format!("{url}/projects/app")).await.unwrap();
    let running = text_of(c, "running-prod").await;
    assert!(running.contains("v1 (2) / v2 (1)"), "{running}");
    let rollback = text_of(c, "rollback-prod").await;
    assert!(rollback.contains("v1") && !rollback.contains("v2"), "the button names v1: {rollback}");
    shot(c, "project-mixed").await;

    // Asking first; cancelling changes nothing.
    let before = deployments(f).len();
    c.find(Id("rollback-prod")).await.unwrap().click().await.unwrap();
    eventually(c, "the confirm page", Duration::from_secs(10), async |c| c.find(Id("plan")).await.is_ok()).await;
    let row = text_of(c, "plan-web-1").await;
    assert!(row.contains("v2") && row.contains("→ v1"), "{row}");
    assert!(!text_of(c, "plan-web-2").await.contains('→'), "web-2 stays");
    shot(c, "confirm-rollback").await;
    c.find(Id("cancel-confirm")).await.unwrap().click().await.unwrap();
    eventually(c, "the project page", Duration::from_secs(10), async |c| c.find(Id("environments")).await.is_ok())
        .await;
    assert_eq!(deployments(f).len(), before, "cancelled: no deployment");

    // Confirmed: web-1 goes back to v1, the others are not touched.
    c.find(Id("rollback-prod")).await.unwrap().click().await.unwrap();
    eventually(c, "the confirm page", Duration::from_secs(10), async |c| c.find(Id("confirm-action")).await.is_ok())
        .await;
    // Keyboard-reachable: the confirm button takes the focus and Enter presses it.
    let confirm = c.find(Id("confirm-action")).await.unwrap();
    confirm.send_keys("\u{e007}").await.unwrap();
    eventually(c, "the rollback's page", Duration::from_secs(10), async |c| {
        c.current_url().await.is_ok_and(|u| u.path().starts_with("/deployments/"))
    })
    .await;
    f.wait_version("web-1", "app", "v1");
    wait_ended(f);
    let rollback = deployments(f)[0].clone();
    assert_eq!(rollback["kind"], "rollback", "{rollback}");
    let id = rollback["id"].as_i64().unwrap().to_string();
    let shown = f.json(&["deployment", "show", &id]);
    let hosts: Vec<&str> = shown["hosts"].as_array().unwrap().iter().filter_map(|h| h["host"].as_str()).collect();
    assert_eq!(hosts, ["web-1"], "only the host that moves: {shown}");
    for host in ["web-2", "web-3"] {
        assert_eq!(f.version_on(host, "app").as_deref(), Some("v1"), "{host}");
    }

    // Behind an approval, the red emergency rollback asks first, with a
    // reason; cancelling it changes nothing.
    f.ok(&["env", "update", "app", "prod", "--require-approval", "true"]);
    c.goto(&format!("{url}/projects/app")).await.unwrap();
    let before = deployments(f).len();
    c.find(Id("emergency-prod")).await.unwrap().click().await.unwrap();
    eventually(c, "the emergency's confirm page", Duration::from_secs(10), async |c| {
        c.find(Id("confirm-reason")).await.is_ok()
    })
    .await;
    shot(c, "confirm-emergency").await;
    c.find(Id("cancel-confirm")).await.unwrap().click().await.unwrap();
    eventually(c, "the project page", Duration::from_secs(10), async |c| c.find(Id("environments")).await.is_ok())
        .await;
    assert_eq!(deployments(f).len(), before, "cancelled: no emergency");

    // A request's hand-offs: waiting for the approver, then for its requester.
    sign_in_as(c, url, "rex", "/").await;
    c.goto(&format!("{url}/projects/app/requests/new")).await.unwrap();
    c.find(Css("#request-form textarea[name=reason]")).await.unwrap().send_keys("second try").await.unwrap();
    c.find(Id("submit-request")).await.unwrap().click().await.unwrap();
    eventually(c, "the request page", Duration::from_secs(10), async |c| c.find(Id("request-state")).await.is_ok())
        .await;
    let request = c.current_url().await.unwrap().path().to_string();
    assert!(c.find(Id("waiting-count")).await.is_err(), "nothing waits for the requester yet");
    sign_in_as(c, url, "opal", "/").await;
    assert_eq!(text_of(c, "waiting-count").await, "1", "the approver's menu count");
    c.goto(&format!("{url}{request}")).await.unwrap();
    c.find(Id("do-approve")).await.unwrap().click().await.unwrap();
    eventually(c, "the approval", Duration::from_secs(10), async |c| {
        c.find(Id("request-state")).await.is_ok() && c.find(Id("do-approve")).await.is_err()
    })
    .await;
    for button in ["do-release", "do-withdraw"] {
        assert!(c.find(Id(button)).await.is_err(), "no {button} for the approver");
    }
    assert!(c.find(Id("waiting-count")).await.is_err(), "nothing waits for the approver now");
    sign_in_as(c, url, "rex", "/").await;
    assert_eq!(text_of(c, "waiting-count").await, "1", "the requester's menu count");
    assert!(text_of(c, "waiting").await.contains("second try"), "the requester's dashboard card");
    shot(c, "requester-dashboard").await;
    c.goto(&format!("{url}{request}")).await.unwrap();
    assert!(c.find(Id("do-release")).await.is_ok(), "the requester releases it");
    sign_in_as(c, url, "ann", "/").await;
    c.goto(&format!("{url}/projects/app")).await.unwrap();

    // Removing a member asks first too; cancelling keeps them.
    c.goto(&format!("{url}/projects/app")).await.unwrap();
    c.find(Id("remove-dora")).await.unwrap().click().await.unwrap();
    eventually(c, "the confirm page", Duration::from_secs(10), async |c| c.find(Id("confirm-action")).await.is_ok())
        .await;
    assert!(text_of(c, "confirm-action").await.contains("dora"));
    c.find(Id("cancel-confirm")).await.unwrap().click().await.unwrap();
    eventually(c, "the project page", Duration::from_secs(10), async |c| c.find(Id("members")).await.is_ok()).await;
    assert!(f.ok(&["member", "list", "app"]).contains("dora"), "cancelled: still a member");
    c.find(Id("remove-dora")).await.unwrap().click().await.unwrap();
    eventually(c, "the confirm page", Duration::from_secs(10), async |c| c.find(Id("confirm-action")).await.is_ok())
        .await;
    c.find(Id("confirm-action")).await.unwrap().click().await.unwrap();
    eventually(c, "dora removed", Duration::from_secs(10), async |_| {
        !f.ok(&["member", "list", "app"]).contains("dora")
    })
    .await;
}

#[test]
fn in_a_browser_the_deploy_dialog_deploys_where_it_shows_and_a_rollback_goes_where_its_button_says() {
    let Some(driver) = chromedriver() else { return };
    let f = two_environments();
    user(&f, "ann", true, None);
    user(&f, "dora", false, Some(("app", "developer")));
    user(&f, "rex", false, Some(("app", "developer")));
    user(&f, "opal", false, Some(("app", "owner")));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = driver.connect().await;
        let outcome = std::panic::AssertUnwindSafe(scenario(&c, &f)).catch_unwind().await;
        if outcome.is_err() {
            shot(&c, "web-actions-failure").await;
        }
        let _ = c.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}

#[test]
fn without_javascript_the_confirm_pages_show_the_plan_and_their_forms_do_it() {
    let f = two_environments();
    user(&f, "ann", true, None);
    user(&f, "olga", false, Some(("app", "owner")));
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--hosts", "web-1", "--wait"]);
    let mut web = Web::new(&f);
    web.sign_in("olga", PASSWORD);

    // The deploy dialog: an environment changed without its hosts being
    // shown is shown first, and nothing is deployed.
    let form = web.get("/projects/app/deploy?env=staging").body;
    assert_eq!(hidden(&form, "hosts_of"), "staging");
    let csrf = csrf_of(&form);
    let before = deployments(&f).len();
    let fields =
        [("csrf", csrf.as_str()), ("hosts_of", "staging"), ("env", "prod"), ("version", "v2"), ("scope", "all")];
    let a = web.post("/projects/app/deployments", &fields);
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(
        a.location.starts_with("/projects/app/deploy?env=prod") && a.location.contains("changed=1"),
        "{}",
        a.location
    );
    assert_eq!(deployments(&f).len(), before, "nothing deployed");
    let again = web.get(&a.location).body;
    assert!(again.contains(r#"id="env-changed""#) && again.contains(r#"value="web-2""#), "{again}");
    assert!(!again.contains(r#"value="stage-1""#));
    // Its "show its hosts" button deploys nothing either.
    let a = web.post("/projects/app/deploy", &[("csrf", &csrf), ("env", "prod"), ("tag", ""), ("version", "v2")]);
    assert_eq!((a.status, a.location.as_str()), (303, "/projects/app/deploy?env=prod&tag=&version=v2&picked=1"));
    assert_eq!(deployments(&f).len(), before);

    // The project page: what runs, and a link to the rollback's confirm page.
    let page = web.get("/projects/app").body;
    assert!(page.contains("v1 (2) / v2 (1)"), "{page}");
    assert!(page.contains(r#"href="/projects/app/environments/prod/rollback" id="rollback-prod">Roll back to v1<"#));
    let confirm = web.get("/projects/app/environments/prod/rollback");
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(confirm.body.contains(r#"method="post" action="/projects/app/environments/prod/rollback""#));
    let plan = hidden(&confirm.body, "plan");
    assert_eq!(plan, "web-1=v1");
    assert_eq!(deployments(&f).len(), before, "showing the plan changes nothing");

    // A form whose plan is no longer the plan is shown again, doing nothing.
    let stale = web.post("/projects/app/environments/prod/rollback", &[("csrf", &csrf), ("plan", "web-2=v0")]);
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert!(stale.body.contains(r#"id="plan-changed""#), "{}", stale.body);
    assert_eq!(deployments(&f).len(), before);

    let done = web.post("/projects/app/environments/prod/rollback", &[("csrf", &csrf), ("plan", &plan)]);
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location.starts_with("/deployments/"), "{}", done.location);
    f.wait_version("web-1", "app", "v1");
    wait_ended(&f);
    assert_eq!(deployments(&f).len(), before + 1);
    let page = web.get("/projects/app").body;
    assert!(page.contains(r#"id="running-prod">v1<"#), "{page}");

    // An emergency behind an approval: the confirm page asks for a reason,
    // none is refused, and the reason goes into the audit trail.
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    f.ok(&["env", "update", "app", "prod", "--require-approval", "true"]);
    let mut admin = Web::new(&f);
    admin.sign_in("ann", PASSWORD);
    let page = admin.get("/projects/app").body;
    assert!(page.contains(r#"id="emergency-prod""#) && page.contains("Emergency rollback to v1"), "{page}");
    let confirm = admin.get("/projects/app/environments/prod/rollback?emergency=on").body;
    assert!(confirm.contains(r#"name="reason""#) && confirm.contains(r#"name="emergency" value="on""#), "{confirm}");
    let plan = hidden(&confirm, "plan");
    assert_eq!(plan, "web-1=v1,web-2=v1,web-3=v1");
    let csrf = csrf_of(&confirm);
    let before = deployments(&f).len();
    let fields = [("csrf", csrf.as_str()), ("emergency", "on"), ("plan", plan.as_str())];
    let refused = admin.post("/projects/app/environments/prod/rollback", &fields);
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(deployments(&f).len(), before);
    let mut with_reason = fields.to_vec();
    with_reason.push(("reason", "checkout broken on v2"));
    let done = admin.post("/projects/app/environments/prod/rollback", &with_reason);
    assert_eq!(done.status, 303, "{}", done.body);
    for host in ["web-1", "web-2", "web-3"] {
        f.wait_version(host, "app", "v1");
    }
    let audit = f.json(&["audit", "--limit", "10"]).to_string();
    assert!(audit.contains("checkout broken on v2"), "{audit}");

    // Removing a member: the confirm page names them; its form removes them.
    let confirm = web.get("/projects/app/members/ann/remove");
    assert_eq!(confirm.status, 404, "ann is no member: {}", confirm.body);
    user(&f, "dora", false, Some(("app", "developer")));
    let confirm = web.get("/projects/app/members/dora/remove");
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("dora (developer)"), "{}", confirm.body);
    assert!(f.ok(&["member", "list", "app"]).contains("dora"), "showing it removes nobody");
    let a = web.post("/projects/app/members/dora/remove", &[("csrf", &csrf_of(&confirm.body))]);
    assert_eq!(a.status, 303);
    assert!(!f.ok(&["member", "list", "app"]).contains("dora"));
}

#[test]
fn after_approval_the_request_waits_for_its_requester_who_alone_is_shown_release() {
    let f = Ferry::start();
    f.ok(&["project", "create", "app"]);
    f.ok(&["env", "create", "app", "prod", "--select", "role=web", "--require-approval"]);
    f.upload("app", "v1");
    user(&f, "dev", false, Some(("app", "developer")));
    user(&f, "olga", false, Some(("app", "owner")));
    let (mut dev, mut olga) = (Web::new(&f), Web::new(&f));
    dev.sign_in("dev", PASSWORD);
    olga.sign_in("olga", PASSWORD);
    let csrf = csrf_of(&dev.get("/").body);
    let made =
        dev.post("/projects/app/requests", &[("csrf", &csrf), ("env", "prod"), ("version", "v1"), ("reason", "go")]);
    assert_eq!(made.status, 303, "{}", made.body);
    let count = |html: &str| {
        let after = html.split(r#"id="waiting-count""#).nth(1)?;
        Some(after.split('>').nth(1)?.split('<').next()?.trim().to_string())
    };
    // Waiting for the approver: her count and card; nothing for dev.
    let home = olga.get("/").body;
    assert_eq!(count(&home).as_deref(), Some("1"), "{home}");
    assert!(home.contains(r#"id="waiting""#) && home.contains(r#"href="/requests/1""#));
    assert_eq!(count(&dev.get("/").body), None);

    let csrf_olga = csrf_of(&home);
    assert_eq!(olga.post("/requests/1/approve", &[("csrf", &csrf_olga), ("note", "fine")]).status, 303);
    // Now it waits for dev: the count in the menu and the dashboard's card.
    let home = dev.get("/").body;
    assert_eq!(count(&home).as_deref(), Some("1"), "{home}");
    let card = &home[home.find(r#"id="waiting""#).expect("the dashboard's card")..];
    assert!(card.contains(r#"href="/requests/1""#), "{card}");
    assert!(dev.get("/requests").body.contains(r#"href="/requests/1""#));
    assert_eq!(count(&olga.get("/").body), None, "no longer waiting for olga");
    // Only the buttons the state machine leaves each of them.
    let mine = dev.get("/requests/1").body;
    assert!(mine.contains(r#"id="do-release""#) && mine.contains(r#"id="do-withdraw""#), "{mine}");
    let hers = olga.get("/requests/1").body;
    for button in ["do-release", "do-withdraw", "do-approve", "do-reject"] {
        assert!(!hers.contains(button), "no {button} for the approver: {hers}");
    }
    // The API's inbox says the same.
    let inbox = f.cli_token(&token(&f, "dev"), &["request", "list", "--waiting", "-o", "json"]);
    let inbox: Value = serde_json::from_slice(&inbox.stdout).unwrap();
    assert_eq!(inbox[0]["id"], 1, "{inbox}");
}

/// An API token of `name`'s, made through the web interface.
fn token(f: &Ferry, name: &str) -> String {
    let mut web = Web::new(f);
    web.sign_in(name, PASSWORD);
    let csrf = csrf_of(&web.get("/tokens").body);
    let a = web.post("/tokens", &[("csrf", &csrf), ("name", "cli")]);
    let marker = r#"id="new-token">"#;
    let at = a.body.find(marker).expect("the new token is shown");
    a.body[at + marker.len()..].split('<').next().unwrap().to_string()
}

/// The `data-state` of host `host`'s cell in the rollout picture of `html`.
fn cell_state(html: &str, host: &str) -> String {
    let marker = format!(r#"id="cell-{host}" data-state=""#);
    let at = html.find(&marker).unwrap_or_else(|| panic!("a cell for {host} in {html}"));
    html[at + marker.len()..].split('"').next().unwrap().to_string()
}

#[test]
fn the_deployment_page_draws_the_rollout_with_its_gate_and_the_grid_says_what_to_do_next() {
    let f = Ferry::fleet_on_v1(&["web-1", "web-2"]);
    user(&f, "olga", false, Some(("app", "owner")));
    let args = ["deploy", "app", "prod", "--version", "v2", "--strategy", "rolling", "--batch", "1"];
    f.ok(&[&args[..], &["--approve-each-batch"]].concat());
    let id = deployments(&f)[0]["id"].as_i64().unwrap();
    let mut web = Web::new(&f);
    web.sign_in("olga", PASSWORD);
    let page = format!("/deployments/{id}");
    wait_until(Duration::from_secs(30), "the first batch to wait at its gate", || {
        web.get(&page).body.contains(r#"id="gate-promote""#)
    });
    let html = web.get(&page).body;
    assert!(html.contains(r#"id="batch-1""#) && html.contains(r#"id="batch-2""#), "{html}");
    assert_eq!(cell_state(&html, "web-1"), "succeeded");
    assert_eq!(cell_state(&html, "web-2"), "queued");
    assert!(html.contains("Waiting at the gate"), "the next step in words: {html}");
    assert!(html.contains(r#"class="batch current" id="batch-1""#), "batch 1 is where it is: {html}");
    // The project's grid: a deployment runs in prod, follow it.
    let project = web.get("/projects/app").body;
    let next = &project[project.find(r#"id="grid-next-prod""#).expect("the grid's next step")..];
    assert!(next.contains(&format!(r#"href="/deployments/{id}""#)), "{next}");
    assert!(project.contains(r#"id="grid-health-prod""#) && project.contains("2/2"), "{project}");

    // The gate's button lets the next batch go.
    let csrf = csrf_of(&html);
    let a = web.post(&format!("/deployments/{id}/promote"), &[("csrf", &csrf)]);
    assert_eq!(a.status, 303, "{}", a.body);
    f.wait_version("web-2", "app", "v2");
    wait_until(Duration::from_secs(30), "web-2's cell to turn succeeded", || {
        cell_state(&web.get(&page).body, "web-2") == "succeeded"
    });
    wait_ended(&f);
    let html = web.get(&page).body;
    assert!(!html.contains(r#"id="next-step""#), "nothing next once it ended");
    let project = web.get("/projects/app").body;
    let last = &project[project.find(r#"id="grid-last-prod""#).expect("the last deployment")..];
    assert!(last.contains("v2 · ") && last.contains("succeeded"), "{last}");
}
