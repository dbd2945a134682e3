//! Drift reports read by ct-budget (`vaia_ct_budget::drift::parse_report`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vaia_ct_budget::drift::parse_report(data, "drift/report.json");
});
