//! AWS adapters for vaia's ports and the Lambda glue shared by every function.
//!
//! - [`dynamo`]: the DynamoDB [`RunStore`](vaia_core::ports::RunStore) and
//!   [`Idempotency`](vaia_core::ports::Idempotency) over one table;
//! - [`sqs`]: the SQS [`Queue`](vaia_core::ports::Queue) (FIFO per run, dead letters with
//!   reasons);
//! - [`s3`]: the S3 [`BlobStore`](vaia_core::ports::BlobStore);
//! - [`records`]: the deployment's blob store: S3, and the registry's records in the run
//!   table;
//! - [`s3event`]: S3 bucket notifications parsed with `aws_lambda_events`;
//! - [`lambda`]: SQS batches to message handlers with partial batch failures;
//! - [`config`]: settings from the environment and the ports built once per container;
//! - [`events`]: promotion events on EventBridge (the AWS [`EventSink`](vaia_core::delivery::EventSink));
//! - [`ecr`]: registry logins from ECR's token API;
//! - [`error`]: SDK errors mapped to [`PortError`](vaia_core::ports::PortError);
//! - [`meter`]: AWS requests and DynamoDB capacity counted by an SDK interceptor.
//!
//! The domain crates never see an AWS type: everything here implements the core's ports.

pub mod body;
pub mod config;
pub mod dynamo;
pub mod ecr;
pub mod error;
pub mod events;
pub mod http;
pub mod lambda;
pub mod meter;
pub mod realtime;
pub mod records;
#[cfg(feature = "testing")]
pub mod runtime_api;
pub mod s3;
pub mod s3event;
pub mod sqs;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{AwsPorts, AwsSettings, ConfigError};
pub use dynamo::{DynamoIdempotency, DynamoRunStore, DynamoTable};
pub use lambda::{RecordOutcome, Route, Source, SqsBatch};
pub use meter::{Meter, Usage};
pub use records::AwsBlobStore;
pub use s3::S3BlobStore;
pub use sqs::{QueueNames, SqsQueue};
