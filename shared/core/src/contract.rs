//! The port contract suite: executable versions of the contracts documented in
//! [`crate::ports`], so every adapter set (memory, SQLite, AWS against a local server) is
//! held to one behaviour. Meant for adapters' tests; code that does not call it links none of it.
//!
//! Every function panics (assert) on a contract violation and expects a fresh, empty
//! backend: an empty run table, idempotency table, queue set or bucket. Races need a
//! multi-threaded runtime to race for real:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn run_store_contract() {
//!     vaia_core::contract::run_store(&MyRunStore::new()).await;
//!     vaia_core::contract::run_store_races(Arc::new(MyRunStore::new())).await;
//! }
//! ```
//!
//! Time: run-store and idempotency tests pass explicit timestamps, so they need no clock.
//! Queue tests need visibility timeouts to pass; a [`QueueHarness`] decides how. Adapters
//! on a fake clock move it ([`QueueHarness::advance`] returns at once); adapters on real
//! time (SQS) sleep. The suite uses a visibility of [`VISIBILITY`] (1 s) and advances by
//! [`VISIBILITY`] plus [`MARGIN`], so on real time the whole queue suite takes about
//! `(2 * max_receives + 4)` seconds.

// Asserting is this module's job: a contract violation is a panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use crate::ids::{BlobKey, CommitSha, Repository};
use crate::messages::ObjectCreated;
use crate::policy::Policy;
use crate::ports::*;
use crate::run::{EventKind, Failure, Run, RunEvent, Timestamp, Trigger};
use crate::state::PipelineState;
use async_trait::async_trait;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Visibility timeout the queue tests receive with.
pub const VISIBILITY: Duration = Duration::from_secs(1);
/// Slack added to every [`QueueHarness::advance`] so real clocks are safely past a deadline.
pub const MARGIN: Duration = Duration::from_millis(200);

/// How many concurrent callers the race tests use.
const RACERS: usize = 16;

/// What the queue suite needs beyond the [`Queue`] port.
#[async_trait]
pub trait QueueHarness: Send + Sync {
    /// Let `by` pass for the queue's clock: move a fake clock, or sleep.
    async fn advance(&self, by: Duration);
    /// The queue's maximum receives before dead-lettering.
    fn max_receives(&self) -> u32;
    /// Bodies and recorded reasons of the dead-letter queue of `queue`, oldest first.
    async fn dead_letters(&self, queue: &str) -> PortResult<Vec<(String, Option<String>)>>;
}

/// A fixed, whole-second base time, so every backend stores it exactly.
pub fn base_time() -> Timestamp {
    chrono::DateTime::from_timestamp(1_704_067_200, 0).unwrap_or_default()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// A valid IDLE run for commit number `n` of `octo/agent`, created at `at`.
pub fn sample_run(n: u64, at: Timestamp) -> Run {
    let repository = Repository::new("octo/agent").expect("valid repository");
    let commit = CommitSha::new(format!("{n:040x}")).expect("valid commit");
    let trigger = Trigger {
        kind: "push".into(),
        delivery: None,
        actor: Some("contract".into()),
        at,
    };
    Run::new(
        repository,
        commit,
        Some("main".into()),
        trigger,
        Policy::default(),
        at,
    )
}

/// Stores `files` as `run`'s evidence bundle, then its manifest, and records the bundle in
/// `run` as the registry does when it verifies one (for tests of what reads verified
/// evidence: the gates). The image digest is `sha256:` and 64 `a`s.
pub async fn verified_bundle(blobs: &dyn BlobStore, run: &mut Run, files: &[(&str, &[u8])]) {
    use crate::evidence::{ImageRef, Manifest, ManifestFile, MANIFEST_FILE, MANIFEST_SCHEMA_V1};
    use sha2::{Digest, Sha256};
    let mut listed = Vec::new();
    for (name, bytes) in files {
        let key = BlobKey::evidence(&run.repository, &run.commit, name).expect("evidence key");
        blobs.put(&key, bytes).await.expect("put evidence");
        listed.push(ManifestFile {
            name: (*name).to_string(),
            sha256: hex::encode(Sha256::digest(bytes)),
            bytes: bytes.len() as u64,
        });
    }
    let image = crate::ids::ImageDigest::new(format!("sha256:{}", "a".repeat(64))).expect("digest");
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA_V1.into(),
        repository: run.repository.clone(),
        commit: run.commit.clone(),
        image: ImageRef {
            digest: image.clone(),
            base_digest: None,
        },
        dataset: None,
        files: listed,
        created_at: base_time(),
    };
    let bytes = serde_json::to_vec_pretty(&manifest).expect("manifest");
    let key = BlobKey::evidence(&run.repository, &run.commit, MANIFEST_FILE).expect("manifest key");
    blobs.put(&key, &bytes).await.expect("put manifest");
    run.candidate.evidence = Some(crate::run::EvidenceRecord {
        manifest: key,
        manifest_sha256: hex::encode(Sha256::digest(&bytes)),
        image_digest: image,
        base_digest: None,
        dataset: None,
        files: files.iter().map(|(n, _)| (*n).to_string()).collect(),
    });
}

