//! The latency gate binary invoked through the Lambda Runtime API (an emulator) with every
//! `events/aws/sqs-gate-latency-*` fixture, against DynamoDB, SQS and S3 on moto.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_latency_answers_every_fixture() {
    vaia_aws::testing::assert_gate_function_answers_fixtures(
        env!("CARGO_BIN_EXE_gate-latency").as_ref(),
        "latency",
    )
    .await;
}
