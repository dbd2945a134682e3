//! Drift scores: the [`DriftSource`] port; the `report` source, the newest drift report
//! JSON under `drift/<owner>/<repo>/` in the artifacts bucket; and the `prometheus` source,
//! the drift monitor's gauge read from the deployment's Prometheus ([`PrometheusDrift`]). Reads Evidently's
//! data-drift report (0.4's `DatasetDriftMetric`, 0.7's `DriftedColumnsCount`: the share
//! of drifted columns) and a plain `{"drift_score": x, "computed_at": "RFC 3339"}`.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;
use std::sync::Arc;
use vaia_core::ports::{BlobStore, Bounded, Clock};
use vaia_core::Repository;
use vaia_gates::latency::prometheus::{RangeQuery, RangeRequest};

/// A drift score as read; validity (range, staleness) is the budget's to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReading {
    pub score: f64,
    pub computed_at: Option<DateTime<Utc>>,
    /// Where it came from (a blob key, a query).
    pub origin: String,
}

/// Why no drift score could be read: the evaluation is an `error` with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriftError {
    #[error("{0}")]
    Missing(String),
    #[error("{origin}: {path}: {message}")]
    Shape {
        origin: String,
        path: String,
        message: String,
    },
    #[error("{0}")]
    Unreachable(String),
}

/// A deployment's drift monitor (the DriftMonitorConfig's source).
#[async_trait]
pub trait DriftSource: Send + Sync {
    async fn read(&self, repo: &Repository) -> Result<DriftReading, DriftError>;
}

/// Largest drift report read (Evidently's JSON with every column's statistics is a few
/// megabytes for a wide table).
pub const MAX_REPORT_BYTES: u64 = 32 * 1024 * 1024;

/// `drift/<owner>/<repo>/`.
pub fn drift_prefix(repo: &Repository) -> String {
    format!("drift/{repo}/")
}

/// Where a drift report computed at `computed_at` goes: `drift/<owner>/<repo>/<UTC time>.json`
/// (`20261202T125500Z.json`), so that later reports sort after it.
pub fn report_key(
    repo: &Repository,
    computed_at: chrono::DateTime<chrono::Utc>,
) -> Result<vaia_core::BlobKey, vaia_core::IdError> {
    vaia_core::BlobKey::new(format!(
        "{}{}.json",
        drift_prefix(repo),
        computed_at.format("%Y%m%dT%H%M%SZ")
    ))
}

/// A plain drift report: `{"drift_score": score, "computed_at": ...}`.
pub fn plain_report(score: f64, computed_at: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    serde_json::json!({"drift_score": score, "computed_at": computed_at.to_rfc3339()})
        .to_string()
        .into_bytes()
}

/// The newest report under [`drift_prefix`]: reports are named so that they sort by
/// time (a compact UTC time such as `20261202T125500Z.json`, or epoch seconds), and the
/// last key is read.
pub struct ReportDrift {
    pub blobs: Arc<dyn BlobStore>,
}

#[async_trait]
impl DriftSource for ReportDrift {
    async fn read(&self, repo: &Repository) -> Result<DriftReading, DriftError> {
        let prefix = drift_prefix(repo);
        let listed = self
            .blobs
            .list(&prefix)
            .await
            .map_err(|e| DriftError::Unreachable(format!("listing {prefix}: {e}")))?;
        let Some(newest) = listed.iter().rfind(|m| m.key.as_str().ends_with(".json")) else {
            return Err(DriftError::Missing(format!(
                "no drift report under {prefix}"
            )));
        };
        let read = self
            .blobs
            .get_at_most(&newest.key, MAX_REPORT_BYTES)
            .await
            .map_err(|e| DriftError::Unreachable(format!("reading {}: {e}", newest.key)))?
            .ok_or_else(|| DriftError::Missing(format!("{} vanished", newest.key)))?;
        let Bounded::Bytes(bytes) = read else {
            return Err(DriftError::Shape {
                origin: newest.key.to_string(),
                path: "$".into(),
                message: format!("over the limit of {MAX_REPORT_BYTES} bytes for a drift report"),
            });
        };
        parse_report(&bytes, newest.key.as_str())
    }
}

