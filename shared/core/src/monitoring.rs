//! The monitoring spec: the `[monitoring]` section of `vaia.toml`. It says which agents are
//! watched (their Prometheus job, latency threshold and SLOs), which pipeline-health
//! alerts are generated and with what bounds, where runbooks live, and which firing alerts
//! may roll a promoted run back. `vaia monitoring rules` and `vaia monitoring dashboard`
//! generate from it; the Alertmanager hook decides rollbacks with [`RollbackPolicy`].
//!
//! ```toml
//! [monitoring]
//! runbook_base = "https://example.invalid/vaia/docs/runbooks.md" # runbook_url = base#alert
//! stuck_after = "1h"          # a run in one state this long with nothing leaving it
//! gate_error_ratio = 0.1      # share of a gate's verdicts that are `error`
//! ct = false                  # CT alerts (needs the ct_* and pending_data_volume_bytes metrics)
//! pending_data_bytes = 10737418240 # pending raw data per repository before an alert
//!
//! [monitoring.rollback]
//! severities = ["page"]             # alerts of these severities roll back
//! alerts = ["AgentP95LatencyHigh"]  # and these alerts, whatever their severity
//!
//! [[monitoring.agents]]
//! repository = "vaia-demo/support-agent"
//! job = "agent"               # the Prometheus job label of the agent's series
//! threshold_ms = 500.0        # AgentP95LatencyHigh above this p95
//! for = "2m"                  # ... for this long
//! [[monitoring.agents.slos]]
//! name = "availability"
//! objective = 99.9            # percent of requests that are not errors
//! error_outcomes = ["bad_request"]  # agent_requests_total outcomes that count as errors
//! [[monitoring.agents.slos]]
//! name = "latency"
//! objective = 99.0
//! latency_ms = 500.0          # requests slower than this are errors (a histogram bucket bound)
//! ```
//!
//! With no `[[monitoring.agents]]`, the example agent (`examples/agent`) is watched with the
//! defaults above ([`MonitoringPolicy::agents_or_default`]).

use crate::ids::Repository;
use crate::policy::parse_duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The repository the demo and the example agent's defaults use.
pub const EXAMPLE_REPOSITORY: &str = "vaia-demo/support-agent";
/// The example agent's Prometheus job name in the generated configuration.
pub const EXAMPLE_JOB: &str = "agent";
/// The agent latency alert of the original design.
pub const LATENCY_ALERT: &str = "AgentP95LatencyHigh";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringPolicy {
    /// `runbook_url` of every alert is this followed by `#` and the alert's name in lower case.
    pub runbook_base: String,
    /// A run in a state this long (a Prometheus duration) with nothing leaving the state.
    pub stuck_after: String,
    /// Alert when more than this share of a gate's verdicts over 15 minutes are `error`.
    pub gate_error_ratio: f64,
    /// Generate the continuous-training alerts (pending data volume, CT evaluation errors).
    pub ct: bool,
    /// Pending raw data of one repository (bytes) above which a ticket is raised.
    pub pending_data_bytes: u64,
    pub rollback: RollbackPolicy,
    pub agents: Vec<AgentMonitor>,
}

impl Default for MonitoringPolicy {
    fn default() -> Self {
        Self {
            runbook_base: "https://example.invalid/vaia/docs/runbooks.md".into(),
            stuck_after: "1h".into(),
            gate_error_ratio: 0.1,
            ct: false,
            pending_data_bytes: 10 * 1024 * 1024 * 1024,
            rollback: RollbackPolicy::default(),
            agents: Vec::new(),
        }
    }
}

/// Which firing alerts roll a promoted run back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollbackPolicy {
    /// Alerts whose `severity` label is one of these.
    pub severities: Vec<String>,
    /// Alerts with one of these names, whatever their severity.
    pub alerts: Vec<String>,
}

impl Default for RollbackPolicy {
    fn default() -> Self {
        Self {
            severities: vec!["page".into()],
            alerts: vec![LATENCY_ALERT.into()],
        }
    }
}

impl RollbackPolicy {
    /// Whether an alert with this name and severity may roll a run back.
    pub fn allows(&self, alertname: &str, severity: Option<&str>) -> bool {
        self.alerts.iter().any(|a| a == alertname)
            || severity.is_some_and(|s| self.severities.iter().any(|x| x == s))
    }
}

