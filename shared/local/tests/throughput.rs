//! Throughput of the local adapters on the orchestrator's hot path. Ignored by default:
//!
//! ```sh
//! cargo test --release -p vaia-local --test throughput -- --ignored --nocapture
//! ```
//!
//! One applied transition = receive one message + get the run + conditional save with one
//! or two events + send the next message + delete the received one, exactly what the
//! orchestrator does per advance message. Each run walks IDLE → … → PROMOTED (6 transitions),
//! its messages in one FIFO group.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vaia_core::contract::{advanced, base_time, sample_event, sample_run};
use vaia_core::ids::RunId;
use vaia_core::ports::{OutgoingMessage, Queue, RunStore};
use vaia_core::state::PipelineState;
use vaia_local::{LocalOptions, LocalStore};

const PATH: [PipelineState; 7] = [
    PipelineState::Idle,
    PipelineState::Triggered,
    PipelineState::CiRunning,
    PipelineState::Build,
    PipelineState::StagingEval,
    PipelineState::CtQueued,
    PipelineState::Promoted,
];
const QUEUE: &str = "advance";

fn advance(run: &RunId) -> OutgoingMessage {
    OutgoingMessage {
        body: run.to_string(),
        dedupe_key: None,
        group: Some(run.to_string()),
    }
}

async fn worker(store: LocalStore, batch: usize, done: Arc<AtomicU64>, total: u64) {
    let vis = Duration::from_secs(30);
    while done.load(Ordering::Relaxed) < total {
        let msgs = store
            .queue
            .receive(QUEUE, batch, vis)
            .await
            .expect("receive");
        if msgs.is_empty() {
            tokio::task::yield_now().await;
            continue;
        }
        for m in msgs {
            let id: RunId = m.body.parse().expect("run id");
            let run = store.runs.get(&id).await.expect("get").expect("run");
            let i = PATH.iter().position(|s| *s == run.state).expect("on path");
            let to = PATH[i + 1];
            let (mut next, event) = advanced(&run, to, base_time());
            let mut events = vec![event];
            if i % 2 == 0 {
                events.push(sample_event(&next, None, base_time()));
                next.events += 1;
            }
            store
                .runs
                .save(&next, run.version, &events)
                .await
                .expect("save");
            if to != PipelineState::Promoted {
                store.queue.send(QUEUE, advance(&id)).await.expect("send");
            }
            store.queue.delete(QUEUE, &m.receipt).await.expect("delete");
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn measure(runs: u64, workers: usize, batch: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path(), LocalOptions::default()).expect("open");
    for n in 0..runs {
        let run = sample_run(n, base_time());
        store.runs.create(&run, &[]).await.expect("create");
        store
            .queue
            .send(QUEUE, advance(&run.id))
            .await
            .expect("send");
    }
    let total = runs * (PATH.len() as u64 - 1);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| tokio::spawn(worker(store.clone(), batch, done.clone(), total)))
        .collect();
    for t in tasks {
        t.await.expect("worker");
    }
    let elapsed = start.elapsed();
    assert_eq!(done.load(Ordering::Relaxed), total);
    let counts = store.runs.count_by_state().await.expect("counts");
    assert_eq!(counts.get(&PipelineState::Promoted), Some(&runs));
    let depth = store.queue.depth(QUEUE).await.expect("depth");
    assert_eq!((depth.visible, depth.in_flight), (0, 0));
    total as f64 / elapsed.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run with --release --ignored --nocapture"]
async fn transitions_per_second() {
    let runs = 2_000;
    // VAIA_BENCH="1x1,4x10" picks (workers x batch) configurations.
    let configs: Vec<(usize, usize)> = std::env::var("VAIA_BENCH")
        .unwrap_or_else(|_| "1x1,2x1,4x1,1x10,4x10".into())
        .split(',')
        .filter_map(|c| {
            let (w, b) = c.split_once('x')?;
            Some((w.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .collect();
    for (workers, batch) in configs {
        let rate = measure(runs, workers, batch).await;
        println!(
            "workers={workers} batch={batch}: {rate:>8.0} transitions/s ({} transitions)",
            runs * 6
        );
    }
}
