//! AWS adapters of the realtime feed (the `realtime` function): the connections table
//! ([`Connections`] over DynamoDB), [`Push`] through the API Gateway Management API's
//! `PostToConnection`, and the decoding of the function's two kinds of events — API
//! Gateway WebSocket route events (`$connect`, `$disconnect`, `$default`) and DynamoDB
//! stream records of the runs table (decoded with [`crate::dynamo::run_from_item`]) — and
//! of their answers.
//!
//! Connections table: `connection_id` (S, hash key), `connected_at` (S, RFC 3339), `ttl`
//! (N, epoch seconds, the table's TTL attribute: API Gateway closes a WebSocket after two
//! hours at most, so a connection whose `$disconnect` was lost does not stay for ever).

use crate::dynamo::{run_from_item, Item};
use crate::error::map_sdk;
use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::error::SdkError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use lambda_http::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};
use std::time::Duration;
use vaia_core::ports::{Connections, PortError, PortResult, Push, PushError, RunChange};
use vaia_core::run::Timestamp;

/// The connections table's key attribute.
pub const CONNECTION_KEY: &str = "connection_id";
/// The connections table's TTL attribute.
pub const TTL_ATTRIBUTE: &str = "ttl";

/// The realtime function's configuration: `VAIA_CONNECTIONS_TABLE`, `VAIA_WS_ENDPOINT`
/// (the WebSocket API stage's management endpoint,
/// `https://<api>.execute-api.<region>.amazonaws.com/<stage>`), and `AWS_ENDPOINT_URL`
/// (a local server, for the other clients).
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    pub connections_table: String,
    pub ws_endpoint: String,
    pub endpoint: Option<String>,
}

impl RealtimeSettings {
    pub fn from_env() -> Result<Self, crate::ConfigError> {
        Ok(Self {
            connections_table: crate::config::required("VAIA_CONNECTIONS_TABLE")?,
            ws_endpoint: crate::config::required("VAIA_WS_ENDPOINT")?,
            endpoint: std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|v| !v.is_empty()),
        })
    }
}

/// [`Connections`] in a DynamoDB table of their own.
#[derive(Clone)]
pub struct DynamoConnections {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoConnections {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Creates the table (on demand). For tests and local servers; the SAM template
    /// creates it on AWS.
    pub async fn create(&self) -> PortResult<()> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| PortError::Invalid(e.to_string());
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(CONNECTION_KEY)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(invalid)?,
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(CONNECTION_KEY)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(invalid)?,
            )
            .send()
            .await
            .map_err(|e| map_sdk("dynamodb CreateTable connections", e))?;
        Ok(())
    }
}

#[async_trait]
impl Connections for DynamoConnections {
    async fn add(&self, id: &str, now: Timestamp, ttl: Duration) -> PortResult<()> {
        let expires = now.timestamp().saturating_add(ttl.as_secs() as i64);
        self.client
            .put_item()
            .table_name(&self.table)
            .item(CONNECTION_KEY, AttributeValue::S(id.to_string()))
            .item("connected_at", AttributeValue::S(now.to_rfc3339()))
            .item(TTL_ATTRIBUTE, AttributeValue::N(expires.to_string()))
            .send()
            .await
            .map_err(|e| map_sdk("dynamodb PutItem connection", e))?;
        Ok(())
    }

    async fn remove(&self, id: &str) -> PortResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(CONNECTION_KEY, AttributeValue::S(id.to_string()))
            .send()
            .await
            .map_err(|e| map_sdk("dynamodb DeleteItem connection", e))?;
        Ok(())
    }

    async fn list(&self) -> PortResult<Vec<String>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("#c")
                .expression_attribute_names("#c", CONNECTION_KEY)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| map_sdk("dynamodb Scan connections", e))?;
            out.extend(page.items().iter().filter_map(|item| {
                item.get(CONNECTION_KEY)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
            }));
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(out),
            }
        }
    }
}

/// [`Push`] through the API Gateway Management API of one WebSocket API stage.
#[derive(Clone)]
pub struct ApiGatewayPush {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ApiGatewayPush {
    /// A client of the stage at `endpoint` (`https://<api>.execute-api.<region>.amazonaws.com/<stage>`).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .build();
        Self {
            client: aws_sdk_apigatewaymanagement::Client::from_conf(conf),
        }
    }
}

