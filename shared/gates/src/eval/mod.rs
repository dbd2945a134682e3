//! The eval-regression gate: is the candidate's answer quality on the golden set worse than
//! production's?
//!
//! Inputs: a golden set (JSONL `id`, `input`, `reference`, optional `category`), the
//! candidate's and the baseline's answers (JSONL `id`, `answer`). Both answer sets are graded
//! in the same run by the same judge ([`judge`]), so the comparison is paired per item.
//!
//! Decision, with delta = mean(candidate − baseline) in percentage points and its paired
//! bootstrap interval ([`bootstrap`], 95 %, 10,000 resamples by default):
//! - the whole interval at or above −threshold → `pass`;
//! - the whole interval below −threshold → `fail`;
//! - otherwise `inconclusive`, or `fail` when the policy says `on_inconclusive = "fail"`.
//!
//! A candidate answer that is missing scores 0 (a missing answer is a wrong one); a golden
//! item without a baseline answer is left out of the pairing and reported. With no baseline
//! at all (a first release) the candidate's mean is reported and the gate passes. Any item
//! the judge cannot grade (unreachable, refused key, refusal, malformed replies past the
//! retries) makes the verdict `error`: never a pass.

pub mod bootstrap;
pub mod judge;

use judge::{GradeCache, GradeRequest, Judge, JudgeError, Judged, RunnerOptions, Usage};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use vaia_core::{Finding, GateName, Outcome, Severity, Verdict};

pub const GATE: &str = "eval";

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GoldenItem {
    pub id: String,
    pub input: String,
    pub reference: String,
    #[serde(default)]
    pub category: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct Answer {
    pub id: String,
    pub answer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{origin}:{line}: {reason}")]
    Line {
        origin: String,
        line: usize,
        reason: String,
    },
    #[error("{origin}: {reason}")]
    File { origin: String, reason: String },
}

fn jsonl<T: serde::de::DeserializeOwned>(
    origin: &str,
    text: &str,
    id: impl Fn(&T) -> &str,
) -> Result<Vec<T>, InputError> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| InputError::Line {
            origin: origin.to_string(),
            line: i + 1,
            reason,
        };
        let item: T =
            serde_json::from_str(line).map_err(|e| bad(format!("column {}: {e}", e.column())))?;
        if let Some(first) = seen.insert(id(&item).to_string(), i + 1) {
            return Err(bad(format!(
                "id {:?} already used on line {first}",
                id(&item)
            )));
        }
        out.push(item);
    }
    Ok(out)
}

pub fn parse_golden(origin: &str, text: &str) -> Result<Vec<GoldenItem>, InputError> {
    let items = jsonl(origin, text, |g: &GoldenItem| g.id.as_str())?;
    if items.is_empty() {
        return Err(InputError::File {
            origin: origin.into(),
            reason: "the golden set is empty".into(),
        });
    }
    Ok(items)
}

pub fn parse_answers(origin: &str, text: &str) -> Result<Vec<Answer>, InputError> {
    jsonl(origin, text, |a: &Answer| a.id.as_str())
}

pub use vaia_core::policy::OnInconclusive;

#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    pub threshold_pp: f64,
    pub resamples: usize,
    pub confidence: f64,
    pub seed: u64,
    pub on_inconclusive: OnInconclusive,
    /// USD per million input/output tokens; `None` uses the list price when known.
    pub price: Option<(f64, f64)>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            threshold_pp: 2.0,
            resamples: 10_000,
            confidence: 0.95,
            seed: 0x5EED,
            on_inconclusive: OnInconclusive::Inconclusive,
            price: None,
        }
    }
}

/// One golden item's grades.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub id: String,
    pub category: String,
    pub candidate: f64,
    pub baseline: Option<f64>,
    pub candidate_missing: bool,
}

/// Token and call accounting of a judging run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accounting {
    pub calls: u64,
    pub cache_hits: u64,
    pub usage: Usage,
}

