//! The release-request pages (R24): the list with "waiting for me", one
//! request with its history and the actions its state allows, and the form
//! that creates one.

use askama::Template;

use crate::views::{Chrome, DeploymentItem, Nav, PickRelease, Status};

/// A request in a list.
#[derive(Debug, Clone)]
pub struct RequestItem {
    pub id: i64,
    pub project: String,
    pub env: String,
    /// `release` or `rollback`.
    pub kind: String,
    pub version: String,
    pub state: Status,
    pub requester: String,
    pub reason: String,
    pub updated: String,
}

/// `/requests`: what waits for me, my own, and every open request I may see.
#[derive(Template)]
#[template(path = "requests.html")]
pub struct RequestsPage {
    pub chrome: Chrome,
    pub waiting: Vec<RequestItem>,
    pub mine: Vec<RequestItem>,
    pub open: Vec<RequestItem>,
}

/// One entry of a request's history.
#[derive(Debug, Clone)]
pub struct RequestEventView {
    pub at: String,
    pub actor: String,
    /// The action's name (`approve`, `staging` ...), translated by the
    /// template.
    pub action: String,
    /// The state before, when it changed.
    pub from: Option<String>,
    pub to: String,
    pub version: String,
    pub note: String,
    pub deployment: Option<i64>,
}

/// Which actions the request's state allows: the buttons worth showing.
/// The server decides on each when it is posted.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestButtons {
    pub pass: bool,
    pub send_back: bool,
    pub resubmit: bool,
    pub approve: bool,
    pub reject: bool,
    pub release: bool,
    pub withdraw: bool,
}

impl RequestButtons {
    /// Whether any button is worth showing.
    pub fn any(&self) -> bool {
        self.pass || self.send_back || self.resubmit || self.approve || self.reject || self.release || self.withdraw
    }
}

/// `/requests/{id}`.
#[derive(Template)]
#[template(path = "request.html")]
pub struct RequestPage {
    pub chrome: Chrome,
    pub item: RequestItem,
    /// Where it is tested first; empty for nowhere.
    pub staging: String,
    /// The catalogue's words for whom it waits.
    pub waiting_for: &'static str,
    pub history: Vec<RequestEventView>,
    pub deployments: Vec<DeploymentItem>,
    pub buttons: RequestButtons,
    /// Versions to resubmit, newest first.
    pub releases: Vec<PickRelease>,
}

/// `/projects/{project}/requests/new`.
#[derive(Template)]
#[template(path = "request_new.html")]
pub struct NewRequestPage {
    pub chrome: Chrome,
    pub project: String,
    /// (name, requires approval, production)
    pub envs: Vec<(String, bool, bool)>,
    pub releases: Vec<PickRelease>,
}
