//! The run state machine: the one transition table and the pure decision function that
//! applies a signal to a run. The orchestrator is the only caller that writes the result.
//!
//! `decide` records what a signal brings (a verdict, a version, an approval), then applies
//! every row of the table whose guard now holds, in order, until none does. Entry actions
//! become [`Effect`]s that the caller sends after the write succeeds.

use crate::ids::GateName;
use crate::messages::{AdvanceMessage, Effect, GateJob, RegistryJob, Signal};
use crate::run::{
    Approval, CtBaseline, EventKind, Failure, GateRecord, GateRetry, RollbackRequest, Run,
    RunEvent, Timestamp,
};
use crate::state::{PipelineState, Stage};
use crate::verdict::Outcome;
use PipelineState::*;

/// A guard: a pure function of the run; `Err` says why the transition may not happen.
pub type Guard = fn(&Run) -> Result<(), String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryAction {
    /// Ask the registry to verify the evidence if it is already there.
    VerifyEvidence,
    /// Fan out the jobs of the stage's gates that have no verdict (or note that the stage
    /// has none): every gate on entering the stage, the retried gate and any whose verdict
    /// never arrived on a retry.
    StartGates(Stage),
    /// Ask the registry for a semantic version and to record the image.
    RegisterArtifact,
    /// Ask the registry to record the CT baseline.
    RecordCtBaseline,
    /// Ask the registry to move the `prod` alias to the candidate.
    Promote,
    /// Ask the registry to move `prod` back to the previous version.
    RestorePrevious,
    /// Nothing to send: the failure is in the run and its log.
    RecordFailure,
}

#[derive(Debug, Clone, Copy)]
pub struct Transition {
    pub from: PipelineState,
    pub to: PipelineState,
    pub guard: Guard,
    /// The guard in words, for docs and `vaia` output.
    pub guard_doc: &'static str,
    pub entry: EntryAction,
}

const fn row(
    from: PipelineState,
    to: PipelineState,
    guard: Guard,
    guard_doc: &'static str,
    entry: EntryAction,
) -> Transition {
    Transition {
        from,
        to,
        guard,
        guard_doc,
        entry,
    }
}

const FAILED_DOC: &str =
    "a gate failed, errored past its retries, evidence was rejected, or the run timed out";
const RETRY_DOC: &str =
    "an operator retries the gate whose error or inconclusive verdict failed the run";

/// How many times an operator may retry the gates of one run.
pub const MAX_GATE_RETRIES: u32 = 5;

/// The transition table. Failure rows come first so that a recorded failure wins.
pub const TABLE: &[Transition] = &[
    row(
        Idle,
        Failed,
        guard_failure,
        FAILED_DOC,
        EntryAction::RecordFailure,
    ),
    row(
        Triggered,
        Failed,
        guard_failure,
        FAILED_DOC,
        EntryAction::RecordFailure,
    ),
    row(
        CiRunning,
        Failed,
        guard_failure,
        FAILED_DOC,
        EntryAction::RecordFailure,
    ),
    row(
        Build,
        Failed,
        guard_failure,
        FAILED_DOC,
        EntryAction::RecordFailure,
    ),
    row(
        StagingEval,
        Failed,
        guard_failure,
        FAILED_DOC,
        EntryAction::RecordFailure,
    ),
    row(
        CtQueued,
        Failed,
        guard_failure,
        FAILED_DOC,
        EntryAction::RecordFailure,
    ),
    row(
        Idle,
        Triggered,
        guard_trigger,
        "an accepted trigger with a commit SHA",
        EntryAction::VerifyEvidence,
    ),
    row(
        Triggered,
        CiRunning,
        guard_evidence,
        "evidence for the commit is complete (manifest present, hashes match)",
        EntryAction::StartGates(Stage::Ci),
    ),
    row(
        CiRunning,
        Build,
        guard_ci_passed,
        "every CI gate in the policy has a verdict and all passed",
        EntryAction::RegisterArtifact,
    ),
    row(
        Build,
        StagingEval,
        guard_registered,
        "the artifact is registered: image digest and semantic version",
        EntryAction::StartGates(Stage::Staging),
    ),
    row(
        StagingEval,
        CtQueued,
        guard_staging_passed,
        "every staging gate in the policy passed",
        EntryAction::RecordCtBaseline,
    ),
    row(
        CtQueued,
        Promoted,
        guard_ct_ready,
        "CT readiness recorded and any approval the policy demands",
        EntryAction::Promote,
    ),
    row(
        Promoted,
        Rollback,
        guard_rollback,
        "a firing alert or an operator's rollback",
        EntryAction::RestorePrevious,
    ),
    // FAILED is final but for this: an operator's retry of a gate that could not judge.
    row(
        Failed,
        CiRunning,
        guard_retry_ci,
        RETRY_DOC,
        EntryAction::StartGates(Stage::Ci),
    ),
    row(
        Failed,
        StagingEval,
        guard_retry_staging,
        RETRY_DOC,
        EntryAction::StartGates(Stage::Staging),
    ),
];

fn guard_failure(run: &Run) -> Result<(), String> {
    match &run.failure {
        Some(_) => Ok(()),
        None => Err("no failure recorded".into()),
    }
}

fn guard_trigger(run: &Run) -> Result<(), String> {
    // The commit SHA is validated by construction; the trigger must be one vaia accepts.
    match run.trigger.kind.as_str() {
        "push" | "workflow_run" | "evidence" | "manual" => Ok(()),
        other => Err(format!("trigger kind {other:?} is not accepted")),
    }
}

fn guard_evidence(run: &Run) -> Result<(), String> {
    match &run.candidate.evidence {
        Some(_) => Ok(()),
        None => Err("evidence not verified yet".into()),
    }
}

fn stage_passed(run: &Run, stage: Stage) -> Result<(), String> {
    let mut waiting = Vec::new();
    for (gate, record) in run.stage_verdicts(stage) {
        match record {
            None => waiting.push(gate.as_str()),
            Some(r) if r.outcome != Outcome::Pass => {
                return Err(format!("gate {gate} did not pass ({})", r.outcome.as_str()))
            }
            Some(_) => {}
        }
    }
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(format!("waiting for {stage} gates: {}", waiting.join(", ")))
    }
}

