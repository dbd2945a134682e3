//! The schema gate from the outside: real tool files, one test per rule, bad input, and
//! snapshots of whole verdicts.

#![allow(clippy::unwrap_used)] // tests may unwrap; clippy.toml only covers #[test] fns

use serde_json::{json, Value};
use vaia_core::{Outcome, Severity, Verdict};
use vaia_gates::schema::{evaluate, Input, InputError, SchemaOptions, GATE};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn eval_bytes(cand: &[u8], base: Option<&[u8]>, allow_major: bool) -> Result<Verdict, InputError> {
    let c = Input {
        origin: "candidate.json",
        bytes: cand,
    };
    let b = base.map(|bytes| Input {
        origin: "baseline.json",
        bytes,
    });
    evaluate(&c, b.as_ref(), &SchemaOptions { allow_major })
}

fn eval(cand: &Value, base: Option<&Value>) -> Verdict {
    let c = serde_json::to_vec(cand).unwrap();
    let b = base.map(|b| serde_json::to_vec(b).unwrap());
    eval_bytes(&c, b.as_deref(), false).unwrap()
}

fn rules(v: &Verdict) -> Vec<&str> {
    v.findings.iter().map(|f| f.rule.as_str()).collect()
}

fn metric<'a>(v: &'a Verdict, k: &str) -> &'a Value {
    v.metrics.get(k).unwrap_or(&Value::Null)
}

/// One OpenAI tool named `t` with these parameters.
fn openai(params: Value) -> Value {
    json!([{"type": "function", "function": {"name": "t", "description": "d", "parameters": params}}])
}

fn obj(props: Value) -> Value {
    json!({"type": "object", "properties": props})
}

/// Compares one property `p` of tool `t` before and after; returns the verdict.
fn prop_change(before: Value, after: Value) -> Verdict {
    eval(
        &openai(obj(json!({"p": after}))),
        Some(&openai(obj(json!({"p": before})))),
    )
}

