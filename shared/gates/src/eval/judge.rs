//! Judges: one trait, three implementations, and the runner that calls them.
//!
//! - [`LocalJudge`]: offline and deterministic. Score = F1 of the content-word sets of the
//!   answer and the reference (lowercased letters/digits tokens, a small English stop-word
//!   list removed): 1.0 for the same content words, 0.0 for none in common; an empty answer
//!   scores 0.
//! - [`GeminiJudge`]: `POST {base}/v1beta/models/{model}:generateContent` with the key in the
//!   `x-goog-api-key` header (never in the URL, so it cannot reach a log through one), and
//!   structured output (`responseMimeType: application/json` + `responseSchema`).
//! - [`OpenAiJudge`]: `POST {base}/chat/completions` with `Authorization: Bearer` and a
//!   `json_schema` response format; works with any OpenAI-compatible server.
//!
//! LLM judges grade 0–10 against the reference; the score is that over 10.
//!
//! The runner ([`judge_all`]) bounds concurrency, retries 429, 5xx, timeouts and malformed
//! replies with exponential backoff, stops calling once the key is refused, caches grades on
//! disk keyed by judge, model, prompt and answer, and counts tokens. Keys are held in
//! [`ApiKey`], whose `Debug` is redacted, and scrubbed from every error message.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Bump when the judge prompt changes, so cached grades of the old prompt are not reused.
pub const PROMPT_VERSION: &str = "vaia-judge-v1";

pub const JUDGE_SYSTEM: &str = "You grade answers of a customer-support agent. Compare the \
ANSWER to the REFERENCE answer for the QUESTION. Score 10 when the answer states the same \
facts as the reference, 5 when it is partly right or incomplete, 0 when it is wrong, evasive \
or missing. Ignore style and length. Reply with JSON: {\"score\": integer 0-10, \"reason\": \
one short sentence}.";

pub const DEFAULT_GEMINI_URL: &str = "https://generativelanguage.googleapis.com";
pub const DEFAULT_GEMINI_MODEL: &str = "gemini-2.5-flash";
pub const DEFAULT_OPENAI_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_OPENAI_MODEL: &str = "gpt-4o-mini";

/// An API key. Never printed: `Debug` shows `ApiKey(***)`.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Option<Self> {
        let key = key.into();
        (!key.trim().is_empty()).then_some(Self(key))
    }

    fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key replaced.
    pub fn scrub(&self, text: &str) -> String {
        text.replace(&self.0, "***")
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// What a judge is asked: one golden question, its reference and an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct GradeRequest {
    pub input: String,
    pub reference: String,
    pub answer: String,
}

impl GradeRequest {
    /// The user prompt an LLM judge receives.
    pub fn prompt(&self) -> String {
        format!(
            "QUESTION:\n{}\n\nREFERENCE:\n{}\n\nANSWER:\n{}",
            self.input, self.reference, self.answer
        )
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grade {
    /// In `[0, 1]`.
    pub score: f64,
    pub reason: String,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JudgeError {
    #[error("judge unreachable: {0}")]
    Unreachable(String),
    #[error("judge refused the API key: {0}")]
    Auth(String),
    #[error("judge rate-limited the request (429)")]
    RateLimited,
    #[error("judge server error {status}: {message}")]
    Server { status: u16, message: String },
    #[error("judge rejected the request {status}: {message}")]
    BadRequest { status: u16, message: String },
    #[error("judge refused to grade: {0}")]
    Refused(String),
    #[error("judge reply is malformed: {0}")]
    Malformed(String),
    #[error("no API key: set {0}")]
    MissingKey(&'static str),
}

impl JudgeError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable(_) | Self::RateLimited | Self::Server { .. } | Self::Malformed(_)
        )
    }
}

#[async_trait]
pub trait Judge: Send + Sync {
    /// `local`, `gemini` or `openai`.
    fn name(&self) -> &str;
    fn model(&self) -> &str;
    /// Whether grades are worth caching (not for the instant local judge).
    fn cacheable(&self) -> bool {
        true
    }
    async fn grade(&self, req: &GradeRequest) -> Result<Grade, JudgeError>;
}

// ---------------------------------------------------------------------------------------
// Local judge

const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "were", "be", "to", "of", "and", "or", "in", "on", "at",
    "for", "with", "it", "its", "this", "that", "you", "your", "we", "our", "i", "can", "do",
    "does", "by", "from", "as", "if", "will", "please", "yes", "no",
];

fn content_words(s: &str) -> HashSet<String> {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !STOP_WORDS.contains(w))
        .map(str::to_string)
        .collect()
}

