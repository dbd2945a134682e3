//! Test harness: a real Prometheus server (the Debian package's `prometheus` binary) on
//! 127.0.0.1 with a free port, its own temporary storage and a 1 s scrape interval,
//! scraping a test exporter that serves `agent_request_duration_seconds`, a histogram
//! whose counters grow at a known rate (so its p95 is known). Both stop when dropped.
//!
//! Without the binary the tests skip with a message — except under CI (`CI=true`), where
//! `.ci/run` installs it and its absence is a failure.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Finds `prometheus` on PATH; `None` (after saying so) when absent outside CI.
pub fn binary(test: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("prometheus"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let ci = std::env::var("CI")
            .map(|v| v == "true" || v == "1")
            .unwrap_or(false);
        assert!(
            !ci,
            "{test}: the prometheus binary is not on PATH under CI: .ci/run must install it (apt-get install -y --no-install-recommends prometheus)"
        );
        eprintln!(
            "SKIPPED {test}: no prometheus binary on PATH (apt-get install -y --no-install-recommends prometheus)"
        );
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    _exporter: Exporter,
}

/// 100 requests a second: 50 under 50 ms, 40 more under 100 ms, 10 more under 200 ms.
/// Interpolated like `histogram_quantile`, the p95 is 150 ms.
pub fn known_histogram() -> Vec<(f64, f64)> {
    vec![(0.05, 50.0), (0.1, 90.0), (0.2, 100.0), (0.4, 100.0)]
}
pub const KNOWN_P95_MS: f64 = 150.0;

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

impl Prometheus {
    /// Starts the exporter and Prometheus, and waits until Prometheus answers.
    pub fn start(bin: &std::path::Path, histogram: Vec<(f64, f64)>) -> Prometheus {
        let exporter = Exporter::start(histogram);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: agent\n    static_configs:\n      - targets: ['{}']\n",
                exporter.addr
            ),
        )
        .unwrap();
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

    fn poll(&self, path: &str, ok: impl Fn(u16, &str) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some((status, body)) = get(self.port, path) {
                if ok(status, &body) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus on {} never got {what}",
                self.url
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Percent-encodes a query parameter.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
