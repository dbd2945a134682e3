//! Crash consistency: 100 runs flow through a real `vaia up` that is SIGKILLed at random
//! moments 20 times and restarted on the same data directory each time, while GitHub and
//! the agents' CI keep (re)sending as they would (redelivering a push under its delivery
//! id, re-running an upload step whose answer was lost). In the end every run is in the
//! state it reaches without crashes, its log is the log a crash-free run writes (no
//! transition, verdict or registration twice), every version is claimed once, and SQLite's
//! integrity check passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use vaia::client::Client;
use vaia::demo::{push_payload, wait_settled};
use vaia_core::{CommitSha, ImageDigest, PipelineState, Repository};

mod support;
use support::*;

const RUNS: usize = 100;
const KILLS: usize = 20;
const VULNERABLE: &str = include_str!("../../examples/demo/trivy-vulnerable.json");

/// A small deterministic generator, so a failure can be replayed (`VAIA_CRASH_SEED`).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn repo(i: usize) -> Repository {
    Repository::new(format!("octo/agent-{i:03}")).unwrap()
}

fn sha(i: usize) -> CommitSha {
    CommitSha::new(format!("{:040x}", i + 1)).unwrap()
}

/// Every fourth run ships an image with a critical CVE: FAILED at the security gate.
fn expected(i: usize) -> PipelineState {
    if i % 4 == 3 {
        PipelineState::Failed
    } else {
        PipelineState::Promoted
    }
}

/// The push and the upload of run `i`, as many times as it takes: `Err` when the server
/// went away mid-way (the caller tries again after the restart).
async fn send(client: &Client, i: usize) -> anyhow::Result<String> {
    let body = push_payload(&repo(i), &sha(i))?;
    let (status, answer) = client
        .send_webhook(SECRET, "push", &format!("crash-{i}"), &body)
        .await?;
    // 201 created; 200 "exists" when an earlier delivery created the run but died before
    // answering (the webhook then re-sends the run's trigger if it is still IDLE).
    anyhow::ensure!(
        status == 201 || (status == 200 && answer["status"] == "exists"),
        "push {i}: {status} {answer}"
    );
    let trivy = if expected(i) == PipelineState::Failed {
        VULNERABLE
    } else {
        TRIVY
    };
    let image = ImageDigest::new(format!("sha256:{:064x}", i + 1)).unwrap();
    let files = vec![
        ("tools.json".to_string(), V1.as_bytes().to_vec()),
        ("trivy.json".to_string(), trivy.as_bytes().to_vec()),
        ("locust_stats.csv".to_string(), LOCUST.as_bytes().to_vec()),
    ];
    client
        .upload_evidence(&repo(i), &sha(i), &image, None, &files)
        .await?;
    Ok(answer["run_id"].as_str().unwrap_or_default().to_string())
}

/// A run's log without what legitimately varies (times, message ids, the order in which
/// concurrent gates report): its transitions in order, and its other events sorted.
fn shape(detail: &vaia::api::RunDetail) -> (Vec<String>, Vec<String>) {
    use vaia_core::run::EventKind;
    let transitions = detail
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Transition)
        .map(|e| format!("{:?}->{:?}", e.from, e.to))
        .collect();
    let mut others: Vec<String> = detail
        .events
        .iter()
        .filter(|e| e.kind != EventKind::Transition)
        .map(|e| format!("{:?} in {:?} by {}", e.kind, e.from, e.actor))
        .collect();
    others.sort();
    (transitions, others)
}

