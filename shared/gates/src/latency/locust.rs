//! Locust's CSV output, as `locust --csv PREFIX` writes it (`locust/stats.py`, `StatsCSV`):
//!
//! - `PREFIX_stats.csv`: `Type,Name,Request Count,Failure Count,Median Response Time,
//!   Average Response Time,Min Response Time,Max Response Time,Average Content Size,
//!   Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%`, one row per
//!   endpoint and a last row with an empty `Type` and the name `Aggregated`; times in
//!   milliseconds, percentiles `N/A` for an endpoint with no requests;
//! - `PREFIX_stats_history.csv`: `Timestamp,User Count,Type,Name,Requests/s,Failures/s,
//!   50%,…,100%,Total Request Count,Total Failure Count,…`, appended every second; the last
//!   row of a name holds its totals.
//!
//! Several endpoints named by the policy are combined conservatively: counts add up, and the
//! p95 is the slowest endpoint's (percentiles of different endpoints cannot be merged).

use super::InputError;
use std::collections::BTreeMap;

/// What the gate needs of a Locust run.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateStats {
    /// `stats` or `stats_history`.
    pub format: &'static str,
    /// The rows used: `Aggregated` or the endpoints named.
    pub rows: Vec<String>,
    /// `None` when Locust wrote `N/A` (no requests).
    pub p95_ms: Option<f64>,
    pub requests: u64,
    pub failures: u64,
}

struct Row {
    name: String,
    p95: Option<f64>,
    requests: u64,
    failures: u64,
}

/// Reads a `*_stats.csv` or `*_stats_history.csv` (told apart by the header).
/// `endpoints` empty means the `Aggregated` row; otherwise each name must be present
/// (matched against `Name`, or `Type Name` as in `GET /chat`).
pub fn parse(
    origin: &str,
    bytes: &[u8],
    endpoints: &[String],
) -> Result<CandidateStats, InputError> {
    let bad = |line: u64, reason: String| InputError::Csv {
        origin: origin.to_string(),
        line,
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| bad(1, format!("cannot read the header: {e}")))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let history = col("Timestamp").is_some();
    let (req_col, fail_col) = if history {
        ("Total Request Count", "Total Failure Count")
    } else {
        ("Request Count", "Failure Count")
    };
    let missing = |name: &str| {
        bad(
            1,
            format!(
                "no {name:?} column: not a Locust *_stats.csv or *_stats_history.csv (header: {})",
                headers.iter().collect::<Vec<_>>().join(",")
            ),
        )
    };
    let (Some(ty), Some(name), Some(req), Some(fail), Some(p95)) = (
        col("Type"),
        col("Name"),
        col(req_col),
        col(fail_col),
        col("95%"),
    ) else {
        let absent = ["Type", "Name", req_col, fail_col, "95%"]
            .into_iter()
            .find(|c| col(c).is_none())
            .unwrap_or("95%");
        return Err(missing(absent));
    };

    // Last row per name wins: in a history file it holds the totals.
    let mut rows: BTreeMap<String, (Row, Option<String>)> = BTreeMap::new();
    for (index, record) in reader.records().enumerate() {
        // The header is line 1; Locust never writes a field over several lines.
        let line = index as u64 + 2;
        let record = record.map_err(|e| bad(line, format!("not a CSV row of this header: {e}")))?;
        let field = |i: usize| record.get(i).unwrap_or_default().trim();
        let count = |i: usize, what: &str| {
            field(i)
                .parse::<u64>()
                .map_err(|_| bad(line, format!("{what} {:?} is not a whole number", field(i))))
        };
        let p95_text = field(p95);
        let p95_ms = if p95_text == "N/A" || p95_text.is_empty() {
            None
        } else {
            let v = p95_text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(line, format!("95% {p95_text:?} is not a time in ms")))?;
            Some(v)
        };
        let row = Row {
            name: field(name).to_string(),
            p95: p95_ms,
            requests: count(req, req_col)?,
            failures: count(fail, fail_col)?,
        };
        // Locust counts a failed request in both: more failures than requests is not its.
        if row.failures > row.requests {
            return Err(bad(
                line,
                format!(
                    "{fail_col} {} is more than {req_col} {} (Locust counts failed requests in both)",
                    row.failures, row.requests
                ),
            ));
        }
        let typed = if field(ty).is_empty() {
            None
        } else {
            Some(format!("{} {}", field(ty), field(name)))
        };
        rows.insert(row.name.clone(), (row, typed));
    }

    let wanted: Vec<String> = if endpoints.is_empty() {
        vec!["Aggregated".to_string()]
    } else {
        endpoints.to_vec()
    };
    let mut used = Vec::new();
    for want in &wanted {
        let found = rows
            .values()
            .find(|(r, typed)| &r.name == want || typed.as_deref() == Some(want.as_str()));
        match found {
            Some((r, _)) => used.push(r),
            None => {
                let known: Vec<&str> = rows.keys().map(String::as_str).collect();
                return Err(InputError::Format {
                    origin: origin.to_string(),
                    path: format!("Name={want:?}"),
                    reason: format!("no such row (rows: {})", known.join(", ")),
                });
            }
        }
    }
    let p95_ms = if used.iter().any(|r| r.p95.is_none()) {
        None
    } else {
        used.iter().filter_map(|r| r.p95).reduce(f64::max)
    };
    Ok(CandidateStats {
        format: if history { "stats_history" } else { "stats" },
        rows: used.iter().map(|r| r.name.clone()).collect(),
        p95_ms,
        requests: used.iter().map(|r| r.requests).sum(),
        failures: used.iter().map(|r| r.failures).sum(),
    })
}

