//! Configuration logic of the Lambda entry points that is more than wiring, kept here so it
//! has unit tests: [`delivery`] decides which secrets come from SSM and which delivery
//! adapters (EventBridge, ECR logins) the orchestrator and registry functions use;
//! [`api_tokens`] where the `api` function's tokens come from; [`data_watcher`] adapts S3
//! notifications and listings of the data bucket to the data watcher; [`ct_budget`] tells
//! the ct-budget function's schedule from its queue.

pub mod api_tokens;
pub mod ct_budget;
pub mod data_watcher;
pub mod delivery;
