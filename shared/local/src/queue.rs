//! [`Queue`] on SQLite with SQS (FIFO) semantics: at-least-once delivery, a visibility
//! timeout per receive, receive counts, receipts that change on every delivery (so a stale
//! receipt's `delete`/`fail` is a no-op), a deduplication window per key, FIFO message
//! groups (one message of a group in flight at a time, in order), and a dead-letter queue
//! `<queue>-dlq` that keeps the reason. Each queue has a [`Notify`] that `send` signals,
//! so a consumer wakes as soon as there is work instead of on a polling interval.
//!
//! Order: within a group, strictly by send order; otherwise by the time a message became
//! visible (a retried message goes behind fresh ones), like SQS standard queues.
//!
//! A receipt is `<seq>.<delivery>`: the message's row and the delivery number it was
//! issued for. Every delivery and every move between queues bumps the row's delivery
//! number, so only the latest receipt matches, with no receipt index to maintain.
//!
//! A dead-lettered message stays in the `messages` table under the dead-letter queue's
//! name with its reason in `last_error`; [`SqliteQueue::dead_letters`] lists them and
//! [`SqliteQueue::redrive`] moves them back.

use crate::db::{duration_nanos, nanos, to_u64, Db, Fail};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use vaia_core::messages::queues;
use vaia_core::ports::{Clock, OutgoingMessage, PortResult, Queue, QueueDepth, ReceivedMessage};
use vaia_core::run::Timestamp;

/// Tunables of every queue; `max_receives` can be overridden per queue.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// Deliveries before a message moves to the dead-letter queue (SQS `maxReceiveCount`).
    pub max_receives: u32,
    /// Delay before a message failed with `retryable = true` is visible again, doubled on
    /// each receive, capped by `max_retry_backoff` and by the delivery's visibility timeout.
    pub retry_backoff: Duration,
    pub max_retry_backoff: Duration,
    /// Messages sent with the same dedupe key within this window are one message.
    pub dedupe_window: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            max_receives: 5,
            retry_backoff: Duration::from_millis(100),
            max_retry_backoff: Duration::from_secs(5),
            dedupe_window: Duration::from_secs(300),
        }
    }
}

/// A message in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: String,
    pub body: String,
    pub group: Option<String>,
    /// Why it was dead-lettered, with the handler's last error.
    pub reason: Option<String>,
    pub sent_at: Timestamp,
}

/// How often `send` prunes expired dedupe keys.
const PRUNE_EVERY: u64 = 256;

pub struct SqliteQueue {
    db: Arc<Db>,
    clock: Arc<dyn Clock>,
    opts: QueueOptions,
    max_receives: Mutex<HashMap<String, u32>>,
    signals: Mutex<HashMap<String, Arc<Notify>>>,
    sends: AtomicU64,
}