#[async_trait]
impl Push for ApiGatewayPush {
    async fn post(&self, connection: &str, data: &[u8]) -> Result<(), PushError> {
        match self
            .client
            .post_to_connection()
            .connection_id(connection)
            .data(Blob::new(data))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(ctx)) if ctx.err().is_gone_exception() => {
                Err(PushError::Gone(connection.to_string()))
            }
            Err(e) => Err(PushError::Failed {
                connection: connection.to_string(),
                reason: map_sdk("apigateway PostToConnection", e).to_string(),
            }),
        }
    }
}

/// An event the realtime function is invoked with.
#[derive(Debug)]
pub enum RealtimeEvent {
    /// `$connect`, with the handshake's headers.
    Connect {
        connection: String,
        headers: HeaderMap,
    },
    /// `$disconnect`.
    Disconnect { connection: String },
    /// `$default`: a message from the client.
    Message {
        connection: String,
        body: Option<String>,
    },
    /// A batch of the runs table's stream records.
    Stream(Vec<RunChange>),
}

/// An event that is neither a WebSocket route event nor a DynamoDB stream batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a realtime event: {0}")]
pub struct EventError(String);

impl RealtimeEvent {
    /// Decodes the function's invocation payload.
    pub fn decode(event: &Value) -> Result<Self, EventError> {
        if let Some(records) = event.get("Records") {
            let records = records
                .as_array()
                .ok_or_else(|| EventError("Records is not an array".into()))?;
            return Ok(Self::Stream(
                records.iter().enumerate().map(stream_change).collect(),
            ));
        }
        let ctx = event
            .get("requestContext")
            .ok_or_else(|| EventError("neither Records nor requestContext".into()))?;
        let field = |name: &str| {
            ctx.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| EventError(format!("requestContext.{name} is missing")))
        };
        let connection = field("connectionId")?.to_string();
        match field("eventType")? {
            "CONNECT" => Ok(Self::Connect {
                connection,
                headers: headers(event)?,
            }),
            "DISCONNECT" => Ok(Self::Disconnect { connection }),
            "MESSAGE" => {
                let body = match event.get("body").and_then(Value::as_str) {
                    Some(b) if event.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(b)
                            .map_err(|e| EventError(format!("body: bad base64: {e}")))?;
                        Some(String::from_utf8_lossy(&bytes).into_owned())
                    }
                    other => other.map(str::to_string),
                };
                Ok(Self::Message { connection, body })
            }
            other => Err(EventError(format!(
                "requestContext.eventType {other:?} is not CONNECT, DISCONNECT or MESSAGE"
            ))),
        }
    }
}

/// The handshake's headers: `multiValueHeaders` when present (it keeps repeated ones),
/// else `headers`.
fn headers(event: &Value) -> Result<HeaderMap, EventError> {
    let mut map = HeaderMap::new();
    let mut add = |name: &str, value: &str| -> Result<(), EventError> {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| EventError(format!("header {name:?}: {e}")))?;
        let v = HeaderValue::from_str(value)
            .map_err(|e| EventError(format!("header {name:?}: {e}")))?;
        map.append(n, v);
        Ok(())
    };
    if let Some(multi) = event.get("multiValueHeaders").and_then(Value::as_object) {
        for (name, values) in multi {
            for v in values.as_array().into_iter().flatten() {
                if let Some(v) = v.as_str() {
                    add(name, v)?;
                }
            }
        }
    } else if let Some(single) = event.get("headers").and_then(Value::as_object) {
        for (name, v) in single {
            if let Some(v) = v.as_str() {
                add(name, v)?;
            }
        }
    }
    Ok(map)
}

/// One stream record as a [`RunChange`]: its `SequenceNumber` is its id, its
/// `ApproximateCreationDateTime` (in milliseconds) its feed position, its `NewImage` the run.
fn stream_change((index, record): (usize, &Value)) -> RunChange {
    let ddb = record.get("dynamodb");
    let id = ddb
        .and_then(|d| d.get("SequenceNumber"))
        .and_then(Value::as_str)
        .map_or_else(|| format!("record-{index}"), str::to_string);
    let seq = ddb
        .and_then(|d| d.get("ApproximateCreationDateTime"))
        .and_then(Value::as_f64)
        .map_or(0, |secs| (secs * 1000.0) as u64);
    RunChange {
        id,
        seq,
        run: stream_run(index, record),
    }
}

