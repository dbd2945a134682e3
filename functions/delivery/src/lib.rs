//! Delivery after the registry's work: once the registry function has moved the `prod`
//! alias of a PROMOTED run (`RegistryJob::Promote`), the candidate's image digest is tagged
//! with its semantic version and the `prod` tag moves; once it has restored the previous
//! version of a ROLLBACK run (`RegistryJob::RestorePrevious`), the `prod` tag moves back to
//! that version's digest. [`AfterRegistry`] wraps the registry's queue consumer so that the
//! state machine is untouched; the tagging is retried ([`vaia_core::delivery::tag_all`]) and
//! its outcome is a note in the run's log, never a failure of the run.
//!
//! Configuration (deployment, not policy): `VAIA_IMAGE` names the image of every repository,
//! `{repo}` standing for `owner/name` (e.g. `ghcr.io/acme/{repo}` or `123.dkr.ecr.eu-west-1.amazonaws.com/{repo}`);
//! `VAIA_IMAGE_PROD_TAG` (default `prod`); credentials `VAIA_REGISTRY_USERNAME` and
//! `VAIA_REGISTRY_PASSWORD`, or `VAIA_REGISTRY_TOKEN`; `VAIA_REGISTRY_PLAIN_HTTP` a host
//! spoken to over HTTP (a local registry); `VAIA_REGISTRY_ATTEMPTS` (default 5).

pub mod github;
pub mod webhook;

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use vaia_core::delivery::{
    changed_statuses, post_status, promotion_event, promotion_tags, tag_all, CommitStatuses,
    EventSink, ImageRegistry, Retry,
};
use vaia_core::layout::{alias_key, AliasRecord, PROD_ALIAS};
use vaia_core::messages::{parse_body, queues, AdvanceMessage, RegistryJob};
use vaia_core::ports::{
    BlobStore, Clock, HandlerError, MessageHandler, PortError, ReceivedMessage, RunStore,
};
use vaia_core::run::{EventKind, Run, RunEvent};
use vaia_core::{ImageDigest, ImageName, ImageTag, PipelineState, Repository};
use vaia_oci::{Credentials, OciRegistry};

pub const IMAGE_ENV: &str = "VAIA_IMAGE";

/// Queue consumers by queue name, as the local stack routes them.
pub type Consumers = Vec<(String, Arc<dyn MessageHandler>)>;

/// The delivery configuration and the registry adapter it talks to.
pub type Configured = (DeliveryConfig, Arc<dyn ImageRegistry>);
const ACTOR: &str = "delivery";

/// Where promoted images live and which tag is production's.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// `registry/path/{repo}`.
    pub image_template: String,
    pub prod_tag: ImageTag,
    pub retry: Retry,
}

impl DeliveryConfig {
    /// The image of `repo`.
    pub fn image(&self, repo: &Repository) -> Result<ImageName, String> {
        let name = self
            .image_template
            .replace("{repo}", &repo.as_str().to_ascii_lowercase());
        ImageName::new(name).map_err(|e| format!("{IMAGE_ENV}: {e}"))
    }
}

