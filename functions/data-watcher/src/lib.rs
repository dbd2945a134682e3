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
//! The pending volume is a running total, `ct/<owner>/<repo>/data/pending.json`
//! ([`PendingRecord`]), so reading it is one read however much data ever landed. The
//! object record's creator (the one `put_if_absent` lets through) adds the object to the
//! total by compare-and-swap, naming it in the total's `adding` set, then marks its record
//! `tallied` and takes the name out of `adding`: a creator that dies between the steps is
//! taken over by a redelivery of the notification once [`TALLY_LEASE`] has passed, and
//! the `adding` set keeps the takeover from adding the object twice. A duplicate arriving
//! while the creator is still at it is a retryable [`WatchError::InProgress`].
//!
//! A queued retrain consumes its repository's pending volume with one compare-and-swap of
//! the total (the volume moves to the job's entry), so an object counted while a job
//! consumes is either in that job's volume or still pending for the next: no byte is lost
//! or counted twice.

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use vaia_core::layout::{
    data_object_key, data_objects_prefix, data_pending_key, raw_data_prefix, versions_prefix,
    MAX_RECORD_BYTES, RAW_DATA_PREFIX,
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
    #[error("{key}: being counted by another delivery; retry later")]
    InProgress { key: String },
    #[error("{key}: lost {attempts} compare-and-swap races in a row")]
    Contended { key: String, attempts: usize },
    #[error(transparent)]
    Id(#[from] vaia_core::IdError),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl WatchError {
    /// Worth delivering again (a store was unavailable); bad input is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            WatchError::Port(p) => p.is_retryable(),
            WatchError::InProgress { .. } | WatchError::Contended { .. } => true,
            _ => false,
        }
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
    /// Added to the running total ([`PendingRecord`]); `false` while its creator is at it.
    /// (Records written before the running total have no field: they were counted.)
    #[serde(default = "yes")]
    pub tallied: bool,
}

fn yes() -> bool {
    true
}

/// How long the creator of an object record has to add it to the running total before a
/// redelivered notification of the object takes over (its creator died in between).
pub const TALLY_LEASE: chrono::Duration = chrono::Duration::seconds(60);

/// The consumptions kept in the running total, newest last (a retried consumption by one
/// of them returns its volume again).
pub const JOBS_KEPT: usize = 64;

/// The volume a training job consumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobVolume {
    pub job: String,
    pub volume: Volume,
}

/// A repository's running total: the pending volume, the objects being added to it, and
/// the recent consumptions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRecord {
    pub pending: Volume,
    /// Object ids added to `pending` whose records are not yet marked `tallied`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub adding: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobVolume>,
}

