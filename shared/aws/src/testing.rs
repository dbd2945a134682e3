//! Test support (feature `testing`): a moto server (a local AWS-compatible server from
//! PyPI) started on 127.0.0.1 on a free port, and ports on fresh, uniquely named
//! resources so tests can share one server.
//!
//! The server is found as `$VAIA_MOTO_PYTHON`, else `<workspace>/.venv/moto/bin/python`,
//! else `python3` if it can import moto. It is started once per test binary through a
//! small launcher that exits when its standard input closes, so it ends with the tests
//! even when they panic. When no server can be started, [`moto`] returns `None` and tests
//! skip with a message, except under `CI=true`, where it panics: CI must run them.

#![allow(clippy::expect_used, clippy::panic)]

use crate::config::AwsSettings;
use crate::sqs::{unique_id, QueueNames};
use crate::AwsPorts;
use aws_credential_types::Credentials;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Starts moto, with three corrections so it behaves as AWS does: request handling is
/// serialised (moto checks a DynamoDB condition and writes in separate Python steps, so
/// racing requests could both pass a condition DynamoDB evaluates atomically), FIFO
/// deduplication ids are remembered for five minutes even after their message is deleted,
/// and a WebSocket connection closed with `DeleteConnection` is gone (410 `GoneException`
/// to a post). moto keeps what is posted to a connection but `GetConnection` does not
/// return it; the launcher adds it as `postedData` ([`posted_to_connection`] reads it).
const LAUNCHER: &str = r#"
import os, sys, threading
from moto.server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
_lock = threading.Lock()
_call = DomainDispatcherApplication.__call__
def _serialised(self, environ, start_response):
    with _lock:
        return _call(self, environ, start_response)
DomainDispatcherApplication.__call__ = _serialised
# moto forgets a FIFO deduplication id once its message is deleted; SQS keeps it for five
# minutes. Remember it, as SQS does.
import time
from moto.sqs import models as _sqs
_add = _sqs.Queue.add_message
def _add_dedupe(self, message):
    if self.fifo_queue and message.deduplication_id:
        seen = self.__dict__.setdefault("_vaia_dedupe", {})
        now = time.time()
        first = seen.get(message.deduplication_id)
        if first is not None and now - first < 300:
            return
        seen[message.deduplication_id] = now
    return _add(self, message)
_sqs.Queue.add_message = _add_dedupe
# API Gateway answers 410 GoneException to a post to (or a read of) a connection that has
# closed; moto's connections never close. A connection deleted with DeleteConnection is
# gone here, as on AWS. moto keeps the data posted to each connection but GetConnection
# does not return it: the launcher adds it, base64, as `postedData`, for tests to read.
import base64
from moto.apigatewaymanagementapi import models as _agm
from moto.core.exceptions import JsonRESTError
class _Gone(JsonRESTError):
    code = 410
    def __init__(self, connection_id):
        super().__init__("GoneException", f"connection {connection_id} is gone")
_Backend = _agm.ApiGatewayManagementApiBackend
def _gone(self):
    return self.__dict__.setdefault("_vaia_gone", set())
_delete, _get, _post = _Backend.delete_connection, _Backend.get_connection, _Backend.post_to_connection
def _delete_gone(self, connection_id):
    _gone(self).add(connection_id)
    return _delete(self, connection_id)
def _get_live(self, connection_id):
    if connection_id in _gone(self):
        raise _Gone(connection_id)
    return _get(self, connection_id)
def _post_live(self, data, connection_id):
    if connection_id in _gone(self):
        raise _Gone(connection_id)
    return _post(self, data, connection_id)
_Backend.delete_connection, _Backend.get_connection, _Backend.post_to_connection = _delete_gone, _get_live, _post_live
_to_dict = _agm.Connection.to_dict
def _to_dict_data(self):
    d = _to_dict(self)
    d["postedData"] = base64.b64encode(self.data).decode()
    return d
_agm.Connection.to_dict = _to_dict_data
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()
os._exit(0)
"#;