/// The next event of `run`'s log: a transition to `to` (or a note when `to` is `None`).
pub fn sample_event(run: &Run, to: Option<PipelineState>, at: Timestamp) -> RunEvent {
    RunEvent {
        run_id: run.id.clone(),
        seq: run.events + 1,
        at,
        kind: if to.is_some() {
            EventKind::Transition
        } else {
            EventKind::Note
        },
        from: run.state,
        to,
        reason: "contract".into(),
        actor: "contract".into(),
        evidence: None,
        cause: Some(format!("msg-{}", run.events + 1)),
        verdict: None,
    }
}

/// `run` moved to `to` with the bookkeeping a writer does: version and event count bumped.
pub fn advanced(run: &Run, to: PipelineState, at: Timestamp) -> (Run, RunEvent) {
    let event = sample_event(run, Some(to), at);
    let mut next = run.clone();
    next.state = to;
    next.version += 1;
    next.events += 1;
    next.updated_at = at;
    next.state_entered_at = at;
    (next, event)
}

fn is_conflict(r: &PortResult<()>) -> bool {
    matches!(r, Err(PortError::Conflict { .. }))
}

/// Create, get, conditional save, events, list with cursors, counts and overdue.
pub async fn run_store(store: &dyn RunStore) {
    let t0 = base_time();
    let run = sample_run(1, t0);

    assert_eq!(store.get(&run.id).await, Ok(None), "get of a missing run");
    assert_eq!(
        store.events(&run.id).await,
        Ok(vec![]),
        "events of a missing run"
    );

    // create is insert-if-absent and stores the events with the run.
    let first = sample_event(&run, None, t0);
    let mut created = run.clone();
    created.events = 1;
    assert_eq!(
        store.create(&created, std::slice::from_ref(&first)).await,
        Ok(Created::Created)
    );
    assert_eq!(store.get(&run.id).await, Ok(Some(created.clone())));
    let mut other = created.clone();
    other.branch = Some("other".into());
    assert_eq!(
        store
            .create(&other, &[sample_event(&other, None, t0)])
            .await,
        Ok(Created::Exists(Box::new(created.clone()))),
        "a second create returns the stored run"
    );
    assert_eq!(store.events(&run.id).await, Ok(vec![first.clone()]));

    // save is conditional on the version and appends events with the run.
    let (v1, e2) = advanced(&created, PipelineState::Triggered, t0 + secs(1));
    assert_eq!(store.save(&v1, 0, std::slice::from_ref(&e2)).await, Ok(()));
    assert_eq!(store.get(&run.id).await, Ok(Some(v1.clone())));
    assert_eq!(
        store.events(&run.id).await,
        Ok(vec![first.clone(), e2.clone()])
    );

    let (stale, stale_event) = advanced(&created, PipelineState::Failed, t0 + secs(2));
    match store.save(&stale, 0, &[stale_event]).await {
        Err(PortError::Conflict {
            expected, found, ..
        }) => {
            assert_eq!(expected, 0);
            assert!(matches!(found, None | Some(1)), "found {found:?}");
        }
        other => panic!("stale save must conflict, got {other:?}"),
    }
    assert_eq!(
        store.get(&run.id).await,
        Ok(Some(v1.clone())),
        "lost save wrote"
    );
    assert_eq!(
        store.events(&run.id).await,
        Ok(vec![first.clone(), e2.clone()]),
        "lost save appended events"
    );

    // Two events in one save, including a note; a failure record round-trips.
    let (mut v2, e3) = advanced(&v1, PipelineState::Failed, t0 + secs(3));
    let e4 = sample_event(&v2, None, t0 + secs(3));
    v2.events += 1;
    v2.failure = Some(Failure {
        gate: None,
        reason: "contract failure".into(),
        at: t0 + secs(3),
    });
    assert_eq!(store.save(&v2, 1, &[e3.clone(), e4.clone()]).await, Ok(()));
    assert_eq!(store.get(&run.id).await, Ok(Some(v2.clone())));
    assert_eq!(store.events(&run.id).await, Ok(vec![first, e2, e3, e4]));

    // A save of a run that does not exist conflicts and creates nothing.
    let ghost = sample_run(999, t0);
    let (ghost_v1, ghost_event) = advanced(&ghost, PipelineState::Triggered, t0);
    assert!(is_conflict(&store.save(&ghost_v1, 0, &[ghost_event]).await));
    assert_eq!(store.get(&ghost.id).await, Ok(None));
    assert_eq!(store.events(&ghost.id).await, Ok(vec![]));

    list_and_queries(store, v2).await;
}

