//! Token authentication of the API: who may read, upload evidence or operate.
//!
//! Tokens are configured as (name, roles, sha256 of the token) — the token itself is never
//! stored — either in `VAIA_API_TOKENS` (`name:role+role:sha256hex`, entries separated by
//! `;` or newlines) or in a TOML file of `[[tokens]]` tables (`name`, `roles`, `sha256`).
//! A request presents its token as `Authorization: Bearer <token>`, or — for the WebSocket
//! feed, where browsers cannot set headers — as a `Sec-WebSocket-Protocol` entry
//! `bearer.<token>`. The presented token is hashed and compared with every configured hash
//! in constant time ([`subtle`]).
//!
//! Which role a request needs is decided by [`required_role`] from its method and path:
//! reads under `/api` and `/metrics` need `read`, `PUT /api/evidence/...` needs `upload`,
//! every other write under `/api` needs `operate`. The GitHub webhook (HMAC-signed), the
//! Alertmanager hook (its own bearer token), `/healthz`, `/api/openapi.json` and the dashboard's static files need none.
//!
//! No token → 401, a token lacking the role → 403, both as `{"error": ...}` and logged with
//! the token's name when known, never the token.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;

use crate::ApiError;

/// The environment variable holding inline token entries.
pub const TOKENS_ENV: &str = "VAIA_API_TOKENS";

/// The `Sec-WebSocket-Protocol` prefix that carries a token.
pub const WS_PROTOCOL_PREFIX: &str = "bearer.";

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs, registry, metrics, the feed.
    Read,
    /// Evidence uploads.
    Upload,
    /// Approve, rollback, retry.
    Operate,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Upload => "upload",
            Role::Operate => "operate",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = AuthConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "read" => Ok(Role::Read),
            "upload" => Ok(Role::Upload),
            "operate" => Ok(Role::Operate),
            other => Err(AuthConfigError::Role(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthConfigError {
    #[error("unknown role {0:?} (expected read, upload or operate)")]
    Role(String),
    #[error("{at}: {msg}")]
    Entry { at: String, msg: String },
    #[error("{at}: {msg}")]
    Toml { at: String, msg: String },
}

/// One configured token.
#[derive(Clone)]
pub struct TokenEntry {
    pub name: String,
    pub roles: BTreeSet<Role>,
    sha256: [u8; 32],
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEntry")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl TokenEntry {
    /// `sha256_hex` is the token's SHA-256 as 64 hex digits.
    pub fn new(
        name: &str,
        roles: impl IntoIterator<Item = Role>,
        sha256_hex: &str,
    ) -> Result<Self, String> {
        let name = name.trim();
        if name.is_empty() {
            return Err("name is empty".into());
        }
        let roles: BTreeSet<Role> = roles.into_iter().collect();
        if roles.is_empty() {
            return Err(format!("token {name:?} has no role"));
        }
        let bytes = hex::decode(sha256_hex.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                format!("token {name:?}: sha256 must be 64 hex digits (the token's SHA-256, not the token)")
            })?;
        Ok(Self {
            name: name.to_string(),
            roles,
            sha256: bytes,
        })
    }
}

/// The SHA-256 of a token as hex: what the configuration stores.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The configured tokens. Empty means authentication is off (the local stack on loopback).
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    tokens: Vec<TokenFileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFileEntry {
    name: String,
    roles: Vec<Role>,
    sha256: String,
}

impl Tokens {
    pub fn new(entries: Vec<TokenEntry>) -> Self {
        Self { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries `name:role+role:sha256hex` separated by `;` or newlines (`source` names
    /// where they came from in errors).
    pub fn parse_inline(source: &str, text: &str) -> Result<Self, AuthConfigError> {
        let mut entries = Vec::new();
        for (i, raw) in text.split([';', '\n']).enumerate() {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let at = format!("{source} entry {}", i + 1);
            let parts: Vec<&str> = raw.split(':').collect();
            let [name, roles, hash] = parts.as_slice() else {
                return Err(AuthConfigError::Entry {
                    at,
                    msg: "expected name:role[+role]:sha256hex".into(),
                });
            };
            let roles = roles
                .split(['+', ','])
                .map(str::parse)
                .collect::<Result<Vec<Role>, _>>()
                .map_err(|e| AuthConfigError::Entry {
                    at: at.clone(),
                    msg: e.to_string(),
                })?;
            let entry = TokenEntry::new(name, roles, hash)
                .map_err(|msg| AuthConfigError::Entry { at, msg })?;
            entries.push(entry);
        }
        Ok(Self { entries })
    }

    /// A TOML document of `[[tokens]]` with `name`, `roles` and `sha256`.
    pub fn parse_toml(source: &str, text: &str) -> Result<Self, AuthConfigError> {
        let file: TokenFile = toml::from_str(text).map_err(|e| AuthConfigError::Toml {
            at: source.to_string(),
            msg: e.to_string(),
        })?;
        let mut entries = Vec::new();
        for (i, t) in file.tokens.into_iter().enumerate() {
            let entry = TokenEntry::new(&t.name, t.roles, &t.sha256).map_err(|msg| {
                AuthConfigError::Entry {
                    at: format!("{source} tokens[{i}]"),
                    msg,
                }
            })?;
            entries.push(entry);
        }
        Ok(Self { entries })
    }

    /// From [`TOKENS_ENV`] when set (empty when not).
    pub fn from_env() -> Result<Self, AuthConfigError> {
        match std::env::var(TOKENS_ENV) {
            Ok(v) => Self::parse_inline(TOKENS_ENV, &v),
            Err(_) => Ok(Self::default()),
        }
    }

    /// Adds the entries of `other`.
    pub fn extend(&mut self, other: Tokens) {
        self.entries.extend(other.entries);
    }

    /// The entry whose hash matches `token`, comparing every entry in constant time.
    pub fn find(&self, token: &str) -> Option<&TokenEntry> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.sha256.ct_eq(&digest)) && found.is_none() {
                found = Some(e);
            }
        }
        found
    }
}

/// The role a request needs, or `None` when it needs no token.
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    // The GitHub webhook (HMAC) and `/hooks/alertmanager` (its own bearer token)
    // authenticate themselves.
    if path == "/api/openapi.json"
        || path == "/healthz"
        || path.starts_with("/webhooks/")
        || path.starts_with("/hooks/")
    {
        return None;
    }
    let api = path == "/api" || path.starts_with("/api/");
    if !api && path != "/metrics" {
        // The dashboard's static files: no data in them.
        return None;
    }
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        Some(Role::Read)
    } else if method == Method::PUT && path.starts_with("/api/evidence/") {
        Some(Role::Upload)
    } else {
        Some(Role::Operate)
    }
}