/// Writes rows in Locust's `*_stats.csv` format; the demo's load generator uses it.
pub fn write_stats_csv(rows: &[StatsRow]) -> String {
    let mut out = String::from(
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,\
50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\r\n",
    );
    for r in rows {
        let pct = |p: f64| -> String {
            if r.samples_ms.is_empty() {
                "N/A".into()
            } else {
                format!("{}", percentile_ms(&r.samples_ms, p))
            }
        };
        let n = r.samples_ms.len() as f64;
        let avg = if n > 0.0 {
            r.samples_ms.iter().sum::<f64>() / n
        } else {
            0.0
        };
        let min = r.samples_ms.iter().copied().reduce(f64::min).unwrap_or(0.0);
        let max = r.samples_ms.iter().copied().reduce(f64::max).unwrap_or(0.0);
        let secs = r.duration_secs.max(f64::MIN_POSITIVE);
        let name = if r.name.contains([',', '"']) {
            format!("\"{}\"", r.name.replace('"', "\"\""))
        } else {
            r.name.clone()
        };
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
            r.method,
            name,
            r.samples_ms.len() as u64 + r.failures,
            r.failures,
            pct(0.5),
            avg,
            min.round(),
            max.round(),
            r.avg_content_size,
            (n + r.failures as f64) / secs,
            r.failures as f64 / secs,
            [0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0]
                .iter()
                .map(|p| pct(*p))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    out
}

/// One row for [`write_stats_csv`]: successful response times and a failure count.
#[derive(Debug, Clone, Default)]
pub struct StatsRow {
    /// `GET`, `POST`, or empty for the `Aggregated` row.
    pub method: String,
    pub name: String,
    pub samples_ms: Vec<f64>,
    pub failures: u64,
    pub duration_secs: f64,
    pub avg_content_size: f64,
}

/// Locust's percentile: the smallest time at or under which `p` of the requests finished,
/// in whole milliseconds as Locust rounds them.
fn percentile_ms(samples: &[f64], p: f64) -> u64 {
    let mut sorted: Vec<f64> = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let rank = ((n as f64) * p).ceil().max(1.0) as usize;
    let v = sorted
        .get(rank.min(n).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    v.round().max(0.0) as u64
}
