//! The SQS [`Queue`]: logical queue names (`advance`, `gate-schema`, ...) resolve to queue
//! URLs, by explicit override or by `GetQueueUrl` on `<prefix><name>[.fifo]`, cached per
//! container.
//!
//! FIFO where per-run order matters: every queue is FIFO unless it is named in
//! [`QueueNames::standard`] (S3 can notify only standard queues, so `blob-events` and
//! `raw-data` are).
//! On a FIFO queue the message group is the run id when the sender gives one (otherwise the
//! dedupe key, otherwise a fresh id: no ordering), and the deduplication id is the dedupe
//! key (hashed when SQS would refuse it) or a fresh id, so distinct messages are never
//! merged by content.
//!
//! Failures: a retryable failure leaves the message to come back after its visibility
//! timeout, as Lambda does; a permanent one, or a retryable one on its last allowed
//! receive, is sent to the dead-letter queue with the reason in the `vaia-reason` message
//! attribute and then deleted. Messages nobody deletes reach the dead-letter queue through
//! the queue's redrive policy. Stale receipts (the message was delivered again since) are
//! recognised from this process's own deliveries and change nothing.

use crate::error::map_sdk;
use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use vaia_core::messages::queues;
use vaia_core::ports::{
    OutgoingMessage, PortError, PortResult, Queue, QueueDepth, ReceivedMessage,
};

/// The message attribute that carries a dead letter's reason.
pub const REASON_ATTRIBUTE: &str = "vaia-reason";
/// The attribute naming the queue a dead letter came from.
pub const SOURCE_ATTRIBUTE: &str = "vaia-source-queue";
/// The attribute naming the message id a dead letter had on its source queue.
pub const SOURCE_ID_ATTRIBUTE: &str = "vaia-source-message-id";
/// SQS caps message attribute values at 256 KiB with the body; reasons are kept short.
const MAX_REASON: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How logical queue names become SQS queues.
#[derive(Debug, Clone, Default)]
pub struct QueueNames {
    /// Prepended to every logical name (e.g. the stack name and a dash).
    pub prefix: String,
    /// Logical names of standard (not FIFO) queues.
    pub standard: BTreeSet<String>,
    /// Logical name → queue URL, taking precedence over the prefix. The dead-letter queue
    /// of `x` is looked up as `x-dlq`.
    pub urls: HashMap<String, String>,
}

impl QueueNames {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            // S3 notifies standard queues only (a FIFO destination is refused by S3, and
            // moto drops what it would send there): the queues of S3 notifications.
            standard: [queues::BLOB_EVENTS, queues::RAW_DATA]
                .into_iter()
                .map(str::to_string)
                .collect(),
            urls: HashMap::new(),
        }
    }

    /// True when `logical` (or the queue whose dead-letter queue it is) is FIFO.
    pub fn is_fifo(&self, logical: &str) -> bool {
        let base = logical.strip_suffix("-dlq").unwrap_or(logical);
        !self.standard.contains(base)
    }

    /// The SQS queue name of `logical`.
    pub fn physical(&self, logical: &str) -> String {
        let suffix = if self.is_fifo(logical) { ".fifo" } else { "" };
        format!("{}{logical}{suffix}", self.prefix)
    }

    /// Reads `VAIA_QUEUE_PREFIX` and every `VAIA_QUEUE_URL_<NAME>` (upper snake case of the
    /// logical name: `VAIA_QUEUE_URL_GATE_SCHEMA_DLQ` for `gate-schema-dlq`).
    pub fn from_env() -> Self {
        let mut names = Self::new(std::env::var("VAIA_QUEUE_PREFIX").unwrap_or_default());
        for (k, v) in std::env::vars() {
            if let Some(name) = k.strip_prefix("VAIA_QUEUE_URL_") {
                names
                    .urls
                    .insert(name.to_ascii_lowercase().replace('_', "-"), v);
            }
        }
        names
    }
}

/// What this process knows of a message it received.
#[derive(Debug, Clone)]
struct Delivery {
    message_id: String,
    body: String,
    group: Option<String>,
    receive_count: u32,
}

