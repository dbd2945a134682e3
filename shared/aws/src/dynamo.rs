//! DynamoDB adapters: the [`RunStore`] and the [`Idempotency`] records, in one table.
//!
//! Single-table layout (`pk`, `sk` strings; two sparse global secondary indexes):
//!
//! | item | pk | sk | other attributes |
//! |---|---|---|---|
//! | run | `RUN#<id>` | `RUN` | `version` (N), `state`, `events` (N), `body` (run JSON, see below) and `dict`, `gsi1pk` = `RUNS`, `gsi1sk` = `<created>#<id>`; while in flight `gsi2pk` = `INFLIGHT`, `gsi2sk` = `<deadline>#<id>` |
//! | events | `RUN#<id>` | `EV#<seq of the first, 20 digits>` | `body` (the JSON of the event, or of the array of events one write appended, see below) |
//! | idempotency record | `IDEM#<key>` | `IDEM` | `status` (`in_progress`/`completed`), `until_ms` (N), `result`, `ttl` (N, DynamoDB TTL) |
//!
//! `GSI1` (`gsi1pk`, `gsi1sk`, projecting `state`) serves `list` newest first and
//! `count_by_state`; `GSI2` (`gsi2pk`, `gsi2sk`, keys only) is sparse and serves `overdue`:
//! a run leaves it when a write drops the attributes. The indexes hold keys, not runs
//! (`list` and `overdue` read the runs by key with `BatchGetItem`), so a run write that
//! keeps its state costs no index write and one that changes it a small one, instead of
//! the whole run item again in each index (see `bench/COST.md`).
//!
//! A `body` is JSON, written compressed with a preset dictionary when that is smaller
//! (every transition rewrites the run item at 2 WRU per KB): see [`crate::body`]. Keys and
//! the attributes conditions and indexes read (`version`, `state`, `events`) stay plain.
//!
//! Events are stored if and only if the run is. A save or create that carries events is one
//! `TransactWriteItems` (the conditional run write plus one insert-if-absent of one item
//! holding all of the write's events, keyed by the first one's sequence number: a
//! transition that logs a note and two state changes writes two items, not four); a
//! save without events is a single conditional `PutItem`. A lost condition is
//! [`PortError::Conflict`], with the version found taken from the cancellation reason's
//! item (`ReturnValuesOnConditionCheckFailure = ALL_OLD`), never from an extra read. The
//! transaction costs two write units per item instead of one; the alternative (events
//! first under idempotent keys, then the run) needs orphan clean-up and leases to stay
//! correct under racing writers, and a transition writes two small items, so the
//! transaction is worth its price (see `bench/COST.md`).

use crate::error::map_sdk;
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use vaia_core::ports::{
    Claim, Created, Idempotency, PortError, PortResult, RunCursor, RunPage, RunStore,
};
use vaia_core::run::{Run, RunEvent, Timestamp};
use vaia_core::{PipelineState, RunId};

pub const GSI_BY_CREATED: &str = "gsi1";
pub const GSI_IN_FLIGHT: &str = "gsi2";
/// A global secondary index of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub pk: &'static str,
    pub sk: &'static str,
    /// The attributes projected besides the keys; `None`: all of them.
    pub include: Option<&'static [&'static str]>,
}

/// The table's global secondary indexes (one home: [`DynamoTable::create`], the SAM
/// template and the request meter follow it).
pub const INDEXES: &[Index] = &[
    Index {
        name: GSI_BY_CREATED,
        pk: "gsi1pk",
        sk: "gsi1sk",
        include: Some(&["state"]),
    },
    Index {
        name: GSI_IN_FLIGHT,
        pk: "gsi2pk",
        sk: "gsi2sk",
        include: Some(&[]),
    },
];
const RUN_SK: &str = "RUN";
const IDEM_SK: &str = "IDEM";
const ALL_RUNS: &str = "RUNS";
const IN_FLIGHT: &str = "INFLIGHT";
/// Most events one write appends (a transition writes a handful; the item holding them
/// stays far under DynamoDB's 400 KB).
const MAX_EVENTS_PER_WRITE: usize = 99;
/// Keys per `BatchGetItem`, by DynamoDB's limit.
const MAX_BATCH_GET: usize = 100;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn run_pk(id: &RunId) -> String {
    format!("RUN#{id}")
}

