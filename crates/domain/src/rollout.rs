//! Rollouts (R13): how a deployment goes over its hosts, batch by batch, and
//! the one function that decides what a running deployment does next.
//!
//! A deployment's plan (its hosts in batches) is fixed when it is created.
//! From then on [`next_step`] looks at the whole recorded state — every host's
//! state, the batch in flight, the operator's pause, cancel and promotion, the
//! clock — and names one step. The server applies that step in the same
//! transaction it read the state in, so a step is never taken twice, and a
//! server that restarts picks up exactly where the database says it was.

use std::time::Duration;

use crate::status::Note;
use crate::{DeploymentStatus, HostDeployState, Selector, Tags};

/// How many hosts a batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchSize {
    Count(u32),
    Percent(u8),
}

impl BatchSize {
    /// Parses `3` or `25%`.
    pub fn parse(text: &str) -> Result<BatchSize, RolloutError> {
        let bad = || RolloutError::BadSize(text.to_string());
        let t = text.trim();
        if let Some(p) = t.strip_suffix('%') {
            let p: u8 = p.trim().parse().map_err(|_| bad())?;
            if p == 0 || p > 100 {
                return Err(bad());
            }
            Ok(BatchSize::Percent(p))
        } else {
            let n: u32 = t.parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            Ok(BatchSize::Count(n))
        }
    }

    /// Hosts per batch out of `total` (at least one).
    pub fn of(self, total: usize) -> usize {
        match self {
            BatchSize::Count(n) => n as usize,
            BatchSize::Percent(p) => (total * p as usize).div_ceil(100),
        }
        .max(1)
    }
}

impl std::fmt::Display for BatchSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchSize::Count(n) => write!(f, "{n}"),
            BatchSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Which hosts go first in a canary rollout.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryPick {
    /// The first N hosts by name.
    Count(u32),
    /// The hosts a selector matches, e.g. the pre-production host of R23.
    Select(Selector),
}

/// The order in which a deployment reaches its hosts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Strategy {
    AllAtOnce,
    OneAtATime,
    Rolling {
        batch: BatchSize,
    },
    /// The canary hosts first; then the deployment holds until promoted, or
    /// until `soak_secs` have passed with every canary host healthy; then the
    /// rest, in batches of `then` (all at once when unset).
    Canary {
        canary: CanaryPick,
        soak_secs: Option<u64>,
        then: Option<BatchSize>,
    },
    /// One group of hosts (same value of `tag`) after another, in order of the
    /// value; within a group in batches of `batch` (the whole group when unset).
    Grouped {
        tag: String,
        batch: Option<BatchSize>,
    },
}

/// When a rollout gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailLimit {
    Count(u32),
    Percent(u8),
}

impl FailLimit {
    /// Whether `failed` hosts out of `total` are more than the limit allows.
    pub fn exceeded(self, failed: usize, total: usize) -> bool {
        match self {
            FailLimit::Count(n) => failed > n as usize,
            // Integer arithmetic: failed / total > p / 100.
            FailLimit::Percent(p) => failed * 100 > total * p as usize,
        }
    }
}

/// Everything that shapes one rollout; an environment has a default one and a
/// deploy may override parts of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RolloutPolicy {
    pub strategy: Strategy,
    /// Failed hosts tolerated before the rollout stops (default 0: the first
    /// failure stops it).
    pub max_failed: FailLimit,
    /// After a stop, put the hosts already updated back on their previous
    /// release (default true).
    pub auto_rollback: bool,
    /// A pause between batches, in seconds.
    pub pause_secs: u64,
    /// Each batch after the first waits for `ferry deployment promote`.
    pub approve_each_batch: bool,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        RolloutPolicy {
            strategy: Strategy::AllAtOnce,
            max_failed: FailLimit::Count(0),
            auto_rollback: true,
            pause_secs: 0,
            approve_each_batch: false,
        }
    }
}

/// The rollout options of a deploy or environment, each optional: given ones
/// replace the environment's default, the rest stay.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RolloutOptions {
    /// `all-at-once`, `one-at-a-time`, `rolling`, `canary` or `grouped`.
    pub strategy: Option<String>,
    /// `N` or `N%`: rolling batches; for canary and grouped, the batches after
    /// the canary and within each group.
    pub batch: Option<String>,
    /// Canary: `N` hosts, or a selector such as `stage=pre`.
    pub canary: Option<String>,
    /// Canary: promote by itself after this long with the canary healthy (e.g. `10m`).
    pub soak: Option<String>,
    /// Grouped: the tag whose values make the groups, e.g. `region`.
    pub group_by: Option<String>,
    /// `N` or `N%`.
    pub max_failed: Option<String>,
    pub auto_rollback: Option<bool>,
    /// e.g. `30s`.
    pub pause: Option<String>,
    pub approve_each_batch: Option<bool>,
}

