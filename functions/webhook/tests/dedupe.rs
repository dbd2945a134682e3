//! One run per (repository, commit), one Trigger message per run, and the same first answer
//! for every redelivery: sequential, concurrent, across events, and across failures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use vaia_core::messages::{queues, Signal};
use vaia_core::ports::{Claim, Clock, Idempotency, RunStore};
use vaia_core::run::EventKind;
use vaia_core::{CommitSha, PipelineState, Repository, RunId};

const PUSH_SHA: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

fn push_run_id() -> RunId {
    RunId::for_commit(
        &Repository::new("Codertocat/Hello-World").unwrap(),
        &CommitSha::new(PUSH_SHA).unwrap(),
    )
}

/// The workflow_run fixture pointed at the push fixture's repository and commit.
fn workflow_run_for_push_commit() -> Vec<u8> {
    let mut v = fixture_json("workflow_run.completed.json");
    v["repository"]["full_name"] = "Codertocat/Hello-World".into();
    v["workflow_run"]["head_repository"]["full_name"] = "Codertocat/Hello-World".into();
    v["workflow_run"]["head_sha"] = PUSH_SHA.into();
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn push_creates_one_run_with_its_creation_event_and_one_trigger() {
    let h = Harness::new();
    let r = h.deliver("push", "d-1", &fixture("push.json")).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["status"], "created");
    assert_eq!(r.body["run_id"], push_run_id().as_str());

    let runs = h.runs().await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.id, push_run_id());
    assert_eq!(run.repository.as_str(), "Codertocat/Hello-World");
    assert_eq!(run.commit.as_str(), PUSH_SHA);
    assert_eq!(run.branch.as_deref(), Some("master"));
    assert_eq!(run.state, PipelineState::Idle);
    assert_eq!(run.events, 1);
    assert_eq!(run.trigger.kind, "push");
    assert_eq!(run.trigger.delivery.as_ref().unwrap().as_str(), "d-1");
    assert_eq!(run.trigger.actor.as_deref(), Some("Codertocat"));
    assert_eq!(run.trigger.at, start());
    assert_eq!(run.created_at, start());

    let events = h.events(&run.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, 1);
    assert_eq!(events[0].kind, EventKind::Note);
    assert_eq!(events[0].from, PipelineState::Idle);
    assert_eq!(events[0].to, None);
    assert!(
        events[0].reason.contains("push delivery d-1"),
        "{}",
        events[0].reason
    );

    let sent = h.queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let (queue, message) = &sent[0];
    assert_eq!(queue, queues::ADVANCE);
    assert_eq!(
        message.dedupe_key.as_deref(),
        Some(format!("{}:trigger", run.id).as_str())
    );
    assert_eq!(message.group.as_deref(), Some(run.id.as_str()));
    let msgs = h.advance_messages().await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].run_id, run.id);
    assert_eq!(msgs[0].expect, Some(PipelineState::Idle));
    assert_eq!(msgs[0].actor, "webhook");
    assert_eq!(msgs[0].signal, Signal::Trigger);
}

