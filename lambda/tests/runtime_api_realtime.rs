//! The realtime binary invoked through the Lambda Runtime API (an emulator) with the
//! `events/aws/apigw-ws-*` WebSocket route events and the `events/aws/dynamodb-stream-*`
//! batches of the runs table's stream, against DynamoDB and the API Gateway Management API
//! on moto: connections are recorded and forgotten, each change of a run reaches every
//! connection as the local feed's message, a gone connection is forgotten, and a bad
//! record is refused without changing anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use std::collections::BTreeSet;
use vaia_api::auth::hash_token;
use vaia_api::feed::FeedMessage;
use vaia_api::RunSummary;
use vaia_aws::config::dynamodb_client;
use vaia_aws::realtime::DynamoConnections;
use vaia_aws::runtime_api::Answer;
use vaia_aws::testing::{
    close_connection, fixture, moto, posted_to_connection, unique, LambdaHarness,
};
use vaia_core::ports::Connections;
use vaia_core::run::Run;

/// The token `apigw-ws-connect.json` presents (as `bearer.<token>`).
const READ_TOKEN: &str = "realtime-fixture-read-token";
/// The connection `apigw-ws-connect.json` opens and `apigw-ws-disconnect.json` closes.
const FIXTURE_CONNECTION: &str = "Ck1mNeE1IAMCJmw=";

fn response(name: &str, answer: Answer) -> Value {
    match answer {
        Answer::Response(r) => r,
        Answer::Error(e) => panic!("{name}: function error {e}"),
    }
}

async fn connections(c: &DynamoConnections) -> BTreeSet<String> {
    c.list().await.unwrap().into_iter().collect()
}