fn event_sk(seq: u64) -> String {
    format!("EV#{seq:020}")
}

/// Fixed-width UTC time, so that string order is time order.
pub fn sortable_time(t: Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// `gsi1sk`: the runs list's order (newest first when read backwards), creation then id.
fn list_sort_key(created_at: Timestamp, id: &RunId) -> String {
    format!("{}#{id}", sortable_time(created_at))
}

fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn get_n(item: &Item, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The JSON of an item's `body`, in any stored form.
fn body_json(item: &Item, what: &str) -> PortResult<String> {
    String::from_utf8(crate::body::bytes(item, what)?)
        .map_err(|e| PortError::Invalid(format!("{what}: body is not UTF-8: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(item: &Item, what: &str) -> PortResult<T> {
    let body = body_json(item, what)?;
    serde_json::from_str(&body).map_err(|e| PortError::Invalid(format!("{what}: bad body: {e}")))
}

/// The run an item holds, decoded as [`DynamoRunStore`] reads it; `Ok(None)` for the
/// table's other items (events, idempotency records). For the runs table's stream (the
/// `realtime` function), whose images are items of this table.
pub fn run_from_item(item: &Item) -> PortResult<Option<Run>> {
    let is_run = get_s(item, "sk") == Some(RUN_SK)
        && get_s(item, "pk").is_some_and(|pk| pk.starts_with("RUN#"));
    if !is_run {
        return Ok(None);
    }
    let run: Run = decode(item, "run")?;
    if get_s(item, "pk") != Some(run_pk(&run.id).as_str()) {
        return Err(PortError::Invalid(format!(
            "run: item {:?} holds run {}",
            get_s(item, "pk").unwrap_or_default(),
            run.id
        )));
    }
    Ok(Some(run))
}

fn encode<T: serde::Serialize>(v: &T, what: &str) -> PortResult<String> {
    serde_json::to_string(v).map_err(|e| PortError::Invalid(format!("{what}: cannot encode: {e}")))
}

fn run_item(run: &Run) -> PortResult<Item> {
    let mut item = Item::new();
    item.insert("pk".into(), s(run_pk(&run.id)));
    item.insert("sk".into(), s(RUN_SK));
    item.insert("version".into(), n(run.version));
    item.insert("state".into(), s(run.state.to_string()));
    item.insert("events".into(), n(run.events));
    crate::body::insert(&mut item, encode(run, "run")?);
    item.insert("gsi1pk".into(), s(ALL_RUNS));
    item.insert("gsi1sk".into(), s(list_sort_key(run.created_at, &run.id)));
    if run.state.is_in_flight() {
        item.insert("gsi2pk".into(), s(IN_FLIGHT));
        item.insert(
            "gsi2sk".into(),
            s(format!("{}#{}", sortable_time(run.deadline()), run.id)),
        );
    }
    Ok(item)
}

/// The item holding the events one write appends (consecutive, of one run): keyed by the
/// first one's sequence number; the body is the event's JSON for one event (as items
/// written before grouping hold), the array of them for more.
fn events_item(events: &[RunEvent]) -> PortResult<Item> {
    let Some(first) = events.first() else {
        return Err(PortError::Invalid("an events item without events".into()));
    };
    let mut item = Item::new();
    item.insert("pk".into(), s(run_pk(&first.run_id)));
    item.insert("sk".into(), s(event_sk(first.seq)));
    let json = match events {
        [one] => encode(one, "event")?,
        many => encode(&many, "events")?,
    };
    crate::body::insert(&mut item, json);
    Ok(item)
}

/// The events an events item holds, in either form.
fn events_of(item: &Item) -> PortResult<Vec<RunEvent>> {
    let body = body_json(item, "event")?;
    let bad = |e: serde_json::Error| PortError::Invalid(format!("event: bad body: {e}"));
    if body.trim_start().starts_with('[') {
        serde_json::from_str(&body).map_err(bad)
    } else {
        serde_json::from_str(&body).map(|e| vec![e]).map_err(bad)
    }
}

/// The run table, for both [`DynamoRunStore`] and [`DynamoIdempotency`].
#[derive(Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
}

impl DynamoTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn name(&self) -> &str {
        &self.table
    }

    /// Creates the table with its indexes (on demand). For tests and local servers; the
    /// SAM template creates it on AWS.
    pub async fn create(&self) -> PortResult<()> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
            Projection, ProjectionType, ScalarAttributeType,
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| PortError::Invalid(e.to_string()))
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| PortError::Invalid(e.to_string()))
        };
        let gsi = |index: &Index| -> PortResult<GlobalSecondaryIndex> {
            let projection = match index.include {
                None => Projection::builder().projection_type(ProjectionType::All),
                Some([]) => Projection::builder().projection_type(ProjectionType::KeysOnly),
                Some(attrs) => Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .set_non_key_attributes(Some(attrs.iter().map(|a| a.to_string()).collect())),
            };
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.pk, KeyType::Hash)?)
                .key_schema(key(index.sk, KeyType::Range)?)
                .projection(projection.build())
                .build()
                .map_err(|e| PortError::Invalid(e.to_string()))
        };
        let mut req = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?);
        for index in INDEXES {
            req = req
                .global_secondary_indexes(gsi(index)?)
                .attribute_definitions(attr(index.pk)?)
                .attribute_definitions(attr(index.sk)?);
        }
        req.send()
            .await
            .map_err(|e| map_sdk("dynamodb CreateTable", e))?;
        Ok(())
    }
}

