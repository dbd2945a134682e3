//! The security gate over real Trivy reports of real images (Trivy's own integration-test
//! goldens, Apache-2.0; see fixtures/trivy/README.md): added versus inherited layers,
//! ignore files in both formats, live and expired, unfixed, no Results, bad input, SARIF.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::NaiveDate;
use serde_json::Value;
use vaia_core::{Outcome, Verdict};
use vaia_gates::security::sarif::to_sarif;
use vaia_gates::security::{evaluate, Input, InputError, SecurityOptions};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/trivy");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn opts(sev: &[&str], unfixed: bool) -> SecurityOptions {
    SecurityOptions::new(sev, unfixed, day("2025-06-01")).unwrap()
}

fn run(
    report: &str,
    base: Option<&str>,
    ignores: &[(&str, &[u8])],
    o: &SecurityOptions,
) -> Result<Verdict, InputError> {
    let r = fixture(report);
    let b = base.map(fixture);
    let report = Input {
        origin: report,
        bytes: &r,
    };
    let base = b.as_ref().map(|bytes| Input {
        origin: "base.json",
        bytes,
    });
    let ignores: Vec<Input> = ignores
        .iter()
        .map(|(origin, bytes)| Input { origin, bytes })
        .collect();
    evaluate(&report, base.as_ref(), &ignores, o)
}

fn rules(v: &Verdict) -> Vec<&str> {
    v.findings.iter().map(|f| f.rule.as_str()).collect()
}

fn m(v: &Verdict, k: &str) -> Value {
    v.metrics.get(k).cloned().unwrap_or(Value::Null)
}

#[test]
fn critical_in_an_added_layer_fails_with_every_field() {
    let v = run(
        "alpine-39-high-critical.json",
        None,
        &[],
        &opts(&["CRITICAL"], false),
    )
    .unwrap();
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
    assert_eq!(m(&v, "blocking"), 2);
    assert!(v.summary.contains("CVE-2019-14697"), "{}", v.summary);
    let f = &v.findings[0];
    assert_eq!(f.rule, "security.blocking");
    let d = f.data.as_ref().unwrap();
    assert_eq!(d["id"], "CVE-2019-14697");
    assert_eq!(d["package"], "musl");
    assert_eq!(d["installed_version"], "1.1.20-r4");
    assert_eq!(d["fixed_version"], "1.1.20-r5");
    assert_eq!(d["severity"], "CRITICAL");
    assert_eq!(
        d["layer"],
        "sha256:f1b5933fe4b5f49bbe8258745cf396afe07e625bdab3168e364daf7c956b6b81"
    );
    assert_eq!(
        f.location.as_deref(),
        Some("alpine-39-high-critical.json: $.Results[0].Vulnerabilities[0]")
    );
}

#[test]
fn the_same_only_in_base_layers_passes_and_is_listed() {
    // An image built FROM alpine:3.9 that adds nothing vulnerable: the base's report lists
    // the one layer, so both CRITICAL findings are inherited.
    let v = run(
        "alpine-39-high-critical.json",
        Some("alpine-39-high-critical.json"),
        &[],
        &opts(&["CRITICAL"], false),
    )
    .unwrap();
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
    assert_eq!(m(&v, "inherited"), 2);
    assert_eq!(rules(&v), ["security.inherited", "security.inherited"]);
    assert!(v.summary.contains("2 in base layers"), "{}", v.summary);
}

#[test]
fn only_added_layers_gate_in_a_two_layer_image() {
    // busybox + a Cargo.lock layer: HIGH in the added layer fails when HIGH gates.
    let o = opts(&["HIGH", "CRITICAL"], false);
    let v = run(
        "busybox-with-lockfile.json",
        Some("busybox-base.json"),
        &[],
        &o,
    )
    .unwrap();
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
    assert_eq!(m(&v, "blocking"), 1);
    assert_eq!(m(&v, "listed"), 1, "the MEDIUM one is listed, not failing");
    assert_eq!(m(&v, "base_layers"), 1);
    // CRITICAL only (the default): the HIGH is listed and the gate passes.
    let v = run(
        "busybox-with-lockfile.json",
        Some("busybox-base.json"),
        &[],
        &opts(&["CRITICAL"], false),
    )
    .unwrap();
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
    assert_eq!(m(&v, "listed"), 2);
}

