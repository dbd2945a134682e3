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
    let rules: Vec<(&str, &str, Option<&str>)> = vaia_aws::s3event::NOTIFICATIONS
        .iter()
        .map(|(prefix, suffix)| (blob_arn.as_str(), *prefix, *suffix))
        .collect();
    notify(&p.blobs, &rules).await;

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

/// Sets `bucket`'s object-created notifications, as the template's
/// `NotificationConfiguration` does: one queue configuration per
/// `(queue ARN, key prefix, key suffix)`. A bucket has one notification configuration, so
/// this replaces whatever was set before; the queue is named by its ARN (an ARN naming no
/// queue is accepted by S3 and moto alike, and then nothing is ever delivered).
pub async fn notify(bucket: &vaia_aws::S3BlobStore, rules: &[(&str, &str, Option<&str>)]) {
    use aws_sdk_s3::types::{
        Event, FilterRule, FilterRuleName, NotificationConfiguration,
        NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
    };
    let mut config = NotificationConfiguration::builder();
    for (queue_arn, prefix, suffix) in rules {
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
                .queue_arn(*queue_arn)
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
    bucket
        .client()
        .put_bucket_notification_configuration()
        .bucket(bucket.bucket())
        .notification_configuration(config.build())
        .send()
        .await
        .unwrap();
}

impl Deployment {
    /// The data bucket as the template wires it (`DataBucket`): its own bucket, whose
    /// object-created notifications under `raw/` go to the `raw-data` queue, consumed by
    /// the data-watcher function's handler ([`vaia_lambda::data_watcher::RawDataEvents`])
    /// behind its SQS batch adapter, delivered by [`Self::settle`] like every queue.
    /// Returns the bucket and the watcher (records in the artifacts bucket, listing of
    /// the data bucket: what `ct-budget` reconciles with).
    pub async fn with_data_bucket(
        &mut self,
    ) -> (vaia_aws::S3BlobStore, Arc<vaia_data_watcher::DataWatcher>) {
        use vaia_lambda::data_watcher::{RawDataEvents, S3RawData};
        let name = format!("{}-data", self.p.blobs.bucket());
        let data = self.p.blobs.with_bucket(&name);
        data.create_bucket().await.unwrap();
        let url = self
            .p
            .queue
            .url(vaia_data_watcher::RAW_DATA_QUEUE)
            .await
            .unwrap();
        let arn = self.p.queue.arn(&url).await.unwrap();
        notify(
            &data,
            &[(arn.as_str(), vaia_core::layout::RAW_DATA_PREFIX, None)],
        )
        .await;
        let watcher = Arc::new(vaia_data_watcher::DataWatcher::new(
            self.p.blobs.clone(),
            Arc::new(S3RawData(self.p.blobs.with_bucket(&name))),
            self.p.clock.clone(),
        ));
        self.consumers.push((
            vaia_data_watcher::RAW_DATA_QUEUE.to_string(),
            lambda::batch(
                &self.p,
                vec![lambda::route(
                    &self.p.queue,
                    vaia_data_watcher::RAW_DATA_QUEUE,
                    Source::Messages,
                    Arc::new(RawDataEvents(watcher.clone())),
                )],
            ),
        ));
        (data, watcher)
    }

    /// Delivers `queue` (as [`Self::settle`] does, one batch at a time) until it is empty;
    /// returns every record's outcome.
    pub async fn drain(&self, queue: &str) -> Vec<vaia_aws::RecordOutcome> {
        let (_, batch) = self
            .consumers
            .iter()
            .find(|(q, _)| q == queue)
            .unwrap_or_else(|| panic!("no consumer of {queue}"));
        let mut all = Vec::new();
        loop {
            let outcomes = deliver_metered(
                &self.p.queue,
                queue,
                batch,
                Duration::from_secs(2),
                self.p.meter.as_ref(),
            )
            .await
            .unwrap();
            if outcomes.is_empty() {
                return all;
            }
            all.extend(outcomes);
        }
    }

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

    /// The agent's CI as its workflow does it: the bundle packed into one archive
    /// (`vaia evidence pack`) and uploaded to S3 in one PUT, `bundle.tar`.
    pub async fn upload(&self, commit: &CommitSha, image: &ImageDigest, files: &[(&str, &[u8])]) {
        let repo = Repository::new(REPO).unwrap();
        let manifest = serde_json::to_vec(&manifest_of(commit, image, files)).unwrap();
        let archive = vaia_core::evidence::archive::pack(&manifest, files).unwrap();
        let key = BlobKey::evidence(&repo, commit, vaia_core::evidence::ARCHIVE_FILE).unwrap();
        self.p.blobs.put(&key, &archive).await.unwrap();
    }

    /// The per-file form (still valid, for other uploaders): `files` first, the manifest
    /// last, each its own PUT.
    pub async fn upload_per_file(
        &self,
        commit: &CommitSha,
        image: &ImageDigest,
        files: &[(&str, &[u8])],
    ) {
        let repo = Repository::new(REPO).unwrap();
        let key = |f: &str| BlobKey::evidence(&repo, commit, f).unwrap();
        for (name, bytes) in files {
            self.p.blobs.put(&key(name), bytes).await.unwrap();
        }
        let manifest = manifest_of(commit, image, files);
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

/// The manifest of `files` for `commit` of the test repository.
fn manifest_of(commit: &CommitSha, image: &ImageDigest, files: &[(&str, &[u8])]) -> Manifest {
    Manifest {
        schema: MANIFEST_SCHEMA_V1.into(),
        repository: Repository::new(REPO).unwrap(),
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
    }
}
