//! Reads raw JSON into a `Value` while recording what `serde_json` would hide: duplicate
//! object keys (it silently keeps the last) and numbers whose text does not survive the
//! parse (integers beyond 64 bits, decimals with more digits than an `f64` holds).

use super::InputError;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt::{self, Write as _};

pub(crate) struct Parsed {
    pub value: Value,
    /// JSON paths of keys that appear more than once in their object.
    pub duplicates: Vec<String>,
    /// (JSON path, what happened) for numbers that change when read.
    pub numbers: Vec<(String, String)>,
}

pub(crate) fn parse(origin: &str, bytes: &[u8]) -> Result<Parsed, InputError> {
    let json_err = |e: serde_json::Error| {
        let (line, column) = (e.line(), e.column());
        let text = e.to_string();
        let suffix = format!(" at line {line} column {column}");
        InputError::Json {
            origin: origin.to_string(),
            line,
            column,
            reason: text.strip_suffix(&suffix).unwrap_or(&text).to_string(),
        }
    };
    // The scanner may misread malformed text, but then the parse fails anyway.
    let mut ctx = Ctx {
        path: "$".to_string(),
        duplicates: Vec::new(),
        numbers: Vec::new(),
        tokens: number_tokens(bytes),
        next: 0,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Node { ctx: &mut ctx }
        .deserialize(&mut de)
        .map_err(json_err)?;
    de.end().map_err(json_err)?;
    Ok(Parsed {
        value,
        duplicates: ctx.duplicates,
        numbers: ctx.numbers,
    })
}

/// Appends `.key`, or `['key']` when the key is not a plain identifier.
pub(crate) fn push_key(path: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push_str("['");
        for c in key.chars() {
            if c == '\'' || c == '\\' {
                path.push('\\');
            }
            path.push(c);
        }
        path.push_str("']");
    }
}

pub(crate) fn key_path(path: &str, key: &str) -> String {
    let mut p = path.to_string();
    push_key(&mut p, key);
    p
}

pub(crate) fn index_path(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

struct Ctx<'b> {
    path: String,
    duplicates: Vec<String>,
    numbers: Vec<(String, String)>,
    tokens: Vec<&'b str>,
    next: usize,
}

impl Ctx<'_> {
    /// The literal of the number being visited: numbers are visited in document order.
    fn token(&mut self) -> &str {
        let t = self.tokens.get(self.next).copied().unwrap_or_default();
        self.next += 1;
        t
    }
}

struct Node<'c, 'b> {
    ctx: &'c mut Ctx<'b>,
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        self.ctx.token();
        Ok(Value::from(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        self.ctx.token();
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        let token = self.ctx.token().to_string();
        let integer_literal = !token.contains(['.', 'e', 'E']);
        if integer_literal {
            let what = format!("integer {token} is beyond 64 bits and reads as the float {v:e}");
            self.ctx.numbers.push((self.ctx.path.clone(), what));
        } else if decimal(&token) != decimal(&v.to_string()) {
            let what = format!("number {token} reads as {v} (more digits than a 64-bit float)");
            self.ctx.numbers.push((self.ctx.path.clone(), what));
        }
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        let len = self.ctx.path.len();
        loop {
            self.ctx.path.truncate(len);
            let _ = write!(self.ctx.path, "[{}]", out.len());
            match seq.next_element_seed(Node {
                ctx: &mut *self.ctx,
            })? {
                Some(v) => out.push(v),
                None => break,
            }
        }
        self.ctx.path.truncate(len);
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        let len = self.ctx.path.len();
        while let Some(key) = access.next_key::<String>()? {
            push_key(&mut self.ctx.path, &key);
            let v = access.next_value_seed(Node {
                ctx: &mut *self.ctx,
            })?;
            if map.contains_key(&key) {
                self.ctx.duplicates.push(self.ctx.path.clone());
            }
            self.ctx.path.truncate(len);
            // Same as serde_json: the last value wins.
            map.insert(key, v);
        }
        Ok(Value::Object(map))
    }
}

/// The number literals of well-formed JSON text, in document order.
fn number_tokens(bytes: &[u8]) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
            {
                i += 1;
            }
            out.push(std::str::from_utf8(&bytes[start..i]).unwrap_or_default());
            continue;
        }
        i += 1;
    }
    out
}

/// A decimal literal as (negative, significant digits, exponent), so `1.50`, `15e-1` and
/// `1.5` compare equal.
fn decimal(s: &str) -> (bool, String, i64) {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    let significant = digits.trim_end_matches('0');
    if significant.is_empty() {
        return (false, String::new(), 0);
    }
    let exp = exp
        .saturating_sub(frac.len() as i64)
        .saturating_add((digits.len() - significant.len()) as i64);
    (neg, significant.to_string(), exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_normalise() {
        assert_eq!(decimal("1.50"), decimal("15e-1"));
        assert_eq!(decimal("100"), decimal("1e2"));
        assert_eq!(decimal("0.0"), decimal("-0"));
        assert_ne!(decimal("0.1000000000000000000001"), decimal("0.1"));
    }

    #[test]
    fn paths_quote_odd_keys() {
        assert_eq!(key_path("$", "city"), "$.city");
        assert_eq!(key_path("$", "$schema"), "$['$schema']");
        assert_eq!(key_path("$", "it's"), "$['it\\'s']");
    }

    #[test]
    fn finds_duplicates_and_lossy_numbers() {
        let p = parse("t.json", br#"{"a":[1,{"b":1,"b":2}],"c":18446744073709551616,"d":1.5,"e":0.30000000000000000001}"#).unwrap();
        assert_eq!(p.duplicates, vec!["$.a[1].b"]);
        let paths: Vec<_> = p.numbers.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, vec!["$.c", "$.e"]);
        assert_eq!(p.value["a"][1]["b"], 2);
    }
}
