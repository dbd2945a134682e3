//! Lambda entry point of the registry: SQS batches from the `registry` queue (jobs from
//! the orchestrator) and the `blob-events` queue (S3 object-created notifications for
//! evidence and registry objects). Registry jobs are followed by the image's tagging when
//! `VAIA_IMAGE` configures it (see `vaia_lambda::delivery`). Wiring only.

use std::sync::Arc;
use vaia_aws::lambda::{self, Source};
use vaia_core::messages::queues;
use vaia_registry::{ObjectEvents, Registry, RegistryJobs};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let registry = Arc::new(Registry::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
        p.clock.clone(),
    ));
    let mut jobs: Arc<dyn vaia_core::ports::MessageHandler> =
        Arc::new(RegistryJobs(registry.clone()));
    if let Some(delivery) =
        vaia_lambda::delivery::registry_delivery(&p, &vaia_delivery::env_var).await?
    {
        jobs = vaia_delivery::after_registry(jobs, delivery);
    }
    let routes = vec![
        lambda::route(&p.queue, queues::REGISTRY, Source::Messages, jobs),
        lambda::route(
            &p.queue,
            queues::BLOB_EVENTS,
            Source::S3Notifications,
            Arc::new(ObjectEvents(registry)),
        ),
    ];
    lambda::serve_sqs(lambda::batch(&p, routes)).await
}
