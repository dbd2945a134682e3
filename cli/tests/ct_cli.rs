//! `vaia dataset inspect` and `vaia ct budget` as a user runs them: JSON on stdout, the
//! gates' exit codes, errors naming the file and field on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/dvc/tests/fixtures");

fn vaia(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vaia"))
        .args(args)
        .output()
        .expect("run vaia");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_a_dvc_file_and_a_lock() {
    let (code, v, err) = vaia(&[
        "dataset",
        "inspect",
        &format!("{FIXTURES}/registry-cats-dogs.dvc"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["format"], "dvc");
    assert_eq!(v["path"], "cats-dogs");
    assert_eq!(v["md5"], "22e3f61e52c0ba45334d973244efc155.dir");
    assert_eq!(v["is_dir"], true);
    assert_eq!(v["nfiles"], 2800);
    assert!(v.get("rows").is_none(), "rows are unknown, not zero: {v}");

    let (code, v, _) = vaia(&["dataset", "inspect", &format!("{FIXTURES}/with-meta.dvc")]);
    assert_eq!(code, 0);
    assert_eq!(v["rows"], 120_000);

    let (code, v, err) = vaia(&[
        "dataset",
        "inspect",
        &format!("{FIXTURES}/experiments.dvc.lock"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["format"], "dvc.lock");
    assert_eq!(v["stages"][0]["name"], "data_split");
    assert_eq!(v["stages"][0]["outs"][1]["path"], "data/train_data");
    assert_eq!(v["stages"][0]["outs"][1]["nfiles"], 148);
}

#[test]
fn inspect_refuses_a_broken_file_with_file_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("train.dvc");
    std::fs::write(&f, "outs:\n- path: train\n  md5: 1234\n").unwrap();
    let (code, v, err) = vaia(&["dataset", "inspect", f.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(v.is_null());
    assert!(
        err.contains("train.dvc:3: outs[0].md5") && err.contains("hex"),
        "{err}"
    );
    let (code, _, err) = vaia(&["dataset", "inspect", "/nonexistent/x.dvc"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/x.dvc"), "{err}");
}

#[test]
fn budget_exit_codes_follow_the_gates() {
    let (code, v, err) = vaia(&["ct", "budget", "--drift", "0.1", "--delta-rows", "100"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["outcome"], "hold");
    let (code, v, _) = vaia(&["ct", "budget", "--drift", "0", "--delta-rows", "10000"]);
    assert_eq!(code, 1);
    assert_eq!(v["outcome"], "retrain");
    assert_eq!(v["budget"], 0.4);
    let (code, v, _) = vaia(&["ct", "budget", "--drift", "1.5", "--delta-rows", "10000"]);
    assert_eq!(code, 3);
    assert_eq!(v["outcome"], "error");
    let (code, v, _) = vaia(&["ct", "budget", "--drift", "NaN"]);
    assert_eq!(code, 3);
    assert_eq!(v["outcome"], "error");
    let (code, v, _) = vaia(&["ct", "budget", "--drift", "0.9"]);
    assert_eq!(code, 3);
    assert_eq!(v["outcome"], "inconclusive");
    let (code, _, _) = vaia(&[
        "ct",
        "budget",
        "--drift",
        "0.9",
        "--delta-rows",
        "0",
        "--drift-age-secs",
        "7200",
    ]);
    assert_eq!(code, 3);
    let (code, _, err) = vaia(&["ct", "budget", "--drift", "x"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn budget_reads_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("vaia.toml");
    std::fs::write(&p, "[ct]\nthreshold = 0.9\n").unwrap();
    let (code, v, _) = vaia(&[
        "ct",
        "budget",
        "--drift",
        "1",
        "--delta-rows",
        "10000",
        "--policy",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["threshold"], 0.9);
    std::fs::write(&p, "[ct]\nthreshold = 0.95\nrows_scale = 20000\n").unwrap();
    let (code, v, _) = vaia(&[
        "ct",
        "budget",
        "--drift",
        "1",
        "--delta-rows",
        "10000",
        "--policy",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v}");
    std::fs::write(&p, "[ct]\nthreshould = 0.9\n").unwrap();
    let (code, _, err) = vaia(&[
        "ct",
        "budget",
        "--drift",
        "1",
        "--policy",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("vaia.toml") && err.contains("threshould"),
        "{err}"
    );
}

/// A local stack reading drift from reports in its blob store; its schedule (the default
/// 15 minutes) never fires during a test.
async fn ct_stack() -> (vaia::stack::Stack, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut policy = vaia_core::policy::Policy::default();
    policy.ct.drift_source = vaia_core::ct::DriftSource::Report;
    let stack = vaia::stack::Stack::start(vaia::stack::StackConfig {
        data_dir: dir.path().to_path_buf(),
        bind: "127.0.0.1".into(),
        port: 0,
        policy,
        secret: vaia_webhook::WebhookSecret::new("ct-cli-test-secret").unwrap(),
        alertmanager_token: None,
    })
    .await
    .unwrap();
    (stack, dir)
}

/// Runs the CLI off the runtime's threads: exit code, stdout, stderr.
async fn run_vaia(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_vaia"))
            .args(&args)
            .output()
            .expect("run vaia");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// `vaia ct show` against a running stack: the latest evaluation for people, the API's
/// answer with `--json`, and a clear error for a repository never evaluated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_prints_the_latest_evaluation_and_the_recent_ones() {
    let (stack, _dir) = ct_stack().await;
    let repo = vaia_core::Repository::new("octo/agent").unwrap();
    let blobs = stack.ports.blobs.as_ref();
    let now = chrono::Utc::now();
    vaia_ct_budget::seed::promoted(
        blobs,
        &repo,
        semver::Version::new(1, 4, 0),
        &"a".repeat(32),
        Some(5_000),
        now,
    )
    .await
    .unwrap();
    vaia_ct_budget::seed::snapshot(blobs, &repo, &"b".repeat(32), Some(20_000), now)
        .await
        .unwrap();
    vaia_ct_budget::seed::drift_report(blobs, &repo, 0.5, now)
        .await
        .unwrap();
    for _ in 0..3 {
        stack.ct.evaluate(&repo).await.unwrap().unwrap();
    }
    let url = stack.url();
    let args = |extra: &[&str]| -> Vec<String> {
        ["ct", "show", "--url", url.as_str()]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let (code, out, err) = run_vaia(args(&["octo/agent"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("octo/agent (prod 1.4.0)"), "{out}");
    assert!(out.contains("outcome     retrain"), "{out}");
    assert!(out.contains("budget      0.7000 (threshold 0.4)"), "{out}");
    assert!(out.contains("delta rows  15000"), "{out}");
    assert!(out.contains("queued (job "), "{out}");
    // The three evaluations above.
    assert!(out.matches("  retrain ").count() >= 3, "{out}");
    let (code, out, err) = run_vaia(args(&["octo/agent", "--json", "--limit", "2"])).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["evaluations"].as_array().unwrap().len(), 2);
    assert!(v["total"].as_u64().unwrap() >= 3, "{v}");
    let (code, _, err) = run_vaia(args(&["octo/nothing"])).await;
    assert_ne!(code, 0);
    assert!(
        err.contains("no CT evaluation is recorded for octo/nothing"),
        "{err}"
    );
    let (code, _, err) = run_vaia(args(&["not-a-repo"])).await;
    assert_ne!(code, 0);
    assert!(err.contains("expected OWNER/NAME"), "{err}");
    stack.stop().await;
}

/// `vaia ct evaluate` against a running stack: one scheduled evaluation of every
/// repository in production, now; its summary for people and with `--json`; a second
/// evaluation finds the job queued and queues nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_runs_one_scheduled_evaluation_now() {
    let (stack, _dir) = ct_stack().await;
    let blobs = stack.ports.blobs.as_ref();
    let now = chrono::Utc::now();
    let due = vaia_core::Repository::new("octo/due").unwrap();
    let idle = vaia_core::Repository::new("octo/idle").unwrap();
    for repo in [&due, &idle] {
        vaia_ct_budget::seed::promoted(
            blobs,
            repo,
            semver::Version::new(1, 0, 0),
            &"a".repeat(32),
            Some(5_000),
            now,
        )
        .await
        .unwrap();
    }
    vaia_ct_budget::seed::snapshot(blobs, &due, &"b".repeat(32), Some(20_000), now)
        .await
        .unwrap();
    // Written as the registry leaves them: no ask on `ct-evaluate` (that comes with a DVC
    // file pushed under datasets/), so only the evaluation below can queue.
    for (repo, drift) in [(&due, 0.5), (&idle, 0.05)] {
        vaia_ct_budget::seed::drift_report(blobs, repo, drift, now)
            .await
            .unwrap();
    }
    let url = stack.url();
    let args = |url: &str, extra: &[&str]| -> Vec<String> {
        ["ct", "evaluate", "--url", url]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let (code, out, err) = run_vaia(args(&url, &[])).await;
    assert_eq!(code, 0, "{err}");
    let job = vaia_ct_budget::job_id(&due, &semver::Version::new(1, 0, 0), &"b".repeat(32));
    assert_eq!(
        out,
        format!(
            "evaluated 2 repositories (1 hold, 1 retrain); 1 training job queued\n  queued {job}\n"
        )
    );
    let (code, out, err) = run_vaia(args(&url, &["--json"])).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["evaluated"], 2, "{v}");
    assert_eq!(v["outcomes"], serde_json::json!({"hold": 1, "retrain": 1}));
    assert_eq!(v["queued"], serde_json::json!([]), "queued before: {v}");
    assert_eq!(v["event"]["source"], "vaia.api");
    let depth = stack
        .ports
        .queue
        .depth(vaia_ct_budget::TRAINING_QUEUE)
        .await
        .unwrap();
    assert_eq!(depth.visible + depth.in_flight, 1);
    let (code, _, err) = run_vaia(args("http://127.0.0.1:9", &[])).await;
    assert_ne!(code, 0);
    assert!(
        err.contains("POST http://127.0.0.1:9/api/ct/evaluate"),
        "{err}"
    );
    stack.stop().await;
}
