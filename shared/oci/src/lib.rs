//! The container registry adapter: [`vaia_core::delivery::ImageRegistry`] over the OCI
//! distribution API, so that ECR, GHCR, Docker Hub and any compliant registry work. Tagging
//! is `GET /v2/<name>/manifests/<digest>` with every manifest media type in `Accept` (the
//! body is checked against the digest), then `PUT /v2/<name>/manifests/<tag>` with that body
//! and its `Content-Type`. Credentials: none, basic (ECR's token from its token API is basic
//! `AWS:<token>`), or a bearer token; a `WWW-Authenticate: Bearer` challenge (GHCR, Docker
//! Hub) is answered by fetching a token from its realm with the basic credentials. Secrets
//! never appear in errors or logs. Credentials that expire (ECR's) come through
//! [`LoginRegistry`], which logs in again before they do.

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use std::time::Duration;
use vaia_core::delivery::{ImageRegistry, RegistryLogins, TagError};
use vaia_core::ports::Clock;
use vaia_core::run::Timestamp;
use vaia_core::{ImageDigest, ImageName, ImageTag};

/// Every manifest media type vaia re-tags, most specific first.
pub const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// How to authenticate to a registry.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// A registry reached over HTTP(S).
#[derive(Debug, Clone)]
pub struct OciRegistry {
    http: reqwest::Client,
    credentials: Credentials,
    /// Hosts spoken to over plain HTTP (a registry on 127.0.0.1 in tests, a local mirror).
    plain_http: Vec<String>,
}

impl OciRegistry {
    pub fn new(credentials: Credentials, timeout: Duration) -> Result<Self, TagError> {
        let http = vaia_gates::http::client_builder()
            .timeout(timeout)
            .build()
            .map_err(|e| TagError::Refused(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            credentials,
            plain_http: Vec::new(),
        })
    }

    /// Speak plain HTTP to `host` (`127.0.0.1:5000`): never for a registry across a network.
    pub fn plain_http(mut self, host: impl Into<String>) -> Self {
        self.plain_http.push(host.into());
        self
    }

    fn base(&self, image: &ImageName) -> String {
        let scheme = if self.plain_http.iter().any(|h| h == image.host()) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/{}", image.host(), image.repository())
    }

    fn authorize(
        &self,
        req: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        match (token, &self.credentials) {
            (Some(t), _) => req.bearer_auth(t),
            (None, Credentials::Basic { username, password }) => {
                req.basic_auth(username, Some(password))
            }
            (None, Credentials::Bearer(t)) => req.bearer_auth(t),
            (None, Credentials::Anonymous) => req,
        }
    }

    /// A bearer token for `image` from the realm of a `WWW-Authenticate: Bearer` challenge.
    async fn token(&self, image: &ImageName, challenge: &str) -> Result<String, TagError> {
        let params = parse_challenge(challenge);
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                TagError::Refused(format!(
                    "{}: a bearer challenge without a realm",
                    image.host()
                ))
            })?;
        let mut query: Vec<(String, String)> =
            params.into_iter().filter(|(k, _)| k == "service").collect();
        query.push((
            "scope".into(),
            format!("repository:{}:pull,push", image.repository()),
        ));
        let url = reqwest::Url::parse_with_params(&realm, &query).map_err(|e| {
            TagError::Refused(format!("{}: bad token realm {realm:?}: {e}", image.host()))
        })?;
        let mut req = self.http.get(url);
        if let Credentials::Basic { username, password } = &self.credentials {
            req = req.basic_auth(username, Some(password));
        }
        let res = req.send().await.map_err(|e| unavailable(&realm, &e))?;
        let status = res.status();
        if !status.is_success() {
            return Err(classify(status, &format!("token from {realm}")));
        }
        let body: serde_json::Value = res.json().await.map_err(|e| {
            TagError::Unavailable(format!("token from {realm}: {}", e.without_url()))
        })?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| TagError::Refused(format!("token from {realm}: no token in the answer")))
    }

    async fn send(
        &self,
        image: &ImageName,
        build: impl Fn(Option<&str>) -> reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, TagError> {
        let res = build(None)
            .send()
            .await
            .map_err(|e| unavailable(what, &e))?;
        if res.status() != StatusCode::UNAUTHORIZED {
            return Ok(res);
        }
        let challenge = header(res.headers(), WWW_AUTHENTICATE);
        if !challenge.to_ascii_lowercase().starts_with("bearer ") {
            return Ok(res);
        }
        let token = self.token(image, &challenge).await?;
        build(Some(&token))
            .send()
            .await
            .map_err(|e| unavailable(what, &e))
    }
}

