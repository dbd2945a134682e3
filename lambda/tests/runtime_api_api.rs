//! The api binary invoked through the Lambda Runtime API (an emulator) with every
//! `events/aws/apigw-v2-api-*` fixture (IAM-authorised HTTP API requests), against
//! DynamoDB, SQS and S3 on moto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use vaia_aws::runtime_api::Answer;
use vaia_aws::testing::{fixtures, moto, LambdaHarness};

fn status_and_body(name: &str, answer: Answer) -> (u64, Value) {
    let Answer::Response(r) = answer else {
        panic!("{name}: function error {answer:?}");
    };
    let status = r["statusCode"].as_u64().unwrap_or(0);
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("{name}: body is not JSON ({e}): {r}"));
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_every_api_gateway_fixture() {
    let Some(m) = moto() else { return };
    let h = LambdaHarness::start(
        env!("CARGO_BIN_EXE_api").as_ref(),
        "api",
        m,
        &[("VAIA_ALERTMANAGER_TOKEN", ALERT_TOKEN)],
    )
    .await;
    let names = fixtures("apigw-v2-api-");
    assert!(names.len() >= 6, "fixtures: {names:?}");
    for name in &names {
        let (status, body) = status_and_body(name, h.invoke_fixture(name).await);
        match name.as_str() {
            "apigw-v2-api-list-runs.json" => {
                assert_eq!(status, 200, "{name}: {body}");
                assert_eq!(body["runs"], serde_json::json!([]), "{name}");
            }
            "apigw-v2-api-openapi.json" => {
                assert_eq!(status, 200, "{name}");
                assert_eq!(body["openapi"], "3.1.0", "{name}");
            }
            "apigw-v2-api-show-missing-run.json" => {
                assert_eq!(status, 404, "{name}: {body}");
                assert!(body["error"].as_str().unwrap().contains("not found"));
            }
            "apigw-v2-api-list-runs-bad-limit.json" => {
                assert_eq!(status, 400, "{name}: {body}");
                assert!(body["error"].as_str().unwrap().contains("limit"));
            }
            "apigw-v2-api-show-bad-id.json" => {
                assert_eq!(status, 400, "{name}: {body}");
                assert!(body["error"].as_str().unwrap().contains("id"));
            }
            // The run does not exist: 404 before the body is looked at; nothing is sent.
            "apigw-v2-api-approve-bad-body.json" => {
                assert_eq!(status, 404, "{name}: {body}");
            }
            other => panic!("no expectation for fixture {other}"),
        }
    }
    let depth = vaia_core::ports::Queue::depth(&*h.ports.queue, "advance")
        .await
        .unwrap();
    assert_eq!(depth.visible, 0, "no request reached the orchestrator");
    operator_requests_are_validated_before_signalling(&h).await;
    alertmanager_notifications_roll_back_once(&h).await;
    h.stop().await;
    // After the tests above: the queues are shared by name, and this one signals too.
    token_layer_guards_the_routes(m, false).await;
    // As the template configures it under ApiAuthorization=tokens: the entries in an SSM
    // SecureString named by VAIA_API_TOKENS_PARAM.
    token_layer_guards_the_routes(m, true).await;
}

