//! The webhook function: GitHub deliveries in, runs and `Trigger` messages out.
//!
//! Framework-agnostic: a front end (the local axum server, the API Gateway Lambda) turns
//! its request into a [`WebhookRequest`] and writes back the [`WebhookResponse`]. The
//! handler verifies `X-Hub-Signature-256`, dedupes on `X-GitHub-Delivery`, creates at most
//! one run per (repository, commit) and answers without doing any gate work. See
//! [`handler`] for the order of checks and the idempotency contract, [`payload`] for which
//! events start runs, and [`signature`] for the accepted signature form.

pub mod handler;
pub mod payload;
pub mod signature;

pub use handler::{
    RequestError, Webhook, WebhookRequest, WebhookResponse, DELIVERY_HEADER, EVENT_HEADER,
    IN_PROGRESS_TTL,
};
pub use payload::{classify, Action, Candidate, PayloadError};
pub use signature::{
    verify_signature, SecretError, SignatureError, WebhookSecret, SIGNATURE_HEADER,
};

/// The largest body accepted: API Gateway and Lambda cap payloads at 6 MB (GitHub's own
/// cap is 25 MB). A larger body is refused with 413 before any HMAC work.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
