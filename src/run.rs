//! Dispatch of parsed arguments to the library crates.

use anyhow::{Context, Result};
use ferry_cli::{Client, Output, accounts, commands, guards, requests};
use ferry_domain::{DeploymentKind, Tags};
use ferry_proto::api::{
    CreateDeployment, CreateEnvironment, CreateFreeze, CreateProject, CreateRequest, CreateUser, RequestActionBody,
    SetLoadBalancer, SetProtection, SetVar, UpdateEnvironment, UpdateProject, UpdateUser, VarQuery,
};

use crate::args::*;
use ferry_server::build_sandbox::BuildWall;

pub fn run(cli: Cli) -> Result<()> {
    let long_running = matches!(cli.command, Command::Server(_) | Command::Agent(_) | Command::Dev(_));
    init_tracing(if long_running { "info" } else { "warn" }, cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(dispatch(cli.command))
}

/// Logs to standard error. Which lines: FERRY_LOG, else RUST_LOG, else `default`; FERRY_LOG wins so that
/// a RUST_LOG meant for something else in the same environment does not change Ferry's logs. Colour only
/// on a terminal and without NO_COLOR, so files and journals get no escape codes.
fn init_tracing(default: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let given = ["FERRY_LOG", "RUST_LOG"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()).map(|v| (var, v)));
    let filter = match given {
        Some((var, spec)) => tracing_subscriber::EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("warning: {var}={spec:?} is not a log filter ({e}); logging at {default}");
            tracing_subscriber::EnvFilter::new(default)
        }),
        None => tracing_subscriber::EnvFilter::new(default),
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && !no_color;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        // One object per line, the event's message and fields at the top level next to timestamp,
        // level and target.
        LogFormat::Json => builder.json().flatten_event(true).with_ansi(false).try_init(),
    };
}

fn client(conn: &Conn) -> Result<(Client, Output)> {
    let out = match conn.output {
        OutputArg::Table => Output::Table,
        OutputArg::Json => Output::Json,
        OutputArg::Csv => anyhow::bail!("--output csv is only for `ferry audit`; use table or json here"),
    };
    // Flags and FERRY_SERVER/FERRY_TOKEN first; then what `ferry login` saved.
    // An empty one (`FERRY_TOKEN=` left in a shell or CI file) counts as unset.
    // A saved token is only sent to the server it was issued by.
    let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    let conn = &Conn { token: given(&conn.token), server: given(&conn.server), ..conn.clone() };
    let saved = match conn.token {
        Some(_) => None,
        None => accounts::saved_credentials()?
            .filter(|s| conn.server.as_deref().is_none_or(|url| url.trim_end_matches('/') == s.server)),
    };
    let server = conn.server.clone().or_else(|| saved.as_ref().map(|s| s.server.clone())).unwrap_or_default();
    // The CA the sign-in trusted goes with the saved token's server.
    let ca_cert = conn.ca_cert.clone().or_else(|| saved.as_ref().and_then(|s| s.ca_cert.clone()));
    let token = conn.token.clone().or_else(|| saved.map(|s| s.token)).unwrap_or_default();
    Ok((Client::new(&server, &token, ca_cert.as_deref())?, out))
}

/// The server-wide ID of the build `which` names.
async fn which_build(c: &ferry_cli::Client, which: &crate::args::WhichBuild) -> Result<i64> {
    match which.number {
        Some(number) => {
            ferry_domain::validate_name("project name", &which.first)?;
            let b: ferry_proto::api::BuildInfo =
                c.get(&format!("/api/v1/projects/{}/builds/{number}", which.first)).await?;
            Ok(b.id)
        }
        None => which.first.parse::<i64>().map_err(|_| {
            anyhow::anyhow!(
                "'{}' is not a build: give PROJECT NUMBER (the # column of `ferry builds PROJECT`) or a build ID",
                which.first
            )
        }),
    }
}