#[async_trait::async_trait]
impl ImageRegistry for OciRegistry {
    async fn tag(
        &self,
        image: &ImageName,
        digest: &ImageDigest,
        tag: &ImageTag,
    ) -> Result<(), TagError> {
        let get_url = format!("{}/manifests/{digest}", self.base(image));
        let what = format!("GET {image}@{digest}");
        let res = self
            .send(
                image,
                |token| {
                    self.authorize(self.http.get(&get_url), token)
                        .header(ACCEPT, MANIFEST_TYPES.join(", "))
                },
                &what,
            )
            .await?;
        let status = res.status();
        if !status.is_success() {
            return Err(classify(status, &what));
        }
        let media_type = header(res.headers(), CONTENT_TYPE);
        let media_type = media_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        if !MANIFEST_TYPES.contains(&media_type.as_str()) {
            return Err(TagError::Refused(format!(
                "{what}: unexpected media type {media_type:?}"
            )));
        }
        let body = res
            .bytes()
            .await
            .map_err(|e| TagError::Unavailable(format!("{what}: {}", e.without_url())))?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if actual != digest.as_str() {
            return Err(TagError::Refused(format!(
                "{what}: the registry answered a manifest whose digest is {actual}"
            )));
        }
        let put_url = format!("{}/manifests/{tag}", self.base(image));
        let what = format!("PUT {image}:{tag}");
        let res = self
            .send(
                image,
                |token| {
                    self.authorize(self.http.put(&put_url), token)
                        .header(CONTENT_TYPE, media_type.as_str())
                        .body(body.clone())
                },
                &what,
            )
            .await?;
        let status = res.status();
        if !status.is_success() {
            return Err(classify(status, &what));
        }
        let stored = header(res.headers(), "docker-content-digest");
        if !stored.is_empty() && stored != digest.as_str() {
            return Err(TagError::Refused(format!(
                "{what}: the registry stored digest {stored}, not {digest}"
            )));
        }
        tracing::info!(%image, %tag, %digest, "tagged");
        Ok(())
    }
}

/// A registry whose credentials expire: a login per host from
/// [`RegistryLogins`](vaia_core::delivery::RegistryLogins) (ECR's token API on AWS), kept
/// until [`LoginRegistry::REFRESH_MARGIN`] before it expires, then renewed. A refusal drops
/// the login, so the next tagging logs in afresh (a token revoked early).
pub struct LoginRegistry {
    logins: std::sync::Arc<dyn RegistryLogins>,
    clock: std::sync::Arc<dyn Clock>,
    timeout: Duration,
    plain_http: Vec<String>,
    current: tokio::sync::Mutex<std::collections::HashMap<String, (OciRegistry, Timestamp)>>,
}

impl std::fmt::Debug for LoginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginRegistry")
    }
}

