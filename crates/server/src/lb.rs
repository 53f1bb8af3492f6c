//! Load balancers in front of environments (R14): a host leaves the
//! balancer before it is touched and returns once its health check passed.
//!
//! The server never touches a balancer, and never connects to the hosts that
//! run one. It records per environment how the balancer is driven, which of
//! the environment's hosts are out of it (drained), and a generation that goes
//! up with every change. Each load-balancer host (an ordinary host whose tags
//! the load balancer's selector matches) receives the balancer's desired state
//! with its `DesiredState`; its agent makes the balancer match and reports the
//! generation it applied, which the server records per host.
//!
//! API for the rollout orchestrator (and for `ferry lb drain|ready`):
//! [`drain`] and [`undrain`] change the drained set and return the generation
//! to wait for; [`applied`] says whether every load-balancer host got there.
//!
//! An offline load-balancer host counts for what it last reported: if that is
//! the generation asked about or a later one, its balancer has the change
//! (it was made before the host went away); if not, the change is not applied
//! and [`applied`] keeps saying so until the host comes back, so a caller
//! that waits gives up on its own timeout rather than touch hosts that a
//! balancer may still send requests to.

use std::collections::BTreeMap;

use ferry_domain::lb::{LbError, backend_address};
use ferry_domain::vars::{self, Var, VarScope};
use ferry_domain::{LbDriver, Selector, TemplateError, rfc3339_from_millis};
use ferry_proto::agent::{LbBackend, LbDesired};
use ferry_proto::api::{LbBackendInfo, LbHostInfo, LoadBalancerInfo};
use ferry_store::{Environment, Host, LoadBalancer, VarRow};

use crate::error::{AppError, AppResult};
use crate::{AppState, now_ms};

/// How far the load-balancer hosts of an environment have come.
#[derive(Debug, Clone, PartialEq)]
pub struct LbProgress {
    /// The generation asked about.
    pub generation: u64,
    /// Every load-balancer host has applied `generation` (or a later one)
    /// without an error. Also true when the environment has no load balancer:
    /// there is nothing to wait for.
    pub done: bool,
    pub hosts: Vec<LbHostProgress>,
    /// Why the balancer cannot get to `generation` by itself: no host matches
    /// the load balancer's selector, a backend's address cannot be worked
    /// out, a load-balancer host failed to apply it. A caller should stop
    /// waiting and say so.
    pub errors: Vec<String>,
}

/// One load-balancer host's part of [`LbProgress`].
#[derive(Debug, Clone, PartialEq)]
pub struct LbHostProgress {
    pub host: String,
    pub online: bool,
    /// The generation it last reported, if any.
    pub applied: Option<u64>,
    /// The error it reported with it.
    pub error: Option<String>,
    pub applied_at: Option<i64>,
}

impl LbHostProgress {
    /// How the API shows a load-balancer host's progress.
    pub fn info(self) -> LbHostInfo {
        LbHostInfo {
            host: self.host,
            online: self.online,
            applied_generation: self.applied,
            error: self.error,
            applied_at: self.applied_at.map(rfc3339_from_millis),
        }
    }
}

/// Takes `host_ids` (hosts of `env`) out of the environment's load balancer
/// and wakes its load-balancer hosts. Returns the generation to wait for
/// with [`applied`], or `None` when the environment has no load balancer.
pub async fn drain(state: &AppState, env: &Environment, host_ids: &[i64]) -> AppResult<Option<u64>> {
    change(state, env, host_ids, true).await
}

/// Puts `host_ids` back into the environment's load balancer; as [`drain`].
pub async fn undrain(state: &AppState, env: &Environment, host_ids: &[i64]) -> AppResult<Option<u64>> {
    change(state, env, host_ids, false).await
}

async fn change(state: &AppState, env: &Environment, host_ids: &[i64], drained: bool) -> AppResult<Option<u64>> {
    let Some(generation) = state.db.set_drained(env, host_ids, drained, now_ms()).await? else {
        return Ok(None);
    };
    tracing::info!(project = %env.project, env = %env.name, ?host_ids, drained, generation, "load balancer changed");
    if let Some(lb) = state.db.load_balancer(env).await? {
        wake(state, &lb.selector).await?;
    }
    Ok(Some(generation))
}

/// Whether every load-balancer host of `env` has applied `generation`.
pub async fn applied(state: &AppState, env: &Environment, generation: u64) -> AppResult<LbProgress> {
    let Some(lb) = state.db.load_balancer(env).await? else {
        return Ok(LbProgress { generation, done: true, hosts: Vec::new(), errors: Vec::new() });
    };
    let hosts = state.db.hosts().await?;
    let view = view(state, lb, &hosts).await?;
    Ok(view.progress(generation))
}

