//! The gauges of what lives in the store, in Prometheus text format: runs by state
//! (`vaia_runs`), each repository's pending data volume (`pending_data_volume_bytes`) and
//! its newest CT evaluation (`ct_training_budget`, `ct_drift_score`,
//! `ct_dataset_delta_rows`). One home for reading and rendering them: the local stack's
//! `/metrics` registers [`StoreGauges`] beside its in-process counters, and the `api`
//! function on AWS serves [`router`] (`GET /metrics`, a read behind the API's
//! authentication), so one Prometheus scrapes either the same way.
//!
//! The repositories are those the registry has records of (`registry/<owner>/<repo>/…`).
//! A value the newest evaluation does not know (its budget while it is `error`, drift it
//! could not read, unknown Δrows) is absent, never zero.

use crate::{ApiError, ApiState};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use vaia_core::ports::{BlobStore, RunStore};
use vaia_core::{PipelineState, Repository};
use vaia_ct_budget::{latest_evaluation_key, Evaluation};

/// Runs by current state.
pub const RUNS_METRIC: &str = "vaia_runs";
/// Raw-data bytes no retrain has consumed, per repository.
pub const PENDING_DATA_METRIC: &str = "pending_data_volume_bytes";
/// The newest CT evaluation's budget, drift score and Δrows, per repository.
pub const CT_BUDGET_METRIC: &str = "ct_training_budget";
pub const CT_DRIFT_METRIC: &str = "ct_drift_score";
pub const CT_DELTA_ROWS_METRIC: &str = "ct_dataset_delta_rows";
/// Where the registry's records are, one directory per repository.
const REGISTRY_PREFIX: &str = "registry/";
/// The content type of the exposition `encode` writes (OpenMetrics text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;

fn repository_label(repo: &Repository) -> Labels {
    vec![("repository".to_string(), repo.to_string())]
}

/// The store-backed gauges, registered in a [`Registry`] and refreshed from the stores at
/// scrape time.
#[derive(Clone, Default)]
pub struct StoreGauges {
    runs: Family<Labels, Gauge>,
    pending_data: Family<Labels, Gauge>,
    ct_budget: Family<Labels, Gauge<f64, AtomicU64>>,
    ct_drift: Family<Labels, Gauge<f64, AtomicU64>>,
    ct_delta_rows: Family<Labels, Gauge>,
}

impl StoreGauges {
    /// Registers the gauges (names and help: one home) in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let g = Self::default();
        registry.register(RUNS_METRIC, "Runs by current state", g.runs.clone());
        registry.register(
            PENDING_DATA_METRIC,
            "Raw-data bytes landed under raw/<owner>/<repo>/ that no retrain has consumed (the data watcher's pending volume)",
            g.pending_data.clone(),
        );
        registry.register(
            CT_BUDGET_METRIC,
            "The latest CT training budget of a repository (absent while its evaluation is error or inconclusive)",
            g.ct_budget.clone(),
        );
        registry.register(
            CT_DRIFT_METRIC,
            "The drift score the latest CT evaluation of a repository read (absent when it could not read one)",
            g.ct_drift.clone(),
        );
        registry.register(
            CT_DELTA_ROWS_METRIC,
            "Rows of a repository's newest dataset snapshot minus its CT baseline's (absent when unknown)",
            g.ct_delta_rows.clone(),
        );
        g
    }

    /// Reads every gauge from the stores: the run store's counts by state, and for each
    /// repository of the registry its pending volume and newest CT evaluation. Series of
    /// repositories (or values) no longer there are dropped.
    pub async fn refresh(
        &self,
        store: &dyn RunStore,
        blobs: &dyn BlobStore,
    ) -> Result<(), ApiError> {
        let counts = store.count_by_state().await?;
        for state in PipelineState::ALL {
            let n = counts.get(&state).copied().unwrap_or(0);
            self.runs
                .get_or_create(&vec![("state".to_string(), state.as_str().to_string())])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut pending = Vec::new();
        let mut latest = Vec::new();
        for repo in repositories(blobs).await? {
            let v = vaia_data_watcher::pending(blobs, &repo)
                .await
                .map_err(crate::ct::watch_error)?;
            pending.push((repo.clone(), v.bytes));
            let key = latest_evaluation_key(&repo)
                .map_err(|e| crate::bad_request(format!("repository {repo}: {e}")))?;
            let e: Option<Evaluation> =
                crate::registry::read_record(blobs, &key, "CT evaluation").await?;
            if let Some(e) = e {
                latest.push((repo, e));
            }
        }
        // Everything read: replace the series at once.
        self.pending_data.clear();
        self.ct_budget.clear();
        self.ct_drift.clear();
        self.ct_delta_rows.clear();
        for (repo, bytes) in pending {
            self.pending_data
                .get_or_create(&repository_label(&repo))
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        for (repo, e) in latest {
            let l = repository_label(&repo);
            if let Some(b) = e.budget.budget {
                self.ct_budget.get_or_create(&l).set(b);
            }
            if let Some(d) = e.budget.drift {
                self.ct_drift.get_or_create(&l).set(d);
            }
            if let Some(d) = e.budget.delta_rows {
                self.ct_delta_rows.get_or_create(&l).set(d);
            }
        }
        Ok(())
    }
}

/// The repositories the registry has records of, in order.
pub async fn repositories(blobs: &dyn BlobStore) -> Result<BTreeSet<Repository>, ApiError> {
    let mut out = BTreeSet::new();
    for meta in blobs.list(REGISTRY_PREFIX).await? {
        let Some(rest) = meta.key.as_str().strip_prefix(REGISTRY_PREFIX) else {
            continue;
        };
        let mut parts = rest.splitn(3, '/');
        if let (Some(owner), Some(name), Some(_)) = (parts.next(), parts.next(), parts.next()) {
            if let Ok(repo) = Repository::new(format!("{owner}/{name}")) {
                out.insert(repo);
            }
        }
    }
    Ok(out)
}

/// The store-backed gauges alone, rendered (what the `api` function serves).
pub async fn render(store: &dyn RunStore, blobs: &dyn BlobStore) -> Result<String, ApiError> {
    let mut registry = Registry::default();
    StoreGauges::register(&mut registry)
        .refresh(store, blobs)
        .await?;
    encode_registry(&registry)
}

/// `registry` in the text exposition format.
pub fn encode_registry(registry: &Registry) -> Result<String, ApiError> {
    let mut out = String::new();
    encode(&mut out, registry).map_err(|e| {
        ApiError(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        )
    })?;
    Ok(out)
}

/// A Prometheus exposition as an HTTP answer.
pub fn exposition(text: String) -> Response {
    ([("content-type", CONTENT_TYPE)], text).into_response()
}

/// `GET /metrics`: the store-backed gauges (the `api` function's; the local stack serves
/// its own, which include these).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/metrics", get(serve))
        .with_state(state)
}

