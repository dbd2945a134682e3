//! The data watcher on AWS: the `raw-data` queue's records are S3 notifications of the data
//! bucket ([`RawDataEvents`] decodes their keys, which may hold spaces and non-ASCII
//! characters, and counts each object once), and the data bucket is listed for the
//! reconciliation by [`S3RawData`]. The data bucket is `VAIA_DATA_BUCKET` (the artifacts
//! bucket when unset).

use async_trait::async_trait;
use std::sync::Arc;
use vaia_aws::s3::S3BlobStore;
use vaia_aws::s3event::parse_raw_notification;
use vaia_core::ports::{HandlerError, MessageHandler, PortResult, ReceivedMessage};
use vaia_data_watcher::{DataWatcher, RawData, RawObject, WatchError};

/// The variable naming the bucket raw data lands in.
pub const DATA_BUCKET_ENV: &str = "VAIA_DATA_BUCKET";

/// The data bucket: `VAIA_DATA_BUCKET`, else the artifacts bucket.
pub fn data_bucket(artifacts: &S3BlobStore) -> S3BlobStore {
    match std::env::var(DATA_BUCKET_ENV) {
        Ok(b) if !b.is_empty() => artifacts.with_bucket(b),
        _ => artifacts.with_bucket(artifacts.bucket()),
    }
}

/// The data bucket's listing (ListObjectsV2, every page; keys as S3 holds them).
pub struct S3RawData(pub S3BlobStore);

#[async_trait]
impl RawData for S3RawData {
    async fn list(&self, prefix: &str) -> PortResult<Vec<(String, u64)>> {
        self.0.list_keys(prefix).await
    }
}

/// One SQS record of the `raw-data` queue: an S3 notification whose objects are counted
/// once each. A key outside `raw/<owner>/<repo>/<file>` or of an unknown repository is a
/// permanent error naming it (dead-lettered); the other objects of the record are
/// counted all the same, and a redelivery counts nothing twice.
pub struct RawDataEvents(pub Arc<DataWatcher>);

fn handler_error(e: WatchError) -> HandlerError {
    if e.is_retryable() {
        HandlerError::retryable(e.to_string())
    } else {
        HandlerError::permanent(e.to_string())
    }
}

#[async_trait]
impl MessageHandler for RawDataEvents {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        let objects = match parse_raw_notification(&message.body) {
            Ok(Some(objects)) => objects,
            Ok(None) => {
                tracing::info!("s3:TestEvent acknowledged");
                return Ok(());
            }
            Err(e) => return Err(HandlerError::permanent(e.to_string())),
        };
        let mut refused: Option<HandlerError> = None;
        for o in objects {
            let object = RawObject {
                key: o.key,
                size: o.size,
                sequencer: Some(o.sequencer),
            };
            match self.0.observe(&object).await {
                Ok(counted) => {
                    tracing::info!(key = %object.key, ?counted, "raw data notification")
                }
                Err(e) if e.is_retryable() => return Err(handler_error(e)),
                Err(e) => {
                    tracing::warn!(error = %e, "raw data notification refused");
                    let e = handler_error(e);
                    refused = Some(match refused {
                        None => e,
                        Some(prev) => {
                            HandlerError::permanent(format!("{}; {}", prev.reason, e.reason))
                        }
                    });
                }
            }
        }
        refused.map_or(Ok(()), Err)
    }
}
