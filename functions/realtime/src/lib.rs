//! The realtime function's handler, over ports: dashboards' WebSocket connections and the
//! runs table's changes pushed to them.
//!
//! - `connect`: when tokens are configured (`VAIA_API_TOKENS`), the handshake must present
//!   one with role `read`, checked exactly as the API checks `GET /api/feed`
//!   ([`vaia_api::auth::authorize`]); the connection is then recorded with a time to live.
//! - `disconnect`: the connection is forgotten.
//! - `message`: the dashboard's `{"action":"hello","since":N,"epoch":E}`, sent when its
//!   socket opens, is answered with the feed's `hello` ([`EPOCH`], the time as sequence)
//!   and, when the client had a cursor (a reconnect), `resync`: this feed keeps no backlog,
//!   so a client that may have missed changes re-reads the runs list. (The local feed
//!   answers the same from its URL's query at the handshake; API Gateway cannot send
//!   during `$connect`.)
//! - `publish`: each changed run becomes the local feed's message
//!   ([`vaia_api::feed::FeedMessage::Run`] of the run's [`RunSummary`]) posted to every
//!   connection; a connection that is gone is forgotten; any other failure fails the
//!   record, to be retried (posting again to every connection: the message is the run's
//!   whole summary, so a repeat is harmless). Records are handled in stream order and the
//!   first failure stops the batch (Lambda retries from it), so a run's changes never
//!   reach a dashboard out of order. A record that cannot be decoded is refused the same
//!   way, with its reason, and changes nothing (after the event source mapping's retries it
//!   goes to its failure destination).

use axum::http::{HeaderMap, Method, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use vaia_api::auth::{self, Role, Tokens};
use vaia_api::feed::FeedMessage;
use vaia_api::RunSummary;
use vaia_core::ports::{Clock, Connections, PortError, Push, PushError, RunChange};
use vaia_core::run::Run;

/// The path the feed is served at (what a token's role is checked for).
pub const FEED_PATH: &str = "/api/feed";
/// The subprotocol the server selects (the dashboard offers it beside `bearer.<token>`,
/// which is never echoed).
pub const PROTOCOL: &str = "vaia";
/// How long a connection is kept without its `$disconnect`: API Gateway closes WebSocket
/// connections after two hours.
pub const CONNECTION_TTL: Duration = Duration::from_secs(2 * 3600 + 600);

/// The feed epoch the AWS feed announces: one for ever (it has no sequence to restart).
pub const EPOCH: &str = "aws";

/// The client's request on `$default`.
#[derive(Debug, serde::Deserialize)]
struct ClientHello {
    action: String,
    since: Option<u64>,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("{failed} of {total} connections could not be sent the change: {first}")]
    Push {
        failed: usize,
        total: usize,
        first: PushError,
    },
    #[error("the feed message did not serialise: {0}")]
    Encode(String),
}

/// The answer to a WebSocket handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectAnswer {
    pub status: u16,
    /// Why it was refused (never the token).
    pub error: Option<String>,
    /// The subprotocol selected, when the client offered it.
    pub protocol: Option<&'static str>,
}

/// What publishing one change did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    pub sent: usize,
    pub gone: usize,
}

/// The handler.
pub struct Realtime {
    connections: Arc<dyn Connections>,
    push: Arc<dyn Push>,
    tokens: Arc<Tokens>,
    clock: Arc<dyn Clock>,
}

