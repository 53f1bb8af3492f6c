//! Release requests (R24): the path a change takes to a guarded environment.
//!
//! A developer asks for a version to go to an environment. If the
//! environment has a staging environment, that is updated first and testers
//! pass the request or send it back; a request sent back gets a new version
//! from its developer and staging is updated again (the loop). An approver
//! then approves or rejects it, and the requester releases it: the
//! deployment rolls out with the environment's strategy. A rollback request
//! takes the same path without the testing stage.
//!
//! This module is the state machine: every state, every action, and which
//! action moves which state where by whom. [`apply`] is the only way a
//! request changes state; the store applies its answer only if the state it
//! was computed from is still the stored one.

use std::fmt;
use std::str::FromStr;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    /// A version to deploy.
    Release,
    /// A version to go back to (the previous good one unless named).
    Rollback,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Staging runs the version; testers have not decided yet.
    Testing,
    /// A tester found a problem; the requester submits a new version.
    SentBack,
    /// Waiting for an approver.
    AwaitingApproval,
    /// Approved (or no approval needed): the requester may release it.
    Approved,
    /// An approver said no. Final.
    Rejected,
    /// Its deployment is rolling out.
    Releasing,
    /// Its deployment succeeded. Final.
    Done,
    /// Its deployment did not succeed; the requester may release it again
    /// or withdraw it.
    Failed,
    /// The requester withdrew it. Final.
    Withdrawn,
}

impl RequestState {
    /// Every state, for exhaustive checks.
    pub const ALL: [RequestState; 9] = [
        RequestState::Testing,
        RequestState::SentBack,
        RequestState::AwaitingApproval,
        RequestState::Approved,
        RequestState::Rejected,
        RequestState::Releasing,
        RequestState::Done,
        RequestState::Failed,
        RequestState::Withdrawn,
    ];

    /// The name the API and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Testing => "testing",
            RequestState::SentBack => "sent_back",
            RequestState::AwaitingApproval => "awaiting_approval",
            RequestState::Approved => "approved",
            RequestState::Rejected => "rejected",
            RequestState::Releasing => "releasing",
            RequestState::Done => "done",
            RequestState::Failed => "failed",
            RequestState::Withdrawn => "withdrawn",
        }
    }

    /// No action moves a request out of a final state.
    pub fn is_final(self) -> bool {
        matches!(self, RequestState::Rejected | RequestState::Done | RequestState::Withdrawn)
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RequestState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown request state '{s}'"))
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestKind::Release => "release",
            RequestKind::Rollback => "rollback",
        })
    }
}

impl FromStr for RequestKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "release" => Ok(RequestKind::Release),
            "rollback" => Ok(RequestKind::Rollback),
            other => Err(format!("unknown request kind '{other}'")),
        }
    }
}

/// Everything that can happen to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestAction {
    /// The requester asks (the request's first entry).
    Create,
    /// A tester found the version on staging good.
    Pass,
    /// A tester found a problem.
    SendBack,
    /// The requester submits another version; staging is updated again.
    Resubmit,
    /// An approver agrees.
    Approve,
    /// An approver refuses.
    Reject,
    /// The requester starts the deployment.
    Release,
    /// The request's deployment succeeded (the server says so).
    Succeed,
    /// The request's deployment did not succeed (the server says so).
    Fail,
    /// The requester gives up on it.
    Withdraw,
}

impl RequestAction {
    /// Every action, for exhaustive checks.
    pub const ALL: [RequestAction; 10] = [
        RequestAction::Create,
        RequestAction::Pass,
        RequestAction::SendBack,
        RequestAction::Resubmit,
        RequestAction::Approve,
        RequestAction::Reject,
        RequestAction::Release,
        RequestAction::Succeed,
        RequestAction::Fail,
        RequestAction::Withdraw,
    ];

