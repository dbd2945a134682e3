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
//!
//! Then rollback on alerts: with 0.2.0 in production the agent turns slow, the generated
//! `AgentP95LatencyHigh` fires and vaia rolls 0.2.0 back to 0.1.0. With `prometheus` and
//! `prometheus-alertmanager` installed the demo runs both (generated rules, 1 s scrape and
//! evaluation, a 1 s `for`) and Alertmanager posts to `/hooks/alertmanager`; without them it
//! says so, measures the p95 itself and posts Alertmanager's notification (version 4).
//!
//! Then continuous training: every release's evidence names `data/train.dvc` (10,000 rows,
//! the CT baseline). A quiet drift report and `POST /api/ct/evaluate` hold; raw data lands
//! under `raw/` (counted by the data watcher); the drift report rises and a new DVC snapshot
//! (25,000 rows) is pushed under `datasets/`, on which the CT loop evaluates: the budget
//! crosses the threshold, one training job is queued and consumes the pending data, and a
//! further evaluation queues nothing.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vaia_core::evidence::ImageRef;
use vaia_core::policy::Policy;
use vaia_core::{CommitSha, ImageDigest, PipelineState, Repository};
use vaia_example_agent::{AgentConfig, Variant};
use vaia_webhook::WebhookSecret;

use crate::api::RunDetail;
use crate::cli_runs::{render_detail, render_list};
use crate::client::Client;
use crate::collect;
use crate::loadgen::{run_load, scrape_p95_ms};
use crate::monitoring::servers::{self, Servers};
use crate::stack::{wait_for_signal, Stack, StackConfig};
use vaia_api::alertmanager::{AlertmanagerToken, TOKEN_ENV};
use vaia_core::layout::{alias_key, AliasRecord, PROD_ALIAS};
use vaia_core::monitoring::{AgentMonitor, MonitoringPolicy, LATENCY_ALERT};

/// Alertmanager's notification the demo posts itself when the servers are not installed.
const ALERT_FIXTURE: &str = include_str!("../../events/alertmanager/firing.json");
/// The demo's latency alert: between the good agent's p95 (~50 ms) and the slow one's (~100 ms).
const DEMO_THRESHOLD_MS: f64 = 75.0;

/// The agent's dataset pointer (`dvc add data/train`) in every release's evidence, and the
/// version a data pipeline pushes after the runs (more rows).
const DVC_PATH: &str = "data/train.dvc";
const TRAIN_V1: &str = include_str!("../../examples/demo/data/train-v1.dvc");
const TRAIN_V2: &str = include_str!("../../examples/demo/data/train-v2.dvc");
/// Raw conversations that land before the new snapshot (`raw/<owner>/<repo>/...`).
const RAW_FILES: usize = 3;

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
/// The latency gate's allowed regression in the demo (the default policy allows 0.15). The
/// candidate's p95 is what the load generator measured (client side: the agent's time plus
/// queueing and scheduling on this machine) and the baseline is the agent's own histogram
/// (server side) of the same load; on a busy two-core machine the two differ by up to a
/// third for one and the same agent (seen: 94.0 ms against 71.1 ms, ×1.32), which failed the
/// good release. The slow variant doubles the agent's time (×2 and more), so it still fails.
const DEMO_MAX_REGRESSION: f64 = 0.5;
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