/// The SQS adapter.
pub struct SqsQueue {
    client: Client,
    names: QueueNames,
    max_receives: u32,
    /// Create missing queues (and their dead-letter queues) on first use: for tests and
    /// local servers only; on AWS the template creates them.
    auto_create: bool,
    urls: Mutex<HashMap<String, String>>,
    deliveries: Mutex<HashMap<String, Delivery>>,
    latest: Mutex<HashMap<String, String>>,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A fresh identifier, unique across processes and calls.
pub fn unique_id() -> String {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let mut h = Sha256::new();
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(UNIQUE.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

/// A group or deduplication id SQS accepts: `key` itself when it is at most 128
/// printable ASCII characters, else its SHA-256.
pub fn fifo_token(key: &str) -> String {
    if !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic()) {
        key.to_string()
    } else {
        hex::encode(Sha256::digest(key.as_bytes()))
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn string_attribute(v: &str) -> PortResult<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| PortError::Invalid(format!("sqs attribute: {e}")))
}

impl SqsQueue {
    pub fn new(client: Client, names: QueueNames, max_receives: u32) -> Self {
        Self {
            client,
            names,
            max_receives: max_receives.max(1),
            auto_create: false,
            urls: Mutex::default(),
            deliveries: Mutex::default(),
            latest: Mutex::default(),
        }
    }

    /// Creates queues on first use (tests and local AWS-compatible servers).
    pub fn with_auto_create(mut self) -> Self {
        self.auto_create = true;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn names(&self) -> &QueueNames {
        &self.names
    }

    pub fn max_receives(&self) -> u32 {
        self.max_receives
    }

    /// The URL of logical queue `name`.
    pub async fn url(&self, name: &str) -> PortResult<String> {
        if let Some(u) = lock(&self.urls).get(name) {
            return Ok(u.clone());
        }
        let url = match self.names.urls.get(name) {
            Some(u) => u.clone(),
            None => self.lookup(name).await?,
        };
        lock(&self.urls).insert(name.to_string(), url.clone());
        Ok(url)
    }

    async fn lookup(&self, name: &str) -> PortResult<String> {
        let physical = self.names.physical(name);
        let r = self
            .client
            .get_queue_url()
            .queue_name(&physical)
            .send()
            .await;
        match r {
            Ok(out) => out
                .queue_url()
                .map(str::to_string)
                .ok_or_else(|| PortError::Invalid(format!("sqs: no URL for {physical}"))),
            Err(e)
                if self.auto_create
                    && e.as_service_error()
                        .is_some_and(|x| x.is_queue_does_not_exist()) =>
            {
                self.create(name).await
            }
            Err(e) => Err(map_sdk(&format!("sqs GetQueueUrl {physical}"), e)),
        }
    }

    /// Creates logical queue `name` with its dead-letter queue and redrive policy.
    pub async fn create(&self, name: &str) -> PortResult<String> {
        let fifo = self.names.is_fifo(name);
        let mut attrs: HashMap<QueueAttributeName, String> = HashMap::new();
        if fifo {
            attrs.insert(QueueAttributeName::FifoQueue, "true".into());
        }
        if !name.ends_with("-dlq") {
            let dlq = queues::dead_letter(name);
            let dlq_url = Box::pin(self.url(&dlq)).await?;
            let arn = self.arn(&dlq_url).await?;
            attrs.insert(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({
                    "deadLetterTargetArn": arn,
                    "maxReceiveCount": self.max_receives,
                })
                .to_string(),
            );
        }
        let physical = self.names.physical(name);
        let out = self
            .client
            .create_queue()
            .queue_name(&physical)
            .set_attributes(Some(attrs))
            .send()
            .await
            .map_err(|e| map_sdk(&format!("sqs CreateQueue {physical}"), e))?;
        out.queue_url()
            .map(str::to_string)
            .ok_or_else(|| PortError::Invalid(format!("sqs: CreateQueue {physical} gave no URL")))
    }

    /// The ARN of the queue at `url`.
    pub async fn arn(&self, url: &str) -> PortResult<String> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| map_sdk("sqs GetQueueAttributes QueueArn", e))?;
        out.attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| PortError::Invalid(format!("sqs: no ARN for {url}")))
    }