async fn serve(State(s): State<ApiState>) -> Result<Response, ApiError> {
    Ok(exposition(render(&*s.store, &*s.blobs).await?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use std::sync::Arc;
    use tower::ServiceExt;
    use vaia_core::memory::{ManualClock, MemoryBlobStore, MemoryQueue, MemoryRunStore};
    use vaia_core::ports::Clock;
    use vaia_ct_budget::drift::ReportDrift;
    use vaia_ct_budget::{seed, CtBudget};

    async fn scrape(app: &Router) -> (StatusCode, String, String) {
        let res = app
            .clone()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    /// The value of the one sample named `series` (with its labels), if present.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    #[tokio::test]
    async fn gauges_follow_the_store() {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let blobs = Arc::new(MemoryBlobStore::new(None));
        let store = Arc::new(MemoryRunStore::new());
        let queue = Arc::new(MemoryQueue::new(clock.clone(), 5));
        let app = router(ApiState {
            store: store.clone(),
            blobs: blobs.clone(),
            queue: queue.clone(),
        });
        // Nothing yet: every state at zero, no repository series.
        let (status, ct, text) = scrape(&app).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, CONTENT_TYPE);
        assert_eq!(sample(&text, "vaia_runs{state=\"PROMOTED\"}"), Some(0.0));
        assert!(!text.contains("repository="), "{text}");

        // A promoted repository with raw data pending and an evaluation over threshold.
        let now = clock.now();
        let repo = Repository::new("octo/agent").unwrap();
        seed::promoted(
            blobs.as_ref(),
            &repo,
            semver::Version::new(1, 0, 0),
            &"a".repeat(32),
            Some(100_000),
            now,
        )
        .await
        .unwrap();
        let raw = Arc::new(vaia_data_watcher::BlobRawData(blobs.clone()));
        let watcher = vaia_data_watcher::DataWatcher::new(blobs.clone(), raw, clock.clone());
        for (key, size) in [
            ("raw/octo/agent/a b.csv", 300),
            ("raw/octo/agent/é.csv", 700),
        ] {
            watcher
                .observe(&vaia_data_watcher::RawObject {
                    key: key.into(),
                    size,
                    sequencer: None,
                })
                .await
                .unwrap();
        }
        let (_, _, text) = scrape(&app).await;
        assert_eq!(
            sample(
                &text,
                "pending_data_volume_bytes{repository=\"octo/agent\"}"
            ),
            Some(1000.0),
            "{text}"
        );
        assert!(
            !text.contains("ct_training_budget{"),
            "not evaluated yet: {text}"
        );

        seed::drift_report(blobs.as_ref(), &repo, 0.1, now)
            .await
            .unwrap();
        seed::snapshot(blobs.as_ref(), &repo, &"b".repeat(32), Some(105_000), now)
            .await
            .unwrap();
        let ct = CtBudget::new(
            blobs.clone(),
            queue.clone(),
            clock.clone(),
            Default::default(),
            Arc::new(ReportDrift {
                blobs: blobs.clone(),
            }),
        );
        let e = ct.evaluate(&repo).await.unwrap().unwrap();
        let (_, _, text) = scrape(&app).await;
        let l = "{repository=\"octo/agent\"}";
        assert_eq!(sample(&text, &format!("ct_drift_score{l}")), Some(0.1));
        assert_eq!(
            sample(&text, &format!("ct_dataset_delta_rows{l}")),
            Some(5_000.0)
        );
        let budget = sample(&text, &format!("ct_training_budget{l}")).unwrap();
        assert!((budget - e.budget.budget.unwrap()).abs() < 1e-12, "{text}");
        // 0.6 · 0.1 + 0.4 · 0.5 = 0.26: under the threshold, nothing consumed.
        assert_eq!(
            sample(&text, &format!("pending_data_volume_bytes{l}")),
            Some(1000.0)
        );

        // A run in flight shows in its state.
        let mut run = vaia_core::run::Run::new(
            repo.clone(),
            vaia_core::CommitSha::new("c".repeat(40)).unwrap(),
            None,
            vaia_core::run::Trigger {
                kind: "push".into(),
                delivery: None,
                actor: None,
                at: now,
            },
            vaia_core::policy::Policy::schema_only(),
            now,
        );
        run.state = PipelineState::CiRunning;
        store.create(&run, &[]).await.unwrap();
        let (_, _, text) = scrape(&app).await;
        assert_eq!(sample(&text, "vaia_runs{state=\"CI_RUNNING\"}"), Some(1.0));
    }
}
