//! Test harness shared by the registry tests (and the CLI's end-to-end delivery test, which
//! includes this file): Debian's `docker-registry` on 127.0.0.1 with a free port, and images
//! pushed into it by `skopeo` from OCI layouts built here. Both binaries are found on PATH;
//! without them [`tool`] says SKIPPED, except under `CI=true` where it fails.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vaia_core::ImageDigest;

pub fn tool(test: &str, name: &str) -> Option<PathBuf> {
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

pub struct Registry {
    child: Child,
    pub host: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    pub fn start(bin: &Path) -> Registry {
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

/// Pushes a fresh image with `content` to `host/name:tag` with skopeo; returns its digest.
pub fn push(skopeo: &Path, host: &str, name: &str, content: &str, tag: &str) -> ImageDigest {
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
pub async fn resolve(host: &str, name: &str, tag: &str) -> Option<String> {
    let res = reqwest::Client::new()
        .head(format!("http://{host}/v2/{name}/manifests/{tag}"))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )
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