/// The `prometheus` source: the newest sample of `ct.drift_query` within the last
/// `ct.max_drift_age`, through the same range-query client as the latency gate (the
/// deployment's `VAIA_PROMETHEUS_URL`). `{repository}` in the query is replaced by the
/// repository (`owner/name`), so one Prometheus can serve several agents. No sample in the
/// window is `Missing` (a gauge nobody updates is stale, never zero); more than one series
/// is a shape error, since the score must be one number.
pub struct PrometheusDrift {
    pub client: Arc<dyn RangeQuery>,
    pub query: String,
    pub max_age_secs: f64,
    pub clock: Arc<dyn Clock>,
}

/// Step of the range query: the score's resolution in the window.
const PROMETHEUS_STEP_SECS: f64 = 15.0;

#[async_trait]
impl DriftSource for PrometheusDrift {
    async fn read(&self, repo: &Repository) -> Result<DriftReading, DriftError> {
        let query = self.query.replace("{repository}", repo.as_str());
        let end = self.clock.now().timestamp_millis() as f64 / 1000.0;
        let request = RangeRequest {
            query: query.clone(),
            start: end - self.max_age_secs.max(PROMETHEUS_STEP_SECS),
            end,
            step: PROMETHEUS_STEP_SECS,
        };
        let origin = format!("{} {query}", self.client.describe());
        let matrix = self
            .client
            .query_range(&request)
            .await
            .map_err(|e| DriftError::Unreachable(e.to_string()))?;
        let series: Vec<&Vec<(f64, f64)>> = matrix.iter().filter(|s| !s.is_empty()).collect();
        let samples = match series.as_slice() {
            [] => {
                return Err(DriftError::Missing(format!(
                    "{origin}: no sample in the last {} s",
                    self.max_age_secs
                )))
            }
            [one] => one,
            many => {
                return Err(DriftError::Shape {
                    origin,
                    path: "result".into(),
                    message: format!(
                        "{} series; the drift query must give one (aggregate it, e.g. max(...))",
                        many.len()
                    ),
                })
            }
        };
        let Some(&(at, score)) = samples.iter().max_by(|a, b| a.0.total_cmp(&b.0)) else {
            return Err(DriftError::Missing(format!("{origin}: no sample")));
        };
        Ok(DriftReading {
            score,
            computed_at: DateTime::from_timestamp_millis((at * 1000.0) as i64),
            origin,
        })
    }
}

/// A drift source this deployment cannot read: every evaluation is an `error` with the
/// reason, so nothing is queued on a score nobody measured.
pub struct Unconfigured {
    pub reason: String,
}

impl Unconfigured {
    /// `drift_source = "prometheus"` with no Prometheus configured.
    pub fn prometheus(setting: &str) -> Self {
        Self {
            reason: format!(
                "ct.drift_source = \"prometheus\" but no Prometheus is configured ({setting}); \
                 configure it, or set ct.drift_source = \"report\" and write drift reports under drift/<owner>/<repo>/"
            ),
        }
    }
}

#[async_trait]
impl DriftSource for Unconfigured {
    async fn read(&self, _: &Repository) -> Result<DriftReading, DriftError> {
        Err(DriftError::Unreachable(self.reason.clone()))
    }
}

