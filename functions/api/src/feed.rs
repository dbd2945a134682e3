//! The realtime feed's messages (one home: the local stack's `GET /api/feed` WebSocket and
//! the AWS `realtime` function send these, the dashboard's `api/feed.ts` reads them), as
//! JSON text:
//!
//! - `{"type":"hello","epoch":E,"seq":N}` first: N is the latest sequence of feed E;
//! - `{"type":"run","seq":N,"run":RunSummary}` per change of a run;
//! - `{"type":"resync","reason":…}` when the client must re-read the runs list.

use crate::RunSummary;
use serde::Serialize;

/// One message of the feed.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FeedMessage<'a> {
    Hello { epoch: &'a str, seq: u64 },
    Run { seq: u64, run: &'a RunSummary },
    Resync { reason: String },
}

impl FeedMessage<'_> {
    /// The message as the JSON text sent on the socket.
    pub fn to_text(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use vaia_core::contract::{base_time, sample_run};

    #[test]
    fn messages_are_tagged_json() {
        let run = RunSummary::from(&sample_run(1, base_time()));
        let text = FeedMessage::Run { seq: 7, run: &run }.to_text().unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "run");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["run"]["id"], run.id.as_str());
        let hello = FeedMessage::Hello { epoch: "e", seq: 3 }.to_text().unwrap();
        assert_eq!(hello, r#"{"type":"hello","epoch":"e","seq":3}"#);
        let resync = FeedMessage::Resync { reason: "r".into() }
            .to_text()
            .unwrap();
        assert_eq!(resync, r#"{"type":"resync","reason":"r"}"#);
    }
}
