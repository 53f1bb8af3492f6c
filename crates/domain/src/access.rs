//! Who may do what (R26): the administrator, users with the production
//! right, and project members with a role (owner, developer, viewer).
//!
//! This is the only place the rules are written down. The server's route
//! table names one [`Action`] per route and asks [`allowed`]; nothing else
//! decides whether a user may act.

use std::fmt;
use std::str::FromStr;

/// A user's role in one project. Ordered: each role can do what the ones
/// before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads the project: environments, releases, deployments, logs, status.
    Viewer,
    /// Uploads and builds releases, deploys to non-production environments.
    Developer,
    /// Manages the project: environments, variables, members, load balancers.
    Owner,
}

impl Role {
    /// Every role, from the least to the most capable.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Developer, Role::Owner];

    /// The role's name as users type it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Owner => "owner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "developer" => Ok(Role::Developer),
            "owner" => Ok(Role::Owner),
            other => Err(format!("unknown role '{other}': expected owner, developer or viewer")),
        }
    }
}

/// What the rules need to know about a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    /// The administrator may do everything.
    pub is_admin: bool,
    /// May deploy to and roll back production environments of the projects
    /// the user is a developer or owner of.
    pub production: bool,
}

/// Everything a user can ask the server to do, as the route table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Lists shared by everyone signed in: projects, hosts, locks.
    ReadShared,
    /// Creates, lists and revokes one's own API tokens.
    ManageOwnTokens,
    /// Creates, lists and disables users.
    ManageUsers,
    /// Creates projects.
    CreateProject,
    /// Reads one project: environments, releases, builds, deployments, logs.
    ReadProject,
    /// Uploads releases and content, queues, cancels and retries builds,
    /// marks releases bad or good.
    Build,
    /// Deploys, rolls back, retries and steers a deployment (pause, resume,
    /// promote, cancel) in one environment.
    Deploy,
    /// Manages a project: environments, variables, members, load balancers,
    /// freezes.
    ManageProject,
    /// Makes an environment production, or stops it being production, and
    /// decides whether it requires an approval and where it is tested first.
    ChangeProduction,
    /// Creates a release or rollback request, and (as its requester)
    /// resubmits, releases or withdraws it (R24).
    Request,
    /// Passes a request tested on staging, or sends it back.
    Test,
    /// Approves or rejects a request: the owner role or the production
    /// right, and for a production environment the production right.
    Approve,
    /// Changes the fleet itself: a host's tags, which hosts a project's
    /// environments may select, and load balancers (whose `command` driver
    /// runs as root on the hosts it selects). The administrator's alone: a
    /// project owner must not reach hosts beyond the project's.
    ManageFleet,
    /// Deletes a project (its history stays readable). The administrator's:
    /// it stops everything the project runs being managed.
    DeleteProject,
    /// Deletes an environment of a project (its history stays readable):
    /// the owner role, and for a production environment the production
    /// right too.
    DeleteEnvironment,
}

impl Action {
    /// Every action, for exhaustive checks.
    pub const ALL: [Action; 15] = [
        Action::ReadShared,
        Action::ManageOwnTokens,
        Action::ManageUsers,
        Action::CreateProject,
        Action::ReadProject,
        Action::Build,
        Action::Deploy,
        Action::ManageProject,
        Action::ChangeProduction,
        Action::Request,
        Action::Test,
        Action::Approve,
        Action::ManageFleet,
        Action::DeleteProject,
        Action::DeleteEnvironment,
    ];

    /// What doing it is called in a refusal ("deploying ... needs ...").
    fn doing(self) -> &'static str {
        match self {
            Action::ReadShared => "reading",
            Action::ManageOwnTokens => "managing API tokens",
            Action::ManageUsers => "managing users",
            Action::CreateProject => "creating projects",
            Action::ReadProject => "reading",
            Action::Build => "uploading and building",
            Action::Deploy => "deploying",
            Action::ManageProject => "managing",
            Action::ChangeProduction => "changing whether an environment is production",
            Action::Request => "requesting releases",
            Action::Test => "passing or sending back requests",
            Action::Approve => "approving requests",
            Action::ManageFleet => {
                "changing the fleet (host tags, project host scopes, load balancers, agent binaries)"
            }
            Action::DeleteProject => "deleting projects",
            Action::DeleteEnvironment => "deleting environments",
        }
    }
}

