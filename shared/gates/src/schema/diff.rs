//! Candidate against baseline: every difference classified as breaking (a caller that
//! worked may now fail), additive (new things callers may use) or patch (text only).
//! Anything not understood as loosening is treated as breaking.

use super::model::Tool;
use super::parse::{index_path, key_path};
use super::Found;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

const TIGHTENED: &str = "schema.breaking.constraint-tightened";
const LOOSENED: &str = "schema.additive.constraint-loosened";
const ALL_TYPES: [&str; 7] = [
    "array", "boolean", "integer", "null", "number", "object", "string",
];
/// Lower bounds: a bigger value is tighter. Upper bounds are the reverse.
const LOWER: [&str; 6] = [
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
    "minContains",
];
const UPPER: [&str; 6] = [
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
    "maxContains",
];
const HANDLED: [&str; 14] = [
    "type",
    "anyOf",
    "oneOf",
    "enum",
    "const",
    "multipleOf",
    "pattern",
    "format",
    "uniqueItems",
    "additionalProperties",
    "properties",
    "required",
    "items",
    "nullable",
];

pub(crate) fn compare(base: &[Tool], cand: &[Tool], out: &mut Vec<Found>) {
    let first = |tools: &[Tool], i: usize| !tools[..i].iter().any(|t| t.name == tools[i].name);
    for b in (0..base.len())
        .filter(|i| first(base, *i))
        .map(|i| &base[i])
    {
        match cand.iter().find(|c| c.name == b.name) {
            Some(c) => tool(b, c, out),
            None => {
                let msg = format!("tool {} was removed (callers of it will fail)", b.name);
                let short = format!("tool {} removed", b.name);
                out.push(Found::new(
                    &b.name,
                    b.path.clone(),
                    "schema.breaking.tool-removed",
                    msg,
                    short,
                ));
            }
        }
    }
    for c in (0..cand.len())
        .filter(|i| first(cand, *i))
        .map(|i| &cand[i])
    {
        if !base.iter().any(|b| b.name == c.name) {
            let msg = format!("tool {} was added", c.name);
            out.push(Found::new(
                &c.name,
                c.path.clone(),
                "schema.additive.tool-added",
                msg,
                format!("tool {} added", c.name),
            ));
        }
    }
}

fn tool(b: &Tool, c: &Tool, out: &mut Vec<Found>) {
    let mut d = Diff { tool: &c.name, out };
    if b.description != c.description {
        let at = key_path(&c.path, "description");
        d.push(
            "schema.patch.description",
            &at,
            "the tool description changed".into(),
            "tool description".into(),
        );
    }
    let implicit = json!({"type": "object", "properties": {}});
    let ((bs, bp), (cs, cp)) = (input_of(b, &implicit), input_of(c, &implicit));
    d.schema(bs, bp, cs, cp, "");
    // vaia versions the input contract; the rest of a definition is reported at patch level.
    let mut others = vec![(
        "title",
        b.title.clone().map(Value::String),
        c.title.clone().map(Value::String),
    )];
    others.push((
        "outputSchema",
        b.output.as_ref().map(|s| s.value.clone()),
        c.output.as_ref().map(|s| s.value.clone()),
    ));
    let keys: BTreeSet<&String> = b.others.keys().chain(c.others.keys()).collect();
    for k in keys {
        others.push((
            k.as_str(),
            b.others.get(k).cloned(),
            c.others.get(k).cloned(),
        ));
    }
    for (k, x, y) in others {
        if x != y {
            let msg = format!("{k} of the tool {}", change_words(x.as_ref(), y.as_ref()));
            d.push(
                "schema.patch.annotation",
                &key_path(&c.path, k),
                msg,
                format!("tool {k}"),
            );
        }
    }
}

/// The parameters schema and its path; no parameters means an object without properties.
fn input_of<'a>(t: &'a Tool, implicit: &'a Value) -> (&'a Value, &'a str) {
    t.input
        .as_ref()
        .map_or((implicit, t.path.as_str()), |s| (&s.value, s.path.as_str()))
}

struct Diff<'a> {
    tool: &'a str,
    out: &'a mut Vec<Found>,
}

