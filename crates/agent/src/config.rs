//! What a release's `ferry.toml` and the project's variables come to on
//! this host: the environment hooks and the service see, the service to run
//! and as whom, the rendered templates (R17), the health probe.
//!
//! The variables the server last sent for a project are kept in
//! `<project>/.ferry/vars.json` (mode 0600), so that everything here can be
//! worked out from the disk alone: after an agent restart, or in a manual
//! rollback with the server unreachable (R33).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ferry_domain::{Manifest, Recipe, expand};
use ferry_proto::agent::DesiredRelease;

use crate::beneath::{Beneath, Links};
use crate::layout::ProjectLayout;
use crate::objects::ObjectStore;
use crate::supervisor::{DEFAULT_LOG_MAX_BYTES, LOG_DIR, RunAs, ServiceSpec};

/// How this agent runs services, from its command line.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceDefaults {
    /// When the agent runs as root: the user for services whose
    /// `ferry.toml` names none.
    pub service_user: Option<String>,
    /// The host's operator lets releases run their service as root when
    /// they ask (`[service] allow_root = true`). A release alone cannot:
    /// any developer can upload one.
    #[serde(default)]
    pub allow_root_services: bool,
}

impl ServiceDefaults {
    fn path(root: &Path) -> PathBuf {
        root.join(".ferry").join("service-defaults.json")
    }

    /// What the agent running with `root` was started with, for commands run
    /// on the host without it (a manual rollback restarting a service).
    pub fn load(root: &Path) -> ServiceDefaults {
        let Ok(bytes) = fs::read(Self::path(root)) else { return ServiceDefaults::default() };
        if let Ok(defaults) = serde_json::from_slice::<ServiceDefaults>(&bytes) {
            return defaults;
        }
        // Written by an older agent: the service user alone.
        let user = serde_json::from_slice::<Option<String>>(&bytes).ok().flatten();
        ServiceDefaults { service_user: user, allow_root_services: false }
    }

    pub fn save(&self, root: &Path) -> std::io::Result<()> {
        fs::create_dir_all(root.join(".ferry"))?;
        fs::write(Self::path(root), serde_json::to_vec(self).map_err(std::io::Error::other)?)
    }
}

/// The recipe of a release not yet assembled, read from the content store.
pub fn of_manifest(manifest: &Manifest, objects: &ObjectStore) -> Result<Recipe, String> {
    let Some((_, digest, _, executable)) = manifest.files().find(|f| f.0 == "ferry.toml") else {
        return Ok(empty());
    };
    let text = fs::read_to_string(objects.path_for(&digest, executable))
        .map_err(|e| format!("reading the release's ferry.toml: {e}"))?;
    parse(&text)
}

/// The recipe of an installed release (its `ferry.toml`, if any).
pub fn of_release(release_dir: &Path) -> Result<Recipe, String> {
    match fs::read_to_string(release_dir.join("ferry.toml")) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(empty()),
        Err(e) => Err(format!("reading the release's ferry.toml: {e}")),
    }
}

fn empty() -> Recipe {
    Recipe { build: None, deploy: None, service: None, health: None, hooks: None }
}

fn parse(text: &str) -> Result<Recipe, String> {
    let recipe = Recipe::parse(text).map_err(|e| format!("the release's {e}"))?;
    recipe.host_side().map_err(|e| format!("the release's {e}"))?;
    Ok(recipe)
}

/// The shared paths and template targets of a recipe: what the drift check
/// must not compare with the manifest.
pub fn host_owned_paths(recipe: &Recipe) -> (Vec<String>, Vec<String>) {
    let Some(d) = &recipe.deploy else { return (Vec::new(), Vec::new()) };
    let shared = d.shared_paths().unwrap_or_default();
    let rendered = d.template_paths().unwrap_or_default().into_iter().map(|(_, t)| t).collect();
    (shared, rendered)
}

fn vars_path(layout: &ProjectLayout) -> PathBuf {
    layout.dir.join(".ferry").join("vars.json")
}

