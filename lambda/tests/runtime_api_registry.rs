//! The registry binary invoked through the Lambda Runtime API (an emulator) with every
//! `events/aws` fixture of its two queues, against DynamoDB, SQS and S3 on moto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use vaia_aws::runtime_api::Answer;
use vaia_aws::testing::{fixtures, moto, LambdaHarness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_answers_every_fixture() {
    let Some(m) = moto() else { return };
    let h = LambdaHarness::start(env!("CARGO_BIN_EXE_registry").as_ref(), "registry", m, &[]).await;
    let mut names = fixtures("sqs-registry-");
    names.extend(fixtures("sqs-blob-events-"));
    assert!(names.len() >= 3, "fixtures: {names:?}");
    for name in &names {
        match h.invoke_fixture(name).await {
            Answer::Response(r) => assert_eq!(r, json!({"batchItemFailures": []}), "{name}"),
            Answer::Error(e) => panic!("{name}: function error {e}"),
        }
    }
    // A job for a run that does not exist is dead-lettered with its reason.
    let dead = h.ports.queue.dead_letters("registry").await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].1.as_deref().unwrap_or("").contains("not found"),
        "{dead:?}"
    );
    h.stop().await;
}

#[path = "../../shared/oci/tests/support/mod.rs"]
mod oci;

/// With `VAIA_IMAGE` set, the registry function tags the promoted image after moving the
/// `prod` alias: the candidate's digest gets its version's tag and `prod`, in Debian's
/// `docker-registry` on 127.0.0.1; the registry token comes from SSM
/// (`VAIA_REGISTRY_TOKEN_PARAM`), and the outcome is a note in the run's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_tags_the_promoted_image() {
    use vaia_core::contract::{base_time, sample_run};
    use vaia_core::ports::RunStore;
    use vaia_core::run::EventKind;
    use vaia_core::PipelineState;
    let Some(m) = moto() else { return };
    let (Some(bin), Some(skopeo)) = (
        oci::tool("registry_tags_the_promoted_image", "docker-registry"),
        oci::tool("registry_tags_the_promoted_image", "skopeo"),
    ) else {
        return;
    };
    let registry = oci::Registry::start(&bin);
    let digest = oci::push(&skopeo, &registry.host, "octo/agent", "v3", "candidate");

    let sdk = vaia_aws::testing::sdk(&m.endpoint).await;
    let param = format!("/{}/registry-token", vaia_aws::testing::unique("vaia"));
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&param)
        .value("registry-token-from-ssm")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let image = format!("{}/{{repo}}", registry.host);
    let h = LambdaHarness::start(
        env!("CARGO_BIN_EXE_registry").as_ref(),
        "registry-delivery",
        m,
        &[
            ("VAIA_IMAGE", image.as_str()),
            ("VAIA_REGISTRY_PLAIN_HTTP", registry.host.as_str()),
            ("VAIA_REGISTRY_TOKEN_PARAM", param.as_str()),
        ],
    )
    .await;

    let mut run = sample_run(12, base_time());
    run.state = PipelineState::Promoted;
    run.candidate.version = Some("0.3.0".parse().unwrap());
    run.candidate.image_digest = Some(digest.clone());
    h.ports.store.create(&run, &[]).await.unwrap();
    let mut event = vaia_aws::testing::fixture("sqs-registry-verify-evidence.json");
    event["Records"][0]["body"] =
        json!(json!({"type": "promote", "run_id": run.id.as_str()}).to_string());
    event["Records"][0]["attributes"]["MessageGroupId"] = json!(run.id.as_str());
    match h.api.invoke(event).await.expect("an answer") {
        Answer::Response(r) => assert_eq!(r, json!({"batchItemFailures": []})),
        Answer::Error(e) => panic!("function error {e}"),
    }
    for tag in ["0.3.0", "prod"] {
        assert_eq!(
            oci::resolve(&registry.host, "octo/agent", tag)
                .await
                .as_deref(),
            Some(digest.as_str()),
            "{tag}"
        );
    }
    let log = h.ports.store.events(&run.id).await.unwrap();
    let notes: Vec<&str> = log
        .iter()
        .filter(|e| e.kind == EventKind::Note && e.actor == "delivery")
        .map(|e| e.reason.as_str())
        .collect();
    assert_eq!(notes.len(), 1, "{log:?}");
    assert!(notes[0].contains(":prod → sha256:"), "{notes:?}");
    h.stop().await;
}
