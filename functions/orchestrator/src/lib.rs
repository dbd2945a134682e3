//! The orchestrator: consumes the advance queue and is the only writer of run state. It
//! applies [`vaia_core::machine::decide`] with a conditional write on the run's version,
//! then sends the entry actions' effects. A stale writer re-reads and becomes a no-op; a
//! redelivered message whose transition was already written re-sends that transition's
//! effects (they are deduplicated downstream), so a crash between write and send loses
//! nothing.

use async_trait::async_trait;
use std::sync::Arc;
use vaia_core::machine::{decide, entry_effects, find, Decision};
use vaia_core::messages::{
    parse_body, queues, send_json, send_signal, AdvanceMessage, Effect, Signal,
};
use vaia_core::ports::{
    Clock, HandlerError, MessageHandler, Metrics, PortError, Queue, ReceivedMessage, RunStore,
};
use vaia_core::run::EventKind;

/// How often a lost conditional write is retried before the message is handed back.
const MAX_CONFLICTS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error("run {0} not found")]
    RunNotFound(String),
    #[error("gave up after {MAX_CONFLICTS} conflicting writes on run {0}")]
    Contended(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl From<OrchestratorError> for HandlerError {
    fn from(e: OrchestratorError) -> Self {
        match &e {
            // The webhook creates a run before it sends; a message for an unknown run is
            // not going to become valid.
            OrchestratorError::RunNotFound(_) => HandlerError::permanent(e.to_string()),
            OrchestratorError::Contended(_) => HandlerError::retryable(e.to_string()),
            OrchestratorError::Port(p) => HandlerError {
                retryable: p.is_retryable(),
                reason: e.to_string(),
            },
        }
    }
}

/// What handling one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advanced {
    /// The run was written: `transitions` state changes and `effects` messages sent.
    Applied { transitions: usize, effects: usize },
    /// Nothing written; `resent` effects of an earlier write by this message were re-sent.
    Ignored { reason: String, resent: usize },
}

pub struct Orchestrator {
    store: Arc<dyn RunStore>,
    queue: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
}

impl Orchestrator {
    pub fn new(
        store: Arc<dyn RunStore>,
        queue: Arc<dyn Queue>,
        clock: Arc<dyn Clock>,
        metrics: Arc<dyn Metrics>,
    ) -> Self {
        Self {
            store,
            queue,
            clock,
            metrics,
        }
    }

