//! The run state machine: the one transition table and the pure decision function that
//! applies a signal to a run. The orchestrator is the only caller that writes the result.
//!
//! `decide` records what a signal brings (a verdict, a version, an approval), then applies
//! every row of the table whose guard now holds, in order, until none does. Entry actions
//! become [`Effect`]s that the caller sends after the write succeeds.

use crate::ids::GateName;
use crate::messages::{AdvanceMessage, Effect, GateJob, RegistryJob, Signal};
use crate::run::{
    Approval, CtBaseline, EventKind, Failure, GateRecord, RollbackRequest, Run, RunEvent, Timestamp,
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
    /// Fan out the stage's gate jobs (or note that the stage has none).
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
        "push" | "evidence" | "manual" => Ok(()),
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
            }
            requested
        }
    };

    let start = next.state;
    let mut effects = Vec::new();
    let mut changes = Vec::new();
    // Each applied row leaves its `from` state, and the table has no cycles, so this
    // terminates; the bound is a belt over the braces.
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
            .policy
            .gates(stage)
            .iter()
            .map(|gate| {
                Effect::Gate(GateJob {
                    run_id: id.clone(),
                    repository: run.repository.clone(),
                    commit: run.commit.clone(),
                    gate: gate.clone(),
                    stage,
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
        } => {
            if state.stage() != Some(*stage) {
                return ignore(&format!("{stage} verdict of {gate}"));
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
                "evidence verified: {} files match the manifest, image {}",
                e.files.len(),
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
