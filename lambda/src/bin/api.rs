//! Lambda entry point of the API: the `/api` routes of the HTTP API (payload 2.0, IAM
//! authorised) through `lambda_http`, serving [`vaia_api::router`]. Wiring only.

use vaia_api::{router, served, ApiState};
use vaia_aws::lambda;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let app = served(router(ApiState {
        store: p.store.clone(),
        blobs: p.blobs.clone(),
        queue: p.queue.clone(),
    }));
    lambda_http::run(app).await
}
