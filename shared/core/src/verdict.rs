//! The gate verdict: what every gate produces, in the pipeline and on the command line.

use crate::ids::GateName;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// The evidence does not allow a decision (too little data, noise); never a pass.
    Inconclusive,
    /// The gate could not do its work (unreachable dependency, internal fault); never a pass.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Inconclusive => "inconclusive",
            Self::Error => "error",
        }
    }

    /// The `vaia gate` exit code: 0 pass, 1 fail, 3 inconclusive or error (2 is bad input).
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Pass => 0,
            Self::Fail => 1,
            Self::Inconclusive | Self::Error => 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// One thing a gate found. `location` is a JSON path, `file:line`, or similar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl Finding {
    pub fn new(rule: impl Into<String>, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            rule: rule.into(),
            severity,
            message: message.into(),
            location: None,
            data: None,
        }
    }

    pub fn at(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub gate: GateName,
    pub outcome: Outcome,
    pub summary: String,
    #[serde(default)]
    pub metrics: Map<String, Value>,
    #[serde(default)]
    pub findings: Vec<Finding>,
}

impl Verdict {
    pub fn new(gate: GateName, outcome: Outcome, summary: impl Into<String>) -> Self {
        Self {
            gate,
            outcome,
            summary: summary.into(),
            metrics: Map::new(),
            findings: Vec::new(),
        }
    }

    pub fn metric(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.metrics.insert(key.to_string(), value.into());
        self
    }
}
