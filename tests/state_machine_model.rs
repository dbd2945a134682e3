//! Property test of the orchestrator against a reference model: random interleavings of
//! deliveries, redeliveries and two orchestrators racing on one run. Invariants: no
//! illegal transition, no lost update, the log is a contiguous chain, and every run ends
//! terminal or waiting (no row of the table could still fire).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use vaia_core::ids::{BlobKey, CommitSha, GateName, ImageDigest, Repository};
use vaia_core::machine::{find, MAX_GATE_RETRIES, TABLE};
use vaia_core::memory::{ManualClock, MemoryQueue, MemoryRunStore};
use vaia_core::messages::{AdvanceMessage, Signal};
use vaia_core::policy::Policy;
use vaia_core::ports::{Clock, NoMetrics, RunStore};
use vaia_core::run::{EventKind, EvidenceRecord, Run, Trigger};
use vaia_core::version::Bump;
use vaia_core::{Outcome, PipelineState, Stage};
use vaia_orchestrator::Orchestrator;
use PipelineState::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Sig {
    Trigger,
    Evidence,
    Pass,
    Fail,
    Registered,
    Ct,
    Approve,
    Rollback,
    Timeout,
    /// The schema gate could not judge (an `error` verdict).
    Error,
    /// An operator retries the schema gate.
    Retry,
}

const SIGS: [Sig; 11] = [
    Sig::Trigger,
    Sig::Evidence,
    Sig::Pass,
    Sig::Fail,
    Sig::Registered,
    Sig::Ct,
    Sig::Approve,
    Sig::Rollback,
    Sig::Timeout,
    Sig::Error,
    Sig::Retry,
];

#[derive(Debug, Clone)]
enum Action {
    Deliver(Sig),
    /// Deliver again the message of an earlier step (same id).
    Redeliver(usize),
    /// Two orchestrators handle two messages at once.
    Race(Sig, Sig),
}

/// The reference model: the rules of DESIGN.md restated as simply as possible.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Model {
    state: PipelineState,
    ct: bool,
    approved: bool,
    require_approval: bool,
    timed_out: bool,
    /// The run's attempt: 0, then one more per applied retry.
    attempt: u32,
    /// The run failed on the schema gate's `error` verdict (a retry may apply).
    errored: bool,
}

impl Model {
    /// Applies `sig`; a verdict carries the attempt of the job it answers.
    fn apply(&mut self, sig: Sig, attempt: u32) {
        let s = self.state;
        let current = attempt == self.attempt;
        match sig {
            Sig::Trigger if s == Idle => self.state = Triggered,
            Sig::Evidence if s == Triggered => self.state = CiRunning,
            Sig::Pass if s == CiRunning && current => self.state = Build,
            Sig::Fail if s == CiRunning && current => self.state = Failed,
            Sig::Error if s == CiRunning && current => {
                self.state = Failed;
                self.errored = true;
            }
            Sig::Retry if s == Failed && self.errored && self.attempt < MAX_GATE_RETRIES => {
                self.state = CiRunning;
                self.errored = false;
                self.attempt += 1;
                // The deadline counts again from the retry.
                self.timed_out = false;
            }
            // No staging gates by default: BUILD → STAGING_EVAL → CT_QUEUED at once.
            Sig::Registered if s == Build => self.state = CtQueued,
            Sig::Ct if s == CtQueued => {
                self.ct = true;
                self.promote_if_ready();
            }
            Sig::Approve if s == CtQueued => {
                self.approved = true;
                self.promote_if_ready();
            }
            Sig::Rollback if s == Promoted => self.state = Rollback,
            Sig::Timeout if self.timed_out && s.is_in_flight() => {
                self.state = Failed;
                self.errored = false;
            }
            _ => {}
        }
    }

    fn promote_if_ready(&mut self) {
        if self.ct && (!self.require_approval || self.approved) {
            self.state = Promoted;
        }
    }
}

fn digest() -> ImageDigest {
    ImageDigest::new(format!("sha256:{}", "a".repeat(64))).unwrap()
}