/// How many compare-and-swap rounds an update of the running total may lose in a row.
const CAS_ATTEMPTS: usize = 64;

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

    fn encode<T: Serialize>(key: &BlobKey, record: &T) -> Result<Vec<u8>, WatchError> {
        serde_json::to_vec(record).map_err(|e| WatchError::Corrupt {
            key: key.to_string(),
            message: e.to_string(),
        })
    }

    /// Counts an object once: creates its record unless one exists and adds it to the
    /// running total; `true` when this call added it.
    async fn count(
        &self,
        repo: &Repository,
        object: &RawObject,
        seen: Seen,
    ) -> Result<bool, WatchError> {
        let id = object_id(&object.key, object.size);
        let record_key = data_object_key(repo, &id)?;
        let record = DataObjectRecord {
            key: object.key.clone(),
            size: object.size,
            sequencer: object.sequencer.clone(),
            seen,
            counted_at: self.clock.now(),
            tallied: false,
        };
        let bytes = Self::encode(&record_key, &record)?;
        if self
            .records
            .put_if_absent(&record_key, &bytes)
            .await?
            .is_none()
        {
            let existing: DataObjectRecord = match self.records.get_tagged(&record_key).await? {
                Some(t) => decode(&record_key, &t.bytes)?,
                None => {
                    return Err(WatchError::InProgress {
                        key: record_key.to_string(),
                    })
                }
            };
            if existing.tallied {
                return Ok(false);
            }
            if self.clock.now() - existing.counted_at < TALLY_LEASE {
                return Err(WatchError::InProgress {
                    key: record_key.to_string(),
                });
            }
            tracing::warn!(key = %record_key, "taking over an object whose count was interrupted");
        }
        self.tally(repo, &record_key, &id, object.size).await
    }

    /// Adds object `id` to the running total unless it is there already (`adding`), marks
    /// its record `tallied`, then forgets it in `adding`: `true` when this call added it.
    async fn tally(
        &self,
        repo: &Repository,
        record_key: &BlobKey,
        id: &str,
        size: u64,
    ) -> Result<bool, WatchError> {
        let records = self.records.as_ref();
        let added = update_pending(records, repo, |p| {
            if p.adding.contains(id) {
                false
            } else {
                p.pending.add(size);
                p.adding.insert(id.to_string());
                true
            }
        })
        .await?;
        for _ in 0..CAS_ATTEMPTS {
            let Some(t) = records.get_tagged(record_key).await? else {
                break;
            };
            let mut record: DataObjectRecord = decode(record_key, &t.bytes)?;
            if record.tallied {
                break;
            }
            record.tallied = true;
            let bytes = Self::encode(record_key, &record)?;
            if records
                .put_if_match(record_key, &bytes, &t.etag)
                .await?
                .is_some()
            {
                break;
            }
        }
        update_pending(records, repo, |p| {
            p.adding.remove(id);
        })
        .await?;
        Ok(added)
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
            match self.count(repo, &object, Seen::Reconciliation).await {
                Ok(true) => {
                    tracing::info!(repository = %repo, key = %object.key, "raw data found by reconciliation");
                    found.add(size);
                }
                Ok(false) => {}
                // Its notification is being counted right now.
                Err(WatchError::InProgress { .. }) => {}
                Err(e) => return Err(e),
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

fn decode<T: serde::de::DeserializeOwned>(key: &BlobKey, bytes: &[u8]) -> Result<T, WatchError> {
    serde_json::from_slice(bytes).map_err(|e| WatchError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

/// Applies `change` to the repository's running total by compare-and-swap (created on
/// first use), reading again after a lost race; returns what `change` returned on the
/// round that was written.
async fn update_pending<T>(
    records: &dyn BlobStore,
    repo: &Repository,
    mut change: impl FnMut(&mut PendingRecord) -> T,
) -> Result<T, WatchError> {
    let key = data_pending_key(repo)?;
    for _ in 0..CAS_ATTEMPTS {
        let current = records.get_tagged(&key).await?;
        let mut record = match &current {
            Some(t) => decode(&key, &t.bytes)?,
            None => PendingRecord::default(),
        };
        let out = change(&mut record);
        let bytes = DataWatcher::encode(&key, &record)?;
        let written = match &current {
            Some(t) => records.put_if_match(&key, &bytes, &t.etag).await?,
            None => records.put_if_absent(&key, &bytes).await?,
        };
        if written.is_some() {
            return Ok(out);
        }
    }
    Err(WatchError::Contended {
        key: key.to_string(),
        attempts: CAS_ATTEMPTS,
    })
}

/// The repository's pending data volume: what no retrain has consumed yet (one read of
/// its running total).
pub async fn pending(records: &dyn BlobStore, repo: &Repository) -> Result<Volume, WatchError> {
    let key = data_pending_key(repo)?;
    match records.get_at_most(&key, MAX_RECORD_BYTES).await? {
        None => Ok(Volume::default()),
        Some(Bounded::TooLarge { .. }) => Err(WatchError::Corrupt {
            key: key.to_string(),
            message: "too large".into(),
        }),
        Some(Bounded::Bytes(b)) => Ok(decode::<PendingRecord>(&key, &b)?.pending),
    }
}

/// Consumes the repository's pending volume for training job `job`: moves it from the
/// running total to the job's entry in one compare-and-swap and returns the volume the
/// job holds (what it consumed earlier included, so a retried consumption returns the
/// same volume and more only if more data arrived).
pub async fn consume(
    records: &dyn BlobStore,
    repo: &Repository,
    job: &str,
) -> Result<Volume, WatchError> {
    update_pending(records, repo, |p| {
        let taken = std::mem::take(&mut p.pending);
        if let Some(j) = p.jobs.iter_mut().find(|j| j.job == job) {
            j.volume.objects += taken.objects;
            j.volume.bytes = j.volume.bytes.saturating_add(taken.bytes);
            return j.volume;
        }
        p.jobs.push(JobVolume {
            job: job.to_string(),
            volume: taken,
        });
        if p.jobs.len() > JOBS_KEPT {
            p.jobs.remove(0);
        }
        taken
    })
    .await
}