/// F1 of the content-word sets of `answer` and `reference`.
pub fn token_f1(answer: &str, reference: &str) -> f64 {
    let a = content_words(answer);
    let r = content_words(reference);
    if a.is_empty() || r.is_empty() {
        return 0.0;
    }
    let common = a.intersection(&r).count() as f64;
    if common == 0.0 {
        return 0.0;
    }
    let p = common / a.len() as f64;
    let rc = common / r.len() as f64;
    2.0 * p * rc / (p + rc)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LocalJudge;

#[async_trait]
impl Judge for LocalJudge {
    fn name(&self) -> &str {
        "local"
    }
    fn model(&self) -> &str {
        "token-f1"
    }
    fn cacheable(&self) -> bool {
        false
    }
    async fn grade(&self, req: &GradeRequest) -> Result<Grade, JudgeError> {
        let score = token_f1(&req.answer, &req.reference);
        Ok(Grade {
            score: (score * 1000.0).round() / 1000.0,
            reason: format!("content-word F1 {score:.3} against the reference"),
            usage: Usage::default(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// HTTP judges

/// The judges' HTTP client. HTTPS goes through rustls (ring provider, see `crate::http`) and verifies
/// certificates with rustls-platform-verifier: on Linux the system's CA bundle, found the
/// way OpenSSL finds it (`SSL_CERT_FILE` / `SSL_CERT_DIR` override it, e.g. for a
/// corporate proxy's CA).
fn http_client(timeout: Duration) -> Result<reqwest::Client, JudgeError> {
    crate::http::client_builder()
        .timeout(timeout)
        .build()
        .map_err(|e| JudgeError::Unreachable(e.to_string()))
}

/// `error: cause: cause…` — reqwest's own message ("error sending request") says nothing
/// of why (refused connection, DNS, TLS certificate); the causes do.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Sends `req`; maps transport errors and status codes to [`JudgeError`]; returns the JSON.
async fn send(
    req: reqwest::RequestBuilder,
    key: &ApiKey,
    auth_hint: impl Fn(u16, &str) -> bool,
) -> Result<Value, JudgeError> {
    let resp = req.send().await.map_err(|e| {
        let e = e.without_url();
        JudgeError::Unreachable(key.scrub(&if e.is_timeout() {
            "timed out".to_string()
        } else {
            with_causes(&e)
        }))
    })?;
    let status = resp.status().as_u16();
    let text = resp
        .text()
        .await
        .map_err(|e| JudgeError::Unreachable(key.scrub(&e.without_url().to_string())))?;
    let message = || {
        let m = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| text.chars().take(200).collect());
        key.scrub(&m)
    };
    match status {
        200..=299 => {
            serde_json::from_str(&text).map_err(|e| JudgeError::Malformed(format!("not JSON: {e}")))
        }
        401 | 403 => Err(JudgeError::Auth(message())),
        429 => Err(JudgeError::RateLimited),
        500..=599 => Err(JudgeError::Server {
            status,
            message: message(),
        }),
        s if auth_hint(s, &text) => Err(JudgeError::Auth(message())),
        s => Err(JudgeError::BadRequest {
            status: s,
            message: message(),
        }),
    }
}

#[derive(Debug, Deserialize)]
struct Graded {
    score: f64,
    #[serde(default)]
    reason: String,
}

fn parse_grade(text: &str, usage: Usage) -> Result<Grade, JudgeError> {
    let g: Graded = serde_json::from_str(text.trim())
        .map_err(|e| JudgeError::Malformed(format!("grade is not the requested JSON: {e}")))?;
    if !(0.0..=10.0).contains(&g.score) {
        return Err(JudgeError::Malformed(format!(
            "score {} is outside 0-10",
            g.score
        )));
    }
    Ok(Grade {
        score: g.score / 10.0,
        reason: g.reason,
        usage,
    })
}

#[derive(Debug, Clone)]
pub struct GeminiJudge {
    base: String,
    model: String,
    key: ApiKey,
    client: reqwest::Client,
}

impl GeminiJudge {
    pub fn new(
        base: Option<&str>,
        model: Option<&str>,
        key: ApiKey,
        timeout: Duration,
    ) -> Result<Self, JudgeError> {
        Ok(Self {
            base: base
                .unwrap_or(DEFAULT_GEMINI_URL)
                .trim_end_matches('/')
                .to_string(),
            model: model.unwrap_or(DEFAULT_GEMINI_MODEL).to_string(),
            key,
            client: http_client(timeout)?,
        })
    }

    pub fn request_body(req: &GradeRequest) -> Value {
        json!({
            "systemInstruction": {"parts": [{"text": JUDGE_SYSTEM}]},
            "contents": [{"role": "user", "parts": [{"text": req.prompt()}]}],
            "generationConfig": {
                "temperature": 0,
                "responseMimeType": "application/json",
                "responseSchema": {
                    "type": "OBJECT",
                    "properties": {
                        "score": {"type": "INTEGER"},
                        "reason": {"type": "STRING"}
                    },
                    "required": ["score", "reason"]
                }
            }
        })
    }
}

#[async_trait]
impl Judge for GeminiJudge {
    fn name(&self) -> &str {
        "gemini"
    }
    fn model(&self) -> &str {
        &self.model
    }
    async fn grade(&self, req: &GradeRequest) -> Result<Grade, JudgeError> {
        let url = format!("{}/v1beta/models/{}:generateContent", self.base, self.model);
        let r = self
            .client
            .post(url)
            .header("x-goog-api-key", self.key.expose())
            .json(&Self::request_body(req));
        // Gemini answers an invalid key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID.
        let v = send(r, &self.key, |s, body| {
            s == 400 && body.contains("API_KEY_INVALID")
        })
        .await?;
        let usage = Usage {
            input_tokens: v
                .pointer("/usageMetadata/promptTokenCount")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            output_tokens: v
                .pointer("/usageMetadata/candidatesTokenCount")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        };
        if let Some(reason) = v
            .pointer("/promptFeedback/blockReason")
            .and_then(Value::as_str)
        {
            return Err(JudgeError::Refused(format!("prompt blocked: {reason}")));
        }
        let cand = v
            .pointer("/candidates/0")
            .ok_or_else(|| JudgeError::Malformed("no candidates".into()))?;
        let finish = cand
            .get("finishReason")
            .and_then(Value::as_str)
            .unwrap_or("STOP");
        if matches!(
            finish,
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII"
        ) {
            return Err(JudgeError::Refused(format!("finishReason {finish}")));
        }
        let text: String = cand
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect()
            })
            .ok_or_else(|| JudgeError::Malformed(format!("no content (finishReason {finish})")))?;
        parse_grade(&text, usage)
    }
}

#[derive(Debug, Clone)]
pub struct OpenAiJudge {
    base: String,
    model: String,
    key: ApiKey,
    client: reqwest::Client,
}

impl OpenAiJudge {
    pub fn new(
        base: Option<&str>,
        model: Option<&str>,
        key: ApiKey,
        timeout: Duration,
    ) -> Result<Self, JudgeError> {
        Ok(Self {
            base: base
                .unwrap_or(DEFAULT_OPENAI_URL)
                .trim_end_matches('/')
                .to_string(),
            model: model.unwrap_or(DEFAULT_OPENAI_MODEL).to_string(),
            key,
            client: http_client(timeout)?,
        })
    }

    pub fn request_body(&self, req: &GradeRequest) -> Value {
        json!({
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": req.prompt()}
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "grade",
                    "strict": true,
                    "schema": {
                        "type": "object",
                        "properties": {
                            "score": {"type": "integer", "minimum": 0, "maximum": 10},
                            "reason": {"type": "string"}
                        },
                        "required": ["score", "reason"],
                        "additionalProperties": false
                    }
                }
            }
        })
    }
}

#[async_trait]
impl Judge for OpenAiJudge {
    fn name(&self) -> &str {
        "openai"
    }
    fn model(&self) -> &str {
        &self.model
    }
    async fn grade(&self, req: &GradeRequest) -> Result<Grade, JudgeError> {
        let r = self
            .client
            .post(format!("{}/chat/completions", self.base))
            .bearer_auth(self.key.expose())
            .json(&self.request_body(req));
        let v = send(r, &self.key, |_, _| false).await?;
        let usage = Usage {
            input_tokens: v
                .pointer("/usage/prompt_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            output_tokens: v
                .pointer("/usage/completion_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        };
        let choice = v
            .pointer("/choices/0")
            .ok_or_else(|| JudgeError::Malformed("no choices".into()))?;
        if let Some(refusal) = choice.pointer("/message/refusal").and_then(Value::as_str) {
            return Err(JudgeError::Refused(refusal.chars().take(200).collect()));
        }
        if choice.get("finish_reason").and_then(Value::as_str) == Some("content_filter") {
            return Err(JudgeError::Refused("finish_reason content_filter".into()));
        }
        let text = choice
            .pointer("/message/content")
            .and_then(Value::as_str)
            .ok_or_else(|| JudgeError::Malformed("no message content".into()))?;
        parse_grade(text, usage)
    }
}

// ---------------------------------------------------------------------------------------
// Cache

/// Grades already paid for, keyed by judge, model, judge prompt, question, reference and
/// answer ([`GradeCache::key`]). On disk (the CLI) one JSON document per key under
/// `dir/judge/`. In the pipeline's blob store (every gate invocation of a deployment
/// shares it) one document per judging context, `cache/judge/<context>.json`: the judge,
/// model and prompt version and the golden set's questions and references (see
/// [`GradeCache::context`]), holding the grades of every answer judged in that context,
/// so that an eval run reads its cache once and writes it at most once (two S3 requests,
/// not one per answer). Writes are compare-and-swap on the document's etag, merged again
/// when another run wrote in between; the document keeps the most recently used grades,
/// at most [`GradeCache::KEEP_PER_ITEM`] per golden item. The cache is an optimisation:
/// an unreadable or unwritable entry is a miss, never an error.
#[derive(Clone)]
pub struct GradeCache {
    place: CachePlace,
}

#[derive(Clone)]
enum CachePlace {
    Dir(PathBuf),
    Blobs(Arc<dyn vaia_core::ports::BlobStore>),
}

impl std::fmt::Debug for GradeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.place {
            CachePlace::Dir(d) => write!(f, "GradeCache({})", d.display()),
            CachePlace::Blobs(_) => f.write_str("GradeCache(blob store cache/judge/)"),
        }
    }
}

/// The blob store's cache document of one judging context.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CacheDocument {
    schema: String,
    /// Incremented by every write; an entry's `used` is the generation that last used it.
    generation: u64,
    entries: std::collections::BTreeMap<String, CacheEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheEntry {
    grade: Grade,
    used: u64,
}

const CACHE_SCHEMA: &str = "vaia.grade-cache/v1";

/// Compare-and-swap attempts on a cache document before the new grades are given up.
const CACHE_WRITE_ATTEMPTS: usize = 4;

/// The cache's answer for one batch of requests, and what [`GradeCache::store`] needs to
/// write the new grades back.
#[derive(Debug, Default)]
pub struct CacheLookup {
    /// Grades found, by key.
    pub hits: std::collections::HashMap<String, Grade>,
    /// The blob store's document: its key, etag and contents as read.
    document: Option<(vaia_core::BlobKey, Option<String>, CacheDocument)>,
    /// Every key of the batch (kept as used).
    keys: Vec<String>,
    /// Golden items in the batch (bounds the document's size).
    items: usize,
}

impl GradeCache {
    /// Grades kept per golden item in a blob-store document: the current and recent
    /// answer sets of every version judged in the context.
    pub const KEEP_PER_ITEM: usize = 8;

    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            place: CachePlace::Dir(dir.into().join("judge")),
        }
    }

    /// A cache in the pipeline's blob store, under `cache/judge/<context>.json`.
    pub fn in_blob_store(blobs: Arc<dyn vaia_core::ports::BlobStore>) -> Self {
        Self {
            place: CachePlace::Blobs(blobs),
        }
    }

    /// `$XDG_CACHE_HOME/vaia`, else `~/.cache/vaia`; `None` when neither is known.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
            return Some(PathBuf::from(x).join("vaia"));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".cache").join("vaia"))
    }

    pub fn key(judge: &dyn Judge, req: &GradeRequest) -> String {
        let mut h = Sha256::new();
        for part in [
            PROMPT_VERSION,
            judge.name(),
            judge.model(),
            JUDGE_SYSTEM,
            &req.prompt(),
            &req.answer,
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// The judging context of `requests`: judge, model, prompt version and the distinct
    /// (question, reference) pairs, in order. Every version's answers to one golden set
    /// share it; another golden set or judge has its own.
    pub fn context(judge: &dyn Judge, requests: &[GradeRequest]) -> String {
        let mut golden: Vec<(&str, &str)> = requests
            .iter()
            .map(|r| (r.input.as_str(), r.reference.as_str()))
            .collect();
        golden.sort_unstable();
        golden.dedup();
        let mut h = Sha256::new();
        for part in [PROMPT_VERSION, judge.name(), judge.model(), JUDGE_SYSTEM]
            .into_iter()
            .chain(golden.iter().flat_map(|(i, r)| [*i, *r]))
        {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    }

    fn blob_key(name: &str) -> Option<vaia_core::BlobKey> {
        vaia_core::BlobKey::new(format!("cache/judge/{name}.json")).ok()
    }

    /// One grade by key (the CLI's per-key files; a blob-store cache answers through
    /// [`Self::lookup`]).
    pub async fn get(&self, key: &str) -> Option<Grade> {
        match &self.place {
            CachePlace::Dir(dir) => {
                let bytes = tokio::fs::read(dir.join(format!("{key}.json")))
                    .await
                    .ok()?;
                serde_json::from_slice(&bytes).ok()
            }
            CachePlace::Blobs(_) => None,
        }
    }

    /// Stores one grade by key in the CLI's directory (a blob-store cache is written
    /// through [`Self::store`]).
    pub async fn put(&self, key: &str, grade: &Grade) {
        let CachePlace::Dir(dir) = &self.place else {
            return;
        };
        let Ok(bytes) = serde_json::to_vec(grade) else {
            return;
        };
        if tokio::fs::create_dir_all(dir).await.is_err() {
            return;
        }
        let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
        if tokio::fs::write(&tmp, bytes).await.is_ok() {
            let _ = tokio::fs::rename(&tmp, dir.join(format!("{key}.json"))).await;
        }
    }

    /// The cached grades of `requests` (whose keys are `keys`): one read of the context's
    /// document in the blob store, one file per key on disk.
    pub async fn lookup(
        &self,
        judge: &dyn Judge,
        requests: &[GradeRequest],
        keys: &[String],
    ) -> CacheLookup {
        let items = {
            let mut golden: Vec<(&str, &str)> = requests
                .iter()
                .map(|r| (r.input.as_str(), r.reference.as_str()))
                .collect();
            golden.sort_unstable();
            golden.dedup();
            golden.len()
        };
        let mut out = CacheLookup {
            keys: keys.to_vec(),
            items,
            ..Default::default()
        };
        match &self.place {
            CachePlace::Dir(_) => {
                for k in keys {
                    if let Some(g) = self.get(k).await {
                        out.hits.insert(k.clone(), g);
                    }
                }
            }
            CachePlace::Blobs(blobs) => {
                let Some(key) = Self::blob_key(&Self::context(judge, requests)) else {
                    return out;
                };
                let (etag, doc) = match blobs.get_tagged(&key).await {
                    Ok(Some(t)) => match serde_json::from_slice::<CacheDocument>(&t.bytes) {
                        Ok(doc) if doc.schema == CACHE_SCHEMA => (Some(t.etag), doc),
                        // Unreadable: replaced on the next write.
                        _ => (Some(t.etag), CacheDocument::default()),
                    },
                    Ok(None) => (None, CacheDocument::default()),
                    Err(e) => {
                        tracing::warn!(error = %e, "judge grade cache unreadable");
                        return out;
                    }
                };
                for k in keys {
                    if let Some(e) = doc.entries.get(k) {
                        out.hits.insert(k.clone(), e.grade.clone());
                    }
                }
                out.document = Some((key, etag, doc));
            }
        }
        out
    }

    /// Writes `new` grades (by key) back: one compare-and-swap write of the context's
    /// document (merged again and retried when another run wrote it since `lookup` read
    /// it), which marks every key of the lookup as used and keeps the most recently used
    /// grades; one file per new grade on disk. A blob-store document whose grades were all
    /// found is not written.
    pub async fn store(&self, lookup: CacheLookup, new: &[(String, Grade)]) {
        match &self.place {
            CachePlace::Dir(_) => {
                for (k, g) in new {
                    self.put(k, g).await;
                }
            }
            CachePlace::Blobs(blobs) => {
                if new.is_empty() {
                    return;
                }
                let Some((key, mut etag, mut doc)) = lookup.document else {
                    return;
                };
                let keep = (lookup.items.max(1) * Self::KEEP_PER_ITEM).max(lookup.keys.len());
                for _ in 0..CACHE_WRITE_ATTEMPTS {
                    let bytes = merged(&mut doc, &lookup.keys, new, keep);
                    let written = match &etag {
                        None => blobs.put_if_absent(&key, &bytes).await,
                        Some(t) => blobs.put_if_match(&key, &bytes, t).await,
                    };
                    match written {
                        Ok(Some(_)) => return,
                        Ok(None) => {
                            // Another run wrote it: merge into what it wrote.
                            match blobs.get_tagged(&key).await {
                                Ok(found) => {
                                    etag = found.as_ref().map(|t| t.etag.clone());
                                    doc = found
                                        .and_then(|t| {
                                            serde_json::from_slice::<CacheDocument>(&t.bytes).ok()
                                        })
                                        .filter(|d| d.schema == CACHE_SCHEMA)
                                        .unwrap_or_default();
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "judge grades not cached");
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "judge grades not cached");
                            return;
                        }
                    }
                }
                tracing::warn!(%key, "judge grades not cached: the document kept changing");
            }
        }
    }
}

/// `doc` with `new` grades added, `used` keys marked, trimmed to the `keep` most recently
/// used entries; its bytes.
fn merged(
    doc: &mut CacheDocument,
    used: &[String],
    new: &[(String, Grade)],
    keep: usize,
) -> Vec<u8> {
    doc.schema = CACHE_SCHEMA.into();
    doc.generation += 1;
    let generation = doc.generation;
    for (k, g) in new {
        doc.entries.insert(
            k.clone(),
            CacheEntry {
                grade: g.clone(),
                used: generation,
            },
        );
    }
    for k in used {
        if let Some(e) = doc.entries.get_mut(k) {
            e.used = generation;
        }
    }
    if doc.entries.len() > keep {
        let mut by_use: Vec<(u64, String)> = doc
            .entries
            .iter()
            .map(|(k, e)| (e.used, k.clone()))
            .collect();
        by_use.sort_unstable_by(|a, b| b.cmp(a));
        for (_, k) in by_use.into_iter().skip(keep) {
            doc.entries.remove(&k);
        }
    }
    serde_json::to_vec(doc).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Runner

#[derive(Debug, Clone)]
pub struct RunnerOptions {
    pub concurrency: usize,
    pub retries: u32,
    pub backoff: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            retries: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub grade: Grade,
    pub cached: bool,
    pub attempts: u32,
}

/// Grades every request; results in request order. Cached grades are looked up once for
/// the whole batch and the new ones written back once ([`GradeCache::lookup`],
/// [`GradeCache::store`]).
pub async fn judge_all(
    judge: Arc<dyn Judge>,
    cache: Option<GradeCache>,
    requests: Vec<GradeRequest>,
    opts: &RunnerOptions,
) -> Vec<Result<Judged, JudgeError>> {
    let sem = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let refused_key = Arc::new(AtomicBool::new(false));
    let cache = cache.filter(|_| judge.cacheable());
    let keys: Vec<String> = match &cache {
        Some(_) => requests
            .iter()
            .map(|r| GradeCache::key(&*judge, r))
            .collect(),
        None => Vec::new(),
    };
    let lookup = match &cache {
        Some(c) => Some(c.lookup(&*judge, &requests, &keys).await),
        None => None,
    };
    let n = requests.len();
    let mut out: Vec<Option<Result<Judged, JudgeError>>> = vec![None; n];
    let mut set = tokio::task::JoinSet::new();
    for (i, req) in requests.into_iter().enumerate() {
        if let Some(grade) = keys
            .get(i)
            .and_then(|k| lookup.as_ref().and_then(|l| l.hits.get(k)))
        {
            out[i] = Some(Ok(Judged {
                grade: grade.clone(),
                cached: true,
                attempts: 0,
            }));
            continue;
        }
        let (judge, sem, refused_key, opts) = (
            judge.clone(),
            sem.clone(),
            refused_key.clone(),
            opts.clone(),
        );
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let mut attempts = 0;
            let result = loop {
                if refused_key.load(Ordering::Relaxed) {
                    break Err(JudgeError::Auth("the key was refused for an earlier item".into()));
                }
                attempts += 1;
                match judge.grade(&req).await {
                    Ok(g) => break Ok(g),
                    Err(e) if e.is_retryable() && attempts <= opts.retries => {
                        let wait = opts.backoff * 2u32.saturating_pow(attempts - 1);
                        tracing::debug!(error = %e, attempt = attempts, "judge call failed, retrying");
                        tokio::time::sleep(wait).await;
                    }
                    Err(e) => {
                        if matches!(e, JudgeError::Auth(_)) {
                            refused_key.store(true, Ordering::Relaxed);
                        }
                        break Err(e);
                    }
                }
            };
            (i, result.map(|grade| Judged { grade, cached: false, attempts }))
        });
    }
    let mut new = Vec::new();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined {
            if let (Ok(j), Some(k)) = (&r, keys.get(i)) {
                new.push((k.clone(), j.grade.clone()));
            }
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(r);
            }
        }
    }
    if let (Some(c), Some(l)) = (&cache, lookup) {
        c.store(l, &new).await;
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| Err(JudgeError::Unreachable("judge task did not finish".into())))
        })
        .collect()
}

