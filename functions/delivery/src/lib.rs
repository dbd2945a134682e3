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
//!
//! Deliveries never outlast the invocation: what follows one message (tags, commit statuses,
//! promotion events) runs under [`vaia_core::deadline`], narrowed to `VAIA_DELIVERY_BUDGET_SECS`
//! per message ([`DEFAULT_BUDGET`]); what is not delivered by then is abandoned with an
//! `error` log naming the run, the sink and what was not delivered, and the message is
//! acknowledged (its state change was made).

pub mod github;
pub mod webhook;

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use vaia_core::deadline;
use vaia_core::delivery::{
    changed_statuses, post_status, promotion_event, promotion_tags, tag_all, CommitStatuses,
    EventSink, ImageRegistry, Retry, StatusError, TagError,
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

/// The variable capping the time the deliveries after one message may take.
pub const BUDGET_ENV: &str = "VAIA_DELIVERY_BUDGET_SECS";
/// The default of [`BUDGET_ENV`]: well inside a Lambda invocation (30 s) and the local
/// queue's visibility timeout (30 s), so that one message cannot hold a batch.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(10);

/// The per-message delivery budget `var` gives ([`BUDGET_ENV`], whole seconds ≥ 1).
pub fn delivery_budget(var: Vars<'_>) -> Result<Duration, String> {
    match var(BUDGET_ENV).filter(|v| !v.trim().is_empty()) {
        None => Ok(DEFAULT_BUDGET),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{BUDGET_ENV}: {v:?} is not a count of seconds ≥ 1")),
    }
}

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
    /// How long the tagging after one message may take ([`BUDGET_ENV`]).
    pub budget: Duration,
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

/// A lookup of configuration variables (the environment, or the environment with secrets
/// read from elsewhere, as on AWS); empty values count as unset.
pub type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as [`Vars`].
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// What the variables say about the registry: where images live, and how to reach it.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    pub config: DeliveryConfig,
    /// From `VAIA_REGISTRY_USERNAME`/`_PASSWORD` or `VAIA_REGISTRY_TOKEN`; anonymous when
    /// none is given (on AWS, an ECR image then logs in through ECR's token API).
    pub credentials: Credentials,
    pub plain_http: Option<String>,
}

impl RegistrySettings {
    /// True when no credentials were given.
    pub fn anonymous(&self) -> bool {
        matches!(self.credentials, Credentials::Anonymous)
    }

    /// The OCI adapter with these credentials.
    pub fn oci(&self) -> Result<OciRegistry, String> {
        let mut registry = OciRegistry::new(self.credentials.clone(), REGISTRY_TIMEOUT)
            .map_err(|e| e.to_string())?;
        if let Some(host) = &self.plain_http {
            registry = registry.plain_http(host.clone());
        }
        Ok(registry)
    }
}

/// How long one registry request may take.
pub const REGISTRY_TIMEOUT: Duration = Duration::from_secs(30);

/// The registry settings `var` gives; `None` when `VAIA_IMAGE` is unset (no image is
/// tagged); an error names the variable that is wrong.
pub fn registry_settings(var: Vars<'_>) -> Result<Option<RegistrySettings>, String> {
    let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
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
    let config = DeliveryConfig {
        image_template,
        prod_tag,
        retry: Retry {
            attempts,
            ..Retry::default()
        },
        budget: delivery_budget(&var)?,
    };
    config.image(&Repository::new("owner/name").map_err(|e| e.to_string())?)?;
    Ok(Some(RegistrySettings {
        config,
        credentials,
        plain_http: var("VAIA_REGISTRY_PLAIN_HTTP"),
    }))
}

