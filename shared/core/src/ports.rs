//! Ports: the small traits through which handlers reach storage, queues, blobs, time and
//! metrics. Adapters (SQLite and the filesystem locally, DynamoDB, SQS and S3 on AWS)
//! translate their own errors into the error types here; handlers never see a driver error.

use crate::ids::{BlobKey, RunId};
use crate::messages::ObjectCreated;
use crate::run::{Run, RunEvent, Timestamp};
use crate::state::PipelineState;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Errors every port can return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// A conditional write lost: the item's version was not the expected one. Carries the
    /// version found, if the adapter could learn it without an extra read.
    #[error("conflict on {what}: expected version {expected}, found {found:?}")]
    Conflict {
        what: String,
        expected: u64,
        found: Option<u64>,
    },
    /// The backing service failed in a way that may pass (I/O, throttling, timeout).
    #[error("{0} (retryable)")]
    Unavailable(String),
    /// Stored data could not be decoded, or an argument was refused; retrying will not help.
    #[error("{0}")]
    Invalid(String),
}

impl PortError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, PortError::Unavailable(_) | PortError::Conflict { .. })
    }
}

pub type PortResult<T> = Result<T, PortError>;

#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    Created,
    /// A run for this id already existed; it is returned as stored.
    Exists(Box<Run>),
}

/// A page of runs, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<RunCursor>,
}

/// Where a page of the runs list ended: the last run's creation time and id, the list's
/// sort key (newest first, then id). The one format of the cursor everywhere: adapters
/// read its fields, the API and the CLI pass its [`fmt::Display`] form around unread (41
/// characters: 16 hex digits of the creation time in nanoseconds, then the run id) and
/// parse it back with [`RunCursor::parse`]. Runs created after the first page sort before
/// every cursor, so paging never repeats or misses a run while new ones arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCursor {
    pub created_at: Timestamp,
    pub id: RunId,
}

/// A string that is not a cursor a runs list gave out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a runs-list cursor (pass back the `next` of a previous page unchanged)")]
pub struct CursorError;

impl RunCursor {
    /// The cursor just after `run` in the list's order.
    pub fn after(run: &Run) -> Self {
        Self {
            created_at: run.created_at,
            id: run.id.clone(),
        }
    }

    pub fn parse(cursor: &str) -> Result<Self, CursorError> {
        let (time, id) = cursor.split_at_checked(16).ok_or(CursorError)?;
        let bits = u64::from_str_radix(time, 16).map_err(|_| CursorError)?;
        let nanos = i64::from_be_bytes(bits.to_be_bytes());
        Ok(Self {
            created_at: chrono::DateTime::from_timestamp_nanos(nanos),
            id: RunId::new(id).map_err(|_| CursorError)?,
        })
    }
}

impl fmt::Display for RunCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = u64::from_be_bytes(crate::run::nanos(self.created_at).to_be_bytes());
        write!(f, "{bits:016x}{}", self.id)
    }
}

impl std::str::FromStr for RunCursor {
    type Err = CursorError;
    fn from_str(s: &str) -> Result<Self, CursorError> {
        Self::parse(s)
    }
}

/// Runs and their event logs.
///
/// Contract: `create` is insert-if-absent on the run id. `save` writes the run only if
/// the stored version equals `expected_version`, sets it to `run.version` (which the
/// caller has made `expected_version + 1`), and appends `events` in the same write: the
/// events are stored if and only if the run is. A lost condition is
/// [`PortError::Conflict`] and writes nothing.
#[async_trait]
pub trait RunStore: Send + Sync {
    async fn create(&self, run: &Run, events: &[RunEvent]) -> PortResult<Created>;
    async fn get(&self, id: &RunId) -> PortResult<Option<Run>>;
    async fn save(&self, run: &Run, expected_version: u64, events: &[RunEvent]) -> PortResult<()>;
    /// Newest first (by creation time, then id), the runs strictly after `after` (the
    /// `next` of a previous page) when given.
    async fn list(&self, limit: usize, after: Option<&RunCursor>) -> PortResult<RunPage>;
    async fn events(&self, id: &RunId) -> PortResult<Vec<RunEvent>>;
    async fn count_by_state(&self) -> PortResult<BTreeMap<PipelineState, u64>>;
    /// In-flight runs whose deadline is at or before `now`, at most `limit` of them.
    async fn overdue(&self, now: Timestamp, limit: usize) -> PortResult<Vec<Run>>;
}

/// The outcome of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The caller owns the key and must `complete` or `release` it.
    Claimed,
    /// Another caller owns the key and has not finished; try again later.
    InProgress,
    /// The work was done; here is its stored result.
    Completed(String),
}

