//! What the continuous-training functions read from outside. The first byte picks the
//! parser: 0, the EventBridge scheduled event `ct-budget` checks
//! (`vaia_ct_budget::scheduled::parse`: an accepted event has an id and a source); 1, a
//! raw-data object key the data watcher maps to its repository
//! (`vaia_data_watcher::repository_of`: an accepted key lies under `raw/<that repository>/`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    match which % 2 {
        0 => {
            if let Ok(event) = serde_json::from_slice::<serde_json::Value>(rest) {
                if let Ok(s) = vaia_ct_budget::scheduled::parse(&event) {
                    assert!(!s.id.is_empty() && !s.source.is_empty(), "{s:?}");
                }
            }
        }
        _ => {
            if let Ok(key) = std::str::from_utf8(rest) {
                if let Ok(repo) = vaia_data_watcher::repository_of(key) {
                    assert!(key.starts_with(&format!("raw/{repo}/")), "{key:?} → {repo}");
                }
            }
        }
    }
});
