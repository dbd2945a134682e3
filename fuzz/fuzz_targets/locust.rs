//! Locust `*_stats.csv` / `*_stats_history.csv` (`vaia_gates::latency::locust::parse`).
//! The second part, when present, lists endpoints (one a line) to select.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vaia_gates::latency::locust::parse;

fuzz_target!(|data: &[u8]| {
    let parts = vaia_fuzz::parts(data, 2);
    let endpoints: Vec<String> = parts
        .get(1)
        .map(|e| vaia_fuzz::text(e).lines().map(str::to_string).collect())
        .unwrap_or_default();
    let _ = parse("locust_stats.csv", parts[0], &endpoints);
});