/// The message a signal is, as the real senders build it (with their expectations); a
/// verdict answers the job of `attempt`.
fn message(run: &Run, sig: Sig, attempt: u32) -> AdvanceMessage {
    let (expect, signal) = match sig {
        Sig::Trigger => (Some(Idle), Signal::Trigger),
        Sig::Evidence => (
            Some(Triggered),
            Signal::EvidenceVerified {
                evidence: EvidenceRecord {
                    manifest: BlobKey::new("evidence/m.json").unwrap(),
                    manifest_sha256: "0".repeat(64),
                    image_digest: digest(),
                    base_digest: None,
                    dataset: None,
                    files: vec!["tools.json".into()],
                },
            },
        ),
        Sig::Pass | Sig::Fail | Sig::Error => (
            Some(CiRunning),
            Signal::GateVerdict {
                gate: GateName::new("schema").unwrap(),
                stage: Stage::Ci,
                outcome: match sig {
                    Sig::Pass => Outcome::Pass,
                    Sig::Fail => Outcome::Fail,
                    _ => Outcome::Error,
                },
                summary: "model".into(),
                metrics: Default::default(),
                verdict: BlobKey::new("verdicts/x.json").unwrap(),
                attempt,
                full: None,
            },
        ),
        Sig::Registered => (
            Some(Build),
            Signal::ArtifactRegistered {
                version: semver::Version::new(0, 1, 0),
                previous_version: None,
                bump: Bump::Patch,
                image_digest: digest(),
            },
        ),
        Sig::Ct => (
            Some(CtQueued),
            Signal::CtBaselineRecorded {
                version: semver::Version::new(0, 1, 0),
                dataset: None,
                record: BlobKey::new("ct/x.json").unwrap(),
            },
        ),
        Sig::Approve => (None, Signal::Approve),
        Sig::Rollback => (
            None,
            Signal::Rollback {
                reason: "alert".into(),
            },
        ),
        Sig::Timeout => (None, Signal::Timeout),
        Sig::Retry => (
            None,
            Signal::RetryGate {
                gate: GateName::new("schema").unwrap(),
                reason: "model".into(),
            },
        ),
    };
    AdvanceMessage {
        run_id: run.id.clone(),
        expect,
        actor: "model".into(),
        signal,
    }
}

fn action() -> impl Strategy<Value = Action> {
    let sig = (0..SIGS.len()).prop_map(|i| SIGS[i]);
    prop_oneof![
        6 => sig.clone().prop_map(Action::Deliver),
        2 => (0usize..64).prop_map(Action::Redeliver),
        2 => (sig.clone(), sig).prop_map(|(a, b)| Action::Race(a, b)),
    ]
}

/// Signals in an order that usually makes progress, shuffled by proptest's choices.
fn scenario() -> impl Strategy<Value = (bool, Vec<Action>)> {
    (any::<bool>(), prop::collection::vec(action(), 1..40))
}

