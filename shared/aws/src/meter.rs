//! Request metering: an SDK interceptor that counts every AWS request the adapters make,
//! by service and operation, and the DynamoDB capacity each one consumes, so that a test
//! or a benchmark can say what a pipeline run costs on AWS from what it actually did.
//!
//! Register one [`Meter`] on the S3, DynamoDB and SQS clients
//! ([`AwsPorts::with_meter`](crate::AwsPorts::with_meter)); take a [`Usage`] snapshot
//! before and after the work and subtract ([`Usage::since`]).
//!
//! What is counted:
//! - every attempt that got an HTTP response (AWS bills those, errors included), as
//!   `(service, operation)`; an SQS `ReceiveMessage` that returned no message is counted
//!   apart, as `ReceiveMessage (empty)`, since Lambda's pollers make those whether or not
//!   anything runs (a fixed cost per queue, not a cost per run);
//! - DynamoDB write and read request units, computed from item sizes as DynamoDB does
//!   (on-demand pricing; a local server does not report consumed capacity): a write is
//!   1 WRU per started KB of the larger of the old and the new item (2 inside a
//!   transaction), a failed condition included; each global secondary index the write
//!   changes costs an index write (a new or removed index entry one, a changed index key
//!   two; index writes are counted at 1 WRU per KB, also for transactions); a read is
//!   1 RRU per started 4 KB of what it returned (half for eventually consistent reads),
//!   one at least. The old item's size is the one this meter last saw written, so meter
//!   every writer of the table from the start;
//! - [`Meter::record`] adds what no SDK client sees: Lambda invocations and messages S3
//!   sends to SQS (the event source emulation in `testing` records them), API Gateway
//!   requests.

use crate::dynamo::INDEXES;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// Request counts and DynamoDB capacity, by `(service, operation)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub requests: BTreeMap<(String, String), u64>,
    /// DynamoDB write request units by operation (index writes under `index writes`).
    pub wru: BTreeMap<String, f64>,
    /// DynamoDB read request units by operation.
    pub rru: BTreeMap<String, f64>,
    /// The largest SQS message body sent, in bytes (SQS bills a request per 64 KB).
    pub largest_message: usize,
}

impl Usage {
    /// What happened after `earlier` (a snapshot of the same meter).
    pub fn since(&self, earlier: &Usage) -> Usage {
        let mut out = self.clone();
        for (k, n) in &earlier.requests {
            if let Some(v) = out.requests.get_mut(k) {
                *v = v.saturating_sub(*n);
            }
        }
        out.requests.retain(|_, n| *n > 0);
        for (mine, theirs) in [(&mut out.wru, &earlier.wru), (&mut out.rru, &earlier.rru)] {
            for (k, n) in theirs {
                if let Some(v) = mine.get_mut(k) {
                    *v -= n;
                }
            }
            mine.retain(|_, n| *n > 1e-9);
        }
        out
    }

