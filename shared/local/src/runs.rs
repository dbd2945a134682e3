//! [`RunStore`] on SQLite: one row per run (indexed columns plus the whole `Run` as JSON)
//! and one row per event. A run's id, repository, commit and creation time never change,
//! so `save` rewrites only the state, version, deadline and JSON (fewer index writes). `save` is one transaction: a conditional `UPDATE` on the version
//! and the event inserts, so events are stored if and only if the run is.

use crate::db::{nanos, to_i64, to_u64, Db, Fail};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use vaia_core::ids::RunId;
use vaia_core::ports::{Created, PortError, PortResult, RunCursor, RunPage, RunStore};
use vaia_core::run::{Run, RunEvent, Timestamp};
use vaia_core::state::PipelineState;

#[derive(Debug, Clone)]
pub struct SqliteRunStore {
    db: Arc<Db>,
}

impl SqliteRunStore {
    pub fn new(db: Arc<Db>) -> Self {
        Self { db }
    }
}

/// The indexed columns of a run, derived from it on every write.
struct Row {
    version: i64,
    created_at: i64,
    deadline: i64,
    json: String,
}

impl Row {
    fn of(run: &Run) -> Result<Self, Fail> {
        Ok(Self {
            version: to_i64("run version", run.version)?,
            created_at: nanos(run.created_at),
            deadline: nanos(run.deadline()),
            json: serde_json::to_string(run)?,
        })
    }
}

fn decode_run(json: &str) -> Result<Run, Fail> {
    Ok(serde_json::from_str(json)?)
}

fn insert_events(tx: &Connection, id: &RunId, events: &[RunEvent]) -> Result<(), Fail> {
    if events.is_empty() {
        return Ok(());
    }
    let mut stmt =
        tx.prepare_cached("INSERT INTO run_events (run_id, seq, json) VALUES (?1, ?2, ?3)")?;
    for e in events {
        let seq = to_i64("event seq", e.seq)?;
        stmt.execute(params![id.as_str(), seq, serde_json::to_string(e)?])
            .map_err(|err| match err.sqlite_error_code() {
                Some(rusqlite::ErrorCode::ConstraintViolation) => Fail::Port(PortError::Invalid(
                    format!("run {id} already has an event {}", e.seq),
                )),
                _ => Fail::Sql(err),
            })?;
    }
    Ok(())
}

