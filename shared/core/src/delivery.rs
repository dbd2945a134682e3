//! Delivery of a promotion to the outside world, as ports: the container registry where the
//! promoted image is tagged with its version and `prod` moves (and moves back on rollback),
//! and the commit statuses that put each gate's verdict and the run's outcome on the commit
//! in GitHub (`vaia/<gate>`, `vaia/run`).
//! Adapters speak the OCI distribution API (`vaia-oci`); the retry policy is here, so that
//! a registry that is down delays the tagging but never changes the run's outcome: the
//! caller records the [`TagOutcome`] in the run's log.

use crate::deadline;
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
    /// Not finished before the delivery deadline ([`crate::deadline`]); not tried again.
    #[error("abandoned at the delivery deadline: {0}")]
    Abandoned(String),
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
/// yet; a tag that still fails is reported, and the next ones are still tried. Nothing runs
/// past the deadline in force ([`crate::deadline`]): a tag it cuts off, or that is not
/// started before it, is [`TagError::Abandoned`].
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
            if !deadline::allows(Duration::ZERO) {
                break Err(TagError::Abandoned("not started".into()));
            }
            attempts += 1;
            let Ok(result) = deadline::run(registry.tag(image, digest, tag)).await else {
                break Err(TagError::Abandoned(format!("attempt {attempts} cut off")));
            };
            match result {
                Err(TagError::Unavailable(e)) if attempts < retry.attempts.max(1) => {
                    if !deadline::allows(wait) {
                        break Err(TagError::Abandoned(format!("{e}; no time left to retry")));
                    }
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

/// A commit status's state, as GitHub names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

/// One commit status: `context` (`vaia/run`, `vaia/<gate>`) in `state`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommitStatus {
    pub state: StatusState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    /// At most 140 characters (GitHub's limit).
    pub description: String,
    pub context: String,
}

/// Why a status was not posted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// Worth retrying (5xx, 429, unreachable), after `retry_after` when the server said so.
    #[error("status API unavailable: {message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Not worth retrying: a bad or under-privileged token, an unknown commit.
    #[error("status API refused: {0}")]
    Refused(String),
    /// Not finished before the delivery deadline ([`crate::deadline`]); not tried again.
    #[error("abandoned at the delivery deadline: {0}")]
    Abandoned(String),
}

/// Where commit statuses go (GitHub's REST API).
#[async_trait::async_trait]
pub trait CommitStatuses: Send + Sync {
    async fn post(
        &self,
        repo: &crate::Repository,
        commit: &crate::CommitSha,
        status: &CommitStatus,
    ) -> Result<(), StatusError>;
}

fn describe(text: &str) -> String {
    if text.chars().count() <= 140 {
        return text.to_string();
    }
    let mut out: String = text.chars().take(139).collect();
    out.push('…');
    out
}

/// Every status the run's current state implies: `vaia/run`, and `vaia/<gate>` for each
/// gate with a verdict (or running in the run's current stage). `run_url` links them.
pub fn statuses_for(run: &crate::run::Run, run_url: Option<&str>) -> Vec<CommitStatus> {
    use crate::PipelineState as S;
    let link = run_url.map(|base| format!("{}/api/runs/{}", base.trim_end_matches('/'), run.id));
    let status = |context: String, state, description: &str| CommitStatus {
        state,
        target_url: link.clone(),
        description: describe(description),
        context,
    };
    let run_state = match run.state {
        S::Promoted => (
            StatusState::Success,
            match &run.candidate.version {
                Some(v) => format!("promoted as {v}"),
                None => "promoted".to_string(),
            },
        ),
        S::Failed => (
            StatusState::Failure,
            run.failure
                .as_ref()
                .map(|f| f.reason.clone())
                .unwrap_or_else(|| "failed".into()),
        ),
        S::Rollback => (
            StatusState::Error,
            run.rollback
                .as_ref()
                .map(|r| format!("rolled back: {}", r.reason))
                .unwrap_or_else(|| "rolled back".into()),
        ),
        other => (StatusState::Pending, format!("{other}")),
    };
    let mut out = vec![status("vaia/run".into(), run_state.0, &run_state.1)];
    for stage in [crate::Stage::Ci, crate::Stage::Staging] {
        for (gate, record) in run.stage_verdicts(stage) {
            let context = format!("vaia/{gate}");
            match record {
                Some(r) => {
                    let state = match r.outcome {
                        crate::Outcome::Pass => StatusState::Success,
                        crate::Outcome::Fail => StatusState::Failure,
                        crate::Outcome::Inconclusive | crate::Outcome::Error => StatusState::Error,
                    };
                    out.push(status(context, state, &r.summary));
                }
                None if run.state.stage() == Some(stage) => {
                    out.push(status(context, StatusState::Pending, "running"));
                }
                None => {}
            }
        }
    }
    out
}