/// Grades both answer sets with `judge` and decides.
pub async fn run(
    judge: Arc<dyn Judge>,
    cache: Option<GradeCache>,
    golden: &[GoldenItem],
    candidate: &[Answer],
    baseline: Option<&[Answer]>,
    runner: &RunnerOptions,
    opts: &EvalOptions,
) -> Result<Verdict, InputError> {
    let cand: HashMap<&str, &str> = candidate
        .iter()
        .map(|a| (a.id.as_str(), a.answer.as_str()))
        .collect();
    let base: Option<HashMap<&str, &str>> = baseline.map(|b| {
        b.iter()
            .map(|a| (a.id.as_str(), a.answer.as_str()))
            .collect()
    });
    // Requests: every candidate answer present, then every baseline answer present.
    let mut requests = Vec::new();
    let mut slots: Vec<(usize, bool)> = Vec::new();
    for (i, g) in golden.iter().enumerate() {
        if let Some(a) = cand.get(g.id.as_str()) {
            requests.push(GradeRequest {
                input: g.input.clone(),
                reference: g.reference.clone(),
                answer: (*a).to_string(),
            });
            slots.push((i, true));
        }
        if let Some(a) = base.as_ref().and_then(|b| b.get(g.id.as_str())) {
            requests.push(GradeRequest {
                input: g.input.clone(),
                reference: g.reference.clone(),
                answer: (*a).to_string(),
            });
            slots.push((i, false));
        }
    }
    let results = judge::judge_all(judge.clone(), cache, requests, runner).await;
    let mut cand_scores: Vec<Option<f64>> = vec![None; golden.len()];
    let mut base_scores: Vec<Option<f64>> = vec![None; golden.len()];
    let mut acct = Accounting::default();
    let mut errors: Vec<(String, JudgeError)> = Vec::new();
    for ((i, is_cand), r) in slots.into_iter().zip(results) {
        match r {
            Ok(Judged { grade, cached, .. }) => {
                if cached {
                    acct.cache_hits += 1;
                } else {
                    acct.calls += 1;
                    acct.usage.input_tokens += grade.usage.input_tokens;
                    acct.usage.output_tokens += grade.usage.output_tokens;
                }
                if is_cand {
                    cand_scores[i] = Some(grade.score);
                } else {
                    base_scores[i] = Some(grade.score);
                }
            }
            Err(e) => errors.push((golden[i].id.clone(), e)),
        }
    }
    let price = opts
        .price
        .or_else(|| judge::list_price(judge.name(), judge.model()));
    let mut accounting = json!({
        "judge": judge.name(),
        "model": judge.model(),
        "calls": acct.calls,
        "cache_hits": acct.cache_hits,
        "input_tokens": acct.usage.input_tokens,
        "output_tokens": acct.usage.output_tokens,
        "cost_usd": price.map(|(i, o)| {
            let c = acct.usage.input_tokens as f64 * i / 1e6 + acct.usage.output_tokens as f64 * o / 1e6;
            (c * 1e6).round() / 1e6
        }),
    });
    let gate = gate_name()?;
    if !errors.is_empty() {
        let auth = errors.iter().any(|(_, e)| matches!(e, JudgeError::Auth(_)));
        let first = &errors[0];
        let mut v = Verdict::new(
            gate,
            Outcome::Error,
            format!(
                "the {} judge could not grade {} answer(s){}: {}",
                judge.name(),
                errors.len(),
                if auth { " (API key refused)" } else { "" },
                first.1
            ),
        );
        for (id, e) in errors.iter().take(20) {
            v.findings.push(
                Finding::new("eval.judge_error", Severity::High, e.to_string()).at(id.clone()),
            );
        }
        if let Some(m) = accounting.as_object_mut() {
            m.insert("errors".into(), json!(errors.len()));
        }
        v.metrics.insert("judge".into(), accounting);
        return Ok(v);
    }
    let scored: Vec<Scored> = golden
        .iter()
        .enumerate()
        .map(|(i, g)| Scored {
            id: g.id.clone(),
            category: g.category.clone().unwrap_or_else(|| "default".into()),
            candidate: cand_scores[i].unwrap_or(0.0),
            baseline: base_scores[i],
            candidate_missing: cand_scores[i].is_none(),
        })
        .collect();
    let mut v = decide(&scored, baseline.is_some(), opts)?;
    if let Some(m) = accounting.as_object_mut() {
        m.insert("errors".into(), json!(0));
    }
    v.metrics.insert("judge".into(), accounting);
    Ok(v)
}

