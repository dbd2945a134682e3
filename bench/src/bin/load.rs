//! Load as a benchmark: signed GitHub push deliveries at a fixed rate against a real
//! `vaia up` while runs flow through the gates, then a check through the API that every
//! delivery made exactly one run.
//!
//! It builds the CLI (`cargo build --release -p vaia`, or `--vaia PATH`), starts `vaia up`
//! on a free port of 127.0.0.1 with a temporary data directory and a schema-gate policy,
//! and offers `--rate` deliveries per second for `--seconds`, open loop: each delivery is
//! sent at its scheduled instant whatever the answers before it, and its acknowledgement
//! latency is measured from that instant, so queueing in the server (or in this client)
//! counts. Deliveries go round-robin over `--connections` HTTP clients; every
//! `--redeliver-every`th send is an exact redelivery (same delivery id, body and
//! signature) of one already acknowledged, which must answer as the first time and make
//! no run; for every `--evidence-every`th new run an evidence bundle (the demo's
//! tools.json and its manifest) is uploaded as soon as the delivery is acknowledged, so
//! those runs go through the registry, the schema gate, versioning and promotion while
//! the load goes on. The `vaia up` process's RSS (`VmRSS` of /proc/PID/status) is
//! sampled before, during and after.
//!
//! Afterwards it waits for the runs with evidence to settle and pages through `/api/runs`
//! (`after` = the previous page's `next`): the runs must be exactly the acknowledged new
//! deliveries (none lost, none duplicated, none made by a redelivery) and every run with
//! evidence must have left the pipeline (PROMOTED, FAILED or ROLLBACK). It prints a
//! Markdown table and exits 1 on any violation: a 5xx, a transport error or timeout, an
//! unexpected status, a redelivery answered differently, a failed upload, a lost,
//! duplicated or extra run, a run with evidence still in flight.
//!
//! ```sh
//! cargo run --release -p vaia-bench --bin load -- --rate 50 --seconds 60
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used)]

use clap::Parser;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vaia::client::Client;
use vaia::demo::push_payload;
use vaia_bench::{mib, proc_kib};
use vaia_core::{CommitSha, ImageDigest, PipelineState, Repository};
use vaia_testkit::vaia_up::VaiaUp;

const SECRET: &str = "load-bench-secret-5b0e";
/// Runs go through the schema gate on the uploaded tools.json (then registry, versioning,
/// CT baseline and promotion, none of which needs more evidence).
const POLICY: &str = "[stages]\nci = [\"schema\"]\n";
const TOOLS: &str = include_str!("../../../examples/demo/tools-v1.json");
/// How long one request may take before it counts as a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(about = "Signed GitHub deliveries at a fixed rate against vaia up")]
struct Args {
    /// Deliveries offered per second (open loop).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// How long the load lasts.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// HTTP clients the deliveries are spread over (each keeps its own connections).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Every Nth send is an exact redelivery of an acknowledged delivery (0: none).
    #[arg(long, default_value_t = 20)]
    redeliver_every: u64,
    /// Every Nth new run gets its evidence uploaded and goes through the gates (0: none).
    #[arg(long, default_value_t = 10)]
    evidence_every: u64,
    /// Repositories the runs are spread over.
    #[arg(long, default_value_t = 8)]
    repos: usize,
    /// How long the runs with evidence may take to settle after the load.
    #[arg(long, default_value_t = 300.0)]
    settle_seconds: f64,
    /// A `vaia` binary to run instead of building one.
    #[arg(long)]
    vaia: Option<PathBuf>,
    /// The cargo profile the CLI is built with when `--vaia` is not given.
    #[arg(long, default_value = "release")]
    profile: String,
}

/// What one send was.
#[derive(Clone)]
struct Delivery {
    id: String,
    repo: Repository,
    commit: CommitSha,
    body: Arc<Vec<u8>>,
}

/// An acknowledged new delivery.
#[derive(Clone)]
struct Acked {
    delivery: Delivery,
    status: u16,
    run_id: String,
}

