//! Environments in order (R23): dev → test → staging → prod. An environment
//! may come after another of its project (`ferry env update P prod --after
//! staging`); a version then reaches it only once it succeeded on every host
//! of the one before.
//!
//! "Succeeded on every host of staging", precisely: every host that
//! staging's selector selects *now* either has a deployment of that version
//! to staging that succeeded on it (any deployment, also one to a subset of
//! hosts), or runs that version now (a host that joined staging later and
//! adopted it). A staging with no hosts proves nothing, so it lets nothing
//! through. Going back (to a version no newer than the one the environment
//! last deployed successfully, which is what a rollback is) is not gated: a
//! way back must never wait for staging. A "rollback" to a newer version is
//! not going back.
//!
//! Everything here decides from facts the server gathers; no I/O.

use std::collections::BTreeMap;
use std::fmt;

/// What the gate knows about one host of the upstream environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamHost {
    pub name: String,
    /// A deployment of the version to the upstream environment succeeded on
    /// this host.
    pub succeeded: bool,
    /// The host reports running the version now.
    pub runs_it: bool,
}

/// A deployment the gate is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub project: &'a str,
    /// The environment deployed to.
    pub env: &'a str,
    /// The version deployed.
    pub version: &'a str,
    /// The version is no newer than the one the environment last deployed
    /// successfully (a rollback).
    pub going_back: bool,
}

/// Why a deployment is refused by the order of environments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromotionError {
    /// The upstream environment selects no host.
    #[error(
        "environment '{env}' of project '{project}' comes after '{upstream}', which has no hosts: version \
         {version} cannot have succeeded there; add hosts to '{upstream}' and deploy it there first{}",
        skip_hint()
    )]
    NoUpstreamHosts { project: String, env: String, upstream: String, version: String },
    /// The version succeeded on none of the upstream hosts.
    #[error(
        "environment '{env}' of project '{project}' comes after '{upstream}', and version {version} never \
         succeeded on '{upstream}': deploy it to '{upstream}' first (ferry deploy {project} {upstream} \
         --version {version}){}",
        skip_hint()
    )]
    NeverUpstream { project: String, env: String, upstream: String, version: String },
    /// The version succeeded on some upstream hosts only.
    #[error(
        "environment '{env}' of project '{project}' comes after '{upstream}', and version {version} has not \
         succeeded on every host of '{upstream}': not on {} ({} of {total}); deploy it to all of '{upstream}' \
         first{}",
        missing.join(", "), missing.len(), skip_hint()
    )]
    NotEverywhere {
        project: String,
        env: String,
        upstream: String,
        version: String,
        missing: Vec<String>,
        total: usize,
    },
}

fn skip_hint() -> &'static str {
    " (someone with the production right may skip the order: --skip-promotion --reason TEXT)"
}

/// Whether `candidate` may go to its environment, which comes after
/// `upstream`, whose hosts are `hosts` (see the module documentation). The
/// refusal is boxed: it carries names, and the common answer is `Ok`.
pub fn check(candidate: &Candidate<'_>, upstream: &str, hosts: &[UpstreamHost]) -> Result<(), Box<PromotionError>> {
    if candidate.going_back {
        return Ok(());
    }
    let (project, env, version) =
        (candidate.project.to_string(), candidate.env.to_string(), candidate.version.to_string());
    let upstream = upstream.to_string();
    if hosts.is_empty() {
        return Err(Box::new(PromotionError::NoUpstreamHosts { project, env, upstream, version }));
    }
    let missing: Vec<String> = hosts.iter().filter(|h| !(h.succeeded || h.runs_it)).map(|h| h.name.clone()).collect();
    match missing.len() {
        0 => Ok(()),
        n if n == hosts.len() => Err(Box::new(PromotionError::NeverUpstream { project, env, upstream, version })),
        _ => Err(Box::new(PromotionError::NotEverywhere {
            project,
            env,
            upstream,
            version,
            missing,
            total: hosts.len(),
        })),
    }
}

/// Why an order of environments is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("environment '{0}' cannot come after itself")]
    ItSelf(String),
    #[error("environment '{env}' cannot come after '{after}': that would close a cycle ({})", cycle.join(" -> "))]
    Cycle { env: String, after: String, cycle: Vec<String> },
}

