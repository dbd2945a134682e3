//! Init time and peak memory of every Lambda function binary under the Runtime API
//! emulator, beside a Python handler doing the webhook's job with boto3 (bench/python).
//!
//! For each function and run: start the process with the Lambda environment, measure the
//! time from spawn to its first `GET /2018-06-01/runtime/invocation/next` (init), invoke
//! it once with its fixture, read its peak RSS (`VmHWM`). Resources live in a local moto
//! server. Prints a Markdown table (see bench/README.md).
//!
//! `cargo run --release -p vaia-bench --bin lambda-init -- --lambda-dir target/lambda-x86_64
//!  --python .venv/moto/bin/python --runs 10`
//! (`--functions ct-budget,data-watcher` measures only those.)

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;
use vaia_aws::testing::{moto, LambdaHarness};

/// (function binary, the fixture it is invoked with)
const FUNCTIONS: &[(&str, &str)] = &[
    ("webhook", "apigw-v2-webhook-push.json"),
    ("api", "apigw-v2-api-list-runs.json"),
    ("orchestrator", "sqs-advance-trigger.json"),
    ("sweeper", "eventbridge-scheduled.json"),
    ("registry", "sqs-registry-verify-evidence.json"),
    ("ct-budget", "eventbridge-ct-budget-scheduled.json"),
    ("data-watcher", "sqs-raw-data-s3.json"),
    ("realtime", "apigw-ws-connect-no-token.json"),
    ("gate-schema", "sqs-gate-schema-job.json"),
    ("gate-prompt", "sqs-gate-prompt-job.json"),
    ("gate-eval", "sqs-gate-eval-job.json"),
    ("gate-security", "sqs-gate-security-job.json"),
    ("gate-latency", "sqs-gate-latency-job.json"),
];

struct Sample {
    init: Duration,
    /// The first invocation with the fixture, through the emulator and moto (a local Python
    /// server, so slower than the AWS APIs inside a region): an upper bound on the work.
    first_invoke: Duration,
    rss: u64,
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

async fn measure(
    program: &std::path::Path,
    args: &[&str],
    name: &str,
    fixture: &str,
    runs: usize,
) -> Vec<Sample> {
    let m = moto().expect("moto is needed for the benchmark (make moto-venv)");
    let mut env = vec![
        ("VAIA_WEBHOOK_SECRET", "vaia-fixture-secret"),
        ("RUST_LOG", "warn"),
    ];
    if name == "realtime" {
        // Its connections table and the WebSocket management endpoint (moto serves it at
        // its root), and a reader's token hash (the fixture presents no token: a 401).
        env.extend([
            ("VAIA_CONNECTIONS_TABLE", "bench-connections"),
            ("VAIA_WS_ENDPOINT", m.endpoint.as_str()),
            (
                "VAIA_API_TOKENS",
                "dashboard:read:0000000000000000000000000000000000000000000000000000000000000000",
            ),
        ]);
    }
    let mut out = Vec::new();
    for _ in 0..runs {
        let h = LambdaHarness::start_with_args(program, args, name, m, &env).await;
        let init = h
            .api
            .first_poll()
            .expect("polled")
            .duration_since(h.process.started);
        let started = std::time::Instant::now();
        let _ = h.invoke_fixture(fixture).await;
        let first_invoke = started.elapsed();
        let rss = h.process.max_rss().unwrap_or(0);
        out.push(Sample {
            init,
            first_invoke,
            rss,
        });
        h.stop().await;
    }
    out
}

#[tokio::main]
async fn main() {
    let dir = PathBuf::from(arg("--lambda-dir").unwrap_or_else(|| "target/lambda-x86_64".into()));
    let python = arg("--python").unwrap_or_else(|| ".venv/moto/bin/python".into());
    let runs: usize = arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(5);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/bootstrap.py");

    let py = measure(
        python.as_ref(),
        &[script.to_str().unwrap_or_default()],
        "python-webhook",
        "apigw-v2-webhook-push.json",
        runs,
    )
    .await;
    let py_init = median(py.iter().map(|s| s.init.as_secs_f64() * 1e3).collect());
    let py_rss = py.iter().map(|s| s.rss).max().unwrap_or(0) as f64 / 1e6;

    let invoke_ms = |v: &[Sample]| {
        median(
            v.iter()
                .map(|s| s.first_invoke.as_secs_f64() * 1e3)
                .collect(),
        )
    };
    println!("| function | binary (MB) | init median (ms) | init min–max (ms) | init / Python | max RSS (MB) | first invoke median (ms) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    // `--functions a,b`: only those (the others are not built, say).
    let only: Option<Vec<String>> =
        arg("--functions").map(|l| l.split(',').map(str::to_string).collect());
    for (name, fixture) in FUNCTIONS
        .iter()
        .filter(|(name, _)| only.as_ref().is_none_or(|o| o.iter().any(|f| f == name)))
    {
        let bin = dir.join(name).join("bootstrap");
        let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
        let samples = measure(&bin, &[], name, fixture, runs).await;
        let inits: Vec<f64> = samples.iter().map(|s| s.init.as_secs_f64() * 1e3).collect();
        let lo = inits.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = inits.iter().copied().fold(0.0, f64::max);
        let med = median(inits);
        let rss = samples.iter().map(|s| s.rss).max().unwrap_or(0) as f64 / 1e6;
        println!(
            "| {name} | {size:.1} | {med:.1} | {lo:.1}–{hi:.1} | {:.3} | {rss:.1} | {:.1} |",
            med / py_init,
            invoke_ms(&samples)
        );
    }
    let lo = py
        .iter()
        .map(|s| s.init.as_secs_f64() * 1e3)
        .fold(f64::INFINITY, f64::min);
    let hi = py
        .iter()
        .map(|s| s.init.as_secs_f64() * 1e3)
        .fold(0.0, f64::max);
    println!(
        "| Python 3 + boto3 webhook (baseline) | – | {py_init:.1} | {lo:.1}–{hi:.1} | 1.000 | {py_rss:.1} | {:.1} |",
        invoke_ms(&py)
    );
}
