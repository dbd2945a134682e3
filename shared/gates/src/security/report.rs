//! The part of Trivy's JSON report (`trivy image --format json`, SchemaVersion 2) the
//! security gate reads. Unknown fields are ignored: Trivy adds fields between releases.

use super::InputError;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Report {
    pub schema_version: Option<u64>,
    #[serde(default)]
    pub artifact_name: String,
    #[serde(default)]
    pub artifact_type: String,
    #[serde(default)]
    pub metadata: Metadata,
    /// Absent when Trivy found nothing to report: a clean scan.
    #[serde(default)]
    pub results: Option<Vec<TargetResult>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Metadata {
    /// The image's layers, oldest first.
    #[serde(rename = "DiffIDs", default)]
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TargetResult {
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub class: String,
    #[serde(default)]
    pub vulnerabilities: Option<Vec<Vulnerability>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Vulnerability {
    #[serde(rename = "VulnerabilityID")]
    pub vulnerability_id: String,
    pub pkg_name: String,
    #[serde(default)]
    pub pkg_path: Option<String>,
    #[serde(default)]
    pub pkg_identifier: Option<PkgIdentifier>,
    #[serde(default)]
    pub installed_version: String,
    #[serde(default)]
    pub fixed_version: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub layer: Option<Layer>,
    pub severity: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(rename = "PrimaryURL", default)]
    pub primary_url: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PkgIdentifier {
    #[serde(rename = "PURL", default)]
    pub purl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Layer {
    #[serde(rename = "DiffID", default)]
    pub diff_id: Option<String>,
}

impl Vulnerability {
    /// Trivy leaves `FixedVersion` empty (or out) when no fix exists; newer releases also
    /// set `Status` (`affected`, `will_not_fix`, `fix_deferred`, `end_of_life`).
    pub fn is_unfixed(&self) -> bool {
        let no_version = self
            .fixed_version
            .as_deref()
            .is_none_or(|v| v.trim().is_empty());
        let unfixed_status = matches!(
            self.status.as_deref(),
            Some("affected" | "will_not_fix" | "fix_deferred" | "end_of_life")
        );
        no_version || unfixed_status
    }

    pub fn diff_id(&self) -> Option<&str> {
        self.layer
            .as_ref()
            .and_then(|l| l.diff_id.as_deref())
            .filter(|d| !d.is_empty())
    }

    pub fn purl(&self) -> Option<&str> {
        self.pkg_identifier.as_ref().and_then(|p| p.purl.as_deref())
    }
}

/// Parses a report, naming `origin` and the line and column (or JSON path) of a defect.
pub(crate) fn parse(origin: &str, bytes: &[u8]) -> Result<Report, InputError> {
    let report: Report = serde_json::from_slice(bytes).map_err(|e| InputError::Json {
        origin: origin.to_string(),
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })?;
    match report.schema_version {
        Some(2) => Ok(report),
        Some(v) => Err(InputError::Format {
            origin: origin.to_string(),
            path: "$.SchemaVersion".into(),
            reason: format!("schema version {v} is not supported (vaia reads Trivy's version 2)"),
        }),
        None => Err(InputError::Format {
            origin: origin.to_string(),
            path: "$.SchemaVersion".into(),
            reason: "missing: not a Trivy JSON report (`trivy image --format json`)".into(),
        }),
    }
}
