//! `vaia gate schema` as users run it: verdict JSON on stdout, the exit-code contract
//! (0 pass, 1 fail, 2 bad input or usage), and errors that name the file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/demo");

fn gate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vaia"))
        .arg("gate")
        .arg("schema")
        .args(args)
        .output()
        .unwrap()
}

fn verdict(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a verdict ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn pass_alone_and_additive_against_a_baseline() {
    let v1 = format!("{DEMO}/tools-v1.json");
    let v2 = format!("{DEMO}/tools-v2.json");
    let out = gate(&["--candidate", &v1]);
    assert_eq!(out.status.code(), Some(0));
    let v = verdict(&out);
    assert_eq!(v["gate"], "schema");
    assert_eq!(v["outcome"], "pass");
    assert!(v["summary"].is_string() && v["findings"].is_array() && v["metrics"].is_object());

    let out = gate(&["--candidate", &v2, "--baseline", &v1]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(verdict(&out)["metrics"]["bump"], "minor");
}

#[test]
fn breaking_change_fails_unless_a_major_bump_is_allowed() {
    let v2 = format!("{DEMO}/tools-v2.json");
    let v3 = format!("{DEMO}/tools-v3-breaking.json");
    let out = gate(&["--candidate", &v3, "--baseline", &v2]);
    assert_eq!(out.status.code(), Some(1));
    let v = verdict(&out);
    assert_eq!(v["outcome"], "fail");
    assert_eq!(v["metrics"]["bump"], "major");
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["rule"] == "schema.breaking.tool-removed"));

    let out = gate(&["--candidate", &v3, "--baseline", &v2, "--allow-major"]);
    assert_eq!(out.status.code(), Some(0));

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("vaia.toml");
    std::fs::write(&policy, "[schema]\nallow_major = true\n").unwrap();
    let out = gate(&[
        "--candidate",
        &v3,
        "--baseline",
        &v2,
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn bad_input_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"tools\": [\n  {\"type\": \"function\",}\n]}").unwrap();
    let out = gate(&["--candidate", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.json:2:"), "{err}");

    let out = gate(&["--candidate", "/nonexistent/tools.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/tools.json"));

    let policy = dir.path().join("vaia.toml");
    std::fs::write(&policy, "[schema]\nallow_majr = true\n").unwrap();
    let v1 = format!("{DEMO}/tools-v1.json");
    let out = gate(&["--candidate", &v1, "--policy", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_majr"));

    // Usage errors are 2 as well.
    assert_eq!(gate(&["--no-such-flag"]).status.code(), Some(2));
    assert_eq!(gate(&[]).status.code(), Some(2));
}