/// Everything posted to WebSocket connection `id` through moto's API Gateway Management
/// API (`PostToConnection` at endpoint `moto.endpoint`), concatenated.
pub async fn posted_to_connection(moto: &Moto, id: &str) -> Vec<u8> {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = moto.endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("connect to moto");
    // moto keys connections by the path as the SDK sends it (percent-encoded), and picks
    // the service from the signature's credential scope.
    let path: String = id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let request = format!(
        "GET /@connections/{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=testing/20260101/us-east-1/execute-api/aws4_request, SignedHeaders=host, \
         Signature=0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write to moto");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read from moto");
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "GetConnection {id}: {head}"
    );
    let v: serde_json::Value = serde_json::from_str(body).expect("GetConnection JSON");
    base64::engine::general_purpose::STANDARD
        .decode(v["postedData"].as_str().expect("postedData"))
        .expect("postedData base64")
}

/// Closes WebSocket connection `id` in moto, as a browser leaving would: posts to it are
/// then refused with 410 `GoneException`.
pub async fn close_connection(moto: &Moto, id: &str) {
    let sdk = sdk(&moto.endpoint).await;
    let client = aws_sdk_apigatewaymanagement::Client::new(&sdk);
    client
        .delete_connection()
        .connection_id(id)
        .send()
        .await
        .expect("DeleteConnection");
}

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    pub endpoint: String,
    _child: Mutex<Child>,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// The moto release the AWS tests are written against (one home: `shared/aws/MOTO_VERSION`,
/// which `make moto-venv` installs). Other releases send other shapes (5.2.1's S3
/// notifications differ), so a test run on one would test moto, not vaia.
pub const MOTO_VERSION: &str = include_str!("../MOTO_VERSION");

/// The Python of the pinned moto: `VAIA_MOTO_PYTHON`, else `.venv/moto` (`make moto-venv`).
/// Never whatever `python3` is on the PATH: a machine image's moto is of another release.
fn python() -> Result<PathBuf, String> {
    let python = match std::env::var("VAIA_MOTO_PYTHON") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_root().join(".venv/moto/bin/python"),
    };
    if !python.exists() {
        return Err(format!(
            "no moto server at {} (make moto-venv, or set VAIA_MOTO_PYTHON)",
            python.display()
        ));
    }
    let out = Command::new(&python)
        .args(["-c", "import moto, moto.server; print(moto.__version__)"])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", python.display()))?;
    let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let want = MOTO_VERSION.trim();
    if !out.status.success() {
        return Err(format!("{} cannot import moto.server", python.display()));
    }
    if found != want {
        return Err(format!(
            "{} has moto {found}, the tests need {want} (make moto-venv)",
            python.display()
        ));
    }
    Ok(python)
}

fn free_port() -> Option<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

fn start() -> Result<Moto, String> {
    let python = python()?;
    let port = free_port().ok_or("no free port")?;
    let mut child = Command::new(&python)
        .args(["-c", LAUNCHER, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", python.display()))?;
    // Wait for the launcher's "ready" line: the server is listening.
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut buf = [0u8; 6];
    stdout
        .read_exact(&mut buf)
        .map_err(|e| format!("moto did not start: {e}"))?;
    if &buf != b"ready\n" {
        return Err("moto launcher said something unexpected".into());
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    // Poll until it answers HTTP.
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(Moto {
                endpoint,
                _child: Mutex::new(child),
            });
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    Err("moto never accepted connections".into())
}

/// The shared moto server, or `None` (with a message) when it cannot run here.
/// Panics under `CI=true` instead of returning `None`.
pub fn moto() -> Option<&'static Moto> {
    static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();
    match MOTO.get_or_init(start) {
        Ok(m) => Some(m),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("moto is required in CI and could not start: {e}");
            }
            eprintln!(
                "SKIPPED: moto unavailable ({e}); run `make moto-venv` to enable AWS adapter tests"
            );
            None
        }
    }
}

/// Sets the environment the SDK and the functions read to talk to moto.
pub fn dummy_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_REGION", "us-east-1".into()),
        // Lambda sets both; boto3 reads only this one.
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// A short unique name for a test's resources.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &unique_id()[..10])
}

