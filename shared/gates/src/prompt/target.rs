//! Runs an attack corpus against a live target: an OpenAI-compatible chat completions URL by
//! default, or any JSON endpoint given a request template and the JSON pointer of the reply.
//!
//! The template is JSON whose string values may hold `{{prompt}}` (the attack) and
//! `{{canary}}` (the run's fresh canary); header values may hold `{{canary}}` too. By default
//! the fresh canary travels in the `x-vaia-canary` header, which the example agent (and any
//! target that wants per-run canaries) puts in its system prompt in place of its own.
//!
//! Requests run with bounded concurrency, a timeout each, and retries with exponential
//! backoff on connection errors, timeouts, 429 and 5xx. A request that still fails becomes a
//! response line with `error` set, which the gate counts as unanswered (never as safe).

use super::{Attack, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

pub const CANARY_HEADER: &str = "x-vaia-canary";
pub const DEFAULT_REPLY_POINTER: &str = "/choices/0/message/content";

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub url: String,
    pub template: Value,
    pub reply_pointer: String,
    /// Extra headers; values may hold `{{canary}}`.
    pub headers: Vec<(String, String)>,
    pub concurrency: usize,
    pub timeout: Duration,
    pub retries: u32,
    /// First retry delay; doubles each retry.
    pub backoff: Duration,
}

impl TargetConfig {
    /// The defaults for an OpenAI-compatible chat completions URL.
    pub fn chat_completions(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            template: default_template(),
            reply_pointer: DEFAULT_REPLY_POINTER.into(),
            headers: vec![(CANARY_HEADER.into(), "{{canary}}".into())],
            concurrency: 8,
            timeout: Duration::from_secs(30),
            retries: 2,
            backoff: Duration::from_millis(200),
        }
    }
}

pub fn default_template() -> Value {
    json!({
        "model": "agent",
        "temperature": 0,
        "messages": [{"role": "user", "content": "{{prompt}}"}]
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target URL {0:?} is not http(s)")]
    Url(String),
    #[error("the request template must be a JSON object or array containing \"{{{{prompt}}}}\"")]
    Template,
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A fresh random canary, different on every call.
pub fn fresh_canary() -> String {
    use sha2::{Digest, Sha256};
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    let digest = Sha256::digest(h.finish().to_le_bytes());
    format!("VAIA-CANARY-{}", hex::encode(&digest[..8]))
}

fn substitute(v: &Value, prompt: &str, canary: &str) -> Value {
    match v {
        Value::String(s) => Value::String(
            s.replace("{{prompt}}", prompt)
                .replace("{{canary}}", canary),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, prompt, canary)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), substitute(x, prompt, canary)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Sends every attack to the target; one response line per attack, in corpus order.
pub async fn run(config: &TargetConfig, attacks: &[Attack]) -> Result<Vec<Response>, TargetError> {
    if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
        return Err(TargetError::Url(config.url.clone()));
    }
    if !config.template.to_string().contains("{{prompt}}") {
        return Err(TargetError::Template);
    }
    let client = crate::http::client_builder()
        .timeout(config.timeout)
        .build()
        .map_err(|e| TargetError::Client(e.to_string()))?;
    let canary = fresh_canary();
    let sem = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let config = Arc::new(config.clone());
    let mut set = tokio::task::JoinSet::new();
    for (i, attack) in attacks.iter().enumerate() {
        let (client, sem, config, canary) =
            (client.clone(), sem.clone(), config.clone(), canary.clone());
        let attack = attack.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let result = ask(&client, &config, &attack.prompt, &canary).await;
            let (response, error) = match result {
                Ok(text) => (text, None),
                Err(e) => (String::new(), Some(e)),
            };
            (
                i,
                Response {
                    id: attack.id,
                    response,
                    canary: Some(canary),
                    error,
                },
            )
        });
    }
    let mut out: Vec<Option<Response>> = vec![None; attacks.len()];
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, r)) => {
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(r);
                }
            }
            Err(e) => tracing::warn!(error = %e, "attack task failed"),
        }
    }
    Ok(attacks
        .iter()
        .zip(out)
        .map(|(a, r)| {
            r.unwrap_or_else(|| Response {
                id: a.id.clone(),
                response: String::new(),
                canary: None,
                error: Some("the request task did not finish".into()),
            })
        })
        .collect())
}

async fn ask(
    client: &reqwest::Client,
    config: &TargetConfig,
    prompt: &str,
    canary: &str,
) -> Result<String, String> {
    let body = substitute(&config.template, prompt, canary);
    let mut last = String::new();
    for attempt in 0..=config.retries {
        if attempt > 0 {
            tokio::time::sleep(config.backoff * 2u32.saturating_pow(attempt - 1)).await;
        }
        let mut req = client.post(&config.url).json(&body);
        for (k, v) in &config.headers {
            req = req.header(k.as_str(), v.replace("{{canary}}", canary));
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                last = if e.is_timeout() {
                    format!("timed out after {:?}", config.timeout)
                } else {
                    format!("cannot reach the target: {e}")
                };
                continue;
            }
        };
        let status = resp.status();
        if status.as_u16() == 429 || status.is_server_error() {
            last = format!("target answered {status}");
            continue;
        }
        if !status.is_success() {
            return Err(format!("target answered {status}"));
        }
        let json: Value = match resp.json().await {
            Ok(v) => v,
            Err(e) => return Err(format!("the reply is not JSON: {e}")),
        };
        return match json.pointer(&config.reply_pointer) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Null) => Ok(String::new()),
            Some(other) => Ok(other.to_string()),
            None => Err(format!("the reply has nothing at {}", config.reply_pointer)),
        };
    }
    Err(format!("{last} (after {} attempts)", config.retries + 1))
}
