//! Faults: corrupt content, agents killed mid-install, bad credentials and
//! names. Each must end in a clear error and no change, or in convergence.

use std::time::Duration;

use crate::harness::{Ferry, wait_until, write_tree};

#[test]
fn a_corrupt_blob_is_never_activated_and_the_host_says_so() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    f.upload("app", "v1");
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    f.upload("app", "v2");

    // The v2 VERSION file's blob rots on the server's disk.
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"v2\n"))
    };
    let blob = f.dir.path().join("server/artifacts").join(&digest[..2]).join(&digest);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&blob, b"v3\n").unwrap();

    let err = f.fails(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    assert!(err.contains("failed on 1 host(s)"), "{err}");
    let d = f.json(&["deployment", "show", "2"]);
    let error = d["hosts"][0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("corrupt") && error.contains(&digest), "{error}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"), "still on the old release");
    let objects = f.root_of("web-1").join(".ferry/objects").join(&digest[..2]).join(&digest);
    assert!(!objects.exists(), "the bad content was not stored on the host");
    // The rollout stopped and asked for v1 again: the host does not keep
    // retrying a release whose content is bad.
    let s = f.json(&["status", "app"]);
    assert_eq!(s["environments"][0]["hosts"][0]["desired_version"], "v1");
    assert_eq!(d["status"], "rolled_back");
}

#[test]
fn an_agent_killed_during_install_comes_back_and_converges() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    // Big enough that the install takes a while.
    let tree = f.dir.path().join("big");
    write_tree(&tree, "v1", 3000);
    for i in 0..20 {
        std::fs::write(tree.join(format!("lib/blob{i}.bin")), vec![i as u8; 512 * 1024]).unwrap();
    }
    f.ok(&["release", "upload", "app", tree.to_str().unwrap(), "--version", "v1"]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--offline-timeout", "120s"]);

    let current = f.root_of("web-1").join("app/current");
    // Kill at increasing moments of download, unpack and activation.
    let mut killed_mid_install = 0;
    for delay_ms in [30u64, 80, 150, 250, 400] {
        std::thread::sleep(Duration::from_millis(delay_ms));
        f.agent("web-1").kill();
        // Whatever the moment, `current` is absent or points at a complete release.
        if std::fs::read_link(&current).is_err() {
            killed_mid_install += 1;
        }
        if let Ok(target) = std::fs::read_link(&current) {
            let release = current.parent().unwrap().join(target);
            assert!(release.join("VERSION").is_file(), "current dangles after a kill at {delay_ms} ms");
            assert_eq!(std::fs::read_dir(release.join("lib")).unwrap().count(), 3020);
        }
        let proc = f.spawn_agent("web-1", "role=web", None);
        f.agents.retain(|(n, _)| n != "web-1");
        f.agents.push(("web-1".into(), proc));
    }
    assert!(killed_mid_install > 0, "no kill landed before activation; the test proves nothing");
    f.wait_version("web-1", "app", "v1");
    wait_until(Duration::from_secs(20), "the deployment to succeed", || {
        f.json(&["deployment", "show", "1"])["status"] == "succeeded"
    });
    let releases = f.root_of("web-1").join("app/releases");
    let leftovers: Vec<_> = std::fs::read_dir(&releases)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "partial releases left behind: {leftovers:?}");
}

