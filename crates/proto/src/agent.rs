//! Messages on the agent channel: `GET /api/v1/agent/connect` upgraded to a
//! WebSocket, authenticated with the agent's own credential.
//!
//! The protocol is level-triggered. The server sends the host's complete
//! desired state on connect and after every change; the agent sends a full
//! report of each project on connect and after every change. A lost or
//! repeated message therefore never leaves the two sides disagreeing for
//! longer than the next message.

use std::collections::BTreeMap;
use std::fmt;

use ferry_domain::Tags;
// What a host reports is the domain's (the store records it); the wire
// carries it as it is.
use ferry_domain::lb::LbDriver;
pub use ferry_domain::report::{
    ActiveRelease, Activity, LogLine, ProjectReport, SERVICE_TAIL_LINES, ServiceHealth, TransferStats,
};

/// Bumped on any incompatible change to these messages.
pub const PROTOCOL_VERSION: u32 = 1;

/// Agent to server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMsg {
    /// First message after connecting.
    Hello {
        protocol: u32,
        agent_version: String,
        tags: Tags,
        /// The address load balancers reach this host at (`--address`);
        /// without it the server uses the address the agent connects from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        /// The SHA-256 (hex) of the executable the agent runs. Agents that
        /// predate self-upgrade send none, and are never told to upgrade.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        binary_digest: Option<String>,
        /// The version label that executable was uploaded under, when the
        /// agent got it by an upgrade.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        binary_version: Option<String>,
    },
    /// An upgrade the server asked for did not happen: the agent refused the
    /// binary (its signature or its bytes), or the new binary did not come
    /// up and the agent went back to the one it ran before. `error` says
    /// why. Only about the host on whose connection it arrives.
    UpgradeFailed { sha256: String, version: String, error: String },
    /// Sent every `heartbeat_interval_ms`; any message counts as a heartbeat.
    Heartbeat,
    /// The state of one project on this host.
    Report(ProjectReport),
    /// Lines for the deployment log of this host's install of one release of
    /// one project: the output of its hooks and the agent's own steps. Sent
    /// in batches, only to a server whose `Welcome` set `accepts_log`, and
    /// before the `Report` that ends the install, so the server has every
    /// line by the time the install's outcome is recorded.
    Log { project: String, release_id: i64, lines: Vec<LogLine> },
    /// This host, a load-balancer host of `project`/`env`, made its balancer
    /// match the environment's drained set as of `generation` (`error` unset),
    /// or failed to (`error` says why). Sent after each pass over its
    /// `DesiredState::load_balancers` that changed something, and again on
    /// every new connection. Only sent to a server that sent load balancers.
    LbApplied {
        project: String,
        env: String,
        generation: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// Server to agent.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Answer to `Hello`.
    Welcome {
        host: String,
        heartbeat_interval_ms: u64,
        /// The server stores `AgentMsg::Log`; an older server, which does not
        /// send this, gets no log lines (it would only warn about each one).
        #[serde(default)]
        accepts_log: bool,
        /// The server's Ed25519 public key (hex) that agent binaries are
        /// signed with; an agent enrolled before self-upgrade keeps it on
        /// first sight (this channel is authenticated).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signing_key: Option<String>,
    },
    /// Replace the agent's own executable by this binary, fetched from
    /// `GET /api/v1/agent/binary`. The agent runs it only if its bytes hash
    /// to `sha256` and `signature` (hex) verifies over
    /// `ferry_domain::agent_upgrade::signed_message(sha256, version)` with
    /// the server key it keeps. An older agent ignores the message (it logs
    /// an unreadable message and carries on).
    Upgrade(UpgradeOrder),
    /// The complete desired state of this host, replacing any earlier one.
    Desired(DesiredState),
    /// The agent's protocol is not supported; the server closes afterwards.
    Refused { reason: String },
}

/// An agent binary this host should run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpgradeOrder {
    pub version: String,
    pub sha256: String,
    pub size: u64,
    pub signature: String,
}

/// Everything that should be running on one host.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct DesiredState {
    pub releases: Vec<DesiredRelease>,
    /// The load balancers this host drives: one per environment whose
    /// load-balancer selector matches the host's tags (R14). Empty from
    /// servers that predate load balancers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancers: Vec<LbDesired>,
}