    /// Requests of `service` (all operations).
    pub fn service(&self, service: &str) -> u64 {
        self.requests
            .iter()
            .filter(|((s, _), _)| s == service)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests of one operation.
    pub fn count(&self, service: &str, operation: &str) -> u64 {
        self.requests
            .get(&(service.to_string(), operation.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub fn total_wru(&self) -> f64 {
        self.wru.values().sum()
    }

    pub fn total_rru(&self) -> f64 {
        self.rru.values().sum()
    }
}

/// Size and index entries of an item last written, by table and key.
#[derive(Debug, Clone)]
struct Stored {
    size: usize,
    /// Per index of [`INDEXES`]: the entry, when the item is in that index.
    index_entries: Vec<Option<IndexEntry>>,
}

/// An item's entry in an index: its key, size and projected attributes (to tell whether
/// a write changed it).
#[derive(Debug, Clone, PartialEq)]
struct IndexEntry {
    key: (String, String),
    size: usize,
    projected: Map<String, Value>,
}

#[derive(Debug, Default)]
struct State {
    usage: Usage,
    items: HashMap<(String, String, String), Stored>,
}

/// The interceptor and its counters; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    state: Arc<Mutex<State>>,
}

/// The request body, kept from before transmission until the response is read.
#[derive(Debug, Clone)]
struct SentBody(Option<Vec<u8>>);

impl Storable for SentBody {
    type Storer = StoreReplace<Self>;
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Meter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> Usage {
        lock(&self.state).usage.clone()
    }

    /// Counts `n` requests no SDK client made (Lambda invocations, S3's sends to SQS).
    pub fn record(&self, service: &str, operation: &str, n: u64) {
        let mut s = lock(&self.state);
        *s.usage
            .requests
            .entry((service.to_string(), operation.to_string()))
            .or_insert(0) += n;
    }

    /// Counts one response of `service`'s `operation` to `request` (a JSON body for the
    /// JSON protocols) with `status` and `response` body.
    fn observe(
        &self,
        service: &str,
        operation: &str,
        request: Option<&[u8]>,
        status: u16,
        response: Option<&[u8]>,
    ) {
        let service = normalise(service);
        let json = |b: Option<&[u8]>| -> Value {
            b.and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null)
        };
        let ok = (200..300).contains(&status);
        let mut s = lock(&self.state);
        let mut operation = operation.to_string();
        match service.as_str() {
            "sqs" => {
                let req = json(request);
                if operation == "ReceiveMessage" && ok {
                    let got = json(response)
                        .get("Messages")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    if got == 0 {
                        operation = "ReceiveMessage (empty)".into();
                    }
                }
                if let Some(body) = req.get("MessageBody").and_then(Value::as_str) {
                    s.usage.largest_message = s.usage.largest_message.max(body.len());
                }
            }
            "dynamodb" => {
                let req = json(request);
                let resp = json(response);
                dynamo_capacity(&mut s, &operation, &req, ok, &resp);
            }
            _ => {}
        }
        *s.usage.requests.entry((service, operation)).or_insert(0) += 1;
    }
}

fn normalise(service: &str) -> String {
    match service.to_ascii_lowercase().as_str() {
        "dynamodb" => "dynamodb".into(),
        "s3" => "s3".into(),
        "sqs" => "sqs".into(),
        other => other.to_string(),
    }
}

impl Intercept for Meter {
    fn name(&self) -> &'static str {
        "vaia-meter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.request().body().bytes().map(<[u8]>::to_vec);
        cfg.interceptor_state().store_put(SentBody(body));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Only attempts that reached the service are billed.
        let Some(response) = context.response() else {
            return Ok(());
        };
        let Some(meta) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        let sent = cfg.load::<SentBody>().and_then(|b| b.0.as_deref());
        self.observe(
            meta.service(),
            meta.name(),
            sent,
            response.status().as_u16(),
            response.body().bytes(),
        );
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// DynamoDB capacity from item sizes

/// The size DynamoDB gives a number: about one byte per two significant digits, plus one.
fn number_size(n: &str) -> usize {
    let mantissa = n
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// The size of one attribute value in DynamoDB JSON (`{"S": "..."}`).
fn value_size(v: &Value) -> usize {
    let Some((ty, val)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    let strs = || {
        val.as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    match ty.as_str() {
        "S" => val.as_str().map_or(0, str::len),
        "N" => val.as_str().map_or(1, number_size),
        "B" => val.as_str().map_or(0, |b| b.len() * 3 / 4),
        "BOOL" | "NULL" => 1,
        "SS" => strs().iter().map(|s| s.len()).sum(),
        "NS" => strs().iter().map(|s| number_size(s)).sum(),
        "BS" => strs().iter().map(|s| s.len() * 3 / 4).sum(),
        "L" => {
            3 + val
                .as_array()
                .map_or(0, |a| a.iter().map(|e| 1 + value_size(e)).sum())
        }
        "M" => 3 + val.as_object().map_or(0, |m| item_size(m) + m.len()),
        _ => 0,
    }
}

/// An item's size: attribute names and values.
fn item_size(item: &Map<String, Value>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn units(bytes: usize, per: usize) -> f64 {
    bytes.div_ceil(per).max(1) as f64
}

fn string_attr(item: &Map<String, Value>, name: &str) -> Option<String> {
    item.get(name)?.get("S")?.as_str().map(str::to_string)
}

fn key_of(table: &str, item: &Map<String, Value>) -> (String, String, String) {
    (
        table.to_string(),
        string_attr(item, "pk").unwrap_or_default(),
        string_attr(item, "sk").unwrap_or_default(),
    )
}

/// The item's entry in each index (the table's keys, the index's keys and the projected
/// attributes), `None` where the item lacks the index's keys.
fn index_entries(item: &Map<String, Value>) -> Vec<Option<IndexEntry>> {
    INDEXES
        .iter()
        .map(|index| {
            let key = (string_attr(item, index.pk)?, string_attr(item, index.sk)?);
            let projected: Map<String, Value> = item
                .iter()
                .filter(|(name, _)| match index.include {
                    None => true,
                    Some(attrs) => {
                        ["pk", "sk", index.pk, index.sk].contains(&name.as_str())
                            || attrs.contains(&name.as_str())
                    }
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Some(IndexEntry {
                key,
                size: item_size(&projected),
                projected,
            })
        })
        .collect()
}

/// Index writes a change from `old` to `new` costs (`None`: no item): one per entry put
/// or removed, two when the index key changed, none when the entry stayed the same.
fn index_writes(old: Option<&Stored>, new: Option<&Stored>) -> f64 {
    let entry =
        |s: Option<&Stored>, i: usize| s.and_then(|s| s.index_entries.get(i).cloned().flatten());
    let mut wru = 0.0;
    for i in 0..INDEXES.len() {
        wru += match (entry(old, i), entry(new, i)) {
            (None, None) => 0.0,
            (None, Some(n)) => units(n.size, 1024),
            (Some(o), None) => units(o.size, 1024),
            (Some(o), Some(n)) if o.key != n.key => units(o.size, 1024) + units(n.size, 1024),
            (Some(o), Some(n)) if o.projected == n.projected => 0.0,
            (Some(o), Some(n)) => units(o.size.max(n.size), 1024),
        };
    }
    wru
}

fn add(map: &mut BTreeMap<String, f64>, op: &str, n: f64) {
    if n > 0.0 {
        *map.entry(op.to_string()).or_insert(0.0) += n;
    }
}

/// A put of `item` into `table`: table WRU (per KB, times `factor`) and, when it landed,
/// the index writes; the meter then remembers the item.
fn put(s: &mut State, op: &str, table: &str, item: &Map<String, Value>, factor: f64, ok: bool) {
    let key = key_of(table, item);
    let new = Stored {
        size: item_size(item),
        index_entries: index_entries(item),
    };
    let old = s.items.get(&key).cloned();
    let size = old.as_ref().map_or(new.size, |o| o.size.max(new.size));
    add(&mut s.usage.wru, op, factor * units(size, 1024));
    if ok {
        add(
            &mut s.usage.wru,
            "index writes",
            index_writes(old.as_ref(), Some(&new)),
        );
        s.items.insert(key, new);
    }
}

fn delete(s: &mut State, op: &str, table: &str, key: &Map<String, Value>, factor: f64, ok: bool) {
    let key = key_of(table, key);
    let old = s.items.get(&key).cloned();
    add(
        &mut s.usage.wru,
        op,
        factor * units(old.as_ref().map_or(0, |o| o.size), 1024),
    );
    if ok {
        add(
            &mut s.usage.wru,
            "index writes",
            index_writes(old.as_ref(), None),
        );
        s.items.remove(&key);
    }
}

fn dynamo_capacity(s: &mut State, op: &str, req: &Value, ok: bool, resp: &Value) {
    let table = req.get("TableName").and_then(Value::as_str).unwrap_or("");
    let consistent = req.get("ConsistentRead").and_then(Value::as_bool) == Some(true);
    let read_factor = if consistent { 1.0 } else { 0.5 };
    let obj = |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_default();
    match op {
        "PutItem" => put(s, op, table, &obj(req.get("Item")), 1.0, ok),
        "DeleteItem" => delete(s, op, table, &obj(req.get("Key")), 1.0, ok),
        "TransactWriteItems" => {
            let items = req
                .get("TransactItems")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for t in &items {
                if let Some(p) = t.get("Put") {
                    let table = p.get("TableName").and_then(Value::as_str).unwrap_or("");
                    put(s, op, table, &obj(p.get("Item")), 2.0, ok);
                } else if let Some(d) = t.get("Delete") {
                    let table = d.get("TableName").and_then(Value::as_str).unwrap_or("");
                    delete(s, op, table, &obj(d.get("Key")), 2.0, ok);
                } else {
                    // ConditionCheck and Update: one item's worth at least.
                    add(&mut s.usage.wru, op, 2.0);
                }
            }
        }
        "GetItem" => {
            let size = resp
                .get("Item")
                .and_then(Value::as_object)
                .map_or(0, item_size);
            add(&mut s.usage.rru, op, read_factor * units(size, 4096));
        }
        "Query" | "Scan" => {
            // Reads are billed on whole items, whatever a projection returns.
            let total: usize = resp
                .get("Items")
                .and_then(Value::as_array)
                .map_or(0, |items| {
                    items
                        .iter()
                        .filter_map(Value::as_object)
                        .map(|i| {
                            let returned = item_size(i);
                            s.items
                                .get(&key_of(table, i))
                                .map_or(returned, |st| st.size.max(returned))
                        })
                        .sum()
                });
            add(&mut s.usage.rru, op, read_factor * units(total, 4096));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_follow_dynamodb_rules() {
        assert_eq!(number_size("7"), 2);
        assert_eq!(number_size("1234567890"), 6);
        assert_eq!(number_size("-0.000120"), 2);
        let item = json!({"pk": {"S": "RUN#a"}, "n": {"N": "12"}, "b": {"BOOL": true},
                          "l": {"L": [{"S": "xy"}]}, "m": {"M": {"k": {"S": "v"}}}});
        // pk 2+5, n 1+2, b 1+1, l 1+(3+1+2), m 1+(3+1+1+1)
        assert_eq!(item_size(item.as_object().unwrap()), 7 + 3 + 2 + 7 + 7);
    }

    fn observe(m: &Meter, op: &str, req: Value, status: u16, resp: Value) {
        m.observe(
            "DynamoDB",
            op,
            Some(&serde_json::to_vec(&req).unwrap()),
            status,
            Some(&serde_json::to_vec(&resp).unwrap()),
        );
    }

    fn run_item(body: usize, in_flight: bool) -> Value {
        let mut item = json!({"pk": {"S": "RUN#r"}, "sk": {"S": "RUN"}, "body": {"S": "x".repeat(body)},
                              "gsi1pk": {"S": "RUNS"}, "gsi1sk": {"S": "t#r"}});
        if in_flight {
            item["gsi2pk"] = json!({"S": "INFLIGHT"});
            item["gsi2sk"] = json!({"S": "d#r"});
        }
        item
    }

    #[test]
    fn writes_cost_per_kb_of_the_larger_item_twice_in_a_transaction_plus_index_writes() {
        let m = Meter::new();
        // A new in-flight run (1.5 KB) with one event, in a transaction: 2 × 2 + 2 × 1 WRU,
        // plus one small entry in each index (they project keys, not the run: 1 WRU each).
        let event = json!({"pk": {"S": "RUN#r"}, "sk": {"S": "EV#1"}, "body": {"S": "e"}});
        let tx = json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": run_item(1500, true)}},
            {"Put": {"TableName": "t", "Item": event}}]});
        observe(&m, "TransactWriteItems", tx, 200, json!({}));
        let u = m.snapshot();
        assert_eq!(u.wru["TransactWriteItems"], 6.0);
        assert_eq!(u.wru["index writes"], 2.0);
        // The run leaves flight, shrinking to 0.5 KB: billed on the old 1.5 KB (2 WRU);
        // gsi1's entry unchanged (0), gsi2's entry removed (1).
        observe(
            &m,
            "PutItem",
            json!({"TableName": "t", "Item": run_item(500, false)}),
            200,
            json!({}),
        );
        let u2 = m.snapshot().since(&u);
        assert_eq!(u2.wru["PutItem"], 2.0);
        assert_eq!(u2.wru["index writes"], 1.0);
        assert_eq!(u2.count("dynamodb", "PutItem"), 1);
        // A failed condition still costs the write, but no index write.
        let before = m.snapshot();
        observe(
            &m,
            "PutItem",
            json!({"TableName": "t", "Item": run_item(500, false)}),
            400,
            json!({"__type": "ConditionalCheckFailedException"}),
        );
        let u3 = m.snapshot().since(&before);
        assert_eq!(u3.wru["PutItem"], 1.0);
        assert!(!u3.wru.contains_key("index writes"));
    }

    #[test]
    fn reads_cost_per_4_kb_returned_at_least_one_half_when_eventual() {
        let m = Meter::new();
        observe(
            &m,
            "GetItem",
            json!({"TableName": "t", "ConsistentRead": true}),
            200,
            json!({}),
        );
        observe(
            &m,
            "Query",
            json!({"TableName": "t"}),
            200,
            json!({"Items": [run_item(5000, false), run_item(4000, false)]}),
        );
        let u = m.snapshot();
        assert_eq!(u.rru["GetItem"], 1.0, "a miss costs a read unit");
        assert_eq!(u.rru["Query"], 1.5, "9 KB eventually consistent: 3 × 0.5");
    }

    #[test]
    fn empty_receives_are_counted_apart() {
        let m = Meter::new();
        m.observe("SQS", "ReceiveMessage", Some(b"{}"), 200, Some(b"{}"));
        m.observe(
            "SQS",
            "ReceiveMessage",
            Some(b"{}"),
            200,
            Some(br#"{"Messages":[{"Body":"x"}]}"#),
        );
        let u = m.snapshot();
        assert_eq!(u.count("sqs", "ReceiveMessage (empty)"), 1);
        assert_eq!(u.count("sqs", "ReceiveMessage"), 1);
    }
}
