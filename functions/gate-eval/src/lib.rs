//! The eval-regression gate as a pipeline function: reads the candidate's
//! `eval_answers.jsonl` and the golden set `eval_golden.jsonl` from its evidence bundle, and
//! the production answers (the `eval_answers.jsonl` of the commit `prod` points at); both
//! answer sets are judged here, in vaia, where the judge key lives, with the run's `[eval]`
//! policy (judge, model, threshold). Judge settings from the environment: the key
//! (`GEMINI_API_KEY` / `OPENAI_API_KEY`; on AWS from SSM, see `lambda/src/bin/gate-eval.rs`) and
//! `VAIA_JUDGE_URL` (base URL override). Grades are cached in the blob store
//! (`cache/judge/`, keyed by judge, model, prompt and answer), so judging the same answers
//! again, production's in particular, costs no judge calls. Stores the full verdict and
//! tells the orchestrator. A job for a run no longer in its stage is a no-op.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use vaia_core::gate_job::{
    parse_job, production_evidence, publish_verdict, run_for_job, verdict_of, Bundle,
};
use vaia_core::messages::GateJob;
use vaia_core::ports::{BlobStore, HandlerError, MessageHandler, Queue, ReceivedMessage, RunStore};
use vaia_core::run::Run;
use vaia_core::{BlobKey, Finding, Outcome, Severity, Verdict};
use vaia_gates::eval::{self, judge, EvalOptions};
use vaia_gates::limits;

pub const ANSWERS_FILE: &str = "eval_answers.jsonl";
pub const GOLDEN_FILE: &str = "eval_golden.jsonl";

/// Where the judge is and how to reach it (from the environment by default).
#[derive(Debug, Clone, Default)]
pub struct JudgeSettings {
    pub url: Option<String>,
    /// The judge's API key when it does not come from the environment.
    pub api_key: Option<judge::ApiKey>,
    pub timeout: Option<Duration>,
}

impl JudgeSettings {
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            url: var("VAIA_JUDGE_URL"),
            api_key: None,
            timeout: None,
        }
    }
}

pub struct EvalGate {
    store: Arc<dyn RunStore>,
    blobs: Arc<dyn BlobStore>,
    queue: Arc<dyn Queue>,
    settings: JudgeSettings,
}

pub use vaia_core::gate_job::GateError;

impl EvalGate {
    pub fn new(
        store: Arc<dyn RunStore>,
        blobs: Arc<dyn BlobStore>,
        queue: Arc<dyn Queue>,
        settings: JudgeSettings,
    ) -> Self {
        Self {
            store,
            blobs,
            queue,
            settings,
        }
    }

    /// Runs the gate for `job`; `None` when the job is stale.
    pub async fn run(&self, job: &GateJob) -> Result<Option<Verdict>, GateError> {
        let Some(run) = run_for_job(&*self.store, job).await? else {
            return Ok(None);
        };
        let verdict = verdict_of(&job.gate, self.evaluate(&run, job).await)?;
        publish_verdict(&*self.blobs, &*self.queue, &run, job, "gate-eval", &verdict).await?;
        Ok(Some(verdict))
    }

