//! [`Idempotency`] on SQLite. A claim is one upsert that takes the key only if it is
//! absent or its in-progress claim has expired, inside an immediate transaction, so of any
//! number of concurrent claims (threads or processes) exactly one is `Claimed`.

use crate::db::{duration_nanos, nanos, Db, Fail};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use std::sync::Arc;
use std::time::Duration;
use vaia_core::ports::{Claim, Idempotency, PortResult};
use vaia_core::run::Timestamp;

#[derive(Debug, Clone)]
pub struct SqliteIdempotency {
    db: Arc<Db>,
}

impl SqliteIdempotency {
    pub fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    /// Drops every in-progress claim; completed records stay. Only for the store's owner
    /// at startup, under the data directory's lock: every in-progress claim then belongs
    /// to a process that died holding it, and a redelivery (GitHub's, a client's retry)
    /// should be processed now rather than answered "in progress" until the claim's TTL.
    pub async fn release_abandoned(&self) -> PortResult<usize> {
        self.db.call(|c| {
            Ok(
                c.prepare_cached("DELETE FROM idempotency WHERE completed = 0")?
                    .execute([])?,
            )
        })
    }
}

#[async_trait]
impl Idempotency for SqliteIdempotency {
    async fn claim(&self, key: &str, ttl: Duration, now: Timestamp) -> PortResult<Claim> {
        let now = nanos(now);
        let until = now.saturating_add(duration_nanos(ttl));
        self.db.transaction(|tx| {
            let taken = tx
                .prepare_cached(
                    "INSERT INTO idempotency (key, completed, expires_at, result, updated_at) \
                     VALUES (?1, 0, ?2, NULL, ?3) \
                     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, \
                     updated_at = excluded.updated_at \
                     WHERE completed = 0 AND expires_at <= ?3",
                )?
                .execute(params![key, until, now])?;
            let claim = if taken == 1 {
                Claim::Claimed
            } else {
                let row: Option<(bool, Option<String>)> = tx
                    .prepare_cached("SELECT completed, result FROM idempotency WHERE key = ?1")?
                    .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                match row {
                    Some((true, result)) => Claim::Completed(result.unwrap_or_default()),
                    _ => Claim::InProgress,
                }
            };
            Ok::<_, Fail>(claim)
        })
    }

    async fn complete(&self, key: &str, result: &str, now: Timestamp) -> PortResult<()> {
        self.db.call(|c| {
            c.prepare_cached(
                "INSERT INTO idempotency (key, completed, expires_at, result, updated_at) \
                 VALUES (?1, 1, ?2, ?3, ?4) \
                 ON CONFLICT (key) DO UPDATE SET completed = 1, expires_at = excluded.expires_at, \
                 result = excluded.result, updated_at = excluded.updated_at",
            )?
            .execute(params![key, i64::MAX, result, nanos(now)])?;
            Ok(())
        })
    }

    async fn release(&self, key: &str) -> PortResult<()> {
        self.db.call(|c| {
            c.prepare_cached("DELETE FROM idempotency WHERE key = ?1 AND completed = 0")?
                .execute([key])?;
            Ok(())
        })
    }
}