impl Diff<'_> {
    fn push(&mut self, rule: &'static str, at: &str, message: String, short: String) {
        let (message, short) = (
            format!("{}: {message}", self.tool),
            format!("{}: {short}", self.tool),
        );
        self.out
            .push(Found::new(self.tool, at.to_string(), rule, message, short));
    }

    /// A constraint keyword changed; `tight` says which way.
    fn constraint(
        &mut self,
        tight: bool,
        kw: &str,
        cp: &str,
        label: &str,
        old: Option<&Value>,
        new: Option<&Value>,
    ) {
        let (rule, way) = if tight {
            (TIGHTENED, "tightened")
        } else {
            (LOOSENED, "loosened")
        };
        let at = if new.is_some() {
            key_path(cp, kw)
        } else {
            cp.to_string()
        };
        let msg = format!("{kw} of {} {}", what(label), change_words(old, new));
        self.push(rule, &at, msg, format!("{} {kw} {way}", what(label)));
    }

    fn schema(&mut self, b: &Value, bp: &str, c: &Value, cp: &str, label: &str) {
        let empty = Map::new();
        let (bo, co) = match (as_schema(b, &empty), as_schema(c, &empty)) {
            (Some(x), Some(y)) => (x, y),
            _ => {
                if b != c {
                    // `false` accepts nothing: leaving it loosens, entering it tightens.
                    let tight = b != &Value::Bool(false);
                    self.constraint(tight, "schema", cp, label, Some(b), Some(c));
                }
                return;
            }
        };
        let paths = (bp, cp);
        self.types(bo, co, cp, label);
        self.branches(bo, co, paths, label);
        self.enums(bo, co, paths, label);
        for (kw, lower) in LOWER
            .iter()
            .map(|k| (*k, true))
            .chain(UPPER.iter().map(|k| (*k, false)))
        {
            // Draft 4's boolean exclusiveMinimum/Maximum: `false` is the same as absent.
            let unset = |v: &&Value| **v != Value::Bool(false);
            let (x, y) = (bo.get(kw).filter(unset), co.get(kw).filter(unset));
            let tight = match (x, y) {
                (None, None) => continue,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(x), Some(y)) => match (x.as_f64(), y.as_f64()) {
                    (Some(a), Some(b)) if a == b => continue,
                    (Some(a), Some(b)) => (b > a) == lower,
                    _ if x == y => continue,
                    _ => true,
                },
            };
            self.constraint(tight, kw, cp, label, x, y);
        }
        for kw in ["multipleOf", "pattern", "format", "const", "uniqueItems"] {
            let flag = kw == "uniqueItems";
            let set = |v: &&Value| !flag || **v == Value::Bool(true);
            let (x, y) = (bo.get(kw).filter(set), co.get(kw).filter(set));
            let tight = match (x, y) {
                (None, None) => continue,
                (Some(a), Some(b)) if a == b => continue,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                // A new step that divides the old one accepts every old value.
                (Some(a), Some(b)) => match (kw, a.as_f64(), b.as_f64()) {
                    ("multipleOf", Some(a), Some(b)) if a == b => continue,
                    ("multipleOf", Some(a), Some(b)) => b == 0.0 || (a / b).fract() != 0.0,
                    _ => true,
                },
            };
            self.constraint(tight, kw, cp, label, x, y);
        }
        self.additional(bo, co, paths, label);
        self.properties(bo, co, paths, label);
        match (bo.get("items"), co.get("items")) {
            (None, None) => {}
            (Some(x), Some(y)) if !x.is_array() && !y.is_array() => {
                self.schema(
                    x,
                    &key_path(bp, "items"),
                    y,
                    &key_path(cp, "items"),
                    &format!("{label}[]"),
                );
            }
            (Some(x), Some(y)) if same_value("items", x, y) => {}
            (x, y) => self.constraint(y.is_some(), "items", cp, label, x, y),
        }
        let keys: Vec<&String> = bo
            .keys()
            .chain(co.keys().filter(|k| !bo.contains_key(*k)))
            .collect();
        for k in keys {
            if HANDLED.contains(&k.as_str())
                || LOWER.contains(&k.as_str())
                || UPPER.contains(&k.as_str())
            {
                continue;
            }
            let (x, y) = (bo.get(k), co.get(k));
            if is_annotation(k) {
                if x != y {
                    let at = if y.is_some() {
                        key_path(cp, k)
                    } else {
                        cp.to_string()
                    };
                    let rule = if k == "description" {
                        "schema.patch.description"
                    } else {
                        "schema.patch.annotation"
                    };
                    let msg = format!("{k} of {} {}", what(label), change_words(x, y));
                    self.push(rule, &at, msg, format!("{} {k}", what(label)));
                }
                continue;
            }
            match (x, y) {
                (Some(a), Some(b)) if same_value(k, a, b) => {}
                // Unknown validation keywords: removing one loosens, anything else may break.
                _ => self.constraint(y.is_some(), k, cp, label, x, y),
            }
        }
    }

    fn types(&mut self, bo: &Map<String, Value>, co: &Map<String, Value>, cp: &str, label: &str) {
        let (bt, ct) = (type_set(bo), type_set(co));
        let accepts = |set: &BTreeSet<&str>, t: &str| {
            set.contains(t) || (t == "integer" && set.contains("number"))
        };
        let narrowed = bt.iter().any(|t| !accepts(&ct, t));
        let widened = ct.iter().any(|t| !accepts(&bt, t));
        let at = if co.contains_key("type") {
            key_path(cp, "type")
        } else {
            cp.to_string()
        };
        let change = format!("from {} to {}", show(&bt), show(&ct));
        if narrowed {
            let msg = format!("type of {} narrowed {change}", what(label));
            self.push(
                "schema.breaking.type-narrowed",
                &at,
                msg,
                format!("{} type narrowed", what(label)),
            );
        } else if widened {
            let msg = format!("type of {} widened {change}", what(label));
            self.push(
                "schema.additive.type-widened",
                &at,
                msg,
                format!("{} type widened", what(label)),
            );
        }
    }

    fn branches(
        &mut self,
        bo: &Map<String, Value>,
        co: &Map<String, Value>,
        paths: (&str, &str),
        label: &str,
    ) {
        let (bp, cp) = paths;
        for kw in ["anyOf", "oneOf"] {
            match (bo.get(kw), co.get(kw)) {
                (Some(Value::Array(bl)), Some(Value::Array(cl))) => {
                    for (i, x) in bl
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| !cl.iter().any(|y| same_schema(x, y)))
                    {
                        let msg = format!("{kw} branch {} removed from {}", brief(x), what(label));
                        let short = format!("{} {kw} branch removed", what(label));
                        self.push(
                            "schema.breaking.type-narrowed",
                            &index_path(&key_path(bp, kw), i),
                            msg,
                            short,
                        );
                    }
                    for (i, y) in cl
                        .iter()
                        .enumerate()
                        .filter(|(_, y)| !bl.iter().any(|x| same_schema(x, y)))
                    {
                        let msg = format!("{kw} branch {} added to {}", brief(y), what(label));
                        let short = format!("{} {kw} branch added", what(label));
                        self.push(
                            "schema.additive.type-widened",
                            &index_path(&key_path(cp, kw), i),
                            msg,
                            short,
                        );
                    }
                }
                (None, None) => {}
                (x, y) if x == y => {}
                (x, y) => self.constraint(y.is_some(), kw, cp, label, x, y),
            }
        }
    }

    fn enums(
        &mut self,
        bo: &Map<String, Value>,
        co: &Map<String, Value>,
        paths: (&str, &str),
        label: &str,
    ) {
        let (bp, cp) = paths;
        match (bo.get("enum"), co.get("enum")) {
            (Some(Value::Array(bl)), Some(Value::Array(cl))) => {
                for (i, v) in bl.iter().enumerate().filter(|(_, v)| !cl.contains(v)) {
                    let msg = format!("enum value {v} removed from {}", what(label));
                    let short = format!("enum value {v} removed from {}", what(label));
                    self.push(
                        "schema.breaking.enum-value-removed",
                        &index_path(&key_path(bp, "enum"), i),
                        msg,
                        short,
                    );
                }
                for (i, v) in cl.iter().enumerate().filter(|(_, v)| !bl.contains(v)) {
                    let msg = format!("enum value {v} added to {}", what(label));
                    let short = format!("enum value {v} added to {}", what(label));
                    self.push(
                        "schema.additive.enum-value-added",
                        &index_path(&key_path(cp, "enum"), i),
                        msg,
                        short,
                    );
                }
            }
            (None, None) => {}
            (x, y) if x == y => {}
            (x, y) => self.constraint(y.is_some(), "enum", cp, label, x, y),
        }
    }

    fn additional(
        &mut self,
        bo: &Map<String, Value>,
        co: &Map<String, Value>,
        paths: (&str, &str),
        label: &str,
    ) {
        let (bp, cp) = paths;
        let kw = "additionalProperties";
        let (x, y) = (bo.get(kw), co.get(kw));
        let (bopen, copen) = (openness(x), openness(y));
        let tight = match (bopen, copen) {
            (Extra::Open, Extra::Open) | (Extra::Closed, Extra::Closed) => return,
            (Extra::Schema(a), Extra::Schema(b)) => {
                return self.schema(
                    a,
                    &key_path(bp, kw),
                    b,
                    &key_path(cp, kw),
                    &format!("{}*", dotted(label)),
                );
            }
            (Extra::Open, _) | (Extra::Schema(_), Extra::Closed) => true,
            (Extra::Closed, _) | (Extra::Schema(_), Extra::Open) => false,
        };
        self.constraint(tight, kw, cp, label, x, y);
    }

    fn properties(
        &mut self,
        bo: &Map<String, Value>,
        co: &Map<String, Value>,
        (bp, cp): (&str, &str),
        label: &str,
    ) {
        let none = Map::new();
        let bprops = bo
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&none);
        let cprops = co
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&none);
        let (breq, creq) = (required(bo), required(co));
        let prop = |p: &str, at: &str| key_path(&key_path(at, "properties"), p);
        let removed: Vec<&String> = bprops.keys().filter(|k| !cprops.contains_key(*k)).collect();
        let added: Vec<&String> = cprops.keys().filter(|k| !bprops.contains_key(*k)).collect();
        // A removed and an added property with the same schema is one rename.
        let mut renamed: Vec<(&String, &String)> = Vec::new();
        for r in &removed {
            let target = added.iter().find(|a| {
                !renamed.iter().any(|(_, t)| t == *a)
                    && bprops
                        .get(r.as_str())
                        .zip(cprops.get(a.as_str()))
                        .is_some_and(|(x, y)| same_schema(x, y))
            });
            if let Some(a) = target {
                renamed.push((r, a));
            }
        }
        for (r, a) in &renamed {
            let (old, new) = (child(label, r), child(label, a));
            let msg = format!(
                "property {old} renamed to {new} (same schema): callers sending {old} will fail"
            );
            self.push(
                "schema.breaking.property-renamed",
                &prop(a, cp),
                msg,
                format!("property {old} renamed to {new}"),
            );
        }
        for r in removed
            .iter()
            .filter(|r| !renamed.iter().any(|(x, _)| x == *r))
        {
            let msg = format!("property {} removed", child(label, r));
            self.push(
                "schema.breaking.property-removed",
                &prop(r, bp),
                msg,
                format!("property {} removed", child(label, r)),
            );
        }
        for a in added
            .iter()
            .filter(|a| !renamed.iter().any(|(_, y)| y == *a))
        {
            let name = child(label, a);
            if creq.contains(a.as_str()) {
                let msg = format!(
                    "required property {name} added: callers that do not send it will fail"
                );
                self.push(
                    "schema.breaking.newly-required",
                    &prop(a, cp),
                    msg,
                    format!("property {name} newly required"),
                );
            } else {
                let msg = format!("optional property {name} added");
                self.push(
                    "schema.additive.property-added",
                    &prop(a, cp),
                    msg,
                    format!("property {name} added"),
                );
            }
        }
        for (p, x) in bprops {
            if let Some(y) = cprops.get(p) {
                self.schema(x, &prop(p, bp), y, &prop(p, cp), &child(label, p));
            }
        }
        let is_added = |n: &str| cprops.contains_key(n) && !bprops.contains_key(n);
        for n in creq.difference(&breq).filter(|n| !is_added(n)) {
            let name = child(label, n);
            let at = if cprops.contains_key(*n) {
                prop(n, cp)
            } else {
                key_path(cp, "required")
            };
            let msg = format!("property {name} is newly required: callers that omit it will fail");
            self.push(
                "schema.breaking.newly-required",
                &at,
                msg,
                format!("property {name} newly required"),
            );
        }
        let is_gone = |n: &str| bprops.contains_key(n) && !cprops.contains_key(n);
        for n in breq.difference(&creq).filter(|n| !is_gone(n)) {
            let name = child(label, n);
            let at = if cprops.contains_key(*n) {
                prop(n, cp)
            } else {
                cp.to_string()
            };
            let msg = format!("property {name} is no longer required");
            self.push(
                "schema.additive.newly-optional",
                &at,
                msg,
                format!("property {name} now optional"),
            );
        }
    }
}