    /// Sends `body` to the dead-letter queue of `queue` with `reason`. Used by [`Queue::fail`]
    /// and by the Lambda batch adapter, which has the message from the event.
    pub async fn dead_letter(
        &self,
        queue: &str,
        message_id: &str,
        body: &str,
        group: Option<&str>,
        reason: &str,
    ) -> PortResult<()> {
        let dlq = queues::dead_letter(queue);
        let url = self.url(&dlq).await?;
        let mut req = self
            .client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_attributes(
                REASON_ATTRIBUTE,
                string_attribute(truncate(reason, MAX_REASON))?,
            )
            .message_attributes(SOURCE_ATTRIBUTE, string_attribute(queue)?)
            .message_attributes(SOURCE_ID_ATTRIBUTE, string_attribute(message_id)?);
        if self.names.is_fifo(&dlq) {
            req = req
                .message_group_id(fifo_token(group.unwrap_or(message_id)))
                .message_deduplication_id(fifo_token(message_id));
        }
        req.send()
            .await
            .map_err(|e| map_sdk(&format!("sqs SendMessage {dlq}"), e))?;
        tracing::warn!(queue, message_id, reason, "dead-lettered");
        Ok(())
    }

    /// Bodies and reasons of the dead letters of `queue`, oldest first (reads them with a
    /// zero visibility timeout, so they stay where they are). For tests and operators.
    pub async fn dead_letters(&self, queue: &str) -> PortResult<Vec<(String, Option<String>)>> {
        let url = self.url(&queues::dead_letter(queue)).await?;
        let mut seen: HashMap<String, (i64, String, Option<String>)> = HashMap::new();
        for _ in 0..10 {
            let out = self
                .client
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| map_sdk("sqs ReceiveMessage dlq", e))?;
            let before = seen.len();
            for m in out.messages() {
                let sent = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get(REASON_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .map(str::to_string);
                seen.insert(
                    m.message_id().unwrap_or_default().to_string(),
                    (sent, m.body().unwrap_or_default().to_string(), reason),
                );
            }
            if seen.len() == before {
                break;
            }
        }
        let mut out: Vec<_> = seen.into_values().collect();
        out.sort_by_key(|(sent, _, _)| *sent);
        Ok(out.into_iter().map(|(_, b, r)| (b, r)).collect())
    }

