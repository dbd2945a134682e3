//! Test fixtures (feature `testing`): the records a promotion and a data pipeline leave in
//! the artifacts store — the `prod` alias, the CT baseline, dataset snapshot records, a
//! drift report — written through the blob port, so that the unit tests here, the Lambda's
//! Runtime API test on moto and the local stack's tests seed one repository the same way.

use chrono::{DateTime, Utc};
use vaia_core::dataset::{snapshot_key, SnapshotRecord, SnapshotSource};
use vaia_core::evidence::DatasetSnapshot;
use vaia_core::layout::{
    alias_key, ct_baseline_key, version_key, AliasRecord, AliasTarget, CtBaselineRecord,
    VersionRecord, PROD_ALIAS,
};
use vaia_core::ports::{BlobStore, PortError};
use vaia_core::{BlobKey, CommitSha, ImageDigest, Repository, RunId};

/// The dataset every seeded repository trains on.
pub const DATASET_PATH: &str = "data/train";

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, PortError> {
    serde_json::to_vec(value).map_err(|e| PortError::Invalid(e.to_string()))
}

fn key(text: String) -> Result<BlobKey, PortError> {
    BlobKey::new(text).map_err(|e| PortError::Invalid(e.to_string()))
}

/// `prod` of `repo` at `version`, promoted with `data/train.dvc` of md5 `base_md5` and
/// `base_rows` rows (its CT baseline), with the version record the registry wrote when it
/// assigned the version (what makes the repository known to the data watcher).
pub async fn promoted(
    blobs: &dyn BlobStore,
    repo: &Repository,
    version: semver::Version,
    base_md5: &str,
    base_rows: Option<u64>,
    at: DateTime<Utc>,
) -> Result<AliasTarget, PortError> {
    let commit = CommitSha::new("c".repeat(40)).map_err(|e| PortError::Invalid(e.to_string()))?;
    let target = AliasTarget {
        version,
        run_id: RunId::for_commit(repo, &commit),
        commit: commit.clone(),
        image_digest: ImageDigest::new(format!("sha256:{}", "d".repeat(64)))
            .map_err(|e| PortError::Invalid(e.to_string()))?,
    };
    let alias = AliasRecord {
        alias: PROD_ALIAS.into(),
        target: target.clone(),
        history: vec![],
        updated_at: at,
    };
    let alias_key = alias_key(repo, PROD_ALIAS).map_err(|e| PortError::Invalid(e.to_string()))?;
    blobs.put(&alias_key, &json(&alias)?).await?;
    let record = VersionRecord {
        version: target.version.clone(),
        run_id: target.run_id.clone(),
        commit: target.commit.clone(),
        image_digest: target.image_digest.clone(),
        bump: vaia_core::version::Bump::Minor,
        previous: None,
        created_at: at,
        dataset: None,
        gates: Default::default(),
    };
    let record_key =
        version_key(repo, &target.version).map_err(|e| PortError::Invalid(e.to_string()))?;
    blobs.put(&record_key, &json(&record)?).await?;
    let baseline = CtBaselineRecord {
        version: target.version.clone(),
        run_id: target.run_id.clone(),
        commit,
        dataset: Some(DatasetSnapshot {
            path: format!("{DATASET_PATH}.dvc"),
            md5: base_md5.into(),
            rows: base_rows,
        }),
        recorded_at: at,
    };
    let baseline_key = ct_baseline_key(repo).map_err(|e| PortError::Invalid(e.to_string()))?;
    blobs.put(&baseline_key, &json(&baseline)?).await?;
    Ok(target)
}

/// A snapshot record of `data/train` with `md5` and `rows`, created at `created_at`.
pub async fn snapshot(
    blobs: &dyn BlobStore,
    repo: &Repository,
    md5: &str,
    rows: Option<u64>,
    created_at: DateTime<Utc>,
) -> Result<(), PortError> {
    let s = SnapshotRecord {
        repository: repo.clone(),
        path: DATASET_PATH.into(),
        md5: md5.into(),
        size: Some(1),
        nfiles: None,
        rows,
        created_at,
        source: SnapshotSource::Upload,
        origin: key(format!("datasets/{repo}/{DATASET_PATH}.dvc"))?,
    };
    let k = snapshot_key(repo, md5).map_err(|e| PortError::Invalid(e.to_string()))?;
    blobs.put(&k, &json(&s)?).await.map(|_| ())
}

/// A plain drift report under `drift/<owner>/<repo>/` ([`crate::drift::report_key`]).
pub async fn drift_report(
    blobs: &dyn BlobStore,
    repo: &Repository,
    score: f64,
    computed_at: DateTime<Utc>,
) -> Result<(), PortError> {
    let k = crate::drift::report_key(repo, computed_at)
        .map_err(|e| PortError::Invalid(e.to_string()))?;
    blobs
        .put(&k, &crate::drift::plain_report(score, computed_at))
        .await
        .map(|_| ())
}
