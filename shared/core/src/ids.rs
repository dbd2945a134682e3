//! Validated identifiers: every string that names something in vaia goes through one of
//! these constructors, so the rest of the code never re-checks shapes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// An identifier that failed validation: which kind, the offending value (truncated), why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub reason: &'static str,
}

fn err(kind: &'static str, value: &str, reason: &'static str) -> IdError {
    let mut value = value.to_string();
    if value.len() > 80 {
        let mut cut = 80;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
        value.push('…');
    }
    IdError {
        kind,
        value,
        reason,
    }
}

macro_rules! string_newtype {
    ($name:ident, $kind:literal, $check:expr) => {
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                let check: fn(&str) -> Result<(), &'static str> = $check;
                check(&value).map_err(|reason| err($kind, &value, reason))?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
    };
}

string_newtype!(RunId, "run id", |s| {
    // "r" followed by 24 lowercase hex characters.
    if s.len() != 25 || !s.starts_with('r') {
        return Err("expected 'r' followed by 24 hex characters");
    }
    if !s[1..]
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err("expected 'r' followed by 24 hex characters");
    }
    Ok(())
});

impl RunId {
    /// The run id of a (repository, commit): one run per commit, whatever triggers it, so
    /// the id is derived rather than drawn and duplicate triggers collide on it.
    pub fn for_commit(repository: &Repository, commit: &CommitSha) -> Self {
        let digest = Sha256::digest(format!("{repository}@{commit}").as_bytes());
        Self(format!("r{}", &hex::encode(digest)[..24]))
    }
}

string_newtype!(Repository, "repository", |s| {
    let Some((owner, name)) = s.split_once('/') else {
        return Err("expected owner/name");
    };
    let ok_owner = !owner.is_empty()
        && owner.len() <= 39
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !owner.starts_with('-');
    if !ok_owner {
        return Err("owner must be 1-39 letters, digits or '-', not starting with '-'");
    }
    let ok_name = !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok_name {
        return Err("name must be 1-100 letters, digits, '-', '_' or '.'");
    }
    Ok(())
});

impl Repository {
    pub fn owner(&self) -> &str {
        self.0.split_once('/').map(|(o, _)| o).unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.0.split_once('/').map(|(_, n)| n).unwrap_or_default()
    }
}

string_newtype!(CommitSha, "commit SHA", |s| {
    if s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err("expected 40 lowercase hex characters")
    }
});

impl CommitSha {
    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

string_newtype!(GateName, "gate name", |s| {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err("expected 1-32 of a-z, 0-9 or '-', starting with a letter")
    }
});

string_newtype!(DeliveryId, "delivery id", |s| {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err("expected 1-128 letters, digits, '-', '_', '.' or ':'")
    }
});

string_newtype!(ImageDigest, "image digest", |s| {
    match s.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(())
        }
        _ => Err("expected sha256: followed by 64 lowercase hex characters"),
    }
});

string_newtype!(ImageName, "image name", |s| {
    // registry host[:port] / repository path, as in `ghcr.io/acme/agent` (no tag, no digest).
    let Some((host, path)) = s.split_once('/') else {
        return Err("expected a registry host and a repository, as in ghcr.io/owner/name");
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && (host.contains('.') || host.contains(':') || host == "localhost")
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    if !host_ok {
        return Err("the registry host must be a DNS name or address, with an optional :port");
    }
    let path_ok = !path.is_empty()
        && path.len() <= 255
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && seg
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric())
        });
    if path_ok {
        Ok(())
    } else {
        Err("the repository must be lowercase path segments of letters, digits, '.', '_' or '-'")
    }
});

impl ImageName {
    /// The registry host (with its port).
    pub fn host(&self) -> &str {
        self.0.split_once('/').map(|(h, _)| h).unwrap_or_default()
    }

    /// The repository inside the registry.
    pub fn repository(&self) -> &str {
        self.0.split_once('/').map(|(_, p)| p).unwrap_or_default()
    }
}

