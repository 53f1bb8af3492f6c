//! The command line, as clap sees it. `--help` on any command explains it.
//!
//! Long file: every command's flags and their `--help` texts, in clap's derive
//! form, one place to read the whole command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "ferry",
    // Version, commit and build date, stamped by build.rs.
    version = env!("FERRY_VERSION_LONG"),
    about = "Ferry: build, store and roll out releases to a fleet of hosts",
    long_about = "Ferry: build, store and roll out releases to a fleet of hosts.\n\n\
        One binary is the server (`ferry server`), the agent on every host (`ferry agent`) and the \
        command-line client (every other command). Try `ferry dev` for the whole system on one machine.",
    after_help = ferry_cli::exit::EXIT_STATUS_SHORT,
    after_long_help = ferry_cli::exit::EXIT_STATUS
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How log lines look on standard error: text, or json (one JSON object per line: timestamp, level,
    /// target, message, fields). Which lines: FERRY_LOG (or RUST_LOG; FERRY_LOG wins), e.g. debug or
    /// info,ferry_agent=debug
    #[arg(long, env = "FERRY_LOG_FORMAT", value_enum, global = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The shape of log lines.
#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// For people: one line per event, coloured on a terminal (not with NO_COLOR set)
    Text,
    /// For log collectors: one JSON object per line
    Json,
}

