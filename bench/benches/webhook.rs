//! Webhook benchmarks on a ~25 KB push payload (events/github/push.large.json): signature
//! verification, payload classification, both together, and the whole handler on the
//! in-memory adapters (a new run, and a redelivery answered from the idempotency store).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use vaia_core::memory::{MemoryIdempotency, MemoryQueue, MemoryRunStore};
use vaia_core::policy::Policy;
use vaia_core::ports::SystemClock;
use vaia_webhook::{classify, verify_signature, Webhook, WebhookRequest, WebhookSecret};

const SECRET: &str = "bench-secret";

fn payload() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/github/push.large.json"
    );
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn webhook(secret: &WebhookSecret) -> Webhook {
    let clock = Arc::new(SystemClock);
    Webhook::new(
        Arc::new(MemoryRunStore::new()),
        Arc::new(MemoryIdempotency::new()),
        Arc::new(MemoryQueue::new(clock.clone(), 5)),
        clock,
        secret.clone(),
        Policy::default(),
    )
}

fn headers(secret: &WebhookSecret, body: &[u8], delivery: &str) -> Vec<(String, String)> {
    vec![
        ("X-GitHub-Event".into(), "push".into()),
        ("X-GitHub-Delivery".into(), delivery.into()),
        ("X-Hub-Signature-256".into(), secret.sign(body)),
    ]
}

fn bench(c: &mut Criterion) {
    let body = payload();
    let secret = WebhookSecret::new(SECRET).unwrap_or_else(|e| panic!("{e}"));
    let signature = secret.sign(&body);

    let mut g = c.benchmark_group("webhook");
    g.throughput(Throughput::Bytes(body.len() as u64));

    g.bench_function("verify_25k", |b| {
        b.iter(|| verify_signature(&secret, black_box(&body), Some(black_box(&signature))))
    });
    g.bench_function("parse_25k", |b| {
        b.iter(|| classify("push", black_box(&body)))
    });
    g.bench_function("verify_and_parse_25k", |b| {
        b.iter(|| {
            verify_signature(&secret, black_box(&body), Some(black_box(&signature)))
                .map(|()| classify("push", black_box(&body)))
        })
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let h = headers(&secret, &body, "bench-delivery");
    g.bench_function("handle_25k_new_run", |b| {
        b.iter_batched(
            || webhook(&secret),
            |w| {
                let r = rt.block_on(w.handle(&WebhookRequest {
                    headers: &h,
                    body: &body,
                }));
                assert_eq!(r.status, 201);
                r
            },
            BatchSize::SmallInput,
        )
    });
    let w = webhook(&secret);
    let first = rt.block_on(w.handle(&WebhookRequest {
        headers: &h,
        body: &body,
    }));
    assert_eq!(first.status, 201);
    g.bench_function("handle_25k_redelivery", |b| {
        b.iter(|| {
            rt.block_on(w.handle(&WebhookRequest {
                headers: &h,
                body: black_box(&body),
            }))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