/// The drift source `policy.drift_source` names: reports in `blobs`, or `prometheus` (the
/// deployment's, `VAIA_PROMETHEUS_URL`; without one every evaluation says so).
pub fn from_policy(
    policy: &vaia_core::ct::CtPolicy,
    blobs: Arc<dyn BlobStore>,
    prometheus: Option<Arc<dyn RangeQuery>>,
    clock: Arc<dyn Clock>,
) -> Arc<dyn DriftSource> {
    match (policy.drift_source, prometheus) {
        (vaia_core::ct::DriftSource::Report, _) => Arc::new(ReportDrift { blobs }),
        (vaia_core::ct::DriftSource::Prometheus, Some(client)) => Arc::new(PrometheusDrift {
            client,
            query: policy.drift_query.clone(),
            max_age_secs: policy.max_drift_age_secs(),
            clock,
        }),
        (vaia_core::ct::DriftSource::Prometheus, None) => {
            Arc::new(Unconfigured::prometheus("VAIA_PROMETHEUS_URL"))
        }
    }
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            // Evidently writes naive ISO times (UTC), with `T` or a space.
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                .map(|n| n.and_utc())
        })
}

/// Reads a drift report; errors name `origin` and the JSON path.
pub fn parse_report(bytes: &[u8], origin: &str) -> Result<DriftReading, DriftError> {
    let shape = |path: &str, message: String| DriftError::Shape {
        origin: origin.to_string(),
        path: path.to_string(),
        message,
    };
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
        shape(
            "$",
            format!("not JSON (line {}, column {}): {e}", e.line(), e.column()),
        )
    })?;
    let Some(obj) = doc.as_object() else {
        return Err(shape("$", "expected an object".into()));
    };
    let computed_at = |key: &str| -> Result<Option<DateTime<Utc>>, DriftError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => time(v)
                .map(Some)
                .ok_or_else(|| shape(&format!("$.{key}"), format!("{v} is not a time"))),
        }
    };
    let number = |path: &str, v: Option<&Value>| -> Result<f64, DriftError> {
        v.and_then(Value::as_f64)
            .ok_or_else(|| shape(path, "expected a number".into()))
    };
    if obj.contains_key("drift_score") {
        return Ok(DriftReading {
            score: number("$.drift_score", obj.get("drift_score"))?,
            computed_at: computed_at("computed_at")?,
            origin: origin.to_string(),
        });
    }
    let Some(metrics) = obj.get("metrics").and_then(Value::as_array) else {
        return Err(shape(
            "$",
            "neither a plain report (`drift_score`) nor an Evidently report (`metrics`)".into(),
        ));
    };
    for (i, m) in metrics.iter().enumerate() {
        let name = m.get("metric").and_then(Value::as_str);
        if matches!(name, Some("DatasetDriftMetric" | "DataDriftTable")) {
            let path = format!("$.metrics[{i}].result.share_of_drifted_columns");
            let share = m
                .get("result")
                .and_then(|r| r.get("share_of_drifted_columns"));
            return Ok(DriftReading {
                score: number(&path, share)?,
                computed_at: computed_at("timestamp")?,
                origin: origin.to_string(),
            });
        }
        let id = m.get("metric_id").and_then(Value::as_str).unwrap_or("");
        if id.starts_with("DriftedColumnsCount") {
            let path = format!("$.metrics[{i}].value.share");
            let share = m.get("value").and_then(|v| v.get("share"));
            return Ok(DriftReading {
                score: number(&path, share)?,
                computed_at: computed_at("timestamp")?,
                origin: origin.to_string(),
            });
        }
    }
    Err(shape(
        "$.metrics",
        "no data-drift metric (DatasetDriftMetric, DataDriftTable or DriftedColumnsCount)".into(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn evidently_reports_of_both_generations() {
        let r = parse_report(
            include_bytes!("../tests/fixtures/evidently-0.4-report.json"),
            "drift/o/r/a.json",
        )
        .unwrap();
        assert_eq!(r.score, 0.375);
        assert_eq!(
            r.computed_at.unwrap().to_rfc3339(),
            "2026-12-02T12:30:00+00:00"
        );
        let r = parse_report(
            include_bytes!("../tests/fixtures/evidently-0.7-report.json"),
            "b.json",
        )
        .unwrap();
        assert_eq!(r.score, 0.625);
        assert!(r.computed_at.is_some());
    }

    struct Fake {
        answer: Result<vaia_gates::latency::prometheus::Matrix, String>,
        seen: std::sync::Mutex<Vec<RangeRequest>>,
    }

    #[async_trait]
    impl RangeQuery for Fake {
        fn describe(&self) -> String {
            "http://prom:9090".into()
        }
        async fn query_range(
            &self,
            r: &RangeRequest,
        ) -> Result<
            vaia_gates::latency::prometheus::Matrix,
            vaia_gates::latency::prometheus::QueryError,
        > {
            self.seen.lock().unwrap().push(r.clone());
            self.answer.clone().map_err(|reason| {
                vaia_gates::latency::prometheus::QueryError::Unreachable {
                    url: "http://prom:9090".into(),
                    reason,
                }
            })
        }
    }

    fn prometheus(
        answer: Result<vaia_gates::latency::prometheus::Matrix, String>,
    ) -> (PrometheusDrift, Arc<Fake>) {
        let fake = Arc::new(Fake {
            answer,
            seen: Default::default(),
        });
        let clock = Arc::new(vaia_core::memory::ManualClock::new(
            DateTime::from_timestamp(1_000_000, 0).unwrap(),
        ));
        (
            PrometheusDrift {
                client: fake.clone(),
                query: "max(agent_drift_score{repository=\"{repository}\"})".into(),
                max_age_secs: 3600.0,
                clock,
            },
            fake,
        )
    }

    #[tokio::test]
    async fn prometheus_gives_the_newest_sample_of_one_series() {
        let repo = Repository::new("octo/agent").unwrap();
        let (p, fake) = prometheus(Ok(vec![vec![(999_000.0, 0.2), (999_900.0, 0.7)]]));
        let r = p.read(&repo).await.unwrap();
        assert_eq!(r.score, 0.7);
        assert_eq!(r.computed_at.unwrap().timestamp(), 999_900);
        assert!(r.origin.contains("octo/agent"), "{}", r.origin);
        let seen = fake.seen.lock().unwrap()[0].clone();
        assert_eq!(
            seen.query,
            "max(agent_drift_score{repository=\"octo/agent\"})"
        );
        assert_eq!((seen.start, seen.end), (1_000_000.0 - 3600.0, 1_000_000.0));
        // No sample in the window, two series, an unreachable server: errors, never zero.
        let e = prometheus(Ok(vec![vec![]]))
            .0
            .read(&repo)
            .await
            .unwrap_err();
        assert!(matches!(e, DriftError::Missing(_)), "{e}");
        let e = prometheus(Ok(vec![vec![(1.0, 0.1)], vec![(1.0, 0.2)]]))
            .0
            .read(&repo)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("2 series"), "{e}");
        let e = prometheus(Err("connection refused".into()))
            .0
            .read(&repo)
            .await
            .unwrap_err();
        assert!(matches!(e, DriftError::Unreachable(_)), "{e}");
        assert!(e.to_string().contains("connection refused"), "{e}");
    }

    #[test]
    fn plain_reports_and_wrong_shapes() {
        let r = parse_report(
            br#"{"drift_score": 0.2, "computed_at": "2026-12-02T12:00:00Z"}"#,
            "p.json",
        )
        .unwrap();
        assert_eq!(r.score, 0.2);
        for (bad, needle) in [
            (&b"{"[..], "p.json: $: not JSON"),
            (
                br#"{"drift_score": "high"}"#,
                "$.drift_score: expected a number",
            ),
            (
                br#"{"drift_score": 0.1, "computed_at": "yesterday"}"#,
                "$.computed_at",
            ),
            (br#"{"metrics": []}"#, "$.metrics: no data-drift metric"),
            (
                br#"{"metrics": [{"metric": "DatasetDriftMetric", "result": {}}]}"#,
                "$.metrics[0].result.share_of_drifted_columns",
            ),
            (br#"[1]"#, "expected an object"),
            (br#"{"score": 1}"#, "neither a plain report"),
        ] {
            let e = parse_report(bad, "p.json").unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