#[test]
fn a_base_report_of_another_image_is_flagged() {
    let v = run(
        "alpine-39-high-critical.json",
        Some("busybox-base.json"),
        &[],
        &opts(&["CRITICAL"], false),
    )
    .unwrap();
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(
        rules(&v).contains(&"security.base_mismatch"),
        "{:?}",
        rules(&v)
    );
}

#[test]
fn trivyignore_text_live_and_expired() {
    let o = opts(&["CRITICAL"], false);
    let live: &[u8] = b"# accepted until the base moves\nCVE-2019-14697 exp:2030-01-01\n";
    let v = run(
        "alpine-39-high-critical.json",
        None,
        &[(".trivyignore", live)],
        &o,
    )
    .unwrap();
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
    assert_eq!(m(&v, "ignored"), 2);
    let d = v.findings[0].data.as_ref().unwrap();
    assert_eq!(d["ignored_by"], ".trivyignore:2");

    let expired: &[u8] = b"CVE-2019-14697 exp:2024-01-01\n";
    let v = run(
        "alpine-39-high-critical.json",
        None,
        &[(".trivyignore", expired)],
        &o,
    )
    .unwrap();
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
    assert_eq!(m(&v, "expired_ignores"), 1);
    let e = v
        .findings
        .iter()
        .find(|f| f.rule == "security.ignore_expired")
        .unwrap();
    assert_eq!(e.location.as_deref(), Some(".trivyignore:1"));
    assert!(
        e.message.contains("expired on 2024-01-01") && e.message.contains("2 matching"),
        "{}",
        e.message
    );
    assert!(
        v.summary
            .contains("1 expired ignore entry no longer ignoring"),
        "{}",
        v.summary
    );
}

#[test]
fn trivyignore_yaml_live_and_expired_with_statement_and_purls() {
    let o = opts(&["CRITICAL", "LOW"], false);
    let yaml: &[u8] = b"vulnerabilities:
  - id: CVE-2019-18224
    statement: libidn2 is not reachable from the agent
    expired_at: 2030-01-01
  - id: CVE-2019-18276
    purls:
      - pkg:deb/debian/bash
    expired_at: 2025-01-01
    statement: bash fix pending
misconfigurations: []
";
    let v = run(
        "debian-buster.json",
        None,
        &[(".trivyignore.yaml", yaml)],
        &o,
    )
    .unwrap();
    // The CRITICAL is ignored with its statement; the LOW one's entry has expired.
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
    assert_eq!(m(&v, "ignored"), 1);
    assert_eq!(m(&v, "blocking"), 1);
    let ignored = v
        .findings
        .iter()
        .find(|f| f.rule == "security.ignored")
        .unwrap();
    assert_eq!(
        ignored.data.as_ref().unwrap()["statement"],
        "libidn2 is not reachable from the agent"
    );
    let expired = v
        .findings
        .iter()
        .find(|f| f.rule == "security.ignore_expired")
        .unwrap();
    assert_eq!(
        expired.location.as_deref(),
        Some(".trivyignore.yaml at vulnerabilities[1]")
    );
    let blocking = v
        .findings
        .iter()
        .find(|f| f.rule == "security.blocking")
        .unwrap();
    assert_eq!(blocking.data.as_ref().unwrap()["id"], "CVE-2019-18276");
}

