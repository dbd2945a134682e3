//! SARIF 2.1.0 for GitHub code scanning, built from a security verdict: one rule per
//! vulnerability ID, one result per vulnerable package that the gate reports (blocking,
//! listed and inherited; ignored and skipped ones are left out, as Trivy's SARIF does).
//! GitHub needs a physical location on every result: the report's target (the image or
//! the lock file) at line 1, as Trivy writes it.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use vaia_core::Verdict;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The verdict's vulnerabilities as a SARIF log.
pub fn to_sarif(verdict: &Verdict) -> Value {
    let mut rules: BTreeMap<String, Value> = BTreeMap::new();
    let mut results = Vec::new();
    for f in &verdict.findings {
        let Some(data) = &f.data else { continue };
        let level = match f.rule.as_str() {
            "security.blocking" => "error",
            "security.vulnerability" => "warning",
            "security.inherited" => "note",
            _ => continue,
        };
        let id = data["id"].as_str().unwrap_or("unknown").to_string();
        let sev = data["severity"].as_str().unwrap_or("UNKNOWN");
        let title = data["title"].as_str().unwrap_or(&id).to_string();
        let url = data["url"].as_str();
        rules.entry(id.clone()).or_insert_with(|| {
            let mut rule = json!({
                "id": id,
                "name": "OsPackageVulnerability",
                "shortDescription": { "text": title },
                "fullDescription": { "text": title },
                "defaultConfiguration": { "level": level },
                "properties": {
                    "tags": ["vulnerability", "security", sev],
                    "precision": "very-high",
                    "security-severity": security_severity(sev),
                },
            });
            if let (Some(url), Some(obj)) = (url, rule.as_object_mut()) {
                obj.insert("helpUri".into(), json!(url));
                obj.insert(
                    "help".into(),
                    json!({ "text": format!("{id}: {title}\n{url}") }),
                );
            }
            rule
        });
        let target = data["target"].as_str().unwrap_or("image");
        results.push(json!({
            "ruleId": id,
            "level": level,
            "message": { "text": format!(
                "Package: {}\nInstalled Version: {}\nFixed Version: {}\nSeverity: {sev}\nLayer: {}\n{}",
                data["package"].as_str().unwrap_or_default(),
                data["installed_version"].as_str().unwrap_or_default(),
                data["fixed_version"].as_str().unwrap_or_default(),
                data["layer"].as_str().unwrap_or_default(),
                f.message,
            ) },
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": { "uri": target, "uriBaseId": "ROOTPATH" },
                    "region": { "startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1 },
                },
            }],
        }));
    }
    let rules: Vec<Value> = rules.into_values().collect();
    json!({
        "version": "2.1.0",
        "$schema": SCHEMA,
        "runs": [{
            "tool": { "driver": {
                "name": "vaia-security-gate",
                "informationUri": "https://example.invalid/vaia",
                "fullName": "vaia security gate over Trivy reports",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            } },
            "results": results,
            "originalUriBaseIds": { "ROOTPATH": { "uri": "file:///" } },
        }],
    })
}

/// GitHub's `security-severity` (a CVSS-like score) for a Trivy severity.
fn security_severity(sev: &str) -> &'static str {
    match sev {
        "CRITICAL" => "9.5",
        "HIGH" => "8.0",
        "MEDIUM" => "5.5",
        "LOW" => "2.0",
        _ => "0.0",
    }
}