/// The token a request presents, if any.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(t.trim().to_string());
        }
    }
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            p.trim()
                .strip_prefix(WS_PROTOCOL_PREFIX)
                .map(str::to_string)
        })
}

/// Who made a request, once authenticated; inserted into the request's extensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The token's name, or `None` when authentication is off.
    pub name: Option<String>,
}

/// The axum middleware: `axum::middleware::from_fn_with_state(Arc<Tokens>, require_token)`.
/// With no tokens configured every request passes (as [`Caller`] with no name).
pub async fn require_token(
    State(tokens): State<Arc<Tokens>>,
    mut req: Request,
    next: Next,
) -> Response {
    if tokens.is_empty() {
        req.extensions_mut().insert(Caller { name: None });
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let Some(role) = required_role(&method, &path) else {
        return next.run(req).await;
    };
    match authorize(&tokens, role, &method, &path, req.headers()) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Checks that `headers` present a configured token with `role` for `method path` (the
/// check of [`require_token`], also used by the AWS `realtime` function's `$connect`):
/// no token or an unknown one → 401, a token lacking the role → 403, logged with the
/// token's name when known, never the token. `tokens` must not be empty (no tokens: no
/// authentication, the caller decides).
pub fn authorize(
    tokens: &Tokens,
    role: Role,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let Some(token) = presented_token(headers) else {
        tracing::warn!(%method, %path, "refused: no token");
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            format!(
                "{method} {path} needs a token with role {role} (Authorization: Bearer <token>)"
            ),
        ));
    };
    let Some(entry) = tokens.find(&token) else {
        tracing::warn!(%method, %path, "refused: unknown token");
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "the token is not valid".into(),
        ));
    };
    if !entry.roles.contains(&role) {
        tracing::warn!(%method, %path, token = %entry.name, needed = %role, "refused: missing role");
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "token {:?} lacks role {role} needed for {method} {path}",
                entry.name
            ),
        ));
    }
    Ok(Caller {
        name: Some(entry.name.clone()),
    })
}