/// The [`RunStore`] over the table.
#[derive(Clone)]
pub struct DynamoRunStore {
    t: DynamoTable,
}

impl DynamoRunStore {
    pub fn new(table: DynamoTable) -> Self {
        Self { t: table }
    }

    fn put(&self, item: Item, condition: &str, values: Option<Item>) -> PortResult<Put> {
        Put::builder()
            .table_name(&self.t.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| PortError::Invalid(format!("dynamodb put: {e}")))
    }

    /// Writes `run` under `condition` together with `events`; `Ok(None)` on success,
    /// `Ok(Some(old))` when the run's condition failed (`old` is the stored item, if any).
    async fn write(
        &self,
        run: &Run,
        condition: &str,
        values: Option<Item>,
        events: &[RunEvent],
    ) -> PortResult<Option<Option<Item>>> {
        let item = run_item(run)?;
        if events.is_empty() {
            let r = self
                .t
                .client
                .put_item()
                .table_name(&self.t.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_values(values)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            return match r {
                Ok(_) => Ok(None),
                Err(e) => match e.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(c)) => {
                        Ok(Some(c.item().cloned()))
                    }
                    _ => Err(map_sdk("dynamodb PutItem run", e)),
                },
            };
        }
        if events.len() > MAX_EVENTS_PER_WRITE {
            return Err(PortError::Invalid(format!(
                "run {}: {} events in one write; the limit is {MAX_EVENTS_PER_WRITE}",
                run.id,
                events.len(),
            )));
        }
        for (i, event) in events.iter().enumerate() {
            if event.run_id != run.id {
                return Err(PortError::Invalid(format!(
                    "event of run {} written with run {}",
                    event.run_id, run.id
                )));
            }
            if i > 0 && event.seq != events[i - 1].seq + 1 {
                return Err(PortError::Invalid(format!(
                    "run {}: events {} and {} of one write are not consecutive",
                    run.id,
                    events[i - 1].seq,
                    event.seq
                )));
            }
        }
        let req = self
            .t
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(self.put(item, condition, values)?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .put(self.put(events_item(events)?, "attribute_not_exists(pk)", None)?)
                    .build(),
            );
        match req.send().await {
            Ok(_) => Ok(None),
            Err(e) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                    e.as_service_error()
                {
                    let reasons = c.cancellation_reasons();
                    let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("");
                    if code(0) == "ConditionalCheckFailed" {
                        return Ok(Some(reasons.first().and_then(|r| r.item().cloned())));
                    }
                    if (1..reasons.len()).any(|i| code(i) == "ConditionalCheckFailed") {
                        // An event slot was taken: another writer owns this sequence number.
                        return Ok(Some(None));
                    }
                }
                Err(map_sdk("dynamodb TransactWriteItems run+events", e))
            }
        }
    }

    /// The run items of index entries `entries` (the indexes project keys, not runs), in
    /// their order, read with `BatchGetItem` (strongly consistent); entries whose run is
    /// gone are left out.
    async fn runs_of(&self, entries: &[Item]) -> PortResult<Vec<Item>> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut found: HashMap<String, Item> = HashMap::new();
        let keys: Vec<Item> = entries
            .iter()
            .filter_map(|e| {
                let pk = get_s(e, "pk")?;
                Some([("pk".to_string(), s(pk)), ("sk".to_string(), s(RUN_SK))].into())
            })
            .collect();
        for chunk in keys.chunks(MAX_BATCH_GET) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| PortError::Invalid(format!("dynamodb BatchGetItem: {e}")))?,
            );
            let mut attempts = 0u32;
            while let Some(request) = pending.take() {
                attempts += 1;
                let r = self
                    .t
                    .client
                    .batch_get_item()
                    .request_items(&self.t.table, request)
                    .send()
                    .await
                    .map_err(|e| map_sdk("dynamodb BatchGetItem runs", e))?;
                for item in r
                    .responses()
                    .and_then(|t| t.get(&self.t.table))
                    .into_iter()
                    .flatten()
                {
                    if let Some(pk) = get_s(item, "pk") {
                        found.insert(pk.to_string(), item.clone());
                    }
                }
                pending = r
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.t.table))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
                if pending.is_some() {
                    if attempts >= 8 {
                        return Err(PortError::Unavailable(
                            "dynamodb BatchGetItem: keys left unprocessed after 8 attempts".into(),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(20 << attempts.min(6))).await;
                }
            }
        }
        Ok(entries
            .iter()
            .filter_map(|e| found.remove(get_s(e, "pk")?))
            .collect())
    }

    async fn query_all(
        &self,
        index: Option<&str>,
        key_condition: &str,
        values: Item,
        names: Option<HashMap<String, String>>,
        projection: Option<&str>,
    ) -> PortResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let r = self
                .t
                .client
                .query()
                .table_name(&self.t.table)
                .set_index_name(index.map(str::to_string))
                .key_condition_expression(key_condition)
                .set_expression_attribute_values(Some(values.clone()))
                .set_expression_attribute_names(names.clone())
                .set_projection_expression(projection.map(str::to_string))
                .set_consistent_read(index.is_none().then_some(true))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| map_sdk("dynamodb Query", e))?;
            out.extend(r.items().iter().cloned());
            match r.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }
}

