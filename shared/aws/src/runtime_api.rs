//! A small Lambda Runtime API emulator (feature `testing`), enough to run a function
//! binary as Lambda does: the binary polls `GET /2018-06-01/runtime/invocation/next`,
//! posts `.../{id}/response` or `.../{id}/error`, or `.../init/error` when it cannot
//! start. Used by the functions' invocation tests and by the init-time benchmark.

#![allow(clippy::expect_used)]

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex, Notify};

/// What the function answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Response(Value),
    Error(Value),
}

type Pending = (String, Value);

struct Inner {
    next: AsyncMutex<mpsc::UnboundedReceiver<Pending>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_error: Mutex<Option<Value>>,
    first_poll: Mutex<Option<Instant>>,
    polled: Notify,
}

/// The emulator, listening on 127.0.0.1.
pub struct RuntimeApi {
    addr: SocketAddr,
    inner: Arc<Inner>,
    send: mpsc::UnboundedSender<Pending>,
    seq: AtomicU64,
    stop: Option<oneshot::Sender<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn next(State(inner): State<Arc<Inner>>) -> Response {
    {
        let mut first = lock(&inner.first_poll);
        if first.is_none() {
            *first = Some(Instant::now());
        }
    }
    inner.polled.notify_waiters();
    let got = inner.next.lock().await.recv().await;
    let Some((id, payload)) = got else {
        return StatusCode::GONE.into_response();
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let mut headers = HeaderMap::new();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:vaia-test".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
    );
    set("content-type", "application/json".into());
    (headers, payload.to_string()).into_response()
}

fn parse(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    if let Some(tx) = lock(&inner.waiting).remove(&id) {
        let _ = tx.send(Answer::Response(parse(&body)));
    }
    StatusCode::ACCEPTED
}

async fn error(State(inner): State<Arc<Inner>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    if let Some(tx) = lock(&inner.waiting).remove(&id) {
        let _ = tx.send(Answer::Error(parse(&body)));
    }
    StatusCode::ACCEPTED
}

async fn init_error(State(inner): State<Arc<Inner>>, body: Bytes) -> StatusCode {
    *lock(&inner.init_error) = Some(parse(&body));
    inner.polled.notify_waiters();
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let (send, recv) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            next: AsyncMutex::new(recv),
            waiting: Mutex::default(),
            init_error: Mutex::default(),
            first_poll: Mutex::default(),
            polled: Notify::new(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            inner,
            send,
            seq: AtomicU64::new(0),
            stop: Some(stop),
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// When the function first asked for an invocation.
    pub fn first_poll(&self) -> Option<Instant> {
        *lock(&self.inner.first_poll)
    }

    /// What the function reported through `/init/error`, if anything.
    pub fn init_error(&self) -> Option<Value> {
        lock(&self.inner.init_error).clone()
    }

    /// Waits until the function has polled once (or reported an init error), at most
    /// `limit`. Returns whether it polled.
    pub async fn wait_first_poll(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.inner.polled.notified();
            if self.first_poll().is_some() {
                return true;
            }
            if self.init_error().is_some() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), notified).await;
        }
    }

    /// Invokes the function with `payload` and waits for its answer (`None` when the
    /// function went away).
    pub async fn invoke(&self, payload: Value) -> Option<Answer> {
        let id = format!("req-{}", self.seq.fetch_add(1, Ordering::Relaxed) + 1);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.waiting).insert(id.clone(), tx);
        self.send.send((id, payload)).ok()?;
        rx.await.ok()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A function binary running against a [`RuntimeApi`], killed on drop.
pub struct FunctionProcess {
    child: tokio::process::Child,
    pub started: Instant,
}

impl FunctionProcess {
    /// Starts `binary` with the Lambda environment (function name, memory, version, the
    /// Runtime API address) plus `env`.
    pub fn spawn(
        binary: &std::path::Path,
        api: &RuntimeApi,
        name: &str,
        env: &[(String, String)],
    ) -> std::io::Result<Self> {
        Self::spawn_with_args(binary, &[], api, name, env)
    }

    /// [`Self::spawn`] with arguments (an interpreter and its script, for baselines).
    pub fn spawn_with_args(
        binary: &std::path::Path,
        args: &[&str],
        api: &RuntimeApi,
        name: &str,
        env: &[(String, String)],
    ) -> std::io::Result<Self> {
        let mut cmd = tokio::process::Command::new(binary);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.endpoint())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(if std::env::var("VAIA_SHOW_FUNCTION_LOGS").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let started = Instant::now();
        let child = cmd.spawn()?;
        Ok(Self { child, started })
    }

    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Peak resident set size so far (`VmHWM`, Linux), in bytes.
    pub fn max_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Stops the process and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
