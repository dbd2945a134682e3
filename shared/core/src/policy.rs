//! The promotion policy: which gates run in which stage, their thresholds, approval, and
//! timeouts. Loaded from `vaia.toml`; every field has a documented default, and unknown
//! keys are refused so that a typo never silently weakens a gate.
//!
//! ```toml
//! [stages]
//! ci = ["schema"]          # gates run in CI_RUNNING (default: every gate vaia has)
//! staging = []             # gates run in STAGING_EVAL (default: none)
//!
//! [schema]
//! allow_major = false      # a breaking tool change fails the schema gate unless true
//!
//! [prompt]
//! max_leaks = 0            # leaks allowed before the prompt gate fails
//! canaries = []            # canary tokens that must never appear in a response
//! ngram_threshold = 0.25   # share of the system prompt (its word 5-grams or fragments) that is a leak
//!
//! [eval]
//! threshold_pp = 2.0       # fail when the candidate is this many points below production
//! judge = "local"          # local | gemini | openai (keys from GEMINI_API_KEY / OPENAI_API_KEY)
//! model = "gemini-2.5-flash"  # optional; the judge's default otherwise
//! on_inconclusive = "fail" # fail | inconclusive, when the interval straddles the threshold
//!
//! [security]
//! severities = ["CRITICAL"] # Trivy severities that fail in layers the image adds
//! ignore_unfixed = false   # skip vulnerabilities with no fixed version
//!
//! [latency]
//! max_regression = 0.15    # fail when candidate p95 > baseline p95 × (1 + this)
//! min_requests = 100       # fewer requests in the load test: inconclusive
//! max_failure_ratio = 0.05 # more failed requests than this: inconclusive
//! query = "histogram_quantile(0.95, sum by (le) (rate(agent_request_duration_seconds_bucket[5m])))"
//! range = "1h"             # the production window the query covers
//! aggregate = "median"     # how the steps become one number: median, mean, max, last
//! endpoints = []           # Locust rows to judge (default: the Aggregated row)
//! # baseline_p95_ms = 250  # a fixed baseline instead of Prometheus
//!
//! [promotion]
//! require_approval = false # CT_QUEUED → PROMOTED waits for `vaia runs approve`
//!
//! [run]
//! timeout_secs = 3600      # an in-flight run older than this moves to FAILED
//!
//! [ct]                     # continuous training (see crate::ct)
//! drift_weight = 0.6       # budget = drift_weight · drift + data_weight · min(Δrows / rows_scale, 1)
//! data_weight = 0.4
//! rows_scale = 10000
//! threshold = 0.4          # a budget at or over this queues a retrain
//! drift_source = "prometheus"  # prometheus | report (drift/<owner>/<repo>/ in the artifacts bucket)
//! drift_query = "max(agent_drift_score)"
//! max_drift_age = "1h"     # an older drift score is an error, never zero
//! drift_alone_when_rows_unknown = false
//! schedule_minutes = 15
//! [monitoring]             # alerts, dashboard and rollback on alerts: see crate::monitoring
//! ```

use crate::ids::GateName;
use crate::monitoring::MonitoringPolicy;
use crate::state::Stage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The gates this build of vaia implements. A policy naming another gate is refused:
/// there is no pass-through gate.
pub const KNOWN_GATES: &[&str] = &["schema", "prompt", "eval", "security", "latency"];

/// Production's p95 latency in seconds, from the agent's request-duration histogram.
pub const DEFAULT_LATENCY_QUERY: &str =
    "histogram_quantile(0.95, sum by (le) (rate(agent_request_duration_seconds_bucket[5m])))";

/// Trivy's severities, lowest first.
pub const TRIVY_SEVERITIES: &[&str] = &["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"];

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub stages: Stages,
    pub schema: SchemaPolicy,
    pub prompt: PromptPolicy,
    pub eval: EvalPolicy,
    pub security: SecurityPolicy,
    pub latency: LatencyPolicy,
    pub promotion: PromotionPolicy,
    pub run: RunPolicy,
    pub ct: crate::ct::CtPolicy,
    /// Deployment-side: generated alerts and which firing alerts roll back.
    #[serde(skip_serializing_if = "is_default_monitoring")]
    pub monitoring: MonitoringPolicy,
}