fn guard_ci_passed(run: &Run) -> Result<(), String> {
    stage_passed(run, Stage::Ci)
}

fn guard_staging_passed(run: &Run) -> Result<(), String> {
    stage_passed(run, Stage::Staging)
}

fn guard_registered(run: &Run) -> Result<(), String> {
    match (&run.candidate.version, &run.candidate.image_digest) {
        (Some(_), Some(_)) => Ok(()),
        (None, _) => Err("no semantic version assigned yet".into()),
        (_, None) => Err("no image digest recorded".into()),
    }
}

fn guard_ct_ready(run: &Run) -> Result<(), String> {
    if run.ct.is_none() {
        return Err("CT readiness not recorded yet".into());
    }
    if run.policy.promotion.require_approval && run.approval.is_none() {
        return Err("the policy requires an approval".into());
    }
    Ok(())
}

fn guard_rollback(run: &Run) -> Result<(), String> {
    match &run.rollback {
        Some(_) => Ok(()),
        None => Err("no rollback requested".into()),
    }
}

/// A retry was asked (recording it cleared the failure) for a gate of `stage`.
fn guard_retry(run: &Run, stage: Stage) -> Result<(), String> {
    if run.failure.is_some() {
        return Err("no retry asked since the run failed".into());
    }
    match &run.retry {
        Some(r) if r.stage == stage => Ok(()),
        Some(r) => Err(format!("the retried gate {} is a {} gate", r.gate, r.stage)),
        None => Err("no retry asked".into()),
    }
}

fn guard_retry_ci(run: &Run) -> Result<(), String> {
    guard_retry(run, Stage::Ci)
}

fn guard_retry_staging(run: &Run) -> Result<(), String> {
    guard_retry(run, Stage::Staging)
}

/// The row for `from → to`, if the table has one.
pub fn find(from: PipelineState, to: PipelineState) -> Option<&'static Transition> {
    TABLE.iter().find(|t| t.from == from && t.to == to)
}

/// May the run move from its state to `to` now? `Err` names why not.
pub fn check(run: &Run, to: PipelineState) -> Result<(), String> {
    let row =
        find(run.state, to).ok_or_else(|| format!("no transition from {} to {to}", run.state))?;
    (row.guard)(run)
}

/// A state change the caller should count in its metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub from: PipelineState,
    pub to: PipelineState,
    pub time_in_from: chrono::Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The run to write, with `version` one above the version it was decided from.
    pub run: Run,
    pub events: Vec<RunEvent>,
    pub effects: Vec<Effect>,
    pub changes: Vec<StateChange>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing to write: the message is stale or a duplicate.
    Ignore(String),
    Apply(Box<Applied>),
}

/// What a signal brought, before any transition.
enum Recorded {
    /// Data recorded; `note` is logged, `requested` is the transition asked for, if any.
    Data {
        note: Option<(String, Option<String>)>,
        requested: Option<PipelineState>,
    },
    /// An explicit request that cannot apply in this state.
    Refused {
        to: Option<PipelineState>,
        reason: String,
    },
    Ignore(String),
}

/// Decides what `msg` does to `run`. `cause` identifies the message (its id), so that a
/// redelivery can be recognised in the log; `now` stamps events.
pub fn decide(run: &Run, msg: &AdvanceMessage, cause: &str, now: Timestamp) -> Decision {
    if let Some(expect) = msg.expect {
        if run.state != expect {
            return Decision::Ignore(format!(
                "stale {}: sent for {expect}, run is {}",
                msg.signal.name(),
                run.state
            ));
        }
    }
    let mut next = run.clone();
    let recorded = record(&mut next, &msg.signal, &msg.actor, now);
    let mut log = Log {
        events: Vec::new(),
        cause,
        actor: &msg.actor,
        now,
    };
    let requested = match recorded {
        Recorded::Ignore(reason) => return Decision::Ignore(reason),
        Recorded::Refused { to, reason } => {
            log.push(&mut next, EventKind::Refused, to, reason, None);
            return Decision::Apply(Box::new(finish(
                run,
                next,
                log.events,
                Vec::new(),
                Vec::new(),
                now,
            )));
        }
        Recorded::Data { note, requested } => {
            if let Some((reason, evidence)) = note {
                log.push(&mut next, EventKind::Note, None, reason, evidence);
                // A verdict that travelled in its signal is kept with the event that
                // records it (`gate_job::full_verdicts` reads it there).
                if let (Signal::GateVerdict { full: Some(v), .. }, Some(event)) =
                    (&msg.signal, log.events.last_mut())
                {
                    event.verdict = Some(v.clone());
                }
            }
            requested
        }
    };

    let start = next.state;
    let mut effects = Vec::new();
    let mut changes = Vec::new();
    // Each applied row leaves its `from` state, and the only cycle (FAILED → a stage →
    // FAILED) needs a retry, which one signal records once, so this terminates; the bound
    // is a belt over the braces.
    for _ in 0..TABLE.len() {
        let Some(row) = TABLE
            .iter()
            .find(|t| t.from == next.state && (t.guard)(&next).is_ok())
        else {
            break;
        };
        let reason = describe(row, &next);
        changes.push(StateChange {
            from: row.from,
            to: row.to,
            time_in_from: now - next.state_entered_at,
        });
        next.state = row.to;
        next.state_entered_at = now;
        let evidence = evidence_of(row, &next);
        log.push_from(
            &mut next,
            row.from,
            EventKind::Transition,
            Some(row.to),
            reason,
            evidence,
        );
        if let EntryAction::StartGates(stage) = row.entry {
            if next.policy.gates(stage).is_empty() {
                log.push(
                    &mut next,
                    EventKind::Note,
                    None,
                    format!("{stage} stage has no gates configured in the policy; nothing to run"),
                    None,
                );
            }
        }
        effects.extend(entry_effects(&next, row.entry));
    }

    if let Some(to) = requested {
        if next.state == start && changes.is_empty() {
            let reason = check(&next, to)
                .err()
                .unwrap_or_else(|| "guard did not hold".into());
            log.push(&mut next, EventKind::Refused, Some(to), reason, None);
        }
    }
    if log.events.is_empty() {
        return Decision::Ignore(format!("{} changed nothing", msg.signal.name()));
    }
    Decision::Apply(Box::new(finish(
        run, next, log.events, effects, changes, now,
    )))
}