#[async_trait]
impl RunStore for DynamoRunStore {
    async fn create(&self, run: &Run, events: &[RunEvent]) -> PortResult<Created> {
        match self
            .write(run, "attribute_not_exists(pk)", None, events)
            .await?
        {
            None => Ok(Created::Created),
            Some(Some(old)) => Ok(Created::Exists(Box::new(decode(&old, "run")?))),
            // The condition failed but the old item did not come back: read it.
            Some(None) => match self.get(&run.id).await? {
                Some(stored) => Ok(Created::Exists(Box::new(stored))),
                None => Err(PortError::Unavailable(format!(
                    "run {}: create lost a race with a writer that has not landed",
                    run.id
                ))),
            },
        }
    }

    async fn get(&self, id: &RunId) -> PortResult<Option<Run>> {
        let r = self
            .t
            .client
            .get_item()
            .table_name(&self.t.table)
            .key("pk", s(run_pk(id)))
            .key("sk", s(RUN_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk("dynamodb GetItem run", e))?;
        r.item().map(|item| decode(item, "run")).transpose()
    }

    async fn save(&self, run: &Run, expected_version: u64, events: &[RunEvent]) -> PortResult<()> {
        let values: Item = [(":v".to_string(), n(expected_version))].into();
        match self
            .write(run, "version = :v", Some(values), events)
            .await?
        {
            None => Ok(()),
            Some(old) => Err(PortError::Conflict {
                what: format!("run {}", run.id),
                expected: expected_version,
                found: old.as_ref().and_then(|i| get_n(i, "version")),
            }),
        }
    }

    async fn list(&self, limit: usize, after: Option<&RunCursor>) -> PortResult<RunPage> {
        if limit == 0 {
            return Ok(RunPage {
                runs: vec![],
                next: None,
            });
        }
        let start = match after {
            Some(cursor) => {
                let mut k = Item::new();
                k.insert("pk".into(), s(run_pk(&cursor.id)));
                k.insert("sk".into(), s(RUN_SK));
                k.insert("gsi1pk".into(), s(ALL_RUNS));
                k.insert(
                    "gsi1sk".into(),
                    s(list_sort_key(cursor.created_at, &cursor.id)),
                );
                Some(k)
            }
            None => None,
        };
        let want = limit.saturating_add(1);
        let mut keys: Vec<Item> = Vec::new();
        let mut start = start;
        loop {
            let r = self
                .t
                .client
                .query()
                .table_name(&self.t.table)
                .index_name(GSI_BY_CREATED)
                .key_condition_expression("gsi1pk = :p")
                .expression_attribute_values(":p", s(ALL_RUNS))
                .scan_index_forward(false)
                .limit(i32::try_from(want - keys.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| map_sdk("dynamodb Query runs", e))?;
            keys.extend(r.items().iter().cloned());
            match r.last_evaluated_key() {
                Some(k) if !k.is_empty() && keys.len() < want => start = Some(k.clone()),
                _ => break,
            }
        }
        let mut items = self.runs_of(&keys).await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let runs = items
            .iter()
            .map(|i| decode(i, "run"))
            .collect::<PortResult<Vec<Run>>>()?;
        let next = if more {
            runs.last().map(RunCursor::after)
        } else {
            None
        };
        Ok(RunPage { runs, next })
    }

    async fn events(&self, id: &RunId) -> PortResult<Vec<RunEvent>> {
        let values: Item = [
            (":p".to_string(), s(run_pk(id))),
            (":e".to_string(), s("EV#")),
        ]
        .into();
        let items = self
            .query_all(None, "pk = :p AND begins_with(sk, :e)", values, None, None)
            .await?;
        let mut out = Vec::new();
        for item in &items {
            out.extend(events_of(item)?);
        }
        Ok(out)
    }

    async fn count_by_state(&self) -> PortResult<BTreeMap<PipelineState, u64>> {
        let values: Item = [(":p".to_string(), s(ALL_RUNS))].into();
        let names: HashMap<String, String> = [("#s".to_string(), "state".to_string())].into();
        let items = self
            .query_all(
                Some(GSI_BY_CREATED),
                "gsi1pk = :p",
                values,
                Some(names),
                Some("#s"),
            )
            .await?;
        let mut out = BTreeMap::new();
        for item in &items {
            let state = get_s(item, "state").unwrap_or("");
            let state: PipelineState = state
                .parse()
                .map_err(|e| PortError::Invalid(format!("run item: {e}")))?;
            *out.entry(state).or_insert(0) += 1;
        }
        Ok(out)
    }

    async fn overdue(&self, now: Timestamp, limit: usize) -> PortResult<Vec<Run>> {
        if limit == 0 {
            return Ok(vec![]);
        }
        // '$' sorts after '#': every deadline at or before `now`, whatever the id.
        let upper = format!("{}$", sortable_time(now));
        let r = self
            .t
            .client
            .query()
            .table_name(&self.t.table)
            .index_name(GSI_IN_FLIGHT)
            .key_condition_expression("gsi2pk = :p AND gsi2sk < :u")
            .expression_attribute_values(":p", s(IN_FLIGHT))
            .expression_attribute_values(":u", s(upper))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| map_sdk("dynamodb Query overdue", e))?;
        self.runs_of(r.items())
            .await?
            .iter()
            .map(|i| decode(i, "run"))
            .collect::<PortResult<Vec<Run>>>()
            .map(|runs| {
                runs.into_iter()
                    .filter(|r| r.state.is_in_flight())
                    .collect()
            })
    }
}

/// Idempotency records in the run table, in the manner of Powertools for AWS Lambda.
///
/// `claim` is one conditional `PutItem`: it succeeds when the key is absent or its
/// in-progress record has expired, so exactly one of racing claims wins; a loser learns
/// the stored record from `ALL_OLD` on the failed condition. Completed records carry a
/// DynamoDB TTL (`ttl`) of `completed_ttl` so the table does not grow for ever.
#[derive(Clone)]
pub struct DynamoIdempotency {
    t: DynamoTable,
    completed_ttl: Duration,
}

const IN_PROGRESS: &str = "in_progress";
const COMPLETED: &str = "completed";

impl DynamoIdempotency {
    /// `completed_ttl`: how long a completed record answers duplicates (Powertools' default
    /// is one hour; vaia's default, [`Self::DEFAULT_COMPLETED_TTL`], is seven days).
    pub fn new(table: DynamoTable, completed_ttl: Duration) -> Self {
        Self {
            t: table,
            completed_ttl,
        }
    }