/// Wraps `router` in [`require_token`].
pub fn layer(router: axum::Router, tokens: Arc<Tokens>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(tokens, require_token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::{get, post, put};
    use tower::ServiceExt;

    fn tokens() -> Arc<Tokens> {
        let spec = format!(
            "reader:read:{};ci:upload:{};ops:read+operate:{}",
            hash_token("r-secret"),
            hash_token("u-secret"),
            hash_token("o-secret")
        );
        Arc::new(Tokens::parse_inline("test", &spec).unwrap())
    }

    fn app(t: Arc<Tokens>) -> axum::Router {
        let r = axum::Router::new()
            .route("/api/runs", get(|| async { "runs" }))
            .route("/api/runs/{id}/rollback", post(|| async { "ok" }))
            .route("/api/evidence/{a}", put(|| async { "ok" }))
            .route("/webhooks/github", post(|| async { "hook" }))
            .route("/metrics", get(|| async { "m" }))
            .route("/", get(|| async { "index" }));
        layer(r, t)
    }

    async fn call(
        app: &axum::Router,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> (u16, String) {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let res = app
            .clone()
            .oneshot(b.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn roles_decide_access() {
        let app = app(tokens());
        assert_eq!(call(&app, "GET", "/api/runs", None).await.0, 401);
        assert_eq!(call(&app, "GET", "/api/runs", Some("nope")).await.0, 401);
        assert_eq!(
            call(&app, "GET", "/api/runs", Some("r-secret")).await.0,
            200
        );
        assert_eq!(call(&app, "GET", "/metrics", None).await.0, 401);
        assert_eq!(call(&app, "GET", "/metrics", Some("r-secret")).await.0, 200);
        let (s, body) = call(&app, "POST", "/api/runs/x/rollback", Some("r-secret")).await;
        assert_eq!(s, 403);
        assert!(body.contains("\"error\""), "{body}");
        assert!(body.contains("operate"), "{body}");
        assert!(!body.contains("r-secret"), "{body}");
        assert_eq!(
            call(&app, "POST", "/api/runs/x/rollback", Some("o-secret"))
                .await
                .0,
            200
        );
        assert_eq!(
            call(&app, "PUT", "/api/evidence/f", Some("o-secret"))
                .await
                .0,
            403
        );
        assert_eq!(
            call(&app, "PUT", "/api/evidence/f", Some("u-secret"))
                .await
                .0,
            200
        );
        assert_eq!(
            call(&app, "GET", "/api/runs", Some("u-secret")).await.0,
            403
        );
        // HMAC-only and static routes need no token.
        assert_eq!(call(&app, "POST", "/webhooks/github", None).await.0, 200);
        assert_eq!(call(&app, "GET", "/", None).await.0, 200);
    }

    #[tokio::test]
    async fn open_without_tokens() {
        let app = app(Arc::new(Tokens::default()));
        assert_eq!(
            call(&app, "POST", "/api/runs/x/rollback", None).await.0,
            200
        );
    }

    #[tokio::test]
    async fn websocket_protocol_carries_the_token() {
        let app = app(tokens());
        let req = Request::builder()
            .uri("/api/runs")
            .header("sec-websocket-protocol", "vaia, bearer.r-secret")
            .body(Body::empty())
            .unwrap();
        assert_eq!(app.oneshot(req).await.unwrap().status().as_u16(), 200);
    }

    #[test]
    fn config_errors_name_the_entry() {
        let e = Tokens::parse_inline("VAIA_API_TOKENS", "a:read:00;b:write:11").unwrap_err();
        assert!(e.to_string().contains("entry 1"), "{e}");
        let e = Tokens::parse_inline("VAIA_API_TOKENS", &format!("a:admin:{}", hash_token("x")))
            .unwrap_err();
        assert!(e.to_string().contains("admin"), "{e}");
        let e = Tokens::parse_inline("X", "just-a-token").unwrap_err();
        assert!(e.to_string().contains("name:role"), "{e}");
        let toml = format!(
            "[[tokens]]\nname = \"ops\"\nroles = [\"read\", \"operate\"]\nsha256 = \"{}\"\n",
            hash_token("t")
        );
        let t = Tokens::parse_toml("tokens.toml", &toml).unwrap();
        assert_eq!(t.find("t").map(|e| e.name.as_str()), Some("ops"));
        assert!(t.find("u").is_none());
        let e = Tokens::parse_toml(
            "tokens.toml",
            "[[tokens]]\nname = \"x\"\nroles = []\nsha256 = \"\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("tokens.toml tokens[0]"), "{e}");
    }

    #[test]
    fn roles_by_route() {
        assert_eq!(
            required_role(&Method::GET, "/api/registry/x"),
            Some(Role::Read)
        );
        assert_eq!(
            required_role(&Method::POST, "/api/runs/x/retry"),
            Some(Role::Operate)
        );
        assert_eq!(required_role(&Method::GET, "/api/openapi.json"), None);
        assert_eq!(required_role(&Method::GET, "/assets/index.js"), None);
        assert_eq!(required_role(&Method::POST, "/webhooks/github"), None);
        assert_eq!(required_role(&Method::POST, "/hooks/alertmanager"), None);
    }
}
