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
//! [prompt]
//! max_leaks = 0            # leaks allowed before the prompt gate fails
//! canaries = []            # canary tokens that must never appear in a response
//! ngram_threshold = 0.25   # share of the system prompt's word 5-grams that is a leak
//!
//! [eval]
//! threshold_pp = 2.0       # fail when the candidate is this many points below production
//! judge = "local"          # local | gemini | openai (keys from GEMINI_API_KEY / OPENAI_API_KEY)
//! model = "gemini-2.5-flash"  # optional; the judge's default otherwise
//! on_inconclusive = "fail" # fail | inconclusive, when the interval straddles the threshold
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
pub const KNOWN_GATES: &[&str] = &["schema", "prompt", "eval"];

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub stages: Stages,
    pub schema: SchemaPolicy,
    pub prompt: PromptPolicy,
    pub eval: EvalPolicy,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptPolicy {
    /// Leaks allowed before the prompt gate fails.
    pub max_leaks: u64,
    /// Canary tokens that must never appear in a response (besides each run's fresh one).
    pub canaries: Vec<String>,
    /// Share of the system prompt's word 5-grams in a response that counts as a leak.
    pub ngram_threshold: f64,
}

impl Default for PromptPolicy {
    fn default() -> Self {
        Self {
            max_leaks: 0,
            canaries: Vec::new(),
            ngram_threshold: 0.25,
        }
    }
}

/// What the eval gate does when the confidence interval straddles the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInconclusive {
    /// Report `inconclusive`: run again with more samples.
    Inconclusive,
    /// Treat it as a failure.
    #[default]
    Fail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalPolicy {
    /// Fail when the candidate's mean score is more than this many points below production.
    pub threshold_pp: f64,
    /// `local`, `gemini` or `openai`.
    pub judge: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub on_inconclusive: OnInconclusive,
}

impl Default for EvalPolicy {
    fn default() -> Self {
        Self {
            threshold_pp: 2.0,
            judge: "local".into(),
            model: None,
            on_inconclusive: OnInconclusive::Fail,
        }
    }
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
        if !(self.eval.threshold_pp.is_finite() && self.eval.threshold_pp >= 0.0) {
            return Err(invalid("eval.threshold_pp: must be a number ≥ 0".into()));
        }
        if !["local", "gemini", "openai"].contains(&self.eval.judge.as_str()) {
            return Err(invalid(format!(
                "eval.judge: unknown judge {:?} (local, gemini, openai)",
                self.eval.judge
            )));
        }
        if !(self.prompt.ngram_threshold > 0.0 && self.prompt.ngram_threshold <= 1.0) {
            return Err(invalid("prompt.ngram_threshold: must be in (0, 1]".into()));
        }
        if self.run.timeout_secs == 0 {
            return Err(invalid("run.timeout_secs: must be at least 1".into()));
        }
        Ok(())
    }

    /// A policy that runs only the schema gate in CI (for setups without agent evidence).
    pub fn schema_only() -> Self {
        let mut p = Self::default();
        p.stages.ci = GateName::new("schema").into_iter().collect();
        p
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
        assert_eq!(p.stages.ci.len(), 3);
        assert_eq!(p.prompt.max_leaks, 0);
        assert_eq!(p.eval.threshold_pp, 2.0);
        assert_eq!(p.eval.on_inconclusive, OnInconclusive::Fail);
        assert_eq!(Policy::schema_only().stages.ci.len(), 1);
        let p = Policy::from_toml(
            "[prompt]\nmax_leaks = 2\n[eval]\nthreshold_pp = 1.5\njudge = \"gemini\"\non_inconclusive = \"inconclusive\"\n",
            "x",
        )
        .unwrap();
        assert_eq!((p.prompt.max_leaks, p.eval.threshold_pp), (2, 1.5));
        assert!(Policy::from_toml("[eval]\njudge = \"gpt\"\n", "x").is_err());
        assert!(Policy::from_toml("[eval]\nthreshold = 1\n", "x").is_err());
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