    /// The name the API, the CLI and the history use.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestAction::Create => "create",
            RequestAction::Pass => "pass",
            RequestAction::SendBack => "send-back",
            RequestAction::Resubmit => "resubmit",
            RequestAction::Approve => "approve",
            RequestAction::Reject => "reject",
            RequestAction::Release => "release",
            RequestAction::Succeed => "succeed",
            RequestAction::Fail => "fail",
            RequestAction::Withdraw => "withdraw",
        }
    }

    /// Whether only the server takes this action (the others are users').
    pub fn is_servers(self) -> bool {
        matches!(self, RequestAction::Create | RequestAction::Succeed | RequestAction::Fail)
    }

    /// Whether the history entry must say why (a refusal of some kind).
    pub fn needs_reason(self) -> bool {
        matches!(self, RequestAction::Create | RequestAction::SendBack | RequestAction::Reject)
    }
}

impl fmt::Display for RequestAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the state machine needs to know about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFacts {
    pub kind: RequestKind,
    pub state: RequestState,
    /// The request's environment has a staging environment, updated before
    /// testers decide.
    pub has_staging: bool,
    /// The request's environment requires an approval.
    pub needs_approval: bool,
    /// The request's environment lets a requester pass her own request as
    /// tested (`ferry env update --self-test allow`); off by default, so
    /// that someone else has looked at the version on staging.
    pub self_test: bool,
}

/// Who is acting, as far as the request's own rules go. Whether the user
/// may test or approve in this project at all is `access::allowed`'s
/// question, answered before this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The user who created the request.
    Requester,
    /// An administrator who is not the requester.
    Admin,
    /// Anyone else the access rules let through.
    Other,
    /// The server, reporting how the request's deployment ended.
    Server,
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request is {state}: it cannot be {}{}", past(*action), hint(*state))]
    WrongState { action: RequestAction, state: RequestState },
    #[error("you created this request: someone else must approve it")]
    SelfApproval,
    #[error(
        "you created this request: someone else must pass it as tested (an owner may allow requesters to: \
         ferry env update PROJECT ENV --self-test allow)"
    )]
    SelfTest,
    #[error("you created this request: withdraw it instead of rejecting it")]
    SelfRejection,
    #[error("only the requester (or an administrator) may {action} a request")]
    RequesterOnly { action: RequestAction },
    #[error("'{action}' is the server's to record, not a user's")]
    ServerOnly { action: RequestAction },
    #[error("a rollback request has no version to test: it needs no pass and gets no new version")]
    NotForRollback { action: RequestAction },
    #[error("give a reason (--reason) to {action} a request")]
    NoReason { action: RequestAction },
}

fn past(action: RequestAction) -> &'static str {
    match action {
        RequestAction::Create => "created",
        RequestAction::Pass => "passed",
        RequestAction::SendBack => "sent back",
        RequestAction::Resubmit => "given a new version",
        RequestAction::Approve => "approved",
        RequestAction::Reject => "rejected",
        RequestAction::Release => "released",
        RequestAction::Succeed => "marked done",
        RequestAction::Fail => "marked failed",
        RequestAction::Withdraw => "withdrawn",
    }
}

/// What to do instead, given where the request stands.
fn hint(state: RequestState) -> &'static str {
    match state {
        RequestState::Testing => " (it waits for a tester: pass or send-back)",
        RequestState::SentBack => " (it waits for a new version: resubmit)",
        RequestState::AwaitingApproval => " (it waits for an approver: approve or reject)",
        RequestState::Approved => " (it waits for its requester: release)",
        RequestState::Releasing => " (its deployment is rolling out)",
        RequestState::Failed => " (its requester may release it again or withdraw it)",
        RequestState::Rejected | RequestState::Done | RequestState::Withdrawn => " (that is final)",
    }
}

/// The state a new request starts in: testing when there is a staging
/// environment to test on (release requests only), else waiting for an
/// approval when one is needed, else approved.
pub fn initial_state(kind: RequestKind, has_staging: bool, needs_approval: bool) -> RequestState {
    if kind == RequestKind::Release && has_staging { RequestState::Testing } else { after_testing(needs_approval) }
}

