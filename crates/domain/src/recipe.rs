//! `ferry.toml`: the recipe a repository carries at its root.
//!
//! The build reads `[build]` (R7: any toolchain, a build is a script). The
//! `[deploy]`, `[service]`, `[health]` and `[hooks]` sections belong to the
//! host side and travel with the release (its root holds a copy of the file);
//! [`Recipe::host_side`] checks them so that a mistake is refused when the
//! release is registered, not discovered on the hosts.

use std::collections::BTreeMap;
use std::time::Duration;

/// The whole file.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub build: Option<BuildRecipe>,
    pub deploy: Option<DeployRecipe>,
    pub service: Option<crate::ServiceRecipe>,
    pub health: Option<crate::HealthRecipe>,
    pub hooks: Option<HooksRecipe>,
}

/// `[deploy]`: how a release is laid out on each host.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRecipe {
    /// Paths kept in the project's `shared/` directory and linked into every
    /// release, so their data survives releases (R15): `["log", "uploads",
    /// "config/local.yml"]`. A path the release also ships is replaced by the
    /// link.
    #[serde(default)]
    pub shared: Vec<String>,
    /// Template files of the release, each ending in `.tmpl`, rendered on the
    /// host with the project's variables into the same path without `.tmpl`
    /// (R17): `["config/app.toml.tmpl"]`.
    #[serde(default)]
    pub templates: Vec<String>,
}

impl DeployRecipe {
    /// The shared paths, each checked to be a relative path inside the release.
    pub fn shared_paths(&self) -> Result<Vec<String>, RecipeError> {
        let mut out: Vec<String> = Vec::new();
        for raw in &self.shared {
            let path = raw.trim_end_matches('/').to_string();
            crate::manifest::validate_path(&path).map_err(|e| RecipeError::BadPath {
                key: "deploy.shared",
                value: raw.clone(),
                reason: e.to_string(),
            })?;
            if path == ".ferry" || path.starts_with(".ferry/") {
                return Err(RecipeError::BadPath {
                    key: "deploy.shared",
                    value: raw.clone(),
                    reason: ".ferry is reserved".into(),
                });
            }
            if let Some(other) = out.iter().find(|o| nested(o, &path)) {
                return Err(RecipeError::BadPath {
                    key: "deploy.shared",
                    value: raw.clone(),
                    reason: format!("overlaps '{other}'"),
                });
            }
            out.push(path);
        }
        Ok(out)
    }

    /// The templates, each as (template path, rendered path).
    pub fn template_paths(&self) -> Result<Vec<(String, String)>, RecipeError> {
        let mut out = Vec::new();
        for raw in &self.templates {
            let bad = |reason: String| RecipeError::BadPath { key: "deploy.templates", value: raw.clone(), reason };
            crate::manifest::validate_path(raw).map_err(|e| bad(e.to_string()))?;
            let target = raw.strip_suffix(".tmpl").filter(|t| !t.is_empty() && !t.ends_with('/'));
            let target = target.ok_or_else(|| bad("a template's name must end in .tmpl".into()))?;
            out.push((raw.clone(), target.to_string()));
        }
        Ok(out)
    }
}

impl DeployRecipe {
    /// Checks the templates against the release they ship in: each must be a
    /// file of the release, and neither it nor what it renders to may be a
    /// link, lie below one, or lie in a shared path. The host reads and
    /// writes these as root; a path that leads through a link could lead
    /// into `shared/`, which the service's user controls.
    pub fn check_templates(&self, manifest: &crate::Manifest) -> Result<(), RecipeError> {
        use crate::EntryKind;
        let kinds: std::collections::HashMap<&str, &EntryKind> =
            manifest.entries.iter().map(|e| (e.path.as_str(), &e.kind)).collect();
        let shared = self.shared_paths()?;
        for (template, target) in self.template_paths()? {
            let bad =
                |reason: String| RecipeError::BadPath { key: "deploy.templates", value: template.clone(), reason };
            if !matches!(kinds.get(template.as_str()), Some(EntryKind::File { .. })) {
                return Err(bad("the release has no such file".into()));
            }
            if let Some(s) = shared.iter().find(|s| nested(s, &template) || nested(s, &target)) {
                return Err(bad(format!("lies in the shared path '{s}'")));
            }
            if matches!(kinds.get(target.as_str()), Some(EntryKind::Symlink { .. } | EntryKind::Dir)) {
                return Err(bad(format!("it renders to '{target}', which the release ships as a link or directory")));
            }
            let mut at = target.as_str();
            while let Some((parent, _)) = at.rsplit_once('/') {
                if !matches!(kinds.get(parent), None | Some(EntryKind::Dir)) {
                    return Err(bad(format!("it renders below '{parent}', which is not a directory of the release")));
                }
                at = parent;
            }
        }
        Ok(())
    }
}