fn finish(
    before: &Run,
    mut next: Run,
    events: Vec<RunEvent>,
    effects: Vec<Effect>,
    changes: Vec<StateChange>,
    now: Timestamp,
) -> Applied {
    next.version = before.version + 1;
    next.updated_at = now;
    Applied {
        run: next,
        events,
        effects,
        changes,
    }
}

struct Log<'a> {
    events: Vec<RunEvent>,
    cause: &'a str,
    actor: &'a str,
    now: Timestamp,
}

impl Log<'_> {
    /// Appends an event. For a transition, `run.state` is already the new state and
    /// `from` is the state it left; otherwise `from` is the run's current state.
    fn push_from(
        &mut self,
        run: &mut Run,
        from: PipelineState,
        kind: EventKind,
        to: Option<PipelineState>,
        reason: String,
        evidence: Option<String>,
    ) {
        run.events += 1;
        self.events.push(RunEvent {
            run_id: run.id.clone(),
            seq: run.events,
            at: self.now,
            kind,
            from,
            to,
            reason,
            actor: self.actor.to_string(),
            evidence,
            cause: Some(self.cause.to_string()),
            verdict: None,
        });
    }

    fn push(
        &mut self,
        run: &mut Run,
        kind: EventKind,
        to: Option<PipelineState>,
        reason: String,
        evidence: Option<String>,
    ) {
        let from = run.state;
        self.push_from(run, from, kind, to, reason, evidence);
    }
}

/// The effects of entering a state through `entry`, for the run as it now is. Also used
/// to re-send the effects of a transition whose message is redelivered after the write.
pub fn entry_effects(run: &Run, entry: EntryAction) -> Vec<Effect> {
    let registry = |job: RegistryJob| vec![Effect::Registry(job)];
    let id = run.id.clone();
    match entry {
        EntryAction::VerifyEvidence => registry(RegistryJob::VerifyEvidence { run_id: id }),
        EntryAction::StartGates(stage) => run
            .stage_verdicts(stage)
            .into_iter()
            .filter(|(_, record)| record.is_none())
            .map(|(gate, _)| {
                Effect::Gate(GateJob {
                    run_id: id.clone(),
                    repository: run.repository.clone(),
                    commit: run.commit.clone(),
                    gate: gate.clone(),
                    stage,
                    attempt: run.attempt(),
                })
            })
            .collect(),
        EntryAction::RegisterArtifact => registry(RegistryJob::RegisterArtifact { run_id: id }),
        EntryAction::RecordCtBaseline => registry(RegistryJob::RecordCtBaseline { run_id: id }),
        EntryAction::Promote => registry(RegistryJob::Promote { run_id: id }),
        EntryAction::RestorePrevious => registry(RegistryJob::RestorePrevious { run_id: id }),
        EntryAction::RecordFailure => Vec::new(),
    }
}

