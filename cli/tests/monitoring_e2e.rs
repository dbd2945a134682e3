//! Rollback on alerts end to end with real servers: the example agent runs in-process and a
//! real Prometheus (Debian's `prometheus`, own storage, 127.0.0.1, 1 s scrape and
//! evaluation) scrapes it with the generated rules loaded (a 1 s `for`); a real
//! Alertmanager (`prometheus-alertmanager`) posts to a real local stack started in-process.
//! Slow agent: `AgentP95LatencyHigh` fires, the promoted run goes PROMOTED → ROLLBACK and
//! `prod` returns to the earlier version. Good agent: nothing fires, nothing changes. A
//! wrong token is 401 and changes nothing. Without the servers the tests skip with a
//! message (and fail under `CI=true`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};
use vaia::client::Client;
use vaia::monitoring::servers::Servers;
use vaia::stack::{Stack, StackConfig};
use vaia_api::alertmanager::AlertmanagerToken;
use vaia_core::layout::{alias_key, AliasRecord, AliasTarget, PROD_ALIAS};
use vaia_core::monitoring::{AgentMonitor, MonitoringPolicy, LATENCY_ALERT};
use vaia_core::policy::Policy;
use vaia_core::run::{Run, Trigger};
use vaia_core::{CommitSha, ImageDigest, PipelineState, Repository};
use vaia_example_agent::{AgentConfig, Variant};
use vaia_webhook::WebhookSecret;

const TOKEN: &str = "e2e-alertmanager-token-42";
const REPO: &str = "acme/e2e-agent";

fn servers_installed(test: &str) -> bool {
    vaia_testkit::prometheus::binary(test).is_some()
        && vaia_testkit::alertmanager::binary(test).is_some()
}

struct World {
    stack: Stack,
    run: Run,
    _dir: tempfile::TempDir,
}

/// A local stack with a PROMOTED run of REPO behind `prod` at 0.2.0, after 0.1.0.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(StackConfig {
        data_dir: dir.path().to_path_buf(),
        bind: "127.0.0.1".into(),
        port: 0,
        policy: Policy::default(),
        secret: WebhookSecret::new("e2e-webhook-secret").unwrap(),
        alertmanager_token: Some(AlertmanagerToken::new(TOKEN).unwrap()),
    })
    .await
    .unwrap();
    let repo = Repository::new(REPO).unwrap();
    let now = chrono::Utc::now() - chrono::Duration::seconds(5);
    let trigger = Trigger {
        kind: "push".into(),
        delivery: None,
        actor: None,
        at: now,
    };
    let mk = |c: char| {
        let mut r = Run::new(
            repo.clone(),
            CommitSha::new(c.to_string().repeat(40)).unwrap(),
            None,
            trigger.clone(),
            Policy::default(),
            now,
        );
        r.state = PipelineState::Promoted;
        r
    };
    let (old, run) = (mk('1'), mk('2'));
    let target = |r: &Run, v: &str| AliasTarget {
        version: v.parse().unwrap(),
        run_id: r.id.clone(),
        commit: r.commit.clone(),
        image_digest: ImageDigest::new(format!("sha256:{}", "b".repeat(64))).unwrap(),
    };
    stack.ports.store.create(&old, &[]).await.unwrap();
    stack.ports.store.create(&run, &[]).await.unwrap();
    let alias = AliasRecord {
        alias: PROD_ALIAS.into(),
        target: target(&run, "0.2.0"),
        history: vec![target(&old, "0.1.0")],
        updated_at: now,
    };
    stack
        .ports
        .blobs
        .put(
            &alias_key(&repo, PROD_ALIAS).unwrap(),
            &serde_json::to_vec(&alias).unwrap(),
        )
        .await
        .unwrap();
    World {
        stack,
        run,
        _dir: dir,
    }
}

fn spec() -> MonitoringPolicy {
    let mut agent = AgentMonitor::example().unwrap();
    agent.repository = Repository::new(REPO).unwrap();
    agent.threshold_ms = 60.0;
    agent.for_ = "1s".into();
    MonitoringPolicy {
        agents: vec![agent],
        ..MonitoringPolicy::default()
    }
}

/// Serves the agent in `variant` (slow: 120 ms an answer; good: none) under steady load.
async fn loaded_agent(
    variant: Variant,
) -> (
    vaia_example_agent::RunningAgent,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let agent = vaia_example_agent::spawn(
        AgentConfig {
            delay: Duration::from_millis(120),
            ..AgentConfig::new(variant)
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let url = agent.chat_url();
    let body = r#"{"model":"agent","messages":[{"role":"user","content":"Where is my order?"}]}"#;
    let load = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !*rx.borrow() && Instant::now() < deadline {
            let _ = vaia::loadgen::run_load(&url, body, 8, 4).await;
        }
    });
    (agent, tx, load)
}

