//! `vaia monitoring dashboard`: the Grafana dashboard JSON is snapshotted, has the
//! datasource as a template variable, a current schemaVersion and the pipeline, agent and
//! CT panels; every panel's PromQL is evaluated by a real Prometheus (started by the test,
//! with the generated recording rules loaded so the SLO series exist) and none is a syntax
//! error or an unknown function. Without Prometheus that part skips (fails under CI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use vaia::monitoring::{dashboard, load_spec, write_rules};
use vaia_testkit::prometheus::{binary, Prometheus};

const TWO_AGENTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/monitoring/two-agents.toml"
);

#[test]
fn dashboard_snapshot_and_shape() {
    let spec = load_spec(None).unwrap();
    let text = dashboard::generate_text(&spec).unwrap();
    insta::assert_snapshot!("default_dashboard", text);
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(d["schemaVersion"], dashboard::SCHEMA_VERSION);
    assert_eq!(d["templating"]["list"][0]["type"], "datasource");
    assert_eq!(d["templating"]["list"][0]["query"], "prometheus");
    let titles: Vec<&str> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for t in [
        "Pipeline",
        "Runs by state",
        "Dead-lettered messages",
        "Continuous training",
        "Pending data volume",
    ] {
        assert!(titles.contains(&t), "{t} missing from {titles:?}");
    }
    let mut ids = std::collections::BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id");
        for t in p["targets"].as_array().into_iter().flatten() {
            assert_eq!(t["datasource"]["uid"], "${datasource}");
        }
    }
    let two = dashboard::generate(&load_spec(Some(Path::new(TWO_AGENTS))).unwrap()).unwrap();
    let agent_rows = two["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row" && p["title"].as_str().unwrap().starts_with("Agent "))
        .count();
    assert_eq!(agent_rows, 2);
}

#[test]
fn every_panel_query_evaluates_on_a_real_prometheus() {
    let Some(bin) = binary("every_panel_query_evaluates_on_a_real_prometheus") else {
        return;
    };
    let spec = load_spec(Some(Path::new(TWO_AGENTS))).unwrap();
    let prom = Prometheus::start_with_config(&bin, |dir| {
        write_rules(&spec, dir).unwrap();
        "global:\n  evaluation_interval: 1s\nrule_files:\n  - vaia-agents.rules.yml\n  - vaia-pipeline.rules.yml\n".into()
    });
    let d = dashboard::generate(&spec).unwrap();
    let queries = dashboard::queries(&d);
    assert!(queries.len() >= 15, "{queries:?}");
    for (title, expr) in &queries {
        // `query` panics on an error answer (bad syntax, unknown function), naming the query.
        let _ = prom.query(expr);
        let _ = title;
    }
    // The check can fail: a typo'd function is an error answer.
    let bad = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        prom.query("histogram_quantil(0.95, vaia_runs)")
    }));
    assert!(bad.is_err(), "an unknown function was accepted");
}
