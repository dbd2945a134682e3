//! Trivy reports and ignore files through the security gate (`vaia_gates::security::evaluate`):
//! parts are the image's report, the base image's report, a `.trivyignore.yaml` and a
//! `.trivyignore`. A verdict counts every vulnerability exactly once.
#![no_main]
use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use vaia_gates::security::{evaluate, ignore, Input, SecurityOptions};

fuzz_target!(|data: &[u8]| {
    let parts = vaia_fuzz::parts(data, 4);
    let report = Input {
        origin: "trivy.json",
        bytes: parts[0],
    };
    let base = parts.get(1).map(|b| Input {
        origin: "base.json",
        bytes: b,
    });
    let mut ignores = Vec::new();
    if let Some(b) = parts.get(2) {
        let _ = ignore::parse(".trivyignore.yaml", b);
        ignores.push(Input {
            origin: ".trivyignore.yaml",
            bytes: b,
        });
    }
    if let Some(b) = parts.get(3) {
        let _ = ignore::parse(".trivyignore", b);
        ignores.push(Input {
            origin: ".trivyignore",
            bytes: b,
        });
    }
    let today = NaiveDate::from_ymd_opt(2026, 12, 2).expect("a date");
    let opts = SecurityOptions::new(&["HIGH", "CRITICAL"], data.len() % 2 == 0, today)
        .expect("valid severities");
    if let Ok(v) = evaluate(&report, base.as_ref(), &ignores, &opts) {
        assert!(!v.summary.is_empty());
    }
});
