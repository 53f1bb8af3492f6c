//! The permission table against every role: each route of [`routes`] is
//! called by a user of each kind, and whatever the route's rule refuses must
//! be refused (403) before the handler does anything, and whatever it allows
//! must not be.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use ferry_domain::access::{Action, allowed};
use tower::ServiceExt;

use super::{Route, router, routes};
use crate::access::Rule;
use crate::testing::{Fixture, Person, concrete, fixture};

/// What `authorize` knows of the request: the project role, and whether the
/// environment it names is production.
fn expected(route: &Route, person: &Person, action: Action) -> bool {
    let scoped = route.path.contains("{project}") || route.path.contains("{id}");
    // Unscoped uploads count the user's best role anywhere (here: in `p`).
    let membership = if scoped || action == Action::Build { person.role } else { None };
    let production = route.path.contains("{env}")
        || route.path.starts_with("/api/v1/deployments/{id}")
        || route.path.starts_with("/api/v1/requests/{id}");
    allowed(&person.subject, membership, action, production).is_ok()
}

async fn call(f: &Fixture, method: &Method, path: &str, token: &str) -> StatusCode {
    let mut req =
        Request::builder().method(method.clone()).uri(path).header("authorization", format!("Bearer {token}"));
    let body = if *method == Method::POST {
        req = req.header("content-type", "application/json");
        Body::from("{}")
    } else {
        Body::empty()
    };
    let resp = router(f.state.clone()).oneshot(req.body(body).unwrap()).await.unwrap();
    resp.status()
}

#[test]
fn every_route_has_one_rule_and_only_the_right_ones_are_open() {
    let mut seen = BTreeSet::new();
    for r in routes() {
        assert!(seen.insert((r.method.to_string(), r.path)), "{} {} is declared twice", r.method, r.path);
        assert!(axum::routing::MethodFilter::try_from(r.method.clone()).is_ok(), "{} {}", r.method, r.path);
        let agent = r.path.starts_with("/api/v1/agent/");
        let public = matches!(
            r.path,
            "/healthz"
                | "/readyz"
                | "/metrics"
                | "/api/v1/login"
                | "/api/v1/hooks/{forge}/{project}"
                | "/api/v1/openapi.json"
        );
        match r.rule {
            Rule::Agent => assert!(agent, "{} {} is marked for agents", r.method, r.path),
            Rule::Public => assert!(public, "{} {} is open to anyone", r.method, r.path),
            Rule::User(_) => assert!(!agent && !public, "{} {} must not need a user", r.method, r.path),
        }
    }
}

#[tokio::test]
async fn every_route_refuses_whom_its_rule_refuses() {
    let f = fixture().await;
    let mut checked = 0;
    for route in routes() {
        let path = concrete(route.path, &f);
        for person in &f.people {
            let status = call(&f, &route.method, &path, &person.token).await;
            let what = format!("{} {} as {}: {status}", route.method, route.path, person.name);
            match route.rule {
                Rule::Public => {}
                // A user token never acts as an agent.
                Rule::Agent => assert!(!status.is_success(), "{what}"),
                Rule::User(action) => {
                    if expected(&route, person, action) {
                        assert!(
                            status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                            "{what}: the rule allows it"
                        );
                    } else {
                        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: the rule refuses it");
                    }
                    checked += 1;
                }
            }
        }
        // Without a token, only public and agent routes answer anything but 401.
        if let Rule::User(_) = route.rule {
            let req = Request::builder().method(route.method.clone()).uri(&path).body(Body::empty()).unwrap();
            let status = router(f.state.clone()).oneshot(req).await.unwrap().status();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{} {} without a token", route.method, route.path);
        }
    }
    assert!(checked > 300, "only {checked} calls checked");
}

#[tokio::test]
async fn a_disabled_user_is_refused_at_once() {
    let f = fixture().await;
    let dev = f.people.iter().find(|p| p.name == "dev").unwrap();
    assert_eq!(call(&f, &Method::GET, "/api/v1/projects/p", &dev.token).await, StatusCode::OK);
    let user = f.state.db.user("dev").await.unwrap();
    f.state.db.set_user_disabled(user.id, true).await.unwrap();
    assert_eq!(call(&f, &Method::GET, "/api/v1/projects/p", &dev.token).await, StatusCode::UNAUTHORIZED);
}