async fn prod(stack: &Stack) -> AliasRecord {
    let bytes = stack
        .ports
        .blobs
        .get(&alias_key(&Repository::new(REPO).unwrap(), PROD_ALIAS).unwrap())
        .await
        .unwrap()
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_agent_fires_the_alert_and_the_promoted_run_rolls_back() {
    vaia_gates::http::install_tls_provider();
    if !servers_installed("slow_agent_fires_the_alert_and_the_promoted_run_rolls_back") {
        return;
    }
    let w = world().await;
    let (agent, stop, load) = loaded_agent(Variant::Slow).await;
    let hook = format!("{}/hooks/alertmanager", w.stack.url());
    let servers = Servers::start(&spec(), &agent.addr.to_string(), &hook, TOKEN)
        .await
        .unwrap();
    let client = Client::new(&w.stack.url());
    let start = Instant::now();
    let detail = loop {
        let d = client.run(w.run.id.as_str()).await.unwrap();
        if d.run.state == PipelineState::Rollback {
            break d;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no rollback after 90 s; prometheus alerts: {:?}",
            servers.alerts().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let fired = servers.alerts().await.unwrap();
    assert!(
        fired
            .iter()
            .any(|(n, s)| n == LATENCY_ALERT && s == "firing"),
        "{fired:?}"
    );
    let last = detail.events.last().unwrap();
    assert_eq!(last.to, Some(PipelineState::Rollback));
    assert_eq!(last.actor, "alertmanager");
    assert!(
        last.reason.contains(LATENCY_ALERT) && last.reason.contains("fingerprint"),
        "{}",
        last.reason
    );
    // The registry moves prod back to 0.1.0.
    let restore = Instant::now();
    while prod(&w.stack).await.target.run_id == w.run.id {
        assert!(
            restore.elapsed() < Duration::from_secs(30),
            "prod never moved back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(prod(&w.stack).await.target.version.to_string(), "0.1.0");
    eprintln!(
        "rolled back {:.1} s after the servers started",
        start.elapsed().as_secs_f64()
    );
    let _ = stop.send(true);
    let _ = load.await;
    servers.stop().await;
    agent.stop().await;
    w.stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_agent_fires_nothing_and_a_wrong_token_is_refused() {
    vaia_gates::http::install_tls_provider();
    if !servers_installed("good_agent_fires_nothing_and_a_wrong_token_is_refused") {
        return;
    }
    let w = world().await;
    let (agent, stop, load) = loaded_agent(Variant::Good).await;
    let hook = format!("{}/hooks/alertmanager", w.stack.url());
    let servers = Servers::start(&spec(), &agent.addr.to_string(), &hook, TOKEN)
        .await
        .unwrap();
    let http = vaia_gates::http::client_builder().build().unwrap();
    // Wait until Prometheus computes the agent's p95, then watch ten evaluations.
    let query = |q: &str| {
        let url = format!(
            "{}/api/v1/query?query={}",
            servers.prometheus_url,
            vaia_testkit::encode(q)
        );
        let req = http.get(url);
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let p95 = vaia::monitoring::rules::p95_ms_expr("agent");
    let start = Instant::now();
    loop {
        let v = query(&p95).await;
        if v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no p95 from prometheus: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(10) {
        let fired = servers.alerts().await.unwrap();
        assert!(
            !fired.iter().any(|(n, _)| n == LATENCY_ALERT),
            "the good agent fired: {fired:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let v = query(&p95).await;
    let ms: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms < 60.0, "good p95 {ms} ms");

    // A notification with the wrong token: 401, and the run stays PROMOTED.
    let firing: serde_json::Value =
        serde_json::from_str(include_str!("../../events/alertmanager/firing.json")).unwrap();
    let mut note = firing.clone();
    note["alerts"][0]["labels"]["vaia_repository"] = REPO.into();
    note["alerts"][0]["startsAt"] = chrono::Utc::now().to_rfc3339().into();
    let client = Client::new(&w.stack.url());
    let (status, _) = client
        .post_json_bearer("/hooks/alertmanager", "not-the-token-at-all", &note)
        .await
        .unwrap();
    assert_eq!(status, 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = client.run(w.run.id.as_str()).await.unwrap();
    assert_eq!(d.run.state, PipelineState::Promoted);
    assert_eq!(prod(&w.stack).await.target.run_id, w.run.id);
    let _ = stop.send(true);
    let _ = load.await;
    servers.stop().await;
    agent.stop().await;
    w.stack.stop().await;
}
