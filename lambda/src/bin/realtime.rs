//! Lambda entry point of the realtime function: API Gateway WebSocket route events
//! (`$connect`, `$disconnect`, `$default`) and DynamoDB stream batches of the runs table,
//! decoded by [`vaia_aws::realtime`] and handled by [`vaia_realtime::Realtime`]. Tokens
//! from `VAIA_API_TOKENS` as for the API. Wiring only.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;
use vaia_api::auth::Tokens;
use vaia_aws::realtime::{
    stream_answer, ws_answer, ApiGatewayPush, DynamoConnections, RealtimeEvent, RealtimeSettings,
};
use vaia_aws::{config, lambda};
use vaia_core::ports::SystemClock;
use vaia_realtime::Realtime;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let settings = RealtimeSettings::from_env()?;
    let sdk = config::sdk_config(settings.endpoint.as_deref())?;
    let realtime = Arc::new(Realtime::new(
        Arc::new(DynamoConnections::new(
            config::dynamodb_client(&sdk, None),
            settings.connections_table,
        )),
        Arc::new(ApiGatewayPush::new(&sdk, &settings.ws_endpoint)),
        Arc::new(Tokens::from_env()?),
        Arc::new(SystemClock),
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let realtime = realtime.clone();
        async move { handle(&realtime, &event.payload).await }
    }))
    .await
}

/// The event to the handler's call, its result to the answer.
async fn handle(realtime: &Realtime, event: &Value) -> Result<Value, lambda_runtime::Error> {
    Ok(match RealtimeEvent::decode(event)? {
        RealtimeEvent::Connect {
            connection,
            headers,
        } => {
            let a = realtime.connect(&connection, &headers).await;
            ws_answer(a.status, a.error.as_deref(), a.protocol)
        }
        RealtimeEvent::Disconnect { connection } => match realtime.disconnect(&connection).await {
            Ok(()) => ws_answer(200, None, None),
            Err(e) => {
                tracing::error!(error = %e, "connection not forgotten; its TTL removes it");
                ws_answer(500, Some("the connection could not be forgotten"), None)
            }
        },
        RealtimeEvent::Message { connection, body } => {
            match realtime.message(&connection, body.as_deref()).await {
                Ok(()) => ws_answer(200, None, None),
                Err(e) => {
                    tracing::warn!(error = %e, "hello not answered");
                    ws_answer(500, Some("the hello could not be answered"), None)
                }
            }
        }
        RealtimeEvent::Stream(changes) => {
            stream_answer(realtime.changes(&changes).await.as_deref())
        }
    })
}
