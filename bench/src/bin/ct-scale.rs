//! Continuous training at scale (issue 10): one scheduled CT evaluation across many
//! repositories on the local stack, and a reconciliation of many raw-data objects.
//!
//! **Evaluation.** For `--baseline-repositories` (100) and then `--repositories` (1,000)
//! repositories, each on a fresh local stack (`vaia::stack::Stack`, in this process, on a
//! temporary data directory): every repository is put in production as the registry
//! leaves it (`prod` alias, CT baseline of `data/train` at 10,000 rows) with a newer
//! snapshot — every other one 20,000 rows newer (due: budget 0.46 with drift 0.1), the
//! others 100 rows newer (budget 0.034 with drift 0.05) — and a drift report, then times
//! `POST /api/ct/evaluate` (what `vaia ct
//! evaluate` sends: the reconciliation of `raw/`, then every repository) twice: the first
//! queues one training job per due repository, the second finds them queued. It checks
//! the counts and the training queue's depth (one job per due repository, whatever the
//! number of evaluations). The ratio of the two sizes' times shows how the evaluation
//! scales.
//!
//! **Reconciliation.** `--objects` (100,000) raw objects under `raw/bench/data/` of a
//! local blob store (the files written directly: S3 holds them before any notification),
//! none counted. It times, in the same run: the listing of the prefix alone (the floor any
//! reconciliation pays), a first reconciliation (every object found and counted), a
//! second (nothing new: the steady state of each schedule), and the pending-volume read.
//!
//! ```sh
//! cargo run --release -p vaia-bench --bin ct-scale
//! cargo run --release -p vaia-bench --bin ct-scale -- --repositories 1000 --objects 100000
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used)]

use clap::Parser;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vaia::client::Client;
use vaia::stack::{Stack, StackConfig, StackOptions};
use vaia_bench::{mib, proc_kib};
use vaia_core::ports::{BlobStore, SystemClock};
use vaia_core::Repository;
use vaia_ct_budget::scheduled::ScheduledRun;
use vaia_ct_budget::seed;

#[derive(Parser, Debug)]
#[command(about = "One CT evaluation across many repositories; a reconciliation of many objects")]
struct Args {
    /// Repositories in production for the measured evaluation.
    #[arg(long, default_value_t = 1000)]
    repositories: usize,
    /// The smaller evaluation measured first, for the scaling ratio.
    #[arg(long, default_value_t = 100)]
    baseline_repositories: usize,
    /// Raw objects for the reconciliation (0: skip it).
    #[arg(long, default_value_t = 100_000)]
    objects: usize,
}