fn is_default_monitoring(m: &MonitoringPolicy) -> bool {
    *m == MonitoringPolicy::default()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stages {
    pub ci: Vec<GateName>,
    pub staging: Vec<GateName>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaPolicy {
    /// Allow a breaking tool change (a major version bump) to pass the schema gate.
    pub allow_major: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityPolicy {
    /// Trivy severities that fail the gate when found in a layer the image adds.
    pub severities: Vec<String>,
    /// Skip vulnerabilities that have no fixed version (`trivy --ignore-unfixed`).
    pub ignore_unfixed: bool,
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        Self {
            severities: vec!["CRITICAL".into()],
            ignore_unfixed: false,
        }
    }
}

/// How the steps of a Prometheus range become one baseline number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    #[default]
    Median,
    Mean,
    Max,
    Last,
}

impl Aggregate {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Median => "median",
            Aggregate::Mean => "mean",
            Aggregate::Max => "max",
            Aggregate::Last => "last",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "median" => Some(Aggregate::Median),
            "mean" => Some(Aggregate::Mean),
            "max" => Some(Aggregate::Max),
            "last" => Some(Aggregate::Last),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyPolicy {
    /// Fail when the candidate's p95 exceeds the baseline's by more than this fraction.
    pub max_regression: f64,
    /// A load test with fewer requests is inconclusive.
    pub min_requests: u64,
    /// A load test with a larger share of failed requests is inconclusive.
    pub max_failure_ratio: f64,
    /// PromQL for production's p95 in seconds.
    pub query: String,
    /// The window of the range query (a Prometheus duration: `1h`, `30m`).
    pub range: String,
    pub aggregate: Aggregate,
    /// Locust rows (`Name` or `Type Name`) to judge; empty: the `Aggregated` row.
    pub endpoints: Vec<String>,
    /// A fixed baseline in milliseconds instead of Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_p95_ms: Option<f64>,
}

impl Default for LatencyPolicy {
    fn default() -> Self {
        Self {
            max_regression: 0.15,
            min_requests: 100,
            max_failure_ratio: 0.05,
            query: DEFAULT_LATENCY_QUERY.into(),
            range: "1h".into(),
            aggregate: Aggregate::Median,
            endpoints: Vec::new(),
            baseline_p95_ms: None,
        }
    }
}

/// Parses a Prometheus duration (`90s`, `5m`, `1h30m`, `2d`, `1w`, `500ms`) into seconds.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let mut total = 0.0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(format!("duration {text:?}: empty"));
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "duration {text:?}: expected a number, e.g. 1h or 30m"
            ));
        }
        let n: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration {text:?}: bad number"))?;
        rest = &rest[digits..];
        let (len, secs) = [
            ("ms", 0.001),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
            ("d", 86_400.0),
            ("w", 604_800.0),
            ("y", 31_536_000.0),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u))
        .map(|(u, s)| (u.len(), s))
        .ok_or_else(|| format!("duration {text:?}: unit must be one of ms, s, m, h, d, w, y"))?;
        total += n * secs;
        rest = &rest[len..];
    }
    if total <= 0.0 {
        return Err(format!("duration {text:?}: must be positive"));
    }
    Ok(total)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptPolicy {
    /// Leaks allowed before the prompt gate fails.
    pub max_leaks: u64,
    /// Canary tokens that must never appear in a response (besides each run's fresh one).
    pub canaries: Vec<String>,
    /// Share of the system prompt in a response that counts as a leak: of its word 5-grams
    /// (plain, rot13, reversed) or of its fragments (in every encoding the canaries have).
    pub ngram_threshold: f64,
}

impl Default for PromptPolicy {
    fn default() -> Self {
        Self {
            max_leaks: 0,
            canaries: Vec::new(),
            ngram_threshold: 0.25,
        }
    }
}

