//! The local stack's realtime feed: every write of run state (the one place, the
//! [`RunStore`] the handlers share) is published as the run's summary to WebSocket clients
//! of `GET /api/feed`.
//!
//! Changes carry a feed sequence (1, 2, … per process) and the process's epoch. A client
//! that reconnects asks for `?since=<seq>&epoch=<epoch>` and is sent the changes it missed
//! from a bounded backlog; when it cannot be (another process, or older than the backlog)
//! it is told to `resync`, i.e. to re-read `GET /api/runs`. The messages are
//! [`vaia_api::feed::FeedMessage`]s: `hello` first, then `run` per change (backlog first,
//! then live), `resync` when the client must re-read the list.

use async_trait::async_trait;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use vaia_api::feed::FeedMessage as Out;
use vaia_api::RunSummary;
use vaia_core::ports::{Created, PortResult, RunCursor, RunPage, RunStore};
use vaia_core::run::{Run, RunEvent, Timestamp};
use vaia_core::{PipelineState, RunId};

/// Changes kept for reconnecting clients.
pub const BACKLOG: usize = 10_000;

/// One published change.
#[derive(Debug, Clone)]
pub struct Change {
    pub seq: u64,
    pub run: Arc<RunSummary>,
}

struct Inner {
    next: u64,
    backlog: VecDeque<Change>,
}

/// The publisher: a broadcast channel plus a backlog, both behind one lock so that a
/// subscriber's backlog and live stream neither overlap nor leave a gap.
pub struct Feed {
    epoch: String,
    tx: broadcast::Sender<Change>,
    inner: Mutex<Inner>,
    capacity: usize,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed").field("epoch", &self.epoch).finish()
    }
}

/// What a subscriber starts from.
pub enum Backfill {
    /// The changes after the client's sequence (possibly none).
    Changes(Vec<Change>),
    /// The client must re-read the list, with why.
    Resync(String),
}

impl Feed {
    pub fn new(capacity: usize) -> Arc<Self> {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let (tx, _) = broadcast::channel(1024);
        Arc::new(Self {
            epoch: format!("{nanos:x}-{:x}", std::process::id()),
            tx,
            inner: Mutex::new(Inner {
                next: 1,
                backlog: VecDeque::new(),
            }),
            capacity: capacity.max(1),
        })
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the backlog inconsistent (every
        // mutation is a push or pop), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn publish(&self, run: &Run) {
        let summary = Arc::new(RunSummary::from(run));
        let mut inner = self.lock();
        let change = Change {
            seq: inner.next,
            run: summary,
        };
        inner.next += 1;
        if inner.backlog.len() == self.capacity {
            inner.backlog.pop_front();
        }
        inner.backlog.push_back(change.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(change);
    }

    /// The latest sequence, a live receiver and what the client missed since `since` in
    /// `epoch` (`None`: a first connection, nothing to backfill).
    pub fn subscribe(
        &self,
        since: Option<u64>,
        epoch: Option<&str>,
    ) -> (u64, broadcast::Receiver<Change>, Backfill) {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let latest = inner.next - 1;
        let backfill = match since {
            None => Backfill::Changes(Vec::new()),
            Some(since) if epoch != Some(self.epoch.as_str()) => Backfill::Resync(format!(
                "the stack restarted (epoch {}): sequence {since} is from another process",
                self.epoch
            )),
            Some(since) if since > latest => {
                Backfill::Resync(format!("sequence {since} is ahead of the feed ({latest})"))
            }
            Some(since) => {
                let oldest = inner.backlog.front().map_or(latest + 1, |c| c.seq);
                if since + 1 < oldest {
                    Backfill::Resync(format!(
                        "sequence {since} is older than the backlog (from {oldest})"
                    ))
                } else {
                    Backfill::Changes(
                        inner
                            .backlog
                            .iter()
                            .filter(|c| c.seq > since)
                            .cloned()
                            .collect(),
                    )
                }
            }
        };
        (latest, rx, backfill)
    }
}

/// A [`RunStore`] that publishes every successful write to a [`Feed`].
pub struct PublishingStore {
    inner: Arc<dyn RunStore>,
    feed: Arc<Feed>,
}

impl PublishingStore {
    pub fn new(inner: Arc<dyn RunStore>, feed: Arc<Feed>) -> Self {
        Self { inner, feed }
    }
}

#[async_trait]
impl RunStore for PublishingStore {
    async fn create(&self, run: &Run, events: &[RunEvent]) -> PortResult<Created> {
        let created = self.inner.create(run, events).await?;
        if matches!(created, Created::Created) {
            self.feed.publish(run);
        }
        Ok(created)
    }
    async fn get(&self, id: &RunId) -> PortResult<Option<Run>> {
        self.inner.get(id).await
    }
    async fn save(&self, run: &Run, expected_version: u64, events: &[RunEvent]) -> PortResult<()> {
        self.inner.save(run, expected_version, events).await?;
        self.feed.publish(run);
        Ok(())
    }
    async fn list(&self, limit: usize, after: Option<&RunCursor>) -> PortResult<RunPage> {
        self.inner.list(limit, after).await
    }
    async fn events(&self, id: &RunId) -> PortResult<Vec<RunEvent>> {
        self.inner.events(id).await
    }
    async fn count_by_state(&self) -> PortResult<BTreeMap<PipelineState, u64>> {
        self.inner.count_by_state().await
    }
    async fn overdue(&self, now: Timestamp, limit: usize) -> PortResult<Vec<Run>> {
        self.inner.overdue(now, limit).await
    }
}

#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    since: Option<u64>,
    epoch: Option<String>,
}

/// `GET /api/feed`: the WebSocket upgrade.
pub async fn feed_ws(
    State(feed): State<Arc<Feed>>,
    Query(q): Query<FeedQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    // Browsers pass the token as a subprotocol (see vaia_api::auth); the server answers
    // with the plain protocol name, never echoing the token.
    ws.protocols(["vaia"])
        .on_upgrade(move |socket| serve(socket, feed, q))
}

async fn send(socket: &mut WebSocket, msg: &Out<'_>) -> bool {
    match msg.to_text() {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "feed message did not serialise");
            false
        }
    }
}