/// A rollout that cannot be planned or is described wrongly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutError {
    #[error("'{0}' is not a batch size: give a count such as 2 or a percentage such as 25%")]
    BadSize(String),
    #[error("unknown strategy '{0}': use all-at-once, one-at-a-time, rolling, canary or grouped")]
    UnknownStrategy(String),
    #[error("{0}")]
    Option(String),
    #[error("'{0}' is not a duration such as 30s, 10m or 1h")]
    BadDuration(String),
    #[error("no host matches the canary selector {0}")]
    NoCanary(String),
    #[error("host(s) {hosts} have no tag '{tag}' to group by")]
    Untagged { tag: String, hosts: String },
}

fn duration_secs(text: &str) -> Result<u64, RolloutError> {
    humantime::parse_duration(text.trim())
        .map(|d: Duration| d.as_secs())
        .map_err(|_| RolloutError::BadDuration(text.to_string()))
}

impl RolloutOptions {
    /// True when no option is given.
    pub fn is_empty(&self) -> bool {
        self == &RolloutOptions::default()
    }

    /// The policy `base` becomes with these options. Options that belong to
    /// another strategy than the resulting one are refused, naming them.
    pub fn apply(&self, base: &RolloutPolicy) -> Result<RolloutPolicy, RolloutError> {
        let mut p = base.clone();
        let opt = |msg: &str| RolloutError::Option(msg.to_string());
        let batch = self.batch.as_deref().map(BatchSize::parse).transpose()?;
        if let Some(name) = &self.strategy {
            p.strategy = match name.trim() {
                "all-at-once" => Strategy::AllAtOnce,
                "one-at-a-time" => Strategy::OneAtATime,
                "rolling" => Strategy::Rolling {
                    batch: batch.ok_or_else(|| opt("a rolling rollout needs --batch N or --batch N%"))?,
                },
                "canary" => {
                    let pick = self.canary.as_deref().unwrap_or("1").trim();
                    let canary = if pick.contains('=') {
                        CanaryPick::Select(
                            Selector::parse(pick).map_err(|e| RolloutError::Option(format!("--canary: {e}")))?,
                        )
                    } else {
                        match BatchSize::parse(pick)? {
                            BatchSize::Count(n) => CanaryPick::Count(n),
                            BatchSize::Percent(_) => {
                                return Err(opt("--canary takes a host count or a selector such as stage=pre"));
                            }
                        }
                    };
                    let soak_secs = self.soak.as_deref().map(duration_secs).transpose()?;
                    Strategy::Canary { canary, soak_secs, then: batch }
                }
                "grouped" => {
                    let tag = self.group_by.clone().ok_or_else(|| opt("a grouped rollout needs --group-by TAG"))?;
                    if tag.trim().is_empty() || tag.contains(['=', ',']) {
                        return Err(opt("--group-by takes one tag key, such as region"));
                    }
                    Strategy::Grouped { tag: tag.trim().to_string(), batch }
                }
                other => return Err(RolloutError::UnknownStrategy(other.to_string())),
            };
        } else if batch.is_some() {
            // A new batch size for the strategy already chosen.
            p.strategy = match p.strategy {
                Strategy::Rolling { .. } => Strategy::Rolling { batch: batch.unwrap_or(BatchSize::Count(1)) },
                Strategy::Canary { canary, soak_secs, .. } => Strategy::Canary { canary, soak_secs, then: batch },
                Strategy::Grouped { tag, .. } => Strategy::Grouped { tag, batch },
                _ => return Err(opt("--batch applies to the rolling, canary and grouped strategies")),
            };
        }
        let is = |kind: &str| match &p.strategy {
            Strategy::Canary { .. } => kind == "canary",
            Strategy::Grouped { .. } => kind == "grouped",
            _ => false,
        };
        if (self.canary.is_some() || self.soak.is_some()) && !is("canary") {
            return Err(opt("--canary and --soak apply to the canary strategy"));
        }
        if self.group_by.is_some() && !is("grouped") {
            return Err(opt("--group-by applies to the grouped strategy"));
        }
        if self.strategy.is_none() && is("canary") && (self.canary.is_some() || self.soak.is_some()) {
            return Err(opt("give --strategy canary with --canary and --soak"));
        }
        if let Some(m) = &self.max_failed {
            p.max_failed = match BatchSize::parse(m) {
                Ok(BatchSize::Count(n)) => FailLimit::Count(n),
                Ok(BatchSize::Percent(n)) => FailLimit::Percent(n),
                Err(_) if m.trim() == "0" => FailLimit::Count(0),
                Err(_) => return Err(opt("--max-failed takes a count such as 2 or a percentage such as 10%")),
            };
        }
        if let Some(a) = self.auto_rollback {
            p.auto_rollback = a;
        }
        if let Some(pause) = &self.pause {
            p.pause_secs = duration_secs(pause)?;
        }
        if let Some(a) = self.approve_each_batch {
            p.approve_each_batch = a;
        }
        Ok(p)
    }
}

