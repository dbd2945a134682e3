//! The API answers what its OpenAPI description promises: responses of a real in-process
//! stack validated against the document's schemas, and every documented route served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use std::time::Duration;
use vaia::api::OPENAPI;
use vaia::client::Client;
use vaia::demo::{push_payload, wait_settled};
use vaia::stack::{Stack, StackConfig};
use vaia_core::policy::Policy;
use vaia_core::{CommitSha, ImageDigest, Repository};
use vaia_webhook::WebhookSecret;

fn validator(spec: &Value, component: &str) -> jsonschema::Validator {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{component}"),
        "components": spec["components"],
    });
    jsonschema::validator_for(&schema).unwrap()
}

fn assert_valid(spec: &Value, component: &str, instance: &Value) {
    let v = validator(spec, component);
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{component} does not match the OpenAPI schema: {errors:#?}\n{instance:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_match_the_openapi_document() {
    let spec: Value = serde_json::from_str(OPENAPI).unwrap();
    // The tools and release gates, with a fixed latency baseline: their verdicts are
    // checked against the document too (the agent gates need the example agent's evidence).
    let mut policy = Policy::schema_only();
    for gate in ["security", "latency"] {
        policy
            .stages
            .ci
            .push(vaia_core::GateName::new(gate).unwrap());
    }
    policy.latency.baseline_p95_ms = Some(150.0);
    policy.ct.drift_source = vaia_core::ct::DriftSource::Report;
    let sha = CommitSha::new("1".repeat(40)).unwrap();
    let started = start_run(
        policy,
        &sha,
        vec![
            (
                "trivy.json".into(),
                include_bytes!("../examples/demo/trivy-vulnerable.json").to_vec(),
            ),
            (
                "locust_stats.csv".into(),
                include_bytes!("../shared/gates/tests/fixtures/locust/good_stats.csv").to_vec(),
            ),
        ],
    )
    .await;
    let (stack, answer) = (&started.stack, &started.answer);
    assert_valid(&spec, "WebhookAnswer", answer);
    let run_id = started.run_id.as_str();

    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", stack.url());
        async move {
            let res = http.get(url).send().await.unwrap();
            (
                res.status().as_u16(),
                res.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, list) = get("/api/runs?limit=10".into()).await;
    assert_eq!(status, 200);
    assert_valid(&spec, "RunList", &list);
    let (status, detail) = get(format!("/api/runs/{run_id}")).await;
    assert_eq!(status, 200);
    assert_valid(&spec, "RunDetail", &detail);
    for (path, code) in [
        ("/api/runs/bad".to_string(), 400),
        (format!("/api/runs/r{}", "0".repeat(24)), 404),
        ("/api/runs?limit=0".to_string(), 400),
    ] {
        let (status, body) = get(path.clone()).await;
        assert_eq!(status, code, "{path}");
        assert_valid(&spec, "Error", &body);
    }
    let res = http
        .post(format!("{}/api/runs/{run_id}/approve", stack.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_valid(&spec, "Accepted", &res.json().await.unwrap());

    // Metrics count what happened, in the Prometheus text format.
    let metrics = http
        .get(format!("{}/metrics", stack.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "vaia_transitions_total{from=\"IDLE\",to=\"TRIGGERED\"} 1",
        "vaia_transitions_total{from=\"TRIGGERED\",to=\"CI_RUNNING\"} 1",
        "vaia_transitions_total{from=\"CI_RUNNING\",to=\"FAILED\"} 1",
        "vaia_runs{state=\"FAILED\"} 1",
        "vaia_runs{state=\"PROMOTED\"} 0",
        "vaia_time_in_state_seconds_count{state=\"CI_RUNNING\"} 1",
        "vaia_dead_letter_messages{queue=\"advance\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    // The verdict that failed the run is counted (which gate answers first varies).
    assert!(metrics
        .lines()
        .any(|l| l.starts_with("vaia_gate_verdicts_total{") && l.ends_with(" 1")));
    assert!(metrics.contains("vaia_queue_messages{queue=\"gate-schema\",status=\"visible\"}"));

    // A CT evaluation as the API serves it, and a repository never evaluated.
    let ct_repo = Repository::new("octo/ct").unwrap();
    let now = chrono::Utc::now();
    let blobs = stack.ports.blobs.as_ref();
    vaia_ct_budget::seed::promoted(
        blobs,
        &ct_repo,
        semver::Version::new(1, 0, 0),
        &"a".repeat(32),
        Some(100),
        now,
    )
    .await
    .unwrap();
    vaia_ct_budget::seed::snapshot(blobs, &ct_repo, &"b".repeat(32), Some(20_100), now)
        .await
        .unwrap();
    vaia_ct_budget::seed::drift_report(blobs, &ct_repo, 0.25, now)
        .await
        .unwrap();
    stack.ct.evaluate(&ct_repo).await.unwrap().unwrap();
    let (status, body) = get("/api/ct/octo/ct".into()).await;
    assert_eq!(status, 200, "{body}");
    assert_valid(&spec, "CtEvaluations", &body);
    assert_eq!(body["latest"]["job_status"], "queued");
    let (status, body) = get("/api/ct/octo/none".into()).await;
    assert_eq!(status, 404);
    assert_valid(&spec, "Error", &body);
    let res = http
        .post(format!("{}/api/ct/evaluate", stack.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    assert_valid(&spec, "CtScheduledRun", &body);
    assert_eq!(body["outcomes"]["retrain"], 1, "{body}");

    // Every documented path and method is served (nothing answers "no such route").
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", run_id)
                .replace("{owner}", "octo")
                .replace("{repo}", "agent")
                .replace("{commit}", sha.as_str())
                .replace("{file}", "extra.txt")
                .replace("{version}", "0.1.0");
            let url = format!("{}{concrete}", stack.url());
            let req = match method.as_str() {
                "get" => http.get(&url),
                "post" => http.post(&url),
                "put" => http.put(&url).body("x"),
                other => panic!("undocumented method {other}"),
            };
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap_or_default();
            assert!(
                !body.contains("no such route"),
                "{method} {path} is documented but not served"
            );
            assert_ne!(status, 405, "{method} {path}");
        }
    }
    started.stack.stop().await;
}

/// `POST /api/runs/{id}/retry` through a real stack: the latency gate errors (no Prometheus
/// is configured and the policy has no fixed baseline), which fails the run; a retry of a
/// gate that did not fail it is refused and logged; the retry of the errored gate moves the
/// run back to CI_RUNNING and runs the gate again as attempt 1, whose verdict is stored
/// beside the first; the schema gate's pass is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_errored_gate_is_retried_through_the_api() {
    use vaia_core::run::EventKind;
    use vaia_core::PipelineState;
    let spec: Value = serde_json::from_str(OPENAPI).unwrap();
    let mut policy = Policy::schema_only();
    policy
        .stages
        .ci
        .push(vaia_core::GateName::new("latency").unwrap());
    let sha = CommitSha::new("2".repeat(40)).unwrap();
    let good_load = include_bytes!("../shared/gates/tests/fixtures/locust/good_stats.csv");
    let started = start_run(
        policy,
        &sha,
        vec![("locust_stats.csv".into(), good_load.to_vec())],
    )
    .await;
    let (stack, client, run_id) = (&started.stack, &started.client, started.run_id.clone());
    let failed = client.run(&run_id).await.unwrap();
    assert_eq!(failed.run.state, PipelineState::Failed);
    let latency = vaia_core::GateName::new("latency").unwrap();
    let schema = vaia_core::GateName::new("schema").unwrap();
    assert_eq!(
        failed.run.failure.as_ref().unwrap().gate.as_ref(),
        Some(&latency)
    );
    // Which gate answers first varies: a schema verdict that arrived after the failure was
    // dropped, and the retry runs the schema gate again too.
    let schema_pass = failed.run.verdicts.get(&schema).cloned();

    let http = reqwest::Client::new();
    let retry = |body: Value| {
        let http = http.clone();
        let url = format!("{}/api/runs/{run_id}/retry", stack.url());
        async move {
            let res = http.post(url).json(&body).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    // Bad requests change nothing.
    for body in [
        json!({}),
        json!({"gate": "not a gate!"}),
        json!({"gate": "latency", "extra": 1}),
    ] {
        let (status, answer) = retry(body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_valid(&spec, "Error", &answer);
    }
    let (status, answer) = http
        .post(format!("{}/api/runs/{run_id}/approve", stack.url()))
        .json(&json!({"gate": "latency"}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 400, "{:?}", answer.text().await);

    // A gate that did not fail the run: refused, logged, the run stays FAILED.
    let (status, answer) = retry(json!({"gate": "schema", "actor": "ana"})).await;
    assert_eq!(status, 202);
    assert_valid(&spec, "Accepted", &answer);
    let refused = poll_run(client, &run_id, |d| {
        d.events.iter().any(|e| e.kind == EventKind::Refused)
    })
    .await;
    let e = refused
        .events
        .iter()
        .find(|e| e.kind == EventKind::Refused)
        .unwrap();
    assert!(
        e.reason.contains("gate schema did not fail this run"),
        "{}",
        e.reason
    );
    assert_eq!(e.actor, "operator:ana");
    assert_eq!(refused.run.state, PipelineState::Failed);

    // The errored gate: FAILED → CI_RUNNING, the gate runs again as attempt 1 (and, with
    // Prometheus still absent, errors again).
    let (status, _) =
        retry(json!({"gate": "latency", "actor": "ana", "reason": "prometheus is back"})).await;
    assert_eq!(status, 202);
    let again = poll_run(client, &run_id, |d| {
        d.run.state == PipelineState::Failed && d.run.retry.is_some()
    })
    .await;
    let transitions: Vec<(PipelineState, Option<PipelineState>)> = again
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Transition)
        .map(|e| (e.from, e.to))
        .collect();
    assert!(
        transitions.ends_with(&[
            (PipelineState::Failed, Some(PipelineState::CiRunning)),
            (PipelineState::CiRunning, Some(PipelineState::Failed)),
        ]),
        "{transitions:?}"
    );
    assert!(again.events.iter().any(|e| e
        .reason
        .contains("retry 1 of gate latency asked by operator:ana: prometheus is back")));
    let retry_record = again.run.retry.as_ref().unwrap();
    assert_eq!(retry_record.attempt, 1);
    assert_eq!(retry_record.actor, "operator:ana");
    assert!(again.run.verdicts[&latency]
        .verdict
        .as_str()
        .ends_with("/ci/latency.attempt-1.json"));
    if let Some(pass) = schema_pass {
        assert_eq!(
            again.run.verdicts[&schema], pass,
            "the passed gate is not run again"
        );
    }
    let (status, detail) = {
        let res = http
            .get(format!("{}/api/runs/{run_id}", stack.url()))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200);
    assert_valid(&spec, "RunDetail", &detail);
    assert_eq!(detail["run"]["retry"]["attempt"], 1);
    started.stack.stop().await;
}

/// A stack with `policy`, a signed push of `commit` and its evidence (the demo's tools
/// and `files`), the run settled.
struct Started {
    stack: Stack,
    client: Client,
    answer: Value,
    run_id: String,
    _dir: tempfile::TempDir,
}

async fn start_run(policy: Policy, commit: &CommitSha, files: Vec<(String, Vec<u8>)>) -> Started {
    const SECRET: &str = "contract-secret";
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(StackConfig {
        data_dir: dir.path().to_path_buf(),
        bind: "127.0.0.1".into(),
        port: 0,
        policy,
        secret: WebhookSecret::new(SECRET).unwrap(),
        alertmanager_token: None,
    })
    .await
    .unwrap();
    let client = Client::new(&stack.url());
    let repo = Repository::new("octo/agent").unwrap();
    let (status, answer) = client
        .send_webhook(SECRET, "push", "c-1", &push_payload(&repo, commit).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    let image = ImageDigest::new(format!("sha256:{}", "c".repeat(64))).unwrap();
    let mut bundle = vec![(
        "tools.json".to_string(),
        include_bytes!("../examples/demo/tools-v1.json").to_vec(),
    )];
    bundle.extend(files);
    client
        .upload_evidence(&repo, commit, &image, None, &bundle)
        .await
        .unwrap();
    let run_id = answer["run_id"].as_str().unwrap().to_string();
    wait_settled(&client, &run_id, Duration::from_secs(30))
        .await
        .unwrap();
    Started {
        stack,
        client,
        answer,
        run_id,
        _dir: dir,
    }
}

/// Polls the run until `done` holds (30 s at most).
async fn poll_run(
    client: &Client,
    run_id: &str,
    done: impl Fn(&vaia::api::RunDetail) -> bool,
) -> vaia::api::RunDetail {
    let start = std::time::Instant::now();
    loop {
        let d = client.run(run_id).await.unwrap();
        if done(&d) {
            return d;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "run {run_id}: {:?}",
            d.events
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
