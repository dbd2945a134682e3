//! Delivery of a promotion to the outside world, as ports: the container registry where the
//! promoted image is tagged with its version and `prod` moves (and moves back on rollback).
//! Adapters speak the OCI distribution API (`vaia-oci`); the retry policy is here, so that
//! a registry that is down delays the tagging but never changes the run's outcome: the
//! caller records the [`TagOutcome`] in the run's log.

use crate::ids::{ImageDigest, ImageName, ImageTag};
use std::time::Duration;

/// Why a registry did not tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// Worth retrying: the registry could not be reached, answered 5xx or 429.
    #[error("registry unavailable: {0}")]
    Unavailable(String),
    /// Not worth retrying: refused credentials, unknown manifest, a bad request.
    #[error("registry refused: {0}")]
    Refused(String),
}

/// A container registry that can point a tag at a manifest it holds.
#[async_trait::async_trait]
pub trait ImageRegistry: Send + Sync {
    /// Points `tag` of `image` at the manifest `digest` (which the registry must hold).
    async fn tag(
        &self,
        image: &ImageName,
        digest: &ImageDigest,
        tag: &ImageTag,
    ) -> Result<(), TagError>;
}

/// How often and how patiently to retry a tagging the registry could not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    /// First wait; doubles after each attempt.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 5,
            backoff: Duration::from_millis(500),
        }
    }
}

/// What became of one tagging, for the run's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagOutcome {
    pub tag: ImageTag,
    pub attempts: u32,
    pub result: Result<(), TagError>,
}

impl TagOutcome {
    /// One line for the run's log: `image:tag → digest` and how it went.
    pub fn describe(&self, image: &ImageName, digest: &ImageDigest) -> String {
        let tries = if self.attempts == 1 {
            String::new()
        } else {
            format!(" after {} attempts", self.attempts)
        };
        match &self.result {
            Ok(()) => format!("image {image}:{} → {digest}{tries}", self.tag),
            Err(e) => format!(
                "image {image}:{} not moved to {digest}{tries}: {e}",
                self.tag
            ),
        }
    }
}

/// Tags `digest` with every tag of `tags` in order, retrying what the registry could not do
/// yet; a tag that still fails is reported, and the next ones are still tried.
pub async fn tag_all(
    registry: &dyn ImageRegistry,
    image: &ImageName,
    digest: &ImageDigest,
    tags: &[ImageTag],
    retry: Retry,
) -> Vec<TagOutcome> {
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        let mut wait = retry.backoff;
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            match registry.tag(image, digest, tag).await {
                Err(TagError::Unavailable(e)) if attempts < retry.attempts.max(1) => {
                    tracing::warn!(%image, %tag, attempt = attempts, error = %e, "registry unavailable; retrying");
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
                other => break other,
            }
        };
        out.push(TagOutcome {
            tag: tag.clone(),
            attempts,
            result,
        });
    }
    out
}

/// The tags a promotion of `version` moves: the version's own, then the alias (`prod`).
pub fn promotion_tags(
    version: &semver::Version,
    alias: &ImageTag,
) -> Result<Vec<ImageTag>, crate::IdError> {
    Ok(vec![ImageTag::for_version(version)?, alias.clone()])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Flaky {
        failures: u32,
        calls: AtomicU32,
        refuse: bool,
    }

    #[async_trait::async_trait]
    impl ImageRegistry for Flaky {
        async fn tag(&self, _: &ImageName, _: &ImageDigest, _: &ImageTag) -> Result<(), TagError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.refuse {
                return Err(TagError::Refused("401".into()));
            }
            if n < self.failures {
                Err(TagError::Unavailable("503".into()))
            } else {
                Ok(())
            }
        }
    }

    fn fixtures() -> (ImageName, ImageDigest, Vec<ImageTag>) {
        (
            ImageName::new("127.0.0.1:5000/acme/agent").unwrap(),
            ImageDigest::new(format!("sha256:{}", "a".repeat(64))).unwrap(),
            promotion_tags(
                &semver::Version::parse("1.2.0+build.7").unwrap(),
                &ImageTag::new("prod").unwrap(),
            )
            .unwrap(),
        )
    }

    const FAST: Retry = Retry {
        attempts: 3,
        backoff: Duration::from_millis(1),
    };

    #[tokio::test]
    async fn unavailable_registries_are_retried_then_reported() {
        let (image, digest, tags) = fixtures();
        assert_eq!(tags[0].as_str(), "1.2.0_build.7");
        let flaky = Flaky {
            failures: 2,
            calls: AtomicU32::new(0),
            refuse: false,
        };
        let out = tag_all(&flaky, &image, &digest, &tags, FAST).await;
        assert_eq!(out[0].attempts, 3);
        assert!(out[0].result.is_ok());
        assert_eq!(out[1].attempts, 1);
        let down = Flaky {
            failures: u32::MAX,
            calls: AtomicU32::new(0),
            refuse: false,
        };
        let out = tag_all(&down, &image, &digest, &tags, FAST).await;
        assert_eq!(out.len(), 2, "the alias is still tried");
        assert_eq!(out[0].attempts, 3);
        assert!(out[0]
            .describe(&image, &digest)
            .contains("not moved to sha256:aaaa"));
    }

    #[tokio::test]
    async fn refusals_are_not_retried() {
        let (image, digest, tags) = fixtures();
        let refusing = Flaky {
            failures: 0,
            calls: AtomicU32::new(0),
            refuse: true,
        };
        let out = tag_all(&refusing, &image, &digest, &tags, FAST).await;
        assert_eq!(out[0].attempts, 1);
        assert_eq!(refusing.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn image_names_and_tags_are_checked() {
        let n = ImageName::new("ghcr.io/acme/support-agent").unwrap();
        assert_eq!(
            (n.host(), n.repository()),
            ("ghcr.io", "acme/support-agent")
        );
        assert!(ImageName::new("acme/agent").is_err(), "no registry host");
        assert!(ImageName::new("ghcr.io/Acme/agent").is_err(), "uppercase");
        assert!(ImageName::new("ghcr.io/acme/agent:1.0").is_err(), "a tag");
        assert!(ImageTag::new("-x").is_err());
        assert!(ImageTag::new("prod").is_ok());
    }
}
