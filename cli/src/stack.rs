//! The local stack: every handler in one process over the SQLite/filesystem adapters,
//! the in-process router delivering queue messages and object-created events, a sweeper
//! that times out stuck runs, and the HTTP API on one port.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vaia_api::alertmanager::{self, AlertmanagerToken, HookState};
use vaia_core::messages::queues;
use vaia_core::policy::Policy;
use vaia_core::ports::{
    BlobStore, Clock, Idempotency, MessageHandler, Metrics, Queue, RunStore, SystemClock,
};
use vaia_gate_eval::{EvalGate, JudgeSettings};
use vaia_gate_latency::{LatencyGate, PROMETHEUS_URL_ENV};
use vaia_gate_prompt::PromptGate;
use vaia_gate_schema::SchemaGate;
use vaia_gate_security::SecurityGate;
use vaia_local::{LocalOptions, LocalStore, RouteOptions};
use vaia_orchestrator::Orchestrator;
use vaia_registry::{ObjectEvents, Registry, RegistryJobs};
use vaia_webhook::{Webhook, WebhookSecret};

use crate::api::{self, AppState};
use crate::live::{Feed, PublishingStore};
use crate::metrics::PromMetrics;
use vaia_api::auth::Tokens;

pub const SECRET_ENV: &str = "VAIA_GITHUB_WEBHOOK_SECRET";

/// How often the sweeper looks for runs past their deadline.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

pub struct StackConfig {
    pub data_dir: PathBuf,
    pub bind: String,
    /// 0 picks a free port.
    pub port: u16,
    pub policy: Policy,
    pub secret: WebhookSecret,
    /// The bearer token of `POST /hooks/alertmanager`; `None` refuses every notification.
    pub alertmanager_token: Option<AlertmanagerToken>,
}

/// `VAIA_ALERTMANAGER_TOKEN`, when set (an unusable value is an error, not a silent `None`).
pub fn alertmanager_token_from_env() -> Result<Option<AlertmanagerToken>> {
    match std::env::var(alertmanager::TOKEN_ENV) {
        Ok(v) if !v.is_empty() => AlertmanagerToken::new(v)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{}: {e}", alertmanager::TOKEN_ENV)),
        _ => Ok(None),
    }
}

pub fn webhook_secret_from_env() -> Result<WebhookSecret> {
    let value = std::env::var(SECRET_ENV).with_context(|| {
        format!("{SECRET_ENV} is not set: the webhook cannot verify GitHub's signatures without it")
    })?;
    WebhookSecret::for_deployment(value).context(SECRET_ENV)
}

/// The ports every handler is built over.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn RunStore>,
    pub idempotency: Arc<dyn Idempotency>,
    pub queue: Arc<dyn Queue>,
    pub blobs: Arc<dyn BlobStore>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn Metrics>,
}

/// Deployment configuration of the gates (not policy: the agent's repository cannot set it).
#[derive(Debug, Clone, Default)]
pub struct GateSettings {
    /// Production's Prometheus, for the latency gate's baseline.
    pub prometheus_url: Option<String>,
}

impl GateSettings {
    /// From the environment: `VAIA_PROMETHEUS_URL`.
    pub fn from_env() -> Self {
        Self {
            prometheus_url: std::env::var(PROMETHEUS_URL_ENV)
                .ok()
                .filter(|u| !u.trim().is_empty()),
        }
    }
}

/// Every queue consumer of the pipeline, by queue name, with gate settings from the
/// environment ([`GateSettings::from_env`]). The same set runs on the local stack, in tests
/// and in benchmarks.
pub fn consumers(p: &Ports) -> Vec<(String, Arc<dyn MessageHandler>)> {
    consumers_with(p, &GateSettings::from_env())
}