/// Asserts exactly one finding, with this rule and location.
fn only(v: &Verdict, rule: &str, location: &str) {
    assert_eq!(rules(v), vec![rule], "{:#?}", v.findings);
    assert_eq!(
        v.findings[0].location.as_deref(),
        Some(location),
        "{:#?}",
        v.findings
    );
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

// ---- real-world files ----------------------------------------------------------------

#[test]
fn real_world_files_pass_alone_and_against_themselves() {
    let files = [
        ("openai_cookbook_weather.json", "openai-tools", 2),
        ("openai_node_book_functions.json", "openai-functions", 3),
        ("gemini_cookbook_movies_request.json", "gemini", 3),
        ("gemini_cookbook_lights_tools.json", "gemini", 3),
        ("gemini_js_control_light.json", "gemini", 1),
        ("mcp_everything_tools_list.json", "mcp", 11),
        ("mcp_fetch_tools_list.json", "mcp", 1),
    ];
    for (name, format, tools) in files {
        let bytes = fixture(name);
        let alone = eval_bytes(&bytes, None, false).unwrap();
        assert_eq!(alone.outcome, Outcome::Pass, "{name}: {:#?}", alone);
        assert!(alone.findings.is_empty(), "{name}: {:#?}", alone.findings);
        assert_eq!(alone.gate.as_str(), GATE);
        assert_eq!(metric(&alone, "format"), format, "{name}");
        assert_eq!(metric(&alone, "tools"), tools, "{name}");
        assert!(
            alone.metrics.get("bump").is_none(),
            "{name}: bump without a baseline"
        );

        let same = eval_bytes(&bytes, Some(&bytes), false).unwrap();
        assert_eq!(same.outcome, Outcome::Pass, "{name}: {:#?}", same);
        assert_eq!(metric(&same, "bump"), "patch", "{name}");
        assert!(same.findings.is_empty(), "{name}: {:#?}", same.findings);
    }
}

#[test]
fn the_same_tools_in_another_format_are_the_same_contract() {
    // Gemini's uppercase OpenAPI types against the same tool written for OpenAI.
    let gemini = fixture("gemini_js_control_light.json");
    let openai = json!([{"type": "function", "function": {"name": "controlLight",
        "parameters": {"type": "object", "description": "Set the brightness and color temperature of a room light.",
            "properties": {
                "brightness": {"type": "number", "description": "Light level from 0 to 100. Zero is off and 100 is full brightness."},
                "colorTemperature": {"type": "string", "description": "Color temperature of the light fixture which can be `daylight`, `cool` or `warm`."}},
            "required": ["brightness", "colorTemperature"]}}}]);
    let v = eval_bytes(&serde_json::to_vec(&openai).unwrap(), Some(&gemini), false).unwrap();
    assert_eq!(v.outcome, Outcome::Pass);
    assert!(v.findings.is_empty(), "{:#?}", v.findings);
    assert_eq!(metric(&v, "baseline_format"), "gemini");
    assert_eq!(metric(&v, "bump"), "patch");
}

#[test]
fn gemini_nullable_is_part_of_the_type() {
    let base = json!({"function_declarations": [{"name": "t", "parameters":
        {"type": "OBJECT", "properties": {"p": {"type": "STRING", "nullable": true}}}}]});
    let v = eval(&openai(obj(json!({"p": {"type": "string"}}))), Some(&base));
    assert!(
        rules(&v).contains(&"schema.breaking.type-narrowed"),
        "{:#?}",
        v.findings
    );
}

// ---- format detection ----------------------------------------------------------------

#[test]
fn detects_every_format() {
    let f = json!({"name": "t", "parameters": {"type": "object"}});
    let cases = [
        (
            json!({"tools": [{"type": "function", "function": f}]}),
            "openai-tools",
        ),
        (json!([f]), "openai-functions"),
        (json!({"functions": [f]}), "openai-functions"),
        (
            json!([{"type": "function", "name": "t", "parameters": {"type": "object"}, "strict": false}]),
            "openai-responses",
        ),
        (json!({"functionDeclarations": [f]}), "gemini"),
        (
            json!({"tools": [{"googleSearch": {}}, {"functionDeclarations": [f]}]}),
            "gemini",
        ),
        (
            json!({"function_declarations": [{"name": "t", "parametersJsonSchema": {"type": "object"}}]}),
            "gemini",
        ),
        (
            json!({"tools": [{"name": "t", "inputSchema": {"type": "object"}}]}),
            "mcp",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": [{"name": "t", "inputSchema": {"type": "object"}}]}}),
            "mcp",
        ),
        (json!({"tools": []}), "mcp"),
    ];
    for (file, format) in cases {
        let v = eval(&file, None);
        assert_eq!(metric(&v, "format"), format, "{file}");
        assert_eq!(v.outcome, Outcome::Pass, "{file}: {:#?}", v.findings);
    }
}

#[test]
fn built_in_tools_are_not_definitions() {
    let v = eval(
        &json!({"tools": [{"type": "web_search"}, {"type": "function", "name": "t"}]}),
        None,
    );
    assert_eq!(metric(&v, "format"), "openai-responses");
    assert_eq!(metric(&v, "tools"), 1);
}

#[test]
fn extra_fields_are_kept() {
    let tool = json!({"name": "t", "title": "T", "inputSchema": {"type": "object"},
        "annotations": {"readOnlyHint": true}, "_meta": {"x": [1, 2.5]}, "icons": []});
    let v = eval(&json!({"tools": [tool]}), None);
    assert_eq!(v.outcome, Outcome::Pass, "{:#?}", v.findings);
}

// ---- invalid definitions -------------------------------------------------------------

#[test]
fn invalid_schema_is_a_finding_at_its_path() {
    let v = eval(
        &json!({"tools": [{"name": "t", "inputSchema": {"type": "object", "properties": {"a": {"type": "strin"}}}}]}),
        None,
    );
    assert_eq!(v.outcome, Outcome::Fail);
    only(
        &v,
        "schema.invalid-schema",
        "$.tools[0].inputSchema.properties.a.type",
    );
    assert_eq!(v.findings[0].severity, Severity::High);
    assert_eq!(metric(&v, "invalid"), 1);
    assert!(
        v.summary
            .contains("1 invalid definition (invalid schema in t)"),
        "{}",
        v.summary
    );
}

#[test]
fn schema_dialect_comes_from_dollar_schema() {
    // `exclusiveMinimum: true` is draft 4 only.
    let d4 = json!({"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
        "properties": {"n": {"type": "number", "minimum": 0, "exclusiveMinimum": true}}});
    assert_eq!(eval(&openai(d4.clone()), None).outcome, Outcome::Pass);
    let mut d7 = d4;
    d7["$schema"] = json!("http://json-schema.org/draft-07/schema#");
    only(
        &eval(&openai(d7), None),
        "schema.invalid-schema",
        "$[0].function.parameters.properties.n.exclusiveMinimum",
    );
    let other = json!({"$schema": "https://example.com/my-dialect", "type": "object"});
    only(
        &eval(&openai(other), None),
        "schema.invalid-schema",
        "$[0].function.parameters['$schema']",
    );
}

#[test]
fn schemas_must_compile() {
    let v = eval(
        &openai(obj(
            json!({"a": {"type": "string", "pattern": "(unclosed"}}),
        )),
        None,
    );
    only(
        &v,
        "schema.invalid-schema",
        "$[0].function.parameters.properties.a.pattern",
    );
    let v = eval(
        &openai(json!({"type": "object", "$ref": "https://example.com/remote.json"})),
        None,
    );
    only(&v, "schema.invalid-schema", "$[0].function.parameters");
}

#[test]
fn parameters_must_be_an_object_schema() {
    only(
        &eval(&openai(json!({"type": "string"})), None),
        "schema.invalid-schema",
        "$[0].function.parameters.type",
    );
    only(
        &eval(&openai(json!(true)), None),
        "schema.invalid-schema",
        "$[0].function.parameters",
    );
    let mcp = json!({"tools": [{"name": "t", "inputSchema": {"properties": {}}}]});
    only(
        &eval(&mcp, None),
        "schema.invalid-schema",
        "$.tools[0].inputSchema.type",
    );
}

#[test]
fn duplicate_names() {
    let f = json!({"name": "t", "parameters": {"type": "object"}});
    let v = eval(&json!({"functions": [f, {"name": "u"}, f]}), None);
    only(&v, "schema.duplicate-name", "$.functions[2]");
    assert!(v.findings[0].message.contains("$.functions[0]"));
    assert_eq!(v.outcome, Outcome::Fail);
}

#[test]
fn bad_names_per_format() {
    let cases = [
        (
            json!({"functions": [{"name": "get.weather"}]}),
            "$.functions[0].name",
        ),
        (
            json!({"functions": [{"name": "x".repeat(65)}]}),
            "$.functions[0].name",
        ),
        (
            json!({"tools": [{"name": "user/profile", "inputSchema": {"type": "object"}}]}),
            "$.tools[0].name",
        ),
        (
            json!({"tools": [{"name": "", "inputSchema": {"type": "object"}}]}),
            "$.tools[0].name",
        ),
        (
            json!({"functionDeclarations": [{"name": "1st_tool"}]}),
            "$.functionDeclarations[0].name",
        ),
    ];
    for (file, at) in cases {
        only(&eval(&file, None), "schema.bad-name", at);
    }
    // What each vendor does allow.
    let ok = json!({"tools": [{"name": "admin.tools.list", "inputSchema": {"type": "object"}}]});
    assert!(eval(&ok, None).findings.is_empty());
    assert!(eval(
        &json!({"functionDeclarations": [{"name": "ns:get.v2"}]}),
        None
    )
    .findings
    .is_empty());
}

#[test]
fn unreadable_definition_is_a_finding() {
    let v = eval(
        &json!({"tools": [{"name": "a", "inputSchema": {"type": "object"}}, {"inputSchema": {"type": "object"}}]}),
        None,
    );
    only(&v, "schema.invalid-definition", "$.tools[1]");
    assert!(
        v.findings[0].message.contains("missing field `name`"),
        "{}",
        v.findings[0].message
    );
    assert_eq!(v.outcome, Outcome::Fail);
}

#[test]
fn gemini_cannot_have_two_parameter_schemas() {
    let v = eval(
        &json!({"functionDeclarations": [{"name": "t", "parameters": {"type": "OBJECT"}, "parametersJsonSchema": {"type": "object"}}]}),
        None,
    );
    only(&v, "schema.invalid-schema", "$.functionDeclarations[0]");
}

#[test]
fn round_trip_number_change() {
    // 2^64 does not fit a u64: it is read as a float and written back as 18446744073709552000.
    let text = br#"{"tools": [{"name": "t", "inputSchema": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 18446744073709551616}}}}]}"#;
    let v = eval_bytes(text, None, false).unwrap();
    only(
        &v,
        "schema.round-trip",
        "$.tools[0].inputSchema.properties.n.maximum",
    );
    assert!(
        v.findings[0].message.contains("18446744073709551616"),
        "{}",
        v.findings[0].message
    );
    assert_eq!(v.outcome, Outcome::Fail);
    // More digits than an f64 holds.
    let text = br#"[{"name": "t", "parameters": {"type": "object", "properties": {"n": {"type": "number", "multipleOf": 0.10000000000000000000001}}}}]"#;
    only(
        &eval_bytes(text, None, false).unwrap(),
        "schema.round-trip",
        "$[0].parameters.properties.n.multipleOf",
    );
    // 10 and 10.0 are kept apart, so they survive.
    let text = br#"[{"name": "t", "parameters": {"type": "object", "properties": {"n": {"type": "number", "minimum": 10, "maximum": 10.0}}}}]"#;
    assert!(eval_bytes(text, None, false).unwrap().findings.is_empty());
}

#[test]
fn round_trip_dropped_field() {
    // An explicit null for an optional field reads as absent.
    let v = eval(
        &json!({"tools": [{"name": "t", "description": null, "inputSchema": {"type": "object"}}]}),
        None,
    );
    only(&v, "schema.round-trip", "$.tools[0].description");
    assert!(
        v.findings[0].message.contains("dropped"),
        "{}",
        v.findings[0].message
    );
}

#[test]
fn duplicate_key_is_reported_with_its_path() {
    let text = br#"{"tools": [
        {"name": "a", "inputSchema": {"type": "object"}},
        {"name": "b", "inputSchema": {"type": "object"}},
        {"name": "get_weather", "inputSchema": {"type": "object", "properties": {
            "city": {"type": "string"},
            "city": {"type": "integer"}}}}]}"#;
    let v = eval_bytes(text, None, false).unwrap();
    only(
        &v,
        "schema.duplicate-key",
        "$.tools[2].inputSchema.properties.city",
    );
    assert_eq!(v.findings[0].data, Some(json!({"tool": "get_weather"})));
    assert_eq!(v.outcome, Outcome::Fail);
}

