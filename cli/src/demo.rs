//! `vaia demo`: starts a local stack, pushes seven commits of a small support agent
//! through it over real HTTP (signed webhook, evidence upload), and shows each run. For
//! every commit the demo does what the agent's CI would: the example agent
//! (`examples/agent`) runs in-process in the commit's variant, vaia's attack corpus and the
//! golden questions are run against it (`prompt_responses.jsonl`, `eval_answers.jsonl`),
//! the image's Trivy report is attached (`trivy.json`), and a load test writes Locust's
//! `locust_stats.csv`. The load test runs against the example agent's `good` and `slow`
//! variants, both answering after a base latency (a stand-in for the model call) so that it
//! measures the agent rather than loopback HTTP; production's baseline p95 is the good
//! one's request-duration histogram, given to the policy as `latency.baseline_p95_ms`.
//!
//! The runs: the good agent promoted; the leaky agent failed by the prompt gate (plain and
//! encoded leaks named); the regressed agent failed by the eval gate; an additive tool
//! change promoted; a breaking tool change failed by the schema gate; an image with a
//! CRITICAL CVE in an added layer failed by the security gate; the slow variant failed by
//! the latency gate. Nothing here decides an outcome; the gates do.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vaia_core::policy::Policy;
use vaia_core::{CommitSha, ImageDigest, PipelineState, Repository};
use vaia_example_agent::{AgentConfig, Variant};
use vaia_webhook::WebhookSecret;

use crate::api::RunDetail;
use crate::cli_runs::{render_detail, render_list};
use crate::client::Client;
use crate::loadgen::{run_load, scrape_p95_ms};
use crate::stack::{wait_for_signal, Stack, StackConfig};

const PUSH_FIXTURE: &str = include_str!("../../events/github/push.json");
const REPO: &str = "vaia-demo/support-agent";

struct Step {
    title: &'static str,
    tools: &'static str,
    variant: Variant,
    trivy: &'static str,
    slow: bool,
    expect: PipelineState,
}

const V1: &str = include_str!("../../examples/demo/tools-v1.json");
const V2: &str = include_str!("../../examples/demo/tools-v2.json");
const TRIVY_CLEAN: &str = include_str!("../../examples/demo/trivy-clean.json");
const TRIVY_VULNERABLE: &str = include_str!("../../examples/demo/trivy-vulnerable.json");

/// The agent's latency in the load test (every answer; `slow` adds `SLOW_EXTRA`), and how
/// hard the demo loads it.
const BASE_DELAY: Duration = Duration::from_millis(50);
const SLOW_EXTRA: Duration = Duration::from_millis(50);
const LOAD_REQUESTS: usize = 200;
const LOAD_CONCURRENCY: usize = 20;
const CHAT_BODY: &str =
    r#"{"model":"agent","messages":[{"role":"user","content":"Where is my order 1234?"}]}"#;

const STEPS: &[Step] = &[
    Step {
        title: "first release: the good agent",
        tools: V1,
        variant: Variant::Good,
        trivy: TRIVY_CLEAN,
        slow: false,
        expect: PipelineState::Promoted,
    },
    Step {
        title: "leaky agent: gives its system prompt away to some injections",
        tools: V1,
        variant: Variant::Leaky,
        trivy: TRIVY_CLEAN,
        slow: false,
        expect: PipelineState::Failed,
    },
    Step {
        title: "regressed agent: a third of the golden answers got worse",
        tools: V1,
        variant: Variant::Regressed,
        trivy: TRIVY_CLEAN,
        slow: false,
        expect: PipelineState::Failed,
    },
    Step {
        title: "additive change: a new tool and an optional property",
        tools: V2,
        variant: Variant::Good,
        trivy: TRIVY_CLEAN,
        slow: false,
        expect: PipelineState::Promoted,
    },
    Step {
        title: "breaking change: a tool removed, a property newly required",
        tools: include_str!("../../examples/demo/tools-v3-breaking.json"),
        variant: Variant::Good,
        trivy: TRIVY_CLEAN,
        slow: false,
        expect: PipelineState::Failed,
    },
    Step {
        title: "vulnerable image: a CRITICAL musl CVE in a layer the image adds",
        tools: V2,
        variant: Variant::Good,
        trivy: TRIVY_VULNERABLE,
        slow: false,
        expect: PipelineState::Failed,
    },
    Step {
        title: "slow variant: p95 twice production's",
        tools: V2,
        variant: Variant::Good,
        trivy: TRIVY_CLEAN,
        slow: true,
        expect: PipelineState::Failed,
    },
];