/// SDK configuration for moto: its endpoint, a region and dummy static credentials.
pub async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    // Region and credentials given explicitly: nothing is looked up (no IMDS probes).
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::config::http_client())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::from_keys("testing", "testing", None))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// Settings for fresh resources named after `test`.
pub fn settings(endpoint: &str, test: &str, max_receives: u32) -> AwsSettings {
    let id = unique(test);
    AwsSettings {
        table: format!("{id}-runs"),
        bucket: id.to_ascii_lowercase(),
        queues: QueueNames::new(format!("{id}-")),
        max_receives,
        idempotency_ttl: Duration::from_secs(86_400 * 7),
        endpoint: Some(endpoint.to_string()),
    }
}

/// Ports on fresh resources in moto: the table and bucket are created, queues are created
/// on first use.
pub async fn ports(moto: &Moto, test: &str, max_receives: u32) -> AwsPorts {
    ports_with(moto, test, max_receives, None).await
}

/// [`ports`] whose clients count every request with `meter` ([`crate::meter`]).
pub async fn ports_with(
    moto: &Moto,
    test: &str,
    max_receives: u32,
    meter: Option<crate::Meter>,
) -> AwsPorts {
    let settings = settings(&moto.endpoint, test, max_receives);
    let mut ports = AwsPorts::with_meter(settings, sdk(&moto.endpoint).await, meter);
    ports.queue = std::sync::Arc::new(
        crate::SqsQueue::new(
            crate::config::sqs_client(&ports.sdk, ports.meter.as_ref()),
            ports.settings.queues.clone(),
            max_receives,
        )
        .with_auto_create(),
    );
    ports.table.create().await.expect("create table");
    ports.blobs.create_bucket().await.expect("create bucket");
    ports
}

/// Lambda's SQS event source mapping, emulated: receives up to ten messages of logical
/// queue `logical`, hands them to `batch` as an SQS event (with the attributes Lambda
/// sets) and deletes every record not returned in `batchItemFailures` in one
/// `DeleteMessageBatch`, as Lambda's poller does. Returns the records' outcomes (empty
/// when the queue had nothing visible).
pub async fn deliver(
    queue: &crate::SqsQueue,
    logical: &str,
    batch: &crate::SqsBatch,
    visibility: Duration,
) -> vaia_core::ports::PortResult<Vec<crate::RecordOutcome>> {
    deliver_metered(queue, logical, batch, visibility, None).await
}

