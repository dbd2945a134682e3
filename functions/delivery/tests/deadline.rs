//! Deliveries never outlast the invocation: the orchestrator's consumer wrapped in
//! `AfterAdvance`, with the GitHub API and the events webhook pointing at a local server
//! that accepts connections and never answers. Each advance message still returns within
//! the delivery deadline (the per-message budget, or the invocation's deadline when that
//! is earlier), the run has advanced, and an `error` log names the run, the sink and what
//! was abandoned (never the token or the secret). Without the deadline each message would
//! be held for over a minute (5 attempts of 15 s, plus backoff).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::instrument::WithSubscriber;
use vaia_core::contract::{base_time, sample_run};
use vaia_core::memory::{ManualClock, MemoryQueue, MemoryRunStore};
use vaia_core::messages::{AdvanceMessage, Signal};
use vaia_core::ports::{MessageHandler, NoMetrics, ReceivedMessage, RunStore};
use vaia_core::{BlobKey, PipelineState};
use vaia_delivery::{advance_sinks, after_advance};
use vaia_orchestrator::Orchestrator;

const TOKEN: &str = "gh-token-never-logged";
const SECRET: &str = "webhook-secret-never-logged";

/// A server on 127.0.0.1 that accepts every connection and never answers.
async fn hung_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// What the logs said, as text.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn message(n: u32, advance: &AdvanceMessage) -> ReceivedMessage {
    ReceivedMessage {
        id: format!("m{n}"),
        receipt: format!("r{n}"),
        body: serde_json::to_string(advance).unwrap(),
        receive_count: 1,
    }
}

/// The wrapped orchestrator over an in-memory store with one IDLE run, its sinks at a hung
/// server, the per-message budget `budget_secs`.
async fn setup(budget_secs: &str) -> (Arc<dyn MessageHandler>, Arc<MemoryRunStore>, String) {
    let hung = hung_server().await;
    let store = Arc::new(MemoryRunStore::new());
    let clock = Arc::new(ManualClock::new(base_time()));
    let queue = Arc::new(MemoryQueue::new(clock.clone(), 5));
    let orchestrator = Arc::new(Orchestrator::new(
        store.clone(),
        queue,
        clock,
        Arc::new(NoMetrics),
    ));
    let webhook = format!("{hung}/events");
    let vars = |k: &str| {
        match k {
            "VAIA_GITHUB_TOKEN" => Some(TOKEN),
            "VAIA_GITHUB_API_URL" => Some(hung.as_str()),
            "VAIA_EVENTS_WEBHOOK_URL" => Some(webhook.as_str()),
            "VAIA_EVENTS_WEBHOOK_SECRET" => Some(SECRET),
            "VAIA_DELIVERY_BUDGET_SECS" => Some(budget_secs),
            _ => None,
        }
        .map(String::from)
    };
    let sinks = advance_sinks(&vars, store.clone()).unwrap();
    assert_eq!(
        sinks.budget,
        Duration::from_secs(budget_secs.parse().unwrap())
    );
    let handler = after_advance(orchestrator, store.clone(), &sinks);
    (handler, store, webhook)
}

/// Handles `m`, failing the test if it takes longer than `limit` plus 5 s of slack;
/// returns how long it took.
async fn handle_within(
    handler: &dyn MessageHandler,
    m: &ReceivedMessage,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    let result = tokio::time::timeout(limit + Duration::from_secs(5), handler.handle(m))
        .await
        .unwrap_or_else(|_| panic!("{} still held after {:?}", m.id, start.elapsed()));
    assert!(result.is_ok(), "{result:?}");
    start.elapsed()
}

