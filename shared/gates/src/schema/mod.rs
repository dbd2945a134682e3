//! The schema gate: are the agent's tool definitions valid, and what does the change from
//! production mean for callers — and so for the semantic version?
//!
//! Input formats, detected from the file's shape and reported as metric `format`:
//! - `openai-tools`: Chat Completions `tools` (`[{"type":"function","function":{..}}]`, bare or
//!   under a `tools` key, e.g. a whole request body); built-in tools (`{"type":"web_search"}`)
//!   are skipped;
//! - `openai-functions`: the legacy `functions` list, bare or under `functions`;
//! - `openai-responses`: Responses API function tools (`{"type":"function","name":..}`);
//! - `gemini`: `function_declarations` / `functionDeclarations`, alone or in a `tools` list;
//!   `parameters` is Gemini's OpenAPI subset and is normalised to JSON Schema (lowercase
//!   types, `nullable: true` adds `null`), `parametersJsonSchema` is taken as it is;
//! - `mcp`: a tools/list result (`{"tools":[..]}`) or the whole JSON-RPC response.
//!
//! JSON Schema dialect: the one named by `$schema` (drafts 4, 6, 7, 2019-09, 2020-12; any other
//! is a finding, since nothing is fetched). Without `$schema`: 2020-12 for MCP (SEP-1613, in
//! MCP 2025-11-25: the default for `inputSchema`/`outputSchema`) and for Gemini
//! `parametersJsonSchema`; draft-07 for OpenAI and Gemini `parameters`, whose documentation
//! names no draft. Besides the meta-schema, each schema must compile offline (no remote
//! `$ref`), and the root must be `"type": "object"` (required by MCP, absent allowed elsewhere).
//!
//! Each definition goes through vaia's typed model for its format and back; any difference
//! (a dropped field, a number that changes, a key given twice) is a finding, because it
//! means vaia would not compare or store what the agent really serves.
//!
//! With a baseline, only the input contract (parameters) decides the bump: breaking →
//! major, else additive → minor, else patch. Descriptions, titles, annotations and output
//! schemas are reported at patch level.

mod diff;
mod model;
mod parse;
mod validate;

use serde_json::json;
use vaia_core::version::Bump;
use vaia_core::{Finding, GateName, Outcome, Severity, Verdict};

pub const GATE: &str = "schema";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchemaOptions {
    /// Policy: whether a breaking change (a major bump) may pass.
    pub allow_major: bool,
}

/// A tool file: `origin` names it in errors (a path or blob key).
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub origin: &'a str,
    pub bytes: &'a [u8],
}