/// The configuration and the OCI adapter from the environment; `None` when `VAIA_IMAGE` is
/// unset (no image is tagged); an error names the variable that is wrong.
pub fn from_env() -> Result<Option<Configured>, String> {
    let Some(settings) = registry_settings(&env_var)? else {
        return Ok(None);
    };
    let registry = settings.oci()?;
    Ok(Some((settings.config, Arc::new(registry))))
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
                    let tagging =
                        tag_all(&*self.registry, &image, &digest, &tags, self.config.retry);
                    let outcomes = deadline::scope_budget(self.config.budget, tagging).await;
                    for o in &outcomes {
                        if let Err(TagError::Abandoned(why)) = &o.result {
                            tracing::error!(run_id = %run.id, sink = "image registry", %image, tag = %o.tag, %digest, %why, "image tag abandoned: not delivered before the delivery deadline");
                        }
                    }
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
                verdict: None,
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
    Ok(wrap_registry(
        consumers,
        Arc::new(Delivery {
            store,
            blobs,
            clock,
            registry,
            config,
        }),
    ))
}

/// The consumers with the registry's wrapped in [`AfterRegistry`] running `delivery`.
pub fn wrap_registry(consumers: Consumers, delivery: Arc<Delivery>) -> Consumers {
    consumers
        .into_iter()
        .map(|(queue, handler)| {
            if queue == queues::REGISTRY {
                (queue, after_registry(handler, delivery.clone()))
            } else {
                (queue, handler)
            }
        })
        .collect()
}

/// The registry's job consumer `handler` followed by `delivery`.
pub fn after_registry(
    handler: Arc<dyn MessageHandler>,
    delivery: Arc<Delivery>,
) -> Arc<dyn MessageHandler> {
    Arc::new(AfterRegistry {
        registry_jobs: handler,
        delivery,
    })
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
                Err(StatusError::Abandoned(why)) => {
                    tracing::error!(run_id = %after.id, sink = "GitHub commit statuses", context = %status.context, state = ?status.state, attempts, %why, "commit status abandoned: not delivered before the delivery deadline")
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
    /// Every sink a promotion event goes to (each retried on its own).
    pub events: Vec<Arc<dyn EventSink>>,
    pub retry: Retry,
    /// How long the deliveries after one message may take ([`BUDGET_ENV`]).
    pub budget: Duration,
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
        let mut attempt = 0;
        let error = loop {
            if !deadline::allows(Duration::ZERO) {
                break StatusError::Abandoned("not started".into());
            }
            attempt += 1;
            let Ok(result) = deadline::run(sink.publish(&event)).await else {
                break StatusError::Abandoned(format!("attempt {attempt} cut off"));
            };
            match result {
                Ok(()) => {
                    tracing::info!(run_id = %id, event = %event.detail_type, attempt, "promotion event sent");
                    return;
                }
                Err(StatusError::Unavailable { message, .. }) if attempt < self.retry.attempts => {
                    if !deadline::allows(wait) {
                        break StatusError::Abandoned(format!("{message}; no time left to retry"));
                    }
                    tracing::warn!(run_id = %id, attempt, %message, "promotion event not sent yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
                Err(e) => break e,
            }
        };
        match error {
            StatusError::Abandoned(why) => {
                tracing::error!(run_id = %id, sink = %sink.name(), event = %event.detail_type, attempts = attempt, %why, "promotion event abandoned: not delivered before the delivery deadline")
            }
            e => {
                tracing::warn!(run_id = %id, sink = %sink.name(), event = %event.detail_type, error = %e, "promotion event not sent")
            }
        }
    }

    /// The commit statuses and promotion events that follow the message about `id`.
    async fn deliver(&self, before: Option<&Run>, id: &vaia_core::RunId) {
        if let Some(statuses) = &self.statuses {
            statuses.after(before, id).await;
        }
        for events in &self.events {
            self.publish(&**events, before, id).await;
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
            // Whatever is not delivered in time is abandoned (and logged): the state
            // change is made, so the message is acknowledged all the same.
            deadline::scope_budget(self.budget, self.deliver(before.as_ref(), &id)).await;
        }
        Ok(())
    }

    /// As idempotent as the orchestrator it wraps: the commit statuses and promotion
    /// events follow a state change this message made (the run before and after it), and
    /// a message handled again makes none.
    fn idempotent_by_itself(&self) -> bool {
        self.orchestrator.idempotent_by_itself()
    }
}

/// What follows the orchestrator: commit statuses and promotion event sinks, and how long
/// they may take after one message.
pub struct AdvanceSinks {
    pub statuses: Option<Arc<Statuses>>,
    pub events: Vec<Arc<dyn EventSink>>,
    pub budget: Duration,
}

impl Default for AdvanceSinks {
    fn default() -> Self {
        Self {
            statuses: None,
            events: Vec::new(),
            budget: DEFAULT_BUDGET,
        }
    }
}

/// The sinks `var` configures: commit statuses with `VAIA_GITHUB_TOKEN`
/// (`VAIA_GITHUB_API_URL`, default `https://api.github.com`; `VAIA_PUBLIC_URL` links each
/// status to its run), promotion events as signed webhooks with `VAIA_EVENTS_WEBHOOK_URL`
/// and `VAIA_EVENTS_WEBHOOK_SECRET`; [`BUDGET_ENV`] caps their time per message. An error
/// names the variable that is wrong.
pub fn advance_sinks(var: Vars<'_>, store: Arc<dyn RunStore>) -> Result<AdvanceSinks, String> {
    let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
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
                store,
                sink: Arc::new(sink),
                public_url: var("VAIA_PUBLIC_URL"),
                retry: Retry::default(),
            }))
        }
    };
    let mut events: Vec<Arc<dyn EventSink>> = Vec::new();
    match (
        var("VAIA_EVENTS_WEBHOOK_URL"),
        var("VAIA_EVENTS_WEBHOOK_SECRET"),
    ) {
        (None, None) => {}
        (Some(url), Some(secret)) => events.push(Arc::new(webhook::WebhookEvents::new(
            url,
            secret,
            Duration::from_secs(15),
        )?)),
        _ => {
            return Err("VAIA_EVENTS_WEBHOOK_URL and VAIA_EVENTS_WEBHOOK_SECRET go together".into())
        }
    };
    Ok(AdvanceSinks {
        statuses,
        events,
        budget: delivery_budget(&var)?,
    })
}