impl std::fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteQueue")
            .field("db", &self.db)
            .field("opts", &self.opts)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn message_id(seq: i64) -> String {
    format!("m-{seq}")
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

struct Candidate {
    seq: i64,
    body: String,
    receive_count: u32,
    deliveries: i64,
    last_error: Option<String>,
}

/// The (row, delivery) a receipt names; `None` for anything we never issued.
fn parse_receipt(receipt: &str) -> Option<(i64, i64)> {
    let (seq, delivery) = receipt.split_once('.')?;
    let delivery: i64 = delivery.parse().ok()?;
    (delivery >= 1).then_some((seq.parse().ok()?, delivery))
}

/// Moves message `seq` to `dlq` with `reason`, invalidating its receipt.
fn dead_letter(tx: &Connection, seq: i64, dlq: &str, now: i64, reason: &str) -> Result<(), Fail> {
    tx.prepare_cached(
        "UPDATE messages SET queue = ?2, receive_count = 0, visible_at = ?3, \
         deliveries = deliveries + 1, last_error = ?4 WHERE seq = ?1",
    )?
    .execute(params![seq, dlq, now, reason])?;
    Ok(())
}

impl SqliteQueue {
    pub fn new(db: Arc<Db>, clock: Arc<dyn Clock>, opts: QueueOptions) -> Self {
        Self {
            db,
            clock,
            opts,
            max_receives: Mutex::default(),
            signals: Mutex::default(),
            sends: AtomicU64::new(0),
        }
    }

    /// Overrides the maximum receives of `queue` (at least 1).
    pub fn set_max_receives(&self, queue: &str, max: u32) {
        lock(&self.max_receives).insert(queue.to_string(), max.max(1));
    }

    pub fn max_receives(&self, queue: &str) -> u32 {
        lock(&self.max_receives)
            .get(queue)
            .copied()
            .unwrap_or(self.opts.max_receives)
            .max(1)
    }

    /// Signalled (`notify_one`) whenever a message may have become receivable on `queue`:
    /// a send, a delete that unblocks a FIFO group, the end of a retry backoff, a redrive.
    pub fn signal(&self, queue: &str) -> Arc<Notify> {
        lock(&self.signals)
            .entry(queue.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    fn wake(&self, queue: &str) {
        self.signal(queue).notify_one();
    }

    /// Wakes `queue` after `delay`, if there is a Tokio runtime to keep the timer.
    fn wake_after(&self, queue: &str, delay: Duration) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let signal = self.signal(queue);
            rt.spawn(async move {
                tokio::time::sleep(delay).await;
                signal.notify_one();
            });
        }
    }

    fn backoff(&self, receive_count: u32) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(20);
        self.opts
            .retry_backoff
            .saturating_mul(1 << doublings)
            .min(self.opts.max_retry_backoff)
    }

    /// The dead-letter queue of `queue`, oldest first.
    pub async fn dead_letters(&self, queue: &str) -> PortResult<Vec<DeadLetter>> {
        let dlq = queues::dead_letter(queue);
        self.db.call(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, body, grp, last_error, sent_at FROM messages WHERE queue = ?1 \
                 ORDER BY seq",
            )?;
            let mut rows = stmt.query([&dlq])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(DeadLetter {
                    id: message_id(r.get(0)?),
                    body: r.get(1)?,
                    group: r.get(2)?,
                    reason: r.get(3)?,
                    sent_at: chrono::DateTime::from_timestamp_nanos(r.get(4)?),
                });
            }
            Ok(out)
        })
    }

    /// Makes every received-but-unfinished message visible now, as if its visibility
    /// timeout had ended; returns how many. For a process that owns the database and
    /// restarts after a crash: the deliveries it held died with it, and waiting out their
    /// timeouts would only delay recovery. Receive counts are kept, so a message that
    /// crashes its handler still reaches the dead-letter queue.
    pub async fn release_in_flight(&self) -> PortResult<u64> {
        let now = nanos(self.clock.now());
        let released = self.db.call(|c| {
            Ok(c.prepare_cached(
                "UPDATE messages SET visible_at = ?1, deliveries = deliveries + 1 \
                 WHERE visible_at > ?1 AND receive_count > 0 AND queue NOT LIKE '%-dlq'",
            )?
            .execute(params![now])?)
        })?;
        Ok(released as u64)
    }

    /// Moves every message of `queue`'s dead-letter queue back to `queue` for a fresh set
    /// of receives; returns how many moved.
    pub async fn redrive(&self, queue: &str) -> PortResult<u64> {
        let dlq = queues::dead_letter(queue);
        let now = nanos(self.clock.now());
        let moved = self.db.call(|c| {
            Ok(c.prepare_cached(
                "UPDATE messages SET queue = ?1, receive_count = 0, visible_at = ?3, \
                 deliveries = deliveries + 1 WHERE queue = ?2",
            )?
            .execute(params![queue, dlq, now])?)
        })?;
        if moved > 0 {
            self.wake(queue);
        }
        Ok(moved as u64)
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, queue: &str, message: OutgoingMessage) -> PortResult<String> {
        let now = nanos(self.clock.now());
        let dedupe_until = now.saturating_add(duration_nanos(self.opts.dedupe_window));
        let prune = self
            .sends
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY);
        let (id, new) = self.db.transaction(|tx| {
            if let Some(key) = &message.dedupe_key {
                let existing: Option<String> = tx
                    .prepare_cached(
                        "SELECT message_id FROM dedupe WHERE queue = ?1 AND key = ?2 \
                         AND expires_at > ?3",
                    )?
                    .query_row(params![queue, key, now], |r| r.get(0))
                    .optional()?;
                if let Some(id) = existing {
                    return Ok((id, false));
                }
            }
            tx.prepare_cached(
                "INSERT INTO messages (queue, grp, body, sent_at, visible_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![queue, message.group, message.body, now])?;
            let id = message_id(tx.last_insert_rowid());
            if let Some(key) = &message.dedupe_key {
                tx.prepare_cached(
                    "INSERT INTO dedupe (queue, key, message_id, expires_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (queue, key) DO UPDATE SET message_id = excluded.message_id, \
                     expires_at = excluded.expires_at",
                )?
                .execute(params![queue, key, id, dedupe_until])?;
            }
            if prune {
                tx.prepare_cached("DELETE FROM dedupe WHERE expires_at <= ?1")?
                    .execute([now])?;
            }
            Ok((id, true))
        })?;
        if new {
            self.wake(queue);
        }
        Ok(id)
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> PortResult<Vec<ReceivedMessage>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = nanos(self.clock.now());
        // At least 1 ns, so a message delivered now is not picked again by this receive.
        let until = now.saturating_add(duration_nanos(visibility).max(1));
        let max_receives = self.max_receives(queue);
        let dlq = queues::dead_letter(queue);
        let (out, dead) = self.db.transaction(|tx| {
            let mut out = Vec::new();
            let mut dead = Vec::new();
            loop {
                let candidates = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT seq, body, receive_count, deliveries, last_error FROM messages AS m \
                         WHERE m.queue = ?1 AND m.visible_at <= ?2 AND (m.grp IS NULL OR NOT EXISTS \
                         (SELECT 1 FROM messages AS o WHERE o.queue = ?1 AND o.grp = m.grp \
                         AND o.seq < m.seq)) ORDER BY m.visible_at, m.seq LIMIT ?3",
                    )?;
                    let mut rows =
                        stmt.query(params![queue, now, limit(max - out.len())])?;
                    let mut v = Vec::new();
                    while let Some(r) = rows.next()? {
                        v.push(Candidate {
                            seq: r.get(0)?,
                            body: r.get(1)?,
                            receive_count: r.get(2)?,
                            deliveries: r.get(3)?,
                            last_error: r.get(4)?,
                        });
                    }
                    v
                };
                let mut moved = false;
                for m in candidates {
                    if m.receive_count >= max_receives {
                        let last = m
                            .last_error
                            .unwrap_or_else(|| "visibility timeout expired".into());
                        let reason =
                            format!("exceeded {max_receives} receives; last error: {last}");
                        dead_letter(tx, m.seq, &dlq, now, &reason)?;
                        dead.push((message_id(m.seq), reason));
                        moved = true;
                        continue;
                    }
                    let deliveries = m.deliveries.saturating_add(1);
                    let receipt = format!("{}.{deliveries}", m.seq);
                    tx.prepare_cached(
                        "UPDATE messages SET receive_count = receive_count + 1, deliveries = ?2, \
                         visible_at = ?3 WHERE seq = ?1",
                    )?
                    .execute(params![m.seq, deliveries, until])?;
                    out.push(ReceivedMessage {
                        id: message_id(m.seq),
                        receipt,
                        body: m.body,
                        receive_count: m.receive_count.saturating_add(1),
                    });
                }
                if !moved || out.len() >= max {
                    break;
                }
            }
            Ok((out, dead))
        })?;
        for (id, reason) in dead {
            tracing::warn!(queue, message_id = %id, %reason, "message dead-lettered");
        }
        Ok(out)
    }

    async fn delete(&self, queue: &str, receipt: &str) -> PortResult<()> {
        let Some((seq, delivery)) = parse_receipt(receipt) else {
            return Ok(());
        };
        let group: Option<Option<String>> = self.db.call(|c| {
            Ok(c.prepare_cached(
                "DELETE FROM messages WHERE seq = ?1 AND queue = ?2 AND deliveries = ?3 \
                 RETURNING grp",
            )?
            .query_row(params![seq, queue, delivery], |r| r.get(0))
            .optional()?)
        })?;
        if matches!(group, Some(Some(_))) {
            // The next message of the group may be receivable now.
            self.wake(queue);
        }
        Ok(())
    }

    async fn fail(
        &self,
        queue: &str,
        receipt: &str,
        reason: &str,
        retryable: bool,
    ) -> PortResult<()> {
        let Some((seq, delivery)) = parse_receipt(receipt) else {
            return Ok(());
        };
        let now = nanos(self.clock.now());
        let max_receives = self.max_receives(queue);
        let dlq = queues::dead_letter(queue);
        let outcome = self.db.transaction(|tx| {
            let found: Option<u32> = tx
                .prepare_cached(
                    "SELECT receive_count FROM messages WHERE seq = ?1 AND queue = ?2 \
                     AND deliveries = ?3",
                )?
                .query_row(params![seq, queue, delivery], |r| r.get(0))
                .optional()?;
            let Some(receive_count) = found else {
                return Ok(None);
            };
            let outcome = if retryable && receive_count < max_receives {
                let delay = self.backoff(receive_count);
                // Never later than the delivery's own visibility timeout would have been.
                tx.prepare_cached(
                    "UPDATE messages SET visible_at = MAX(?2, MIN(visible_at, ?3)), \
                     last_error = ?4 WHERE seq = ?1",
                )?
                .execute(params![
                    seq,
                    now,
                    now.saturating_add(duration_nanos(delay)),
                    reason
                ])?;
                Err(delay)
            } else {
                let why = if retryable {
                    format!("exceeded {max_receives} receives; last error: {reason}")
                } else {
                    format!("not retryable: {reason}")
                };
                dead_letter(tx, seq, &dlq, now, &why)?;
                Ok(message_id(seq))
            };
            Ok(Some(outcome))
        })?;
        match outcome {
            Some(Ok(id)) => {
                tracing::warn!(queue, message_id = %id, reason, retryable, "message dead-lettered");
            }
            Some(Err(delay)) => self.wake_after(queue, delay),
            None => {}
        }
        Ok(())
    }

    async fn depth(&self, queue: &str) -> PortResult<QueueDepth> {
        let now = nanos(self.clock.now());
        let dlq = queues::dead_letter(queue);
        self.db.call(|c| {
            let (visible, in_flight, dead): (i64, i64, i64) = c
                .prepare_cached(
                    "SELECT \
                     COALESCE(SUM(queue = ?1 AND visible_at <= ?3), 0), \
                     COALESCE(SUM(queue = ?1 AND visible_at > ?3), 0), \
                     COALESCE(SUM(queue = ?2), 0) \
                     FROM messages WHERE queue IN (?1, ?2)",
                )?
                .query_row(params![queue, dlq, now], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            Ok(QueueDepth {
                visible: to_u64("depth", visible)?,
                in_flight: to_u64("depth", in_flight)?,
                dead: to_u64("depth", dead)?,
            })
        })
    }
}
