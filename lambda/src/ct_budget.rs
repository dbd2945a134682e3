//! The ct-budget function's two event sources on one entry point: the EventBridge schedule
//! (a scheduled event, [`vaia_ct_budget::scheduled`]: every repository) and the
//! `ct-evaluate` queue (SQS batches of the registry's asks after a new dataset snapshot,
//! [`vaia_ct_budget::asked`]: one repository each, partial batch failures reported). An
//! event with `Records` is an SQS batch; anything else must be a scheduled event.

use aws_lambda_events::sqs::SqsEvent;
use serde_json::Value;
use vaia_aws::lambda::SqsBatch;
use vaia_ct_budget::{scheduled, CtBudget};

#[derive(Debug, thiserror::Error)]
pub enum CtInvokeError {
    #[error("SQS event: {0}")]
    Sqs(String),
    #[error(transparent)]
    Scheduled(#[from] scheduled::ScheduledError),
    #[error("encoding the answer: {0}")]
    Encode(String),
}

/// Handles one invocation: the answer is the batch response for SQS, else the scheduled
/// run's summary.
pub async fn invoke(ct: &CtBudget, asks: &SqsBatch, event: Value) -> Result<Value, CtInvokeError> {
    if event.get("Records").is_some_and(Value::is_array) {
        let batch: SqsEvent =
            serde_json::from_value(event).map_err(|e| CtInvokeError::Sqs(e.to_string()))?;
        let answer = asks.handle(batch).await;
        return serde_json::to_value(answer).map_err(|e| CtInvokeError::Encode(e.to_string()));
    }
    let done = scheduled::run(ct, &event).await?;
    tracing::info!(evaluated = done.evaluated, queued = done.queued.len(), outcomes = ?done.outcomes, "ct-budget done");
    serde_json::to_value(&done).map_err(|e| CtInvokeError::Encode(e.to_string()))
}