fn record(run: &mut Run, signal: &Signal, actor: &str, now: Timestamp) -> Recorded {
    let state = run.state;
    let ignore = |what: &str| Recorded::Ignore(format!("{what} while run is {state}"));
    match signal {
        Signal::Trigger => {
            if state != Idle {
                return ignore("trigger");
            }
            Recorded::Data {
                note: None,
                requested: Some(Triggered),
            }
        }
        Signal::EvidenceVerified { evidence } => {
            if state != Triggered || run.candidate.evidence.is_some() {
                return ignore("evidence verified");
            }
            run.candidate.image_digest = Some(evidence.image_digest.clone());
            run.candidate.evidence = Some(evidence.clone());
            Recorded::Data {
                note: None,
                requested: Some(CiRunning),
            }
        }
        Signal::EvidenceRejected { manifest, reason } => {
            if state != Triggered || run.failure.is_some() {
                return ignore("evidence rejected");
            }
            run.failure = Some(Failure {
                gate: None,
                reason: format!("evidence rejected ({manifest}): {reason}"),
                at: now,
            });
            Recorded::Data {
                note: None,
                requested: None,
            }
        }
        Signal::GateVerdict {
            gate,
            stage,
            outcome,
            summary,
            metrics,
            verdict,
            attempt,
            full: _,
        } => {
            if state.stage() != Some(*stage) {
                return ignore(&format!("{stage} verdict of {gate}"));
            }
            if *attempt != run.attempt() {
                return Recorded::Ignore(format!(
                    "verdict of {gate} for attempt {attempt}; the run is at attempt {}",
                    run.attempt()
                ));
            }
            if !run.policy.gates(*stage).contains(gate) {
                return Recorded::Ignore(format!(
                    "gate {gate} is not in the {stage} stage's policy"
                ));
            }
            if run.verdicts.get(gate).is_some_and(|r| r.stage == *stage) {
                return Recorded::Ignore(format!("verdict of {gate} already recorded"));
            }
            run.verdicts.insert(
                gate.clone(),
                GateRecord {
                    stage: *stage,
                    outcome: *outcome,
                    summary: summary.clone(),
                    metrics: metrics.clone(),
                    verdict: verdict.clone(),
                    at: now,
                },
            );
            if *outcome != Outcome::Pass && run.failure.is_none() {
                run.failure = Some(Failure {
                    gate: Some(gate.clone()),
                    reason: format!("gate {gate} {}: {summary}", outcome.as_str()),
                    at: now,
                });
            }
            let note = format!("gate {gate} {}: {summary}", outcome.as_str());
            Recorded::Data {
                note: Some((note, Some(verdict.to_string()))),
                requested: None,
            }
        }
        Signal::ArtifactRegistered {
            version,
            previous_version,
            bump,
            image_digest,
        } => {
            if state != Build || run.candidate.version.is_some() {
                return ignore("artifact registered");
            }
            run.candidate.version = Some(version.clone());
            run.candidate.previous_version = previous_version.clone();
            run.candidate.bump = Some(*bump);
            run.candidate.image_digest = Some(image_digest.clone());
            let after = previous_version
                .as_ref()
                .map(|p| format!("after {p}"))
                .unwrap_or_else(|| "first version".into());
            let note = format!(
                "registered {version} ({} bump, {after}) for {image_digest}",
                bump.as_str()
            );
            Recorded::Data {
                note: Some((note, None)),
                requested: Some(StagingEval),
            }
        }
        Signal::RegistrationFailed { reason } => {
            if state != Build || run.failure.is_some() {
                return ignore("registration failed");
            }
            run.failure = Some(Failure {
                gate: None,
                reason: format!("registry: {reason}"),
                at: now,
            });
            Recorded::Data {
                note: None,
                requested: None,
            }
        }
        Signal::CtBaselineRecorded {
            version,
            dataset,
            record,
        } => {
            if state != CtQueued || run.ct.is_some() {
                return ignore("CT baseline recorded");
            }
            run.ct = Some(CtBaseline {
                version: version.clone(),
                dataset: dataset.clone(),
                record: record.clone(),
                at: now,
            });
            let data = dataset
                .as_ref()
                .map(|d| format!(", dataset {} md5 {}", d.path, d.md5))
                .unwrap_or_else(|| ", no dataset snapshot in the evidence".into());
            let note = format!("CT baseline recorded: version {version}{data}");
            Recorded::Data {
                note: Some((note, Some(record.to_string()))),
                requested: None,
            }
        }
        Signal::Approve => {
            if state != CtQueued {
                return Recorded::Refused {
                    to: Some(Promoted),
                    reason: format!("approval applies to a run in CT_QUEUED; run is {state}"),
                };
            }
            if run.approval.is_some() {
                return Recorded::Ignore("already approved".into());
            }
            run.approval = Some(Approval {
                actor: actor.to_string(),
                at: now,
            });
            Recorded::Data {
                note: Some((format!("promotion approved by {actor}"), None)),
                requested: Some(Promoted),
            }
        }
        Signal::Rollback { reason } => {
            if state != Promoted {
                return Recorded::Refused {
                    to: Some(Rollback),
                    reason: format!("only a PROMOTED run can roll back; run is {state}"),
                };
            }
            run.rollback = Some(RollbackRequest {
                actor: actor.to_string(),
                reason: reason.clone(),
                at: now,
            });
            Recorded::Data {
                note: None,
                requested: Some(Rollback),
            }
        }
        Signal::RetryGate { gate, reason } => {
            let refuse = |reason: String| Recorded::Refused { to: None, reason };
            if state != Failed {
                return refuse(format!(
                    "only a FAILED run can retry a gate; run is {state}"
                ));
            }
            let failure = run.failure.clone().unwrap_or_else(|| Failure {
                gate: None,
                reason: "no failure recorded".into(),
                at: now,
            });
            if failure.gate.as_ref() != Some(gate) {
                return refuse(format!(
                    "gate {gate} did not fail this run: {}",
                    failure.reason
                ));
            }
            let Some(record) = run.verdicts.get(gate) else {
                return refuse(format!("gate {gate} has no verdict to retry"));
            };
            if !matches!(record.outcome, Outcome::Error | Outcome::Inconclusive) {
                return refuse(format!(
                    "gate {gate} {}: a failing verdict is a finding about the candidate, \
                     not a fault of the gate; push a fix instead of retrying",
                    record.outcome.as_str()
                ));
            }
            if run.attempt() >= MAX_GATE_RETRIES {
                return refuse(format!(
                    "the run's gates were retried {MAX_GATE_RETRIES} times, the most a run allows"
                ));
            }
            let stage = record.stage;
            let attempt = run.attempt() + 1;
            run.verdicts.remove(gate);
            run.failure = None;
            run.retry = Some(GateRetry {
                gate: gate.clone(),
                stage,
                attempt,
                actor: actor.to_string(),
                reason: reason.clone(),
                at: now,
            });
            Recorded::Data {
                note: Some((
                    format!(
                        "retry {attempt} of gate {gate} asked by {actor}: {reason} (it failed \
                         the run with: {})",
                        failure.reason
                    ),
                    None,
                )),
                requested: Some(stage.state()),
            }
        }
        Signal::Timeout => {
            if !state.is_in_flight() || now < run.deadline() || run.failure.is_some() {
                return ignore("timeout");
            }
            run.failure = Some(Failure {
                gate: None,
                reason: format!(
                    "timed out in {state}: not finished within {}s of its creation",
                    run.policy.run.timeout_secs
                ),
                at: now,
            });
            Recorded::Data {
                note: None,
                requested: None,
            }
        }
    }
}

