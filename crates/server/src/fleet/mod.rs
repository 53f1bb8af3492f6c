//! From a deploy request to desired state on hosts.
//!
//! A deployment never commands a host. It records the release as desired for
//! its target hosts (R4); each agent converges its host to its desired state
//! and reports; the reports move the deployment along. A host that was
//! offline, or joins later, converges the same way (R2, R3).
//!
//! One file per job: `desired` (what each host should run), `planning`
//! (from a request to a recorded deployment), `rollback` (what a rollback
//! does per host), `views` (deployments as shown). The periodic checks
//! are `crate::ticker`'s.

mod desired;
mod planning;
mod rollback;
mod views;

pub use desired::*;
pub use planning::*;
pub use rollback::*;
pub use views::*;
