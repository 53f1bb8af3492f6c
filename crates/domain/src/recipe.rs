//! `ferry.toml`: the recipe a repository carries at its root.
//!
//! The build reads `[build]` (R7: any toolchain, a build is a script). The
//! `[deploy]`, `[service]`, `[health]` and `[hooks]` sections belong to the
//! host side and travel with the release; they are accepted here as tables so
//! that one file serves both.

use std::collections::BTreeMap;
use std::time::Duration;

/// The whole file.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub build: Option<BuildRecipe>,
    pub deploy: Option<toml::Table>,
    pub service: Option<toml::Table>,
    pub health: Option<toml::Table>,
    pub hooks: Option<HooksRecipe>,
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
    /// Per hook; default 5 minutes.
    pub timeout: Option<String>,
}

/// The default for `[hooks] timeout`.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(5 * 60);

impl HooksRecipe {
    pub fn timeout(&self) -> Result<Duration, RecipeError> {
        match &self.timeout {
            None => Ok(DEFAULT_HOOK_TIMEOUT),
            Some(t) => humantime::parse_duration(t.trim())
                .map_err(|_| RecipeError::BadTimeout { key: "hooks.timeout", value: t.clone() }),
        }
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
    #[error("ferry.toml: build.env key '{0}' is not a valid environment variable name")]
    BadEnvName(String),
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
        for key in b.env.keys() {
            let ok = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(RecipeError::BadEnvName(key.clone()));
            }
        }
        Ok(b)
    }
}

impl BuildRecipe {
    pub fn timeout(&self) -> Result<Duration, RecipeError> {
        match &self.timeout {
            None => Ok(DEFAULT_BUILD_TIMEOUT),
            Some(t) => humantime::parse_duration(t.trim())
                .map_err(|_| RecipeError::BadTimeout { key: "build.timeout", value: t.clone() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            RecipeError::BadEnvName(_)
        ));
        let err = check("[build]\ncommand=\"x\"\nartifact=\"d\"\ntimeout=\"soon\"\n").to_string();
        assert!(err.contains("build.timeout") && err.contains("15m"), "{err}");
    }
}
