//! Promotion events as signed outgoing webhooks (the local stack's stand-in for EventBridge):
//! `POST` of the event's JSON with `X-Vaia-Event` (its detail type) and
//! `X-Vaia-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, keyed by a shared secret,
//! as GitHub signs its own webhooks. The secret never reaches a log or an error.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use vaia_core::delivery::{EventSink, PromotionEvent, StatusError};

pub const SIGNATURE_HEADER: &str = "x-vaia-signature-256";
pub const EVENT_HEADER: &str = "x-vaia-event";

pub struct WebhookEvents {
    url: String,
    secret: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for WebhookEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookEvents({}, secret ***)", self.url)
    }
}

/// `sha256=<hex>` of `body` keyed by `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl WebhookEvents {
    pub fn new(url: String, secret: String, timeout: Duration) -> Result<Self, String> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "VAIA_EVENTS_WEBHOOK_URL: {url:?} is not an http(s) URL"
            ));
        }
        if secret.len() < 16 {
            return Err("VAIA_EVENTS_WEBHOOK_SECRET: at least 16 characters".into());
        }
        let http = vaia_gates::http::client_builder()
            .timeout(timeout)
            .user_agent(concat!("vaia/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { url, secret, http })
    }
}

#[async_trait::async_trait]
impl EventSink for WebhookEvents {
    async fn publish(&self, event: &PromotionEvent) -> Result<(), StatusError> {
        let body = serde_json::to_vec(event).map_err(|e| StatusError::Refused(e.to_string()))?;
        let res = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header(EVENT_HEADER, event.detail_type.as_str())
            .header(SIGNATURE_HEADER, signature(&self.secret, &body))
            .body(body)
            .send()
            .await
            .map_err(|_| StatusError::Unavailable {
                message: format!("POST {}: request failed", self.url),
                retry_after: None,
            })?;
        let code = res.status();
        if code.is_success() {
            Ok(())
        } else if code.is_server_error() || code == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(StatusError::Unavailable {
                message: format!("POST {}: {code}", self.url),
                retry_after: None,
            })
        } else {
            Err(StatusError::Refused(format!("POST {}: {code}", self.url)))
        }
    }

    /// The webhook's origin only: a path or query may carry a secret (as Slack's do).
    fn name(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(url) => format!("webhook {}", url.origin().ascii_serialization()),
            Err(_) => "webhook".into(),
        }
    }
}
