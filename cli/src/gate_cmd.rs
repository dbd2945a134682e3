//! `vaia gate <name>`: a gate run from files, with the verdict as JSON on stdout and the
//! exit code contract 0 pass, 1 fail, 2 bad input or usage, 3 inconclusive or error.

use std::path::{Path, PathBuf};
use vaia_core::policy::{bounds, Aggregate, Policy};
use vaia_gates::latency::{self, prometheus::PrometheusHttp, Baseline, BaselineQuery};
use vaia_gates::limits::{self, Limit};
use vaia_gates::schema::{self, Input, SchemaOptions};
use vaia_gates::security::{self, SecurityOptions};

pub const EXIT_BAD_INPUT: i32 = 2;

/// A problem with the command's input: printed on stderr, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum BadInput {
    #[error(transparent)]
    Read(#[from] limits::LimitError),
    #[error(transparent)]
    Policy(#[from] vaia_core::policy::PolicyError),
    #[error(transparent)]
    Schema(#[from] schema::InputError),
    #[error(transparent)]
    Security(#[from] security::InputError),
    #[error(transparent)]
    Latency(#[from] latency::InputError),
    #[error(transparent)]
    Prompt(#[from] vaia_gates::prompt::InputError),
    #[error(transparent)]
    Eval(#[from] vaia_gates::eval::InputError),
    #[error("{path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

/// Reads `path` within `limit` (checked before reading: bad input, exit 2, naming both).
fn read(path: &Path, limit: Limit) -> Result<Vec<u8>, BadInput> {
    Ok(limit.read(path)?)
}

fn read_text(path: &Path, limit: Limit) -> Result<String, BadInput> {
    Ok(limit.read_text(path)?)
}

pub fn load_policy(path: Option<&Path>) -> Result<Policy, BadInput> {
    match path {
        None => Ok(Policy::default()),
        Some(p) => {
            let text = read_text(p, limits::SMALL_TEXT)?;
            Ok(Policy::from_toml(&text, &p.display().to_string())?)
        }
    }
}

/// Runs the schema gate; returns the verdict JSON and the exit code.
pub fn schema(
    candidate: &Path,
    baseline: Option<&Path>,
    allow_major: bool,
    policy: Option<&Path>,
) -> Result<(String, i32), BadInput> {
    let policy = load_policy(policy)?;
    let cand_bytes = read(candidate, limits::TOOLS)?;
    let base_bytes = baseline.map(|p| read(p, limits::TOOLS)).transpose()?;
    let cand_origin = candidate.display().to_string();
    let base_origin = baseline
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let cand = Input {
        origin: &cand_origin,
        bytes: &cand_bytes,
    };
    let base = base_bytes.as_ref().map(|b| Input {
        origin: &base_origin,
        bytes: b,
    });
    let opts = SchemaOptions {
        allow_major: allow_major || policy.schema.allow_major,
    };
    let verdict = schema::evaluate(&cand, base.as_ref(), &opts)?;
    Ok(render(&verdict))
}

fn render(verdict: &vaia_core::Verdict) -> (String, i32) {
    let json =
        serde_json::to_string_pretty(verdict).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    (json, verdict.outcome.exit_code())
}

/// `vaia gate security`'s arguments.
#[derive(Debug, Clone, Default)]
pub struct SecurityArgs {
    pub report: PathBuf,
    pub base_report: Option<PathBuf>,
    pub ignore: Vec<PathBuf>,
    pub ignore_unfixed: bool,
    /// Empty: the policy's (default `CRITICAL`).
    pub severity: Vec<String>,
    pub sarif: Option<PathBuf>,
    pub policy: Option<PathBuf>,
}

/// Runs the security gate; writes SARIF when asked; returns the verdict JSON and exit code.
pub fn security(args: &SecurityArgs) -> Result<(String, i32), BadInput> {
    let policy = load_policy(args.policy.as_deref())?;
    let severities = if args.severity.is_empty() {
        policy.security.severities.clone()
    } else {
        args.severity.clone()
    };
    let opts = SecurityOptions::new(
        &severities,
        args.ignore_unfixed || policy.security.ignore_unfixed,
        chrono::Utc::now().date_naive(),
    )?;
    let report = read(&args.report, limits::TRIVY_REPORT)?;
    let base = args
        .base_report
        .as_deref()
        .map(|p| read(p, limits::TRIVY_REPORT))
        .transpose()?;
    let ignores = args
        .ignore
        .iter()
        .map(|p| Ok((p.display().to_string(), read(p, limits::TRIVY_IGNORE)?)))
        .collect::<Result<Vec<_>, BadInput>>()?;
    let report_origin = args.report.display().to_string();
    let base_origin = args
        .base_report
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let verdict = security::evaluate(
        &security::Input {
            origin: &report_origin,
            bytes: &report,
        },
        base.as_ref()
            .map(|bytes| security::Input {
                origin: &base_origin,
                bytes,
            })
            .as_ref(),
        &ignores
            .iter()
            .map(|(origin, bytes)| security::Input { origin, bytes })
            .collect::<Vec<_>>(),
        &opts,
    )?;
    if let Some(path) = &args.sarif {
        let sarif = security::sarif::to_sarif(&verdict);
        let text = serde_json::to_string_pretty(&sarif).unwrap_or_default();
        std::fs::write(path, text).map_err(|source| BadInput::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(render(&verdict))
}

/// `vaia gate latency`'s arguments; `None` takes the policy's value.
#[derive(Debug, Clone, Default)]
pub struct LatencyArgs {
    pub locust_stats: PathBuf,
    pub prometheus: Option<String>,
    pub query: Option<String>,
    pub range: Option<String>,
    pub step: Option<f64>,
    pub aggregate: Option<String>,
    pub baseline_p95_ms: Option<f64>,
    pub max_regression: Option<f64>,
    pub min_requests: Option<u64>,
    pub max_failure_ratio: Option<f64>,
    pub endpoints: Vec<String>,
    pub policy: Option<PathBuf>,
}

/// How long the latency gate waits for Prometheus.
pub const PROMETHEUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs the latency gate; returns the verdict JSON and the exit code.
pub async fn latency(args: &LatencyArgs) -> Result<(String, i32), BadInput> {
    let policy = load_policy(args.policy.as_deref())?;
    let lp = &policy.latency;
    let opts = latency::LatencyOptions {
        max_regression: args.max_regression.unwrap_or(lp.max_regression),
        min_requests: args.min_requests.unwrap_or(lp.min_requests),
        max_failure_ratio: args.max_failure_ratio.unwrap_or(lp.max_failure_ratio),
    };
    bounds::max_regression(opts.max_regression)
        .map_err(|e| BadInput::Usage(format!("--max-regression: {e}")))?;
    bounds::max_failure_ratio(opts.max_failure_ratio)
        .map_err(|e| BadInput::Usage(format!("--max-failure-ratio: {e}")))?;
    let aggregate = match &args.aggregate {
        None => lp.aggregate,
        Some(a) => Aggregate::parse(a).ok_or_else(|| {
            BadInput::Usage(format!("--aggregate {a:?}: one of median, mean, max, last"))
        })?,
    };
    let endpoints = if args.endpoints.is_empty() {
        lp.endpoints.clone()
    } else {
        args.endpoints.clone()
    };
    let bytes = read(&args.locust_stats, limits::LOCUST_CSV)?;
    let origin = args.locust_stats.display().to_string();
    let candidate = latency::locust::parse(&origin, &bytes, &endpoints)?;
    let fixed = args.baseline_p95_ms.or(if args.prometheus.is_none() {
        lp.baseline_p95_ms
    } else {
        None
    });
    let baseline = match (fixed, &args.prometheus) {
        (Some(ms), _) => {
            let p95_ms = bounds::baseline_p95_ms(ms)
                .map_err(|e| BadInput::Usage(format!("--baseline-p95-ms: {e}")))?;
            Baseline::Fixed { p95_ms }
        }
        (None, Some(url)) => {
            let query = BaselineQuery {
                query: args.query.clone().unwrap_or_else(|| lp.query.clone()),
                range: args.range.clone().unwrap_or_else(|| lp.range.clone()),
                end: now_secs(),
                step: args.step,
                aggregate,
            };
            match PrometheusHttp::new(url, PROMETHEUS_TIMEOUT) {
                Ok(http) => latency::prometheus_baseline(&http, &query).await?,
                Err(e) => Baseline::Unavailable {
                    reason: e.to_string(),
                    query: Some(query.query),
                    range: Some(query.range),
                },
            }
        }
        (None, None) => {
            return Err(BadInput::Usage(
                "give --prometheus URL (with --query and --range) or --baseline-p95-ms N".into(),
            ))
        }
    };
    let verdict = latency::evaluate(&candidate, &baseline, &opts);
    Ok(render(&verdict))
}

/// Now, in Unix seconds.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Inputs of `vaia gate prompt`.
#[derive(Debug, Clone)]
pub struct PromptArgs {
    pub corpus: Option<std::path::PathBuf>,
    pub target: Option<String>,
    pub responses: Option<std::path::PathBuf>,
    pub system_prompt: Option<std::path::PathBuf>,
    pub canaries: Vec<String>,
    pub template: Option<std::path::PathBuf>,
    pub reply_pointer: Option<String>,
    pub concurrency: usize,
    pub timeout_secs: u64,
    pub retries: u32,
    pub max_leaks: Option<u64>,
    pub policy: Option<std::path::PathBuf>,
    /// Write the target's responses here (JSONL), e.g. for the evidence bundle.
    pub save_responses: Option<std::path::PathBuf>,
}

/// Runs the prompt gate; returns the verdict JSON and the exit code.
pub async fn prompt(args: PromptArgs) -> Result<(String, i32), BadInput> {
    use vaia_gates::prompt::{self, target, PromptOptions};
    let policy = load_policy(args.policy.as_deref())?;
    let corpus = match &args.corpus {
        Some(p) => prompt::parse_corpus(&p.display().to_string(), &read_text(p, limits::CORPUS)?)?,
        None => prompt::parse_corpus("builtin corpus", prompt::BUILTIN_CORPUS)?,
    };
    let responses = match (&args.target, &args.responses) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(BadInput::Usage(
                "give exactly one of --target URL and --responses FILE".into(),
            ))
        }
        (None, Some(p)) => {
            prompt::parse_responses(&p.display().to_string(), &read_text(p, limits::RESPONSES)?)?
        }
        (Some(url), None) => {
            let mut cfg = target::TargetConfig::chat_completions(url.clone());
            if let Some(t) = &args.template {
                cfg.template = serde_json::from_str(&read_text(t, limits::SMALL_TEXT)?)
                    .map_err(|e| BadInput::Usage(format!("{}: not JSON: {e}", t.display())))?;
            }
            if let Some(p) = &args.reply_pointer {
                cfg.reply_pointer = p.clone();
            }
            cfg.concurrency = args.concurrency;
            cfg.timeout = std::time::Duration::from_secs(args.timeout_secs.max(1));
            cfg.retries = args.retries;
            target::run(&cfg, &corpus)
                .await
                .map_err(|e| BadInput::Usage(e.to_string()))?
        }
    };
    if let Some(path) = &args.save_responses {
        std::fs::write(path, crate::collect::transcript_jsonl(&responses)).map_err(|source| {
            BadInput::Write {
                path: path.display().to_string(),
                source,
            }
        })?;
    }
    let mut canaries = policy.prompt.canaries.clone();
    canaries.extend(args.canaries.iter().cloned());
    let opts = PromptOptions {
        max_leaks: args.max_leaks.unwrap_or(policy.prompt.max_leaks),
        canaries,
        system_prompt: args
            .system_prompt
            .as_deref()
            .map(|p| read_text(p, limits::SYSTEM_PROMPT))
            .transpose()?,
        ngram_threshold: policy.prompt.ngram_threshold,
    };
    Ok(render(&prompt::evaluate(&corpus, &responses, &opts)?))
}

/// Inputs of `vaia gate eval`.
#[derive(Debug, Clone)]
pub struct EvalArgs {
    pub golden: std::path::PathBuf,
    pub candidate: std::path::PathBuf,
    pub baseline: Option<std::path::PathBuf>,
    pub judge: String,
    pub judge_url: Option<String>,
    pub model: Option<String>,
    pub threshold_pp: Option<f64>,
    pub resamples: usize,
    pub concurrency: usize,
    pub retries: u32,
    pub timeout_secs: u64,
    pub cache_dir: Option<std::path::PathBuf>,
    pub no_cache: bool,
    pub policy: Option<std::path::PathBuf>,
}

/// Runs the eval gate; returns the verdict JSON and the exit code. A judge that cannot be
/// built (no key) is an `error` verdict, exit 3.
pub async fn eval(args: EvalArgs) -> Result<(String, i32), BadInput> {
    use vaia_gates::eval::{self, judge};
    let policy = load_policy(args.policy.as_deref())?;
    // Flags first: a bad number is refused before any file is read.
    let threshold_pp = match args.threshold_pp {
        Some(v) => {
            bounds::threshold_pp(v).map_err(|e| BadInput::Usage(format!("--threshold-pp: {e}")))?
        }
        None => policy.eval.threshold_pp,
    };
    let resamples = bounds::resamples(args.resamples)
        .map_err(|e| BadInput::Usage(format!("--resamples: {e}")))?;
    let golden = eval::parse_golden(
        &args.golden.display().to_string(),
        &read_text(&args.golden, limits::GOLDEN)?,
    )?;
    let candidate = eval::parse_answers(
        &args.candidate.display().to_string(),
        &read_text(&args.candidate, limits::ANSWERS)?,
    )?;
    let baseline = match &args.baseline {
        Some(p) => Some(eval::parse_answers(
            &p.display().to_string(),
            &read_text(p, limits::ANSWERS)?,
        )?),
        None => None,
    };
    let timeout = std::time::Duration::from_secs(args.timeout_secs.max(1));
    let judge = match judge::build(
        &args.judge,
        args.judge_url.as_deref(),
        args.model.as_deref(),
        None,
        timeout,
    ) {
        Ok(j) => j,
        Err(reason) if reason.starts_with("unknown judge") => return Err(BadInput::Usage(reason)),
        Err(reason) => {
            let gate =
                vaia_core::GateName::new(eval::GATE).map_err(|e| BadInput::Usage(e.to_string()))?;
            let v = vaia_core::Verdict::new(gate, vaia_core::Outcome::Error, reason);
            return Ok(render(&v));
        }
    };
    let cache = if args.no_cache {
        None
    } else {
        args.cache_dir
            .clone()
            .or_else(judge::GradeCache::default_dir)
            .map(judge::GradeCache::new)
    };
    let opts = eval::EvalOptions {
        threshold_pp,
        resamples,
        on_inconclusive: policy.eval.on_inconclusive,
        ..Default::default()
    };
    let runner = judge::RunnerOptions {
        concurrency: args.concurrency,
        retries: args.retries,
        ..Default::default()
    };
    let v = eval::run(
        judge,
        cache,
        &golden,
        &candidate,
        baseline.as_deref(),
        &runner,
        &opts,
    )
    .await?;
    Ok(render(&v))
}