/// The consumers with the orchestrator's wrapped in [`AfterAdvance`] when the environment
/// asks for commit statuses or promotion events ([`advance_sinks`]).
pub fn wrap_advance_from_env(
    consumers: Consumers,
    store: Arc<dyn RunStore>,
) -> Result<Consumers, String> {
    let sinks = advance_sinks(&env_var, store.clone())?;
    Ok(wrap_advance(consumers, store, sinks))
}

/// The consumers with the orchestrator's wrapped in [`AfterAdvance`] feeding `sinks`;
/// unchanged when there is nothing to feed.
pub fn wrap_advance(
    consumers: Consumers,
    store: Arc<dyn RunStore>,
    sinks: AdvanceSinks,
) -> Consumers {
    consumers
        .into_iter()
        .map(|(queue, handler)| {
            if queue == queues::ADVANCE {
                (queue, after_advance(handler, store.clone(), &sinks))
            } else {
                (queue, handler)
            }
        })
        .collect()
}

/// The orchestrator's consumer `handler` followed by `sinks`; `handler` itself when there
/// is nothing to feed.
pub fn after_advance(
    handler: Arc<dyn MessageHandler>,
    store: Arc<dyn RunStore>,
    sinks: &AdvanceSinks,
) -> Arc<dyn MessageHandler> {
    if sinks.statuses.is_none() && sinks.events.is_empty() {
        return handler;
    }
    Arc::new(AfterAdvance {
        orchestrator: handler,
        store,
        statuses: sinks.statuses.clone(),
        events: sinks.events.clone(),
        retry: Retry::default(),
        budget: sinks.budget,
    })
}
