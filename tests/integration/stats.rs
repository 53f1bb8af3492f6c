//! R29: `ferry stats` counts what really happened: deploys built from git and
//! uploaded, a deploy failed by its hook, an emergency rollback.

use std::time::{Duration, Instant};

use crate::harness::{BUILD_VERSION, Ferry, Repo};
use crate::hooks::upload_with_hooks;

#[test]
fn stats_count_deploys_failures_rollbacks_and_the_delivery_metrics() {
    let began = Instant::now();
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    let repo = Repo::new(f.dir.path(), BUILD_VERSION);
    f.ok(&["project", "create", "app", "--repo", &repo.url()]);
    f.ok(&["env", "create", "app", "prod", "--select", "role=web"]);
    f.ok(&["env", "create", "app", "staging", "--select", "role=none"]);

    // 1: built from a commit, so it has a lead time; succeeds.
    f.ok(&["build", "app", "--follow"]);
    f.ok(&["deploy", "app", "prod", "--version", "1", "--wait"]);
    // 2: its hook exits 1; the deploy fails.
    upload_with_hooks(&f, "v2", "before_activate = \"exit 1\"\n");
    f.fails(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    // 3: an upload (no commit time) that succeeds, then is rolled back.
    f.upload("app", "v3");
    f.ok(&["deploy", "app", "prod", "--version", "v3", "--wait"]);
    f.ok(&["rollback", "app", "prod", "--emergency", "--wait"]);
    f.wait_version("web-1", "app", "1");
    let elapsed_ms = i64::try_from(began.elapsed().as_millis()).unwrap();

    let s = f.json(&["stats", "app"]);
    assert_eq!(s["project"], "app");
    let envs = s["environments"].as_array().unwrap();
    let names: Vec<&str> = envs.iter().map(|e| e["env"].as_str().unwrap()).collect();
    assert_eq!(names, ["prod", "staging"], "every environment, nothing deployed or not: {s}");
    let prod = &envs[0];
    let count = |key: &str| prod[key].as_u64().unwrap_or_else(|| panic!("{key} in {prod}"));
    let counts: Vec<u64> =
        ["deployments", "deploys", "rollbacks", "emergency_rollbacks", "succeeded", "failed", "canceled"]
            .iter()
            .map(|k| count(k))
            .collect();
    assert_eq!(counts, [4, 3, 1, 1, 3, 1, 0], "{prod}");

    // Two successful deploys over the 30 days asked about by default.
    let per_day = prod["deploys_per_day"].as_f64().unwrap();
    assert!((per_day - 2.0 / 30.0).abs() < 1e-3, "{prod}");
    // v2 failed, v3 was rolled back: 2 of 3.
    assert_eq!((count("changes"), count("change_failures")), (3, 2), "{prod}");
    assert!((prod["change_failure_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9, "{prod}");
    // Both were restored: v2 by v3, v3 by the rollback.
    assert_eq!(count("unrestored"), 0, "{prod}");
    let restore = prod["time_to_restore_ms"].as_i64().unwrap();
    assert!(restore > 0 && restore < elapsed_ms, "{prod}");
    // Only release 1 has a commit time. Git keeps whole seconds, so the
    // commit may look up to a second older than it is.
    assert_eq!(count("lead_time_samples"), 1, "{prod}");
    let lead = prod["lead_time_ms"].as_i64().unwrap();
    assert!(lead > 0 && lead < elapsed_ms + 1_000, "{prod}");
    let mean = prod["mean_duration_ms"].as_i64().unwrap();
    assert!(mean > 0 && mean < elapsed_ms, "{prod}");
    let staging = &envs[1];
    assert_eq!((staging["deployments"].as_u64(), staging["change_failure_rate"].as_f64()), (Some(0), None));

    // For people: a block per environment.
    let text = f.ok(&["stats", "app", "--env", "prod", "--since", "7d"]);
    assert!(text.contains("(7d)"), "{text}");
    assert!(text.contains("\nprod\n") && !text.contains("staging"), "{text}");
    assert!(text.contains("  deployments           4 (3 deploys, 1 rollback, 1 emergency)"), "{text}");
    assert!(text.contains("  failed                1 ("), "{text}");
    assert!(text.contains("  change failure rate   67% (2 of 3)"), "{text}");
    assert!(text.contains("(median of 2)"), "time to restore over both failures: {text}");

    // A period that began after the last deployment counts nothing.
    std::thread::sleep(Duration::from_millis(20));
    let recent = f.json(&["stats", "app", "--env", "prod", "--since", "10ms"]);
    assert_eq!(recent["environments"][0]["deployments"], 0, "{recent}");
    assert!(f.fails(&["stats", "app", "--env", "nope"]).contains("nope"));
    let _ = &mut f;
}
