//! Where vaia keeps what it writes in the blob store, and the shape of the registry's
//! records. One module so that the registry, the gates and the API agree on keys.
//!
//! ```text
//! evidence/<owner>/<repo>/<sha>/<file>          uploaded by the agent's CI
//! verdicts/<run id>/<stage>/<gate>.json          full gate verdicts
//! registry/<owner>/<repo>/versions/<semver>.json  one record per assigned version
//! registry/<owner>/<repo>/aliases/prod.json       the promoted version
//! ct/<owner>/<repo>/baseline.json                 the continuous-training baseline
//! ```

use crate::evidence::DatasetSnapshot;
use crate::ids::{BlobKey, CommitSha, GateName, IdError, ImageDigest, Repository, RunId};
use crate::state::Stage;
use crate::version::Bump;
use chrono::{DateTime, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};

pub fn verdict_key(run: &RunId, stage: Stage, gate: &GateName) -> Result<BlobKey, IdError> {
    BlobKey::new(format!("verdicts/{run}/{stage}/{gate}.json"))
}

pub fn version_key(repo: &Repository, version: &Version) -> Result<BlobKey, IdError> {
    BlobKey::new(format!("registry/{repo}/versions/{version}.json"))
}

pub fn alias_key(repo: &Repository, alias: &str) -> Result<BlobKey, IdError> {
    BlobKey::new(format!("registry/{repo}/aliases/{alias}.json"))
}

pub fn ct_baseline_key(repo: &Repository) -> Result<BlobKey, IdError> {
    BlobKey::new(format!("ct/{repo}/baseline.json"))
}

pub const PROD_ALIAS: &str = "prod";

/// A version the registry assigned to a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: Version,
    pub run_id: RunId,
    pub commit: CommitSha,
    pub image_digest: ImageDigest,
    pub bump: Bump,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Version>,
    pub created_at: DateTime<Utc>,
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