/// Idempotency records in the manner of Powertools for AWS Lambda: a key is claimed
/// (in progress, expiring after `in_progress_ttl` so a crashed owner does not block it
/// forever), then completed with the result that duplicates receive.
///
/// Contract: of any number of concurrent `claim`s of one key, exactly one gets `Claimed`.
#[async_trait]
pub trait Idempotency: Send + Sync {
    async fn claim(
        &self,
        key: &str,
        in_progress_ttl: Duration,
        now: Timestamp,
    ) -> PortResult<Claim>;
    async fn complete(&self, key: &str, result: &str, now: Timestamp) -> PortResult<()>;
    /// Gives up a claim so that a retry may take it (the work failed without side effects).
    async fn release(&self, key: &str) -> PortResult<()>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    pub body: String,
    /// Messages with the same key sent within the deduplication window are one message.
    pub dedupe_key: Option<String>,
    /// Messages of one group are delivered in order, one at a time (the run id).
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMessage {
    pub id: String,
    /// Identifies this delivery; needed to delete or fail the message.
    pub receipt: String,
    pub body: String,
    /// 1 on first delivery.
    pub receive_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
    pub dead: u64,
}

/// Queues with SQS semantics: at-least-once delivery; a received message is invisible
/// for the visibility timeout, then delivered again unless deleted; after the queue's
/// maximum receives it moves to the dead-letter queue with the last failure reason.
///
/// Contract: `delete` and `fail` with a stale receipt (the message was redelivered since)
/// are no-ops, not errors. `fail` with `retryable = false` dead-letters at once.
#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, queue: &str, message: OutgoingMessage) -> PortResult<String>;
    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> PortResult<Vec<ReceivedMessage>>;
    async fn delete(&self, queue: &str, receipt: &str) -> PortResult<()>;
    async fn fail(
        &self,
        queue: &str,
        receipt: &str,
        reason: &str,
        retryable: bool,
    ) -> PortResult<()>;
    async fn depth(&self, queue: &str) -> PortResult<QueueDepth>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct BlobMeta {
    pub key: BlobKey,
    pub size: u64,
}

/// A blob as read, with the entity tag that names this content of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    pub bytes: Vec<u8>,
    pub etag: String,
}

/// A blob read with a size limit ([`BlobStore::get_at_most`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounded {
    /// The whole blob, within the limit.
    Bytes(Vec<u8>),
    /// The blob is larger than the limit; it was not read whole. `size` when the store
    /// knows it without reading (S3's `Content-Length`, a file's metadata).
    TooLarge { size: Option<u64> },
}

/// The entity tag of `bytes` in the stores that compute their own (memory, filesystem):
/// the sha256 of the content, quoted as HTTP entity tags are.
pub fn content_etag(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("\"{}\"", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Blobs (evidence bundles, verdicts, registry records). `put` emits an
/// [`ObjectCreated`] notification to whoever the deployment routes it to.
#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn put(&self, key: &BlobKey, bytes: &[u8]) -> PortResult<ObjectCreated>;
    /// Writes `bytes` at `key` only if no blob is there: `Some` (and the notification) when
    /// this call created it, `None` when a blob already existed (nothing written, nothing
    /// sent). Atomic: of callers racing on one key exactly one gets `Some`.
    async fn put_if_absent(&self, key: &BlobKey, bytes: &[u8])
        -> PortResult<Option<ObjectCreated>>;
    /// Replaces the blob at `key` only if it is still the one read with `etag` (from
    /// [`BlobStore::get_tagged`]): compare-and-swap. `Some` (and the notification) when
    /// this call wrote it; `None` when the blob was replaced or removed since (nothing
    /// written, nothing sent): re-read and retry. Atomic: of callers racing with one etag
    /// exactly one gets `Some`. S3: `PutObject` with `If-Match`; elsewhere the store's own
    /// lock. Like S3's, an etag names content, so a blob rewritten with the same bytes
    /// still matches.
    async fn put_if_match(
        &self,
        key: &BlobKey,
        bytes: &[u8],
        etag: &str,
    ) -> PortResult<Option<ObjectCreated>>;
    /// `None` when there is no such blob.
    async fn get(&self, key: &BlobKey) -> PortResult<Option<Vec<u8>>>;
    /// The blob if it is at most `limit` bytes; a larger one is [`Bounded::TooLarge`]
    /// after reading at most `limit + 1` bytes of it (its size is checked first where the
    /// store knows it), so outside data never costs more memory than its limit.
    async fn get_at_most(&self, key: &BlobKey, limit: u64) -> PortResult<Option<Bounded>>;
    /// The blob with its entity tag, for a later [`BlobStore::put_if_match`].
    async fn get_tagged(&self, key: &BlobKey) -> PortResult<Option<Tagged>>;
    /// Keys under `prefix` (a whole-segment prefix such as `evidence/o/r/`), sorted.
    async fn list(&self, prefix: &str) -> PortResult<Vec<BlobMeta>>;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// What handlers count. Gauges (runs by state, queue depth) are read from the stores
/// when metrics are scraped, so they are not here.
pub trait Metrics: Send + Sync {
    fn transition(&self, from: PipelineState, to: PipelineState, time_in_from: Duration);
    fn verdict(&self, gate: &str, outcome: &str);
}

#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn transition(&self, _: PipelineState, _: PipelineState, _: Duration) {}
    fn verdict(&self, _: &str, _: &str) {}
}

/// Why a handler could not process a message. Retryable failures are delivered again
/// (after the visibility timeout); others go to the dead-letter queue with `reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct HandlerError {
    pub reason: String,
    pub retryable: bool,
}

