//! Lambda entry point of the prompt-injection gate: SQS batches from the `gate-prompt`
//! queue. Wiring only.

use std::sync::Arc;
use vaia_aws::lambda::{self, Source};
use vaia_core::messages::queues;
use vaia_gate_prompt::PromptGate;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env().await?;
    let gate = vaia_core::GateName::new(vaia_gates::prompt::GATE)?;
    let handler = Arc::new(PromptGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
    ));
    let routes = vec![lambda::route(
        &p.queue,
        &queues::gate(&gate),
        Source::Messages,
        handler,
    )];
    lambda::serve_sqs(lambda::batch(&p, routes)).await
}