    async fn counts(&self, url: &str) -> PortResult<(u64, u64)> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| map_sdk("sqs GetQueueAttributes", e))?;
        let get = |k: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&k))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    fn delivery(&self, receipt: &str) -> Option<(Delivery, bool)> {
        let d = lock(&self.deliveries).get(receipt).cloned()?;
        let current = lock(&self.latest).get(&d.message_id).map(String::as_str) == Some(receipt);
        Some((d, current))
    }

    fn forget(&self, receipt: &str) {
        if let Some(d) = lock(&self.deliveries).remove(receipt) {
            let mut latest = lock(&self.latest);
            if latest.get(&d.message_id).map(String::as_str) == Some(receipt) {
                latest.remove(&d.message_id);
            }
        }
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue: &str, message: OutgoingMessage) -> PortResult<String> {
        let url = self.url(queue).await?;
        let mut req = self
            .client
            .send_message()
            .queue_url(url)
            .message_body(message.body);
        if self.names.is_fifo(queue) {
            let group = message
                .group
                .as_deref()
                .or(message.dedupe_key.as_deref())
                .map_or_else(unique_id, fifo_token);
            let dedupe = message
                .dedupe_key
                .as_deref()
                .map_or_else(unique_id, fifo_token);
            req = req.message_group_id(group).message_deduplication_id(dedupe);
        }
        let out = req
            .send()
            .await
            .map_err(|e| map_sdk(&format!("sqs SendMessage {queue}"), e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> PortResult<Vec<ReceivedMessage>> {
        if max == 0 {
            return Ok(vec![]);
        }
        let url = self.url(queue).await?;
        let secs = visibility.as_secs() + u64::from(visibility.subsec_nanos() > 0);
        // SQS FIFO may hand out several messages of one group in a batch; the port delivers
        // a group one message at a time, so FIFO queues are received one message per call
        // (each call locks the group it returns), up to `max`.
        let fifo = self.names.is_fifo(queue);
        let per_call = if fifo { 1 } else { max.min(10) };
        let mut messages = Vec::new();
        while messages.len() < max.min(10) {
            let out = self
                .client
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(i32::try_from(per_call).unwrap_or(10))
                .visibility_timeout(i32::try_from(secs).unwrap_or(i32::MAX))
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .send()
                .await
                .map_err(|e| map_sdk(&format!("sqs ReceiveMessage {queue}"), e))?;
            let batch = out.messages.unwrap_or_default();
            let done = batch.is_empty() || !fifo;
            messages.extend(batch);
            if done {
                break;
            }
        }
        let mut got = Vec::new();
        for m in &messages {
            let (Some(id), Some(receipt)) = (m.message_id(), m.receipt_handle()) else {
                continue;
            };
            let attr =
                |k: MessageSystemAttributeName| m.attributes().and_then(|a| a.get(&k)).cloned();
            let receive_count = attr(MessageSystemAttributeName::ApproximateReceiveCount)
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let d = Delivery {
                message_id: id.to_string(),
                body: m.body().unwrap_or_default().to_string(),
                group: attr(MessageSystemAttributeName::MessageGroupId),
                receive_count,
            };
            lock(&self.deliveries).insert(receipt.to_string(), d.clone());
            lock(&self.latest).insert(id.to_string(), receipt.to_string());
            got.push(ReceivedMessage {
                id: d.message_id,
                receipt: receipt.to_string(),
                body: d.body,
                receive_count,
            });
        }
        Ok(got)
    }

    async fn delete(&self, queue: &str, receipt: &str) -> PortResult<()> {
        if let Some((_, false)) = self.delivery(receipt) {
            // Stale: the message was delivered again since; the new delivery owns it.
            return Ok(());
        }
        let url = self.url(queue).await?;
        let r = self
            .client
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await;
        self.forget(receipt);
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_receipt_handle_is_invalid()) =>
            {
                Ok(())
            }
            Err(e) => Err(map_sdk(&format!("sqs DeleteMessage {queue}"), e)),
        }
    }

    async fn fail(
        &self,
        queue: &str,
        receipt: &str,
        reason: &str,
        retryable: bool,
    ) -> PortResult<()> {
        let Some((d, current)) = self.delivery(receipt) else {
            // Not a delivery of this process (or already settled): the visibility timeout
            // brings the message back if it is still there, and the redrive policy
            // dead-letters it after the maximum receives. Nothing is lost.
            tracing::warn!(
                queue,
                reason,
                retryable,
                "fail with an unknown receipt: left to SQS"
            );
            return Ok(());
        };
        if !current {
            return Ok(());
        }
        if retryable && d.receive_count < self.max_receives {
            tracing::info!(queue, message_id = %d.message_id, reason, "will be retried");
            return Ok(());
        }
        self.dead_letter(queue, &d.message_id, &d.body, d.group.as_deref(), reason)
            .await?;
        self.delete(queue, receipt).await
    }

    async fn depth(&self, queue: &str) -> PortResult<QueueDepth> {
        let (visible, in_flight) = self.counts(&self.url(queue).await?).await?;
        let (dv, di) = self
            .counts(&self.url(&queues::dead_letter(queue)).await?)
            .await?;
        Ok(QueueDepth {
            visible,
            in_flight,
            dead: dv + di,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = QueueNames::new("vaia-");
        assert_eq!(n.physical("advance"), "vaia-advance.fifo");
        assert_eq!(n.physical("advance-dlq"), "vaia-advance-dlq.fifo");
        assert_eq!(n.physical("blob-events"), "vaia-blob-events");
        assert_eq!(n.physical("blob-events-dlq"), "vaia-blob-events-dlq");
        // The data bucket notifies raw-data: standard, as the template declares it.
        assert_eq!(n.physical("raw-data"), "vaia-raw-data");
        assert_eq!(n.physical("raw-data-dlq"), "vaia-raw-data-dlq");
    }

    #[test]
    fn fifo_tokens() {
        assert_eq!(fifo_token("run-1:gate:schema:ci"), "run-1:gate:schema:ci");
        assert_eq!(fifo_token("has space").len(), 64);
        assert_eq!(fifo_token(&"x".repeat(200)).len(), 64);
        assert_ne!(unique_id(), unique_id());
    }
}
