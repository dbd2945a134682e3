//! Configuration logic of the Lambda entry points that is more than wiring, kept here so it
//! has unit tests: [`delivery`] decides which secrets come from SSM and which delivery
//! adapters (EventBridge, ECR logins) the orchestrator and registry functions use;
//! [`api_tokens`] where the `api` function's tokens come from.

pub mod api_tokens;
pub mod delivery;
