//! The data watcher (DataSourceWatcher): counts the raw data that lands under
//! `raw/<owner>/<repo>/…` as each repository's pending data volume (objects, bytes), the
//! data a retrain has not yet consumed.
//!
//! Each raw-data object is counted once: its record `ct/<owner>/<repo>/data/objects/<id>`
//! is created with a conditional create (`put_if_absent`), so duplicate, reordered or
//! racing notifications, and a reconciliation that lists the prefix, count it once. The
//! identity `<id>` is a digest of the object's key and size: both what a notification
//! carries and what a listing (ListObjectsV2) returns, so the notification and the
//! reconciliation of one object agree. (A listing carries no sequencer, and the stores'
//! listings carry no etag, so a rewrite of a key with the same size is one object.)
//!
//! Raw-data keys are any UTF-8 (spaces, non-ASCII: S3 sends them URL-encoded, decoded by
//! the caller), so they are plain strings here, not [`BlobKey`]s (whose stricter
//! alphabet is for vaia's own records). Listing goes through [`RawData`]: the blob store
//! locally, the data bucket on AWS.
//!
//! A queued retrain consumes its repository's pending volume: each unconsumed record is
//! marked with the job's id by compare-and-swap, so a record is consumed by exactly one
//! job, and a record created while a job consumes is either in that job's volume or
//! still pending for the next: no byte is lost or counted twice.

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use vaia_core::layout::{
    data_object_key, data_objects_prefix, raw_data_prefix, versions_prefix, MAX_RECORD_BYTES,
    RAW_DATA_PREFIX,
};
use vaia_core::messages::ObjectCreated;
use vaia_core::ports::{BlobStore, Bounded, Clock, PortError, PortResult};
use vaia_core::{BlobKey, Repository};

/// The queue the data bucket's object-created notifications under `raw/` go to (SQS on
/// AWS; locally the blob events carry them).
pub const RAW_DATA_QUEUE: &str = vaia_core::messages::queues::RAW_DATA;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("raw-data key {key:?}: {reason}")]
    Key { key: String, reason: String },
    #[error("raw-data key {key:?}: unknown repository {repository} (no version registered)")]
    UnknownRepository { key: String, repository: String },
    #[error("{key}: stored record is unreadable: {message}")]
    Corrupt { key: String, message: String },
    #[error(transparent)]
    Id(#[from] vaia_core::IdError),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl WatchError {
    /// Worth delivering again (a store was unavailable); bad input is not.
    pub fn is_retryable(&self) -> bool {
        matches!(self, WatchError::Port(p) if p.is_retryable())
    }
}

/// A pending data volume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub objects: u64,
    pub bytes: u64,
}

impl Volume {
    fn add(&mut self, size: u64) {
        self.objects += 1;
        self.bytes = self.bytes.saturating_add(size);
    }
}

/// How the watcher learnt of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seen {
    /// An object-created notification.
    Notification,
    /// A reconciliation's listing (its notification never came, or not yet).
    Reconciliation,
}

/// One counted raw-data object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataObjectRecord {
    pub key: String,
    pub size: u64,
    /// The notification's sequencer, when a notification counted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    pub seen: Seen,
    pub counted_at: DateTime<Utc>,
    /// The training job that consumed it; pending while `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_by: Option<String>,
}

/// A raw-data object as a notification or a listing names it (key decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawObject {
    pub key: String,
    pub size: u64,
    /// S3's sequencer (or what stands in for it); `None` from a listing.
    pub sequencer: Option<String>,
}

impl From<&ObjectCreated> for RawObject {
    fn from(c: &ObjectCreated) -> Self {
        Self {
            key: c.key.to_string(),
            size: c.size,
            sequencer: Some(c.sequencer.clone()),
        }
    }
}

/// Lists raw data: `(key, size)` under a prefix, every page.
#[async_trait::async_trait]
pub trait RawData: Send + Sync {
    async fn list(&self, prefix: &str) -> PortResult<Vec<(String, u64)>>;
}

/// Raw data kept in a blob store (the local stack's `raw/`).
pub struct BlobRawData(pub Arc<dyn BlobStore>);

#[async_trait::async_trait]
impl RawData for BlobRawData {
    async fn list(&self, prefix: &str) -> PortResult<Vec<(String, u64)>> {
        Ok(self
            .0
            .list(prefix)
            .await?
            .into_iter()
            .map(|m| (m.key.to_string(), m.size))
            .collect())
    }
}

/// Raw data in a local directory (`vaia up --watch-data DIR`, the original design's
/// polling watcher): `DIR/<owner>/<repo>/<file>` is listed as `raw/<owner>/<repo>/<file>`,
/// so a poll is a reconciliation with the same once-per-object rule. Regular files only
/// (symbolic links are not followed); names that are not UTF-8 are skipped.
pub struct DirRawData {
    pub root: std::path::PathBuf,
}