async fn list_and_queries(store: &dyn RunStore, failed: Run) {
    let t0 = base_time();
    // Runs 2..=6, created a minute apart; runs 5 and 6 share a creation time (id breaks
    // the tie). Run 3 has a 60 s timeout; run 4 is promoted.
    let mut runs = vec![failed];
    for n in 2..=6u64 {
        let minutes = i64::try_from(n.min(5)).unwrap_or(5);
        let mut run = sample_run(n, t0 + secs(60 * minutes));
        if n == 3 {
            run.policy.run.timeout_secs = 60;
        }
        if n == 4 {
            run.state = PipelineState::Promoted;
        }
        assert_eq!(store.create(&run, &[]).await, Ok(Created::Created));
        runs.push(run);
    }
    let mut expected = runs.clone();
    expected.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));

    for limit in [1usize, 2, 3, 4, 6, 10] {
        let mut seen = Vec::new();
        let mut after: Option<RunCursor> = None;
        loop {
            let page = store
                .list(limit, after.as_ref())
                .await
                .expect("list succeeds");
            assert!(page.runs.len() <= limit, "page over limit {limit}");
            seen.extend(page.runs.iter().cloned());
            match page.next {
                Some(next) => {
                    assert_eq!(page.runs.len(), limit, "short page with a next cursor");
                    after = Some(next);
                }
                None => break,
            }
            assert!(seen.len() <= expected.len(), "list does not terminate");
        }
        assert_eq!(
            seen, expected,
            "list with limit {limit}: newest first, all runs"
        );
    }

    let counts = store.count_by_state().await.expect("count_by_state");
    let want: BTreeMap<PipelineState, u64> = [
        (PipelineState::Idle, 4),
        (PipelineState::Promoted, 1),
        (PipelineState::Failed, 1),
    ]
    .into_iter()
    .collect();
    let counts: BTreeMap<_, _> = counts.into_iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(counts, want, "count_by_state");

    // overdue: in flight and deadline at or before now; run 3's deadline is t0+4min.
    let run3 = &runs[2];
    let deadline = run3.deadline();
    assert_eq!(deadline, t0 + secs(240));
    let ids = |v: Vec<Run>| v.into_iter().map(|r| r.id).collect::<BTreeSet<_>>();
    assert_eq!(
        store.overdue(deadline - secs(1), 10).await.map(ids),
        Ok(BTreeSet::new())
    );
    assert_eq!(
        store.overdue(deadline, 10).await.map(ids),
        Ok([run3.id.clone()].into_iter().collect())
    );
    // Far future: every in-flight run (2, 3, 5, 6), never the promoted or failed ones.
    let later = t0 + secs(10 * 86_400);
    let all: BTreeSet<_> = [1usize, 2, 4, 5]
        .iter()
        .map(|i| runs[*i].id.clone())
        .collect();
    assert_eq!(store.overdue(later, 10).await.map(ids), Ok(all.clone()));
    let two = store.overdue(later, 2).await.expect("overdue with a limit");
    assert_eq!(two.len(), 2, "overdue honours its limit");
    assert!(two.iter().all(|r| all.contains(&r.id)));
}

/// Paging through `n` runs, 97 at a time, while new runs keep arriving (five each time a
/// page is read): every run that existed at the start is seen exactly once, in
/// the list's order, and no arrival is returned (they sort before the first page). A
/// third of the runs share creation times, so the id has to break ties in the cursor.
/// Runs are created `concurrency` at a time.
pub async fn run_store_paging(store: Arc<dyn RunStore>, n: u64, concurrency: usize) {
    use crate::RunId;
    use std::collections::HashSet;
    let t0 = base_time();
    let at = |i: u64| t0 + chrono::Duration::milliseconds(i64::try_from(i / 3 * 7).unwrap_or(0));
    let create_all = |runs: Vec<Run>| {
        let store = store.clone();
        async move {
            let mut pending = runs.into_iter();
            loop {
                let batch: Vec<Run> = pending.by_ref().take(concurrency.max(1)).collect();
                if batch.is_empty() {
                    break;
                }
                let mut tasks = Vec::new();
                for run in batch {
                    let store = store.clone();
                    tasks.push(tokio::spawn(async move { store.create(&run, &[]).await }));
                }
                for task in tasks {
                    assert_eq!(task.await.expect("join"), Ok(Created::Created));
                }
            }
        }
    };
    let existing: Vec<Run> = (1..=n).map(|i| sample_run(i, at(i))).collect();
    create_all(existing.clone()).await;
    let mut expected: Vec<RunId> = {
        let mut runs = existing;
        runs.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        runs.into_iter().map(|r| r.id).collect()
    };
    expected.shrink_to_fit();

    let limit = 97usize;
    let mut arrivals = n;
    let mut seen: Vec<RunId> = Vec::with_capacity(expected.len());
    let mut after: Option<RunCursor> = None;
    loop {
        let page = store
            .list(limit, after.as_ref())
            .await
            .expect("list succeeds");
        seen.extend(page.runs.iter().map(|r| r.id.clone()));
        // New runs arrive between pages, newer than everything listed so far.
        let newer: Vec<Run> = (0..5u64)
            .map(|k| {
                arrivals += 1;
                sample_run(
                    arrivals,
                    at(n) + secs(60) + secs(i64::try_from(k).unwrap_or(0)),
                )
            })
            .collect();
        create_all(newer).await;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(seen.len() <= expected.len(), "list does not terminate");
    }
    let unique: HashSet<&RunId> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a run was listed twice");
    assert_eq!(seen.len(), expected.len(), "runs were missed");
    assert!(seen == expected, "paging is not newest first, then id");
}

