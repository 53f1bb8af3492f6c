//! Which environment of a project a host belongs to when tags or selectors
//! change (a re-tag, `ferry env update --select`).
//!
//! A host runs a project for one environment at a time. An environment that
//! selects a host claims it unless the host already runs the project for
//! another environment that still selects it too (overlapping selectors are
//! refused when they are set, so this is the rare case of a host matching
//! both through tags given later). An environment that no longer selects the
//! host has no claim: the host moves.

/// What the host runs of the project now, as far as placement cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current<'a> {
    /// The environment its desired release of the project comes from.
    pub env: &'a str,
    /// Whether that environment's selector still matches the host's tags.
    pub still_selected: bool,
}

/// What an environment that selects the host does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The host has nothing of the project: it takes the environment's release.
    Adopt,
    /// The host came from an environment that no longer selects it: it takes
    /// this environment's release instead.
    Move,
    /// Already this environment's, or still claimed by another one.
    Stay,
}

/// Where a host selected by environment `env` of a project goes, given what
/// it runs of that project now.
pub fn place(env: &str, current: Option<Current<'_>>) -> Placement {
    match current {
        None => Placement::Adopt,
        Some(c) if c.env == env => Placement::Stay,
        Some(c) if c.still_selected => Placement::Stay,
        Some(_) => Placement::Move,
    }
}

/// Whether a deployment to `env` may take a host that runs the project for
/// `current`: not while another environment that still selects it holds it.
pub fn claimed_elsewhere(env: &str, current: Option<Current<'_>>) -> bool {
    current.is_some_and(|c| c.env != env && c.still_selected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_host_adopts_and_a_moved_host_moves() {
        assert_eq!(place("prod", None), Placement::Adopt);
        let from_staging = |still_selected| Some(Current { env: "staging", still_selected });
        assert_eq!(place("prod", from_staging(false)), Placement::Move);
        assert_eq!(place("prod", from_staging(true)), Placement::Stay, "still claimed by staging");
        assert_eq!(place("prod", Some(Current { env: "prod", still_selected: true })), Placement::Stay);
    }

    #[test]
    fn only_an_environment_that_still_selects_the_host_holds_it() {
        assert!(!claimed_elsewhere("prod", None));
        assert!(!claimed_elsewhere("prod", Some(Current { env: "prod", still_selected: true })));
        assert!(!claimed_elsewhere("prod", Some(Current { env: "staging", still_selected: false })), "re-tagged away");
        assert!(claimed_elsewhere("prod", Some(Current { env: "staging", still_selected: true })));
    }
}
