//! The messages that chain the pipeline: queue names and bodies. Every message that can
//! move a run names the state it expects, so a late or duplicated copy is recognised as
//! stale and changes nothing.

use crate::evidence::DatasetSnapshot;
use crate::ids::{BlobKey, CommitSha, GateName, ImageDigest, Repository, RunId};
use crate::run::EvidenceRecord;
use crate::state::{PipelineState, Stage};
use crate::verdict::Outcome;
use crate::version::Bump;
use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Queue names. Gate queues are `gate-<name>`.
pub mod queues {
    pub const ADVANCE: &str = "advance";
    pub const REGISTRY: &str = "registry";
    pub const BLOB_EVENTS: &str = "blob-events";
    /// The data bucket's object-created notifications under `raw/` (the data watcher's).
    pub const RAW_DATA: &str = "raw-data";
    /// Repositories to evaluate now (the CT budget), sent by the registry for each dataset
    /// snapshot a pushed DVC file names.
    pub const CT_EVALUATE: &str = "ct-evaluate";

    pub fn gate(gate: &crate::ids::GateName) -> String {
        format!("gate-{gate}")
    }

    /// The dead-letter queue of `queue`.
    pub fn dead_letter(queue: &str) -> String {
        format!("{queue}-dlq")
    }
}

/// A request to the orchestrator, the only writer of run state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvanceMessage {
    pub run_id: RunId,
    /// The state the sender saw; a message whose expectation no longer holds is stale.
    /// Operator requests carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<PipelineState>,
    /// Who sent it: a function name or an operator.
    pub actor: String,
    pub signal: Signal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Signal {
    /// A trigger was accepted for the run's commit.
    Trigger,
    /// The registry verified the evidence bundle.
    EvidenceVerified { evidence: EvidenceRecord },
    /// The evidence bundle is unusable.
    EvidenceRejected { manifest: BlobKey, reason: String },
    /// A gate finished.
    GateVerdict {
        gate: GateName,
        stage: Stage,
        outcome: Outcome,
        summary: String,
        #[serde(default)]
        metrics: Map<String, Value>,
        /// The verdict's key ([`crate::layout::verdict_key`], numbered by attempt): where
        /// it is stored in the blob store when it is too large to travel here (`full` is
        /// then `None`).
        verdict: BlobKey,
        /// The run's attempt the gate judged for (see [`GateJob::attempt`]).
        #[serde(default, skip_serializing_if = "is_zero")]
        attempt: u32,
        /// The full verdict (findings included), when its JSON is at most
        /// [`crate::gate_job::INLINE_VERDICT_MAX_BYTES`]: the orchestrator keeps it with
        /// the event that records it, and nothing is written to the blob store.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        full: Option<Box<crate::verdict::Verdict>>,
    },
    /// The registry assigned the candidate a version.
    ArtifactRegistered {
        version: Version,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_version: Option<Version>,
        bump: Bump,
        image_digest: ImageDigest,
    },
    /// The registry could not register the artifact.
    RegistrationFailed { reason: String },
    /// The candidate is recorded as the continuous-training baseline.
    CtBaselineRecorded {
        version: Version,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dataset: Option<DatasetSnapshot>,
        record: BlobKey,
    },
    /// An operator approves promotion.
    Approve,
    /// An operator or a firing alert asks to roll back a promoted run.
    Rollback { reason: String },
    /// The sweeper found the run past its deadline.
    Timeout,
    /// An operator asks to run again a gate whose `error` or `inconclusive` verdict failed
    /// the run (a failing verdict is a finding about the candidate and is never retried).
    RetryGate { gate: GateName, reason: String },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Signal {
    pub fn name(&self) -> &'static str {
        match self {
            Signal::Trigger => "trigger",
            Signal::EvidenceVerified { .. } => "evidence_verified",
            Signal::EvidenceRejected { .. } => "evidence_rejected",
            Signal::GateVerdict { .. } => "gate_verdict",
            Signal::ArtifactRegistered { .. } => "artifact_registered",
            Signal::RegistrationFailed { .. } => "registration_failed",
            Signal::CtBaselineRecorded { .. } => "ct_baseline_recorded",
            Signal::Approve => "approve",
            Signal::Rollback { .. } => "rollback",
            Signal::Timeout => "timeout",
            Signal::RetryGate { .. } => "retry_gate",
        }
    }
}

/// Work for a gate function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateJob {
    pub run_id: RunId,
    pub repository: Repository,
    pub commit: CommitSha,
    pub gate: GateName,
    pub stage: Stage,
    /// The run's attempt when the job was sent ([`crate::run::Run::attempt`]): 0, or the
    /// number of the operator's retry. A job of an earlier attempt is stale.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
}

/// A request to evaluate one repository's CT budget now, because a dataset snapshot of it
/// was pushed (the schedule evaluates every repository anyway; this is the sooner one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtEvaluate {
    pub repository: Repository,
    /// The md5 of the snapshot that prompted it.
    pub snapshot_md5: String,
}