#[test]
fn ignore_unfixed_skips_findings_without_a_fixed_version() {
    // debian-buster: bash CVE-2019-18276 (LOW) has no fix ("Status": "affected").
    let v = run("debian-buster.json", None, &[], &opts(&["LOW"], false)).unwrap();
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
    let v = run("debian-buster.json", None, &[], &opts(&["LOW"], true)).unwrap();
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
    assert_eq!(m(&v, "unfixed_skipped"), 1);
    // The fixed CRITICAL is not skipped.
    let v = run("debian-buster.json", None, &[], &opts(&["CRITICAL"], true)).unwrap();
    assert_eq!(v.outcome, Outcome::Fail);
}

#[test]
fn no_results_is_a_clean_scan() {
    let v = run("busybox-base.json", None, &[], &opts(&["CRITICAL"], false)).unwrap();
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
    assert_eq!(m(&v, "vulnerabilities"), 0);
    assert!(v.summary.contains("no vulnerabilities"), "{}", v.summary);
}

#[test]
fn truncated_or_malformed_reports_are_bad_input_naming_file_and_line() {
    let whole = fixture("alpine-39-high-critical.json");
    let cut = &whole[..whole.len() / 2];
    let o = opts(&["CRITICAL"], false);
    let e = evaluate(
        &Input {
            origin: "trivy.json",
            bytes: cut,
        },
        None,
        &[],
        &o,
    )
    .unwrap_err();
    assert!(matches!(e, InputError::Json { .. }), "{e}");
    assert!(e.to_string().starts_with("trivy.json:"), "{e}");

    let wrong = br#"{"SchemaVersion": 2, "Results": [{"Target": "x", "Vulnerabilities": [{"VulnerabilityID": 7}]}]}"#;
    let e = evaluate(
        &Input {
            origin: "t.json",
            bytes: wrong,
        },
        None,
        &[],
        &o,
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("t.json:1:"), "{e}");

    let v1 = br#"{"SchemaVersion": 1, "Results": []}"#;
    let e = evaluate(
        &Input {
            origin: "t.json",
            bytes: v1,
        },
        None,
        &[],
        &o,
    )
    .unwrap_err();
    assert!(e.to_string().contains("$.SchemaVersion"), "{e}");
    let not_trivy = br#"[1, 2]"#;
    assert!(evaluate(
        &Input {
            origin: "t.json",
            bytes: not_trivy
        },
        None,
        &[],
        &o
    )
    .is_err());

    let bad_ignore: &[u8] = b"CVE-1 exp:tomorrow\n";
    let e = run(
        "busybox-base.json",
        None,
        &[(".trivyignore", bad_ignore)],
        &o,
    )
    .unwrap_err();
    assert!(e.to_string().contains(".trivyignore at line 1"), "{e}");
    assert!(SecurityOptions::new(&["SEVERE"], false, day("2025-01-01")).is_err());
}

#[test]
fn a_report_of_another_artifact_type_is_flagged() {
    let mut r: Value = serde_json::from_slice(&fixture("busybox-base.json")).unwrap();
    r["ArtifactType"] = "filesystem".into();
    let bytes = serde_json::to_vec(&r).unwrap();
    let v = evaluate(
        &Input {
            origin: "fs.json",
            bytes: &bytes,
        },
        None,
        &[],
        &opts(&["CRITICAL"], false),
    )
    .unwrap();
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.summary);
    assert_eq!(rules(&v), ["security.artifact_type"]);
}

#[test]
fn sarif_has_rules_results_and_locations() {
    let v = run(
        "alpine-39-high-critical.json",
        None,
        &[],
        &opts(&["CRITICAL"], false),
    )
    .unwrap();
    let s = to_sarif(&v);
    assert_eq!(s["version"], "2.1.0");
    let run = &s["runs"][0];
    assert_eq!(run["tool"]["driver"]["rules"].as_array().unwrap().len(), 1);
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["ruleId"], "CVE-2019-14697");
    assert_eq!(results[0]["level"], "error");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        1
    );
    assert_eq!(
        run["tool"]["driver"]["rules"][0]["properties"]["security-severity"],
        "9.5"
    );
}