/// `ferry audit [...]` and `ferry audit verify [--since-checkpoint SEQ:HASH]`.
async fn audit(args: AuditArgs) -> Result<()> {
    use ferry_cli::audit::{self, AuditFormat};
    if let Some(AuditCmd::Verify { since_checkpoint, conn }) = args.action {
        let json = matches!(conn.output, OutputArg::Json);
        let conn = Conn { output: OutputArg::Table, ..conn };
        return audit::verify(&client(&conn)?.0, json, since_checkpoint.as_deref()).await;
    }
    let format = match args.conn.output {
        OutputArg::Table => AuditFormat::Table,
        OutputArg::Json => AuditFormat::Json,
        OutputArg::Csv => AuditFormat::Csv,
    };
    let conn = Conn { output: OutputArg::Table, ..args.conn };
    let since = args.since.as_deref().map(|s| audit::since(s, std::time::SystemTime::now())).transpose()?;
    let query = ferry_proto::api::AuditQuery { project: args.project, user: args.user, since, limit: Some(args.limit) };
    audit::list(&client(&conn)?.0, query, format).await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

async fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Dev(args) => crate::dev::run(args).await,
        Command::Completions { shell } => crate::manual::completions(shell),
        Command::Man { dir } => crate::manual::man_pages(&dir),
        Command::Server(args) => {
            // Before anything else: SIGHUP's default action would end the
            // server; here it means "read the TLS certificate again".
            let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .context("installing the SIGHUP handler")?;
            let mut config = ferry_server::ServerConfig::new(args.data, args.listen);
            config.heartbeat_interval = args.heartbeat_interval;
            config.heartbeat_timeout = args.heartbeat_timeout;
            config.resync_interval = args.resync_interval;
            config.build_workers = usize::from(args.build_workers);
            if let (Some(url), Some(from)) = (args.smtp_url, args.smtp_from) {
                config.smtp = Some(ferry_server::SmtpSettings { url, from });
            }
            config.secure_cookies = args.secure_cookies;
            config.tls = match (args.tls_cert, args.tls_key) {
                (Some(cert), Some(key)) => Some(ferry_server::TlsFiles { cert, key }),
                // clap's `requires` makes them come in pairs.
                _ => None,
            };
            config.session_ttl = args.session_ttl;
            config.public_url = args.public_url;
            config.metrics_token = args.metrics_token;
            config.build_wall = BuildWall::decide(args.build_isolation, &args.build_user)
                .map_err(|e| anyhow::anyhow!("--build-isolation: {e}"))?;
            let server = ferry_server::Server::start(config).await?;
            println!("ferry server listening on {}", server.url);
            println!("web interface: {}/", server.url);
            if server.init.created_admin {
                println!("admin API token written to {}", server.init.admin_token_file.display());
            }
            println!("agents enrol with the join token in {}", server.init.join_token_file.display());
            let mut stop = std::pin::pin!(shutdown_signal());
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    Some(()) = hangup.recv() => server.reload_tls(),
                }
            }
            server.stop().await;
            Ok(())
        }
        Command::Agent(AgentArgs {
            action: Some(AgentCmd::UpgradeGuard { root, exe, backup, pid, timeout, args }),
            ..
        }) => {
            let g = ferry_agent::upgrade::GuardArgs { root, exe, backup, pid, timeout, args };
            tokio::task::spawn_blocking(move || ferry_agent::upgrade::guard(&g))
                .await
                .context("the upgrade guard")?
                .map_err(|e| anyhow::anyhow!("upgrade guard: {e}"))
        }
        Command::Agent(AgentArgs { action: Some(AgentCmd::Rollback { root, project, to }), .. }) => {
            let done = ferry_agent::fallback::manual_rollback(&root, &project, to.as_deref())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{project}: current -> {} (version {}), was {}",
                done.to,
                done.version,
                done.from.as_deref().unwrap_or("none")
            );
            println!("{project}: {}", crate::svc::restart_after_rollback(&root, &project).await?);
            println!(
                "the agent keeps this release until the server deploys something else; logged in the host's journal"
            );
            Ok(())
        }
        Command::Svc(args) => {
            let output = match args.output {
                OutputArg::Table => Output::Table,
                OutputArg::Json => Output::Json,
                OutputArg::Csv => anyhow::bail!("--output csv is only for `ferry audit`; use table or json here"),
            };
            crate::svc::run(args, output).await
        }
        Command::Agent(args) => {
            let tags = Tags::parse(&args.tags).context("--tags")?;
            let name = args.name.unwrap_or_default();
            ferry_domain::validate_name("host name", &name).context("--name")?;
            let address = match args.address.as_deref() {
                Some(a) => Some(ferry_domain::lb::parse_host_address(a).context("--address")?),
                None => None,
            };
            let config = ferry_agent::AgentConfig {
                server: args.server.unwrap_or_default(),
                ca_cert: args.ca_cert,
                join_token: args.join_token,
                name,
                tags,
                address,
                root: args.root.unwrap_or_default(),
                check_interval: args.check_interval,
                service_defaults: ferry_agent::config::ServiceDefaults {
                    service_user: args.service_user,
                    allow_root_services: args.allow_root_services,
                },
                upgrade_timeout: Some(args.upgrade_timeout),
            };
            // SIGHUP's default action would end the agent (a closed terminal,
            // a `kill -HUP` meant as "reload"): it has nothing to reload, and
            // says so. Its services would live on anyway.
            let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .context("installing the SIGHUP handler")?;
            tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    tracing::info!("SIGHUP: the agent has nothing to reload (its settings are read at start)");
                }
            });
            ferry_agent::run(config, shutdown_signal()).await?;
            Ok(())
        }
        Command::Project(ProjectCmd::Create {
            name,
            keep_releases,
            repo,
            webhook_secret,
            branches,
            push_tags,
            hosts,
            conn,
        }) => {
            let (c, _) = client(&conn)?;
            let req =
                CreateProject { name, keep_releases, repo, webhook_secret, branches, push_tags, host_scope: hosts };
            commands::project_create(&c, req).await
        }
        Command::Project(ProjectCmd::Update {
            project,
            keep_releases,
            repo,
            webhook_secret,
            branches,
            push_tags,
            conn,
        }) => {
            let (c, out) = client(&conn)?;
            let req = UpdateProject { keep_releases, repo, webhook_secret, branches, push_tags };
            commands::project_update(&c, &project, req, out).await
        }
        Command::Project(ProjectCmd::Delete { project, conn }) => {
            let (c, _) = client(&conn)?;
            commands::project_delete(&c, &project).await
        }
        Command::Env(EnvCmd::Delete { project, env, conn }) => {
            let (c, _) = client(&conn)?;
            commands::env_delete(&c, &project, &env).await
        }
        Command::Project(ProjectCmd::Hosts { project, scope, any: _, conn }) => {
            let (c, _) = client(&conn)?;
            commands::project_hosts(&c, &project, scope).await
        }
        Command::JoinToken(JoinTokenCmd::Create { tags, conn }) => {
            let (c, _) = client(&conn)?;
            commands::join_token_create(&c, tags).await
        }
        Command::JoinToken(JoinTokenCmd::List { conn }) => {
            let (c, out) = client(&conn)?;
            commands::join_token_list(&c, out).await
        }
        Command::JoinToken(JoinTokenCmd::Revoke { id, conn }) => {
            let (c, _) = client(&conn)?;
            commands::join_token_revoke(&c, id).await
        }
        Command::Host(HostCmd::Tag { host, tags, conn }) => {
            let (c, _) = client(&conn)?;
            commands::host_tag(&c, &host, tags).await
        }
        Command::Host(HostCmd::Remove { host, conn }) => {
            let (c, _) = client(&conn)?;
            commands::host_remove(&c, &host).await
        }
        Command::Project(ProjectCmd::List { conn }) => {
            let (c, out) = client(&conn)?;
            commands::project_list(&c, out).await
        }
        Command::Env(EnvCmd::Create {
            project,
            env,
            select,
            auto_deploy_branch,
            production,
            require_approval,
            staging,
            after,
            offline,
            rollout,
            conn,
        }) => {
            let (c, _) = client(&conn)?;
            let req = CreateEnvironment {
                name: env,
                selector: select,
                auto_deploy_branch,
                rollout: rollout.options(),
                production,
                requires_approval: require_approval,
                staging,
                after,
                offline_policy: offline,
            };
            commands::env_create(&c, &project, req).await
        }
        Command::Env(EnvCmd::Update {
            project,
            env,
            select,
            offline,
            production,
            require_approval,
            staging,
            after,
            self_test,
            conn,
        }) => {
            let (c, out) = client(&conn)?;
            if select.is_some() || offline.is_some() {
                let req = UpdateEnvironment { selector: select, offline_policy: offline };
                commands::env_update(&c, &project, &env, req, out).await?;
            }
            if let Some(production) = production {
                accounts::env_set_production(&c, &project, &env, production, out).await?;
            }
            if require_approval.is_some() || staging.is_some() || after.is_some() || self_test.is_some() {
                let none = |s: String| if s == "none" { String::new() } else { s };
                let req = SetProtection {
                    requires_approval: require_approval,
                    staging: staging.map(none),
                    after: after.map(none),
                    self_test: self_test.map(|s| s == "allow"),
                };
                requests::env_set_protection(&c, &project, &env, req, out).await?;
            }
            Ok(())
        }
        Command::Request(cmd) => request(cmd).await,
        Command::Login { url, user, ca_cert, password_stdin: _, token_name } => {
            let password = accounts::read_password_stdin()?;
            accounts::login(&url, &user, &password, &token_name, ca_cert.as_deref()).await
        }
        Command::Whoami { conn } => {
            let (c, out) = client(&conn)?;
            accounts::whoami(&c, out).await
        }
        Command::User(UserCmd::Create { name, admin, production, password_stdin: _, email, conn }) => {
            let (c, out) = client(&conn)?;
            let password = accounts::read_password_stdin()?;
            accounts::user_create(&c, CreateUser { name, admin, production, password, email }, out).await
        }
        Command::User(UserCmd::Set { name, email, admin, production, conn }) => {
            let (c, out) = client(&conn)?;
            accounts::user_set(&c, &name, &UpdateUser { email, admin, production }, out).await
        }
        Command::User(UserCmd::List { conn }) => {
            let (c, out) = client(&conn)?;
            accounts::user_list(&c, out).await
        }
        Command::User(UserCmd::Disable { name, conn }) => {
            let (c, out) = client(&conn)?;
            accounts::user_set_disabled(&c, &name, true, out).await
        }
        Command::User(UserCmd::Enable { name, conn }) => {
            let (c, out) = client(&conn)?;
            accounts::user_set_disabled(&c, &name, false, out).await
        }
        Command::Token(TokenCmd::Create { name, conn }) => {
            let (c, out) = client(&conn)?;
            accounts::token_create(&c, &name, out).await
        }
        Command::Token(TokenCmd::List { conn }) => {
            let (c, out) = client(&conn)?;
            accounts::token_list(&c, out).await
        }
        Command::Token(TokenCmd::Revoke { id, conn }) => {
            let (c, _) = client(&conn)?;
            accounts::token_revoke(&c, id).await
        }
        Command::Member(MemberCmd::Add { project, user, role, conn }) => {
            let (c, out) = client(&conn)?;
            accounts::member_add(&c, &project, &user, &role, out).await
        }
        Command::Member(MemberCmd::Remove { project, user, conn }) => {
            let (c, _) = client(&conn)?;
            accounts::member_remove(&c, &project, &user).await
        }
        Command::Member(MemberCmd::List { project, conn }) => {
            let (c, out) = client(&conn)?;
            accounts::member_list(&c, &project, out).await
        }
        Command::Env(EnvCmd::SetRollout { project, env, rollout, conn }) => {
            let (c, out) = client(&conn)?;
            commands::env_set_rollout(&c, &project, &env, rollout.options(), out).await
        }
        Command::Env(EnvCmd::List { project, conn }) => {
            let (c, out) = client(&conn)?;
            commands::env_list(&c, &project, out).await
        }
        Command::Env(EnvCmd::Lb(cmd)) => env_lb(cmd).await,
        Command::Lb(LbCmd::Drain(args)) => lb_change(args, true).await,
        Command::Lb(LbCmd::Ready(args)) => lb_change(args, false).await,
        Command::Release(ReleaseCmd::Upload { project, path, version, branch, committer, conn }) => {
            let (c, out) = client(&conn)?;
            let committer = committer.or_else(|| std::env::var("USER").ok()).unwrap_or_default();
            let labels = ferry_cli::upload::ReleaseLabels { version, branch, committer };
            commands::release_upload(&c, &project, &path, labels, out).await
        }
        Command::Release(ReleaseCmd::Download { project, version, output_file, conn }) => {
            let (c, _) = client(&conn)?;
            commands::release_download(&c, &project, &version, output_file.as_deref()).await
        }
        Command::Release(ReleaseCmd::List { project, conn }) | Command::Releases { project, conn } => {
            let (c, out) = client(&conn)?;
            commands::release_list(&c, &project, out).await
        }
        Command::Release(ReleaseCmd::MarkBad { project, version, reason, conn }) => {
            let (c, out) = client(&conn)?;
            guards::mark_bad(&c, &project, &version, reason, out).await
        }
        Command::Release(ReleaseCmd::MarkGood { project, version, conn }) => {
            let (c, out) = client(&conn)?;
            guards::mark_good(&c, &project, &version, out).await
        }
        Command::Lock { project, env, reason, duration, conn } => {
            let (c, out) = client(&conn)?;
            guards::lock(&c, &project, &env, CreateFreeze { reason, duration }, out).await
        }
        Command::Unlock { project, env, conn } => {
            let (c, out) = client(&conn)?;
            guards::unlock(&c, &project, &env, out).await
        }
        Command::Audit(args) => audit(args).await,
        Command::Locks { project, conn } => {
            let (c, out) = client(&conn)?;
            guards::locks(&c, project.as_deref(), out).await
        }
        Command::Notify(NotifyCmd::Add { project, events, kind, url, to, secret, conn }) => {
            let (c, out) = client(&conn)?;
            let secret = secret.map(ferry_cli::vars::read_value).transpose()?;
            let list = |s: &str| s.split(',').map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect();
            let req = ferry_proto::api::AddNotificationRule {
                events: list(&events),
                kind: Some(kind),
                webhook: url.unwrap_or_default(),
                to: to.as_deref().map(list).unwrap_or_default(),
                secret,
            };
            ferry_cli::notify::add(&c, &project, req, out).await
        }
        Command::Notify(NotifyCmd::List { project, conn }) => {
            let (c, out) = client(&conn)?;
            ferry_cli::notify::list(&c, &project, out).await
        }
        Command::Notify(NotifyCmd::Remove { project, id, conn }) => {
            let (c, out) = client(&conn)?;
            ferry_cli::notify::remove(&c, &project, id, out).await
        }
        Command::Notifications(NotificationsCmd::Log { project, limit, conn }) => {
            let (c, out) = client(&conn)?;
            ferry_cli::notify::log(&c, &project, limit, out).await
        }
        Command::Stats { project, env, since, conn } => {
            let (c, out) = client(&conn)?;
            ferry_cli::stats::stats(&c, &project, env.as_deref(), since, out).await
        }
        Command::Var(VarCmd::Set { project, key, value, scope, secret, conn }) => {
            let (c, out) = client(&conn)?;
            let value = ferry_cli::vars::read_value(value)?;
            let req = SetVar { key, value, env: scope.env, host: scope.host, secret };
            ferry_cli::vars::set(&c, &project, req, out).await
        }
        Command::Var(VarCmd::Unset { project, key, scope, conn }) => {
            let (c, out) = client(&conn)?;
            ferry_cli::vars::unset(&c, &project, &key, var_query(scope), out).await
        }
        Command::Var(VarCmd::List { project, scope, conn }) => {
            let (c, out) = client(&conn)?;
            ferry_cli::vars::list(&c, &project, var_query(scope), out).await
        }
        Command::Build(args) => match args.action {
            None => {
                let (c, out) = client(&args.conn)?;
                let project = args.project.unwrap_or_default();
                commands::build(&c, &project, args.git_ref, args.follow, out).await
            }
            Some(BuildCmd::Cancel { which, conn }) => {
                let c = client(&conn)?.0;
                commands::build_cancel(&c, which_build(&c, &which).await?).await
            }
            Some(BuildCmd::Retry { which, follow, conn }) => {
                let (c, out) = client(&conn)?;
                commands::build_retry(&c, which_build(&c, &which).await?, follow, out).await
            }
            Some(BuildCmd::Show { which, conn }) => {
                let (c, out) = client(&conn)?;
                commands::build_show(&c, which_build(&c, &which).await?, out).await
            }
            Some(BuildCmd::Log { which, follow, conn }) => {
                let (c, out) = client(&conn)?;
                commands::build_log(&c, which_build(&c, &which).await?, follow, out).await
            }
        },
        Command::Builds { project, limit, conn } => {
            let (c, out) = client(&conn)?;
            commands::builds(&c, &project, limit, out).await
        }
        Command::Deploy(args) => {
            let (c, out) = client(&args.conn)?;
            let mut req = deployment(args.env, args.version, &args.target, DeploymentKind::Deploy);
            req.build = args.build;
            req.rollout = args.rollout.options();
            req.skip_promotion = args.skip_promotion.then(|| args.reason.unwrap_or_default());
            if args.target.dry_run {
                return commands::dry_run(&c, &args.project, req, out).await;
            }
            commands::deploy(&c, &args.project, req, args.target.wait, out).await
        }
        Command::Promote(args) => {
            let (c, out) = client(&args.conn)?;
            let req = ferry_proto::api::Promote { from: args.from, to: args.to };
            commands::promote(&c, &args.project, req, args.wait, out).await
        }
        Command::Rollback(args) => {
            let (c, out) = client(&args.conn)?;
            let mut req = deployment(args.env, args.to, &args.target, DeploymentKind::Rollback);
            req.rollout = args.rollout.options();
            req.emergency = args.emergency;
            if args.target.dry_run {
                return commands::dry_run(&c, &args.project, req, out).await;
            }
            commands::deploy(&c, &args.project, req, args.target.wait, out).await
        }
        Command::Status { project, conn } => {
            let (c, out) = client(&conn)?;
            commands::status(&c, &project, out).await
        }
        Command::AgentUpgrade(cmd) => agent_upgrade(cmd).await,
        Command::Hosts { conn } => {
            let (c, out) = client(&conn)?;
            commands::hosts(&c, out).await
        }
        Command::Deployments { project, limit, conn } => {
            let (c, out) = client(&conn)?;
            commands::deployments(&c, &project, limit, out).await
        }
        Command::Deployment(DeploymentCmd::Show { id, follow, conn }) => {
            let (c, out) = client(&conn)?;
            commands::deployment_show(&c, id, follow, out).await
        }
        Command::Deployment(DeploymentCmd::Pause { id, conn }) => control(&conn, id, "pause").await,
        Command::Deployment(DeploymentCmd::Resume { id, conn }) => control(&conn, id, "resume").await,
        Command::Deployment(DeploymentCmd::Promote { id, conn }) => control(&conn, id, "promote").await,
        Command::Deployment(DeploymentCmd::Cancel { id, conn }) => control(&conn, id, "cancel").await,
        Command::Deployment(DeploymentCmd::Retry { id, failed, wait, conn }) => {
            let (c, out) = client(&conn)?;
            commands::deployment_retry(&c, id, failed, wait, out).await
        }
        Command::Deployment(DeploymentCmd::Log { id, host, follow, conn }) => {
            let (c, out) = client(&conn)?;
            commands::deployment_log(&c, id, host.as_deref(), follow, out).await
        }
    }
}

