//! The registry, read: a repository's versions with their lineage, its aliases and its
//! dataset snapshots, from the records the registry function writes
//! ([`vaia_core::layout`], [`vaia_core::dataset`]). Read-only; every route needs the `read`
//! role where tokens are configured.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/registry/{owner}/{repo}/versions` | every version, newest first |
//! | `GET /api/registry/{owner}/{repo}/versions/{version}` | one version record |
//! | `GET /api/registry/{owner}/{repo}/aliases` | every alias (`prod`) with its history |
//! | `GET /api/registry/{owner}/{repo}/snapshots` | dataset snapshots, newest first |
//!
//! A repository with nothing registered is 404, as is an unknown version; a version that
//! is not semver is 400.

use crate::{bad_request, ApiError, ApiState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use vaia_core::dataset::{snapshots_prefix, SnapshotRecord};
use vaia_core::layout::{
    aliases_prefix, version_key, versions_prefix, AliasRecord, VersionRecord, MAX_RECORD_BYTES,
};
use vaia_core::ports::{BlobStore, Bounded};
use vaia_core::{BlobKey, Repository};

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/registry/{owner}/{repo}/versions", get(versions))
        .route(
            "/api/registry/{owner}/{repo}/versions/{version}",
            get(version),
        )
        .route("/api/registry/{owner}/{repo}/aliases", get(aliases))
        .route("/api/registry/{owner}/{repo}/snapshots", get(snapshots))
        .with_state(state)
}

fn repository(owner: &str, repo: &str) -> Result<Repository, ApiError> {
    Repository::new(format!("{owner}/{repo}")).map_err(|e| bad_request(format!("path: {e}")))
}

/// A record vaia wrote (`what`: "registry record", "CT evaluation"); one that is over the
/// size limit or does not parse is a server fault naming the key (keys are not secrets).
const RECORD: &str = "registry record";

pub(crate) async fn read_record<T: DeserializeOwned>(
    blobs: &dyn BlobStore,
    key: &BlobKey,
    what: &str,
) -> Result<Option<T>, ApiError> {
    let bytes = match blobs.get_at_most(key, MAX_RECORD_BYTES).await? {
        None => return Ok(None),
        Some(Bounded::Bytes(b)) => b,
        Some(Bounded::TooLarge { .. }) => {
            return Err(ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{what} {key} is over {MAX_RECORD_BYTES} bytes"),
            ))
        }
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what} {key} is unreadable: {e}"),
        )
    })
}

/// Every record under `prefix` (`.json` keys).
async fn read_all<T: DeserializeOwned>(
    blobs: &dyn BlobStore,
    prefix: &str,
) -> Result<Vec<T>, ApiError> {
    let mut out = Vec::new();
    for meta in blobs.list(prefix).await? {
        if !meta.key.as_str().ends_with(".json") {
            continue;
        }
        // Listed then gone: removed meanwhile, not an error.
        if let Some(record) = read_record(blobs, &meta.key, RECORD).await? {
            out.push(record);
        }
    }
    Ok(out)
}

fn nothing_registered(repo: &Repository) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("nothing is registered for {repo}"),
    )
}

async fn versions(
    State(s): State<ApiState>,
    Path((owner, repo)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let repo = repository(&owner, &repo)?;
    let mut versions: Vec<VersionRecord> = read_all(&*s.blobs, &versions_prefix(&repo)).await?;
    if versions.is_empty() {
        return Err(nothing_registered(&repo));
    }
    versions.sort_by(|a, b| b.version.cmp(&a.version));
    Ok(Json(json!({"repository": repo, "versions": versions})))
}

async fn version(
    State(s): State<ApiState>,
    Path((owner, repo, version)): Path<(String, String, String)>,
) -> Result<Json<VersionRecord>, ApiError> {
    let repo = repository(&owner, &repo)?;
    let parsed = semver::Version::parse(&version)
        .map_err(|e| bad_request(format!("path: version {version:?} is not semver: {e}")))?;
    let key = version_key(&repo, &parsed).map_err(|e| bad_request(format!("path: {e}")))?;
    read_record(&*s.blobs, &key, RECORD)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("{repo} has no version {parsed}"),
            )
        })
}

