//! `vaia demo`: starts a local stack, pushes five commits of a small support agent
//! through it over real HTTP (signed webhook, evidence upload), and shows each run: an
//! initial release and an additive change promoted, then a breaking tool change failed
//! by the schema gate, an image with a CRITICAL vulnerability failed by the security gate,
//! and a slow variant failed by the latency gate.
//!
//! Latency evidence is real: two in-process stand-ins for the agent (good and slow, see
//! [`crate::loadgen`]) are put under load, the load generator writes Locust's
//! `*_stats.csv`, and production's baseline p95 is the good variant's request-duration
//! histogram, given to the policy as `latency.baseline_p95_ms`. Pointing the demo at the
//! example agent means giving `run_load`/`scrape_p95_ms` its URLs instead. Nothing here
//! decides an outcome; it only drives and reports.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vaia_core::policy::Policy;
use vaia_core::{CommitSha, ImageDigest, PipelineState, Repository};
use vaia_webhook::WebhookSecret;

use crate::api::RunDetail;
use crate::cli_runs::{render_detail, render_list};
use crate::client::Client;
use crate::loadgen::{run_load, scrape_p95_ms, DemoTarget};
use crate::stack::{wait_for_signal, Stack, StackConfig};

const PUSH_FIXTURE: &str = include_str!("../../events/github/push.json");
const REPO: &str = "vaia-demo/support-agent";

const TOOLS_V1: &str = include_str!("../../examples/demo/tools-v1.json");
const TOOLS_V2: &str = include_str!("../../examples/demo/tools-v2.json");
const TOOLS_V3: &str = include_str!("../../examples/demo/tools-v3-breaking.json");
const TRIVY_CLEAN: &str = include_str!("../../examples/demo/trivy-clean.json");
const TRIVY_VULNERABLE: &str = include_str!("../../examples/demo/trivy-vulnerable.json");

/// How long the stand-in agents take to answer, and how hard the demo loads them.
const GOOD_DELAY: Duration = Duration::from_millis(50);
const SLOW_DELAY: Duration = Duration::from_millis(100);
const LOAD_REQUESTS: usize = 200;
const LOAD_CONCURRENCY: usize = 20;
const CHAT_BODY: &str = r#"{"message":"Where is my order 1234?"}"#;

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Good,
    Slow,
}

struct Step {
    title: &'static str,
    tools: &'static str,
    trivy: &'static str,
    variant: Variant,
    expect: PipelineState,
}

const STEPS: &[Step] = &[
    Step {
        title: "first release",
        tools: TOOLS_V1,
        trivy: TRIVY_CLEAN,
        variant: Variant::Good,
        expect: PipelineState::Promoted,
    },
    Step {
        title: "additive change: a new tool and an optional property",
        tools: TOOLS_V2,
        trivy: TRIVY_CLEAN,
        variant: Variant::Good,
        expect: PipelineState::Promoted,
    },
    Step {
        title: "breaking change: a tool removed, a property newly required",
        tools: TOOLS_V3,
        trivy: TRIVY_CLEAN,
        variant: Variant::Good,
        expect: PipelineState::Failed,
    },
    Step {
        title: "vulnerable image: a CRITICAL musl CVE in a layer the image adds",
        tools: TOOLS_V2,
        trivy: TRIVY_VULNERABLE,
        variant: Variant::Good,
        expect: PipelineState::Failed,
    },
    Step {
        title: "slow variant: p95 twice production's",
        tools: TOOLS_V2,
        trivy: TRIVY_CLEAN,
        variant: Variant::Slow,
        expect: PipelineState::Failed,
    },
];

/// Locust CSVs of the good and slow variants, and the good variant's p95 (the baseline).
struct LatencyEvidence {
    good_csv: String,
    slow_csv: String,
    baseline_p95_ms: f64,
}

async fn latency_evidence() -> Result<LatencyEvidence> {
    let good = DemoTarget::start(GOOD_DELAY).await?;
    let slow = DemoTarget::start(SLOW_DELAY).await?;
    let result = async {
        let good_csv = run_load(
            &format!("{}/chat", good.url()),
            CHAT_BODY,
            LOAD_REQUESTS,
            LOAD_CONCURRENCY,
        )
        .await?;
        let slow_csv = run_load(
            &format!("{}/chat", slow.url()),
            CHAT_BODY,
            LOAD_REQUESTS,
            LOAD_CONCURRENCY,
        )
        .await?;
        let baseline_p95_ms = scrape_p95_ms(&format!("{}/metrics", good.url())).await?;
        anyhow::Ok(LatencyEvidence {
            good_csv,
            slow_csv,
            baseline_p95_ms,
        })
    }
    .await;
    good.stop().await;
    slow.stop().await;
    result
}

