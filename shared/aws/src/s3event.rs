//! S3 event notifications as they arrive in SQS message bodies, parsed with
//! `aws_lambda_events` and turned into the domain's [`ObjectCreated`].
//!
//! Lenient where S3-compatible servers are: records without `userIdentity`,
//! `requestParameters` or `responseElements` are completed with empty values before
//! parsing, and an `eventTime` without a zone (moto 5.2.1 sends
//! `2026-12-02T13:02:33.600287`) is read as UTC. Keys are URL-decoded (S3 encodes them form-style: `%2F`, `+` for a space).
//! A missing sequencer falls back to the eTag. The `s3:TestEvent` S3 sends when a notification is configured is recognised and
//! yields no objects. Only `ObjectCreated:*` records produce objects.

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use serde_json::{json, Value};
use vaia_core::evidence::SEALING_FILES;
use vaia_core::messages::ObjectCreated;
use vaia_core::BlobKey;

/// The bucket's object-created notifications to the `blob-events` queue, as
/// `(key prefix, key suffix)` filters: what the registry needs to hear of. One home for
/// the filters; `infra/template.yaml` states the same rules (a test compares them) and
/// the moto deployments of the tests are configured from here.
///
/// Only the file that seals an evidence bundle wakes the registry
/// ([`vaia_core::evidence::SEALING_FILES`]: the manifest of the per-file form, uploaded
/// last, and the one-object `bundle.tar`): the other files of a bundle, and the registry's
/// own records under `registry/`, are skipped by it, and each notification would cost an
/// SQS message, a Lambda invocation and an idempotency record. DVC files pushed under
/// `datasets/` record dataset snapshots.
pub const NOTIFICATIONS: &[(&str, Option<&str>)] = &[
    ("evidence/", Some(SEALING_FILES[0])),
    ("evidence/", Some(SEALING_FILES[1])),
    (vaia_core::dataset::DATASETS_PREFIX, None),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3EventError {
    #[error("S3 event is not JSON: {0}")]
    NotJson(String),
    #[error("S3 event record {index}: {reason}")]
    Record { index: usize, reason: String },
    #[error("S3 event: {0}")]
    Shape(String),
}

/// What an SQS message body from an S3 bucket notification holds.
#[derive(Debug, Clone, PartialEq)]
pub enum S3Notification {
    /// The `s3:TestEvent` S3 sends when notifications are configured.
    Test,
    /// Object-created records, each with the idempotency key of its object version.
    Objects(Vec<S3Object>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct S3Object {
    pub bucket: String,
    pub created: ObjectCreated,
    pub version_id: Option<String>,
}

impl S3Object {
    /// `s3:<bucket>/<key>@<version or sequencer>`: one per object version.
    pub fn idempotency_key(&self) -> String {
        let v = self
            .version_id
            .as_deref()
            .filter(|v| !v.is_empty() && *v != "null")
            .unwrap_or(&self.created.sequencer);
        format!("s3:{}/{}@{v}", self.bucket, self.created.key)
    }
}

/// Decodes an S3 event key: `+` is a space, `%XX` a byte; the result must be UTF-8.
pub fn decode_key(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent escape at byte {i} of {raw:?}"))?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("key {raw:?} does not decode to UTF-8"))
}

/// Fills the fields S3-compatible servers leave out, so the strict type parses.
fn complete(mut v: Value) -> Value {
    if let Some(records) = v.get_mut("Records").and_then(Value::as_array_mut) {
        for r in records {
            if let Some(obj) = r.as_object_mut() {
                obj.entry("userIdentity")
                    .or_insert_with(|| json!({"principalId": ""}));
                obj.entry("requestParameters")
                    .or_insert_with(|| json!({"sourceIPAddress": ""}));
                obj.entry("responseElements").or_insert_with(|| json!({}));
                // S3 writes `eventTime` as ISO 8601 in UTC with a `Z`; moto before 5.2.5
                // (and other S3-compatible servers) leave the zone out, which a strict
                // parse refuses ("premature end of input"). vaia does not use the time:
                // read a zone-less one as UTC rather than refuse the object.
                if let Some(Value::String(at)) = obj.get_mut("eventTime") {
                    if chrono::DateTime::parse_from_rfc3339(at).is_err()
                        && chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
                    {
                        at.push('Z');
                    }
                }
            }
        }
    }
    v
}

/// An object-created record with its key decoded but not checked against vaia's
/// [`BlobKey`] alphabet: raw data (the data watcher's) may be named anything S3 allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3RawObject {
    pub bucket: String,
    /// The decoded key (spaces, non-ASCII characters as written).
    pub key: String,
    pub size: u64,
    /// The sequencer, or `etag-<eTag>` when the server sent none.
    pub sequencer: String,
    pub version_id: Option<String>,
}

fn raw_object(index: usize, r: &S3EventRecord) -> Result<Option<S3RawObject>, S3EventError> {
    let err = |reason: String| S3EventError::Record { index, reason };
    let name = r.event_name.as_deref().unwrap_or_default();
    if !name.starts_with("ObjectCreated:") {
        return Ok(None);
    }
    let raw =
        r.s3.object
            .key
            .as_deref()
            .ok_or_else(|| err("no s3.object.key".into()))?;
    let key = decode_key(raw).map_err(err)?;
    let size = u64::try_from(r.s3.object.size.unwrap_or(0)).unwrap_or(0);
    let sequencer =
        r.s3.object
            .sequencer
            .clone()
            .filter(|s| !s.is_empty())
            // S3-compatible servers may leave the sequencer out: the eTag still tells one
            // content of the key from another, which is what idempotency needs.
            .or_else(|| {
                r.s3.object
                    .e_tag
                    .clone()
                    .filter(|e| !e.is_empty())
                    .map(|e| format!("etag-{e}"))
            })
            .ok_or_else(|| err("no s3.object.sequencer nor eTag".into()))?;
    Ok(Some(S3RawObject {
        bucket: r.s3.bucket.name.clone().unwrap_or_default(),
        key,
        size,
        sequencer,
        version_id: r.s3.object.version_id.clone(),
    }))
}

fn object(index: usize, r: &S3EventRecord) -> Result<Option<S3Object>, S3EventError> {
    let Some(raw) = raw_object(index, r)? else {
        return Ok(None);
    };
    let key = BlobKey::new(raw.key).map_err(|e| S3EventError::Record {
        index,
        reason: e.to_string(),
    })?;
    Ok(Some(S3Object {
        bucket: raw.bucket,
        created: ObjectCreated {
            key,
            size: raw.size,
            sequencer: raw.sequencer,
        },
        version_id: raw.version_id,
    }))
}

/// The event of an SQS body, or `None` for the `s3:TestEvent`.
fn event_of(body: &str) -> Result<Option<S3Event>, S3EventError> {
    let v: Value = serde_json::from_str(body).map_err(|e| S3EventError::NotJson(e.to_string()))?;
    if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(None);
    }
    if !v.get("Records").is_some_and(Value::is_array) {
        return Err(S3EventError::Shape("no Records array".into()));
    }
    serde_json::from_value(complete(v))
        .map(Some)
        .map_err(|e| S3EventError::Shape(e.to_string()))
}

/// Parses an SQS message body of an S3 notification into its object-created records,
/// keys decoded and not otherwise checked (the data watcher's raw data); `None` for the
/// `s3:TestEvent`.
pub fn parse_raw_notification(body: &str) -> Result<Option<Vec<S3RawObject>>, S3EventError> {
    let Some(event) = event_of(body)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for (i, r) in event.records.iter().enumerate() {
        if let Some(o) = raw_object(i, r)? {
            out.push(o);
        }
    }
    Ok(Some(out))
}

/// Parses an SQS message body sent by an S3 bucket notification.
pub fn parse_notification(body: &str) -> Result<S3Notification, S3EventError> {
    let Some(event) = event_of(body)? else {
        return Ok(S3Notification::Test);
    };
    let mut out = Vec::new();
    for (i, r) in event.records.iter().enumerate() {
        if let Some(o) = object(i, r)? {
            out.push(o);
        }
    }
    Ok(S3Notification::Objects(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn every_file_that_seals_a_bundle_is_announced_and_no_other_evidence() {
        let announced: Vec<&str> = NOTIFICATIONS
            .iter()
            .filter(|(prefix, _)| *prefix == "evidence/")
            .map(|(_, suffix)| suffix.expect("evidence filters name a suffix"))
            .collect();
        assert_eq!(announced, SEALING_FILES);
    }

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(
            decode_key("evidence%2Fo%2Fr%2Fmanifest.json").unwrap(),
            "evidence/o/r/manifest.json"
        );
        assert_eq!(decode_key("a+b%20c").unwrap(), "a b c");
        assert!(decode_key("bad%2").is_err());
        assert!(decode_key("bad%zz").is_err());
        assert!(decode_key("%ff").is_err());
    }

    #[test]
    fn test_event_is_recognised() {
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00.000Z","Bucket":"b","RequestId":"x","HostId":"y"}"#;
        assert_eq!(parse_notification(body), Ok(S3Notification::Test));
    }

    #[test]
    fn lenient_record_without_identity_fields() {
        let body = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-01-01T00:00:00.000Z","eventName":"ObjectCreated:Put","s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":"art","arn":"arn:aws:s3:::art"},"object":{"key":"evidence%2Focto%2Fagent%2Fabc%2Fmanifest.json","size":12,"eTag":"e","sequencer":"0A1B"}}}]}"#;
        let S3Notification::Objects(objs) = parse_notification(body).unwrap() else {
            panic!("objects expected");
        };
        assert_eq!(objs.len(), 1);
        assert_eq!(
            objs[0].created.key.as_str(),
            "evidence/octo/agent/abc/manifest.json"
        );
        assert_eq!(objs[0].created.size, 12);
        assert_eq!(
            objs[0].idempotency_key(),
            "s3:art/evidence/octo/agent/abc/manifest.json@0A1B"
        );
    }

    #[test]
    fn zone_less_event_time_as_moto_5_2_1_sends_it() {
        // Captured from moto 5.2.1 (S3 put → SQS): no `Z`, microseconds, no sequencer.
        let body = r#"{"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2026-12-02T13:02:33.600287", "eventName": "ObjectCreated:Put", "s3": {"s3SchemaVersion": "1.0", "configurationId": "T5PG", "bucket": {"name": "bucket-one", "arn": "arn:aws:s3:::bucket-one"}, "object": {"key": "evidence%2Fo%2Fr%2Fsha%2Fmanifest.json", "size": 5, "eTag": "5d41402abc4b2a76b9719d911017c592"}}}]}"#;
        let S3Notification::Objects(objs) = parse_notification(body).unwrap() else {
            panic!("objects expected");
        };
        assert_eq!(
            objs[0].created.key.as_str(),
            "evidence/o/r/sha/manifest.json"
        );
        // A time that is no time at all is still refused.
        let bad = body.replace("2026-12-02T13:02:33.600287", "yesterday");
        assert!(matches!(
            parse_notification(&bad),
            Err(S3EventError::Shape(_))
        ));
    }

    /// The data watcher's fixture: keys with spaces and non-ASCII characters, URL-encoded
    /// as S3 sends them, decoded whole (a [`BlobKey`] would refuse them).
    #[test]
    fn raw_data_keys_with_spaces_and_non_ascii_are_decoded() {
        let fixture: Value =
            serde_json::from_str(include_str!("../../../events/aws/sqs-raw-data-s3.json")).unwrap();
        let body = fixture["Records"][0]["body"].as_str().unwrap();
        let objs = parse_raw_notification(body).unwrap().unwrap();
        let keys: Vec<&str> = objs.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "raw/octo-org/agent/2026-12-02/tickets export (EU).csv",
                "raw/octo-org/agent/2026-12-02/résumés 日本.jsonl"
            ]
        );
        assert_eq!(objs[0].size, 1_048_576);
        assert_eq!(objs[0].sequencer, "0067892A1B2C3D4E5F");
        assert_eq!(objs[0].bucket, "vaia-data");
        // The same record as a vaia object is refused: its key is no BlobKey.
        assert!(matches!(
            parse_notification(body),
            Err(S3EventError::Record { index: 0, .. })
        ));
        let again = fixture["Records"][1]["body"].as_str().unwrap();
        assert_eq!(parse_raw_notification(again).unwrap().unwrap(), objs[1..]);
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00.000Z","Bucket":"b","RequestId":"x","HostId":"y"}"#;
        assert_eq!(parse_raw_notification(test), Ok(None));
        assert!(parse_raw_notification("{}").is_err());
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert!(matches!(
            parse_notification("nope"),
            Err(S3EventError::NotJson(_))
        ));
        assert!(matches!(
            parse_notification("{}"),
            Err(S3EventError::Shape(_))
        ));
        let no_seq = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k.json","size":1}}}]}"#;
        assert!(matches!(
            parse_notification(no_seq),
            Err(S3EventError::Record { .. }) | Err(S3EventError::Shape(_))
        ));
    }
}