/// The statuses of `after` that differ from those of `before` (what a state change posts).
pub fn changed_statuses(
    before: Option<&crate::run::Run>,
    after: &crate::run::Run,
    run_url: Option<&str>,
) -> Vec<CommitStatus> {
    let old = before.map(|b| statuses_for(b, run_url)).unwrap_or_default();
    statuses_for(after, run_url)
        .into_iter()
        .filter(|s| !old.contains(s))
        .collect()
}

/// Posts `status`, retrying what the API could not take yet (waiting its `Retry-After` when
/// it gave one, else `retry.backoff` doubling). Returns the attempts and the last error.
/// Nothing runs past the deadline in force ([`crate::deadline`]): a post it cuts off, or
/// that is not started before it, is [`StatusError::Abandoned`].
pub async fn post_status(
    sink: &dyn CommitStatuses,
    repo: &crate::Repository,
    commit: &crate::CommitSha,
    status: &CommitStatus,
    retry: Retry,
) -> (u32, Result<(), StatusError>) {
    let mut wait = retry.backoff;
    let mut attempts = 0;
    loop {
        if !deadline::allows(Duration::ZERO) {
            return (attempts, Err(StatusError::Abandoned("not started".into())));
        }
        attempts += 1;
        let Ok(result) = deadline::run(sink.post(repo, commit, status)).await else {
            let cut = format!("attempt {attempts} cut off");
            return (attempts, Err(StatusError::Abandoned(cut)));
        };
        match result {
            Err(StatusError::Unavailable {
                retry_after,
                message,
            }) if attempts < retry.attempts.max(1) => {
                let pause = retry_after.unwrap_or(wait).min(Duration::from_secs(60));
                if !deadline::allows(pause) {
                    let left = format!("{message}; no time left to retry");
                    return (attempts, Err(StatusError::Abandoned(left)));
                }
                tokio::time::sleep(pause).await;
                wait = wait.saturating_mul(2);
            }
            other => return (attempts, other),
        }
    }
}

/// The `source` of every promotion event.
pub const EVENT_SOURCE: &str = "vaia";
/// The detail type of a run that became PROMOTED.
pub const DETAIL_TYPE_PROMOTED: &str = "vaia.run.promoted";
/// The detail type of a run that became FAILED.
pub const DETAIL_TYPE_FAILED: &str = "vaia.run.failed";
/// The detail type of a run that was rolled back (ROLLBACK).
pub const DETAIL_TYPE_ROLLED_BACK: &str = "vaia.run.rolled_back";

/// What continuous delivery acts on: a run that ended PROMOTED or FAILED, or was rolled
/// back. On AWS an EventBridge event (`source` "vaia", `detail-type` [`Self::detail_type`],
/// `detail` this struct); locally the body of a signed webhook.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PromotionEvent {
    /// `vaia.run.promoted`, `vaia.run.failed` or `vaia.run.rolled_back`.
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: &'static str,
    pub detail: PromotionDetail,
}

/// The detail of a [`PromotionEvent`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PromotionDetail {
    pub run_id: crate::RunId,
    pub repository: crate::Repository,
    pub commit: crate::CommitSha,
    pub state: crate::PipelineState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<semver::Version>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<ImageDigest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: crate::run::Timestamp,
}

/// The event of `after`'s state, when it just became PROMOTED, FAILED or ROLLBACK.
pub fn promotion_event(
    before: Option<&crate::run::Run>,
    after: &crate::run::Run,
) -> Option<PromotionEvent> {
    use crate::PipelineState as S;
    if before.is_some_and(|b| b.state == after.state) {
        return None;
    }
    let (detail_type, reason) = match after.state {
        S::Promoted => (DETAIL_TYPE_PROMOTED, None),
        S::Failed => (
            DETAIL_TYPE_FAILED,
            after.failure.as_ref().map(|f| f.reason.clone()),
        ),
        S::Rollback => (
            DETAIL_TYPE_ROLLED_BACK,
            after.rollback.as_ref().map(|r| r.reason.clone()),
        ),
        _ => return None,
    };
    Some(PromotionEvent {
        detail_type: detail_type.to_string(),
        source: EVENT_SOURCE,
        detail: PromotionDetail {
            run_id: after.id.clone(),
            repository: after.repository.clone(),
            commit: after.commit.clone(),
            state: after.state,
            version: after.candidate.version.clone(),
            image_digest: after.candidate.image_digest.clone(),
            reason,
            at: after.state_entered_at,
        },
    })
}

