//! Tool files in every format the schema gate reads (`vaia_gates::schema::evaluate`): the
//! first part is the candidate, the second (optional) the production baseline. A file
//! compared with itself is never a breaking or additive change.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vaia_gates::schema::{evaluate, Input, SchemaOptions};

fuzz_target!(|data: &[u8]| {
    let parts = vaia_fuzz::parts(data, 2);
    let cand = Input {
        origin: "tools.json",
        bytes: parts[0],
    };
    let opts = SchemaOptions::default();
    let Ok(alone) = evaluate(&cand, None, &opts) else {
        return;
    };
    let _ = alone;
    let same = evaluate(&cand, Some(&cand), &opts).expect("a file that loads loads twice");
    for f in &same.findings {
        assert!(
            !f.rule.starts_with("schema.breaking.") && !f.rule.starts_with("schema.additive."),
            "a file compared with itself: {} {}",
            f.rule,
            f.message
        );
    }
    if let Some(base) = parts.get(1) {
        let base = Input {
            origin: "base.json",
            bytes: base,
        };
        let _ = evaluate(&cand, Some(&base), &opts);
    }
});