/// Racing saves with one expected version: exactly one wins, the others conflict, and
/// exactly one set of events is appended. Racing creates: exactly one `Created`.
pub async fn run_store_races(store: Arc<dyn RunStore>) {
    let t0 = base_time();
    let run = sample_run(42, t0);

    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let store = store.clone();
        let run = run.clone();
        tasks.push(tokio::spawn(async move { store.create(&run, &[]).await }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.expect("create task") {
            Ok(Created::Created) => created += 1,
            Ok(Created::Exists(stored)) => assert_eq!(*stored, run),
            Err(e) => panic!("racing create failed: {e}"),
        }
    }
    assert_eq!(created, 1, "exactly one racing create wins");

    for round in 0..3u64 {
        let current = store.get(&run.id).await.expect("get").expect("run exists");
        assert_eq!(current.version, round);
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let store = store.clone();
            let (mut next, mut event) = advanced(&current, PipelineState::Triggered, t0 + secs(1));
            next.branch = Some(format!("writer-{i}"));
            event.actor = format!("writer-{i}");
            tasks.push(tokio::spawn(async move {
                (i, store.save(&next, round, &[event]).await)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (i, result) = t.await.expect("save task");
            match result {
                Ok(()) => winners.push(i),
                Err(PortError::Conflict { expected, .. }) => assert_eq!(expected, round),
                Err(e) => panic!("racing save failed with a non-conflict: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one racing save wins");
        let stored = store.get(&run.id).await.expect("get").expect("run exists");
        assert_eq!(stored.version, round + 1);
        assert_eq!(stored.branch, Some(format!("writer-{}", winners[0])));
        let events = store.events(&run.id).await.expect("events");
        assert_eq!(events.len() as u64, round + 1, "only the winner's event");
        assert_eq!(
            events.last().map(|e| e.actor.clone()),
            Some(format!("writer-{}", winners[0]))
        );
    }
}

/// Claim, in-progress, expiry after the ttl, complete, duplicates, release.
pub async fn idempotency(store: &dyn Idempotency) {
    let t0 = base_time();
    let ttl = Duration::from_secs(60);

    assert_eq!(store.claim("k1", ttl, t0).await, Ok(Claim::Claimed));
    assert_eq!(
        store.claim("k1", ttl, t0 + secs(1)).await,
        Ok(Claim::InProgress)
    );
    assert_eq!(
        store.claim("k1", ttl, t0 + secs(59)).await,
        Ok(Claim::InProgress)
    );
    // The owner crashed: after the ttl the key can be claimed again, once.
    assert_eq!(
        store.claim("k1", ttl, t0 + secs(61)).await,
        Ok(Claim::Claimed)
    );
    assert_eq!(
        store.claim("k1", ttl, t0 + secs(62)).await,
        Ok(Claim::InProgress)
    );

    store
        .complete("k1", "{\"run\":1}", t0 + secs(63))
        .await
        .expect("complete");
    for at in [t0 + secs(64), t0 + secs(86_400)] {
        assert_eq!(
            store.claim("k1", ttl, at).await,
            Ok(Claim::Completed("{\"run\":1}".into())),
            "duplicates get the stored result"
        );
    }
    // Release does not undo a completed key.
    store.release("k1").await.expect("release completed");
    assert_eq!(
        store.claim("k1", ttl, t0 + secs(65)).await,
        Ok(Claim::Completed("{\"run\":1}".into()))
    );

    // Release gives the key up at once.
    assert_eq!(store.claim("k2", ttl, t0).await, Ok(Claim::Claimed));
    store.release("k2").await.expect("release");
    assert_eq!(store.claim("k2", ttl, t0).await, Ok(Claim::Claimed));
    assert_eq!(store.claim("k2", ttl, t0).await, Ok(Claim::InProgress));

    // Keys are independent; releasing an unknown key is fine.
    assert_eq!(store.claim("k3", ttl, t0).await, Ok(Claim::Claimed));
    store
        .release("never-claimed")
        .await
        .expect("release unknown");
}

/// Of many concurrent claims of one key exactly one is `Claimed`; after completion every
/// concurrent duplicate gets the result.
pub async fn idempotency_races(store: Arc<dyn Idempotency>) {
    let t0 = base_time();
    let ttl = Duration::from_secs(60);
    for (key, round_at) in [("race-a", t0), ("race-b", t0 + secs(1))] {
        let mut tasks = Vec::new();
        for _ in 0..RACERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.claim(key, ttl, round_at).await
            }));
        }
        let mut claimed = 0;
        for t in tasks {
            match t.await.expect("claim task") {
                Ok(Claim::Claimed) => claimed += 1,
                Ok(Claim::InProgress) => {}
                other => panic!("racing claim: unexpected {other:?}"),
            }
        }
        assert_eq!(claimed, 1, "exactly one racing claim of {key} wins");
    }

    store
        .complete("race-a", "done", t0 + secs(2))
        .await
        .expect("complete");
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.claim("race-a", ttl, t0 + secs(3)).await
        }));
    }
    for t in tasks {
        assert_eq!(
            t.await.expect("claim task"),
            Ok(Claim::Completed("done".into()))
        );
    }
}

