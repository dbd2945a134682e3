//! The Alertmanager hook over in-memory ports, with the payloads under
//! `events/alertmanager/`: a firing rollback alert sends the promoted run the rollback
//! signal with the alert's name, fingerprint and start as the reason; a repeat, a resolved
//! alert and the further alerts of a grouped notification change nothing more; an unknown
//! repository or a first version with nothing before it is answered 200 and refused; a
//! wrong or missing token is 401 and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tower::ServiceExt;
use vaia_api::alertmanager::{router, AlertmanagerToken, HookState};
use vaia_core::layout::{alias_key, AliasRecord, AliasTarget, PROD_ALIAS};
use vaia_core::memory::{MemoryBlobStore, MemoryQueue, MemoryRunStore};
use vaia_core::messages::{queues, AdvanceMessage, Signal};
use vaia_core::monitoring::RollbackPolicy;
use vaia_core::policy::Policy;
use vaia_core::ports::{BlobStore, Queue, RunStore, SystemClock};
use vaia_core::run::{Run, Trigger};
use vaia_core::{CommitSha, ImageDigest, PipelineState, Repository};

const TOKEN: &str = "alert-token-for-tests-0001";
const FIRING: &str = include_str!("../../../events/alertmanager/firing.json");
const REPEATED: &str = include_str!("../../../events/alertmanager/repeated.json");
const RESOLVED: &str = include_str!("../../../events/alertmanager/resolved.json");
const GROUPED: &str = include_str!("../../../events/alertmanager/grouped.json");
const REPO: &str = "vaia-demo/support-agent";

struct Fixture {
    store: Arc<MemoryRunStore>,
    blobs: Arc<MemoryBlobStore>,
    queue: Arc<MemoryQueue>,
    run: Run,
}

fn target(run: &Run, version: &str) -> AliasTarget {
    AliasTarget {
        version: version.parse().unwrap(),
        run_id: run.id.clone(),
        commit: run.commit.clone(),
        image_digest: ImageDigest::new(format!("sha256:{}", "a".repeat(64))).unwrap(),
    }
}

/// A promoted run behind `prod` (moved at `moved`), with `earlier` versions before it.
async fn fixture(earlier: usize, moved: DateTime<Utc>) -> Fixture {
    let store = Arc::new(MemoryRunStore::new());
    let queue = Arc::new(MemoryQueue::new(Arc::new(SystemClock), 5));
    let blobs = Arc::new(MemoryBlobStore::new(None));
    let repo = Repository::new(REPO).unwrap();
    let trigger = Trigger {
        kind: "push".into(),
        delivery: None,
        actor: None,
        at: moved,
    };
    let mut run = Run::new(
        repo.clone(),
        CommitSha::new("2".repeat(40)).unwrap(),
        None,
        trigger,
        Policy::default(),
        moved,
    );
    run.state = PipelineState::Promoted;
    store.create(&run, &[]).await.unwrap();
    let history = (0..earlier)
        .map(|i| target(&run, &format!("0.{}.0", i + 1)))
        .collect();
    let alias = AliasRecord {
        alias: PROD_ALIAS.into(),
        target: target(&run, "0.2.0"),
        history,
        updated_at: moved,
    };
    blobs
        .put(
            &alias_key(&repo, PROD_ALIAS).unwrap(),
            &serde_json::to_vec(&alias).unwrap(),
        )
        .await
        .unwrap();
    Fixture {
        store,
        blobs,
        queue,
        run,
    }
}

fn before_fixtures() -> DateTime<Utc> {
    "2026-12-02T13:00:00Z".parse().unwrap()
}

impl Fixture {
    async fn post(&self, body: &str, auth: Option<&str>) -> (StatusCode, serde_json::Value) {
        let app = router(HookState {
            store: self.store.clone(),
            blobs: self.blobs.clone(),
            queue: self.queue.clone(),
            token: Some(AlertmanagerToken::new(TOKEN).unwrap()),
            policy: RollbackPolicy::default(),
        });
        let mut req =
            Request::post("/hooks/alertmanager").header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = app
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    async fn signals(&self) -> Vec<AdvanceMessage> {
        let got = self
            .queue
            .receive(queues::ADVANCE, 10, std::time::Duration::from_secs(30))
            .await
            .unwrap();
        got.iter()
            .map(|m| serde_json::from_str(&m.body).unwrap())
            .collect()
    }
}

fn bearer() -> Option<&'static str> {
    Some("Bearer alert-token-for-tests-0001")
}

