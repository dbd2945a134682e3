//! Lambda entry point of the sweeper: an EventBridge schedule sends every overdue
//! in-flight run a timeout signal through the orchestrator. Wiring only.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use std::sync::Arc;
use vaia_aws::lambda::{self, EmfMetrics};
use vaia_orchestrator::Orchestrator;

/// Runs swept per invocation (`VAIA_SWEEP_LIMIT`, default 100).
fn limit() -> usize {
    std::env::var("VAIA_SWEEP_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let orchestrator = Arc::new(Orchestrator::new(
        p.store.clone(),
        p.queue.clone(),
        p.clock.clone(),
        Arc::new(EmfMetrics::new("sweeper")),
    ));
    let limit = limit();
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| {
            let orchestrator = orchestrator.clone();
            async move {
                tracing::info!(request_id = %event.context.request_id, source = ?event.payload.source, "sweep");
                let swept = orchestrator.sweep(limit).await?;
                tracing::info!(swept, "sweep done");
                Ok::<_, lambda_runtime::Error>(serde_json::json!({ "swept": swept }))
            }
        },
    ))
    .await
}