    async fn evaluate(&self, run: &Run, job: &GateJob) -> Result<Verdict, GateError> {
        let (repo, policy) = (&run.repository, &run.policy);
        let bundle = Bundle::open(&*self.blobs, run, "the candidate's").await?;
        let gate = job.gate.clone();
        let fail = |gate, file: &str, e: String| {
            let mut v = Verdict::new(gate, Outcome::Fail, format!("{file} is unreadable: {e}"));
            v.findings
                .push(Finding::new("eval.unreadable", Severity::High, e).at(file.to_string()));
            v
        };
        let golden_key = BlobKey::evidence(repo, &job.commit, GOLDEN_FILE)?;
        let answers_key = BlobKey::evidence(repo, &job.commit, ANSWERS_FILE)?;
        let (Some(golden), Some(answers)) = (
            bundle.get(GOLDEN_FILE).await?.map(|(_, b)| b),
            bundle.get(ANSWERS_FILE).await?.map(|(_, b)| b),
        ) else {
            return Ok(Verdict::new(
                gate,
                Outcome::Error,
                format!("{GOLDEN_FILE} and {ANSWERS_FILE} must both be in the evidence bundle"),
            ));
        };
        if let Some(v) = limits::oversized_evidence(
            &gate,
            &[
                (golden_key.as_str(), golden.len(), limits::GOLDEN),
                (answers_key.as_str(), answers.len(), limits::ANSWERS),
            ],
        ) {
            return Ok(v);
        }
        let golden =
            match eval::parse_golden(golden_key.as_str(), &String::from_utf8_lossy(&golden)) {
                Ok(g) => g,
                Err(e) => return Ok(fail(gate, golden_key.as_str(), e.to_string())),
            };
        let candidate =
            match eval::parse_answers(answers_key.as_str(), &String::from_utf8_lossy(&answers)) {
                Ok(a) => a,
                Err(e) => return Ok(fail(gate, answers_key.as_str(), e.to_string())),
            };
        let baseline = match self.production_answers(repo).await? {
            Ok(b) => b,
            Err(reason) => return Ok(Verdict::new(gate, Outcome::Error, reason)),
        };
        let timeout = self.settings.timeout.unwrap_or(Duration::from_secs(60));
        let judge = match judge::build(
            &policy.eval.judge,
            self.settings.url.as_deref(),
            policy.eval.model.as_deref(),
            self.settings.api_key.as_ref(),
            timeout,
        ) {
            Ok(j) => j,
            Err(reason) => return Ok(Verdict::new(gate, Outcome::Error, reason)),
        };
        let cache = Some(judge::GradeCache::in_blob_store(self.blobs.clone()));
        let opts = EvalOptions {
            threshold_pp: policy.eval.threshold_pp,
            on_inconclusive: policy.eval.on_inconclusive,
            ..Default::default()
        };
        let runner = judge::RunnerOptions::default();
        Ok(
            match eval::run(
                judge,
                cache,
                &golden,
                &candidate,
                baseline.as_deref(),
                &runner,
                &opts,
            )
            .await
            {
                Ok(v) => v,
                Err(e) => Verdict::new(gate, Outcome::Error, e.to_string()),
            },
        )
    }

    /// The answers of the version `prod` points at: `Ok(None)` when nothing was promoted,
    /// `Err(reason)` when the registry points at evidence that is gone or unreadable.
    async fn production_answers(
        &self,
        repo: &vaia_core::Repository,
    ) -> Result<Result<Option<Vec<eval::Answer>>, String>, GateError> {
        let (key, b) =
            match production_evidence(&*self.blobs, &*self.store, repo, ANSWERS_FILE).await? {
                Ok(Some(found)) => found,
                Ok(None) => return Ok(Ok(None)),
                Err(reason) => return Ok(Err(reason)),
            };
        if let Err(e) = limits::ANSWERS.check(key.as_str(), b.len() as u64) {
            return Ok(Err(format!("production answers: {e}")));
        }
        Ok(
            eval::parse_answers(key.as_str(), &String::from_utf8_lossy(&b))
                .map(Some)
                .map_err(|e| format!("production answers are unreadable: {e}")),
        )
    }
}

#[async_trait]
impl MessageHandler for EvalGate {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        let job = parse_job("gate-eval", message)?;
        if let Some(v) = self.run(&job).await? {
            tracing::info!(run_id = %job.run_id, outcome = v.outcome.as_str(), "eval verdict");
        }
        Ok(())
    }

    /// A gate job handled again changes nothing (see `vaia_core::gate_job`).
    fn idempotent_by_itself(&self) -> bool {
        true
    }
}
