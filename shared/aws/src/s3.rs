//! The S3 [`BlobStore`]. Object-created notifications come from S3 itself (bucket
//! notifications to SQS, see [`crate::s3event`]); `put` returns the [`ObjectCreated`] the
//! caller may log, with a time-based sequencer (S3 does not return its own on `PutObject`).

use crate::error::map_sdk;
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use std::sync::atomic::{AtomicI64, Ordering};
use vaia_core::messages::ObjectCreated;
use vaia_core::ports::{BlobMeta, BlobStore, Bounded, PortError, PortResult, Tagged};
use vaia_core::BlobKey;

pub struct S3BlobStore {
    client: Client,
    bucket: String,
    last: AtomicI64,
}

impl S3BlobStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            last: AtomicI64::new(0),
        }
    }

    /// The same client on another bucket (the data bucket of the raw data).
    pub fn with_bucket(&self, bucket: impl Into<String>) -> Self {
        Self::new(self.client.clone(), bucket)
    }

    /// Every key under `prefix` with its size (ListObjectsV2, every page), the keys as S3
    /// holds them: not checked against vaia's [`BlobKey`] alphabet, for raw data named
    /// by others (spaces, non-ASCII characters).
    pub async fn list_keys(&self, prefix: &str) -> PortResult<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let r = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| map_sdk(&format!("s3 ListObjectsV2 {prefix}"), e))?;
            for o in r.contents() {
                let Some(k) = o.key() else { continue };
                out.push((
                    k.to_string(),
                    u64::try_from(o.size().unwrap_or(0)).unwrap_or(0),
                ));
            }
            match r.next_continuation_token() {
                Some(t) if r.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `GetObject`, its body not yet read; `None` when there is no such key.
    async fn get_object(
        &self,
        key: &BlobKey,
    ) -> PortResult<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>> {
        let r = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await;
        match r {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.as_service_error().is_some_and(|x| x.is_no_such_key()) => Ok(None),
            Err(e) => Err(map_sdk(&format!("s3 GetObject {key}"), e)),
        }
    }

    /// A sequencer that grows with every put of this process (nanoseconds since the epoch,
    /// 16 upper-case hex digits like S3's).
    fn sequencer(&self) -> String {
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let prev = self.last.fetch_max(now, Ordering::SeqCst);
        let value = if now > prev {
            now
        } else {
            self.last.fetch_add(1, Ordering::SeqCst) + 1
        };
        format!("{value:016X}")
    }

    /// Creates the bucket (tests and local servers).
    pub async fn create_bucket(&self) -> PortResult<()> {
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| map_sdk("s3 CreateBucket", e))?;
        Ok(())
    }
}

impl S3BlobStore {
    /// PutObject, conditional on the key being free when `if_absent` (`If-None-Match: *`),
    /// or on its ETag when `if_match` (`If-Match`): a 412 answer means the condition
    /// failed, `None`, as does a 404 to `If-Match` (no object to match); a 409, another
    /// conditional write to the key in flight, is a retryable error.
    async fn write(
        &self,
        key: &BlobKey,
        bytes: &[u8],
        if_absent: bool,
        if_match: Option<&str>,
    ) -> PortResult<Option<ObjectCreated>> {
        let conditional = if_absent || if_match.is_some();
        let r = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_if_none_match(if_absent.then(|| "*".to_string()))
            .set_if_match(if_match.map(str::to_string))
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(Some(ObjectCreated {
                key: key.clone(),
                size: bytes.len() as u64,
                sequencer: self.sequencer(),
            })),
            Err(e)
                if conditional
                    && e.raw_response().is_some_and(|r| {
                        let status = r.status().as_u16();
                        status == 412 || (if_match.is_some() && status == 404)
                    }) =>
            {
                Ok(None)
            }
            Err(e) => Err(map_sdk(&format!("s3 PutObject {key}"), e)),
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &BlobKey, bytes: &[u8]) -> PortResult<ObjectCreated> {
        self.write(key, bytes, false, None).await?.ok_or_else(|| {
            PortError::Invalid(format!(
                "s3 PutObject {key}: an unconditional write was refused"
            ))
        })
    }

    async fn put_if_absent(
        &self,
        key: &BlobKey,
        bytes: &[u8],
    ) -> PortResult<Option<ObjectCreated>> {
        self.write(key, bytes, true, None).await
    }

    async fn put_if_match(
        &self,
        key: &BlobKey,
        bytes: &[u8],
        etag: &str,
    ) -> PortResult<Option<ObjectCreated>> {
        self.write(key, bytes, false, Some(etag)).await
    }

    async fn get(&self, key: &BlobKey) -> PortResult<Option<Vec<u8>>> {
        Ok(self.get_tagged(key).await?.map(|t| t.bytes))
    }

    async fn get_at_most(&self, key: &BlobKey, limit: u64) -> PortResult<Option<Bounded>> {
        let Some(mut out) = self.get_object(key).await? else {
            return Ok(None);
        };
        // The size from the answer's Content-Length first: a larger object's body is never
        // read (dropping the stream closes the connection).
        let size = out.content_length.and_then(|n| u64::try_from(n).ok());
        if size.is_some_and(|n| n > limit) {
            return Ok(Some(Bounded::TooLarge { size }));
        }
        let mut bytes = Vec::with_capacity(size.and_then(|n| usize::try_from(n).ok()).unwrap_or(0));
        while let Some(chunk) =
            out.body.try_next().await.map_err(|e| {
                PortError::Unavailable(format!("s3 GetObject {key}: reading body: {e}"))
            })?
        {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Ok(Some(Bounded::TooLarge { size }));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(Bounded::Bytes(bytes)))
    }

    async fn get_tagged(&self, key: &BlobKey) -> PortResult<Option<Tagged>> {
        let Some(out) = self.get_object(key).await? else {
            return Ok(None);
        };
        let etag = out.e_tag.clone().ok_or_else(|| {
            PortError::Unavailable(format!("s3 GetObject {key}: the answer has no ETag"))
        })?;
        let bytes = out.body.collect().await.map_err(|e| {
            PortError::Unavailable(format!("s3 GetObject {key}: reading body: {e}"))
        })?;
        Ok(Some(Tagged {
            bytes: bytes.into_bytes().to_vec(),
            etag,
        }))
    }

    async fn list(&self, prefix: &str) -> PortResult<Vec<BlobMeta>> {
        let mut out = Vec::new();
        for (k, size) in self.list_keys(prefix).await? {
            let key =
                BlobKey::new(&k).map_err(|e| PortError::Invalid(format!("s3 key {k:?}: {e}")))?;
            out.push(BlobMeta { key, size });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}
