//! The deployment's [`BlobStore`]: S3 for evidence, data and everything large, and the
//! run table for the registry's small records (version records, aliases, dataset
//! snapshots under `registry/`, and the continuous-training baselines
//! `ct/<owner>/<repo>/baseline.json`), which are written a few times per run, read by
//! every gate and conditionally written (a version claimed once, the `prod` alias moved
//! by compare-and-swap). A DynamoDB write of such a record costs a write unit or two
//! where an S3 `PUT` costs the price of eight, and a read a fraction of a `GET` (see
//! `bench/COST.md`). Callers see one blob store; [`in_table`] is the one home of which
//! keys live where.
//!
//! A record is one item: `pk` = `REC`, `sk` = its key, `body` (its bytes, DEFLATE'd
//! when smaller, as the run table's bodies), `etag` (the content's sha256, as
//! [`content_etag`]), `size` (N). `put_if_absent` is a put on `attribute_not_exists`,
//! `put_if_match` a put on `etag = :e`; `list` queries the one partition by key prefix.
//! No S3 notification is sent for a record (none was routed for `registry/` keys).
//!
//! Records written to S3 before this store existed are still read: a key the table does
//! not hold is read from S3 (a `GET` on a miss only), and a compare-and-swap over such a
//! record writes the table's first item for the key, allowed only while the table holds
//! none and S3's copy still has the etag read (S3 is no longer written under these keys).

use crate::dynamo::{DynamoTable, Item};
use crate::error::map_sdk;
use crate::s3::S3BlobStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use vaia_core::messages::ObjectCreated;
use vaia_core::ports::{content_etag, BlobMeta, BlobStore, Bounded, PortError, PortResult, Tagged};
use vaia_core::BlobKey;

const RECORDS_PK: &str = "REC";

/// The largest record the table holds (its bytes before compression); DynamoDB's item
/// limit is 400 KB. Registry records are a few KB.
pub const MAX_TABLE_RECORD_BYTES: usize = 256 * 1024;

/// Whether `key` is a registry record kept in the run table rather than in S3.
pub fn in_table(key: &str) -> bool {
    key.starts_with("registry/") || (key.starts_with("ct/") && key.ends_with("/baseline.json"))
}

/// Whether a listing of `prefix` can hold table records.
fn lists_table(prefix: &str) -> bool {
    ["registry/", "ct/"]
        .iter()
        .any(|domain| prefix.starts_with(domain) || domain.starts_with(prefix))
}

/// S3 and the table's records behind one [`BlobStore`]. Dereferences to the S3 store for
/// what is S3's own (its bucket, its client, the data bucket).
pub struct AwsBlobStore {
    s3: S3BlobStore,
    table: DynamoTable,
    last: AtomicI64,
}

impl std::ops::Deref for AwsBlobStore {
    type Target = S3BlobStore;
    fn deref(&self) -> &S3BlobStore {
        &self.s3
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl AwsBlobStore {
    pub fn new(s3: S3BlobStore, table: DynamoTable) -> Self {
        Self {
            s3,
            table,
            last: AtomicI64::new(0),
        }
    }

    /// A sequencer that grows with every record written by this process.
    fn sequencer(&self) -> String {
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let prev = self.last.fetch_max(now, Ordering::SeqCst);
        format!("{:016X}", now.max(prev + 1))
    }

    async fn read_item(&self, key: &BlobKey) -> PortResult<Option<Tagged>> {
        let r = self
            .table
            .client()
            .get_item()
            .table_name(self.table.name())
            .key("pk", s(RECORDS_PK))
            .key("sk", s(key.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk("dynamodb GetItem record", e))?;
        let Some(item) = r.item() else {
            return Ok(None);
        };
        let bytes = crate::body::bytes(item, key.as_str())?;
        let etag = match item.get("etag") {
            Some(AttributeValue::S(e)) => e.clone(),
            _ => content_etag(&bytes),
        };
        Ok(Some(Tagged { bytes, etag }))
    }

    /// The record at `key`: the table's, or the one written to S3 before records moved.
    async fn read(&self, key: &BlobKey) -> PortResult<Option<Tagged>> {
        match self.read_item(key).await? {
            Some(t) => Ok(Some(t)),
            None => self.s3.get_tagged(key).await,
        }
    }

    /// Writes the record under `condition`; `None` when the condition failed.
    async fn write(
        &self,
        key: &BlobKey,
        bytes: &[u8],
        condition: Option<(&str, Option<&str>)>,
    ) -> PortResult<Option<ObjectCreated>> {
        if bytes.len() > MAX_TABLE_RECORD_BYTES {
            return Err(PortError::Invalid(format!(
                "{key}: a record of {} bytes; the registry's records are at most {MAX_TABLE_RECORD_BYTES}",
                bytes.len()
            )));
        }
        let mut item = Item::new();
        match std::str::from_utf8(bytes) {
            Ok(text) => crate::body::insert(&mut item, text.to_string()),
            Err(_) => crate::body::insert_binary(&mut item, bytes),
        }
        item.insert("pk".into(), s(RECORDS_PK));
        item.insert("sk".into(), s(key.as_str()));
        item.insert("etag".into(), s(content_etag(bytes)));
        item.insert("size".into(), AttributeValue::N(bytes.len().to_string()));
        let mut req = self
            .table
            .client()
            .put_item()
            .table_name(self.table.name())
            .set_item(Some(item));
        if let Some((expression, etag)) = condition {
            req = req.condition_expression(expression);
            if let Some(etag) = etag {
                req = req.expression_attribute_values(":e", s(etag));
            }
        }
        match req.send().await {
            Ok(_) => Ok(Some(ObjectCreated {
                key: key.clone(),
                size: bytes.len() as u64,
                sequencer: self.sequencer(),
            })),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(map_sdk("dynamodb PutItem record", e)),
        }
    }

    async fn list_table(&self, prefix: &str) -> PortResult<Vec<BlobMeta>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let r = self
                .table
                .client()
                .query()
                .table_name(self.table.name())
                .key_condition_expression("pk = :p AND begins_with(sk, :k)")
                .expression_attribute_values(":p", s(RECORDS_PK))
                .expression_attribute_values(":k", s(prefix))
                .projection_expression("sk, #size")
                .expression_attribute_names("#size", "size")
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| map_sdk("dynamodb Query records", e))?;
            for item in r.items() {
                let Some(AttributeValue::S(k)) = item.get("sk") else {
                    continue;
                };
                let size = match item.get("size") {
                    Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
                    _ => 0,
                };
                let key = BlobKey::new(k.clone())
                    .map_err(|e| PortError::Invalid(format!("record key {k:?}: {e}")))?;
                out.push(BlobMeta { key, size });
            }
            match r.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }
}

#[async_trait]
impl BlobStore for AwsBlobStore {
    async fn put(&self, key: &BlobKey, bytes: &[u8]) -> PortResult<ObjectCreated> {
        if !in_table(key.as_str()) {
            return self.s3.put(key, bytes).await;
        }
        self.write(key, bytes, None)
            .await?
            .ok_or_else(|| PortError::Unavailable(format!("{key}: unconditional write refused")))
    }

