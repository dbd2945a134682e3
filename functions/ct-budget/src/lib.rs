//! The ct-budget function's handler: for every repository with a `prod` version, computes
//! the training budget from the drift monitor's score and the rows the newest dataset
//! snapshot adds over the CT baseline's, records the evaluation, and over the threshold
//! queues one `vaia.training-job/v1` message on the training queue.
//!
//! One job per (repository, prod version, snapshot md5): the first evaluation that wants
//! it claims `ct/<owner>/<repo>/jobs/<id>.json` with a conditional create, sends the
//! message with the id as its deduplication id, then marks the claim `queued` by
//! compare-and-swap. A later evaluation finding the claim still `claimed` (its owner died
//! between claim and send) sends again under the same deduplication id and marks it, so a
//! job is never lost and racing or repeated evaluations queue it once.

pub mod asked;
pub mod drift;
pub mod scheduled;
#[cfg(any(test, feature = "testing"))]
pub mod seed;

use chrono::{DateTime, Utc};
use drift::DriftSource;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use vaia_core::ct::{self, Budget, BudgetInput, CtOutcome, CtPolicy};
use vaia_core::dataset::{snapshots_prefix, SnapshotRecord};
use vaia_core::layout::{alias_key, ct_baseline_key, AliasRecord, CtBaselineRecord, PROD_ALIAS};
use vaia_core::ports::{BlobStore, Clock, OutgoingMessage, PortError, Queue};
use vaia_core::{BlobKey, Repository};

/// The queue training jobs go to (SQS FIFO on AWS).
pub const TRAINING_QUEUE: &str = "training";
/// The training job contract's version; `schema/training-job.v1.schema.json` describes it.
pub const TRAINING_JOB_SCHEMA: &str = "vaia.training-job/v1";
/// An evaluation's `job_status` when it sent the training job.
pub const JOB_QUEUED: &str = "queued";
/// An evaluation's `job_status` when an earlier evaluation had sent it.
pub const JOB_ALREADY_QUEUED: &str = "already queued";

#[derive(Debug, thiserror::Error)]
pub enum CtError {
    #[error("{key}: stored record is unreadable: {message}")]
    Corrupt { key: String, message: String },
    #[error(transparent)]
    Key(#[from] vaia_core::IdError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("pending data: {0}")]
    Data(#[from] vaia_data_watcher::WatchError),
}

impl CtError {
    pub fn is_retryable(&self) -> bool {
        match self {
            CtError::Port(p) => p.is_retryable(),
            CtError::Data(d) => d.is_retryable(),
            _ => false,
        }
    }
}

/// The snapshot a job trains on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSnapshot {
    pub path: String,
    pub md5: String,
    pub rows: Option<u64>,
}

/// `vaia.training-job/v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingJob {
    pub schema: String,
    pub id: String,
    pub repository: Repository,
    pub prod_version: semver::Version,
    pub image_digest: vaia_core::ImageDigest,
    pub snapshot: JobSnapshot,
    pub drift: f64,
    pub delta_rows: Option<i64>,
    pub budget: f64,
    pub threshold: f64,
    pub pending_data_volume_bytes: Option<u64>,
    pub reasons: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// One repository's evaluation, as recorded under `ct/<owner>/<repo>/evaluations/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub repository: Repository,
    pub at: DateTime<Utc>,
    pub prod_version: semver::Version,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_snapshot: Option<JobSnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_snapshot: Option<JobSnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_origin: Option<String>,
    #[serde(flatten)]
    pub budget: Budget,
    /// The training job's id when this evaluation queued it (or found it queued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// `queued`, `already queued`, or why none was queued although the budget crossed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_status: Option<String>,
    /// The raw data the data watcher counted that no retrain has consumed, as of this
    /// evaluation (before a job it queued consumed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_data: Option<vaia_data_watcher::Volume>,
}

/// A claimed training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JobClaim {
    state: ClaimState,
    job: TrainingJob,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ClaimState {
    Claimed,
    Queued,
}

pub fn evaluations_prefix(repo: &Repository) -> String {
    format!("ct/{repo}/evaluations/")
}

pub fn latest_evaluation_key(repo: &Repository) -> Result<BlobKey, vaia_core::IdError> {
    BlobKey::new(format!("ct/{repo}/latest.json"))
}

