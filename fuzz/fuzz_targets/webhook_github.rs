//! The GitHub push webhook: any body, correctly authenticated.
#![no_main]

use ferry_server::webhook::Forge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| ferry_fuzz::webhook(Forge::GitHub, body));
