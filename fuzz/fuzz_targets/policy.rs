//! Policy TOML (`vaia_core::policy::Policy::from_toml`): a policy that parses serialises to
//! TOML that parses to the same policy.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vaia_core::policy::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Policy::from_toml(text, "vaia.toml") {
        let again = toml::to_string(&p).expect("a parsed policy serialises");
        let back = Policy::from_toml(&again, "again.toml")
            .unwrap_or_else(|e| panic!("a serialised policy does not parse: {e}\n{again}"));
        assert_eq!(p, back, "policy round trip");
    }
});