#[tokio::test]
async fn firing_rolls_back_once_and_repeats_change_nothing() {
    let f = fixture(1, before_fixtures()).await;
    let (status, body) = f.post(FIRING, bearer()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["action"], "rollback", "{body}");
    let signals = f.signals().await;
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0].run_id, f.run.id);
    assert_eq!(signals[0].expect, Some(PipelineState::Promoted));
    assert_eq!(signals[0].actor, "alertmanager");
    let Signal::Rollback { reason } = &signals[0].signal else {
        panic!("{:?}", signals[0].signal)
    };
    for part in [
        "AgentP95LatencyHigh",
        "9d8b3e2d8a80f921",
        "2026-12-02T14:32:44.216",
    ] {
        assert!(reason.contains(part), "{part} not in {reason}");
    }
    // The orchestrator records the request on the run; the alert repeats.
    let mut run = f.store.get(&f.run.id).await.unwrap().unwrap();
    run.rollback = Some(vaia_core::run::RollbackRequest {
        actor: "alertmanager".into(),
        reason: reason.clone(),
        at: Utc::now(),
    });
    let version = run.version;
    run.version += 1;
    f.store.save(&run, version, &[]).await.unwrap();
    let (status, body) = f.post(REPEATED, bearer()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"][0]["action"], "ignored", "{body}");
    assert!(f.signals().await.is_empty());
}

#[tokio::test]
async fn a_repeat_after_prod_moved_back_does_not_roll_back_the_earlier_version() {
    // prod moved (the rollback restored 0.1.0) after the alert started: the same alert,
    // repeated by Alertmanager, must not roll 0.1.0 back too.
    let f = fixture(1, "2026-12-02T14:45:00Z".parse().unwrap()).await;
    let (status, body) = f.post(REPEATED, bearer()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"][0]["action"], "ignored", "{body}");
    assert!(body["results"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("after the alert started"));
    assert!(f.signals().await.is_empty());
}

#[tokio::test]
async fn resolved_is_ignored() {
    let f = fixture(1, before_fixtures()).await;
    let (status, body) = f.post(RESOLVED, bearer()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"][0]["action"], "ignored", "{body}");
    assert!(f.signals().await.is_empty());
}

#[tokio::test]
async fn grouped_rolls_back_once_ignores_tickets_and_refuses_unknown_repositories() {
    let f = fixture(2, before_fixtures()).await;
    let (status, body) = f.post(GROUPED, bearer()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let actions: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    // As Alertmanager sorts them: page of an unknown repository → refused; page → rollback;
    // ticket → not a rollback alert.
    assert_eq!(actions, ["refused", "rollback", "ignored"], "{body}");
    assert!(body["results"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("unknown repository"));
    assert_eq!(f.signals().await.len(), 1);
}

#[tokio::test]
async fn nothing_to_return_to_is_refused_with_200() {
    let f = fixture(0, before_fixtures()).await;
    let (status, body) = f.post(FIRING, bearer()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"][0]["action"], "refused", "{body}");
    assert!(body["results"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("nothing to return to"));
    assert!(f.signals().await.is_empty());
}

#[tokio::test]
async fn wrong_or_missing_token_is_401_and_changes_nothing() {
    let f = fixture(1, before_fixtures()).await;
    for auth in [
        None,
        Some("Bearer alert-token-for-tests-0002"),
        Some("Basic YWxlcnQ6dG9rZW4="),
        Some("Bearer "),
    ] {
        let (status, body) = f.post(FIRING, auth).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(
            !body.to_string().contains(TOKEN),
            "the token leaked: {body}"
        );
    }
    assert!(f.signals().await.is_empty());
    assert_eq!(
        f.store.get(&f.run.id).await.unwrap().unwrap().state,
        PipelineState::Promoted
    );
}

#[tokio::test]
async fn bad_payloads_are_400_naming_the_problem() {
    let f = fixture(1, before_fixtures()).await;
    let (status, body) = f.post("{\"version\":\"4\"", bearer()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("request body"),
        "{body}"
    );
    let v3 = FIRING.replace("\"version\": \"4\"", "\"version\": \"3\"");
    let (status, body) = f.post(&v3, bearer()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("version 4"),
        "{body}"
    );
    assert!(f.signals().await.is_empty());
}

#[tokio::test]
async fn policy_decides_which_alerts_roll_back() {
    let mut policy = RollbackPolicy::default();
    assert!(policy.allows("AgentP95LatencyHigh", Some("warning")));
    policy.alerts.clear();
    assert!(!policy.allows("AgentP95LatencyHigh", Some("warning")));
}