async fn serve(mut socket: WebSocket, feed: Arc<Feed>, q: FeedQuery) {
    let (latest, mut rx, backfill) = feed.subscribe(q.since, q.epoch.as_deref());
    if !send(
        &mut socket,
        &Out::Hello {
            epoch: feed.epoch(),
            seq: latest,
        },
    )
    .await
    {
        return;
    }
    match backfill {
        Backfill::Changes(changes) => {
            for c in &changes {
                if !send(
                    &mut socket,
                    &Out::Run {
                        seq: c.seq,
                        run: &c.run,
                    },
                )
                .await
                {
                    return;
                }
            }
        }
        Backfill::Resync(reason) => {
            if !send(&mut socket, &Out::Resync { reason }).await {
                return;
            }
        }
    }
    loop {
        tokio::select! {
            change = rx.recv() => match change {
                Ok(c) => {
                    if !send(&mut socket, &Out::Run { seq: c.seq, run: &c.run }).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let reason = format!("the client fell {n} changes behind");
                    if !send(&mut socket, &Out::Resync { reason }).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                // Clients only ping or close; anything else is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaia_core::policy::Policy;
    use vaia_core::{CommitSha, Repository};

    fn run(n: u8) -> Run {
        Run::new(
            Repository::new("o/r").unwrap(),
            CommitSha::new(format!("{:040x}", n)).unwrap(),
            None,
            vaia_core::run::Trigger {
                kind: "push".into(),
                delivery: None,
                actor: None,
                at: chrono::Utc::now(),
            },
            Policy::default(),
            chrono::Utc::now(),
        )
    }

    fn seqs(b: &Backfill) -> Vec<u64> {
        match b {
            Backfill::Changes(c) => c.iter().map(|c| c.seq).collect(),
            Backfill::Resync(r) => panic!("resync: {r}"),
        }
    }

    #[test]
    fn backfill_returns_what_was_missed_then_live() {
        let feed = Feed::new(3);
        feed.publish(&run(1));
        feed.publish(&run(2));
        let (latest, mut rx, b) = feed.subscribe(Some(1), Some(feed.epoch()));
        assert_eq!(latest, 2);
        assert_eq!(seqs(&b), vec![2]);
        feed.publish(&run(3));
        assert_eq!(rx.try_recv().unwrap().seq, 3);
        // Older than the backlog (capacity 3: seqs 2..=4 kept after a fourth publish).
        feed.publish(&run(4));
        let (_, _, b) = feed.subscribe(Some(1), Some(feed.epoch()));
        assert_eq!(seqs(&b), vec![2, 3, 4]);
        feed.publish(&run(5));
        let (_, _, b) = feed.subscribe(Some(1), Some(feed.epoch()));
        assert!(matches!(b, Backfill::Resync(_)));
        let (_, _, b) = feed.subscribe(Some(1), Some("other"));
        assert!(matches!(b, Backfill::Resync(_)));
        let (_, _, b) = feed.subscribe(Some(5), Some(feed.epoch()));
        assert!(seqs(&b).is_empty());
    }
}