/// What a refused user lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Only the administrator may do it.
    Admin,
    /// At least this role in the project.
    Role(Role),
    /// The production right (the environment is production).
    ProductionRight,
    /// The owner role or the production right: what makes an approver.
    Approver,
}

/// A refusal: the action, what is missing, and what the user has, so the
/// message can name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    pub action: Action,
    pub missing: Missing,
    /// The user's role in the project, if any.
    pub have: Option<Role>,
}

impl Denied {
    /// The refusal as a user reads it, naming the project and environment
    /// when they are known, e.g. "deploying to production environment 'prod'
    /// of project 'shop' needs the production right".
    pub fn message(&self, project: Option<&str>, env: Option<&str>) -> String {
        let doing = self.action.doing();
        let what = match (self.action, self.missing, project, env) {
            (Action::Deploy, Missing::ProductionRight, Some(p), Some(e)) => {
                format!("{doing} to production environment '{e}' of project '{p}'")
            }
            (Action::Deploy, Missing::ProductionRight, _, Some(e)) => {
                format!("{doing} to production environment '{e}'")
            }
            (Action::Deploy, Missing::ProductionRight, _, None) => format!("{doing} to a production environment"),
            (Action::Approve, _, Some(p), Some(e)) => {
                let kind = if self.missing == Missing::ProductionRight { "production " } else { "" };
                format!("{doing} for {kind}environment '{e}' of project '{p}'")
            }
            (Action::ChangeProduction, _, _, Some(e)) => {
                format!("changing whether environment '{e}' is production")
            }
            (Action::Deploy, _, Some(p), Some(e)) => format!("{doing} to environment '{e}' of project '{p}'"),
            (Action::DeleteEnvironment, _, Some(p), Some(e)) => {
                let kind = if self.missing == Missing::ProductionRight { "production " } else { "" };
                format!("deleting {kind}environment '{e}' of project '{p}'")
            }
            (
                Action::ManageUsers
                | Action::CreateProject
                | Action::ChangeProduction
                | Action::ManageFleet
                | Action::DeleteProject,
                _,
                _,
                _,
            ) => doing.to_string(),
            (Action::ManageProject, _, Some(p), _) => format!("{doing} project '{p}'"),
            (_, _, Some(p), _) => format!("{doing} in project '{p}'"),
            (_, _, None, _) => doing.to_string(),
        };
        let needs = match self.missing {
            Missing::Admin => "the administrator".to_string(),
            Missing::ProductionRight => "the production right".to_string(),
            Missing::Approver => "the owner role or the production right".to_string(),
            Missing::Role(role) => match project {
                Some(_) => format!("the {role} role in the project"),
                None => format!("the {role} role in a project"),
            },
        };
        let have = match (self.missing, self.have) {
            (Missing::Role(_), Some(role)) => format!(" (you are a {role})"),
            (Missing::Role(_), None) if project.is_some() => " (you are not a member)".to_string(),
            _ => String::new(),
        };
        format!("{what} needs {needs}{have}")
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(None, None))
    }
}

impl std::error::Error for Denied {}

/// Failed sign-ins in a row after which an account refuses passwords for a
/// while: enough for typing mistakes, too few for guessing.
pub const SIGN_IN_ATTEMPTS: u32 = 5;
/// How long an account refuses passwords after [`SIGN_IN_ATTEMPTS`] failures.
pub const SIGN_IN_LOCK_MS: i64 = 15 * 60 * 1000;

/// Until when an account refuses passwords after `failures_in_a_row` failed
/// sign-ins, the last one at `now`; `None` while it may try again. API tokens
/// are not affected: the lock stops guessing, not work in progress.
pub fn sign_in_locked_until(failures_in_a_row: u32, now: i64) -> Option<i64> {
    (failures_in_a_row >= SIGN_IN_ATTEMPTS).then(|| now.saturating_add(SIGN_IN_LOCK_MS))
}

/// The least role an action needs in the project, or `None` when no role is
/// involved (everyone signed in, or the administrator only).
fn needed_role(action: Action) -> Option<Role> {
    match action {
        Action::ReadShared
        | Action::ManageOwnTokens
        | Action::ManageUsers
        | Action::CreateProject
        | Action::ManageFleet
        | Action::DeleteProject => None,
        Action::ReadProject => Some(Role::Viewer),
        Action::Build | Action::Deploy | Action::Request | Action::Test | Action::Approve => Some(Role::Developer),
        Action::ManageProject | Action::ChangeProduction | Action::DeleteEnvironment => Some(Role::Owner),
    }
}

