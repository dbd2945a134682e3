//! The latency gate: Locust CSVs in the exact format Locust writes, baselines from a real
//! Prometheus server (see support/prometheus.rs) and from a fake [`RangeQuery`], and every
//! way the evidence can be too noisy to decide.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/prometheus.rs"]
mod prom;

use async_trait::async_trait;
use vaia_core::{Outcome, Verdict};
use vaia_gates::latency::locust::{self, CandidateStats};
use vaia_gates::latency::prometheus::{
    parse_matrix, Matrix, PrometheusHttp, QueryError, RangeQuery, RangeRequest,
};
use vaia_gates::latency::{
    evaluate, prometheus_baseline, Aggregate, Baseline, BaselineQuery, LatencyOptions,
    DEFAULT_QUERY,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/locust");

fn stats(name: &str, endpoints: &[&str]) -> CandidateStats {
    let bytes = std::fs::read(format!("{DIR}/{name}")).unwrap();
    let endpoints: Vec<String> = endpoints.iter().map(|s| s.to_string()).collect();
    locust::parse(name, &bytes, &endpoints).unwrap()
}

fn m(v: &Verdict, k: &str) -> serde_json::Value {
    v.metrics.get(k).cloned().unwrap_or_default()
}

fn fixed(ms: f64) -> Baseline {
    Baseline::Fixed { p95_ms: ms }
}

#[test]
fn locust_stats_aggregated_row_and_named_endpoints() {
    let s = stats("good_stats.csv", &[]);
    assert_eq!(s.format, "stats");
    assert_eq!((s.p95_ms, s.requests, s.failures), (Some(150.0), 1590, 2));
    let s = stats("good_stats.csv", &["/chat"]);
    assert_eq!((s.p95_ms, s.requests), (Some(160.0), 1180));
    // Two endpoints: counts add up, the p95 is the slowest one's.
    let s = stats("good_stats.csv", &["POST /chat", "GET /health"]);
    assert_eq!((s.p95_ms, s.requests, s.failures), (Some(160.0), 1590, 2));
    let h = stats("good_stats_history.csv", &[]);
    assert_eq!(h.format, "stats_history");
    assert_eq!((h.p95_ms, h.requests, h.failures), (Some(155.0), 1590, 2));
}

#[test]
fn locust_bad_input_names_file_and_line() {
    let e = locust::parse("x_stats.csv", b"a,b\r\n1,2\r\n", &[]).unwrap_err();
    assert!(e.to_string().starts_with("x_stats.csv:1:"), "{e}");
    let good = std::fs::read(format!("{DIR}/good_stats.csv")).unwrap();
    let text = String::from_utf8(good)
        .unwrap()
        .replace("1180,2,", "lots,2,");
    let e = locust::parse("s.csv", text.as_bytes(), &[]).unwrap_err();
    assert!(e.to_string().starts_with("s.csv:2:"), "{e}");
    let good = std::fs::read(format!("{DIR}/good_stats.csv")).unwrap();
    let e = locust::parse("s.csv", &good, &["/nope".into()]).unwrap_err();
    assert!(e.to_string().contains("/nope"), "{e}");
    // More failures than requests: Locust never writes that (a failure is also a request).
    let text = String::from_utf8(std::fs::read(format!("{DIR}/good_stats.csv")).unwrap())
        .unwrap()
        .replace("1180,2,", "1180,1181,");
    let e = locust::parse("s.csv", text.as_bytes(), &[]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("s.csv:2: Failure Count 1181 is more than Request Count 1180"),
        "{e}"
    );
    let cut = "Type,Name,Request Count,Failure Count\r\n,Aggregated,1\r\n";
    assert!(locust::parse("s.csv", cut.as_bytes(), &[]).is_err());
}

#[test]
fn regression_over_the_bound_fails_and_under_passes() {
    let o = LatencyOptions::default();
    let v = evaluate(&stats("good_stats.csv", &[]), &fixed(150.0), &o);
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
    assert_eq!(m(&v, "ratio"), 1.0);
    let v = evaluate(&stats("slow_stats.csv", &[]), &fixed(150.0), &o);
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
    assert_eq!(v.findings[0].rule, "latency.regression");
    assert_eq!(m(&v, "candidate_p95_ms"), 190.0);
    assert_eq!(m(&v, "baseline_p95_ms"), 150.0);
    assert_eq!(m(&v, "ratio"), 1.267);
    // The bound itself: 172.5 ms is ×1.15 of 150 and passes; the policy can tighten it.
    let mut s = stats("good_stats.csv", &[]);
    s.p95_ms = Some(172.5);
    assert_eq!(evaluate(&s, &fixed(150.0), &o).outcome, Outcome::Pass);
    s.p95_ms = Some(172.6);
    assert_eq!(evaluate(&s, &fixed(150.0), &o).outcome, Outcome::Fail);
    let strict = LatencyOptions {
        max_regression: 0.05,
        ..o
    };
    assert_eq!(
        evaluate(
            &stats("good_stats_history.csv", &[]),
            &fixed(150.0),
            &strict
        )
        .outcome,
        Outcome::Pass
    );
    assert_eq!(
        evaluate(
            &stats("good_stats_history.csv", &[]),
            &fixed(140.0),
            &strict
        )
        .outcome,
        Outcome::Fail
    );
}

#[test]
fn noise_is_inconclusive_with_the_reason() {
    let o = LatencyOptions::default();
    // Many failures: a third of the requests failed, and the p95 even looks fast.
    let v = evaluate(&stats("failing_stats.csv", &[]), &fixed(150.0), &o);
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.summary);
    assert!(
        v.summary.contains("389 of 1203 requests failed"),
        "{}",
        v.summary
    );
    assert_eq!(v.findings[0].rule, "latency.failure_ratio");
    // No requests at all: too few, and no p95.
    let v = evaluate(&stats("empty_stats.csv", &[]), &fixed(150.0), &o);
    assert_eq!(v.outcome, Outcome::Inconclusive);
    let rules: Vec<&str> = v.findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(
        rules,
        ["latency.too_few_requests", "latency.no_candidate_p95"]
    );
    // Too few for the policy.
    let strict = LatencyOptions {
        min_requests: 5000,
        ..o.clone()
    };
    let v = evaluate(&stats("good_stats.csv", &[]), &fixed(150.0), &strict);
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(v.summary.contains("1590 requests"), "{}", v.summary);
    // A zero baseline cannot be compared with.
    assert_eq!(
        evaluate(&stats("good_stats.csv", &[]), &fixed(0.0), &o).outcome,
        Outcome::Inconclusive
    );
}