/// Builds the judge named `name` (`local`, `gemini`, `openai`). The API key is `key` when
/// given (a deployment reads it from a secret store), else the environment's
/// (`GEMINI_API_KEY`, `OPENAI_API_KEY`). The error says what is missing and never contains
/// a key.
pub fn build(
    name: &str,
    url: Option<&str>,
    model: Option<&str>,
    key: Option<&ApiKey>,
    timeout: Duration,
) -> Result<Arc<dyn Judge>, String> {
    let key = |var: &'static str| match key {
        Some(k) => Ok(k.clone()),
        None => std::env::var(var)
            .ok()
            .and_then(ApiKey::new)
            .ok_or_else(|| format!("the {name} judge needs an API key: set {var}")),
    };
    match name {
        "local" => Ok(Arc::new(LocalJudge)),
        "gemini" => GeminiJudge::new(url, model, key("GEMINI_API_KEY")?, timeout)
            .map(|j| Arc::new(j) as Arc<dyn Judge>)
            .map_err(|e| e.to_string()),
        "openai" => OpenAiJudge::new(url, model, key("OPENAI_API_KEY")?, timeout)
            .map(|j| Arc::new(j) as Arc<dyn Judge>)
            .map_err(|e| e.to_string()),
        other => Err(format!("unknown judge {other:?} (local, gemini, openai)")),
    }
}

