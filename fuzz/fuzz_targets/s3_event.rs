//! S3 event notifications in SQS bodies (`vaia_aws::s3event::parse_notification`): every
//! object has a non-empty key and a one-line idempotency key naming its bucket.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vaia_fuzz::s3event::{decode_key, parse_notification, S3Notification};

fuzz_target!(|data: &[u8]| {
    let text = vaia_fuzz::text(data);
    let _ = decode_key(&text);
    if let Ok(S3Notification::Objects(objects)) = parse_notification(&text) {
        for o in objects {
            let key = o.idempotency_key();
            assert!(key.starts_with(&format!("s3:{}/", o.bucket)), "{key}");
            assert!(!o.created.key.as_str().is_empty());
        }
    }
});