fn deployment(env: String, version: Option<String>, target: &TargetArgs, kind: DeploymentKind) -> CreateDeployment {
    CreateDeployment {
        hosts: target.hosts.clone(),
        offline_timeout_secs: target.offline_timeout.map(|d| d.as_secs().max(1)),
        offline: target.offline,
        force: target.force,
        ..CreateDeployment::of(env, version, kind)
    }
}

async fn control(conn: &Conn, id: i64, action: &str) -> Result<()> {
    let (c, out) = client(conn)?;
    commands::deployment_control(&c, id, action, out).await
}

impl RolloutArgs {
    /// The options as the API takes them: only what was given.
    fn options(self) -> ferry_domain::rollout::RolloutOptions {
        ferry_domain::rollout::RolloutOptions {
            strategy: self.strategy,
            batch: self.batch,
            canary: self.canary,
            soak: self.soak,
            group_by: self.group_by,
            max_failed: self.max_failed,
            auto_rollback: self.no_auto_rollback.then_some(false),
            pause: self.pause,
            approve_each_batch: self.approve_each_batch.then_some(true),
        }
    }
}

async fn request(cmd: RequestCmd) -> Result<()> {
    let note = |note: Option<String>| RequestActionBody { note, ..Default::default() };
    let (conn, action, id, body) = match cmd {
        RequestCmd::Create { project, env, build, version, rollback, to, reason, skip_promotion, conn } => {
            let (c, out) = client(&conn)?;
            let req = CreateRequest { env, build, version: version.or(to), rollback, reason, skip_promotion };
            return requests::create(&c, &project, req, out).await;
        }
        RequestCmd::List { project, state, mine, waiting, conn } => {
            let (c, out) = client(&conn)?;
            return requests::list(&c, project.as_deref(), state.as_deref(), mine, waiting, out).await;
        }
        RequestCmd::Show { id, conn } => {
            let (c, out) = client(&conn)?;
            return requests::show(&c, id, out).await;
        }
        RequestCmd::Release { id, wait, conn } => {
            let (c, out) = client(&conn)?;
            return requests::release(&c, id, wait, out).await;
        }
        RequestCmd::Pass { id, note: n, conn } => (conn, "pass", id, note(n)),
        RequestCmd::SendBack { id, reason, conn } => (conn, "send-back", id, note(Some(reason))),
        RequestCmd::Resubmit { id, build, version, note, conn } => {
            (conn, "resubmit", id, RequestActionBody { note, build, version })
        }
        RequestCmd::Approve { id, note: n, conn } => (conn, "approve", id, note(n)),
        RequestCmd::Reject { id, reason, conn } => (conn, "reject", id, note(Some(reason))),
        RequestCmd::Withdraw { id, note: n, conn } => (conn, "withdraw", id, note(n)),
    };
    let (c, out) = client(&conn)?;
    requests::act(&c, id, action, &body, out).await
}