async fn aliases(
    State(s): State<ApiState>,
    Path((owner, repo)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let repo = repository(&owner, &repo)?;
    let aliases: Vec<AliasRecord> = read_all(&*s.blobs, &aliases_prefix(&repo)).await?;
    if aliases.is_empty() && s.blobs.list(&versions_prefix(&repo)).await?.is_empty() {
        return Err(nothing_registered(&repo));
    }
    Ok(Json(json!({"repository": repo, "aliases": aliases})))
}

async fn snapshots(
    State(s): State<ApiState>,
    Path((owner, repo)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let repo = repository(&owner, &repo)?;
    let mut snapshots: Vec<SnapshotRecord> = read_all(&*s.blobs, &snapshots_prefix(&repo)).await?;
    if snapshots.is_empty() && s.blobs.list(&versions_prefix(&repo)).await?.is_empty() {
        return Err(nothing_registered(&repo));
    }
    snapshots.sort_by(|a, b| (b.created_at, &b.md5).cmp(&(a.created_at, &a.md5)));
    Ok(Json(json!({"repository": repo, "snapshots": snapshots})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vaia_core::dataset::{snapshot_key, SnapshotSource};
    use vaia_core::layout::{alias_key, AliasTarget, GateLineage};
    use vaia_core::memory::{ManualClock, MemoryBlobStore, MemoryQueue, MemoryRunStore};
    use vaia_core::version::Bump;
    use vaia_core::{CommitSha, GateName, ImageDigest, Outcome, RunId, Stage};

    fn record(v: &str, previous: Option<&str>) -> VersionRecord {
        let metrics = json!({"score": 0.91}).as_object().unwrap().clone();
        VersionRecord {
            version: semver::Version::parse(v).unwrap(),
            run_id: RunId::new(format!("r{}", "a".repeat(24))).unwrap(),
            commit: CommitSha::new("c".repeat(40)).unwrap(),
            image_digest: ImageDigest::new(format!("sha256:{}", "d".repeat(64))).unwrap(),
            bump: Bump::Minor,
            previous: previous.map(|p| semver::Version::parse(p).unwrap()),
            created_at: chrono::Utc::now(),
            dataset: None,
            gates: [(
                GateName::new("eval").unwrap(),
                GateLineage {
                    stage: Stage::Ci,
                    outcome: Outcome::Pass,
                    metrics,
                },
            )]
            .into(),
        }
    }

    async fn app() -> (Router, Arc<MemoryBlobStore>) {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let blobs = Arc::new(MemoryBlobStore::new(None));
        let state = ApiState {
            store: Arc::new(MemoryRunStore::new()),
            blobs: blobs.clone(),
            queue: Arc::new(MemoryQueue::new(clock, 5)),
        };
        (router(state), blobs)
    }

    use crate::test_support::get;

    async fn put(blobs: &MemoryBlobStore, key: BlobKey, value: &impl serde::Serialize) {
        blobs
            .put(&key, &serde_json::to_vec(value).unwrap())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn versions_aliases_and_snapshots_of_a_repository() {
        let (app, blobs) = app().await;
        let repo = Repository::new("octo/agent").unwrap();
        // Nothing registered: 404 on every list; a bad repository or version is 400.
        for path in ["versions", "aliases", "snapshots", "versions/0.1.0"] {
            let (status, body) = get(&app, &format!("/api/registry/octo/agent/{path}")).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        }
        let (status, body) = get(&app, "/api/registry/octo/agent/versions/one").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"].as_str().unwrap().contains("not semver"),
            "{body}"
        );
        let (status, _) = get(&app, "/api/registry/octo/a%20b/versions").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // Semver order, not the store's (lexical) order: 0.10.0 is newer than 0.9.0.
        for (v, p) in [("0.9.0", None), ("0.10.0", Some("0.9.0")), ("0.2.0", None)] {
            let r = record(v, p);
            put(&blobs, version_key(&repo, &r.version).unwrap(), &r).await;
        }
        let (status, body) = get(&app, "/api/registry/octo/agent/versions").await;
        assert_eq!(status, StatusCode::OK);
        let order: Vec<&str> = body["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["0.10.0", "0.9.0", "0.2.0"]);
        let (status, body) = get(&app, "/api/registry/octo/agent/versions/0.10.0").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["previous"], "0.9.0");
        assert_eq!(body["gates"]["eval"]["metrics"]["score"], 0.91);
        let (status, _) = get(&app, "/api/registry/octo/agent/versions/0.3.0").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // A repository with versions but no alias or snapshot yet: empty lists.
        let (status, body) = get(&app, "/api/registry/octo/agent/aliases").await;
        assert_eq!(
            (status, body["aliases"].clone()),
            (StatusCode::OK, json!([]))
        );
        let target = |v: &str| AliasTarget {
            version: semver::Version::parse(v).unwrap(),
            run_id: RunId::new(format!("r{}", "a".repeat(24))).unwrap(),
            commit: CommitSha::new("c".repeat(40)).unwrap(),
            image_digest: ImageDigest::new(format!("sha256:{}", "d".repeat(64))).unwrap(),
        };
        let alias = AliasRecord {
            alias: "prod".into(),
            target: target("0.10.0"),
            history: vec![target("0.9.0")],
            updated_at: chrono::Utc::now(),
        };
        put(&blobs, alias_key(&repo, "prod").unwrap(), &alias).await;
        let (_, body) = get(&app, "/api/registry/octo/agent/aliases").await;
        assert_eq!(body["aliases"][0]["target"]["version"], "0.10.0");
        assert_eq!(body["aliases"][0]["history"][0]["version"], "0.9.0");

        let t0 = chrono::Utc::now();
        for (i, md5) in ["aaa", "bbb"].iter().enumerate() {
            let s = SnapshotRecord {
                repository: repo.clone(),
                path: "data/train.csv".into(),
                md5: (*md5).into(),
                size: Some(10),
                nfiles: None,
                rows: if i == 0 { Some(100) } else { None },
                created_at: t0 + chrono::Duration::seconds(i as i64),
                source: SnapshotSource::Upload,
                origin: BlobKey::new("datasets/octo/agent/train.csv.dvc").unwrap(),
            };
            put(&blobs, snapshot_key(&repo, md5).unwrap(), &s).await;
        }
        let (_, body) = get(&app, "/api/registry/octo/agent/snapshots").await;
        assert_eq!(body["snapshots"][0]["md5"], "bbb", "newest first");
        assert!(
            body["snapshots"][0].get("rows").is_none(),
            "unknown rows stay unknown"
        );
        assert_eq!(body["snapshots"][1]["rows"], 100);

        // A corrupt record is a server fault naming the key.
        blobs
            .put(
                &version_key(&repo, &semver::Version::new(0, 11, 0)).unwrap(),
                b"{",
            )
            .await
            .unwrap();
        let (status, body) = get(&app, "/api/registry/octo/agent/versions").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body["error"].as_str().unwrap().contains("0.11.0.json"),
            "{body}"
        );
    }
}
