//! The latency gate: is the candidate's p95 under load more than `max_regression` (15 %)
//! slower than production's?
//!
//! - Candidate: the p95 of a Locust run ([`locust`]): the `Aggregated` row of
//!   `*_stats.csv`, or the endpoints the policy names; `*_stats_history.csv` too.
//! - Baseline: production's p95 from Prometheus ([`prometheus`]): a range query (default
//!   [`DEFAULT_QUERY`] over the last [`DEFAULT_RANGE`]) whose steps are aggregated by
//!   median (or mean, max, last); or a fixed number of milliseconds.
//! - Fail when candidate > baseline × (1 + `max_regression`).
//! - Noise is not a pass: fewer requests than `min_requests`, a failure ratio over
//!   `max_failure_ratio`, no candidate p95, or an empty, NaN or zero baseline gives
//!   `inconclusive` with every reason; an unreachable or refusing Prometheus gives `error`.
//!
//! The verdict reports both numbers, the ratio, the request and failure counts, and the
//! query, range and step used. [`evaluate`] is pure; [`prometheus_baseline`] does the I/O.

pub mod locust;
pub mod prometheus;

use locust::CandidateStats;
use prometheus::{RangeQuery, RangeRequest};
use serde_json::json;
use vaia_core::{Finding, GateName, Outcome, Severity, Verdict};

pub const GATE: &str = "latency";
pub const DEFAULT_QUERY: &str = vaia_core::policy::DEFAULT_LATENCY_QUERY;
pub const DEFAULT_RANGE: &str = "1h";

/// A Locust file: `origin` names it in errors (a path or blob key).
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub origin: &'a str,
    pub bytes: &'a [u8],
}

/// The input cannot be read at all (the CLI exits 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{origin}:{line}: {reason}")]
    Csv {
        origin: String,
        line: u64,
        reason: String,
    },
    #[error("{origin} at {path}: {reason}")]
    Format {
        origin: String,
        path: String,
        reason: String,
    },
    #[error("{what}: {reason}")]
    Option { what: String, reason: String },
}

pub use vaia_core::policy::Aggregate;

/// Aggregates the (finite) step values; `None` for none.
pub fn aggregate(how: Aggregate, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(match how {
        Aggregate::Median => {
            let mut v = values.to_vec();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        }
        Aggregate::Mean => values.iter().sum::<f64>() / values.len() as f64,
        Aggregate::Max => values.iter().copied().fold(f64::MIN, f64::max),
        Aggregate::Last => values[values.len() - 1],
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct LatencyOptions {
    pub max_regression: f64,
    pub min_requests: u64,
    pub max_failure_ratio: f64,
}

impl Default for LatencyOptions {
    fn default() -> Self {
        Self {
            max_regression: 0.15,
            min_requests: 100,
            max_failure_ratio: 0.05,
        }
    }
}

/// Production's p95, however it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub enum Baseline {
    /// Given by the user or the policy.
    Fixed { p95_ms: f64 },
    /// From a range query. `p95_ms` is `None` when no step had a number.
    Prometheus {
        source: String,
        query: String,
        range: String,
        start: f64,
        end: f64,
        step: f64,
        aggregate: Aggregate,
        series: usize,
        samples: usize,
        /// Steps whose value was NaN or infinite (no traffic in the window).
        not_a_number: usize,
        p95_ms: Option<f64>,
    },
    /// No baseline could be had; the reason says why (`error`, never a pass).
    Unavailable {
        reason: String,
        query: Option<String>,
        range: Option<String>,
    },
}

/// Prometheus's `histogram_quantile` over one histogram's cumulative buckets
/// (`(le, count)`, any order, `+Inf` included): linear interpolation inside the bucket
/// holding the rank, the lower bound of the first bucket taken as 0. `None` without
/// observations or without a `+Inf` bucket.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let &(last_le, total) = b.last()?;
    if last_le != f64::INFINITY || total.is_nan() || total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total;
    let i = b.iter().position(|(_, c)| *c >= rank)?;
    if i == b.len() - 1 {
        // In the +Inf bucket: the highest finite bound, as Prometheus answers.
        return b.len().checked_sub(2).map(|j| b[j].0);
    }
    let (lower, below) = if i == 0 { (0.0, 0.0) } else { b[i - 1] };
    let (upper, count) = b[i];
    if count - below <= 0.0 {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below) / (count - below))
}

