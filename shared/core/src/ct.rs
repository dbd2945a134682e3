//! Continuous training: the `[ct]` policy and the training budget, a pure function of a
//! repository's drift score and dataset growth.
//!
//! ```text
//! budget = drift_weight · drift + data_weight · min(Δrows / rows_scale, 1)
//! ```
//!
//! with the original design's defaults 0.6, 0.4 and 10,000, and a retrain due when the
//! budget is at or over `threshold` (default 0.4: see [`DEFAULT_THRESHOLD`]).
//!
//! A drift score outside [0, 1], NaN, or older than `max_drift_age` makes the evaluation
//! an `error`: it is never read as zero, and nothing is queued on it. Unknown rows make
//! the data term unknown: the evaluation is `inconclusive` unless the policy says to use
//! drift alone (`drift_alone_when_rows_unknown`).

use crate::policy::parse_duration;
use serde::{Deserialize, Serialize};

/// The default threshold. With the default weights a full data term (at least
/// `rows_scale` new rows) is exactly 0.4, so new data alone is enough to retrain once a
/// whole `rows_scale` of it has landed; drift alone needs a score of 2/3 (a majority of
/// drifted columns); and any mix in between (half the rows and drift 1/3) crosses too.
/// 0.5, the other obvious choice, would make data alone never sufficient, which defeats
/// retraining on new data.
pub const DEFAULT_THRESHOLD: f64 = 0.4;

/// The drift monitor's gauge, as the example agent's monitoring exports it.
pub const DEFAULT_DRIFT_QUERY: &str = "max(agent_drift_score)";

/// Where a deployment's drift score comes from (the DriftMonitorConfig).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftSource {
    /// An instant query of the drift monitor's gauge on the deployment's Prometheus.
    #[default]
    Prometheus,
    /// The newest drift report JSON under `drift/<owner>/<repo>/` in the artifacts bucket.
    Report,
}

/// `[ct]` in `vaia.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CtPolicy {
    pub drift_weight: f64,
    pub data_weight: f64,
    /// New rows at which the data term saturates at 1.
    pub rows_scale: u64,
    /// A budget at or over this queues a retrain.
    pub threshold: f64,
    pub drift_source: DriftSource,
    /// PromQL for the drift score (`drift_source = "prometheus"`).
    pub drift_query: String,
    /// A drift score computed longer ago than this (a Prometheus duration) is stale.
    pub max_drift_age: String,
    /// When the rows of either snapshot are unknown, compute the budget from drift alone
    /// instead of reporting the evaluation inconclusive.
    pub drift_alone_when_rows_unknown: bool,
    /// Minutes between scheduled evaluations (the SAM template's default).
    pub schedule_minutes: u32,
}

impl Default for CtPolicy {
    fn default() -> Self {
        Self {
            drift_weight: 0.6,
            data_weight: 0.4,
            rows_scale: 10_000,
            threshold: DEFAULT_THRESHOLD,
            drift_source: DriftSource::Prometheus,
            drift_query: DEFAULT_DRIFT_QUERY.into(),
            max_drift_age: "1h".into(),
            drift_alone_when_rows_unknown: false,
            schedule_minutes: 15,
        }
    }
}

impl CtPolicy {
    /// Checks the section; errors name the key (`ct.threshold: …`).
    pub fn validate(&self) -> Result<(), String> {
        for (key, w) in [
            ("ct.drift_weight", self.drift_weight),
            ("ct.data_weight", self.data_weight),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return Err(format!("{key}: {w} must be a number ≥ 0"));
            }
        }
        if self.drift_weight + self.data_weight <= 0.0 {
            return Err("ct.drift_weight, ct.data_weight: at least one must be > 0".into());
        }
        if self.rows_scale == 0 {
            return Err("ct.rows_scale: must be at least 1".into());
        }
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(format!(
                "ct.threshold: {} must be a number > 0 (0 would retrain on every evaluation)",
                self.threshold
            ));
        }
        if self.drift_query.trim().is_empty() {
            return Err("ct.drift_query: must not be empty".into());
        }
        parse_duration(&self.max_drift_age).map_err(|e| format!("ct.max_drift_age: {e}"))?;
        if self.schedule_minutes == 0 {
            return Err("ct.schedule_minutes: must be at least 1".into());
        }
        Ok(())
    }

    /// `max_drift_age` in seconds (validated policies only; 1 h otherwise).
    pub fn max_drift_age_secs(&self) -> f64 {
        parse_duration(&self.max_drift_age).unwrap_or(3600.0)
    }
}