pub async fn run(port: u16, data_dir: Option<PathBuf>, exit: bool) -> Result<()> {
    let tmp;
    let data_dir = match data_dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().context("creating a temporary data directory")?;
            tmp.path().to_path_buf()
        }
    };
    let secret_text = hex::encode(Sha256::digest(format!(
        "{:?}{}",
        Instant::now(),
        std::process::id()
    )));
    let secret = WebhookSecret::new(secret_text.clone())?;
    let latency = latency_evidence()
        .await
        .context("measuring the demo agents")?;
    println!(
        "vaia demo: load-tested two stand-in agents ({LOAD_REQUESTS} requests each, {LOAD_CONCURRENCY} at a time): \
         production baseline p95 {:.1} ms from the good variant's {} histogram\n",
        latency.baseline_p95_ms,
        crate::loadgen::METRIC
    );
    let mut policy = Policy::default();
    policy.latency.baseline_p95_ms = Some(latency.baseline_p95_ms);
    let config = StackConfig {
        data_dir: data_dir.clone(),
        bind: "127.0.0.1".into(),
        port,
        policy,
        secret,
    };
    let stack = Stack::start(config).await?;
    let client = Client::new(&stack.url());
    println!(
        "vaia demo: local stack on {} (data in {})\n",
        stack.url(),
        data_dir.display()
    );

    let outcome = drive(&client, &secret_text, &latency).await;
    match &outcome {
        Ok(()) => println!("\nruns:\n{}", render_list(&client.runs(20).await?)),
        Err(e) => eprintln!("vaia demo: {e:#}"),
    }
    if outcome.is_ok() && !exit {
        println!(
            "The stack keeps running: try `vaia runs list --url {}` or open {}/metrics.",
            stack.url(),
            stack.url()
        );
        println!("Press Ctrl-C to stop.");
        wait_for_signal().await;
    }
    stack.stop().await;
    outcome
}

async fn drive(client: &Client, secret: &str, latency: &LatencyEvidence) -> Result<()> {
    let repo = Repository::new(REPO)?;
    let salt = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    for (i, step) in STEPS.iter().enumerate() {
        let commit = CommitSha::new(hex::encode(
            &Sha256::digest(format!("{REPO} {salt} {i}"))[..20],
        ))?;
        println!(
            "── {} ({}) ─────────────────────────────",
            step.title,
            commit.short()
        );
        let payload = push_payload(&repo, &commit)?;
        let delivery = format!("demo-{salt}-{i}");
        let (status, answer) = client
            .send_webhook(secret, "push", &delivery, &payload)
            .await?;
        println!("webhook push → {status} {answer}");
        if status != 201 {
            bail!("the webhook did not create a run: {status} {answer}");
        }
        let image = ImageDigest::new(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!(
                "{}{}{}",
                step.tools,
                step.trivy,
                step.variant == Variant::Slow
            )))
        ))?;
        let stats = match step.variant {
            Variant::Good => &latency.good_csv,
            Variant::Slow => &latency.slow_csv,
        };
        let files = vec![
            ("tools.json".to_string(), step.tools.as_bytes().to_vec()),
            ("trivy.json".to_string(), step.trivy.as_bytes().to_vec()),
            ("locust_stats.csv".to_string(), stats.as_bytes().to_vec()),
        ];
        client
            .upload_evidence(&repo, &commit, &image, None, &files)
            .await?;
        println!("evidence uploaded: tools.json, trivy.json, locust_stats.csv + manifest.json");
        let run_id = answer["run_id"]
            .as_str()
            .context("webhook answer has no run_id")?
            .to_string();
        let detail = wait_settled(client, &run_id, Duration::from_secs(30)).await?;
        println!("{}", render_detail(&detail));
        if detail.run.state != step.expect {
            bail!(
                "run {run_id} ended {} but the demo expected {}",
                detail.run.state,
                step.expect
            );
        }
    }
    Ok(())
}

/// Polls until the run is PROMOTED, FAILED or ROLLBACK.
pub async fn wait_settled(client: &Client, run_id: &str, timeout: Duration) -> Result<RunDetail> {
    let start = Instant::now();
    loop {
        let detail = client.run(run_id).await?;
        if !detail.run.state.is_in_flight() {
            return Ok(detail);
        }
        if start.elapsed() > timeout {
            bail!("run {run_id} still {} after {timeout:?}", detail.run.state);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GitHub's push payload (events/github/push.json) for `repo` at `commit`.
pub fn push_payload(repo: &Repository, commit: &CommitSha) -> Result<Vec<u8>> {
    let mut p: serde_json::Value =
        serde_json::from_str(PUSH_FIXTURE).context("events/github/push.json")?;
    let branch = p["repository"]["default_branch"]
        .as_str()
        .unwrap_or("main")
        .to_string();
    p["ref"] = format!("refs/heads/{branch}").into();
    p["after"] = commit.as_str().into();
    p["head_commit"]["id"] = commit.as_str().into();
    p["repository"]["full_name"] = repo.as_str().into();
    p["repository"]["name"] = repo.name().into();
    p["repository"]["owner"]["login"] = repo.owner().into();
    p["repository"]["owner"]["name"] = repo.owner().into();
    Ok(serde_json::to_vec(&p)?)
}