// ---- unreadable input ----------------------------------------------------------------

#[test]
fn input_errors_name_the_file_and_where() {
    let err = |text: &str| {
        eval_bytes(text.as_bytes(), None, false)
            .unwrap_err()
            .to_string()
    };
    let e = err("{\"tools\": [\n  {\"name\": \"a\",}\n]}");
    assert_eq!(e, "candidate.json:2:16: not valid JSON: trailing comma");
    assert!(
        err("").starts_with("candidate.json:1:0: not valid JSON"),
        "{}",
        err("")
    );
    assert!(
        err("[1] x").starts_with("candidate.json:1:5: not valid JSON"),
        "{}",
        err("[1] x")
    );
    assert!(err("{\"a\": 1}").starts_with("candidate.json at $: no recognisable tool list"));
    assert!(err("42").starts_with("candidate.json at $: no recognisable tool list"));
    assert_eq!(
        err("{\"tools\": 5}"),
        "candidate.json at $.tools: expected an array"
    );
    assert!(err("[1, 2]").starts_with("candidate.json at $: no recognisable"));
    assert!(
        err("{\"jsonrpc\": \"2.0\", \"id\": 1, \"error\": {\"code\": -32601}}")
            .starts_with("candidate.json at $.error: a JSON-RPC error")
    );
    // Anthropic's shape is refused, not read as something else and passed unchecked.
    assert!(
        err("[{\"name\": \"t\", \"input_schema\": {\"type\": \"object\"}}]")
            .contains("no recognisable")
    );
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    assert!(err(&deep).contains("recursion limit"), "{}", err(&deep));
    // A bad baseline names the baseline.
    let good = serde_json::to_vec(&openai(obj(json!({})))).unwrap();
    let e = eval_bytes(&good, Some(b"nope"), false)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "baseline.json:1:2: not valid JSON: expected ident");
}