fn msg(body: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: body.into(),
        dedupe_key: None,
        group: None,
    }
}

fn keyed(body: &str, key: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: body.into(),
        dedupe_key: Some(key.into()),
        group: None,
    }
}

fn grouped(body: &str, group: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: body.into(),
        dedupe_key: None,
        group: Some(group.into()),
    }
}

async fn send(q: &dyn Queue, queue: &str, m: OutgoingMessage) -> String {
    q.send(queue, m).await.expect("send")
}

async fn receive(q: &dyn Queue, queue: &str, max: usize) -> Vec<ReceivedMessage> {
    q.receive(queue, max, VISIBILITY).await.expect("receive")
}

async fn depth(q: &dyn Queue, queue: &str) -> QueueDepth {
    q.depth(queue).await.expect("depth")
}

async fn pass_visibility(h: &dyn QueueHarness) {
    h.advance(VISIBILITY + MARGIN).await;
}

fn bodies(ms: &[ReceivedMessage]) -> BTreeSet<String> {
    ms.iter().map(|m| m.body.clone()).collect()
}

/// SQS semantics: send, receive, delete; invisibility during the visibility timeout and
/// redelivery after it with `receive_count + 1`; stale receipts; dedupe keys; retryable
/// and permanent failures; dead-lettering after the maximum receives; depth. Needs
/// `h.max_receives() >= 2`.
pub async fn queue(q: &dyn Queue, h: &dyn QueueHarness) {
    assert!(
        h.max_receives() >= 2,
        "the queue suite needs max_receives >= 2"
    );
    queue_basics(q, h).await;
    queue_dedupe(q).await;
    queue_failures(q, h).await;
    queue_poison(q, h).await;
}

async fn queue_basics(q: &dyn Queue, h: &dyn QueueHarness) {
    let name = "contract-basic";
    assert!(receive(q, name, 10).await.is_empty(), "empty queue");
    assert_eq!(depth(q, name).await, QueueDepth::default());

    let ids: BTreeSet<String> = [
        send(q, name, msg("one")).await,
        send(q, name, msg("two")).await,
        send(q, name, msg("two")).await,
    ]
    .into_iter()
    .collect();
    assert_eq!(ids.len(), 3, "message ids are distinct");
    assert_eq!(
        depth(q, name).await,
        QueueDepth {
            visible: 3,
            in_flight: 0,
            dead: 0
        }
    );

    let mut first = Vec::new();
    for _ in 0..3 {
        first.extend(receive(q, name, 10).await);
        if first.len() == 3 {
            break;
        }
    }
    assert_eq!(first.len(), 3, "all three delivered");
    assert_eq!(
        first.iter().map(|m| m.id.clone()).collect::<BTreeSet<_>>(),
        ids
    );
    assert!(first.iter().all(|m| m.receive_count == 1), "first delivery");
    let receipts: BTreeSet<_> = first.iter().map(|m| m.receipt.clone()).collect();
    assert_eq!(receipts.len(), 3, "receipts are distinct");
    assert!(
        receive(q, name, 10).await.is_empty(),
        "invisible while in flight"
    );
    assert_eq!(
        depth(q, name).await,
        QueueDepth {
            visible: 0,
            in_flight: 3,
            dead: 0
        }
    );

    let (done, rest) = first.split_at(1);
    q.delete(name, &done[0].receipt).await.expect("delete");
    assert_eq!(depth(q, name).await.in_flight, 2);

    pass_visibility(h).await;
    let second = receive(q, name, 10).await;
    assert_eq!(
        second.iter().map(|m| m.id.clone()).collect::<BTreeSet<_>>(),
        rest.iter().map(|m| m.id.clone()).collect::<BTreeSet<_>>(),
        "undeleted messages come back after the visibility timeout"
    );
    assert!(second.iter().all(|m| m.receive_count == 2));
    assert!(second.iter().all(|m| !receipts.contains(&m.receipt)));

    // Receipts of earlier deliveries are stale: delete and fail are no-ops.
    for old in rest {
        q.delete(name, &old.receipt).await.expect("stale delete");
        q.fail(name, &old.receipt, "stale", false)
            .await
            .expect("stale fail");
    }
    assert_eq!(
        depth(q, name).await,
        QueueDepth {
            visible: 0,
            in_flight: 2,
            dead: 0
        },
        "stale receipts changed nothing"
    );
    for m in &second {
        q.delete(name, &m.receipt).await.expect("delete");
    }
    assert_eq!(depth(q, name).await, QueueDepth::default());
    // Deleting twice is harmless.
    q.delete(name, &second[0].receipt)
        .await
        .expect("second delete");
    pass_visibility(h).await;
    assert!(receive(q, name, 10).await.is_empty(), "deleted for good");
}

