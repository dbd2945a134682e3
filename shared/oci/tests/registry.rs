//! The OCI adapter against a real registry: Debian's `docker-registry` (the CNCF distribution
//! server) on 127.0.0.1 with a free port, two images pushed into it by `skopeo` from OCI
//! layouts built here (config blob, one gzipped tar layer, manifest, index). Promote the
//! first (tag 0.1.0 and prod), promote the second (0.2.0, prod moves), roll back (prod moves
//! back); an unknown digest is refused, not retried; a registry that is down is retried and
//! reported. Without the two binaries the tests skip, saying so, except under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vaia_core::delivery::{promotion_tags, tag_all, ImageRegistry, Retry, TagError};
use vaia_core::{ImageDigest, ImageName, ImageTag};
use vaia_oci::{Credentials, OciRegistry};

fn tool(test: &str, name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let ci = std::env::var("CI")
            .map(|v| v == "true" || v == "1")
            .unwrap_or(false);
        assert!(
            !ci,
            "{test}: {name} is not on PATH under CI: .ci/run must install it (apt-get install -y --no-install-recommends docker-registry skopeo)"
        );
        eprintln!(
            "SKIPPED {test}: no {name} on PATH (apt-get install -y --no-install-recommends docker-registry skopeo)"
        );
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Registry {
    child: Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start(bin: &Path) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let host = format!("127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            if std::net::TcpStream::connect(&host).is_ok() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "docker-registry did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry {
            child,
            host,
            _dir: dir,
        }
    }
}

fn blob(dir: &Path, bytes: &[u8]) -> (String, u64) {
    let hex = hex::encode(Sha256::digest(bytes));
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len() as u64)
}

/// An OCI layout with one image whose layer holds `content`; returns its manifest digest.
fn layout(dir: &Path, content: &str) -> String {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("agent.txt"), content).unwrap();
    let tgz = dir.join("layer.tar.gz");
    let ok = Command::new("tar")
        .args(["--mtime=@0", "--owner=0", "--group=0", "-czf"])
        .arg(&tgz)
        .arg("-C")
        .arg(&src)
        .arg("agent.txt")
        .status()
        .unwrap();
    assert!(ok.success());
    let layer_bytes = std::fs::read(&tgz).unwrap();
    let (layer, layer_size) = blob(dir, &layer_bytes);
    let ok = Command::new("tar")
        .args(["--mtime=@0", "--owner=0", "--group=0", "-cf", "-", "-C"])
        .arg(&src)
        .arg("agent.txt")
        .output()
        .unwrap();
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&ok.stdout)));
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/agent"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    });
    let (config, config_size) = blob(dir, config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}]
    });
    let manifest_bytes = manifest.to_string().into_bytes();
    let (digest, size) = blob(dir, &manifest_bytes);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
                       "annotations": {"org.opencontainers.image.ref.name": "candidate"}}]
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    digest
}

/// Pushes a fresh image with `content` to `host/name:<sha-tag>` with skopeo.
fn push(skopeo: &Path, host: &str, name: &str, content: &str, tag: &str) -> ImageDigest {
    let dir = tempfile::tempdir().unwrap();
    let digest = layout(dir.path(), content);
    let out = Command::new(skopeo)
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--preserve-digests",
        ])
        .arg(format!("oci:{}:candidate", dir.path().display()))
        .arg(format!("docker://{host}/{name}:{tag}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ImageDigest::new(digest).unwrap()
}

/// The digest `tag` points at, as the registry says (`Docker-Content-Digest`).
async fn resolve(host: &str, name: &str, tag: &str) -> Option<String> {
    let res = reqwest::Client::new()
        .head(format!("http://{host}/v2/{name}/manifests/{tag}"))
        .header("accept", vaia_oci::MANIFEST_TYPES.join(", "))
        .send()
        .await
        .unwrap();
    if res.status() == 404 {
        return None;
    }
    assert!(res.status().is_success(), "{}", res.status());
    res.headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_string())
}

