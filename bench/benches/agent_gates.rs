//! Agent gate benchmarks: leak scanning throughput over 10,000 responses against 16
//! canaries (all detectors: raw, normalised and letters views), and the paired bootstrap of
//! 5,000 items × 10,000 resamples. Also writes the leak data set to
//! `target/bench-data/leak_responses.jsonl` for `bench/leak_scan_pyahocorasick.py`.

#![allow(clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use vaia_gates::eval::bootstrap::{paired_bootstrap, SplitMix64};
use vaia_gates::prompt::detect::{Canary, LeakScanner};

fn write_data(canaries: &[String], responses: &[String]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let mut out = String::new();
    out.push_str(&serde_json::json!({"canaries": canaries}).to_string());
    out.push('\n');
    for r in responses {
        out.push_str(&serde_json::json!({"response": r}).to_string());
        out.push('\n');
    }
    let _ = std::fs::write(dir.join("leak_responses.jsonl"), out);
}

fn leak_scan(c: &mut Criterion) {
    let (canaries, responses) = vaia_bench::leak_data();
    write_data(&canaries, &responses);
    let named: Vec<Canary> = canaries
        .iter()
        .enumerate()
        .map(|(i, t)| Canary {
            name: format!("canary:{i}"),
            token: t.clone(),
        })
        .collect();
    let scanner = LeakScanner::new(&named, None, 0.25).expect("scanner");
    let bytes: usize = responses.iter().map(String::len).sum();
    let leaks: usize = responses.iter().map(|r| scanner.scan(r).len()).sum();
    assert_eq!(leaks, 100, "every planted leak is found, nothing else");
    let mut g = c.benchmark_group("leak_scan");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(10);
    g.bench_function("10k_responses_16_canaries_all_detectors", |b| {
        b.iter(|| {
            let mut n = 0;
            for r in &responses {
                n += scanner.scan(black_box(r)).len();
            }
            n
        })
    });
    g.finish();
}

fn bootstrap(c: &mut Criterion) {
    let mut rng = SplitMix64::new(9);
    let diffs: Vec<f64> = (0..5000).map(|_| (rng.below(3) as f64) - 1.0).collect();
    let mut g = c.benchmark_group("bootstrap");
    g.sample_size(10);
    g.bench_function("5000_items_10000_resamples", |b| {
        b.iter(|| paired_bootstrap(black_box(&diffs), 10_000, 0.95, 1))
    });
    g.finish();
}

criterion_group!(benches, leak_scan, bootstrap);
criterion_main!(benches);