#[test]
fn bad_credentials_and_unknown_names_change_nothing() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    f.upload("app", "v1");

    let out = std::process::Command::new(crate::harness::FERRY)
        .args(["hosts"])
        .env("FERRY_SERVER", &f.url)
        .env("FERRY_TOKEN", "fy_u_0000")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown or revoked API token"));
    // The join token is not an API token.
    let out = std::process::Command::new(crate::harness::FERRY)
        .args(["hosts"])
        .env("FERRY_SERVER", &f.url)
        .env("FERRY_TOKEN", &f.join_token)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a user API token"));

    let mut agent = f.spawn_agent("intruder", "role=web", Some("fy_j_wrong"));
    let (ok, log) = agent.wait_exit(Duration::from_secs(15));
    assert!(!ok && log.contains("wrong join token"), "{log}");
    assert!(!f.hosts().iter().any(|h| h["name"] == "intruder"));

    // A second agent may not take an enrolled host's name.
    let other_root = f.dir.path().join("elsewhere");
    let dup = std::process::Command::new(crate::harness::FERRY)
        .args(["agent", "--server", &f.url, "--name", "web-1", "--root", other_root.to_str().unwrap()])
        .args(["--join-token", &f.join_token])
        .output()
        .unwrap();
    assert!(!dup.status.success());
    let msg = String::from_utf8_lossy(&dup.stderr).into_owned();
    assert!(msg.contains("already enrolled"), "{msg}");

    for (args, expected) in [
        (vec!["deploy", "app", "prod", "--version", "v9"], "version 'v9' of project 'app' not found"),
        (vec!["deploy", "app", "qa", "--version", "v1"], "environment 'qa' of project 'app' not found"),
        (vec!["deploy", "nope", "prod", "--version", "v1"], "project 'nope' not found"),
        (vec!["rollback", "app", "prod"], "no earlier successfully deployed version"),
        (vec!["env", "create", "app", "prod2", "--select", "role"], "not of the form key=value"),
        (vec!["env", "create", "app", "prod2", "--select", "role=web"], "overlaps environment 'prod'"),
        (vec!["project", "create", "Bad Name"], "project name 'Bad Name'"),
        (vec!["project", "create", "app"], "project 'app' already exists"),
    ] {
        let err = f.fails(&args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert_eq!(f.json(&["deployments", "app"]).as_array().unwrap().len(), 0);
    assert_eq!(f.version_on("web-1", "app"), None);
}

#[test]
fn drift_on_a_host_is_found_reported_and_repaired() {
    let f = Ferry::fleet_on_v1(&["web-1"]);
    let release = f.root_of("web-1").join("app/current");
    use std::os::unix::fs::PermissionsExt;
    // Someone deletes one file and edits another in place (same size).
    std::fs::remove_file(release.join("lib/f3.txt")).unwrap();
    let edited = release.join("lib/f5.txt");
    let original = std::fs::read(&edited).unwrap();
    std::fs::set_permissions(&edited, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut tampered = original.clone();
    tampered[0] = b'X';
    std::fs::write(&edited, &tampered).unwrap();

    wait_until(Duration::from_secs(20), "the release to be repaired", || {
        release.join("lib/f3.txt").is_file() && std::fs::read(&edited).ok().as_deref() == Some(&original[..])
    });
    wait_until(Duration::from_secs(10), "status to report the repair", || {
        let s = f.json(&["status", "app"]);
        let note = s["environments"][0]["hosts"][0]["error"].as_str().unwrap_or("").to_string();
        note.contains("drift repaired") && note.contains("lib/f3.txt missing")
    });
    // Someone repoints current: the agent puts it back.
    let releases = f.root_of("web-1").join("app/releases");
    std::fs::remove_file(f.root_of("web-1").join("app/current")).unwrap();
    std::os::unix::fs::symlink(releases.join("nowhere"), f.root_of("web-1").join("app/current")).unwrap();
    f.wait_version("web-1", "app", "v1");
}

/// Every step of an update, by the markers its hooks and service leave.
const STEPS: [&str; 6] =
    ["before_install", "after_install", "before_activate", "service", "after_activate", "validate"];

#[test]
fn an_agent_killed_at_every_step_of_an_update_ends_on_a_complete_release() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    let mark = |step: &str| format!("touch $FERRY_SHARED_DIR/data/at-{step}-$FERRY_VERSION; sleep 0.5");
    let hooks: String = ["before_install", "after_install", "before_activate", "after_activate", "validate"]
        .iter()
        .map(|h| format!("{h} = \"{}\"\n", mark(h)))
        .collect();
    let recipe = format!(
        "[deploy]\nshared = [\"data\"]\n[service]\ncommand = \"./bin/app\"\nstart_period = \"1s\"\nstop_timeout = \"2s\"\n[hooks]\n{hooks}"
    );
    let app = "#!/bin/sh\necho $$ >> data/pids\ntouch data/at-service-$FERRY_VERSION\nexec sleep 1000\n";
    let upload = |f: &Ferry, v: &str| crate::service::upload_with(f, v, &recipe, &[("bin/app", app)]);
    upload(&f, "v1");
    // The shared directory exists from the first install on; the first hook runs before it.
    std::fs::create_dir_all(f.root_of("web-1").join("app/shared/data")).unwrap();
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let project = f.root_of("web-1").join("app");
    let current = project.join("current");

    for (i, step) in STEPS.iter().enumerate() {
        let (old, new) = (format!("v{}", i + 1), format!("v{}", i + 2));
        upload(&f, &new);
        f.ok(&["deploy", "app", "prod", "--version", &new]);
        let marker = project.join(format!("shared/data/at-{step}-{new}"));
        wait_until(Duration::from_secs(20), &format!("step {step} of {new}"), || marker.exists());
        f.agent("web-1").kill();

        // Whatever the step, `current` is a complete release: the old one or the new one.
        let version = std::fs::read_to_string(current.join("VERSION")).unwrap();
        assert!(version.trim() == old || version.trim() == new, "killed at {step}: current holds {version}");
        assert_eq!(std::fs::read_dir(current.join("lib")).unwrap().count(), 3, "killed at {step}");

        f.start_agent("web-1", "role=web");
        f.wait_version("web-1", "app", &new);
        let deployment = (i + 2).to_string();
        wait_until(Duration::from_secs(30), &format!("the deploy killed at {step} to finish"), || {
            f.json(&["deployment", "show", &deployment])["status"] == "succeeded"
        });
        // The interrupted activation was finished, not skipped: every later step ran.
        for later in &STEPS[i..] {
            let ran = project.join(format!("shared/data/at-{later}-{new}"));
            assert!(ran.exists(), "killed at {step}: {later} never ran for {new}");
        }
        // Exactly one instance of the service runs, the new release's.
        let pids = std::fs::read_to_string(project.join("shared/data/pids")).unwrap();
        let live: Vec<&str> = pids.lines().filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists()).collect();
        assert_eq!(live.len(), 1, "killed at {step}: live service processes {live:?}");
        let s = crate::service::status(&f, "web-1");
        assert!(s["release"].as_str().unwrap().contains(&new), "killed at {step}: {s}");
    }
}
