//! Settings of `ferry server` and `ferry agent` from a TOML file (`--config FILE`, `FERRY_CONFIG`), and
//! `--print-config`.
//!
//! A key is a long flag (`heartbeat-interval`; `heartbeat_interval` is the same key). Precedence: a flag on
//! the command line, then its `FERRY_*` variable, then the file, then the built-in default. The file is
//! applied by parsing twice: a lenient first pass finds the command, the file and where each setting came
//! from; every file key whose setting came from neither the command line nor the environment is appended
//! to the arguments as `--key=value`; the second pass is the real one, so clap checks the file's values
//! exactly as it checks flags (required settings, pairs such as --tls-cert/--tls-key).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::args::Cli;

/// The commands that read a config file.
const CONFIGURABLE: [&str; 2] = ["server", "agent"];

/// Arguments of those commands that are about the file or the invocation, not settings for a file.
const NOT_SETTINGS: [&str; 3] = ["config", "print_config", "help"];

/// The parsed command line, with the config file applied.
pub struct Parsed {
    pub cli: Cli,
    matches: ArgMatches,
    /// The settings (argument ids) whose value came from the config file.
    from_file: BTreeSet<String>,
}

/// One setting read from the file.
enum Value {
    Flag(bool),
    Text(String),
}

/// Parses the process's arguments with the command `command` makes (`Cli::command`, perhaps with more
/// help), like `Cli::parse`: a usage error exits with clap's message. Applies the config file of `ferry
/// server` / `ferry agent`; a config file that cannot be used is an error: the process must not start
/// with settings other than those the operator wrote.
pub fn parse(command: impl Fn() -> clap::Command) -> Result<Parsed> {
    parse_from(command, std::env::args_os().collect())
}

fn parse_from(command: impl Fn() -> clap::Command, mut argv: Vec<OsString>) -> Result<Parsed> {
    let mut from_file = BTreeSet::new();
    // The lenient pass: missing required settings may well be in the file. `--help` and other early
    // exits come back as errors here and are left to the real pass.
    if let Ok(first) = command().ignore_errors(true).try_get_matches_from(&argv)
        && let Some((name, sub)) = first.subcommand()
        && CONFIGURABLE.contains(&name)
        && sub.subcommand().is_none()
        && let Ok(Some(path)) = sub.try_get_one::<PathBuf>("config")
    {
        let mut cmd = command();
        cmd.build();
        let sc = cmd.find_subcommand(name).ok_or_else(|| anyhow!("no command {name}"))?;
        for (id, long, value) in load(path, name, sc)? {
            if matches!(sub.value_source(&id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
                continue;
            }
            match value {
                Value::Flag(true) => argv.push(format!("--{long}").into()),
                // Flags are off unless given.
                Value::Flag(false) => {}
                Value::Text(v) => argv.push(format!("--{long}={v}").into()),
            }
            from_file.insert(id);
        }
    }
    let matches = command().try_get_matches_from(&argv).unwrap_or_else(|e| e.exit());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok(Parsed { cli, matches, from_file })
}

/// Reads and checks the config file of `ferry NAME`: every key a setting of that command, every value
/// of the right type and valid for its flag. Returns (argument id, long flag, value) per key.
fn load(path: &Path, name: &str, cmd: &clap::Command) -> Result<Vec<(String, String, Value)>> {
    let shown = path.display();
    let mut file = std::fs::File::open(path).with_context(|| format!("config file {shown}: cannot open it"))?;
    let mut text = String::new();
    file.read_to_string(&mut text).with_context(|| format!("config file {shown}: cannot read it"))?;
    let table: toml::Table = text.parse().map_err(|e| anyhow!("config file {shown}: not valid TOML: {e}"))?;
    let mut settings: Vec<(String, String, Value)> = Vec::new();
    let mut secrets = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && !NOT_SETTINGS.contains(&a.get_id().as_str()))
            .ok_or_else(|| {
                let example = match name {
                    "server" => "heartbeat-interval",
                    _ => "check-interval",
                };
                anyhow!(
                    "config file {shown}: unknown key `{key}`: the keys are the long flags of `ferry {name}` \
                     (see `ferry {name} --help`), e.g. `{example}` or `{}`",
                    example.replace('-', "_")
                )
            })?;
        let id = arg.get_id().as_str().to_string();
        if settings.iter().any(|(i, _, _)| *i == id) {
            bail!("config file {shown}: key `{long}` is given twice (as `{long}` and as `{}`)", long.replace('-', "_"));
        }
        let value = match (arg.get_action(), value) {
            (ArgAction::SetTrue, toml::Value::Boolean(b)) => Value::Flag(*b),
            (ArgAction::SetTrue, other) => {
                bail!("config file {shown}: key `{key}`: expected true or false, found {}", kind(other))
            }
            (_, toml::Value::String(s)) => Value::Text(s.clone()),
            (_, toml::Value::Integer(i)) => Value::Text(i.to_string()),
            (_, other) => bail!("config file {shown}: key `{key}`: expected a string, found {}", kind(other)),
        };
        if let Value::Text(v) = &value {
            check_value(arg, &long, v).map_err(|e| anyhow!("config file {shown}: key `{key}`: {e}"))?;
        }
        if arg.is_hide_env_values_set() {
            secrets.push(long.clone());
        }
        settings.push((id, long, value));
    }
    // A secret (a join token, an SMTP password) in a file every local user can read is as good as
    // published on that host. Refused rather than warned about, as ssh does with a private key: a warning
    // goes to a log nobody reads while the secret stays readable. The fix is one chmod (640 keeps it
    // readable for the service's group), or the secret goes in the environment file instead.
    let mode =
        file.metadata().with_context(|| format!("config file {shown}: cannot read its mode"))?.permissions().mode();
    if !secrets.is_empty() && mode & 0o004 != 0 {
        bail!(
            "config file {shown} holds a secret ({}) and every user on this host can read it (mode {:o}): \
             `chmod o-r` it, or put the secret in the environment (FERRY_*) instead",
            secrets.join(", "),
            mode & 0o7777
        );
    }
    Ok(settings)
}

