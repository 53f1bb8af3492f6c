//! Deployment logs: what the hooks printed and what the agent did, per host,
//! stored on the server and read with `ferry deployment log`.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Ferry, wait_until};
use crate::hooks::upload_with_hooks;

/// Prints the host it runs on: the agent's root is `.../hosts/<name>`, and
/// the release directory is `<root>/app/releases/<release>`.
const HELLO: &str =
    r#"after_install = 'echo "hello from $(basename $(dirname $(dirname $(dirname $FERRY_RELEASE_DIR))))"'"#;

/// The table log without each line's time of day, checking every line
/// starts with one (`HH:MM:SS `) except `--follow`'s closing outcome.
pub fn untimed(log: String) -> String {
    let mut out = String::new();
    for line in log.lines() {
        let timed = line.len() > 9
            && line.as_bytes()[8] == b' '
            && line[..8].bytes().enumerate().all(|(i, b)| if i % 3 == 2 { b == b':' } else { b.is_ascii_digit() });
        assert!(timed || line.starts_with("deployment "), "a log line without its time: {line:?}\n{log}");
        out.push_str(if timed { &line[9..] } else { line });
        out.push('\n');
    }
    out
}

/// Where `needle` first appears in `lines`, failing with the whole log.
fn position(lines: &[&str], needle: &str, log: &str) -> usize {
    lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?} in:\n{log}"))
}

#[test]
fn each_hosts_hook_output_is_in_the_deployment_log_while_it_runs() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1", "web-2"], "role=web");
    f.project_app();
    upload_with_hooks(&f, "v1", &format!("{HELLO}\nafter_activate = 'echo \"warming $FERRY_VERSION\" >&2'\n"));
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);

    let log = untimed(f.ok(&["deployment", "log", "1"]));
    for host in ["web-1", "web-2"] {
        let mine: Vec<&str> = log.lines().filter(|l| l.starts_with(&format!("{host} | "))).collect();
        let steps = [
            "==> downloading ",
            "==> assembled app_prod_v1_",
            "==> running hook after_install: echo",
            &format!("| hello from {host}"),
            "==> activated app_prod_v1_",
            "==> running hook after_activate",
            "| stderr: warming v1",
        ];
        let at: Vec<usize> = steps.iter().map(|s| position(&mine, s, &log)).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "steps of {host} out of order ({at:?}):\n{log}");
    }
    assert!(!log.contains("web-1 | hello from web-2") && !log.contains("web-2 | hello from web-1"), "{log}");

    // One host's lines only.
    let one = untimed(f.ok(&["deployment", "log", "1", "--host", "web-2"]));
    assert!(one.lines().all(|l| l.starts_with("web-2 | ")), "{one}");
    assert!(one.contains("web-2 | hello from web-2"), "{one}");
    let err = f.fails(&["deployment", "log", "1", "--host", "web-9"]);
    assert!(err.contains("host 'web-9' is not a target of deployment 1"), "{err}");

    // JSON: one object per line, in order, with the stream.
    let json = f.ok(&["deployment", "log", "1", "-o", "json"]);
    let lines: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let warming =
        lines.iter().find(|l| l["host"] == "web-1" && l["line"] == "warming v1").expect("web-1's stderr line");
    assert_eq!(warming["stream"], "stderr");
    let hello = lines.iter().find(|l| l["host"] == "web-1" && l["line"] == "hello from web-1").expect("web-1's hello");
    assert_eq!(hello["stream"], "stdout");
    assert!(hello["at"].as_str().unwrap().contains('T'), "RFC 3339: {hello}");

    // Following a finished deployment prints it all and ends with its outcome.
    let followed = untimed(f.ok(&["deployment", "log", "1", "--follow", "--host", "web-1"]));
    assert!(followed.contains("web-1 | hello from web-1"), "{followed}");
    assert!(followed.ends_with("deployment 1 succeeded\n"), "{followed}");

    // A running deployment's log can be read before it ends.
    upload_with_hooks(&f, "v2", "after_install = 'echo started; sleep 4; echo done'\n");
    f.ok(&["deploy", "app", "prod", "--version", "v2"]);
    wait_until(Duration::from_secs(20), "the first hook line of deployment 2", || {
        untimed(f.ok(&["deployment", "log", "2", "--host", "web-1"])).contains("web-1 | started")
    });
    assert_eq!(f.json(&["deployment", "show", "2"])["status"], "running");
    let followed = untimed(f.ok(&["deployment", "log", "2", "--follow"]));
    for host in ["web-1", "web-2"] {
        assert!(followed.contains(&format!("{host} | done")), "{followed}");
    }
    assert!(followed.ends_with("deployment 2 succeeded\n"), "{followed}");
    let _ = &mut f;
}

#[test]
fn a_failing_hooks_output_is_kept_and_a_chatty_hook_is_capped() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();

    upload_with_hooks(&f, "v1", "after_install = 'seq 1 20000'\n");
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let log = untimed(f.ok(&["deployment", "log", "1"]));
    let lines: Vec<&str> = log.lines().collect();
    let last_kept = position(&lines, "web-1 | 5000", &log);
    assert_eq!(lines[last_kept], "web-1 | 5000");
    assert!(!lines.contains(&"web-1 | 5001"), "{}", &log[log.len().saturating_sub(2000)..]);
    assert!(lines[last_kept + 1].starts_with("web-1 | ==> ... 15000 lines dropped"), "{}", lines[last_kept + 1]);
    assert!(lines[last_kept + 2].starts_with("web-1 | ==> activated"), "{}", lines[last_kept + 2]);
    assert_eq!(lines.len(), last_kept + 3, "{}", &log[log.len().saturating_sub(2000)..]);

    // A failing hook: its output, its outcome, and the host left as it was.
    upload_with_hooks(&f, "v2", "before_activate = 'echo checking the cache; echo cache warm-up failed >&2; exit 4'\n");
    f.fails(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    let log = untimed(f.ok(&["deployment", "log", "2"]));
    let lines: Vec<&str> = log.lines().collect();
    let steps = [
        "web-1 | ==> running hook before_activate",
        "web-1 | checking the cache",
        "web-1 | stderr: cache warm-up failed",
        "web-1 | ==> install failed: hook before_activate `echo checking the cache;",
    ];
    let at: Vec<usize> = steps.iter().map(|s| position(&lines, s, &log)).collect();
    // stdout and stderr are separate pipes: their lines keep each stream's
    // order, not an order between the two.
    assert!(at[0] < at[1].min(at[2]) && at[1].max(at[2]) < at[3], "out of order ({at:?}):\n{log}");
    assert!(lines[at[3]].ends_with("exited with code 4"), "{log}");
    assert!(!log.contains("==> activated"), "{log}");
    let err = f.fails(&["deployment", "log", "2", "--follow"]);
    assert!(err.contains("deployment 2 rolled_back"), "{err}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
    let _ = &mut f;
}