/// Every queue consumer of the pipeline, by queue name.
pub fn consumers_with(
    p: &Ports,
    settings: &GateSettings,
) -> Vec<(String, Arc<dyn MessageHandler>)> {
    let orchestrator = Arc::new(Orchestrator::new(
        p.store.clone(),
        p.queue.clone(),
        p.clock.clone(),
        p.metrics.clone(),
    ));
    let registry = Arc::new(Registry::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
        p.clock.clone(),
    ));
    let schema = Arc::new(SchemaGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
    ));
    let security = Arc::new(SecurityGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
        p.clock.clone(),
    ));
    let prometheus = vaia_gate_latency::prometheus_client(settings.prometheus_url.as_deref());
    let latency = Arc::new(LatencyGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
        p.clock.clone(),
        prometheus,
    ));
    let gate_queue = |name: &str| vaia_core::GateName::new(name).map(|g| queues::gate(&g));
    let prompt = Arc::new(PromptGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
    ));
    let eval = Arc::new(EvalGate::new(
        p.store.clone(),
        p.blobs.clone(),
        p.queue.clone(),
        JudgeSettings::from_env(),
    ));
    let mut out: Vec<(String, Arc<dyn MessageHandler>)> = vec![
        (queues::ADVANCE.to_string(), orchestrator),
        (
            queues::REGISTRY.to_string(),
            Arc::new(RegistryJobs(registry.clone())),
        ),
        (
            queues::BLOB_EVENTS.to_string(),
            Arc::new(ObjectEvents(registry)),
        ),
    ];
    let gates: [(&str, Arc<dyn MessageHandler>); 5] = [
        (vaia_gates::schema::GATE, schema),
        (vaia_gates::prompt::GATE, prompt),
        (vaia_gates::eval::GATE, eval),
        (vaia_gates::security::GATE, security),
        (vaia_gates::latency::GATE, latency),
    ];
    for (name, handler) in gates {
        if let Ok(queue) = gate_queue(name) {
            out.push((queue, handler));
        }
    }
    out
}

pub struct Stack {
    pub addr: SocketAddr,
    pub ports: Ports,
    /// The CT budget the stack's CT loop runs (for a one-off evaluation).
    pub ct: Arc<vaia_ct_budget::CtBudget>,
    /// The data watcher counting raw data put under `raw/`.
    pub data: Arc<vaia_data_watcher::DataWatcher>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Held for the stack's life: one process owns a data directory.
    _lock: std::fs::File,
}

pub const LOCK_FILE: &str = "vaia.lock";

/// Takes the data directory's lock, so that two stacks never share one database (each
/// would hand the other's in-flight messages back at start).
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "{} is in use by another vaia process (it holds {})",
            dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// What `vaia up` adds to a [`StackConfig`]: API tokens and the dashboard's files.
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// Empty: the API is open (allowed on loopback only).
    pub tokens: Arc<Tokens>,
    /// The built dashboard; `None` finds it ([`crate::dashboard::find_dir`]).
    pub dashboard_dir: Option<PathBuf>,
    /// Time between scheduled CT evaluations; `None`: the policy's `[ct] schedule_minutes`.
    pub ct_every: Option<Duration>,
    /// `--watch-data DIR`: a directory of raw data (`DIR/<owner>/<repo>/<file>`) polled
    /// every [`crate::ct_loop::WATCH_DATA_EVERY`].
    pub watch_data: Option<PathBuf>,
}

/// Refuses to serve an open API beyond loopback.
pub fn check_exposure(bind: &str, tokens: &Tokens) -> Result<()> {
    let loopback = bind == "localhost"
        || bind
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    if !loopback && tokens.is_empty() {
        anyhow::bail!(
            "refusing to bind {bind} without API tokens: anyone who can reach it could approve and roll back runs. \
             Configure tokens ({} or --tokens FILE, see README \"API tokens\") or bind 127.0.0.1",
            vaia_api::auth::TOKENS_ENV
        );
    }
    Ok(())
}

impl Stack {
    pub async fn start(config: StackConfig) -> Result<Stack> {
        Self::start_with(config, StackOptions::default()).await
    }

