//! A small HTTP client for a running vaia stack: what `vaia runs`, `vaia evidence upload`
//! and the demo use. It speaks the public API only.

use anyhow::{bail, Context, Result};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::path::Path;
use vaia_core::evidence::{archive, Manifest, ARCHIVE_FILE, MANIFEST_FILE};
use vaia_core::evidence::{DatasetSnapshot, ImageRef};
use vaia_core::{CommitSha, ImageDigest, Repository};

use crate::api::{RunDetail, RunList};

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// The environment variable holding the API token the client presents (see README, API
/// tokens).
pub const TOKEN_ENV: &str = "VAIA_API_TOKEN";

impl Client {
    /// A client presenting the token in `VAIA_API_TOKEN`, if set.
    pub fn new(base: &str) -> Self {
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty());
        Self::with_token(base, token.as_deref())
    }

    /// A client presenting `token` as `Authorization: Bearer` on every request.
    pub fn with_token(base: &str, token: Option<&str>) -> Self {
        vaia_gates::http::install_tls_provider();
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            match reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim())) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    headers.insert(reqwest::header::AUTHORIZATION, v);
                }
                Err(_) => tracing::warn!(
                    "the API token holds characters an HTTP header cannot carry; not sent"
                ),
            }
        }
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap_or_default(),
        }
    }

    /// GET `path` as JSON; a non-2xx answer is an error carrying its status and body.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let res = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = res.status();
        let text = res
            .text()
            .await
            .with_context(|| format!("GET {url}: reading body"))?;
        if !status.is_success() {
            bail!("GET {url}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("GET {url}: unexpected body"))
    }

    /// POST `path` without a body, its answer as JSON; a non-2xx answer is an error carrying
    /// its status and body.
    pub async fn post_for_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let res = self
            .http
            .post(&url)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = res.status();
        let text = res
            .text()
            .await
            .with_context(|| format!("POST {url}: reading body"))?;
        if !status.is_success() {
            bail!("POST {url}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("POST {url}: unexpected body"))
    }

    /// A page of runs; `after` is the `next` of the previous page (URL-safe as given).
    pub async fn runs(&self, limit: usize, after: Option<&str>) -> Result<RunList> {
        let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
        self.get_json(&format!("/api/runs?limit={limit}{after}"))
            .await
    }

    pub async fn run(&self, id: &str) -> Result<RunDetail> {
        self.get_json(&format!("/api/runs/{id}")).await
    }

    /// `POST /api/runs/{id}/{action}` (approve, rollback, retry; `gate` for retry only).
    pub async fn post_action(
        &self,
        id: &str,
        action: &str,
        reason: Option<&str>,
        gate: Option<&str>,
    ) -> Result<serde_json::Value> {
        let url = format!("{}/api/runs/{id}/{action}", self.base);
        let body = serde_json::json!({ "actor": whoami(), "reason": reason, "gate": gate });
        let body = strip_nulls(body);
        let res = self
            .http
            .request(reqwest::Method::POST, &url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = res.status();
        let v: serde_json::Value = res.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!("POST {url}: {status}: {v}");
        }
        Ok(v)
    }

    /// POSTs JSON with `Authorization: Bearer <token>` (as Alertmanager's `http_config`
    /// sends it); the status and the JSON answer.
    pub async fn post_json_bearer(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value)> {
        let url = format!("{}{path}", self.base);
        let res = self
            .http
            .post(&url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or_default()))
    }

    /// Sends a GitHub webhook signed with `secret`, as GitHub does.
    pub async fn send_webhook(
        &self,
        secret: &str,
        event: &str,
        delivery: &str,
        body: &[u8],
    ) -> Result<(u16, serde_json::Value)> {
        let url = format!("{}/webhooks/github", self.base);
        let res = self
            .http
            .request(reqwest::Method::POST, &url)
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", sign(secret, body))
            .body(body.to_vec())
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or_default()))
    }

    /// Uploads a bundle in its per-file form: every file, then a manifest listing them with
    /// their sha256 (last, as the evidence contract demands). Returns the manifest. (`vaia
    /// evidence upload` and the demo send one archive instead: [`Self::upload_archive`].)
    pub async fn upload_evidence(
        &self,
        repo: &Repository,
        commit: &CommitSha,
        image: &ImageDigest,
        dataset: Option<DatasetSnapshot>,
        files: &[(String, Vec<u8>)],
    ) -> Result<Manifest> {
        for (name, bytes) in files {
            self.put_evidence(repo, commit, name, bytes.clone()).await?;
        }
        let image = ImageRef {
            digest: image.clone(),
            base_digest: None,
        };
        let manifest =
            crate::collect::manifest_for(repo, commit, image, dataset, files, chrono::Utc::now());
        self.put_evidence(
            repo,
            commit,
            MANIFEST_FILE,
            serde_json::to_vec_pretty(&manifest)?,
        )
        .await?;
        Ok(manifest)
    }

    /// Uploads a packed bundle ([`pack_dir`], [`pack`]) as one object, `bundle.tar`: one
    /// request, which seals the bundle as a manifest does.
    pub async fn upload_archive(&self, manifest: &Manifest, archive: Vec<u8>) -> Result<()> {
        self.put_evidence(
            &manifest.repository,
            &manifest.commit,
            ARCHIVE_FILE,
            archive,
        )
        .await
    }

    async fn put_evidence(
        &self,
        repo: &Repository,
        commit: &CommitSha,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<()> {
        let url = format!("{}/api/evidence/{repo}/{commit}/{name}", self.base);
        let res = self
            .http
            .request(reqwest::Method::PUT, &url)
            .body(bytes)
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        if !res.status().is_success() {
            let status = res.status();
            bail!(
                "PUT {url}: {status}: {}",
                res.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// The archive of `manifest` (its bytes as given) and `files`, which must be exactly the
/// files it lists ([`check_listed`]).
pub fn pack(
    manifest: &Manifest,
    manifest_bytes: &[u8],
    files: &[(String, Vec<u8>)],
) -> Result<Vec<u8>> {
    check_listed(manifest, files)?;
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    Ok(archive::pack(manifest_bytes, &files)?)
}

/// The archive of a directory `vaia evidence collect` (or the agent's CI) wrote: its
/// `manifest.json` and exactly the files it lists ([`read_bundle`], [`check_listed`]).
pub fn pack_dir(dir: &Path) -> Result<(Manifest, Vec<u8>)> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest = Manifest::parse(&bytes, &path.display().to_string())?;
    let files = read_bundle(dir)?;
    let archive =
        pack(&manifest, &bytes, &files).with_context(|| format!("packing {}", dir.display()))?;
    Ok((manifest, archive))
}

/// Reads a directory's regular files (not the manifest, not a `bundle.tar` packed there,
/// not dot files) as an evidence bundle.
pub fn read_bundle(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.file_type()?.is_file()
            || vaia_core::evidence::SEALING_FILES.contains(&name.as_str())
            || name.starts_with('.')
        {
            continue;
        }
        let bytes = std::fs::read(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        files.push((name, bytes));
    }
    files.sort();
    Ok(files)
}

/// The files of a bundle are exactly those its manifest lists, with their sha256 and size.
pub fn check_listed(manifest: &Manifest, files: &[(String, Vec<u8>)]) -> Result<()> {
    for (name, bytes) in files {
        let Some(listed) = manifest.file(name) else {
            bail!("{name} is in the bundle's directory but not in its {MANIFEST_FILE}");
        };
        let sha = hex::encode(Sha256::digest(bytes));
        if listed.sha256 != sha || listed.bytes != bytes.len() as u64 {
            bail!(
                "{name}: sha256 {sha} ({} bytes) but {MANIFEST_FILE} lists {} ({} bytes)",
                bytes.len(),
                listed.sha256,
                listed.bytes
            );
        }
    }
    for f in &manifest.files {
        if !files.iter().any(|(n, _)| *n == f.name) {
            bail!(
                "{MANIFEST_FILE} lists {} but the directory has no such file",
                f.name
            );
        }
    }
    Ok(())
}

/// `sha256=<hex>` of the body keyed by the secret, as in `X-Hub-Signature-256`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail; an empty signature would be
    // refused by the server anyway.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "cli".into())
}

fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => m.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        other => other,
    }
}