fn as_schema<'a>(v: &'a Value, empty: &'a Map<String, Value>) -> Option<&'a Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        Value::Bool(true) => Some(empty),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Extra<'v> {
    Open,
    Closed,
    Schema(&'v Value),
}

fn openness(v: Option<&Value>) -> Extra<'_> {
    match v {
        None | Some(Value::Bool(true)) => Extra::Open,
        Some(Value::Bool(false)) => Extra::Closed,
        Some(Value::Object(m)) if m.is_empty() => Extra::Open,
        Some(s) => Extra::Schema(s),
    }
}

fn type_set(m: &Map<String, Value>) -> BTreeSet<&str> {
    match m.get("type") {
        Some(Value::String(t)) => BTreeSet::from([t.as_str()]),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => ALL_TYPES.into_iter().collect(),
    }
}

fn show(types: &BTreeSet<&str>) -> String {
    if types.len() == ALL_TYPES.len() {
        "any".to_string()
    } else {
        types.iter().copied().collect::<Vec<_>>().join("|")
    }
}

fn required(m: &Map<String, Value>) -> BTreeSet<&str> {
    let list = m.get("required").and_then(Value::as_array);
    list.map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn is_annotation(k: &str) -> bool {
    matches!(
        k,
        "description"
            | "title"
            | "examples"
            | "example"
            | "default"
            | "$comment"
            | "deprecated"
            | "readOnly"
            | "writeOnly"
            | "propertyOrdering"
            | "$schema"
            | "$id"
    ) || k.starts_with("x-")
}

/// Whether two schemas accept the same values, judged structurally with annotations ignored.
pub(crate) fn same_schema(a: &Value, b: &Value) -> bool {
    let (Value::Object(x), Value::Object(y)) = (a, b) else {
        return a == b;
    };
    let keys = x.keys().chain(y.keys()).filter(|k| !is_annotation(k));
    keys.into_iter().all(|k| match (x.get(k), y.get(k)) {
        (Some(p), Some(q)) => same_value(k, p, q),
        _ => false,
    })
}

/// One keyword's values compared as what they are: maps of schemas, lists of schemas, a
/// schema, or plain data.
fn same_value(k: &str, a: &Value, b: &Value) -> bool {
    let same_list = |p: &Vec<Value>, q: &Vec<Value>| {
        p.len() == q.len() && p.iter().zip(q).all(|(s, t)| same_schema(s, t))
    };
    match (k, a, b) {
        (
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas",
            Value::Object(p),
            Value::Object(q),
        ) => {
            p.len() == q.len()
                && p.iter()
                    .all(|(n, s)| q.get(n).is_some_and(|t| same_schema(s, t)))
        }
        (
            "anyOf" | "allOf" | "oneOf" | "prefixItems" | "items",
            Value::Array(p),
            Value::Array(q),
        ) => same_list(p, q),
        (
            "items"
            | "additionalProperties"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "propertyNames"
            | "additionalItems"
            | "unevaluatedItems"
            | "unevaluatedProperties",
            _,
            _,
        ) => same_schema(a, b),
        _ => a == b,
    }
}

fn change_words(old: Option<&Value>, new: Option<&Value>) -> String {
    match (old, new) {
        (None, Some(n)) => format!("added ({})", brief(n)),
        (Some(o), None) => format!("removed (was {})", brief(o)),
        (Some(o), Some(n)) => format!("changed from {} to {}", brief(o), brief(n)),
        (None, None) => "unchanged".to_string(),
    }
}

/// Compact JSON, cut to keep messages one line.
fn brief(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

fn what(label: &str) -> String {
    if label.is_empty() {
        "the parameters".to_string()
    } else {
        format!("property {label}")
    }
}

fn dotted(label: &str) -> String {
    if label.is_empty() {
        String::new()
    } else {
        format!("{label}.")
    }
}

fn child(label: &str, name: &str) -> String {
    format!("{}{name}", dotted(label))
}