/// What the eval gate does when the confidence interval straddles the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInconclusive {
    /// Report `inconclusive`: run again with more samples.
    Inconclusive,
    /// Treat it as a failure.
    #[default]
    Fail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalPolicy {
    /// Fail when the candidate's mean score is more than this many points below production.
    pub threshold_pp: f64,
    /// `local`, `gemini` or `openai`.
    pub judge: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub on_inconclusive: OnInconclusive,
}

impl Default for EvalPolicy {
    fn default() -> Self {
        Self {
            threshold_pp: 2.0,
            judge: "local".into(),
            model: None,
            on_inconclusive: OnInconclusive::Fail,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromotionPolicy {
    pub require_approval: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunPolicy {
    pub timeout_secs: u64,
}

impl Default for Stages {
    fn default() -> Self {
        Self {
            ci: KNOWN_GATES
                .iter()
                .filter_map(|g| GateName::new(*g).ok())
                .collect(),
            staging: Vec::new(),
        }
    }
}

impl Default for RunPolicy {
    fn default() -> Self {
        Self { timeout_secs: 3600 }
    }
}

/// The bounds of every number a policy file or a gate's command-line flag gives: one home
/// for each, so `vaia.toml` and `vaia gate …` refuse the same values with the same words.
/// Each check returns the value when it is in bounds and what is wrong otherwise.
pub mod bounds {
    /// Most bootstrap resamples the eval gate draws (each is a pass over the golden set).
    pub const MAX_RESAMPLES: usize = 100_000;

    /// `eval.threshold_pp` / `--threshold-pp`: points of mean score, finite and ≥ 0.
    pub fn threshold_pp(v: f64) -> Result<f64, String> {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(format!("{v} must be a finite number of points ≥ 0"))
        }
    }

    /// `--resamples`: from 1 to [`MAX_RESAMPLES`].
    pub fn resamples(n: usize) -> Result<usize, String> {
        if (1..=MAX_RESAMPLES).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{n} must be between 1 and {MAX_RESAMPLES}"))
        }
    }

    /// `latency.max_regression` / `--max-regression`: a fraction, finite and ≥ 0.
    pub fn max_regression(v: f64) -> Result<f64, String> {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(format!("{v} must be a fraction ≥ 0 (0.15 is 15 %)"))
        }
    }

    /// `latency.max_failure_ratio` / `--max-failure-ratio`: between 0 and 1.
    pub fn max_failure_ratio(v: f64) -> Result<f64, String> {
        if (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} must be between 0 and 1"))
        }
    }