#[test]
fn odd_schemas_never_panic() {
    let odd = [
        json!({"type": "object", "$id": ":::not a uri"}),
        json!({"type": "object", "items": 5, "properties": {"a": false, "b": true}}),
        json!({"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}),
        json!({"type": "object", "$schema": 7}),
        json!({"type": "object", "required": "a", "enum": 3, "anyOf": {}}),
        json!({"type": "object", "properties": {"a": {"type": ["string", 3], "minimum": "x"}}}),
    ];
    for s in &odd {
        assert_eq!(eval(&openai(s.clone()), None).outcome, Outcome::Fail, "{s}");
        for t in &odd {
            eval(&openai(t.clone()), Some(&openai(s.clone())));
        }
    }
}

/// Every node of a real file replaced, in turn, by odd values; and the text cut short at
/// every byte. Whatever comes back, nothing may panic.
#[test]
fn mutated_files_never_panic() {
    fn paths(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, c)| paths(c, format!("{at}/{k}"), out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, c)| paths(c, format!("{at}/{i}"), out)),
            _ => {}
        }
        out.push(at);
    }
    let original = fixture("mcp_fetch_tools_list.json");
    let file: Value = serde_json::from_slice(&original).unwrap();
    let mut all = Vec::new();
    paths(&file, String::new(), &mut all);
    let odd = [
        json!(null),
        json!(-1),
        json!(1e300),
        json!("OBJECT"),
        json!([]),
        json!({}),
        json!(false),
    ];
    for p in all.iter().filter(|p| !p.is_empty()) {
        for o in &odd {
            let mut f = file.clone();
            *f.pointer_mut(p).unwrap() = o.clone();
            let bytes = serde_json::to_vec(&f).unwrap();
            let _ = eval_bytes(&bytes, None, false);
            let _ = eval_bytes(&bytes, Some(&original), false);
            let _ = eval_bytes(&original, Some(&bytes), false);
        }
    }
    for end in 0..original.trim_ascii_end().len() {
        assert!(eval_bytes(&original[..end], None, false).is_err());
    }
}