/// [`deliver`], recording in `meter` what AWS would bill beside the SDK requests (which
/// the queue's client meters itself): one Lambda invocation per non-empty batch, and one
/// SQS `SendMessage` by S3 for each S3 event notification in it.
pub async fn deliver_metered(
    queue: &crate::SqsQueue,
    logical: &str,
    batch: &crate::SqsBatch,
    visibility: Duration,
    meter: Option<&crate::Meter>,
) -> vaia_core::ports::PortResult<Vec<crate::RecordOutcome>> {
    use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let url = queue.url(logical).await?;
    let out = queue
        .client()
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .visibility_timeout(i32::try_from(visibility.as_secs().max(1)).unwrap_or(30))
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| crate::error::map_sdk("sqs ReceiveMessage (event source)", e))?;
    let physical = queue.names().physical(logical);
    let mut event = SqsEvent::default();
    for m in out.messages() {
        let mut r = SqsMessage::default();
        r.message_id = m.message_id().map(str::to_string);
        r.receipt_handle = m.receipt_handle().map(str::to_string);
        r.body = m.body().map(str::to_string);
        r.md5_of_body = m.md5_of_body().map(str::to_string);
        r.event_source = Some("aws:sqs".into());
        r.event_source_arn = Some(format!("arn:aws:sqs:us-east-1:123456789012:{physical}"));
        r.aws_region = Some("us-east-1".into());
        if let Some(attrs) = m.attributes() {
            for (k, v) in attrs {
                r.attributes.insert(k.as_str().to_string(), v.clone());
            }
        }
        event.records.push(r);
    }
    if event.records.is_empty() {
        return Ok(vec![]);
    }
    if let Some(m) = meter {
        m.record("lambda", "Invoke", 1);
        let from_s3 = event
            .records
            .iter()
            .filter(|r| {
                r.body
                    .as_deref()
                    .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
                    .is_some_and(|v| v.pointer("/Records/0/eventSource") == Some(&"aws:s3".into()))
            })
            .count();
        if from_s3 > 0 {
            m.record("sqs", "SendMessage (S3 notification)", from_s3 as u64);
        }
    }
    let receipts: Vec<(String, String)> = event
        .records
        .iter()
        .map(|r| {
            (
                r.message_id.clone().unwrap_or_default(),
                r.receipt_handle.clone().unwrap_or_default(),
            )
        })
        .collect();
    let (response, outcomes) = batch.process(event).await;
    let failed: std::collections::BTreeSet<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    let entries: Vec<aws_sdk_sqs::types::DeleteMessageBatchRequestEntry> = receipts
        .into_iter()
        .filter(|(id, _)| !failed.contains(id))
        .enumerate()
        .map(|(i, (_, receipt))| {
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt)
                .build()
                .map_err(|e| vaia_core::ports::PortError::Invalid(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    if !entries.is_empty() {
        let out = queue
            .client()
            .delete_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| crate::error::map_sdk("sqs DeleteMessageBatch (event source)", e))?;
        if let Some(f) = out.failed().first() {
            return Err(vaia_core::ports::PortError::Unavailable(format!(
                "sqs DeleteMessageBatch (event source): {} {}",
                f.code(),
                f.message().unwrap_or("")
            )));
        }
    }
    Ok(outcomes)
}

/// `events/aws/<name>` as JSON.
pub fn fixture(name: &str) -> serde_json::Value {
    let path = workspace_root().join("events/aws").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every fixture in `events/aws` whose name starts with `prefix`, sorted.
pub fn fixtures(prefix: &str) -> Vec<String> {
    let dir = workspace_root().join("events/aws");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".json"))
        .collect();
    out.sort();
    out
}

/// The logical queues of the deployment (those the template creates).
pub const DEPLOYED_QUEUES: &[&str] = &[
    "advance",
    "registry",
    "blob-events",
    "gate-schema",
    "gate-prompt",
    "gate-eval",
    "gate-security",
    "gate-latency",
    "training",
    "raw-data",
    "ct-evaluate",
];

/// A function binary running against a Runtime API emulator, with its resources in moto
/// named as the fixtures expect (queue prefix `vaia-`).
pub struct LambdaHarness {
    pub api: crate::runtime_api::RuntimeApi,
    pub process: crate::runtime_api::FunctionProcess,
    pub ports: AwsPorts,
}

impl LambdaHarness {
    /// Creates the table, bucket and every deployed queue (with dead-letter queues), then
    /// starts `binary` and waits for its first poll. Panics if the function fails to start.
    pub async fn start(
        binary: &std::path::Path,
        name: &str,
        moto: &Moto,
        extra_env: &[(&str, &str)],
    ) -> Self {
        Self::start_with_args(binary, &[], name, moto, extra_env).await
    }

    /// [`Self::start`] for a program that takes arguments (the Python baseline).
    pub async fn start_with_args(
        binary: &std::path::Path,
        args: &[&str],
        name: &str,
        moto: &Moto,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let mut settings = settings(&moto.endpoint, name, 3);
        settings.queues = QueueNames::new("vaia-");
        let mut ports = AwsPorts::with_sdk(settings, sdk(&moto.endpoint).await);
        let queue = crate::SqsQueue::new(
            crate::config::sqs_client(&ports.sdk, None),
            ports.settings.queues.clone(),
            3,
        )
        .with_auto_create();
        for q in DEPLOYED_QUEUES {
            queue.url(q).await.expect("create queue");
        }
        ports.queue = std::sync::Arc::new(queue);
        ports.table.create().await.expect("create table");
        ports.blobs.create_bucket().await.expect("create bucket");
        let mut env: Vec<(String, String)> = dummy_env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        env.extend([
            ("AWS_ENDPOINT_URL".to_string(), moto.endpoint.clone()),
            ("VAIA_TABLE".to_string(), ports.settings.table.clone()),
            ("VAIA_BUCKET".to_string(), ports.settings.bucket.clone()),
            ("VAIA_QUEUE_PREFIX".to_string(), "vaia-".to_string()),
            ("VAIA_MAX_RECEIVES".to_string(), "3".to_string()),
            ("VAIA_FUNCTION_TIMEOUT_SECS".to_string(), "30".to_string()),
        ]);
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let api = crate::runtime_api::RuntimeApi::start()
            .await
            .expect("runtime api");
        let process =
            crate::runtime_api::FunctionProcess::spawn_with_args(binary, args, &api, name, &env)
                .expect("spawn function");
        let polled = api.wait_first_poll(Duration::from_secs(60)).await;
        assert!(
            polled,
            "{name} did not reach its first poll; init error: {:?}",
            api.init_error()
        );
        Self {
            api,
            process,
            ports,
        }
    }