impl CtEvaluate {
    /// Sends it to [`queues::CT_EVALUATE`], deduplicated on (repository, snapshot): a
    /// redelivered notification of one push asks once.
    pub async fn send(&self, queue: &dyn crate::ports::Queue) -> crate::ports::PortResult<String> {
        send_json(
            queue,
            queues::CT_EVALUATE,
            self,
            Some(format!(
                "ct-evaluate:{}:{}",
                self.repository, self.snapshot_md5
            )),
            Some(self.repository.to_string()),
        )
        .await
    }
}

/// Work for the registry function, other than object-created events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RegistryJob {
    /// Verify the commit's evidence if its manifest is already there (it may have arrived
    /// before the run was triggered).
    VerifyEvidence { run_id: RunId },
    /// Assign the candidate's semantic version and record its image.
    RegisterArtifact { run_id: RunId },
    /// Record the candidate as the continuous-training baseline.
    RecordCtBaseline { run_id: RunId },
    /// Point the repository's `prod` alias at the run's version.
    Promote { run_id: RunId },
    /// Point `prod` back at the version promoted before this run's.
    RestorePrevious { run_id: RunId },
}

impl RegistryJob {
    pub fn run_id(&self) -> &RunId {
        match self {
            RegistryJob::VerifyEvidence { run_id }
            | RegistryJob::RegisterArtifact { run_id }
            | RegistryJob::RecordCtBaseline { run_id }
            | RegistryJob::Promote { run_id }
            | RegistryJob::RestorePrevious { run_id } => run_id,
        }
    }
}

/// An object-created notification, in the shape vaia needs of S3's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectCreated {
    pub key: BlobKey,
    pub size: u64,
    /// Orders events for one key; a later sequencer means a later write.
    pub sequencer: String,
}

impl ObjectCreated {
    /// Sends this event to `queue` (what S3's notification does, for the stores that stand
    /// in for S3).
    pub async fn notify(
        &self,
        queue: &dyn crate::ports::Queue,
        name: &str,
    ) -> crate::ports::PortResult<()> {
        let body = serde_json::to_string(self)
            .map_err(|e| crate::ports::PortError::Invalid(e.to_string()))?;
        let message = crate::ports::OutgoingMessage {
            body,
            dedupe_key: None,
            group: None,
        };
        queue.send(name, message).await.map(drop)
    }
}

/// Something the orchestrator must send once a transition is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    Gate(GateJob),
    Registry(RegistryJob),
}

impl Effect {
    pub fn queue(&self) -> String {
        match self {
            Effect::Gate(job) => queues::gate(&job.gate),
            Effect::Registry(_) => queues::REGISTRY.to_string(),
        }
    }

    /// A deduplication key: the same effect of the same run is the same message.
    pub fn dedupe_key(&self) -> String {
        match self {
            Effect::Gate(job) => {
                let key = format!("{}:gate:{}:{}", job.run_id, job.gate, job.stage);
                match job.attempt {
                    0 => key,
                    n => format!("{key}:attempt-{n}"),
                }
            }
            Effect::Registry(job) => {
                let kind = serde_json::to_value(job)
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
                    .unwrap_or_default();
                format!("{}:registry:{kind}", job.run_id())
            }
        }
    }
}

/// Serialises `body` as JSON and sends it to `queue`.
pub async fn send_json<T: Serialize + Sync>(
    queue: &dyn crate::ports::Queue,
    name: &str,
    body: &T,
    dedupe_key: Option<String>,
    group: Option<String>,
) -> crate::ports::PortResult<String> {
    let body = serde_json::to_string(body)
        .map_err(|e| crate::ports::PortError::Invalid(format!("cannot encode message: {e}")))?;
    queue
        .send(
            name,
            crate::ports::OutgoingMessage {
                body,
                dedupe_key,
                group,
            },
        )
        .await
}

/// Sends a signal to the orchestrator; `dedupe` names the signal within the run so that a
/// re-sent copy is one message.
pub async fn send_signal(
    queue: &dyn crate::ports::Queue,
    run_id: &RunId,
    expect: Option<PipelineState>,
    actor: &str,
    signal: Signal,
    dedupe: &str,
) -> crate::ports::PortResult<String> {
    let msg = AdvanceMessage {
        run_id: run_id.clone(),
        expect,
        actor: actor.to_string(),
        signal,
    };
    send_json(
        queue,
        queues::ADVANCE,
        &msg,
        Some(format!("{run_id}:{dedupe}")),
        Some(run_id.to_string()),
    )
    .await
}

/// Parses a message body, naming the queue and the message in the error.
pub fn parse_body<T: serde::de::DeserializeOwned>(
    queue: &str,
    message_id: &str,
    body: &str,
) -> Result<T, String> {
    serde_json::from_str(body).map_err(|e| {
        format!(
            "{queue} message {message_id}: bad body (line {}, column {}): {e}",
            e.line(),
            e.column()
        )
    })
}