const FAST: Retry = Retry {
    attempts: 3,
    backoff: Duration::from_millis(20),
};

#[tokio::test]
async fn tag_retag_and_move_prod_back_against_docker_registry() {
    const TEST: &str = "tag_retag_and_move_prod_back_against_docker_registry";
    let (Some(registry_bin), Some(skopeo)) = (tool(TEST, "docker-registry"), tool(TEST, "skopeo"))
    else {
        return;
    };
    let registry = Registry::start(&registry_bin);
    let host = registry.host.clone();
    let name = "acme/support-agent";
    let image = ImageName::new(format!("{host}/{name}")).unwrap();
    let oci = OciRegistry::new(Credentials::Anonymous, Duration::from_secs(10))
        .unwrap()
        .plain_http(host.clone());
    let prod = ImageTag::new("prod").unwrap();

    let (h, n) = (host.clone(), name.to_string());
    let sk = skopeo.clone();
    let first = tokio::task::spawn_blocking(move || push(&sk, &h, &n, "good agent v1", "sha-1"))
        .await
        .unwrap();
    let (h, n) = (host.clone(), name.to_string());
    let sk = skopeo.clone();
    let second = tokio::task::spawn_blocking(move || push(&sk, &h, &n, "good agent v2", "sha-2"))
        .await
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(resolve(&host, name, "prod").await, None);

    // First promotion: 0.1.0 and prod.
    let v1 = semver::Version::new(0, 1, 0);
    let out = tag_all(
        &oci,
        &image,
        &first,
        &promotion_tags(&v1, &prod).unwrap(),
        FAST,
    )
    .await;
    assert!(
        out.iter().all(|o| o.result.is_ok() && o.attempts == 1),
        "{out:?}"
    );
    assert_eq!(
        resolve(&host, name, "0.1.0").await.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(
        resolve(&host, name, "prod").await.as_deref(),
        Some(first.as_str())
    );

    // Second promotion: 0.2.0, prod moves; 0.1.0 stays.
    let v2 = semver::Version::new(0, 2, 0);
    let out = tag_all(
        &oci,
        &image,
        &second,
        &promotion_tags(&v2, &prod).unwrap(),
        FAST,
    )
    .await;
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert_eq!(
        resolve(&host, name, "0.2.0").await.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(
        resolve(&host, name, "prod").await.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(
        resolve(&host, name, "0.1.0").await.as_deref(),
        Some(first.as_str())
    );

    // Rollback: prod back to the first.
    let out = tag_all(&oci, &image, &first, std::slice::from_ref(&prod), FAST).await;
    assert!(out[0].result.is_ok(), "{out:?}");
    assert_eq!(
        resolve(&host, name, "prod").await.as_deref(),
        Some(first.as_str())
    );

    // A digest the registry does not hold: refused at once, nothing moved.
    let unknown = ImageDigest::new(format!("sha256:{}", "0".repeat(64))).unwrap();
    let err = oci.tag(&image, &unknown, &prod).await.unwrap_err();
    assert!(
        matches!(&err, TagError::Refused(m) if m.contains("404")),
        "{err}"
    );
    let out = tag_all(&oci, &image, &unknown, std::slice::from_ref(&prod), FAST).await;
    assert_eq!(out[0].attempts, 1);
    assert_eq!(
        resolve(&host, name, "prod").await.as_deref(),
        Some(first.as_str())
    );

    // The registry goes down: retried, then reported; prod unchanged when it comes back.
    drop(registry);
    let out = tag_all(&oci, &image, &second, std::slice::from_ref(&prod), FAST).await;
    assert_eq!(out[0].attempts, 3, "{out:?}");
    assert!(
        matches!(&out[0].result, Err(TagError::Unavailable(m)) if m.contains("cannot connect")),
        "{out:?}"
    );
    assert!(out[0]
        .describe(&image, &second)
        .contains("after 3 attempts"));
}