/// What one environment's load balancer should look like, for an agent on
/// one of its load-balancer hosts to make true.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LbDesired {
    pub project: String,
    pub env: String,
    /// Goes up with every change to the environment's load balancer or its
    /// drained hosts; the agent reports it back in `AgentMsg::LbApplied`.
    pub generation: u64,
    pub driver: LbDriver,
    /// Every host of the environment, by name.
    pub backends: Vec<LbBackend>,
}

/// One backend host of an environment, as its load balancer should see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LbBackend {
    /// The Ferry host name (HAProxy's server name).
    pub host: String,
    /// Its address in the balancer, e.g. `10.0.0.5:8080`: checked by
    /// `ferry_domain::lb::validate_address`.
    pub address: String,
    /// Out of the balancer: receives no new requests.
    pub drained: bool,
}

/// The release one project should have active on this host.
///
/// `Debug` leaves out the values of `vars`: they may be secrets, and desired
/// states end up in logs.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DesiredRelease {
    pub project: String,
    pub env: String,
    pub release_id: i64,
    pub version: String,
    /// The directory name under `releases/` (R16).
    pub release_name: String,
    /// How many releases to keep on the host, the active one included.
    pub keep_releases: u32,
    /// When the server made this release desired here (milliseconds); a new
    /// deployment of the same release changes it.
    #[serde(default)]
    pub desired_since: i64,
    /// The project's variables as this host sees them in this environment
    /// (R17), the most specific scope winning, secrets opened. Hooks get them
    /// in their environment. Only secrets meant for this host are here.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
}