async fn queue_dedupe(q: &dyn Queue) {
    let name = "contract-dedupe";
    send(q, name, keyed("a", "key-1")).await;
    send(q, name, keyed("a again", "key-1")).await;
    send(q, name, keyed("b", "key-2")).await;
    let got = receive(q, name, 10).await;
    let got = if got.len() < 2 {
        let mut more = got;
        more.extend(receive(q, name, 10).await);
        more
    } else {
        got
    };
    assert_eq!(
        bodies(&got),
        ["a", "b"].map(String::from).into_iter().collect(),
        "one message per dedupe key"
    );
    for m in &got {
        q.delete(name, &m.receipt).await.expect("delete");
    }
    // Still inside the window after the first copy was consumed.
    send(q, name, keyed("a late copy", "key-1")).await;
    assert!(
        receive(q, name, 10).await.is_empty(),
        "a duplicate inside the window is dropped"
    );
    assert_eq!(depth(q, name).await, QueueDepth::default());
}

async fn queue_failures(q: &dyn Queue, h: &dyn QueueHarness) {
    let name = "contract-fail";
    send(q, name, msg("flaky")).await;
    let m = receive(q, name, 1).await;
    assert_eq!(m.len(), 1);
    q.fail(name, &m[0].receipt, "try again", true)
        .await
        .expect("fail retryable");
    pass_visibility(h).await;
    let again = receive(q, name, 1).await;
    assert_eq!(again.len(), 1, "a retryable failure is delivered again");
    assert_eq!(again[0].id, m[0].id);
    assert_eq!(again[0].receive_count, 2);
    q.delete(name, &again[0].receipt).await.expect("delete");

    send(q, name, msg("bad input")).await;
    let m = receive(q, name, 1).await;
    assert_eq!(m.len(), 1);
    q.fail(name, &m[0].receipt, "unparseable body", false)
        .await
        .expect("fail permanent");
    assert_eq!(
        depth(q, name).await,
        QueueDepth {
            visible: 0,
            in_flight: 0,
            dead: 1
        },
        "a permanent failure dead-letters at once"
    );
    pass_visibility(h).await;
    assert!(receive(q, name, 10).await.is_empty());
    let dead = h.dead_letters(name).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "bad input");
    let reason = dead[0].1.clone().unwrap_or_default();
    assert!(
        reason.contains("unparseable body"),
        "dead letter keeps the reason, got {reason:?}"
    );
}

async fn queue_poison(q: &dyn Queue, h: &dyn QueueHarness) {
    let max = h.max_receives();

    // Failed on every delivery: dead after `max` receives, with the last error.
    let name = "contract-poison";
    send(q, name, msg("poison")).await;
    for attempt in 1..=max {
        let m = receive(q, name, 1).await;
        assert_eq!(m.len(), 1, "delivery {attempt} of {max}");
        assert_eq!(m[0].receive_count, attempt);
        q.fail(name, &m[0].receipt, &format!("error #{attempt}"), true)
            .await
            .expect("fail");
        pass_visibility(h).await;
    }
    assert!(
        receive(q, name, 10).await.is_empty(),
        "no delivery past max"
    );
    assert_eq!(
        depth(q, name).await,
        QueueDepth {
            visible: 0,
            in_flight: 0,
            dead: 1
        }
    );
    let dead = h.dead_letters(name).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "poison");
    let reason = dead[0].1.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!("error #{max}")),
        "dead letter names the last error, got {reason:?}"
    );

    // Never deleted nor failed: the visibility timeout runs out `max` times.
    let name = "contract-abandoned";
    send(q, name, msg("abandoned")).await;
    for attempt in 1..=max {
        let m = receive(q, name, 1).await;
        assert_eq!(m.len(), 1, "delivery {attempt} of {max}");
        assert_eq!(m[0].receive_count, attempt);
        pass_visibility(h).await;
    }
    assert!(
        receive(q, name, 10).await.is_empty(),
        "no delivery past max"
    );
    assert_eq!(depth(q, name).await.dead, 1);
    let dead = h.dead_letters(name).await.expect("dead letters");
    assert_eq!(
        dead.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
        ["abandoned"]
    );
}

