//! The Grafana dashboard exporter (`vaia monitoring dashboard`): one dashboard JSON with a
//! pipeline row (runs by state, transitions, time in state, gate outcomes, dead letters,
//! webhook signature failures), a row per watched agent (p95 against yesterday's baseline
//! and the alert threshold, SLO error ratios, burn rates) and a continuous-training row
//! (pending data volume, training budget, retrains). The Prometheus datasource is a
//! template variable, so the file imports into any Grafana.

use serde_json::{json, Value};
use vaia_core::monitoring::MonitoringPolicy;

use super::rules::{
    p95_ms_expr, DEAD_LETTERS_METRIC, PENDING_DATA_METRIC, RUNS_METRIC, SIGNATURE_FAILURES_METRIC,
    TRANSITIONS_METRIC, VERDICTS_METRIC,
};

/// Grafana's dashboard schema version this file is written in (Grafana 11).
pub const SCHEMA_VERSION: u64 = 39;
/// The dashboard's stable uid.
pub const UID: &str = "vaia-pipeline";
/// The datasource template variable.
pub const DATASOURCE_VAR: &str = "datasource";

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("monitoring spec: {0}")]
    Spec(String),
    #[error("rendering the dashboard: {0}")]
    Render(String),
}

struct Layout {
    next_id: u64,
    y: u64,
    x: u64,
    panels: Vec<Value>,
}