impl PromotionEvent {
    /// The detail as the JSON document both transports carry: EventBridge's `Detail`, and the
    /// `detail` member of the webhook's body (which is the whole event, serialised).
    pub fn detail_json(&self) -> Result<String, StatusError> {
        serde_json::to_string(&self.detail)
            .map_err(|e| StatusError::Refused(format!("promotion event detail: {e}")))
    }
}

/// Where promotion events go (a signed webhook locally, EventBridge on AWS).
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    async fn publish(&self, event: &PromotionEvent) -> Result<(), StatusError>;

    /// The sink, for logs (never a secret): e.g. `webhook https://host/path`.
    fn name(&self) -> String {
        "promotion events".into()
    }
}

/// A registry login that expires: the user name and password to present (ECR's token API
/// answers `AWS` and a token valid for 12 hours), and until when they hold.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryLogin {
    pub username: String,
    pub password: String,
    pub expires_at: crate::run::Timestamp,
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RegistryLogin({}, ***, expires {})",
            self.username, self.expires_at
        )
    }
}

/// Where fresh registry credentials come from (ECR's `GetAuthorizationToken` on AWS).
#[async_trait::async_trait]
pub trait RegistryLogins: Send + Sync {
    /// A login for the registry at `host`.
    async fn login(&self, host: &str) -> Result<RegistryLogin, TagError>;
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

    struct Hung;

    #[async_trait::async_trait]
    impl CommitStatuses for Hung {
        async fn post(
            &self,
            _: &crate::Repository,
            _: &crate::CommitSha,
            _: &CommitStatus,
        ) -> Result<(), StatusError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn deliveries_stop_at_the_deadline() {
        use std::time::Instant;
        let repo = crate::Repository::new("acme/agent").unwrap();
        let sha = crate::CommitSha::new("ab".repeat(20)).unwrap();
        let status = CommitStatus {
            state: StatusState::Success,
            target_url: None,
            description: "d".into(),
            context: "vaia/run".into(),
        };
        let budget = Duration::from_millis(300);
        let start = Instant::now();
        let (attempts, result) = deadline::scope_budget(
            budget,
            post_status(&Hung, &repo, &sha, &status, Retry::default()),
        )
        .await;
        let took = start.elapsed();
        assert!(took >= budget && took < Duration::from_secs(2), "{took:?}");
        assert_eq!(attempts, 1);
        assert!(matches!(result, Err(StatusError::Abandoned(m)) if m.contains("cut off")));
        // A registry that is down is not retried when the backoff outlasts the deadline.
        let (image, digest, tags) = fixtures();
        let down = Flaky {
            failures: u32::MAX,
            calls: AtomicU32::new(0),
            refuse: false,
        };
        let start = Instant::now();
        let out = deadline::scope_budget(
            budget,
            tag_all(&down, &image, &digest, &tags, Retry::default()),
        )
        .await;
        assert!(start.elapsed() < budget, "{:?}", start.elapsed());
        assert_eq!(down.calls.load(Ordering::SeqCst), 2, "one attempt per tag");
        assert!(
            matches!(&out[0].result, Err(TagError::Abandoned(m)) if m.contains("no time left")),
            "{out:?}"
        );
    }

    #[test]
    fn statuses_follow_the_run() {
        use crate::run::{Failure, Run, Trigger};
        let t = chrono::Utc::now();
        let mut run = Run::new(
            crate::Repository::new("acme/agent").unwrap(),
            crate::CommitSha::new("ab".repeat(20)).unwrap(),
            None,
            Trigger {
                kind: "push".into(),
                delivery: None,
                actor: None,
                at: t,
            },
            crate::policy::Policy::schema_only(),
            t,
        );
        let s = statuses_for(&run, Some("https://vaia.example/"));
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].context.as_str(), s[0].state),
            ("vaia/run", StatusState::Pending)
        );
        assert_eq!(
            s[0].target_url.as_deref(),
            Some(format!("https://vaia.example/api/runs/{}", run.id).as_str())
        );
        let before = run.clone();
        run.state = crate::PipelineState::CiRunning;
        let s = changed_statuses(Some(&before), &run, None);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(
            (s[1].context.as_str(), s[1].state),
            ("vaia/schema", StatusState::Pending)
        );
        run.state = crate::PipelineState::Failed;
        run.failure = Some(Failure {
            gate: None,
            reason: "x".repeat(300),
            at: t,
        });
        let s = statuses_for(&run, None);
        assert_eq!(s[0].state, StatusState::Failure);
        assert_eq!(s[0].description.chars().count(), 140);
        assert_eq!(s.len(), 1, "no verdict, no stage running: no gate status");
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
