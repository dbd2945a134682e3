//! The webhook handler: verify, classify, dedupe, create the run, answer.
//!
//! Order of checks, each refusing with nothing stored:
//! 1. body over [`MAX_BODY_BYTES`] → 413, before any HMAC work;
//! 2. `X-Hub-Signature-256` missing, malformed or wrong → 401;
//! 3. `X-GitHub-Event` / `X-GitHub-Delivery` missing, repeated or invalid → 400;
//! 4. a body that does not parse or a field that is invalid → 400 naming where.
//!
//! Then the delivery is claimed in the idempotency store under `webhook:<delivery id>`:
//! the first claim does the work and completes the key with its answer, which every
//! redelivery gets back verbatim; a claim held by a request still running answers 409; a
//! failure in the run store or the queue releases the claim and answers 503 (retryable) or
//! 500, so that GitHub's redelivery can do the work again.
//!
//! Creating a run is insert-if-absent on its id, which is derived from (repository,
//! commit), so any number of deliveries and events for one commit make one run. The
//! orchestrator is told with a `Trigger` message deduplicated on `<run id>:trigger`; it is
//! also sent when the run exists but is still IDLE, because an earlier attempt may have
//! stored the run and failed before sending.

use crate::payload::{self, Action, Candidate, PayloadError};
use crate::signature::{verify_signature, SignatureError, WebhookSecret, SIGNATURE_HEADER};
use crate::MAX_BODY_BYTES;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use vaia_core::messages::{queues, AdvanceMessage, Signal};
use vaia_core::policy::Policy;
use vaia_core::ports::{
    Claim, Clock, Created, Idempotency, OutgoingMessage, PortError, Queue, RunStore,
};
use vaia_core::run::{EventKind, Run, RunEvent, Timestamp, Trigger};
use vaia_core::{DeliveryId, IdError, PipelineState, RunId};

pub const EVENT_HEADER: &str = "X-GitHub-Event";
pub const DELIVERY_HEADER: &str = "X-GitHub-Delivery";

/// How long a claimed delivery blocks its duplicates if its handler dies mid-way.
pub const IN_PROGRESS_TTL: Duration = Duration::from_secs(30);

/// The actor named on the messages and events this function writes.
pub const ACTOR: &str = "webhook";

/// An HTTP request as any front end (axum locally, API Gateway on AWS) hands it over.
pub struct WebhookRequest<'a> {
    /// Header names are matched case-insensitively.
    pub headers: &'a [(String, String)],
    /// The raw body, exactly as received: the signature covers these bytes.
    pub body: &'a [u8],
}

impl<'a> WebhookRequest<'a> {
    /// The value of header `name`; an error if it appears more than once.
    pub fn header(&self, name: &str) -> Result<Option<&'a str>, DuplicateHeader> {
        let mut found = None;
        for (k, v) in self.headers {
            if k.eq_ignore_ascii_case(name) {
                if found.is_some() {
                    return Err(DuplicateHeader);
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }
}

/// Header values are not printed: they carry the signature.
impl fmt::Debug for WebhookRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("WebhookRequest")
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateHeader;

/// The HTTP answer: a status and a JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookResponse {
    pub status: u16,
    pub body: Value,
}

impl WebhookResponse {
    fn new(status: u16, body: Value) -> Self {
        Self { status, body }
    }