    async fn put_if_absent(
        &self,
        key: &BlobKey,
        bytes: &[u8],
    ) -> PortResult<Option<ObjectCreated>> {
        if !in_table(key.as_str()) {
            return self.s3.put_if_absent(key, bytes).await;
        }
        if self.s3.get_tagged(key).await?.is_some() {
            // Written to S3 before records moved: present.
            return Ok(None);
        }
        self.write(key, bytes, Some(("attribute_not_exists(sk)", None)))
            .await
    }

    async fn put_if_match(
        &self,
        key: &BlobKey,
        bytes: &[u8],
        etag: &str,
    ) -> PortResult<Option<ObjectCreated>> {
        if !in_table(key.as_str()) {
            return self.s3.put_if_match(key, bytes, etag).await;
        }
        if let Some(created) = self
            .write(key, bytes, Some(("etag = :e", Some(etag))))
            .await?
        {
            return Ok(Some(created));
        }
        // No item with that etag. If the table holds none at all and S3 holds the record
        // as it was before records moved, with that etag, the first item written wins.
        if self.read_item(key).await?.is_some() {
            return Ok(None);
        }
        match self.s3.get_tagged(key).await? {
            Some(old) if old.etag == etag => {
                self.write(key, bytes, Some(("attribute_not_exists(sk)", None)))
                    .await
            }
            _ => Ok(None),
        }
    }

    async fn get(&self, key: &BlobKey) -> PortResult<Option<Vec<u8>>> {
        if !in_table(key.as_str()) {
            return self.s3.get(key).await;
        }
        Ok(self.read(key).await?.map(|t| t.bytes))
    }

    async fn get_at_most(&self, key: &BlobKey, limit: u64) -> PortResult<Option<Bounded>> {
        if !in_table(key.as_str()) {
            return self.s3.get_at_most(key, limit).await;
        }
        Ok(self.read(key).await?.map(|t| {
            if t.bytes.len() as u64 > limit {
                Bounded::TooLarge {
                    size: Some(t.bytes.len() as u64),
                }
            } else {
                Bounded::Bytes(t.bytes)
            }
        }))
    }

    async fn get_tagged(&self, key: &BlobKey) -> PortResult<Option<Tagged>> {
        if !in_table(key.as_str()) {
            return self.s3.get_tagged(key).await;
        }
        self.read(key).await
    }

    async fn list(&self, prefix: &str) -> PortResult<Vec<BlobMeta>> {
        let mut found: BTreeMap<String, BlobMeta> = BTreeMap::new();
        for meta in self.s3.list(prefix).await? {
            found.insert(meta.key.to_string(), meta);
        }
        if lists_table(prefix) {
            for meta in self.list_table(prefix).await? {
                found.insert(meta.key.to_string(), meta);
            }
        }
        Ok(found.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_records_and_baselines_live_in_the_table() {
        for key in [
            "registry/o/r/versions/0.1.0.json",
            "registry/o/r/aliases/prod.json",
            "registry/o/r/snapshots/abc.json",
            "ct/o/r/baseline.json",
        ] {
            assert!(in_table(key), "{key}");
        }
        for key in [
            "evidence/o/r/sha/manifest.json",
            "verdicts/r/ci/schema.json",
            "ct/o/r/data/objects/x.json",
            "ct/o/r/evaluations/1.json",
            "cache/judge/x.json",
            "datasets/o/r/data.dvc",
        ] {
            assert!(!in_table(key), "{key}");
        }
        assert!(lists_table("registry/"));
        assert!(lists_table("registry/o/r/versions/"));
        assert!(lists_table(""));
        assert!(!lists_table("evidence/o/r/"));
    }
}