impl DirRawData {
    fn walk(
        &self,
        dir: &std::path::Path,
        rel: &str,
        out: &mut Vec<(String, u64)>,
    ) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(path = %entry.path().display(), "raw data skipped: name is not UTF-8");
                continue;
            };
            let path = format!("{rel}{name}");
            let kind = entry.file_type()?;
            if kind.is_dir() {
                self.walk(&entry.path(), &format!("{path}/"), out)?;
            } else if kind.is_file() {
                out.push((format!("{RAW_DATA_PREFIX}{path}"), entry.metadata()?.len()));
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl RawData for DirRawData {
    async fn list(&self, prefix: &str) -> PortResult<Vec<(String, u64)>> {
        let mut out = Vec::new();
        match self.walk(&self.root, "", &mut out) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(PortError::Unavailable(format!(
                    "listing {}: {e}",
                    self.root.display()
                )))
            }
        }
        out.retain(|(k, _)| k.starts_with(prefix));
        out.sort();
        Ok(out)
    }
}

/// What one notification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// First sight of this object: its size was added to the pending volume.
    New,
    /// Already counted (a duplicate, or reconciliation was first): nothing changed.
    Duplicate,
}

/// The repository a raw-data key belongs to: `raw/<owner>/<repo>/<file…>`, where the
/// file's segments are non-empty, not `.` or `..`, and free of control characters.
pub fn repository_of(key: &str) -> Result<Repository, WatchError> {
    let err = |reason: String| WatchError::Key {
        key: key.to_string(),
        reason,
    };
    if key.len() > 1024 {
        return Err(err("longer than 1024 bytes".into()));
    }
    let rest = key
        .strip_prefix(RAW_DATA_PREFIX)
        .ok_or_else(|| err(format!("not under {RAW_DATA_PREFIX}")))?;
    let mut parts = rest.splitn(3, '/');
    let (Some(owner), Some(name), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(err(format!(
            "expected {RAW_DATA_PREFIX}<owner>/<repo>/<file>"
        )));
    };
    if file
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(err(
            "file segments must be non-empty and not '.' or '..'".into()
        ));
    }
    if file.chars().any(char::is_control) {
        return Err(err("holds a control character".into()));
    }
    Repository::new(format!("{owner}/{name}")).map_err(|e| err(e.to_string()))
}

/// The identity of a raw-data object: a digest of its key and size.
pub fn object_id(key: &str, size: u64) -> String {
    let digest = Sha256::digest(format!("{key}\n{size}"));
    hex::encode(&digest[..16])
}

pub struct DataWatcher {
    /// Where the watcher's records live (the artifacts bucket on AWS).
    records: Arc<dyn BlobStore>,
    /// Where raw data lands (the data bucket on AWS; locally the same store).
    raw: Arc<dyn RawData>,
    clock: Arc<dyn Clock>,
}

impl DataWatcher {
    pub fn new(records: Arc<dyn BlobStore>, raw: Arc<dyn RawData>, clock: Arc<dyn Clock>) -> Self {
        Self {
            records,
            raw,
            clock,
        }
    }

    /// Whether vaia knows `repo`: the registry has assigned it a version.
    pub async fn is_known(&self, repo: &Repository) -> Result<bool, WatchError> {
        Ok(!self.records.list(&versions_prefix(repo)).await?.is_empty())
    }

    async fn known(&self, key: &str) -> Result<Repository, WatchError> {
        let repo = repository_of(key)?;
        if !self.is_known(&repo).await? {
            return Err(WatchError::UnknownRepository {
                key: key.to_string(),
                repository: repo.to_string(),
            });
        }
        Ok(repo)
    }

    fn encode(key: &BlobKey, record: &DataObjectRecord) -> Result<Vec<u8>, WatchError> {
        serde_json::to_vec(record).map_err(|e| WatchError::Corrupt {
            key: key.to_string(),
            message: e.to_string(),
        })
    }

    /// Creates the record of an object unless one exists: `true` when this call did.
    async fn count(
        &self,
        repo: &Repository,
        object: &RawObject,
        seen: Seen,
    ) -> Result<bool, WatchError> {
        let record_key = data_object_key(repo, &object_id(&object.key, object.size))?;
        let record = DataObjectRecord {
            key: object.key.clone(),
            size: object.size,
            sequencer: object.sequencer.clone(),
            seen,
            counted_at: self.clock.now(),
            consumed_by: None,
        };
        let bytes = Self::encode(&record_key, &record)?;
        Ok(self
            .records
            .put_if_absent(&record_key, &bytes)
            .await?
            .is_some())
    }

    /// Counts the object of an object-created notification, once. A key outside
    /// `raw/<owner>/<repo>/<file>` or of a repository vaia does not know is an error that
    /// changes nothing.
    pub async fn observe(&self, object: &RawObject) -> Result<Counted, WatchError> {
        let repo = self.known(&object.key).await?;
        if self.count(&repo, object, Seen::Notification).await? {
            tracing::info!(repository = %repo, key = %object.key, bytes = object.size, "raw data counted");
            Ok(Counted::New)
        } else {
            Ok(Counted::Duplicate)
        }
    }