/// The token layer as the function runs it, with `VAIA_API_TOKENS` set, or read at init
/// from the SSM parameter `VAIA_API_TOKENS_PARAM` names (`from_ssm`; the HTTP API's IAM
/// authoriser aside): a read without a token or with a wrong one is 401, a token without
/// the route's role 403, the right role passes; the answers are JSON and never carry the
/// token.
async fn token_layer_guards_the_routes(m: &vaia_aws::testing::Moto, from_ssm: bool) {
    use vaia_api::auth::hash_token;
    use vaia_core::ports::{Queue, RunStore};
    const READ: &str = "read-token-for-the-runtime-api-test";
    const OPERATE: &str = "operate-token-for-the-runtime-api-test";
    let tokens = format!(
        "dash:read:{};ops:read+operate:{}",
        hash_token(READ),
        hash_token(OPERATE)
    );
    let (name, var, value) = if from_ssm {
        let param = format!("/{}/api-tokens", vaia_aws::testing::unique("vaia"));
        aws_sdk_ssm::Client::new(&vaia_aws::testing::sdk(&m.endpoint).await)
            .put_parameter()
            .name(&param)
            .value(&tokens)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .unwrap();
        ("api-tokens-ssm", "VAIA_API_TOKENS_PARAM", param)
    } else {
        ("api-tokens", "VAIA_API_TOKENS", tokens)
    };
    let h = LambdaHarness::start(
        env!("CARGO_BIN_EXE_api").as_ref(),
        name,
        m,
        &[(var, value.as_str())],
    )
    .await;
    let run = sample_run();
    h.ports.store.create(&run, &[]).await.unwrap();
    let with_token = |fixture: &str, token: Option<&str>| {
        let mut e = vaia_aws::testing::fixture(fixture);
        if let Some(t) = token {
            e["headers"]["authorization"] = format!("Bearer {t}").into();
        }
        e
    };
    let approve = |token: Option<&str>| {
        let mut e = with_token("apigw-v2-api-approve-bad-body.json", token);
        let path = format!("/api/runs/{}/approve", run.id);
        let body = r#"{"actor": "ops"}"#;
        e["rawPath"] = path.clone().into();
        e["requestContext"]["http"]["path"] = path.into();
        e["body"] = body.into();
        e["headers"]["content-length"] = body.len().to_string().into();
        e
    };
    let signalled_before = h.ports.queue.depth("advance").await.unwrap().visible;
    let cases = [
        (
            "list, no token",
            with_token("apigw-v2-api-list-runs.json", None),
            401,
        ),
        (
            "list, wrong token",
            with_token("apigw-v2-api-list-runs.json", Some("not-a-token")),
            401,
        ),
        (
            "list, read",
            with_token("apigw-v2-api-list-runs.json", Some(READ)),
            200,
        ),
        (
            "openapi, no token",
            with_token("apigw-v2-api-openapi.json", None),
            200,
        ),
        ("approve, no token", approve(None), 401),
        ("approve, read", approve(Some(READ)), 403),
        ("approve, operate", approve(Some(OPERATE)), 202),
    ];
    for (name, event, expected) in cases {
        let answer = h.api.invoke(event).await.unwrap();
        let raw = format!("{answer:?}");
        let (status, body) = status_and_body(name, answer);
        assert_eq!(status, expected, "{name}: {body}");
        if expected >= 400 {
            assert!(body["error"].is_string(), "{name}: {body}");
        }
        assert!(
            !raw.contains(READ) && !raw.contains(OPERATE),
            "{name}: the answer carries a token: {raw}"
        );
    }
    assert_eq!(
        h.ports.queue.depth("advance").await.unwrap().visible,
        signalled_before + 1,
        "only the operate token's approval was signalled"
    );
    h.stop().await;
}

fn sample_run() -> vaia_core::run::Run {
    let now = chrono::Utc::now();
    vaia_core::run::Run::new(
        vaia_core::Repository::new("octo-org/agent").unwrap(),
        vaia_core::CommitSha::new("8f1e2d3c4b5a69788796a5b4c3d2e1f001234567").unwrap(),
        Some("main".into()),
        vaia_core::run::Trigger {
            kind: "push".into(),
            delivery: None,
            actor: None,
            at: now,
        },
        vaia_core::policy::Policy::default(),
        now,
    )
}

/// The token the harness gives the function (the `apigw-v2-alertmanager-*` fixtures send it).
const ALERT_TOKEN: &str = "alert-token-for-the-runtime-api-test";

