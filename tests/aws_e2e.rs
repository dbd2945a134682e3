//! End to end on the AWS adapters, against a local moto server: GitHub push through the
//! webhook handler, run state in DynamoDB, transitions chained through SQS (FIFO per run),
//! evidence uploaded to S3 whose object-created notifications reach the registry through
//! an SQS queue, exactly as deployed. Lambda's SQS event source mapping is emulated by
//! `vaia_aws::testing::deliver` (batch → `SqsBatch` → delete all but the failures).
//!
//! Also the races the deployment must survive: two orchestrators on one run make one
//! transition; the webhook raced with itself on one delivery id makes one run.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use vaia_aws::lambda::{self, Source, SqsBatch};
use vaia_aws::testing::{deliver, moto, ports};
use vaia_aws::AwsPorts;
use vaia_core::evidence::{ImageRef, Manifest, ManifestFile, MANIFEST_FILE, MANIFEST_SCHEMA_V1};
use vaia_core::messages::{queues, AdvanceMessage, Signal};
use vaia_core::policy::Policy;
use vaia_core::ports::{BlobStore, NoMetrics, Queue, RunStore};
use vaia_core::run::EventKind;
use vaia_core::{BlobKey, CommitSha, ImageDigest, PipelineState, Repository};
use vaia_gate_latency::LatencyGate;
use vaia_gate_schema::SchemaGate;
use vaia_gate_security::SecurityGate;
use vaia_orchestrator::Orchestrator;
use vaia_registry::{ObjectEvents, Registry, RegistryJobs};
use vaia_webhook::{Webhook, WebhookRequest, WebhookSecret};

const SECRET: &str = "e2e-secret";
const TRIVY: &[u8] = include_bytes!("../examples/demo/trivy-clean.json");
const LOCUST: &[u8] = include_bytes!("../shared/gates/tests/fixtures/locust/good_stats.csv");
/// The tools and release gates with a fixed latency baseline, as the local end-to-end test
/// runs them; the agent gates need the example agent's evidence (tests/agent_gates.rs).
const POLICY: &str =
    "[stages]\nci = [\"schema\", \"security\", \"latency\"]\n\n[latency]\nbaseline_p95_ms = 150.0\n";
const REPO: &str = "octo-org/agent";

fn sign(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn push_payload(commit: &CommitSha) -> Vec<u8> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/github/push.json"
    ))
    .unwrap();
    let mut p: serde_json::Value = serde_json::from_str(&text).unwrap();
    let repo = Repository::new(REPO).unwrap();
    let branch = p["repository"]["default_branch"]
        .as_str()
        .unwrap_or("main")
        .to_string();
    p["ref"] = format!("refs/heads/{branch}").into();
    p["after"] = commit.as_str().into();
    p["head_commit"]["id"] = commit.as_str().into();
    p["repository"]["full_name"] = repo.as_str().into();
    p["repository"]["name"] = repo.name().into();
    p["repository"]["owner"]["login"] = repo.owner().into();
    p["repository"]["owner"]["name"] = repo.owner().into();
    serde_json::to_vec(&p).unwrap()
}

struct Deployment {
    p: AwsPorts,
    webhook: Webhook,
    consumers: Vec<(String, SqsBatch)>,
}

