//! The baseline's one piece of I/O: Prometheus's range query (`GET /api/v1/query_range`)
//! behind [`RangeQuery`], so that the gate stays testable with a fake and runs for real
//! over HTTP ([`PrometheusHttp`]).
//!
//! Response shape (Prometheus HTTP API v1):
//! `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{..},"values":[[<unix s>,"<value>"],..]}]}}`,
//! or `{"status":"error","errorType":"bad_data","error":".."}` (with HTTP 400/422/503).

use async_trait::async_trait;
use serde::Deserialize;
use std::time::Duration;

/// Why the range query gave no answer (the gate's outcome is `error`, never a pass).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("cannot reach Prometheus at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Prometheus at {url} refused the query ({error_type}): {error}")]
    Refused {
        url: String,
        error_type: String,
        error: String,
    },
    #[error("Prometheus at {url} answered something else than a range query result: {reason}")]
    BadAnswer { url: String, reason: String },
}

/// One range query: PromQL, start and end in Unix seconds, step in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeRequest {
    pub query: String,
    pub start: f64,
    pub end: f64,
    pub step: f64,
}

/// A matrix: one `(timestamp, value)` list per series. Values can be NaN or infinite.
pub type Matrix = Vec<Vec<(f64, f64)>>;

#[async_trait]
pub trait RangeQuery: Send + Sync {
    /// Where the query goes, for the verdict (`http://host:9090`).
    fn describe(&self) -> String;
    async fn query_range(&self, request: &RangeRequest) -> Result<Matrix, QueryError>;
}

/// Prometheus over HTTP.
#[derive(Debug, Clone)]
pub struct PrometheusHttp {
    base: String,
    client: reqwest::Client,
}

impl PrometheusHttp {
    /// `base` is the server's URL (`http://127.0.0.1:9090`), with or without a path prefix.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, QueryError> {
        let client = crate::http::client_builder()
            .timeout(timeout)
            .build()
            .map_err(|e| QueryError::Unreachable {
                url: base.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            client,
        })
    }
}

#[async_trait]
impl RangeQuery for PrometheusHttp {
    fn describe(&self) -> String {
        self.base.clone()
    }

    async fn query_range(&self, r: &RangeRequest) -> Result<Matrix, QueryError> {
        let endpoint = format!("{}/api/v1/query_range", self.base);
        let url = reqwest::Url::parse_with_params(
            &endpoint,
            &[
                ("query", r.query.clone()),
                ("start", format!("{:.3}", r.start)),
                ("end", format!("{:.3}", r.end)),
                ("step", format!("{}", r.step)),
            ],
        )
        .map_err(|e| QueryError::Unreachable {
            url: endpoint.clone(),
            reason: format!("not a URL: {e}"),
        })?;
        let unreachable = |e: reqwest::Error| QueryError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        };
        let resp = self.client.get(url).send().await.map_err(unreachable)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(unreachable)?;
        parse_matrix(&self.base, status.as_u16(), &body)
    }
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Reads a `query_range` answer (`status` is the HTTP status, for the error text).
pub fn parse_matrix(url: &str, status: u16, body: &[u8]) -> Result<Matrix, QueryError> {
    let bad = |reason: String| QueryError::BadAnswer {
        url: url.to_string(),
        reason,
    };
    let answer: Answer = serde_json::from_slice(body).map_err(|e| {
        let head = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        bad(format!("HTTP {status}, not the API's JSON ({e}): {head}"))
    })?;
    if answer.status != "success" {
        return Err(QueryError::Refused {
            url: url.to_string(),
            error_type: answer
                .error_type
                .unwrap_or_else(|| format!("HTTP {status}")),
            error: answer.error.unwrap_or_default(),
        });
    }
    let data = answer.data.ok_or_else(|| bad("no data".into()))?;
    if data.result_type != "matrix" {
        return Err(bad(format!(
            "result type {:?}, expected \"matrix\"",
            data.result_type
        )));
    }
    data.result
        .into_iter()
        .map(|s| {
            s.values
                .into_iter()
                .map(|(t, v)| {
                    // Prometheus writes NaN, +Inf and -Inf as those strings; Rust parses them.
                    v.parse::<f64>()
                        .map(|v| (t, v))
                        .map_err(|_| bad(format!("value {v:?} at {t} is not a number")))
                })
                .collect()
        })
        .collect()
}