/// The configuration and the OCI adapter from the environment; `None` when `VAIA_IMAGE` is
/// unset (no image is tagged); an error names the variable that is wrong.
pub fn from_env() -> Result<Option<Configured>, String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let Some(image_template) = var(IMAGE_ENV) else {
        return Ok(None);
    };
    let prod_tag = ImageTag::new(var("VAIA_IMAGE_PROD_TAG").unwrap_or_else(|| PROD_ALIAS.into()))
        .map_err(|e| format!("VAIA_IMAGE_PROD_TAG: {e}"))?;
    let attempts = match var("VAIA_REGISTRY_ATTEMPTS") {
        Some(a) => a
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("VAIA_REGISTRY_ATTEMPTS: {a:?} is not a count ≥ 1"))?,
        None => Retry::default().attempts,
    };
    let credentials = match (
        var("VAIA_REGISTRY_USERNAME"),
        var("VAIA_REGISTRY_PASSWORD"),
        var("VAIA_REGISTRY_TOKEN"),
    ) {
        (Some(username), Some(password), None) => Credentials::Basic { username, password },
        (None, None, Some(token)) => Credentials::Bearer(token),
        (None, None, None) => Credentials::Anonymous,
        _ => return Err(
            "give VAIA_REGISTRY_USERNAME with VAIA_REGISTRY_PASSWORD, or VAIA_REGISTRY_TOKEN alone"
                .into(),
        ),
    };
    let mut registry =
        OciRegistry::new(credentials, Duration::from_secs(30)).map_err(|e| e.to_string())?;
    if let Some(host) = var("VAIA_REGISTRY_PLAIN_HTTP") {
        registry = registry.plain_http(host);
    }
    let config = DeliveryConfig {
        image_template,
        prod_tag,
        retry: Retry {
            attempts,
            ..Retry::default()
        },
    };
    config.image(&Repository::new("owner/name").map_err(|e| e.to_string())?)?;
    Ok(Some((config, Arc::new(registry))))
}

/// Tags images after the registry's promotions and rollbacks.
pub struct Delivery {
    pub store: Arc<dyn RunStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub clock: Arc<dyn Clock>,
    pub registry: Arc<dyn ImageRegistry>,
    pub config: DeliveryConfig,
}

impl Delivery {
    /// What to tag for `job`, as (digest, tags), or why nothing is.
    async fn plan(
        &self,
        run: &Run,
        job: &RegistryJob,
    ) -> Result<Option<(ImageDigest, Vec<ImageTag>)>, String> {
        match job {
            RegistryJob::Promote { .. } if run.state == PipelineState::Promoted => {
                let (Some(digest), Some(version)) =
                    (&run.candidate.image_digest, &run.candidate.version)
                else {
                    return Err("the promoted run has no image digest or version".into());
                };
                let tags =
                    promotion_tags(version, &self.config.prod_tag).map_err(|e| e.to_string())?;
                Ok(Some((digest.clone(), tags)))
            }
            RegistryJob::RestorePrevious { .. } if run.state == PipelineState::Rollback => {
                let key = alias_key(&run.repository, PROD_ALIAS).map_err(|e| e.to_string())?;
                let bytes = self.blobs.get(&key).await.map_err(|e| e.to_string())?;
                let Some(bytes) = bytes else {
                    return Ok(None);
                };
                let alias: AliasRecord =
                    serde_json::from_slice(&bytes).map_err(|e| format!("{key}: {e}"))?;
                if alias.target.run_id == run.id {
                    // Nothing before this run: prod stays where it is.
                    return Ok(None);
                }
                Ok(Some((
                    alias.target.image_digest,
                    vec![self.config.prod_tag.clone()],
                )))
            }
            _ => Ok(None),
        }
    }