/// A Prometheus that answers from a fixed matrix or error.
struct Fake(Result<Matrix, QueryError>);

#[async_trait]
impl RangeQuery for Fake {
    fn describe(&self) -> String {
        "fake".into()
    }
    async fn query_range(&self, _: &RangeRequest) -> Result<Matrix, QueryError> {
        self.0.clone()
    }
}

fn query(range: &str, end: f64, step: Option<f64>) -> BaselineQuery {
    BaselineQuery {
        query: DEFAULT_QUERY.into(),
        range: range.into(),
        end,
        step,
        aggregate: Aggregate::Median,
    }
}

#[tokio::test]
async fn fake_prometheus_nan_and_errors() {
    let o = LatencyOptions::default();
    let good = stats("good_stats.csv", &[]);
    let nan = Fake(Ok(vec![vec![(1.0, f64::NAN), (2.0, f64::NAN)]]));
    let b = prometheus_baseline(&nan, &query("1h", 10.0, None))
        .await
        .unwrap();
    let v = evaluate(&good, &b, &o);
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(v.summary.contains("NaN"), "{}", v.summary);
    // Median of the steps, in milliseconds; NaN steps are left out.
    let steps = Fake(Ok(vec![vec![
        (1.0, 0.1),
        (2.0, f64::NAN),
        (3.0, 0.2),
        (4.0, 0.14),
    ]]));
    let b = prometheus_baseline(&steps, &query("1h", 10.0, None))
        .await
        .unwrap();
    let Baseline::Prometheus {
        p95_ms,
        step,
        start,
        not_a_number,
        ..
    } = &b
    else {
        panic!("{b:?}")
    };
    assert_eq!(
        (*p95_ms, *step, *start, *not_a_number),
        (Some(140.0), 30.0, 10.0 - 3600.0, 1)
    );
    let down = Fake(Err(QueryError::Unreachable {
        url: "u".into(),
        reason: "refused".into(),
    }));
    let b = prometheus_baseline(&down, &query("1h", 10.0, None))
        .await
        .unwrap();
    let v = evaluate(&good, &b, &o);
    assert_eq!(v.outcome, Outcome::Error);
    assert!(v.summary.contains("refused"), "{}", v.summary);
    assert!(prometheus_baseline(&down, &query("an hour", 10.0, None))
        .await
        .is_err());
    // The API's error shape.
    let e = parse_matrix(
        "u",
        400,
        br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("bad_data") && e.to_string().contains("parse error"),
        "{e}"
    );
    assert!(parse_matrix(
        "u",
        200,
        br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#
    )
    .is_err());
}