#[derive(Default)]
struct Results {
    /// Acknowledgement latencies of every send answered, from its scheduled instant (ms).
    latencies: Vec<f64>,
    /// Status code → count, for new deliveries and redeliveries.
    new_status: BTreeMap<u16, u64>,
    redelivery_status: BTreeMap<u16, u64>,
    acked: Vec<Acked>,
    /// Run id → evidence uploaded for it.
    evidence_runs: HashSet<String>,
    upload_ms: Vec<f64>,
    violations: Vec<String>,
}

type Shared = Arc<Mutex<Results>>;

fn hex40(seed: &str) -> String {
    hex::encode(Sha256::digest(seed.as_bytes()))[..40].to_string()
}

/// A GitHub-shaped delivery id (a UUID's form) unique to `n`.
fn delivery_id(n: u64) -> String {
    let h = hex::encode(Sha256::digest(format!("delivery-{n}").as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Builds the CLI with cargo (the one running this, or `cargo`) and returns its path.
fn build_vaia(profile: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building vaia ({profile} profile) ...");
    let out = Command::new(cargo)
        .args(["build", "-p", "vaia", "--bin", "vaia", "--profile", profile])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(out.status.success(), "cargo build -p vaia failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "vaia")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo build named no vaia executable")
}

/// One send: the status and the answer, or why there was none.
async fn send(client: &Client, d: &Delivery) -> Result<(u16, serde_json::Value), String> {
    match tokio::time::timeout(
        REQUEST_TIMEOUT,
        client.send_webhook(SECRET, "push", &d.id, &d.body),
    )
    .await
    {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
    }
}

async fn upload(client: &Client, acked: &Acked, results: &Shared) {
    let image = ImageDigest::new(format!("sha256:{}", "ab".repeat(32))).unwrap();
    let files = vec![("tools.json".to_string(), TOOLS.as_bytes().to_vec())];
    let started = Instant::now();
    let d = &acked.delivery;
    let res = tokio::time::timeout(
        REQUEST_TIMEOUT,
        client.upload_evidence(&d.repo, &d.commit, &image, None, &files),
    )
    .await;
    let mut r = results.lock().unwrap();
    match res {
        Ok(Ok(_)) => {
            r.upload_ms.push(started.elapsed().as_secs_f64() * 1e3);
            r.evidence_runs.insert(acked.run_id.clone());
        }
        Ok(Err(e)) => r
            .violations
            .push(format!("evidence upload for {}: {e:#}", d.commit)),
        Err(_) => r.violations.push(format!(
            "evidence upload for {}: no answer within {REQUEST_TIMEOUT:?}",
            d.commit
        )),
    }
}

/// Every run the API lists, paging with `after`.
async fn all_runs(client: &Client) -> anyhow::Result<Vec<vaia::api::RunSummary>> {
    let mut runs = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = client.runs(500, after.as_deref()).await?;
        runs.extend(page.runs);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(runs),
        }
    }
}

/// RSS samples of the process, every `every`, until `stop` is set.
fn sample_rss(
    pid: u32,
    origin: Instant,
    every: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<(f64, u64)>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(kib) = proc_kib(pid, "VmRSS:") {
                samples.push((origin.elapsed().as_secs_f64(), kib));
            }
            std::thread::sleep(every);
        }
        samples
    })
}