/// USD per million input and output tokens for models whose list price is known to vaia;
/// others report tokens without a cost unless a price is configured.
pub fn list_price(judge: &str, model: &str) -> Option<(f64, f64)> {
    match (judge, model) {
        ("local", _) => Some((0.0, 0.0)),
        ("gemini", "gemini-2.5-flash") => Some((0.30, 2.50)),
        ("gemini", "gemini-2.5-flash-lite") => Some((0.10, 0.40)),
        ("openai", "gpt-4o-mini") => Some((0.15, 0.60)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn token_f1_is_documented_scoring() {
        assert_eq!(
            token_f1(
                "Returns are accepted within 30 days.",
                "Returns are accepted within 30 days"
            ),
            1.0
        );
        assert_eq!(
            token_f1("I am not sure.", "Returns are accepted within 30 days"),
            0.0
        );
        assert_eq!(token_f1("", "x"), 0.0);
        let partial = token_f1(
            "Returns accepted within 14 days",
            "Returns are accepted within 30 days",
        );
        assert!(partial > 0.5 && partial < 1.0, "{partial}");
    }

    #[test]
    fn keys_never_show() {
        let k = ApiKey::new("sk-secret-123").unwrap();
        assert_eq!(format!("{k:?}"), "ApiKey(***)");
        assert_eq!(k.scrub("bad key sk-secret-123!"), "bad key ***!");
        assert!(ApiKey::new("  ").is_none());
    }

    #[tokio::test]
    async fn cache_round_trips_and_keys_by_judge_model_prompt_answer() {
        let dir = tempfile::tempdir().unwrap();
        let c = GradeCache::new(dir.path());
        let req = GradeRequest {
            input: "q".into(),
            reference: "r".into(),
            answer: "a".into(),
        };
        let k = GradeCache::key(&LocalJudge, &req);
        let other = GradeRequest {
            answer: "b".into(),
            ..req.clone()
        };
        assert_ne!(k, GradeCache::key(&LocalJudge, &other));
        assert!(c.get(&k).await.is_none());
        let g = Grade {
            score: 0.5,
            reason: "x".into(),
            usage: Usage {
                input_tokens: 3,
                output_tokens: 4,
            },
        };
        c.put(&k, &g).await;
        assert_eq!(c.get(&k).await, Some(g));
    }

    /// A cacheable judge that counts its calls and scores by answer length.
    struct Counting(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl Judge for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn model(&self) -> &str {
            "m"
        }
        async fn grade(&self, req: &GradeRequest) -> Result<Grade, JudgeError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Grade {
                score: (req.answer.len() % 10) as f64 / 10.0,
                reason: format!("graded {}", req.answer),
                usage: Usage::default(),
            })
        }
    }

    fn requests(answers: &[&str]) -> Vec<GradeRequest> {
        answers
            .iter()
            .enumerate()
            .map(|(i, a)| GradeRequest {
                input: format!("q{i}"),
                reference: format!("r{i}"),
                answer: (*a).to_string(),
            })
            .collect()
    }

    /// Blob-store requests: (gets, puts) made so far.
    struct CountingBlobs {
        inner: vaia_core::memory::MemoryBlobStore,
        gets: std::sync::atomic::AtomicUsize,
        puts: std::sync::atomic::AtomicUsize,
    }

    impl CountingBlobs {
        fn new() -> Self {
            Self {
                inner: vaia_core::memory::MemoryBlobStore::new(None),
                gets: Default::default(),
                puts: Default::default(),
            }
        }
    }

    #[async_trait]
    impl vaia_core::ports::BlobStore for CountingBlobs {
        async fn put(
            &self,
            key: &vaia_core::BlobKey,
            bytes: &[u8],
        ) -> vaia_core::ports::PortResult<vaia_core::messages::ObjectCreated> {
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.inner.put(key, bytes).await
        }
        async fn put_if_absent(
            &self,
            key: &vaia_core::BlobKey,
            bytes: &[u8],
        ) -> vaia_core::ports::PortResult<Option<vaia_core::messages::ObjectCreated>> {
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.inner.put_if_absent(key, bytes).await
        }
        async fn put_if_match(
            &self,
            key: &vaia_core::BlobKey,
            bytes: &[u8],
            etag: &str,
        ) -> vaia_core::ports::PortResult<Option<vaia_core::messages::ObjectCreated>> {
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.inner.put_if_match(key, bytes, etag).await
        }
        async fn get(
            &self,
            key: &vaia_core::BlobKey,
        ) -> vaia_core::ports::PortResult<Option<Vec<u8>>> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.inner.get(key).await
        }
        async fn get_at_most(
            &self,
            key: &vaia_core::BlobKey,
            limit: u64,
        ) -> vaia_core::ports::PortResult<Option<vaia_core::ports::Bounded>> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.inner.get_at_most(key, limit).await
        }
        async fn get_tagged(
            &self,
            key: &vaia_core::BlobKey,
        ) -> vaia_core::ports::PortResult<Option<vaia_core::ports::Tagged>> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.inner.get_tagged(key).await
        }
        async fn list(
            &self,
            prefix: &str,
        ) -> vaia_core::ports::PortResult<Vec<vaia_core::ports::BlobMeta>> {
            self.inner.list(prefix).await
        }
    }

    #[tokio::test]
    async fn the_blob_store_cache_is_one_document_read_once_and_written_once_per_batch() {
        let blobs = Arc::new(CountingBlobs::new());
        let cache = GradeCache::in_blob_store(blobs.clone());
        let judge = Arc::new(Counting(Default::default()));
        let opts = RunnerOptions::default();
        let first = judge_all(
            judge.clone(),
            Some(cache.clone()),
            requests(&["a", "bb", "ccc"]),
            &opts,
        )
        .await;
        assert!(first.iter().all(|r| !r.as_ref().unwrap().cached));
        assert_eq!(judge.0.load(Ordering::SeqCst), 3);
        assert_eq!(
            (
                blobs.gets.load(Ordering::SeqCst),
                blobs.puts.load(Ordering::SeqCst)
            ),
            (1, 1)
        );

        // The next version changed one answer: one call, two hits, one read and one write.
        let second = judge_all(
            judge.clone(),
            Some(cache.clone()),
            requests(&["a", "bb", "dddd"]),
            &opts,
        )
        .await;
        let cached: Vec<bool> = second.iter().map(|r| r.as_ref().unwrap().cached).collect();
        assert_eq!(cached, [true, true, false]);
        assert_eq!(second[2].as_ref().unwrap().grade.reason, "graded dddd");
        assert_eq!(judge.0.load(Ordering::SeqCst), 4);
        assert_eq!(
            (
                blobs.gets.load(Ordering::SeqCst),
                blobs.puts.load(Ordering::SeqCst)
            ),
            (2, 2)
        );

        // All hits: read once, nothing written.
        let third = judge_all(
            judge.clone(),
            Some(cache.clone()),
            requests(&["a", "bb", "ccc"]),
            &opts,
        )
        .await;
        assert!(third.iter().all(|r| r.as_ref().unwrap().cached));
        assert_eq!(
            (
                blobs.gets.load(Ordering::SeqCst),
                blobs.puts.load(Ordering::SeqCst)
            ),
            (3, 2)
        );
        let stored = vaia_core::ports::BlobStore::list(&blobs.inner, "cache/judge/")
            .await
            .unwrap();
        assert_eq!(stored.len(), 1, "one document for the context");

        // Another golden set is another context, another document.
        let other: Vec<GradeRequest> = requests(&["a"])
            .into_iter()
            .map(|r| GradeRequest {
                reference: "other".into(),
                ..r
            })
            .collect();
        let r = judge_all(judge.clone(), Some(cache), other, &opts).await;
        assert!(
            !r[0].as_ref().unwrap().cached,
            "a grade is reused only in its context"
        );
        let stored = vaia_core::ports::BlobStore::list(&blobs.inner, "cache/judge/")
            .await
            .unwrap();
        assert_eq!(stored.len(), 2);
    }

    #[tokio::test]
    async fn racing_writers_merge_and_the_document_keeps_the_recently_used_grades() {
        let blobs = Arc::new(vaia_core::memory::MemoryBlobStore::new(None));
        let cache = GradeCache::in_blob_store(blobs.clone());
        let judge = Counting(Default::default());
        let g = |s: f64| Grade {
            score: s,
            reason: "r".into(),
            usage: Usage::default(),
        };
        // Two runs read the (empty) document, then both write: neither loses its grade.
        let a = requests(&["x"]);
        let b = requests(&["y"]);
        let (ka, kb) = (
            GradeCache::key(&judge, &a[0]),
            GradeCache::key(&judge, &b[0]),
        );
        let la = cache.lookup(&judge, &a, std::slice::from_ref(&ka)).await;
        let lb = cache.lookup(&judge, &b, std::slice::from_ref(&kb)).await;
        cache.store(la, &[(ka.clone(), g(0.1))]).await;
        cache.store(lb, &[(kb.clone(), g(0.2))]).await;
        let both = cache.lookup(&judge, &a, &[ka.clone(), kb.clone()]).await;
        assert_eq!(both.hits.get(&ka), Some(&g(0.1)));
        assert_eq!(both.hits.get(&kb), Some(&g(0.2)));

        // One golden item keeps KEEP_PER_ITEM grades, the most recently used.
        let n = GradeCache::KEEP_PER_ITEM + 3;
        let mut keys = Vec::new();
        for i in 0..n {
            let r = requests(&[&format!("answer {i}")]);
            let k = GradeCache::key(&judge, &r[0]);
            let l = cache.lookup(&judge, &r, std::slice::from_ref(&k)).await;
            cache.store(l, &[(k.clone(), g(0.5))]).await;
            keys.push(k);
        }
        let r = requests(&["answer 0"]);
        let l = cache.lookup(&judge, &r, &keys).await;
        let kept: Vec<bool> = keys.iter().map(|k| l.hits.contains_key(k)).collect();
        assert_eq!(
            kept.iter().filter(|k| **k).count(),
            GradeCache::KEEP_PER_ITEM
        );
        assert!(kept[n - 1] && !kept[0], "the oldest went first: {kept:?}");
    }
}
