//! The web interface's route table against every role, as `api/tests.rs`
//! does for the API: each UI route is called by a signed-in user of each
//! kind, and whatever the route's rule refuses must be refused (403) before
//! the handler runs, whatever the page shows.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use ferry_domain::access::{Action, allowed};
use tower::ServiceExt;

use super::{router, routes, session};
use crate::access::Rule;
use crate::auth::{new_token, token_hash};
use crate::testing::{Fixture, Person, concrete, fixture};

/// A session for `person`, as signing in would make it.
async fn session_of(f: &Fixture, person: &Person) -> String {
    let user = f.state.db.user(person.name).await.unwrap();
    let token = new_token("fy_s_");
    let now = crate::now_ms();
    f.state.db.create_web_session(user.id, &token_hash(&token), now, now + 3_600_000).await.unwrap();
    token
}

async fn call(f: &Fixture, method: &Method, path: &str, session: Option<&str>, csrf: bool) -> StatusCode {
    let mut req = Request::builder().method(method.clone()).uri(path);
    if let Some(s) = session {
        req = req.header(header::COOKIE, format!("{}={s}", crate::auth::SESSION_COOKIE));
    }
    let body = if *method == Method::POST {
        req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        match (csrf, session) {
            (true, Some(s)) => Body::from(format!("csrf={}&git_ref=main", session::csrf_token(s))),
            _ => Body::from("git_ref=main"),
        }
    } else {
        Body::empty()
    };
    router(f.state.clone()).oneshot(req.body(body).unwrap()).await.unwrap().status()
}

/// What the API's check decides for this route and person: a project from
/// `{project}` or the deployment or build `{id}`; the deployment's
/// environment is production.
fn expected(path: &str, person: &Person, action: Action) -> bool {
    let scoped = path.contains("{project}") || path.contains("{id}");
    let membership = if scoped { person.role } else { None };
    let production =
        path.starts_with("/deployments/{id}") || path.starts_with("/requests/{id}") || path.contains("{env}");
    allowed(&person.subject, membership, action, production).is_ok()
}

#[test]
fn every_ui_route_has_one_rule_and_only_sign_in_and_assets_are_open() {
    let mut seen = BTreeSet::new();
    for r in routes() {
        assert!(seen.insert((r.method.to_string(), r.path)), "{} {} is declared twice", r.method, r.path);
        assert!(!r.path.starts_with("/api/"), "{} belongs to the API's table", r.path);
        let public = matches!(r.path, "/static/{file}" | "/favicon.ico" | "/lang/{code}" | "/login");
        match r.rule {
            Rule::Public => assert!(public, "{} {} is open to anyone", r.method, r.path),
            Rule::Agent => panic!("{} {} is marked for agents", r.method, r.path),
            Rule::User(_) => assert!(!public, "{} {} must not need a user", r.method, r.path),
        }
    }
}

#[tokio::test]
async fn every_ui_route_refuses_whom_its_rule_refuses() {
    let f = fixture().await;
    let mut sessions = Vec::new();
    for person in &f.people {
        sessions.push(session_of(&f, person).await);
    }
    let mut checked = 0;
    // Signing out ends the sessions the other routes are called with.
    let mut table = routes();
    table.sort_by_key(|r| r.path == "/logout");
    for route in table {
        let Rule::User(action) = route.rule else { continue };
        let path = concrete(route.path, &f).replace("{code}", "en");
        for (person, session) in f.people.iter().zip(&sessions) {
            let status = call(&f, &route.method, &path, Some(session), true).await;
            let what = format!("{} {} as {}: {status}", route.method, route.path, person.name);
            if expected(route.path, person, action) {
                assert!(status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED, "{what}: allowed");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what}: the rule refuses it");
            }
            checked += 1;
        }
        // Without a session: pages send to the sign-in form, forms are refused.
        let status = call(&f, &route.method, &path, None, false).await;
        let want = if route.method == Method::GET { StatusCode::SEE_OTHER } else { StatusCode::UNAUTHORIZED };
        assert_eq!(status, want, "{} {} without a session", route.method, route.path);
        // Without the CSRF token, no form is accepted, even the administrator's.
        if route.method == Method::POST {
            let admin = session_of(&f, &f.people[0]).await;
            let status = call(&f, &route.method, &path, Some(&admin), false).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{} {} without its CSRF token", route.method, route.path);
        }
    }
    assert!(checked > 80, "only {checked} calls checked");
}

