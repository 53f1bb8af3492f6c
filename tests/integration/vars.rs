//! R17: variables kept on the server reach the hooks of the hosts they apply
//! to, the most specific scope winning; secrets never come back out.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::{FERRY, Ferry, write_tree};

/// Given on standard input only; must appear nowhere but in the hook's file.
const SECRET: &str = "pa55-Sekr1t-7f3e9c01";
const WEBHOOK_SECRET: &str = "hook-Sekr1t-b44d02";

/// Uploads version `v` whose after_activate hook writes DB_HOST and API_KEY
/// into the host's shared directory.
fn upload_configured(f: &Ferry, v: &str) {
    let tree = f.dir.path().join("configured").join(v);
    write_tree(&tree, v, 3);
    let hook = r#"echo "$DB_HOST" > $FERRY_SHARED_DIR/db_host; echo "${API_KEY:-}" > $FERRY_SHARED_DIR/api_key"#;
    std::fs::write(tree.join("ferry.toml"), format!("[hooks]\nafter_activate = '{hook}'\n")).unwrap();
    f.ok(&["release", "upload", "app", tree.to_str().unwrap(), "--version", v]);
}

fn shared(f: &Ferry, host: &str, file: &str) -> String {
    let path = f.root_of(host).join("app/shared").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim_end().to_string()
}

/// Runs the CLI with `input` on standard input.
fn cli_with_stdin(f: &Ferry, args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new(FERRY)
        .args(args)
        .env("FERRY_SERVER", &f.url)
        .env("FERRY_TOKEN", &f.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// GETs an API path as the CLI's user and returns the body as text.
fn api_get(f: &Ferry, path: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new().get(format!("{}{path}", f.url)).bearer_auth(&f.token).send().await.unwrap();
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.text().await.unwrap()
    })
}

/// Every file below `dir`, except what `skip` names.
fn files_below(dir: &Path, skip: &[&str], out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if skip.iter().any(|s| entry.file_name() == *s) {
            continue;
        }
        if path.is_dir() {
            files_below(&path, skip, out);
        } else {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn value_of<'a>(list: &'a Value, key: &str) -> Option<&'a Value> {
    list.as_array().unwrap().iter().find(|v| v["key"] == key)
}

#[test]
fn variables_reach_hooks_most_specific_first_and_secrets_only_their_host() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1", "web-2"], "role=web");
    f.project_app();

    // Project scope: every host.
    f.ok(&["var", "set", "app", "DB_HOST", "project-db"]);
    upload_configured(&f, "v1");
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    for host in ["web-1", "web-2"] {
        assert_eq!(shared(&f, host, "db_host"), "project-db", "{host}");
        assert_eq!(shared(&f, host, "api_key"), "", "{host}");
    }

    // Environment beats project.
    f.ok(&["var", "set", "app", "--env", "prod", "DB_HOST", "env-db"]);
    upload_configured(&f, "v2");
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    for host in ["web-1", "web-2"] {
        assert_eq!(shared(&f, host, "db_host"), "env-db", "{host}");
    }

    // Host beats environment; environment and host beats host. A secret for
    // web-1 only, from standard input so it is in no command line.
    f.ok(&["var", "set", "app", "--host", "web-2", "DB_HOST", "web-2-db"]);
    f.ok(&["var", "set", "app", "--host", "web-1", "DB_HOST", "web-1-db"]);
    f.ok(&["var", "set", "app", "--env", "prod", "--host", "web-1", "DB_HOST", "web-1-prod-db"]);
    let set = cli_with_stdin(
        &f,
        &["var", "set", "app", "--host", "web-1", "API_KEY", "-", "--secret", "-o", "json"],
        &format!("{SECRET}\n"),
    );
    let stdout = String::from_utf8_lossy(&set.stdout);
    assert!(set.status.success(), "{stdout} {}", String::from_utf8_lossy(&set.stderr));
    assert!(!stdout.contains(SECRET) && stdout.contains("***"), "the answer to a set masks it: {stdout}");
    upload_configured(&f, "v3");
    f.ok(&["deploy", "app", "prod", "--version", "v3", "--wait"]);
    assert_eq!(shared(&f, "web-1", "db_host"), "web-1-prod-db");
    assert_eq!(shared(&f, "web-2", "db_host"), "web-2-db");
    assert_eq!(shared(&f, "web-1", "api_key"), SECRET, "the secret reached its host, newline stripped");
    assert_eq!(shared(&f, "web-2", "api_key"), "", "and no other host");

    // A secret is never replaced by a plain value by mistake.
    let err = f.fails(&["var", "set", "app", "--host", "web-1", "API_KEY", "oops"]);
    assert!(err.contains("API_KEY (host web-1) is a secret") && err.contains("--secret"), "{err}");

    // Lists show the plain values and *** for the secret.
    let table = f.ok(&["var", "list", "app"]);
    assert!(table.contains("env-db") && table.contains("web-1-prod-db") && table.contains("***"), "{table}");
    assert!(table.contains("env prod, host web-1"), "{table}");
    assert!(!table.contains(SECRET), "{table}");
    let all = f.json(&["var", "list", "app"]);
    assert_eq!(all.as_array().unwrap().len(), 6, "{all}");
    let key = value_of(&all, "API_KEY").unwrap();
    assert_eq!((key["value"].as_str(), key["secret"].as_bool()), (Some("***"), Some(true)));
    let web1 = f.json(&["var", "list", "app", "--env", "prod", "--host", "web-1"]);
    assert_eq!(value_of(&web1, "DB_HOST").unwrap()["value"], "web-1-prod-db", "{web1}");
    assert_eq!(value_of(&web1, "API_KEY").unwrap()["value"], "***", "{web1}");
    let web2 = f.json(&["var", "list", "app", "--env", "prod", "--host", "web-2"]);
    assert_eq!(value_of(&web2, "DB_HOST").unwrap()["host"], "web-2", "{web2}");
    assert!(value_of(&web2, "API_KEY").is_none(), "{web2}");
    let prod = f.json(&["var", "list", "app", "--env", "prod"]);
    assert_eq!(value_of(&prod, "DB_HOST").unwrap()["value"], "env-db", "{prod}");

    // No API answer carries it.
    f.ok(&["project", "create", "git", "--repo", "file:///nowhere", "--webhook-secret", WEBHOOK_SECRET]);
    for path in [
        "/api/v1/projects/app/vars",
        "/api/v1/projects/app/vars?env=prod&host=web-1",
        "/api/v1/projects/app/vars?host=web-1",
        "/api/v1/projects/app",
        "/api/v1/projects",
        "/api/v1/projects/app/status",
        "/api/v1/projects/app/deployments",
        "/api/v1/deployments/3",
        "/api/v1/hosts",
    ] {
        let body = api_get(&f, path);
        assert!(!body.contains(SECRET) && !body.contains(WEBHOOK_SECRET), "GET {path}: {body}");
    }

    // Neither the server's files (database, WAL, key file ...) nor any log
    // holds a secret; only the host it was meant for has it.
    let mut files = Vec::new();
    files_below(f.dir.path(), &["hosts", "configured"], &mut files);
    assert!(files.iter().any(|p| p.ends_with("server/ferry.db")), "{files:?}");
    assert!(files.iter().any(|p| p.file_name().unwrap().to_string_lossy().starts_with("server-")), "{files:?}");
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        assert!(!contains(&bytes, SECRET), "{} holds the secret", path.display());
        assert!(!contains(&bytes, WEBHOOK_SECRET), "{} holds the webhook secret", path.display());
    }
    let _ = &mut f;
}

