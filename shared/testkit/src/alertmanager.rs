//! A real Alertmanager (the Debian package's `prometheus-alertmanager`) on 127.0.0.1 with a
//! free port, its own storage directory and clustering off; stopped when dropped.

use crate::{free_port, poll};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How `.ci/run` installs Alertmanager and amtool.
pub const INSTALL: &str = "apt-get install -y --no-install-recommends prometheus-alertmanager";

/// Finds `prometheus-alertmanager` on PATH; `None` (after saying so) when absent outside CI.
pub fn binary(test: &str) -> Option<std::path::PathBuf> {
    crate::tool("prometheus-alertmanager", test, INSTALL)
}

/// Finds `amtool` on PATH; `None` (after saying so) when absent outside CI.
pub fn amtool(test: &str) -> Option<std::path::PathBuf> {
    crate::tool("amtool", test, INSTALL)
}

pub struct Alertmanager {
    pub url: String,
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager with `config` (YAML) and waits until `/-/ready` answers 200.
    pub fn start(bin: &std::path::Path, config: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let am = Alertmanager {
            url: format!("http://127.0.0.1:{port}"),
            port,
            child,
            _dir: dir,
        };
        poll(
            port,
            "/-/ready",
            Duration::from_secs(30),
            "ready",
            |s, _| s == 200,
        );
        am
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