    pub async fn start_with(config: StackConfig, options: StackOptions) -> Result<Stack> {
        check_exposure(&config.bind, &options.tokens)?;
        let lock = lock_data_dir(&config.data_dir)?;
        let local = LocalStore::open(&config.data_dir, LocalOptions::default())
            .with_context(|| format!("opening the local store in {}", config.data_dir.display()))?;
        // Deliveries held by a previous process that died are handed back at once.
        let released = local.queue.release_in_flight().await?;
        if released > 0 {
            tracing::info!(released, "released messages held by a previous process");
        }
        // So are its idempotency claims (a delivery it was processing when it died).
        let abandoned = local.idempotency.release_abandoned().await?;
        if abandoned > 0 {
            tracing::info!(abandoned, "released claims held by a previous process");
        }
        let prom = Arc::new(PromMetrics::new());
        // Every write of run state goes through this store, which publishes it to the feed.
        let feed = Feed::new(crate::live::BACKLOG);
        let ports = Ports {
            store: Arc::new(PublishingStore::new(local.runs.clone(), feed.clone())),
            idempotency: local.idempotency.clone(),
            queue: local.queue.clone(),
            blobs: local.blobs.clone(),
            clock: Arc::new(SystemClock),
            metrics: prom.clone(),
        };
        let (shutdown, watch_rx) = watch::channel(false);
        let mut router = local.router();
        // The promoted image tagged in its registry, when VAIA_IMAGE configures it.
        let consumers = vaia_delivery::wrap_registry_from_env(
            consumers(&ports),
            ports.store.clone(),
            ports.blobs.clone(),
            ports.clock.clone(),
        )
        .map_err(anyhow::Error::msg)?;
        // Commit statuses on GitHub, when VAIA_GITHUB_TOKEN is set.
        let consumers = vaia_delivery::wrap_advance_from_env(consumers, ports.store.clone())
            .map_err(anyhow::Error::msg)?;
        // The data watcher: raw data lands in the same blob store locally.
        let data = Arc::new(vaia_data_watcher::DataWatcher::new(
            ports.blobs.clone(),
            Arc::new(vaia_data_watcher::BlobRawData(ports.blobs.clone())),
            ports.clock.clone(),
        ));
        // Continuous training: after each new dataset snapshot, and on the schedule.
        let ct = Arc::new(
            vaia_ct_budget::CtBudget::new(
                ports.blobs.clone(),
                ports.queue.clone(),
                ports.clock.clone(),
                config.policy.ct.clone(),
                vaia_ct_budget::drift::from_policy(
                    &config.policy.ct,
                    ports.blobs.clone(),
                    vaia_gate_latency::prometheus_client(
                        GateSettings::from_env().prometheus_url.as_deref(),
                    ),
                    ports.clock.clone(),
                ),
            )
            .with_data_watcher(data.clone()),
        );
        let (snapshots_tx, snapshots_rx) = tokio::sync::mpsc::unbounded_channel();
        let (evaluate_tx, evaluate_rx) = crate::ct_loop::requests();
        let mut consumers: Vec<(String, Arc<dyn MessageHandler>)> = consumers
            .into_iter()
            .map(|(queue, handler)| {
                if queue == queues::BLOB_EVENTS {
                    let counter = crate::ct_loop::RawDataCounter {
                        inner: handler,
                        watcher: data.clone(),
                    };
                    (queue, Arc::new(counter) as Arc<dyn MessageHandler>)
                } else {
                    (queue, handler)
                }
            })
            .collect();
        consumers.push((
            queues::CT_EVALUATE.to_string(),
            Arc::new(crate::ct_loop::SnapshotTrigger {
                snapshots: snapshots_tx,
            }),
        ));
        let mut queue_names: Vec<String> = consumers.iter().map(|(q, _)| q.clone()).collect();
        // Consumed by the deployment's trainer, not by the stack: its depth is on /metrics.
        queue_names.push(vaia_ct_budget::TRAINING_QUEUE.to_string());
        for (queue, handler) in consumers {
            router.route(queue, handler, RouteOptions::default());
        }
        let mut tasks = router.spawn(watch_rx.clone());
        tasks.push(spawn_sweeper(&ports, watch_rx.clone()));
        let ct_every = options.ct_every.unwrap_or(Duration::from_secs(
            u64::from(config.policy.ct.schedule_minutes) * 60,
        ));
        if let Some(dir) = &options.watch_data {
            let polled = Arc::new(vaia_data_watcher::DataWatcher::new(
                ports.blobs.clone(),
                Arc::new(vaia_data_watcher::DirRawData { root: dir.clone() }),
                ports.clock.clone(),
            ));
            tasks.push(crate::ct_loop::spawn_dir_watch(
                polled,
                crate::ct_loop::WATCH_DATA_EVERY,
                watch_rx.clone(),
            ));
        }
        tasks.push(crate::ct_loop::spawn(
            ct.clone(),
            ct_every,
            snapshots_rx,
            evaluate_rx,
            prom.clone(),
            watch_rx.clone(),
        ));

        let alerts = HookState {
            store: ports.store.clone(),
            blobs: ports.blobs.clone(),
            queue: ports.queue.clone(),
            token: config.alertmanager_token.clone(),
            policy: config.policy.monitoring.rollback.clone(),
        };
        let webhook = Arc::new(Webhook::new(
            ports.store.clone(),
            ports.idempotency.clone(),
            ports.queue.clone(),
            ports.clock.clone(),
            config.secret,
            config.policy,
        ));
        let state = AppState {
            webhook,
            api: vaia_api::ApiState {
                store: ports.store.clone(),
                blobs: ports.blobs.clone(),
                queue: ports.queue.clone(),
            },
            metrics: prom,
            queues: Arc::new(queue_names),
            alerts,
        };
        let listener = tokio::net::TcpListener::bind((config.bind.as_str(), config.port))
            .await
            .with_context(|| format!("binding {}:{}", config.bind, config.port))?;
        let addr = listener.local_addr()?;
        let dashboard_dir = options
            .dashboard_dir
            .clone()
            .or_else(crate::dashboard::find_dir);
        let app = api::routes(state)
            .merge(
                axum::Router::new()
                    .route("/api/feed", axum::routing::get(crate::live::feed_ws))
                    .with_state(feed),
            )
            .merge(crate::ct_loop::router(evaluate_tx))
            .merge(crate::dashboard::router(dashboard_dir.as_deref()));
        let app = vaia_api::auth::layer(vaia_api::with_json_errors(app), options.tokens.clone());
        let mut rx = watch_rx;
        tasks.push(tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            crate::serve::serve(listener, app, stop).await;
        }));
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "vaia stack up");
        Ok(Stack {
            addr,
            ports,
            ct,
            data,
            shutdown,
            tasks,
            _lock: lock,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting work, lets in-flight handlers finish, and returns.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn spawn_sweeper(p: &Ports, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let orchestrator = Orchestrator::new(
        p.store.clone(),
        p.queue.clone(),
        p.clock.clone(),
        p.metrics.clone(),
    );
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
            }
            match orchestrator.sweep(100).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(runs = n, "timed out overdue runs"),
                Err(e) => tracing::warn!(error = %e, "sweep failed"),
            }
        }
    })
}

