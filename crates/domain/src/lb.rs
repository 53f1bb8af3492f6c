//! Load balancers in front of an environment (R14): a host leaves the
//! balancer before it is touched and returns once its health check passed.
//!
//! The balancer is driven by the agent on the load-balancer hosts (ordinary
//! Ferry hosts, chosen by a tag selector), never by the server. This module
//! holds the rules both sides share: what a valid configuration is, and how a
//! backend host's address in the balancer is worked out from the
//! `--backend` template.
//!
//! Addresses end up inside a configuration file (nginx) or a command line
//! (HAProxy's runtime API), and come partly from variables any project member
//! can set; so they are held to a strict character set that cannot end a
//! directive or start a new one.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::selector::{Selector, SelectorError};
use crate::template::{TemplateError, expand};

/// What `nginx` runs after the upstream file changed, unless told otherwise.
pub const DEFAULT_NGINX_RELOAD: &str = "nginx -s reload";
/// The backend address when `--backend` is not given: the host's address.
pub const DEFAULT_BACKEND: &str = "${FERRY_HOST_ADDRESS}";
/// The host name of a backend host, in `--backend` templates and to `command` drivers.
pub const HOST_VAR: &str = "FERRY_HOST";
/// The address of a backend host (its agent's `--address`, or the address the
/// server sees it connect from), in `--backend` templates.
pub const HOST_ADDRESS_VAR: &str = "FERRY_HOST_ADDRESS";
/// The longest backend address accepted.
const MAX_ADDRESS: usize = 255;

/// How the balancer is driven on the load-balancer hosts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LbDriver {
    /// The agent owns one file holding `upstream NAME { ... }`, writes it
    /// whole, and runs `reload` when its content changed.
    Nginx { upstream: String, file: String, reload: String },
    /// `set server BACKEND/HOST state drain|ready` over HAProxy's stats
    /// socket; the servers are named after the Ferry hosts.
    Haproxy { socket: String, backend: String },
    /// Anything else: `drain` and `ready` run for each backend host whose
    /// state changed.
    Command { drain: String, ready: String },
}

/// Every option a driver takes, by driver: `(option, what it is, default)`.
const NGINX_OPTIONS: &[(&str, &str, Option<&str>)] = &[
    ("upstream", "the name of the upstream block", None),
    ("file", "the upstream file the agent writes, a .conf file included by nginx", None),
    ("reload", "the command that reloads nginx", Some(DEFAULT_NGINX_RELOAD)),
];
const HAPROXY_OPTIONS: &[(&str, &str, Option<&str>)] = &[
    ("socket", "the path of HAProxy's stats socket, at level admin", None),
    ("haproxy-backend", "the HAProxy backend whose servers are named after the Ferry hosts", None),
];
const COMMAND_OPTIONS: &[(&str, &str, Option<&str>)] = &[
    ("drain", "the command that takes $FERRY_LB_HOST out of the balancer", None),
    ("ready", "the command that puts $FERRY_LB_HOST back", None),
];

/// The driver names, as `--driver` takes them.
pub const DRIVERS: &[&str] = &["nginx", "haproxy", "command"];

/// Why a load-balancer configuration or a backend address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LbError {
    #[error("unknown load-balancer driver '{0}': use nginx, haproxy or command")]
    UnknownDriver(String),
    #[error("--select: {0}")]
    Select(SelectorError),
    #[error("the {driver} driver needs --{option} ({what})")]
    Missing { driver: &'static str, option: &'static str, what: &'static str },
    #[error("--{option} does not apply to the {driver} driver, which takes {takes}")]
    NotForDriver { driver: &'static str, option: String, takes: String },
    #[error("--{option} '{value}': {why}")]
    BadOption { option: &'static str, value: String, why: &'static str },
    #[error("--backend '{template}': {error}")]
    Template { template: String, error: TemplateError },
    #[error(
        "'{0}' is not a backend address: write host:port, [ipv6]:port or unix:/path, with letters, digits and \
         '.', '-', '_', ':', '[', ']', '/' only"
    )]
    BadAddress(String),
}

