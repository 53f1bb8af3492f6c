//! The load balancer in front of an environment (R14), and taking its hosts
//! out and back in. Changing a load balancer or the hosts it sends requests
//! to decides what production traffic reaches, so the route table gives
//! these writes to administrators. What a host does with it is `crate::lb`'s.

use ferry_domain::LbConfig;
use ferry_proto::api::{LbChange, LbHosts, LbProgressInfo, LoadBalancerInfo, SetLoadBalancer};
use ferry_store::{Environment, NewLoadBalancer, User};

use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::lb;

async fn environment(state: &AppState, project: &str, env: &str) -> AppResult<Environment> {
    let project = state.db.project(project).await?;
    Ok(state.db.environment(&project, env).await?)
}

fn none_set(env: &Environment) -> AppError {
    AppError::NotFound(format!(
        "environment '{}' of project '{}' has no load balancer; set one with `ferry env lb set {} {} ...`",
        env.name, env.project, env.project, env.name
    ))
}

/// The ids of `names`, each a host of `env`.
async fn hosts_of(state: &AppState, env: &Environment, names: &[String]) -> AppResult<Vec<i64>> {
    if names.is_empty() {
        return Err(AppError::BadRequest("name at least one host".into()));
    }
    let selector = ferry_domain::Selector::parse(&env.selector)
        .map_err(|e| AppError::Internal(format!("stored selector of '{}': {e}", env.name)))?;
    let all = state.db.hosts().await?;
    let mut ids = Vec::new();
    for name in names {
        let Some(host) = all.iter().find(|h| &h.name == name) else {
            return Err(AppError::NotFound(format!("host '{name}' not found")));
        };
        if !selector.matches(&host.tags) {
            return Err(AppError::BadRequest(format!(
                "host '{name}' (tags {}) is not in environment '{}' (selector {})",
                host.tags, env.name, env.selector
            )));
        }
        ids.push(host.id);
    }
    Ok(ids)
}

/// Takes hosts of the environment out of its balancer (`drain`) or puts
/// them back.
pub(crate) async fn change(
    state: &AppState,
    project: &str,
    env: &str,
    req: LbHosts,
    drain: bool,
) -> AppResult<LbChange> {
    let env = environment(state, project, env).await?;
    let ids = hosts_of(state, &env, &req.hosts).await?;
    let generation = if drain { lb::drain(state, &env, &ids).await? } else { lb::undrain(state, &env, &ids).await? };
    let generation = generation.ok_or_else(|| none_set(&env))?;
    Ok(LbChange { generation })
}

/// Sets the load balancer, replacing any the environment had.
pub(crate) async fn set(
    state: &AppState,
    caller: &User,
    project: &str,
    env: &str,
    req: SetLoadBalancer,
) -> AppResult<LoadBalancerInfo> {
    let env = environment(state, project, env).await?;
    let config = LbConfig::new(&req.driver, &req.select, req.backend.as_deref(), &req.options)
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    let new = NewLoadBalancer {
        driver: config.driver.name().to_string(),
        selector: config.select.to_string(),
        backend: config.backend.clone(),
        // With the defaults filled in, so that `show` says what runs.
        options: config.driver.options(),
        updated_by: caller.name.clone(),
    };
    let old = state.db.load_balancer(&env).await?;
    let generation = state.db.set_load_balancer(&env, &new, crate::now_ms()).await?;
    tracing::info!(project = %env.project, env = %env.name, driver = %new.driver, select = %new.selector, generation,
        "load balancer set");
    // Hosts that no longer drive it keep the balancer as it was; the new ones take over.
    if let Some(old) = old {
        lb::wake(state, &old.selector).await?;
    }
    lb::wake(state, &new.selector).await?;
    lb::info(state, &env).await?.ok_or_else(|| none_set(&env))
}

/// The load balancer, its backends and how far its hosts have come.
pub(crate) async fn show(state: &AppState, project: &str, env: &str) -> AppResult<LoadBalancerInfo> {
    let env = environment(state, project, env).await?;
    lb::info(state, &env).await?.ok_or_else(|| none_set(&env))
}

/// Removes the load balancer. Its hosts leave the balancer as they last set
/// it: the server no longer says what it should be.
pub(crate) async fn unset(state: &AppState, project: &str, env: &str) -> AppResult<()> {
    let env = environment(state, project, env).await?;
    let Some(old) = state.db.load_balancer(&env).await? else { return Err(none_set(&env)) };
    state.db.unset_load_balancer(&env).await?;
    tracing::info!(project = %env.project, env = %env.name, "load balancer removed");
    lb::wake(state, &old.selector).await?;
    Ok(())
}

/// Whether the change numbered `generation` is in effect on every
/// load-balancer host; what the orchestrator waits for too.
pub(crate) async fn applied(state: &AppState, project: &str, env: &str, generation: u64) -> AppResult<LbProgressInfo> {
    let env = environment(state, project, env).await?;
    let p = lb::applied(state, &env, generation).await?;
    Ok(LbProgressInfo {
        generation: p.generation,
        done: p.done,
        lb_hosts: p.hosts.into_iter().map(lb::LbHostProgress::info).collect(),
        errors: p.errors,
    })
}
