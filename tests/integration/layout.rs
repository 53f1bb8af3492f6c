//! R15, R17: shared paths outlive releases, templates are rendered on the
//! host, and neither counts as drift.

use std::time::Duration;

use crate::harness::{Ferry, wait_until, write_tree};

fn upload(f: &Ferry, v: &str, recipe: &str, template: &str) {
    let tree = f.dir.path().join("layout-trees").join(v);
    write_tree(&tree, v, 5);
    std::fs::create_dir_all(tree.join("config")).unwrap();
    std::fs::write(tree.join("ferry.toml"), recipe).unwrap();
    std::fs::write(tree.join("config/app.toml.tmpl"), template).unwrap();
    std::fs::write(tree.join("config/local.yml"), "default: true\n").unwrap();
    f.ok(&["release", "upload", "app", tree.to_str().unwrap(), "--version", v]);
}

const RECIPE: &str = "[deploy]\nshared = [\"config/local.yml\", \"uploads\"]\ntemplates = [\"config/app.toml.tmpl\"]\n\
    [hooks]\nafter_rollback = \"echo rolled back to $FERRY_VERSION >> $FERRY_SHARED_DIR/rollbacks\"\n";
const TEMPLATE: &str = "version = \"${FERRY_VERSION}\"\nport = ${PORT:-8080}\nliteral = \"$${NOT_EXPANDED}\"\n";

#[test]
fn shared_paths_and_templates_on_the_host() {
    use std::os::unix::fs::PermissionsExt;
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    upload(&f, "v1", RECIPE, TEMPLATE);
    upload(&f, "v2", RECIPE, TEMPLATE);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let project = f.root_of("web-1").join("app");
    let current = project.join("current");

    let rendered = current.join("config/app.toml");
    assert_eq!(
        std::fs::read_to_string(&rendered).unwrap(),
        "version = \"v1\"\nport = 8080\nliteral = \"${NOT_EXPANDED}\"\n"
    );
    assert_eq!(std::fs::metadata(&rendered).unwrap().permissions().mode() & 0o777, 0o640);
    // The shipped file seeds shared/ once; after that shared/ is the truth.
    assert!(current.join("config/local.yml").is_symlink() && current.join("uploads").is_symlink());
    assert_eq!(std::fs::read_to_string(current.join("config/local.yml")).unwrap(), "default: true\n");
    std::fs::write(project.join("shared/config/local.yml"), "edited: on the host\n").unwrap();
    std::fs::write(project.join("shared/uploads/avatar.png"), "png").unwrap();

    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    assert_eq!(std::fs::read_to_string(current.join("config/local.yml")).unwrap(), "edited: on the host\n");
    assert_eq!(std::fs::read_to_string(current.join("uploads/avatar.png")).unwrap(), "png");
    assert!(std::fs::read_to_string(current.join("config/app.toml")).unwrap().contains("\"v2\""));

    // Drift: a deleted file is repaired; the links and the rendered file are
    // the host's own and are neither reported nor lost.
    std::fs::remove_file(current.join("VERSION")).unwrap();
    wait_until(Duration::from_secs(20), "VERSION to be repaired", || current.join("VERSION").is_file());
    wait_until(Duration::from_secs(10), "status to report the repair", || {
        let s = f.json(&["status", "app"]);
        s["environments"][0]["hosts"][0]["error"].as_str().unwrap_or("").contains("VERSION missing")
    });
    let note = f.json(&["status", "app"])["environments"][0]["hosts"][0]["error"].as_str().unwrap().to_string();
    assert!(!note.contains("app.toml") && !note.contains("local.yml") && !note.contains("uploads"), "{note}");
    assert!(std::fs::read_to_string(current.join("config/app.toml")).unwrap().contains("\"v2\""));
    assert_eq!(std::fs::read_to_string(current.join("uploads/avatar.png")).unwrap(), "png");

    // Rolling back runs the older release's rollback hooks.
    f.ok(&["rollback", "app", "prod", "--wait"]);
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
    let log = std::fs::read_to_string(project.join("shared/rollbacks")).unwrap();
    assert_eq!(log.trim(), "rolled back to v1");

    // Variables from the server, secrets included, are rendered, and the
    // secret shows up nowhere else.
    f.ok(&["var", "set", "app", "PORT", "9090"]);
    f.ok(&["var", "set", "app", "--host", "web-1", "DB_PASSWORD", "s3cr3t-for-web-1", "--secret"]);
    upload(&f, "v3", RECIPE, "port = ${PORT:-8080}\npassword = \"${DB_PASSWORD}\"\n");
    f.ok(&["deploy", "app", "prod", "--version", "v3", "--wait"]);
    assert_eq!(
        std::fs::read_to_string(current.join("config/app.toml")).unwrap(),
        "port = 9090\npassword = \"s3cr3t-for-web-1\"\n"
    );
    let vars = std::fs::metadata(project.join(".ferry/vars.json")).unwrap();
    assert_eq!(vars.permissions().mode() & 0o777, 0o600, "the host's copy of the variables is private");
    for entry in std::fs::read_dir(f.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let log = std::fs::read_to_string(&path).unwrap();
            assert!(!log.contains("s3cr3t-for-web-1"), "{} shows the secret", path.display());
        }
    }

    // A template naming a variable nobody set fails before the switch.
    upload(&f, "v4", RECIPE, "url = \"${DB_URL}\"\n");
    f.fails(&["deploy", "app", "prod", "--version", "v4", "--wait"]);
    let d = f.json(&["deployment", "show", "5"]);
    let error = d["hosts"][0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("template config/app.toml.tmpl") && error.contains("DB_URL is not set"), "{error}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v3"));
    let _ = &mut f;
}
