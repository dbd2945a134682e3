//! Alertmanager webhook bodies (`vaia_api::alertmanager::parse`): a notification that
//! parses serialises to one that parses to the same JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vaia_api::alertmanager::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = parse(data) {
        let value = serde_json::to_value(&n).expect("a parsed notification serialises");
        let bytes = serde_json::to_vec(&value).expect("JSON serialises");
        let back = parse(&bytes).unwrap_or_else(|e| panic!("round trip does not parse: {e}"));
        assert_eq!(value, serde_json::to_value(&back).expect("serialises"));
    }
});
