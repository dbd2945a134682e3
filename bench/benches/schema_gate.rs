//! Schema gate benchmarks on a generated MCP tools/list of 100 tools (5-10 properties each,
//! with enums, bounds, a nested object and an array of objects): the candidate alone, and
//! against a baseline that differs in a few places (a tool removed, a property newly
//! required, an enum value added, a type widened, descriptions reworded).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Map, Value};
use std::hint::black_box;
use vaia_gates::schema::{evaluate, Input, SchemaOptions};

const TOOLS: usize = 100;

fn tool(i: usize) -> Value {
    let mut props = Map::new();
    props.insert("query".into(), json!({"type": "string", "minLength": 1, "maxLength": 500, "description": "What to look for"}));
    props.insert(
        "limit".into(),
        json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 10}),
    );
    props.insert(
        "sort".into(),
        json!({"type": "string", "enum": ["relevance", "newest", "oldest"]}),
    );
    props.insert(
        "filter".into(),
        json!({"type": "object", "properties": {
            "from": {"type": "string", "format": "date"},
            "to": {"type": "string", "format": "date"},
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z0-9-]+$"}, "maxItems": 20}},
            "additionalProperties": false}),
    );
    props.insert(
        "targets".into(),
        json!({"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "weight": {"type": "number", "exclusiveMinimum": 0}},
            "required": ["id"]}}),
    );
    // 0-5 more, so tools have 5 to 10 properties.
    for k in 0..i % 6 {
        props.insert(
            format!("option_{k}"),
            json!({"type": ["string", "null"], "description": format!("Option {k}")}),
        );
    }
    json!({
        "name": format!("tool_{i:03}"),
        "description": format!("Tool number {i}: searches the {i}th collection."),
        "inputSchema": {"type": "object", "properties": props, "required": ["query"], "additionalProperties": false},
        "annotations": {"readOnlyHint": i.is_multiple_of(2)}
    })
}

fn candidate() -> Value {
    json!({"tools": (0..TOOLS).map(tool).collect::<Vec<_>>()})
}

fn baseline() -> Value {
    let mut file = candidate();
    let Some(tools) = file["tools"].as_array_mut() else {
        return file;
    };
    // Relative to this baseline the candidate adds tool_005, removes `retired`, makes
    // `query` newly required in tool_010, drops enum value "random" in tool_020, narrows
    // `limit` from number to integer in tool_030 and rewords descriptions in tool_040-049.
    tools.push(json!({"name": "retired", "inputSchema": {"type": "object"}}));
    tools.remove(5);
    tools[9]["inputSchema"]["required"] = json!([]);
    tools[19]["inputSchema"]["properties"]["sort"]["enum"] =
        json!(["relevance", "newest", "oldest", "random"]);
    tools[29]["inputSchema"]["properties"]["limit"]["type"] = json!("number");
    for t in &mut tools[39..49] {
        t["description"] = json!("Old wording.");
    }
    file
}

fn bench(c: &mut Criterion) {
    let cand = serde_json::to_vec_pretty(&candidate()).unwrap_or_default();
    let base = serde_json::to_vec_pretty(&baseline()).unwrap_or_default();
    let opts = SchemaOptions { allow_major: false };
    let cand_input = Input {
        origin: "candidate.json",
        bytes: &cand,
    };
    let base_input = Input {
        origin: "baseline.json",
        bytes: &base,
    };

    let mut group = c.benchmark_group("schema_gate");
    group.throughput(Throughput::Bytes(cand.len() as u64));
    group.bench_function("evaluate_100_tools", |b| {
        b.iter(|| evaluate(black_box(&cand_input), None, &opts))
    });
    group.bench_function("evaluate_100_tools_against_baseline", |b| {
        b.iter(|| evaluate(black_box(&cand_input), Some(black_box(&base_input)), &opts))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
