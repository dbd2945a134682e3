//! The security gate: does the candidate image add a vulnerability of a blocking severity?
//!
//! Input is Trivy's JSON report of the image (`trivy image --format json`, SchemaVersion 2).
//! Every vulnerability becomes a finding with its ID, package, installed and fixed versions,
//! severity, layer DiffID and title. Only vulnerabilities of the configured severities
//! (default `CRITICAL`) in layers the image adds make the gate fail: given the base image's
//! report, its `Metadata.DiffIDs` are the inherited layers, and what lies in them is listed
//! (`security.inherited`) but does not fail — the fix belongs to the base image.
//!
//! Trivy's ignore files ([`ignore`]) suppress by ID (and path or purl); an expired entry no
//! longer ignores, and each expired entry is a finding of its own. `ignore_unfixed` skips
//! vulnerabilities with no fixed version, as `trivy --ignore-unfixed` does.
//!
//! A report without `Results` is a clean scan. A report that is not JSON, is truncated, or
//! is not SchemaVersion 2 is bad input ([`InputError`], naming file and line or path). A
//! report of another artifact type than `container_image` cannot say which layer a package
//! came from: it is flagged, and the gate is inconclusive unless it fails anyway.

pub mod ignore;
mod report;
pub mod sarif;

use chrono::NaiveDate;
use ignore::IgnoreEntry;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use vaia_core::{Finding, GateName, Outcome, Severity, Verdict};

pub const GATE: &str = "security";

/// Trivy's severities, lowest first.
pub const SEVERITIES: &[&str] = vaia_core::policy::TRIVY_SEVERITIES;

/// A Trivy report or ignore file: `origin` names it in errors (a path or blob key).
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub origin: &'a str,
    pub bytes: &'a [u8],
}

