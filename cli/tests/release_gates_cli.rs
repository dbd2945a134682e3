//! `vaia gate security` and `vaia gate latency` as users run them: verdict JSON on stdout,
//! the exit-code contract (0 pass, 1 fail, 2 bad input or usage, 3 inconclusive or error),
//! SARIF output, and the latency baseline from a real Prometheus server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../shared/gates/tests/support/prometheus.rs"]
mod prom;

use std::process::{Command, Output};

const TRIVY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/gates/tests/fixtures/trivy"
);
const LOCUST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/gates/tests/fixtures/locust"
);

fn vaia(gate: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vaia"))
        .arg("gate")
        .arg(gate)
        .args(args)
        .output()
        .unwrap()
}

fn verdict(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a verdict ({e}): {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn t(name: &str) -> String {
    format!("{TRIVY}/{name}")
}

fn l(name: &str) -> String {
    format!("{LOCUST}/{name}")
}

#[test]
fn security_exit_codes_and_verdicts() {
    let alpine = t("alpine-39-high-critical.json");
    let out = vaia("security", &["--report", &alpine]);
    assert_eq!(out.status.code(), Some(1));
    let v = verdict(&out);
    assert_eq!(
        (v["gate"].as_str(), v["outcome"].as_str()),
        (Some("security"), Some("fail"))
    );
    assert_eq!(v["findings"][0]["data"]["id"], "CVE-2019-14697");

    let out = vaia("security", &["--report", &alpine, "--base-report", &alpine]);
    assert_eq!(out.status.code(), Some(0), "{}", verdict(&out)["summary"]);
    assert_eq!(verdict(&out)["metrics"]["inherited"], 2);

    let busybox = t("busybox-with-lockfile.json");
    let base = t("busybox-base.json");
    assert_eq!(
        vaia("security", &["--report", &busybox]).status.code(),
        Some(0)
    );
    let out = vaia(
        "security",
        &[
            "--report",
            &busybox,
            "--base-report",
            &base,
            "--severity",
            "high,CRITICAL",
        ],
    );
    assert_eq!(out.status.code(), Some(1));

    let debian = t("debian-buster.json");
    let out = vaia(
        "security",
        &["--report", &debian, "--severity", "LOW", "--ignore-unfixed"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(verdict(&out)["metrics"]["unfixed_skipped"], 1);
}

#[test]
fn security_ignore_files_policy_and_sarif() {
    let dir = tempfile::tempdir().unwrap();
    let alpine = t("alpine-39-high-critical.json");
    let ignore = dir.path().join(".trivyignore");
    std::fs::write(&ignore, "CVE-2019-14697 exp:2999-01-01\n").unwrap();
    let sarif = dir.path().join("trivy.sarif");
    let out = vaia(
        "security",
        &[
            "--report",
            &alpine,
            "--ignore",
            ignore.to_str().unwrap(),
            "--sarif",
            sarif.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", verdict(&out)["summary"]);
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(s["version"], "2.1.0");
    assert_eq!(
        s["runs"][0]["results"].as_array().unwrap().len(),
        0,
        "ignored ones are left out"
    );

    let yaml = dir.path().join(".trivyignore.yaml");
    std::fs::write(&yaml, "vulnerabilities:\n  - id: CVE-2019-14697\n    expired_at: 2020-01-01\n    statement: old\n").unwrap();
    let out = vaia(
        "security",
        &[
            "--report",
            &alpine,
            "--ignore",
            yaml.to_str().unwrap(),
            "--sarif",
            sarif.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(verdict(&out)["summary"]
        .as_str()
        .unwrap()
        .contains("expired"));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(s["runs"][0]["results"][0]["level"], "error");

    let policy = dir.path().join("vaia.toml");
    std::fs::write(&policy, "[security]\nseverities = [\"MEDIUM\"]\n").unwrap();
    let out = vaia(
        "security",
        &[
            "--report",
            &t("busybox-with-lockfile.json"),
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "MEDIUM gates per the policy");
}

#[test]
fn security_bad_input_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("trivy.json");
    let whole = std::fs::read(t("debian-buster.json")).unwrap();
    std::fs::write(&cut, &whole[..whole.len() - 40]).unwrap();
    let out = vaia("security", &["--report", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trivy.json:"), "{err}");
    let out = vaia(
        "security",
        &["--report", &t("busybox-base.json"), "--severity", "SEVERE"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(vaia("security", &[]).status.code(), Some(2), "usage");
    let out = vaia("security", &["--report", "/nonexistent/trivy.json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn latency_fixed_baseline_exit_codes() {
    let good = l("good_stats.csv");
    let out = vaia(
        "latency",
        &["--locust-stats", &good, "--baseline-p95-ms", "140"],
    );
    assert_eq!(out.status.code(), Some(0));
    let v = verdict(&out);
    assert_eq!(v["gate"], "latency");
    assert_eq!(v["metrics"]["candidate_p95_ms"], 150.0);
    assert_eq!(v["metrics"]["baseline_source"], "fixed");
    let out = vaia(
        "latency",
        &[
            "--locust-stats",
            &good,
            "--baseline-p95-ms",
            "140",
            "--max-regression",
            "0.05",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = vaia(
        "latency",
        &[
            "--locust-stats",
            &l("slow_stats.csv"),
            "--baseline-p95-ms",
            "150",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = vaia(
        "latency",
        &[
            "--locust-stats",
            &l("failing_stats.csv"),
            "--baseline-p95-ms",
            "150",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(verdict(&out)["outcome"], "inconclusive");
    let out = vaia(
        "latency",
        &[
            "--locust-stats",
            &good,
            "--baseline-p95-ms",
            "150",
            "--endpoint",
            "POST /chat",
        ],
    );
    assert_eq!(verdict(&out)["metrics"]["candidate_p95_ms"], 160.0);
}

#[test]
fn latency_usage_and_bad_input_exit_2() {
    let good = l("good_stats.csv");
    assert_eq!(
        vaia("latency", &["--locust-stats", &good]).status.code(),
        Some(2),
        "no baseline"
    );
    assert_eq!(
        vaia(
            "latency",
            &[
                "--locust-stats",
                &good,
                "--baseline-p95-ms",
                "1",
                "--prometheus",
                "http://127.0.0.1:1"
            ]
        )
        .status
        .code(),
        Some(2),
        "two baselines"
    );
    let out = vaia(
        "latency",
        &[
            "--locust-stats",
            &t("debian-buster.json"),
            "--baseline-p95-ms",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("debian-buster.json:"));
    let out = vaia(
        "latency",
        &[
            "--locust-stats",
            &good,
            "--prometheus",
            "http://127.0.0.1:1",
            "--range",
            "soon",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    // An unreachable Prometheus is an error verdict (exit 3), not a pass.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = vaia(
        "latency",
        &[
            "--locust-stats",
            &good,
            "--prometheus",
            &format!("http://127.0.0.1:{port}"),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(verdict(&out)["outcome"], "error");
}

#[test]
fn latency_against_a_real_prometheus() {
    let Some(bin) = prom::binary("latency_against_a_real_prometheus") else {
        return;
    };
    let server = prom::Prometheus::start(&bin, prom::known_histogram());
    server.wait_for_value(vaia_gates_default_query());
    let url = server.url.clone();
    let out = vaia(
        "latency",
        &[
            "--locust-stats",
            &l("good_stats.csv"),
            "--prometheus",
            &url,
            "--range",
            "2m",
            "--step",
            "1",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = verdict(&out);
    let base = v["metrics"]["baseline_p95_ms"].as_f64().unwrap();
    assert!((base - prom::KNOWN_P95_MS).abs() < 0.5, "{base}");
    assert_eq!(v["metrics"]["range"], "2m");
    let out = vaia(
        "latency",
        &[
            "--locust-stats",
            &l("slow_stats.csv"),
            "--prometheus",
            &url,
            "--range",
            "2m",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A metric production never had: an empty baseline, inconclusive.
    let out = vaia(
        "latency",
        &[
            "--locust-stats",
            &l("good_stats.csv"),
            "--prometheus",
            &url,
            "--query",
            "histogram_quantile(0.95, sum by (le) (rate(nothing_bucket[5m])))",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(verdict(&out)["outcome"], "inconclusive");
}

fn vaia_gates_default_query() -> &'static str {
    vaia_core::policy::DEFAULT_LATENCY_QUERY
}
