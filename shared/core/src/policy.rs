//! The promotion policy: which gates run in which stage, their thresholds, approval, and
//! timeouts. Loaded from `vaia.toml`; every field has a documented default, and unknown
//! keys are refused so that a typo never silently weakens a gate.
//!
//! ```toml
//! [stages]
//! ci = ["schema"]          # gates run in CI_RUNNING (default: every gate vaia has)
//! staging = []             # gates run in STAGING_EVAL (default: none)
//!
//! [schema]
//! allow_major = false      # a breaking tool change fails the schema gate unless true
//!
//! [promotion]
//! require_approval = false # CT_QUEUED → PROMOTED waits for `vaia runs approve`
//!
//! [run]
//! timeout_secs = 3600      # an in-flight run older than this moves to FAILED
//! ```

use crate::ids::GateName;
use crate::state::Stage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The gates this build of vaia implements. A policy naming another gate is refused:
/// there is no pass-through gate.
pub const KNOWN_GATES: &[&str] = &["schema"];

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub stages: Stages,
    pub schema: SchemaPolicy,
    pub promotion: PromotionPolicy,
    pub run: RunPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stages {
    pub ci: Vec<GateName>,
    pub staging: Vec<GateName>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaPolicy {
    /// Allow a breaking tool change (a major version bump) to pass the schema gate.
    pub allow_major: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromotionPolicy {
    pub require_approval: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunPolicy {
    pub timeout_secs: u64,
}

impl Default for Stages {
    fn default() -> Self {
        Self {
            ci: KNOWN_GATES
                .iter()
                .filter_map(|g| GateName::new(*g).ok())
                .collect(),
            staging: Vec::new(),
        }
    }
}

impl Default for RunPolicy {
    fn default() -> Self {
        Self { timeout_secs: 3600 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl Policy {
    /// Parses a `vaia.toml`; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        policy.validate(origin)?;
        Ok(policy)
    }

    pub fn validate(&self, origin: &str) -> Result<(), PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let mut seen = BTreeSet::new();
        for (stage, gates) in [
            ("stages.ci", &self.stages.ci),
            ("stages.staging", &self.stages.staging),
        ] {
            for gate in gates {
                if !KNOWN_GATES.contains(&gate.as_str()) {
                    return Err(invalid(format!(
                        "{stage}: unknown gate {gate:?} (known gates: {})",
                        KNOWN_GATES.join(", ")
                    )));
                }
                if !seen.insert(gate.clone()) {
                    return Err(invalid(format!(
                        "{stage}: gate {gate:?} is listed more than once"
                    )));
                }
            }
        }
        if self.run.timeout_secs == 0 {
            return Err(invalid("run.timeout_secs: must be at least 1".into()));
        }
        Ok(())
    }

    pub fn gates(&self, stage: Stage) -> &[GateName] {
        match stage {
            Stage::Ci => &self.stages.ci,
            Stage::Staging => &self.stages.staging,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_schema_in_ci() {
        let p = Policy::from_toml("", "vaia.toml").unwrap();
        assert_eq!(p, Policy::default());
        assert_eq!(p.stages.ci.len(), 1);
        assert!(p.stages.staging.is_empty());
        assert!(!p.schema.allow_major);
        assert_eq!(p.run.timeout_secs, 3600);
    }

    #[test]
    fn refuses_typos_and_unknown_gates() {
        let e = Policy::from_toml("[schema]\nallow_majr = true\n", "vaia.toml").unwrap_err();
        assert!(
            e.to_string().contains("vaia.toml") && e.to_string().contains("allow_majr"),
            "{e}"
        );
        let e = Policy::from_toml("[stages]\nci = [\"latency\"]\n", "x.toml").unwrap_err();
        assert!(e.to_string().contains("unknown gate"), "{e}");
        let e = Policy::from_toml(
            "[stages]\nci = [\"schema\"]\nstaging = [\"schema\"]\n",
            "x.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("more than once"), "{e}");
    }

    #[test]
    fn staging_can_take_the_schema_gate() {
        let p = Policy::from_toml("[stages]\nci = []\nstaging = [\"schema\"]\n", "x").unwrap();
        assert!(p.gates(Stage::Ci).is_empty());
        assert_eq!(p.gates(Stage::Staging)[0].as_str(), "schema");
    }
}
