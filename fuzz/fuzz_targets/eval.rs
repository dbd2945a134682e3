//! Eval-gate inputs: golden sets (`parse_golden`) and answers (`parse_answers`), JSONL.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vaia_gates::eval::{parse_answers, parse_golden};

fuzz_target!(|data: &[u8]| {
    let text = vaia_fuzz::text(data);
    if let Ok(golden) = parse_golden("golden.jsonl", &text) {
        assert!(!golden.is_empty());
    }
    let _ = parse_answers("eval_answers.jsonl", &text);
});