/// `vaia up`: serve until SIGINT or SIGTERM.
pub async fn serve_until_interrupted(config: StackConfig) -> Result<()> {
    serve_with_options(config, StackOptions::default()).await
}

/// API tokens from `VAIA_API_TOKENS` and, when given, a TOML file of `[[tokens]]`.
pub fn load_tokens(file: Option<&std::path::Path>) -> Result<Tokens> {
    let mut tokens = Tokens::from_env()?;
    if let Some(path) = file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        tokens.extend(Tokens::parse_toml(&path.display().to_string(), &text)?);
    }
    Ok(tokens)
}

/// `vaia up` with tokens and the dashboard: serve until SIGINT or SIGTERM.
pub async fn serve_with_options(config: StackConfig, options: StackOptions) -> Result<()> {
    let auth = if options.tokens.is_empty() {
        "open (no tokens; loopback only)".to_string()
    } else {
        format!("{} token(s)", options.tokens.len())
    };
    let stack = Stack::start_with(config, options).await?;
    eprintln!("vaia is up on {}", stack.url());
    eprintln!("  dashboard     {}/", stack.url());
    eprintln!("  api auth      {auth}");
    eprintln!("  webhook  POST {}/webhooks/github", stack.url());
    eprintln!(
        "  runs     GET  {}/api/runs   (or: vaia runs list)",
        stack.url()
    );
    eprintln!("  metrics  GET  {}/metrics", stack.url());
    eprintln!(
        "  ct       GET  {}/api/ct/OWNER/REPO   (or: vaia ct show OWNER/REPO)",
        stack.url()
    );
    eprintln!("  alerts   POST {}/hooks/alertmanager", stack.url());
    wait_for_signal().await;
    eprintln!("vaia: stopping");
    stack.stop().await;
    Ok(())
}

pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