#[tokio::test]
async fn a_disabled_user_s_session_stops_at_once() {
    let f = fixture().await;
    let dev = f.people.iter().find(|p| p.name == "dev").unwrap();
    let session = session_of(&f, dev).await;
    assert_eq!(call(&f, &Method::GET, "/projects/p", Some(&session), false).await, StatusCode::OK);
    let user = f.state.db.user("dev").await.unwrap();
    f.state.db.set_user_disabled(user.id, true).await.unwrap();
    assert_eq!(call(&f, &Method::GET, "/projects/p", Some(&session), false).await, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn pages_are_not_cached_nor_framed_and_assets_are_cached_for_long() {
    let f = fixture().await;
    let req = Request::get("/login").body(Body::empty()).unwrap();
    let resp = router(f.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    let htmx = ferry_web::assets::HTMX.path();
    let resp = router(f.state.clone()).oneshot(Request::get(&htmx).body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
    let stale = Request::get("/static/htmx.0000000000000000.min.js").body(Body::empty()).unwrap();
    assert_eq!(router(f.state.clone()).oneshot(stale).await.unwrap().status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_site_cannot_sign_a_browser_in() {
    let f = fixture().await;
    let req = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(Body::from("user=dev&password=whatever"))
        .unwrap();
    let resp = router(f.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().get(header::SET_COOKIE).is_none());
}

/// The deployment page in `lang` (the language cookie), as the administrator.
async fn deployment_page(f: &Fixture, lang: &str) -> String {
    let session = session_of(f, &f.people[0]).await;
    let req = Request::get(format!("/deployments/{}", f.deployment))
        .header(header::COOKIE, format!("{}={session}; {}={lang}", crate::auth::SESSION_COOKIE, session::LANG_COOKIE))
        .body(Body::empty())
        .unwrap();
    let resp = router(f.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn a_deployment_s_history_and_hold_read_in_the_reader_s_language() {
    let f = fixture().await;
    assert_eq!(f.people[0].name, "admin");
    f.state.db.control_deployment(f.deployment, ferry_store::RolloutControl::Pause, 10).await.unwrap();
    f.state.db.advance_deployment(f.deployment, 11).await.unwrap();
    // An agent's text stays text, in every language, even when it looks
    // like a code.
    let forged = ferry_domain::status::Note::text(r#"{"code":"paused"}"#);
    f.state.db.hold_deployment(f.deployment, &forged, 12).await.unwrap();

    let zh = deployment_page(&f, "zh-CN").await;
    for said in [
        "由 admin 创建：0 台主机，分 1 批，一次全部；首次失败即停止",
        "已被操作员暂停",
        "已暂停（ferry deployment resume）",
    ] {
        assert!(zh.contains(said), "the Chinese page lacks {said:?}:\n{zh}");
    }
    assert!(!zh.contains("created by admin") && !zh.contains("paused by an operator"), "English on the Chinese page");
    assert!(zh.contains("{&#34;code&#34;:&#34;paused&#34;}"), "the forged text is shown as text:\n{zh}");

    let en = deployment_page(&f, "en").await;
    for said in
        ["created by admin: 0 host(s) in 1 batch(es)", "paused by an operator", "paused (ferry deployment resume)"]
    {
        assert!(en.contains(said), "the English page lacks {said:?}");
    }
    assert!(!en.contains("已被操作员暂停"));

    // The API keeps its English text and adds the code next to it.
    let info = crate::fleet::deployment_info(&f.state, f.deployment).await.unwrap();
    let created = &info.events[0];
    assert!(created.what.starts_with("created by admin: "), "{created:?}");
    assert!(matches!(created.code, Some(ferry_domain::status::Note::Created { .. })), "{created:?}");
    assert_eq!(info.hold.as_deref(), Some(r#"{"code":"paused"}"#));
    assert_eq!(info.hold_code, Some(forged));
}