/// May `user`, with `membership` in the project the action concerns, do
/// `action`? `env_is_production` says whether the environment acted on is a
/// production one (false when there is none).
///
/// The administrator may do everything. Deploying to a production
/// environment needs the production right on top of the developer role, and
/// so does changing which environments are production (otherwise an owner
/// could lift the guard and deploy).
pub fn allowed(
    user: &Subject,
    membership: Option<Role>,
    action: Action,
    env_is_production: bool,
) -> Result<(), Denied> {
    if user.is_admin {
        return Ok(());
    }
    let deny = |missing| Err(Denied { action, missing, have: membership });
    match action {
        Action::ReadShared | Action::ManageOwnTokens => return Ok(()),
        Action::ManageUsers | Action::CreateProject | Action::ManageFleet | Action::DeleteProject => {
            return deny(Missing::Admin);
        }
        _ => {}
    }
    if let Some(role) = needed_role(action)
        && membership.is_none_or(|have| have < role)
    {
        return deny(Missing::Role(role));
    }
    // An approver decides what they could deploy themselves, and must be
    // trusted with the project (owner) or with production.
    if action == Action::Approve && !env_is_production && !user.production && membership != Some(Role::Owner) {
        return deny(Missing::Approver);
    }
    let guarded = match action {
        Action::Deploy | Action::Approve | Action::DeleteEnvironment => env_is_production,
        Action::ChangeProduction => true,
        _ => false,
    };
    if guarded && !user.production {
        return deny(Missing::ProductionRight);
    }
    Ok(())
}

