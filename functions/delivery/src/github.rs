//! Commit statuses through GitHub's REST API (`POST /repos/{owner}/{repo}/statuses/{sha}`),
//! with a token from the configuration (a GitHub App installation token is the recommended
//! setup; a fine-grained personal token with "Commit statuses: write" works too). 5xx and
//! 429 are retryable, with the `Retry-After` the API gave; a refused token is logged once.
//! The token never reaches a log or an error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use vaia_core::delivery::{CommitStatus, CommitStatuses, StatusError};
use vaia_core::{CommitSha, Repository};

pub const API_VERSION: &str = "2022-11-28";

pub struct GitHubStatuses {
    api: String,
    token: String,
    http: reqwest::Client,
    warned: AtomicBool,
}

impl std::fmt::Debug for GitHubStatuses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GitHubStatuses({}, token ***)", self.api)
    }
}

impl GitHubStatuses {
    /// `api` is `https://api.github.com` (or a GitHub Enterprise `https://HOST/api/v3`).
    pub fn new(api: &str, token: String, timeout: Duration) -> Result<Self, String> {
        let http = vaia_gates::http::client_builder()
            .timeout(timeout)
            .user_agent(concat!("vaia/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            api: api.trim_end_matches('/').to_string(),
            token,
            http,
            warned: AtomicBool::new(false),
        })
    }
}

#[async_trait::async_trait]
impl CommitStatuses for GitHubStatuses {
    async fn post(
        &self,
        repo: &Repository,
        commit: &CommitSha,
        status: &CommitStatus,
    ) -> Result<(), StatusError> {
        let url = format!("{}/repos/{repo}/statuses/{commit}", self.api);
        let what = format!("POST {}/repos/{repo}/statuses/{}", self.api, commit.short());
        let res = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION)
            .json(status)
            .send()
            .await
            .map_err(|e| StatusError::Unavailable {
                message: format!(
                    "{what}: {}",
                    if e.is_timeout() {
                        "timed out"
                    } else {
                        "request failed"
                    }
                ),
                retry_after: None,
            })?;
        let code = res.status();
        if code.is_success() {
            return Ok(());
        }
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let rate_limited = code == reqwest::StatusCode::FORBIDDEN
            && res
                .headers()
                .get("x-ratelimit-remaining")
                .is_some_and(|v| v.as_bytes() == b"0");
        if code.is_server_error() || code == reqwest::StatusCode::TOO_MANY_REQUESTS || rate_limited
        {
            return Err(StatusError::Unavailable {
                message: format!("{what}: {code}"),
                retry_after,
            });
        }
        if matches!(code.as_u16(), 401 | 403) && !self.warned.swap(true, Ordering::SeqCst) {
            tracing::warn!(%code, "GitHub refused the status token; commit statuses are not posted (check VAIA_GITHUB_TOKEN)");
        }
        Err(StatusError::Refused(format!("{what}: {code}")))
    }
}
