//! Lambda entry point of the eval-regression gate: SQS batches from the `gate-eval` queue.
//! The judge's API key is the SSM SecureString named by `VAIA_JUDGE_API_KEY_PARAM`, read
//! once at init (unset: only the offline `local` judge works, and the others say so in
//! their verdicts); `VAIA_JUDGE_URL` as on the local stack.
//! Wiring only.

use std::sync::Arc;
use vaia_aws::lambda;
use vaia_gate_eval::{EvalGate, JudgeSettings};
use vaia_gates::eval::judge::ApiKey;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let p = vaia_aws::AwsPorts::from_env()?;
    let mut settings = JudgeSettings::from_env();
    if let Ok(name) = std::env::var("VAIA_JUDGE_API_KEY_PARAM") {
        if !name.is_empty() {
            let value = vaia_aws::config::ssm_parameter(&p.sdk, &name).await?;
            settings.api_key =
                Some(ApiKey::new(value).ok_or_else(|| format!("SSM parameter {name} is empty"))?);
        }
    }
    let handler = Arc::new(EvalGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
        settings,
    ));
    lambda::serve_gate(&p, vaia_gates::eval::GATE, handler).await
}