    pub const DEFAULT_COMPLETED_TTL: Duration = Duration::from_secs(7 * 86_400);

    fn key(key: &str) -> (AttributeValue, AttributeValue) {
        (s(format!("IDEM#{key}")), s(IDEM_SK))
    }

    fn epoch_secs(t: Timestamp, plus: Duration) -> i64 {
        t.timestamp()
            .saturating_add(i64::try_from(plus.as_secs()).unwrap_or(i64::MAX / 2))
    }

    async fn read(&self, key: &str) -> PortResult<Option<Item>> {
        let (pk, sk) = Self::key(key);
        let r = self
            .t
            .client
            .get_item()
            .table_name(&self.t.table)
            .key("pk", pk)
            .key("sk", sk)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk("dynamodb GetItem idempotency", e))?;
        Ok(r.item().cloned())
    }
}

fn claim_of(old: &Item) -> Claim {
    if get_s(old, "status") == Some(COMPLETED) {
        Claim::Completed(get_s(old, "result").unwrap_or_default().to_string())
    } else {
        Claim::InProgress
    }
}

#[async_trait]
impl Idempotency for DynamoIdempotency {
    async fn claim(
        &self,
        key: &str,
        in_progress_ttl: Duration,
        now: Timestamp,
    ) -> PortResult<Claim> {
        let (pk, sk) = Self::key(key);
        let now_ms = now.timestamp_millis();
        let until_ms = now_ms
            .saturating_add(i64::try_from(in_progress_ttl.as_millis()).unwrap_or(i64::MAX / 2));
        let r = self
            .t
            .client
            .put_item()
            .table_name(&self.t.table)
            .item("pk", pk)
            .item("sk", sk)
            .item("status", s(IN_PROGRESS))
            .item("until_ms", n(until_ms))
            .item(
                "ttl",
                n(Self::epoch_secs(now, in_progress_ttl + self.completed_ttl)),
            )
            .condition_expression("attribute_not_exists(pk) OR (#st = :ip AND until_ms <= :now)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":ip", s(IN_PROGRESS))
            .expression_attribute_values(":now", n(now_ms))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(_) => Ok(Claim::Claimed),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(c)) => match c.item() {
                    Some(old) => Ok(claim_of(old)),
                    None => Ok(self
                        .read(key)
                        .await?
                        .as_ref()
                        .map_or(Claim::InProgress, claim_of)),
                },
                _ => Err(map_sdk("dynamodb PutItem idempotency claim", e)),
            },
        }
    }

    async fn complete(&self, key: &str, result: &str, now: Timestamp) -> PortResult<()> {
        let (pk, sk) = Self::key(key);
        self.t
            .client
            .put_item()
            .table_name(&self.t.table)
            .item("pk", pk)
            .item("sk", sk)
            .item("status", s(COMPLETED))
            .item("result", s(result))
            .item("ttl", n(Self::epoch_secs(now, self.completed_ttl)))
            .send()
            .await
            .map_err(|e| map_sdk("dynamodb PutItem idempotency complete", e))?;
        Ok(())
    }

    async fn release(&self, key: &str) -> PortResult<()> {
        let (pk, sk) = Self::key(key);
        let r = self
            .t
            .client
            .delete_item()
            .table_name(&self.t.table)
            .key("pk", pk)
            .key("sk", sk)
            .condition_expression("#st = :ip")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":ip", s(IN_PROGRESS))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(map_sdk("dynamodb DeleteItem idempotency release", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use vaia_core::policy::Policy;
    use vaia_core::run::Trigger;
    use vaia_core::{CommitSha, Repository};

    fn a_run() -> Run {
        let at = chrono::DateTime::from_timestamp(1_764_000_000, 0).unwrap();
        Run::new(
            Repository::new("octo/agent").unwrap(),
            CommitSha::new("c".repeat(40)).unwrap(),
            Some("main".into()),
            Trigger {
                kind: "push".into(),
                delivery: None,
                actor: Some("octocat".into()),
                at,
            },
            Policy::default(),
            at,
        )
    }

    #[test]
    fn a_run_body_is_stored_deflated_and_read_back() {
        let run = a_run();
        let item = run_item(&run).unwrap();
        let json = encode(&run, "run").unwrap();
        let Some(AttributeValue::B(stored)) = item.get("body") else {
            panic!("body is not binary: {:?}", item.get("body"));
        };
        assert!(
            stored.as_ref().len() < json.len(),
            "{} bytes deflated of {}",
            stored.as_ref().len(),
            json.len()
        );
        assert_eq!(run_from_item(&item).unwrap(), Some(run.clone()));
        // What conditions and indexes read stays plain.
        assert_eq!(get_n(&item, "version"), Some(run.version));
        assert_eq!(get_s(&item, "state"), Some(run.state.to_string().as_str()));
    }

    #[test]
    fn a_plain_body_written_before_compression_is_still_read() {
        let run = a_run();
        let mut item = run_item(&run).unwrap();
        item.insert("body".into(), s(encode(&run, "run").unwrap()));
        assert_eq!(run_from_item(&item).unwrap(), Some(run));
    }

    fn events(run: &Run, n: u64) -> Vec<RunEvent> {
        (1..=n)
            .map(|seq| {
                let mut run = run.clone();
                run.events = seq - 1;
                vaia_core::contract::sample_event(&run, None, run.created_at)
            })
            .collect()
    }

    #[test]
    fn one_write_s_events_are_one_item_keyed_by_the_first() {
        let run = a_run();
        let three = events(&run, 3);
        let item = events_item(&three).unwrap();
        assert_eq!(get_s(&item, "sk"), Some(event_sk(1).as_str()));
        assert_eq!(events_of(&item).unwrap(), three);
        let one = events_item(&three[..1]).unwrap();
        assert_eq!(events_of(&one).unwrap(), three[..1].to_vec());
        assert!(events_item(&[]).is_err());
    }

    #[test]
    fn an_event_item_written_before_grouping_is_still_read() {
        let run = a_run();
        let event = events(&run, 1).remove(0);
        let mut item = events_item(std::slice::from_ref(&event)).unwrap();
        item.insert("body".into(), s(encode(&event, "event").unwrap()));
        assert_eq!(events_of(&item).unwrap(), vec![event]);
    }

    #[test]
    fn a_corrupt_body_is_invalid_not_a_panic() {
        let run = a_run();
        let mut item = run_item(&run).unwrap();
        item.insert(
            "body".into(),
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(vec![0xff; 64])),
        );
        let e = run_from_item(&item).unwrap_err();
        assert!(e.to_string().contains("does not inflate"), "{e}");
        item.insert("body".into(), n(3));
        assert!(run_from_item(&item).is_err());
    }
}