// ---- baseline: breaking --------------------------------------------------------------

#[test]
fn tool_removed() {
    let base = json!({"functions": [{"name": "a"}, {"name": "get_weather"}]});
    let v = eval(&json!({"functions": [{"name": "a"}]}), Some(&base));
    only(&v, "schema.breaking.tool-removed", "$.functions[1]");
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(metric(&v, "bump"), "major");
    assert!(
        v.summary.ends_with(
            "1 breaking change (tool get_weather removed) — major bump not allowed by policy"
        ),
        "{}",
        v.summary
    );
}

#[test]
fn property_removed() {
    let base = openai(obj(
        json!({"a": {"type": "string"}, "b": {"type": "integer"}}),
    ));
    let v = eval(&openai(obj(json!({"a": {"type": "string"}}))), Some(&base));
    only(
        &v,
        "schema.breaking.property-removed",
        "$[0].function.parameters.properties.b",
    );
}

#[test]
fn property_renamed_is_one_finding() {
    let units =
        json!({"type": "string", "enum": ["metric", "imperial"], "description": "old text"});
    let mut unit = units.clone();
    unit["description"] = json!("new text");
    let base = openai(obj(json!({"city": {"type": "string"}, "units": units})));
    let v = eval(
        &openai(obj(json!({"city": {"type": "string"}, "unit": unit}))),
        Some(&base),
    );
    only(
        &v,
        "schema.breaking.property-renamed",
        "$[0].function.parameters.properties.unit",
    );
    assert!(v.findings[0].message.contains("units renamed to unit"));
    // A different schema is a removal and an addition, not a rename.
    let v = eval(
        &openai(obj(
            json!({"city": {"type": "string"}, "unit": {"type": "integer"}}),
        )),
        Some(&base),
    );
    assert_eq!(
        rules(&v),
        vec![
            "schema.additive.property-added",
            "schema.breaking.property-removed"
        ]
    );
}

#[test]
fn newly_required() {
    let base = openai(json!({"type": "object", "properties": {"a": {"type": "string"}}}));
    let v = eval(
        &openai(
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
        ),
        Some(&base),
    );
    only(
        &v,
        "schema.breaking.newly-required",
        "$[0].function.parameters.properties.a",
    );
    // A new property that is required at once.
    let v = eval(
        &openai(
            json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["b"]}),
        ),
        Some(&base),
    );
    only(
        &v,
        "schema.breaking.newly-required",
        "$[0].function.parameters.properties.b",
    );
    assert!(
        v.summary.contains("property b newly required"),
        "{}",
        v.summary
    );
}