/// The input cannot be read as a tool file at all (the CLI exits 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{origin}:{line}:{column}: not valid JSON: {reason}")]
    Json {
        origin: String,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{origin} at {path}: {reason}")]
    Format {
        origin: String,
        path: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Invalid,
    Breaking,
    Additive,
    Patch,
}

/// A finding before it becomes a [`Finding`]: with its tool (for sorting) and a short form
/// for the summary line.
pub(crate) struct Found {
    tool: String,
    path: String,
    rule: &'static str,
    message: String,
    short: String,
}

impl Found {
    pub(crate) fn new(
        tool: &str,
        path: String,
        rule: &'static str,
        message: String,
        short: String,
    ) -> Self {
        Self {
            tool: tool.to_string(),
            path,
            rule,
            message,
            short,
        }
    }

    fn kind(&self) -> Kind {
        if self.rule.starts_with("schema.breaking.") {
            Kind::Breaking
        } else if self.rule.starts_with("schema.additive.") {
            Kind::Additive
        } else if self.rule.starts_with("schema.patch.") {
            Kind::Patch
        } else {
            Kind::Invalid
        }
    }
}

pub fn evaluate(
    candidate: &Input,
    baseline: Option<&Input>,
    opts: &SchemaOptions,
) -> Result<Verdict, InputError> {
    let cand = model::load(candidate)?;
    // The baseline is production: only its tools matter here, not its own defects.
    let base = baseline.map(model::load).transpose()?;
    let mut found = Vec::new();
    validate::check(&cand, &mut found);
    found.extend(cand.problems);
    if let Some(base) = &base {
        diff::compare(&base.tools, &cand.tools, &mut found);
    }
    found.sort_by(|a, b| {
        (&a.tool, &a.path, a.rule, &a.message).cmp(&(&b.tool, &b.path, b.rule, &b.message))
    });

    let of = |k: Kind| found.iter().filter(|f| f.kind() == k).collect::<Vec<_>>();
    let (invalid, breaking, additive, patch) = (
        of(Kind::Invalid),
        of(Kind::Breaking),
        of(Kind::Additive),
        of(Kind::Patch),
    );
    let bump = if !breaking.is_empty() {
        Bump::Major
    } else if !additive.is_empty() {
        Bump::Minor
    } else {
        Bump::Patch
    };
    let blocked = !breaking.is_empty() && !opts.allow_major;
    let outcome = if invalid.is_empty() && !blocked {
        Outcome::Pass
    } else {
        Outcome::Fail
    };

    let tools = cand.tools.len();
    let mut parts = Vec::new();
    if !invalid.is_empty() {
        parts.push(listed(&invalid, "invalid definition"));
    }
    if base.is_some() {
        if !breaking.is_empty() {
            parts.push(listed(&breaking, "breaking change"));
        }
        if !additive.is_empty() {
            parts.push(listed(&additive, "additive change"));
        }
        if breaking.is_empty() && additive.is_empty() {
            let text = if patch.is_empty() {
                String::new()
            } else {
                format!(" ({} text-only)", patch.len())
            };
            parts.push(format!("no contract changes{text}"));
        }
    } else if invalid.is_empty() {
        parts.push("all definitions valid".to_string());
    }
    let mut summary = format!(
        "{} ({}): {}",
        plural(tools, "tool"),
        cand.format.as_str(),
        parts.join("; ")
    );
    if base.is_some() {
        summary.push_str(&match (bump, blocked) {
            (Bump::Major, true) => " — major bump not allowed by policy".to_string(),
            (Bump::Major, false) => " — major bump, allowed by policy".to_string(),
            (b, _) => format!(" — {} bump", b.as_str()),
        });
    }

    let mut verdict = Verdict::new(gate_name(), outcome, summary)
        .metric("format", cand.format.as_str())
        .metric("tools", tools)
        .metric("invalid", invalid.len())
        .metric("breaking", breaking.len())
        .metric("additive", additive.len());
    if let Some(base) = &base {
        verdict = verdict
            .metric("baseline_format", base.format.as_str())
            .metric("bump", bump.as_str());
    }
    verdict.findings = found
        .into_iter()
        .map(|f| {
            let severity = match f.kind() {
                Kind::Invalid | Kind::Breaking => Severity::High,
                Kind::Additive | Kind::Patch => Severity::Info,
            };
            let data = if f.tool.is_empty() {
                None
            } else {
                Some(json!({ "tool": f.tool }))
            };
            let finding = Finding::new(f.rule, severity, f.message).at(f.path);
            match data {
                Some(d) => finding.with_data(d),
                None => finding,
            }
        })
        .collect();
    Ok(verdict)
}

#[allow(clippy::expect_used)]
fn gate_name() -> GateName {
    GateName::new(GATE).expect("\"schema\" is a valid gate name")
}

/// "2 breaking changes (tool a removed, property b newly required, +1 more)".
fn listed(found: &[&Found], noun: &str) -> String {
    // Whole tools first: they matter most to a reader.
    let (tools, rest): (Vec<&&Found>, Vec<&&Found>) = found
        .iter()
        .partition(|f| f.rule.ends_with("tool-removed") || f.rule.ends_with("tool-added"));
    let mut shown: Vec<&str> = Vec::new();
    for f in tools.into_iter().chain(rest) {
        if !shown.contains(&f.short.as_str()) {
            shown.push(&f.short);
        }
    }
    let more = shown.len().saturating_sub(3);
    let mut list = shown.into_iter().take(3).collect::<Vec<_>>().join(", ");
    if more > 0 {
        list.push_str(&format!(", +{more} more"));
    }
    format!("{} ({list})", plural(found.len(), noun))
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
