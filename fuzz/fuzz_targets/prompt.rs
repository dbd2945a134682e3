//! Prompt-gate inputs: the attack corpus (`parse_corpus`) and the agent's transcript
//! (`parse_responses`), JSONL. A corpus that parses has unique, non-empty ids.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vaia_gates::prompt::{parse_corpus, parse_responses};

fuzz_target!(|data: &[u8]| {
    let text = vaia_fuzz::text(data);
    if let Ok(corpus) = parse_corpus("corpus.jsonl", &text) {
        let ids: std::collections::BTreeSet<&str> = corpus.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids.len(), corpus.len());
        assert!(!ids.contains(""));
    }
    let _ = parse_responses("prompt_responses.jsonl", &text);
});
