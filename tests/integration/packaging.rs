//! What ships with the binary: `--version` (commit and build date from
//! build.rs), shell completions, man pages, the systemd units and the Debian
//! package, each checked with the real tool that will read it (bash, groff,
//! systemd-analyze, dpkg-deb).

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::FERRY;

/// The source tree: the packaging scripts and units live there.
const SRC: &str = env!("CARGO_MANIFEST_DIR");

fn ferry(args: &[&str]) -> Output {
    Command::new(FERRY).args(args).output().expect("run ferry")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(SRC).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `date -u -d @EPOCH +%F`: the build date build.rs must have derived.
fn utc_date(epoch: &str) -> String {
    let out = Command::new("date").args(["-u", "-d", &format!("@{epoch}"), "+%F"]).output().expect("date");
    assert!(out.status.success(), "date: {}", stderr(&out));
    stdout(&out).trim().to_owned()
}

#[test]
fn version_names_the_commit_and_the_build_date() {
    let out = ferry(&["--version"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    let line = line.trim();
    let prefix = format!("ferry {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&prefix), "{line}");
    let rest = &line[prefix.len()..];
    let (commit, date) = rest.strip_suffix(')').and_then(|r| r.split_once(", built ")).expect("commit and date");

    // The same rules as build.rs: an explicit commit or SOURCE_DATE_EPOCH
    // wins, else the checkout's HEAD and its commit date.
    let want_commit = std::env::var("FERRY_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(commit, want_commit, "{line}");
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok().or_else(|| git(&["log", "-1", "--format=%ct", "HEAD"]));
    match epoch {
        Some(epoch) => assert_eq!(date, utc_date(epoch.trim()), "{line}"),
        None => assert_eq!(date, "unknown", "{line}"),
    }
    // -V is the same.
    assert_eq!(stdout(&ferry(&["-V"])).trim(), line);
}

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = ferry(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        // fish spells a long option `-l server`.
        let option = if shell == "fish" { "-l server" } else { "--server" };
        for word in ["deploy", "rollback", "server", "agent", "completions", option] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
        std::fs::write(dir.path().join(shell), &script).unwrap();
    }
    // bash itself accepts the script, and after sourcing it completes
    // `ferry de` to the commands that start so.
    let bash = dir.path().join("bash");
    let check = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", stderr(&check));
    let complete = Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1"; COMP_WORDS=(ferry de); COMP_CWORD=1; COMP_LINE="ferry de"; COMP_POINT=8; _ferry ferry de ferry; printf '%s\n' "${COMPREPLY[@]}""#)
        .arg("bash")
        .arg(&bash)
        .output()
        .unwrap();
    let words = stdout(&complete);
    assert!(words.lines().any(|w| w == "deploy"), "bash completes `ferry de` to: {words:?} {}", stderr(&complete));
    assert!(words.lines().all(|w| w.starts_with("de")), "{words:?}");

    // A shell it does not know: a clear error, nothing on standard output.
    let out = ferry(&["completions", "tcsh"]);
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("tcsh") && stderr(&out).contains("bash"), "{}", stderr(&out));
}

#[test]
fn man_pages_one_per_command_and_they_parse() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let out = ferry(&["man", pages.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for page in ["ferry.1", "ferry-deploy.1", "ferry-server.1", "ferry-agent.1", "ferry-env-create.1", "ferry-man.1"] {
        let text = std::fs::read_to_string(pages.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        let title = page.trim_end_matches(".1");
        assert!(text.contains(&format!(".TH {title} 1")), "{page}: wrong title");
    }
    // groff reads every page without a warning.
    let count = std::fs::read_dir(&pages).unwrap().count();
    assert!(count > 50, "only {count} pages");
    for entry in std::fs::read_dir(&pages).unwrap() {
        let path = entry.unwrap().path();
        let out = Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(&path).output().expect("groff");
        assert!(out.status.success() && out.stderr.is_empty(), "{}: {}", path.display(), stderr(&out));
    }
    // The deploy page carries what `ferry deploy --help` says.
    let rendered = Command::new("groff")
        .args(["-man", "-Tascii", "-P-cbou"])
        .arg(pages.join("ferry-deploy.1"))
        .output()
        .expect("groff");
    let text = stdout(&rendered);
    assert!(text.contains("--server") && text.contains("SYNOPSIS"), "{text}");

    // A directory it cannot make: an error naming it.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let bad = file.join("man1");
    let out = ferry(&["man", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(bad.to_str().unwrap()), "{}", stderr(&out));
}

/// A unit's `Key=value` settings in `[section]`, in order.
fn settings(unit: &str, section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut found = Vec::new();
    for line in unit.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
        } else if current == section
            && !line.starts_with('#')
            && let Some((k, v)) = line.split_once('=')
        {
            found.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    found
}

fn setting<'a>(all: &'a [(String, String)], key: &str) -> Option<&'a str> {
    all.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[test]
fn systemd_units_verify_and_keep_their_promises() {
    let read = |name: &str| std::fs::read_to_string(Path::new(SRC).join("packaging").join(name)).unwrap();
    let server = read("ferry-server.service");
    let agent = read("ferry-agent.service");

    // systemd's own checker, on copies whose ExecStart is the binary under
    // test (verify insists the command exists).
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (name, text) in [("ferry-server.service", &server), ("ferry-agent.service", &agent)] {
        assert!(text.contains("ExecStart=/usr/bin/ferry "), "{name}");
        // Settings come from FERRY_* variables and the config file, never
        // from a flag built of a variable that may be unset.
        assert!(!text.contains("${FERRY_"), "{name}");
        let path = dir.path().join(name);
        std::fs::write(&path, text.replace("/usr/bin/ferry", FERRY)).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    assert!(out.status.success() && out.stderr.is_empty(), "systemd-analyze verify: {}", stderr(&out));

    let s = settings(&server, "Service");
    assert_eq!(setting(&s, "User"), Some("ferry"));
    assert_eq!(setting(&s, "StateDirectory"), Some("ferry"));
    assert_eq!(setting(&s, "ProtectSystem"), Some("strict"));
    assert_eq!(setting(&s, "NoNewPrivileges"), Some("yes"));
    assert!(setting(&s, "EnvironmentFile").is_some_and(|f| f == "-/etc/ferry/server.env"));
    // bubblewrap needs these namespaces and a /proc it can remount.
    let ns = setting(&s, "RestrictNamespaces").unwrap_or_default();
    for needed in ["user", "mnt", "pid", "ipc"] {
        assert!(ns.split_whitespace().any(|n| n == needed), "RestrictNamespaces={ns} lacks {needed}");
    }
    for breaks_bwrap in ["ProtectKernelTunables", "ProtectProc", "PrivateUsers", "SystemCallFilter"] {
        assert_eq!(setting(&s, breaks_bwrap), None, "{breaks_bwrap} breaks builds in bubblewrap");
    }

    // `systemctl reload` puts a renewed certificate in service.
    assert_eq!(setting(&s, "ExecReload"), Some("/bin/kill -HUP $MAINPID"));

    // A self-upgrade's failing binary is restarted until its guard acts.
    assert_eq!(setting(&settings(&agent, "Unit"), "StartLimitIntervalSec"), Some("0"));
    let a = settings(&agent, "Service");
    // Stopping the agent must leave the services it supervises running.
    assert_eq!(setting(&a, "KillMode"), Some("process"));
    assert_eq!(setting(&a, "User"), None, "the agent runs as root");
    assert!(setting(&a, "EnvironmentFile").is_some_and(|f| f == "-/etc/ferry/agent.env"));
    // Its services inherit its sandbox: nothing that would break them.
    for inherited in ["ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges"] {
        assert_eq!(setting(&a, inherited), None, "{inherited} would apply to every supervised service");
    }
}

#[test]
fn debian_package_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(SRC).join("packaging");
    // No compression: the test binary is large and unstripped.
    let out = Command::new(src.join("build-deb.sh"))
        .arg(FERRY)
        .arg(dir.path())
        .env("FERRY_DEB_COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(out.status.success(), "build-deb.sh: {}", stderr(&out));
    let deb = stdout(&out).trim().to_owned();
    assert!(deb.ends_with(&format!("ferry_{}_amd64.deb", env!("CARGO_PKG_VERSION"))), "{deb}");
    let check = Command::new(src.join("check-deb.sh")).arg(&deb).output().unwrap();
    assert!(check.status.success(), "check-deb.sh: {}\n{}", stdout(&check), stderr(&check));
    assert!(stdout(&check).contains("is whole"));

    // A package whose binary disagrees with itself is refused: the check
    // must be able to fail.
    let broken = dir.path().join("broken");
    let x = Command::new("dpkg-deb").arg("-R").arg(&deb).arg(&broken).status().unwrap();
    assert!(x.success());
    std::fs::remove_file(broken.join("usr/share/man/man1/ferry-deploy.1.gz")).unwrap();
    let broken_deb = dir.path().join("broken.deb");
    let b = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Znone", "-b"])
        .arg(&broken)
        .arg(&broken_deb)
        .output()
        .unwrap();
    assert!(b.status.success(), "{}", stderr(&b));
    let check = Command::new(src.join("check-deb.sh")).arg(&broken_deb).output().unwrap();
    assert!(!check.status.success());
    assert!(stderr(&check).contains("ferry-deploy.1.gz is not in the package"), "{}", stderr(&check));

    // Bad input: a clear usage error.
    let out = Command::new(src.join("build-deb.sh")).arg(dir.path().join("missing")).arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing is not an executable file"), "{}", stderr(&out));
}

#[test]
fn glibc_check_reads_the_binary() {
    let script = Path::new(SRC).join("packaging/check-glibc.sh");
    // Whatever the test binary needs, with the limit set to it the check
    // passes, and with a limit below it fails naming the symbols.
    let out = Command::new(&script).arg(FERRY).arg("99.0").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    if said.contains("is static") {
        return;
    }
    let out = Command::new(&script).arg(FERRY).arg("2.0").output().unwrap();
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("above 2.0"), "{}", stderr(&out));
}
