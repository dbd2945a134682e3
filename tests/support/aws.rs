//! The deployment on moto, as `infra/template.yaml` wires it: every queue, the bucket's
//! object-created notifications to `blob-events` (filters from
//! [`vaia_aws::s3event::NOTIFICATIONS`]), and each function's handler behind its SQS batch
//! adapter, delivered by the emulated event source mapping
//! ([`vaia_aws::testing::deliver_metered`]). The webhook is called as API Gateway would.
//! Shared by the end-to-end test and the cost measurement (`aws_cost`), which meters it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use vaia_aws::lambda::{self, Source, SqsBatch};
use vaia_aws::testing::{deliver_metered, moto, ports_with};
use vaia_aws::{AwsPorts, Meter};
use vaia_core::evidence::{ImageRef, Manifest, ManifestFile, MANIFEST_FILE, MANIFEST_SCHEMA_V1};
use vaia_core::messages::queues;
use vaia_core::policy::Policy;
use vaia_core::ports::{BlobStore, MessageHandler, NoMetrics, RunStore};
use vaia_core::{BlobKey, CommitSha, ImageDigest, Repository};
use vaia_gate_eval::{EvalGate, JudgeSettings};
use vaia_gate_latency::LatencyGate;
use vaia_gate_prompt::PromptGate;
use vaia_gate_schema::SchemaGate;
use vaia_gate_security::SecurityGate;
use vaia_orchestrator::Orchestrator;
use vaia_registry::{ObjectEvents, Registry, RegistryJobs};
use vaia_webhook::{Webhook, WebhookRequest, WebhookSecret};

pub const SECRET: &str = "e2e-secret";
pub const REPO: &str = "octo-org/agent";

pub fn sign(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The push GitHub sends for `commit` of the test repository (`vaia::demo`'s, one home).
pub fn push_payload(commit: &CommitSha) -> Vec<u8> {
    vaia::demo::push_payload(&Repository::new(REPO).unwrap(), commit).unwrap()
}

/// A fresh commit SHA (unique per call and time).
pub fn commit(n: u32) -> CommitSha {
    CommitSha::new(hex::encode(
        &Sha256::digest(format!("aws-e2e {n} {}", chrono::Utc::now()))[..20],
    ))
    .unwrap()
}

pub fn run_id(commit: &CommitSha) -> vaia_core::RunId {
    vaia_core::RunId::for_commit(&Repository::new(REPO).unwrap(), commit)
}

pub struct Deployment {
    pub p: AwsPorts,
    pub webhook: Webhook,
    pub consumers: Vec<(String, SqsBatch)>,
    /// The run store on an unmetered client: what the test itself reads is not counted.
    pub observer: Arc<vaia_aws::DynamoRunStore>,
}

/// How to deploy.
pub struct DeployOptions<'a> {
    /// The deployment's policy (`vaia.toml` text).
    pub policy: &'a str,
    /// Where the eval gate's judge is.
    pub judge: JudgeSettings,
    /// Count every request ([`AwsPorts::meter`]).
    pub metered: bool,
}

/// The deployment on moto; `None` (skipped) without moto.
pub async fn deploy(test: &str, opts: DeployOptions<'_>) -> Option<Deployment> {
    let m = moto()?;
    let meter = opts.metered.then(Meter::new);
    let p = ports_with(m, test, 3, meter).await;
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
    for (prefix, suffix) in vaia_aws::s3event::NOTIFICATIONS {
        let mut key = S3KeyFilter::builder().filter_rules(
            FilterRule::builder()
                .name(FilterRuleName::Prefix)
                .value(*prefix)
                .build(),
        );
        if let Some(suffix) = suffix {
            key = key.filter_rules(
                FilterRule::builder()
                    .name(FilterRuleName::Suffix)
                    .value(*suffix)
                    .build(),
            );
        }
        config = config.queue_configurations(
            QueueConfiguration::builder()
                .queue_arn(&blob_arn)
                .events(Event::from("s3:ObjectCreated:*"))
                .filter(
                    NotificationConfigurationFilter::builder()
                        .key(key.build())
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
    let prompt = Arc::new(PromptGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
    ));
    let eval = Arc::new(EvalGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
        opts.judge,
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
    let mk = |logical: &str, source: Source, h: Arc<dyn MessageHandler>| {
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
        mk(&gate("prompt"), Source::Messages, prompt),
        mk(&gate("eval"), Source::Messages, eval),
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
        Policy::from_toml(opts.policy, "vaia.toml").unwrap(),
    );
    let observer = Arc::new(vaia_aws::DynamoRunStore::new(vaia_aws::DynamoTable::new(
        vaia_aws::config::dynamodb_client(&p.sdk, None),
        p.settings.table.clone(),
    )));
    Some(Deployment {
        p,
        webhook,
        consumers,
        observer,
    })
}

impl Deployment {
    /// A GitHub push through API Gateway to the webhook function.
    pub async fn push(&self, commit: &CommitSha, delivery: &str) -> (u16, serde_json::Value) {
        let body = push_payload(commit);
        let headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("x-github-event".to_string(), "push".to_string()),
            ("x-github-delivery".to_string(), delivery.to_string()),
            ("x-hub-signature-256".to_string(), sign(&body)),
        ];
        if let Some(m) = &self.p.meter {
            m.record("apigateway", "HTTP API request", 1);
            m.record("lambda", "Invoke", 1);
        }
        let r = self
            .webhook
            .handle(&WebhookRequest {
                headers: &headers,
                body: &body,
            })
            .await;
        (r.status, r.body)
    }

    /// The agent's CI: `files` first, the manifest last, all to S3.
    pub async fn upload(&self, commit: &CommitSha, image: &ImageDigest, files: &[(&str, &[u8])]) {
        let repo = Repository::new(REPO).unwrap();
        let key = |f: &str| BlobKey::evidence(&repo, commit, f).unwrap();
        for (name, bytes) in files {
            self.p.blobs.put(&key(name), bytes).await.unwrap();
        }
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA_V1.into(),
            repository: repo.clone(),
            commit: commit.clone(),
            image: ImageRef {
                digest: image.clone(),
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
    pub async fn settle(&self, run: &vaia_core::RunId) -> vaia_core::run::Run {
        for _ in 0..200 {
            let mut any = false;
            for (queue, batch) in &self.consumers {
                let outcomes = deliver_metered(
                    &self.p.queue,
                    queue,
                    batch,
                    Duration::from_secs(2),
                    self.p.meter.as_ref(),
                )
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
            let current = self.observer.get(run).await.unwrap().unwrap();
            if !current.state.is_in_flight() && !any {
                return current;
            }
            if !any {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let r = self.observer.get(run).await.unwrap().unwrap();
        panic!("run {run} did not settle: {:?}", r.state);
    }
}
