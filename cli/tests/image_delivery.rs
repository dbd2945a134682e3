//! The promoted image tagged in its registry, end to end: a real `vaia up` configured with
//! `VAIA_IMAGE` pointing at Debian's `docker-registry` on 127.0.0.1, images pushed into it by
//! `skopeo`. A promotion tags the candidate's digest with its version and moves `prod`; a
//! second promotion moves `prod` again; a rollback moves it back; with the registry down the
//! run is still PROMOTED and the failed tagging is in its log. Skips without the binaries
//! (fails under `CI=true`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../shared/oci/tests/support/mod.rs"]
mod oci;
mod support;

use std::time::{Duration, Instant};
use support::{StartVaia, Vaia};
use vaia::client::Client;
use vaia::demo::{push_payload, wait_settled};
use vaia_core::run::EventKind;
use vaia_core::{CommitSha, ImageDigest, PipelineState, Repository};

const SECRET: &str = "delivery-secret-77d0";
const POLICY: &str = "[stages]\nci = [\"schema\"]\n";
const REPO: &str = "acme/support-agent";
const TOOLS: &str = include_str!("../../examples/demo/tools-v1.json");

/// Pushes a commit, uploads its evidence naming `image`, waits for the run to settle.
async fn deliver(client: &Client, n: u8, image: &ImageDigest) -> vaia::api::RunDetail {
    let repo = Repository::new(REPO).unwrap();
    let sha = CommitSha::new(format!("{n:02x}").repeat(20)).unwrap();
    let (status, answer) = client
        .send_webhook(
            SECRET,
            "push",
            &format!("img-{n}"),
            &push_payload(&repo, &sha).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    let files = vec![("tools.json".to_string(), TOOLS.as_bytes().to_vec())];
    client
        .upload_evidence(&repo, &sha, image, None, &files)
        .await
        .unwrap();
    let run_id = answer["run_id"].as_str().unwrap();
    wait_settled(client, run_id, Duration::from_secs(60))
        .await
        .unwrap()
}

/// Waits for the delivery's note in the run's log.
async fn delivery_note(client: &Client, run_id: &str, count: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let detail = client.run(run_id).await.unwrap();
        let notes: Vec<String> = detail
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Note && e.actor == "delivery")
            .map(|e| e.reason.clone())
            .collect();
        if notes.len() >= count {
            return notes;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no delivery note on {run_id}: {}",
            vaia::cli_runs::render_detail(&detail)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotions_tag_the_image_and_rollback_moves_prod_back() {
    const TEST: &str = "promotions_tag_the_image_and_rollback_moves_prod_back";
    let (Some(registry_bin), Some(skopeo)) = (
        oci::tool(TEST, "docker-registry"),
        oci::tool(TEST, "skopeo"),
    ) else {
        return;
    };
    let registry = oci::Registry::start(&registry_bin);
    let host = registry.host.clone();
    let (h, sk) = (host.clone(), skopeo.clone());
    let (first, second) = tokio::task::spawn_blocking(move || {
        (
            oci::push(&sk, &h, REPO, "agent build 1", "sha-1"),
            oci::push(&sk, &h, REPO, "agent build 2", "sha-2"),
        )
    })
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let template = format!("{host}/{{repo}}");
    let stack = Vaia::start_with_env(
        dir.path(),
        POLICY,
        SECRET,
        &[
            ("VAIA_IMAGE", template.as_str()),
            ("VAIA_REGISTRY_PLAIN_HTTP", host.as_str()),
            ("VAIA_REGISTRY_ATTEMPTS", "2"),
        ],
    );
    let client = Client::new(&stack.url);

    let one = deliver(&client, 1, &first).await;
    assert_eq!(one.run.state, PipelineState::Promoted);
    let v1 = one.run.candidate.version.clone().unwrap().to_string();
    let notes = delivery_note(&client, one.run.id.as_str(), 1).await;
    assert!(notes[0].contains(&format!(":{v1} → {first}")), "{notes:?}");
    assert!(notes[0].contains(&format!(":prod → {first}")), "{notes:?}");
    assert_eq!(
        oci::resolve(&host, REPO, &v1).await.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(
        oci::resolve(&host, REPO, "prod").await.as_deref(),
        Some(first.as_str())
    );

    let two = deliver(&client, 2, &second).await;
    assert_eq!(two.run.state, PipelineState::Promoted);
    let v2 = two.run.candidate.version.clone().unwrap().to_string();
    assert_ne!(v1, v2);
    delivery_note(&client, two.run.id.as_str(), 1).await;
    assert_eq!(
        oci::resolve(&host, REPO, &v2).await.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(
        oci::resolve(&host, REPO, "prod").await.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(
        oci::resolve(&host, REPO, &v1).await.as_deref(),
        Some(first.as_str())
    );

    // Rollback of the second: prod back at the first's digest.
    client
        .post_action(two.run.id.as_str(), "rollback", Some("error rate"), None)
        .await
        .unwrap();
    let notes = delivery_note(&client, two.run.id.as_str(), 2).await;
    assert!(notes[1].contains(&format!(":prod → {first}")), "{notes:?}");
    assert_eq!(
        client.run(two.run.id.as_str()).await.unwrap().run.state,
        PipelineState::Rollback
    );
    assert_eq!(
        oci::resolve(&host, REPO, "prod").await.as_deref(),
        Some(first.as_str())
    );

    // The registry goes down: the promotion stands, the failure is in the log.
    drop(registry);
    let three = deliver(&client, 3, &second).await;
    assert_eq!(three.run.state, PipelineState::Promoted);
    let notes = delivery_note(&client, three.run.id.as_str(), 1).await;
    assert!(
        notes[0].contains("not moved") && notes[0].contains("after 2 attempts"),
        "{notes:?}"
    );
    assert!(notes[0].contains("registry unavailable"), "{notes:?}");
}