impl HandlerError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retryable: true,
        }
    }
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retryable: false,
        }
    }
}

impl From<PortError> for HandlerError {
    fn from(e: PortError) -> Self {
        Self {
            retryable: e.is_retryable(),
            reason: e.to_string(),
        }
    }
}

/// A consumer of one queue: the orchestrator, a gate, the registry.
#[async_trait]
pub trait MessageHandler: Send + Sync {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError>;

    /// `true` when handling a message again, or twice at once, has the effect of handling
    /// it once, with no record of the message kept anywhere (its only write is conditional
    /// and recognises what the message already did; what it sends is deduplicated where it
    /// lands). The AWS batch adapter then keeps no idempotency records for it (a claim and
    /// a completion per message, see `bench/COST.md`). An implementation saying `true`
    /// documents why. Default `false`: every message is claimed and completed.
    fn idempotent_by_itself(&self) -> bool {
        false
    }
}

// --- Realtime feed: the connections of live dashboards and pushing to them (the AWS
// `realtime` function; the local stack serves its own WebSocket). ---

/// The open feed connections (on AWS, API Gateway WebSocket connection ids).
#[async_trait]
pub trait Connections: Send + Sync {
    /// Records connection `id`, opened at `now`, forgotten after `ttl` at the latest.
    async fn add(&self, id: &str, now: Timestamp, ttl: Duration) -> PortResult<()>;
    /// Forgets connection `id` (absent is fine).
    async fn remove(&self, id: &str) -> PortResult<()>;
    /// Every recorded connection.
    async fn list(&self) -> PortResult<Vec<String>>;
}

/// Why a push to a connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The connection is closed for good (API Gateway's 410 `GoneException`).
    #[error("connection {0} is gone")]
    Gone(String),
    /// Anything else (throttling, a network error): worth retrying.
    #[error("push to connection {connection} failed: {reason}")]
    Failed { connection: String, reason: String },
}

/// One record of the runs table's change stream, decoded by the adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct RunChange {
    /// The record's identifier in its stream (what a partial batch failure names).
    pub id: String,
    /// The change's position for the feed (increasing with time).
    pub seq: u64,
    /// The run as written; `Ok(None)` for a record that is not a run write (another item
    /// of the table, a removal); `Err` names what is wrong with the record.
    pub run: Result<Option<Run>, String>,
}

/// Sends a text message to one feed connection.
#[async_trait]
pub trait Push: Send + Sync {
    async fn post(&self, connection: &str, data: &[u8]) -> Result<(), PushError>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cursor(nanos: i64) -> RunCursor {
        RunCursor {
            created_at: chrono::DateTime::from_timestamp_nanos(nanos),
            id: RunId::new("r0123456789abcdef01234567").unwrap(),
        }
    }

    #[test]
    fn cursor_round_trips_through_its_string() {
        for nanos in [0, 1, 1_764_000_000_123_456_789, -5, i64::MAX, i64::MIN] {
            let c = cursor(nanos);
            let s = c.to_string();
            assert_eq!(s.len(), 41, "{s}");
            assert_eq!(RunCursor::parse(&s), Ok(c), "{s}");
        }
    }

    #[test]
    fn other_strings_are_not_cursors() {
        let good = cursor(7).to_string();
        for bad in [
            "",
            "r0123456789abcdef01234567",
            "1764000000.r0123456789abcdef01234567",
            &good[..40],
            &format!("{good}0"),
            &good.replace('r', "x"),
            "zzzzzzzzzzzzzzzzr0123456789abcdef01234567",
            "é",
        ] {
            assert_eq!(RunCursor::parse(bad), Err(CursorError), "{bad:?}");
        }
    }
}