/// The reason logged for a transition, in words a user can act on.
fn describe(row: &Transition, run: &Run) -> String {
    match (row.from, row.to) {
        (_, Failed) => run
            .failure
            .as_ref()
            .map(|f| f.reason.clone())
            .unwrap_or_default(),
        (Idle, Triggered) => {
            let t = &run.trigger;
            let mut s = format!("{} trigger for {}", t.kind, run.commit.short());
            if let Some(b) = &run.branch {
                s.push_str(&format!(" on {b}"));
            }
            if let Some(a) = &t.actor {
                s.push_str(&format!(" by {a}"));
            }
            if let Some(d) = &t.delivery {
                s.push_str(&format!(" (delivery {d})"));
            }
            s
        }
        (Triggered, CiRunning) => match &run.candidate.evidence {
            Some(e) => format!(
                "evidence verified: the manifest's {} file{} all match, image {}",
                e.files.len(),
                if e.files.len() == 1 { "" } else { "s" },
                e.image_digest
            ),
            None => row.guard_doc.into(),
        },
        (CiRunning, Build) | (StagingEval, CtQueued) => {
            let stage = row.from.stage().unwrap_or(Stage::Ci);
            let gates: Vec<&str> = run
                .policy
                .gates(stage)
                .iter()
                .map(GateName::as_str)
                .collect();
            if gates.is_empty() {
                format!("no {stage} gates configured")
            } else {
                format!("all {stage} gates passed: {}", gates.join(", "))
            }
        }
        (Build, StagingEval) => format!(
            "artifact registered as {}",
            run.candidate
                .version
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
        (CtQueued, Promoted) => match &run.approval {
            Some(_) => "CT baseline recorded; promotion approved".into(),
            None => "CT baseline recorded; no approval required by the policy".into(),
        },
        (Promoted, Rollback) => run
            .rollback
            .as_ref()
            .map(|r| r.reason.clone())
            .unwrap_or_default(),
        (Failed, _) => match &run.retry {
            Some(r) => format!(
                "retry {} of gate {}, asked by {}: {}",
                r.attempt, r.gate, r.actor, r.reason
            ),
            None => row.guard_doc.into(),
        },
        _ => row.guard_doc.into(),
    }
}

fn evidence_of(row: &Transition, run: &Run) -> Option<String> {
    match row.to {
        CiRunning => run
            .candidate
            .evidence
            .as_ref()
            .map(|e| e.manifest.to_string()),
        CtQueued | Promoted => run.ct.as_ref().map(|c| c.record.to_string()),
        Failed => run
            .failure
            .as_ref()
            .and_then(|f| f.gate.as_ref())
            .and_then(|g| run.verdicts.get(g))
            .map(|r| r.verdict.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{BlobKey, CommitSha, ImageDigest, Repository};
    use crate::policy::Policy;
    use crate::run::{EvidenceRecord, Trigger};
    use crate::version::Bump;
    use chrono::TimeZone;
    use semver::Version;

    fn t0() -> Timestamp {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 27, 10, 0, 0)
            .unwrap()
    }

    fn digest() -> ImageDigest {
        ImageDigest::new(format!("sha256:{}", "d".repeat(64))).unwrap()
    }

    fn new_run(policy: Policy) -> Run {
        let trigger = Trigger {
            kind: "push".into(),
            delivery: None,
            actor: Some("octocat".into()),
            at: t0(),
        };
        Run::new(
            Repository::new("octo/agent").unwrap(),
            CommitSha::new("c".repeat(40)).unwrap(),
            Some("main".into()),
            trigger,
            policy,
            t0(),
        )
    }

    fn msg(expect: Option<PipelineState>, signal: Signal) -> AdvanceMessage {
        AdvanceMessage {
            run_id: new_run(Policy::schema_only()).id,
            expect,
            actor: "test".into(),
            signal,
        }
    }

    fn evidence() -> EvidenceRecord {
        EvidenceRecord {
            manifest: BlobKey::new("evidence/octo/agent/x/manifest.json").unwrap(),
            manifest_sha256: "0".repeat(64),
            image_digest: digest(),
            base_digest: None,
            dataset: None,
            files: vec!["tools.json".into()],
        }
    }

    fn verdict(outcome: Outcome) -> Signal {
        Signal::GateVerdict {
            gate: GateName::new("schema").unwrap(),
            stage: Stage::Ci,
            outcome,
            summary: "3 tools, no changes".into(),
            metrics: Default::default(),
            verdict: BlobKey::new("verdicts/r/schema.json").unwrap(),
            attempt: 0,
            full: None,
        }
    }

    fn registered() -> Signal {
        Signal::ArtifactRegistered {
            version: Version::new(0, 1, 0),
            previous_version: None,
            bump: Bump::Patch,
            image_digest: digest(),
        }
    }

    fn ct() -> Signal {
        Signal::CtBaselineRecorded {
            version: Version::new(0, 1, 0),
            dataset: None,
            record: BlobKey::new("ct/octo/agent/baseline.json").unwrap(),
        }
    }

    /// Applies `signal` and returns the new run and the decision's parts.
    fn apply(run: &Run, expect: Option<PipelineState>, signal: Signal) -> Applied {
        match decide(run, &msg(expect, signal), "m-1", t0()) {
            Decision::Apply(a) => *a,
            Decision::Ignore(why) => panic!("ignored: {why}"),
        }
    }

    fn ignored(run: &Run, expect: Option<PipelineState>, signal: Signal) -> String {
        match decide(run, &msg(expect, signal), "m-2", t0()) {
            Decision::Ignore(why) => why,
            Decision::Apply(a) => panic!("applied: {:?}", a.events),
        }
    }

    /// A run driven to `state` along the happy path with the default policy.
    fn run_in(state: PipelineState) -> Run {
        let mut run = new_run(Policy::schema_only());
        let path: Vec<(PipelineState, Signal)> = vec![
            (Idle, Signal::Trigger),
            (
                Triggered,
                Signal::EvidenceVerified {
                    evidence: evidence(),
                },
            ),
            (CiRunning, verdict(Outcome::Pass)),
            (Build, registered()),
            (CtQueued, ct()),
        ];
        for (from, signal) in path {
            if run.state == state {
                break;
            }
            assert_eq!(run.state, from);
            run = apply(&run, Some(from), signal).run;
        }
        assert_eq!(run.state, state, "could not reach {state}");
        run
    }

    #[test]
    fn every_row_guard_holds_when_its_data_is_there_and_not_otherwise() {
        for row in TABLE {
            if row.from == Failed {
                let stage = row.to.stage().expect("a retry returns to a stage");
                let mut run = run_in(CiRunning);
                run.state = Failed;
                run.failure = Some(Failure {
                    gate: None,
                    reason: "x".into(),
                    at: t0(),
                });
                let retry = |stage: Stage| GateRetry {
                    gate: GateName::new("schema").unwrap(),
                    stage,
                    attempt: 1,
                    actor: "op".into(),
                    reason: "judge was down".into(),
                    at: t0(),
                };
                assert!((row.guard)(&run).is_err(), "{row:?} holds with a failure");
                run.retry = Some(retry(stage));
                assert!(
                    (row.guard)(&run).is_err(),
                    "{row:?}: a failure after the retry"
                );
                run.failure = None;
                assert_eq!((row.guard)(&run), Ok(()), "{row:?}");
                let other = if stage == Stage::Ci {
                    Stage::Staging
                } else {
                    Stage::Ci
                };
                run.retry = Some(retry(other));
                assert!(
                    (row.guard)(&run).is_err(),
                    "{row:?}: a retry of the other stage"
                );
                continue;
            }
            let mut run = match row.from {
                Idle | Triggered | CiRunning | Build | CtQueued | Promoted => run_in(row.from),
                StagingEval => {
                    let mut r = run_in(Build);
                    r.state = StagingEval;
                    r
                }
                _ => unreachable!("no rows from terminal states"),
            };
            let before = (row.guard)(&run);
            match row.to {
                Failed => {
                    assert!(before.is_err(), "{row:?} holds without a failure");
                    run.failure = Some(Failure {
                        gate: None,
                        reason: "x".into(),
                        at: t0(),
                    });
                }
                Triggered => {
                    assert!(before.is_ok());
                    run.trigger.kind = "carrier-pigeon".into();
                    assert!((row.guard)(&run).is_err());
                    continue;
                }
                CiRunning => {
                    assert!(before.is_err());
                    run.candidate.evidence = Some(evidence());
                }
                Build => {
                    assert!(before.is_err(), "CI gates not passed yet");
                    run.verdicts.insert(
                        GateName::new("schema").unwrap(),
                        GateRecord {
                            stage: Stage::Ci,
                            outcome: Outcome::Pass,
                            summary: String::new(),
                            metrics: Default::default(),
                            verdict: BlobKey::new("v/x").unwrap(),
                            at: t0(),
                        },
                    );
                }
                StagingEval => {
                    assert!(before.is_err());
                    run.candidate.version = Some(Version::new(1, 0, 0));
                }
                CtQueued => {
                    // No staging gates by default: the guard holds vacuously.
                    assert!(before.is_ok());
                    continue;
                }
                Promoted => {
                    assert!(before.is_err());
                    run.ct = Some(CtBaseline {
                        version: Version::new(1, 0, 0),
                        dataset: None,
                        record: BlobKey::new("ct/x").unwrap(),
                        at: t0(),
                    });
                }
                Rollback => {
                    assert!(before.is_err());
                    run.rollback = Some(RollbackRequest {
                        actor: "op".into(),
                        reason: "alert".into(),
                        at: t0(),
                    });
                }
                other => panic!("unexpected row to {other}"),
            }
            assert_eq!((row.guard)(&run), Ok(()), "{} → {}", row.from, row.to);
        }
    }

    #[test]
    fn table_has_the_design_rows_and_nothing_leaves_a_terminal_state() {
        let happy = [
            Idle,
            Triggered,
            CiRunning,
            Build,
            StagingEval,
            CtQueued,
            Promoted,
        ];
        for pair in happy.windows(2) {
            assert!(
                find(pair[0], pair[1]).is_some(),
                "{} → {}",
                pair[0],
                pair[1]
            );
        }
        assert!(find(Promoted, Rollback).is_some());
        for s in [Idle, Triggered, CiRunning, Build, StagingEval, CtQueued] {
            assert!(find(s, Failed).is_some(), "{s} → FAILED");
        }
        assert!(find(Promoted, Failed).is_none());
        // Nothing leaves a terminal state but an operator's retry of a gate.
        for t in TABLE.iter().filter(|t| t.from.is_terminal()) {
            assert_eq!(t.from, Failed, "{} → {}", t.from, t.to);
            assert!(matches!(t.to, CiRunning | StagingEval) && t.guard_doc == RETRY_DOC);
        }
        assert!(check(&run_in(Idle), Promoted)
            .unwrap_err()
            .contains("no transition"));
    }

    #[test]
    fn happy_path_logs_every_step_and_sends_entry_effects() {
        let run = new_run(Policy::schema_only());
        let a = apply(&run, Some(Idle), Signal::Trigger);
        assert_eq!(a.run.state, Triggered);
        assert_eq!(a.run.version, 1);
        assert!(matches!(
            &a.effects[..],
            [Effect::Registry(RegistryJob::VerifyEvidence { .. })]
        ));
        assert_eq!(a.events[0].kind, EventKind::Transition);
        assert!(
            a.events[0].reason.contains("push trigger"),
            "{}",
            a.events[0].reason
        );

        let a = apply(
            &a.run,
            Some(Triggered),
            Signal::EvidenceVerified {
                evidence: evidence(),
            },
        );
        assert_eq!(a.run.state, CiRunning);
        assert!(matches!(&a.effects[..], [Effect::Gate(g)] if g.gate.as_str() == "schema"));

        let a = apply(&a.run, Some(CiRunning), verdict(Outcome::Pass));
        assert_eq!(a.run.state, Build);
        assert_eq!(a.events[0].kind, EventKind::Note);
        assert!(matches!(
            &a.effects[..],
            [Effect::Registry(RegistryJob::RegisterArtifact { .. })]
        ));

        // Registration moves through STAGING_EVAL (no gates: noted) straight to CT_QUEUED.
        let a = apply(&a.run, Some(Build), registered());
        assert_eq!(a.run.state, CtQueued);
        let reasons: Vec<&str> = a.events.iter().map(|e| e.reason.as_str()).collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("staging stage has no gates")),
            "{reasons:?}"
        );
        assert_eq!(a.changes.len(), 2);
        assert!(matches!(
            &a.effects[..],
            [Effect::Registry(RegistryJob::RecordCtBaseline { .. })]
        ));

        let a = apply(&a.run, Some(CtQueued), ct());
        assert_eq!(a.run.state, Promoted);
        assert!(matches!(
            &a.effects[..],
            [Effect::Registry(RegistryJob::Promote { .. })]
        ));
        let seqs: Vec<u64> = a.events.iter().map(|e| e.seq).collect();
        assert_eq!(*seqs.last().unwrap(), a.run.events);
    }

    #[test]
    fn failing_gate_fails_the_run_with_its_reason() {
        let run = run_in(CiRunning);
        let a = apply(&run, Some(CiRunning), verdict(Outcome::Fail));
        assert_eq!(a.run.state, Failed);
        let last = a.events.last().unwrap();
        assert_eq!(last.to, Some(Failed));
        assert!(last.reason.contains("gate schema fail"), "{}", last.reason);
        assert_eq!(last.evidence.as_deref(), Some("verdicts/r/schema.json"));
        assert!(a.effects.is_empty());
        for o in [Outcome::Error, Outcome::Inconclusive] {
            assert_eq!(apply(&run, Some(CiRunning), verdict(o)).run.state, Failed);
        }
    }

    #[test]
    fn stale_and_duplicate_messages_change_nothing() {
        let run = run_in(CiRunning);
        assert!(ignored(
            &run,
            Some(Triggered),
            Signal::EvidenceVerified {
                evidence: evidence()
            }
        )
        .contains("stale"));
        let mut policy = Policy::schema_only();
        policy.stages.ci.push(GateName::new("other").unwrap());
        let mut two = run_in(CiRunning);
        two.policy = policy;
        let a = apply(&two, Some(CiRunning), verdict(Outcome::Pass));
        assert_eq!(a.run.state, CiRunning, "still waiting for the other gate");
        assert!(
            ignored(&a.run, Some(CiRunning), verdict(Outcome::Pass)).contains("already recorded")
        );
        assert!(ignored(&run_in(Idle), None, registered()).contains("while run is IDLE"));
        assert!(ignored(&run_in(Triggered), None, Signal::Trigger).contains("trigger"));
    }

    #[test]
    fn refused_requests_are_recorded_without_a_state_change() {
        let run = run_in(Build);
        let a = apply(&run, None, Signal::Approve);
        assert_eq!(a.run.state, Build);
        assert_eq!(a.events.len(), 1);
        assert_eq!(a.events[0].kind, EventKind::Refused);
        assert!(
            a.events[0].reason.contains("CT_QUEUED"),
            "{}",
            a.events[0].reason
        );
        assert!(a.run.approval.is_none());

        let a = apply(
            &run_in(CiRunning),
            None,
            Signal::Rollback {
                reason: "alert".into(),
            },
        );
        assert_eq!(a.events[0].kind, EventKind::Refused);
        assert_eq!(a.events[0].to, Some(Rollback));

        // Approval early in CT_QUEUED: recorded, but promotion waits for the CT baseline.
        let mut policy = Policy::schema_only();
        policy.promotion.require_approval = true;
        let mut r = run_in(CtQueued);
        r.policy = policy;
        let a = apply(&r, None, Signal::Approve);
        assert_eq!(a.run.state, CtQueued);
        assert_eq!(a.events.last().unwrap().kind, EventKind::Refused);
        assert!(a.events.last().unwrap().reason.contains("CT readiness"));
        let a = apply(&a.run, Some(CtQueued), ct());
        assert_eq!(a.run.state, Promoted);
        assert!(a.events.last().unwrap().reason.contains("approved"));
    }

    #[test]
    fn approval_required_holds_promotion() {
        let mut r = run_in(CtQueued);
        r.policy.promotion.require_approval = true;
        let a = apply(&r, Some(CtQueued), ct());
        assert_eq!(a.run.state, CtQueued);
        assert_eq!(
            check(&a.run, Promoted).unwrap_err(),
            "the policy requires an approval"
        );
        let a = apply(&a.run, None, Signal::Approve);
        assert_eq!(a.run.state, Promoted);
        assert_eq!(a.run.approval.as_ref().unwrap().actor, "test");
    }

    #[test]
    fn rollback_of_a_promoted_run() {
        let a = apply(
            &run_in(Promoted),
            None,
            Signal::Rollback {
                reason: "alert AgentErrors firing".into(),
            },
        );
        assert_eq!(a.run.state, Rollback);
        assert!(matches!(
            &a.effects[..],
            [Effect::Registry(RegistryJob::RestorePrevious { .. })]
        ));
        assert_eq!(a.events[0].reason, "alert AgentErrors firing");
    }

    #[test]
    fn timeout_fails_only_overdue_in_flight_runs() {
        let run = run_in(Triggered);
        assert!(ignored(&run, None, Signal::Timeout).contains("timeout"));
        let late = t0() + chrono::Duration::seconds(3601);
        let d = decide(&run, &msg(None, Signal::Timeout), "m", late);
        let Decision::Apply(a) = d else {
            panic!("not applied")
        };
        assert_eq!(a.run.state, Failed);
        assert!(a.events[0].reason.contains("timed out in TRIGGERED"));
        assert!(matches!(
            decide(&run_in(Promoted), &msg(None, Signal::Timeout), "m", late),
            Decision::Ignore(_)
        ));
    }

    #[test]
    fn rejected_evidence_fails_the_run() {
        let a = apply(
            &run_in(Triggered),
            Some(Triggered),
            Signal::EvidenceRejected {
                manifest: BlobKey::new("evidence/m.json").unwrap(),
                reason: "tools.json: sha256 mismatch".into(),
            },
        );
        assert_eq!(a.run.state, Failed);
        assert!(a.run.failure.unwrap().reason.contains("sha256 mismatch"));
    }

    #[test]
    fn events_carry_the_cause_for_redelivery_detection() {
        let a = apply(&new_run(Policy::schema_only()), Some(Idle), Signal::Trigger);
        assert!(a.events.iter().all(|e| e.cause.as_deref() == Some("m-1")));
    }

    fn gate_verdict(gate: &str, outcome: Outcome, attempt: u32) -> Signal {
        Signal::GateVerdict {
            gate: GateName::new(gate).unwrap(),
            stage: Stage::Ci,
            outcome,
            summary: format!("{gate} said {}", outcome.as_str()),
            metrics: Default::default(),
            verdict: BlobKey::new(format!("verdicts/r/ci/{gate}.json")).unwrap(),
            attempt,
            full: None,
        }
    }

    fn retry(gate: &str) -> Signal {
        Signal::RetryGate {
            gate: GateName::new(gate).unwrap(),
            reason: "the judge was down".into(),
        }
    }

    /// The default policy's run with its CI gates running: schema, prompt, eval, security,
    /// latency.
    fn ci_run() -> Run {
        let run = new_run(Policy::default());
        let a = apply(&run, Some(Idle), Signal::Trigger);
        let a = apply(
            &a.run,
            Some(Triggered),
            Signal::EvidenceVerified {
                evidence: evidence(),
            },
        );
        assert_eq!(a.run.state, CiRunning);
        assert_eq!(a.effects.len(), 5);
        a.run
    }

    fn gate_jobs(effects: &[Effect]) -> Vec<(String, u32)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Gate(j) => Some((j.gate.to_string(), j.attempt)),
                Effect::Registry(_) => None,
            })
            .collect()
    }

    #[test]
    fn an_errored_gate_is_retried_with_the_gates_that_never_answered() {
        let mut run = ci_run();
        run = apply(
            &run,
            Some(CiRunning),
            gate_verdict("schema", Outcome::Pass, 0),
        )
        .run;
        let failed = apply(
            &run,
            Some(CiRunning),
            gate_verdict("eval", Outcome::Error, 0),
        )
        .run;
        assert_eq!(failed.state, Failed);
        // A verdict arriving once the run failed is dropped (FAILED is no stage).
        ignored(
            &failed,
            Some(CiRunning),
            gate_verdict("prompt", Outcome::Pass, 0),
        );

        let a = apply(&failed, None, retry("eval"));
        assert_eq!(a.run.state, CiRunning);
        assert_eq!(a.run.attempt(), 1);
        assert!(a.run.failure.is_none());
        assert!(!a.run.verdicts.contains_key(&GateName::new("eval").unwrap()));
        assert_eq!(
            a.run.verdicts[&GateName::new("schema").unwrap()].outcome,
            Outcome::Pass,
            "a passed gate keeps its verdict"
        );
        // The retried gate and every gate without a verdict run again, as attempt 1.
        assert_eq!(
            gate_jobs(&a.effects),
            ["prompt", "eval", "security", "latency"].map(|g| (g.to_string(), 1))
        );
        let note = &a.events[0];
        assert_eq!(note.actor, "test");
        assert!(note
            .reason
            .contains("retry 1 of gate eval asked by test: the judge was down"));
        assert!(note.reason.contains("eval said error"), "{}", note.reason);
        assert_eq!(a.events[1].from, Failed);
        assert_eq!(a.events[1].to, Some(CiRunning));
        // The deadline counts from the retry: a retry long after creation is not timed out.
        let mut late = a.run.clone();
        let later = t0() + chrono::Duration::days(2);
        if let Some(r) = late.retry.as_mut() {
            r.at = later;
        }
        let timeout = i64::try_from(late.policy.run.timeout_secs).unwrap();
        assert_eq!(late.deadline(), later + chrono::Duration::seconds(timeout));

        // Verdicts of the first attempt are stale now; the retry's verdicts move it on.
        let why = ignored(
            &a.run,
            Some(CiRunning),
            gate_verdict("eval", Outcome::Pass, 0),
        );
        assert!(why.contains("attempt 0"), "{why}");
        let mut run = a.run;
        for gate in ["prompt", "eval", "security", "latency"] {
            run = apply(&run, Some(CiRunning), gate_verdict(gate, Outcome::Pass, 1)).run;
        }
        assert_eq!(run.state, Build);
        // An error again fails the run again, and it may be retried again.
        let mut again = failed.clone();
        again = apply(&again, None, retry("eval")).run;
        again = apply(
            &again,
            Some(CiRunning),
            gate_verdict("eval", Outcome::Inconclusive, 1),
        )
        .run;
        assert_eq!(again.state, Failed);
        let a = apply(&again, None, retry("eval"));
        assert_eq!(a.run.attempt(), 2);
        assert!(gate_jobs(&a.effects).iter().all(|(_, n)| *n == 2));
    }

    #[test]
    fn a_retry_is_refused_unless_the_gate_errored_and_failed_the_run() {
        let refused = |run: &Run, signal: Signal| -> String {
            let a = apply(run, None, signal);
            assert_eq!(a.run.state, run.state, "a refused retry changes no state");
            assert_eq!(a.run.verdicts, run.verdicts);
            assert!(a.effects.is_empty());
            let e = a.events.last().unwrap();
            assert_eq!(e.kind, EventKind::Refused);
            e.reason.clone()
        };
        let ci = ci_run();
        assert!(refused(&ci, retry("eval")).contains("only a FAILED run"));
        assert!(refused(&run_in(Promoted), retry("schema")).contains("only a FAILED run"));

        let failing = apply(&ci, Some(CiRunning), gate_verdict("eval", Outcome::Fail, 0)).run;
        assert!(refused(&failing, retry("eval")).contains("a failing verdict is a finding"));

        let errored = apply(
            &ci,
            Some(CiRunning),
            gate_verdict("eval", Outcome::Error, 0),
        )
        .run;
        assert!(refused(&errored, retry("schema")).contains("gate schema did not fail this run"));

        let mut timed_out = ci.clone();
        timed_out.state = Failed;
        timed_out.failure = Some(Failure {
            gate: None,
            reason: "timed out in CI_RUNNING".into(),
            at: t0(),
        });
        assert!(refused(&timed_out, retry("eval")).contains("timed out"));

        let mut run = errored;
        for attempt in 1..=MAX_GATE_RETRIES {
            run = apply(&run, None, retry("eval")).run;
            run = apply(
                &run,
                Some(CiRunning),
                gate_verdict("eval", Outcome::Error, attempt),
            )
            .run;
            assert_eq!(run.state, Failed);
        }
        assert!(refused(&run, retry("eval")).contains("the most a run allows"));
    }
}
