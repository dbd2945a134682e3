//! Dataset snapshots: what the registry records when a DVC snapshot of a repository's
//! data arrives, and where.
//!
//! ```text
//! datasets/<owner>/<repo>/<path>.dvc | dvc.lock     pushed by a data pipeline after `dvc push`
//! registry/<owner>/<repo>/snapshots/<md5>.json     one record per snapshot (by DVC md5)
//! ```
//!
//! Snapshots arrive in an evidence bundle (the manifest's `dataset`) or as an upload
//! under `datasets/`. `rows` comes from the `.dvc` file's `meta.rows` or the manifest's
//! `dataset.rows`; absent means unknown, never zero.

use crate::ids::{BlobKey, IdError, Repository};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where data pipelines push their DVC files.
pub const DATASETS_PREFIX: &str = "datasets/";

/// How a snapshot reached the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotSource {
    /// The `dataset` of a verified evidence manifest.
    Evidence,
    /// A `.dvc` or `dvc.lock` uploaded under `datasets/<owner>/<repo>/`.
    Upload,
}

/// One dataset snapshot of a repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub repository: Repository,
    /// The data's path in the repository (as DVC names it).
    pub path: String,
    /// DVC's md5 (`.dir` suffix for a directory).
    pub md5: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfiles: Option<u64>,
    /// Unknown when `None`, never zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub source: SnapshotSource,
    /// The blob the snapshot was read from (the `.dvc`, the lock or the manifest).
    pub origin: BlobKey,
}

/// `registry/<owner>/<repo>/snapshots/` — list it for a repository's snapshots.
pub fn snapshots_prefix(repo: &Repository) -> String {
    format!("registry/{repo}/snapshots/")
}

/// The record of the snapshot with DVC md5 `md5` (`.dir` kept: it is part of the name).
pub fn snapshot_key(repo: &Repository, md5: &str) -> Result<BlobKey, IdError> {
    BlobKey::new(format!("{}{md5}.json", snapshots_prefix(repo)))
}

/// The repository of a snapshot record's key (`registry/<owner>/<repo>/snapshots/<md5>.json`,
/// [`snapshot_key`]); `None` for any other key.
pub fn parse_snapshot_key(key: &BlobKey) -> Option<Repository> {
    let rest = key.as_str().strip_prefix("registry/")?;
    let mut parts = rest.splitn(4, '/');
    let (owner, name) = (parts.next()?, parts.next()?);
    let file = parts
        .next()
        .filter(|p| *p == "snapshots")
        .and(parts.next())?;
    if file.contains('/') || !file.ends_with(".json") {
        return None;
    }
    let repo = Repository::new(format!("{owner}/{name}")).ok()?;
    (key.as_str().strip_prefix(&snapshots_prefix(&repo)) == Some(file)).then_some(repo)
}

/// `datasets/<owner>/<repo>/<path>` → the repository and `<path>`.
pub fn parse_dataset_key(key: &BlobKey) -> Option<(Repository, &str)> {
    let rest = key.as_str().strip_prefix(DATASETS_PREFIX)?;
    let mut parts = rest.splitn(3, '/');
    let owner = parts.next()?;
    let name = parts.next()?;
    let path = parts.next().filter(|p| !p.is_empty())?;
    let repo = Repository::new(format!("{owner}/{name}")).ok()?;
    Some((repo, path))
}

/// Where a `.dvc` file's out lives in the repository: beside the `.dvc` file (its
/// directory), under `wdir` when DVC wrote one.
pub fn out_path(dvc_file: &str, wdir: Option<&str>, out: &str) -> String {
    let mut parts: Vec<&str> = dvc_file.split('/').collect();
    parts.pop();
    for seg in wdir
        .unwrap_or(".")
        .split('/')
        .chain(out.split('/'))
        .filter(|s| !s.is_empty() && *s != ".")
    {
        if seg == ".." {
            parts.pop();
        } else {
            parts.push(seg);
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn snapshot_keys_name_their_repository() {
        let repo = Repository::new("octo/agent").unwrap();
        let key = snapshot_key(&repo, &"a".repeat(32)).unwrap();
        assert_eq!(parse_snapshot_key(&key), Some(repo.clone()));
        for other in [
            "registry/octo/agent/versions/1.0.0.json",
            "registry/octo/agent/snapshots/x/y.json",
            "registry/octo/agent/snapshots/a.txt",
            "datasets/octo/agent/snapshots/a.json",
            "registry/octo/snapshots/a.json",
        ] {
            assert_eq!(
                parse_snapshot_key(&BlobKey::new(other).unwrap()),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn dataset_keys() {
        let k = BlobKey::new("datasets/octo/agent/data/train.dvc").unwrap();
        let (repo, path) = parse_dataset_key(&k).unwrap();
        assert_eq!((repo.as_str(), path), ("octo/agent", "data/train.dvc"));
        assert!(parse_dataset_key(&BlobKey::new("datasets/octo/agent").unwrap()).is_none());
        assert!(parse_dataset_key(&BlobKey::new("evidence/octo/agent/x").unwrap()).is_none());
        let repo = Repository::new("octo/agent").unwrap();
        assert_eq!(
            snapshot_key(&repo, "22e3f61e52c0ba45334d973244efc155.dir")
                .unwrap()
                .as_str(),
            "registry/octo/agent/snapshots/22e3f61e52c0ba45334d973244efc155.dir.json"
        );
    }

    #[test]
    fn out_paths_follow_the_dvc_file_and_wdir() {
        assert_eq!(out_path("data/train.dvc", None, "train"), "data/train");
        assert_eq!(out_path("train.dvc", None, "train"), "train");
        assert_eq!(
            out_path(
                "get-started/data.xml.dvc",
                Some(".."),
                "get-started/data.xml"
            ),
            "get-started/data.xml"
        );
        assert_eq!(
            out_path("data/data.xml.dvc", Some("."), "data.xml"),
            "data/data.xml"
        );
    }
}