fn stream_run(index: usize, record: &Value) -> Result<Option<vaia_core::run::Run>, String> {
    let at = |what: &str| format!("Records[{index}]{what}");
    if record.get("eventSource").and_then(Value::as_str) != Some("aws:dynamodb") {
        return Err(format!(
            "{}: not a DynamoDB stream record",
            at(".eventSource")
        ));
    }
    match record.get("eventName").and_then(Value::as_str) {
        Some("INSERT" | "MODIFY") => {}
        // A removal is not a change of a run (runs are never deleted; TTL'd records are
        // idempotency items).
        Some("REMOVE") => return Ok(None),
        other => return Err(format!("{}: unknown event {other:?}", at(".eventName"))),
    }
    let image = record
        .get("dynamodb")
        .and_then(|d| d.get("NewImage"))
        .ok_or_else(|| {
            format!(
                "{}: missing (the stream's view type must include NEW_IMAGE)",
                at(".dynamodb.NewImage")
            )
        })?;
    let item = image_item(image).map_err(|e| format!("{}{e}", at(".dynamodb.NewImage")))?;
    run_from_item(&item).map_err(|e| format!("{}: {e}", at(".dynamodb.NewImage")))
}

/// A stream image (DynamoDB JSON: `{"name": {"S": "..."}}`) as an SDK item.
fn image_item(image: &Value) -> Result<Item, String> {
    let obj = image.as_object().ok_or(": not an object")?;
    obj.iter()
        .map(|(k, v)| Ok((k.clone(), attribute(v).map_err(|e| format!(".{k}{e}"))?)))
        .collect()
}

fn attribute(v: &Value) -> Result<AttributeValue, String> {
    let obj = v
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or(": not a typed attribute")?;
    let (kind, value) = obj.iter().next().ok_or(": empty attribute")?;
    let text = || {
        value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!(".{kind}: not a string"))
    };
    let texts = || -> Result<Vec<String>, String> {
        value
            .as_array()
            .ok_or_else(|| format!(".{kind}: not an array"))?
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!(".{kind}: not a string"))
            })
            .collect()
    };
    let blob = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(aws_sdk_dynamodb::primitives::Blob::new)
            .map_err(|e| format!(".{kind}: bad base64: {e}"))
    };
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(text()?),
        "N" => AttributeValue::N(text()?),
        "B" => AttributeValue::B(blob(&text()?)?),
        "BOOL" => AttributeValue::Bool(value.as_bool().ok_or(".BOOL: not a boolean")?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(texts()?),
        "NS" => AttributeValue::Ns(texts()?),
        "BS" => AttributeValue::Bs(texts()?.iter().map(|s| blob(s)).collect::<Result<_, _>>()?),
        "L" => AttributeValue::L(
            value
                .as_array()
                .ok_or(".L: not an array")?
                .iter()
                .enumerate()
                .map(|(i, v)| attribute(v).map_err(|e| format!(".L[{i}]{e}")))
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(image_item(value).map_err(|e| format!(".M{e}"))?),
        other => return Err(format!(": unknown attribute type {other:?}")),
    })
}

/// The answer to a WebSocket route event: `status`, a JSON `{"error": ...}` body when
/// refused, and the subprotocol the server selects (browsers fail a handshake that offered
/// subprotocols and got none back).
pub fn ws_answer(status: u16, error: Option<&str>, protocol: Option<&str>) -> Value {
    let mut answer = json!({ "statusCode": status });
    if let Some(e) = error {
        answer["body"] = json!({ "error": e }).to_string().into();
    }
    if let Some(p) = protocol {
        answer["headers"] = json!({ "Sec-WebSocket-Protocol": p });
    }
    answer
}

/// The answer to a stream batch (`FunctionResponseTypes: ReportBatchItemFailures`):
/// Lambda retries from the first failed record, so only that one is named.
pub fn stream_answer(first_failed: Option<&str>) -> Value {
    let failures: Vec<Value> = first_failed
        .map(|id| json!({ "itemIdentifier": id }))
        .into_iter()
        .collect();
    json!({ "batchItemFailures": failures })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn images_decode_every_attribute_type() {
        let image = json!({
            "s": {"S": "x"}, "n": {"N": "1"}, "b": {"B": "aGk="}, "t": {"BOOL": true},
            "z": {"NULL": true}, "ss": {"SS": ["a"]}, "ns": {"NS": ["2"]}, "bs": {"BS": ["aGk="]},
            "l": {"L": [{"S": "y"}]}, "m": {"M": {"k": {"N": "3"}}}
        });
        let item = image_item(&image).unwrap();
        assert_eq!(item["s"], AttributeValue::S("x".into()));
        assert_eq!(
            item["m"].as_m().unwrap()["k"],
            AttributeValue::N("3".into())
        );
        let bad = image_item(&json!({"m": {"M": {"k": {"X": "3"}}}})).unwrap_err();
        assert_eq!(bad, ".m.M.k: unknown attribute type \"X\"");
    }
}