/// One watched agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentMonitor {
    pub repository: Repository,
    /// The `job` label of the agent's series in Prometheus.
    #[serde(default = "default_job")]
    pub job: String,
    /// `AgentP95LatencyHigh` fires above this p95 (milliseconds).
    #[serde(default = "default_threshold_ms")]
    pub threshold_ms: f64,
    /// ... held this long (a Prometheus duration).
    #[serde(default = "default_for", rename = "for")]
    pub for_: String,
    #[serde(default = "default_slos")]
    pub slos: Vec<Slo>,
}

fn default_job() -> String {
    EXAMPLE_JOB.into()
}
fn default_threshold_ms() -> f64 {
    500.0
}
fn default_for() -> String {
    "2m".into()
}
fn default_slos() -> Vec<Slo> {
    vec![
        Slo {
            name: "availability".into(),
            objective: 99.9,
            latency_ms: None,
            error_outcomes: default_error_outcomes(),
        },
        Slo {
            name: "latency".into(),
            objective: 99.0,
            latency_ms: Some(500.0),
            error_outcomes: default_error_outcomes(),
        },
    ]
}
fn default_error_outcomes() -> Vec<String> {
    vec!["bad_request".into()]
}

impl AgentMonitor {
    /// The example agent with every default.
    pub fn example() -> Option<Self> {
        Some(Self {
            repository: Repository::new(EXAMPLE_REPOSITORY).ok()?,
            job: default_job(),
            threshold_ms: default_threshold_ms(),
            for_: default_for(),
            slos: default_slos(),
        })
    }
}

/// A service-level objective over an agent's requests. With `latency_ms` it is a latency
/// SLO (a request slower than that is bad), otherwise an availability SLO (a request whose
/// `outcome` is one of `error_outcomes` is bad).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    pub name: String,
    /// Percent of good requests, e.g. 99.9.
    pub objective: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(default = "default_error_outcomes")]
    pub error_outcomes: Vec<String>,
}

