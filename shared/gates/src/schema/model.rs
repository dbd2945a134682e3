//! The tool file formats: detection, one typed model per format (unknown fields kept in
//! `extra`), the round-trip check, and the common [`Tool`] the checks and the diff read.

use super::parse::{self, index_path, key_path};
use super::{Found, Input, InputError};
use jsonschema::Draft;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Chat Completions `tools`: `[{"type":"function","function":{...}}]`.
    OpenAiTools,
    /// The legacy `functions` list: `[{"name":..,"parameters":..}]`.
    OpenAiFunctions,
    /// Responses API function tools: `[{"type":"function","name":..,"parameters":..}]`.
    OpenAiResponses,
    Gemini,
    Mcp,
}

impl Format {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::OpenAiTools => "openai-tools",
            Self::OpenAiFunctions => "openai-functions",
            Self::OpenAiResponses => "openai-responses",
            Self::Gemini => "gemini",
            Self::Mcp => "mcp",
        }
    }
}

/// One definition, whatever its format.
pub(crate) struct Tool {
    pub name: String,
    /// JSON path of the definition in its file.
    pub path: String,
    pub description: Option<String>,
    pub title: Option<String>,
    pub input: Option<Schema>,
    pub output: Option<Schema>,
    /// Every other field of the definition (MCP `annotations`, OpenAI `strict`, ...).
    pub others: Map<String, Value>,
}

pub(crate) struct Schema {
    pub path: String,
    /// JSON Schema; Gemini's OpenAPI subset is normalised (lowercase types, `nullable`).
    pub value: Value,
    /// The dialect when the schema names none in `$schema`.
    pub draft: Draft,
}

pub(crate) struct Loaded {
    pub format: Format,
    pub tools: Vec<Tool>,
    /// Definitions vaia cannot take as they are: unreadable, duplicate keys, round-trip changes.
    pub problems: Vec<Found>,
}

#[derive(Serialize, Deserialize)]
struct ChatTool {
    #[serde(rename = "type")]
    kind: String,
    function: Function,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize, Deserialize)]
struct Function {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize, Deserialize)]
struct Declaration {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    #[serde(
        rename = "parametersJsonSchema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    parameters_json_schema: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Serialize, Deserialize)]
struct McpTool {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(rename = "inputSchema")]
    input_schema: Value,
    #[serde(
        rename = "outputSchema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    output_schema: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// A definition: its JSON path and its value.
type Def<'v> = (String, &'v Value);

const GEMINI_KEYS: [&str; 2] = ["function_declarations", "functionDeclarations"];