/// The deployment on moto: every queue, the bucket's notifications to `blob-events`
/// (prefixes `evidence/` and `registry/`), and each function's batch adapter.
async fn deploy(test: &str) -> Option<Deployment> {
    let m = moto()?;
    let p = ports(m, test, 3).await;
    for q in vaia_aws::testing::DEPLOYED_QUEUES {
        p.queue.url(q).await.unwrap();
    }
    let blob_url = p.queue.url(queues::BLOB_EVENTS).await.unwrap();
    let blob_arn = p.queue.arn(&blob_url).await.unwrap();
    use aws_sdk_s3::types::{
        Event, FilterRule, FilterRuleName, NotificationConfiguration,
        NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
    };
    let mut config = NotificationConfiguration::builder();
    for prefix in ["evidence/", "registry/"] {
        config = config.queue_configurations(
            QueueConfiguration::builder()
                .queue_arn(&blob_arn)
                .events(Event::from("s3:ObjectCreated:*"))
                .filter(
                    NotificationConfigurationFilter::builder()
                        .key(
                            S3KeyFilter::builder()
                                .filter_rules(
                                    FilterRule::builder()
                                        .name(FilterRuleName::Prefix)
                                        .value(prefix)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        );
    }
    p.blobs
        .client()
        .put_bucket_notification_configuration()
        .bucket(p.blobs.bucket())
        .notification_configuration(config.build())
        .send()
        .await
        .unwrap();

    let orchestrator = Arc::new(Orchestrator::new(
        p.store.clone(),
        p.queue.clone(),
        p.clock.clone(),
        Arc::new(NoMetrics),
    ));
    let registry = Arc::new(Registry::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
        p.clock.clone(),
    ));
    let gate = |name: &str| queues::gate(&vaia_core::GateName::new(name).unwrap());
    let schema = Arc::new(SchemaGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
    ));
    let security = Arc::new(SecurityGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
        p.clock.clone(),
    ));
    let latency = Arc::new(LatencyGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
        p.clock.clone(),
        None,
    ));
    let mk = |logical: &str, source: Source, h: Arc<dyn vaia_core::ports::MessageHandler>| {
        (
            logical.to_string(),
            lambda::batch(&p, vec![lambda::route(&p.queue, logical, source, h)]),
        )
    };
    let consumers = vec![
        mk(queues::ADVANCE, Source::Messages, orchestrator),
        mk(
            queues::REGISTRY,
            Source::Messages,
            Arc::new(RegistryJobs(registry.clone())),
        ),
        mk(
            queues::BLOB_EVENTS,
            Source::S3Notifications,
            Arc::new(ObjectEvents(registry)),
        ),
        mk(&gate(vaia_gates::schema::GATE), Source::Messages, schema),
        mk(
            &gate(vaia_gates::security::GATE),
            Source::Messages,
            security,
        ),
        mk(&gate(vaia_gates::latency::GATE), Source::Messages, latency),
    ];
    let webhook = Webhook::new(
        p.store.clone(),
        p.idempotency.clone(),
        p.queue.clone(),
        p.clock.clone(),
        WebhookSecret::new(SECRET).unwrap(),
        Policy::from_toml(POLICY, "vaia.toml").unwrap(),
    );
    Some(Deployment {
        p,
        webhook,
        consumers,
    })
}