/// What one evaluation concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CtOutcome {
    /// Budget under the threshold: nothing to do.
    Hold,
    /// Budget at or over the threshold: a retrain is due.
    Retrain,
    /// The data term is unknown and the policy does not allow drift alone.
    Inconclusive,
    /// The drift score is unusable (outside [0, 1], NaN, stale, unreachable).
    Error,
}

impl CtOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CtOutcome::Hold => "hold",
            CtOutcome::Retrain => "retrain",
            CtOutcome::Inconclusive => "inconclusive",
            CtOutcome::Error => "error",
        }
    }

    /// The gates' exit codes: 0 pass (hold), 1 fail (retrain due), 3 inconclusive or error.
    pub fn exit_code(self) -> i32 {
        match self {
            CtOutcome::Hold => 0,
            CtOutcome::Retrain => 1,
            CtOutcome::Inconclusive | CtOutcome::Error => 3,
        }
    }
}

/// The inputs of one budget computation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetInput {
    /// The drift monitor's score, or `None` when it could not be read (see `reasons`).
    pub drift: Option<f64>,
    /// Seconds since the score was computed, when known.
    pub drift_age_secs: Option<f64>,
    /// Rows of the newest snapshot minus rows of the CT baseline's; `None` when either is
    /// unknown.
    pub delta_rows: Option<i64>,
}

/// The computed budget and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub outcome: CtOutcome,
    /// `None` when the outcome is `error` or `inconclusive`.
    pub budget: Option<f64>,
    pub threshold: f64,
    pub drift: Option<f64>,
    pub drift_term: Option<f64>,
    pub delta_rows: Option<i64>,
    pub data_term: Option<f64>,
    pub reasons: Vec<String>,
}