    /// Tags what `job` calls for and notes the outcome in the run's log.
    pub async fn after(&self, job: &RegistryJob) -> Result<(), HandlerError> {
        let Some(run) = self.store.get(job.run_id()).await? else {
            return Ok(());
        };
        let note = match self.plan(&run, job).await {
            Ok(None) => return Ok(()),
            Err(reason) => format!("image not tagged: {reason}"),
            Ok(Some((digest, tags))) => match self.config.image(&run.repository) {
                Err(reason) => format!("image not tagged: {reason}"),
                Ok(image) => {
                    let outcomes =
                        tag_all(&*self.registry, &image, &digest, &tags, self.config.retry).await;
                    outcomes
                        .iter()
                        .map(|o| o.describe(&image, &digest))
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            },
        };
        tracing::info!(run_id = %run.id, %note, "delivery");
        self.note(run, note).await
    }

    /// Appends a note to the run's log (reloading the run when another writer got there first).
    async fn note(&self, mut run: Run, reason: String) -> Result<(), HandlerError> {
        for _ in 0..10 {
            let expected = run.version;
            let mut next = run.clone();
            next.version += 1;
            next.events += 1;
            next.updated_at = self.clock.now();
            let event = RunEvent {
                run_id: run.id.clone(),
                seq: next.events,
                at: next.updated_at,
                kind: EventKind::Note,
                from: run.state,
                to: None,
                reason: reason.clone(),
                actor: ACTOR.into(),
                evidence: None,
                cause: None,
            };
            match self.store.save(&next, expected, &[event]).await {
                Ok(()) => return Ok(()),
                Err(PortError::Conflict { .. }) => {
                    let Some(fresh) = self.store.get(&run.id).await? else {
                        return Ok(());
                    };
                    run = fresh;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(HandlerError::retryable(format!(
            "run {}: could not note the delivery outcome",
            run.id
        )))
    }
}

/// The registry's queue consumer followed by [`Delivery`]: only after the registry's job
/// succeeded is an image tagged.
pub struct AfterRegistry {
    pub registry_jobs: Arc<dyn MessageHandler>,
    pub delivery: Arc<Delivery>,
}

#[async_trait]
impl MessageHandler for AfterRegistry {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        self.registry_jobs.handle(message).await?;
        let Ok(job) = parse_body::<RegistryJob>(queues::REGISTRY, &message.id, &message.body)
        else {
            return Ok(());
        };
        self.delivery.after(&job).await
    }
}

/// The pipeline's queue consumers with the registry's wrapped in [`AfterRegistry`] when the
/// environment configures delivery ([`from_env`]); unchanged otherwise.
pub fn wrap_registry_from_env(
    consumers: Consumers,
    store: Arc<dyn RunStore>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
) -> Result<Consumers, String> {
    let Some((config, registry)) = from_env()? else {
        return Ok(consumers);
    };
    let delivery = Arc::new(Delivery {
        store,
        blobs,
        clock,
        registry,
        config,
    });
    Ok(consumers
        .into_iter()
        .map(|(queue, handler)| {
            if queue == queues::REGISTRY {
                let wrapped: Arc<dyn MessageHandler> = Arc::new(AfterRegistry {
                    registry_jobs: handler,
                    delivery: delivery.clone(),
                });
                (queue, wrapped)
            } else {
                (queue, handler)
            }
        })
        .collect())
}

/// Posts the commit statuses a run's state change implies, never failing the pipeline.
pub struct Statuses {
    pub store: Arc<dyn RunStore>,
    pub sink: Arc<dyn CommitStatuses>,
    /// vaia's public URL, for the statuses' links to the run.
    pub public_url: Option<String>,
    pub retry: Retry,
}

impl Statuses {
    /// Posts what changed from `before` to the run as it now is; outcomes are logged.
    pub async fn after(&self, before: Option<&Run>, run_id: &vaia_core::RunId) {
        let after = match self.store.get(run_id).await {
            Ok(Some(r)) => r,
            _ => return,
        };
        for status in changed_statuses(before, &after, self.public_url.as_deref()) {
            let (attempts, result) = post_status(
                &*self.sink,
                &after.repository,
                &after.commit,
                &status,
                self.retry,
            )
            .await;
            match result {
                Ok(()) => {
                    tracing::info!(run_id = %after.id, context = %status.context, state = ?status.state, attempts, "commit status posted")
                }
                Err(e) => {
                    tracing::warn!(run_id = %after.id, context = %status.context, attempts, error = %e, "commit status not posted")
                }
            }
        }
    }
}

/// The orchestrator's queue consumer followed by [`Statuses`]: every state change (and
/// every verdict recorded) posts the statuses it changed.
pub struct AfterAdvance {
    pub orchestrator: Arc<dyn MessageHandler>,
    pub store: Arc<dyn RunStore>,
    pub statuses: Option<Arc<Statuses>>,
    pub events: Option<Arc<dyn EventSink>>,
    pub retry: Retry,
}

impl AfterAdvance {
    /// Publishes the run's promotion event if it just became PROMOTED, FAILED or ROLLBACK.
    async fn publish(&self, sink: &dyn EventSink, before: Option<&Run>, id: &vaia_core::RunId) {
        let Ok(Some(after)) = self.store.get(id).await else {
            return;
        };
        let Some(event) = promotion_event(before, &after) else {
            return;
        };
        let mut wait = self.retry.backoff;
        for attempt in 1..=self.retry.attempts.max(1) {
            match sink.publish(&event).await {
                Ok(()) => {
                    tracing::info!(run_id = %id, event = %event.detail_type, attempt, "promotion event sent");
                    return;
                }
                Err(vaia_core::delivery::StatusError::Unavailable { message, .. })
                    if attempt < self.retry.attempts =>
                {
                    tracing::warn!(run_id = %id, attempt, %message, "promotion event not sent yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
                Err(e) => {
                    tracing::warn!(run_id = %id, event = %event.detail_type, error = %e, "promotion event not sent");
                    return;
                }
            }
        }
    }
}

#[async_trait]
impl MessageHandler for AfterAdvance {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        let run_id = parse_body::<AdvanceMessage>(queues::ADVANCE, &message.id, &message.body)
            .ok()
            .map(|m| m.run_id);
        let before = match &run_id {
            Some(id) => self.store.get(id).await.ok().flatten(),
            None => None,
        };
        self.orchestrator.handle(message).await?;
        if let Some(id) = run_id {
            if let Some(statuses) = &self.statuses {
                statuses.after(before.as_ref(), &id).await;
            }
            if let Some(events) = &self.events {
                self.publish(&**events, before.as_ref(), &id).await;
            }
        }
        Ok(())
    }
}

/// The consumers with the orchestrator's wrapped in [`AfterAdvance`] when the environment
/// asks for commit statuses (`VAIA_GITHUB_TOKEN`; `VAIA_GITHUB_API_URL`, default
/// `https://api.github.com`; `VAIA_PUBLIC_URL` links each status to its run) or promotion
/// events (`VAIA_EVENTS_WEBHOOK_URL` with `VAIA_EVENTS_WEBHOOK_SECRET`).
pub fn wrap_advance_from_env(
    consumers: Consumers,
    store: Arc<dyn RunStore>,
) -> Result<Consumers, String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let statuses = match var("VAIA_GITHUB_TOKEN") {
        None => None,
        Some(token) => {
            let api = var("VAIA_GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into());
            if !(api.starts_with("https://") || api.starts_with("http://")) {
                return Err(format!(
                    "VAIA_GITHUB_API_URL: {api:?} is not an http(s) URL"
                ));
            }
            let sink = github::GitHubStatuses::new(&api, token, Duration::from_secs(15))?;
            Some(Arc::new(Statuses {
                store: store.clone(),
                sink: Arc::new(sink),
                public_url: var("VAIA_PUBLIC_URL"),
                retry: Retry::default(),
            }))
        }
    };
    let events: Option<Arc<dyn EventSink>> = match (
        var("VAIA_EVENTS_WEBHOOK_URL"),
        var("VAIA_EVENTS_WEBHOOK_SECRET"),
    ) {
        (None, None) => None,
        (Some(url), Some(secret)) => Some(Arc::new(webhook::WebhookEvents::new(
            url,
            secret,
            Duration::from_secs(15),
        )?)),
        _ => {
            return Err("VAIA_EVENTS_WEBHOOK_URL and VAIA_EVENTS_WEBHOOK_SECRET go together".into())
        }
    };
    if statuses.is_none() && events.is_none() {
        return Ok(consumers);
    }
    Ok(consumers
        .into_iter()
        .map(|(queue, handler)| {
            if queue == queues::ADVANCE {
                let wrapped: Arc<dyn MessageHandler> = Arc::new(AfterAdvance {
                    orchestrator: handler,
                    store: store.clone(),
                    statuses: statuses.clone(),
                    events: events.clone(),
                    retry: Retry::default(),
                });
                (queue, wrapped)
            } else {
                (queue, handler)
            }
        })
        .collect())
}
