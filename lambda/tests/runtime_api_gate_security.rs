//! The security gate binary invoked through the Lambda Runtime API (an emulator) with every
//! `events/aws/sqs-gate-security-*` fixture, against DynamoDB, SQS and S3 on moto.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_security_answers_every_fixture() {
    vaia_aws::testing::assert_gate_function_answers_fixtures(
        env!("CARGO_BIN_EXE_gate-security").as_ref(),
        "security",
    )
    .await;
}
