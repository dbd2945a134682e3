//! A pipeline run and its append-only event log.

use crate::evidence::DatasetSnapshot;
use crate::ids::{BlobKey, CommitSha, DeliveryId, GateName, ImageDigest, Repository, RunId};
use crate::policy::Policy;
use crate::state::{PipelineState, Stage};
use crate::verdict::Outcome;
use crate::version::Bump;
use chrono::{DateTime, Utc};
use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub type Timestamp = DateTime<Utc>;

/// `t` in nanoseconds since the epoch, saturating outside the ±292 years an i64 holds.
pub fn nanos(t: Timestamp) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub repository: Repository,
    pub commit: CommitSha,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub trigger: Trigger,
    pub state: PipelineState,
    /// Optimistic-concurrency version: every write is conditional on it and bumps it.
    pub version: u64,
    /// The policy in force when the run was created; guards read it from here so that they
    /// stay pure functions of the run.
    pub policy: Policy,
    #[serde(default)]
    pub candidate: Candidate,
    #[serde(default)]
    pub verdicts: BTreeMap<GateName, GateRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ct: Option<CtBaseline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackRequest>,
    /// The latest operator retry of an errored gate; its `attempt` numbers the gate jobs
    /// and verdicts that belong to the run as it now is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<GateRetry>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub state_entered_at: Timestamp,
    /// Number of events in the run's log; the next event gets `events + 1` as its `seq`.
    pub events: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// `push`, `workflow_run`, `evidence` or `manual`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Candidate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<EvidenceRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bump: Option<Bump>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<ImageDigest>,
}

/// What the registry verified of the evidence bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    /// Where the bundle was verified: its `manifest.json`, or its `bundle.tar` when it was
    /// uploaded as one archive ([`crate::evidence::ARCHIVE_FILE`]).
    pub manifest: BlobKey,
    /// The sha256 of the manifest (for an archive, of the manifest inside it).
    pub manifest_sha256: String,
    pub image_digest: ImageDigest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_digest: Option<ImageDigest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetSnapshot>,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    pub stage: Stage,
    pub outcome: Outcome,
    pub summary: String,
    #[serde(default)]
    pub metrics: Map<String, Value>,
    /// The full verdict's key ([`crate::layout::verdict_key`]); the event that recorded
    /// the verdict names it as its evidence. Where the full verdict is:
    /// [`crate::gate_job::full_verdicts`].
    pub verdict: BlobKey,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtBaseline {
    pub version: Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetSnapshot>,
    pub record: BlobKey,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub actor: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateName>,
    pub reason: String,
    pub at: Timestamp,
}

/// An operator's retry of a gate whose verdict was `error` or `inconclusive` (the gate could
/// not judge: a judge or a registry down, a timeout), which failed the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRetry {
    pub gate: GateName,
    pub stage: Stage,
    /// 1 for the first retry of the run, then 2, …; jobs and verdicts of earlier attempts
    /// are stale.
    pub attempt: u32,
    pub actor: String,
    pub reason: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackRequest {
    pub actor: String,
    pub reason: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The state changed.
    Transition,
    /// A transition was asked for and its guard refused it; nothing changed.
    Refused,
    /// Something was recorded without a state change (a verdict, an empty stage).
    Note,
}

/// One entry of a run's append-only log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub run_id: RunId,
    /// 1-based position in the run's log.
    pub seq: u64,
    pub at: Timestamp,
    pub kind: EventKind,
    pub from: PipelineState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<PipelineState>,
    pub reason: String,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// The message or request that caused this event; redeliveries are recognised by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The full verdict this event records, when it travelled in its signal (see
    /// [`crate::gate_job::full_verdicts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Box<crate::verdict::Verdict>>,
}

impl Run {
    /// A new run in IDLE; the orchestrator moves it on.
    pub fn new(
        repository: Repository,
        commit: CommitSha,
        branch: Option<String>,
        trigger: Trigger,
        policy: Policy,
        now: Timestamp,
    ) -> Self {
        Self {
            id: RunId::for_commit(&repository, &commit),
            repository,
            commit,
            branch,
            trigger,
            state: PipelineState::Idle,
            version: 0,
            policy,
            candidate: Candidate::default(),
            verdicts: BTreeMap::new(),
            ct: None,
            approval: None,
            failure: None,
            rollback: None,
            retry: None,
            created_at: now,
            updated_at: now,
            state_entered_at: now,
            events: 0,
        }
    }

    /// When an in-flight run times out.
    /// A retried run has the policy's whole timeout again from its retry.
    pub fn deadline(&self) -> Timestamp {
        let secs = i64::try_from(self.policy.run.timeout_secs).unwrap_or(i64::MAX / 2);
        let since = self
            .retry
            .as_ref()
            .map_or(self.created_at, |r| r.at.max(self.created_at));
        since + chrono::Duration::seconds(secs.min(10 * 365 * 86_400))
    }

    /// The attempt gate jobs and verdicts must carry: 0 until an operator retries a gate.
    pub fn attempt(&self) -> u32 {
        self.retry.as_ref().map_or(0, |r| r.attempt)
    }

    /// Verdicts of `stage`'s configured gates, in policy order; `None` where missing.
    pub fn stage_verdicts(&self, stage: Stage) -> Vec<(&GateName, Option<&GateRecord>)> {
        self.policy
            .gates(stage)
            .iter()
            .map(|g| (g, self.verdicts.get(g).filter(|r| r.stage == stage)))
            .collect()
    }
}
