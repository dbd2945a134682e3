//! What a pipeline run costs on AWS, measured: the deployment on moto
//! (`vaia_tests::aws`) with every S3, DynamoDB and SQS request counted by the adapters'
//! SDK interceptor (`vaia_aws::meter`), Lambda invocations and S3's sends to SQS counted
//! by the emulated event source mapping, priced with `vaia_tests::cost::price` (the table
//! `bench/COST.md` quotes) and printed beside the model.
//!
//! Two runs of each policy; the second is measured (production promoted, caches warm, as
//! in steady state). The default policy runs all five gates; its eval gate judges with a
//! local Gemini-protocol server, so the grade cache works as deployed (the `local` judge is
//! not cached); the measured candidate's answers differ from production's, as a new
//! version's do, so its grades are misses and production's are hits.
//!
//! `CI=true cargo test -p vaia-tests --test aws_cost -- --nocapture` prints the tables.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use vaia::collect;
use vaia_core::evidence::ImageRef;
use vaia_core::{CommitSha, ImageDigest, PipelineState, Repository};
use vaia_example_agent::{AgentConfig, Variant};
use vaia_gate_eval::JudgeSettings;
use vaia_gates::eval::judge::ApiKey;
use vaia_tests::aws::{commit, deploy, run_id, DeployOptions, Deployment, REPO};
use vaia_tests::cost::{
    comparison_table, requests_table, Quantities, MODEL_DEFAULT, MODEL_SCHEMA_ONLY,
};

const TOOLS: &[u8] = include_bytes!("../examples/demo/tools-v1.json");
const TRIVY: &[u8] = include_bytes!("../examples/demo/trivy-clean.json");
const LOCUST: &[u8] = include_bytes!("../shared/gates/tests/fixtures/locust/good_stats.csv");

/// The default policy (every gate in CI), judged by Gemini, with a fixed latency baseline
/// (no Prometheus here).
const DEFAULT_POLICY: &str = "[eval]\njudge = \"gemini\"\n\n[latency]\nbaseline_p95_ms = 150.0\n";
const SCHEMA_ONLY: &str = "[stages]\nci = [\"schema\"]\n";

/// The most a default-policy run may cost on AWS per 1,000 runs (judge excluded): issue
/// 14's goal is $0.10, and a run measures $0.0908 (`bench/COST.md`: the evidence bundle as
/// one archive and DynamoDB bodies compressed with a dictionary, after the earlier cuts).
/// A regression bound a little above what it measures.
const BUDGET_PER_THOUSAND: f64 = 0.095;

/// A Gemini `generateContent` server on 127.0.0.1 that grades every answer 8/10 and
/// counts the calls.
async fn gemini() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().fallback(axum::routing::post(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            axum::Json(serde_json::json!({
                "candidates": [{
                    "content": {"parts": [{"text": "{\"score\": 8, \"reason\": \"matches the reference\"}"}], "role": "model"},
                    "finishReason": "STOP", "index": 0
                }],
                "usageMetadata": {"promptTokenCount": 400, "candidatesTokenCount": 60, "totalTokenCount": 460}
            }))
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, calls, task)
}

/// The example agent's evidence as `vaia evidence collect` makes it: the attack corpus's
/// transcript, the golden set and its answers, the system prompt, and the given files.
async fn agent_bundle(copies: Vec<collect::BundleFile>) -> Vec<collect::BundleFile> {
    let agent = vaia_example_agent::spawn(AgentConfig::new(Variant::Good), "127.0.0.1:0")
        .await
        .unwrap();
    let mut copies = copies;
    copies.push((
        vaia_gate_prompt::SYSTEM_PROMPT_FILE.to_string(),
        vaia_example_agent::system_prompt(vaia_example_agent::DEFAULT_CANARY).into_bytes(),
    ));
    let repo = Repository::new(REPO).unwrap();
    let bundle = collect::collect(collect::CollectRequest {
        repo,
        commit: commit(0),
        image: ImageRef {
            digest: ImageDigest::new(format!("sha256:{}", "0".repeat(64))).unwrap(),
            base_digest: None,
        },
        dataset: None,
        copies,
        questions: collect::Questions::builtin(
            &agent.chat_url(),
            Some(vaia_example_agent::GOLDEN.to_string()),
        )
        .unwrap(),
    })
    .await
    .unwrap();
    agent.stop().await;
    bundle.files
}

/// A new version's answers: every golden answer reworded.
fn reworded(answers: &[u8]) -> Vec<u8> {
    let mut out = String::new();
    for line in String::from_utf8_lossy(answers).lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        let a = v["answer"].as_str().unwrap().to_string();
        v["answer"] = format!("{a} Anything else?").into();
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

fn image(c: &CommitSha) -> ImageDigest {
    use sha2::{Digest, Sha256};
    ImageDigest::new(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(c.as_str()))
    ))
    .unwrap()
}

/// One run: push, the agent's CI uploading `files`, every queue delivered until the run
/// and everything it started are done. Returns the run's usage and the CI's share of it.
async fn one_run(
    d: &Deployment,
    n: u32,
    files: &[(&str, &[u8])],
) -> (vaia_aws::Usage, vaia_aws::Usage, vaia_core::run::Run) {
    let meter = d.p.meter.as_ref().unwrap();
    let c = commit(n);
    let start = meter.snapshot();
    let (status, body) = d.push(&c, &format!("delivery-{n}-{}", c.short())).await;
    assert_eq!(status, 201, "{body}");
    let before_ci = meter.snapshot();
    d.upload(&c, &image(&c), files).await;
    let ci = meter.snapshot().since(&before_ci);
    let run = d.settle(&run_id(&c)).await;
    (meter.snapshot().since(&start), ci, run)
}