/// The input cannot be read at all (the CLI exits 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{origin}:{line}:{column}: {reason}")]
    Json {
        origin: String,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{origin} at {path}: {reason}")]
    Format {
        origin: String,
        path: String,
        reason: String,
    },
    #[error("unknown severity {0:?} (one of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL)")]
    Severity(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecurityOptions {
    /// Trivy severities that fail the gate in added layers (upper case).
    pub severities: BTreeSet<String>,
    pub ignore_unfixed: bool,
    /// The day ignore entries are judged on (expiry); the caller's clock keeps this pure.
    pub today: NaiveDate,
}

impl SecurityOptions {
    /// Options failing on `severities` (case-insensitive Trivy names).
    pub fn new<S: AsRef<str>>(
        severities: &[S],
        ignore_unfixed: bool,
        today: NaiveDate,
    ) -> Result<Self, InputError> {
        let severities = severities
            .iter()
            .map(|s| {
                let up = s.as_ref().trim().to_ascii_uppercase();
                if SEVERITIES.contains(&up.as_str()) {
                    Ok(up)
                } else {
                    Err(InputError::Severity(s.as_ref().to_string()))
                }
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(Self {
            severities,
            ignore_unfixed,
            today,
        })
    }
}

fn severity(trivy: &str) -> Severity {
    match trivy {
        "CRITICAL" => Severity::Critical,
        "HIGH" => Severity::High,
        "MEDIUM" => Severity::Medium,
        "LOW" => Severity::Low,
        _ => Severity::Info,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Blocking,
    Listed,
    Inherited,
    Ignored,
    Unfixed,
}

impl Class {
    fn rule(self) -> &'static str {
        match self {
            Class::Blocking => "security.blocking",
            Class::Listed => "security.vulnerability",
            Class::Inherited => "security.inherited",
            Class::Ignored => "security.ignored",
            Class::Unfixed => "security.unfixed_skipped",
        }
    }
}

/// Evaluates `report` (with the base image's report and ignore files, when given).
pub fn evaluate(
    report: &Input,
    base: Option<&Input>,
    ignores: &[Input],
    opts: &SecurityOptions,
) -> Result<Verdict, InputError> {
    let image = report::parse(report.origin, report.bytes)?;
    let base_report = base.map(|b| report::parse(b.origin, b.bytes)).transpose()?;
    let mut entries: Vec<IgnoreEntry> = Vec::new();
    for i in ignores {
        entries.extend(ignore::parse(i.origin, i.bytes)?);
    }
    let (live, expired): (Vec<&IgnoreEntry>, Vec<&IgnoreEntry>) =
        entries.iter().partition(|e| !e.expired(opts.today));
    let inherited: BTreeSet<&str> = base_report
        .as_ref()
        .map(|b| b.metadata.diff_ids.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let image_layers: BTreeSet<&str> = image.metadata.diff_ids.iter().map(String::as_str).collect();

    let mut findings = Vec::new();
    let mut counts: BTreeMap<Class, usize> = BTreeMap::new();
    let mut by_severity: BTreeMap<String, usize> = BTreeMap::new();
    let mut blocking_short = Vec::new();
    let mut expired_hits: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0usize;

    for (ri, result) in image.results.iter().flatten().enumerate() {
        for (vi, v) in result.vulnerabilities.iter().flatten().enumerate() {
            total += 1;
            let sev = v.severity.to_ascii_uppercase();
            *by_severity.entry(sev.to_ascii_lowercase()).or_default() += 1;
            let covers = |e: &IgnoreEntry| {
                e.covers(
                    &v.vulnerability_id,
                    &result.target,
                    v.pkg_path.as_deref(),
                    v.purl(),
                )
            };
            let ignored_by = live.iter().find(|e| covers(e));
            for e in expired.iter().filter(|e| covers(e)) {
                *expired_hits.entry(e.location.clone()).or_default() += 1;
            }
            let in_base = v.diff_id().is_some_and(|d| inherited.contains(d));
            let class = if let Some(_e) = ignored_by {
                Class::Ignored
            } else if opts.ignore_unfixed && v.is_unfixed() {
                Class::Unfixed
            } else if in_base {
                Class::Inherited
            } else if opts.severities.contains(&sev) {
                Class::Blocking
            } else {
                Class::Listed
            };
            *counts.entry(class).or_default() += 1;
            let fixed = v.fixed_version.as_deref().filter(|f| !f.is_empty());
            let short = format!(
                "{} in {} {}{}",
                v.vulnerability_id,
                v.pkg_name,
                v.installed_version,
                fixed
                    .map(|f| format!(" (fixed in {f})"))
                    .unwrap_or_default()
            );
            let mut message = format!("{sev} {short}");
            match class {
                Class::Inherited => message.push_str(": in a base-image layer, not failing"),
                Class::Ignored => message.push_str(": ignored"),
                Class::Unfixed => message.push_str(": no fixed version, skipped"),
                Class::Blocking | Class::Listed => {
                    if v.diff_id().is_none() && base_report.is_some() {
                        message.push_str(" (no layer in the report: counted as added)");
                    }
                }
            }
            if class == Class::Blocking {
                blocking_short.push(short);
            }
            let mut data = json!({
                "id": v.vulnerability_id,
                "package": v.pkg_name,
                "installed_version": v.installed_version,
                "fixed_version": fixed,
                "severity": sev,
                "layer": v.diff_id(),
                "title": v.title,
                "target": result.target,
                "class": result.class,
                "url": v.primary_url,
            });
            if let (Some(e), Some(obj)) = (ignored_by, data.as_object_mut()) {
                obj.insert("ignored_by".into(), json!(e.location));
                obj.insert("statement".into(), json!(e.statement));
            }
            let finding_severity = if class == Class::Blocking || class == Class::Listed {
                severity(&sev)
            } else {
                Severity::Info
            };
            findings.push(
                Finding::new(class.rule(), finding_severity, message)
                    .at(format!(
                        "{}: $.Results[{ri}].Vulnerabilities[{vi}]",
                        report.origin
                    ))
                    .with_data(data),
            );
        }
    }

    for e in &expired {
        let hits = expired_hits.get(&e.location).copied().unwrap_or(0);
        let date = e.expires.map(|d| d.to_string()).unwrap_or_default();
        findings.push(
            Finding::new(
                "security.ignore_expired",
                Severity::Medium,
                format!(
                    "ignore entry for {} expired on {date}: no longer ignored ({} matching finding{})",
                    e.id,
                    hits,
                    if hits == 1 { "" } else { "s" }
                ),
            )
            .at(e.location.clone())
            .with_data(json!({ "id": e.id, "expired_at": date, "statement": e.statement, "matches": hits })),
        );
    }

    let wrong_type = image.artifact_type != "container_image";
    if wrong_type {
        findings.push(
            Finding::new(
                "security.artifact_type",
                Severity::High,
                format!(
                    "the report is of a {:?}, not a container_image: layers cannot be told apart",
                    image.artifact_type
                ),
            )
            .at(format!("{}: $.ArtifactType", report.origin)),
        );
    }
    let mut base_mismatch = false;
    if let (Some(b), Some(base_input)) = (&base_report, base) {
        if !b.metadata.diff_ids.is_empty()
            && !b
                .metadata
                .diff_ids
                .iter()
                .any(|d| image_layers.contains(d.as_str()))
        {
            base_mismatch = true;
            findings.push(
                Finding::new(
                    "security.base_mismatch",
                    Severity::Medium,
                    "none of the base report's layers is in the image: is it the right base image?",
                )
                .at(format!("{}: $.Metadata.DiffIDs", base_input.origin)),
            );
        }
    }

    let n = |c: Class| counts.get(&c).copied().unwrap_or(0);
    let blocking = n(Class::Blocking);
    let outcome = if blocking > 0 {
        Outcome::Fail
    } else if wrong_type {
        Outcome::Inconclusive
    } else {
        Outcome::Pass
    };
    let gating = opts
        .severities
        .iter()
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    let name = if image.artifact_name.is_empty() {
        report.origin.to_string()
    } else {
        image.artifact_name.clone()
    };
    let mut parts = Vec::new();
    if blocking > 0 {
        let more = blocking_short.len().saturating_sub(3);
        let mut list = blocking_short
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if more > 0 {
            list.push_str(&format!(", +{more} more"));
        }
        parts.push(format!("{blocking} {gating} in added layers ({list})"));
    } else if total == 0 {
        parts.push("no vulnerabilities".to_string());
    } else {
        parts.push(format!("no {gating} in added layers"));
    }
    for (c, label) in [
        (Class::Inherited, "in base layers (not failing)"),
        (Class::Ignored, "ignored"),
        (Class::Unfixed, "unfixed skipped"),
    ] {
        if n(c) > 0 {
            parts.push(format!("{} {label}", n(c)));
        }
    }
    if !expired.is_empty() {
        parts.push(format!(
            "{} expired ignore entr{} no longer ignoring",
            expired.len(),
            if expired.len() == 1 { "y" } else { "ies" }
        ));
    }
    if wrong_type {
        parts.push(format!(
            "report is a {:?}, not a container image",
            image.artifact_type
        ));
    }
    if base_mismatch {
        parts.push("base report does not match the image's layers".to_string());
    }
    let summary = format!(
        "{name}: {total} vulnerabilit{}; {}",
        if total == 1 { "y" } else { "ies" },
        parts.join("; ")
    );

    let mut verdict = Verdict::new(gate_name(), outcome, summary)
        .metric("artifact_name", image.artifact_name.clone())
        .metric("artifact_type", image.artifact_type.clone())
        .metric("vulnerabilities", total)
        .metric("blocking", blocking)
        .metric("listed", n(Class::Listed))
        .metric("inherited", n(Class::Inherited))
        .metric("ignored", n(Class::Ignored))
        .metric("unfixed_skipped", n(Class::Unfixed))
        .metric("expired_ignores", expired.len())
        .metric("severities", json!(opts.severities))
        .metric("by_severity", json!(by_severity))
        .metric("layers", image.metadata.diff_ids.len())
        .metric("base_layers", inherited.len())
        .metric("ignore_unfixed", opts.ignore_unfixed);
    // Blocking first, then by severity: what a reader must act on comes first.
    findings.sort_by_key(|f| (f.rule != "security.blocking", std::cmp::Reverse(f.severity)));
    verdict.findings = findings;
    Ok(verdict)
}

#[allow(clippy::expect_used)]
fn gate_name() -> GateName {
    GateName::new(GATE).expect("\"security\" is a valid gate name")
}