fn repo(i: usize) -> Repository {
    Repository::new(format!("bench/agent-{i:05}")).unwrap()
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn rss_mib() -> f64 {
    mib(proc_kib(std::process::id(), "VmRSS:").unwrap_or(0))
}

struct Evaluated {
    repositories: usize,
    seed: Duration,
    first: Duration,
    second: Duration,
    first_run: ScheduledRun,
    rss_before: f64,
    rss_after: f64,
}

async fn evaluate(n: usize) -> Evaluated {
    let dir = tempfile::tempdir().unwrap();
    let mut policy = vaia_core::policy::Policy::default();
    policy.ct.drift_source = vaia_core::ct::DriftSource::Report;
    let stack = Stack::start_with(
        StackConfig {
            data_dir: dir.path().to_path_buf(),
            bind: "127.0.0.1".into(),
            port: 0,
            policy,
            secret: vaia_webhook::WebhookSecret::new("ct-scale-bench-secret").unwrap(),
            alertmanager_token: None,
        },
        StackOptions {
            // Only the evaluations this benchmark asks for.
            ct_every: Some(Duration::from_secs(24 * 3600)),
            ..StackOptions::default()
        },
    )
    .await
    .unwrap();
    let blobs = stack.ports.blobs.clone();
    let now = chrono::Utc::now();
    let seeding = Instant::now();
    for i in 0..n {
        let r = repo(i);
        seed::promoted(
            blobs.as_ref(),
            &r,
            semver::Version::new(1, 0, 0),
            &"a".repeat(32),
            Some(10_000),
            now,
        )
        .await
        .unwrap();
        let rows = if i % 2 == 0 { 30_000 } else { 10_100 };
        seed::snapshot(blobs.as_ref(), &r, &"b".repeat(32), Some(rows), now)
            .await
            .unwrap();
    }
    // Records written as the registry leaves them: no ask on `ct-evaluate` (that comes
    // with a DVC file pushed under datasets/), so only the measured evaluations queue.
    for i in 0..n {
        let drift = if i % 2 == 0 { 0.1 } else { 0.05 };
        seed::drift_report(blobs.as_ref(), &repo(i), drift, now)
            .await
            .unwrap();
    }
    let seed = seeding.elapsed();
    let client = Client::new(&stack.url());
    let rss_before = rss_mib();
    let started = Instant::now();
    let first_run: ScheduledRun = client.post_for_json("/api/ct/evaluate").await.unwrap();
    let first = started.elapsed();
    let started = Instant::now();
    let second_run: ScheduledRun = client.post_for_json("/api/ct/evaluate").await.unwrap();
    let second = started.elapsed();
    let rss_after = rss_mib();

    let due = n.div_ceil(2);
    assert_eq!(first_run.evaluated, n, "{first_run:?}");
    assert_eq!(first_run.queued.len(), due, "{:?}", first_run.outcomes);
    assert_eq!(first_run.outcomes.get("retrain"), Some(&due));
    assert_eq!(
        first_run.outcomes.get("hold").copied().unwrap_or(0),
        n - due
    );
    assert_eq!(second_run.evaluated, n);
    assert!(second_run.queued.is_empty(), "queued twice: {second_run:?}");
    let depth = stack
        .ports
        .queue
        .depth(vaia_ct_budget::TRAINING_QUEUE)
        .await
        .unwrap();
    assert_eq!(depth.visible + depth.in_flight, due as u64);
    stack.stop().await;
    Evaluated {
        repositories: n,
        seed,
        first,
        second,
        first_run,
        rss_before,
        rss_after,
    }
}

struct Reconciled {
    objects: usize,
    list: Duration,
    first: Duration,
    second: Duration,
    pending: Duration,
    rss_peak: f64,
}

async fn reconcile(objects: usize) -> Reconciled {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> =
        Arc::new(vaia_local::FsBlobStore::open(dir.path().join("blobs"), None).unwrap());
    let r = Repository::new("bench/data").unwrap();
    // The watcher counts raw data of repositories the registry knows.
    let version = vaia_core::BlobKey::new(format!(
        "{}1.0.0.json",
        vaia_core::layout::versions_prefix(&r)
    ))
    .unwrap();
    store.put(&version, b"{}").await.unwrap();
    let raw_dir = dir.path().join("blobs").join("raw/bench/data");
    std::fs::create_dir_all(&raw_dir).unwrap();
    for i in 0..objects {
        std::fs::write(
            raw_dir.join(format!("part-{i:06}.jsonl")),
            format!("{{\"row\": {i}}}\n"),
        )
        .unwrap();
    }
    let watcher = vaia_data_watcher::DataWatcher::new(
        store.clone(),
        Arc::new(vaia_data_watcher::BlobRawData(store.clone())),
        Arc::new(SystemClock),
    );
    let started = Instant::now();
    let listed = store
        .list(&vaia_core::layout::raw_data_prefix(&r))
        .await
        .unwrap();
    let list = started.elapsed();
    assert_eq!(listed.len(), objects);
    let started = Instant::now();
    let found = watcher.reconcile(&r).await.unwrap();
    let first = started.elapsed();
    assert_eq!(found.objects as usize, objects);
    let started = Instant::now();
    let again = watcher.reconcile(&r).await.unwrap();
    let second = started.elapsed();
    assert_eq!(again.objects, 0, "counted twice");
    let started = Instant::now();
    let pending = watcher.pending(&r).await.unwrap();
    let pending_time = started.elapsed();
    assert_eq!(pending.objects as usize, objects);
    Reconciled {
        objects,
        list,
        first,
        second,
        pending: pending_time,
        rss_peak: mib(proc_kib(std::process::id(), "VmHWM:").unwrap_or(0)),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let mut rows = Vec::new();
    for n in [args.baseline_repositories, args.repositories] {
        eprintln!("evaluating {n} repositories ...");
        rows.push(evaluate(n).await);
    }
    println!("## One CT evaluation across N repositories (local stack, `POST /api/ct/evaluate`)\n");
    println!("| repositories | seeding (s) | first evaluation (s) | per repository (ms) | jobs queued | second evaluation (s) | RSS before / after (MiB) |");
    println!("|---:|---:|---:|---:|---:|---:|---|");
    for e in &rows {
        println!(
            "| {} | {:.1} | {:.2} | {:.2} | {} | {:.2} | {:.1} / {:.1} |",
            e.repositories,
            seconds(e.seed),
            seconds(e.first),
            seconds(e.first) * 1000.0 / e.repositories as f64,
            e.first_run.queued.len(),
            seconds(e.second),
            e.rss_before,
            e.rss_after,
        );
    }
    let (small, large) = (&rows[0], &rows[1]);
    println!(
        "\ntime ratio {} / {} repositories: first {:.2}, second {:.2} (size ratio {:.1})",
        large.repositories,
        small.repositories,
        seconds(large.first) / seconds(small.first),
        seconds(large.second) / seconds(small.second),
        large.repositories as f64 / small.repositories as f64,
    );
    if args.objects > 0 {
        eprintln!("reconciling {} objects ...", args.objects);
        let r = reconcile(args.objects).await;
        println!(
            "\n## Reconciliation of {} raw objects (local blob store)\n",
            r.objects
        );
        println!("| step | time (s) | × the listing |");
        println!("|---|---:|---:|");
        for (step, d) in [
            ("listing `raw/bench/data/` alone", r.list),
            ("first reconciliation (all found, counted)", r.first),
            ("second reconciliation (nothing new)", r.second),
            ("pending volume read", r.pending),
        ] {
            println!(
                "| {step} | {:.2} | {:.1} |",
                seconds(d),
                seconds(d) / seconds(r.list)
            );
        }
        println!("\npeak RSS of the process (VmHWM): {:.1} MiB", r.rss_peak);
    }
}