/// FIFO groups (SQS FIFO, SQLite; the memory queue does not implement groups): messages
/// of one group are delivered in order and never while another of the group is in flight;
/// other groups and ungrouped messages are not held up.
pub async fn queue_groups(q: &dyn Queue, h: &dyn QueueHarness) {
    let name = "contract-groups";
    send(q, name, grouped("a1", "run-a")).await;
    send(q, name, grouped("a2", "run-a")).await;
    send(q, name, grouped("a3", "run-a")).await;
    send(q, name, grouped("b1", "run-b")).await;

    let first = receive(q, name, 1).await;
    assert_eq!(bodies(&first), ["a1".to_string()].into_iter().collect());
    let more = receive(q, name, 10).await;
    assert_eq!(
        bodies(&more),
        ["b1".to_string()].into_iter().collect(),
        "a2 waits while a1 is in flight; b1 does not"
    );
    assert!(receive(q, name, 10).await.is_empty());

    // A retryable failure keeps the order: a1 again before a2.
    q.fail(name, &first[0].receipt, "retry", true)
        .await
        .expect("fail");
    pass_visibility(h).await;
    let again = receive(q, name, 10).await;
    let a: Vec<_> = again
        .iter()
        .filter(|m| m.body.starts_with('a'))
        .map(|m| m.body.as_str())
        .collect();
    assert_eq!(a, ["a1"], "the group's head is redelivered first, alone");
    for m in &again {
        q.delete(name, &m.receipt).await.expect("delete");
    }
    for want in ["a2", "a3"] {
        let next = receive(q, name, 10).await;
        assert_eq!(
            next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            [want]
        );
        q.delete(name, &next[0].receipt).await.expect("delete");
    }
    // b1's receipt may have expired; let it come back and clear it.
    pass_visibility(h).await;
    for m in receive(q, name, 10).await {
        q.delete(name, &m.receipt).await.expect("delete");
    }
    assert_eq!(depth(q, name).await, QueueDepth::default());
}

/// Compares S3-style sequencers: left-pad the shorter with zeros, then compare.
pub fn compare_sequencers(a: &str, b: &str) -> Ordering {
    let width = a.len().max(b.len());
    format!("{a:0>width$}").cmp(&format!("{b:0>width$}"))
}

