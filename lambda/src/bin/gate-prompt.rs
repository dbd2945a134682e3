//! Lambda entry point of the prompt-injection gate: SQS batches from the `gate-prompt`
//! queue. Wiring only.

use std::sync::Arc;
use vaia_aws::lambda;
use vaia_gate_prompt::PromptGate;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let handler = Arc::new(PromptGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
    ));
    lambda::serve_gate(&p, vaia_gates::prompt::GATE, handler).await
}