/// Every `apigw-v2-alertmanager-*` fixture (Alertmanager's version-4 payloads as the HTTP
/// API hands them over): the firing alert about a promoted run with an earlier version
/// becomes one rollback signal; resolved, repeated and grouped notifications add none; an
/// unknown repository is refused with 200; a wrong token is 401.
async fn alertmanager_notifications_roll_back_once(h: &LambdaHarness) {
    use vaia_core::layout::{alias_key, AliasRecord, AliasTarget, PROD_ALIAS};
    use vaia_core::ports::{BlobStore, Queue, RunStore};
    let before: chrono::DateTime<chrono::Utc> = "2026-12-02T13:00:00Z".parse().unwrap();
    let repo = vaia_core::Repository::new("vaia-demo/support-agent").unwrap();
    let mut run = vaia_core::run::Run::new(
        repo.clone(),
        vaia_core::CommitSha::new("2c26b46b68ffc68ff99b453c1d30413413422d70").unwrap(),
        Some("main".into()),
        vaia_core::run::Trigger {
            kind: "push".into(),
            delivery: None,
            actor: None,
            at: before,
        },
        vaia_core::policy::Policy::default(),
        before,
    );
    run.state = vaia_core::PipelineState::Promoted;
    h.ports.store.create(&run, &[]).await.unwrap();
    let target = |v: &str| AliasTarget {
        version: v.parse().unwrap(),
        run_id: run.id.clone(),
        commit: run.commit.clone(),
        image_digest: vaia_core::ImageDigest::new(format!("sha256:{}", "c".repeat(64))).unwrap(),
    };
    let alias = AliasRecord {
        alias: PROD_ALIAS.into(),
        target: target("0.2.0"),
        history: vec![target("0.1.0")],
        updated_at: before,
    };
    h.ports
        .blobs
        .put(
            &alias_key(&repo, PROD_ALIAS).unwrap(),
            &serde_json::to_vec(&alias).unwrap(),
        )
        .await
        .unwrap();
    let depth = || async { h.ports.queue.depth("advance").await.unwrap().visible };
    let start = depth().await;
    let names = fixtures("apigw-v2-alertmanager-");
    assert_eq!(names.len(), 5, "{names:?}");
    // Firing first; the others in a fixed order after it.
    let order = [
        "apigw-v2-alertmanager-firing-wrong-token.json",
        "apigw-v2-alertmanager-firing.json",
        "apigw-v2-alertmanager-repeated.json",
        "apigw-v2-alertmanager-resolved.json",
        "apigw-v2-alertmanager-grouped.json",
    ];
    for name in order {
        assert!(names.iter().any(|n| n == name), "{name} missing");
        let (status, body) = status_and_body(name, h.invoke_fixture(name).await);
        let actions: Vec<&str> = body["results"]
            .as_array()
            .map(|r| r.iter().filter_map(|d| d["action"].as_str()).collect())
            .unwrap_or_default();
        match name {
            "apigw-v2-alertmanager-firing-wrong-token.json" => {
                assert_eq!(status, 401, "{name}: {body}");
                assert_eq!(depth().await, start, "{name} sent a signal");
            }
            "apigw-v2-alertmanager-firing.json" => {
                assert_eq!((status, actions), (200, vec!["rollback"]), "{name}: {body}");
                assert_eq!(depth().await, start + 1);
                // As the orchestrator would: the run records the rollback request.
                let mut r = h.ports.store.get(&run.id).await.unwrap().unwrap();
                r.rollback = Some(vaia_core::run::RollbackRequest {
                    actor: "alertmanager".into(),
                    reason: "test".into(),
                    at: chrono::Utc::now(),
                });
                let v = r.version;
                r.version += 1;
                h.ports.store.save(&r, v, &[]).await.unwrap();
            }
            "apigw-v2-alertmanager-repeated.json" | "apigw-v2-alertmanager-resolved.json" => {
                assert_eq!((status, actions), (200, vec!["ignored"]), "{name}: {body}");
            }
            "apigw-v2-alertmanager-grouped.json" => {
                assert_eq!(
                    (status, actions),
                    (200, vec!["refused", "ignored", "ignored"]),
                    "{name}: {body}"
                );
            }
            other => panic!("no expectation for fixture {other}"),
        }
    }
    assert_eq!(depth().await, start + 1, "one rollback signal in all");
}

