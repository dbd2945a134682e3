//! End to end over HTTP against a real `vaia up` process: a signed push and an evidence
//! upload take a run to PROMOTED through every state; a breaking tool change fails at
//! the schema gate with its finding in the log; killing the process mid-run and starting
//! it again on the same data directory loses nothing. The stack runs the default gates
//! (schema, security, latency) with a fixed latency baseline from its policy file, and
//! each commit uploads the full evidence bundle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;
use vaia::client::Client;
use vaia::demo::{push_payload, wait_settled};
use vaia_core::run::EventKind;
use vaia_core::{CommitSha, ImageDigest, PipelineState, Repository};

const SECRET: &str = "e2e-secret-8c1f";
const V1: &str = include_str!("../../examples/demo/tools-v1.json");
const V2: &str = include_str!("../../examples/demo/tools-v2.json");
const V3: &str = include_str!("../../examples/demo/tools-v3-breaking.json");
const TRIVY: &str = include_str!("../../examples/demo/trivy-clean.json");
const LOCUST: &str = include_str!("../../shared/gates/tests/fixtures/locust/good_stats.csv");
/// The default gates, with a fixed production p95 instead of a Prometheus.
/// The tools and release gates with a fixed latency baseline; the agent gates, which
/// need the example agent's evidence, are exercised by the demo and tests/agent_gates.rs.
const POLICY: &str =
    "[stages]\nci = [\"schema\", \"security\", \"latency\"]\n\n[latency]\nbaseline_p95_ms = 150.0\n";

mod support;
use support::Vaia;

fn commit(n: u8) -> CommitSha {
    CommitSha::new(format!("{:02x}", n).repeat(20)).unwrap()
}

async fn push(client: &Client, repo: &Repository, sha: &CommitSha, delivery: &str) -> String {
    let body = push_payload(repo, sha).unwrap();
    let (status, answer) = client
        .send_webhook(SECRET, "push", delivery, &body)
        .await
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    answer["run_id"].as_str().unwrap().to_string()
}

async fn upload(client: &Client, repo: &Repository, sha: &CommitSha, tools: &str) {
    let image = ImageDigest::new(format!("sha256:{}", "ab".repeat(32))).unwrap();
    let files = vec![
        ("tools.json".to_string(), tools.as_bytes().to_vec()),
        ("trivy.json".to_string(), TRIVY.as_bytes().to_vec()),
        ("locust_stats.csv".to_string(), LOCUST.as_bytes().to_vec()),
    ];
    client
        .upload_evidence(repo, sha, &image, None, &files)
        .await
        .unwrap();
}

