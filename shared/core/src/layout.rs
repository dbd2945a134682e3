//! Where vaia keeps what it writes in the blob store, and the shape of the registry's
//! records. One module so that the registry, the gates and the API agree on keys.
//!
//! ```text
//! evidence/<owner>/<repo>/<sha>/<file>          uploaded by the agent's CI
//! verdicts/<run id>/<stage>/<gate>.json          full gate verdicts
//! registry/<owner>/<repo>/versions/<semver>.json  one record per assigned version
//! registry/<owner>/<repo>/aliases/prod.json       the promoted version
//! ct/<owner>/<repo>/baseline.json                 the continuous-training baseline
//! raw/<owner>/<repo>/<file>                       raw data landing (a data bucket on AWS)
//! ct/<owner>/<repo>/data/objects/<id>.json        one per raw-data object counted
//! ```

use crate::evidence::DatasetSnapshot;
use crate::ids::{BlobKey, CommitSha, GateName, IdError, ImageDigest, Repository, RunId};
use crate::state::Stage;
use crate::version::Bump;
use chrono::{DateTime, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a gate's full verdict is stored; a retried gate's verdict of attempt n is stored
/// beside the earlier ones (`<gate>.attempt-<n>.json`), which stay for the audit.
pub fn verdict_key(
    run: &RunId,
    stage: Stage,
    gate: &GateName,
    attempt: u32,
) -> Result<BlobKey, IdError> {
    match attempt {
        0 => BlobKey::new(format!("verdicts/{run}/{stage}/{gate}.json")),
        n => BlobKey::new(format!("verdicts/{run}/{stage}/{gate}.attempt-{n}.json")),
    }
}

/// `registry/<owner>/<repo>/versions/`: list it for a repository's versions.
pub fn versions_prefix(repo: &Repository) -> String {
    format!("registry/{repo}/versions/")
}

pub fn version_key(repo: &Repository, version: &Version) -> Result<BlobKey, IdError> {
    BlobKey::new(format!("{}{version}.json", versions_prefix(repo)))
}

/// `registry/<owner>/<repo>/aliases/`: list it for a repository's aliases.
pub fn aliases_prefix(repo: &Repository) -> String {
    format!("registry/{repo}/aliases/")
}

pub fn alias_key(repo: &Repository, alias: &str) -> Result<BlobKey, IdError> {
    BlobKey::new(format!("{}{alias}.json", aliases_prefix(repo)))
}

/// Largest registry record read (versions, aliases, snapshots, baselines: a few KB each;
/// an alias keeps its history).
pub const MAX_RECORD_BYTES: u64 = 1024 * 1024;

pub fn ct_baseline_key(repo: &Repository) -> Result<BlobKey, IdError> {
    BlobKey::new(format!("ct/{repo}/baseline.json"))
}

pub const PROD_ALIAS: &str = "prod";

/// Where raw data lands: `raw/<owner>/<repo>/<file>` (in the data bucket on AWS, in the
/// blob store locally). The data watcher counts what arrives under it.
pub const RAW_DATA_PREFIX: &str = "raw/";

/// `raw/<owner>/<repo>/`: list it for a repository's raw data.
pub fn raw_data_prefix(repo: &Repository) -> String {
    format!("{RAW_DATA_PREFIX}{repo}/")
}

/// `ct/<owner>/<repo>/data/objects/`: the data watcher's record of each raw-data object
/// it counted (once per object; the reconciliation lists it).
pub fn data_objects_prefix(repo: &Repository) -> String {
    format!("ct/{repo}/data/objects/")
}

/// `ct/<owner>/<repo>/data/pending.json`: the data watcher's running total of the pending
/// volume (one read, however much raw data ever landed).
pub fn data_pending_key(repo: &Repository) -> Result<BlobKey, IdError> {
    BlobKey::new(format!("ct/{repo}/data/pending.json"))
}

/// The record of the raw-data object with identity `id` (a hex digest).
pub fn data_object_key(repo: &Repository, id: &str) -> Result<BlobKey, IdError> {
    BlobKey::new(format!("{}{id}.json", data_objects_prefix(repo)))
}

/// A version the registry assigned to a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: Version,
    pub run_id: RunId,
    pub commit: CommitSha,
    pub image_digest: ImageDigest,
    pub bump: Bump,
    /// The version this one was registered after (the repository's newest before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Version>,
    pub created_at: DateTime<Utc>,
    /// Lineage: the dataset snapshot the candidate's evidence names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetSnapshot>,
    /// Lineage: every gate's outcome and metrics (eval score, p95, bump, ...) as the run
    /// recorded them when the version was assigned.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gates: BTreeMap<GateName, GateLineage>,
}

/// A gate's result as a version record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateLineage {
    pub stage: Stage,
    pub outcome: crate::verdict::Outcome,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

impl VersionRecord {
    /// The lineage a run carries: its evidence's dataset snapshot and its gates' results.
    pub fn lineage(
        run: &crate::run::Run,
    ) -> (Option<DatasetSnapshot>, BTreeMap<GateName, GateLineage>) {
        let dataset = run
            .candidate
            .evidence
            .as_ref()
            .and_then(|e| e.dataset.clone());
        let gates = run
            .verdicts
            .iter()
            .map(|(g, r)| {
                (
                    g.clone(),
                    GateLineage {
                        stage: r.stage,
                        outcome: r.outcome,
                        metrics: r.metrics.clone(),
                    },
                )
            })
            .collect();
        (dataset, gates)
    }
}

/// What an alias (`prod`) points at, and what it pointed at before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasRecord {
    pub alias: String,
    pub target: AliasTarget,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AliasTarget>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasTarget {
    pub version: Version,
    pub run_id: RunId,
    pub commit: CommitSha,
    pub image_digest: ImageDigest,
}

/// The continuous-training baseline of a repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtBaselineRecord {
    pub version: Version,
    pub run_id: RunId,
    pub commit: CommitSha,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetSnapshot>,
    pub recorded_at: DateTime<Utc>,
}
