//! The manual fallback for when the server is out of reach (R33): an
//! operator on the host rolls a project back with
//! `ferry agent rollback --root ROOT PROJECT [--to RELEASE]`.
//!
//! It relinks `current` to a release still on disk and leaves a *pin*
//! beside it, so that the agent (running or started later) does not undo the
//! operator's decision by converging back to the release the server last
//! asked for. The pin holds until the server asks for a different release (a
//! new deploy or rollback), and the agent reports it meanwhile, so the server
//! shows the host as manually rolled back. Every manual action is appended to
//! `<root>/.ferry/journal.log`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::layout::{ProjectLayout, ReleaseMeta};

/// Written to `<root>/<project>/.ferry/pin.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pin {
    /// The release `current` was switched to.
    pub release_name: String,
    /// The server's assignment in force when the operator acted (its
    /// `desired_since`): while the server still asks for exactly that, the
    /// agent leaves the host alone; any newer deployment clears the pin.
    pub against_desired_since: Option<i64>,
    /// RFC 3339, UTC.
    pub at: String,
    pub reason: String,
}

fn pin_path(layout: &ProjectLayout) -> PathBuf {
    layout.dir.join(".ferry").join("pin.json")
}

/// The pin of a project, if any.
pub fn pin(layout: &ProjectLayout) -> Option<Pin> {
    serde_json::from_slice(&fs::read(pin_path(layout)).ok()?).ok()
}

/// What the agent last saw the server ask for, kept so that a manual
/// rollback made while the agent is stopped still knows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct LastDesired {
    release_id: i64,
    desired_since: i64,
}

fn last_desired_path(layout: &ProjectLayout) -> PathBuf {
    layout.dir.join(".ferry").join("desired.json")
}

/// Records the server's current assignment for a project (only on change).
pub fn remember_desired(layout: &ProjectLayout, release_id: i64, desired_since: i64) {
    let path = last_desired_path(layout);
    let now = LastDesired { release_id, desired_since };
    let known: Option<LastDesired> = fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
    if known.as_ref() != Some(&now)
        && let Ok(json) = serde_json::to_vec(&now)
    {
        let _ = fs::create_dir_all(layout.dir.join(".ferry"));
        let _ = fs::write(&path, json);
    }
}

fn last_desired(layout: &ProjectLayout) -> Option<i64> {
    let known: LastDesired = serde_json::from_slice(&fs::read(last_desired_path(layout)).ok()?).ok()?;
    Some(known.desired_since)
}

/// Removes the pin (the server asked for something new).
pub fn clear_pin(layout: &ProjectLayout) {
    let _ = fs::remove_file(pin_path(layout));
}

/// What a manual rollback did.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualRollback {
    pub from: Option<String>,
    pub to: String,
    pub version: String,
}

/// Rolls `project` back to `to` (a release directory name or a version), or
/// to the newest other release on disk. Changes nothing on error.
pub fn manual_rollback(root: &Path, project: &str, to: Option<&str>) -> Result<ManualRollback, String> {
    let layout = ProjectLayout::new(root, project);
    if !layout.releases_dir().is_dir() {
        return Err(format!("no releases of project '{project}' under {}", layout.dir.display()));
    }
    let current = layout.current();
    let releases: Vec<(String, ReleaseMeta)> = layout
        .releases_newest_first()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|name| layout.release_meta(&name).map(|meta| (name, meta)))
        .collect();
    let current_name = current.as_ref().map(|(n, _)| n.clone());
    let target = match to {
        Some(wanted) => releases.iter().find(|(name, meta)| name == wanted || meta.version == wanted),
        None => releases.iter().find(|(name, _)| Some(name) != current_name.as_ref()),
    };
    let Some((name, meta)) = target else {
        let on_disk: Vec<String> = releases.iter().map(|(n, _)| n.clone()).collect();
        return Err(match to {
            Some(w) => format!("release '{w}' of '{project}' is not on this host; on disk: {}", on_disk.join(", ")),
            None => format!("no earlier release of '{project}' is on this host to roll back to"),
        });
    };
    if Some(name) == current_name.as_ref() {
        return Err(format!("'{project}' already runs {name}"));
    }
    layout.activate(name).map_err(|e| format!("switching current: {e}"))?;
    let now = ferry_domain::rfc3339_from_millis(crate::now_ms());
    let pin = Pin {
        release_name: name.clone(),
        against_desired_since: last_desired(&layout),
        at: now.clone(),
        reason: "manual rollback on the host".into(),
    };
    let pin_file = pin_path(&layout);
    if let Some(dir) = pin_file.parent() {
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    fs::write(&pin_file, serde_json::to_vec_pretty(&pin).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{}: {e}", pin_file.display()))?;
    let done = ManualRollback { from: current_name, to: name.clone(), version: meta.version.clone() };
    journal(
        root,
        &serde_json::json!({
            "at": now, "action": "manual_rollback", "project": project, "from": done.from, "to": done.to,
        }),
    );
    Ok(done)
}

/// Appends one JSON line to the host's journal of manual actions.
fn journal(root: &Path, entry: &serde_json::Value) {
    let path = root.join(".ferry").join("journal.log");
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{entry}");
    }
}
