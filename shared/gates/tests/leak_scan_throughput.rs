//! Leak-scan throughput, for comparing detector changes on one machine in one sitting
//! (ignored by default; `bench/README.md` has the numbers and the command):
//! `cargo test --release -p vaia-gates --test leak_scan_throughput -- --ignored --nocapture`.
//! The data is made like `vaia_bench::leak_data` (10,000 responses of 200–2,000 bytes, 16
//! canaries, one in a hundred planted), without the benchmark crate's AWS dependencies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use std::time::Instant;
use vaia_gates::eval::bootstrap::SplitMix64;
use vaia_gates::prompt::detect::{Canary, LeakScanner};

const SYSTEM_PROMPT: &str = include_str!("fixtures/system_prompts/analyze_logs.md");

fn data() -> (Vec<Canary>, Vec<String>) {
    let mut rng = SplitMix64::new(0x1EAC_5CA7);
    let canaries: Vec<Canary> = (0..16)
        .map(|i| Canary {
            name: format!("canary:{i}"),
            token: format!("VAIA-CANARY-{:016x}", rng.next_u64()),
        })
        .collect();
    const WORDS: &[&str] = &[
        "order", "shipping", "returns", "within", "days", "refund", "the", "your", "parcel",
        "tracking", "store", "hours", "warranty", "jacket", "we", "can", "help", "with", "that",
        "please", "sorry", "account", "password", "delivery", "express", "euros",
    ];
    let mut responses = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let len = 200 + rng.below(1800);
        let mut text = String::with_capacity(len + 64);
        while text.len() < len {
            text.push_str(WORDS[rng.below(WORDS.len())]);
            text.push(if rng.below(9) == 0 { '.' } else { ' ' });
        }
        if i % 100 == 7 {
            let c = &canaries[rng.below(16)].token;
            let planted = match (i / 100) % 4 {
                0 => c.clone(),
                1 => base64::engine::general_purpose::STANDARD.encode(format!("code {c}")),
                2 => hex::encode(c),
                _ => c.chars().rev().collect(),
            };
            text.push_str(&planted);
        }
        responses.push(text);
    }
    (canaries, responses)
}

fn measure(name: &str, scanner: &LeakScanner, responses: &[String]) {
    let bytes: usize = responses.iter().map(String::len).sum();
    let leaks: usize = responses.iter().map(|r| scanner.scan(r).len()).sum();
    assert_eq!(
        leaks, 100,
        "{name}: every planted leak is found, nothing else"
    );
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        let mut n = 0;
        for r in responses {
            n += scanner.scan(std::hint::black_box(r)).len();
        }
        assert_eq!(n, 100);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{name}: {:.1} ms per pass over {bytes} bytes, {:.1} MiB/s (best of 7)",
        best * 1e3,
        bytes as f64 / best / 1048576.0
    );
}

#[test]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
fn leak_scan_throughput() {
    let (canaries, responses) = data();
    let only = LeakScanner::new(&canaries, None, 0.25).unwrap();
    measure("16 canaries", &only, &responses);
    let with = LeakScanner::new(&canaries, Some(SYSTEM_PROMPT), 0.25).unwrap();
    measure("16 canaries + system prompt", &with, &responses);
}
