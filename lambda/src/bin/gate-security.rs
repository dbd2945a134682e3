//! Lambda entry point of the container-CVE gate: SQS batches from the `gate-security`
//! queue. Wiring only.

use std::sync::Arc;
use vaia_aws::lambda;
use vaia_gate_security::SecurityGate;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let handler = Arc::new(SecurityGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
        p.clock.clone(),
    ));
    lambda::serve_gate(&p, vaia_gates::security::GATE, handler).await
}