impl fmt::Debug for DesiredRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DesiredRelease")
            .field("project", &self.project)
            .field("env", &self.env)
            .field("release_id", &self.release_id)
            .field("version", &self.version)
            .field("release_name", &self.release_name)
            .field("keep_releases", &self.keep_releases)
            .field("desired_since", &self.desired_since)
            .field("vars", &self.vars.keys().map(|k| (k, "***")).collect::<BTreeMap<_, _>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_json() {
        let msg = AgentMsg::Report(ProjectReport {
            project: "web".into(),
            current: None,
            activity: Activity::Failed { release_id: 3, error: "boom".into() },
            transfer: None,
            note: None,
            desired_since: 0,
            service: None,
        });
        let json = serde_json::to_string(&msg).unwrap();
        assert!(json.starts_with(r#"{"type":"report","project":"web""#), "{json}");
        assert!(json.contains(r#""activity":{"state":"failed","release_id":3,"error":"boom"}"#), "{json}");
        assert_eq!(serde_json::from_str::<AgentMsg>(&json).unwrap(), msg);
        let hb: AgentMsg = serde_json::from_str(r#"{"type":"heartbeat"}"#).unwrap();
        assert_eq!(hb, AgentMsg::Heartbeat);
    }

    #[test]
    fn desired_vars_travel_but_never_print() {
        let release = DesiredRelease {
            project: "web".into(),
            env: "prod".into(),
            release_id: 1,
            version: "v1".into(),
            release_name: "r".into(),
            keep_releases: 5,
            desired_since: 9,
            vars: BTreeMap::from([("DB_PASSWORD".to_string(), "hunter2".to_string())]),
        };
        let msg = ServerMsg::Desired(DesiredState { releases: vec![release.clone()], load_balancers: Vec::new() });
        let json = serde_json::to_string(&msg).unwrap();
        assert!(json.contains(r#""vars":{"DB_PASSWORD":"hunter2"}"#), "{json}");
        assert_eq!(serde_json::from_str::<ServerMsg>(&json).unwrap(), msg);
        let debug = format!("{msg:?} {release:#?}");
        assert!(debug.contains("DB_PASSWORD") && !debug.contains("hunter2"), "{debug}");

        // A server from before variables sends none.
        let old =
            r#"{"project":"web","env":"prod","release_id":1,"version":"v1","release_name":"r","keep_releases":5}"#;
        assert!(serde_json::from_str::<DesiredRelease>(old).unwrap().vars.is_empty());
    }

    #[test]
    fn log_lines_and_the_servers_consent_to_them() {
        let msg = AgentMsg::Log {
            project: "web".into(),
            release_id: 3,
            lines: vec![LogLine { at_ms: 5, stream: "stderr".into(), text: "warm".into() }],
        };
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(
            json,
            r#"{"type":"log","project":"web","release_id":3,"lines":[{"at_ms":5,"stream":"stderr","text":"warm"}]}"#
        );
        assert_eq!(serde_json::from_str::<AgentMsg>(&json).unwrap(), msg);
        // A Welcome from a server that predates deployment logs.
        let old: ServerMsg =
            serde_json::from_str(r#"{"type":"welcome","host":"h","heartbeat_interval_ms":5}"#).unwrap();
        assert_eq!(
            old,
            ServerMsg::Welcome { host: "h".into(), heartbeat_interval_ms: 5, accepts_log: false, signing_key: None }
        );
    }

    #[test]
    fn load_balancers_travel_and_older_peers_do_without() {
        let lb = LbDesired {
            project: "web".into(),
            env: "prod".into(),
            generation: 7,
            driver: LbDriver::Nginx {
                upstream: "web".into(),
                file: "/etc/nginx/conf.d/web.conf".into(),
                reload: "nginx -s reload".into(),
            },
            backends: vec![LbBackend { host: "web-1".into(), address: "10.0.0.1:8080".into(), drained: true }],
        };
        let msg = ServerMsg::Desired(DesiredState { releases: Vec::new(), load_balancers: vec![lb] });
        let json = serde_json::to_string(&msg).unwrap();
        assert!(
            json.contains(r#""driver":{"kind":"nginx","upstream":"web","file":"/etc/nginx/conf.d/web.conf","reload":"nginx -s reload"}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<ServerMsg>(&json).unwrap(), msg);
        // A server that predates load balancers sends none.
        let old: DesiredState = serde_json::from_str(r#"{"releases":[]}"#).unwrap();
        assert!(old.load_balancers.is_empty());
        // Without any, the message is what an older agent knows.
        let none = serde_json::to_string(&DesiredState::default()).unwrap();
        assert_eq!(none, r#"{"releases":[]}"#);

        let applied = AgentMsg::LbApplied { project: "web".into(), env: "prod".into(), generation: 7, error: None };
        let json = serde_json::to_string(&applied).unwrap();
        assert_eq!(json, r#"{"type":"lb_applied","project":"web","env":"prod","generation":7}"#);
        assert_eq!(serde_json::from_str::<AgentMsg>(&json).unwrap(), applied);

        // An agent that predates --address says nothing of it.
        let hello: AgentMsg =
            serde_json::from_str(r#"{"type":"hello","protocol":1,"agent_version":"0.1.0","tags":{}}"#).unwrap();
        assert!(matches!(hello, AgentMsg::Hello { address: None, .. }));
    }

    #[test]
    fn upgrade_messages_travel_and_an_older_agent_can_skip_them() {
        let order = ServerMsg::Upgrade(UpgradeOrder {
            version: "v2".into(),
            sha256: "ab".into(),
            size: 3,
            signature: "cd".into(),
        });
        let json = serde_json::to_string(&order).unwrap();
        assert_eq!(json, r#"{"type":"upgrade","version":"v2","sha256":"ab","size":3,"signature":"cd"}"#);
        assert_eq!(serde_json::from_str::<ServerMsg>(&json).unwrap(), order);
        // An agent's own enum without the variant fails to read it, which the
        // agent logs and skips: the connection goes on.
        #[derive(serde::Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        #[allow(dead_code)]
        enum OldServerMsg {
            Welcome { host: String },
        }
        assert!(serde_json::from_str::<OldServerMsg>(&json).is_err());
        let hello: AgentMsg = serde_json::from_str(
            r#"{"type":"hello","protocol":1,"agent_version":"0.1.0","tags":{},"binary_digest":"ab","binary_version":"v2"}"#,
        )
        .unwrap();
        assert!(
            matches!(hello, AgentMsg::Hello { binary_digest: Some(d), binary_version: Some(v), .. } if d == "ab" && v == "v2")
        );
    }
}