/// What the agent's CI would upload for `variant`: `vaia evidence collect`'s bundle (attack
/// corpus and golden questions run against the agent, served in-process on a free port)
/// with `copies` (tools, Trivy report, Locust CSV, system prompt).
async fn agent_evidence(
    variant: Variant,
    repo: &Repository,
    commit: &CommitSha,
    image: &ImageDigest,
    mut copies: Vec<collect::BundleFile>,
) -> Result<collect::Bundle> {
    let agent = vaia_example_agent::spawn(AgentConfig::new(variant), "127.0.0.1:0")
        .await
        .context("starting the example agent")?;
    copies.push((
        vaia_gate_prompt::SYSTEM_PROMPT_FILE.to_string(),
        vaia_example_agent::system_prompt(vaia_example_agent::DEFAULT_CANARY).into_bytes(),
    ));
    let result = async {
        let request = collect::CollectRequest {
            repo: repo.clone(),
            commit: commit.clone(),
            image: ImageRef {
                digest: image.clone(),
                base_digest: None,
            },
            dataset: Some(collect::dvc_snapshot(
                std::path::Path::new(DVC_PATH),
                TRAIN_V1,
            )?),
            copies,
            questions: collect::Questions::builtin(
                &agent.chat_url(),
                Some(vaia_example_agent::GOLDEN.to_string()),
            )?,
        };
        anyhow::Ok(collect::collect(request).await?)
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
    let alert_token = std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| hex::encode(Sha256::digest(format!("alerts {secret_text}"))));
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
    policy.latency.max_regression = DEMO_MAX_REGRESSION;
    // Drift from the drift monitor's reports in the blob store (the demo writes them).
    policy.ct.drift_source = vaia_core::ct::DriftSource::Report;
    let config = StackConfig {
        data_dir: data_dir.clone(),
        bind: "127.0.0.1".into(),
        port,
        policy,
        secret,
        alertmanager_token: Some(
            AlertmanagerToken::new(alert_token.clone())
                .map_err(|e| anyhow::anyhow!("{TOKEN_ENV}: {e}"))?,
        ),
    };
    let stack = Stack::start(config).await?;
    let client = Client::new(&stack.url());
    println!(
        "vaia demo: local stack on {} (data in {})\n",
        stack.url(),
        data_dir.display()
    );

    let mut outcome = drive(&client, &secret_text, &latency).await;
    if outcome.is_ok() {
        outcome = rollback_on_alert(&stack, &client, &alert_token).await;
    }
    if outcome.is_ok() {
        outcome = continuous_training(&stack, &client).await;
    }
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
        let stats = if step.slow {
            &latency.slow_csv
        } else {
            &latency.good_csv
        };
        let copies = vec![
            (
                vaia_gate_schema::TOOLS_FILE.to_string(),
                step.tools.as_bytes().to_vec(),
            ),
            (
                vaia_gate_security::REPORT_FILE.to_string(),
                step.trivy.as_bytes().to_vec(),
            ),
            (
                vaia_gate_latency::STATS_FILE.to_string(),
                stats.as_bytes().to_vec(),
            ),
        ];
        let bundle = agent_evidence(step.variant, &repo, &commit, &image, copies).await?;
        let archive = crate::client::pack(
            &bundle.manifest,
            &serde_json::to_vec_pretty(&bundle.manifest)?,
            &bundle.files,
        )?;
        client.upload_archive(&bundle.manifest, archive).await?;
        println!(
            "agent variant {}{}: attack corpus, golden set and load test run; evidence uploaded as one {}: {} + manifest.json",
            step.variant.as_str(),
            if step.slow { " (slow)" } else { "" },
            vaia_core::evidence::ARCHIVE_FILE,
            bundle.files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
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

async fn prod_alias(stack: &Stack, repo: &Repository) -> Result<AliasRecord> {
    let bytes = stack
        .ports
        .blobs
        .get(&alias_key(repo, PROD_ALIAS)?)
        .await?
        .context("nothing was promoted")?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// The demo's monitoring spec: the demo agent, a 75 ms threshold, a 1 s `for`.
pub fn demo_spec() -> Result<MonitoringPolicy> {
    let mut agent = AgentMonitor::example().context("the example agent's spec")?;
    agent.repository = Repository::new(REPO)?;
    agent.threshold_ms = DEMO_THRESHOLD_MS;
    agent.for_ = "1s".into();
    agent.slos.clear();
    Ok(MonitoringPolicy {
        agents: vec![agent],
        ..MonitoringPolicy::default()
    })
}

/// Production turns slow; the latency alert fires; vaia rolls prod back.
async fn rollback_on_alert(stack: &Stack, client: &Client, token: &str) -> Result<()> {
    let repo = Repository::new(REPO)?;
    let prod = prod_alias(stack, &repo).await?;
    println!(
        "── production turns slow: {} (run {}) answers in ~{} ms ─────────────",
        prod.target.version,
        prod.target.run_id,
        (BASE_DELAY + SLOW_EXTRA).as_millis()
    );
    let agent = vaia_example_agent::spawn(
        AgentConfig {
            base_delay: BASE_DELAY,
            delay: SLOW_EXTRA,
            ..AgentConfig::new(Variant::Slow)
        },
        "127.0.0.1:0",
    )
    .await
    .context("starting the slow agent")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let chat = agent.chat_url();
    let load = tokio::spawn(async move {
        while !*stop_rx.borrow() {
            if run_load(&chat, CHAT_BODY, 20, 4).await.is_err() {
                break;
            }
        }
    });
    let result = async {
        let spec = demo_spec()?;
        let installed = servers::which(servers::PROMETHEUS).is_some()
            && servers::which(servers::ALERTMANAGER).is_some();
        let mut running = None;
        if installed {
            let s = Servers::start(
                &spec,
                &agent.addr.to_string(),
                &format!("{}/hooks/alertmanager", stack.url()),
                token,
            )
            .await?;
            println!(
                "prometheus on {} (generated rules: {LATENCY_ALERT} over {DEMO_THRESHOLD_MS} ms for 1s, 1 s scrape and evaluation) \
                 and alertmanager on {} posting to {}/hooks/alertmanager",
                s.prometheus_url,
                s.alertmanager_url,
                stack.url()
            );
            running = Some(s);
        } else {
            println!(
                "prometheus and prometheus-alertmanager are not installed (apt-get install prometheus prometheus-alertmanager): \
                 measuring the p95 here and posting Alertmanager's notification myself"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            let p95 = scrape_p95_ms(&agent.metrics_url()).await?;
            println!("p95 of production: {p95:.1} ms (threshold {DEMO_THRESHOLD_MS} ms)");
            if p95 <= DEMO_THRESHOLD_MS {
                bail!("the slow agent's p95 {p95:.1} ms is not over {DEMO_THRESHOLD_MS} ms");
            }
            let mut note: serde_json::Value =
                serde_json::from_str(ALERT_FIXTURE).context("events/alertmanager/firing.json")?;
            let starts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            note["alerts"][0]["startsAt"] = starts.into();
            note["alerts"][0]["annotations"]["summary"] =
                format!("{REPO}: p95 latency {p95:.0} ms is over {DEMO_THRESHOLD_MS} ms").into();
            let (status, answer) = client
                .post_json_bearer("/hooks/alertmanager", token, &note)
                .await?;
            println!("POST /hooks/alertmanager → {status} {answer}");
        }
        let start = Instant::now();
        let detail = loop {
            let d = client.run(prod.target.run_id.as_str()).await?;
            if d.run.state == PipelineState::Rollback {
                break d;
            }
            if start.elapsed() > Duration::from_secs(90) {
                bail!("run {} still {} 90 s after production turned slow", d.run.id, d.run.state);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if let Some(s) = running {
            println!(
                "{LATENCY_ALERT} fired and Alertmanager notified vaia {:.1} s after production turned slow",
                start.elapsed().as_secs_f64()
            );
            s.stop().await;
        }
        println!("{}", render_detail(&detail));
        let restore = Instant::now();
        loop {
            let now = prod_alias(stack, &repo).await?;
            if now.target.run_id != prod.target.run_id {
                println!(
                    "prod rolled back: {} → {} (run {})\n",
                    prod.target.version, now.target.version, now.target.run_id
                );
                break;
            }
            if restore.elapsed() > Duration::from_secs(30) {
                bail!("prod still points at {} after the rollback", now.target.version);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::Ok(())
    }
    .await;
    let _ = stop_tx.send(true);
    let _ = load.await;
    agent.stop().await;
    result
}

/// Polls `probe` every 50 ms until it gives `Some`, for at most `timeout`.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await? {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("{what}: not after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Continuous training: a quiet evaluation; raw data lands (the data watcher counts it);
/// production drifts and a data pipeline pushes a new DVC snapshot, on which the CT loop
/// evaluates at once: the budget crosses the threshold and one training job is queued,
/// consuming the pending data; a scheduled evaluation after it queues nothing more.
async fn continuous_training(stack: &Stack, client: &Client) -> Result<()> {
    use crate::ct_cmd::{render_evaluations, render_pending, render_scheduled};
    use vaia_ct_budget::drift::{plain_report, report_key};
    use vaia_ct_budget::scheduled::ScheduledRun;
    let repo = Repository::new(REPO)?;
    let blobs = &stack.ports.blobs;
    let wait = Duration::from_secs(30);
    let repo_ref = &repo;
    let drift = |score: f64| async move {
        let repo = repo_ref;
        let at = chrono::Utc::now();
        blobs
            .put(&report_key(repo, at)?, &plain_report(score, at))
            .await?;
        println!("drift monitor: drift score {score} (drift/{repo}/)");
        anyhow::Ok(())
    };
    let latest = || async {
        let body: serde_json::Value = client.get_json(&format!("/api/ct/{REPO}?limit=1")).await?;
        let e: Vec<vaia_ct_budget::Evaluation> =
            serde_json::from_value(body["evaluations"].clone())?;
        anyhow::Ok(e)
    };
    let pending = || async {
        let v: vaia_data_watcher::Volume = client
            .get_json(&format!("/api/data/{REPO}/pending"))
            .await?;
        anyhow::Ok(v)
    };

    println!(
        "── continuous training: production {} on the data it was trained with ─────────────",
        prod_alias(stack, &repo).await?.target.version
    );
    drift(0.05).await?;
    let run: ScheduledRun = client.post_for_json("/api/ct/evaluate").await?;
    print!("POST /api/ct/evaluate → {}", render_scheduled(&run));
    if run.outcomes.get("hold") != Some(&1) {
        bail!("the quiet evaluation did not hold: {run:?}");
    }

    println!("\n── new data lands, production drifts, a new snapshot is pushed ─────────────");
    for i in 1..=RAW_FILES {
        let key = vaia_core::BlobKey::new(format!(
            "{}conversations-{i:04}.jsonl",
            vaia_core::layout::raw_data_prefix(&repo)
        ))?;
        let lines: String = (0..200)
            .map(|n| {
                format!(
                    "{{\"conversation\": {}, \"user\": \"Where is my order {}?\"}}\n",
                    i * 1000 + n,
                    1000 + n
                )
            })
            .collect();
        blobs.put(&key, lines.as_bytes()).await?;
    }
    let landed = poll("the data watcher counting the raw data", wait, || async {
        let v = pending().await?;
        Ok((v.objects as usize == RAW_FILES).then_some(v))
    })
    .await?;
    println!(
        "{RAW_FILES} files under raw/{repo}/ → {}",
        render_pending(&repo, landed)
    );
    drift(0.35).await?;
    let before = latest().await?.first().map(|e| e.at);
    let key = vaia_core::BlobKey::new(format!("datasets/{REPO}/{DVC_PATH}"))?;
    blobs.put(&key, TRAIN_V2.as_bytes()).await?;
    println!("data pipeline: dvc push, then {DVC_PATH} uploaded to datasets/{REPO}/ (25,000 rows; production trained on 10,000)");
    let evaluation = poll(
        "the CT loop's evaluation of the new snapshot",
        wait,
        || async {
            let e = latest().await?;
            Ok(e.into_iter()
                .next()
                .filter(|e| Some(e.at) != before && e.job_status.is_some()))
        },
    )
    .await?;
    print!(
        "{}",
        render_evaluations(&repo, std::slice::from_ref(&evaluation))
    );
    if evaluation.job_status.as_deref() != Some(vaia_ct_budget::JOB_QUEUED) {
        bail!("the new snapshot's evaluation queued no training job: {evaluation:?}");
    }
    let left = pending().await?;
    println!(
        "training job consumed the pending data: {}",
        render_pending(&repo, left)
    );

    let run: ScheduledRun = client.post_for_json("/api/ct/evaluate").await?;
    print!("POST /api/ct/evaluate again → {}", render_scheduled(&run));
    let depth = stack
        .ports
        .queue
        .depth(vaia_ct_budget::TRAINING_QUEUE)
        .await?;
    println!(
        "training queue: {} job (queued once)\n",
        depth.visible + depth.in_flight
    );
    if !run.queued.is_empty() || depth.visible + depth.in_flight != 1 || left.objects != 0 {
        bail!("expected one training job and no pending data: {run:?}, depth {depth:?}, pending {left:?}");
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
