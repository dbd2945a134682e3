//! `vaia monitoring rules`: the generated rule files and their unit tests, for the default
//! spec (the example agent) and for a spec with two agents and several SLOs, are
//! snapshotted, pass `promtool check rules`, and their generated unit tests pass
//! `promtool test rules`; a rule that drifts from its tests makes them fail. Without
//! promtool the promtool parts skip with a message (they fail under `CI=true`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use vaia::monitoring::{load_spec, rules, write_rules};

const TWO_AGENTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/monitoring/two-agents.toml"
);

fn promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    let Some(bin) = vaia_testkit::prometheus::promtool("monitoring_rules") else {
        return (true, String::new());
    };
    let out = Command::new(bin)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn check_and_test(dir: &Path) {
    let (ok, out) = promtool(
        dir,
        &["check", "rules", rules::AGENT_RULES, rules::PIPELINE_RULES],
    );
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = promtool(
        dir,
        &["test", "rules", rules::AGENT_TESTS, rules::PIPELINE_TESTS],
    );
    assert!(ok, "promtool test rules:\n{out}");
}

fn generate(spec: Option<&Path>, snapshot: &str) -> tempfile::TempDir {
    let spec = load_spec(spec).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_rules(&spec, dir.path()).unwrap();
    for name in [
        rules::AGENT_RULES,
        rules::PIPELINE_RULES,
        rules::AGENT_TESTS,
        rules::PIPELINE_TESTS,
    ] {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        insta::assert_snapshot!(format!("{snapshot}__{name}"), text);
    }
    dir
}

#[test]
fn default_spec_rules_pass_promtool_check_and_their_tests() {
    let dir = generate(None, "default");
    check_and_test(dir.path());
}

#[test]
fn two_agents_and_several_slos_pass_promtool_check_and_their_tests() {
    let dir = generate(Some(Path::new(TWO_AGENTS)), "two_agents");
    let text = std::fs::read_to_string(dir.path().join(rules::AGENT_RULES)).unwrap();
    for label in [
        "vaia_repository: acme/support-agent",
        "vaia_repository: acme/billing-agent",
        "vaia_slo: latency-tail",
    ] {
        assert!(text.contains(label), "{label} missing");
    }
    let pipeline = std::fs::read_to_string(dir.path().join(rules::PIPELINE_RULES)).unwrap();
    assert!(
        pipeline.contains(rules::PENDING_DATA_ALERT) && pipeline.contains(rules::CT_ERRORS_ALERT)
    );
    check_and_test(dir.path());
}

#[test]
fn every_alert_has_summary_description_runbook_and_agent_alerts_name_the_repository() {
    let spec = load_spec(Some(Path::new(TWO_AGENTS))).unwrap();
    for file in rules::generate(&spec).unwrap() {
        if !file.name.ends_with(".rules.yml") {
            continue;
        }
        let doc: serde_json::Value = serde_yaml_ng::from_str(&file.text).unwrap();
        for group in doc["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                let Some(alert) = rule["alert"].as_str() else {
                    continue;
                };
                for key in ["summary", "description", "runbook_url"] {
                    assert!(
                        rule["annotations"][key]
                            .as_str()
                            .is_some_and(|s| !s.is_empty()),
                        "{}: {alert} has no {key}",
                        file.name
                    );
                }
                if alert.starts_with("Agent") {
                    assert!(
                        rule["labels"]["vaia_repository"].as_str().is_some(),
                        "{alert}"
                    );
                }
            }
        }
    }
}

/// The generated unit tests are not vacuous: rules that drift from them fail them.
#[test]
fn generated_tests_fail_when_a_rule_is_broken() {
    let spec = load_spec(None).unwrap();
    for (what, from, to) in [
        ("threshold raised", "* 1000 > 500", "* 1000 > 5000"),
        ("for dropped", "for: 2m\n", "for: 0s\n"),
        ("page burn rate off", "(14.4 * 0.001)", "(144 * 0.001)"),
        (
            "stuck state ignored",
            "state=~\"TRIGGERED|CI_RUNNING|BUILD",
            "state=~\"TRIGGERED|CI_RUNNING",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_rules(&spec, dir.path()).unwrap();
        let mut changed = false;
        for name in [rules::AGENT_RULES, rules::PIPELINE_RULES] {
            let path = dir.path().join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            if text.contains(from) {
                changed = true;
                std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
            }
        }
        assert!(changed, "{what}: {from:?} not in the generated rules");
        if vaia_testkit::prometheus::promtool("monitoring_rules").is_none() {
            return;
        }
        let (ok, out) = promtool(
            dir.path(),
            &["test", "rules", rules::AGENT_TESTS, rules::PIPELINE_TESTS],
        );
        assert!(!ok, "{what}: the generated tests still pass:\n{out}");
    }
}

#[test]
fn the_cli_writes_the_files_and_refuses_a_bad_spec() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vaia"))
        .args(["monitoring", "rules", "--spec", TWO_AGENTS, "--out"])
        .arg(dir.path().join("rules"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("rules").join(rules::AGENT_TESTS).is_file());
    let bad = dir.path().join("vaia.toml");
    std::fs::write(&bad, "[monitoring]\nstuck_aftr = \"1h\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vaia"))
        .args(["monitoring", "rules", "--spec"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("vaia.toml") && err.contains("stuck_aftr"),
        "{err}"
    );
    assert!(!dir.path().join("bad").exists(), "a bad spec wrote files");
}

/// infra/monitoring holds what the generator writes for the default spec (`make
/// monitoring-generate` refreshes it).
#[test]
fn infra_monitoring_is_current() {
    let infra = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/monitoring");
    let spec = load_spec(None).unwrap();
    for file in rules::generate(&spec).unwrap() {
        let on_disk = std::fs::read_to_string(infra.join(file.name)).unwrap();
        assert_eq!(
            on_disk, file.text,
            "infra/monitoring/{} is stale: make monitoring-generate",
            file.name
        );
    }
    let dashboard = vaia::monitoring::dashboard::generate_text(&spec).unwrap();
    let on_disk = std::fs::read_to_string(infra.join("vaia-dashboard.json")).unwrap();
    assert_eq!(
        on_disk, dashboard,
        "infra/monitoring/vaia-dashboard.json is stale: make monitoring-generate"
    );
}