/// Put, get, overwrite, conditional put (refused over a blob, one winner of a race), list
/// by whole-segment prefix, and (when `notify` is given: the queue the store notifies and
/// its name) one `ObjectCreated` per write.
pub async fn blob_store(store: &dyn BlobStore, notify: Option<(&dyn Queue, &str)>) {
    let key = |s: &str| BlobKey::new(s).expect("valid blob key");
    let a = key("evidence/octo/agent/abc/manifest.json");
    let b = key("evidence/octo/agent/abc/tools.json");
    let c = key("evidence/octo/agent2/def/manifest.json");
    let d = key("registry/octo/agent/index.json");
    let empty = key("evidence/octo/agent/abc/empty.txt");

    assert_eq!(store.get(&a).await, Ok(None), "get of a missing blob");
    assert_eq!(store.list("evidence/").await, Ok(vec![]));

    let mut events = Vec::new();
    let put_a = store.put(&a, b"{\"v\":1}").await.expect("put");
    assert_eq!((put_a.key.clone(), put_a.size), (a.clone(), 7));
    events.push(put_a.clone());
    assert_eq!(store.get(&a).await, Ok(Some(b"{\"v\":1}".to_vec())));

    let put_a2 = store.put(&a, b"{\"v\":22}").await.expect("overwrite");
    assert_eq!(put_a2.size, 8);
    assert_eq!(
        compare_sequencers(&put_a2.sequencer, &put_a.sequencer),
        Ordering::Greater,
        "a later write has a later sequencer"
    );
    events.push(put_a2);
    assert_eq!(store.get(&a).await, Ok(Some(b"{\"v\":22}".to_vec())));

    // Bounded reads: within and exactly at the limit the whole blob; over it, not the
    // blob (its size where the store knows it); a limit of 0 asks only whether it exists.
    assert_eq!(store.get_at_most(&b, 100).await, Ok(None), "missing");
    assert_eq!(
        store.get_at_most(&a, 100).await,
        Ok(Some(Bounded::Bytes(b"{\"v\":22}".to_vec())))
    );
    assert_eq!(
        store.get_at_most(&a, 8).await,
        Ok(Some(Bounded::Bytes(b"{\"v\":22}".to_vec()))),
        "exactly at the limit"
    );
    match store.get_at_most(&a, 7).await {
        Ok(Some(Bounded::TooLarge { size })) => {
            assert!(size.is_none_or(|n| n == 8), "size {size:?}")
        }
        other => panic!("one byte over the limit: {other:?}"),
    }
    assert!(matches!(
        store.get_at_most(&a, 0).await,
        Ok(Some(Bounded::TooLarge { .. }))
    ));

    for (k, bytes) in [
        (&b, &b"[]"[..]),
        (&c, &b"{}"[..]),
        (&d, &b"x"[..]),
        (&empty, &b""[..]),
    ] {
        events.push(store.put(k, bytes).await.expect("put"));
    }
    assert_eq!(store.get(&empty).await, Ok(Some(vec![])));

    // Conditional writes: refused over an existing blob (nothing written, nothing sent),
    // and of four racing on a new key exactly one wins.
    assert_eq!(store.put_if_absent(&a, b"lost").await, Ok(None));
    assert_eq!(store.get(&a).await, Ok(Some(b"{\"v\":22}".to_vec())));
    let claimed = key("registry/octo/agent/versions/1.0.0.json");
    let (w, x, y, z) = tokio::join!(
        store.put_if_absent(&claimed, b"w"),
        store.put_if_absent(&claimed, b"x"),
        store.put_if_absent(&claimed, b"y"),
        store.put_if_absent(&claimed, b"z"),
    );
    let outcomes = [w, x, y, z].map(|r| r.expect("conditional put"));
    let winners: Vec<(usize, &ObjectCreated)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.as_ref().map(|e| (i, e)))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one racing conditional put wins");
    let (i, won) = winners[0];
    assert_eq!((won.key.clone(), won.size), (claimed.clone(), 1));
    assert_eq!(
        store.get(&claimed).await,
        Ok(Some(vec![b"wxyz"[i]])),
        "the winner's bytes are stored"
    );
    events.push(won.clone());

    // Compare-and-swap: a stale etag writes nothing; of four racing with one etag exactly
    // one wins; a missing blob has no etag to match.
    let tagged = store
        .get_tagged(&claimed)
        .await
        .expect("get_tagged")
        .expect("the claimed blob");
    assert_eq!(tagged.bytes, vec![b"wxyz"[i]]);
    let again = store.get_tagged(&claimed).await.expect("get_tagged");
    assert_eq!(
        again.map(|t| t.etag),
        Some(tagged.etag.clone()),
        "an etag is stable"
    );
    let (w, x, y, z) = tokio::join!(
        store.put_if_match(&claimed, b"cas-w", &tagged.etag),
        store.put_if_match(&claimed, b"cas-x", &tagged.etag),
        store.put_if_match(&claimed, b"cas-y", &tagged.etag),
        store.put_if_match(&claimed, b"cas-z", &tagged.etag),
    );
    let outcomes = [w, x, y, z].map(|r| r.expect("compare-and-swap"));
    let winners: Vec<(usize, &ObjectCreated)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.as_ref().map(|e| (i, e)))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one racing compare-and-swap wins");
    let (i, won) = winners[0];
    assert_eq!((won.key.clone(), won.size), (claimed.clone(), 5));
    let stored = store
        .get_tagged(&claimed)
        .await
        .expect("get")
        .expect("blob");
    assert_eq!(
        stored.bytes,
        format!("cas-{}", ["w", "x", "y", "z"][i]).into_bytes()
    );
    assert_ne!(stored.etag, tagged.etag, "new content, new etag");
    events.push(won.clone());
    assert_eq!(
        store.put_if_match(&claimed, b"stale", &tagged.etag).await,
        Ok(None),
        "a stale etag writes nothing"
    );
    assert_eq!(store.get(&claimed).await, Ok(Some(stored.bytes.clone())));
    let nothing = key("registry/octo/agent/aliases/none.json");
    assert_eq!(store.get_tagged(&nothing).await, Ok(None));
    assert_eq!(
        store.put_if_match(&nothing, b"x", &stored.etag).await,
        Ok(None),
        "no blob, no match"
    );
    assert_eq!(store.get(&nothing).await, Ok(None));

    let listed = store.list("evidence/octo/agent/").await.expect("list");
    assert_eq!(
        listed,
        vec![
            BlobMeta {
                key: empty.clone(),
                size: 0
            },
            BlobMeta {
                key: a.clone(),
                size: 8
            },
            BlobMeta {
                key: b.clone(),
                size: 2
            },
        ],
        "list is sorted, whole-segment (agent2 is not under agent/)"
    );
    let keys: Vec<BlobKey> = store
        .list("evidence/")
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, vec![empty, a, b, c.clone()]);
    assert_eq!(store.list("nothing/").await, Ok(vec![]));

    let Some((q, name)) = notify else {
        return;
    };
    let mut received: Vec<ObjectCreated> = Vec::new();
    for _ in 0..events.len() {
        let batch = q.receive(name, 10, VISIBILITY).await.expect("receive");
        if batch.is_empty() {
            break;
        }
        for m in batch {
            received.push(serde_json::from_str(&m.body).expect("ObjectCreated JSON"));
            q.delete(name, &m.receipt).await.expect("delete");
        }
    }
    let sort = |v: &mut Vec<ObjectCreated>| {
        v.sort_by(|x, y| {
            (x.key.as_str(), x.sequencer.len(), &x.sequencer).cmp(&(
                y.key.as_str(),
                y.sequencer.len(),
                &y.sequencer,
            ))
        })
    };
    sort(&mut received);
    sort(&mut events);
    assert_eq!(received, events, "one ObjectCreated per put");
}
