//! The local adapters: every vaia port on one machine, with no AWS account. Runs,
//! idempotency records and queues live in one SQLite database (`<data_dir>/vaia.db`, WAL);
//! blobs are files under `<data_dir>/blobs/` whose writes notify the
//! [`BLOB_EVENTS`](vaia_core::messages::queues::BLOB_EVENTS) queue; the [`router`] delivers
//! queue messages to handlers with SQS's at-least-once semantics.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use vaia_local::{LocalOptions, LocalStore};
//! let store = LocalStore::open(std::path::Path::new(".vaia"), LocalOptions::default())?;
//! let runs = store.runs.clone(); // Arc<SqliteRunStore>: a vaia_core::ports::RunStore
//! # Ok(()) }
//! ```

pub mod blobs;
pub mod db;
pub mod idempotency;
pub mod queue;
pub mod router;
pub mod runs;

pub use blobs::FsBlobStore;
pub use db::Db;
pub use idempotency::SqliteIdempotency;
pub use queue::{DeadLetter, QueueOptions, SqliteQueue};
pub use router::{Drained, RouteOptions, Router};
pub use runs::SqliteRunStore;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vaia_core::messages::queues;
use vaia_core::ports::{Clock, Queue, SystemClock};

/// The database file inside the data directory.
pub const DB_FILE: &str = "vaia.db";
/// The blob directory inside the data directory.
pub const BLOB_DIR: &str = "blobs";

/// Why the local store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot create {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "database {} has schema version {found}, newer than this vaia supports ({supported}); \
         upgrade vaia or use another data directory",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database {} could not be put in WAL mode (journal_mode is {mode})", path.display())]
    NotWal { path: PathBuf, mode: String },
    #[error(
        "database {} is empty, but {} holds blobs of an earlier store: the runs that go with \
         them are gone. Restore the database, or start with another data directory",
        db.display(),
        blobs.display()
    )]
    EmptyDatabaseBesideBlobs { db: PathBuf, blobs: PathBuf },
}

/// How the local store behaves; the defaults suit `vaia up`.
#[derive(Clone)]
pub struct LocalOptions {
    /// The queue's clock (visibility timeouts, dedupe windows); tests pass a manual clock.
    pub clock: Arc<dyn Clock>,
    pub queue: QueueOptions,
    /// How long a statement waits for another process's lock before `Unavailable`.
    pub busy_timeout: Duration,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            queue: QueueOptions::default(),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for LocalOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalOptions")
            .field("queue", &self.queue)
            .field("busy_timeout", &self.busy_timeout)
            .finish_non_exhaustive()
    }
}

/// Every local adapter, wired together over one data directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    pub data_dir: PathBuf,
    pub db: Arc<Db>,
    pub runs: Arc<SqliteRunStore>,
    pub idempotency: Arc<SqliteIdempotency>,
    pub queue: Arc<SqliteQueue>,
    /// Notifies [`queues::BLOB_EVENTS`] on every put.
    pub blobs: Arc<FsBlobStore>,
}

/// A database file truncated to nothing (a failed copy, a disk that filled) would open as
/// a new, empty store and silently orphan every blob beside it: refuse that. A missing
/// database is a new store; an empty one with no blobs (a fresh directory) is too.
fn refuse_empty_database_beside_blobs(db: &Path, blobs: &Path) -> Result<(), LocalError> {
    let empty_db = std::fs::metadata(db).is_ok_and(|m| m.is_file() && m.len() == 0);
    if !empty_db {
        return Ok(());
    }
    let has_blobs = std::fs::read_dir(blobs).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| e.file_name() != std::ffi::OsStr::new(blobs::TMP_DIR)))
    });
    if has_blobs {
        return Err(LocalError::EmptyDatabaseBesideBlobs {
            db: db.to_path_buf(),
            blobs: blobs.to_path_buf(),
        });
    }
    Ok(())
}

impl LocalStore {
    /// Creates `data_dir` if needed, opens (and migrates) `vaia.db` and the blob directory.
    pub fn open(data_dir: &Path, opts: LocalOptions) -> Result<Self, LocalError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LocalError::Io { path, source }
        };
        std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
        let db_path = data_dir.join(DB_FILE);
        let blob_dir = data_dir.join(BLOB_DIR);
        refuse_empty_database_beside_blobs(&db_path, &blob_dir)?;
        let db = Arc::new(Db::open(&db_path, opts.busy_timeout)?);
        let queue = Arc::new(SqliteQueue::new(db.clone(), opts.clock, opts.queue));
        let notify: Arc<dyn Queue> = queue.clone();
        let blobs = FsBlobStore::open(&blob_dir, Some((notify, queues::BLOB_EVENTS.into())))
            .map_err(io(&blob_dir))?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            runs: Arc::new(SqliteRunStore::new(db.clone())),
            idempotency: Arc::new(SqliteIdempotency::new(db.clone())),
            queue,
            blobs: Arc::new(blobs),
            db,
        })
    }

    /// A router over this store's queue, woken by its send signals.
    pub fn router(&self) -> Router {
        Router::sqlite(self.queue.clone())
    }
}