fn gate_name() -> Result<GateName, InputError> {
    GateName::new(GATE).map_err(|e| InputError::File {
        origin: GATE.into(),
        reason: e.to_string(),
    })
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The decision over graded items (pure).
pub fn decide(
    items: &[Scored],
    has_baseline: bool,
    opts: &EvalOptions,
) -> Result<Verdict, InputError> {
    let gate = gate_name()?;
    let n = items.len() as f64;
    let cand_mean = if items.is_empty() {
        0.0
    } else {
        items.iter().map(|s| s.candidate).sum::<f64>() / n
    };
    let missing: Vec<&str> = items
        .iter()
        .filter(|s| s.candidate_missing)
        .map(|s| s.id.as_str())
        .collect();
    let paired: Vec<&Scored> = items.iter().filter(|s| s.baseline.is_some()).collect();
    let unpaired = items.len() - paired.len();

    let mut findings = Vec::new();
    if !missing.is_empty() {
        findings.push(
            Finding::new(
                "eval.missing_answer",
                Severity::Medium,
                format!(
                    "{} golden item(s) have no candidate answer (scored 0)",
                    missing.len()
                ),
            )
            .with_data(json!(missing)),
        );
    }
    if !has_baseline {
        let mut v = Verdict::new(
            gate,
            Outcome::Pass,
            format!(
                "no production baseline to compare with: candidate mean {:.1}% over {} items",
                cand_mean * 100.0,
                items.len()
            ),
        )
        .metric("items", items.len() as u64)
        .metric("candidate_mean", r3(cand_mean))
        .metric("baseline_mean", Value::Null);
        v.findings = findings;
        return Ok(v);
    }
    if paired.is_empty() {
        let mut v = Verdict::new(
            gate,
            Outcome::Error,
            "no golden item has a baseline answer: nothing to compare",
        );
        v.findings = findings;
        return Ok(v);
    }
    let diffs: Vec<f64> = paired
        .iter()
        .map(|s| s.candidate - s.baseline.unwrap_or(0.0))
        .collect();
    let ci = bootstrap::paired_bootstrap(&diffs, opts.resamples, opts.confidence, opts.seed);
    let (delta, lo, hi) = (ci.mean * 100.0, ci.lo * 100.0, ci.hi * 100.0);
    let base_mean = paired
        .iter()
        .map(|s| s.baseline.unwrap_or(0.0))
        .sum::<f64>()
        / paired.len() as f64;
    let paired_cand = paired.iter().map(|s| s.candidate).sum::<f64>() / paired.len() as f64;
    let t = -opts.threshold_pp;
    let interval = format!(
        "{delta:+.2} pp, {:.0}% CI [{lo:+.2}, {hi:+.2}]",
        opts.confidence * 100.0
    );
    let (outcome, summary) = if lo >= t {
        (
            Outcome::Pass,
            format!(
                "candidate vs production {interval}: within the {:.1} pp threshold",
                opts.threshold_pp
            ),
        )
    } else if hi < t {
        (
            Outcome::Fail,
            format!(
                "candidate regressed {interval}: more than {:.1} pp below production",
                opts.threshold_pp
            ),
        )
    } else {
        let reason = format!("candidate vs production {interval} straddles the −{:.1} pp threshold over {} paired items", opts.threshold_pp, paired.len());
        match opts.on_inconclusive {
            OnInconclusive::Inconclusive => (
                Outcome::Inconclusive,
                format!("{reason}: more samples needed"),
            ),
            OnInconclusive::Fail => (
                Outcome::Fail,
                format!("{reason}; policy on_inconclusive = fail"),
            ),
        }
    };

    let mut per_cat: BTreeMap<&str, (f64, f64, u64)> = BTreeMap::new();
    for s in &paired {
        let e = per_cat.entry(s.category.as_str()).or_default();
        e.0 += s.candidate;
        e.1 += s.baseline.unwrap_or(0.0);
        e.2 += 1;
    }
    let mut by_category = Map::new();
    for (cat, (c, b, k)) in per_cat {
        let k = k as f64;
        by_category.insert(
            cat.to_string(),
            json!({
                "items": k as u64,
                "candidate_mean": r3(c / k),
                "baseline_mean": r3(b / k),
                "delta_pp": r3((c - b) / k * 100.0),
            }),
        );
    }
    let mut regressed = Vec::new();
    let mut improved = Vec::new();
    for s in &paired {
        let b = s.baseline.unwrap_or(0.0);
        if b >= 0.5 && s.candidate < 0.5 {
            regressed.push(s);
        } else if b < 0.5 && s.candidate >= 0.5 {
            improved.push(s);
        }
    }
    for s in &regressed {
        findings.push(
            Finding::new("eval.flip.regressed", Severity::Medium, format!("{} ({}) went from {:.2} to {:.2}", s.id, s.category, s.baseline.unwrap_or(0.0), s.candidate))
                .at(s.id.clone())
                .with_data(json!({"id": s.id, "category": s.category, "baseline": s.baseline, "candidate": s.candidate})),
        );
    }
    for s in &improved {
        findings.push(
            Finding::new(
                "eval.flip.improved",
                Severity::Info,
                format!(
                    "{} ({}) went from {:.2} to {:.2}",
                    s.id,
                    s.category,
                    s.baseline.unwrap_or(0.0),
                    s.candidate
                ),
            )
            .at(s.id.clone()),
        );
    }
    let mut v = Verdict::new(gate, outcome, summary)
        .metric("items", items.len() as u64)
        .metric("paired", paired.len() as u64)
        .metric("unpaired", unpaired as u64)
        .metric("candidate_mean", r3(paired_cand))
        .metric("baseline_mean", r3(base_mean))
        .metric("delta_pp", r3(delta))
        .metric("ci_low_pp", r3(lo))
        .metric("ci_high_pp", r3(hi))
        .metric("confidence", opts.confidence)
        .metric("resamples", opts.resamples as u64)
        .metric("threshold_pp", opts.threshold_pp)
        .metric("flipped_regressed", regressed.len() as u64)
        .metric("flipped_improved", improved.len() as u64)
        .metric("by_category", Value::Object(by_category));
    v.findings = findings;
    Ok(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn items(pairs: &[(f64, f64)]) -> Vec<Scored> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, (c, b))| Scored {
                id: format!("q{i}"),
                category: if i % 2 == 0 { "a".into() } else { "b".into() },
                candidate: *c,
                baseline: Some(*b),
                candidate_missing: false,
            })
            .collect()
    }

    #[test]
    fn same_quality_passes_regression_fails_noise_is_inconclusive() {
        let opts = EvalOptions {
            resamples: 2000,
            ..Default::default()
        };
        let same = items(&[(1.0, 1.0); 40]);
        assert_eq!(decide(&same, true, &opts).unwrap().outcome, Outcome::Pass);

        let mut worse = vec![(1.0, 1.0); 30];
        worse.extend([(0.0, 1.0); 10]);
        let v = decide(&items(&worse), true, &opts).unwrap();
        assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
        assert_eq!(v.metrics["flipped_regressed"], 10);
        assert!(v.metrics["ci_high_pp"].as_f64().unwrap() < -2.0);
        assert!(v.metrics["by_category"]["a"]["delta_pp"].as_f64().unwrap() < 0.0);

        // One flip either way among few items: the interval straddles −2 pp.
        let noisy = items(&[
            (1.0, 0.0),
            (0.0, 1.0),
            (1.0, 1.0),
            (0.0, 1.0),
            (1.0, 0.0),
            (1.0, 1.0),
            (0.5, 0.5),
            (1.0, 1.0),
        ]);
        let v = decide(&noisy, true, &opts).unwrap();
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.summary);
        assert!(v.summary.contains("straddles"));
        let strict = EvalOptions {
            on_inconclusive: OnInconclusive::Fail,
            ..opts.clone()
        };
        assert_eq!(
            decide(&noisy, true, &strict).unwrap().outcome,
            Outcome::Fail
        );
    }

    #[test]
    fn no_baseline_reports_the_candidate() {
        let v = decide(&items(&[(0.5, 0.0)]), false, &EvalOptions::default()).unwrap();
        assert_eq!(v.outcome, Outcome::Pass);
        assert_eq!(v.metrics["candidate_mean"], 0.5);
    }

    #[test]
    fn parse_errors_name_the_line() {
        let e = parse_golden("g.jsonl", "{\"id\":\"1\",\"input\":\"q\",\"reference\":\"r\"}\n{\"id\":\"1\",\"input\":\"q\",\"reference\":\"r\"}").unwrap_err();
        assert!(e.to_string().starts_with("g.jsonl:2:"), "{e}");
        assert!(parse_answers("a", "{\"id\":\"1\"}")
            .unwrap_err()
            .to_string()
            .starts_with("a:1:"));
        assert!(parse_golden("g", "\n").is_err());
    }

    #[tokio::test]
    async fn local_judge_end_to_end() {
        let golden = parse_golden("g", "{\"id\":\"1\",\"input\":\"How long for returns?\",\"reference\":\"Returns are accepted within 30 days.\"}\n{\"id\":\"2\",\"input\":\"Shipping?\",\"reference\":\"Standard shipping takes 3 to 5 business days.\"}").unwrap();
        let good = vec![
            Answer {
                id: "1".into(),
                answer: "Returns are accepted within 30 days.".into(),
            },
            Answer {
                id: "2".into(),
                answer: "Standard shipping takes 3 to 5 business days.".into(),
            },
        ];
        let bad = vec![Answer {
            id: "1".into(),
            answer: "Not sure.".into(),
        }];
        let j: Arc<dyn Judge> = Arc::new(judge::LocalJudge);
        let opts = EvalOptions {
            resamples: 500,
            ..Default::default()
        };
        let v = run(
            j.clone(),
            None,
            &golden,
            &good,
            Some(&good),
            &RunnerOptions::default(),
            &opts,
        )
        .await
        .unwrap();
        assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
        assert_eq!(v.metrics["judge"]["calls"], 4);
        let v = run(
            j,
            None,
            &golden,
            &bad,
            Some(&good),
            &RunnerOptions::default(),
            &opts,
        )
        .await
        .unwrap();
        assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
        assert_eq!(v.metrics["delta_pp"], -100.0);
    }
}