fn job_key(repo: &Repository, id: &str) -> Result<BlobKey, vaia_core::IdError> {
    BlobKey::new(format!("ct/{repo}/jobs/{id}.json"))
}

/// The deduplication id of (repository, prod version, snapshot md5).
pub fn job_id(repo: &Repository, version: &semver::Version, md5: &str) -> String {
    let digest = Sha256::digest(format!("{repo}\n{version}\n{md5}"));
    hex::encode(&digest[..16])
}

pub struct CtBudget {
    blobs: Arc<dyn BlobStore>,
    queue: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
    policy: CtPolicy,
    drift: Arc<dyn DriftSource>,
    /// Reconciles the raw data before each scheduled evaluation, when set.
    data: Option<Arc<vaia_data_watcher::DataWatcher>>,
}

impl CtBudget {
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        queue: Arc<dyn Queue>,
        clock: Arc<dyn Clock>,
        policy: CtPolicy,
        drift: Arc<dyn DriftSource>,
    ) -> Self {
        Self {
            blobs,
            queue,
            clock,
            policy,
            drift,
            data: None,
        }
    }

    /// Runs `watcher`'s reconciliation (a listing of `raw/`, counting the objects whose
    /// notification never came) before each scheduled evaluation of every repository, so
    /// the pending data volume is the truth after one schedule.
    pub fn with_data_watcher(mut self, watcher: Arc<vaia_data_watcher::DataWatcher>) -> Self {
        self.data = Some(watcher);
        self
    }

    /// Repositories with a `prod` alias.
    pub async fn repositories(&self) -> Result<Vec<Repository>, CtError> {
        let suffix = format!("/aliases/{PROD_ALIAS}.json");
        Ok(self
            .blobs
            .list("registry/")
            .await?
            .into_iter()
            .filter_map(|m| {
                let rest = m.key.as_str().strip_prefix("registry/")?;
                let repo = rest.strip_suffix(&suffix)?;
                Repository::new(repo).ok()
            })
            .collect())
    }

    /// One scheduled evaluation: every repository with a `prod` version, after the raw
    /// data's reconciliation ([`Self::with_data_watcher`]). A repository whose records
    /// cannot be read is logged and skipped; the others are evaluated.
    pub async fn evaluate_all(&self) -> Result<Vec<Evaluation>, CtError> {
        if let Some(watcher) = &self.data {
            match watcher.reconcile_all().await {
                Ok(found) => {
                    for (repo, v) in found.iter().filter(|(_, v)| v.objects > 0) {
                        tracing::info!(repository = %repo, objects = v.objects, bytes = v.bytes, "reconciliation found raw data");
                    }
                }
                Err(e) if e.is_retryable() => return Err(e.into()),
                Err(e) => tracing::error!(error = %e, "raw-data reconciliation failed"),
            }
        }
        let mut out = Vec::new();
        for repo in self.repositories().await? {
            match self.evaluate(&repo).await {
                Ok(Some(e)) => out.push(e),
                Ok(None) => {}
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => tracing::error!(repository = %repo, error = %e, "CT evaluation failed"),
            }
        }
        Ok(out)
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        key: &BlobKey,
    ) -> Result<Option<T>, CtError> {
        let Some(bytes) = self.blobs.get(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CtError::Corrupt {
                key: key.to_string(),
                message: e.to_string(),
            })
    }

    /// The newest snapshot of `path` (by creation time, then md5).
    async fn newest_snapshot(
        &self,
        repo: &Repository,
        path: &str,
    ) -> Result<Option<SnapshotRecord>, CtError> {
        let mut newest: Option<SnapshotRecord> = None;
        for meta in self.blobs.list(&snapshots_prefix(repo)).await? {
            let Some(s) = self.read::<SnapshotRecord>(&meta.key).await? else {
                continue;
            };
            if s.path != path {
                continue;
            }
            if newest
                .as_ref()
                .is_none_or(|n| (s.created_at, &s.md5) > (n.created_at, &n.md5))
            {
                newest = Some(s);
            }
        }
        Ok(newest)
    }

    /// Evaluates one repository; `None` when it has nothing in production.
    pub async fn evaluate(&self, repo: &Repository) -> Result<Option<Evaluation>, CtError> {
        let now = self.clock.now();
        let Some(alias) = self
            .read::<AliasRecord>(&alias_key(repo, PROD_ALIAS)?)
            .await?
        else {
            return Ok(None);
        };
        let baseline: Option<CtBaselineRecord> = self.read(&ct_baseline_key(repo)?).await?;
        let base = baseline.and_then(|b| b.dataset);
        let base_path = base
            .as_ref()
            .map(|d| d.path.trim_end_matches(".dvc").to_string());
        let newest = match &base_path {
            Some(p) => self.newest_snapshot(repo, p).await?,
            None => None,
        };
        // The baseline's rows: the manifest's, else its snapshot record's.
        let base_rows = match &base {
            Some(d) if d.rows.is_some() => d.rows,
            Some(d) => {
                let key = vaia_core::dataset::snapshot_key(repo, &d.md5)?;
                self.read::<SnapshotRecord>(&key)
                    .await?
                    .and_then(|s| s.rows)
            }
            None => None,
        };
        let baseline_snapshot = base
            .as_ref()
            .zip(base_path.as_ref())
            .map(|(d, p)| JobSnapshot {
                path: p.clone(),
                md5: d.md5.clone(),
                rows: base_rows,
            });
        let newest_snapshot = match (&newest, &baseline_snapshot) {
            (Some(s), _) => Some(JobSnapshot {
                path: s.path.clone(),
                md5: s.md5.clone(),
                rows: s.rows,
            }),
            (None, b) => b.clone(),
        };
        let delta_rows = match (newest_snapshot.as_ref().and_then(|s| s.rows), base_rows) {
            (Some(n), Some(b)) => Some(n as i64 - b as i64),
            _ => None,
        };
        let (reading, drift_reason) = match self.drift.read(repo).await {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e)),
        };
        let mut budget = ct::budget(
            &self.policy,
            BudgetInput {
                drift: reading.as_ref().map(|r| r.score),
                drift_age_secs: reading
                    .as_ref()
                    .and_then(|r| r.computed_at)
                    .map(|t| (now - t).num_milliseconds() as f64 / 1000.0),
                delta_rows,
            },
        );
        if let Some(e) = &drift_reason {
            budget.reasons.insert(0, format!("drift: {e}"));
        }
        if base.is_none() {
            budget
                .reasons
                .push("data: the CT baseline records no dataset snapshot".into());
        }
        let pending_data = vaia_data_watcher::pending(self.blobs.as_ref(), repo).await?;
        let mut evaluation = Evaluation {
            repository: repo.clone(),
            at: now,
            prod_version: alias.target.version.clone(),
            baseline_snapshot,
            newest_snapshot: newest_snapshot.clone(),
            drift_origin: reading.as_ref().map(|r| r.origin.clone()),
            budget,
            job: None,
            job_status: None,
            pending_data: Some(pending_data),
        };
        if evaluation.budget.outcome == CtOutcome::Retrain {
            match &newest_snapshot {
                None => {
                    evaluation.job_status =
                        Some("not queued: no dataset snapshot to train on".into())
                }
                Some(snapshot) => {
                    let (id, status) = self.queue_job(&alias, &evaluation, snapshot).await?;
                    evaluation.job = Some(id);
                    evaluation.job_status = Some(status);
                }
            }
        }
        self.record(&evaluation).await?;
        Ok(Some(evaluation))
    }

    async fn queue_job(
        &self,
        alias: &AliasRecord,
        evaluation: &Evaluation,
        snapshot: &JobSnapshot,
    ) -> Result<(String, String), CtError> {
        let repo = &evaluation.repository;
        let id = job_id(repo, &alias.target.version, &snapshot.md5);
        let key = job_key(repo, &id)?;
        let job = TrainingJob {
            schema: TRAINING_JOB_SCHEMA.into(),
            id: id.clone(),
            repository: repo.clone(),
            prod_version: alias.target.version.clone(),
            image_digest: alias.target.image_digest.clone(),
            snapshot: snapshot.clone(),
            drift: evaluation.budget.drift.unwrap_or_default(),
            delta_rows: evaluation.budget.delta_rows,
            budget: evaluation.budget.budget.unwrap_or_default(),
            threshold: evaluation.budget.threshold,
            pending_data_volume_bytes: None,
            reasons: evaluation.budget.reasons.clone(),
            created_at: evaluation.at,
        };
        let encode = |claim: &JobClaim| {
            serde_json::to_vec_pretty(claim).map_err(|e| CtError::Corrupt {
                key: key.to_string(),
                message: e.to_string(),
            })
        };
        let claim = JobClaim {
            state: ClaimState::Claimed,
            job,
        };
        let claimed = self.blobs.put_if_absent(&key, &encode(&claim)?).await?;
        let (claim, etag) = if claimed.is_some() {
            let etag = self
                .blobs
                .get_tagged(&key)
                .await?
                .map(|t| (t.etag, t.bytes));
            (claim, etag)
        } else {
            match self.stored_claim(&key).await? {
                Ok(stored) => stored,
                Err(status) => return Ok((id, status)),
            }
        };
        // The job consumes its repository's pending data before it is sent, and records
        // the volume in its claim: a retried send carries the same volume.
        let (claim, etag) = match (claim, etag) {
            (claim, Some((tag, _))) if claim.job.pending_data_volume_bytes.is_none() => {
                let volume = vaia_data_watcher::consume(self.blobs.as_ref(), repo, &id).await?;
                let mut updated = claim;
                updated.job.pending_data_volume_bytes = Some(volume.bytes);
                if self
                    .blobs
                    .put_if_match(&key, &encode(&updated)?, &tag)
                    .await?
                    .is_some()
                {
                    let tag = self
                        .blobs
                        .get_tagged(&key)
                        .await?
                        .map(|t| (t.etag, t.bytes));
                    (updated, tag)
                } else {
                    // Another evaluator recorded the volume (or queued) first: use its.
                    match self.stored_claim(&key).await? {
                        Ok(stored) => stored,
                        Err(status) => return Ok((id, status)),
                    }
                }
            }
            other => other,
        };
        // Claimed by us, or claimed by an evaluator that may have died before sending:
        // send under the job's deduplication id (a copy within the window is one message).
        let body = serde_json::to_string(&claim.job).map_err(|e| CtError::Corrupt {
            key: key.to_string(),
            message: e.to_string(),
        })?;
        self.queue
            .send(
                TRAINING_QUEUE,
                OutgoingMessage {
                    body,
                    dedupe_key: Some(id.clone()),
                    group: Some(repo.to_string()),
                },
            )
            .await?;
        if let Some((etag, _)) = etag {
            let queued = JobClaim {
                state: ClaimState::Queued,
                job: claim.job,
            };
            // Losing this swap means another evaluator marked it first: the same outcome.
            self.blobs
                .put_if_match(&key, &encode(&queued)?, &etag)
                .await?;
        }
        tracing::info!(repository = %repo, job = %id, "training job queued");
        Ok((id, JOB_QUEUED.into()))
    }

    /// The job claim as stored now, with its etag and bytes; `Err(status)` when there is
    /// nothing to send: the claim vanished, or another evaluator queued the job.
    #[allow(clippy::type_complexity)]
    async fn stored_claim(
        &self,
        key: &BlobKey,
    ) -> Result<Result<(JobClaim, Option<(String, Vec<u8>)>), String>, CtError> {
        let Some(t) = self.blobs.get_tagged(key).await? else {
            return Ok(Err(
                "not queued: the job claim vanished; next evaluation".into()
            ));
        };
        let stored: JobClaim = serde_json::from_slice(&t.bytes).map_err(|e| CtError::Corrupt {
            key: key.to_string(),
            message: e.to_string(),
        })?;
        if stored.state == ClaimState::Queued {
            return Ok(Err(JOB_ALREADY_QUEUED.into()));
        }
        Ok(Ok((stored, Some((t.etag, t.bytes)))))
    }

    async fn record(&self, evaluation: &Evaluation) -> Result<(), CtError> {
        let repo = &evaluation.repository;
        let nanos = evaluation.at.timestamp_nanos_opt().unwrap_or_default();
        let key = BlobKey::new(format!("{}{nanos:020}.json", evaluations_prefix(repo)))?;
        let bytes = serde_json::to_vec_pretty(evaluation).map_err(|e| CtError::Corrupt {
            key: key.to_string(),
            message: e.to_string(),
        })?;
        self.blobs.put(&key, &bytes).await?;
        self.blobs
            .put(&latest_evaluation_key(repo)?, &bytes)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