impl LoginRegistry {
    /// How long before its expiry a login is renewed (ECR's last 12 hours; a tagging takes
    /// seconds, so a login used now is valid for the whole of it).
    pub const REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);

    pub fn new(
        logins: std::sync::Arc<dyn RegistryLogins>,
        clock: std::sync::Arc<dyn Clock>,
        timeout: Duration,
    ) -> Self {
        Self {
            logins,
            clock,
            timeout,
            plain_http: Vec::new(),
            current: tokio::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Speak plain HTTP to `host` (see [`OciRegistry::plain_http`]).
    pub fn plain_http(mut self, host: impl Into<String>) -> Self {
        self.plain_http.push(host.into());
        self
    }

    /// The registry for `host` with a login valid beyond the margin, logging in if needed.
    async fn registry(&self, host: &str) -> Result<OciRegistry, TagError> {
        let mut current = self.current.lock().await;
        let now = self.clock.now();
        let margin = chrono::Duration::from_std(Self::REFRESH_MARGIN)
            .unwrap_or_else(|_| chrono::Duration::zero());
        if let Some((registry, expires_at)) = current.get(host) {
            if *expires_at - margin > now {
                return Ok(registry.clone());
            }
        }
        let login = self.logins.login(host).await?;
        tracing::info!(%host, expires_at = %login.expires_at, "registry login renewed");
        let mut registry = OciRegistry::new(
            Credentials::Basic {
                username: login.username,
                password: login.password,
            },
            self.timeout,
        )?;
        for h in &self.plain_http {
            registry = registry.plain_http(h.clone());
        }
        current.insert(host.to_string(), (registry.clone(), login.expires_at));
        Ok(registry)
    }
}

#[async_trait::async_trait]
impl ImageRegistry for LoginRegistry {
    async fn tag(
        &self,
        image: &ImageName,
        digest: &ImageDigest,
        tag: &ImageTag,
    ) -> Result<(), TagError> {
        let registry = self.registry(image.host()).await?;
        let result = registry.tag(image, digest, tag).await;
        if matches!(result, Err(TagError::Refused(_))) {
            self.current.lock().await.remove(image.host());
        }
        result
    }
}

fn header(headers: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn unavailable(what: &str, e: &reqwest::Error) -> TagError {
    // Without the URL: a realm's query could carry more than we want in a log.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    TagError::Unavailable(format!("{what}: {kind}"))
}

fn classify(status: StatusCode, what: &str) -> TagError {
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        TagError::Unavailable(format!("{what}: {status}"))
    } else {
        TagError::Refused(format!("{what}: {status}"))
    }
}

/// `Bearer realm="...",service="...",scope="..."` as key/value pairs.
fn parse_challenge(challenge: &str) -> Vec<(String, String)> {
    let rest = challenge.split_once(' ').map(|x| x.1).unwrap_or_default();
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars
            .by_ref()
            .skip_while(|c| *c == ',' || c.is_whitespace())
            .take_while(|c| *c != '=')
            .collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                value.push(c);
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        out.push((key.trim().to_string(), value));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use vaia_core::delivery::RegistryLogin;
    use vaia_core::memory::ManualClock;

    struct CountingLogins {
        clock: Arc<ManualClock>,
        calls: AtomicU32,
    }

    #[async_trait::async_trait]
    impl RegistryLogins for CountingLogins {
        async fn login(&self, host: &str) -> Result<RegistryLogin, TagError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            assert!(host.starts_with("127.0.0.1:"), "{host}");
            Ok(RegistryLogin {
                username: "AWS".into(),
                password: "pw".into(),
                expires_at: self.clock.now() + chrono::Duration::hours(12),
            })
        }
    }

    /// A registry on 127.0.0.1 that answers every request 401 with no bearer challenge.
    async fn refusing_registry() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = socket
                        .write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                });
            }
        });
        host
    }

    #[tokio::test]
    async fn a_refused_login_is_dropped_and_renewed_next_time() {
        let host = refusing_registry().await;
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let logins = Arc::new(CountingLogins {
            clock: clock.clone(),
            calls: AtomicU32::new(0),
        });
        let registry = LoginRegistry::new(logins.clone(), clock, Duration::from_secs(2))
            .plain_http(host.clone());
        let image = ImageName::new(format!("{host}/acme/agent")).unwrap();
        let digest = ImageDigest::new(format!("sha256:{}", "b".repeat(64))).unwrap();
        let tag = ImageTag::new("prod").unwrap();
        for expected in 1..=2 {
            match registry.tag(&image, &digest, &tag).await {
                Err(TagError::Refused(m)) => assert!(m.contains("401"), "{m}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(logins.calls.load(Ordering::SeqCst), expected);
        }
    }

    #[tokio::test]
    async fn logins_are_kept_until_shortly_before_they_expire() {
        // Nothing listens on the port: every tagging is Unavailable, after its login.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("127.0.0.1:{port}");
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let logins = Arc::new(CountingLogins {
            clock: clock.clone(),
            calls: AtomicU32::new(0),
        });
        let registry = LoginRegistry::new(logins.clone(), clock.clone(), Duration::from_secs(2))
            .plain_http(host.clone());
        let image = ImageName::new(format!("{host}/acme/agent")).unwrap();
        let digest = ImageDigest::new(format!("sha256:{}", "b".repeat(64))).unwrap();
        let tag = ImageTag::new("prod").unwrap();
        let tag_once = || registry.tag(&image, &digest, &tag);
        assert!(matches!(tag_once().await, Err(TagError::Unavailable(_))));
        assert!(matches!(tag_once().await, Err(TagError::Unavailable(_))));
        assert_eq!(
            logins.calls.load(Ordering::SeqCst),
            1,
            "the login is reused"
        );
        // 11 h 50 min later the 12-hour login is within the margin: renewed.
        clock.advance(Duration::from_secs(11 * 3600 + 50 * 60));
        assert!(matches!(tag_once().await, Err(TagError::Unavailable(_))));
        assert_eq!(
            logins.calls.load(Ordering::SeqCst),
            2,
            "renewed before expiry"
        );
        clock.advance(Duration::from_secs(3600));
        assert!(matches!(tag_once().await, Err(TagError::Unavailable(_))));
        assert_eq!(
            logins.calls.load(Ordering::SeqCst),
            2,
            "the new one still holds"
        );
    }

    #[test]
    fn bearer_challenges_are_parsed() {
        let p = parse_challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:acme/agent:pull""#,
        );
        assert_eq!(
            p,
            vec![
                ("realm".to_string(), "https://ghcr.io/token".to_string()),
                ("service".to_string(), "ghcr.io".to_string()),
                (
                    "scope".to_string(),
                    "repository:acme/agent:pull".to_string()
                ),
            ]
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = Credentials::Basic {
            username: "AWS".into(),
            password: "s3cr3t".into(),
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(!format!("{:?}", Credentials::Bearer("tok3n".into())).contains("tok3n"));
    }
}
