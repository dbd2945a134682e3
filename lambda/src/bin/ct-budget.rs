//! Lambda entry point of the CT budget: an EventBridge schedule (`CtScheduleRate`) runs one
//! evaluation of every repository with a `prod` version; over the threshold a training job
//! goes to the `training` FIFO queue. The policy's `[ct]` comes from `VAIA_POLICY`; the
//! drift score from its `drift_source` (reports in the bucket, or the Prometheus at
//! `VAIA_PROMETHEUS_URL`). The event is checked by
//! `vaia_ct_budget::scheduled`: anything but a scheduled event is an error and changes
//! nothing. Each scheduled evaluation is preceded by the data watcher's reconciliation of
//! `raw/` in the data bucket (`VAIA_DATA_BUCKET`, see `vaia_lambda::data_watcher`). The
//! `ct-evaluate` queue (the registry's asks after each new dataset snapshot) is consumed
//! here too: one repository evaluated per message (`vaia_ct_budget::asked`, told from the
//! schedule by `vaia_lambda::ct_budget`).
//! Wiring only.

use std::sync::Arc;
use vaia_aws::lambda;
use vaia_aws::lambda::Source;
use vaia_core::messages::queues;
use vaia_ct_budget::{asked::EvaluateAsked, drift, CtBudget};
use vaia_data_watcher::DataWatcher;
use vaia_gate_latency::{prometheus_client, PROMETHEUS_URL_ENV};
use vaia_lambda::data_watcher::{data_bucket, S3RawData};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let policy = vaia_aws::config::policy_from_env()?;
    let prometheus = prometheus_client(std::env::var(PROMETHEUS_URL_ENV).ok().as_deref());
    let drift = drift::from_policy(&policy.ct, p.blobs.clone(), prometheus, p.clock.clone());
    let raw = Arc::new(S3RawData(data_bucket(&p.blobs)));
    let watcher = Arc::new(DataWatcher::new(p.blobs.clone(), raw, p.clock.clone()));
    let ct = Arc::new(
        CtBudget::new(
            p.blobs.clone(),
            p.queue.clone(),
            p.clock.clone(),
            policy.ct,
            drift,
        )
        .with_data_watcher(watcher),
    );
    let asks = Arc::new(lambda::batch(
        &p,
        vec![lambda::route(
            &p.queue,
            queues::CT_EVALUATE,
            Source::Messages,
            Arc::new(EvaluateAsked(ct.clone())),
        )],
    ));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let (ct, asks) = (ct.clone(), asks.clone());
            async move {
                tracing::info!(request_id = %event.context.request_id, "ct-budget invoked");
                let answer = vaia_lambda::ct_budget::invoke(&ct, &asks, event.payload)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "ct-budget refused or failed");
                        e
                    })?;
                Ok::<_, lambda_runtime::Error>(answer)
            }
        },
    ))
    .await
}