/// Runs the flag's own value parser on a value from the file, so a bad one is refused naming the file
/// and key rather than as if typed on the command line.
fn check_value(arg: &clap::Arg, long: &str, value: &str) -> Result<()> {
    let probe = clap::Command::new("ferry").no_binary_name(true).disable_help_flag(true).arg(
        // Only its name and value parser matter here: what it needs or excludes is checked later.
        arg.clone()
            .required(false)
            .requires(clap::builder::Resettable::<clap::Id>::Reset)
            .conflicts_with(clap::builder::Resettable::<clap::Id>::Reset)
            .overrides_with(clap::builder::Resettable::<clap::Id>::Reset)
            .group(clap::builder::Resettable::<clap::Id>::Reset)
            .env(None::<&'static str>)
            .default_value(None::<&'static str>)
            .global(false),
    );
    match probe.try_get_matches_from([format!("--{long}={value}")]) {
        Ok(_) => Ok(()),
        Err(e) => {
            // clap's message without its "error: " prefix and usage footer.
            let text = e.to_string();
            let message: Vec<&str> =
                text.lines().take_while(|l| !l.trim().is_empty()).map(|l| l.trim_start_matches("error: ")).collect();
            Err(anyhow!("{}", message.join(" ")))
        }
    }
}

fn kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

impl Parsed {
    /// With `--print-config`: the effective settings of `ferry server` / `ferry agent` as TOML that
    /// `--config` loads back, each line saying where its value came from. Secrets are left out (a
    /// comment says one is set), so the output can be pasted into a ticket.
    pub fn printed_config(&self) -> Result<Option<String>> {
        let Some((name, sub)) = self.matches.subcommand() else { return Ok(None) };
        if !CONFIGURABLE.contains(&name) || !sub.try_get_one::<bool>("print_config").ok().flatten().is_some_and(|b| *b)
        {
            return Ok(None);
        }
        let mut cmd = Cli::command();
        cmd.build();
        let sc = cmd.find_subcommand(name).ok_or_else(|| anyhow!("no command {name}"))?;
        let mut out = format!(
            "# ferry {name}: effective settings (precedence: flag > FERRY_* variable > config file > default)\n"
        );
        for arg in sc.get_arguments() {
            let id = arg.get_id().as_str();
            let Some(long) = arg.get_long() else { continue };
            if NOT_SETTINGS.contains(&id) {
                continue;
            }
            let source = if self.from_file.contains(id) {
                "config file".to_string()
            } else {
                match sub.value_source(id) {
                    Some(ValueSource::CommandLine) => "flag".to_string(),
                    Some(ValueSource::EnvVariable) => {
                        arg.get_env().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default()
                    }
                    Some(ValueSource::DefaultValue) => "default".to_string(),
                    _ => "not set".to_string(),
                }
            };
            if matches!(arg.get_action(), ArgAction::SetTrue) {
                let on = sub.get_flag(id);
                out.push_str(&format!("{long} = {on}  # {source}\n"));
                continue;
            }
            let Some(raw) = sub.get_raw(id).and_then(|mut v| v.next()) else {
                out.push_str(&format!("# {long}: not set\n"));
                continue;
            };
            if arg.is_hide_env_values_set() {
                out.push_str(&format!("# {long}: set ({source}), a secret: not printed\n"));
                continue;
            }
            let Some(raw) = raw.to_str() else {
                out.push_str(&format!("# {long}: set ({source}), not UTF-8: cannot be written as TOML\n"));
                continue;
            };
            // Numbers print as numbers; the file takes an integer wherever it takes a string.
            let value = match raw.parse::<i64>() {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => toml::Value::String(raw.to_string()),
            };
            out.push_str(&format!("{long} = {value}  # {source}\n"));
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Every flag of `ferry server` and `ferry agent` can be set from the environment, as FERRY_ + the
    /// long flag in upper snake case, and secrets never show their value in `--help`. A new flag without
    /// one fails here.
    #[test]
    fn every_server_and_agent_flag_has_its_ferry_variable() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut checked = 0;
        for name in CONFIGURABLE {
            let sc = cmd.find_subcommand(name).expect("command");
            for arg in sc.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                // Asking for help or for the settings to be printed is not a setting.
                if matches!(arg.get_id().as_str(), "help" | "print_config") {
                    continue;
                }
                let want = format!("FERRY_{}", long.replace('-', "_").to_uppercase());
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                assert_eq!(env.as_deref(), Some(want.as_str()), "`ferry {name} --{long}` needs env = \"{want}\"");
                let secret = ["token", "secret", "password", "smtp-url"].iter().any(|s| long.contains(s));
                assert_eq!(
                    arg.is_hide_env_values_set(),
                    secret,
                    "`ferry {name} --{long}`: hide_env_values must be set exactly for secrets"
                );
                checked += 1;
            }
        }
        assert!(checked > 20, "walked only {checked} flags");
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("ferry").chain(args.iter().copied()).map(OsString::from).collect()
    }

    #[test]
    fn file_values_fill_in_below_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "data = \"/srv/ferry\"\nheartbeat_interval = \"7s\"\nlisten = \"127.0.0.1:9\"\n")
            .unwrap();
        let p =
            parse_from(Cli::command, argv(&["server", "--config", file.to_str().unwrap(), "--listen", "127.0.0.1:8"]))
                .unwrap();
        let crate::args::Command::Server(s) = p.cli.command else { panic!("not server") };
        assert_eq!(s.data, PathBuf::from("/srv/ferry"));
        assert_eq!(s.heartbeat_interval, std::time::Duration::from_secs(7));
        assert_eq!(s.listen.to_string(), "127.0.0.1:8");
    }

    #[test]
    fn bad_files_are_refused_naming_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        let f = file.to_str().unwrap();
        let run = |text: &str| {
            std::fs::write(&file, text).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            parse_from(Cli::command, argv(&["agent", "--config", f]))
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default()
        };
        let e = run("colour = \"red\"\n");
        assert!(e.contains(f) && e.contains("unknown key `colour`"), "{e}");
        let e = run("check-interval = true\n");
        assert!(e.contains("key `check-interval`: expected a string, found a boolean"), "{e}");
        let e = run("check-interval = \"soon\"\n");
        assert!(e.contains("key `check-interval`: invalid value 'soon'"), "{e}");
        let e = run("allow-root-services = \"yes\"\n");
        assert!(e.contains("key `allow-root-services`: expected true or false"), "{e}");
        let e = run("name = \"a\"\nname = \"b\"\n");
        assert!(e.contains("not valid TOML"), "{e}");
        let e = run("root = \"/a\"\nroot_ = 1\n");
        assert!(e.contains("unknown key `root_`"), "{e}");
        let e = run("check-interval = \"1s\"\ncheck_interval = \"2s\"\n");
        assert!(e.contains("given twice"), "{e}");
        let e = run("print-config = true\n");
        assert!(e.contains("unknown key `print-config`"), "{e}");
        let e = parse_from(Cli::command, argv(&["agent", "--config", &format!("{f}.missing")])).err().unwrap();
        assert!(format!("{e:#}").contains("cannot open it"), "{e:#}");
    }

    #[test]
    fn a_secret_in_a_world_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, "join-token = \"s3cret\"\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = parse_from(Cli::command, argv(&["agent", "--config", file.to_str().unwrap()])).err().unwrap();
        let e = format!("{e:#}");
        assert!(e.contains("holds a secret (join-token)") && !e.contains("s3cret"), "{e}");
        // Readable by its group only: fine.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let args = ["agent", "--config", file.to_str().unwrap(), "--server", "http://x", "--name", "a", "--root", "/r"];
        let p = parse_from(Cli::command, argv(&args)).unwrap();
        let crate::args::Command::Agent(a) = p.cli.command else { panic!("not agent") };
        assert_eq!(a.join_token.as_deref(), Some("s3cret"));
    }
}