/// Where the client finds the server.
#[derive(Args, Clone)]
pub struct Conn {
    /// Server URL, e.g. https://ferry.example:7070
    #[arg(long, env = "FERRY_SERVER", global = true)]
    pub server: Option<String>,
    /// Also trust this CA certificate (PEM) for an https server: a private CA or the server's self-signed
    /// certificate. The public web roots and the system's CA store (SSL_CERT_FILE, SSL_CERT_DIR) are always trusted
    #[arg(long, env = "FERRY_CA_CERT", global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// API token (see DATA/admin.token on the server; default, also when empty: the one `ferry login` saved)
    #[arg(long, env = "FERRY_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// How read commands print their answer
    #[arg(long, short = 'o', value_enum, global = true, default_value_t = OutputArg::Table)]
    pub output: OutputArg,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OutputArg {
    Table,
    Json,
    /// Comma-separated values (`ferry audit` only)
    Csv,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the whole system on this machine: a server, local agents and a sample project
    #[command(long_about = DEV_ABOUT)]
    Dev(DevArgs),
    /// Run the control-plane server
    Server(ServerArgs),
    /// Run the agent on a host
    Agent(AgentArgs),
    /// Services supervised by the agent on this host: status, start, stop, restart, logs
    Svc(SvcArgs),
    /// Create and list projects; limit the hosts a project may use
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Create, change and list environments (hosts chosen by tags); their rollout defaults and load balancers
    #[command(subcommand)]
    Env(EnvCmd),
    /// Take hosts out of an environment's load balancer and put them back (maintenance by hand)
    #[command(subcommand)]
    Lb(LbCmd),
    /// Upload, list and download releases; mark them bad or good
    #[command(subcommand)]
    Release(ReleaseCmd),
    /// Short for `ferry release list PROJECT`
    Releases {
        /// Project name
        project: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Configuration kept out of the repository: variables per project, environment and host; secrets
    #[command(subcommand, long_about = VAR_ABOUT)]
    Var(VarCmd),
    /// Build a branch, tag or commit of a project's repository; or show, log, cancel, retry a build
    Build(BuildArgs),
    /// A project's builds, newest first
    Builds {
        /// Project name
        project: String,
        /// How many to list
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        conn: Conn,
    },
    /// Deploy a version to an environment, or to some of its hosts
    #[command(long_about = DEPLOY_ABOUT)]
    Deploy(DeployArgs),
    /// Deploy the version one environment runs to the next (e.g. staging to prod)
    #[command(long_about = PROMOTE_ABOUT)]
    Promote(PromoteArgs),
    /// Take hosts back to the version each ran before (or --to V); relinks where the release is still on the host
    #[command(long_about = ROLLBACK_ABOUT)]
    Rollback(RollbackArgs),
    /// Which version runs on which host, per environment
    Status {
        /// Project name
        project: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Agent binaries on the server, and upgrading an environment's agents to one (administrators)
    #[command(subcommand, name = "agent-upgrade", long_about = AGENT_UPGRADE_ABOUT)]
    AgentUpgrade(AgentUpgradeCmd),
    /// Every enrolled host: tags, online state, last heartbeat, agent version and binary
    Hosts {
        #[command(flatten)]
        conn: Conn,
    },
    /// Change one host (administrators): its tags, or remove it
    #[command(subcommand)]
    Host(HostCmd),
    /// Join tokens limited to certain tags, for whoever sets up hosts of one kind (administrators)
    #[command(subcommand)]
    JoinToken(JoinTokenCmd),
    /// Recent deployments of a project, newest first
    Deployments {
        /// Project name
        project: String,
        /// How many to list
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        conn: Conn,
    },
    /// One deployment: show, log, pause, resume, promote, cancel, retry
    #[command(subcommand)]
    Deployment(DeploymentCmd),
    /// Freeze an environment: deployments there are refused until the freeze ends or is lifted
    #[command(long_about = LOCK_ABOUT)]
    Lock {
        /// Project name
        project: String,
        /// Environment name
        env: String,
        /// Why: shown to everyone the freeze stops (required)
        #[arg(long, required = true)]
        reason: String,
        /// How long the freeze lasts, e.g. 30m, 2h, 1day (required; at least 1s, at most 30days). It ends by
        /// itself then
        #[arg(long = "for", value_name = "DURATION", required = true)]
        duration: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Lift the freeze of an environment before it ends by itself
    Unlock {
        /// Project name
        project: String,
        /// Environment name
        env: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The audit trail: who changed what, when, from where, with what outcome; `verify` checks it
    #[command(long_about = AUDIT_ABOUT)]
    Audit(AuditArgs),
    /// Sign in with a user name and password: a new API token is kept in ~/.config/ferry/credentials.json
    /// (mode 0600) and used when neither --token nor FERRY_TOKEN is given
    Login {
        /// Server URL, e.g. https://ferry.example:7070
        url: String,
        /// User name
        #[arg(long)]
        user: String,
        /// Also trust this CA certificate (PEM) for an https server: a private CA or the server's self-signed
        /// certificate. The public web roots and the system's CA store (SSL_CERT_FILE, SSL_CERT_DIR) are always trusted
        #[arg(long, env = "FERRY_CA_CERT", value_name = "FILE")]
        ca_cert: Option<PathBuf>,
        /// Read the password from the first line of standard input
        #[arg(long, required = true)]
        password_stdin: bool,
        /// What to call the token (shown by `ferry token list`)
        #[arg(long, default_value = "login")]
        token_name: String,
    },
    /// Who the API token in use belongs to, and their rights
    Whoami {
        #[command(flatten)]
        conn: Conn,
    },
    /// Users (administrator only): create, set, list, disable, enable
    #[command(subcommand)]
    User(UserCmd),
    /// Your API tokens: create, list, revoke
    #[command(subcommand)]
    Token(TokenCmd),
    /// Project members and their roles: owner (manages the project), developer (builds, deploys outside
    /// production), viewer (reads)
    #[command(subcommand)]
    Member(MemberCmd),
    /// Held locks: freezes in force, and running deployments (each holds its environment's lock until it ends)
    Locks {
        /// Only this project's locks (default: every project)
        project: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Release requests: ask for a version to go to a guarded environment, test it on staging, approve, release
    #[command(subcommand, long_about = REQUEST_ABOUT)]
    Request(RequestCmd),
    /// Send a project's events (deploys and builds ending) to webhooks, chats or e-mail
    #[command(subcommand)]
    Notify(NotifyCmd),
    /// What a project's notifications sent, with every delivery attempt
    #[command(subcommand)]
    Notifications(NotificationsCmd),
    /// Deployment statistics per environment: deploys, successes, failures, rollbacks and delivery metrics
    #[command(long_about = STATS_ABOUT)]
    Stats {
        /// Project name
        project: String,
        /// Only this environment (default: every environment of the project)
        #[arg(long)]
        env: Option<String>,
        /// The period: deployments created during the last DURATION, e.g. 7d, 30d, 12h
        #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = humantime::parse_duration)]
        since: Duration,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print a shell completion script to standard output
    #[command(long_about = COMPLETIONS_ABOUT)]
    Completions {
        /// The shell the script is for
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Write man pages (ferry.1 and one per subcommand, e.g. ferry-deploy.1) into a directory
    #[command(long_about = MAN_ABOUT)]
    Man {
        /// Directory to write the pages into (created when missing; pages already there are replaced)
        dir: PathBuf,
    },
}

/// `ferry completions --help`: where each shell looks for the script.
const COMPLETIONS_ABOUT: &str = "Print a shell completion script to standard output. Install it where \
your shell looks for completions, e.g.\n\n  \
ferry completions bash > /etc/bash_completion.d/ferry   (or ~/.local/share/bash-completion/completions/ferry)\n  \
ferry completions zsh > /usr/local/share/zsh/site-functions/_ferry\n  \
ferry completions fish > ~/.config/fish/completions/ferry.fish\n\n\
The Debian package installs all three.";

/// `ferry man --help`.
const MAN_ABOUT: &str = "Write man pages into DIR: ferry.1 for the whole command and one page per \
subcommand (ferry-deploy.1, ferry-env-create.1, ...), the same text as --help. Read one with \
`man -l DIR/ferry-deploy.1`, or install them under /usr/local/share/man/man1. The Debian package installs them.";

/// The shells `ferry completions` writes a script for.
#[derive(Clone, Copy, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// `ferry audit --help`: what the trail holds.
const AUDIT_ABOUT: &str = "The audit trail: every request that changes something (and every denied attempt: \
a missing, unknown or wrong token) is recorded with its actor, time, source address, action (method and route), \
object (project, environment, id ...), outcome (HTTP status and error) and a summary of what it asked for. \
Secrets never appear in it: secret variable values, webhook secrets, passwords and tokens are shown as ***.

Entries are listed newest first. The trail is append-only and each entry is chained to the one before by an \
HMAC under the server's audit key, kept outside the database; the server also keeps a checkpoint of the newest \
entry outside the database. `ferry audit verify` recomputes the chain, checks it still reaches the checkpoint, \
names the first entry that does not match, and prints the checkpoint (SEQ:HASH): keep it elsewhere, and \
`ferry audit verify --since-checkpoint SEQ:HASH` checks later that the trail still holds that entry.";

/// `ferry audit`: filters, or `verify`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: Option<AuditCmd>,
    /// Only entries about this project
    #[arg(long)]
    pub project: Option<String>,
    /// Only entries of this user (or `agent:HOST`, `anonymous`, `invalid token`)
    #[arg(long)]
    pub user: Option<String>,
    /// Only entries since then: a duration back from now (24h, 7days) or an RFC 3339 time
    #[arg(long)]
    pub since: Option<String>,
    /// How many to list, newest first
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Recompute the hash chain and check it reaches the server's checkpoint; fails naming the first entry that
    /// does not match
    Verify {
        /// Also check that the trail still holds this entry with this hash (a checkpoint `verify` printed
        /// earlier and you kept elsewhere)
        #[arg(long, value_name = "SEQ:HASH")]
        since_checkpoint: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
pub enum NotifyCmd {
    /// Send these events of a project to a webhook, by e-mail or to a chat (slack, dingtalk, feishu, wecom)
    #[command(long_about = NOTIFY_ABOUT)]
    Add {
        /// Project name
        project: String,
        /// Comma-separated: build.finished, deploy.started, deploy.finished, deploy.failed, deploy.rolled_back,
        /// request.approval_needed, request.approved, project.changed, rollback.emergency
        #[arg(long = "event", value_name = "EVENTS", required = true)]
        events: String,
        /// webhook (Ferry's signed JSON), email, slack, dingtalk, feishu or wecom
        #[arg(long, value_name = "KIND", default_value = "webhook")]
        kind: String,
        /// Where the JSON is POSTed (http or https): the webhook, or the chat's incoming-webhook address
        #[arg(long, alias = "webhook", value_name = "URL")]
        url: Option<String>,
        /// E-mail rules: members, approvers, starter or addresses, comma-separated
        #[arg(long, value_name = "WHOM")]
        to: Option<String>,
        /// Webhook rules: signs each body (HMAC-SHA256 in x-ferry-signature); `-` reads it from standard input
        #[arg(long, value_name = "SECRET")]
        secret: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// A project's notification rules
    List {
        /// Project name
        project: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove a rule (what it delivered stays in the log)
    Remove {
        /// Project name
        project: String,
        /// The rule's id (`ferry notify list`)
        id: i64,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
pub enum NotificationsCmd {
    /// Notifications newest first, each with its delivery attempts
    Log {
        /// Project name
        project: String,
        /// How many to list
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `ferry notify add --help`: what each channel gets, and whom e-mail reaches.
const NOTIFY_ABOUT: &str = "Send these events of a project through one channel (--kind).

webhook (the default): a JSON POST to --url: {\"event\", \"project\", \"at\", \"data\"} (data: the deployment, \
build or change), with the headers x-ferry-event, x-ferry-delivery (the same on every attempt) and, when a secret \
is given, x-ferry-signature: sha256=<hex HMAC-SHA256 of the body>.

slack, dingtalk, feishu, wecom: a text message to the chat's incoming-webhook --url, in that chat's format.

email: a plain-text mail through the server's SMTP settings (`ferry server --smtp-url`; without them e-mail \
rules are refused). --to says whom: members (every member of the project), approvers (members with the owner \
role, and members with the production right), starter (who started the build, deployment or request the event \
is about, or changed the project), or e-mail addresses. Users get mail at their address (`ferry user set NAME \
--email ADDR`); users without one are skipped, and the log says so. Recipients are resolved when the event \
happens; one event reaches an address once. An emergency rollback (rollback.emergency) goes to every member \
through every e-mail rule, whatever events and recipients the rule names.

A delivery counts when the receiver answers 2xx (and a chat does not answer an error code), or the mail server \
takes the mail; otherwise it is tried again after 1s, 2s, 4s ... (8 attempts in all). `ferry notifications log \
PROJECT` shows every notification, its recipients and every attempt.";

/// `ferry stats --help`: what each number means.
const STATS_ABOUT: &str = "Deployment statistics per environment over a period (default: the last 30 days), \
counting the deployments created in it that have ended (running ones are left out).

deployments: deploys and rollbacks; succeeded, failed (of which put back automatically), canceled.
mean duration: from creation to end, of those that succeeded or failed.
deployment frequency: deploys that succeeded, per day of the period.
lead time: the median time from a release's commit to the end of its successful deploy; only releases built \
from git have a commit time.
change failure rate: deploys that failed, or were followed by a rollback in the same environment before the \
next deploy, divided by the deploys (a deploy canceled by hand is not a change, unless a rollback followed it).
time to restore: the median time from the end of such a failed deploy to the end of the next deployment in \
the environment that succeeded; failures not restored yet are counted apart.

With --output json: the numbers, durations in milliseconds.";

/// `ferry lock --help`: what a freeze does and does not do.
const ROLLBACK_ABOUT: &str = "Take hosts of an environment back, per host (R9, R11).

Each targeted host (the environment's, or --hosts) goes back to the release that ran successfully on it \
before the one it is meant to run now, passing over releases marked bad, whatever the environment's desired \
version says: after `ferry deploy P prod --version v2 --hosts a`, `ferry rollback P prod --hosts a` takes a \
back to the v1 it ran. Hosts can go to different versions; the rollback names each (`a: v2 -> v1`). A \
release that was only in flight on a host (installing, a hook still running, or failed) never counts as run.

With --to V every targeted host goes to V. A host that already runs its target, or that never ran anything \
earlier, is left as is and the rollback says so; when that is every targeted host, nothing is recorded and \
the command fails, saying why.

--emergency: when minutes matter. Every host at once, no gates, through a freeze, and it takes over from a \
deployment still running in the environment: each of that deployment's hosts goes to the release it last ran \
successfully (never the one in flight), and an install still running for it on a host (its hook's whole \
process group) is stopped at once.";

const LOCK_ABOUT: &str = "Freeze an environment: while the freeze is in force, every deployment and rollback \
there is refused, naming who froze it, why and until when. Deployments from --auto-deploy-branch are refused \
the same way, and --force does not pass a freeze. Only an emergency rollback (`ferry rollback --emergency`) \
goes through, and its record says so.

A freeze is the deployment lock of the environment (R19) taken by hand. It is held on the server (in its \
database), not on the hosts: hosts keep running what they run, and a host that joins still gets the \
environment's current version. A running deployment holds the same lock until it ends; `ferry locks` lists \
both.

--for is required: a freeze always ends by itself (at most 30days), so a forgotten one cannot block deploys \
forever. `ferry unlock PROJECT ENV` lifts it earlier. An environment that is already frozen is not frozen \
again: the error names who holds the freeze; to change a freeze, lift it and take it anew.";

const DEV_ABOUT: &str = "Run the whole system on this machine: a server, local agents and a sample project \
with release v1 deployed. The banner prints the URL, a web user and its password (random, made on the first \
start and kept in DATA/web-user.password, so a restart prints it again) and the admin API token's file.

Run as root (a container, CI, a fresh VM), the agents run releases' services as an unprivileged user: the one \
FERRY_SERVICE_USER names, else `ferry-svc`, created if missing (useradd --system), else `nobody`; the banner \
says which. Running `ferry dev` again resumes the same state.";

#[derive(Args)]
pub struct DevArgs {
    /// Directory for the database, the artifact store and the agents' roots
    #[arg(long, default_value = ".ferry-dev")]
    pub data: PathBuf,
    /// Address the server listens on
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Number of local agents (dev-1 .. dev-N, tagged role=web)
    #[arg(long, default_value_t = 3)]
    pub agents: u32,
}

#[derive(Args)]
pub struct ServerArgs {
    /// Directory for the database, the artifact store and the token files
    #[arg(long, env = "FERRY_DATA")]
    pub data: PathBuf,
    /// Address to listen on (port 0 picks a free port; the URL is written to DATA/server.url)
    #[arg(long, env = "FERRY_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// How often agents send a heartbeat
    #[arg(long, env = "FERRY_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// A host silent for this long is marked offline
    #[arg(long, env = "FERRY_HEARTBEAT_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub heartbeat_timeout: Duration,
    /// How often every agent is sent its full desired state again, to re-check its host
    #[arg(long, env = "FERRY_RESYNC_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub resync_interval: Duration,
    /// Builds that may run at once (one per project at most)
    #[arg(long, env = "FERRY_BUILD_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub build_workers: u16,
    /// How build scripts (code anyone who can push may change) are walled off from the server: auto
    /// (bubblewrap when installed, else builds are refused), bwrap (bubblewrap or do not start), none
    /// (no wall: only where you alone push). In the wall the data directory is empty, the rest of the
    /// filesystem read-only but the build's checkout, and nothing the build starts outlives it
    #[arg(long, env = "FERRY_BUILD_ISOLATION", default_value = "auto", value_name = "auto|bwrap|none")]
    pub build_isolation: ferry_server::build_sandbox::Isolation,
    /// The unprivileged user builds run as when the server runs as root
    #[arg(long, env = "FERRY_BUILD_USER", default_value = "nobody")]
    pub build_user: String,
    /// SMTP server for e-mail notifications: smtp://HOST:PORT (plain), smtp://HOST:PORT?tls=required
    /// (STARTTLS), smtps://HOST:PORT (TLS from the start); credentials as smtps://USER:PASSWORD@HOST
    #[arg(long, env = "FERRY_SMTP_URL", hide_env_values = true, value_name = "URL", requires = "smtp_from")]
    pub smtp_url: Option<String>,
    /// The From address of notification mails
    #[arg(long, env = "FERRY_SMTP_FROM", value_name = "ADDRESS", requires = "smtp_url")]
    pub smtp_from: Option<String>,
    /// Mark the web interface's session cookie Secure: set it when browsers reach the server over https
    /// through a proxy that ends TLS (always on with --tls-cert)
    #[arg(long, env = "FERRY_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Serve HTTPS (API, agent channel, web interface) with this certificate, PEM: the server's certificate
    /// first, then any intermediate CA certificates. Needs --tls-key. SIGHUP reads both files again: new
    /// connections get the new pair, open ones keep theirs; a bad pair is refused in the log and the old one stays
    #[arg(long, env = "FERRY_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert, PEM (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, env = "FERRY_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How long a web interface session lasts after signing in
    #[arg(long, env = "FERRY_SESSION_TTL", default_value = "12h", value_parser = humantime::parse_duration)]
    pub session_ttl: Duration,
    /// Read settings from this TOML file: one key per long flag, `flag-name = "value"` (or flag_name), true
    /// or false for a flag without a value. A flag beats its FERRY_* variable, which beats the file, which
    /// beats the built-in default
    #[arg(long, env = "FERRY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective settings as TOML (loadable by --config; secrets left out) and exit
    #[arg(long)]
    pub print_config: bool,
    /// The address people reach the web interface at, e.g. https://ferry.example (behind a proxy it
    /// differs from --listen): notifications link to pages below it. http or https, no credentials.
    /// Default: the server's own URL
    #[arg(long, env = "FERRY_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// The bearer token Prometheus scrapes GET /metrics with (at least 16 characters; prefer the
    /// environment variable, arguments are visible to every user of the host). Administrators' API
    /// tokens are accepted too; without either, /metrics answers 401
    #[arg(long, env = "FERRY_METRICS_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub metrics_token: Option<String>,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub action: Option<AgentCmd>,
    /// Server URL, e.g. https://ferry.example:7070
    #[arg(long, env = "FERRY_SERVER", required = true)]
    pub server: Option<String>,
    /// Also trust this CA certificate (PEM) for an https server: a private CA or the server's self-signed
    /// certificate. The public web roots and the system's CA store (SSL_CERT_FILE, SSL_CERT_DIR) are always trusted
    #[arg(long, env = "FERRY_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Join token for the first start (DATA/join.token on the server); later starts use the stored credential
    #[arg(long, env = "FERRY_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// This host's name in Ferry
    #[arg(long, env = "FERRY_NAME", required = true)]
    pub name: Option<String>,
    /// Tags, e.g. role=web,dc=bj; environments select hosts by them
    #[arg(long, env = "FERRY_TAGS", default_value = "")]
    pub tags: String,
    /// The address load balancers reach this host at (FERRY_HOST_ADDRESS in `ferry env lb set --backend`):
    /// an IP address or host name. Default: the address the server sees the agent connect from
    #[arg(long, env = "FERRY_ADDRESS")]
    pub address: Option<String>,
    /// Directory holding the agent's credential, content store and every project's releases
    #[arg(long, env = "FERRY_ROOT", required = true)]
    pub root: Option<PathBuf>,
    /// How often the host is re-checked against its desired state
    #[arg(long, env = "FERRY_CHECK_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub check_interval: Duration,
    /// When the agent runs as root: the user services run as unless their ferry.toml names one
    /// ([service] user). Without either, the agent refuses to run a service as root.
    #[arg(long, env = "FERRY_SERVICE_USER")]
    pub service_user: Option<String>,
    /// Let releases that ask for it ([service] allow_root = true) run their service as root. Without
    /// this a release cannot: any developer may upload one
    #[arg(long, env = "FERRY_ALLOW_ROOT_SERVICES")]
    pub allow_root_services: bool,
    /// After the agent replaced itself with a new binary (`ferry agent-upgrade`): how long the new binary has
    /// to connect to the server before the old one is put back and started again
    #[arg(long, env = "FERRY_UPGRADE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub upgrade_timeout: Duration,
    /// Read settings from this TOML file: one key per long flag, `flag-name = "value"` (or flag_name), true
    /// or false for a flag without a value. A flag beats its FERRY_* variable, which beats the file, which
    /// beats the built-in default
    #[arg(long, env = "FERRY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective settings as TOML (loadable by --config; secrets left out) and exit
    #[arg(long)]
    pub print_config: bool,
}

/// `ferry agent-upgrade --help`.
const AGENT_UPGRADE_ABOUT: &str = "Agents replace themselves with a binary the server holds.

  ferry agent-upgrade upload FILE --version LABEL   store a binary (the server computes its SHA-256 and signs it)
  ferry agent-upgrade list                          the binaries: version, SHA-256, size, who uploaded them, when
  ferry agent-upgrade set PROJECT ENV LABEL         upgrade the environment's agents, batch by batch
  ferry agent-upgrade status PROJECT ENV            per host: what it runs, the target, its state, any error

`set` uses the environment's rollout strategy: the next batch starts once every agent of the batch came \
back running the new binary. An agent checks the server's signature and the binary's SHA-256 before it runs \
it, keeps the old binary beside the new one, and goes back to it by itself when the new one does not \
connect within its --upgrade-timeout; the host then reports the failure and the upgrade stops as failed. \
Services keep running throughout. Uploading and setting are for administrators: an agent binary runs as \
root on every host.";

/// `ferry agent-upgrade`.
#[derive(Subcommand)]
pub enum AgentUpgradeCmd {
    /// Upload an agent binary under a version label
    Upload {
        /// The binary (a `ferry` executable for the hosts' platform)
        file: PathBuf,
        /// Its label, shown by `ferry hosts` once agents run it
        #[arg(long)]
        version: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The agent binaries the server holds
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Upgrade the agents of an environment's hosts to an uploaded binary
    Set {
        /// Project name
        project: String,
        /// Environment name: its hosts and its rollout strategy
        env: String,
        /// The binary's version label
        version: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The environment's latest agent upgrade, per host
    Status {
        /// Project name
        project: String,
        /// Environment name
        env: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `ferry svc`: the services the local agent supervises.
#[derive(clap::Args)]
pub struct SvcArgs {
    /// The agent's --root
    #[arg(long, required = true)]
    pub root: Option<PathBuf>,
    /// How status prints
    #[arg(long, short = 'o', value_enum, global = true, default_value_t = OutputArg::Table)]
    pub output: OutputArg,
    #[command(subcommand)]
    pub action: SvcCmd,
}

#[derive(Subcommand)]
pub enum SvcCmd {
    /// Each service: state, pid, uptime, restarts, last exit
    Status {
        /// Project (default: all)
        project: Option<String>,
    },
    /// Start the service of the project's active release (clears a stop)
    Start {
        /// Project name
        project: String,
    },
    /// Stop the service: its stop signal, then SIGKILL after stop_timeout. It stays stopped until
    /// started again or deployed
    Stop {
        /// Project name
        project: String,
    },
    /// Stop, then start the service
    Restart {
        /// Project name
        project: String,
    },
    /// The service's output, from shared/log/ (works without the agent)
    Logs {
        /// Project name
        project: String,
        /// Lines to show from each stream
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: usize,
        /// Only stdout or stderr
        #[arg(long, value_parser = ["stdout", "stderr"])]
        stream: Option<String>,
        /// Keep printing new output until interrupted
        #[arg(short, long)]
        follow: bool,
    },
}

/// What an operator can do on a host without the server.
#[derive(Subcommand)]
pub enum AgentCmd {
    /// Roll a project back on this host, without the server: relink `current` to a release still on disk.
    /// The agent keeps it so (and reports it) until the server deploys something else.
    Rollback {
        /// The agent's --root
        #[arg(long, env = "FERRY_ROOT")]
        root: PathBuf,
        /// Project name
        project: String,
        /// Release directory name or version (default: the newest other release on disk)
        #[arg(long)]
        to: Option<String>,
    },
    /// Started by the agent itself during an upgrade: puts the old binary back if the new one does not
    /// confirm in time
    #[command(hide = true)]
    UpgradeGuard {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        exe: PathBuf,
        #[arg(long)]
        backup: PathBuf,
        #[arg(long)]
        pid: i32,
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// The agent's own arguments
        #[arg(last = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Subcommand)]
pub enum ProjectCmd {
    /// Create a project
    Create {
        name: String,
        /// Releases kept on each host, the active one included
        #[arg(long)]
        keep_releases: Option<u32>,
        /// Git repository to build from: any URL the server's git can fetch (file://, https://, ssh)
        #[arg(long)]
        repo: Option<String>,
        /// Secret that push webhooks must carry (HMAC key for GitHub/Gitea/Gerrit, token for GitLab)
        #[arg(long, env = "FERRY_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: Option<String>,
        /// Branches whose pushes build, e.g. main,release/* (default: all)
        #[arg(long, value_delimiter = ',')]
        branches: Vec<String>,
        /// Push each build's version tag back to the repository
        #[arg(long)]
        push_tags: bool,
        /// The hosts this project's environments may select, e.g. team=shop: every environment's
        /// selector must then include these tags (default: any host)
        #[arg(long, value_name = "K=V,...")]
        hosts: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Limit the hosts a project's environments may select (administrators)
    #[command(long_about = "Limit the hosts a project's environments may select (administrators).\n\n\
        With `ferry project hosts shop team=shop`, every environment of shop must select within \
        team=shop (e.g. team=shop,role=web), so a project owner cannot point the project, its hooks and \
        its service at another team's hosts. Existing environments must already fit. --any lifts the limit.")]
    Hosts {
        /// Project name
        project: String,
        /// Tags every host of the project has, e.g. team=shop
        #[arg(value_name = "K=V,...", required_unless_present = "any")]
        scope: Option<String>,
        /// Let the project's environments select any host
        #[arg(long, conflicts_with = "scope")]
        any: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// List projects
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Change a project: releases kept, repository, branches, tags, webhook secret
    #[command(
        long_about = "Change a project; what is not given keeps its value.\n\n\
        Project owners change --keep-releases, --branches, --push-tags and --webhook-secret; a new --repo is the \
        administrator's, as at creation. The hosts the project may use are changed with `ferry project hosts` \
        (administrators).",
        group(clap::ArgGroup::new("change").required(true).multiple(true)
            .args(["keep_releases", "repo", "webhook_secret", "branches", "push_tags"]))
    )]
    Update {
        /// Project name
        project: String,
        /// Releases kept on each host, the active one included (1-100)
        #[arg(long)]
        keep_releases: Option<u32>,
        /// Git repository to build from (administrators); "" stops building from git
        #[arg(long)]
        repo: Option<String>,
        /// Secret that push webhooks must carry; "" removes it (webhooks are then refused)
        #[arg(long, env = "FERRY_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: Option<String>,
        /// Branches whose pushes build, e.g. main,release/*; "" for all
        #[arg(long, value_delimiter = ',')]
        branches: Option<Vec<String>>,
        /// Push each build's version tag back to the repository
        #[arg(long, value_name = "true|false")]
        push_tags: Option<bool>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a project (administrators); its history stays readable and its name stays taken
    #[command(long_about = "Delete a project (administrators; audited).\n\n\
        The project and its environments disappear from lists and can no longer be deployed, built or changed. \
        Nothing is lost: `ferry deployments P`, `ferry deployment ID`, `ferry builds P`, `ferry releases P` and \
        `ferry audit` still show its history, and its name stays taken so that the history always names one \
        project. Hosts stop being given its releases; what they run stays as it is. Refused while a deployment \
        runs or a build is queued or running.")]
    Delete {
        /// Project name
        project: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
pub enum JoinTokenCmd {
    /// Make a join token whose hosts may only have these tags (printed once)
    #[command(long_about = "Make a join token whose hosts may only have these tags (printed once).\n\n\
        The server's own join.token enrols hosts with any tags. Give a team this one instead: a host \
        enrolling with it gets the tags it asks for only if the token allows each of them (and the \
        token's tags if it asks for none), so it cannot join another team's environments.")]
    Create {
        /// The tags allowed, e.g. team=shop,role=web
        #[arg(long, value_name = "K=V,...")]
        tags: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List the limited join tokens (never their secrets)
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Revoke a join token: no host enrols with it any more (enrolled hosts keep working)
    Revoke {
        /// The token's id, from `ferry join-token list`
        id: i64,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
pub enum HostCmd {
    /// Replace a host's tags (administrators; audited)
    #[command(long_about = "Replace a host's tags (administrators; audited).\n\n\
        Tags decide which environments a host belongs to, and so which releases and secrets it receives. \
        A host gets its tags when it enrols (the agent's --tags); after that only this command changes \
        them: an agent restarted with other --tags keeps its enrolled ones, and `ferry hosts` shows what it \
        asked for.")]
    Tag {
        /// Host name
        host: String,
        /// All of the host's tags from now on, e.g. role=web,dc=bj
        #[arg(value_name = "K=V,...")]
        tags: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove a host (administrators; audited): its agent is refused, its name can enrol again
    #[command(long_about = "Remove a host (administrators; audited).\n\n\
        For a host that was wiped, replaced or is gone for good. Its agent's credential is refused from now on \
        and its connection is closed; the server stops assigning it releases. Its history stays: deployments and \
        logs that name it show it as NAME~ID. A new agent can then enrol under the same name with a join token \
        (a wiped host, re-installed). Variables set for the name (`ferry var set --host NAME`) are kept and reach \
        the next host enrolled under it; unset them to drop them. Refused while the host is a target of a \
        running deployment.")]
    Remove {
        /// Host name
        host: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a user with a password (read from standard input)
    Create {
        /// User name
        name: String,
        /// An administrator: may do everything
        #[arg(long)]
        admin: bool,
        /// The production right: may deploy to and roll back production environments of their projects
        #[arg(long)]
        production: bool,
        /// Read the password from the first line of standard input
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Where the user's e-mail notifications go
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Change a user: e-mail address, administrator flag, production right
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["email", "admin", "production"])))]
    Set {
        /// User name
        name: String,
        /// Where the user's e-mail notifications go ("" clears it: e-mail rules then skip the user)
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
        /// true: an administrator (everything, users included); false: not
        #[arg(long, value_name = "true|false")]
        admin: Option<bool>,
        /// true: may deploy to and approve for production environments of their projects; false: may not
        #[arg(long, value_name = "true|false")]
        production: Option<bool>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List users
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Disable a user: their tokens and password stop working at once
    Disable {
        /// User name
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Enable a disabled user again
    Enable {
        /// User name
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create an API token for yourself (printed once)
    Create {
        /// What to call it, e.g. ci
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List your API tokens
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Revoke one of your API tokens
    Revoke {
        /// Its id (see `ferry token list`)
        id: i64,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
pub enum MemberCmd {
    /// Give a user a role in a project (replacing the one they had)
    Add {
        /// Project name
        project: String,
        /// User name
        user: String,
        /// owner, developer or viewer
        role: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove a user from a project
    Remove {
        /// Project name
        project: String,
        /// User name
        user: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// A project's members and their roles
    List {
        /// Project name
        project: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
pub enum EnvCmd {
    /// Create an environment of a project; it contains the hosts whose tags match --select
    Create {
        /// Project name
        project: String,
        /// Environment name
        env: String,
        /// Tags a host needs, e.g. role=web or role=web,dc=bj
        #[arg(long)]
        select: String,
        /// Deploy every successful build of this branch here at once (continuous deploy)
        #[arg(long)]
        auto_deploy_branch: Option<String>,
        /// A production environment: only users with the production right deploy and roll back here
        #[arg(long)]
        production: bool,
        /// Deployments here need an approved release request (`ferry request`)
        #[arg(long)]
        require_approval: bool,
        /// Requests for this environment are first deployed to and tested on STAGING (another environment)
        #[arg(long, value_name = "STAGING")]
        staging: Option<String>,
        /// This environment comes after ENV of the project: a version is deployed here only once it succeeded
        /// on every host ENV selects (see `ferry deploy --help`)
        #[arg(long, value_name = "ENV")]
        after: Option<String>,
        /// What a target host offline when a deployment starts means: skip (default: the deployment goes on
        /// without it, with a warning, and it converges when it returns if the deployment succeeded; a deploy
        /// whose every target is offline is refused), wait (for it, up to the deploy's --offline-timeout), fail
        /// (the deploy is refused, naming it). A host that stops answering during its batch fails after 3 missed
        /// heartbeats (under wait: after the timeout)
        #[arg(long, value_name = "skip|wait|fail")]
        offline: Option<ferry_domain::OfflinePolicy>,
        /// The environment's default rollout (deploys may override it)
        #[command(flatten)]
        rollout: RolloutArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Change an environment: its hosts (--select), its offline policy, its protection and order
    #[command(
        long_about = "Change an environment; what is not given keeps its value.\n\n\
        --select and --offline need the owner role (changing which hosts a production environment selects also \
        needs the production right); --production, --require-approval, --staging, --after and --self-test need \
        the production right.\n\n\
        A new --select must stay inside the project's host scope (`ferry project hosts`) and overlap no other \
        environment of the project. Hosts it now selects move here: each takes the environment's current release \
        (from the environment it left) and gets it at once; deployments here include them from now on.",
        group(clap::ArgGroup::new("change").required(true).multiple(true)
            .args(["select", "offline", "production", "require_approval", "staging", "after", "self_test"]))
    )]
    Update {
        /// Project name
        project: String,
        /// Environment name
        env: String,
        /// The tags a host needs from now on, e.g. role=web,dc=bj
        #[arg(long, value_name = "K=V,...")]
        select: Option<String>,
        /// What a target host offline when a deployment starts means: skip, wait or fail (see `env create --help`)
        #[arg(long, value_name = "skip|wait|fail")]
        offline: Option<ferry_domain::OfflinePolicy>,
        /// true: only users with the production right deploy and roll back here; false: project developers do
        #[arg(long, value_name = "true|false")]
        production: Option<bool>,
        /// true: deployments here need an approved release request (`ferry request`); false: they do not
        #[arg(long, value_name = "true|false")]
        require_approval: Option<bool>,
        /// Requests for this environment are first deployed to and tested on STAGING; `none` for nowhere
        #[arg(long, value_name = "STAGING|none")]
        staging: Option<String>,
        /// This environment comes after ENV (same project; no cycles): a version is deployed here only once
        /// it succeeded on every host of ENV (see `ferry deploy --help`); `none` for no order
        #[arg(long, value_name = "ENV|none")]
        after: Option<String>,
        /// allow: the requester may pass her own release request as tested; deny (the default): someone else
        /// must
        #[arg(long, value_name = "allow|deny", value_parser = ["allow", "deny"])]
        self_test: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Change an environment's default rollout; options not given keep their value
    SetRollout {
        /// Project name
        project: String,
        /// Environment name
        env: String,
        #[command(flatten)]
        rollout: RolloutArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// List a project's environments
    List {
        /// Project name
        project: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete an environment (owners; production environments need the production right)
    #[command(long_about = "Delete an environment (owners; a production environment also needs the production \
        right; audited).\n\n\
        Refused while a deployment runs there. Its deployments stay readable (`ferry deployments P`, \
        `ferry deployment ID`), and its name stays taken so that the history always names one environment. Its \
        hosts stop being given its release and keep what they run; its load balancer is removed, and \
        environments whose requests were tested on it are tested nowhere.")]
    Delete {
        /// Project name
        project: String,
        /// Environment name
        env: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The load balancer in front of an environment: set, show, unset
    #[command(subcommand, long_about = LB_ABOUT)]
    Lb(EnvLbCmd),
}

/// `ferry env lb --help`: how the load balancer works.
const LB_ABOUT: &str = "The load balancer in front of an environment (administrators only).

Before a rollout touches a host it leaves the load balancer, and it returns once its health check passed. \
The balancer runs on ordinary Ferry hosts chosen by --select (e.g. role=lb): their agents drive it, the server \
never connects to them.

Drivers:
  nginx    the agent writes an upstream file (--file, a .conf file nginx includes) holding `upstream --upstream \
{ server ADDRESS; server ADDRESS down; ... }` and runs --reload (default: nginx -s reload) when it changed
  haproxy  the agent sends `set server BACKEND/HOST state drain|ready` to HAProxy's stats socket (--socket, at \
level admin); the servers of --haproxy-backend must be named after the Ferry hosts
  command  the agent runs --drain or --ready for each host whose state changed, with FERRY_LB_HOST and \
FERRY_LB_ADDRESS set

A backend host's address is --backend expanded for that host: ${FERRY_HOST_ADDRESS} (its agent's --address, or \
the address it connects from), ${FERRY_HOST} (its name), and the project's variables as that host sees them in \
the environment (not secrets), e.g. --backend '${FERRY_HOST_ADDRESS}:${PORT}'.";

#[derive(Subcommand)]
pub enum EnvLbCmd {
    /// Put a load balancer in front of the environment, replacing the one it had
    #[command(long_about = LB_ABOUT)]
    Set(Box<LbSetArgs>),
    /// The load balancer, its backends (address, drained or serving) and what each load-balancer host applied
    Show {
        /// Project name
        project: String,
        /// Environment name
        env: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove the load balancer; the balancer keeps the state its hosts last gave it
    Unset {
        /// Project name
        project: String,
        /// Environment name
        env: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `ferry env lb set`.
#[derive(Args)]
pub struct LbSetArgs {
    /// Project name
    pub project: String,
    /// Environment name
    pub env: String,
    /// How the balancer is driven
    #[arg(long, value_parser = ["nginx", "haproxy", "command"])]
    pub driver: String,
    /// Tags of the load-balancer hosts, e.g. role=lb
    #[arg(long)]
    pub select: String,
    /// A backend host's address, e.g. '${FERRY_HOST_ADDRESS}:${PORT}' (default: '${FERRY_HOST_ADDRESS}')
    #[arg(long)]
    pub backend: Option<String>,
    /// nginx: the name of the upstream block
    #[arg(long)]
    pub upstream: Option<String>,
    /// nginx: the upstream file the agent owns and writes whole (a .conf file nginx includes)
    #[arg(long)]
    pub file: Option<String>,
    /// nginx: the command that reloads nginx (default: nginx -s reload)
    #[arg(long)]
    pub reload: Option<String>,
    /// haproxy: the path of the stats socket (level admin)
    #[arg(long)]
    pub socket: Option<String>,
    /// haproxy: the backend whose servers are named after the Ferry hosts
    #[arg(long)]
    pub haproxy_backend: Option<String>,
    /// command: takes $FERRY_LB_HOST ($FERRY_LB_ADDRESS) out of the balancer
    #[arg(long)]
    pub drain: Option<String>,
    /// command: puts $FERRY_LB_HOST ($FERRY_LB_ADDRESS) back
    #[arg(long)]
    pub ready: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
}

/// `ferry lb drain|ready`.
#[derive(Args)]
pub struct LbChangeArgs {
    /// Project name
    pub project: String,
    /// Environment name
    pub env: String,
    /// Hosts of the environment
    #[arg(required = true)]
    pub hosts: Vec<String>,
    /// Do not wait for the load-balancer hosts to apply the change
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the load-balancer hosts
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Subcommand)]
pub enum LbCmd {
    /// Take hosts out of the environment's load balancer (administrators only); waits until every load-balancer
    /// host applied it. They stay out, through deploys too, until `ferry lb ready`
    Drain(LbChangeArgs),
    /// Put hosts back into the environment's load balancer (administrators only); waits until every
    /// load-balancer host applied it
    Ready(LbChangeArgs),
}

/// `ferry var --help`: scopes, precedence and secrets.
const VAR_ABOUT: &str = "Configuration kept on the server, out of the repository. Hooks on the hosts see the \
variables in their environment, after Ferry's own FERRY_* ones.

A variable is set for one scope; the most specific scope that applies to a host wins:
  (no flag)          the whole project: every host of every environment
  --env E            the hosts of environment E
  --host H           host H, in whichever environment it runs the project
  --env E --host H   host H, only while it runs environment E
so env+host beats host, host beats env, env beats project.

Names are environment variable names (letters, digits and _, not starting with a digit); names starting \
with FERRY_ are Ferry's own and refused.

Secrets (--secret) are write-only: stored encrypted, never shown again by any command or API answer (lists \
show ***), and sent only to the hosts they apply to. Give the value as - to read it from standard input, \
keeping it out of the shell history: ferry var set shop DB_PASSWORD - --secret < password.txt

Changes reach the hosts with their next activation (a deploy or a rollback).";

#[derive(Args)]
pub struct VarScopeArgs {
    /// Only the hosts of this environment
    #[arg(long)]
    pub env: Option<String>,
    /// Only this host (with --env: only while it runs that environment)
    #[arg(long)]
    pub host: Option<String>,
}

#[derive(Subcommand)]
pub enum VarCmd {
    /// Set a variable, replacing its value in the same scope; VALUE - reads standard input
    #[command(long_about = VAR_ABOUT)]
    Set {
        /// Project name
        project: String,
        /// Variable name, e.g. DB_HOST
        key: String,
        /// The value; - reads it from standard input (one trailing newline removed); put -- before other values
        /// starting with -
        #[arg(allow_negative_numbers = true)]
        value: String,
        #[command(flatten)]
        scope: VarScopeArgs,
        /// Keep it secret: encrypted on the server, never shown again (lists show ***)
        #[arg(long)]
        secret: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove a variable from exactly this scope
    Unset {
        /// Project name
        project: String,
        /// Variable name
        key: String,
        #[command(flatten)]
        scope: VarScopeArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Every variable of a project with its scope; with --env/--host, what such a host sees and where it comes from
    List {
        /// Project name
        project: String,
        #[command(flatten)]
        scope: VarScopeArgs,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
pub enum ReleaseCmd {
    /// Upload a directory or a .tar / .tar.gz / .tar.zst as a new release
    Upload {
        /// Project name
        project: String,
        path: PathBuf,
        /// Version of the release, e.g. v1.2.0
        #[arg(long)]
        /// Version of the release
        version: String,
        /// Branch recorded in the release name
        #[arg(long, default_value = "upload")]
        branch: String,
        /// Committer recorded in the release name (default: $USER)
        #[arg(long)]
        committer: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List a project's releases, newest first
    List {
        /// Project name
        project: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Mark a release bad: rollbacks skip it, deploys refuse it unless --force, `ferry status` points it out
    #[command(long_about = "Mark a release bad. From then on a rollback without --to never goes back to it, \
        and deploying it (or rolling back to it with --to) is refused, naming who marked it and why, unless \
        --force is given; a forced deployment records that it was forced (see `ferry deployment show`). \
        Hosts that run the release keep running it: deploy or roll back to replace it. `ferry status` shows \
        where it still runs, and `ferry releases` shows the mark.\n\n\
        Marking a release again replaces the reason. `ferry release mark-good` clears the mark.")]
    MarkBad {
        /// Project name
        project: String,
        /// Version of the release
        version: String,
        /// Why: shown to everyone the mark stops (required)
        #[arg(long, required = true)]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Clear a release's bad mark: it can be deployed and rolled back to again
    MarkGood {
        /// Project name
        project: String,
        /// Version of the release
        version: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Save a release as one .tar.zst file
    Download {
        /// Project name
        project: String,
        /// Version of the release
        version: String,
        /// Where to write it (default: PROJECT-VERSION.tar.zst)
        #[arg(long, short = 'O')]
        output_file: Option<PathBuf>,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["version", "build"]))]
pub struct DeployArgs {
    /// Project name
    pub project: String,
    /// Environment name
    pub env: String,
    /// The version to deploy
    #[arg(long)]
    pub version: Option<String>,
    /// The release a build made: its number in the project (see `ferry builds`), or `latest`
    #[arg(long)]
    pub build: Option<String>,
    /// Deploy although the version has not succeeded on every host of the environment this one comes after
    /// (`env create|update --after`); needs the production right and --reason, which the deployment and the
    /// audit trail record
    #[arg(long, requires = "reason")]
    pub skip_promotion: bool,
    /// Why the promotion order is skipped (with --skip-promotion)
    #[arg(long, requires = "skip_promotion")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub rollout: RolloutArgs,
    #[command(flatten)]
    pub conn: Conn,
}

/// `ferry deploy --help`: the promotion order.
const DEPLOY_ABOUT: &str = "Deploy a version to an environment, or to some of its hosts.

When the environment comes after another (`ferry env create|update P prod --after staging`), a version \
goes there only once it succeeded on every host of that one: every host staging selects now must have had \
a deployment of the version to staging succeed on it, or run it now. Going back (a rollback or deploy to \
a version no newer than the one the environment last deployed successfully) is not held back; a rollback \
--to a newer version is checked like a deploy. Someone with the production right \
may skip the order with --skip-promotion --reason TEXT; the deployment and the audit trail record it.";

/// `ferry promote --help`.
const PROMOTE_ABOUT: &str = "Deploy the version one environment runs to the next: \
`ferry promote P --from staging --to prod` deploys what every host of staging runs to prod, like \
`ferry deploy P prod --version V` would: with prod's rollout, its approval requirement (if prod needs an \
approved request, use `ferry request create` instead), its freezes and its order (the version must have \
succeeded on every host of the environment prod comes after). Refused, naming them, when staging's hosts \
run mixed versions.";

#[derive(Args)]
pub struct PromoteArgs {
    /// Project name
    pub project: String,
    /// The environment whose version goes on (e.g. staging)
    #[arg(long)]
    pub from: String,
    /// The environment it goes to (e.g. prod)
    #[arg(long)]
    pub to: String,
    /// Follow progress: each host's change in order with how many of all are done (and a live count on a terminal); exit non-zero unless every host succeeded
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Args)]
pub struct RollbackArgs {
    /// Project name
    pub project: String,
    /// Environment name
    pub env: String,
    /// The version every targeted host goes to (default: per host, the one it ran before, not marked bad)
    #[arg(long)]
    pub to: Option<String>,
    /// When minutes matter (R11): every host at once, no gates or pauses, and it takes over from a
    /// deployment still running in the environment (which ends as canceled; its installs still running on
    /// hosts are stopped, and its hosts go to the release each last ran successfully); it also goes through
    /// a freeze (`ferry lock`), and its record says so
    #[arg(long, conflicts_with_all = ["strategy", "batch", "canary", "soak", "group_by", "max_failed", "pause", "approve_each_batch"])]
    pub emergency: bool,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub rollout: RolloutArgs,
    #[command(flatten)]
    pub conn: Conn,
}

/// How a deployment rolls over its hosts (R13). Each option given replaces
/// the environment's default; the rest stay.
#[derive(Args, Clone, Default)]
pub struct RolloutArgs {
    /// all-at-once, one-at-a-time, rolling (needs --batch), canary (--canary, --soak, --batch for the rest)
    /// or grouped (--group-by, optional --batch within each group)
    #[arg(long, help_heading = "Rollout")]
    pub strategy: Option<String>,
    /// Hosts per batch: a count (2) or a share of the hosts (25%)
    #[arg(long, help_heading = "Rollout")]
    pub batch: Option<String>,
    /// Canary hosts that go first: a count (1) or a tag selector (stage=pre); then the rollout waits for
    /// `ferry deployment promote`
    #[arg(long, help_heading = "Rollout")]
    pub canary: Option<String>,
    /// Canary: promote by itself once the canary has been healthy this long (e.g. 10m)
    #[arg(long, help_heading = "Rollout")]
    pub soak: Option<String>,
    /// Grouped: the tag whose values make the groups, updated one group after another (e.g. region)
    #[arg(long, help_heading = "Rollout")]
    pub group_by: Option<String>,
    /// Failed hosts tolerated before the rollout stops: a count or a share (default 0: the first failure stops it)
    #[arg(long, help_heading = "Rollout")]
    pub max_failed: Option<String>,
    /// When the rollout stops, leave updated hosts as they are instead of putting them back
    #[arg(long, help_heading = "Rollout")]
    pub no_auto_rollback: bool,
    /// Wait this long between batches (e.g. 30s)
    #[arg(long, help_heading = "Rollout")]
    pub pause: Option<String>,
    /// Every batch after the first waits for `ferry deployment promote`
    #[arg(long, help_heading = "Rollout")]
    pub approve_each_batch: bool,
}

#[derive(Args)]
pub struct TargetArgs {
    /// Only these hosts of the environment, comma-separated (default: all)
    #[arg(long, value_delimiter = ',')]
    pub hosts: Option<Vec<String>>,
    /// Follow progress: each host's change in order with how many of all are done (and a live count on a terminal); exit non-zero unless every host succeeded
    #[arg(long)]
    pub wait: bool,
    /// What a target host that is offline at the start means for this deployment, instead of the environment's
    /// policy: skip (go on without it, with a warning; it converges when it returns if the deployment succeeded;
    /// refused if every target is offline), wait (up to --offline-timeout), fail (refuse to start, naming the
    /// offline hosts). Under skip and fail a host that stops answering during its batch fails after 3 missed
    /// heartbeats
    #[arg(long, value_name = "skip|wait|fail")]
    pub offline: Option<ferry_domain::OfflinePolicy>,
    /// How long an offline target host is waited for before it counts as failed (default 60s; implies
    /// --offline wait unless --offline says otherwise)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub offline_timeout: Option<Duration>,
    /// Go ahead even if the release is marked bad; the deployment records that it was forced. Does not pass a
    /// freeze (`ferry locks`)
    #[arg(long)]
    pub force: bool,
    /// Show the plan and change nothing: the batches in order with their hosts (offline ones that would be
    /// skipped named), where each host goes and what it would download. Runs every check the real one does
    /// (rights, freeze, lock, approval, order of environments) and fails as it would, with the same exit status.
    /// With -o json, the plan as JSON
    #[arg(long, conflicts_with = "wait")]
    pub dry_run: bool,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BuildArgs {
    #[command(subcommand)]
    pub action: Option<BuildCmd>,
    /// The project to build
    #[arg(required = true)]
    pub project: Option<String>,
    /// Branch, tag or commit to build (default: main)
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// Stream the build's log and exit with its outcome
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Subcommand)]
pub enum BuildCmd {
    /// Stop a queued or running build
    #[command(long_about = BUILD_REF_ABOUT)]
    Cancel {
        #[command(flatten)]
        which: WhichBuild,
        #[command(flatten)]
        conn: Conn,
    },
    /// Build the same ref (and, for a push, the same commit) again as a new build
    #[command(long_about = BUILD_REF_ABOUT)]
    Retry {
        #[command(flatten)]
        which: WhichBuild,
        /// Stream the new build's log
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// One build in detail
    #[command(long_about = BUILD_REF_ABOUT)]
    Show {
        #[command(flatten)]
        which: WhichBuild,
        #[command(flatten)]
        conn: Conn,
    },
    /// A build's log, each line with its time; --follow streams it live until the build ends
    #[command(long_about = BUILD_REF_ABOUT)]
    Log {
        #[command(flatten)]
        which: WhichBuild,
        /// Keep streaming until the build ends; exit non-zero unless it succeeded
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

const BUILD_REF_ABOUT: &str = "A build is named by its project and the project's build number, as \
    `ferry builds PROJECT` lists it in the # column and `ferry deploy --build` takes it: \
    `ferry build show shop 12`. A lone number is the server-wide build ID (the ID column).";

/// Which build: `PROJECT NUMBER` (the project's build number) or a lone ID.
#[derive(Args, Clone)]
pub struct WhichBuild {
    /// The project, followed by its build number; or alone, the server-wide build ID
    #[arg(value_name = "PROJECT|ID")]
    pub first: String,
    /// The project's build number (the # column of `ferry builds PROJECT`)
    #[arg(value_name = "NUMBER")]
    pub number: Option<i64>,
}

#[derive(Subcommand)]
pub enum DeploymentCmd {
    /// The plan (hosts in batches), per-host state, timings, bytes moved, errors and every transition
    Show {
        /// Deployment ID
        id: i64,
        /// Keep printing changes until the deployment ends; exit non-zero unless it succeeded
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop starting new batches; hosts at work finish. Resume with `ferry deployment resume`
    Pause {
        /// Deployment ID
        id: i64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Let a paused deployment go on
    Resume {
        /// Deployment ID
        id: i64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Let the next batch start: after the canary, or with --approve-each-batch
    Promote {
        /// Deployment ID
        id: i64,
        #[command(flatten)]
        conn: Conn,
    },
    /// End the deployment: hosts at work finish, the rest are not started. Every host stays on a
    /// complete release; `show` says which
    Cancel {
        /// Deployment ID
        id: i64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Deploy the same release again: to the hosts that did not succeed (--failed), or to all its hosts
    Retry {
        /// Deployment ID
        id: i64,
        /// Only the hosts that did not end succeeded
        #[arg(long)]
        failed: bool,
        /// Follow progress: each host's change in order with how many of all are done (and a live count on a terminal); exit non-zero unless every host succeeded
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// What happened on each host: hook output and the agent's steps
    #[command(long_about = "What happened on each host during a deployment: the output of the release's hooks \
        and the agent's own steps (downloading, activated, put back ...), as `HH:MM:SS HOST | LINE` (the host's clock, UTC). Lines of the agent \
        start with `==>`, lines a hook wrote to stderr with `stderr:`.\n\n\
        A host's log starts when its agent begins the install and closes when the host's part of the \
        deployment ends: output of a retry after a failure, or of a later drift repair, is not added. Each \
        host keeps the first 5000 lines of hook output; a line `... N lines dropped` stands for the rest.\n\n\
        With --output json, one JSON object per line: host, seq, at, stream (stdout, stderr or ferry), line.")]
    Log {
        /// Deployment ID, as shown by `ferry deploy` and `ferry deployments`
        id: i64,
        /// Only this host's lines
        #[arg(long)]
        host: Option<String>,
        /// Keep printing new lines until the deployment ends; exit non-zero unless it succeeded
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `ferry request --help`: the workflow.
const REQUEST_ABOUT: &str = "Release requests: how a version reaches an environment that requires an approval \
(ferry env update P ENV --require-approval true).

  1. ferry request create P ENV --build N|latest --reason TEXT
       if ENV has a staging environment (--staging), it is updated to that version at once
  2. testers: ferry request pass ID, or ferry request send-back ID --reason TEXT
       not the requester, unless the environment allows it (ferry env update P ENV --self-test allow)
       sent back: the developer fixes it and runs ferry request resubmit ID --build N (staging updates again)
  3. an approver (owner or production right; never the requester): ferry request approve ID, or reject ID --reason
  4. the requester: ferry request release ID [--wait]: it rolls out with the environment's strategy

When ENV comes after another environment (--after), the version must have succeeded on every host of it: \
checked when the request is made (unless its staging is that environment) and again when it is released; \
someone with the production right may ask with --skip-promotion, the reason saying why.

Rollbacks of such an environment take the same path: ferry request create P ENV --rollback [--to VERSION] --reason.
When minutes matter, a user with the production right runs ferry rollback P ENV --emergency: no approval, \
flagged and recorded.

ferry request show ID prints where a request stands, what it waits for, and who did what when.";

#[derive(Subcommand)]
pub enum RequestCmd {
    /// Ask for a version (or a rollback) to go to an environment
    Create {
        /// Project name
        project: String,
        /// The environment it should go to
        env: String,
        /// The build whose release to ship: its number, or `latest` (the newest successful one)
        #[arg(long, conflicts_with = "version")]
        build: Option<String>,
        /// The version to ship (instead of --build)
        #[arg(long)]
        version: Option<String>,
        /// Ask for a rollback instead: to --to VERSION, or to the version most hosts ran before (chosen per host, not marked bad)
        #[arg(long, conflicts_with_all = ["build", "version"])]
        rollback: bool,
        /// With --rollback: the version to go back to
        #[arg(long, requires = "rollback", value_name = "VERSION")]
        to: Option<String>,
        /// What the change is and why
        #[arg(long)]
        reason: String,
        /// Release past the order of environments (`env update --after`): the version need not have succeeded on
        /// every host of the environment ENV comes after. Needs the production right; --reason says why, and the
        /// request's history and the audit trail keep it
        #[arg(long)]
        skip_promotion: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// List requests: of a project, or of every project you can see
    List {
        /// Project name (default: every project)
        project: Option<String>,
        /// Only these states, comma-separated (testing, sent_back, awaiting_approval, approved, releasing, done, failed, rejected, withdrawn)
        #[arg(long)]
        state: Option<String>,
        /// Only your own requests
        #[arg(long)]
        mine: bool,
        /// Only requests waiting for you: to test, to approve, or (your own) for a new version or to be released
        #[arg(long)]
        waiting: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// A request: where it stands, what it waits for, its deployments and its history
    Show {
        id: i64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Testers: the version works on staging
    Pass {
        id: i64,
        /// A remark for the history
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Testers: the version has a problem; the requester submits a fixed one
    SendBack {
        id: i64,
        /// What is wrong
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The requester: submit another version to the same request (staging updates again)
    Resubmit {
        id: i64,
        /// The new build: its number, or `latest`
        #[arg(long, conflicts_with = "version")]
        build: Option<String>,
        /// The new version (instead of --build)
        #[arg(long)]
        version: Option<String>,
        /// What changed
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Approvers: agree to the release (you cannot approve your own request)
    Approve {
        id: i64,
        /// A remark for the history
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Approvers: refuse the release; the request is closed
    Reject {
        id: i64,
        /// Why
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The requester: roll the approved version out with the environment's strategy
    Release {
        id: i64,
        /// Follow the deployment until it ends
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// The requester: give the request up
    Withdraw {
        id: i64,
        /// Why
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
}