impl Layout {
    fn row(&mut self, title: &str) {
        if self.x > 0 {
            self.y += 8;
            self.x = 0;
        }
        let id = self.id();
        self.panels.push(json!({
            "type": "row",
            "id": id,
            "title": title,
            "collapsed": false,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            "panels": [],
        }));
        self.y += 1;
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A time-series panel, three to a row; `targets` are (legend, PromQL).
    fn timeseries(
        &mut self,
        title: &str,
        unit: &str,
        description: &str,
        targets: &[(&str, String)],
    ) {
        let id = self.id();
        let targets: Vec<Value> = targets
            .iter()
            .zip(b'A'..)
            .map(|((legend, expr), ref_id)| {
                json!({
                    "datasource": {"type": "prometheus", "uid": format!("${{{DATASOURCE_VAR}}}")},
                    "expr": expr,
                    "legendFormat": legend,
                    "refId": (ref_id as char).to_string(),
                })
            })
            .collect();
        self.panels.push(json!({
            "type": "timeseries",
            "id": id,
            "title": title,
            "description": description,
            "datasource": {"type": "prometheus", "uid": format!("${{{DATASOURCE_VAR}}}")},
            "gridPos": {"h": 8, "w": 8, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
                "tooltip": {"mode": "multi", "sort": "none"},
            },
            "targets": targets,
        }));
        self.x += 8;
        if self.x >= 24 {
            self.x = 0;
            self.y += 8;
        }
    }
}

/// The dashboard as JSON.
pub fn generate(spec: &MonitoringPolicy) -> Result<Value, DashboardError> {
    spec.validate().map_err(DashboardError::Spec)?;
    let mut l = Layout {
        next_id: 0,
        y: 0,
        x: 0,
        panels: Vec::new(),
    };
    l.row("Pipeline");
    l.timeseries(
        "Runs by state",
        "short",
        "Runs in each state of the pipeline.",
        &[("{{state}}", format!("sum by (state) ({RUNS_METRIC})"))],
    );
    l.timeseries(
        "Transitions per second",
        "ops",
        "Applied state transitions, by from and to state.",
        &[(
            "{{from}} → {{to}}",
            format!("sum by (from, to) (rate({TRANSITIONS_METRIC}[5m]))"),
        )],
    );
    l.timeseries(
        "Time in state (p95)",
        "s",
        "95th percentile of the time runs spent in a state before leaving it.",
        &[(
            "{{state}}",
            "histogram_quantile(0.95, sum by (le, state) (rate(vaia_time_in_state_seconds_bucket[15m])))"
                .to_string(),
        )],
    );
    l.timeseries(
        "Gate outcomes (last hour)",
        "short",
        "Gate verdicts by gate and outcome over the last hour.",
        &[(
            "{{gate}} {{outcome}}",
            format!("sum by (gate, outcome) (increase({VERDICTS_METRIC}[1h]))"),
        )],
    );
    l.timeseries(
        "Dead-lettered messages",
        "short",
        "Messages in each queue's dead-letter queue.",
        &[(
            "{{queue}}",
            format!("sum by (queue) ({DEAD_LETTERS_METRIC})"),
        )],
    );
    l.timeseries(
        "Webhook signature failures",
        "short",
        "Deliveries refused for a missing or wrong X-Hub-Signature-256 (10 minutes).",
        &[(
            "refused",
            format!("sum(increase({SIGNATURE_FAILURES_METRIC}[10m]))"),
        )],
    );
    for agent in spec.agents_or_default() {
        let repo = agent.repository.as_str();
        let sel = format!(
            "vaia_repository={}",
            serde_json::to_string(repo).unwrap_or_default()
        );
        l.row(&format!("Agent {repo}"));
        let p95 = p95_ms_expr(&agent.job);
        l.timeseries(
            &format!("{repo}: p95 latency"),
            "ms",
            "p95 of the agent's answers now, the same a day earlier (baseline), and the AgentP95LatencyHigh threshold.",
            &[
                ("p95", p95.clone()),
                ("baseline (1d ago)", p95.replace("[5m]", "[5m] offset 1d")),
                (
                    "threshold",
                    format!("vector({})", agent.threshold_ms),
                ),
            ],
        );
        l.timeseries(
            &format!("{repo}: SLO error ratio (5m)"),
            "percentunit",
            "Share of bad requests of each SLO over 5 minutes.",
            &[(
                "{{vaia_slo}}",
                format!("slo:sli_error:ratio_rate5m{{{sel}}}"),
            )],
        );
        l.timeseries(
            &format!("{repo}: SLO burn rate"),
            "short",
            "How many times faster than sustainable each SLO burns its error budget (1 = exactly on budget; 14.4 over 1 h pages).",
            &[(
                "{{vaia_slo}}",
                format!("slo:current_burn_rate:ratio{{{sel}}}"),
            )],
        );
    }
    l.row("Continuous training");
    l.timeseries(
        "Pending data volume",
        "bytes",
        "New raw data not yet consumed by a retrain, per repository.",
        &[(
            "{{repository}}",
            format!("sum by (repository) ({PENDING_DATA_METRIC})"),
        )],
    );
    l.timeseries(
        "Training budget",
        "short",
        "The CT budget per repository, from drift and the dataset delta.",
        &[(
            "{{repository}}",
            "max by (repository) (ct_training_budget)".to_string(),
        )],
    );
    l.timeseries(
        "Retrains queued (per hour)",
        "short",
        "Training jobs queued in the last hour.",
        &[(
            "retrains",
            "sum(increase(ct_retrains_queued_total[1h]))".to_string(),
        )],
    );
    Ok(json!({
        "uid": UID,
        "title": "vaia: pipeline and agents",
        "description": "Generated by `vaia monitoring dashboard` from the [monitoring] spec; do not edit.",
        "tags": ["vaia"],
        "timezone": "browser",
        "editable": true,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [{
            "name": DATASOURCE_VAR,
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "includeAll": false,
            "multi": false,
            "options": [],
            "refresh": 1,
            "regex": "",
            "skipUrlSync": false,
        }]},
        "panels": l.panels,
    }))
}

/// The dashboard as pretty JSON text with a trailing newline.
pub fn generate_text(spec: &MonitoringPolicy) -> Result<String, DashboardError> {
    let v = generate(spec)?;
    serde_json::to_string_pretty(&v)
        .map(|s| s + "\n")
        .map_err(|e| DashboardError::Render(e.to_string()))
}

/// Every PromQL expression of the dashboard, with its panel's title.
pub fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push((
                    panel["title"].as_str().unwrap_or_default().to_string(),
                    expr.to_string(),
                ));
            }
        }
    }
    out
}
