//! `vaia evidence collect` (the binary) against the example agent over real HTTP: two
//! collections are the same bytes apart from the canary and the manifest's timestamp; the
//! bundles of the good, leaky and regressed variants, uploaded with `vaia evidence upload` to
//! a real `vaia up` running every default gate, are promoted, failed at the prompt gate and
//! failed at the eval gate; bad input exits 2 and an unreachable candidate 3, writing nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{StartVaia, Vaia};
use vaia::client::Client;
use vaia::demo::{push_payload, wait_settled};
use vaia_core::evidence::Manifest;
use vaia_core::{CommitSha, PipelineState, Repository};
use vaia_example_agent::{spawn, AgentConfig, Variant};
use vaia_gates::prompt::detect::{Canary, LeakScanner};

const SECRET: &str = "collect-secret-51c2";
const REPO: &str = "octo/support-agent";
/// Every default gate, the latency gate with a fixed production p95 (the Locust fixture's
/// p95 is well under it).
const POLICY: &str = "[latency]\nbaseline_p95_ms = 150.0\n";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The inputs an agent repository keeps beside its code, written to `dir`.
fn inputs(dir: &Path) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let w = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let tools = w(
        "tools.json",
        serde_json::to_string_pretty(&vaia_example_agent::tools()).unwrap(),
    );
    let prompt = w(
        "system_prompt.txt",
        vaia_example_agent::system_prompt(vaia_example_agent::DEFAULT_CANARY),
    );
    let dvc = w(
        "train.csv.dvc",
        "outs:\n- md5: 3a1f0e7c9b2d4a6e8f0a1b2c3d4e5f60\n  size: 2048\n  hash: md5\n  path: train.csv\n"
            .into(),
    );
    let golden = root().join("examples/agent/golden.jsonl");
    let trivy = root().join("examples/demo/trivy-clean.json");
    let locust = root().join("shared/gates/tests/fixtures/locust/good_stats.csv");
    vec![
        "--golden".into(),
        golden.display().to_string(),
        "--tools".into(),
        tools,
        "--system-prompt".into(),
        prompt,
        "--trivy".into(),
        trivy.display().to_string(),
        "--locust-stats".into(),
        locust.display().to_string(),
        "--dvc".into(),
        dvc,
    ]
}