impl LbDriver {
    /// `nginx`, `haproxy` or `command`.
    pub fn name(&self) -> &'static str {
        match self {
            LbDriver::Nginx { .. } => "nginx",
            LbDriver::Haproxy { .. } => "haproxy",
            LbDriver::Command { .. } => "command",
        }
    }

    /// The driver `driver` with `options` (option name to value, as the
    /// command line's flags name them), checked: every option it needs is
    /// there, none it does not take is, and each value is usable.
    pub fn from_options(driver: &str, options: &BTreeMap<String, String>) -> Result<LbDriver, LbError> {
        let (name, known): (&'static str, _) = match driver.trim() {
            "nginx" => ("nginx", NGINX_OPTIONS),
            "haproxy" => ("haproxy", HAPROXY_OPTIONS),
            "command" => ("command", COMMAND_OPTIONS),
            other => return Err(LbError::UnknownDriver(other.to_string())),
        };
        if let Some(option) = options.keys().find(|k| !known.iter().any(|(o, ..)| o == k)) {
            let takes = known.iter().map(|(o, ..)| format!("--{o}")).collect::<Vec<_>>().join(", ");
            return Err(LbError::NotForDriver { driver: name, option: option.clone(), takes });
        }
        let get = |option: &'static str| -> Result<String, LbError> {
            let (_, what, default) = known.iter().find(|(o, ..)| *o == option).copied().unwrap_or((option, "", None));
            match options.get(option).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                Some(v) => Ok(v.to_string()),
                None => default.map(str::to_string).ok_or(LbError::Missing { driver: name, option, what }),
            }
        };
        let driver = match name {
            "nginx" => LbDriver::Nginx { upstream: get("upstream")?, file: get("file")?, reload: get("reload")? },
            "haproxy" => LbDriver::Haproxy { socket: get("socket")?, backend: get("haproxy-backend")? },
            _ => LbDriver::Command { drain: get("drain")?, ready: get("ready")? },
        };
        driver.validate()?;
        Ok(driver)
    }

    /// The options that make this driver, as [`from_options`](Self::from_options) takes them.
    pub fn options(&self) -> BTreeMap<String, String> {
        let pairs: Vec<(&str, &String)> = match self {
            LbDriver::Nginx { upstream, file, reload } => {
                vec![("upstream", upstream), ("file", file), ("reload", reload)]
            }
            LbDriver::Haproxy { socket, backend } => vec![("socket", socket), ("haproxy-backend", backend)],
            LbDriver::Command { drain, ready } => vec![("drain", drain), ("ready", ready)],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    /// Checks every value, as received from the server too: an agent writes
    /// files and runs commands from them.
    pub fn validate(&self) -> Result<(), LbError> {
        match self {
            LbDriver::Nginx { upstream, file, reload } => {
                token("upstream", upstream)?;
                // The agent writes this path whole, typically as root: keep
                // it to what nginx includes, not any file of the host.
                path("file", file)?;
                if !file.ends_with(".conf") || file.ends_with("/.conf") {
                    return Err(bad(
                        "file",
                        file,
                        "name a .conf file that nginx includes, e.g. /etc/nginx/conf.d/app-upstream.conf",
                    ));
                }
                command("reload", reload)
            }
            LbDriver::Haproxy { socket, backend } => {
                path("socket", socket)?;
                token("haproxy-backend", backend)
            }
            LbDriver::Command { drain, ready } => {
                command("drain", drain)?;
                command("ready", ready)
            }
        }
    }
}

fn bad(option: &'static str, value: &str, why: &'static str) -> LbError {
    LbError::BadOption { option, value: value.to_string(), why }
}

/// An nginx upstream or HAProxy backend name.
fn token(option: &'static str, value: &str) -> Result<(), LbError> {
    let ok = value.len() <= 128 && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(bad(option, value, "use letters, digits, '-', '_' and '.' only")) }
}

fn path(option: &'static str, value: &str) -> Result<(), LbError> {
    if !value.starts_with('/') {
        return Err(bad(option, value, "give an absolute path"));
    }
    if value.split('/').any(|part| part == "..") || value.chars().any(|c| c.is_control()) {
        return Err(bad(option, value, "no '..' and no control characters"));
    }
    Ok(())
}

fn command(option: &'static str, value: &str) -> Result<(), LbError> {
    if value.contains('\0') {
        return Err(bad(option, value, "a command cannot contain a NUL byte"));
    }
    Ok(())
}

/// An environment's load balancer: how it is driven, which hosts run it,
/// and how a backend host's address is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbConfig {
    pub driver: LbDriver,
    /// The load-balancer hosts.
    pub select: Selector,
    /// A `${VAR}` template, expanded per backend host (see [`backend_address`]).
    pub backend: String,
}