/// Wakes the connections of the hosts `selector` (a load balancer's)
/// matches, so that they get their new desired state now rather than at the
/// next resync.
pub(crate) async fn wake(state: &AppState, selector: &str) -> AppResult<()> {
    let selector = parse_selector(selector)?;
    let hosts = state.db.hosts().await?;
    state.hub.wake(hosts.iter().filter(|h| selector.matches(&h.tags)).map(|h| h.id));
    Ok(())
}

/// A host with these tags connected: the load balancers of the environments
/// it belongs to may have a new backend or a new address for it.
pub(crate) async fn backend_connected(state: &AppState, tags: &ferry_domain::Tags) -> AppResult<()> {
    for lb in state.db.load_balancers().await? {
        if parse_selector(&lb.env_selector)?.matches(tags) {
            wake(state, &lb.selector).await?;
        }
    }
    Ok(())
}

/// The load balancers `host` drives, as its agent should see them. An
/// environment whose backend list cannot be worked out (a backend with no
/// address) is left out: the agent then leaves that balancer as it is,
/// rather than be told of fewer backends than there are; [`applied`] and
/// `ferry env lb show` give the reason.
pub(crate) async fn desired_for_host(state: &AppState, host: &Host) -> AppResult<Vec<LbDesired>> {
    let all = state.db.load_balancers().await?;
    if all.is_empty() {
        return Ok(Vec::new());
    }
    // The tags the host announced on this connection, which the `Host` its
    // credential was checked against may predate.
    let hosts = state.db.hosts().await?;
    let tags = hosts.iter().find(|h| h.id == host.id).map_or(&host.tags, |h| &h.tags);
    let mut out = Vec::new();
    for lb in all {
        if !parse_selector(&lb.selector)?.matches(tags) {
            continue;
        }
        let view = view(state, lb, &hosts).await?;
        let Some(driver) = view.driver.clone() else { continue };
        if !view.errors.is_empty() {
            tracing::warn!(host = %host.name, project = %view.lb.project, env = %view.lb.env,
                "load balancer left as it is: {}", view.errors.join("; "));
            continue;
        }
        let backends = view
            .backends
            .iter()
            .filter_map(|b| {
                let address = b.address.as_ref().ok()?.clone();
                Some(LbBackend { host: b.host.name.clone(), address, drained: b.drained })
            })
            .collect();
        out.push(LbDesired {
            project: view.lb.project.clone(),
            env: view.lb.env.clone(),
            generation: view.lb.generation,
            driver,
            backends,
        });
    }
    Ok(out)
}

/// Records what a load-balancer host reported.
pub(crate) async fn record_applied(
    state: &AppState,
    host: &Host,
    project: &str,
    env: &str,
    generation: u64,
    error: Option<&str>,
) -> AppResult<()> {
    match error {
        Some(e) => tracing::warn!(host = %host.name, %project, %env, generation, "load balancer not applied: {e}"),
        None => tracing::debug!(host = %host.name, %project, %env, generation, "load balancer applied"),
    }
    Ok(state.db.record_lb_applied(host.id, project, env, generation, error, now_ms()).await?)
}

/// `GET .../lb`: the load balancer of `env` and where its hosts stand.
pub(crate) async fn info(state: &AppState, env: &Environment) -> AppResult<Option<LoadBalancerInfo>> {
    let Some(lb) = state.db.load_balancer(env).await? else { return Ok(None) };
    let hosts = state.db.hosts().await?;
    let view = view(state, lb, &hosts).await?;
    let progress = view.progress(view.lb.generation);
    let lb = &view.lb;
    Ok(Some(LoadBalancerInfo {
        project: lb.project.clone(),
        env: lb.env.clone(),
        driver: lb.driver.clone(),
        select: lb.selector.clone(),
        backend: lb.backend.clone(),
        options: lb.options.clone(),
        generation: lb.generation,
        applied: progress.done,
        backends: view
            .backends
            .iter()
            .map(|b| LbBackendInfo {
                host: b.host.name.clone(),
                address: b.address.as_ref().ok().cloned(),
                drained: b.drained,
                online: b.host.online,
            })
            .collect(),
        lb_hosts: progress.hosts.into_iter().map(LbHostProgress::info).collect(),
        errors: progress.errors,
        updated_by: lb.updated_by.clone(),
        updated_at: rfc3339_from_millis(lb.updated_at),
    }))
}

fn parse_selector(text: &str) -> AppResult<Selector> {
    Selector::parse(text).map_err(|e| AppError::Internal(format!("stored selector '{text}': {e}")))
}