/// Checks that `env` may come after `after`, given the current order of
/// the project's environments (`name → the one it comes after`). Refuses a
/// cycle, naming it in the order versions would travel.
pub fn check_order(order: &BTreeMap<String, Option<String>>, env: &str, after: &str) -> Result<(), OrderError> {
    if env == after {
        return Err(OrderError::ItSelf(env.to_string()));
    }
    // Walk up from `after`: reaching `env` means `env` is already upstream
    // of `after`, so the new link would close a loop.
    let mut path = vec![after.to_string()];
    let mut at = after;
    while let Some(Some(up)) = order.get(at) {
        if up == env {
            let mut cycle: Vec<String> = vec![env.to_string()];
            cycle.extend(path.iter().rev().cloned());
            cycle.push(env.to_string());
            return Err(OrderError::Cycle { env: env.to_string(), after: after.to_string(), cycle });
        }
        if path.iter().any(|p| p == up) {
            // A loop not through `env` (only a corrupt store has one).
            break;
        }
        path.push(up.clone());
        at = up;
    }
    Ok(())
}

/// The project's environments in the order versions travel: each
/// environment after the one it comes after, environments with none first,
/// otherwise in the order given (creation order). Environments in a loop
/// (which `check_order` prevents) come last, as given.
pub fn in_order(envs: &[(String, Option<String>)]) -> Vec<String> {
    let known: Vec<&str> = envs.iter().map(|(n, _)| n.as_str()).collect();
    let mut out: Vec<String> = Vec::with_capacity(envs.len());
    fn place(name: &str, envs: &[(String, Option<String>)], out: &mut Vec<String>) {
        for (n, after) in envs {
            if after.as_deref() == Some(name) && !out.contains(n) {
                out.push(n.clone());
                place(n, envs, out);
            }
        }
    }
    for (name, after) in envs {
        // A root: no upstream, or one that is not (any longer) of the project.
        if after.as_deref().is_none_or(|a| !known.contains(&a)) && !out.contains(name) {
            out.push(name.clone());
            place(name, envs, &mut out);
        }
    }
    for (name, _) in envs {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// The versions an environment's hosts run, with how many run each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Running(pub BTreeMap<String, usize>);

impl Running {
    /// Counts the versions of `versions` (one per host that runs one).
    pub fn of<'a>(versions: impl IntoIterator<Item = &'a str>) -> Running {
        let mut map = BTreeMap::new();
        for v in versions {
            *map.entry(v.to_string()).or_insert(0) += 1;
        }
        Running(map)
    }

    /// The one version every host runs, if they agree (and run any).
    pub fn single(&self) -> Option<&str> {
        match self.0.len() {
            1 => self.0.keys().next().map(String::as_str),
            _ => None,
        }
    }

    /// More than one version.
    pub fn is_mixed(&self) -> bool {
        self.0.len() > 1
    }
}

impl fmt::Display for Running {
    /// `v1` when all agree, `v1 (2) / v2 (1)` when mixed, `-` for none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        if let Some(v) = self.single() {
            return f.write_str(v);
        }
        let parts: Vec<String> = self.0.iter().map(|(v, n)| format!("{v} ({n})")).collect();
        f.write_str(&parts.join(" / "))
    }
}

/// The version `ferry promote` would take from `upstream` to the next
/// environment, or why there is none: the upstream runs nothing, or mixed
/// versions (named).
pub fn version_to_promote(upstream: &str, running: &Running) -> Result<String, String> {
    if running.is_mixed() {
        return Err(format!(
            "environment '{upstream}' runs mixed versions ({running}): finish or roll back its deployment first, \
             or deploy a version by name"
        ));
    }
    running.single().map(str::to_string).ok_or_else(|| format!("environment '{upstream}' runs no version yet"))
}

