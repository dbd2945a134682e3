//! Size limits of every gate input: one home for each, used by `vaia gate …` (checked from
//! the file's metadata before reading, and by reading at most one byte more than the limit,
//! so `/dev/zero` or a FIFO is refused rather than read) and by the pipeline's gate
//! functions (checked on the evidence blob before it is parsed). A limit is generous for
//! real inputs and keeps a gate's memory bounded: the gates hold up to about 20× their input
//! while parsing (see `bench/README.md`, "Memory per input byte").

use std::io::Read;
use std::path::Path;

/// A named size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// What the input is, for messages (`tool definitions`, `Trivy report`, …).
    pub what: &'static str,
    pub bytes: u64,
}

const MIB: u64 = 1024 * 1024;

/// `tools.json` (schema gate), candidate and baseline: 100 real tools are about 226 KB.
pub const TOOLS: Limit = Limit {
    what: "tool definitions file",
    bytes: 8 * MIB,
};
/// A Trivy JSON report (security gate), the candidate's or the base image's.
pub const TRIVY_REPORT: Limit = Limit {
    what: "Trivy report",
    bytes: 64 * MIB,
};
/// A `.trivyignore` / `.trivyignore.yaml`.
pub const TRIVY_IGNORE: Limit = Limit {
    what: "Trivy ignore file",
    bytes: MIB,
};
/// A Locust `*_stats.csv` or `*_stats_history.csv` (latency gate).
pub const LOCUST_CSV: Limit = Limit {
    what: "Locust CSV",
    bytes: 64 * MIB,
};
/// An attack corpus (prompt gate, JSONL).
pub const CORPUS: Limit = Limit {
    what: "attack corpus",
    bytes: 16 * MIB,
};
/// The agent's responses to the corpus (prompt gate, JSONL).
pub const RESPONSES: Limit = Limit {
    what: "responses file",
    bytes: 64 * MIB,
};
/// The system prompt (prompt gate).
pub const SYSTEM_PROMPT: Limit = Limit {
    what: "system prompt",
    bytes: MIB,
};
/// A golden set (eval gate, JSONL).
pub const GOLDEN: Limit = Limit {
    what: "golden set",
    bytes: 32 * MIB,
};
/// Answers of the candidate or of production to the golden set (eval gate, JSONL).
pub const ANSWERS: Limit = Limit {
    what: "answers file",
    bytes: 32 * MIB,
};
/// A policy file (`vaia.toml`) or a request template.
pub const SMALL_TEXT: Limit = Limit {
    what: "configuration file",
    bytes: MIB,
};

/// Every limit, for documentation and tests.
pub const ALL: &[Limit] = &[
    TOOLS,
    TRIVY_REPORT,
    TRIVY_IGNORE,
    LOCUST_CSV,
    CORPUS,
    RESPONSES,
    SYSTEM_PROMPT,
    GOLDEN,
    ANSWERS,
    SMALL_TEXT,
];

impl Limit {
    /// `8 MiB (8388608 bytes)`.
    pub fn describe(&self) -> String {
        if self.bytes.is_multiple_of(MIB) {
            format!("{} MiB ({} bytes)", self.bytes / MIB, self.bytes)
        } else {
            format!("{} bytes", self.bytes)
        }
    }

    /// Refuses `len` bytes of `origin` when over the limit.
    pub fn check(&self, origin: &str, len: u64) -> Result<(), LimitError> {
        if len > self.bytes {
            return Err(self.too_large(origin, Some(len)));
        }
        Ok(())
    }

    fn too_large(&self, origin: &str, size: Option<u64>) -> LimitError {
        LimitError::TooLarge {
            origin: origin.to_string(),
            what: self.what,
            limit: self.describe(),
            size: size.map_or_else(|| "more than the limit".into(), |s| format!("{s} bytes")),
        }
    }

    /// Reads `path` whole if it is within the limit: its size is checked from its metadata
    /// first, and at most one byte more than the limit is ever read (for what has no size,
    /// such as `/dev/zero` or a pipe).
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, LimitError> {
        let origin = path.display().to_string();
        let io = |source: std::io::Error| LimitError::Io {
            origin: origin.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if meta.is_file() {
            self.check(&origin, meta.len())?;
        }
        let mut buf = Vec::new();
        file.take(self.bytes.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(io)?;
        if buf.len() as u64 > self.bytes {
            return Err(self.too_large(&origin, None));
        }
        Ok(buf)
    }

    /// [`Limit::read`], as text (invalid UTF-8 replaced).
    pub fn read_text(&self, path: &Path) -> Result<String, LimitError> {
        let bytes = self.read(path)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }
}

/// For evidence a pipeline gate read through the blob port: an `error` verdict naming the
/// first file over its limit (`origin`, its length, its limit), `None` when all are within.
pub fn oversized_evidence(
    gate: &vaia_core::GateName,
    files: &[(&str, usize, Limit)],
) -> Option<vaia_core::Verdict> {
    files.iter().find_map(|(origin, len, limit)| {
        limit.check(origin, *len as u64).err().map(|e| {
            let mut v =
                vaia_core::Verdict::new(gate.clone(), vaia_core::Outcome::Error, e.to_string());
            v.findings.push(
                vaia_core::Finding::new(
                    "evidence.too_large",
                    vaia_core::Severity::High,
                    e.to_string(),
                )
                .at(origin.to_string()),
            );
            v
        })
    })
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("{origin}: too large for a {what}: {size}; the limit is {limit}")]
    TooLarge {
        origin: String,
        what: &'static str,
        limit: String,
        size: String,
    },
    #[error("{origin}: {source}")]
    Io {
        origin: String,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn over_the_limit_is_refused_by_size_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tools.json");
        let small = Limit {
            what: "test input",
            bytes: 10,
        };
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(small.read(&path).unwrap().len(), 10);
        std::fs::write(&path, b"0123456789A").unwrap();
        let e = small.read(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: too large for a test input: 11 bytes; the limit is 10 bytes",
                path.display()
            )
        );
    }

    #[test]
    fn endless_input_is_refused_after_limit_plus_one_bytes() {
        let e = TOOLS.read(Path::new("/dev/zero")).unwrap_err().to_string();
        assert_eq!(
            e,
            "/dev/zero: too large for a tool definitions file: more than the limit; \
             the limit is 8 MiB (8388608 bytes)"
        );
    }

    #[test]
    fn oversized_evidence_is_an_error_verdict_naming_file_and_limit() {
        let gate = vaia_core::GateName::new("schema").unwrap();
        let small = Limit {
            what: "tool definitions file",
            bytes: 4,
        };
        assert!(oversized_evidence(&gate, &[("a/tools.json", 4, small)]).is_none());
        let v =
            oversized_evidence(&gate, &[("a/x", 1, small), ("a/tools.json", 5, small)]).unwrap();
        assert_eq!(v.outcome, vaia_core::Outcome::Error);
        assert_eq!(
            v.summary,
            "a/tools.json: too large for a tool definitions file: 5 bytes; the limit is 4 bytes"
        );
    }

    #[test]
    fn limits_are_described_in_mib() {
        assert_eq!(TOOLS.describe(), "8 MiB (8388608 bytes)");
        assert!(ALL.iter().all(|l| l.bytes >= MIB));
    }
}
