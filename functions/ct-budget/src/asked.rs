//! Evaluations asked for: the registry sends a `ct-evaluate` message
//! ([`vaia_core::messages::CtEvaluate`]) for each dataset snapshot a pushed DVC file names,
//! so the repository is evaluated at once rather than at the next schedule (on AWS the
//! `ct-budget` function consumes the queue beside its schedule; the local stack hands the
//! repository to its CT loop). A message that is not a `CtEvaluate` is a permanent error
//! naming what is wrong, and evaluates nothing.

use crate::CtBudget;
use async_trait::async_trait;
use std::sync::Arc;
use vaia_core::messages::CtEvaluate;
use vaia_core::ports::{HandlerError, MessageHandler, ReceivedMessage};

/// Reads a `ct-evaluate` message body.
pub fn parse(body: &str) -> Result<CtEvaluate, HandlerError> {
    serde_json::from_str(body).map_err(|e| {
        HandlerError::permanent(format!(
            "{} message: {e}; nothing evaluated",
            vaia_core::messages::queues::CT_EVALUATE
        ))
    })
}

/// The `ct-evaluate` queue's handler: evaluates the repository the message names (and,
/// over the threshold, queues its training job once, as a scheduled evaluation would).
pub struct EvaluateAsked(pub Arc<CtBudget>);

#[async_trait]
impl MessageHandler for EvaluateAsked {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        let ask = parse(&message.body)?;
        match self.0.evaluate(&ask.repository).await {
            Ok(Some(e)) => {
                tracing::info!(
                    repository = %ask.repository,
                    snapshot = %ask.snapshot_md5,
                    outcome = e.budget.outcome.as_str(),
                    budget = ?e.budget.budget,
                    job = ?e.job_status,
                    "CT evaluation after a new snapshot"
                );
                Ok(())
            }
            Ok(None) => {
                tracing::info!(repository = %ask.repository, "new snapshot, nothing in production");
                Ok(())
            }
            Err(e) if e.is_retryable() => Err(HandlerError::retryable(e.to_string())),
            Err(e) => Err(HandlerError::permanent(e.to_string())),
        }
    }
}
