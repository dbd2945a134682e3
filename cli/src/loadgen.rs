//! A small load generator for `vaia demo`'s latency gate.
//!
//! [`run_load`] sends requests to an HTTP endpoint (the demo loads the example agent's good
//! and slow variants) and writes what it measured in Locust's `*_stats.csv` format, so that
//! the pipeline reads it exactly as it reads a real Locust run. [`scrape_p95_ms`] takes the
//! baseline from a `/metrics` page's `agent_request_duration_seconds` histogram, as
//! Prometheus's `histogram_quantile` would.

use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vaia_gates::latency::locust::{write_stats_csv, StatsRow};

/// The histogram the example agent exposes and the default latency query reads.
pub const METRIC: &str = "agent_request_duration_seconds";

/// Sends `requests` POSTs of `body` to `url` from `concurrency` workers; returns the
/// Locust `*_stats.csv` text (one row for the endpoint, one `Aggregated`).
pub async fn run_load(
    url: &str,
    body: &str,
    requests: usize,
    concurrency: usize,
) -> Result<String> {
    let http = vaia_gates::http::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the load generator's client")?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (http, next, url, body) = (
            http.clone(),
            next.clone(),
            url.to_string(),
            body.to_string(),
        );
        workers.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            let mut failed = 0u64;
            let mut bytes = 0usize;
            while next.fetch_add(1, Ordering::SeqCst) < requests {
                let t = Instant::now();
                let res = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        let len = r.bytes().await.map(|b| b.len()).unwrap_or(0);
                        bytes += len;
                        ok.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => failed += 1,
                }
            }
            (ok, failed, bytes)
        }));
    }
    let mut samples = Vec::new();
    let mut failures = 0;
    let mut bytes = 0;
    for w in workers {
        let (ok, failed, b) = w.await.context("a load worker stopped")?;
        samples.extend(ok);
        failures += failed;
        bytes += b;
    }
    let duration_secs = started.elapsed().as_secs_f64();
    let path = reqwest::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| url.to_string());
    let avg_content_size = if samples.is_empty() {
        0.0
    } else {
        bytes as f64 / samples.len() as f64
    };
    let row = StatsRow {
        method: "POST".into(),
        name: path,
        samples_ms: samples,
        failures,
        duration_secs,
        avg_content_size,
    };
    let aggregated = StatsRow {
        method: String::new(),
        name: "Aggregated".into(),
        ..row.clone()
    };
    Ok(write_stats_csv(&[row, aggregated]))
}

/// The p95 in milliseconds of [`METRIC`] on a `/metrics` page.
pub async fn scrape_p95_ms(metrics_url: &str) -> Result<f64> {
    let text = vaia_gates::http::client_builder()
        .build()?
        .get(metrics_url)
        .send()
        .await
        .with_context(|| format!("GET {metrics_url}"))?
        .text()
        .await
        .with_context(|| format!("GET {metrics_url}: reading body"))?;
    match vaia_gates::latency::p95_from_exposition(&text, METRIC) {
        Some(secs) => Ok(secs * 1000.0),
        None => bail!("{metrics_url} has no observations of {METRIC}"),
    }
}