impl LbConfig {
    /// Checks a configuration as the command line gives it; `backend`
    /// defaults to [`DEFAULT_BACKEND`].
    pub fn new(
        driver: &str,
        select: &str,
        backend: Option<&str>,
        options: &BTreeMap<String, String>,
    ) -> Result<LbConfig, LbError> {
        let select = Selector::parse(select).map_err(LbError::Select)?;
        let driver = LbDriver::from_options(driver, options)?;
        let backend = backend.map(str::trim).filter(|b| !b.is_empty()).unwrap_or(DEFAULT_BACKEND).to_string();
        check_template(&backend)?;
        Ok(LbConfig { driver, select, backend })
    }
}

/// Checks a `--backend` template without any host: its `${...}` are well
/// formed, and its literal text is allowed in an address.
pub fn check_template(template: &str) -> Result<(), LbError> {
    let sample =
        expand(template, |_| Some("0")).map_err(|error| LbError::Template { template: template.to_string(), error })?;
    if validate_address(&sample).is_err() {
        return Err(bad(
            "backend",
            template,
            "outside ${...} only letters, digits and '.', '-', '_', ':', '[', ']', '/' may appear",
        ));
    }
    Ok(())
}

/// The address of backend `host` in the balancer: `template` expanded with
/// `FERRY_HOST`, `FERRY_HOST_ADDRESS` and then `vars` (the project's
/// variables as that host sees them in the environment), and checked.
pub fn backend_address<'a>(
    template: &str,
    host: &'a str,
    host_address: Option<&'a str>,
    vars: impl Fn(&str) -> Option<&'a str>,
) -> Result<String, LbError> {
    let address = expand(template, |name| match name {
        HOST_VAR => Some(host),
        HOST_ADDRESS_VAR => host_address,
        other => vars(other),
    })
    .map_err(|error| LbError::Template { template: template.to_string(), error })?;
    validate_address(&address)?;
    Ok(address)
}

/// Checks an address as it will appear in the balancer's configuration.
pub fn validate_address(address: &str) -> Result<(), LbError> {
    let ok = !address.is_empty()
        && address.len() <= MAX_ADDRESS
        && address.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']' | '/'));
    if ok { Ok(()) } else { Err(LbError::BadAddress(address.to_string())) }
}