impl RolloutPolicy {
    /// One line for people: `rolling, batches of 25%, stop after 1 failed host`.
    pub fn describe(&self) -> String {
        let mut s = match &self.strategy {
            Strategy::AllAtOnce => "all at once".to_string(),
            Strategy::OneAtATime => "one at a time".to_string(),
            Strategy::Rolling { batch } => format!("rolling, batches of {batch}"),
            Strategy::Canary { canary, soak_secs, then } => {
                let first = match canary {
                    CanaryPick::Count(n) => format!("{n} host(s)"),
                    CanaryPick::Select(sel) => format!("hosts {sel}"),
                };
                let gate = match soak_secs {
                    Some(s) => format!("promote, or {s} s healthy"),
                    None => "promote".to_string(),
                };
                let rest = then.map(|b| format!("batches of {b}")).unwrap_or_else(|| "all at once".into());
                format!("canary: {first} first, then {gate}, then the rest {rest}")
            }
            Strategy::Grouped { tag, batch } => match batch {
                Some(b) => format!("grouped by {tag}, batches of {b} within each group"),
                None => format!("grouped by {tag}"),
            },
        };
        match self.max_failed {
            FailLimit::Count(0) => s.push_str("; stop at the first failure"),
            FailLimit::Count(n) => s.push_str(&format!("; stop after more than {n} failed host(s)")),
            FailLimit::Percent(p) => s.push_str(&format!("; stop after more than {p}% failed")),
        }
        s.push_str(if self.auto_rollback { ", then put updated hosts back" } else { ", leaving hosts as they are" });
        if self.pause_secs > 0 {
            s.push_str(&format!("; {} s between batches", self.pause_secs));
        }
        if self.approve_each_batch {
            s.push_str("; each batch waits for promote");
        }
        s
    }
}

/// A host to plan for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanHost<'a> {
    pub id: i64,
    pub name: &'a str,
    pub tags: &'a Tags,
}

/// The hosts in batches, in the order they will be updated. Hosts are taken
/// in order of name, so a plan is the same every time it is made.
pub fn plan(strategy: &Strategy, hosts: &[PlanHost<'_>]) -> Result<Vec<Vec<i64>>, RolloutError> {
    let mut hosts: Vec<&PlanHost<'_>> = hosts.iter().collect();
    hosts.sort_by(|a, b| a.name.cmp(b.name));
    let chunk = |hosts: &[&PlanHost<'_>], size: Option<BatchSize>| -> Vec<Vec<i64>> {
        let n = size.map_or(hosts.len(), |s| s.of(hosts.len())).max(1);
        hosts.chunks(n).map(|c| c.iter().map(|h| h.id).collect()).collect()
    };
    if hosts.is_empty() {
        return Ok(Vec::new());
    }
    Ok(match strategy {
        Strategy::AllAtOnce => chunk(&hosts, None),
        Strategy::OneAtATime => chunk(&hosts, Some(BatchSize::Count(1))),
        Strategy::Rolling { batch } => chunk(&hosts, Some(*batch)),
        Strategy::Canary { canary, then, .. } => {
            let (first, rest): (Vec<&PlanHost<'_>>, Vec<&PlanHost<'_>>) = match canary {
                CanaryPick::Count(n) => {
                    let n = (*n as usize).min(hosts.len());
                    (hosts[..n].to_vec(), hosts[n..].to_vec())
                }
                CanaryPick::Select(sel) => hosts.iter().partition(|h| sel.matches(h.tags)),
            };
            if first.is_empty() {
                return Err(RolloutError::NoCanary(match canary {
                    CanaryPick::Select(sel) => sel.to_string(),
                    CanaryPick::Count(_) => "(count 0)".into(),
                }));
            }
            let mut batches = vec![first.iter().map(|h| h.id).collect::<Vec<_>>()];
            if !rest.is_empty() {
                batches.extend(chunk(&rest, *then));
            }
            batches
        }
        Strategy::Grouped { tag, batch } => {
            let untagged: Vec<&str> = hosts.iter().filter(|h| !h.tags.0.contains_key(tag)).map(|h| h.name).collect();
            if !untagged.is_empty() {
                return Err(RolloutError::Untagged { tag: tag.clone(), hosts: untagged.join(", ") });
            }
            let mut groups: std::collections::BTreeMap<&str, Vec<&PlanHost<'_>>> = Default::default();
            for h in &hosts {
                groups.entry(h.tags.0.get(tag).map(String::as_str).unwrap_or_default()).or_default().push(h);
            }
            groups.values().flat_map(|g| chunk(g, *batch)).collect()
        }
    })
}

/// One host as the rollout sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutHost {
    pub batch: u32,
    pub state: HostDeployState,
    /// When it reached a final state.
    pub finished_at: Option<i64>,
}

