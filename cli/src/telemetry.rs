//! Logging: human-readable by default, JSON with `VAIA_LOG_FORMAT=json`; level from
//! `RUST_LOG` (default `info`; `warn` for the demo, whose output is its report). Logs go to
//! stderr so that stdout stays for results.
//!
//! Log lines carry outside text (refs, repository names, reasons from requests). In the
//! human format every event is exactly one line: line breaks and other control characters
//! inside it are written escaped (`\n`, `\u{1b}`), so a signed push whose ref holds a
//! newline cannot forge a log line. Colours only when stderr is a terminal.

use std::io::{self, IsTerminal, Write};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// `default` is the filter used when `RUST_LOG` is not set.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let _ = if std::env::var("VAIA_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().with_writer(io::stderr).try_init()
    } else {
        builder
            .compact()
            .with_writer(OneLinePerEvent { ansi })
            .try_init()
    };
}

/// Writes each formatted event to stderr as one line (the formatter hands over one event
/// per `write`), escaping what would break it.
#[derive(Debug, Clone, Copy)]
struct OneLinePerEvent {
    ansi: bool,
}

impl<'a> MakeWriter<'a> for OneLinePerEvent {
    type Writer = EventWriter;
    fn make_writer(&'a self) -> EventWriter {
        EventWriter { ansi: self.ansi }
    }
}

#[derive(Debug)]
pub struct EventWriter {
    ansi: bool,
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = escape_event(&String::from_utf8_lossy(buf), self.ansi);
        io::stderr().lock().write_all(line.as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// `event` with its final newline kept and every other control character escaped; the
/// escape character itself is kept only when colours are on (the formatter's own).
pub fn escape_event(event: &str, ansi: bool) -> String {
    let (body, end) = match event.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (event, ""),
    };
    let mut out = String::with_capacity(event.len() + 8);
    for c in body.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push('\t'),
            '\u{1b}' if ansi => out.push(c),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out.push_str(end);
    out
}

#[cfg(test)]
mod tests {
    use super::escape_event;

    #[test]
    fn an_event_stays_one_line() {
        let forged = " INFO push ignored reason=push to refs/heads/x\n 2026-01-01 ERROR forged\n";
        let out = escape_event(forged, false);
        assert_eq!(out.matches('\n').count(), 1, "{out}");
        assert!(out.ends_with('\n'));
        assert!(
            out.contains("refs/heads/x\\n 2026-01-01 ERROR forged"),
            "{out}"
        );
        assert_eq!(escape_event("a\rb\u{7}c", false), "a\\rb\\u{7}c");
    }

    #[test]
    fn escape_codes_only_with_colours() {
        let coloured = "\u{1b}[32mINFO\u{1b}[0m ok\n";
        assert_eq!(escape_event(coloured, true), coloured);
        assert_eq!(
            escape_event(coloured, false),
            "\\u{1b}[32mINFO\\u{1b}[0m ok\n"
        );
    }
}
