//! A real Prometheus server (the Debian package's `prometheus` binary) on 127.0.0.1 with a
//! free port, its own temporary storage and 1 s scrape and evaluation intervals; and a test
//! exporter that serves `agent_request_duration_seconds`, a histogram whose counters grow
//! at a known rate (so its p95 is known). Both stop when dropped.
//!
//! Without the binary the tests skip with a message — except under CI (`CI=true`), where
//! `.ci/run` installs it and its absence is a failure.

use crate::{encode, free_port, get, poll};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::now;

/// How `.ci/run` installs Prometheus and promtool.
pub const INSTALL: &str = "apt-get install -y --no-install-recommends prometheus";

/// Finds `prometheus` on PATH; `None` (after saying so) when absent outside CI.
pub fn binary(test: &str) -> Option<std::path::PathBuf> {
    crate::tool("prometheus", test, INSTALL)
}

/// Finds `promtool` on PATH; `None` (after saying so) when absent outside CI.
pub fn promtool(test: &str) -> Option<std::path::PathBuf> {
    crate::tool("promtool", test, INSTALL)
}

/// Serves `/metrics` with a histogram: per second, `per_second[i].1` observations at or
/// under `per_second[i].0` seconds (cumulative, as Prometheus buckets are).
pub struct Exporter {
    pub addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Exporter {
    pub fn start(per_second: Vec<(f64, f64)>) -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).ok();
                        stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
                        let mut buf = [0u8; 4096];
                        let _ = stream.read(&mut buf);
                        let t = started.elapsed().as_secs_f64() + 1.0;
                        let mut body = String::from(
                            "# HELP agent_request_duration_seconds Request latency.\n# TYPE agent_request_duration_seconds histogram\n",
                        );
                        let total = per_second.last().map(|b| b.1).unwrap_or(0.0);
                        for (le, n) in &per_second {
                            body.push_str(&format!(
                                "agent_request_duration_seconds_bucket{{le=\"{le}\"}} {}\n",
                                n * t
                            ));
                        }
                        body.push_str(&format!(
                            "agent_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\nagent_request_duration_seconds_sum {}\nagent_request_duration_seconds_count {}\n",
                            total * t,
                            total * t * 0.1,
                            total * t
                        ));
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Exporter {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct Prometheus {
    pub url: String,
    pub port: u16,
    pub started: f64,
    child: Child,
    _dir: tempfile::TempDir,
    _exporter: Option<Exporter>,
}

/// 100 requests a second: 50 under 50 ms, 40 more under 100 ms, 10 more under 200 ms.
/// Interpolated like `histogram_quantile`, the p95 is 150 ms.
pub fn known_histogram() -> Vec<(f64, f64)> {
    vec![(0.05, 50.0), (0.1, 90.0), (0.2, 100.0), (0.4, 100.0)]
}
pub const KNOWN_P95_MS: f64 = 150.0;

impl Prometheus {
    /// Starts the exporter and Prometheus scraping it, and waits until Prometheus answers.
    pub fn start(bin: &std::path::Path, histogram: Vec<(f64, f64)>) -> Prometheus {
        let exporter = Exporter::start(histogram);
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: agent\n    static_configs:\n      - targets: ['{}']\n",
            exporter.addr
        );
        Self::start_with(bin, |_| config, Some(exporter))
    }

    /// Starts Prometheus with the configuration `config(dir)` returns (`dir` is the server's
    /// own temporary directory, for rule files), and waits until it is ready.
    pub fn start_with_config(
        bin: &std::path::Path,
        config: impl FnOnce(&std::path::Path) -> String,
    ) -> Prometheus {
        Self::start_with(bin, config, None)
    }

    fn start_with(
        bin: &std::path::Path,
        config: impl FnOnce(&std::path::Path) -> String,
        exporter: Option<Exporter>,
    ) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config(dir.path())).unwrap();
        let config = config_path;
        let port = free_port();
        let started = now();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            port,
            started,
            child,
            _dir: dir,
            _exporter: exporter,
        };
        p.poll("/-/ready", |status, _| status == 200, "ready");
        p
    }

    /// Waits until `query` (instant) has a number: the first scrapes land seconds after start.
    pub fn wait_for_value(&self, query: &str) {
        let path = format!("/api/v1/query?query={}", encode(query));
        self.poll(
            &path,
            |status, body| {
                if status != 200 {
                    return false;
                }
                let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .is_some_and(f64::is_finite)
            },
            query,
        );
    }

    /// Polls `GET path` until `ok(status, body)` (90 s at most).
    pub fn poll(&self, path: &str, ok: impl Fn(u16, &str) -> bool, what: &str) {
        poll(self.port, path, Duration::from_secs(90), what, ok);
    }

    /// An instant query's `data.result` (panics on an error answer, naming the query).
    pub fn query(&self, query: &str) -> serde_json::Value {
        let (status, body) = get(self.port, &format!("/api/v1/query?query={}", encode(query)))
            .unwrap_or_else(|| panic!("prometheus on {} unreachable", self.url));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert!(
            status == 200 && v["status"] == "success",
            "query {query:?}: {status} {body}"
        );
        v["data"]["result"].clone()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
