//! The API's OpenAPI description, fetched from the real server without a
//! token, is a valid OpenAPI 3 document (checked by `openapi-spec-validator`)
//! and describes what the server serves.

use std::process::Command;

use serde_json::Value;

use crate::harness::Ferry;

/// GETs `path` with an optional bearer token; returns the status and body.
fn get(f: &Ferry, token: Option<&str>, path: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(format!("{}{path}", f.url));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

#[test]
fn the_description_is_served_without_a_token_and_validates_as_openapi_3() {
    let f = Ferry::start();
    let (status, body) = get(&f, None, "/api/v1/openapi.json");
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);

    // The validator of the OpenAPI project's schema, not our own reading.
    let file = f.dir.path().join("openapi.json");
    std::fs::write(&file, &body).unwrap();
    let out = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 with openapi-spec-validator (pip install openapi-spec-validator)");
    assert!(
        out.status.success(),
        "the description is not valid OpenAPI:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Bearer tokens, one error body, and the routes a user needs.
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(
        doc["components"]["responses"]["Error"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    let paths = doc["paths"].as_object().unwrap();
    for p in ["/api/v1/projects/{project}/deployments", "/api/v1/deployments/{id}", "/api/v1/login"] {
        assert!(paths.contains_key(p), "{p} is not described");
    }
    assert!(paths.keys().all(|p| p.starts_with("/api/v1/")), "only the API is described");
    assert!(!paths.keys().any(|p| p.starts_with("/api/v1/agent/")), "the agents' channel is not described");
    assert_eq!(doc["paths"]["/api/v1/login"]["post"]["security"], serde_json::json!([]));

    // What it describes is served: every GET without path parameters answers
    // the admin with a success (not a missing route), and without a token
    // with 401 where the description asks for one.
    let mut checked = 0;
    for (path, item) in paths {
        let Some(op) = item.get("get") else { continue };
        if path.contains('{') || path == "/api/v1/openapi.json" {
            continue;
        }
        let (status, body) = get(&f, Some(&f.token), path);
        assert_eq!(status, 200, "GET {path}: {body}");
        if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
            let (status, _) = get(&f, None, path);
            assert_eq!(status, 401, "GET {path} without a token");
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} routes checked");
}

/// Input the server cannot even parse (a body without a required field, a
/// query or path value of the wrong type) is answered like every other
/// failure: a 4xx with the one JSON error body naming the problem, and
/// nothing changes.
#[test]
fn unparsable_input_gets_the_described_error_body() {
    let f = Ferry::start();
    let (status, body) =
        crate::trust::post_json(&f, &f.token, "/api/v1/projects", &serde_json::json!({ "nam": "app" }));
    assert_eq!(status, 422, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["code"], "bad_request");
    assert!(err["error"].as_str().unwrap().contains("missing field `name`"), "{body}");
    let (_, projects) = get(&f, Some(&f.token), "/api/v1/projects");
    assert_eq!(serde_json::from_str::<Value>(&projects).unwrap(), serde_json::json!([]), "nothing was created");

    for path in ["/api/v1/deployments/abc", "/api/v1/projects/app/deployments?limit=many"] {
        let (status, body) = get(&f, Some(&f.token), path);
        assert_eq!(status, 400, "{path}: {body}");
        let err: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert_eq!(err["code"], "bad_request", "{path}");
        assert!(!err["error"].as_str().unwrap().is_empty(), "{path}");
    }
}