/// Whether the environment after `upstream` is behind it: the upstream runs
/// one version, and the next does not run it on every host.
pub fn is_behind(upstream: &Running, next: &Running) -> bool {
    match upstream.single() {
        Some(v) => next.single() != Some(v),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, succeeded: bool, runs_it: bool) -> UpstreamHost {
        UpstreamHost { name: name.into(), succeeded, runs_it }
    }

    fn cand(going_back: bool) -> Candidate<'static> {
        Candidate { project: "shop", env: "prod", version: "v2", going_back }
    }

    #[test]
    fn a_version_never_on_staging_is_refused_naming_staging() {
        let err = check(&cand(false), "staging", &[host("s1", false, false), host("s2", false, false)]).unwrap_err();
        assert!(matches!(*err, PromotionError::NeverUpstream { .. }));
        let text = err.to_string();
        assert!(text.contains("'staging'") && text.contains("v2") && text.contains("--skip-promotion"), "{text}");
    }

    #[test]
    fn succeeded_on_some_hosts_only_is_refused_naming_the_others() {
        let err = check(&cand(false), "staging", &[host("s1", true, true), host("s2", false, false)]).unwrap_err();
        assert_eq!(
            *err,
            PromotionError::NotEverywhere {
                project: "shop".into(),
                env: "prod".into(),
                upstream: "staging".into(),
                version: "v2".into(),
                missing: vec!["s2".into()],
                total: 2,
            }
        );
        assert!(err.to_string().contains("not on s2 (1 of 2)"));
    }

    #[test]
    fn succeeded_or_running_on_every_host_is_allowed() {
        // s1: deployed and since moved on; s2: joined later and adopted it.
        assert_eq!(check(&cand(false), "staging", &[host("s1", true, false), host("s2", false, true)]), Ok(()));
    }

    #[test]
    fn an_empty_upstream_lets_nothing_through() {
        let err = check(&cand(false), "staging", &[]).unwrap_err();
        assert!(matches!(*err, PromotionError::NoUpstreamHosts { .. }));
    }

    #[test]
    fn going_back_is_never_gated() {
        assert_eq!(check(&cand(true), "staging", &[]), Ok(()));
        assert_eq!(check(&cand(true), "staging", &[host("s1", false, false)]), Ok(()));
    }

    fn order(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        pairs.iter().map(|(e, a)| (e.to_string(), a.map(str::to_string))).collect()
    }

    #[test]
    fn cycles_are_refused_and_named() {
        let o = order(&[("dev", None), ("staging", Some("dev")), ("prod", Some("staging"))]);
        assert_eq!(check_order(&o, "prod", "staging"), Ok(()));
        assert_eq!(check_order(&o, "prod", "dev"), Ok(()));
        assert_eq!(check_order(&o, "prod", "prod"), Err(OrderError::ItSelf("prod".into())));
        let err = check_order(&o, "dev", "prod").unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment 'dev' cannot come after 'prod': that would close a cycle (dev -> staging -> prod -> dev)"
        );
        let err = check_order(&o, "staging", "prod").unwrap_err();
        assert!(matches!(err, OrderError::Cycle { .. }), "{err}");
    }

    #[test]
    fn a_corrupt_loop_elsewhere_does_not_hang() {
        let o = order(&[("a", Some("b")), ("b", Some("a")), ("c", None)]);
        assert_eq!(check_order(&o, "c", "a"), Ok(()));
    }

    #[test]
    fn environments_come_in_travel_order() {
        let envs = vec![
            ("prod".to_string(), Some("staging".to_string())),
            ("dev".to_string(), None),
            ("staging".to_string(), Some("dev".to_string())),
            ("other".to_string(), None),
        ];
        assert_eq!(in_order(&envs), vec!["dev", "staging", "prod", "other"]);
        let looped = vec![("a".to_string(), Some("b".to_string())), ("b".to_string(), Some("a".to_string()))];
        assert_eq!(in_order(&looped), vec!["a", "b"]);
    }

    #[test]
    fn running_versions_show_mixed_counts() {
        let r = Running::of(["v1", "v2", "v1"]);
        assert!(r.is_mixed());
        assert_eq!(r.to_string(), "v1 (2) / v2 (1)");
        assert_eq!(Running::of(["v1", "v1"]).to_string(), "v1");
        assert_eq!(Running::default().to_string(), "-");
    }

    #[test]
    fn promote_takes_the_single_version_or_names_the_mix() {
        assert_eq!(version_to_promote("staging", &Running::of(["v3", "v3"])), Ok("v3".into()));
        let err = version_to_promote("staging", &Running::of(["v3", "v2"])).unwrap_err();
        assert!(err.contains("v2 (1) / v3 (1)"), "{err}");
        assert!(version_to_promote("staging", &Running::default()).is_err());
    }

    #[test]
    fn behind_means_the_next_lacks_the_upstream_version() {
        let up = Running::of(["v3", "v3"]);
        assert!(is_behind(&up, &Running::of(["v2"])));
        assert!(is_behind(&up, &Running::of(["v3", "v2"])));
        assert!(is_behind(&up, &Running::default()));
        assert!(!is_behind(&up, &Running::of(["v3"])));
        assert!(!is_behind(&Running::of(["v3", "v2"]), &Running::of(["v1"])));
    }
}
