//! Every gate input is bounded (issue 14, defect 4): an input over its size limit — even
//! `/dev/zero`, which has no size — is bad input (exit 2) naming the file and the limit, and
//! the numbers given on the command line are refused exactly as a policy file refuses them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/gates/tests/fixtures"
);
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/agent/golden.jsonl"
);

fn vaia(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vaia"))
        .args(args)
        .env_remove("GEMINI_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 2 and a message naming `file` and `limit`.
fn refused(out: &Output, file: &str, limit: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(file) && err.contains(limit) && err.contains("too large"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no verdict on bad input");
}

#[test]
fn dev_zero_is_refused_by_every_gate_without_reading_it() {
    let zero = "/dev/zero";
    let locust = format!("{FIXTURES}/locust/good_stats.csv");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["gate", "schema", "--candidate", zero], "8 MiB"),
        (vec!["gate", "security", "--report", zero], "64 MiB"),
        (
            vec![
                "gate",
                "latency",
                "--locust-stats",
                zero,
                "--baseline-p95-ms",
                "100",
            ],
            "64 MiB",
        ),
        (
            vec![
                "gate",
                "prompt",
                "--responses",
                zero,
                "--canary",
                "VAIA-CANARY-0123456789",
            ],
            "64 MiB",
        ),
        (
            vec!["gate", "prompt", "--corpus", zero, "--responses", zero],
            "16 MiB",
        ),
        (
            vec!["gate", "eval", "--golden", zero, "--candidate", GOLDEN],
            "32 MiB",
        ),
        (
            vec!["gate", "eval", "--golden", GOLDEN, "--candidate", zero],
            "32 MiB",
        ),
        (
            vec![
                "gate",
                "latency",
                "--locust-stats",
                &locust,
                "--baseline-p95-ms",
                "100",
                "--policy",
                zero,
            ],
            "1 MiB",
        ),
    ];
    for (args, limit) in cases {
        let started = std::time::Instant::now();
        let out = vaia(&args);
        refused(&out, zero, limit);
        assert!(started.elapsed().as_secs() < 20, "{args:?} took too long");
    }
}

#[test]
fn a_file_over_its_limit_is_refused_by_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("tools.json");
    // A sparse file: 9 MiB by its metadata, no data written.
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(9 * 1024 * 1024).unwrap();
    let out = vaia(&["gate", "schema", "--candidate", big.to_str().unwrap()]);
    refused(&out, "tools.json", "the limit is 8 MiB (8388608 bytes)");
    assert!(stderr(&out).contains("9437184 bytes"), "{}", stderr(&out));
}

#[test]
fn eval_numbers_are_validated_like_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let base = [
        "gate",
        "eval",
        "--golden",
        GOLDEN,
        "--candidate",
        GOLDEN,
        "--cache-dir",
        c,
    ];
    for (flag, value, message) in [
        (
            "--threshold-pp",
            "inf",
            "--threshold-pp: inf must be a finite number of points ≥ 0",
        ),
        (
            "--threshold-pp",
            "NaN",
            "--threshold-pp: NaN must be a finite number of points ≥ 0",
        ),
        (
            "--threshold-pp",
            "-1",
            "--threshold-pp: -1 must be a finite number of points ≥ 0",
        ),
        (
            "--resamples",
            "0",
            "--resamples: 0 must be between 1 and 100000",
        ),
        (
            "--resamples",
            "1000000000",
            "--resamples: 1000000000 must be between 1 and 100000",
        ),
    ] {
        let mut args = base.to_vec();
        let given = format!("{flag}={value}");
        args.push(&given);
        let out = vaia(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{flag} {value}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(message),
            "{flag} {value}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{flag} {value}: no interval printed");
    }
    // The same threshold in a policy file is refused with the same words.
    let policy = dir.path().join("vaia.toml");
    std::fs::write(&policy, "[eval]\nthreshold_pp = -1.0\n").unwrap();
    let mut args = base.to_vec();
    args.extend(["--policy", policy.to_str().unwrap()]);
    let out = vaia(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("eval.threshold_pp: -1 must be a finite number of points ≥ 0"),
        "{}",
        stderr(&out)
    );
    // In bounds: a verdict, with the resamples asked for.
    let answers = dir.path().join("answers.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(GOLDEN)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let g: serde_json::Value = serde_json::from_str(l).unwrap();
            serde_json::json!({"id": g["id"], "answer": g["reference"]}).to_string()
        })
        .collect();
    std::fs::write(&answers, lines.join("\n")).unwrap();
    let a = answers.to_str().unwrap();
    let out = vaia(&[
        "gate",
        "eval",
        "--golden",
        GOLDEN,
        "--candidate",
        a,
        "--baseline",
        a,
        "--cache-dir",
        c,
        "--resamples",
        "1",
        "--threshold-pp",
        "0",
    ]);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(v["metrics"]["resamples"], 1, "{v}");
}

#[test]
fn locust_csv_with_more_failures_than_requests_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(format!("{FIXTURES}/locust/good_stats.csv"))
        .unwrap()
        .replace("1180,2,", "1180,1181,");
    let csv = dir.path().join("odd_stats.csv");
    std::fs::write(&csv, text).unwrap();
    let out = vaia(&[
        "gate",
        "latency",
        "--locust-stats",
        csv.to_str().unwrap(),
        "--baseline-p95-ms",
        "150",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("odd_stats.csv:2: Failure Count 1181 is more than Request Count 1180"),
        "{}",
        stderr(&out)
    );
}
