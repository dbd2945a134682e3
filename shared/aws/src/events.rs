//! Promotion events on EventBridge: the [`EventSink`] of the AWS deployment. One `PutEvents`
//! entry per event on the configured bus, with `Source` [`EVENT_SOURCE`] (`vaia`),
//! `DetailType` the event's (`vaia.run.promoted`, `vaia.run.failed`,
//! `vaia.run.rolled_back`) and `Detail` the same document the local stack's signed webhook
//! carries as its `detail` ([`PromotionEvent::detail_json`]), so a rule or a consumer sees
//! the same `source`, `detail-type` and `detail` on either transport.
//!
//! Errors are the domain's [`StatusError`]: throttling, 5xx and unreachable endpoints (and
//! entries EventBridge failed with a transient code) are `Unavailable`, worth retrying;
//! anything refused (an unknown bus, a denied `events:PutEvents`) is `Refused`.

use crate::error::{is_transient_code, map_sdk};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use vaia_core::delivery::{EventSink, PromotionEvent, StatusError, EVENT_SOURCE};
use vaia_core::ports::PortError;

/// Publishes promotion events on one EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeEvents {
    client: Client,
    bus: String,
}

/// An EventBridge client from the function's SDK configuration.
pub fn eventbridge_client(sdk: &aws_config::SdkConfig) -> Client {
    Client::new(sdk)
}

impl EventBridgeEvents {
    /// Events go to `bus` (a name or an ARN; `default` is the account's default bus).
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }
}

fn to_status(e: PortError) -> StatusError {
    match e {
        PortError::Unavailable(message) => StatusError::Unavailable {
            message,
            retry_after: None,
        },
        other => StatusError::Refused(other.to_string()),
    }
}

#[async_trait::async_trait]
impl EventSink for EventBridgeEvents {
    async fn publish(&self, event: &PromotionEvent) -> Result<(), StatusError> {
        debug_assert_eq!(event.source, EVENT_SOURCE);
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(event.source)
            .detail_type(&event.detail_type)
            .detail(event.detail_json()?)
            .build();
        let what = format!("events PutEvents {} on bus {}", event.detail_type, self.bus);
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| to_status(map_sdk(&what, e)))?;
        if out.failed_entry_count() == 0 {
            return Ok(());
        }
        // One entry was sent: a failure is that entry's.
        let failed = out.entries().iter().find(|e| e.error_code().is_some());
        Err(entry_failure(
            &what,
            failed.and_then(|e| e.error_code()).unwrap_or("Unknown"),
            failed.and_then(|e| e.error_message()).unwrap_or(""),
        ))
    }

    fn name(&self) -> String {
        format!("EventBridge bus {}", self.bus)
    }
}

/// The error of an entry EventBridge accepted the request for but failed (`PutEvents`
/// answers 200 with `FailedEntryCount`): retryable when its code is a transient one.
fn entry_failure(what: &str, code: &str, message: &str) -> StatusError {
    let text = format!("{what}: entry failed: {code} {message}");
    if is_transient_code(code) {
        StatusError::Unavailable {
            message: text,
            retry_after: None,
        }
    } else {
        StatusError::Refused(text)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testing::{event_bus_to_queue, moto, received_events, sdk, unique};
    use vaia_core::contract::{base_time, sample_run};
    use vaia_core::delivery::{promotion_event, DETAIL_TYPE_PROMOTED};
    use vaia_core::PipelineState;

    fn promoted() -> PromotionEvent {
        let before = sample_run(3, base_time());
        let mut after = before.clone();
        after.state = PipelineState::Promoted;
        after.candidate.version = Some(semver_version("1.4.0"));
        promotion_event(Some(&before), &after).unwrap()
    }

    fn semver_version(v: &str) -> semver::Version {
        semver::Version::parse(v).unwrap()
    }

    #[tokio::test]
    async fn a_rule_on_the_bus_receives_the_promotion_event() {
        let Some(m) = moto() else { return };
        let conf = sdk(&m.endpoint).await;
        let bus = unique("vaia-bus");
        let pattern =
            serde_json::json!({"source": [EVENT_SOURCE], "detail-type": [DETAIL_TYPE_PROMOTED]});
        let url = event_bus_to_queue(&conf, &bus, &pattern).await;
        let sink = EventBridgeEvents::new(eventbridge_client(&conf), &bus);
        let event = promoted();
        sink.publish(&event).await.unwrap();

        let received = received_events(&conf, &url).await;
        assert_eq!(received.len(), 1, "{received:?}");
        let body = &received[0];
        assert_eq!(body["source"], "vaia");
        assert_eq!(body["detail-type"], "vaia.run.promoted");
        // The detail is the document the webhook's body carries under `detail`.
        let webhook_body = serde_json::to_value(&event).unwrap();
        assert_eq!(body["detail"], webhook_body["detail"]);
        assert_eq!(body["detail"]["state"], "PROMOTED");
        assert_eq!(body["detail"]["version"], "1.4.0");
        assert_eq!(body["detail"]["run_id"], event.detail.run_id.as_str());
    }

    #[tokio::test]
    async fn an_unknown_bus_is_refused_not_retried() {
        let Some(m) = moto() else { return };
        let conf = sdk(&m.endpoint).await;
        let sink = EventBridgeEvents::new(eventbridge_client(&conf), unique("no-such-bus"));
        match sink.publish(&promoted()).await {
            Err(StatusError::Refused(text)) => {
                assert!(text.contains("no-such-bus"), "{text}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn failed_entries_are_retried_only_when_transient() {
        assert!(matches!(
            entry_failure("PutEvents", "ThrottlingException", "slow down"),
            StatusError::Unavailable { .. }
        ));
        assert!(matches!(
            entry_failure("PutEvents", "InternalFailure", ""),
            StatusError::Unavailable { .. }
        ));
        match entry_failure("PutEvents", "AccessDeniedException", "not authorized") {
            StatusError::Refused(m) => assert!(m.contains("AccessDeniedException"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_unavailable() {
        // A port nobody listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = sdk(&format!("http://127.0.0.1:{port}")).await;
        let sink = EventBridgeEvents::new(eventbridge_client(&conf), "default");
        match sink.publish(&promoted()).await {
            Err(StatusError::Unavailable { message, .. }) => {
                assert!(message.contains("PutEvents"), "{message}")
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
    }
}