/// The p95 in seconds of `metric` (a histogram, summed over its label sets like
/// `sum by (le)`) in a Prometheus text exposition; `None` when absent or empty.
pub fn p95_from_exposition(text: &str, metric: &str) -> Option<f64> {
    let prefix = format!("{metric}_bucket{{");
    let mut by_le: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let le = labels
            .split(',')
            .find_map(|l| l.trim().strip_prefix("le=\""))
            .map(|v| v.trim_end_matches('"').to_string());
        let count = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok());
        if let (Some(le), Some(count)) = (le, count) {
            *by_le.entry(le).or_default() += count;
        }
    }
    let buckets: Vec<(f64, f64)> = by_le
        .into_iter()
        .filter_map(|(le, c)| {
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, c))
        })
        .collect();
    histogram_quantile(0.95, &buckets)
}

/// Parses a Prometheus duration (`90s`, `5m`, `1h30m`) into seconds.
pub fn parse_duration(text: &str) -> Result<f64, InputError> {
    vaia_core::policy::parse_duration(text).map_err(|reason| InputError::Option {
        what: "range".into(),
        reason,
    })
}

/// The step for a range: about 120 points, at least 1 s.
pub fn default_step(range_secs: f64) -> f64 {
    (range_secs / 120.0).ceil().max(1.0)
}

/// What to ask Prometheus: `query` over `range` (a duration) ending at `end` (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineQuery {
    pub query: String,
    pub range: String,
    pub end: f64,
    /// `None`: [`default_step`].
    pub step: Option<f64>,
    pub aggregate: Aggregate,
}