/// How an IP address is written as `FERRY_HOST_ADDRESS`: IPv6 in brackets,
/// so that `${FERRY_HOST_ADDRESS}:${PORT}` is a valid address either way;
/// an IPv4 address seen through an IPv6 socket as plain IPv4.
pub fn host_address(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Checks an address an agent announces with `--address`: a host name or
/// an IP address (IPv6 with or without brackets). Returns it as
/// `FERRY_HOST_ADDRESS` holds it.
pub fn parse_host_address(text: &str) -> Result<String, LbError> {
    let text = text.trim();
    let inner = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    if let Ok(ip) = inner.parse::<IpAddr>() {
        return Ok(host_address(ip));
    }
    let hostname = !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if hostname { Ok(text.to_string()) } else { Err(LbError::BadAddress(text.to_string())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn nginx() -> BTreeMap<String, String> {
        opts(&[("upstream", "app"), ("file", "/etc/nginx/conf.d/app.conf")])
    }

    #[test]
    fn a_valid_configuration_per_driver() {
        let c = LbConfig::new("nginx", "role=lb", Some("${FERRY_HOST_ADDRESS}:${PORT}"), &nginx()).unwrap();
        assert_eq!(
            c.driver,
            LbDriver::Nginx {
                upstream: "app".into(),
                file: "/etc/nginx/conf.d/app.conf".into(),
                reload: DEFAULT_NGINX_RELOAD.into()
            }
        );
        assert_eq!(c.select.to_string(), "role=lb");
        assert_eq!(LbDriver::from_options("nginx", &c.driver.options()).unwrap(), c.driver, "options round-trip");

        let h = LbConfig::new(
            "haproxy",
            "role=lb",
            None,
            &opts(&[("socket", "/run/haproxy/admin.sock"), ("haproxy-backend", "web")]),
        )
        .unwrap();
        assert_eq!(h.backend, DEFAULT_BACKEND);
        assert_eq!(h.driver.name(), "haproxy");
        let cmd = LbConfig::new(
            "command",
            "role=lb",
            None,
            &opts(&[("drain", "lbctl off $FERRY_LB_HOST"), ("ready", "lbctl on $FERRY_LB_HOST")]),
        )
        .unwrap();
        assert_eq!(LbDriver::from_options("command", &cmd.driver.options()).unwrap(), cmd.driver);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let e = |driver: &str, select: &str, backend: Option<&str>, o: BTreeMap<String, String>| {
            LbConfig::new(driver, select, backend, &o).unwrap_err().to_string()
        };
        assert!(e("f5", "role=lb", None, nginx()).contains("unknown load-balancer driver 'f5'"));
        assert!(e("nginx", "role", None, nginx()).starts_with("--select: 'role' is not of the form key=value"));
        assert!(e("nginx", "", None, nginx()).starts_with("--select:"));
        let missing = e("nginx", "role=lb", None, opts(&[("upstream", "app")]));
        assert!(missing.contains("the nginx driver needs --file"), "{missing}");
        let foreign =
            e("nginx", "role=lb", None, opts(&[("upstream", "app"), ("file", "/x/a.conf"), ("socket", "/s")]));
        assert!(
            foreign.contains("--socket does not apply to the nginx driver, which takes --upstream, --file, --reload"),
            "{foreign}"
        );
        assert!(e("haproxy", "role=lb", None, opts(&[("socket", "/s")])).contains("needs --haproxy-backend"));
        assert!(e("command", "role=lb", None, opts(&[("drain", "x")])).contains("needs --ready"));
        assert!(
            e("nginx", "role=lb", None, opts(&[("upstream", "app x"), ("file", "/x/a.conf")]))
                .contains("--upstream 'app x'")
        );
        assert!(
            e("nginx", "role=lb", None, opts(&[("upstream", "app;"), ("file", "/x/a.conf")])).contains("--upstream")
        );
        assert!(
            e("nginx", "role=lb", None, opts(&[("upstream", "app"), ("file", "conf.d/a.conf")]))
                .contains("absolute path")
        );
        assert!(
            e("nginx", "role=lb", None, opts(&[("upstream", "app"), ("file", "/etc/passwd")])).contains(".conf file")
        );
        assert!(e("nginx", "role=lb", None, opts(&[("upstream", "app"), ("file", "/etc/../x.conf")])).contains("'..'"));
        assert!(
            e("haproxy", "role=lb", None, opts(&[("socket", "run/h.sock"), ("haproxy-backend", "b")]))
                .contains("absolute")
        );
        let template = e("nginx", "role=lb", Some("${FERRY_HOST_ADDRESS:${PORT}"), nginx());
        assert!(template.starts_with("--backend '${FERRY_HOST_ADDRESS:${PORT}'"), "{template}");
        let literal = e("nginx", "role=lb", Some("${FERRY_HOST_ADDRESS}:80; server evil"), nginx());
        assert!(literal.contains("--backend") && literal.contains("only letters"), "{literal}");
    }

    #[test]
    fn backend_addresses_expand_per_host() {
        let vars = |name: &str| match name {
            "PORT" => Some("8081"),
            "EVIL" => Some("1.2.3.4:80; server 6.6.6.6"),
            _ => None,
        };
        let t = "${FERRY_HOST_ADDRESS}:${PORT}";
        assert_eq!(backend_address(t, "web-1", Some("10.0.0.5"), vars).unwrap(), "10.0.0.5:8081");
        assert_eq!(
            backend_address("${FERRY_HOST}.internal:${PORT:-80}", "web-1", None, |_| None).unwrap(),
            "web-1.internal:80"
        );
        assert_eq!(
            backend_address("unix:/run/${FERRY_HOST}.sock", "web-1", None, vars).unwrap(),
            "unix:/run/web-1.sock"
        );
        let unset = backend_address(t, "web-1", Some("10.0.0.5"), |_| None).unwrap_err().to_string();
        assert!(unset.contains("variable PORT is not set"), "{unset}");
        let no_address = backend_address(t, "web-1", None, vars).unwrap_err().to_string();
        assert!(no_address.contains("FERRY_HOST_ADDRESS"), "{no_address}");
        // A variable cannot smuggle a directive into the balancer's configuration.
        assert!(matches!(backend_address("${EVIL}", "web-1", None, vars), Err(LbError::BadAddress(_))));
    }

    #[test]
    fn host_addresses() {
        assert_eq!(host_address("10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(host_address("::1".parse().unwrap()), "[::1]");
        assert_eq!(host_address("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(parse_host_address("10.1.2.3").unwrap(), "10.1.2.3");
        assert_eq!(parse_host_address("fe80::1").unwrap(), "[fe80::1]");
        assert_eq!(parse_host_address("[fe80::1]").unwrap(), "[fe80::1]");
        assert_eq!(parse_host_address("web-1.dc.example").unwrap(), "web-1.dc.example");
        assert!(parse_host_address("web 1").is_err());
        assert!(parse_host_address("").is_err());
        assert!(parse_host_address("a..b").is_err());
    }
}
