//! A small load generator and a stand-in agent for `vaia demo`'s latency gate.
//!
//! [`run_load`] sends requests to any HTTP endpoint (the demo's [`DemoTarget`], or the
//! example agent's good and slow variants) and writes what it measured in Locust's
//! `*_stats.csv` format, so that the pipeline reads it exactly as it reads a real Locust run.
//! [`scrape_p95_ms`] takes the baseline from a `/metrics` page's
//! `agent_request_duration_seconds` histogram, as Prometheus's `histogram_quantile` would.
//! [`DemoTarget`] answers `POST /chat` after a configurable delay and serves that histogram.

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vaia_gates::latency::locust::{write_stats_csv, StatsRow};

/// The histogram the example agent exposes and the default latency query reads.
pub const METRIC: &str = "agent_request_duration_seconds";

/// Upper bounds of the demo target's histogram buckets, in seconds: 2.5 ms wide up to
/// 100 ms, so that the interpolated p95 is close to what clients see.
fn bounds() -> Vec<f64> {
    (1..=40)
        .map(|i| f64::from(i) * 0.0025)
        .chain([0.25, 0.5, 1.0])
        .collect()
}

struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    inf: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (b, c) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if secs <= *b {
                *c += 1;
            }
        }
        self.inf += 1;
        self.sum += secs;
    }

    fn render(&self) -> String {
        let mut out =
            format!("# HELP {METRIC} Time to answer a request.\n# TYPE {METRIC} histogram\n");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            out.push_str(&format!("{METRIC}_bucket{{le=\"{b}\"}} {c}\n"));
        }
        out.push_str(&format!(
            "{METRIC}_bucket{{le=\"+Inf\"}} {}\n{METRIC}_sum {}\n{METRIC}_count {}\n",
            self.inf, self.sum, self.inf
        ));
        out
    }
}

#[derive(Clone)]
struct TargetState {
    delay: Duration,
    histogram: Arc<Mutex<Histogram>>,
}

/// An in-process stand-in for the agent: `POST /chat` answers after `delay`;
/// `GET /metrics` serves the request-duration histogram.
pub struct DemoTarget {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DemoTarget {
    pub async fn start(delay: Duration) -> Result<DemoTarget> {
        let b = bounds();
        let state = TargetState {
            delay,
            histogram: Arc::new(Mutex::new(Histogram {
                counts: vec![0; b.len()],
                bounds: b,
                inf: 0,
                sum: 0.0,
            })),
        };
        let app = axum::Router::new()
            .route("/chat", post(chat))
            .route("/metrics", get(metrics))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the demo target")?;
        let addr = listener.local_addr()?;
        let (stop, mut rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %e, "demo target stopped");
            }
        });
        Ok(DemoTarget { addr, stop, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn chat(State(s): State<TargetState>) -> &'static str {
    let start = Instant::now();
    tokio::time::sleep(s.delay).await;
    let secs = start.elapsed().as_secs_f64();
    if let Ok(mut h) = s.histogram.lock() {
        h.observe(secs);
    }
    "{\"answer\":\"Your order ships tomorrow.\"}"
}

async fn metrics(State(s): State<TargetState>) -> String {
    s.histogram.lock().map(|h| h.render()).unwrap_or_default()
}

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