/// Keeps the project's variables on the host (mode 0600: they may hold secrets).
pub fn save_vars(layout: &ProjectLayout, vars: &BTreeMap<String, String>) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = vars_path(layout);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let json = serde_json::to_vec(vars).map_err(|e| e.to_string())?;
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(&json).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The variables last received for the project.
pub fn load_vars(layout: &ProjectLayout) -> BTreeMap<String, String> {
    fs::read(vars_path(layout)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// The environment of hooks and the service: `FERRY_*` describing the
/// release, then the project's variables.
pub fn release_env(
    layout: &ProjectLayout,
    release: &ReleaseFacts<'_>,
    previous: Option<&str>,
    vars: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    let mut env = vec![
        ("FERRY_PROJECT".to_string(), release.project.to_string()),
        ("FERRY_ENV".into(), release.env.to_string()),
        ("FERRY_VERSION".into(), release.version.to_string()),
        ("FERRY_RELEASE".into(), release.name.to_string()),
        ("FERRY_RELEASE_DIR".into(), path(layout.release_dir(release.name))),
        ("FERRY_SHARED_DIR".into(), path(layout.shared_dir())),
        ("FERRY_CURRENT".into(), path(layout.current_link())),
        ("FERRY_PREVIOUS_RELEASE".into(), previous.unwrap_or_default().to_string()),
    ];
    env.extend(vars.iter().filter(|(k, _)| !k.starts_with("FERRY_")).map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// What `FERRY_*` tells about a release.
pub struct ReleaseFacts<'a> {
    pub project: &'a str,
    pub env: &'a str,
    pub version: &'a str,
    pub name: &'a str,
}

/// The environment for a release the server asked for.
pub fn desired_env(layout: &ProjectLayout, want: &DesiredRelease, previous: Option<&str>) -> Vec<(String, String)> {
    let facts =
        ReleaseFacts { project: &want.project, env: &want.env, version: &want.version, name: &want.release_name };
    release_env(layout, &facts, previous, &want.vars)
}

/// The environment for a release on disk, from its recorded metadata.
pub fn installed_env(
    layout: &ProjectLayout,
    project: &str,
    release: &str,
    previous: Option<&str>,
    vars: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let meta = layout.release_meta(release);
    let (env, version) = meta.as_ref().map_or(("", ""), |m| (m.env.as_str(), m.version.as_str()));
    release_env(layout, &ReleaseFacts { project, env, version, name: release }, previous, vars)
}

/// Expands `${VAR}` from an environment list.
pub fn expand_with(what: &str, text: &str, env: &[(String, String)]) -> Result<String, String> {
    expand(text, |name| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()))
        .map_err(|e| format!("{what}: {e}"))
}

/// Who the release's service and hooks run as (R34): `None` for the agent's
/// own user. A release without a service still runs its hooks as the
/// agent's `--service-user` when the agent is root.
pub fn run_as(recipe: &Recipe, defaults: &ServiceDefaults) -> Result<Option<RunAs>, String> {
    let agent_uid = nix::unistd::geteuid();
    let Some(service) = &recipe.service else {
        return match (&defaults.service_user, agent_uid.is_root()) {
            (Some(name), true) => lookup_user(name, false, false),
            _ => Ok(None),
        };
    };
    let wanted =
        service.user.clone().or_else(|| if agent_uid.is_root() { defaults.service_user.clone() } else { None });
    // Root needs both the release's request and the host's consent.
    let allow_root = service.allow_root && defaults.allow_root_services;
    let Some(name) = wanted else {
        if agent_uid.is_root() && !allow_root {
            return Err(root_refused(service.allow_root));
        }
        return Ok(None);
    };
    lookup_user(&name, allow_root, service.allow_root)
}

/// Why a service is not run as root, saying who can change that.
fn root_refused(release_asked: bool) -> String {
    if release_asked {
        "refusing to run the service as root: the release sets [service] allow_root = true, but this host's \
         agent does not allow root services (start it with --allow-root-services if every project's \
         releases on this host may run as root)"
            .into()
    } else {
        "refusing to run the service as root: set [service] user = \"NAME\" in ferry.toml, start the agent \
         with --service-user NAME, or set [service] allow_root = true (which the host's agent must allow \
         with --allow-root-services)"
            .into()
    }
}

/// `release_asked`: whether the release set `allow_root`, for the refusal.
fn lookup_user(name: &str, allow_root: bool, release_asked: bool) -> Result<Option<RunAs>, String> {
    let agent_uid = nix::unistd::geteuid();
    let user = nix::unistd::User::from_name(name)
        .map_err(|e| format!("looking up service user '{name}': {e}"))?
        .ok_or_else(|| format!("service user '{name}' does not exist on this host"))?;
    if user.uid.is_root() && !allow_root {
        return Err(root_refused(release_asked));
    }
    if user.uid == agent_uid {
        return Ok(None);
    }
    if !agent_uid.is_root() {
        return Err(format!(
            "the agent runs as uid {agent_uid} and cannot start a service as '{name}'; run the agent as root, \
             or remove [service] user"
        ));
    }
    Ok(Some(RunAs { name: name.to_string(), uid: user.uid.as_raw(), gid: user.gid.as_raw(), home: user.dir }))
}

/// The service of the project's active release, if it has one.
pub fn service_spec(root: &Path, project: &str, defaults: &ServiceDefaults) -> Result<Option<ServiceSpec>, String> {
    let layout = ProjectLayout::new(root, project);
    let Some((release, _)) = layout.current() else { return Ok(None) };
    let dir = layout.release_dir(&release);
    let recipe = of_release(&dir)?;
    let Some(service) = &recipe.service else { return Ok(None) };
    let mut env = installed_env(&layout, project, &release, None, &load_vars(&layout));
    let command = expand_with("[service] command", &service.command, &env)?;
    for (k, v) in &service.env {
        let value = expand_with(&format!("[service.env] {k}"), v, &env)?;
        env.push((k.clone(), value));
    }
    Ok(Some(ServiceSpec {
        project: project.to_string(),
        release,
        command,
        dir,
        env,
        run_as: run_as(&recipe, defaults)?,
        stop_signal: service.stop_signal().map_err(|e| e.to_string())?,
        stop_timeout: service.stop_timeout().map_err(|e| e.to_string())?,
        start_period: service.start_period().map_err(|e| e.to_string())?,
        restart: service.restart,
        log_dir: layout.shared_dir().join(LOG_DIR),
        log_max_bytes: service.log_max_bytes.unwrap_or(DEFAULT_LOG_MAX_BYTES),
    }))
}

/// Renders the release's `[deploy] templates` into the release directory:
/// `config/app.toml.tmpl` becomes `config/app.toml` (mode 0640, owned by the
/// service's user). Each file is written whole and renamed into place.
///
/// The release comes from a developer's upload, so both the template and
/// what it renders to are opened beneath the release directory: a link that
/// leads out (to `/etc/shadow`, or through a `shared/` link the service's
/// user controls) is refused, never read or written through.
pub fn render_templates(
    release_dir: &Path,
    recipe: &Recipe,
    env: &[(String, String)],
    owner: Option<&RunAs>,
) -> Result<(), String> {
    let Some(deploy) = &recipe.deploy else { return Ok(()) };
    let templates = deploy.template_paths().map_err(|e| e.to_string())?;
    if templates.is_empty() {
        return Ok(());
    }
    let release = Beneath::open(release_dir, Links::Inside).map_err(|e| e.to_string())?;
    for (template, target) in templates {
        let text = release
            .read(Path::new(&template))
            .map_err(|e| format!("template {template} (in [deploy] templates): {e}"))?;
        let text = String::from_utf8(text)
            .map_err(|_| format!("template {template} (in [deploy] templates) is not UTF-8 text"))?;
        let rendered = expand_with(&format!("template {template}"), &text, env)?;
        release
            .write_replace(Path::new(&target), rendered.as_bytes(), 0o640, owner.map(|u| (u.uid, u.gid)))
            .map_err(|e| format!("writing {target} from template {template}: {e}"))?;
    }
    Ok(())
}

/// Makes `shared/` and the release's shared paths belong to the service's
/// user, so that it (and the hooks, which run as it) can write its data
/// there. Only these entries: their contents are the service's own.
pub fn prepare_shared(layout: &ProjectLayout, recipe: &Recipe, owner: Option<&RunAs>) -> Result<(), String> {
    let shared_dir = layout.shared_dir();
    fs::create_dir_all(&shared_dir).map_err(|e| format!("{}: {e}", shared_dir.display()))?;
    let Some(u) = owner else { return Ok(()) };
    // `shared/` itself sits in the project directory, which only the agent
    // writes; what is inside belongs to the service's user, who may have
    // turned any of it into a link: changed without following one, and a
    // link is refused with an error naming it.
    std::os::unix::fs::lchown(&shared_dir, Some(u.uid), Some(u.gid))
        .map_err(|e| format!("{}: {e}", shared_dir.display()))?;
    let shared = Beneath::open(&shared_dir, Links::Refused).map_err(|e| e.to_string())?;
    let (paths, _) = host_owned_paths(recipe);
    for p in paths.iter().map(Path::new) {
        if shared.exists(p).map_err(|e| e.to_string())? {
            shared.chown(p, u.uid, u.gid).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
