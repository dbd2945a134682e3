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
use vaia_core::{PipelineState, Repository};

mod support;
use support::*;

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

    // 5. The registry as `vaia registry` shows it: both promoted versions, prod on the
    // newest, and the lineage of each (commit, parent, every gate's outcome and metrics).
    let vaia_cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vaia"))
            .args(args)
            .args(["--url", &vaia.url])
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = vaia_cli(&["registry", "list", "octo/support-agent"]);
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(
        rows[0].starts_with("0.2.0") && rows[0].contains("prod"),
        "{listed}"
    );
    assert!(
        rows[0].contains("schema:pass") && rows[0].contains("latency:pass"),
        "{listed}"
    );
    assert!(
        rows[1].starts_with("0.1.0") && !rows[1].contains("prod"),
        "{listed}"
    );
    let shown: serde_json::Value = serde_json::from_str(&vaia_cli(&[
        "registry",
        "show",
        "octo/support-agent",
        "0.2.0",
        "--json",
    ]))
    .unwrap();
    assert_eq!(shown["commit"], commit(3).as_str());
    assert_eq!(shown["previous"], "0.1.0");
    assert_eq!(shown["run_id"], run.as_str());
    assert_eq!(shown["gates"]["latency"]["outcome"], "pass");
    assert_eq!(
        shown["gates"]["latency"]["metrics"]["baseline_p95_ms"],
        150.0
    );
    let text = vaia_cli(&["registry", "show", "octo/support-agent", "0.1.0"]);
    assert!(
        text.contains(&format!("commit:    {}", commit(1))),
        "{text}"
    );
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
    // Every refusal is JSON, including those axum's extractors produce, and none shows where
    // the server keeps its files (the 413 of a body over its limit: see
    // slow_and_oversized_clients_are_cut_off).
    let data_dir = dir.path().to_string_lossy().to_string();
    let long_name = "a".repeat(300);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            http.put(format!(
                "{}/api/evidence/octo/support-agent/{}/{long_name}",
                vaia.url,
                commit(9)
            ))
            .body("x"),
            400,
            "at most 255 bytes",
        ),
        (
            http.get(format!("{}/api/runs?limit=many", vaia.url)),
            400,
            "limit",
        ),
        (http.delete(format!("{}/api/runs", vaia.url)), 405, ""),
    ];
    for (req, status, says) in cases {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), status);
        let ctype = res.headers()["content-type"].to_str().unwrap().to_string();
        let body = res.text().await.unwrap();
        assert!(
            ctype.starts_with("application/json"),
            "{status}: {ctype} {body}"
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let error = v["error"].as_str().unwrap();
        assert!(error.contains(says), "{status}: {error}");
        assert!(!error.contains(&data_dir), "{status} shows a path: {error}");
    }
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