async fn check(require_approval: bool, actions: Vec<Action>) -> Result<(), TestCaseError> {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let queue = Arc::new(MemoryQueue::new(clock.clone(), 5));
    let store = Arc::new(MemoryRunStore::new());
    let mut policy = Policy::schema_only();
    policy.promotion.require_approval = require_approval;
    let now = clock.now();
    let run = Run::new(
        Repository::new("octo/agent").unwrap(),
        CommitSha::new("f".repeat(40)).unwrap(),
        Some("main".into()),
        Trigger {
            kind: "push".into(),
            delivery: None,
            actor: None,
            at: now,
        },
        policy,
        now,
    );
    store.create(&run, &[]).await.unwrap();
    let orchestrators: Vec<Arc<Orchestrator>> = (0..2)
        .map(|_| {
            Arc::new(Orchestrator::new(
                store.clone(),
                queue.clone(),
                clock.clone(),
                Arc::new(NoMetrics),
            ))
        })
        .collect();

    let start = Model {
        state: Idle,
        ct: false,
        approved: false,
        require_approval,
        timed_out: false,
        attempt: 0,
        errored: false,
    };
    let mut models: BTreeSet<Model> = BTreeSet::from([start]);
    // A gate answers the job of the run's attempt when it is sent (read, as a gate would).
    let attempt_now = || {
        let store = store.clone();
        let id = run.id.clone();
        async move { store.get(&id).await.unwrap().unwrap().attempt() }
    };
    let mut sent: Vec<(String, Sig, u32)> = Vec::new();
    for (step, action) in actions.into_iter().enumerate() {
        match action {
            Action::Deliver(sig) => {
                if sig == Sig::Timeout {
                    clock.advance(Duration::from_secs(7200));
                    models = models
                        .into_iter()
                        .map(|m| Model {
                            timed_out: true,
                            ..m
                        })
                        .collect();
                }
                let id = format!("m{step}");
                let attempt = attempt_now().await;
                orchestrators[step % 2]
                    .advance(&id, &message(&run, sig, attempt))
                    .await
                    .unwrap();
                models = models
                    .into_iter()
                    .map(|mut m| {
                        m.apply(sig, attempt);
                        m
                    })
                    .collect();
                sent.push((id, sig, attempt));
            }
            Action::Redeliver(k) => {
                if sent.is_empty() {
                    continue;
                }
                let (id, sig, attempt) = sent[k % sent.len()].clone();
                orchestrators[step % 2]
                    .advance(&id, &message(&run, sig, attempt))
                    .await
                    .unwrap();
                // A redelivery of a message already applied or ignored changes nothing,
                // unless the state now lets it apply: then it is a late delivery, which
                // the model treats as the signal arriving again.
                models = models
                    .into_iter()
                    .map(|mut m| {
                        m.apply(sig, attempt);
                        m
                    })
                    .collect();
            }
            Action::Race(a, b) => {
                if a == Sig::Timeout || b == Sig::Timeout {
                    continue;
                }
                let (ia, ib) = (format!("m{step}a"), format!("m{step}b"));
                let attempt = attempt_now().await;
                let (ma, mb) = (message(&run, a, attempt), message(&run, b, attempt));
                let (oa, ob) = (orchestrators[0].clone(), orchestrators[1].clone());
                let ta = tokio::spawn(async move { oa.advance(&ia, &ma).await });
                let tb = tokio::spawn(async move { ob.advance(&ib, &mb).await });
                ta.await.unwrap().unwrap();
                tb.await.unwrap().unwrap();
                models = models
                    .into_iter()
                    .flat_map(|m| {
                        let mut ab = m.clone();
                        ab.apply(a, attempt);
                        ab.apply(b, attempt);
                        let mut ba = m;
                        ba.apply(b, attempt);
                        ba.apply(a, attempt);
                        [ab, ba]
                    })
                    .collect();
                sent.push((format!("m{step}a"), a, attempt));
                sent.push((format!("m{step}b"), b, attempt));
            }
        }
    }

    let stored = store.get(&run.id).await.unwrap().unwrap();
    let events = store.events(&run.id).await.unwrap();
    prop_assert!(
        models.iter().any(|m| m.state == stored.state),
        "stored state {} not among the model's {:?}",
        stored.state,
        models.iter().map(|m| m.state).collect::<Vec<_>>()
    );
    // The log is contiguous, and its transitions form one legal chain from IDLE.
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    prop_assert_eq!(seqs, (1..=stored.events).collect::<Vec<_>>());
    let mut at = Idle;
    for e in events.iter().filter(|e| e.kind == EventKind::Transition) {
        prop_assert_eq!(e.from, at, "transition from the wrong state");
        let to = e.to.unwrap();
        prop_assert!(
            find(e.from, to).is_some(),
            "illegal transition {} → {}",
            e.from,
            to
        );
        at = to;
    }
    prop_assert_eq!(at, stored.state, "log and state disagree");
    // No lost update: what the final state implies is recorded on the run.
    if matches!(
        stored.state,
        Build | StagingEval | CtQueued | Promoted | Rollback
    ) {
        prop_assert!(stored
            .verdicts
            .contains_key(&GateName::new("schema").unwrap()));
        prop_assert!(stored.candidate.evidence.is_some());
    }
    if matches!(stored.state, Promoted | Rollback) {
        prop_assert!(stored.ct.is_some() && stored.candidate.version.is_some());
        prop_assert!(!require_approval || stored.approval.is_some());
    }
    // Terminal or waiting: no row from here could fire on what is recorded. (IDLE waits
    // for its trigger message, whose guard is about the trigger the run was created with.)
    for row in TABLE
        .iter()
        .filter(|t| t.from == stored.state && t.from != Idle)
    {
        prop_assert!(
            (row.guard)(&stored).is_err(),
            "{} → {} could still fire",
            row.from,
            row.to
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn orchestrator_matches_the_model((require_approval, actions) in scenario()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(check(require_approval, actions))?;
    }
}

/// The happy path, written out, so a reader sees what the model expects.
#[tokio::test]
async fn happy_path_reaches_promoted() {
    let actions = [
        Sig::Trigger,
        Sig::Evidence,
        Sig::Pass,
        Sig::Registered,
        Sig::Ct,
    ]
    .into_iter()
    .map(Action::Deliver)
    .collect();
    check(false, actions).await.unwrap();
}