fn states(detail: &vaia::api::RunDetail) -> Vec<PipelineState> {
    let mut out = vec![PipelineState::Idle];
    out.extend(
        detail
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Transition)
            .filter_map(|e| e.to),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_promotion_failure_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new("octo/support-agent").unwrap();
    let vaia = Vaia::start(dir.path(), POLICY, SECRET);
    let client = Client::new(&vaia.url);

    // 1. A signed push and its evidence take a run through every state to PROMOTED.
    let run = push(&client, &repo, &commit(1), "d-1").await;
    upload(&client, &repo, &commit(1), V1).await;
    let done = wait_settled(&client, &run, Duration::from_secs(30))
        .await
        .unwrap();
    use PipelineState::*;
    assert_eq!(
        states(&done),
        vec![
            Idle,
            Triggered,
            CiRunning,
            Build,
            StagingEval,
            CtQueued,
            Promoted
        ]
    );
    for gate in ["schema", "security", "latency"] {
        assert_eq!(
            done.verdicts[gate].outcome,
            vaia_core::Outcome::Pass,
            "{gate}"
        );
    }
    assert_eq!(done.verdicts["latency"].metrics["baseline_p95_ms"], 150.0);
    assert_eq!(
        done.run.candidate.version.as_ref().unwrap().to_string(),
        "0.1.0"
    );

    // 2. A breaking tool change fails at the schema gate, with the finding in the log.
    let run = push(&client, &repo, &commit(2), "d-2").await;
    upload(&client, &repo, &commit(2), V3).await;
    let failed = wait_settled(&client, &run, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(failed.run.state, Failed);
    let last = failed.events.last().unwrap();
    assert_eq!(last.to, Some(Failed));
    assert!(
        last.reason.contains("tool get_order_status removed"),
        "{}",
        last.reason
    );
    assert!(failed.verdicts["schema"]
        .findings
        .iter()
        .any(|f| f.rule == "schema.breaking.tool-removed"));

    // 3. Kill the process right after the evidence lands, start it again: the run ends.
    let run = push(&client, &repo, &commit(3), "d-3").await;
    upload(&client, &repo, &commit(3), V2).await;
    vaia.kill();
    let killed_at = chrono::Utc::now();
    let vaia = Vaia::start(dir.path(), POLICY, SECRET);
    let client = Client::new(&vaia.url);
    let resumed = wait_settled(&client, &run, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(resumed.run.state, Promoted, "{:#?}", resumed.events);
    assert_eq!(
        resumed.run.candidate.version.as_ref().unwrap().to_string(),
        "0.2.0"
    );
    // The kill really was mid-run: the run reached PROMOTED in the second process.
    let promoted = resumed
        .events
        .iter()
        .find(|e| e.to == Some(Promoted))
        .unwrap();
    assert!(
        promoted.at > killed_at,
        "the run had finished before the kill"
    );
    // The earlier runs survived the restart as they were.
    let list = client.runs(10, None).await.unwrap();
    assert_eq!(list.runs.len(), 3);
    // The list pages: each page's `next` passed back as `after` (over HTTP, as the CLI and
    // the dashboard do) gives the next run, to the end.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = client.runs(1, after.as_deref()).await.unwrap();
        paged.extend(page.runs.iter().map(|r| r.id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let all: Vec<_> = list.runs.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        paged, all,
        "paging one at a time lists every run once, in order"
    );
    // Anything else as `after` is a 400 naming the parameter (a run id was a 500).
    for bad in [all[0].as_str(), "1764000000.r0", "zz"] {
        let err = client.runs(1, Some(bad)).await.unwrap_err().to_string();
        assert!(
            err.contains("400") && err.contains("query parameter after"),
            "{bad}: {err}"
        );
    }

    // 4. A redelivered push creates nothing new.
    let body = push_payload(&repo, &commit(3)).unwrap();
    let (status, _) = client
        .send_webhook(SECRET, "push", "d-3", &body)
        .await
        .unwrap();
    assert_eq!(status, 201, "the first answer is replayed");
    assert_eq!(client.runs(10, None).await.unwrap().runs.len(), 3);
    drop(vaia);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let vaia = Vaia::start(dir.path(), POLICY, SECRET);
    let client = Client::new(&vaia.url);
    let repo = Repository::new("octo/support-agent").unwrap();
    let body = push_payload(&repo, &commit(9)).unwrap();
    let (status, answer) = client
        .send_webhook("wrong-secret", "push", "x-1", &body)
        .await
        .unwrap();
    assert_eq!(status, 401, "{answer}");
    assert!(!answer.to_string().contains(SECRET));
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{}/api/runs/not-a-run", vaia.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = http
        .put(format!(
            "{}/api/evidence/octo/support-agent/{}/..%2Fescape",
            vaia.url,
            commit(9)
        ))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(client.runs(10, None).await.unwrap().runs.is_empty());
    let metrics = http
        .get(format!("{}/metrics", vaia.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("vaia_runs{state=\"IDLE\"} 0"), "{metrics}");
}

#[test]
fn a_second_stack_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Vaia::start(dir.path(), POLICY, SECRET);
    let out = Command::new(env!("CARGO_BIN_EXE_vaia"))
        .args(["up", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env("VAIA_GITHUB_WEBHOOK_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is in use by another vaia process"),
        "{stderr}"
    );
    drop(first);
}

#[test]
fn up_without_a_webhook_secret_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vaia"))
        .args(["up", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env_remove("VAIA_GITHUB_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("VAIA_GITHUB_WEBHOOK_SECRET is not set"),
        "{stderr}"
    );
}
