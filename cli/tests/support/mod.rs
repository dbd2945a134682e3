//! What the CLI's end-to-end tests share: a real `vaia up` process on a free port and a
//! temporary data directory, and the pushes and uploads GitHub and an agent's CI make.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use vaia::client::Client;
use vaia::demo::push_payload;
use vaia_core::{CommitSha, ImageDigest, Repository};

pub const SECRET: &str = "e2e-secret-8c1f-2d9a";
pub const V1: &str = include_str!("../../../examples/demo/tools-v1.json");
pub const V2: &str = include_str!("../../../examples/demo/tools-v2.json");
pub const V3: &str = include_str!("../../../examples/demo/tools-v3-breaking.json");
pub const TRIVY: &str = include_str!("../../../examples/demo/trivy-clean.json");
pub const LOCUST: &str = include_str!("../../../shared/gates/tests/fixtures/locust/good_stats.csv");
/// The default gates, with a fixed production p95 instead of a Prometheus.
/// The tools and release gates with a fixed latency baseline; the agent gates, which
/// need the example agent's evidence, are exercised by the demo and tests/agent_gates.rs.
pub const POLICY: &str =
    "[stages]\nci = [\"schema\", \"security\", \"latency\"]\n\n[latency]\nbaseline_p95_ms = 150.0\n";

/// A `vaia up` child process of this crate's binary, killed when dropped
/// ([`vaia_testkit::vaia_up`], shared with the load benchmark).
pub use vaia_testkit::vaia_up::VaiaUp as Vaia;

/// Starting [`Vaia`] from `CARGO_BIN_EXE_vaia`.
pub trait StartVaia {
    /// Starts `vaia up` on a free port of 127.0.0.1 with `policy` (a vaia.toml, written into
    /// the data directory) and `secret`, and waits until it says where it listens.
    fn start(data_dir: &Path, policy: &str, secret: &str) -> Vaia {
        Self::start_with_env(data_dir, policy, secret, &[])
    }

    /// The same, with extra environment variables.
    fn start_with_env(data_dir: &Path, policy: &str, secret: &str, env: &[(&str, &str)]) -> Vaia;
}

impl StartVaia for Vaia {
    fn start_with_env(data_dir: &Path, policy: &str, secret: &str, env: &[(&str, &str)]) -> Vaia {
        Vaia::spawn(
            Path::new(env!("CARGO_BIN_EXE_vaia")),
            data_dir,
            policy,
            secret,
            env,
        )
    }
}

pub fn commit(n: u8) -> CommitSha {
    CommitSha::new(format!("{:02x}", n).repeat(20)).unwrap()
}

pub async fn push(client: &Client, repo: &Repository, sha: &CommitSha, delivery: &str) -> String {
    let body = push_payload(repo, sha).unwrap();
    let (status, answer) = client
        .send_webhook(SECRET, "push", delivery, &body)
        .await
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    answer["run_id"].as_str().unwrap().to_string()
}

pub async fn upload(client: &Client, repo: &Repository, sha: &CommitSha, tools: &str) {
    let image = ImageDigest::new(format!("sha256:{}", "ab".repeat(32))).unwrap();
    let files = vec![
        ("tools.json".to_string(), tools.as_bytes().to_vec()),
        ("trivy.json".to_string(), TRIVY.as_bytes().to_vec()),
        ("locust_stats.csv".to_string(), LOCUST.as_bytes().to_vec()),
    ];
    client
        .upload_evidence(repo, sha, &image, None, &files)
        .await
        .unwrap();
}