#[test]
fn type_narrowed() {
    for (before, after) in [
        (json!(["string", "null"]), json!("string")),
        (json!("number"), json!("integer")),
        (json!(["string", "integer"]), json!("string")),
    ] {
        let v = prop_change(json!({"type": before}), json!({"type": after}));
        only(
            &v,
            "schema.breaking.type-narrowed",
            "$[0].function.parameters.properties.p.type",
        );
    }
    // No type at all accepts anything; adding one narrows.
    only(
        &prop_change(json!({}), json!({"type": "string"})),
        "schema.breaking.type-narrowed",
        "$[0].function.parameters.properties.p.type",
    );
    // Removed from anyOf / oneOf.
    for kw in ["anyOf", "oneOf"] {
        let v = prop_change(
            json!({kw: [{"type": "string"}, {"type": "null"}]}),
            json!({kw: [{"type": "string"}]}),
        );
        only(
            &v,
            "schema.breaking.type-narrowed",
            &format!("$[0].function.parameters.properties.p.{kw}[1]"),
        );
    }
}

#[test]
fn enum_value_removed() {
    let v = prop_change(
        json!({"type": "string", "enum": ["c", "f", "k"]}),
        json!({"type": "string", "enum": ["c", "k"]}),
    );
    only(
        &v,
        "schema.breaking.enum-value-removed",
        "$[0].function.parameters.properties.p.enum[1]",
    );
    assert!(v.findings[0].message.contains("\"f\""));
}

#[test]
fn constraint_tightened() {
    let p = "$[0].function.parameters.properties.p";
    let cases = [
        (json!({"minimum": 1}), json!({"minimum": 2}), "minimum"),
        (json!({}), json!({"minimum": 0}), "minimum"),
        (
            json!({"exclusiveMinimum": 0}),
            json!({"exclusiveMinimum": 1}),
            "exclusiveMinimum",
        ),
        (json!({"maximum": 10}), json!({"maximum": 9.5}), "maximum"),
        (
            json!({"exclusiveMaximum": 10}),
            json!({"exclusiveMaximum": 5}),
            "exclusiveMaximum",
        ),
        (
            json!({"minLength": 1}),
            json!({"minLength": 3}),
            "minLength",
        ),
        (
            json!({"maxLength": 100}),
            json!({"maxLength": 50}),
            "maxLength",
        ),
        (json!({"minItems": 0}), json!({"minItems": 1}), "minItems"),
        (json!({"maxItems": 10}), json!({"maxItems": 2}), "maxItems"),
        (
            json!({"minProperties": 0}),
            json!({"minProperties": 1}),
            "minProperties",
        ),
        (
            json!({"maxProperties": 5}),
            json!({"maxProperties": 4}),
            "maxProperties",
        ),
        (json!({}), json!({"pattern": "^[a-z]+$"}), "pattern"),
        (
            json!({"pattern": "^[a-z]+$"}),
            json!({"pattern": "^[a-z]{2}$"}),
            "pattern",
        ),
        (
            json!({}),
            json!({"additionalProperties": false}),
            "additionalProperties",
        ),
        (
            json!({"additionalProperties": true}),
            json!({"additionalProperties": false}),
            "additionalProperties",
        ),
        (
            json!({}),
            json!({"additionalProperties": {"type": "string"}}),
            "additionalProperties",
        ),
        (json!({}), json!({"format": "email"}), "format"),
        (json!({}), json!({"const": "x"}), "const"),
        (json!({}), json!({"enum": ["a"]}), "enum"),
        (
            json!({"multipleOf": 2}),
            json!({"multipleOf": 4}),
            "multipleOf",
        ),
        (json!({}), json!({"uniqueItems": true}), "uniqueItems"),
        (json!({}), json!({"not": {"type": "null"}}), "not"),
    ];
    for (before, after, kw) in cases {
        let v = prop_change(before.clone(), after.clone());
        only(
            &v,
            "schema.breaking.constraint-tightened",
            &format!("{p}.{kw}"),
        );
        assert_eq!(v.outcome, Outcome::Fail, "{before} -> {after}");
    }
    // Numerically equal bounds are no change.
    assert!(prop_change(json!({"minimum": 1}), json!({"minimum": 1.0}))
        .findings
        .is_empty());
}

#[test]
fn nested_objects_and_array_items_are_compared() {
    let item = |extra: Value| {
        let mut point = json!({"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}});
        point
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"type": "array", "items": point})
    };
    let v = prop_change(item(json!({})), item(json!({"required": ["lat"]})));
    only(
        &v,
        "schema.breaking.newly-required",
        "$[0].function.parameters.properties.p.items.properties.lat",
    );
    assert!(
        v.findings[0].message.contains("property p[].lat"),
        "{}",
        v.findings[0].message
    );
    let nested = |t: &str| json!({"type": "object", "properties": {"q": {"type": "object", "properties": {"r": {"type": t}}}}});
    only(
        &prop_change(nested("number"), nested("integer")),
        "schema.breaking.type-narrowed",
        "$[0].function.parameters.properties.p.properties.q.properties.r.type",
    );
}