async fn env_lb(cmd: EnvLbCmd) -> Result<()> {
    match cmd {
        EnvLbCmd::Set(args) => {
            let LbSetArgs {
                project,
                env,
                driver,
                select,
                backend,
                upstream,
                file,
                reload,
                socket,
                haproxy_backend,
                drain,
                ready,
                conn,
            } = *args;
            let (c, out) = client(&conn)?;
            // Every option given goes to the server, which refuses those the
            // driver does not take, naming them.
            let options = [
                ("upstream", upstream),
                ("file", file),
                ("reload", reload),
                ("socket", socket),
                ("haproxy-backend", haproxy_backend),
                ("drain", drain),
                ("ready", ready),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect();
            let req = SetLoadBalancer { driver, select, backend, options };
            ferry_cli::lb::set(&c, &project, &env, req, out).await
        }
        EnvLbCmd::Show { project, env, conn } => {
            let (c, out) = client(&conn)?;
            ferry_cli::lb::show(&c, &project, &env, out).await
        }
        EnvLbCmd::Unset { project, env, conn } => {
            let (c, _) = client(&conn)?;
            ferry_cli::lb::unset(&c, &project, &env).await
        }
    }
}

async fn lb_change(args: LbChangeArgs, drain: bool) -> Result<()> {
    let (c, out) = client(&args.conn)?;
    let wait = (!args.no_wait).then_some(args.timeout);
    ferry_cli::lb::change(&c, &args.project, &args.env, args.hosts, drain, wait, out).await
}

fn var_query(scope: VarScopeArgs) -> VarQuery {
    VarQuery { env: scope.env, host: scope.host }
}

async fn agent_upgrade(cmd: AgentUpgradeCmd) -> Result<()> {
    use ferry_cli::agent_upgrade as up;
    match cmd {
        AgentUpgradeCmd::Upload { file, version, conn } => {
            let (c, out) = client(&conn)?;
            up::upload(&c, &file, &version, out).await
        }
        AgentUpgradeCmd::List { conn } => {
            let (c, out) = client(&conn)?;
            up::list(&c, out).await
        }
        AgentUpgradeCmd::Set { project, env, version, conn } => {
            let (c, out) = client(&conn)?;
            up::set(&c, &project, &env, &version, out).await
        }
        AgentUpgradeCmd::Status { project, env, conn } => {
            let (c, out) = client(&conn)?;
            up::status(&c, &project, &env, out).await
        }
    }
}