    /// The repository's pending data volume: what no retrain has consumed yet.
    pub async fn pending(&self, repo: &Repository) -> Result<Volume, WatchError> {
        pending(self.records.as_ref(), repo).await
    }

    /// [`consume`] in this watcher's records.
    pub async fn consume(&self, repo: &Repository, job: &str) -> Result<Volume, WatchError> {
        consume(self.records.as_ref(), repo, job).await
    }

    /// Lists `raw/<owner>/<repo>/` and counts the objects no notification counted;
    /// returns what it added. Idempotent with the notifications and with itself.
    pub async fn reconcile(&self, repo: &Repository) -> Result<Volume, WatchError> {
        let counted: BTreeSet<BlobKey> = self
            .records
            .list(&data_objects_prefix(repo))
            .await?
            .into_iter()
            .map(|m| m.key)
            .collect();
        let mut found = Volume::default();
        for (key, size) in self.raw.list(&raw_data_prefix(repo)).await? {
            if let Err(e) = repository_of(&key) {
                tracing::warn!(error = %e, "raw data skipped");
                continue;
            }
            let record_key = data_object_key(repo, &object_id(&key, size))?;
            if counted.contains(&record_key) {
                continue;
            }
            let object = RawObject {
                key,
                size,
                sequencer: None,
            };
            if self.count(repo, &object, Seen::Reconciliation).await? {
                tracing::info!(repository = %repo, key = %object.key, "raw data found by reconciliation");
                found.add(size);
            }
        }
        Ok(found)
    }

    /// Reconciles every known repository with raw data; unknown ones and malformed keys
    /// are logged and skipped.
    pub async fn reconcile_all(&self) -> Result<BTreeMap<Repository, Volume>, WatchError> {
        let mut repos = BTreeSet::new();
        for (key, _) in self.raw.list(RAW_DATA_PREFIX).await? {
            match repository_of(&key) {
                Ok(r) => {
                    repos.insert(r);
                }
                Err(e) => tracing::warn!(error = %e, "raw data skipped"),
            }
        }
        let mut out = BTreeMap::new();
        for repo in repos {
            if !self.is_known(&repo).await? {
                tracing::warn!(repository = %repo, "raw data of an unknown repository skipped");
                continue;
            }
            out.insert(repo.clone(), self.reconcile(&repo).await?);
        }
        Ok(out)
    }
}

async fn records_of(
    records: &dyn BlobStore,
    repo: &Repository,
) -> Result<Vec<(BlobKey, DataObjectRecord)>, WatchError> {
    let mut out = Vec::new();
    for meta in records.list(&data_objects_prefix(repo)).await? {
        let corrupt = |message: String| WatchError::Corrupt {
            key: meta.key.to_string(),
            message,
        };
        let bytes = match records.get_at_most(&meta.key, MAX_RECORD_BYTES).await? {
            None => continue,
            Some(Bounded::TooLarge { .. }) => return Err(corrupt("too large".into())),
            Some(Bounded::Bytes(b)) => b,
        };
        let record = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        out.push((meta.key, record));
    }
    Ok(out)
}

/// The repository's pending data volume: what no retrain has consumed yet.
pub async fn pending(records: &dyn BlobStore, repo: &Repository) -> Result<Volume, WatchError> {
    let mut v = Volume::default();
    for (_, r) in records_of(records, repo).await? {
        if r.consumed_by.is_none() {
            v.add(r.size);
        }
    }
    Ok(v)
}

/// Consumes the repository's pending volume for training job `job`: marks every
/// unconsumed record with the job by compare-and-swap and returns the volume the job
/// holds (records it consumed earlier included, so a retried consumption returns the
/// same volume and more only if more data arrived).
pub async fn consume(
    records: &dyn BlobStore,
    repo: &Repository,
    job: &str,
) -> Result<Volume, WatchError> {
    let mut v = Volume::default();
    for meta in records.list(&data_objects_prefix(repo)).await? {
        loop {
            let Some(tagged) = records.get_tagged(&meta.key).await? else {
                break;
            };
            let mut record: DataObjectRecord =
                serde_json::from_slice(&tagged.bytes).map_err(|e| WatchError::Corrupt {
                    key: meta.key.to_string(),
                    message: e.to_string(),
                })?;
            match record.consumed_by.as_deref() {
                Some(j) if j == job => {
                    v.add(record.size);
                    break;
                }
                Some(_) => break,
                None => {}
            }
            record.consumed_by = Some(job.to_string());
            let bytes = DataWatcher::encode(&meta.key, &record)?;
            if records
                .put_if_match(&meta.key, &bytes, &tagged.etag)
                .await?
                .is_some()
            {
                v.add(record.size);
                break;
            }
            // Changed since read (another job consumed it): read again.
        }
    }
    Ok(v)
}
