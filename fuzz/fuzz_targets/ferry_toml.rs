//! `ferry.toml`: parsed on the server when a release is registered or a
//! build starts, and on every host the release goes to.
#![no_main]

use ferry_domain::Recipe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(recipe) = Recipe::parse(text) else { return };
    // Every check the server and the agent make on a parsed recipe.
    let _ = recipe.build();
    let _ = recipe.host_side();
    if let Some(deploy) = &recipe.deploy {
        let _ = deploy.shared_paths();
        let _ = deploy.template_paths();
    }
    if let Some(hooks) = &recipe.hooks {
        let _ = hooks.timeout();
    }
});