/// Is a user an approver of a project (R24, R28): someone who is asked to
/// approve releases and rollbacks and hears when one waits? A member whom
/// [`allowed`] lets approve ([`Action::Approve`]): owners, and developers
/// with the production right. Not being a member makes no one an approver,
/// the administrator included: approvals are the project's own business.
pub fn is_approver(membership: Option<Role>, user: &Subject) -> bool {
    let as_member = Subject { is_admin: false, ..*user };
    membership.is_some() && allowed(&as_member, membership, Action::Approve, false).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: Subject = Subject { is_admin: true, production: false };
    const PROD: Subject = Subject { is_admin: false, production: true };
    const PLAIN: Subject = Subject { is_admin: false, production: false };

    /// The rules written out a second time, as a table of what each role may
    /// do, so that a change to `allowed` must be a change to this too.
    fn expected(user: Subject, membership: Option<Role>, action: Action, prod_env: bool) -> bool {
        use Action::*;
        if user.is_admin {
            return true;
        }
        let rank = match membership {
            None => 0,
            Some(Role::Viewer) => 1,
            Some(Role::Developer) => 2,
            Some(Role::Owner) => 3,
        };
        match action {
            ReadShared | ManageOwnTokens => true,
            ManageUsers | CreateProject | ManageFleet | DeleteProject => false,
            DeleteEnvironment => rank >= 3 && (!prod_env || user.production),
            ReadProject => rank >= 1,
            Build => rank >= 2,
            Deploy => rank >= 2 && (!prod_env || user.production),
            ManageProject => rank >= 3,
            ChangeProduction => rank >= 3 && user.production,
            Request | Test => rank >= 2,
            Approve if prod_env => rank >= 2 && user.production,
            Approve => rank >= 3 || (rank >= 2 && user.production),
        }
    }

    #[test]
    fn every_user_role_action_and_environment_kind() {
        let memberships = [None, Some(Role::Viewer), Some(Role::Developer), Some(Role::Owner)];
        let mut checked = 0;
        for user in [ADMIN, PROD, PLAIN] {
            for membership in memberships {
                for action in Action::ALL {
                    for prod_env in [false, true] {
                        let got = allowed(&user, membership, action, prod_env);
                        assert_eq!(
                            got.is_ok(),
                            expected(user, membership, action, prod_env),
                            "{user:?} {membership:?} {action:?} production={prod_env}: {got:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 3 * 4 * 15 * 2);
    }

    #[test]
    fn production_needs_the_right_even_for_owners() {
        let denied = allowed(&PLAIN, Some(Role::Owner), Action::Deploy, true).unwrap_err();
        assert_eq!(denied.missing, Missing::ProductionRight);
        assert_eq!(
            denied.message(Some("shop"), Some("prod")),
            "deploying to production environment 'prod' of project 'shop' needs the production right"
        );
        assert!(allowed(&PROD, Some(Role::Developer), Action::Deploy, true).is_ok());
        assert!(allowed(&PROD, Some(Role::Viewer), Action::Deploy, false).is_err());
    }

    #[test]
    fn approvers_are_owners_or_hold_the_production_right() {
        let d = allowed(&PLAIN, Some(Role::Developer), Action::Approve, false).unwrap_err();
        assert_eq!(
            d.message(Some("shop"), Some("staging")),
            "approving requests for environment 'staging' of project 'shop' needs the owner role or the production right"
        );
        assert!(allowed(&PLAIN, Some(Role::Owner), Action::Approve, false).is_ok());
        let d = allowed(&PLAIN, Some(Role::Owner), Action::Approve, true).unwrap_err();
        assert_eq!(
            d.message(Some("shop"), Some("prod")),
            "approving requests for production environment 'prod' of project 'shop' needs the production right"
        );
        assert!(allowed(&PROD, Some(Role::Developer), Action::Approve, true).is_ok());
        assert!(allowed(&PROD, Some(Role::Viewer), Action::Approve, true).is_err());
    }

    #[test]
    fn refusals_name_what_is_missing() {
        let d = allowed(&PLAIN, Some(Role::Viewer), Action::Deploy, false).unwrap_err();
        assert_eq!(
            d.message(Some("shop"), Some("staging")),
            "deploying to environment 'staging' of project 'shop' needs the developer role in the project (you are a viewer)"
        );
        let d = allowed(&PROD, None, Action::ManageProject, false).unwrap_err();
        assert_eq!(
            d.message(Some("shop"), None),
            "managing project 'shop' needs the owner role in the project (you are not a member)"
        );
        let d = allowed(&PROD, Some(Role::Owner), Action::ManageUsers, false).unwrap_err();
        assert_eq!(d.to_string(), "managing users needs the administrator");
        let d = allowed(&PLAIN, None, Action::Build, false).unwrap_err();
        assert_eq!(d.to_string(), "uploading and building needs the developer role in a project");
    }

    #[test]
    fn deleting_is_for_administrators_and_owners_with_the_right() {
        let d = allowed(&PROD, Some(Role::Owner), Action::DeleteProject, false).unwrap_err();
        assert_eq!(d.to_string(), "deleting projects needs the administrator");
        assert!(allowed(&PLAIN, Some(Role::Owner), Action::DeleteEnvironment, false).is_ok());
        let d = allowed(&PLAIN, Some(Role::Owner), Action::DeleteEnvironment, true).unwrap_err();
        assert_eq!(
            d.message(Some("shop"), Some("prod")),
            "deleting production environment 'prod' of project 'shop' needs the production right"
        );
        let d = allowed(&PROD, Some(Role::Developer), Action::DeleteEnvironment, false).unwrap_err();
        assert_eq!(
            d.message(Some("shop"), Some("staging")),
            "deleting environment 'staging' of project 'shop' needs the owner role in the project (you are a developer)"
        );
        assert!(allowed(&PROD, Some(Role::Owner), Action::DeleteEnvironment, true).is_ok());
    }

    #[test]
    fn repeated_failed_sign_ins_lock_the_account_for_a_while() {
        for failures in 0..SIGN_IN_ATTEMPTS {
            assert_eq!(sign_in_locked_until(failures, 1_000), None, "{failures}");
        }
        assert_eq!(sign_in_locked_until(SIGN_IN_ATTEMPTS, 1_000), Some(1_000 + SIGN_IN_LOCK_MS));
        assert_eq!(sign_in_locked_until(SIGN_IN_ATTEMPTS + 3, 0), Some(SIGN_IN_LOCK_MS));
    }

    #[test]
    fn approvers_are_owners_and_members_with_the_production_right() {
        assert!(is_approver(Some(Role::Owner), &PLAIN));
        assert!(is_approver(Some(Role::Developer), &PROD));
        assert!(!is_approver(Some(Role::Viewer), &PROD), "viewers only read");
        assert!(!is_approver(Some(Role::Developer), &PLAIN));
        assert!(!is_approver(None, &PROD), "not a member");
        assert!(!is_approver(None, &ADMIN), "the administrator approves only where a member");
    }

    #[test]
    fn roles_parse_and_print() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("admin".parse::<Role>().is_err());
        assert!(Role::Viewer < Role::Developer && Role::Developer < Role::Owner);
    }
}