/// The approve fixture aimed at a run that exists: a body with an unknown field is a 400
/// that sends nothing; a good body is accepted and becomes one signal on the advance queue.
/// (Part of the test above: the harness's queues are named as the fixtures expect, so two
/// tests in this binary would share the advance queue.)
async fn operator_requests_are_validated_before_signalling(h: &LambdaHarness) {
    use vaia_core::ports::{Queue, RunStore};
    let run = sample_run();
    h.ports.store.create(&run, &[]).await.unwrap();
    let path = format!("/api/runs/{}/approve", run.id);
    let event = |body: &str| {
        let mut e = vaia_aws::testing::fixture("apigw-v2-api-approve-bad-body.json");
        e["rawPath"] = path.clone().into();
        e["requestContext"]["http"]["path"] = path.clone().into();
        e["body"] = body.into();
        e["headers"]["content-length"] = body.len().to_string().into();
        e
    };
    let bad = h
        .api
        .invoke(event(r#"{"actor": "ops", "unexpected": true}"#))
        .await;
    let (status, body) = status_and_body("bad body", bad.unwrap());
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("unexpected"),
        "{body}"
    );
    assert_eq!(h.ports.queue.depth("advance").await.unwrap().visible, 0);

    let good = h.api.invoke(event(r#"{"actor": "ops"}"#)).await;
    let (status, body) = status_and_body("good body", good.unwrap());
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["run_id"], run.id.to_string());
    assert_eq!(h.ports.queue.depth("advance").await.unwrap().visible, 1);
}

/// `GET /metrics` as Prometheus scrapes it through the HTTP API (`apigw-v2-metrics.json`),
/// behind the token layer: without a token 401, with a read token the store's gauges in
/// the text format (`promtool check metrics` accepts it): runs by state, the pending data
/// volume the data watcher counted and the newest CT evaluation's budget, drift and Δrows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_serve_the_stores_gauges_behind_the_token_layer() {
    use std::sync::Arc;
    use vaia_api::auth::hash_token;
    use vaia_core::ports::{BlobStore, RunStore};
    use vaia_ct_budget::seed;
    const READ: &str = "read-token-for-the-metrics-scrape";
    let Some(m) = moto() else { return };
    let tokens = format!("prometheus:read:{}", hash_token(READ));
    let h = LambdaHarness::start(
        env!("CARGO_BIN_EXE_api").as_ref(),
        "api-metrics",
        m,
        &[("VAIA_API_TOKENS", tokens.as_str())],
    )
    .await;
    let blobs: Arc<dyn BlobStore> = h.ports.blobs.clone();
    let mut run = sample_run();
    run.state = vaia_core::PipelineState::StagingEval;
    h.ports.store.create(&run, &[]).await.unwrap();
    let repo = vaia_core::Repository::new("octo-org/agent").unwrap();
    let now = chrono::Utc::now();
    seed::promoted(
        blobs.as_ref(),
        &repo,
        semver::Version::new(1, 0, 0),
        &"a".repeat(32),
        Some(100_000),
        now,
    )
    .await
    .unwrap();
    let raw = Arc::new(vaia_lambda::data_watcher::S3RawData(
        h.ports.blobs.with_bucket(h.ports.blobs.bucket()),
    ));
    let watcher = vaia_data_watcher::DataWatcher::new(blobs.clone(), raw, h.ports.clock.clone());
    watcher
        .observe(&vaia_data_watcher::RawObject {
            key: "raw/octo-org/agent/tickets (EU) é.csv".into(),
            size: 4_096,
            sequencer: Some("0055AED6DCD90281E5".into()),
        })
        .await
        .unwrap();
    seed::drift_report(blobs.as_ref(), &repo, 0.25, now)
        .await
        .unwrap();
    seed::snapshot(blobs.as_ref(), &repo, &"b".repeat(32), Some(102_500), now)
        .await
        .unwrap();
    let ct = vaia_ct_budget::CtBudget::new(
        blobs.clone(),
        h.ports.queue.clone(),
        h.ports.clock.clone(),
        Default::default(),
        Arc::new(vaia_ct_budget::drift::ReportDrift {
            blobs: blobs.clone(),
        }),
    );
    let evaluation = ct.evaluate(&repo).await.unwrap().unwrap();

    let scrape = |token: Option<&str>| {
        let mut e = vaia_aws::testing::fixture("apigw-v2-metrics.json");
        if let Some(t) = token {
            e["headers"]["authorization"] = format!("Bearer {t}").into();
        }
        e
    };
    let Answer::Response(r) = h.api.invoke(scrape(None)).await.unwrap() else {
        panic!("function error");
    };
    assert_eq!(r["statusCode"], 401, "{r}");
    let Answer::Response(r) = h.api.invoke(scrape(Some(READ))).await.unwrap() else {
        panic!("function error");
    };
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(
        r["headers"]["content-type"],
        vaia_api::metrics::CONTENT_TYPE,
        "{r}"
    );
    // lambda_http sends a body of a type it does not know as text base64-encoded; API
    // Gateway decodes it for the client.
    let body = r["body"].as_str().unwrap();
    let text = if r["isBase64Encoded"] == true {
        use base64::Engine;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap(),
        )
        .unwrap()
    } else {
        body.to_string()
    };
    assert!(!text.contains(READ));
    let sample = |series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    };
    let l = "{repository=\"octo-org/agent\"}";
    assert_eq!(
        sample("vaia_runs{state=\"STAGING_EVAL\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample("vaia_runs{state=\"PROMOTED\"}"), Some(0.0), "{text}");
    assert_eq!(
        sample(&format!("pending_data_volume_bytes{l}")),
        Some(4_096.0)
    );
    assert_eq!(sample(&format!("ct_drift_score{l}")), Some(0.25));
    assert_eq!(sample(&format!("ct_dataset_delta_rows{l}")), Some(2_500.0));
    assert_eq!(
        sample(&format!("ct_training_budget{l}")),
        evaluation.budget.budget,
        "{text}"
    );
    if let Some(promtool) = vaia_testkit::prometheus::promtool("runtime_api_api metrics") {
        use std::io::Write;
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    h.stop().await;
}