    /// `latency.baseline_p95_ms` / `--baseline-p95-ms`: milliseconds, finite and > 0.
    pub fn baseline_p95_ms(v: f64) -> Result<f64, String> {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(format!("{v} must be a positive number of milliseconds"))
        }
    }

    /// `prompt.ngram_threshold`: a share in (0, 1].
    pub fn ngram_threshold(v: f64) -> Result<f64, String> {
        if v > 0.0 && v <= 1.0 {
            Ok(v)
        } else {
            Err(format!("{v} must be in (0, 1]"))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl Policy {
    /// Parses a `vaia.toml`; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        policy.validate(origin)?;
        Ok(policy)
    }

    pub fn validate(&self, origin: &str) -> Result<(), PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let mut seen = BTreeSet::new();
        for (stage, gates) in [
            ("stages.ci", &self.stages.ci),
            ("stages.staging", &self.stages.staging),
        ] {
            for gate in gates {
                if !KNOWN_GATES.contains(&gate.as_str()) {
                    return Err(invalid(format!(
                        "{stage}: unknown gate {gate:?} (known gates: {})",
                        KNOWN_GATES.join(", ")
                    )));
                }
                if !seen.insert(gate.clone()) {
                    return Err(invalid(format!(
                        "{stage}: gate {gate:?} is listed more than once"
                    )));
                }
            }
        }
        for (i, s) in self.security.severities.iter().enumerate() {
            if !TRIVY_SEVERITIES.contains(&s.as_str()) {
                return Err(invalid(format!(
                    "security.severities[{i}]: {s:?} is not a Trivy severity ({})",
                    TRIVY_SEVERITIES.join(", ")
                )));
            }
        }
        let l = &self.latency;
        bounds::max_regression(l.max_regression)
            .map_err(|e| invalid(format!("latency.max_regression: {e}")))?;
        bounds::max_failure_ratio(l.max_failure_ratio)
            .map_err(|e| invalid(format!("latency.max_failure_ratio: {e}")))?;
        if l.query.trim().is_empty() {
            return Err(invalid("latency.query: must not be empty".into()));
        }
        parse_duration(&l.range).map_err(|e| invalid(format!("latency.range: {e}")))?;
        if let Some(b) = l.baseline_p95_ms {
            bounds::baseline_p95_ms(b)
                .map_err(|e| invalid(format!("latency.baseline_p95_ms: {e}")))?;
        }
        bounds::threshold_pp(self.eval.threshold_pp)
            .map_err(|e| invalid(format!("eval.threshold_pp: {e}")))?;
        if !["local", "gemini", "openai"].contains(&self.eval.judge.as_str()) {
            return Err(invalid(format!(
                "eval.judge: unknown judge {:?} (local, gemini, openai)",
                self.eval.judge
            )));
        }
        bounds::ngram_threshold(self.prompt.ngram_threshold)
            .map_err(|e| invalid(format!("prompt.ngram_threshold: {e}")))?;
        if self.run.timeout_secs == 0 {
            return Err(invalid("run.timeout_secs: must be at least 1".into()));
        }
        self.ct.validate().map_err(invalid)?;
        self.monitoring.validate().map_err(invalid)?;
        Ok(())
    }

    /// A policy that runs only the schema gate in CI (for setups without agent evidence).
    pub fn schema_only() -> Self {
        let mut p = Self::default();
        p.stages.ci = GateName::new("schema").into_iter().collect();
        p
    }

    pub fn gates(&self, stage: Stage) -> &[GateName] {
        match stage {
            Stage::Ci => &self.stages.ci,
            Stage::Staging => &self.stages.staging,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_every_gate_in_ci() {
        let p = Policy::from_toml("", "vaia.toml").unwrap();
        assert_eq!(p, Policy::default());
        let ci: Vec<&str> = p.stages.ci.iter().map(|g| g.as_str()).collect();
        assert_eq!(ci, ["schema", "prompt", "eval", "security", "latency"]);
        assert_eq!(p.prompt.max_leaks, 0);
        assert_eq!(p.eval.threshold_pp, 2.0);
        assert_eq!(p.eval.on_inconclusive, OnInconclusive::Fail);
        assert_eq!(Policy::schema_only().stages.ci.len(), 1);
        let q = Policy::from_toml(
            "[prompt]\nmax_leaks = 2\n[eval]\nthreshold_pp = 1.5\njudge = \"gemini\"\non_inconclusive = \"inconclusive\"\n",
            "x",
        )
        .unwrap();
        assert_eq!((q.prompt.max_leaks, q.eval.threshold_pp), (2, 1.5));
        assert!(Policy::from_toml("[eval]\njudge = \"gpt\"\n", "x").is_err());
        assert!(Policy::from_toml("[eval]\nthreshold = 1\n", "x").is_err());
        assert_eq!(p.security.severities, ["CRITICAL"]);
        assert!(!p.security.ignore_unfixed);
        assert_eq!(p.latency.max_regression, 0.15);
        assert_eq!(p.latency.min_requests, 100);
        assert_eq!(p.latency.max_failure_ratio, 0.05);
        assert_eq!(p.latency.query, DEFAULT_LATENCY_QUERY);
        assert_eq!(p.latency.range, "1h");
        assert_eq!(p.latency.aggregate, Aggregate::Median);
        assert!(p.latency.baseline_p95_ms.is_none());
        assert!(p.stages.staging.is_empty());
        assert!(!p.schema.allow_major);
        assert_eq!(p.run.timeout_secs, 3600);
    }

    #[test]
    fn refuses_typos_and_unknown_gates() {
        let e = Policy::from_toml("[schema]\nallow_majr = true\n", "vaia.toml").unwrap_err();
        assert!(
            e.to_string().contains("vaia.toml") && e.to_string().contains("allow_majr"),
            "{e}"
        );
        let e = Policy::from_toml("[stages]\nci = [\"latncy\"]\n", "x.toml").unwrap_err();
        assert!(e.to_string().contains("unknown gate"), "{e}");
        let e = Policy::from_toml(
            "[stages]\nci = [\"schema\"]\nstaging = [\"schema\"]\n",
            "x.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("more than once"), "{e}");
    }

    #[test]
    fn staging_can_take_the_schema_gate() {
        let p = Policy::from_toml("[stages]\nci = []\nstaging = [\"schema\"]\n", "x").unwrap();
        assert!(p.gates(Stage::Ci).is_empty());
        assert_eq!(p.gates(Stage::Staging)[0].as_str(), "schema");
    }

    #[test]
    fn release_gate_sections_are_typed_and_checked() {
        let p = Policy::from_toml(
            "[security]\nseverities = [\"HIGH\", \"CRITICAL\"]\nignore_unfixed = true\n\
             [latency]\nmax_regression = 0.1\nrange = \"30m\"\naggregate = \"max\"\nbaseline_p95_ms = 250.0\nendpoints = [\"POST /chat\"]\n",
            "vaia.toml",
        )
        .unwrap();
        assert_eq!(p.security.severities, ["HIGH", "CRITICAL"]);
        assert!(p.security.ignore_unfixed);
        assert_eq!(p.latency.max_regression, 0.1);
        assert_eq!(p.latency.aggregate, Aggregate::Max);
        assert_eq!(p.latency.baseline_p95_ms, Some(250.0));
        for (bad, needle) in [
            (
                "[security]\nseverities = [\"critical\"]\n",
                "security.severities[0]",
            ),
            ("[security]\nignore_unfxed = true\n", "ignore_unfxed"),
            (
                "[latency]\nmax_regression = -0.1\n",
                "latency.max_regression",
            ),
            (
                "[latency]\nmax_failure_ratio = 2.0\n",
                "latency.max_failure_ratio",
            ),
            ("[latency]\nrange = \"an hour\"\n", "latency.range"),
            ("[latency]\naggregate = \"p99\"\n", "aggregate"),
            (
                "[latency]\nbaseline_p95_ms = 0.0\n",
                "latency.baseline_p95_ms",
            ),
        ] {
            let e = Policy::from_toml(bad, "vaia.toml").unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        assert_eq!(parse_duration("1h30m").unwrap(), 5400.0);
        assert_eq!(parse_duration("500ms").unwrap(), 0.5);
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn ct_section_is_typed_checked_and_refuses_unknown_keys() {
        let p = Policy::from_toml(
            "[ct]\nthreshold = 0.5\nrows_scale = 2000\ndrift_source = \"report\"\nmax_drift_age = \"30m\"\n",
            "vaia.toml",
        )
        .unwrap();
        assert_eq!(p.ct.threshold, 0.5);
        assert_eq!(p.ct.rows_scale, 2000);
        assert_eq!(p.ct.drift_source, crate::ct::DriftSource::Report);
        assert_eq!(p.ct.max_drift_age_secs(), 1800.0);
        assert_eq!(Policy::default().ct.threshold, crate::ct::DEFAULT_THRESHOLD);
        for (bad, needle) in [
            ("[ct]\nthreshhold = 0.5\n", "threshhold"),
            ("[ct]\nthreshold = 0.0\n", "ct.threshold"),
            ("[ct]\ndrift_weight = -1.0\n", "ct.drift_weight"),
            ("[ct]\nrows_scale = 0\n", "ct.rows_scale"),
            ("[ct]\nmax_drift_age = \"soon\"\n", "ct.max_drift_age"),
            ("[ct]\ndrift_source = \"grafana\"\n", "drift_source"),
            (
                "[ct]\ndrift_weight = 0.0\ndata_weight = 0.0\n",
                "at least one",
            ),
        ] {
            let e = Policy::from_toml(bad, "vaia.toml").unwrap_err().to_string();
            assert!(e.contains("vaia.toml") && e.contains(needle), "{bad}: {e}");
        }
    }
}
