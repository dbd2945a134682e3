//! Lambda entry point of the orchestrator: SQS batches from the `advance` queue, followed by
//! delivery (commit statuses, promotion events on EventBridge; see `vaia_lambda::delivery`
//! for the variables). Wiring only; the batch semantics live in `vaia_aws::lambda`.

use std::sync::Arc;
use vaia_aws::lambda::{self, EmfMetrics, Source};
use vaia_core::messages::queues;
use vaia_orchestrator::Orchestrator;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let orchestrator = Arc::new(Orchestrator::new(
        p.store.clone(),
        p.queue.clone(),
        p.clock.clone(),
        Arc::new(EmfMetrics::new("orchestrator")),
    ));
    let sinks = vaia_lambda::delivery::advance_sinks(&p, &vaia_delivery::env_var).await?;
    let handler = vaia_delivery::after_advance(orchestrator, p.store.clone(), &sinks);
    let routes = vec![lambda::route(
        &p.queue,
        queues::ADVANCE,
        Source::Messages,
        handler,
    )];
    lambda::serve_sqs(lambda::batch(&p, routes)).await
}
