//! What the CLI's end-to-end tests share: a real `vaia up` process on a free port.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `vaia up` child process, killed when dropped.
pub struct Vaia {
    pub child: Child,
    pub url: String,
}

impl Vaia {
    /// Starts `vaia up` on a free port of 127.0.0.1 with `policy` (a vaia.toml, written into
    /// the data directory) and `secret`, and waits until it says where it listens.
    pub fn start(data_dir: &Path, policy: &str, secret: &str) -> Vaia {
        Self::start_with_env(data_dir, policy, secret, &[])
    }

    /// The same, with extra environment variables.
    pub fn start_with_env(
        data_dir: &Path,
        policy: &str,
        secret: &str,
        env: &[(&str, &str)],
    ) -> Vaia {
        let policy_path = data_dir.join("vaia.toml");
        std::fs::write(&policy_path, policy).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vaia"))
            .args(["up", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .arg("--policy")
            .arg(&policy_path)
            .env("VAIA_GITHUB_WEBHOOK_SECRET", secret)
            .env_remove("VAIA_PROMETHEUS_URL")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vaia up");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("vaia is up on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("vaia up did not start");
        Vaia { child, url }
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Vaia {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
