//! Lambda entry point of the webhook: GitHub deliveries through an API Gateway HTTP API
//! (payload v2) via `lambda_http`. The secret comes from SSM Parameter Store
//! (`VAIA_WEBHOOK_SECRET_PARAM`); `VAIA_WEBHOOK_SECRET` is accepted for local invocation
//! only. Wiring only.

use lambda_http::{service_fn, Request};
use std::sync::Arc;
use tracing::Instrument;
use vaia_aws::http::{json_response, request_parts};
use vaia_aws::lambda;
use vaia_core::policy::Policy;
use vaia_webhook::{Webhook, WebhookRequest, WebhookSecret, DELIVERY_HEADER};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let secret = match std::env::var("VAIA_WEBHOOK_SECRET_PARAM") {
        Ok(name) if !name.is_empty() => vaia_aws::config::ssm_parameter(&p.sdk, &name).await?,
        _ => std::env::var("VAIA_WEBHOOK_SECRET")
            .map_err(|_| "VAIA_WEBHOOK_SECRET_PARAM (an SSM parameter name) is required")?,
    };
    let webhook = Arc::new(Webhook::new(
        p.store.clone(),
        p.idempotency.clone(),
        p.queue.clone(),
        p.clock.clone(),
        WebhookSecret::for_deployment(secret)?,
        Policy::default(),
    ));
    // `lambda_http::run` behind a check of the event (see vaia_aws::http::run).
    vaia_aws::http::run(service_fn(move |req: Request| {
        let webhook = webhook.clone();
        async move {
            let (headers, body) = request_parts(&req);
            let request = WebhookRequest {
                headers: &headers,
                body: &body,
            };
            let delivery = request.header(DELIVERY_HEADER).ok().flatten().unwrap_or("");
            let span = tracing::info_span!("delivery", delivery_id = %delivery);
            let response = webhook.handle(&request).instrument(span).await;
            Ok::<_, lambda_http::Error>(json_response(response.status, &response.body))
        }
    }))
    .await
}