#[tokio::test]
async fn unreachable_prometheus_is_an_error_not_a_pass() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http = PrometheusHttp::new(
        &format!("http://127.0.0.1:{port}"),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let b = prometheus_baseline(&http, &query("5m", prom::now(), None))
        .await
        .unwrap();
    let v = evaluate(
        &stats("good_stats.csv", &[]),
        &b,
        &LatencyOptions::default(),
    );
    assert_eq!(v.outcome, Outcome::Error, "{}", v.summary);
    assert_eq!(m(&v, "query"), DEFAULT_QUERY);
}

#[tokio::test]
async fn real_prometheus_baseline_from_query_range_decides() {
    let Some(bin) = prom::binary("real_prometheus_baseline_from_query_range_decides") else {
        return;
    };
    let server = prom::Prometheus::start(&bin, prom::known_histogram());
    server.wait_for_value(DEFAULT_QUERY);
    let http = PrometheusHttp::new(&server.url, std::time::Duration::from_secs(10)).unwrap();
    let b = prometheus_baseline(&http, &query("2m", prom::now(), Some(1.0)))
        .await
        .unwrap();
    let Baseline::Prometheus {
        p95_ms: Some(p95),
        samples,
        series,
        ..
    } = &b
    else {
        panic!("no baseline: {b:?}")
    };
    assert!(
        (p95 - prom::KNOWN_P95_MS).abs() < 0.5,
        "baseline p95 {p95} ms"
    );
    assert!(*samples >= 1 && *series == 1, "{b:?}");

    let o = LatencyOptions::default();
    let v = evaluate(&stats("good_stats.csv", &[]), &b, &o);
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
    assert_eq!(m(&v, "baseline_source"), "prometheus");
    assert_eq!(m(&v, "query"), DEFAULT_QUERY);
    assert_eq!(m(&v, "range"), "2m");
    let v = evaluate(&stats("slow_stats.csv", &[]), &b, &o);
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
    assert!(
        v.summary.contains("190.0 ms vs baseline 150.0 ms"),
        "{}",
        v.summary
    );

    // A range from before the server started is empty: inconclusive, never a pass.
    let before = server.started - 3600.0;
    let b = prometheus_baseline(&http, &query("10m", before, None))
        .await
        .unwrap();
    let v = evaluate(&stats("good_stats.csv", &[]), &b, &o);
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.summary);
    assert!(v.summary.contains("baseline is empty"), "{}", v.summary);
    assert_eq!(m(&v, "baseline_samples"), 0);

    // A query Prometheus refuses is an error with its message.
    let bad = BaselineQuery {
        query: "sum(".into(),
        ..query("1m", prom::now(), None)
    };
    let b = prometheus_baseline(&http, &bad).await.unwrap();
    let v = evaluate(&stats("good_stats.csv", &[]), &b, &o);
    assert_eq!(v.outcome, Outcome::Error, "{}", v.summary);
    assert!(v.summary.contains("bad_data"), "{}", v.summary);
}
