//! GitHub deliveries through the whole webhook handler (`vaia_webhook::Webhook::handle`) on
//! in-memory ports: headers (signature, event, delivery) and the payload. Input: lines
//! `event`, `delivery id`, `signature` (empty: sign the body correctly), then the body.
//! Every answer is a 2xx/4xx (the memory ports never fail), and a redelivery gets the same
//! answer as the first delivery.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use vaia_core::memory::{ManualClock, MemoryIdempotency, MemoryQueue, MemoryRunStore};
use vaia_core::policy::Policy;
use vaia_webhook::{verify_signature, Webhook, WebhookRequest, WebhookSecret};

const SECRET: &str = "fuzzing-secret-0123456789";

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(4, |b| *b == b'\n');
    let (Some(event), Some(delivery), Some(signature), Some(body)) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return;
    };
    let secret = WebhookSecret::new(SECRET).expect("a secret");
    let signature = if signature.is_empty() {
        secret.sign(body)
    } else {
        String::from_utf8_lossy(signature).into_owned()
    };
    // The signature check alone agrees with the handler's.
    let signed = verify_signature(&secret, body, Some(&signature)).is_ok();
    let _ = vaia_webhook::classify(&String::from_utf8_lossy(event), body);

    let headers = vec![
        ("X-Hub-Signature-256".to_string(), signature),
        (
            "X-GitHub-Event".to_string(),
            String::from_utf8_lossy(event).into_owned(),
        ),
        (
            "X-GitHub-Delivery".to_string(),
            String::from_utf8_lossy(delivery).into_owned(),
        ),
    ];
    let clock = Arc::new(ManualClock::new(
        chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a time"),
    ));
    let webhook = Webhook::new(
        Arc::new(MemoryRunStore::new()),
        Arc::new(MemoryIdempotency::new()),
        Arc::new(MemoryQueue::new(clock.clone(), 5)),
        clock,
        secret,
        Policy::default(),
    );
    let request = WebhookRequest {
        headers: &headers,
        body,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let first = rt.block_on(webhook.handle(&request));
    assert!(
        (200..500).contains(&first.status),
        "status {} on memory ports: {}",
        first.status,
        first.body
    );
    if first.status != 413 {
        assert_eq!(signed, first.status != 401, "{}", first.body);
    }
    let again = rt.block_on(webhook.handle(&request));
    assert_eq!(first, again, "a redelivery gets the first answer");
});
