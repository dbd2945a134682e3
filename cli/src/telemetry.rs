//! Logging: human-readable by default, JSON with `VAIA_LOG_FORMAT=json`; level from
//! `RUST_LOG` (default `info`; `warn` for the demo, whose output is its report). Logs go to stderr so that stdout stays for results.

use tracing_subscriber::EnvFilter;

/// `default` is the filter used when `RUST_LOG` is not set.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("VAIA_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}
