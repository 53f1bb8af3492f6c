//! R18: hooks from the release's own ferry.toml run around activation.

use crate::harness::{Ferry, write_tree};

/// Uploads version `v` with this `[hooks]` section.
pub fn upload_with_hooks(f: &Ferry, v: &str, hooks: &str) {
    let tree = f.dir.path().join("hooked").join(v);
    write_tree(&tree, v, 3);
    std::fs::write(tree.join("ferry.toml"), format!("[hooks]\n{hooks}")).unwrap();
    f.ok(&["release", "upload", "app", tree.to_str().unwrap(), "--version", v]);
}

#[test]
fn hooks_run_around_activation_and_failures_stop_or_undo_it() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    upload_with_hooks(
        &f,
        "v1",
        "after_install = \"test -f VERSION\"\n\
         after_activate = \"echo $FERRY_VERSION $FERRY_PREVIOUS_RELEASE > $FERRY_SHARED_DIR/activated\"\n\
         validate = \"test \\\"$(cat $FERRY_CURRENT/VERSION)\\\" = $FERRY_VERSION\"\n",
    );
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let shared = f.root_of("web-1").join("app/shared/activated");
    assert_eq!(std::fs::read_to_string(&shared).unwrap().trim(), "v1");

    // A failing hook before the switch fails the host and leaves it alone.
    upload_with_hooks(&f, "v2", "before_activate = \"echo cache warm-up failed >&2; exit 4\"\n");
    let err = f.fails(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    assert!(err.contains("failed on 1 host(s)"), "{err}");
    let d = f.json(&["deployment", "show", "2"]);
    let error = d["hosts"][0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("hook before_activate") && error.contains("code 4"), "{error}");
    assert!(error.contains("cache warm-up failed"), "the hook's last output is quoted: {error}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));

    // A failing validate after the switch puts the host back.
    upload_with_hooks(&f, "v3", "validate = \"exit 1\"\ntimeout = \"10s\"\n");
    f.fails(&["deploy", "app", "prod", "--version", "v3", "--wait"]);
    let error = f.json(&["deployment", "show", "3"])["hosts"][0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("hook validate") && error.contains("put back on the previous release"), "{error}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));

    // A broken hooks section is refused when the release is registered,
    // naming the key, and nothing reaches the hosts.
    let tree = f.dir.path().join("hooked").join("v4");
    write_tree(&tree, "v4", 3);
    std::fs::write(tree.join("ferry.toml"), "[hooks]\nafter_activte = \"true\"\n").unwrap();
    let err = f.fails(&["release", "upload", "app", tree.to_str().unwrap(), "--version", "v4"]);
    assert!(err.contains("ferry.toml") && err.contains("after_activte"), "{err}");
    assert!(f.fails(&["deploy", "app", "prod", "--version", "v4"]).contains("v4"));
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
    let _ = &mut f;
}