impl Slo {
    /// The error budget as a ratio (1 - objective).
    pub fn error_budget(&self) -> f64 {
        (100.0 - self.objective) / 100.0
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl MonitoringPolicy {
    /// The agents of the spec, or the example agent when none is listed.
    pub fn agents_or_default(&self) -> Vec<AgentMonitor> {
        if self.agents.is_empty() {
            AgentMonitor::example().into_iter().collect()
        } else {
            self.agents.clone()
        }
    }

    /// Checks values serde cannot; `Err` names the key.
    pub fn validate(&self) -> Result<(), String> {
        parse_duration(&self.stuck_after).map_err(|e| format!("monitoring.stuck_after: {e}"))?;
        if !(self.gate_error_ratio > 0.0 && self.gate_error_ratio <= 1.0) {
            return Err(format!(
                "monitoring.gate_error_ratio: {} must be in (0, 1]",
                self.gate_error_ratio
            ));
        }
        if self.runbook_base.trim().is_empty() || self.runbook_base.contains(char::is_whitespace) {
            return Err("monitoring.runbook_base: must be a URL without spaces".into());
        }
        let mut repos = BTreeSet::new();
        for (i, a) in self.agents.iter().enumerate() {
            let at = format!("monitoring.agents[{i}]");
            if !repos.insert(a.repository.clone()) {
                return Err(format!(
                    "{at}.repository: {} is listed more than once",
                    a.repository
                ));
            }
            if !is_name(&a.job) {
                return Err(format!(
                    "{at}.job: {:?} must be letters, digits, '_' or '-'",
                    a.job
                ));
            }
            if !(a.threshold_ms.is_finite() && a.threshold_ms > 0.0) {
                return Err(format!(
                    "{at}.threshold_ms: {} must be a positive number of milliseconds",
                    a.threshold_ms
                ));
            }
            parse_duration(&a.for_).map_err(|e| format!("{at}.for: {e}"))?;
            let mut names = BTreeSet::new();
            for (j, s) in a.slos.iter().enumerate() {
                let at = format!("{at}.slos[{j}]");
                if !is_name(&s.name) {
                    return Err(format!(
                        "{at}.name: {:?} must be letters, digits, '_' or '-'",
                        s.name
                    ));
                }
                if !names.insert(s.name.clone()) {
                    return Err(format!("{at}.name: {:?} is used twice", s.name));
                }
                if !(s.objective > 0.0 && s.objective < 100.0) {
                    return Err(format!(
                        "{at}.objective: {} must be a percentage strictly between 0 and 100",
                        s.objective
                    ));
                }
                if let Some(ms) = s.latency_ms {
                    if !(ms.is_finite() && ms > 0.0) {
                        return Err(format!(
                            "{at}.latency_ms: {ms} must be a positive number of milliseconds"
                        ));
                    }
                } else if s.error_outcomes.is_empty()
                    || !s.error_outcomes.iter().all(|o| is_name(o))
                {
                    return Err(format!(
                        "{at}.error_outcomes: list the outcome labels that count as errors (letters, digits, '_' or '-')"
                    ));
                }
            }
        }
        for (i, s) in self.rollback.severities.iter().enumerate() {
            if !is_name(s) {
                return Err(format!("monitoring.rollback.severities[{i}]: {s:?}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    #[test]
    fn defaults_watch_the_example_agent_and_roll_back_on_page_and_latency() {
        let p = Policy::from_toml("", "vaia.toml").unwrap();
        let agents = p.monitoring.agents_or_default();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].repository.as_str(), EXAMPLE_REPOSITORY);
        assert_eq!(agents[0].threshold_ms, 500.0);
        assert_eq!(agents[0].for_, "2m");
        let r = &p.monitoring.rollback;
        assert!(r.allows(LATENCY_ALERT, Some("warning")));
        assert!(r.allows("AgentSLOErrorBudgetBurn", Some("page")));
        assert!(!r.allows("AgentSLOErrorBudgetBurn", Some("ticket")));
        assert!(!r.allows("VaiaDeadLetters", None));
    }

    #[test]
    fn agents_and_slos_parse_and_bad_values_are_named() {
        let p = Policy::from_toml(
            "[monitoring]\nstuck_after = \"30m\"\n[[monitoring.agents]]\nrepository = \"acme/a\"\nfor = \"5s\"\n\
             [[monitoring.agents.slos]]\nname = \"avail\"\nobjective = 99.5\n",
            "vaia.toml",
        )
        .unwrap();
        assert_eq!(p.monitoring.agents[0].for_, "5s");
        assert!((p.monitoring.agents[0].slos[0].error_budget() - 0.005).abs() < 1e-12);
        for (bad, needle) in [
            ("[monitoring]\nstuck_aftr = \"1h\"\n", "stuck_aftr"),
            ("[monitoring]\nstuck_after = \"soon\"\n", "monitoring.stuck_after"),
            ("[monitoring]\ngate_error_ratio = 0.0\n", "monitoring.gate_error_ratio"),
            ("[[monitoring.agents]]\nrepository = \"nope\"\n", "repository"),
            (
                "[[monitoring.agents]]\nrepository = \"a/b\"\nthreshold = 1\n",
                "threshold",
            ),
            (
                "[[monitoring.agents]]\nrepository = \"a/b\"\nthreshold_ms = -1.0\n",
                "monitoring.agents[0].threshold_ms",
            ),
            (
                "[[monitoring.agents]]\nrepository = \"a/b\"\n[[monitoring.agents]]\nrepository = \"a/b\"\n",
                "monitoring.agents[1].repository",
            ),
            (
                "[[monitoring.agents]]\nrepository = \"a/b\"\n[[monitoring.agents.slos]]\nname = \"x\"\nobjective = 100.0\n",
                "monitoring.agents[0].slos[0].objective",
            ),
            (
                "[[monitoring.agents]]\nrepository = \"a/b\"\njob = \"a b\"\n",
                "monitoring.agents[0].job",
            ),
            ("[monitoring.rollback]\nseverity = [\"page\"]\n", "severity"),
        ] {
            let e = Policy::from_toml(bad, "vaia.toml").unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("vaia.toml"), "{bad}: {e}");
        }
    }
}