/// The recorded state of a running deployment: everything [`next_step`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutView {
    pub policy: RolloutPolicy,
    pub hosts: Vec<RolloutHost>,
    pub batch_count: u32,
    /// The batch most recently started, if any.
    pub current_batch: Option<u32>,
    /// Batches up to this index may start without waiting for a promotion.
    pub promoted_through: u32,
    pub paused: bool,
    pub cancel_requested: bool,
    /// An emergency rollback: no gates, no pauses.
    pub emergency: bool,
    pub now: i64,
}

/// Why a rollout waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Hosts of the current batch are still at work.
    BatchRunning,
    Paused,
    /// Until `ferry deployment promote` (or the soak time, for a canary).
    Promotion {
        until: Option<i64>,
    },
    /// The pause between batches.
    Until(i64),
}

/// What a running deployment does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Wait(Hold),
    StartBatch(u32),
    /// Put every host this rollout updated back on its previous release, then
    /// end as rolled back.
    RollBack {
        reason: Note,
    },
    /// End. Hosts never started are recorded as canceled with `reason`.
    Finish {
        status: DeploymentStatus,
        reason: Option<Note>,
    },
}

/// The one decision of the orchestrator.
pub fn next_step(v: &RolloutView) -> Step {
    use HostDeployState::*;
    // Hosts skipped at the start (offline) are neither counted nor waited for.
    let total = v.hosts.iter().filter(|h| h.state != Skipped).count();
    let failed = v.hosts.iter().filter(|h| h.state == Failed).count();
    let in_flight = v.hosts.iter().any(|h| matches!(h.state, Pending | Running));
    if v.policy.max_failed.exceeded(failed, total) {
        let (at_most, percent) = match v.policy.max_failed {
            FailLimit::Count(n) => (n, false),
            FailLimit::Percent(p) => (u32::from(p), true),
        };
        let reason = Note::TooManyFailed { failed: count(failed), total: count(total), at_most, percent };
        return if v.policy.auto_rollback && !v.emergency {
            Step::RollBack { reason }
        } else if in_flight {
            // Nothing more starts; the hosts at work finish and are recorded.
            Step::Wait(Hold::BatchRunning)
        } else {
            Step::Finish { status: DeploymentStatus::Failed, reason: Some(reason) }
        };
    }
    if in_flight {
        return Step::Wait(Hold::BatchRunning);
    }
    let next = v.current_batch.map_or(0, |b| b + 1);
    if v.cancel_requested {
        return Step::Finish { status: DeploymentStatus::Canceled, reason: Some(Note::CanceledByOperator) };
    }
    if next >= v.batch_count {
        let status = if failed > 0 { DeploymentStatus::Failed } else { DeploymentStatus::Succeeded };
        let reason = (failed > 0).then(|| Note::HostsFailed { failed: count(failed), total: count(total) });
        return Step::Finish { status, reason };
    }
    if v.paused {
        return Step::Wait(Hold::Paused);
    }
    if next > 0 && !v.emergency {
        let done_at = v.hosts.iter().filter(|h| h.batch == next - 1).filter_map(|h| h.finished_at).max().unwrap_or(0);
        let canary_gate = matches!(v.policy.strategy, Strategy::Canary { .. }) && next == 1;
        if (canary_gate || v.policy.approve_each_batch) && v.promoted_through < next {
            let soak = match &v.policy.strategy {
                Strategy::Canary { soak_secs: Some(s), .. } if canary_gate && !v.policy.approve_each_batch => {
                    Some(done_at.saturating_add(i64::try_from(*s).unwrap_or(i64::MAX).saturating_mul(1000)))
                }
                _ => None,
            };
            // The soak promotes by itself only when the canary is healthy.
            let healthy = failed == 0;
            match soak {
                Some(until) if healthy && v.now >= until => {}
                _ => return Step::Wait(Hold::Promotion { until: soak.filter(|_| healthy) }),
            }
        }
        let pause_until = done_at.saturating_add(i64::try_from(v.policy.pause_secs).unwrap_or(0).saturating_mul(1000));
        if v.policy.pause_secs > 0 && v.now < pause_until {
            return Step::Wait(Hold::Until(pause_until));
        }
    }
    Step::StartBatch(next)
}