impl Realtime {
    pub fn new(
        connections: Arc<dyn Connections>,
        push: Arc<dyn Push>,
        tokens: Arc<Tokens>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            connections,
            push,
            tokens,
            clock,
        }
    }

    /// `$connect`: checks the token, records the connection.
    pub async fn connect(&self, connection: &str, headers: &HeaderMap) -> ConnectAnswer {
        if !self.tokens.is_empty() {
            if let Err(e) =
                auth::authorize(&self.tokens, Role::Read, &Method::GET, FEED_PATH, headers)
            {
                return ConnectAnswer {
                    status: e.0.as_u16(),
                    error: Some(e.1),
                    protocol: None,
                };
            }
        }
        if let Err(e) = self
            .connections
            .add(connection, self.clock.now(), CONNECTION_TTL)
            .await
        {
            tracing::error!(error = %e, "connection not recorded");
            return ConnectAnswer {
                status: StatusCode::INTERNAL_SERVER_ERROR.as_u16(),
                error: Some("the connection could not be recorded; reconnect".into()),
                protocol: None,
            };
        }
        ConnectAnswer {
            status: StatusCode::OK.as_u16(),
            error: None,
            protocol: offers(headers, PROTOCOL).then_some(PROTOCOL),
        }
    }

    /// `$disconnect`: forgets the connection.
    pub async fn disconnect(&self, connection: &str) -> Result<(), RealtimeError> {
        Ok(self.connections.remove(connection).await?)
    }

    /// `$default`: answers a client's `hello` (anything else is ignored).
    pub async fn message(&self, connection: &str, body: Option<&str>) -> Result<(), RealtimeError> {
        let Some(hello) = body
            .and_then(|b| serde_json::from_str::<ClientHello>(b).ok())
            .filter(|h| h.action == "hello")
        else {
            return Ok(());
        };
        let seq = u64::try_from(self.clock.now().timestamp_millis()).unwrap_or_default();
        let mut out = vec![FeedMessage::Hello { epoch: EPOCH, seq }];
        if let Some(since) = hello.since {
            out.push(FeedMessage::Resync {
                reason: format!(
                    "the feed keeps no backlog: changes after {since} may have been missed"
                ),
            });
        }
        for m in out {
            let text = m
                .to_text()
                .map_err(|e| RealtimeError::Encode(e.to_string()))?;
            match self.push.post(connection, text.as_bytes()).await {
                Ok(()) => {}
                Err(PushError::Gone(_)) => {
                    self.connections.remove(connection).await?;
                    return Ok(());
                }
                Err(first) => {
                    return Err(RealtimeError::Push {
                        failed: 1,
                        total: 1,
                        first,
                    })
                }
            }
        }
        Ok(())
    }

    /// Posts `run`'s change (feed position `seq`) to every connection.
    pub async fn publish(&self, seq: u64, run: &Run) -> Result<Published, RealtimeError> {
        let summary = RunSummary::from(run);
        let text = FeedMessage::Run { seq, run: &summary }
            .to_text()
            .map_err(|e| RealtimeError::Encode(e.to_string()))?;
        let connections = self.connections.list().await?;
        // Posted to every connection at once (each post is a round trip to API Gateway);
        // the next change is posted after all of these, so each connection sees them in
        // order.
        let text: Arc<str> = text.into();
        let mut posts = tokio::task::JoinSet::new();
        for c in connections.iter().cloned() {
            let (push, text) = (self.push.clone(), text.clone());
            posts.spawn(async move {
                let r = push.post(&c, text.as_bytes()).await;
                (c, r)
            });
        }
        let mut done = Published::default();
        let mut failed = Vec::new();
        while let Some(joined) = posts.join_next().await {
            let (c, result) = match joined {
                Ok(posted) => posted,
                // A post that panicked (a bug) counts as failed: the record is retried.
                Err(e) => {
                    failed.push(PushError::Failed {
                        connection: "(unknown)".into(),
                        reason: format!("the post did not complete: {e}"),
                    });
                    continue;
                }
            };
            match result {
                Ok(()) => done.sent += 1,
                Err(PushError::Gone(_)) => {
                    self.connections.remove(&c).await?;
                    done.gone += 1;
                }
                Err(e) => failed.push(e),
            }
        }
        match failed.into_iter().next() {
            None => Ok(done),
            Some(first) => Err(RealtimeError::Push {
                failed: connections.len() - done.sent - done.gone,
                total: connections.len(),
                first,
            }),
        }
    }

    /// A batch of the runs table's changes, in order; the id of the first record that
    /// failed (everything from it is delivered again), or `None`.
    pub async fn changes(&self, changes: &[RunChange]) -> Option<String> {
        for change in changes {
            match &change.run {
                Ok(None) => {}
                Ok(Some(run)) => match self.publish(change.seq, run).await {
                    Ok(p) => {
                        tracing::info!(run_id = %run.id, record = %change.id, sent = p.sent, gone = p.gone, "change pushed");
                    }
                    Err(e) => {
                        tracing::warn!(run_id = %run.id, record = %change.id, error = %e, "change not pushed; will be retried");
                        return Some(change.id.clone());
                    }
                },
                Err(reason) => {
                    tracing::error!(record = %change.id, %reason, "bad stream record refused");
                    return Some(change.id.clone());
                }
            }
        }
        None
    }
}

