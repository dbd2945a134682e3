//! Trivy's ignore files, read as Trivy documents them:
//!
//! - `.trivyignore`: one vulnerability ID per line, `#` starts a comment, and an optional
//!   `exp:YYYY-MM-DD` after the ID ends the entry's life (`CVE-2019-14697 exp:2025-01-01`);
//! - `.trivyignore.yaml` (chosen by a `.yaml`/`.yml` name): a `vulnerabilities` list of
//!   `id` with optional `paths`, `purls`, `expired_at` and `statement`; the `misconfigurations`,
//!   `secrets` and `licenses` lists are accepted and not used by this gate.
//!
//! An entry is expired from its `expired_at` day on (Trivy compares the current time with
//! midnight of that day); an expired entry no longer ignores anything, and the verdict says so.

use super::InputError;
use chrono::NaiveDate;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq)]
pub struct IgnoreEntry {
    pub id: String,
    pub expires: Option<NaiveDate>,
    pub statement: Option<String>,
    pub paths: Vec<String>,
    pub purls: Vec<String>,
    /// `file:line` for `.trivyignore`, `file at vulnerabilities[i]` for YAML.
    pub location: String,
}

impl IgnoreEntry {
    pub fn expired(&self, today: NaiveDate) -> bool {
        self.expires.is_some_and(|d| today >= d)
    }

    /// Whether the entry covers a vulnerability `id` in `target`/`pkg_path` with `purl`.
    pub fn covers(
        &self,
        id: &str,
        target: &str,
        pkg_path: Option<&str>,
        purl: Option<&str>,
    ) -> bool {
        if self.id != id {
            return false;
        }
        let path_ok = self.paths.is_empty()
            || self
                .paths
                .iter()
                .any(|p| glob_match(p, target) || pkg_path.is_some_and(|pp| glob_match(p, pp)));
        let purl_ok = self.purls.is_empty()
            || purl.is_some_and(|purl| {
                self.purls.iter().any(|p| {
                    p == purl || (!p.contains('@') && purl.split(['@', '?']).next() == Some(p))
                })
            });
        path_ok && purl_ok
    }
}

/// `*` matches within a path segment, `**` across segments; anything else literally.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => {
                let (cross, rest) = match rest.split_first() {
                    Some((b'*', r)) => (true, r),
                    _ => (false, rest),
                };
                (0..=t.len())
                    .take_while(|&i| cross || !t[..i].contains(&b'/'))
                    .any(|i| go(rest, &t[i..]))
            }
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlFile {
    #[serde(default)]
    vulnerabilities: Vec<YamlEntry>,
    #[serde(default)]
    misconfigurations: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    secrets: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    licenses: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlEntry {
    id: String,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    purls: Vec<String>,
    #[serde(default)]
    expired_at: Option<String>,
    #[serde(default)]
    statement: Option<String>,
}

/// Parses an ignore file; the format follows the name (`.yaml`/`.yml` or not).
pub fn parse(origin: &str, bytes: &[u8]) -> Result<Vec<IgnoreEntry>, InputError> {
    let lower = origin.to_ascii_lowercase();
    if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        parse_yaml(origin, bytes)
    } else {
        parse_text(origin, bytes)
    }
}

fn bad(origin: &str, path: String, reason: String) -> InputError {
    InputError::Format {
        origin: origin.to_string(),
        path,
        reason,
    }
}

fn date(origin: &str, path: &str, text: &str) -> Result<NaiveDate, InputError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|e| {
        bad(
            origin,
            path.to_string(),
            format!("{text:?} is not a date (YYYY-MM-DD): {e}"),
        )
    })
}

fn parse_text(origin: &str, bytes: &[u8]) -> Result<Vec<IgnoreEntry>, InputError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| bad(origin, "bytes".into(), format!("not UTF-8 text: {e}")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let location = format!("{origin}:{}", i + 1);
        let mut fields = line.split_whitespace();
        let Some(id) = fields.next() else { continue };
        let mut expires = None;
        for field in fields {
            match field.strip_prefix("exp:") {
                Some(d) => expires = Some(date(origin, &format!("line {}", i + 1), d)?),
                None => {
                    return Err(bad(
                        origin,
                        format!("line {}", i + 1),
                        format!(
                            "unexpected {field:?} after the ID (only exp:YYYY-MM-DD may follow)"
                        ),
                    ))
                }
            }
        }
        out.push(IgnoreEntry {
            id: id.to_string(),
            expires,
            statement: None,
            paths: Vec::new(),
            purls: Vec::new(),
            location,
        });
    }
    Ok(out)
}

fn parse_yaml(origin: &str, bytes: &[u8]) -> Result<Vec<IgnoreEntry>, InputError> {
    let file: YamlFile = serde_yaml_ng::from_slice(bytes).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or_default();
        InputError::Json {
            origin: origin.to_string(),
            line,
            column,
            reason: format!("not a .trivyignore.yaml: {e}"),
        }
    })?;
    let _ = (&file.misconfigurations, &file.secrets, &file.licenses);
    file.vulnerabilities
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let path = format!("vulnerabilities[{i}]");
            let expires = e
                .expired_at
                .as_deref()
                .map(|d| date(origin, &format!("{path}.expired_at"), d))
                .transpose()?;
            Ok(IgnoreEntry {
                id: e.id,
                expires,
                statement: e.statement,
                paths: e.paths,
                purls: e.purls,
                location: format!("{origin} at {path}"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("usr/lib/*.so", "usr/lib/a.so"));
        assert!(!glob_match("usr/*.so", "usr/lib/a.so"));
        assert!(glob_match("usr/**", "usr/lib/a.so"));
        assert!(glob_match("Cargo.lock", "Cargo.lock"));
        assert!(!glob_match("Cargo.lock", "app/Cargo.lock"));
    }

    #[test]
    fn text_lines_comments_and_expiry() {
        let e = parse(
            ".trivyignore",
            b"# accepted\nCVE-1 exp:2024-01-02\n\n  CVE-2   # trailing\n",
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].location, ".trivyignore:2");
        let day = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert!(!e[0].expired(day("2024-01-01")));
        assert!(e[0].expired(day("2024-01-02")));
        assert!(!e[1].expired(day("2999-01-01")));
        let err = parse(".trivyignore", b"CVE-1\nCVE-2 exp:2024-13-01\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn yaml_entries_and_errors() {
        let y = b"vulnerabilities:\n  - id: CVE-1\n    expired_at: 2024-01-02\n    statement: accepted\n    purls: [\"pkg:deb/debian/bash\"]\n";
        let e = parse("x/.trivyignore.yaml", y).unwrap();
        assert_eq!(e[0].statement.as_deref(), Some("accepted"));
        assert!(e[0].covers(
            "CVE-1",
            "t",
            None,
            Some("pkg:deb/debian/bash@5.0-4?arch=amd64")
        ));
        assert!(!e[0].covers("CVE-1", "t", None, Some("pkg:deb/debian/zsh@5")));
        let err = parse(
            "i.yaml",
            b"vulnerabilities:\n  - id: CVE-1\n    expires: 2024-01-01\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("i.yaml:3"), "{err}");
    }
}
