//! The one SQLite database every local adapter shares: opening it in WAL mode, the schema
//! and its migrations, the connection lock, and the translation of driver errors into
//! [`PortError`]s.
//!
//! One `rusqlite::Connection` behind a `std::sync::Mutex` serves all adapters. Adapter
//! methods run their (short) SQL directly on the async worker thread: with WAL and
//! `synchronous=NORMAL` a write transaction is tens of microseconds, cheaper than a hop to
//! the blocking pool. `busy_timeout` only matters when another process holds the file.

use crate::LocalError;
use rusqlite::{Connection, ErrorCode};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use vaia_core::ports::{PortError, PortResult};

/// The schema version this build writes, kept in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// Migrations: entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE runs (
    id          TEXT PRIMARY KEY NOT NULL,
    repository  TEXT NOT NULL,
    commit_sha  TEXT NOT NULL,
    state       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,   -- ns since the epoch
    deadline    INTEGER NOT NULL,   -- ns since the epoch
    json        TEXT NOT NULL       -- the whole Run
) WITHOUT ROWID;
CREATE INDEX runs_newest ON runs (created_at, id);
CREATE INDEX runs_state_deadline ON runs (state, deadline);

CREATE TABLE run_events (
    run_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    json    TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE idempotency (
    key         TEXT PRIMARY KEY NOT NULL,
    completed   INTEGER NOT NULL,   -- 0 in progress, 1 completed
    expires_at  INTEGER NOT NULL,   -- in-progress claims expire (ns since the epoch)
    result      TEXT,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE messages (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue          TEXT NOT NULL,
    grp            TEXT,
    body           TEXT NOT NULL,
    sent_at        INTEGER NOT NULL,
    visible_at     INTEGER NOT NULL,
    receive_count  INTEGER NOT NULL DEFAULT 0,
    -- Bumped by every delivery and every move between queues, never reset. A receipt is
    -- "<seq>.<deliveries>" and is current only while `deliveries` still has that value.
    deliveries     INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT
);
CREATE INDEX messages_ready ON messages (queue, visible_at, seq);
CREATE INDEX messages_group ON messages (queue, grp, seq) WHERE grp IS NOT NULL;

CREATE TABLE dedupe (
    queue       TEXT NOT NULL,
    key         TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;
CREATE INDEX dedupe_expiry ON dedupe (expires_at);
"#];

/// The shared database handle.
pub struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

impl Db {
    /// Opens (creating if needed) the database at `path` in WAL mode and migrates it.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, LocalError> {
        let sql = |source| LocalError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(busy_timeout).map_err(sql)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(LocalError::NotWal {
                path: path.to_path_buf(),
                mode,
            });
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        // Checkpoint every 32 MiB of WAL rather than 4 MiB: hot pages (queue indexes) are
        // rewritten by every transaction, and each checkpoint copies them once.
        conn.pragma_update(None, "wal_autocheckpoint", 8192)
            .map_err(sql)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(sql)?;
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&mut conn, path)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version stored in the file.
    pub fn schema_version(&self) -> Result<i64, PortError> {
        self.call(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))
    }

    /// Runs `f` with the connection locked, outside a transaction (each statement is
    /// atomic on its own). Keep `f` to a few statements.
    pub(crate) fn call<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Fail>) -> PortResult<T> {
        f(&self.lock()).map_err(PortError::from)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed if `f` returns `Ok` and
    /// rolled back otherwise. `BEGIN`/`COMMIT` are cached statements, not re-parsed.
    pub(crate) fn transaction<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, Fail>,
    ) -> PortResult<T> {
        let conn = self.lock();
        let result = (|| -> Result<T, Fail> {
            conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            let value = f(&conn)?;
            conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(value)
        })();
        rollback_if_open(&conn);
        result.map_err(PortError::from)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // A panic inside `transaction` may have left its transaction open.
        rollback_if_open(&conn);
        conn
    }
}

fn rollback_if_open(conn: &Connection) {
    if !conn.is_autocommit() {
        // If even the rollback fails, the next `lock` tries again.
        let _ = conn
            .prepare_cached("ROLLBACK")
            .and_then(|mut stmt| stmt.execute([]));
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), LocalError> {
    let sql = |source| LocalError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .map_err(sql)?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql)?;
    if found > SCHEMA_VERSION {
        return Err(LocalError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (from, migration) in MIGRATIONS.iter().enumerate() {
        if i64::try_from(from).unwrap_or(i64::MAX) >= found {
            tx.execute_batch(migration).map_err(sql)?;
        }
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sql)?;
    tx.commit().map_err(sql)
}

/// What can go wrong inside a [`Db::with`] closure.
#[derive(Debug)]
pub(crate) enum Fail {
    Sql(rusqlite::Error),
    Port(PortError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<PortError> for Fail {
    fn from(e: PortError) -> Self {
        Fail::Port(e)
    }
}

impl From<serde_json::Error> for Fail {
    fn from(e: serde_json::Error) -> Self {
        Fail::Port(PortError::Invalid(format!("stored JSON: {e}")))
    }
}

impl From<Fail> for PortError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Port(e) => e,
            Fail::Sql(e) => sql_error(e),
        }
    }
}

/// Busy or locked (and I/O) failures may pass; decoding and constraint failures will not.
pub(crate) fn sql_error(e: rusqlite::Error) -> PortError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            PortError::Unavailable(format!("sqlite busy: {e}"))
        }
        Some(
            ErrorCode::ConstraintViolation
            | ErrorCode::TypeMismatch
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::NotADatabase
            | ErrorCode::TooBig
            | ErrorCode::ApiMisuse
            | ErrorCode::ParameterOutOfRange,
        ) => PortError::Invalid(format!("sqlite: {e}")),
        Some(_) => PortError::Unavailable(format!("sqlite: {e}")),
        // No SQLite code: a column that does not decode, or a misused statement.
        None => PortError::Invalid(format!("sqlite: {e}")),
    }
}

/// A timestamp as nanoseconds since the epoch, saturating outside 1677..2262.
pub(crate) use vaia_core::run::nanos;

pub(crate) fn duration_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

pub(crate) fn to_i64(what: &str, n: u64) -> Result<i64, Fail> {
    i64::try_from(n).map_err(|_| Fail::Port(PortError::Invalid(format!("{what} {n} is too large"))))
}

pub(crate) fn to_u64(what: &str, n: i64) -> Result<u64, Fail> {
    u64::try_from(n)
        .map_err(|_| Fail::Port(PortError::Invalid(format!("stored {what} {n} is negative"))))
}