/// The feed messages posted to a connection (moto concatenates the posts).
fn messages(bytes: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// What the feed must send for the run image of record `index` of fixture `name`.
fn expected_message(name: &str, index: usize) -> String {
    let f = fixture(name);
    let record = &f["Records"][index]["dynamodb"];
    let run: Run = serde_json::from_str(record["NewImage"]["body"]["S"].as_str().unwrap()).unwrap();
    let seq = record["ApproximateCreationDateTime"].as_u64().unwrap() * 1000;
    FeedMessage::Run {
        seq,
        run: &RunSummary::from(&run),
    }
    .to_text()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_connects_and_pushes_stream_changes_to_connections() {
    let Some(m) = moto() else { return };
    let table = unique("realtime-connections");
    let tokens = format!("dashboard:read:{}", hash_token(READ_TOKEN));
    let h = LambdaHarness::start(
        env!("CARGO_BIN_EXE_realtime").as_ref(),
        "realtime",
        m,
        &[
            ("VAIA_CONNECTIONS_TABLE", &table),
            // moto serves the management API at its root (no stage in the path).
            ("VAIA_WS_ENDPOINT", &m.endpoint),
            ("VAIA_API_TOKENS", &tokens),
        ],
    )
    .await;
    let conns = DynamoConnections::new(dynamodb_client(&h.ports.sdk, None), &table);
    conns.create().await.unwrap();

    // $connect: refused without a token or with an unknown one, nothing recorded; with
    // the reader's token, recorded, and the `vaia` subprotocol selected (not the token).
    for name in [
        "apigw-ws-connect-no-token.json",
        "apigw-ws-connect-wrong-token.json",
    ] {
        let r = response(name, h.invoke_fixture(name).await);
        assert_eq!(r["statusCode"], 401, "{name}: {r}");
        let error: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert!(error["error"].is_string(), "{name}: {r}");
        assert!(!r.to_string().contains("realtime-fixture"), "{name}: {r}");
        assert!(connections(&conns).await.is_empty(), "{name}");
    }
    let name = "apigw-ws-connect.json";
    let r = response(name, h.invoke_fixture(name).await);
    assert_eq!(
        r,
        json!({"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "vaia"}}),
        "{name}"
    );
    assert_eq!(
        connections(&conns).await,
        BTreeSet::from([FIXTURE_CONNECTION.to_string()])
    );

    // Two more dashboards; one has gone away without its $disconnect reaching us.
    let now = chrono::Utc::now();
    let ttl = std::time::Duration::from_secs(600);
    conns.add("live-2", now, ttl).await.unwrap();
    conns.add("gone-3", now, ttl).await.unwrap();
    close_connection(m, "gone-3").await;

    // The stream batch: an INSERT and a MODIFY of a run, an event item, an idempotency
    // record and a TTL removal. Each run change reaches each live connection, in order,
    // as the local feed's message; the other records send nothing.
    let name = "dynamodb-stream-runs.json";
    let r = response(name, h.invoke_fixture(name).await);
    assert_eq!(r, json!({"batchItemFailures": []}), "{name}");
    let want = [expected_message(name, 0), expected_message(name, 2)];
    for c in [FIXTURE_CONNECTION, "live-2"] {
        let got = posted_to_connection(m, c).await;
        assert_eq!(String::from_utf8_lossy(&got), want.concat(), "{c}");
        let msgs = messages(&got);
        assert_eq!(msgs.len(), 2, "{c}");
        assert_eq!(msgs[0]["type"], "run");
        assert_eq!(msgs[0]["run"]["state"], "IDLE");
        assert_eq!(msgs[1]["run"]["state"], "TRIGGERED");
    }
    assert_eq!(
        connections(&conns).await,
        BTreeSet::from([FIXTURE_CONNECTION.to_string(), "live-2".to_string()]),
        "the gone connection is forgotten"
    );

    // A run item whose body is not a run: the record is named for retry (it goes to the
    // mapping's failure destination after its retries); nothing is posted or forgotten.
    let before = posted_to_connection(m, "live-2").await;
    let name = "dynamodb-stream-bad-run.json";
    let r = response(name, h.invoke_fixture(name).await);
    assert_eq!(
        r,
        json!({"batchItemFailures": [{"itemIdentifier": "100000000000000000000006"}]}),
        "{name}"
    );
    assert_eq!(posted_to_connection(m, "live-2").await, before);
    assert_eq!(connections(&conns).await.len(), 2);

    // The dashboard's hello after a reconnect (it had a cursor): answered with the feed's
    // hello and a resync, on that connection only.
    let before_live = posted_to_connection(m, "live-2").await;
    let before = posted_to_connection(m, FIXTURE_CONNECTION).await;
    let name = "apigw-ws-message-hello.json";
    let r = response(name, h.invoke_fixture(name).await);
    assert_eq!(r, json!({"statusCode": 200}), "{name}");
    let after = posted_to_connection(m, FIXTURE_CONNECTION).await;
    let answer = messages(&after[before.len()..]);
    assert_eq!(answer.len(), 2, "{answer:?}");
    assert_eq!(answer[0]["type"], "hello");
    assert_eq!(answer[0]["epoch"], "aws");
    assert_eq!(answer[1]["type"], "resync");
    assert_eq!(posted_to_connection(m, "live-2").await, before_live);

    // $disconnect forgets the fixture's connection.
    let name = "apigw-ws-disconnect.json";
    let r = response(name, h.invoke_fixture(name).await);
    assert_eq!(r, json!({"statusCode": 200}), "{name}");
    assert_eq!(
        connections(&conns).await,
        BTreeSet::from(["live-2".to_string()])
    );
    h.stop().await;
}

/// The lines of resource `name` in `infra/template.yaml`.
fn template_resource(name: &str) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/template.yaml"
    ))
    .unwrap();
    let head = format!("  {name}:");
    let mut lines = text.lines().skip_while(|l| *l != head);
    assert!(lines.next().is_some(), "no resource {name} in the template");
    lines
        .take_while(|l| l.is_empty() || l.starts_with("   ") || l.starts_with("  #"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_template_deploys_what_the_function_reads() {
    use vaia_aws::realtime::{CONNECTION_KEY, TTL_ATTRIBUTE};
    let table = template_resource("ConnectionsTable");
    assert!(
        table.contains(&format!(
            "{{AttributeName: {CONNECTION_KEY}, KeyType: HASH}}"
        )),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "AttributeName: {TTL_ATTRIBUTE}\n        Enabled: true"
        )),
        "{table}"
    );
    // The function decodes new images; only run items need to reach it.
    let runs = template_resource("RunsTable");
    assert!(runs.contains("StreamViewType: NEW_IMAGE"), "{runs}");
    let function = template_resource("RealtimeFunction");
    for needed in [
        "Binary: realtime",
        "VAIA_CONNECTIONS_TABLE: !Ref ConnectionsTable",
        "VAIA_WS_ENDPOINT:",
        "Stream: !GetAtt RunsTable.StreamArn",
        "FunctionResponseTypes: [ReportBatchItemFailures]",
    ] {
        assert!(function.contains(needed), "{needed} not in {function}");
    }
}