impl Deployment {
    async fn push(&self, commit: &CommitSha, delivery: &str) -> (u16, serde_json::Value) {
        let body = push_payload(commit);
        let headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("x-github-event".to_string(), "push".to_string()),
            ("x-github-delivery".to_string(), delivery.to_string()),
            ("x-hub-signature-256".to_string(), sign(&body)),
        ];
        let r = self
            .webhook
            .handle(&WebhookRequest {
                headers: &headers,
                body: &body,
            })
            .await;
        (r.status, r.body)
    }

    /// The agent's CI: files first, the manifest last, all to S3.
    async fn upload_evidence(&self, commit: &CommitSha, tools: &[u8]) {
        let repo = Repository::new(REPO).unwrap();
        let key = |f: &str| BlobKey::evidence(&repo, commit, f).unwrap();
        let files: [(&str, &[u8]); 3] = [
            ("tools.json", tools),
            ("trivy.json", TRIVY),
            ("locust_stats.csv", LOCUST),
        ];
        for (name, bytes) in files {
            self.p.blobs.put(&key(name), bytes).await.unwrap();
        }
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA_V1.into(),
            repository: repo.clone(),
            commit: commit.clone(),
            image: ImageRef {
                digest: ImageDigest::new(format!("sha256:{}", hex::encode(Sha256::digest(tools))))
                    .unwrap(),
                base_digest: None,
            },
            dataset: None,
            files: files
                .iter()
                .map(|(name, bytes)| ManifestFile {
                    name: (*name).into(),
                    sha256: hex::encode(Sha256::digest(bytes)),
                    bytes: bytes.len() as u64,
                })
                .collect(),
            created_at: chrono::Utc::now(),
        };
        self.p
            .blobs
            .put(&key(MANIFEST_FILE), &serde_json::to_vec(&manifest).unwrap())
            .await
            .unwrap();
    }

    /// Delivers every queue until `run` leaves flight (bounded by rounds, not time).
    async fn settle(&self, run: &vaia_core::RunId) -> vaia_core::run::Run {
        for _ in 0..200 {
            let mut any = false;
            for (queue, batch) in &self.consumers {
                let outcomes = deliver(&self.p.queue, queue, batch, Duration::from_secs(2))
                    .await
                    .unwrap();
                for o in &outcomes {
                    assert!(
                        !matches!(o, vaia_aws::RecordOutcome::DeadLettered(_)),
                        "{queue}: {o:?}"
                    );
                }
                any |= !outcomes.is_empty();
            }
            let current = self.p.store.get(run).await.unwrap().unwrap();
            if !current.state.is_in_flight() {
                return current;
            }
            if !any {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let r = self.p.store.get(run).await.unwrap().unwrap();
        panic!("run {run} did not settle: {:?}", r.state);
    }
}

fn commit(n: u32) -> CommitSha {
    CommitSha::new(hex::encode(
        &Sha256::digest(format!("aws-e2e {n} {}", chrono::Utc::now()))[..20],
    ))
    .unwrap()
}

fn run_id(commit: &CommitSha) -> vaia_core::RunId {
    vaia_core::RunId::for_commit(&Repository::new(REPO).unwrap(), commit)
}

const TOOLS_V1: &[u8] = include_bytes!("../examples/demo/tools-v1.json");
const TOOLS_V3_BREAKING: &[u8] = include_bytes!("../examples/demo/tools-v3-breaking.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_then_breaking_run_through_dynamodb_sqs_and_s3() {
    let Some(d) = deploy("e2e").await else { return };

    // Happy: the first release is promoted.
    let c1 = commit(1);
    let (status, body) = d.push(&c1, "delivery-1").await;
    assert_eq!(status, 201, "{body}");
    d.upload_evidence(&c1, TOOLS_V1).await;
    let run = d.settle(&run_id(&c1)).await;
    assert_eq!(run.state, PipelineState::Promoted, "{run:?}");
    let events = d.p.store.events(&run.id).await.unwrap();
    let path: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Transition)
        .filter_map(|e| e.to)
        .collect();
    assert_eq!(
        path,
        [
            PipelineState::Triggered,
            PipelineState::CiRunning,
            PipelineState::Build,
            PipelineState::StagingEval,
            PipelineState::CtQueued,
            PipelineState::Promoted
        ],
        "the happy path, each transition logged once"
    );
    assert!(
        run.candidate.evidence.is_some(),
        "the manifest arrived through S3 → SQS"
    );
    let passed: Vec<(String, &str)> = run
        .verdicts
        .iter()
        .map(|(g, v)| (g.to_string(), v.outcome.as_str()))
        .collect();
    assert_eq!(
        passed,
        [
            ("latency".to_string(), "pass"),
            ("schema".to_string(), "pass"),
            ("security".to_string(), "pass")
        ],
        "each gate judged the evidence read from S3"
    );

    // Failing: a breaking tool change fails the schema gate.
    let c2 = commit(2);
    let (status, body) = d.push(&c2, "delivery-2").await;
    assert_eq!(status, 201, "{body}");
    d.upload_evidence(&c2, TOOLS_V3_BREAKING).await;
    let run = d.settle(&run_id(&c2)).await;
    assert_eq!(run.state, PipelineState::Failed, "{run:?}");
    assert!(run.failure.is_some());

    // Nothing left anywhere, nothing dead-lettered.
    for q in vaia_aws::testing::DEPLOYED_QUEUES {
        let depth = d.p.queue.depth(q).await.unwrap();
        assert_eq!(depth.dead, 0, "{q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_orchestrators_racing_on_one_run_make_one_transition() {
    let Some(d) = deploy("race-orch").await else {
        return;
    };
    let c = commit(3);
    let (status, _) = d.push(&c, "delivery-race-orch").await;
    assert_eq!(status, 201);
    let id = run_id(&c);
    let before = d.p.store.get(&id).await.unwrap().unwrap();
    let message = AdvanceMessage {
        run_id: id.clone(),
        expect: Some(before.state),
        actor: "test".into(),
        signal: Signal::Trigger,
    };
    let mut tasks = Vec::new();
    for i in 0..8 {
        let o = Orchestrator::new(
            d.p.store.clone(),
            d.p.queue.clone(),
            d.p.clock.clone(),
            Arc::new(NoMetrics),
        );
        let m = message.clone();
        tasks.push(tokio::spawn(async move {
            o.advance(&format!("copy-{i}"), &m).await
        }));
    }
    for t in tasks {
        // Losers either see the move and stand down, or report contention to retry.
        let _ = t.await.unwrap();
    }
    let after = d.p.store.get(&id).await.unwrap().unwrap();
    assert_eq!(after.state, PipelineState::Triggered);
    assert_eq!(after.version, before.version + 1, "exactly one write");
    let transitions =
        d.p.store
            .events(&id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.to == Some(PipelineState::Triggered))
            .count();
    assert_eq!(transitions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_webhook_raced_on_one_delivery_makes_one_run() {
    let Some(d) = deploy("race-hook").await else {
        return;
    };
    let d = Arc::new(d);
    let c = commit(4);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let d = d.clone();
        let c = c.clone();
        tasks.push(tokio::spawn(
            async move { d.push(&c, "one-delivery").await },
        ));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().0);
    }
    // The winner creates (201); racing copies are told to retry (409) or get the stored
    // answer of the first (201 again): never a second run.
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert!(statuses.contains(&201), "{statuses:?}");
    let page = d.p.store.list(10, None).await.unwrap();
    assert_eq!(page.runs.len(), 1);
    assert_eq!(
        d.p.queue.depth(queues::ADVANCE).await.unwrap().visible,
        1,
        "one trigger"
    );
}