/// The budget of one repository: pure, total (every input gives an outcome).
pub fn budget(policy: &CtPolicy, input: BudgetInput) -> Budget {
    let mut reasons = Vec::new();
    let threshold = policy.threshold;
    let error = |reasons: Vec<String>| Budget {
        outcome: CtOutcome::Error,
        budget: None,
        threshold,
        drift: input.drift.filter(|d| d.is_finite()),
        drift_term: None,
        delta_rows: input.delta_rows,
        data_term: None,
        reasons,
    };
    let Some(drift) = input.drift else {
        reasons.push("drift: no score (the drift monitor could not be read)".into());
        return error(reasons);
    };
    if drift.is_nan() {
        reasons.push("drift: NaN is not a drift score".into());
        return error(reasons);
    }
    if !(0.0..=1.0).contains(&drift) {
        reasons.push(format!("drift: {drift} is outside [0, 1]"));
        return error(reasons);
    }
    if let Some(age) = input.drift_age_secs {
        let max = policy.max_drift_age_secs();
        if !age.is_finite() || age > max {
            reasons.push(format!(
                "drift: computed {age:.0} s ago, older than ct.max_drift_age ({})",
                policy.max_drift_age
            ));
            return error(reasons);
        }
    }
    let drift_term = policy.drift_weight * drift;
    let data_term = match input.delta_rows {
        Some(delta) if delta < 0 => {
            reasons.push(format!(
                "data: the newest snapshot has {} fewer rows than the baseline's; no new data",
                delta.unsigned_abs()
            ));
            Some(0.0)
        }
        Some(delta) => {
            let growth = (delta as f64 / policy.rows_scale as f64).min(1.0);
            Some(policy.data_weight * growth)
        }
        None => {
            reasons.push(
                "data: rows unknown (the newest snapshot or the baseline's declares none)".into(),
            );
            None
        }
    };
    let total = match data_term {
        Some(d) => drift_term + d,
        None if policy.drift_alone_when_rows_unknown => {
            reasons.push("budget from drift alone (ct.drift_alone_when_rows_unknown)".into());
            drift_term
        }
        None => {
            return Budget {
                outcome: CtOutcome::Inconclusive,
                budget: None,
                threshold,
                drift: Some(drift),
                drift_term: Some(drift_term),
                delta_rows: None,
                data_term: None,
                reasons,
            }
        }
    };
    let outcome = if total >= threshold - 1e-12 {
        reasons.push(format!("budget {total:.4} ≥ threshold {threshold}"));
        CtOutcome::Retrain
    } else {
        reasons.push(format!("budget {total:.4} < threshold {threshold}"));
        CtOutcome::Hold
    };
    Budget {
        outcome,
        budget: Some(total),
        threshold,
        drift: Some(drift),
        drift_term: Some(drift_term),
        delta_rows: input.delta_rows,
        data_term,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn run(drift: f64, delta: Option<i64>) -> Budget {
        budget(
            &CtPolicy::default(),
            BudgetInput {
                drift: Some(drift),
                drift_age_secs: Some(60.0),
                delta_rows: delta,
            },
        )
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn delta_rows_edges() {
        assert!(close(run(0.0, Some(0)).data_term, 0.0));
        assert_eq!(run(0.0, Some(0)).outcome, CtOutcome::Hold);
        let b = run(0.0, Some(9_999)).budget;
        assert!(close(b, 0.4 * 0.9999), "{b:?}");
        assert_eq!(run(0.0, Some(9_999)).outcome, CtOutcome::Hold);
        // 10,000 new rows: the data term saturates at 0.4, exactly the threshold.
        assert!(close(run(0.0, Some(10_000)).budget, 0.4));
        assert_eq!(run(0.0, Some(10_000)).outcome, CtOutcome::Retrain);
        assert!(close(run(0.0, Some(10_001)).budget, 0.4));
        assert!(close(run(0.0, Some(5_000_000)).budget, 0.4));
        // Fewer rows than the baseline: no new data, never a negative term.
        let shrunk = run(0.1, Some(-500));
        assert!(close(shrunk.data_term, 0.0));
        assert!(shrunk.reasons[0].contains("500 fewer rows"), "{shrunk:?}");
    }

    #[test]
    fn drift_edges() {
        assert!(close(run(0.0, Some(0)).budget, 0.0));
        assert!(close(run(1.0, Some(0)).budget, 0.6));
        assert_eq!(run(1.0, Some(0)).outcome, CtOutcome::Retrain);
        assert!(close(run(1.0, Some(10_000)).budget, 1.0));
        // Exactly at the threshold from drift alone: 0.6 · 2/3 = 0.4.
        assert_eq!(run(2.0 / 3.0, Some(0)).outcome, CtOutcome::Retrain);
        assert_eq!(run(0.66, Some(0)).outcome, CtOutcome::Hold);
        // Mixed: half the rows and a third of drift.
        assert_eq!(run(1.0 / 3.0, Some(5_000)).outcome, CtOutcome::Retrain);
    }

    #[test]
    fn unusable_drift_is_an_error_never_zero() {
        for (drift, needle) in [
            (f64::NAN, "NaN"),
            (-0.01, "outside [0, 1]"),
            (1.01, "outside [0, 1]"),
            (f64::INFINITY, "outside [0, 1]"),
        ] {
            let b = run(drift, Some(50_000));
            assert_eq!(b.outcome, CtOutcome::Error, "{drift}");
            assert_eq!(b.budget, None);
            assert!(b.reasons.iter().any(|r| r.contains(needle)), "{b:?}");
            assert_eq!(b.outcome.exit_code(), 3);
        }
        let stale = budget(
            &CtPolicy::default(),
            BudgetInput {
                drift: Some(0.9),
                drift_age_secs: Some(3601.0),
                delta_rows: Some(50_000),
            },
        );
        assert_eq!(stale.outcome, CtOutcome::Error);
        assert!(stale.reasons[0].contains("older than ct.max_drift_age (1h)"));
        let fresh_at_bound = budget(
            &CtPolicy::default(),
            BudgetInput {
                drift: Some(0.9),
                drift_age_secs: Some(3600.0),
                delta_rows: Some(0),
            },
        );
        assert_eq!(fresh_at_bound.outcome, CtOutcome::Retrain);
        let missing = budget(
            &CtPolicy::default(),
            BudgetInput {
                drift: None,
                drift_age_secs: None,
                delta_rows: Some(50_000),
            },
        );
        assert_eq!(missing.outcome, CtOutcome::Error);
    }

    #[test]
    fn unknown_rows_are_inconclusive_unless_the_policy_allows_drift_alone() {
        let b = run(0.9, None);
        assert_eq!(b.outcome, CtOutcome::Inconclusive);
        assert_eq!(b.budget, None);
        assert!(b.reasons[0].contains("rows unknown"));
        let policy = CtPolicy {
            drift_alone_when_rows_unknown: true,
            ..CtPolicy::default()
        };
        let b = budget(
            &policy,
            BudgetInput {
                drift: Some(0.9),
                drift_age_secs: None,
                delta_rows: None,
            },
        );
        assert_eq!(b.outcome, CtOutcome::Retrain);
        assert!(close(b.budget, 0.54));
        assert_eq!(b.data_term, None);
    }

    #[test]
    fn exit_codes_follow_the_gates() {
        assert_eq!(CtOutcome::Hold.exit_code(), 0);
        assert_eq!(CtOutcome::Retrain.exit_code(), 1);
        assert_eq!(CtOutcome::Inconclusive.exit_code(), 3);
    }
}