/// A count of hosts, as a note says it.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use HostDeployState::*;

    fn tags(t: &str) -> Tags {
        Tags::parse(t).unwrap()
    }

    fn hosts(specs: &[(&'static str, &'static str)]) -> (Vec<Tags>, Vec<&'static str>) {
        (specs.iter().map(|(_, t)| tags(t)).collect(), specs.iter().map(|(n, _)| *n).collect())
    }

    fn plan_of(strategy: Strategy, specs: &[(&'static str, &'static str)]) -> Result<Vec<Vec<i64>>, RolloutError> {
        let (tags, names) = hosts(specs);
        // Ids follow the order given; names decide the order planned.
        let hs: Vec<PlanHost<'_>> = names
            .iter()
            .zip(&tags)
            .enumerate()
            .map(|(i, (n, t))| PlanHost { id: i as i64 + 1, name: n, tags: t })
            .collect();
        plan(&strategy, &hs)
    }

    const SIX: [(&str, &str); 6] = [
        ("web-6", "region=bj"),
        ("web-1", "region=sh,stage=pre"),
        ("web-2", "region=sh"),
        ("web-3", "region=bj"),
        ("web-4", "region=gz"),
        ("web-5", "region=sh"),
    ];
    // Ids by name: web-1=2, web-2=3, web-3=4, web-4=5, web-5=6, web-6=1.

    #[test]
    fn plans_follow_the_strategy() {
        assert_eq!(plan_of(Strategy::AllAtOnce, &SIX).unwrap(), vec![vec![2, 3, 4, 5, 6, 1]]);
        assert_eq!(plan_of(Strategy::OneAtATime, &SIX).unwrap().len(), 6);
        assert_eq!(
            plan_of(Strategy::Rolling { batch: BatchSize::Count(4) }, &SIX).unwrap(),
            vec![vec![2, 3, 4, 5], vec![6, 1]]
        );
        assert_eq!(
            plan_of(Strategy::Rolling { batch: BatchSize::Percent(50) }, &SIX).unwrap(),
            vec![vec![2, 3, 4], vec![5, 6, 1]]
        );
        let canary = Strategy::Canary {
            canary: CanaryPick::Select(Selector::parse("stage=pre").unwrap()),
            soak_secs: None,
            then: Some(BatchSize::Count(2)),
        };
        assert_eq!(plan_of(canary, &SIX).unwrap(), vec![vec![2], vec![3, 4], vec![5, 6], vec![1]]);
        let canary2 = Strategy::Canary { canary: CanaryPick::Count(2), soak_secs: Some(60), then: None };
        assert_eq!(plan_of(canary2, &SIX).unwrap(), vec![vec![2, 3], vec![4, 5, 6, 1]]);
        let grouped = Strategy::Grouped { tag: "region".into(), batch: None };
        // bj (web-3, web-6), gz (web-4), sh (web-1, web-2, web-5)
        assert_eq!(plan_of(grouped, &SIX).unwrap(), vec![vec![4, 1], vec![5], vec![2, 3, 6]]);
        let grouped2 = Strategy::Grouped { tag: "region".into(), batch: Some(BatchSize::Count(2)) };
        assert_eq!(plan_of(grouped2, &SIX).unwrap(), vec![vec![4, 1], vec![5], vec![2, 3], vec![6]]);
        assert!(plan_of(Strategy::AllAtOnce, &[]).unwrap().is_empty());
    }

    #[test]
    fn impossible_plans_say_why() {
        let canary = Strategy::Canary {
            canary: CanaryPick::Select(Selector::parse("stage=gray").unwrap()),
            soak_secs: None,
            then: None,
        };
        assert!(plan_of(canary, &SIX).unwrap_err().to_string().contains("stage=gray"));
        let err = plan_of(Strategy::Grouped { tag: "dc".into(), batch: None }, &SIX[..2]).unwrap_err().to_string();
        assert!(err.contains("web-1, web-6") && err.contains("'dc'"), "{err}");
    }

    #[test]
    fn options_build_policies_and_refuse_nonsense() {
        let base = RolloutPolicy::default();
        let o = |f: fn(&mut RolloutOptions)| {
            let mut opts = RolloutOptions::default();
            f(&mut opts);
            opts.apply(&base)
        };
        assert_eq!(o(|_| {}).unwrap(), base);
        let rolling = o(|x| {
            x.strategy = Some("rolling".into());
            x.batch = Some("25%".into());
            x.max_failed = Some("1".into());
            x.pause = Some("30s".into());
        })
        .unwrap();
        assert_eq!(rolling.strategy, Strategy::Rolling { batch: BatchSize::Percent(25) });
        assert_eq!((rolling.max_failed, rolling.pause_secs), (FailLimit::Count(1), 30));
        let canary = o(|x| {
            x.strategy = Some("canary".into());
            x.canary = Some("stage=pre".into());
            x.soak = Some("10m".into());
        })
        .unwrap();
        assert!(matches!(canary.strategy, Strategy::Canary { soak_secs: Some(600), then: None, .. }));
        // A new batch size keeps the environment's strategy.
        let resized = RolloutOptions { batch: Some("3".into()), ..Default::default() }.apply(&rolling).unwrap();
        assert_eq!(resized.strategy, Strategy::Rolling { batch: BatchSize::Count(3) });

        let errors = [
            o(|x| x.strategy = Some("rolling".into())),
            o(|x| x.strategy = Some("blue-green".into())),
            o(|x| x.batch = Some("2".into())),
            o(|x| x.batch = Some("0".into())),
            o(|x| x.batch = Some("150%".into())),
            o(|x| x.canary = Some("1".into())),
            o(|x| x.group_by = Some("region".into())),
            o(|x| x.strategy = Some("grouped".into())),
            o(|x| x.max_failed = Some("many".into())),
            o(|x| x.pause = Some("a bit".into())),
            o(|x| {
                x.strategy = Some("canary".into());
                x.canary = Some("10%".into());
            }),
        ];
        for e in errors {
            assert!(e.is_err(), "{e:?}");
        }
        assert!(o(|x| x.strategy = Some("rolling".into())).unwrap_err().to_string().contains("--batch"));
    }

    fn view(states: &[(u32, HostDeployState)], current: Option<u32>, batches: u32) -> RolloutView {
        RolloutView {
            policy: RolloutPolicy::default(),
            hosts: states.iter().map(|(b, s)| RolloutHost { batch: *b, state: *s, finished_at: Some(1_000) }).collect(),
            batch_count: batches,
            current_batch: current,
            promoted_through: 0,
            paused: false,
            cancel_requested: false,
            emergency: false,
            now: 2_000,
        }
    }

    #[test]
    fn batches_go_in_order_and_the_end_is_recorded() {
        let v = view(&[(0, Queued), (1, Queued)], None, 2);
        assert_eq!(next_step(&v), Step::StartBatch(0));
        let v = view(&[(0, Running), (1, Queued)], Some(0), 2);
        assert_eq!(next_step(&v), Step::Wait(Hold::BatchRunning));
        let v = view(&[(0, Succeeded), (1, Queued)], Some(0), 2);
        assert_eq!(next_step(&v), Step::StartBatch(1));
        let v = view(&[(0, Succeeded), (1, Succeeded)], Some(1), 2);
        assert_eq!(next_step(&v), Step::Finish { status: DeploymentStatus::Succeeded, reason: None });
        // No hosts at all: done at once.
        assert_eq!(next_step(&view(&[], None, 0)), Step::Finish { status: DeploymentStatus::Succeeded, reason: None });
    }

    #[test]
    fn a_failure_beyond_the_limit_stops_and_rolls_back() {
        let v = view(&[(0, Succeeded), (1, Failed), (1, Running), (2, Queued)], Some(1), 3);
        assert!(matches!(next_step(&v), Step::RollBack { .. }));
        let mut tolerant = v.clone();
        tolerant.policy.max_failed = FailLimit::Count(1);
        assert_eq!(next_step(&tolerant), Step::Wait(Hold::BatchRunning));
        tolerant.hosts[2].state = Succeeded;
        assert_eq!(next_step(&tolerant), Step::StartBatch(2));
        tolerant.hosts[3].state = Succeeded;
        tolerant.current_batch = Some(2);
        assert!(matches!(next_step(&tolerant), Step::Finish { status: DeploymentStatus::Failed, reason: Some(_) }));
        let mut percent = v.clone();
        percent.policy.max_failed = FailLimit::Percent(25);
        assert_eq!(next_step(&percent), Step::Wait(Hold::BatchRunning), "1 of 4 is not more than 25%");
        // Without auto rollback the hosts at work finish, then it ends failed.
        let mut keep = v.clone();
        keep.policy.auto_rollback = false;
        assert_eq!(next_step(&keep), Step::Wait(Hold::BatchRunning));
        keep.hosts[2].state = Succeeded;
        match next_step(&keep) {
            Step::Finish { status: DeploymentStatus::Failed, reason: Some(r) } => {
                assert!(r.to_string().contains("1 of 4"), "{r}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pause_cancel_and_the_pause_between_batches() {
        let mut v = view(&[(0, Succeeded), (1, Queued)], Some(0), 2);
        v.paused = true;
        assert_eq!(next_step(&v), Step::Wait(Hold::Paused));
        v.paused = false;
        v.cancel_requested = true;
        assert!(matches!(next_step(&v), Step::Finish { status: DeploymentStatus::Canceled, .. }));
        // Cancel waits for the batch at work.
        let mut busy = view(&[(0, Running), (1, Queued)], Some(0), 2);
        busy.cancel_requested = true;
        assert_eq!(next_step(&busy), Step::Wait(Hold::BatchRunning));
        let mut paced = view(&[(0, Succeeded), (1, Queued)], Some(0), 2);
        paced.policy.pause_secs = 5;
        assert_eq!(next_step(&paced), Step::Wait(Hold::Until(6_000)));
        paced.now = 6_000;
        assert_eq!(next_step(&paced), Step::StartBatch(1));
    }

    #[test]
    fn a_canary_waits_for_promotion_or_a_healthy_soak() {
        let mut v = view(&[(0, Succeeded), (1, Queued)], Some(0), 2);
        v.policy.strategy = Strategy::Canary { canary: CanaryPick::Count(1), soak_secs: None, then: None };
        assert_eq!(next_step(&v), Step::Wait(Hold::Promotion { until: None }));
        v.promoted_through = 1;
        assert_eq!(next_step(&v), Step::StartBatch(1));
        v.promoted_through = 0;
        v.policy.strategy = Strategy::Canary { canary: CanaryPick::Count(1), soak_secs: Some(10), then: None };
        assert_eq!(next_step(&v), Step::Wait(Hold::Promotion { until: Some(11_000) }));
        v.now = 11_000;
        assert_eq!(next_step(&v), Step::StartBatch(1));
        // An emergency skips every gate.
        let mut e = view(&[(0, Succeeded), (1, Queued)], Some(0), 2);
        e.policy.approve_each_batch = true;
        assert_eq!(next_step(&e), Step::Wait(Hold::Promotion { until: None }));
        e.emergency = true;
        assert_eq!(next_step(&e), Step::StartBatch(1));
    }

    #[test]
    fn skipped_hosts_are_neither_waited_for_nor_counted() {
        let v = view(&[(0, Skipped), (0, Succeeded)], Some(0), 1);
        assert_eq!(next_step(&v), Step::Finish { status: DeploymentStatus::Succeeded, reason: None });
        // 1 failed of 2 counted hosts is 50%, not 33%.
        let mut v = view(&[(0, Skipped), (0, Failed), (0, Succeeded)], Some(0), 1);
        v.policy.max_failed = FailLimit::Percent(40);
        assert!(matches!(next_step(&v), Step::RollBack { reason } if reason.to_string().contains("1 of 2")));
    }
}