/// The same log as a crash-free run's: the same transitions; nothing recorded twice; for a
/// promoted run the same notes, for a failed one at least the failing gate's (a verdict of
/// another gate that lands after the failure is stale, with or without crashes).
fn assert_same_log(
    i: usize,
    run: &str,
    got: &(Vec<String>, Vec<String>),
    want: &(Vec<String>, Vec<String>),
) {
    assert_eq!(got.0, want.0, "run {i} ({run}): transitions");
    let unique: BTreeSet<&String> = got.1.iter().collect();
    assert_eq!(
        unique.len(),
        got.1.len(),
        "run {i} ({run}) logged something twice: {:#?}",
        got.1
    );
    if expected(i) == PipelineState::Promoted {
        assert_eq!(got.1, want.1, "run {i} ({run}): notes");
    } else {
        assert!(
            got.1.iter().any(|n| n.ends_with("by gate-security")),
            "run {i} ({run}): the failing verdict is missing: {:#?}",
            got.1
        );
        assert!(
            got.1
                .iter()
                .all(|n| want.1.contains(n) || n.contains("by gate-")),
            "run {i} ({run}): {:#?}",
            got.1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_twenty_sigkills() {
    let seed = std::env::var("VAIA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = Lcg(seed);
    let dir = tempfile::tempdir().unwrap();

    // The logs crash-free runs write, one of each kind, in a separate stack.
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = Vaia::start(reference_dir.path(), POLICY, SECRET);
    let client = Client::new(&reference.url);
    let mut reference_shapes = BTreeMap::new();
    for i in [0, 3] {
        let run = send(&client, i).await.unwrap();
        let detail = wait_settled(&client, &run, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(detail.run.state, expected(i));
        reference_shapes.insert(expected(i), shape(&detail));
    }
    drop(reference);

    let mut sent: BTreeMap<usize, String> = BTreeMap::new();
    let mut kills = 0;
    let mut lives = Vec::new();
    let started = Instant::now();
    while kills < KILLS {
        let vaia = Vaia::start(dir.path(), POLICY, SECRET);
        let client = Client::new(&vaia.url);
        // Send the next few runs not yet acknowledged, a few per life, and SIGKILL the
        // process at a random moment while it is working on them (a send cut short by
        // the kill is sent again in the next life).
        let batch: Vec<usize> = (0..RUNS)
            .filter(|i| !sent.contains_key(i))
            .take(RUNS / KILLS)
            .collect();
        let pid = vaia.child.id();
        // Armed as the batch's last run is being sent, so at least that one is mid-way
        // (its push or upload, or the pipeline behind them) whatever the machine's speed.
        let after = Duration::from_millis(rng.next(20));
        let last = batch.len().saturating_sub(1);
        let mut killer = None;
        for (n, i) in batch.into_iter().enumerate() {
            if n == last {
                killer = Some(std::thread::spawn(move || {
                    std::thread::sleep(after);
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }));
            }
            match send(&client, i).await {
                Ok(run) => {
                    sent.insert(i, run);
                }
                Err(_) => break,
            }
        }
        let killer = killer.unwrap_or_else(|| {
            std::thread::spawn(move || {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            })
        });
        killer.join().unwrap();
        vaia.kill();
        kills += 1;
        // What the dead process left: runs created and not yet settled.
        let db = rusqlite::Connection::open(dir.path().join("vaia.db")).unwrap();
        let in_flight: i64 = db
            .query_row(
                "SELECT count(*) FROM runs WHERE state NOT IN ('PROMOTED', 'FAILED', 'ROLLBACK')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        lives.push((sent.len(), in_flight));
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "crash loop too slow"
        );
    }

    // The last start runs to the end.
    let vaia = Vaia::start(dir.path(), POLICY, SECRET);
    let client = Client::new(&vaia.url);
    // A push whose first delivery died with a process is refused as "being processed"
    // until its claim expires (the webhook's in-progress TTL): GitHub redelivers later,
    // and so does this loop.
    let give_up = Instant::now() + vaia_webhook::IN_PROGRESS_TTL + Duration::from_secs(30);
    for i in 0..RUNS {
        while !sent.contains_key(&i) {
            match send(&client, i).await {
                Ok(run) => {
                    sent.insert(i, run);
                }
                Err(e) => {
                    assert!(Instant::now() < give_up, "run {i} never accepted: {e:#}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
    let mut by_state = BTreeMap::new();
    for (i, run) in &sent {
        let detail = wait_settled(&client, run, Duration::from_secs(120))
            .await
            .unwrap();
        assert_eq!(
            detail.run.state,
            expected(*i),
            "run {i} ({run}): {:#?}",
            detail.events
        );
        assert_same_log(*i, run, &shape(&detail), &reference_shapes[&expected(*i)]);
        *by_state.entry(detail.run.state).or_insert(0) += 1;
        // Every version is claimed once: exactly one record for a promoted run's
        // repository, none for a failed one.
        let versions = dir
            .path()
            .join(format!("blobs/registry/{}/versions", repo(*i)));
        let records: BTreeSet<String> = std::fs::read_dir(&versions)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let want: BTreeSet<String> = if expected(*i) == PipelineState::Promoted {
            ["0.1.0.json".to_string()].into()
        } else {
            BTreeSet::new()
        };
        assert_eq!(records, want, "run {i}: versions claimed");
    }
    assert_eq!(sent.len(), RUNS);
    assert_eq!(by_state[&PipelineState::Promoted], RUNS * 3 / 4);
    assert_eq!(by_state[&PipelineState::Failed], RUNS / 4);
    drop(vaia);

    let db = rusqlite::Connection::open(dir.path().join("vaia.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    eprintln!(
        "crash consistency: {RUNS} runs, {kills} SIGKILLs (seed {seed}), {:.1} s; \
         (runs sent, in flight when last seen) before each kill: {lives:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        lives.iter().filter(|(_, in_flight)| *in_flight > 0).count() >= KILLS / 4,
        "kills should land with runs in flight: {lives:?}"
    );
}