/// One of the two paths lies inside the other (or they are equal).
fn nested(a: &str, b: &str) -> bool {
    a == b || b.starts_with(&format!("{a}/")) || a.starts_with(&format!("{b}/"))
}

/// `[hooks]`: commands run on each host around activation (R18), with
/// `sh -c`, in the order listed here. Any failure fails the host; a failure
/// after the switch puts the host back on its previous release.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksRecipe {
    /// Before the release's tree is assembled; runs in the project directory.
    pub before_install: Option<String>,
    /// After the tree is assembled, in the new release's directory.
    pub after_install: Option<String>,
    /// Just before `current` switches to the new release.
    pub before_activate: Option<String>,
    /// Just after the switch (restart services, clear caches ...).
    pub after_activate: Option<String>,
    /// Last: the host counts as deployed only if this passes.
    pub validate: Option<String>,
    /// Before `current` moves back to an older release still on the host (a
    /// rollback, or a host put back after a failed deploy). Taken from the
    /// older release's own `ferry.toml` and run in its directory.
    pub before_rollback: Option<String>,
    /// After `current` moved back, likewise.
    pub after_rollback: Option<String>,
    /// Per hook; default 5 minutes.
    pub timeout: Option<String>,
}

/// The hooks, in the order an install runs them (the rollback pair runs
/// only when moving back to an older release).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    BeforeInstall,
    AfterInstall,
    BeforeRollback,
    BeforeActivate,
    AfterActivate,
    AfterRollback,
    Validate,
}

impl Hook {
    /// The key in `[hooks]`.
    pub fn name(self) -> &'static str {
        match self {
            Hook::BeforeInstall => "before_install",
            Hook::AfterInstall => "after_install",
            Hook::BeforeRollback => "before_rollback",
            Hook::BeforeActivate => "before_activate",
            Hook::AfterActivate => "after_activate",
            Hook::AfterRollback => "after_rollback",
            Hook::Validate => "validate",
        }
    }
}

impl HooksRecipe {
    /// The command of a hook, if the release sets a non-empty one.
    pub fn command(&self, hook: Hook) -> Option<&str> {
        let command = match hook {
            Hook::BeforeInstall => &self.before_install,
            Hook::AfterInstall => &self.after_install,
            Hook::BeforeRollback => &self.before_rollback,
            Hook::BeforeActivate => &self.before_activate,
            Hook::AfterActivate => &self.after_activate,
            Hook::AfterRollback => &self.after_rollback,
            Hook::Validate => &self.validate,
        };
        command.as_deref().filter(|c| !c.trim().is_empty())
    }
}

/// The default for `[hooks] timeout`.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(5 * 60);

impl HooksRecipe {
    pub fn timeout(&self) -> Result<Duration, RecipeError> {
        duration("hooks.timeout", &self.timeout, DEFAULT_HOOK_TIMEOUT)
    }
}