/// One backend host of an environment, as its balancer should see it.
struct BackendView {
    host: Host,
    /// The reason when the address cannot be worked out.
    address: Result<String, String>,
    drained: bool,
}

/// An environment's load balancer with everything worked out.
struct View {
    lb: LoadBalancer,
    /// `None` when the stored options are not a valid driver (see `errors`).
    driver: Option<LbDriver>,
    backends: Vec<BackendView>,
    lb_hosts: Vec<LbHostProgress>,
    /// What stops the balancer from being brought to the stored state.
    errors: Vec<String>,
}

impl View {
    fn progress(&self, generation: u64) -> LbProgress {
        let mut errors = self.errors.clone();
        if self.lb_hosts.is_empty() {
            errors.push(format!(
                "no host matches the load balancer's selector {}: start the agent of the load-balancer host with \
                 tags that match it",
                self.lb.selector
            ));
        }
        // Only errors about this generation or a later one: an older error
        // says nothing about whether this one will apply.
        for h in &self.lb_hosts {
            if let (Some(applied), Some(e)) = (h.applied, &h.error)
                && applied >= generation
            {
                errors.push(format!("{}: {e}", h.host));
            }
        }
        let done = errors.is_empty()
            && self.lb_hosts.iter().all(|h| h.error.is_none() && h.applied.is_some_and(|g| g >= generation));
        LbProgress { generation, done, hosts: self.lb_hosts.clone(), errors }
    }
}

async fn view(state: &AppState, lb: LoadBalancer, hosts: &[Host]) -> AppResult<View> {
    let mut errors = Vec::new();
    let driver = match LbDriver::from_options(&lb.driver, &lb.options) {
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(format!("the stored configuration is not valid: {e}"));
            None
        }
    };
    let lb_selector = parse_selector(&lb.selector)?;
    let env_selector = parse_selector(&lb.env_selector)?;
    let applied = state.db.lb_applied(lb.env_id).await?;
    let lb_hosts = hosts
        .iter()
        .filter(|h| lb_selector.matches(&h.tags))
        .map(|h| {
            let row = applied.iter().find(|r| r.host_id == h.id);
            LbHostProgress {
                host: h.name.clone(),
                online: h.online,
                applied: row.map(|r| r.generation),
                error: row.and_then(|r| r.error.clone()),
                applied_at: row.map(|r| r.applied_at),
            }
        })
        .collect();

    let project = state.db.project(&lb.project).await?;
    let rows = state.db.vars(&project).await?;
    let candidates: Vec<Var<&VarRow>> = rows
        .iter()
        .map(|r| Var { scope: VarScope { env: r.env.clone(), host: r.host.clone() }, key: r.key.clone(), value: r })
        .collect();
    let mut backends = Vec::new();
    for host in hosts.iter().filter(|h| env_selector.matches(&h.tags)) {
        let target = VarScope { env: Some(lb.env.clone()), host: Some(host.name.clone()) };
        let resolved: BTreeMap<&str, &Var<&VarRow>> = vars::resolve(&candidates, &target);
        // Secrets never reach a host they are not meant for: the address
        // goes to the load-balancer hosts, so it is made of plain values only.
        let lookup = |name: &str| resolved.get(name).filter(|v| !v.value.secret).map(|v| v.value.value.as_str());
        let address = backend_address(&lb.backend, &host.name, host.address.as_deref(), lookup)
            .map_err(|e| address_error(&host.name, e, &resolved));
        if let Err(e) = &address {
            errors.push(e.clone());
        }
        backends.push(BackendView { host: host.clone(), address, drained: lb.drained.contains(&host.id) });
    }
    Ok(View { lb, driver, backends, lb_hosts, errors })
}