#[test]
fn up_with_a_guessable_webhook_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vaia"))
        .args(["up", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env("VAIA_GITHUB_WEBHOOK_SECRET", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("VAIA_GITHUB_WEBHOOK_SECRET") && stderr.contains("at least 16"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("vaia.db").exists(),
        "nothing was created before the refusal"
    );
}

/// What a hostile or broken client can do to the server: hold a connection with a request
/// head that never ends, declare a body it never sends, stall inside a body. Each is cut
/// off within the server's limits; none blocks other clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let vaia = Vaia::start(dir.path(), POLICY, SECRET);
    let addr = vaia.url.trim_start_matches("http://").to_string();
    let evidence = format!("/api/evidence/octo/agent/{}/tools.json", commit(5));

    // A declared body over the limit, with nothing sent: 413 at once, not a wait.
    let mut big = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT {evidence} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        100 * 1024 * 1024
    );
    big.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(2), big.read(&mut answer))
        .await
        .expect("413 without waiting for the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");

    // A head that never ends, and a body that stalls: both end within the timeouts.
    let mut slow_head = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow_head
        .write_all(b"GET /api/runs HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut slow_body = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!("PUT {evidence} HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc");
    slow_body.write_all(head.as_bytes()).await.unwrap();
    // Meanwhile other clients are served.
    let client = Client::new(&vaia.url);
    assert!(client.runs(10, None).await.unwrap().runs.is_empty());
    let limit = vaia::serve::HEADER_READ_TIMEOUT.max(vaia::serve::BODY_IDLE_TIMEOUT)
        + Duration::from_secs(5);
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(limit, slow_head.read(&mut buf))
        .await
        .expect("a head that never ends is cut off")
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    let n = tokio::time::timeout(limit, slow_body.read(&mut buf))
        .await
        .expect("a stalled body is cut off")
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        n == 0 || text.starts_with("HTTP/1.1 4"),
        "a stalled body is refused: {text}"
    );
    // Nothing of the stalled upload was stored.
    let key = format!("{}/blobs{evidence}", dir.path().display());
    assert!(!std::path::Path::new(&key.replace("/api/evidence", "/evidence")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_bundle_refuses_changes_and_operator_fields_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let vaia = Vaia::start(dir.path(), POLICY, SECRET);
    let client = Client::new(&vaia.url);
    let repo = Repository::new("octo/agent").unwrap();
    let run = push(&client, &repo, &commit(7), "s-1").await;
    upload(&client, &repo, &commit(7), V1).await;
    let http = reqwest::Client::new();
    let url = |file: &str| format!("{}/api/evidence/octo/agent/{}/{file}", vaia.url, commit(7));
    // The manifest is in: an identical re-upload (a retried CI step) is fine, a change is
    // refused, and so is a new file.
    let same = http.put(url("tools.json")).body(V1).send().await.unwrap();
    assert_eq!(same.status(), 200);
    for (file, body) in [("tools.json", V2), ("extra.json", "{}")] {
        let res = http.put(url(file)).body(body).send().await.unwrap();
        assert_eq!(res.status(), 409, "{file}");
        let v: serde_json::Value = res.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("sealed"), "{v}");
    }
    let stored = std::fs::read(dir.path().join(format!(
        "blobs/evidence/octo/agent/{}/tools.json",
        commit(7)
    )))
    .unwrap();
    assert_eq!(stored, V1.as_bytes(), "the sealed file is unchanged");

    // Operator requests: a name, not a document.
    let long_actor = "a".repeat(vaia_api::MAX_ACTOR_BYTES + 1);
    for body in [
        serde_json::json!({"actor": long_actor}),
        serde_json::json!({"actor": "eve\nINFO forged"}),
        serde_json::json!({"reason": "r".repeat(vaia_api::MAX_REASON_BYTES + 1)}),
    ] {
        let res = http
            .post(format!("{}/api/runs/{run}/rollback", vaia.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
    }
}

/// Verified evidence is immutable: production's `tools.json` overwritten behind vaia's back
/// (as a plain PUT to its S3 path would) makes the next candidate's schema gate say
/// `error`, naming production's file, instead of judging the candidate against bytes
/// nobody verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_changed_after_verification_is_an_error_naming_whose_file() {
    let dir = tempfile::tempdir().unwrap();
    let vaia = Vaia::start(dir.path(), POLICY, SECRET);
    let client = Client::new(&vaia.url);
    let repo = Repository::new("octo/agent").unwrap();
    let first = push(&client, &repo, &commit(1), "i-1").await;
    upload(&client, &repo, &commit(1), V1).await;
    let promoted = wait_settled(&client, &first, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(promoted.run.state, PipelineState::Promoted);
    let prod_tools = dir.path().join(format!(
        "blobs/evidence/octo/agent/{}/tools.json",
        commit(1)
    ));
    std::fs::write(&prod_tools, V2).unwrap();

    let second = push(&client, &repo, &commit(2), "i-2").await;
    upload(&client, &repo, &commit(2), V1).await;
    let failed = wait_settled(&client, &second, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(failed.run.state, PipelineState::Failed);
    let schema = &failed.verdicts["schema"];
    assert_eq!(schema.outcome, vaia_core::Outcome::Error, "{schema:#?}");
    assert!(
        schema.summary.contains("production's")
            && schema
                .summary
                .contains(&format!("evidence/octo/agent/{}/tools.json", commit(1)))
            && schema.summary.contains("changed after it was verified"),
        "{}",
        schema.summary
    );
}