/// `[build]`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRecipe {
    /// Run with `sh -c` in the checkout.
    pub command: String,
    /// Directory, relative to the checkout, that becomes the release.
    pub artifact: String,
    /// e.g. "15m"; default 30 minutes.
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// The default for `[build] timeout`.
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Why a `ferry.toml` was refused. Messages name the file and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipeError {
    #[error("ferry.toml not found at the root of commit {0}; add one with a [build] section (command, artifact)")]
    Missing(String),
    #[error("ferry.toml: {0}")]
    Syntax(String),
    #[error("ferry.toml: no [build] section; add `[build]` with `command = \"...\"` and `artifact = \"dir\"`")]
    NoBuild,
    #[error("ferry.toml: build.command must not be empty")]
    EmptyCommand,
    #[error("ferry.toml: build.artifact = '{value}' must be a relative path inside the repository ({reason})")]
    BadArtifact { value: String, reason: String },
    #[error("ferry.toml: {key} = '{value}' is not a duration such as \"90s\", \"15m\" or \"1h\"")]
    BadTimeout { key: &'static str, value: String },
    #[error("ferry.toml: {key} key '{name}' is not a valid environment variable name")]
    BadEnvName { key: &'static str, name: String },
    #[error("ferry.toml: {key} = '{value}' must be a relative path inside the release ({reason})")]
    BadPath { key: &'static str, value: String, reason: String },
    #[error("ferry.toml: {key} = '{value}': {reason}")]
    BadValue { key: &'static str, value: String, reason: String },
    #[error("ferry.toml: {0} must not be empty")]
    Empty(&'static str),
}

/// A valid environment variable name: a letter or `_`, then letters, digits, `_`.
pub fn is_env_name(key: &str) -> bool {
    key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a duration such as "90s" for the key named.
pub(crate) fn duration(key: &'static str, value: &Option<String>, default: Duration) -> Result<Duration, RecipeError> {
    match value {
        None => Ok(default),
        Some(t) => humantime::parse_duration(t.trim()).map_err(|_| RecipeError::BadTimeout { key, value: t.clone() }),
    }
}

impl Recipe {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Recipe, RecipeError> {
        toml::from_str(text).map_err(|e| RecipeError::Syntax(e.to_string().trim().to_string()))
    }

    /// The `[build]` section, checked.
    pub fn build(&self) -> Result<&BuildRecipe, RecipeError> {
        let b = self.build.as_ref().ok_or(RecipeError::NoBuild)?;
        if b.command.trim().is_empty() {
            return Err(RecipeError::EmptyCommand);
        }
        let artifact = b.artifact.trim_end_matches('/');
        if artifact != "." {
            crate::manifest::validate_path(artifact)
                .map_err(|e| RecipeError::BadArtifact { value: b.artifact.clone(), reason: e.to_string() })?;
        }
        b.timeout()?;
        if let Some(key) = b.env.keys().find(|k| !is_env_name(k)) {
            return Err(RecipeError::BadEnvName { key: "build.env", name: key.clone() });
        }
        Ok(b)
    }

    /// Checks the sections the hosts act on: `[deploy]`, `[service]`,
    /// `[health]`, `[hooks]`.
    pub fn host_side(&self) -> Result<(), RecipeError> {
        if let Some(d) = &self.deploy {
            d.shared_paths()?;
            d.template_paths()?;
        }
        if let Some(s) = &self.service {
            s.check()?;
        }
        if let Some(h) = &self.health {
            h.check()?;
        }
        if let Some(h) = &self.hooks {
            h.timeout()?;
        }
        Ok(())
    }
}

impl BuildRecipe {
    pub fn timeout(&self) -> Result<Duration, RecipeError> {
        duration("build.timeout", &self.timeout, DEFAULT_BUILD_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_must_be_plain_files_of_the_release_away_from_links_and_shared_paths() {
        use crate::{Digest, Entry, EntryKind, Manifest};
        let file = |p: &str| Entry {
            path: p.into(),
            kind: EntryKind::File { digest: Digest([1; 32]), size: 1, executable: false },
        };
        let link = |p: &str, t: &str| Entry { path: p.into(), kind: EntryKind::Symlink { target: t.into() } };
        let deploy = |shared: &[&str], templates: &[&str]| DeployRecipe {
            shared: shared.iter().map(|s| s.to_string()).collect(),
            templates: templates.iter().map(|s| s.to_string()).collect(),
        };
        let m = Manifest::new(vec![file("conf/app.tmpl"), link("t", "data"), link("out", "conf"), file("x.tmpl")]);
        assert_eq!(deploy(&[], &["conf/app.tmpl"]).check_templates(&m), Ok(()));
        let refused = [
            (deploy(&["data"], &["t/app.conf.tmpl"]), "no such file"),
            (deploy(&["conf"], &["conf/app.tmpl"]), "shared path"),
            (deploy(&[], &["missing.tmpl"]), "no such file"),
        ];
        for (d, why) in refused {
            let err = d.check_templates(&m).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
        let m = Manifest::new(vec![file("x.tmpl"), link("x", "/etc/shadow"), file("out/y.tmpl"), link("out", "conf")]);
        assert!(deploy(&[], &["x.tmpl"]).check_templates(&m).unwrap_err().to_string().contains("link"));
    }

    #[test]
    fn the_documented_form_parses() {
        let r = Recipe::parse(
            r#"
            [build]
            command = "./build.sh"
            artifact = "dist"
            timeout = "15m"
            [build.env]
            PROFILE = "release"
            [service]
            command = "./bin/app"
            [hooks]
            after_activate = "./bin/restart"
            timeout = "30s"
            "#,
        )
        .unwrap();
        let b = r.build().unwrap();
        assert_eq!(b.command, "./build.sh");
        assert_eq!(b.timeout().unwrap(), Duration::from_secs(900));
        assert_eq!(b.env["PROFILE"], "release");
        assert!(r.service.is_some());
        let hooks = r.hooks.unwrap();
        assert_eq!(hooks.after_activate.as_deref(), Some("./bin/restart"));
        assert_eq!(hooks.timeout().unwrap(), Duration::from_secs(30));
        let err = Recipe::parse("[hooks]\nafter_activte = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("after_activte"), "{err}");
    }

    #[test]
    fn errors_name_the_key_and_what_was_expected() {
        let cases = [
            ("[build]\nartifact = \"dist\"\n", "command"),
            ("[build]\ncommand = 3\nartifact = \"d\"\n", "command"),
            ("[build]\ncommand = \"x\"\nartifact = \"d\"\ncomand = \"y\"\n", "comand"),
            ("[biuld]\n", "biuld"),
            ("[build\n", "ferry.toml"),
        ];
        for (text, key) in cases {
            let err = Recipe::parse(text).unwrap_err().to_string();
            assert!(err.starts_with("ferry.toml: ") && err.contains(key), "{text:?}: {err}");
        }
        let check = |text: &str| Recipe::parse(text).unwrap().build().map(|_| ()).unwrap_err();
        assert_eq!(check("[deploy]\n"), RecipeError::NoBuild);
        assert!(matches!(check("[build]\ncommand=\"x\"\nartifact=\"../up\"\n"), RecipeError::BadArtifact { .. }));
        assert!(matches!(check("[build]\ncommand=\"x\"\nartifact=\"/abs\"\n"), RecipeError::BadArtifact { .. }));
        assert!(matches!(
            check("[build]\ncommand=\"x\"\nartifact=\"d\"\ntimeout=\"soon\"\n"),
            RecipeError::BadTimeout { .. }
        ));
        assert_eq!(check("[build]\ncommand=\" \"\nartifact=\"d\"\n"), RecipeError::EmptyCommand);
        assert!(matches!(
            check("[build]\ncommand=\"x\"\nartifact=\"d\"\n[build.env]\n\"A-B\"=\"1\"\n"),
            RecipeError::BadEnvName { .. }
        ));
        let err = check("[build]\ncommand=\"x\"\nartifact=\"d\"\ntimeout=\"soon\"\n").to_string();
        assert!(err.contains("build.timeout") && err.contains("15m"), "{err}");
    }

    #[test]
    fn the_smallest_host_side_forms_parse() {
        let r = Recipe::parse(
            r#"
            [deploy]
            shared = ["log", "uploads/", "config/local.yml"]
            templates = ["config/app.toml.tmpl"]
            [service]
            command = "./bin/app --port ${PORT}"
            [health]
            http = "http://127.0.0.1:${PORT}/health"
            "#,
        )
        .unwrap();
        r.host_side().unwrap();
        let d = r.deploy.unwrap();
        assert_eq!(d.shared_paths().unwrap(), ["log", "uploads", "config/local.yml"]);
        assert_eq!(d.template_paths().unwrap(), [("config/app.toml.tmpl".to_string(), "config/app.toml".to_string())]);
    }

    #[test]
    fn bad_deploy_paths_name_the_key() {
        let cases = [
            ("[deploy]\nshared = [\"../etc\"]\n", "deploy.shared"),
            ("[deploy]\nshared = [\"/var/log\"]\n", "deploy.shared"),
            ("[deploy]\nshared = [\"log\", \"log/app\"]\n", "overlaps 'log'"),
            ("[deploy]\nshared = [\".ferry\"]\n", "reserved"),
            ("[deploy]\ntemplates = [\"config/app.toml\"]\n", ".tmpl"),
            ("[deploy]\ntemplates = [\".tmpl\"]\n", ".tmpl"),
            ("[deploy]\ntemplates = [\"../x.tmpl\"]\n", "deploy.templates"),
            ("[hooks]\ntimeout = \"later\"\n", "hooks.timeout"),
        ];
        for (text, want) in cases {
            let err = Recipe::parse(text).unwrap().host_side().unwrap_err().to_string();
            assert!(err.starts_with("ferry.toml: ") && err.contains(want), "{text:?}: {err}");
        }
    }
}
