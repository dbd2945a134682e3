//! Real Prometheus and Alertmanager processes for the demo and the end-to-end test: the
//! generated rules loaded, Prometheus scraping the agent every second and evaluating every
//! second, Alertmanager posting to vaia's `/hooks/alertmanager` with the bearer token.
//! Each has its own storage under a temporary directory and listens on 127.0.0.1 on a free
//! port; both are killed when [`Servers`] is dropped.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use vaia_core::monitoring::MonitoringPolicy;

pub const PROMETHEUS: &str = "prometheus";
pub const ALERTMANAGER: &str = "prometheus-alertmanager";

/// Finds a program on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

pub struct Servers {
    pub prometheus_url: String,
    pub alertmanager_url: String,
    prometheus: Child,
    alertmanager: Child,
    _dir: tempfile::TempDir,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The `alertmanager.yml` that routes rollback-worthy alerts to vaia's hook.
pub fn alertmanager_config(hook_url: &str, token_file: &Path, spec: &MonitoringPolicy) -> String {
    let names = spec.rollback.alerts.join("|");
    let severities = spec.rollback.severities.join("|");
    format!(
        "route:\n  receiver: 'null'\n  group_by: ['alertname', 'vaia_repository']\n  group_wait: 1s\n  group_interval: 5s\n  repeat_interval: 1h\n  routes:\n    - receiver: vaia\n      matchers: ['alertname=~\"{names}\"']\n    - receiver: vaia\n      matchers: ['severity=~\"{severities}\"']\nreceivers:\n  - name: 'null'\n  - name: vaia\n    webhook_configs:\n      - url: '{hook_url}'\n        send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n            credentials_file: '{}'\n",
        token_file.display()
    )
}

impl Servers {
    /// Writes the rules for `spec`, starts Alertmanager (posting to `hook_url`) and
    /// Prometheus (scraping `agent` as the spec's first agent's job), and waits until both
    /// are ready.
    pub async fn start(
        spec: &MonitoringPolicy,
        agent: &str,
        hook_url: &str,
        token: &str,
    ) -> Result<Servers> {
        let prom_bin = which(PROMETHEUS).context("prometheus is not installed")?;
        let am_bin = which(ALERTMANAGER).context("prometheus-alertmanager is not installed")?;
        let dir = tempfile::tempdir()?;
        let rules_dir = dir.path().join("rules");
        super::write_rules(spec, &rules_dir)?;
        let token_file = dir.path().join("alertmanager-token");
        std::fs::write(&token_file, token)?;
        let am_config = dir.path().join("alertmanager.yml");
        std::fs::write(&am_config, alertmanager_config(hook_url, &token_file, spec))?;
        let am_port = free_port()?;
        let alertmanager = Command::new(am_bin)
            .arg(format!("--config.file={}", am_config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting prometheus-alertmanager")?;
        let job = spec
            .agents_or_default()
            .first()
            .map(|a| a.job.clone())
            .unwrap_or_else(|| "agent".into());
        let prom_config = dir.path().join("prometheus.yml");
        std::fs::write(
            &prom_config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}/{}\n  - {}/{}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['{agent}']\n",
                rules_dir.display(),
                super::rules::AGENT_RULES,
                rules_dir.display(),
                super::rules::PIPELINE_RULES,
            ),
        )?;
        let prom_port = free_port()?;
        let prometheus = Command::new(prom_bin)
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting prometheus")?;
        let servers = Servers {
            prometheus_url: format!("http://127.0.0.1:{prom_port}"),
            alertmanager_url: format!("http://127.0.0.1:{am_port}"),
            prometheus,
            alertmanager,
            _dir: dir,
        };
        let http = vaia_gates::http::client_builder().build()?;
        for url in [
            format!("{}/-/ready", servers.alertmanager_url),
            format!("{}/-/ready", servers.prometheus_url),
        ] {
            wait_ok(&http, &url, Duration::from_secs(30)).await?;
        }
        Ok(servers)
    }

    /// Firing alerts Prometheus reports (`/api/v1/alerts`), as (alertname, state).
    pub async fn alerts(&self) -> Result<Vec<(String, String)>> {
        let v: serde_json::Value = vaia_gates::http::client_builder()
            .build()?
            .get(format!("{}/api/v1/alerts", self.prometheus_url))
            .send()
            .await?
            .json()
            .await?;
        Ok(v["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["labels"]["alertname"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    a["state"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }

    pub async fn stop(mut self) {
        let _ = self.prometheus.kill().await;
        let _ = self.alertmanager.kill().await;
    }
}

async fn wait_ok(http: &reqwest::Client, url: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if start.elapsed() > timeout {
            bail!("{url} not ready after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
