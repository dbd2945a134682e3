//! The agent repositories' reusable workflow (`infra/github/agent-workflow.yml`) run as
//! GitHub's runner would run its script steps: the `collect` and `upload` steps' `run:`
//! scripts, with their `env:` expressions evaluated, under `bash -eo pipefail`, against a
//! real `vaia up` and the example agent serving as the candidate. The steps before them
//! need a Docker engine (build, push, Trivy, the candidate container) or the network
//! (Locust from PyPI); their outputs are given as those steps would write them (the image's
//! digest, Trivy's report of a clean image, a Locust CSV). The run the push created ends
//! PROMOTED with every default gate's verdict. Also: every action is pinned to a full commit
//! SHA, and no script interpolates an expression (inputs reach scripts through `env:` only).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{StartVaia, Vaia};
use vaia::client::Client;
use vaia::demo::{push_payload, wait_settled};
use vaia_core::{CommitSha, PipelineState, Repository};
use vaia_example_agent::{spawn, AgentConfig, Variant};

const SECRET: &str = "workflow-secret-90ab";
const POLICY: &str = "[latency]\nbaseline_p95_ms = 150.0\n";
const REPO: &str = "acme/support-agent";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn workflow() -> Value {
    let text = std::fs::read_to_string(root().join("infra/github/agent-workflow.yml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn steps(wf: &Value) -> Vec<Value> {
    wf["jobs"]["deliver"]["steps"]
        .as_sequence()
        .unwrap()
        .to_vec()
}

/// `${{ expr }}` replaced from `ctx`; an expression the test does not know fails it.
fn eval(text: &str, ctx: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("unclosed expression") + start;
        let expr = rest[start + 3..end].trim();
        let value = ctx
            .get(expr)
            .unwrap_or_else(|| panic!("the test does not know the expression {expr:?}"));
        out.push_str(value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn actions_are_pinned_and_scripts_take_inputs_through_env_only() {
    let wf = workflow();
    for step in steps(&wf) {
        if let Some(uses) = step["uses"].as_str() {
            let (_, sha) = uses.split_once('@').unwrap();
            assert!(
                sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                "{uses} is not pinned to a full commit SHA"
            );
        }
        if let Some(run) = step["run"].as_str() {
            assert!(
                !run.contains("${{"),
                "a script interpolates an expression (pass it through env:): {run}"
            );
        }
    }
    assert!(wf["on"]["workflow_call"]["inputs"]["image"].is_mapping());
    assert_eq!(
        wf["permissions"]["contents"].as_str(),
        Some("read"),
        "least privilege at the top"
    );
}

/// Runs the step `id`'s script as the runner does; returns what it wrote to GITHUB_OUTPUT.
fn run_step(
    step: &Value,
    job_env: &BTreeMap<String, String>,
    ctx: &BTreeMap<String, String>,
    work: &Path,
) -> BTreeMap<String, String> {
    let id = step["id"].as_str().unwrap();
    let script = step["run"].as_str().unwrap();
    let output = work.join(format!("output-{id}"));
    std::fs::write(&output, "").unwrap();
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .current_dir(work.join("repo"))
        .env("GITHUB_OUTPUT", &output)
        .envs(job_env);
    if let Some(env) = step["env"].as_mapping() {
        for (k, v) in env {
            cmd.env(scalar(k), eval(&scalar(v), ctx));
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "step {id} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_scripts_deliver_a_bundle_that_vaia_promotes() {
    let wf = workflow();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let stack = Vaia::start(&data, POLICY, SECRET);
    let client = Client::new(&stack.url);

    // The agent repository's checkout, with the files the inputs' defaults name.
    let repo_dir = work.join("repo");
    std::fs::create_dir_all(repo_dir.join("eval")).unwrap();
    std::fs::write(
        repo_dir.join("eval/golden.jsonl"),
        vaia_example_agent::GOLDEN,
    )
    .unwrap();
    std::fs::write(
        repo_dir.join("tools.json"),
        serde_json::to_string_pretty(&vaia_example_agent::tools()).unwrap(),
    )
    .unwrap();
    std::fs::write(
        repo_dir.join("system_prompt.txt"),
        vaia_example_agent::system_prompt(vaia_example_agent::DEFAULT_CANARY),
    )
    .unwrap();

    // What the Docker and Locust steps leave behind.
    let evidence_in = work.join("workspace/.vaia-in");
    std::fs::create_dir_all(&evidence_in).unwrap();
    std::fs::copy(
        root().join("examples/demo/trivy-clean.json"),
        evidence_in.join("trivy.json"),
    )
    .unwrap();
    std::fs::copy(
        root().join("shared/gates/tests/fixtures/locust/good_stats.csv"),
        evidence_in.join("locust_stats.csv"),
    )
    .unwrap();
    let agent = spawn(AgentConfig::new(Variant::Good), "127.0.0.1:0")
        .await
        .unwrap();

    // GitHub's push creates the run (vaia's webhook), the workflow delivers the evidence.
    let repo = Repository::new(REPO).unwrap();
    let sha = CommitSha::new("5a".repeat(20)).unwrap();
    let (status, answer) = client
        .send_webhook(SECRET, "push", "wf-1", &push_payload(&repo, &sha).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    let run_id = answer["run_id"].as_str().unwrap().to_string();

    let mut ctx: BTreeMap<String, String> = BTreeMap::new();
    for (name, input) in wf["on"]["workflow_call"]["inputs"].as_mapping().unwrap() {
        let default = input.get("default").map(scalar).unwrap_or_default();
        ctx.insert(format!("inputs.{}", scalar(name)), default);
    }
    ctx.insert("inputs.vaia-url".into(), stack.url.clone());
    ctx.insert("secrets.vaia-token".into(), String::new());
    ctx.insert(
        "github.workspace".into(),
        work.join("workspace").display().to_string(),
    );
    ctx.insert(
        "steps.build.outputs.digest".into(),
        format!("sha256:{}", "7e".repeat(32)),
    );
    ctx.insert("steps.trivy.outputs.base-digest".into(), String::new());
    ctx.insert("steps.candidate.outputs.url".into(), agent.chat_url());

    let vaia_bin = Path::new(env!("CARGO_BIN_EXE_vaia"));
    let mut job_env: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in wf["jobs"]["deliver"]["env"].as_mapping().unwrap() {
        job_env.insert(scalar(k), eval(&scalar(v), &ctx));
    }
    job_env.insert("GITHUB_REPOSITORY".into(), REPO.into());
    job_env.insert("GITHUB_SHA".into(), sha.as_str().into());
    job_env.insert("RUNNER_TEMP".into(), work.display().to_string());
    job_env.insert(
        "PATH".into(),
        format!(
            "{}:{}",
            vaia_bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    job_env.insert("RUST_LOG".into(), "warn".into());

    let all = steps(&wf);
    for id in ["collect", "upload"] {
        let step = all
            .iter()
            .find(|s| s["id"].as_str() == Some(id))
            .unwrap_or_else(|| panic!("the workflow has no step {id}"));
        let job_env = job_env.clone();
        let ctx = ctx.clone();
        let step = step.clone();
        let work = work.to_path_buf();
        tokio::task::spawn_blocking(move || run_step(&step, &job_env, &ctx, &work))
            .await
            .unwrap();
    }
    agent.stop().await;

    // The S3 branch of the upload step, with an `aws` that keeps what it is given.
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake_aws = bin.join("aws");
    std::fs::write(
        &fake_aws,
        format!(
            "#!/bin/sh\necho \"$@\" >> {0}/aws.log\ncp \"$3\" {0}/s3-object\n",
            work.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &fake_aws,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut s3_ctx = ctx.clone();
    s3_ctx.insert("inputs.vaia-url".into(), String::new());
    s3_ctx.insert("inputs.evidence-bucket".into(), "evidence-bucket".into());
    let mut s3_env = job_env.clone();
    s3_env.insert(
        "PATH".into(),
        format!("{}:{}", bin.display(), job_env["PATH"]),
    );
    let upload = all
        .iter()
        .find(|s| s["id"].as_str() == Some("upload"))
        .unwrap()
        .clone();
    let w = work.to_path_buf();
    tokio::task::spawn_blocking(move || run_step(&upload, &s3_env, &s3_ctx, &w))
        .await
        .unwrap();
    let log = std::fs::read_to_string(work.join("aws.log")).unwrap();
    assert_eq!(
        log.trim(),
        format!(
            "s3 cp {}/bundle.tar s3://evidence-bucket/evidence/{REPO}/{sha}/bundle.tar",
            work.display()
        ),
        "one upload"
    );
    let sent = std::fs::read(work.join("s3-object")).unwrap();
    let unpacked = vaia_core::evidence::archive::unpack(&sent, "s3-object").unwrap();
    let manifest = vaia_core::evidence::Manifest::parse(&unpacked.manifest, "m").unwrap();
    assert_eq!(
        manifest.files.iter().map(|f| &f.name).collect::<Vec<_>>(),
        unpacked.files.keys().collect::<Vec<_>>()
    );

    let detail = wait_settled(&client, &run_id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        detail.run.state,
        PipelineState::Promoted,
        "{}",
        vaia::cli_runs::render_detail(&detail)
    );
    assert_eq!(detail.verdicts.len(), 5, "every default gate ran");
    let bundle = work.join("workspace/.vaia-evidence/manifest.json");
    assert!(bundle.exists(), "collect wrote {}", bundle.display());
    // `vaia evidence upload` stored one object: the archive (no per-file PUT).
    let stored: Vec<String> = std::fs::read_dir(data.join(format!("blobs/evidence/{REPO}/{sha}")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(stored, ["bundle.tar"]);
}
