//! Lambda entry point of the schema gate: SQS batches from the `gate-schema` queue.
//! Wiring only.

use std::sync::Arc;
use vaia_aws::lambda;
use vaia_gate_schema::SchemaGate;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let handler = Arc::new(SchemaGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
    ));
    lambda::serve_gate(&p, vaia_gates::schema::GATE, handler).await
}