#[test]
fn allow_major_passes_with_bump_major() {
    let base = serde_json::to_vec(&json!({"functions": [{"name": "a"}, {"name": "b"}]})).unwrap();
    let cand = serde_json::to_vec(&json!({"functions": [{"name": "a"}]})).unwrap();
    let v = eval_bytes(&cand, Some(&base), true).unwrap();
    assert_eq!(v.outcome, Outcome::Pass);
    assert_eq!(metric(&v, "bump"), "major");
    assert_eq!(metric(&v, "breaking"), 1);
    assert!(
        v.summary.ends_with("— major bump, allowed by policy"),
        "{}",
        v.summary
    );
}

// ---- baseline: additive and patch ----------------------------------------------------

#[test]
fn tool_added() {
    let v = eval(
        &json!({"functions": [{"name": "a"}, {"name": "b"}]}),
        Some(&json!({"functions": [{"name": "a"}]})),
    );
    only(&v, "schema.additive.tool-added", "$.functions[1]");
    assert_eq!(v.findings[0].severity, Severity::Info);
    assert_eq!(v.outcome, Outcome::Pass);
    assert_eq!(metric(&v, "bump"), "minor");
}

#[test]
fn optional_property_added() {
    let v = eval(
        &openai(obj(
            json!({"a": {"type": "string"}, "b": {"type": "string"}}),
        )),
        Some(&openai(obj(json!({"a": {"type": "string"}})))),
    );
    only(
        &v,
        "schema.additive.property-added",
        "$[0].function.parameters.properties.b",
    );
    assert_eq!(metric(&v, "bump"), "minor");
}

#[test]
fn newly_optional() {
    let base = openai(
        json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
    );
    let v = eval(&openai(obj(json!({"a": {"type": "string"}}))), Some(&base));
    only(
        &v,
        "schema.additive.newly-optional",
        "$[0].function.parameters.properties.a",
    );
}

#[test]
fn enum_value_added() {
    let v = prop_change(
        json!({"enum": ["c", "f"]}),
        json!({"enum": ["c", "f", "k"]}),
    );
    only(
        &v,
        "schema.additive.enum-value-added",
        "$[0].function.parameters.properties.p.enum[2]",
    );
}

#[test]
fn type_widened() {
    for (before, after) in [
        (json!("integer"), json!("number")),
        (json!("string"), json!(["string", "null"])),
    ] {
        let v = prop_change(json!({"type": before}), json!({"type": after}));
        only(
            &v,
            "schema.additive.type-widened",
            "$[0].function.parameters.properties.p.type",
        );
    }
    let v = prop_change(
        json!({"anyOf": [{"type": "string"}]}),
        json!({"anyOf": [{"type": "string"}, {"type": "null"}]}),
    );
    only(
        &v,
        "schema.additive.type-widened",
        "$[0].function.parameters.properties.p.anyOf[1]",
    );
}

#[test]
fn constraint_loosened() {
    let p = "$[0].function.parameters.properties.p";
    let cases = [
        (
            json!({"minimum": 2}),
            json!({"minimum": 1}),
            format!("{p}.minimum"),
        ),
        (
            json!({"maximum": 9}),
            json!({"maximum": 10}),
            format!("{p}.maximum"),
        ),
        (
            json!({"minLength": 3}),
            json!({"minLength": 1}),
            format!("{p}.minLength"),
        ),
        (
            json!({"maxItems": 2}),
            json!({"maxItems": 10}),
            format!("{p}.maxItems"),
        ),
        (json!({"pattern": "^a$"}), json!({}), p.to_string()),
        (
            json!({"additionalProperties": false}),
            json!({}),
            p.to_string(),
        ),
        (
            json!({"additionalProperties": false}),
            json!({"additionalProperties": true}),
            format!("{p}.additionalProperties"),
        ),
        (json!({"format": "email"}), json!({}), p.to_string()),
        (json!({"const": "x"}), json!({}), p.to_string()),
        (
            json!({"multipleOf": 4}),
            json!({"multipleOf": 2}),
            format!("{p}.multipleOf"),
        ),
        (
            json!({"uniqueItems": true}),
            json!({"uniqueItems": false}),
            p.to_string(),
        ),
    ];
    for (before, after, at) in cases {
        let v = prop_change(before, after);
        only(&v, "schema.additive.constraint-loosened", &at);
        assert_eq!(metric(&v, "bump"), "minor");
    }
}