fn report(
    title: &str,
    usage: &vaia_aws::Usage,
    ci: &vaia_aws::Usage,
    model: &Quantities,
    judged: bool,
) -> f64 {
    let measured = Quantities::of(usage, judged);
    println!("\n### {title}\n");
    println!("{}", requests_table(usage));
    println!(
        "of which the agent's CI: {} S3 PUT-class requests; largest SQS message {} bytes\n",
        ci.count("s3", "PutObject"),
        usage.largest_message
    );
    println!("{}", comparison_table(&measured, model));
    measured.per_thousand()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_policy_run_costs_at_most_its_budget_on_aws() {
    let (url, calls, judge) = gemini().await;
    let Some(d) = deploy(
        "cost-default",
        DeployOptions {
            policy: DEFAULT_POLICY,
            judge: JudgeSettings {
                url: Some(url),
                api_key: ApiKey::new("test-key"),
                timeout: None,
            },
            metered: true,
        },
    )
    .await
    else {
        return;
    };
    let bundle = agent_bundle(vec![
        (vaia_gate_schema::TOOLS_FILE.into(), TOOLS.to_vec()),
        (vaia_gate_security::REPORT_FILE.into(), TRIVY.to_vec()),
        (vaia_gate_latency::STATS_FILE.into(), LOCUST.to_vec()),
    ])
    .await;
    let files: Vec<(&str, &[u8])> = bundle
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    assert_eq!(
        files.len(),
        7,
        "{:?}",
        files.iter().map(|f| f.0).collect::<Vec<_>>()
    );

    // The first release: nothing in production yet.
    let (_, _, first) = one_run(&d, 1, &files).await;
    assert_eq!(first.state, PipelineState::Promoted, "{first:?}");
    let first_calls = calls.load(Ordering::SeqCst);
    assert_eq!(first_calls, 24, "the candidate's 24 answers judged");

    // The measured run: a new version with reworded answers, against production.
    let answers = reworded(
        &bundle
            .iter()
            .find(|(n, _)| n == vaia_gate_eval::ANSWERS_FILE)
            .unwrap()
            .1,
    );
    let second: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| {
            if *n == vaia_gate_eval::ANSWERS_FILE {
                (*n, answers.as_slice())
            } else {
                (*n, *b)
            }
        })
        .collect();
    let (usage, ci, run) = one_run(&d, 2, &second).await;
    assert_eq!(run.state, PipelineState::Promoted, "{run:?}");
    let gates: Vec<String> = run.verdicts.keys().map(ToString::to_string).collect();
    assert_eq!(gates, ["eval", "latency", "prompt", "schema", "security"]);
    assert_eq!(
        calls.load(Ordering::SeqCst) - first_calls,
        24,
        "production's grades came from the cache, the candidate's were judged"
    );
    judge.abort();

    let total = report(
        "Default policy (five gates), second run",
        &usage,
        &ci,
        &MODEL_DEFAULT,
        true,
    );
    assert!(
        total <= BUDGET_PER_THOUSAND,
        "a default-policy run costs ${total:.4} per 1,000 runs on AWS; the budget is ${BUDGET_PER_THOUSAND}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_only_run_measured() {
    let Some(d) = deploy(
        "cost-schema",
        DeployOptions {
            policy: SCHEMA_ONLY,
            judge: JudgeSettings::default(),
            metered: true,
        },
    )
    .await
    else {
        return;
    };
    let files: [(&str, &[u8]); 1] = [(vaia_gate_schema::TOOLS_FILE, TOOLS)];
    let (_, _, first) = one_run(&d, 1, &files).await;
    assert_eq!(first.state, PipelineState::Promoted, "{first:?}");
    let (usage, ci, run) = one_run(&d, 2, &files).await;
    assert_eq!(run.state, PipelineState::Promoted, "{run:?}");
    report(
        "Schema-only policy, second run",
        &usage,
        &ci,
        &MODEL_SCHEMA_ONLY,
        false,
    );
}

/// The bucket notifications `infra/template.yaml` deploys, as (prefix, suffix) filters.
fn template_notifications() -> Vec<(String, Option<String>)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/template.yaml"
    ))
    .unwrap();
    let mut lines = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("NotificationConfiguration:"));
    let head = lines
        .next()
        .expect("the bucket has a NotificationConfiguration");
    let indent = head.len() - head.trim_start().len();
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for line in lines {
        let t = line.trim_start();
        if !t.is_empty() && line.len() - t.len() <= indent {
            break;
        }
        if t.starts_with("- Event:") {
            out.push((String::new(), None));
        }
        let rule = |name: &str| {
            t.strip_prefix(&format!("- {{Name: {name}, Value: "))
                .and_then(|v| v.strip_suffix('}'))
                .map(str::to_string)
        };
        if let (Some(last), Some(p)) = (out.last_mut(), rule("prefix")) {
            last.0 = p;
        }
        if let (Some(last), Some(s)) = (out.last_mut(), rule("suffix")) {
            last.1 = Some(s);
        }
    }
    out
}

#[test]
fn the_template_notifies_the_registry_as_the_test_deployment_does() {
    let expected: Vec<(String, Option<String>)> = vaia_aws::s3event::NOTIFICATIONS
        .iter()
        .map(|(p, s)| (p.to_string(), s.map(str::to_string)))
        .collect();
    assert_eq!(template_notifications(), expected);
}