/// Whether the handshake offered subprotocol `name`.
fn offers(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use async_trait::async_trait;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Mutex;
    use vaia_core::contract::{base_time, sample_run};
    use vaia_core::memory::ManualClock;
    use vaia_core::ports::PortResult;
    use vaia_core::run::Timestamp;

    #[derive(Default)]
    struct Table(Mutex<BTreeSet<String>>);

    #[async_trait]
    impl Connections for Table {
        async fn add(&self, id: &str, _: Timestamp, _: Duration) -> PortResult<()> {
            self.0.lock().unwrap().insert(id.into());
            Ok(())
        }
        async fn remove(&self, id: &str) -> PortResult<()> {
            self.0.lock().unwrap().remove(id);
            Ok(())
        }
        async fn list(&self) -> PortResult<Vec<String>> {
            Ok(self.0.lock().unwrap().iter().cloned().collect())
        }
    }

    /// Records posts; connections named `gone*` are gone, `busy*` are throttled.
    #[derive(Default)]
    struct Posts(Mutex<BTreeMap<String, Vec<String>>>);

    #[async_trait]
    impl Push for Posts {
        async fn post(&self, connection: &str, data: &[u8]) -> Result<(), PushError> {
            if connection.starts_with("gone") {
                return Err(PushError::Gone(connection.into()));
            }
            if connection.starts_with("busy") {
                return Err(PushError::Failed {
                    connection: connection.into(),
                    reason: "TooManyRequestsException".into(),
                });
            }
            self.0
                .lock()
                .unwrap()
                .entry(connection.into())
                .or_default()
                .push(String::from_utf8(data.to_vec()).unwrap());
            Ok(())
        }
    }

    fn realtime(tokens: &str) -> (Realtime, Arc<Table>, Arc<Posts>) {
        let table = Arc::new(Table::default());
        let posts = Arc::new(Posts::default());
        let tokens = Arc::new(Tokens::parse_inline("test", tokens).unwrap());
        let r = Realtime::new(
            table.clone(),
            posts.clone(),
            tokens,
            Arc::new(ManualClock::new(base_time())),
        );
        (r, table, posts)
    }

    fn headers(protocols: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::SEC_WEBSOCKET_PROTOCOL,
            protocols.parse().unwrap(),
        );
        h
    }

    fn change(id: &str, run: Result<Option<Run>, String>) -> RunChange {
        RunChange {
            id: id.into(),
            seq: 5,
            run,
        }
    }

    #[tokio::test]
    async fn connect_checks_the_read_role_as_the_api_does() {
        let spec = format!(
            "reader:read:{};ci:upload:{}",
            auth::hash_token("r-secret"),
            auth::hash_token("u-secret")
        );
        let (r, table, _) = realtime(&spec);
        let refused = |status| move |a: ConnectAnswer| a.status == status && a.error.is_some();
        assert!(refused(401)(r.connect("a", &HeaderMap::new()).await));
        assert!(refused(401)(
            r.connect("b", &headers("vaia, bearer.nope")).await
        ));
        let a = r.connect("c", &headers("vaia, bearer.u-secret")).await;
        assert!(refused(403)(a.clone()), "{a:?}");
        assert!(!a.error.unwrap().contains("u-secret"));
        assert!(table.0.lock().unwrap().is_empty());
        let a = r.connect("d", &headers("vaia, bearer.r-secret")).await;
        assert_eq!(
            a,
            ConnectAnswer {
                status: 200,
                error: None,
                protocol: Some("vaia")
            }
        );
        assert_eq!(*table.0.lock().unwrap(), BTreeSet::from(["d".to_string()]));
        // No tokens configured: open, as the API is.
        let (r, table, _) = realtime("");
        assert_eq!(r.connect("e", &HeaderMap::new()).await.status, 200);
        assert_eq!(r.connect("e", &HeaderMap::new()).await.protocol, None);
        assert_eq!(table.0.lock().unwrap().len(), 1);
        r.disconnect("e").await.unwrap();
        assert!(table.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn changes_reach_every_connection_and_gone_ones_are_forgotten() {
        let (r, table, posts) = realtime("");
        for c in ["a", "b", "gone-1"] {
            table.0.lock().unwrap().insert(c.into());
        }
        let run = sample_run(1, base_time());
        let failed = r
            .changes(&[change("1", Ok(None)), change("2", Ok(Some(run.clone())))])
            .await;
        assert_eq!(failed, None);
        let want = FeedMessage::Run {
            seq: 5,
            run: &RunSummary::from(&run),
        }
        .to_text()
        .unwrap();
        let posts = posts.0.lock().unwrap();
        assert_eq!(posts["a"], vec![want.clone()]);
        assert_eq!(posts["b"], vec![want]);
        assert_eq!(
            *table.0.lock().unwrap(),
            BTreeSet::from(["a".to_string(), "b".to_string()])
        );
    }

    #[tokio::test]
    async fn a_hello_is_answered_and_a_reconnect_told_to_resync() {
        let (r, _, posts) = realtime("");
        r.message("a", Some(r#"{"action":"hello"}"#)).await.unwrap();
        r.message("b", Some(r#"{"action":"hello","since":12,"epoch":"aws"}"#))
            .await
            .unwrap();
        r.message("c", Some("not json")).await.unwrap();
        r.message("c", None).await.unwrap();
        let posts = posts.0.lock().unwrap();
        let seq = base_time().timestamp_millis();
        let hello = format!(r#"{{"type":"hello","epoch":"aws","seq":{seq}}}"#);
        assert_eq!(posts["a"], vec![hello.clone()]);
        assert_eq!(posts["b"].len(), 2);
        assert_eq!(posts["b"][0], hello);
        assert!(posts["b"][1].starts_with(r#"{"type":"resync","reason":"#));
        assert!(!posts.contains_key("c"));
    }

    #[tokio::test]
    async fn the_first_failed_record_stops_the_batch() {
        let (r, table, posts) = realtime("");
        table.0.lock().unwrap().insert("busy-1".into());
        table.0.lock().unwrap().insert("a".into());
        let run = sample_run(1, base_time());
        let failed = r
            .changes(&[
                change("1", Ok(Some(run.clone()))),
                change("2", Ok(Some(run.clone()))),
            ])
            .await;
        assert_eq!(failed.as_deref(), Some("1"));
        assert_eq!(posts.0.lock().unwrap()["a"].len(), 1, "record 2 not sent");
        assert_eq!(table.0.lock().unwrap().len(), 2, "a busy connection stays");

        // A bad record is refused and sends nothing; those after it wait for the retry.
        let (r, table, posts) = realtime("");
        table.0.lock().unwrap().insert("a".into());
        let failed = r
            .changes(&[
                change("7", Err("bad body".into())),
                change("8", Ok(Some(run))),
            ])
            .await;
        assert_eq!(failed.as_deref(), Some("7"));
        assert!(posts.0.lock().unwrap().is_empty());
    }
}
