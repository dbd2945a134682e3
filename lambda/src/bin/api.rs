//! Lambda entry point of the API: the `/api` routes of the HTTP API (payload 2.0, IAM
//! authorised) through `lambda_http`, serving [`vaia_api::router`], behind the token layer
//! ([`vaia_api::auth`]) when `VAIA_API_TOKENS` configures tokens. Wiring only.

use std::sync::Arc;
use vaia_api::auth::{self, Tokens};
use vaia_api::{not_found, router, ApiState};
use vaia_aws::lambda;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let tokens = Arc::new(Tokens::from_env()?);
    let app = router(ApiState {
        store: p.store.clone(),
        blobs: p.blobs.clone(),
        queue: p.queue.clone(),
    })
    .fallback(not_found);
    lambda_http::run(auth::layer(app, tokens)).await
}