#[test]
fn description_only_changes_are_patch() {
    let base = json!({"tools": [{"name": "t", "description": "old", "title": "Old",
        "inputSchema": {"type": "object", "properties": {"a": {"type": "string", "description": "old", "default": "x"}}},
        "annotations": {"readOnlyHint": true}}]});
    let cand = json!({"tools": [{"name": "t", "description": "new", "title": "New",
        "inputSchema": {"type": "object", "properties": {"a": {"type": "string", "description": "new", "default": "y"}}},
        "annotations": {"readOnlyHint": false}}]});
    let v = eval(&cand, Some(&base));
    assert_eq!(v.outcome, Outcome::Pass);
    assert_eq!(metric(&v, "bump"), "patch");
    assert_eq!(metric(&v, "breaking"), 0);
    assert_eq!(metric(&v, "additive"), 0);
    assert_eq!(
        rules(&v),
        vec![
            "schema.patch.annotation",  // $.tools[0].annotations
            "schema.patch.description", // $.tools[0].description
            "schema.patch.annotation",  // ...properties.a.default
            "schema.patch.description", // ...properties.a.description
            "schema.patch.annotation",  // $.tools[0].title
        ]
    );
    assert!(
        v.summary
            .ends_with("no contract changes (5 text-only) — patch bump"),
        "{}",
        v.summary
    );
}

#[test]
fn output_is_sorted_by_tool_then_path() {
    let base = json!({"functions": [
        {"name": "zeta", "parameters": obj(json!({"a": {"type": "string"}, "b": {"type": "string"}}))},
        {"name": "alpha", "parameters": obj(json!({"a": {"type": "string"}}))}]});
    let cand = json!({"functions": [
        {"name": "alpha", "parameters": obj(json!({"a": {"type": "integer"}, "c": {"type": "string"}}))},
        {"name": "zeta", "parameters": obj(json!({}))}]});
    let v = eval(&cand, Some(&base));
    let tools: Vec<&str> = v
        .findings
        .iter()
        .map(|f| f.data.as_ref().unwrap()["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, vec!["alpha", "alpha", "zeta", "zeta"]);
    assert_eq!(eval(&cand, Some(&base)), v);
}

// ---- whole verdicts ------------------------------------------------------------------

/// The everything server with changes a release could bring.
fn everything_changed(breaking: bool) -> Vec<u8> {
    let mut file: Value =
        serde_json::from_slice(&fixture("mcp_everything_tools_list.json")).unwrap();
    let tools = file["result"]["tools"].as_array_mut().unwrap();
    // additive: an optional property, a wider enum, a new tool
    tools[1]["inputSchema"]["properties"]["precision"] = json!({"type": "integer", "minimum": 0});
    tools[6]["inputSchema"]["properties"]["messageType"]["enum"]
        .as_array_mut()
        .unwrap()
        .push(json!("warning"));
    tools.push(json!({"name": "getTime", "description": "Returns the server time", "inputSchema": {"type": "object"}}));
    tools[0]["description"] = json!("Echoes the input back");
    if breaking {
        tools.retain(|t| t["name"] != "printEnv");
        let echo = &mut tools[0]["inputSchema"];
        echo["properties"]["text"] = echo["properties"]["message"].take();
        echo["properties"]
            .as_object_mut()
            .unwrap()
            .remove("message");
        echo["required"] = json!(["text"]);
        tools[1]["inputSchema"]["properties"]["a"]["type"] = json!("integer");
        tools[1]["inputSchema"]["required"] = json!(["a", "b", "precision"]);
    }
    serde_json::to_vec_pretty(&file).unwrap()
}

#[test]
fn snapshot_breaking_diff() {
    let base = fixture("mcp_everything_tools_list.json");
    let v = eval_bytes(&everything_changed(true), Some(&base), false).unwrap();
    insta::assert_json_snapshot!(v);
}

#[test]
fn snapshot_additive_diff() {
    let base = fixture("mcp_everything_tools_list.json");
    let v = eval_bytes(&everything_changed(false), Some(&base), false).unwrap();
    insta::assert_json_snapshot!(v);
}