/// Asks `source` for the baseline. Never fails: an unreachable server is a
/// [`Baseline::Unavailable`] with the reason, a bad `range` an [`InputError`].
pub async fn prometheus_baseline(
    source: &dyn RangeQuery,
    q: &BaselineQuery,
) -> Result<Baseline, InputError> {
    let range_secs = parse_duration(&q.range)?;
    let step = q.step.unwrap_or_else(|| default_step(range_secs));
    let request = RangeRequest {
        query: q.query.clone(),
        start: q.end - range_secs,
        end: q.end,
        step,
    };
    let matrix = match source.query_range(&request).await {
        Ok(m) => m,
        Err(e) => {
            return Ok(Baseline::Unavailable {
                reason: e.to_string(),
                query: Some(q.query.clone()),
                range: Some(q.range.clone()),
            })
        }
    };
    let all: Vec<f64> = matrix.iter().flatten().map(|(_, v)| *v).collect();
    let finite: Vec<f64> = all.iter().copied().filter(|v| v.is_finite()).collect();
    Ok(Baseline::Prometheus {
        source: source.describe(),
        query: q.query.clone(),
        range: q.range.clone(),
        start: request.start,
        end: request.end,
        step,
        aggregate: q.aggregate,
        series: matrix.len(),
        samples: all.len(),
        not_a_number: all.len() - finite.len(),
        // The default query is in seconds, as Prometheus histograms are.
        p95_ms: aggregate(q.aggregate, &finite).map(|s| s * 1000.0),
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Judges the candidate against the baseline.
pub fn evaluate(candidate: &CandidateStats, baseline: &Baseline, opts: &LatencyOptions) -> Verdict {
    let mut verdict = Verdict::new(gate_name(), Outcome::Pass, String::new())
        .metric("candidate_source", candidate.format)
        .metric("candidate_rows", json!(candidate.rows))
        .metric("requests", candidate.requests)
        .metric("failures", candidate.failures)
        .metric("max_regression", opts.max_regression)
        .metric("min_requests", opts.min_requests)
        .metric("max_failure_ratio", opts.max_failure_ratio);
    let failure_ratio = if candidate.requests == 0 {
        0.0
    } else {
        candidate.failures as f64 / candidate.requests as f64
    };
    verdict = verdict.metric("failure_ratio", round3(failure_ratio * 1000.0) / 1000.0);
    if let Some(c) = candidate.p95_ms {
        verdict = verdict.metric("candidate_p95_ms", round3(c));
    }

    let mut error = None;
    let mut noise: Vec<(&str, String)> = Vec::new();
    let baseline_ms = match baseline {
        Baseline::Fixed { p95_ms } => {
            verdict = verdict.metric("baseline_source", "fixed");
            Some(*p95_ms)
        }
        Baseline::Prometheus {
            source,
            query,
            range,
            start,
            end,
            step,
            aggregate,
            series,
            samples,
            not_a_number,
            p95_ms,
        } => {
            verdict = verdict
                .metric("baseline_source", "prometheus")
                .metric("prometheus", source.as_str())
                .metric("query", query.as_str())
                .metric("range", range.as_str())
                .metric("start", *start)
                .metric("end", *end)
                .metric("step", *step)
                .metric("aggregate", aggregate.as_str())
                .metric("baseline_series", *series)
                .metric("baseline_samples", *samples)
                .metric("baseline_nan_samples", *not_a_number);
            if p95_ms.is_none() {
                let why = if *samples == 0 {
                    format!("the baseline is empty: {query} returned no data over the last {range}")
                } else {
                    format!("the baseline is NaN: all {samples} steps of {query} over {range} are NaN or infinite (no traffic?)")
                };
                noise.push(("latency.baseline_empty", why));
            }
            *p95_ms
        }
        Baseline::Unavailable {
            reason,
            query,
            range,
        } => {
            verdict = verdict.metric("baseline_source", "prometheus");
            if let Some(q) = query {
                verdict = verdict.metric("query", q.as_str());
            }
            if let Some(r) = range {
                verdict = verdict.metric("range", r.as_str());
            }
            error = Some(reason.clone());
            None
        }
    };
    if let Some(b) = baseline_ms {
        verdict = verdict.metric("baseline_p95_ms", round3(b));
        if !(b.is_finite() && b > 0.0) {
            noise.push((
                "latency.baseline_empty",
                format!("the baseline p95 is {b} ms: nothing to compare with"),
            ));
        }
    }
    if candidate.requests < opts.min_requests {
        noise.push((
            "latency.too_few_requests",
            format!(
                "{} requests in the load test, fewer than the {} required",
                candidate.requests, opts.min_requests
            ),
        ));
    }
    if failure_ratio > opts.max_failure_ratio {
        noise.push((
            "latency.failure_ratio",
            format!(
                "{} of {} requests failed ({:.1} %), over the {:.1} % bound: response times of a failing service mean little",
                candidate.failures,
                candidate.requests,
                failure_ratio * 100.0,
                opts.max_failure_ratio * 100.0
            ),
        ));
    }
    if candidate.p95_ms.is_none() {
        noise.push((
            "latency.no_candidate_p95",
            format!(
                "Locust reported no p95 for {} (N/A)",
                candidate.rows.join(", ")
            ),
        ));
    }

    let limit = 1.0 + opts.max_regression;
    verdict = verdict.metric("threshold_ratio", round3(limit));
    let (outcome, summary) = if let Some(reason) = error {
        verdict.findings.push(Finding::new(
            "latency.baseline_unavailable",
            Severity::High,
            reason.clone(),
        ));
        (Outcome::Error, format!("no baseline: {reason}"))
    } else if !noise.is_empty() {
        let reasons: Vec<String> = noise.iter().map(|(_, r)| r.clone()).collect();
        for (rule, reason) in noise {
            verdict
                .findings
                .push(Finding::new(rule, Severity::Medium, reason));
        }
        (
            Outcome::Inconclusive,
            format!("inconclusive: {}", reasons.join("; ")),
        )
    } else {
        // Both numbers exist here: noise covers their absence.
        let c = candidate.p95_ms.unwrap_or_default();
        let b = baseline_ms.unwrap_or(1.0);
        let ratio = c / b;
        verdict = verdict.metric("ratio", round3(ratio));
        let text = format!(
            "candidate p95 {:.1} ms vs baseline {:.1} ms: ×{:.3} (limit ×{:.2}), {} requests, {} failed",
            c, b, ratio, limit, candidate.requests, candidate.failures
        );
        // A hair of tolerance: 172.5 ms against 150 ms is ×1.15 exactly, not a regression.
        if ratio - limit > 1e-9 {
            verdict.findings.push(
                Finding::new(
                    "latency.regression",
                    Severity::High,
                    format!(
                        "p95 regressed by {:.1} %, more than the {:.0} % allowed",
                        (ratio - 1.0) * 100.0,
                        opts.max_regression * 100.0
                    ),
                )
                .with_data(json!({ "candidate_p95_ms": c, "baseline_p95_ms": b, "ratio": ratio })),
            );
            (Outcome::Fail, format!("regression: {text}"))
        } else {
            (Outcome::Pass, text)
        }
    };
    verdict.outcome = outcome;
    verdict.summary = summary;
    verdict
}

#[allow(clippy::expect_used)]
fn gate_name() -> GateName {
    GateName::new(GATE).expect("\"latency\" is a valid gate name")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h").unwrap(), 3600.0);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400.0);
        assert_eq!(parse_duration("500ms").unwrap(), 0.5);
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn histogram_quantile_interpolates_like_prometheus() {
        let b = [
            (0.05, 50.0),
            (0.1, 90.0),
            (0.2, 100.0),
            (f64::INFINITY, 100.0),
        ];
        let q = histogram_quantile(0.95, &b).unwrap();
        assert!((q - 0.15).abs() < 1e-12, "{q}");
        assert_eq!(histogram_quantile(0.25, &b), Some(0.025));
        assert_eq!(
            histogram_quantile(0.95, &[(0.1, 0.0), (f64::INFINITY, 0.0)]),
            None
        );
        assert_eq!(histogram_quantile(0.95, &[(0.1, 1.0)]), None);
        assert_eq!(
            histogram_quantile(0.99, &[(0.1, 1.0), (f64::INFINITY, 100.0)]),
            Some(0.1)
        );
        let text = "# TYPE m histogram\nm_bucket{path=\"/a\",le=\"0.05\"} 25\nm_bucket{path=\"/b\",le=\"0.05\"} 25\n\
m_bucket{path=\"/a\",le=\"0.1\"} 45\nm_bucket{path=\"/b\",le=\"0.1\"} 45\nm_bucket{path=\"/a\",le=\"0.2\"} 50\n\
m_bucket{path=\"/b\",le=\"0.2\"} 50\nm_bucket{path=\"/a\",le=\"+Inf\"} 50\nm_bucket{path=\"/b\",le=\"+Inf\"} 50\nm_count 100\n";
        let q = p95_from_exposition(text, "m").unwrap();
        assert!((q - 0.15).abs() < 1e-12, "{q}");
        assert_eq!(p95_from_exposition(text, "other"), None);
    }

    #[test]
    fn aggregates() {
        assert_eq!(aggregate(Aggregate::Median, &[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(
            aggregate(Aggregate::Median, &[4.0, 1.0, 2.0, 3.0]),
            Some(2.5)
        );
        assert_eq!(aggregate(Aggregate::Mean, &[1.0, 2.0]), Some(1.5));
        assert_eq!(aggregate(Aggregate::Max, &[1.0, 2.0]), Some(2.0));
        assert_eq!(aggregate(Aggregate::Last, &[1.0, 2.0]), Some(2.0));
        assert_eq!(aggregate(Aggregate::Median, &[]), None);
    }
}