/// Least-squares slope of RSS over time, in MiB per minute.
fn slope_mib_per_min(samples: &[(f64, u64)]) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let mx = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let my = samples.iter().map(|s| mib(s.1)).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in samples {
        num += (x - mx) * (mib(*y) - my);
        den += (x - mx) * (x - mx);
    }
    num / den * 60.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(
        args.rate > 0.0 && args.seconds > 0.0,
        "rate and seconds must be positive"
    );
    let bin = args
        .vaia
        .clone()
        .unwrap_or_else(|| build_vaia(&args.profile));
    let data = tempfile::tempdir().expect("temp dir");
    let vaia = VaiaUp::spawn(&bin, data.path(), POLICY, SECRET, &[]);
    let pid = vaia.pid();
    eprintln!("vaia up (pid {pid}) on {}", vaia.url);

    // Idle a moment so the start-up allocations are done before the first sample.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = proc_kib(pid, "VmRSS:").expect("read /proc/PID/status");

    let repos: Vec<Repository> = (0..args.repos.max(1))
        .map(|i| Repository::new(format!("load/agent-{i}")).unwrap())
        .collect();
    let clients: Vec<Client> = (0..args.connections.max(1))
        .map(|_| Client::with_token(&vaia.url, None))
        .collect();
    let uploader = Client::with_token(&vaia.url, None);
    let results: Shared = Arc::default();

    let total = (args.rate * args.seconds).round() as u64;
    let origin = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_rss(pid, origin, Duration::from_millis(500), stop.clone());
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total as usize);
    let mut new_count = 0u64;
    let mut redeliveries = 0u64;
    let mut max_lag = Duration::ZERO;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / args.rate);
        tokio::time::sleep_until(at).await;
        max_lag = max_lag.max(tokio::time::Instant::now() - at);
        let client = clients[i as usize % clients.len()].clone();
        let results = results.clone();

        // An exact redelivery of an acknowledged delivery, when one is due and there is one.
        if args.redeliver_every > 0 && i % args.redeliver_every == args.redeliver_every - 1 {
            let pick = {
                let r = results.lock().unwrap();
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (!r.acked.is_empty())
                    .then(|| r.acked[(rng % r.acked.len() as u64) as usize].clone())
            };
            if let Some(first) = pick {
                redeliveries += 1;
                tasks.push(tokio::spawn(async move {
                    let res = send(&client, &first.delivery).await;
                    let mut r = results.lock().unwrap();
                    match res {
                        Ok((status, answer)) => {
                            r.latencies.push(at.elapsed().as_secs_f64() * 1e3);
                            *r.redelivery_status.entry(status).or_default() += 1;
                            let run_id = answer["run_id"].as_str().unwrap_or_default();
                            if status != first.status || run_id != first.run_id {
                                r.violations.push(format!(
                                    "redelivery of {} answered {status} run {run_id}; the first answer was {} run {}",
                                    first.delivery.id, first.status, first.run_id
                                ));
                            }
                        }
                        Err(e) => r
                            .violations
                            .push(format!("redelivery of {}: {e}", first.delivery.id)),
                    }
                }));
                continue;
            }
        }

        let n = new_count;
        new_count += 1;
        let repo = repos[n as usize % repos.len()].clone();
        let commit = CommitSha::new(hex40(&format!("commit-{n}"))).unwrap();
        let body = Arc::new(push_payload(&repo, &commit).unwrap());
        let delivery = Delivery {
            id: delivery_id(n),
            repo,
            commit,
            body,
        };
        let evidence = args.evidence_every > 0 && n.is_multiple_of(args.evidence_every);
        let uploader = uploader.clone();
        tasks.push(tokio::spawn(async move {
            let res = send(&client, &delivery).await;
            let acked = {
                let mut r = results.lock().unwrap();
                match res {
                    Ok((status, answer)) => {
                        r.latencies.push(at.elapsed().as_secs_f64() * 1e3);
                        *r.new_status.entry(status).or_default() += 1;
                        match answer["run_id"].as_str() {
                            Some(run_id) if status == 201 => {
                                let a = Acked {
                                    delivery: delivery.clone(),
                                    status,
                                    run_id: run_id.to_string(),
                                };
                                r.acked.push(a.clone());
                                Some(a)
                            }
                            _ => {
                                r.violations.push(format!(
                                    "delivery {} answered {status}: {answer}",
                                    delivery.id
                                ));
                                None
                            }
                        }
                    }
                    Err(e) => {
                        r.violations.push(format!("delivery {}: {e}", delivery.id));
                        None
                    }
                }
            };
            if let (true, Some(a)) = (evidence, acked) {
                upload(&uploader, &a, &results).await;
            }
        }));
    }
    let offered_for = start.elapsed();
    for t in tasks {
        t.await.expect("a sender task panicked");
    }
    let drained_at = origin.elapsed().as_secs_f64();
    let rss_end_of_load = proc_kib(pid, "VmRSS:").unwrap_or(0);

    // Settle: wait until every run with evidence has left the pipeline.
    let api = Client::with_token(&vaia.url, None);
    let evidence_runs = results.lock().unwrap().evidence_runs.clone();
    let settle_deadline = Instant::now() + Duration::from_secs_f64(args.settle_seconds);
    let settle_started = Instant::now();
    let runs = loop {
        let runs = all_runs(&api).await.expect("list runs");
        let in_flight = runs
            .iter()
            .filter(|r| evidence_runs.contains(r.id.as_str()) && r.state.is_in_flight())
            .count();
        if in_flight == 0 || Instant::now() > settle_deadline {
            break runs;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let settled_in = settle_started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_settled = proc_kib(pid, "VmRSS:").unwrap_or(0);
    let hwm = proc_kib(pid, "VmHWM:").unwrap_or(0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.join().expect("RSS sampler");

    // Verify the runs against the acknowledged deliveries.
    let mut r = std::mem::take(&mut *results.lock().unwrap());
    let acked: HashMap<&str, &Acked> = r.acked.iter().map(|a| (a.run_id.as_str(), a)).collect();
    let mut seen_ids = HashSet::new();
    let mut seen_commits = HashSet::new();
    let mut states: BTreeMap<String, u64> = BTreeMap::new();
    let mut evidence_states: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    for run in &runs {
        *states.entry(run.state.to_string()).or_default() += 1;
        if !seen_ids.insert(run.id.as_str()) {
            r.violations.push(format!("run {} listed twice", run.id));
        }
        if !seen_commits.insert((run.repository.as_str(), run.commit.as_str())) {
            r.violations
                .push(format!("two runs for {} {}", run.repository, run.commit));
        }
        match acked.get(run.id.as_str()) {
            Some(a) if a.delivery.commit == run.commit && a.delivery.repo == run.repository => {}
            Some(a) => r.violations.push(format!(
                "run {} is for {} {}, its delivery {} was for {} {}",
                run.id,
                run.repository,
                run.commit,
                a.delivery.id,
                a.delivery.repo,
                a.delivery.commit
            )),
            None => r.violations.push(format!(
                "run {} ({}) matches no acknowledged delivery",
                run.id, run.commit
            )),
        }
        if evidence_runs.contains(run.id.as_str()) {
            *evidence_states.entry(run.state.to_string()).or_default() += 1;
            if run.state == PipelineState::Failed {
                let why = run.failure.clone().unwrap_or_default();
                *failures.entry(why).or_default() += 1;
            }
            if run.state.is_in_flight() {
                r.violations.push(format!(
                    "run {} with evidence is still {} {:.0} s after the load",
                    run.id, run.state, args.settle_seconds
                ));
            }
        }
    }
    for a in &r.acked {
        if !seen_ids.contains(a.run_id.as_str()) {
            r.violations.push(format!(
                "run {} of delivery {} is not listed (lost)",
                a.run_id, a.delivery.id
            ));
        }
    }
    let fivexx: u64 = r
        .new_status
        .iter()
        .chain(&r.redelivery_status)
        .filter(|(s, _)| **s >= 500)
        .map(|(_, c)| c)
        .sum();
    if fivexx > 0 {
        r.violations.push(format!("{fivexx} answers were 5xx"));
    }
    drop(vaia);

    // Report.
    let mut lat = r.latencies.clone();
    lat.sort_by(f64::total_cmp);
    let mut up = r.upload_ms.clone();
    up.sort_by(f64::total_cmp);
    let load_end = drained_at.min(args.seconds + 0.05);
    let during: Vec<(f64, u64)> = samples
        .iter()
        .copied()
        .filter(|(t, _)| *t <= load_end)
        .collect();
    let second_half: Vec<(f64, u64)> = during
        .iter()
        .copied()
        .filter(|(t, _)| *t >= load_end / 2.0)
        .collect();
    let max_during = during.iter().map(|s| s.1).max().unwrap_or(0);
    let codes = |m: &BTreeMap<u16, u64>| {
        m.iter()
            .map(|(s, c)| format!("{s}: {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let counts = |m: &BTreeMap<String, u64>| {
        m.iter()
            .map(|(s, c)| format!("{s} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let every_10s: Vec<String> = (1..)
        .map(|k| k as f64 * 10.0)
        .take_while(|t| *t <= args.seconds)
        .filter_map(|t| {
            during
                .iter()
                .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
                .map(|s| format!("{:.0} s: {:.1}", t, mib(s.1)))
        })
        .collect();

    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| offered | {} sends in {:.1} s ({:.1}/s; target {}/s for {} s), {} connections; generator lag max {:.1} ms |",
        total,
        offered_for.as_secs_f64(),
        total as f64 / offered_for.as_secs_f64(),
        args.rate,
        args.seconds,
        clients.len(),
        max_lag.as_secs_f64() * 1e3
    );
    println!(
        "| deliveries | {} new ({} with evidence uploaded), {} exact redeliveries |",
        new_count,
        r.evidence_runs.len(),
        redeliveries
    );
    println!(
        "| ack latency (ms, from the scheduled instant) | p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1} ({} answered) |",
        pct(&lat, 50.0),
        pct(&lat, 90.0),
        pct(&lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.len()
    );
    println!(
        "| status codes | new: {}; redeliveries: {}; 5xx: {} |",
        codes(&r.new_status),
        codes(&r.redelivery_status),
        fivexx
    );
    println!(
        "| evidence upload (ms, 2 PUTs) | p50 {:.1}, p99 {:.1}, max {:.1} |",
        pct(&up, 50.0),
        pct(&up, 99.0),
        up.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "| runs listed (paged, 500 a page) | {} for {} distinct deliveries; states: {} |",
        runs.len(),
        new_count,
        counts(&states)
    );
    println!(
        "| runs with evidence | {}; settled {:.1} s after the last answer; {} |",
        r.evidence_runs.len(),
        settled_in.as_secs_f64(),
        counts(&evidence_states)
    );
    if !failures.is_empty() {
        println!("| failure reasons | {} |", counts(&failures));
    }
    println!(
        "| RSS of vaia up (MiB) | before {:.1}; during max {:.1}; end of load {:.1}; settled {:.1}; peak (VmHWM) {:.1} |",
        mib(rss_before),
        mib(max_during),
        mib(rss_end_of_load),
        mib(rss_settled),
        mib(hwm)
    );
    println!("| RSS during the load (MiB) | {} |", every_10s.join("; "));
    println!(
        "| RSS slope, second half of the load | {:+.2} MiB/min |",
        slope_mib_per_min(&second_half)
    );
    if r.violations.is_empty() {
        println!("\nOK: no 5xx, no lost, duplicated or extra run, every run with evidence settled");
    } else {
        println!("\nFAILED: {} violations", r.violations.len());
        for v in r.violations.iter().take(20) {
            println!("- {v}");
        }
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(pct(&v, 50.0), 50.0);
        assert_eq!(pct(&v, 99.0), 99.0);
        assert_eq!(pct(&v, 100.0), 100.0);
        assert_eq!(pct(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn delivery_ids_are_valid_and_distinct() {
        let a = delivery_id(1);
        assert!(vaia_core::DeliveryId::new(&a).is_ok());
        assert_ne!(a, delivery_id(2));
    }

    #[test]
    fn slope_of_a_line() {
        let s: Vec<(f64, u64)> = (0..10).map(|i| (i as f64, 1024 * i as u64)).collect();
        assert!((slope_mib_per_min(&s) - 60.0).abs() < 1e-9);
    }
}