    fn error(status: u16, code: &str, reason: impl fmt::Display) -> Self {
        Self::new(
            status,
            json!({ "status": "error", "error": code, "reason": reason.to_string() }),
        )
    }
}

/// Why a request was refused before any work; nothing is stored for these.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("body is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("missing or empty {0} header")]
    MissingHeader(&'static str),
    #[error("{0} header appears more than once")]
    DuplicateHeader(&'static str),
    #[error("invalid {DELIVERY_HEADER} header: {0}")]
    Delivery(IdError),
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

impl RequestError {
    pub fn status(&self) -> u16 {
        match self {
            RequestError::TooLarge { .. } => 413,
            RequestError::Signature(_) => 401,
            _ => 400,
        }
    }

    fn response(&self) -> WebhookResponse {
        let code = match self {
            RequestError::TooLarge { .. } => "payload_too_large",
            RequestError::Signature(_) => "unauthorized",
            _ => "bad_request",
        };
        let mut r = WebhookResponse::error(self.status(), code, self);
        if let RequestError::Payload(p) = self {
            if let Some(path) = p.path() {
                r.body["path"] = json!(path);
            }
            if let Some((line, column)) = p.position() {
                r.body["line"] = json!(line);
                r.body["column"] = json!(column);
            }
        }
        r
    }
}

/// A failure of the stores behind the handler while doing the work.
#[derive(Debug, thiserror::Error)]
enum InternalError {
    #[error("{what}: {source}")]
    Port {
        what: &'static str,
        source: PortError,
    },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("stored answer for this delivery cannot be decoded: {0}")]
    StoredAnswer(serde_json::Error),
}

impl InternalError {
    fn port(what: &'static str) -> impl FnOnce(PortError) -> Self {
        move |source| InternalError::Port { what, source }
    }

    fn response(&self, delivery: &DeliveryId) -> WebhookResponse {
        // Store errors stay in the log; the answer names only what failed.
        match self {
            InternalError::Port { what, source } if source.is_retryable() => {
                WebhookResponse::error(
                    503,
                    "unavailable",
                    format!(
                    "{what} unavailable while processing delivery {delivery}; redeliver it later"
                ),
                )
            }
            InternalError::Port { what, .. } => WebhookResponse::error(
                500,
                "internal",
                format!("{what} refused the write for delivery {delivery}"),
            ),
            InternalError::Encode { what, .. } => WebhookResponse::error(
                500,
                "internal",
                format!("cannot encode the {what} for delivery {delivery}"),
            ),
            InternalError::StoredAnswer(_) => WebhookResponse::error(
                500,
                "internal",
                format!("the stored answer for delivery {delivery} is unreadable"),
            ),
        }
    }
}

/// A request whose signature and headers are good and whose payload is understood.
struct Verified {
    delivery: DeliveryId,
    event: String,
    action: Action,
}

/// The webhook function over its ports. Cheap to share: wrap it in an `Arc`.
pub struct Webhook {
    store: Arc<dyn RunStore>,
    idempotency: Arc<dyn Idempotency>,
    queue: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
    secret: WebhookSecret,
    policy: Policy,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("secret", &self.secret)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    pub fn new(
        store: Arc<dyn RunStore>,
        idempotency: Arc<dyn Idempotency>,
        queue: Arc<dyn Queue>,
        clock: Arc<dyn Clock>,
        secret: WebhookSecret,
        policy: Policy,
    ) -> Self {
        Self {
            store,
            idempotency,
            queue,
            clock,
            secret,
            policy,
        }
    }

    /// Handles one delivery. Never panics on input; every outcome is an answer.
    pub async fn handle(&self, req: &WebhookRequest<'_>) -> WebhookResponse {
        match self.verify(req) {
            Ok(v) => {
                let span = tracing::info_span!("webhook", delivery = %v.delivery, event = ?v.event);
                self.process(v).instrument(span).await
            }
            Err(e) => {
                // The delivery header is logged only once it is known to be well-formed.
                let delivery = req
                    .header(DELIVERY_HEADER)
                    .ok()
                    .flatten()
                    .and_then(|d| DeliveryId::new(d).ok());
                let delivery = delivery.as_ref().map_or("-", DeliveryId::as_str);
                tracing::warn!(delivery, status = e.status(), reason = %e, "webhook refused");
                e.response()
            }
        }
    }

    fn verify(&self, req: &WebhookRequest<'_>) -> Result<Verified, RequestError> {
        if req.body.len() > MAX_BODY_BYTES {
            return Err(RequestError::TooLarge {
                size: req.body.len(),
                limit: MAX_BODY_BYTES,
            });
        }
        let signature = req
            .header(SIGNATURE_HEADER)
            .map_err(|_| SignatureError::Duplicate)?;
        verify_signature(&self.secret, req.body, signature)?;

        let event = required_header(req, EVENT_HEADER)?;
        let delivery = required_header(req, DELIVERY_HEADER)?;
        let delivery = DeliveryId::new(delivery).map_err(RequestError::Delivery)?;
        let action = payload::classify(event, req.body)?;
        Ok(Verified {
            delivery,
            event: event.to_string(),
            action,
        })
    }

    async fn process(&self, v: Verified) -> WebhookResponse {
        let key = format!("webhook:{}", v.delivery);
        let now = self.clock.now();
        match self.idempotency.claim(&key, IN_PROGRESS_TTL, now).await {
            Ok(Claim::Claimed) => {}
            Ok(Claim::Completed(stored)) => {
                return match serde_json::from_str::<WebhookResponse>(&stored) {
                    Ok(first) => {
                        tracing::info!(
                            status = first.status,
                            "redelivery: returning the first answer"
                        );
                        first
                    }
                    Err(e) => {
                        let e = InternalError::StoredAnswer(e);
                        tracing::error!(error = %e, "cannot replay the first answer");
                        e.response(&v.delivery)
                    }
                };
            }
            Ok(Claim::InProgress) => {
                tracing::info!("delivery is being processed by another request");
                return WebhookResponse::new(
                    409,
                    json!({
                        "status": "in_progress",
                        "reason": format!("delivery {} is being processed; redeliver it later", v.delivery),
                    }),
                );
            }
            Err(e) => {
                let e = InternalError::port("idempotency store")(e);
                tracing::error!(error = %e, "cannot claim the delivery");
                return e.response(&v.delivery);
            }
        }

        match self.act(&v, &key, now).await {
            Ok(answer) => {
                self.complete(&key, &answer).await;
                answer
            }
            Err(e) => {
                tracing::error!(error = %e, retryable = matches!(&e, InternalError::Port { source, .. } if source.is_retryable()), "delivery failed; releasing it for redelivery");
                if let Err(release) = self.idempotency.release(&key).await {
                    // The claim then expires after IN_PROGRESS_TTL.
                    tracing::warn!(error = %release, "cannot release the claim");
                }
                e.response(&v.delivery)
            }
        }
    }

    /// Records the answer for redeliveries. The work is done and idempotent, so a failure
    /// here only costs a redelivery doing it again once the claim expires.
    async fn complete(&self, key: &str, answer: &WebhookResponse) {
        let stored = match serde_json::to_string(answer) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode the answer for the idempotency store");
                return;
            }
        };
        if let Err(e) = self
            .idempotency
            .complete(key, &stored, self.clock.now())
            .await
        {
            tracing::warn!(error = %e, "cannot record the answer in the idempotency store");
        }
    }

