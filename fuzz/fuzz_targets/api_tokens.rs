//! API token configuration (`vaia_api::auth::Tokens`): the inline form and the TOML file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vaia_api::auth::Tokens;

fuzz_target!(|data: &[u8]| {
    let text = vaia_fuzz::text(data);
    let inline = Tokens::parse_inline("VAIA_API_TOKENS", &text);
    let file = Tokens::parse_toml("tokens.toml", &text);
    for t in [inline, file].into_iter().flatten() {
        let _ = t.len();
    }
});