fn after_testing(needs_approval: bool) -> RequestState {
    if needs_approval { RequestState::AwaitingApproval } else { RequestState::Approved }
}

/// Applies `action` by `actor` to a request: the state it moves to, or why
/// not. `reason` is what the user wrote (required where
/// [`RequestAction::needs_reason`]).
///
/// The rules, besides the transitions themselves:
/// - nobody approves their own request, not even an administrator;
/// - only the requester (or an administrator) resubmits, releases or
///   withdraws it;
/// - only the server records how the deployment ended.
pub fn apply(
    facts: &RequestFacts,
    actor: Actor,
    action: RequestAction,
    reason: Option<&str>,
) -> Result<RequestState, RequestError> {
    use RequestAction as A;
    use RequestState as S;
    let server_only = action.is_servers();
    if server_only != (actor == Actor::Server) {
        return Err(match server_only {
            true => RequestError::ServerOnly { action },
            // The server never acts in a user's name.
            false => RequestError::RequesterOnly { action },
        });
    }
    if action.needs_reason() && reason.is_none_or(|r| r.trim().is_empty()) {
        return Err(RequestError::NoReason { action });
    }
    if facts.kind == RequestKind::Rollback && matches!(action, A::Pass | A::SendBack | A::Resubmit) {
        return Err(RequestError::NotForRollback { action });
    }
    let wrong = || RequestError::WrongState { action, state: facts.state };
    let next = match (action, facts.state) {
        (A::Create, _) => return Ok(initial_state(facts.kind, facts.has_staging, facts.needs_approval)),
        (A::Pass, S::Testing) => after_testing(facts.needs_approval),
        (A::SendBack, S::Testing) => S::SentBack,
        (A::Resubmit, S::Testing | S::SentBack) => S::Testing,
        (A::Approve, S::AwaitingApproval) => S::Approved,
        (A::Reject, S::AwaitingApproval) => S::Rejected,
        (A::Release, S::Approved | S::Failed) => S::Releasing,
        (A::Succeed, S::Releasing) => S::Done,
        (A::Fail, S::Releasing) => S::Failed,
        (A::Withdraw, S::Testing | S::SentBack | S::AwaitingApproval | S::Approved | S::Failed) => S::Withdrawn,
        _ => return Err(wrong()),
    };
    match (action, actor) {
        (A::Approve, Actor::Requester) => Err(RequestError::SelfApproval),
        (A::Pass, Actor::Requester) if !facts.self_test => Err(RequestError::SelfTest),
        (A::Reject, Actor::Requester) => Err(RequestError::SelfRejection),
        (A::Resubmit | A::Release | A::Withdraw, Actor::Other) => Err(RequestError::RequesterOnly { action }),
        _ => Ok(next),
    }
}

/// The actions a request in `state` waits for: what moves it on, and so
/// what puts it in someone's inbox. Withdrawing is possible until the end,
/// but nothing waits for it; a request being released waits for its
/// deployment.
pub fn awaited(state: RequestState) -> &'static [RequestAction] {
    use RequestAction as A;
    match state {
        RequestState::Testing => &[A::Pass, A::SendBack],
        RequestState::SentBack => &[A::Resubmit],
        RequestState::AwaitingApproval => &[A::Approve, A::Reject],
        RequestState::Approved | RequestState::Failed => &[A::Release],
        RequestState::Releasing | RequestState::Rejected | RequestState::Done | RequestState::Withdrawn => &[],
    }
}

/// The users' actions `actor` may take on the request now, by [`apply`]'s
/// rules, in [`RequestAction::ALL`]'s order: the buttons a page shows and
/// the inbox a user gets. Whether the user's role allows each is the access
/// rules' question ([`RequestAction::right`]), asked beside this one.
pub fn actions_for(facts: &RequestFacts, actor: Actor) -> Vec<RequestAction> {
    RequestAction::ALL
        .into_iter()
        .filter(|a| !a.is_servers())
        // A reason is the user's to write; it is not a state's rule.
        .filter(|a| apply(facts, actor, *a, Some("reason")).is_ok())
        .collect()
}