    async fn act(
        &self,
        v: &Verified,
        key: &str,
        now: Timestamp,
    ) -> Result<WebhookResponse, InternalError> {
        match &v.action {
            Action::Pong { zen, hook_id } => {
                tracing::info!("ping");
                let mut body = json!({ "status": "pong" });
                if let Some(zen) = zen {
                    body["zen"] = json!(zen);
                }
                if let Some(id) = hook_id {
                    body["hook_id"] = json!(id);
                }
                Ok(WebhookResponse::new(200, body))
            }
            Action::Ignore(reason) => {
                tracing::info!(reason = %reason, "ignored");
                Ok(WebhookResponse::new(
                    202,
                    json!({ "status": "ignored", "reason": reason }),
                ))
            }
            Action::Create(c) => self.create_run(&v.delivery, c, key, now).await,
        }
    }

    async fn create_run(
        &self,
        delivery: &DeliveryId,
        c: &Candidate,
        key: &str,
        now: Timestamp,
    ) -> Result<WebhookResponse, InternalError> {
        let trigger = Trigger {
            kind: c.kind.to_string(),
            delivery: Some(delivery.clone()),
            actor: c.actor.clone(),
            at: now,
        };
        let mut run = Run::new(
            c.repository.clone(),
            c.commit.clone(),
            Some(c.branch.clone()),
            trigger,
            self.policy.clone(),
            now,
        );
        let created = RunEvent {
            run_id: run.id.clone(),
            seq: 1,
            at: now,
            kind: EventKind::Note,
            from: PipelineState::Idle,
            to: None,
            reason: format!("created by {} delivery {delivery}", c.kind),
            actor: ACTOR.to_string(),
            evidence: None,
            cause: Some(key.to_string()),
            verdict: None,
        };
        run.events = 1;

        let outcome = self
            .store
            .create(&run, std::slice::from_ref(&created))
            .await
            .map_err(InternalError::port("run store"))?;
        match outcome {
            Created::Created => {
                self.send_trigger(&run.id).await?;
                tracing::info!(run_id = %run.id, commit = %run.commit, "run created");
                Ok(WebhookResponse::new(
                    201,
                    json!({
                        "status": "created",
                        "run_id": run.id,
                        "repository": run.repository,
                        "commit": run.commit,
                    }),
                ))
            }
            Created::Exists(existing) => {
                if existing.state == PipelineState::Idle {
                    self.send_trigger(&existing.id).await?;
                }
                tracing::info!(run_id = %existing.id, state = %existing.state, "run exists");
                Ok(WebhookResponse::new(
                    200,
                    json!({
                        "status": "exists",
                        "run_id": existing.id,
                        "state": existing.state,
                        "repository": existing.repository,
                        "commit": existing.commit,
                    }),
                ))
            }
        }
    }

    async fn send_trigger(&self, run_id: &RunId) -> Result<(), InternalError> {
        let message = AdvanceMessage {
            run_id: run_id.clone(),
            expect: Some(PipelineState::Idle),
            actor: ACTOR.to_string(),
            signal: Signal::Trigger,
        };
        let body = serde_json::to_string(&message).map_err(|source| InternalError::Encode {
            what: "trigger message",
            source,
        })?;
        self.queue
            .send(
                queues::ADVANCE,
                OutgoingMessage {
                    body,
                    dedupe_key: Some(format!("{run_id}:trigger")),
                    group: Some(run_id.to_string()),
                },
            )
            .await
            .map_err(InternalError::port("advance queue"))?;
        Ok(())
    }
}

fn required_header<'a>(
    req: &WebhookRequest<'a>,
    name: &'static str,
) -> Result<&'a str, RequestError> {
    match req.header(name) {
        Ok(Some(v)) if !v.is_empty() => Ok(v),
        Ok(_) => Err(RequestError::MissingHeader(name)),
        Err(DuplicateHeader) => Err(RequestError::DuplicateHeader(name)),
    }
}