/// The tests of this file run one at a time: `tracing` caches per call site whether any
/// subscriber wants its events, and a test that logs to no subscriber, running beside the
/// one that captures the logs, can leave the "abandoned" call sites cached as unwanted.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn hung_sinks_are_abandoned_at_the_per_message_budget() {
    let _serial = SERIAL.lock().await;
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .finish();
    async {
        // Call sites an earlier test met without this subscriber are asked again.
        tracing::callsite::rebuild_interest_cache();
        let (handler, store, webhook) = setup("2").await;
        let run = sample_run(1, base_time());
        store.create(&run, &[]).await.unwrap();
        let budget = Duration::from_secs(2);

        // TRIGGERED: the vaia/run status goes to a server that never answers.
        let trigger = AdvanceMessage {
            run_id: run.id.clone(),
            expect: None,
            actor: "test".into(),
            signal: Signal::Trigger,
        };
        let took = handle_within(&*handler, &message(1, &trigger), budget).await;
        assert!(took >= budget - Duration::from_millis(100), "{took:?}");
        let now = store.get(&run.id).await.unwrap().unwrap();
        assert_eq!(now.state, PipelineState::Triggered, "the run advanced");

        // FAILED: the statuses and the promotion event are all abandoned within the budget.
        let rejected = AdvanceMessage {
            run_id: run.id.clone(),
            expect: None,
            actor: "test".into(),
            signal: Signal::EvidenceRejected {
                manifest: BlobKey::evidence(&run.repository, &run.commit, "manifest.json").unwrap(),
                reason: "bad bundle".into(),
            },
        };
        handle_within(&*handler, &message(2, &rejected), budget).await;
        let now = store.get(&run.id).await.unwrap().unwrap();
        assert_eq!(now.state, PipelineState::Failed, "the run advanced");

        let text = logs.text();
        let abandoned: Vec<&str> = text.lines().filter(|l| l.contains("abandoned")).collect();
        assert!(
            abandoned.iter().any(|l| l.contains("ERROR")
                && l.contains("commit status abandoned")
                && l.contains(run.id.as_str())
                && l.contains("GitHub commit statuses")
                && l.contains("vaia/run")),
            "{text}"
        );
        assert!(
            abandoned.iter().any(|l| l.contains("ERROR")
                && l.contains("promotion event abandoned")
                && l.contains(run.id.as_str())
                && l.contains(&format!(
                    "sink=webhook {}",
                    webhook.trim_end_matches("/events")
                ))
                && l.contains("vaia.run.failed")),
            "{text}"
        );
        assert!(!text.contains(TOKEN) && !text.contains(SECRET), "{text}");
    }
    .with_subscriber(subscriber)
    .await;
}

#[tokio::test]
async fn the_invocation_deadline_cuts_the_budget_short() {
    let _serial = SERIAL.lock().await;
    let (handler, store, _) = setup("600").await;
    let run = sample_run(2, base_time());
    store.create(&run, &[]).await.unwrap();
    let trigger = AdvanceMessage {
        run_id: run.id.clone(),
        expect: None,
        actor: "test".into(),
        signal: Signal::Trigger,
    };
    // As the Lambda batch adapter sets it: the invocation must be done in 2 s.
    let limit = Duration::from_secs(2);
    let m = message(1, &trigger);
    let took = vaia_core::deadline::scope_budget(limit, handle_within(&*handler, &m, limit)).await;
    assert!(took >= limit - Duration::from_millis(100), "{took:?}");
    let now = store.get(&run.id).await.unwrap().unwrap();
    assert_eq!(now.state, PipelineState::Triggered);
}

#[test]
fn the_budget_is_whole_seconds_and_a_bad_one_is_named() {
    let budget = |v: &'static str| {
        vaia_delivery::delivery_budget(&move |k: &str| {
            (k == vaia_delivery::BUDGET_ENV).then(|| v.to_string())
        })
    };
    assert_eq!(budget(""), Ok(vaia_delivery::DEFAULT_BUDGET));
    assert_eq!(budget("3"), Ok(Duration::from_secs(3)));
    for bad in ["0", "-1", "2.5", "ten"] {
        let e = budget(bad).unwrap_err();
        assert!(
            e.contains("VAIA_DELIVERY_BUDGET_SECS") && e.contains(bad),
            "{e}"
        );
    }
}