/// Locust CSVs of the example agent's good and slow variants, and the good one's p95 (the
/// baseline).
struct LatencyEvidence {
    good_csv: String,
    slow_csv: String,
    baseline_p95_ms: f64,
}

async fn latency_evidence() -> Result<LatencyEvidence> {
    let serve = |variant| {
        let config = AgentConfig {
            base_delay: BASE_DELAY,
            delay: SLOW_EXTRA,
            ..AgentConfig::new(variant)
        };
        vaia_example_agent::spawn(config, "127.0.0.1:0")
    };
    let good = serve(Variant::Good)
        .await
        .context("starting the good agent")?;
    let slow = serve(Variant::Slow)
        .await
        .context("starting the slow agent")?;
    let result = async {
        let load = |url: String| async move {
            run_load(&url, CHAT_BODY, LOAD_REQUESTS, LOAD_CONCURRENCY).await
        };
        let good_csv = load(good.chat_url()).await?;
        let slow_csv = load(slow.chat_url()).await?;
        let baseline_p95_ms = scrape_p95_ms(&good.metrics_url()).await?;
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

/// What the agent's CI would upload for `variant`: the attack corpus and the golden
/// questions run against the agent, served in-process on a free port.
async fn agent_evidence(variant: Variant) -> Result<Vec<(String, Vec<u8>)>> {
    use vaia_gates::prompt::{self, target};
    let agent = vaia_example_agent::spawn(AgentConfig::new(variant), "127.0.0.1:0")
        .await
        .context("starting the example agent")?;
    let result = async {
        let corpus = prompt::parse_corpus("builtin corpus", prompt::BUILTIN_CORPUS)?;
        let config = target::TargetConfig::chat_completions(agent.chat_url());
        let responses = target::run(&config, &corpus).await?;
        let mut prompt_lines = String::new();
        for r in &responses {
            let line = serde_json::json!({"id": r.id, "response": r.response, "canary": r.canary, "error": r.error});
            prompt_lines.push_str(&format!("{line}\n"));
        }
        let golden = vaia_gates::eval::parse_golden("golden", vaia_example_agent::GOLDEN)?;
        let http = vaia_gates::http::client_builder().build()?;
        let mut answers = String::new();
        for g in &golden {
            let body = serde_json::json!({"model": "agent", "messages": [{"role": "user", "content": g.input}]});
            let reply: serde_json::Value = http
                .post(agent.chat_url())
                .json(&body)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let answer = reply["choices"][0]["message"]["content"]
                .as_str()
                .context("the agent's reply has no message content")?;
            answers.push_str(&format!("{}\n", serde_json::json!({"id": g.id, "answer": answer})));
        }
        anyhow::Ok(vec![
            ("prompt_responses.jsonl".to_string(), prompt_lines.into_bytes()),
            ("eval_golden.jsonl".to_string(), vaia_example_agent::GOLDEN.as_bytes().to_vec()),
            ("eval_answers.jsonl".to_string(), answers.into_bytes()),
            (
                "system_prompt.txt".to_string(),
                vaia_example_agent::system_prompt(vaia_example_agent::DEFAULT_CANARY).into_bytes(),
            ),
        ])
    }
    .await;
    agent.stop().await;
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
        .context("load-testing the example agent")?;
    println!(
        "vaia demo: load-tested the example agent's good and slow variants ({LOAD_REQUESTS} requests each, {LOAD_CONCURRENCY} at a time): \
         production baseline p95 {:.1} ms from the good one's {} histogram\n",
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
        Ok(()) => println!("\nruns:\n{}", render_list(&client.runs(20, None).await?)),
        Err(e) => eprintln!("vaia demo: {e:#}"),
    }
    if outcome.is_ok() && !exit {
        println!(
            "The stack keeps running: open the dashboard at {}/, try `vaia runs list --url {}` or open {}/metrics.",
            stack.url(),
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
                "{}{}{}{}",
                step.tools,
                step.variant.as_str(),
                step.trivy,
                step.slow
            )))
        ))?;
        let mut files = vec![("tools.json".to_string(), step.tools.as_bytes().to_vec())];
        files.extend(agent_evidence(step.variant).await?);
        let stats = if step.slow {
            &latency.slow_csv
        } else {
            &latency.good_csv
        };
        files.push(("trivy.json".to_string(), step.trivy.as_bytes().to_vec()));
        files.push(("locust_stats.csv".to_string(), stats.as_bytes().to_vec()));
        client
            .upload_evidence(&repo, &commit, &image, None, &files)
            .await?;
        println!(
            "agent variant {}{}: attack corpus, golden set and load test run; evidence uploaded: {} + manifest.json",
            step.variant.as_str(),
            if step.slow { " (slow)" } else { "" },
            files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
        );
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
