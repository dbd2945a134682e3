//! `vaia monitoring`: generates the monitoring bundle from the `[monitoring]` spec of a
//! `vaia.toml` (or its defaults, which watch the example agent): Prometheus rules with
//! their `promtool` unit tests ([`rules`]) and a Grafana dashboard ([`dashboard`]).

pub mod dashboard;
pub mod rules;
pub mod servers;

use anyhow::{Context, Result};
use std::path::Path;
use vaia_core::monitoring::MonitoringPolicy;
use vaia_core::policy::Policy;

/// The `[monitoring]` section of `path`, or the defaults without a file.
pub fn load_spec(path: Option<&Path>) -> Result<MonitoringPolicy> {
    let Some(path) = path else {
        return Ok(MonitoringPolicy::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Policy::from_toml(&text, &path.display().to_string())?.monitoring)
}

/// Writes the rule files and their unit tests into `out` (created if needed); returns
/// the paths written.
pub fn write_rules(spec: &MonitoringPolicy, out: &Path) -> Result<Vec<std::path::PathBuf>> {
    let files = rules::generate(spec)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    for f in files {
        let path = out.join(f.name);
        std::fs::write(&path, &f.text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Writes the Grafana dashboard JSON to `out`.
pub fn write_dashboard(spec: &MonitoringPolicy, out: &Path) -> Result<()> {
    let text = dashboard::generate_text(spec)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))
}
