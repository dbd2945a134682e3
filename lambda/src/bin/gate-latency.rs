//! Lambda entry point of the latency gate: SQS batches from the `gate-latency` queue.
//! Production's Prometheus is `VAIA_PROMETHEUS_URL` (empty: only a policy's fixed baseline
//! can be used, otherwise the verdict is `error`). Wiring only.

use std::sync::Arc;
use vaia_aws::lambda;
use vaia_gate_latency::{prometheus_client, LatencyGate, PROMETHEUS_URL_ENV};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let prometheus = prometheus_client(std::env::var(PROMETHEUS_URL_ENV).ok().as_deref());
    let handler = Arc::new(LatencyGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
        p.clock.clone(),
        prometheus,
    ));
    lambda::serve_gate(&p, vaia_gates::latency::GATE, handler).await
}