fn image(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

fn commit(n: u8) -> CommitSha {
    CommitSha::new(format!("{n:02x}").repeat(20)).unwrap()
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn vaia(args: Vec<String>) -> Out {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vaia"))
        .args(&args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn collect(target: &str, out: &Path, sha: &CommitSha, digest: &str, extra: &[String]) -> Out {
    let mut args: Vec<String> = [
        "evidence",
        "collect",
        "--target",
        target,
        "--repo",
        REPO,
        "--commit",
        sha.as_str(),
        "--image-digest",
        digest,
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(out.display().to_string());
    args.extend(extra.iter().cloned());
    vaia(args).await
}

fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The canary of a transcript (every line carries the same fresh one).
fn canary(bundle: &BTreeMap<String, Vec<u8>>) -> String {
    let text = String::from_utf8(bundle["prompt_responses.jsonl"].clone()).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    first["canary"].as_str().unwrap().to_string()
}

/// The bundle with its canary replaced and the manifest's timestamp and transcript hash
/// blanked: what must be the same from one collection to the next.
fn normalised(bundle: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
    let canary = canary(bundle);
    bundle
        .iter()
        .map(|(name, bytes)| {
            let text = String::from_utf8(bytes.clone()).unwrap();
            let text = if name == "manifest.json" {
                let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
                m["created_at"] = "<time>".into();
                for f in m["files"].as_array_mut().unwrap() {
                    if f["name"] == "prompt_responses.jsonl" {
                        f["sha256"] = "<canary-dependent>".into();
                    }
                }
                serde_json::to_string_pretty(&m).unwrap()
            } else if name == "prompt_responses.jsonl" {
                text.lines()
                    .map(|l| normalise_line(l, &canary) + "\n")
                    .collect()
            } else {
                text.replace(&canary, "<CANARY>")
            };
            (name.clone(), text)
        })
        .collect()
}

/// A transcript line with its canary replaced: plainly where it is plain, and a response
/// leaking it encoded (base64, hex, rot13, reversed, spelled) replaced by the encodings the
/// prompt gate's detectors find in it.
fn normalise_line(line: &str, canary: &str) -> String {
    let scanner = LeakScanner::new(
        &[Canary {
            name: "canary".into(),
            token: canary.into(),
        }],
        None,
        0.25,
    )
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
    let response = v["response"].as_str().unwrap().to_string();
    let mut encoded: Vec<&str> = scanner
        .scan(&response)
        .iter()
        .filter(|l| l.detector.is_encoded())
        .map(|l| l.detector.as_str())
        .collect();
    encoded.sort();
    encoded.dedup();
    v["response"] = if encoded.is_empty() {
        response.replace(canary, "<CANARY>").into()
    } else {
        format!("<leaked encoded: {}>", encoded.join(",")).into()
    };
    v["canary"] = "<CANARY>".into();
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collections_differ_only_in_canary_and_timestamp() {
    let agent = spawn(AgentConfig::new(Variant::Leaky), "127.0.0.1:0")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let extra = inputs(&dir.path().join("repo"));
    let sha = commit(1);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let r = collect(&agent.chat_url(), out, &sha, &image(1), &extra).await;
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let summary: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(summary["attack_errors"], 0, "{summary}");
        assert_eq!(summary["golden_questions"], 24, "{summary}");
    }
    let (ba, bb) = (read_dir(&a), read_dir(&b));
    let names: Vec<&str> = ba.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "eval_answers.jsonl",
            "eval_golden.jsonl",
            "locust_stats.csv",
            "manifest.json",
            "prompt_responses.jsonl",
            "system_prompt.txt",
            "tools.json",
            "trivy.json"
        ]
    );
    // Fresh canaries, and the leaky agent leaks them: the transcripts differ as bytes.
    assert_ne!(canary(&ba), canary(&bb));
    let leaked = String::from_utf8(ba["prompt_responses.jsonl"].clone()).unwrap();
    assert!(
        leaked
            .lines()
            .filter(|l| l.contains("\"response\":") && l.matches(canary(&ba).as_str()).count() > 1)
            .count()
            > 0,
        "the leaky agent leaked no canary"
    );
    assert_ne!(ba["prompt_responses.jsonl"], bb["prompt_responses.jsonl"]);
    assert_eq!(normalised(&ba), normalised(&bb));
    // The manifest is the contract's, lists every file with its hash, and has the dataset.
    let m = Manifest::parse(&ba["manifest.json"], "manifest.json").unwrap();
    assert_eq!(m.files.len(), 7);
    for f in &m.files {
        let bytes = &ba[&f.name];
        assert_eq!(f.bytes, bytes.len() as u64, "{}", f.name);
    }
    let dataset = m.dataset.unwrap();
    assert_eq!(
        (dataset.path.as_str(), dataset.md5.as_str()),
        ("train.csv.dvc", "3a1f0e7c9b2d4a6e8f0a1b2c3d4e5f60")
    );
    assert_eq!(m.image.digest.as_str(), image(1));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collected_bundles_are_promoted_or_failed_by_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let stack = Vaia::start(&data, POLICY, SECRET);
    let client = Client::new(&stack.url);
    let repo = Repository::new(REPO).unwrap();
    let extra = inputs(&dir.path().join("repo"));
    let cases = [
        (Variant::Good, PipelineState::Promoted, None),
        (Variant::Leaky, PipelineState::Failed, Some("prompt")),
        (Variant::Regressed, PipelineState::Failed, Some("eval")),
    ];
    for (i, (variant, expect, failing_gate)) in cases.into_iter().enumerate() {
        let n = i as u8 + 1;
        let sha = commit(n);
        let body = push_payload(&repo, &sha).unwrap();
        let (status, answer) = client
            .send_webhook(SECRET, "push", &format!("d-{n}"), &body)
            .await
            .unwrap();
        assert_eq!(status, 201, "{answer}");
        let run_id = answer["run_id"].as_str().unwrap().to_string();
        let agent = spawn(AgentConfig::new(variant), "127.0.0.1:0")
            .await
            .unwrap();
        let out = dir.path().join(format!("bundle-{n}"));
        let r = collect(&agent.chat_url(), &out, &sha, &image(n), &extra).await;
        agent.stop().await;
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let up = vaia(vec![
            "evidence".into(),
            "upload".into(),
            "--dir".into(),
            out.display().to_string(),
            "--url".into(),
            stack.url.clone(),
        ])
        .await;
        assert_eq!(up.code, 0, "{}{}", up.stdout, up.stderr);
        let detail = wait_settled(&client, &run_id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            detail.run.state,
            expect,
            "{variant:?}: {}",
            vaia::cli_runs::render_detail(&detail)
        );
        if let Some(gate) = failing_gate {
            let verdict = &detail.verdicts[gate];
            assert_eq!(verdict.outcome.as_str(), "fail", "{variant:?}: {gate}");
        } else {
            assert_eq!(detail.verdicts.len(), 5, "every default gate ran");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_and_an_unreachable_candidate_3_writing_nothing() {
    let agent = spawn(AgentConfig::new(Variant::Good), "127.0.0.1:0")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let extra = inputs(&dir.path().join("repo"));
    let out = dir.path().join("out");
    let sha = commit(7);

    let mut missing = extra.clone();
    missing.extend(["--trivy-base".into(), "/nonexistent/trivy-base.json".into()]);
    let r = collect(&agent.chat_url(), &out, &sha, &image(7), &missing).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("/nonexistent/trivy-base.json"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());

    let r = collect(&agent.chat_url(), &out, &sha, "sha256:nope", &extra).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--image-digest"), "{}", r.stderr);
    assert!(!out.exists());

    let bad_dvc = dir.path().join("bad.dvc");
    std::fs::write(&bad_dvc, "outs:\n- path: train.csv\n").unwrap();
    let mut with_bad_dvc = extra.clone();
    let at = with_bad_dvc.iter().position(|a| a == "--dvc").unwrap();
    with_bad_dvc[at + 1] = bad_dvc.display().to_string();
    let r = collect(&agent.chat_url(), &out, &sha, &image(7), &with_bad_dvc).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("outs[0].md5"), "{}", r.stderr);
    assert!(!out.exists());

    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("stale.txt"), "old").unwrap();
    let r = collect(&agent.chat_url(), &out, &sha, &image(7), &extra).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
    std::fs::remove_dir_all(&out).unwrap();

    // A port nobody listens on: the agent stopped.
    let url = agent.chat_url();
    agent.stop().await;
    let mut fast = extra.clone();
    fast.extend([
        "--retries".into(),
        "0".into(),
        "--timeout-secs".into(),
        "2".into(),
    ]);
    let r = collect(&url, &out, &sha, &image(7), &fast).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("every one of the"), "{}", r.stderr);
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pack_writes_one_archive_beside_the_directory_and_refuses_unlisted_files() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("evidence");
    std::fs::create_dir_all(&bundle).unwrap();
    let files = vec![
        ("tools.json".to_string(), b"[]".to_vec()),
        ("trivy.json".to_string(), b"{}".to_vec()),
    ];
    for (name, bytes) in &files {
        std::fs::write(bundle.join(name), bytes).unwrap();
    }
    let manifest = vaia::collect::manifest_for(
        &Repository::new(REPO).unwrap(),
        &commit(9),
        vaia_core::evidence::ImageRef {
            digest: vaia_core::ImageDigest::new(image(9)).unwrap(),
            base_digest: None,
        },
        None,
        &files,
        chrono::Utc::now(),
    );
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    std::fs::write(bundle.join("manifest.json"), &manifest_bytes).unwrap();
    let pack = |extra: &[&str]| {
        let mut args: Vec<String> = ["evidence", "pack", "--dir"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(bundle.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        vaia(args)
    };

    let r = pack(&[]).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let written = std::fs::read(dir.path().join("bundle.tar")).unwrap();
    let unpacked = vaia_core::evidence::archive::unpack(&written, "bundle.tar").unwrap();
    assert_eq!(unpacked.manifest, manifest_bytes);
    let names: Vec<&String> = unpacked.files.keys().collect();
    assert_eq!(names, ["tools.json", "trivy.json"]);
    assert!(r.stdout.contains("packed 2 files"), "{}", r.stdout);

    // An archive packed inside the directory is not one of its files.
    let inside = bundle.join("bundle.tar");
    let r = pack(&["--out", &inside.display().to_string()]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = pack(&[]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read(dir.path().join("bundle.tar")).unwrap(),
        written
    );

    // A file the manifest does not list, and a listed file that is gone: refused.
    std::fs::write(bundle.join("extra.json"), b"{}").unwrap();
    let r = pack(&[]).await;
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("extra.json is in the bundle's directory but not in its manifest.json"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(bundle.join("extra.json")).unwrap();
    std::fs::remove_file(bundle.join("trivy.json")).unwrap();
    let r = pack(&[]).await;
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("manifest.json lists trivy.json but the directory has no such file"),
        "{}",
        r.stderr
    );
}
