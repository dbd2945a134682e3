//! Lambda entry point of the API: the `/api` routes of the HTTP API (payload 2.0, IAM
//! authorised) and `POST /hooks/alertmanager` (bearer token; the token from the SSM
//! parameter named by `VAIA_ALERTMANAGER_TOKEN_PARAM`, or `VAIA_ALERTMANAGER_TOKEN` for
//! local invocation; without either the hook refuses every notification) through
//! `lambda_http`, serving [`vaia_api::router`], `GET /metrics` ([`vaia_api::metrics`]: the
//! store's gauges in Prometheus text format, a read) and [`vaia_api::alertmanager::router`],
//! behind the token layer ([`vaia_api::auth`]) when `VAIA_API_TOKENS` configures tokens, or the
//! SSM parameter named by `VAIA_API_TOKENS_PARAM` ([`vaia_lambda::api_tokens`]).
//! Wiring only.

use std::sync::Arc;
use vaia_api::alertmanager::{self, AlertmanagerToken, HookState};
use vaia_api::auth::{self, Tokens};
use vaia_api::{router, served, ApiState};
use vaia_aws::lambda;
use vaia_core::monitoring::RollbackPolicy;
use vaia_lambda::api_tokens::{self, TokensSource};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let tokens = match api_tokens::tokens_source(&vaia_delivery::env_var)? {
        TokensSource::None => Tokens::default(),
        TokensSource::Inline(text) => api_tokens::parse(auth::TOKENS_ENV, &text)?,
        TokensSource::Parameter(name) => {
            let text = vaia_aws::config::ssm_parameter(&p.sdk, &name).await?;
            api_tokens::parse(&format!("SSM parameter {name}"), &text)?
        }
    };
    let tokens = Arc::new(tokens);
    let token = match std::env::var("VAIA_ALERTMANAGER_TOKEN_PARAM") {
        Ok(name) if !name.is_empty() => Some(vaia_aws::config::ssm_parameter(&p.sdk, &name).await?),
        _ => std::env::var(alertmanager::TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty()),
    };
    let token = token
        .map(AlertmanagerToken::new)
        .transpose()
        .map_err(|e| format!("the Alertmanager token: {e}"))?;
    let state = ApiState {
        store: p.store.clone(),
        blobs: p.blobs.clone(),
        queue: p.queue.clone(),
    };
    let app = served(
        router(state.clone())
            .merge(vaia_api::metrics::router(state))
            .merge(alertmanager::router(HookState {
                store: p.store.clone(),
                blobs: p.blobs.clone(),
                queue: p.queue.clone(),
                token,
                policy: RollbackPolicy::default(),
            })),
    );
    // `lambda_http::run` behind a check of the event (see vaia_aws::http::run).
    vaia_aws::http::run(auth::layer(app, tokens)).await
}