#[test]
fn bad_variables_are_refused_and_change_nothing() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    f.ok(&["var", "set", "app", "KEEP", "me"]);
    let before = f.json(&["var", "list", "app"]);

    let refused = [
        (vec!["var", "set", "app", "1BAD", "x"], "'1BAD' is not a valid variable name"),
        (vec!["var", "set", "app", "DB-HOST", "x"], "'DB-HOST' is not a valid variable name"),
        (vec!["var", "set", "app", "FERRY_X", "x"], "'FERRY_X' is reserved"),
        (vec!["var", "set", "app", "--env", "nope", "K", "v"], "environment 'nope' of project 'app' not found"),
        // A host is named, enrolled or not (it may join later), but by a valid name.
        (vec!["var", "set", "app", "--host", "no/pe", "K", "v"], "--host 'no/pe'"),
        (vec!["var", "set", "app", "--env", "prod", "--host", "no/pe", "K", "v"], "--host 'no/pe'"),
        (vec!["var", "set", "nope", "K", "v"], "project 'nope' not found"),
        (vec!["var", "set", "app", "FERRY_TOKEN", "s3cr3t-value", "--secret"], "'FERRY_TOKEN' is reserved"),
        (vec!["var", "unset", "app", "KEEP", "--env", "prod"], "KEEP is not set in project 'app' for environment prod"),
        (vec!["var", "unset", "app", "KEEP", "--host", "nope"], "KEEP is not set in project 'app' for host nope"),
        (vec!["var", "list", "app", "--env", "nope"], "environment 'nope' of project 'app' not found"),
    ];
    for (args, message) in refused {
        let err = f.fails(&args);
        assert!(err.contains(message), "ferry {args:?}: {err}");
        assert!(!err.contains("s3cr3t-value"), "an error never repeats a value: {err}");
    }
    assert_eq!(f.json(&["var", "list", "app"]), before, "nothing changed");

    // A value from standard input, kept as given but for the last newline.
    let out = cli_with_stdin(&f, &["var", "set", "app", "--env", "prod", "MOTD", "-"], "hello\n  world\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let motd = value_of(&f.json(&["var", "list", "app"]), "MOTD").unwrap().clone();
    assert_eq!((motd["value"].as_str(), motd["env"].as_str()), (Some("hello\n  world"), Some("prod")));

    // A negative number is a value, not a flag.
    f.ok(&["var", "set", "app", "OFFSET", "-5"]);
    assert_eq!(value_of(&f.json(&["var", "list", "app"]), "OFFSET").unwrap()["value"], "-5");

    // Unset removes exactly one scope's value.
    f.ok(&["var", "set", "app", "--host", "web-1", "KEEP", "host value"]);
    assert_eq!(f.ok(&["var", "unset", "app", "--host", "web-1", "KEEP"]), "app: KEEP unset for host web-1\n");
    let after = f.json(&["var", "list", "app"]);
    assert_eq!(value_of(&after, "KEEP").unwrap()["value"], "me");
    assert_eq!(after.as_array().unwrap().len(), 3, "{after}");

    let help = f.ok(&["var", "set", "--help"]);
    assert!(help.contains("--env E --host H") && help.contains("write-only"), "{help}");
    let _ = &mut f;
}
