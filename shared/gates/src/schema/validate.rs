//! Checks of the candidate alone: names well-formed and unique, schemas valid against
//! their JSON Schema meta-schema and compilable offline.

use super::model::{Format, Loaded, Schema};
use super::parse::{index_path, key_path};
use super::Found;
use jsonschema::paths::LocationSegment;
use jsonschema::Draft;
use serde_json::Value;
use std::collections::HashMap;

pub(crate) fn check(loaded: &Loaded, out: &mut Vec<Found>) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for tool in &loaded.tools {
        let name = tool.name.as_str();
        if !name_ok(loaded.format, name) {
            let msg = format!(
                "tool name {name:?} is not valid for {}: {}",
                loaded.format.as_str(),
                name_rule(loaded.format)
            );
            out.push(Found::new(
                name,
                key_path(&tool.path, "name"),
                "schema.bad-name",
                msg,
                format!("bad name {name:?}"),
            ));
        }
        if let Some(first) = seen.get(name) {
            let msg = format!(
                "tool name {name:?} is already defined at {first}: models call tools by name"
            );
            out.push(Found::new(
                name,
                tool.path.clone(),
                "schema.duplicate-name",
                msg,
                format!("duplicate tool name {name}"),
            ));
        } else {
            seen.insert(name, &tool.path);
        }
        for schema in [&tool.input, &tool.output].into_iter().flatten() {
            for (at, msg) in problems(loaded.format, schema) {
                let short = format!("invalid schema in {name}");
                out.push(Found::new(name, at, "schema.invalid-schema", msg, short));
            }
        }
    }
}

fn name_ok(format: Format, name: &str) -> bool {
    let b = name.as_bytes();
    match format {
        // MCP 2025-11-25, server/tools "Tool names": SHOULD be 1-128 characters of
        // A-Z, a-z, 0-9, `_`, `-` and `.`.
        Format::Mcp => {
            (1..=128).contains(&b.len())
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        }
        // Gemini API reference, FunctionDeclaration.name: "a-z, A-Z, 0-9, or contain
        // underscores, colons, dots, and dashes, with a maximum length of 64"; Vertex AI adds
        // "Must start with a letter or an underscore". vaia requires both, so a file works on both.
        Format::Gemini => {
            (1..=64).contains(&b.len())
                && (b[0].is_ascii_alphabetic() || b[0] == b'_')
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':'))
        }
        // OpenAI API reference, function.name: "Must be a-z, A-Z, 0-9, or contain underscores
        // and dashes, with a maximum length of 64."
        Format::OpenAiTools | Format::OpenAiFunctions | Format::OpenAiResponses => {
            (1..=64).contains(&b.len())
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
        }
    }
}

fn name_rule(format: Format) -> &'static str {
    match format {
        Format::Mcp => "1-128 of A-Z a-z 0-9 _ - .",
        Format::Gemini => "1-64 of A-Z a-z 0-9 _ - . :, starting with a letter or _",
        _ => "1-64 of A-Z a-z 0-9 _ -",
    }
}

/// (JSON path, message) for each way `schema` is not a usable parameters schema.
fn problems(format: Format, schema: &Schema) -> Vec<(String, String)> {
    let path = schema.path.as_str();
    let Value::Object(root) = &schema.value else {
        return vec![(
            path.to_string(),
            "a parameters schema must be a JSON object".to_string(),
        )];
    };
    let mut out = Vec::new();
    // Function-calling APIs take the arguments as one JSON object; MCP's schema requires
    // `"type": "object"`, OpenAI and Gemini reject another root type.
    match root.get("type") {
        Some(Value::String(t)) if t == "object" => {}
        None if format != Format::Mcp => {}
        found => {
            let found = found.map_or_else(|| "none".to_string(), Value::to_string);
            out.push((
                key_path(path, "type"),
                format!("the root schema must have type \"object\", found {found}"),
            ));
        }
    }
    let draft = schema.draft.detect(&schema.value);
    let meta = match draft {
        Draft::Draft4 => jsonschema::draft4::meta::validator(),
        Draft::Draft6 => jsonschema::draft6::meta::validator(),
        Draft::Draft7 => jsonschema::draft7::meta::validator(),
        Draft::Draft201909 => jsonschema::draft201909::meta::validator(),
        Draft::Draft202012 => jsonschema::draft202012::meta::validator(),
        _ => {
            let uri = root
                .get("$schema")
                .map(Value::to_string)
                .unwrap_or_default();
            let msg = format!("unsupported $schema {uri}: vaia checks drafts 4, 6, 7, 2019-09 and 2020-12, offline");
            out.push((key_path(path, "$schema"), msg));
            return out;
        }
    };
    if !meta.is_valid(&schema.value) {
        for e in meta.iter_errors(&schema.value) {
            let at = join(path, e.instance_path().segments());
            out.push((at, format!("not valid {}: {e}", draft_name(draft))));
        }
        return out;
    }
    // Meta-valid can still fail to compile: an unresolvable `$ref` (nothing is fetched: a
    // tool schema must be self-contained).
    let built = jsonschema::options()
        .with_draft(draft)
        .offline()
        .build(&schema.value);
    if let Err(e) = built {
        out.push((path.to_string(), format!("cannot be compiled: {e}")));
    }
    out
}

fn draft_name(draft: Draft) -> &'static str {
    match draft {
        Draft::Draft4 => "JSON Schema draft 4",
        Draft::Draft6 => "JSON Schema draft 6",
        Draft::Draft7 => "JSON Schema draft-07",
        Draft::Draft201909 => "JSON Schema 2019-09",
        _ => "JSON Schema 2020-12",
    }
}

fn join<'a>(path: &str, segments: impl Iterator<Item = LocationSegment<'a>>) -> String {
    segments.fold(path.to_string(), |p, s| match s {
        LocationSegment::Property(k) => key_path(&p, &k),
        LocationSegment::Index(i) => index_path(&p, i),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_each_vendor() {
        assert!(name_ok(Format::OpenAiTools, "get_weather-2"));
        assert!(!name_ok(Format::OpenAiTools, "get.weather"));
        assert!(!name_ok(Format::OpenAiTools, &"a".repeat(65)));
        assert!(!name_ok(Format::OpenAiTools, ""));
        assert!(name_ok(Format::Mcp, "admin.tools.list"));
        assert!(name_ok(Format::Mcp, &"a".repeat(128)));
        assert!(!name_ok(Format::Mcp, &"a".repeat(129)));
        assert!(!name_ok(Format::Mcp, "user/profile"));
        assert!(name_ok(Format::Gemini, "ns:get_weather"));
        assert!(!name_ok(Format::Gemini, "1st"));
        assert!(!name_ok(Format::Gemini, "naïve"));
    }
}
