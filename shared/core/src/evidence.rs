//! The evidence manifest: the versioned contract between an agent repository's CI and vaia.
//! `evidence/<owner>/<repo>/<sha>/manifest.json` is uploaded last and lists every file of
//! the bundle with its sha256; or the whole bundle is one object,
//! `evidence/<owner>/<repo>/<sha>/bundle.tar` ([`archive`]); see `docs/architecture.md`.

pub mod archive;

use crate::ids::{CommitSha, ImageDigest, Repository};
use serde::{Deserialize, Serialize};

pub const MANIFEST_SCHEMA_V1: &str = "vaia.evidence/v1";
pub const MANIFEST_FILE: &str = "manifest.json";
/// The bundle as one object: a tar of the manifest and its files ([`archive`]).
pub const ARCHIVE_FILE: &str = "bundle.tar";
/// The evidence files whose arrival seals a bundle and asks the registry to verify it:
/// the manifest of the per-file form and the archive.
pub const SEALING_FILES: [&str; 2] = [MANIFEST_FILE, ARCHIVE_FILE];

/// Largest file of a bundle (the upload API's limit, and what a manifest may list).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest bundle: all files of one commit together.
pub const MAX_BUNDLE_BYTES: u64 = 256 * 1024 * 1024;
/// Largest manifest read: a manifest lists files by name and hash, a few hundred bytes each.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: String,
    pub repository: Repository,
    pub commit: CommitSha,
    pub image: ImageRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetSnapshot>,
    pub files: Vec<ManifestFile>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    pub digest: ImageDigest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_digest: Option<ImageDigest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSnapshot {
    pub path: String,
    pub md5: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {path}: {message}")]
pub struct ManifestError {
    pub origin: String,
    /// JSON path of the offending value, `$` for the document.
    pub path: String,
    pub message: String,
}

impl Manifest {
    /// Parses and validates a manifest; errors name `origin` (the blob key or file) and
    /// the JSON path of the offending value.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self, ManifestError> {
        let fail = |path: String, message: String| ManifestError {
            origin: origin.to_string(),
            path,
            message,
        };
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            fail(
                "$".into(),
                format!("not JSON (line {}, column {}): {e}", e.line(), e.column()),
            )
        })?;
        let manifest: Manifest = serde_json::from_value(value.clone())
            .map_err(|e| fail(locate_serde_error(&value, &e.to_string()), e.to_string()))?;
        if manifest.schema != MANIFEST_SCHEMA_V1 {
            return Err(fail(
                "$.schema".into(),
                format!(
                    "unsupported schema {:?} (expected {MANIFEST_SCHEMA_V1:?})",
                    manifest.schema
                ),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        let mut total: u64 = 0;
        for (i, f) in manifest.files.iter().enumerate() {
            let at = format!("$.files[{i}]");
            if f.bytes > MAX_FILE_BYTES {
                return Err(fail(
                    format!("{at}.bytes"),
                    format!(
                        "{} is {} bytes, over the limit of {MAX_FILE_BYTES} bytes per evidence file",
                        f.name, f.bytes
                    ),
                ));
            }
            total = total.saturating_add(f.bytes);
            if total > MAX_BUNDLE_BYTES {
                return Err(fail(
                    format!("{at}.bytes"),
                    format!(
                        "the files listed up to {} hold {total} bytes, over the limit of \
                         {MAX_BUNDLE_BYTES} bytes per evidence bundle",
                        f.name
                    ),
                ));
            }
            // Dot files are allowed (`.trivyignore` is evidence), `.` and `..` are not.
            let name_ok = !f.name.is_empty()
                && !SEALING_FILES.contains(&f.name.as_str())
                && f.name.len() <= 128
                && !f.name.trim_start_matches('.').is_empty()
                && f.name != ".."
                && f.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !name_ok {
                return Err(fail(
                    format!("{at}.name"),
                    format!("file name {:?} must be a plain file name of at most 128 letters, digits, - _ . (not . or ..), not {MANIFEST_FILE} or {ARCHIVE_FILE}", f.name),
                ));
            }
            if !names.insert(f.name.as_str()) {
                return Err(fail(
                    format!("{at}.name"),
                    format!("file {:?} is listed twice", f.name),
                ));
            }
            if f.sha256.len() != 64
                || !f
                    .sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(fail(
                    format!("{at}.sha256"),
                    "expected 64 lowercase hex characters".into(),
                ));
            }
        }
        Ok(manifest)
    }

    pub fn file(&self, name: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// How a stored file differs from its manifest entry (see [`ManifestFile::read`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMismatch {
    Missing,
    /// Larger than the manifest says: not read whole.
    Larger {
        size: Option<u64>,
    },
    Different {
        sha256: String,
        bytes: u64,
    },
}

impl ManifestFile {
    /// Reads the file stored at `key` and checks it is the one this entry lists: at most
    /// `self.bytes + 1` bytes are read, so a file swapped for a larger one costs no more
    /// memory than the manifest declared (itself bounded by [`MAX_FILE_BYTES`]). The one
    /// place that compares stored evidence with its manifest: the registry at verification
    /// and every gate reading verified evidence.
    pub async fn read(
        &self,
        blobs: &dyn crate::ports::BlobStore,
        key: &crate::ids::BlobKey,
    ) -> crate::ports::PortResult<Result<Vec<u8>, FileMismatch>> {
        use crate::ports::Bounded;
        let bytes = match blobs.get_at_most(key, self.bytes).await? {
            None => return Ok(Err(FileMismatch::Missing)),
            Some(Bounded::TooLarge { size }) => return Ok(Err(FileMismatch::Larger { size })),
            Some(Bounded::Bytes(b)) => b,
        };
        Ok(self.check(&bytes).map(|()| bytes))
    }

    /// Whether `bytes` are the file this entry lists (its sha256 and size): the one
    /// comparison of evidence with its manifest, for a stored file ([`Self::read`]) and
    /// for a file of an archive alike.
    pub fn check(&self, bytes: &[u8]) -> Result<(), FileMismatch> {
        let sha256 = {
            use sha2::{Digest, Sha256};
            hex::encode(Sha256::digest(bytes))
        };
        if sha256 != self.sha256 || bytes.len() as u64 != self.bytes {
            return Err(FileMismatch::Different {
                sha256,
                bytes: bytes.len() as u64,
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for FileMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileMismatch::Missing => write!(f, "is missing"),
            FileMismatch::Larger { size: Some(n) } => write!(f, "is {n} bytes"),
            FileMismatch::Larger { size: None } => write!(f, "is larger"),
            FileMismatch::Different { sha256, bytes } => {
                write!(f, "has sha256 {sha256}, {bytes} bytes")
            }
        }
    }
}

/// serde_json's errors name a line and column of the re-serialised value, which is useless
/// for a user; find the first key it mentions instead, as a best-effort JSON path.
fn locate_serde_error(value: &serde_json::Value, message: &str) -> String {
    let field = message.split('`').nth(1);
    if let (Some(field), Some(obj)) = (field, value.as_object()) {
        if obj.contains_key(field) {
            return format!("$.{field}");
        }
        for (k, v) in obj {
            if let Some(inner) = v.as_object() {
                if inner.contains_key(field) {
                    return format!("$.{k}.{field}");
                }
            }
        }
    }
    "$".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> serde_json::Value {
        serde_json::json!({
            "schema": "vaia.evidence/v1",
            "repository": "octo/agent",
            "commit": "0123456789abcdef0123456789abcdef01234567",
            "image": {"digest": format!("sha256:{}", "a".repeat(64))},
            "files": [{"name": "tools.json", "sha256": "b".repeat(64), "bytes": 12}],
            "created_at": "2026-11-27T10:00:00Z"
        })
    }

    #[test]
    fn parses_a_valid_manifest() {
        let m = Manifest::parse(sample().to_string().as_bytes(), "m.json").unwrap();
        assert_eq!(m.file("tools.json").unwrap().bytes, 12);
    }

    #[test]
    fn errors_name_the_path() {
        let mut v = sample();
        v["files"][0]["sha256"] = "nope".into();
        let e = Manifest::parse(v.to_string().as_bytes(), "m.json").unwrap_err();
        assert_eq!(e.path, "$.files[0].sha256");
        let mut v = sample();
        v["files"][0]["name"] = "../x".into();
        let e = Manifest::parse(v.to_string().as_bytes(), "m.json").unwrap_err();
        assert_eq!(e.path, "$.files[0].name");
        for sealing in SEALING_FILES {
            let mut v = sample();
            v["files"][0]["name"] = sealing.into();
            let e = Manifest::parse(v.to_string().as_bytes(), "m.json").unwrap_err();
            assert_eq!(e.path, "$.files[0].name", "{sealing}");
        }
        let mut v = sample();
        v["schema"] = "vaia.evidence/v9".into();
        assert_eq!(
            Manifest::parse(v.to_string().as_bytes(), "m")
                .unwrap_err()
                .path,
            "$.schema"
        );
        let mut v = sample();
        v["commit"] = "xyz".into();
        let e = Manifest::parse(v.to_string().as_bytes(), "m").unwrap_err();
        assert!(e.message.contains("commit SHA"), "{e}");
        let e = Manifest::parse(b"{not json", "m.json").unwrap_err();
        assert!(
            e.to_string().starts_with("m.json: $: not JSON (line 1"),
            "{e}"
        );
    }

    #[test]
    fn a_manifest_cannot_list_more_than_the_limits() {
        let mut v = sample();
        v["files"][0]["bytes"] = (MAX_FILE_BYTES + 1).into();
        let e = Manifest::parse(v.to_string().as_bytes(), "m.json").unwrap_err();
        assert_eq!(e.path, "$.files[0].bytes");
        assert!(e.message.contains("per evidence file"), "{e}");
        let mut v = sample();
        v["files"] = (0..5)
            .map(|i| {
                serde_json::json!({"name": format!("f{i}"), "sha256": "b".repeat(64),
                    "bytes": MAX_FILE_BYTES})
            })
            .collect();
        let e = Manifest::parse(v.to_string().as_bytes(), "m.json").unwrap_err();
        assert_eq!(e.path, "$.files[4].bytes", "{e}");
        assert!(e.message.contains("per evidence bundle"), "{e}");
    }

    #[tokio::test]
    async fn a_listed_file_is_read_no_further_than_its_declared_size() {
        use crate::memory::MemoryBlobStore;
        use crate::ports::BlobStore;
        let blobs = MemoryBlobStore::new(None);
        let key = crate::ids::BlobKey::new("evidence/octo/agent/abc/tools.json").unwrap();
        let content = b"[1, 2, 3]\n".to_vec();
        let listed = ManifestFile {
            name: "tools.json".into(),
            sha256: {
                use sha2::{Digest, Sha256};
                hex::encode(Sha256::digest(&content))
            },
            bytes: content.len() as u64,
        };
        assert_eq!(
            listed.read(&blobs, &key).await,
            Ok(Err(FileMismatch::Missing))
        );
        blobs.put(&key, &content).await.unwrap();
        assert_eq!(listed.read(&blobs, &key).await, Ok(Ok(content.clone())));
        blobs.put(&key, b"[1, 2, 4]\n").await.unwrap();
        assert!(matches!(
            listed.read(&blobs, &key).await,
            Ok(Err(FileMismatch::Different { bytes: 10, .. }))
        ));
        blobs.put(&key, &vec![b' '; 1 << 20]).await.unwrap();
        assert_eq!(
            listed.read(&blobs, &key).await,
            Ok(Err(FileMismatch::Larger {
                size: Some(1 << 20)
            }))
        );
    }
}