/// Whether the request waits for `actor`: one of the actions it waits for
/// ([`awaited`]) is theirs to take ([`actions_for`]), among those `may`
/// (the access rules) lets them.
pub fn waits_for(facts: &RequestFacts, actor: Actor, may: impl Fn(RequestAction) -> bool) -> bool {
    let theirs = actions_for(facts, actor);
    awaited(facts.state).iter().any(|a| theirs.contains(a) && may(*a))
}

impl RequestAction {
    /// The access right a user needs for this action in the request's
    /// project, as the API's route table states it.
    pub fn right(self) -> crate::access::Action {
        use crate::access::Action;
        match self {
            RequestAction::Pass | RequestAction::SendBack => Action::Test,
            RequestAction::Approve | RequestAction::Reject => Action::Approve,
            _ => Action::Request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RequestAction as A;
    use RequestState as S;

    fn facts(kind: RequestKind, state: RequestState) -> RequestFacts {
        RequestFacts { kind, state, has_staging: true, needs_approval: true, self_test: true }
    }

    /// The transitions written out as a table: (action, from) -> to, for a
    /// release request whose environment has staging and needs approval.
    /// Every pair not listed is refused.
    const TABLE: [(RequestAction, RequestState, RequestState); 14] = [
        (A::Pass, S::Testing, S::AwaitingApproval),
        (A::SendBack, S::Testing, S::SentBack),
        (A::Resubmit, S::Testing, S::Testing),
        (A::Resubmit, S::SentBack, S::Testing),
        (A::Approve, S::AwaitingApproval, S::Approved),
        (A::Reject, S::AwaitingApproval, S::Rejected),
        (A::Release, S::Approved, S::Releasing),
        (A::Release, S::Failed, S::Releasing),
        (A::Succeed, S::Releasing, S::Done),
        (A::Fail, S::Releasing, S::Failed),
        (A::Withdraw, S::Testing, S::Withdrawn),
        (A::Withdraw, S::SentBack, S::Withdrawn),
        (A::Withdraw, S::AwaitingApproval, S::Withdrawn),
        (A::Withdraw, S::Approved, S::Withdrawn),
    ];

    /// The actor that may do `action` in the ordinary course.
    fn entitled(action: RequestAction) -> Actor {
        match action {
            A::Create | A::Succeed | A::Fail => Actor::Server,
            A::Pass | A::SendBack | A::Approve | A::Reject => Actor::Other,
            A::Resubmit | A::Release | A::Withdraw => Actor::Requester,
        }
    }

    #[test]
    fn every_transition_of_the_table_and_no_other() {
        let reason = Some("because");
        for action in RequestAction::ALL.into_iter().filter(|a| *a != A::Create) {
            for state in RequestState::ALL {
                let expected = TABLE
                    .iter()
                    .find(|(a, from, _)| *a == action && *from == state)
                    .map(|(_, _, to)| *to)
                    // Withdrawing a failed request is allowed too.
                    .or((action == A::Withdraw && state == S::Failed).then_some(S::Withdrawn));
                let got = apply(&facts(RequestKind::Release, state), entitled(action), action, reason);
                match expected {
                    Some(to) => assert_eq!(got, Ok(to), "{action} from {state}"),
                    None => assert_eq!(got, Err(RequestError::WrongState { action, state }), "{action} from {state}"),
                }
            }
        }
    }

    #[test]
    fn final_states_accept_nothing() {
        for state in RequestState::ALL.into_iter().filter(|s| s.is_final()) {
            for action in RequestAction::ALL.into_iter().filter(|a| *a != A::Create) {
                let got = apply(&facts(RequestKind::Release, state), entitled(action), action, Some("x"));
                assert!(got.is_err(), "{action} from final {state} gave {got:?}");
            }
        }
    }

    #[test]
    fn a_new_request_starts_where_its_environment_says() {
        use RequestKind::*;
        assert_eq!(initial_state(Release, true, true), S::Testing);
        assert_eq!(initial_state(Release, true, false), S::Testing);
        assert_eq!(initial_state(Release, false, true), S::AwaitingApproval);
        assert_eq!(initial_state(Release, false, false), S::Approved);
        assert_eq!(initial_state(Rollback, true, true), S::AwaitingApproval, "a rollback skips testing");
        assert_eq!(initial_state(Rollback, false, false), S::Approved);
        let created = apply(
            &RequestFacts {
                kind: Release,
                state: S::Testing,
                has_staging: false,
                needs_approval: true,
                self_test: false,
            },
            Actor::Server,
            A::Create,
            Some("fix"),
        );
        assert_eq!(created, Ok(S::AwaitingApproval));
    }

    #[test]
    fn passing_without_a_needed_approval_approves() {
        let f = RequestFacts {
            kind: RequestKind::Release,
            state: S::Testing,
            has_staging: true,
            needs_approval: false,
            self_test: false,
        };
        assert_eq!(apply(&f, Actor::Other, A::Pass, None), Ok(S::Approved));
    }

    #[test]
    fn a_requester_passes_her_own_request_only_where_the_environment_allows() {
        let allowed = facts(RequestKind::Release, S::Testing);
        let refused = RequestFacts { self_test: false, ..allowed };
        assert_eq!(apply(&refused, Actor::Requester, A::Pass, None), Err(RequestError::SelfTest));
        assert!(RequestError::SelfTest.to_string().contains("--self-test allow"));
        assert_eq!(apply(&refused, Actor::Other, A::Pass, None), Ok(S::AwaitingApproval));
        assert_eq!(apply(&refused, Actor::Admin, A::Pass, None), Ok(S::AwaitingApproval));
        // Sending her own request back is no claim that it was tested.
        assert_eq!(apply(&refused, Actor::Requester, A::SendBack, Some("broken")), Ok(S::SentBack));
        assert_eq!(apply(&allowed, Actor::Requester, A::Pass, None), Ok(S::AwaitingApproval));
    }

    #[test]
    fn nobody_approves_their_own_request() {
        let f = facts(RequestKind::Release, S::AwaitingApproval);
        assert_eq!(apply(&f, Actor::Requester, A::Approve, None), Err(RequestError::SelfApproval));
        assert_eq!(apply(&f, Actor::Requester, A::Reject, Some("no")), Err(RequestError::SelfRejection));
        assert_eq!(apply(&f, Actor::Admin, A::Approve, None), Ok(S::Approved));
        assert_eq!(apply(&f, Actor::Other, A::Approve, None), Ok(S::Approved));
    }

    #[test]
    fn only_the_requester_or_an_admin_resubmits_releases_and_withdraws() {
        for (action, state) in [(A::Resubmit, S::SentBack), (A::Release, S::Approved), (A::Withdraw, S::Approved)] {
            let f = facts(RequestKind::Release, state);
            assert_eq!(apply(&f, Actor::Other, action, None), Err(RequestError::RequesterOnly { action }));
            assert!(apply(&f, Actor::Requester, action, None).is_ok(), "{action}");
            assert!(apply(&f, Actor::Admin, action, None).is_ok(), "{action}");
        }
    }

    #[test]
    fn the_deployments_end_is_the_servers_to_record() {
        let f = facts(RequestKind::Release, S::Releasing);
        for action in [A::Succeed, A::Fail, A::Create] {
            for actor in [Actor::Requester, Actor::Admin, Actor::Other] {
                assert_eq!(apply(&f, actor, action, Some("x")), Err(RequestError::ServerOnly { action }));
            }
        }
        for action in [A::Approve, A::Release, A::Withdraw] {
            assert_eq!(
                apply(&facts(RequestKind::Release, S::Approved), Actor::Server, action, None),
                Err(RequestError::RequesterOnly { action }),
                "the server never acts for a user"
            );
        }
    }

    #[test]
    fn refusals_need_a_reason() {
        let f = facts(RequestKind::Release, S::Testing);
        assert_eq!(apply(&f, Actor::Other, A::SendBack, None), Err(RequestError::NoReason { action: A::SendBack }));
        assert_eq!(
            apply(&f, Actor::Other, A::SendBack, Some("  ")),
            Err(RequestError::NoReason { action: A::SendBack })
        );
        let f = facts(RequestKind::Release, S::AwaitingApproval);
        assert_eq!(apply(&f, Actor::Other, A::Reject, None), Err(RequestError::NoReason { action: A::Reject }));
    }

    #[test]
    fn rollback_requests_have_no_testing_stage() {
        let f = facts(RequestKind::Rollback, S::AwaitingApproval);
        for action in [A::Pass, A::SendBack, A::Resubmit] {
            assert_eq!(apply(&f, entitled(action), action, Some("x")), Err(RequestError::NotForRollback { action }));
        }
        assert_eq!(apply(&f, Actor::Other, A::Approve, None), Ok(S::Approved));
    }

    #[test]
    fn refusals_say_what_the_request_waits_for() {
        let e = apply(&facts(RequestKind::Release, S::Testing), Actor::Other, A::Approve, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "request is testing: it cannot be approved (it waits for a tester: pass or send-back)"
        );
    }

    #[test]
    fn names_round_trip() {
        for s in RequestState::ALL {
            assert_eq!(s.as_str().parse::<RequestState>(), Ok(s));
        }
        let servers: Vec<RequestAction> = RequestAction::ALL.into_iter().filter(|a| a.is_servers()).collect();
        assert_eq!(servers, [A::Create, A::Succeed, A::Fail]);
        assert_eq!("rollback".parse::<RequestKind>(), Ok(RequestKind::Rollback));
    }

    #[test]
    fn the_buttons_are_the_state_machine_s() {
        let approved = facts(RequestKind::Release, S::Approved);
        assert_eq!(actions_for(&approved, Actor::Requester), [A::Release, A::Withdraw]);
        assert_eq!(actions_for(&approved, Actor::Other), Vec::<RequestAction>::new(), "an approver can do nothing now");
        let waiting = facts(RequestKind::Release, S::AwaitingApproval);
        assert_eq!(actions_for(&waiting, Actor::Other), [A::Approve, A::Reject]);
        assert_eq!(actions_for(&waiting, Actor::Requester), [A::Withdraw]);
        assert_eq!(actions_for(&facts(RequestKind::Release, S::Done), Actor::Admin), Vec::<RequestAction>::new());
        let rollback = facts(RequestKind::Rollback, S::AwaitingApproval);
        assert_eq!(actions_for(&rollback, Actor::Admin), [A::Approve, A::Reject, A::Withdraw]);
    }

    #[test]
    fn a_request_waits_for_whoever_moves_it_on() {
        let all = |_| true;
        // After approval, it waits for its requester, and no longer for approvers.
        let approved = facts(RequestKind::Release, S::Approved);
        assert!(waits_for(&approved, Actor::Requester, all));
        assert!(!waits_for(&approved, Actor::Other, all));
        let waiting = facts(RequestKind::Release, S::AwaitingApproval);
        assert!(waits_for(&waiting, Actor::Other, all) && !waits_for(&waiting, Actor::Requester, all));
        assert!(!waits_for(&waiting, Actor::Other, |a| a != A::Approve && a != A::Reject), "without the right");
        assert!(waits_for(&facts(RequestKind::Release, S::SentBack), Actor::Requester, all));
        assert!(waits_for(&facts(RequestKind::Release, S::Failed), Actor::Requester, all));
        assert!(!waits_for(&facts(RequestKind::Release, S::Releasing), Actor::Requester, all));
        assert_eq!(A::Release.right(), crate::access::Action::Request);
        assert_eq!(A::Reject.right(), crate::access::Action::Approve);
    }
}