    /// Invokes the function with fixture `name`.
    pub async fn invoke_fixture(&self, name: &str) -> crate::runtime_api::Answer {
        self.api
            .invoke(fixture(name))
            .await
            .unwrap_or_else(|| panic!("no answer to {name}"))
    }

    pub async fn stop(self) {
        self.process.stop().await;
    }
}

/// Starts gate function `binary` (queue `gate-<gate>`) under the Runtime API emulator and
/// invokes it with every `sqs-gate-<gate>-*` fixture: each batch must succeed as a whole,
/// and the fixtures' jobs, whose run does not exist, must be dead-lettered with that
/// reason rather than retried.
pub async fn assert_gate_function_answers_fixtures(binary: &std::path::Path, gate: &str) {
    let Some(m) = moto() else { return };
    let function = format!("gate-{gate}");
    let h = LambdaHarness::start(binary, &function, m, &[]).await;
    let names = fixtures(&format!("sqs-{function}-"));
    assert!(!names.is_empty(), "no fixtures for {function}");
    for name in &names {
        match h.invoke_fixture(name).await {
            crate::runtime_api::Answer::Response(r) => {
                assert_eq!(r, serde_json::json!({"batchItemFailures": []}), "{name}")
            }
            crate::runtime_api::Answer::Error(e) => panic!("{name}: function error {e}"),
        }
    }
    let dead = h
        .ports
        .queue
        .dead_letters(&function)
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), names.len(), "{dead:?}");
    for (_, reason) in &dead {
        assert!(
            reason.as_deref().unwrap_or("").contains("not found"),
            "{dead:?}"
        );
    }
    h.stop().await;
}

/// An EventBridge bus named `bus` with one rule matching `pattern` whose target is a fresh
/// SQS queue (moto delivers matching events to it, as EventBridge does); returns the queue's
/// URL for [`received_events`].
pub async fn event_bus_to_queue(
    conf: &aws_config::SdkConfig,
    bus: &str,
    pattern: &serde_json::Value,
) -> String {
    let events = aws_sdk_eventbridge::Client::new(conf);
    let sqs = aws_sdk_sqs::Client::new(conf);
    events
        .create_event_bus()
        .name(bus)
        .send()
        .await
        .expect("create event bus");
    let url = sqs
        .create_queue()
        .queue_name(format!("{bus}-target"))
        .send()
        .await
        .expect("create target queue")
        .queue_url
        .expect("queue url");
    let arn_name = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(arn_name.clone())
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|mut a| a.remove(&arn_name))
        .expect("queue arn");
    let rule = format!("{bus}-rule");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .expect("put rule");
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("put targets");
    url
}

/// The events waiting on queue `url` (bodies as JSON), received and deleted.
pub async fn received_events(conf: &aws_config::SdkConfig, url: &str) -> Vec<serde_json::Value> {
    let sqs = aws_sdk_sqs::Client::new(conf);
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive events");
    let mut events = Vec::new();
    for m in out.messages() {
        events.push(serde_json::from_str(m.body().unwrap_or_default()).expect("event JSON"));
        if let Some(h) = m.receipt_handle() {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(h)
                .send()
                .await
                .expect("delete event");
        }
    }
    events
}
