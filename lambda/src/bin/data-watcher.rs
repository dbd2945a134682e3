//! Lambda entry point of the data watcher: SQS batches from the `raw-data` queue, the data
//! bucket's S3 object-created notifications under `raw/`; each object counts once in its
//! repository's pending data volume (`vaia_data_watcher`, `vaia_lambda::data_watcher`).
//! Wiring only.

use std::sync::Arc;
use vaia_aws::lambda::{self, Source};
use vaia_data_watcher::{DataWatcher, RAW_DATA_QUEUE};
use vaia_lambda::data_watcher::{data_bucket, RawDataEvents, S3RawData};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let raw = Arc::new(S3RawData(data_bucket(&p.blobs)));
    let watcher = Arc::new(DataWatcher::new(p.blobs.clone(), raw, p.clock.clone()));
    let routes = vec![lambda::route(
        &p.queue,
        RAW_DATA_QUEUE,
        Source::Messages,
        Arc::new(RawDataEvents(watcher)),
    )];
    lambda::serve_sqs(lambda::batch(&p, routes)).await
}
