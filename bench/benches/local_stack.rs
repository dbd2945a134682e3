//! Local stack throughput: whole pipeline runs (webhook → evidence → schema gate →
//! registry → PROMOTED) and bare orchestrator transitions, on the SQLite and filesystem
//! adapters, delivered by the router. Reported as elements per second, where an element
//! is one applied state transition.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vaia::stack::{consumers, Ports};
use vaia_core::messages::{queues, send_signal, Signal};
use vaia_core::policy::Policy;
use vaia_core::ports::{BlobStore, NoMetrics, RunStore, SystemClock};
use vaia_core::run::{Run, Trigger};
use vaia_core::{BlobKey, CommitSha, PipelineState, Repository};
use vaia_local::{LocalOptions, LocalStore, RouteOptions, Router};

const TOOLS: &[u8] = include_bytes!("../../examples/demo/tools-v1.json");
/// IDLE → TRIGGERED → CI_RUNNING → BUILD → STAGING_EVAL → CT_QUEUED → PROMOTED.
const TRANSITIONS_PER_RUN: u64 = 6;

struct Local {
    _dir: tempfile::TempDir,
    ports: Ports,
    router: Router,
}

fn local() -> Local {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path(), LocalOptions::default()).expect("open local store");
    let ports = Ports {
        store: store.runs.clone(),
        idempotency: store.idempotency.clone(),
        queue: store.queue.clone(),
        blobs: store.blobs.clone(),
        clock: Arc::new(SystemClock),
        metrics: Arc::new(NoMetrics),
    };
    let mut router = store.router();
    for (queue, handler) in consumers(&ports) {
        router.route(queue, handler, RouteOptions::default());
    }
    Local {
        _dir: dir,
        ports,
        router,
    }
}

fn new_run(i: u64, salt: u64, now: chrono::DateTime<chrono::Utc>) -> Run {
    let repo = Repository::new("bench/agent").expect("repo");
    let sha = CommitSha::new(format!("{salt:020x}{i:020x}")).expect("sha");
    let trigger = Trigger {
        kind: "push".into(),
        delivery: None,
        actor: None,
        at: now,
    };
    Run::new(
        repo,
        sha,
        Some("main".into()),
        trigger,
        Policy::schema_only(),
        now,
    )
}

/// Uploads a one-file evidence bundle for `run` (the manifest last).
async fn upload(blobs: &dyn BlobStore, run: &Run) {
    use sha2::{Digest, Sha256};
    let key = BlobKey::evidence(&run.repository, &run.commit, "tools.json").expect("key");
    blobs.put(&key, TOOLS).await.expect("put tools");
    let manifest = serde_json::json!({
        "schema": "vaia.evidence/v1",
        "repository": run.repository,
        "commit": run.commit,
        "image": {"digest": format!("sha256:{}", "b".repeat(64))},
        "files": [{"name": "tools.json", "sha256": hex::encode(Sha256::digest(TOOLS)), "bytes": TOOLS.len()}],
        "created_at": "2026-11-27T10:00:00Z"
    });
    let key = BlobKey::evidence(&run.repository, &run.commit, "manifest.json").expect("key");
    blobs
        .put(&key, manifest.to_string().as_bytes())
        .await
        .expect("put manifest");
}

/// Creates `n` runs with their evidence, drains the router, checks they all promoted.
async fn pipeline_runs(l: &Local, n: u64, salt: u64) -> Duration {
    let now = l.ports.clock.now();
    let runs: Vec<Run> = (0..n).map(|i| new_run(i, salt, now)).collect();
    let start = Instant::now();
    for run in &runs {
        l.ports.store.create(run, &[]).await.expect("create");
        send_signal(
            &*l.ports.queue,
            &run.id,
            Some(PipelineState::Idle),
            "bench",
            Signal::Trigger,
            "trigger",
        )
        .await
        .expect("send");
        upload(&*l.ports.blobs, run).await;
    }
    l.router.drain().await.expect("drain");
    let elapsed = start.elapsed();
    for run in &runs {
        let state = l
            .ports
            .store
            .get(&run.id)
            .await
            .expect("get")
            .expect("run")
            .state;
        assert_eq!(
            state,
            PipelineState::Promoted,
            "run {} ended {state}",
            run.id
        );
    }
    elapsed
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let l = local();
    let mut salt = 0u64;
    let mut g = c.benchmark_group("local_stack");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    const RUNS: u64 = 50;
    g.throughput(Throughput::Elements(RUNS * TRANSITIONS_PER_RUN));
    g.bench_function("pipeline_50_runs", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                salt += 1;
                total += rt.block_on(pipeline_runs(&l, RUNS, salt));
            }
            total
        })
    });
    g.finish();
}

/// Bare orchestrator: runs already verified, so each message is one transition written
/// and its effect sent; no gate or registry work. Measures the transition machinery alone.
fn transitions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path(), LocalOptions::default()).expect("open");
    let runs: Arc<dyn RunStore> = store.runs.clone();
    let orchestrator = Arc::new(vaia_orchestrator::Orchestrator::new(
        runs.clone(),
        store.queue.clone(),
        Arc::new(SystemClock),
        Arc::new(NoMetrics),
    ));
    let mut router = store.router();
    router.route(
        queues::ADVANCE,
        orchestrator,
        RouteOptions {
            batch: 10,
            visibility: Duration::from_secs(30),
            concurrency: 4,
        },
    );
    let mut salt = 1_000_000u64;
    let mut g = c.benchmark_group("local_stack");
    g.sample_size(10);
    const RUNS: u64 = 500;
    g.throughput(Throughput::Elements(RUNS));
    g.bench_function("orchestrator_500_triggers", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                salt += 1;
                total += rt.block_on(async {
                    let now = chrono::Utc::now();
                    let batch: Vec<Run> = (0..RUNS).map(|i| new_run(i, salt, now)).collect();
                    for run in &batch {
                        runs.create(run, &[]).await.expect("create");
                    }
                    let start = Instant::now();
                    for run in &batch {
                        send_signal(
                            &*store.queue,
                            &run.id,
                            Some(PipelineState::Idle),
                            "bench",
                            Signal::Trigger,
                            "t",
                        )
                        .await
                        .expect("send");
                    }
                    router.drain().await.expect("drain");
                    start.elapsed()
                });
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline, transitions);
criterion_main!(benches);