string_newtype!(ImageTag, "image tag", |s| {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("expected 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")
    }
});

impl ImageTag {
    /// The tag of a semantic version: itself, with build metadata's `+` as `_` (tags have no `+`).
    pub fn for_version(version: &semver::Version) -> Result<Self, IdError> {
        Self::new(version.to_string().replace('+', "_"))
    }
}

string_newtype!(BlobKey, "blob key", |s| {
    if s.is_empty() || s.len() > 1024 {
        return Err("must be 1-1024 bytes");
    }
    if s.starts_with('/') || s.ends_with('/') {
        return Err("must not start or end with '/'");
    }
    for seg in s.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err("segments must be non-empty and not '.' or '..'");
        }
        // A file name on every filesystem the local store may use (NAME_MAX).
        if seg.len() > 255 {
            return Err("segments must be at most 255 bytes");
        }
        if !seg.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'+' | b'=')
        }) {
            return Err("segments may hold only letters, digits and - _ . @ + =");
        }
    }
    Ok(())
});

impl BlobKey {
    /// Where the evidence bundle of a commit lives: `evidence/<owner>/<repo>/<sha>/<file>`.
    pub fn evidence(
        repository: &Repository,
        commit: &CommitSha,
        file: &str,
    ) -> Result<Self, IdError> {
        Self::new(format!("evidence/{repository}/{commit}/{file}"))
    }

    /// The (repository, commit, file) of an evidence key, if this is one.
    pub fn parse_evidence(&self) -> Option<(Repository, CommitSha, &str)> {
        let rest = self.0.strip_prefix("evidence/")?;
        let mut parts = rest.splitn(4, '/');
        let owner = parts.next()?;
        let name = parts.next()?;
        let sha = parts.next()?;
        let file = parts.next()?;
        let repo = Repository::new(format!("{owner}/{name}")).ok()?;
        let sha = CommitSha::new(sha).ok()?;
        Some((repo, sha, file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_is_stable_per_commit() {
        let repo = Repository::new("octo/agent").unwrap();
        let sha = CommitSha::new("a".repeat(40)).unwrap();
        let a = RunId::for_commit(&repo, &sha);
        assert_eq!(a, RunId::for_commit(&repo, &sha));
        assert!(RunId::new(a.as_str()).is_ok());
        let other = CommitSha::new("b".repeat(40)).unwrap();
        assert_ne!(a, RunId::for_commit(&repo, &other));
    }

    #[test]
    fn rejects_bad_shapes() {
        assert!(Repository::new("no-slash").is_err());
        assert!(Repository::new("a/..").is_err());
        assert!(Repository::new("-a/b").is_err());
        assert!(CommitSha::new("ABC").is_err());
        assert!(CommitSha::new("A".repeat(40)).is_err());
        assert!(GateName::new("Schema").is_err());
        assert!(GateName::new("schema").is_ok());
        assert!(DeliveryId::new("").is_err());
        assert!(ImageDigest::new("sha256:abc").is_err());
    }

    #[test]
    fn blob_keys_cannot_escape() {
        for bad in [
            "../x",
            "a/../b",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "a\\b",
            "a/b/",
            "",
            "a b",
        ] {
            assert!(BlobKey::new(bad).is_err(), "{bad:?} accepted");
        }
        let key =
            BlobKey::new("evidence/octo/agent/0123456789abcdef0123456789abcdef01234567/tools.json")
                .unwrap();
        let (repo, sha, file) = key.parse_evidence().unwrap();
        assert_eq!(repo.as_str(), "octo/agent");
        assert_eq!(sha.short(), "0123456");
        assert_eq!(file, "tools.json");
    }

    #[test]
    fn error_names_kind_and_value() {
        let e = CommitSha::new("xyz").unwrap_err().to_string();
        assert!(e.contains("commit SHA") && e.contains("xyz"), "{e}");
    }
}