pub(crate) fn load(input: &Input) -> Result<Loaded, InputError> {
    let parsed = parse::parse(input.origin, input.bytes)?;
    let (format, defs) = detect(&parsed.value, input.origin)?;
    let mut tools = Vec::new();
    let mut problems = Vec::new();
    for (path, def) in defs {
        let name = def.get("name").or_else(|| def.pointer("/function/name"));
        let name = name.and_then(Value::as_str).unwrap_or_default().to_string();
        match read(format, &path, def, &mut problems) {
            Ok((tool, back)) => {
                let mut changes = Vec::new();
                round_trip(&mut path.clone(), def, &back, &mut changes);
                for (at, what) in changes {
                    let msg = format!(
                        "vaia's {} model does not reproduce the definition: {what}",
                        format.as_str()
                    );
                    problems.push(Found::new(
                        &name,
                        at,
                        "schema.round-trip",
                        msg,
                        format!("round-trip change in {name}"),
                    ));
                }
                tools.push(tool);
            }
            Err(e) => {
                let msg = format!("not a valid {} tool definition: {e}", format.as_str());
                let short = format!("unreadable definition at {path}");
                problems.push(Found::new(
                    &name,
                    path,
                    "schema.invalid-definition",
                    msg,
                    short,
                ));
            }
        }
    }
    let tool_of = |at: &str| {
        let owner = tools.iter().find(|t| {
            at.strip_prefix(t.path.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        });
        owner.map(|t| t.name.clone()).unwrap_or_default()
    };
    for at in parsed.duplicates {
        let msg = "duplicate key: readers keep one value (serde_json and JavaScript the last), so the definition is ambiguous";
        problems.push(Found::new(
            &tool_of(&at),
            at.clone(),
            "schema.duplicate-key",
            msg.to_string(),
            format!("duplicate key {at}"),
        ));
    }
    for (at, what) in parsed.numbers {
        problems.push(Found::new(
            &tool_of(&at),
            at.clone(),
            "schema.round-trip",
            what,
            format!("number changed at {at}"),
        ));
    }
    Ok(Loaded {
        format,
        tools,
        problems,
    })
}

fn detect<'v>(root: &'v Value, origin: &str) -> Result<(Format, Vec<Def<'v>>), InputError> {
    let err = |path: &str, reason: &str| InputError::Format {
        origin: origin.to_string(),
        path: path.to_string(),
        reason: reason.to_string(),
    };
    const UNKNOWN: &str =
        "no recognisable tool list: expected an OpenAI `tools` or `functions` array, \
        Gemini `function_declarations`, or an MCP tools/list result";
    let array =
        |v: &'v Value, path: &str| v.as_array().ok_or_else(|| err(path, "expected an array"));
    let (path, list, empty) = match root {
        Value::Array(a) => ("$".to_string(), a, Format::OpenAiTools),
        Value::Object(o) if o.contains_key("jsonrpc") => {
            if o.contains_key("error") {
                return Err(err(
                    "$.error",
                    "a JSON-RPC error response, not a tools/list result",
                ));
            }
            let tools = o.get("result").and_then(|r| r.get("tools"));
            let tools =
                tools.ok_or_else(|| err("$.result", "a JSON-RPC response without result.tools"))?;
            (
                "$.result.tools".to_string(),
                array(tools, "$.result.tools")?,
                Format::Mcp,
            )
        }
        Value::Object(o) => {
            if let Some(tools) = o.get("tools") {
                ("$.tools".to_string(), array(tools, "$.tools")?, Format::Mcp)
            } else if let Some(f) = o.get("functions") {
                let defs = enumerate("$.functions", array(f, "$.functions")?);
                return Ok((Format::OpenAiFunctions, defs));
            } else if let Some((key, d)) =
                GEMINI_KEYS.iter().find_map(|k| o.get(*k).map(|v| (*k, v)))
            {
                let path = key_path("$", key);
                let defs = enumerate(&path, array(d, &path)?);
                return Ok((Format::Gemini, defs));
            } else {
                return Err(err("$", UNKNOWN));
            }
        }
        _ => return Err(err("$", UNKNOWN)),
    };
    let format = match list.iter().find_map(classify) {
        Some(f) => f,
        None if list.is_empty() => empty,
        None => return Err(err(&path, UNKNOWN)),
    };
    let mut defs = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let at = index_path(&path, i);
        match format {
            Format::Gemini => {
                // A Gemini `tools` entry holds declarations, or is a built-in tool (googleSearch, ...).
                for key in GEMINI_KEYS {
                    if let Some(d) = item.get(key) {
                        let p = key_path(&at, key);
                        defs.extend(enumerate(&p, array(d, &p)?));
                    }
                }
            }
            // OpenAI lists may mix in built-in tools (`{"type":"web_search"}`): not definitions.
            Format::OpenAiTools | Format::OpenAiResponses | Format::OpenAiFunctions
                if item
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t != "function") => {}
            _ => defs.push((at, item)),
        }
    }
    Ok((format, defs))
}

fn classify(item: &Value) -> Option<Format> {
    let o = item.as_object()?;
    if GEMINI_KEYS.iter().any(|k| o.contains_key(*k)) {
        Some(Format::Gemini)
    } else if o.contains_key("inputSchema") {
        Some(Format::Mcp)
    } else if o.contains_key("input_schema") {
        // Anthropic's shape, not one vaia reads: better refused than passed unchecked.
        None
    } else if o.get("type").and_then(Value::as_str) == Some("function") {
        Some(if o.contains_key("function") {
            Format::OpenAiTools
        } else {
            Format::OpenAiResponses
        })
    } else if o.contains_key("type") {
        None
    } else if o.contains_key("name") {
        Some(Format::OpenAiFunctions)
    } else {
        None
    }
}

fn enumerate<'v>(path: &str, list: &'v [Value]) -> Vec<Def<'v>> {
    list.iter()
        .enumerate()
        .map(|(i, v)| (index_path(path, i), v))
        .collect()
}

