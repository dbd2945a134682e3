//! Evidence manifests (`vaia_core::evidence::Manifest::parse`): a manifest that parses
//! serialises to a manifest that parses to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vaia_core::evidence::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data, "fuzz/manifest.json") {
        let bytes = serde_json::to_vec(&m).expect("a parsed manifest serialises");
        let again = Manifest::parse(&bytes, "fuzz/again.json")
            .unwrap_or_else(|e| panic!("a serialised manifest does not parse: {e}"));
        assert_eq!(m, again, "manifest round trip");
    }
});
