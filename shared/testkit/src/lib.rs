//! Test harnesses shared by vaia's test suites and benchmarks (never a dependency of a
//! shipped binary): finding an external tool (skipping with a message without it, failing
//! under `CI=true`), free loopback ports, a minimal HTTP GET, real Prometheus
//! ([`prometheus`]) and Alertmanager ([`alertmanager`]) servers on 127.0.0.1 with their own
//! storage, stopped when dropped, and a real `vaia up` process ([`vaia_up`]).

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod alertmanager;
pub mod prometheus;
pub mod vaia_up;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Whether the tests run under CI (`CI=true` or `CI=1`), where a missing tool is a failure.
pub fn under_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Finds `name` on PATH. Without it: `None` after printing `SKIPPED {test}: ...`, or a
/// panic under CI (where `.ci/run` installs it: `install` says how).
pub fn tool(name: &str, test: &str, install: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !under_ci(),
            "{test}: {name} is not on PATH under CI: .ci/run must install it ({install})"
        );
        eprintln!("SKIPPED {test}: no {name} on PATH ({install})");
    }
    found
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on 127.0.0.1:`port` over HTTP/1.0: status and body, `None` if unreachable.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Polls `GET path` every 100 ms until `ok(status, body)` holds; panics after `timeout`
/// naming `what`.
pub fn poll(port: u16, path: &str, timeout: Duration, what: &str, ok: impl Fn(u16, &str) -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some((status, body)) = get(port, path) {
            if ok(status, &body) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "127.0.0.1:{port}{path} never got {what} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