/// Reads one definition into its typed model; returns the tool and the model serialised back.
fn read(
    format: Format,
    path: &str,
    def: &Value,
    problems: &mut Vec<Found>,
) -> Result<(Tool, Value), serde_json::Error> {
    let schema = |at: &str, value: Value, draft| {
        Some(Schema {
            path: key_path(path, at),
            value,
            draft,
        })
    };
    Ok(match format {
        Format::OpenAiTools => {
            let t = ChatTool::deserialize(def)?;
            let back = serde_json::to_value(&t)?;
            let fpath = key_path(path, "function");
            let mut tool = function_tool(t.function, &fpath);
            tool.path = path.to_string();
            tool.others.extend(t.extra);
            (tool, back)
        }
        Format::OpenAiFunctions | Format::OpenAiResponses => {
            let f = Function::deserialize(def)?;
            let back = serde_json::to_value(&f)?;
            (function_tool(f, path), back)
        }
        Format::Gemini => {
            let d = Declaration::deserialize(def)?;
            let back = serde_json::to_value(&d)?;
            let input = match (&d.parameters, d.parameters_json_schema) {
                (Some(p), None) => schema("parameters", normalise_gemini(p), Draft::Draft7),
                (None, Some(p)) => schema("parametersJsonSchema", p, Draft::Draft202012),
                (None, None) => None,
                (Some(p), Some(_)) => {
                    let msg = "parameters and parametersJsonSchema are mutually exclusive";
                    let short = format!("{} has two parameter schemas", d.name);
                    problems.push(Found::new(
                        &d.name,
                        path.to_string(),
                        "schema.invalid-schema",
                        msg.to_string(),
                        short,
                    ));
                    schema("parameters", normalise_gemini(p), Draft::Draft7)
                }
            };
            let tool = Tool {
                name: d.name,
                path: path.to_string(),
                description: d.description,
                title: None,
                input,
                output: None,
                others: d.extra,
            };
            (tool, back)
        }
        Format::Mcp => {
            let t = McpTool::deserialize(def)?;
            let back = serde_json::to_value(&t)?;
            let tool = Tool {
                name: t.name,
                path: path.to_string(),
                description: t.description,
                title: t.title,
                input: schema("inputSchema", t.input_schema, Draft::Draft202012),
                output: t
                    .output_schema
                    .and_then(|s| schema("outputSchema", s, Draft::Draft202012)),
                others: t.extra,
            };
            (tool, back)
        }
    })
}

fn function_tool(f: Function, path: &str) -> Tool {
    let mut others = f.extra;
    others.remove("type");
    if let Some(strict) = f.strict {
        others.insert("strict".to_string(), Value::Bool(strict));
    }
    Tool {
        name: f.name,
        path: path.to_string(),
        description: f.description,
        title: None,
        input: f.parameters.map(|value| Schema {
            path: key_path(path, "parameters"),
            value,
            draft: Draft::Draft7,
        }),
        output: None,
        others,
    }
}

/// Gemini's OpenAPI-subset schema as JSON Schema: `"OBJECT"` → `"object"`, and
/// `nullable: true` → `null` joins the type.
pub(crate) fn normalise_gemini(v: &Value) -> Value {
    let Value::Object(m) = v else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, x) in m {
        let x = match (k.as_str(), x) {
            ("type", Value::String(t)) => Value::String(t.to_ascii_lowercase()),
            ("nullable", Value::Bool(_)) => continue,
            ("properties", Value::Object(props)) => Value::Object(
                props
                    .iter()
                    .map(|(p, s)| (p.clone(), normalise_gemini(s)))
                    .collect(),
            ),
            ("items", s) => normalise_gemini(s),
            ("anyOf", Value::Array(list)) => {
                Value::Array(list.iter().map(normalise_gemini).collect())
            }
            _ => x.clone(),
        };
        out.insert(k.clone(), x);
    }
    if m.get("nullable") == Some(&Value::Bool(true)) {
        if let Some(Value::String(t)) = out.get("type") {
            let t = Value::String(t.clone());
            out.insert(
                "type".to_string(),
                Value::Array(vec![t, Value::from("null")]),
            );
        }
    }
    Value::Object(out)
}

/// Every difference between the definition as read and as vaia writes it back. `path` is
/// a buffer: extended while descending, restored on the way back.
fn round_trip(path: &mut String, raw: &Value, back: &Value, out: &mut Vec<(String, String)>) {
    let len = path.len();
    match (raw, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                parse::push_key(path, k);
                match b.get(k) {
                    Some(w) => round_trip(path, v, w, out),
                    None => out.push((path.clone(), format!("field {k} is dropped"))),
                }
                path.truncate(len);
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push((key_path(path, k), format!("field {k} is added")));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                let _ = write!(path, "[{i}]");
                round_trip(path, v, w, out);
                path.truncate(len);
            }
        }
        (Value::Number(a), Value::Number(b)) if a != b => {
            out.push((path.clone(), format!("number {a} becomes {b}")));
        }
        _ if raw != back => out.push((path.clone(), format!("{raw} becomes {back}"))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_reports_paths() {
        let mut out = Vec::new();
        round_trip(
            &mut "$".to_string(),
            &json!({"a": 10, "b": [1, {"c": null}]}),
            &json!({"a": 10.0, "b": [1, {}]}),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                ("$.a".to_string(), "number 10 becomes 10.0".to_string()),
                ("$.b[1].c".to_string(), "field c is dropped".to_string()),
            ]
        );
    }

    #[test]
    fn gemini_types_normalise() {
        let s = json!({"type": "OBJECT", "properties": {"type": {"type": "STRING", "nullable": true}},
                       "items": {"type": "INTEGER"}});
        assert_eq!(
            normalise_gemini(&s),
            json!({"type": "object", "properties": {"type": {"type": ["string", "null"]}},
                   "items": {"type": "integer"}})
        );
    }
}
