//! A real `vaia up` process for tests and benchmarks: a given `vaia` binary on a free port
//! of 127.0.0.1 (`--port 0`) with its data in a given directory and a policy written
//! there, ready once it prints where it listens, killed when dropped. The CLI's end-to-end
//! tests start `CARGO_BIN_EXE_vaia` with it, the load benchmark (bench/src/bin/load.rs)
//! the release build.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long `vaia up` may take to say where it listens.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A `vaia up` child process, killed when dropped.
pub struct VaiaUp {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, as the process printed it.
    pub url: String,
}

impl VaiaUp {
    /// Starts `bin up` on a free port of 127.0.0.1 with `policy` (a vaia.toml, written into
    /// `data_dir`), `secret` as the GitHub webhook secret and the extra environment `env`,
    /// and waits until it says where it listens (panics after a minute).
    pub fn spawn(
        bin: &Path,
        data_dir: &Path,
        policy: &str,
        secret: &str,
        env: &[(&str, &str)],
    ) -> VaiaUp {
        let policy_path = data_dir.join("vaia.toml");
        std::fs::write(&policy_path, policy).unwrap();
        let mut child = Command::new(bin)
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
            .map_err(|e| format!("spawn {} up: {e}", bin.display()))
            .unwrap();
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads stderr to its end, so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("vaia is up on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(READY_TIMEOUT)
            .expect("vaia up did not start");
        VaiaUp { child, url }
    }

    /// The process id (for /proc/PID/status and signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for VaiaUp {
    fn drop(&mut self) {
        self.stop();
    }
}