    /// Applies one advance message. `message_id` must be stable across redeliveries.
    pub async fn advance(
        &self,
        message_id: &str,
        msg: &AdvanceMessage,
    ) -> Result<Advanced, OrchestratorError> {
        for _ in 0..MAX_CONFLICTS {
            let run = self
                .store
                .get(&msg.run_id)
                .await?
                .ok_or_else(|| OrchestratorError::RunNotFound(msg.run_id.to_string()))?;
            match decide(&run, msg, message_id, self.clock.now()) {
                Decision::Ignore(reason) => {
                    let resent = self.resend_effects_of(message_id, &run).await?;
                    tracing::debug!(run_id = %run.id, %reason, resent, "advance message ignored");
                    return Ok(Advanced::Ignored { reason, resent });
                }
                Decision::Apply(applied) => {
                    // A refusal is the one decision a redelivered message could make again
                    // (the others are recognised from the run: a state it no longer
                    // expects, a verdict or an approval already recorded); its log says
                    // whether this message was already refused.
                    if applied.changes.is_empty()
                        && applied.events.iter().all(|e| e.kind == EventKind::Refused)
                        && self.logged(message_id, &run).await?
                    {
                        let reason = format!("{} already refused", msg.signal.name());
                        return Ok(Advanced::Ignored { reason, resent: 0 });
                    }
                    match self
                        .store
                        .save(&applied.run, run.version, &applied.events)
                        .await
                    {
                        Ok(()) => {}
                        Err(PortError::Conflict { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    }
                    for change in &applied.changes {
                        self.metrics.transition(
                            change.from,
                            change.to,
                            change.time_in_from.to_std().unwrap_or_default(),
                        );
                        tracing::info!(run_id = %run.id, from = %change.from, to = %change.to, "transition");
                    }
                    if let Signal::GateVerdict { gate, outcome, .. } = &msg.signal {
                        self.metrics.verdict(gate.as_str(), outcome.as_str());
                    }
                    for effect in &applied.effects {
                        self.send(effect).await?;
                    }
                    return Ok(Advanced::Applied {
                        transitions: applied.changes.len(),
                        effects: applied.effects.len(),
                    });
                }
            }
        }
        Err(OrchestratorError::Contended(msg.run_id.to_string()))
    }

    /// If this message already moved the run (the write landed but the process died
    /// before sending), send the entry effects of those transitions again.
    async fn resend_effects_of(
        &self,
        message_id: &str,
        run: &vaia_core::run::Run,
    ) -> Result<usize, OrchestratorError> {
        let events = self.store.events(&run.id).await?;
        let mut sent = 0;
        for e in events
            .iter()
            .filter(|e| e.kind == EventKind::Transition && e.cause.as_deref() == Some(message_id))
        {
            let Some(row) = e.to.and_then(|to| find(e.from, to)) else {
                continue;
            };
            for effect in entry_effects(run, row.entry) {
                self.send(&effect).await?;
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Whether the run's log has an event caused by message `message_id`.
    async fn logged(
        &self,
        message_id: &str,
        run: &vaia_core::run::Run,
    ) -> Result<bool, OrchestratorError> {
        let events = self.store.events(&run.id).await?;
        Ok(events
            .iter()
            .any(|e| e.cause.as_deref() == Some(message_id)))
    }

    async fn send(&self, effect: &Effect) -> Result<(), OrchestratorError> {
        let group = Some(match effect {
            Effect::Gate(job) => job.run_id.to_string(),
            Effect::Registry(job) => job.run_id().to_string(),
        });
        let dedupe = Some(effect.dedupe_key());
        match effect {
            Effect::Gate(job) => {
                send_json(&*self.queue, &effect.queue(), job, dedupe, group).await?
            }
            Effect::Registry(job) => {
                send_json(&*self.queue, &effect.queue(), job, dedupe, group).await?
            }
        };
        Ok(())
    }

    /// Sends a timeout signal for every overdue in-flight run (at most `limit`); returns
    /// how many. The local stack calls this periodically; on AWS an EventBridge schedule.
    pub async fn sweep(&self, limit: usize) -> Result<usize, OrchestratorError> {
        let overdue = self.store.overdue(self.clock.now(), limit).await?;
        for run in &overdue {
            send_signal(
                &*self.queue,
                &run.id,
                None,
                "sweeper",
                Signal::Timeout,
                "timeout",
            )
            .await?;
        }
        Ok(overdue.len())
    }
}

#[async_trait]
impl MessageHandler for Orchestrator {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        let msg: AdvanceMessage = parse_body(queues::ADVANCE, &message.id, &message.body)
            .map_err(HandlerError::permanent)?;
        self.advance(&message.id, &msg).await?;
        Ok(())
    }

    /// Its only write is the run's, conditional on the version it read, so of two
    /// deliveries handled at once one writes and the other re-reads; a message handled
    /// again finds what it did in the run (the state it expected has passed, its verdict or
    /// approval is recorded) or, for a refusal, in the log by its cause, and changes
    /// nothing; the effects it re-sends (only those of its own transitions, for a write
    /// whose sends were lost) carry deduplication keys and are recognised as stale by the
    /// gates and the registry, which check the run's state. (`redelivery_applies_once`,
    /// `a_redelivered_refusal_is_logged_once`, the state machine model's redeliveries.)
    fn idempotent_by_itself(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