/// Why a backend's address cannot be worked out, in words an operator can act on.
fn address_error(host: &str, e: LbError, resolved: &BTreeMap<&str, &Var<&VarRow>>) -> String {
    if let LbError::Template { error: TemplateError::Unset { name, .. }, template } = &e {
        if name == ferry_domain::lb::HOST_ADDRESS_VAR {
            return format!(
                "backend {host}: its address is not known yet: its agent has not connected since the load balancer \
                 arrived (or start it with --address)"
            );
        }
        if resolved.get(name.as_str()).is_some_and(|v| v.value.secret) {
            return format!(
                "backend {host}: --backend '{template}' uses {name}, a secret; the address is sent to the \
                 load-balancer hosts, so it may only use plain variables"
            );
        }
        return format!(
            "backend {host}: --backend '{template}' uses {name}, which is not set for this host (set it with \
             `ferry var set`)"
        );
    }
    format!("backend {host}: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb() -> LoadBalancer {
        LoadBalancer {
            env_id: 1,
            project: "app".into(),
            env: "prod".into(),
            env_selector: "role=web".into(),
            driver: "nginx".into(),
            selector: "role=lb".into(),
            backend: "${FERRY_HOST_ADDRESS}:${PORT}".into(),
            options: BTreeMap::new(),
            generation: 5,
            drained: Vec::new(),
            updated_by: "admin".into(),
            updated_at: 0,
        }
    }

    fn host(name: &str, online: bool, applied: Option<u64>, error: Option<&str>) -> LbHostProgress {
        LbHostProgress {
            host: name.into(),
            online,
            applied,
            error: error.map(Into::into),
            applied_at: applied.map(|_| 1),
        }
    }

    fn view(lb_hosts: Vec<LbHostProgress>) -> View {
        View { lb: lb(), driver: None, backends: Vec::new(), lb_hosts, errors: Vec::new() }
    }

    #[test]
    fn done_when_every_load_balancer_host_applied_the_generation() {
        let v = view(vec![host("lb-1", true, Some(5), None), host("lb-2", true, Some(7), None)]);
        assert!(v.progress(5).done);
        assert!(!v.progress(6).done, "lb-1 is behind");
        assert!(v.progress(6).errors.is_empty(), "behind is not an error: it may yet apply it");
        let never = view(vec![host("lb-1", true, Some(5), None), host("lb-2", true, None, None)]);
        assert!(!never.progress(1).done);
    }

    #[test]
    fn an_offline_load_balancer_host_counts_for_what_it_reported() {
        // It applied the change before it went away: its balancer has it.
        let before = view(vec![host("lb-1", true, Some(5), None), host("lb-2", false, Some(5), None)]);
        assert!(before.progress(5).done);
        // It went away before: the change is not in effect there, and a
        // caller waits (and times out) rather than skip it.
        let p = before.progress(6);
        assert!(!p.done && p.errors.is_empty());
        assert_eq!(p.hosts[1], host("lb-2", false, Some(5), None));
    }

    #[test]
    fn errors_stop_the_wait() {
        let failed =
            view(vec![host("lb-1", true, Some(6), Some("reload command `nginx -s reload` exited with code 1"))]);
        let p = failed.progress(6);
        assert!(!p.done);
        assert_eq!(p.errors, ["lb-1: reload command `nginx -s reload` exited with code 1"]);
        // An error about an older generation says nothing about this one.
        let p = failed.progress(7);
        assert!(!p.done && p.errors.is_empty(), "{p:?}");

        let nobody = view(Vec::new()).progress(5);
        assert!(!nobody.done);
        assert!(nobody.errors[0].contains("no host matches the load balancer's selector role=lb"), "{nobody:?}");

        let mut broken = view(vec![host("lb-1", true, Some(5), None)]);
        broken.errors.push("backend web-1: ...".into());
        assert!(!broken.progress(5).done, "the balancer cannot be told the whole truth");
    }

    fn var_row(key: &str, secret: bool) -> VarRow {
        VarRow {
            project: "app".into(),
            env: None,
            host: Some("web-1".into()),
            key: key.into(),
            value: "sealed".into(),
            secret,
            updated_by: "admin".into(),
            updated_at: 0,
        }
    }

    #[test]
    fn address_errors_say_what_to_do() {
        let rows = [var_row("PORT", true)];
        let vars: Vec<Var<&VarRow>> = rows
            .iter()
            .map(|r| Var { scope: VarScope { env: None, host: r.host.clone() }, key: r.key.clone(), value: r })
            .collect();
        let target = VarScope { env: Some("prod".into()), host: Some("web-1".into()) };
        let resolved = vars::resolve(&vars, &target);
        let lookup = |name: &str| resolved.get(name).filter(|v| !v.value.secret).map(|v| v.value.value.as_str());
        let template = "${FERRY_HOST_ADDRESS}:${PORT}";

        let e = backend_address(template, "web-1", Some("10.0.0.1"), lookup).unwrap_err();
        let said = address_error("web-1", e, &resolved);
        assert!(said.contains("uses PORT, a secret") && !said.contains("sealed"), "{said}");

        let e = backend_address(template, "web-1", None, lookup).unwrap_err();
        assert!(address_error("web-1", e, &resolved).contains("address is not known yet"));

        let e = backend_address("${FERRY_HOST_ADDRESS}:${HTTP_PORT}", "web-1", Some("10.0.0.1"), lookup).unwrap_err();
        let said = address_error("web-1", e, &resolved);
        assert!(said.contains("uses HTTP_PORT, which is not set for this host"), "{said}");
    }
}