#[tokio::test]
async fn a_thousand_redeliveries_make_one_run_and_get_the_first_answer() {
    let h = Harness::new();
    let body = fixture("push.json");
    let first = h.deliver("push", "d-redeliver", &body).await;
    assert_eq!(first.status, 201, "{first:?}");
    for i in 0..1000 {
        // Time passes between redeliveries; the stored answer does not change.
        h.clock.advance(Duration::from_secs(7));
        let again = h.deliver("push", "d-redeliver", &body).await;
        assert_eq!(again, first, "redelivery {i}");
    }
    assert_eq!(h.runs().await.len(), 1);
    assert_eq!(h.store.creates.load(Ordering::SeqCst), 1);
    assert_eq!(h.queue.sent.lock().unwrap().len(), 1);
    assert_eq!(h.advance_depth().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn the_same_delivery_raced_fifty_times_makes_one_run() {
    let h = Arc::new(Harness::new());
    // The winner holds its claim while it writes, so the others race against it.
    h.store.create_delay_ms.store(50, Ordering::SeqCst);
    let body = Arc::new(fixture("push.json"));
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (h, body, barrier) = (h.clone(), body.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                h.deliver("push", "d-race", &body).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let created: Vec<_> = answers.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    assert_eq!(answers.iter().filter(|r| r.status == 409).count(), 49);
    for r in &answers {
        // The loser of the race is told the delivery is in progress, or, if the winner
        // finished first, gets the winner's answer.
        assert!(r.status == 409 || *r == *created[0], "{r:?}");
        if r.status == 409 {
            assert_eq!(r.body["status"], "in_progress");
        }
    }
    assert_eq!(h.runs().await.len(), 1);
    assert_eq!(h.store.creates.load(Ordering::SeqCst), 1);
    assert_eq!(h.advance_depth().await, 1);
    // Once settled, a redelivery gets the first answer.
    assert_eq!(h.deliver("push", "d-race", &body).await, *created[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn fifty_different_deliveries_for_one_commit_make_one_run() {
    let h = Arc::new(Harness::new());
    h.store.create_delay_ms.store(20, Ordering::SeqCst);
    let body = Arc::new(fixture("push.json"));
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (h, body, barrier) = (h.clone(), body.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                h.deliver("push", &format!("d-many-{i}"), &body).await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.body["run_id"], push_run_id().as_str(), "{r:?}");
        statuses.push(r.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        49,
        "{statuses:?}"
    );
    assert_eq!(h.runs().await.len(), 1);
    // Several deliveries may see the run still IDLE and send again; the queue's
    // deduplication makes them one message.
    assert_eq!(h.advance_depth().await, 1);
}

#[tokio::test]
async fn push_and_workflow_run_for_one_commit_make_one_run() {
    let h = Harness::new();
    let r = h.deliver("push", "d-push", &fixture("push.json")).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = h
        .deliver("workflow_run", "d-wfr", &workflow_run_for_push_commit())
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "exists");
    assert_eq!(r.body["run_id"], push_run_id().as_str());
    assert_eq!(r.body["state"], "IDLE");
    let runs = h.runs().await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger.kind, "push", "the first trigger is kept");
    assert_eq!(h.advance_depth().await, 1);

    // The other order, on a fresh stack.
    let h = Harness::new();
    let r = h
        .deliver("workflow_run", "d-wfr", &workflow_run_for_push_commit())
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(h.runs().await[0].trigger.kind, "workflow_run");
    let r = h.deliver("push", "d-push", &fixture("push.json")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(h.runs().await.len(), 1);
    assert_eq!(h.advance_depth().await, 1);
}

#[tokio::test]
async fn workflow_run_fixture_creates_a_run_for_its_head_sha() {
    let h = Harness::new();
    let r = h
        .deliver(
            "workflow_run",
            "d-wfr",
            &fixture("workflow_run.completed.json"),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let run = &h.runs().await[0];
    assert_eq!(run.repository.as_str(), "octo-org/octo-repo");
    assert_eq!(
        run.commit.as_str(),
        "3484a3fb816e0859fd6e1cea078d76385ff50625"
    );
    assert_eq!(run.trigger.kind, "workflow_run");
    assert_eq!(run.trigger.actor.as_deref(), Some("Codertocat"));
    assert_eq!(h.advance_depth().await, 1);
}

#[tokio::test]
async fn an_idle_run_left_by_a_crash_is_triggered_again() {
    let h = Harness::new();
    // A previous attempt stored the run and died before sending the trigger.
    h.queue.fail_next_send.store(true, Ordering::SeqCst);
    let r = h.deliver("push", "d-crash", &fixture("push.json")).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.body["error"], "unavailable");
    assert_eq!(h.runs().await.len(), 1);
    assert_eq!(h.advance_depth().await, 0);
    assert_eq!(
        h.idem.releases.load(Ordering::SeqCst),
        1,
        "the claim was released"
    );

    // GitHub's redelivery finds the run IDLE and sends the trigger.
    let r = h.deliver("push", "d-crash", &fixture("push.json")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["state"], "IDLE");
    assert_eq!(h.runs().await.len(), 1);
    assert_eq!(h.advance_depth().await, 1);
}

#[tokio::test]
async fn a_run_already_moving_is_not_triggered_again() {
    let h = Harness::new();
    let r = h.deliver("push", "d-1", &fixture("push.json")).await;
    assert_eq!(r.status, 201);
    // The orchestrator moves the run on.
    let mut run = h.runs().await.remove(0);
    run.state = PipelineState::Triggered;
    run.version = 1;
    h.store.inner.save(&run, 0, &[]).await.unwrap();
    h.queue.sent.lock().unwrap().clear();

    let r = h.deliver("push", "d-2", &fixture("push.json")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["state"], "TRIGGERED");
    assert!(h.queue.sent.lock().unwrap().is_empty(), "no second trigger");
}

#[tokio::test]
async fn a_run_store_outage_answers_503_and_stores_nothing() {
    let h = Harness::new();
    h.store.fail_next_create.store(true, Ordering::SeqCst);
    let r = h.deliver("push", "d-outage", &fixture("push.json")).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        !text(&r).contains("injected"),
        "store errors stay in the log: {r:?}"
    );
    assert!(h.runs().await.is_empty());
    assert_eq!(h.advance_depth().await, 0);
    assert!(!h.idempotency_has("d-outage").await, "claim released");

    let r = h.deliver("push", "d-outage", &fixture("push.json")).await;
    assert_eq!(r.status, 201, "{r:?}");
}

#[tokio::test]
async fn an_idempotency_outage_answers_503() {
    let h = Harness::new();
    h.idem.fail_next_claim.store(true, Ordering::SeqCst);
    let r = h.deliver("push", "d-idem", &fixture("push.json")).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(h.runs().await.is_empty());
    assert_eq!(
        h.deliver("push", "d-idem", &fixture("push.json"))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn a_delivery_in_progress_answers_409_until_its_claim_expires() {
    let h = Harness::new();
    // Another request holds the claim and has not finished (or died).
    let claim = h
        .idem
        .inner
        .claim("webhook:d-held", Duration::from_secs(30), h.clock.now())
        .await
        .unwrap();
    assert_eq!(claim, Claim::Claimed);
    let r = h.deliver("push", "d-held", &fixture("push.json")).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(reason(&r).contains("being processed"), "{r:?}");
    assert!(h.runs().await.is_empty());

    h.clock.advance(Duration::from_secs(31));
    let r = h.deliver("push", "d-held", &fixture("push.json")).await;
    assert_eq!(r.status, 201, "{r:?}");
}