static OVERDUE_SQL: LazyLock<String> = LazyLock::new(|| {
    let states: Vec<String> = PipelineState::ALL
        .into_iter()
        .filter(|s| s.is_in_flight())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!(
        "SELECT json FROM runs WHERE state IN ({}) AND deadline <= ?1 \
         ORDER BY deadline, id LIMIT ?2",
        states.join(", ")
    )
});

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl RunStore for SqliteRunStore {
    async fn create(&self, run: &Run, events: &[RunEvent]) -> PortResult<Created> {
        let row = Row::of(run).map_err(PortError::from)?;
        self.db.transaction(|tx| {
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO runs (id, repository, commit_sha, state, version, created_at, \
                     deadline, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                     ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![
                    run.id.as_str(),
                    run.repository.as_str(),
                    run.commit.as_str(),
                    run.state.as_str(),
                    row.version,
                    row.created_at,
                    row.deadline,
                    row.json,
                ])?;
            if inserted == 0 {
                let json: String = tx
                    .prepare_cached("SELECT json FROM runs WHERE id = ?1")?
                    .query_row([run.id.as_str()], |r| r.get(0))?;
                return Ok(Created::Exists(Box::new(decode_run(&json)?)));
            }
            insert_events(tx, &run.id, events)?;
            Ok(Created::Created)
        })
    }

    async fn get(&self, id: &RunId) -> PortResult<Option<Run>> {
        self.db.call(|c| {
            let json: Option<String> = c
                .prepare_cached("SELECT json FROM runs WHERE id = ?1")?
                .query_row([id.as_str()], |r| r.get(0))
                .optional()?;
            json.map(|j| decode_run(&j)).transpose()
        })
    }

    async fn save(&self, run: &Run, expected_version: u64, events: &[RunEvent]) -> PortResult<()> {
        let row = Row::of(run).map_err(PortError::from)?;
        let expected = to_i64("expected version", expected_version).map_err(PortError::from)?;
        self.db.transaction(|tx| {
            let updated = tx
                .prepare_cached(
                    "UPDATE runs SET state = ?2, version = ?3, deadline = ?4, json = ?5 \
                     WHERE id = ?1 AND version = ?6",
                )?
                .execute(params![
                    run.id.as_str(),
                    run.state.as_str(),
                    row.version,
                    row.deadline,
                    row.json,
                    expected,
                ])?;
            if updated == 0 {
                let found: Option<i64> = tx
                    .prepare_cached("SELECT version FROM runs WHERE id = ?1")?
                    .query_row([run.id.as_str()], |r| r.get(0))
                    .optional()?;
                return Err(Fail::Port(PortError::Conflict {
                    what: format!("run {}", run.id),
                    expected: expected_version,
                    found: found.and_then(|v| u64::try_from(v).ok()),
                }));
            }
            insert_events(tx, &run.id, events)?;
            Ok(())
        })
    }

    async fn list(&self, limit_: usize, after: Option<&RunCursor>) -> PortResult<RunPage> {
        let after = after.map(|c| (nanos(c.created_at), c.id.clone()));
        let fetch = limit(limit_).saturating_add(1);
        let mut runs = self.db.call(|c| {
            let mut out = Vec::new();
            let mut push = |json: String| -> Result<(), Fail> {
                out.push(decode_run(&json)?);
                Ok(())
            };
            match &after {
                Some((at, id)) => {
                    let mut stmt = c.prepare_cached(
                        "SELECT json FROM runs WHERE (created_at, id) < (?1, ?2) \
                         ORDER BY created_at DESC, id DESC LIMIT ?3",
                    )?;
                    let mut rows = stmt.query(params![at, id.as_str(), fetch])?;
                    while let Some(r) = rows.next()? {
                        push(r.get(0)?)?;
                    }
                }
                None => {
                    let mut stmt = c.prepare_cached(
                        "SELECT json FROM runs ORDER BY created_at DESC, id DESC LIMIT ?1",
                    )?;
                    let mut rows = stmt.query([fetch])?;
                    while let Some(r) = rows.next()? {
                        push(r.get(0)?)?;
                    }
                }
            }
            Ok(out)
        })?;
        let next = if runs.len() > limit_ {
            runs.truncate(limit_);
            runs.last().map(RunCursor::after)
        } else {
            None
        };
        Ok(RunPage { runs, next })
    }

    async fn events(&self, id: &RunId) -> PortResult<Vec<RunEvent>> {
        self.db.call(|c| {
            let mut stmt =
                c.prepare_cached("SELECT json FROM run_events WHERE run_id = ?1 ORDER BY seq")?;
            let mut rows = stmt.query([id.as_str()])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let json: String = r.get(0)?;
                out.push(serde_json::from_str(&json)?);
            }
            Ok(out)
        })
    }

    async fn count_by_state(&self) -> PortResult<BTreeMap<PipelineState, u64>> {
        self.db.call(|c| {
            let mut stmt = c.prepare_cached("SELECT state, COUNT(*) FROM runs GROUP BY state")?;
            let mut rows = stmt.query([])?;
            let mut out = BTreeMap::new();
            while let Some(r) = rows.next()? {
                let state: String = r.get(0)?;
                let state: PipelineState = state
                    .parse()
                    .map_err(|e: String| Fail::Port(PortError::Invalid(e)))?;
                out.insert(state, to_u64("count", r.get(1)?)?);
            }
            Ok(out)
        })
    }

    async fn overdue(&self, now: Timestamp, limit_: usize) -> PortResult<Vec<Run>> {
        self.db.call(|c| {
            let mut stmt = c.prepare_cached(&OVERDUE_SQL)?;
            let mut rows = stmt.query(params![nanos(now), limit(limit_)])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let json: String = r.get(0)?;
                out.push(decode_run(&json)?);
            }
            Ok(out)
        })
    }
}
