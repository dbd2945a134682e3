//! Release-gate benchmarks.
//!
//! - `security/large_report`: the security gate on a Trivy report of 6,000 findings made
//!   from the real entries of Trivy's own goldens (shared/gates/tests/fixtures/trivy),
//!   spread over four layers of which two are the base image's, with a base report and a
//!   `.trivyignore.yaml` of 50 entries (half expired).
//! - `latency/end_to_end_prometheus`: the latency gate from Locust CSV bytes to verdict,
//!   with the baseline from a real local Prometheus (`query_range` over 2 minutes at 1 s
//!   steps). Skipped with a message when the `prometheus` binary is absent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../shared/gates/tests/support/prometheus.rs"]
mod prom;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use std::hint::black_box;
use vaia_gates::latency::prometheus::PrometheusHttp;
use vaia_gates::latency::{self, BaselineQuery, LatencyOptions, DEFAULT_QUERY};
use vaia_gates::security::{evaluate, Input, SecurityOptions};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/gates/tests/fixtures"
);
pub const FINDINGS: usize = 6_000;

fn layer(i: usize) -> String {
    format!("sha256:{:064x}", 0xbeef_0000 + i)
}

/// Real vulnerability entries, renumbered and spread over four layers.
fn large_report() -> (Vec<u8>, Vec<u8>) {
    let mut entries: Vec<Value> = Vec::new();
    for f in [
        "alpine-39-high-critical.json",
        "busybox-with-lockfile.json",
        "debian-buster.json",
    ] {
        let r: Value =
            serde_json::from_slice(&std::fs::read(format!("{FIXTURES}/trivy/{f}")).unwrap())
                .unwrap();
        for res in r["Results"].as_array().unwrap() {
            entries.extend(res["Vulnerabilities"].as_array().unwrap().iter().cloned());
        }
    }
    let vulns: Vec<Value> = (0..FINDINGS)
        .map(|i| {
            let mut v = entries[i % entries.len()].clone();
            v["VulnerabilityID"] = json!(format!("CVE-2024-{:05}", i));
            v["PkgName"] = json!(format!("{}-{}", v["PkgName"].as_str().unwrap(), i % 300));
            v["Layer"]["DiffID"] = json!(layer(i % 4));
            v
        })
        .collect();
    let results: Vec<Value> = vulns
        .chunks(500)
        .enumerate()
        .map(|(i, c)| json!({"Target": format!("target-{i}"), "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": c}))
        .collect();
    let report = json!({
        "SchemaVersion": 2, "ArtifactName": "bench/agent:candidate", "ArtifactType": "container_image",
        "Metadata": {"DiffIDs": (0..4).map(layer).collect::<Vec<_>>()},
        "Results": results,
    });
    let base = json!({
        "SchemaVersion": 2, "ArtifactName": "bench/base", "ArtifactType": "container_image",
        "Metadata": {"DiffIDs": [layer(0), layer(1)]},
    });
    (
        serde_json::to_vec(&report).unwrap(),
        serde_json::to_vec(&base).unwrap(),
    )
}

fn ignore_yaml() -> String {
    let mut s = String::from("vulnerabilities:\n");
    for i in 0..50 {
        let exp = if i % 2 == 0 {
            "2020-01-01"
        } else {
            "2999-01-01"
        };
        s.push_str(&format!(
            "  - id: CVE-2024-{:05}\n    expired_at: {exp}\n    statement: bench entry {i}\n",
            i * 97
        ));
    }
    s
}

fn security(c: &mut Criterion) {
    let (report, base) = large_report();
    let ignore = ignore_yaml();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    let opts = SecurityOptions::new(&["CRITICAL"], false, today).unwrap();
    let mut g = c.benchmark_group("security");
    g.throughput(Throughput::Elements(FINDINGS as u64));
    g.bench_function("large_report", |b| {
        b.iter(|| {
            let v = evaluate(
                &Input {
                    origin: "trivy.json",
                    bytes: black_box(&report),
                },
                Some(&Input {
                    origin: "trivy-base.json",
                    bytes: &base,
                }),
                &[Input {
                    origin: ".trivyignore.yaml",
                    bytes: ignore.as_bytes(),
                }],
                &opts,
            )
            .unwrap();
            assert_eq!(v.findings.len(), FINDINGS + 25);
            v
        })
    });
    g.finish();
}

fn latency_e2e(c: &mut Criterion) {
    let Some(bin) = prom::binary("latency/end_to_end_prometheus") else {
        return;
    };
    let server = prom::Prometheus::start(&bin, prom::known_histogram());
    server.wait_for_value(DEFAULT_QUERY);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = PrometheusHttp::new(&server.url, std::time::Duration::from_secs(10)).unwrap();
    let csv = std::fs::read(format!("{FIXTURES}/locust/good_stats.csv")).unwrap();
    let opts = LatencyOptions::default();
    let mut g = c.benchmark_group("latency");
    g.bench_function("end_to_end_prometheus", |b| {
        b.iter(|| {
            rt.block_on(async {
                let cand =
                    latency::locust::parse("locust_stats.csv", black_box(&csv), &[]).unwrap();
                let q = BaselineQuery {
                    query: DEFAULT_QUERY.into(),
                    range: "2m".into(),
                    end: prom::now(),
                    step: Some(1.0),
                    aggregate: latency::Aggregate::Median,
                };
                let base = latency::prometheus_baseline(&http, &q).await.unwrap();
                let v = latency::evaluate(&cand, &base, &opts);
                assert_eq!(v.outcome, vaia_core::Outcome::Pass, "{}", v.summary);
                v
            })
        })
    });
    g.finish();
    drop(server);
}

criterion_group!(benches, security, latency_e2e);
criterion_main!(benches);
