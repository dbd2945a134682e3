//! Signature checks through the whole handler: GitHub's documented vector, and well over a
//! thousand forged or damaged signatures, every one refused with 401 and nothing stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use vaia_webhook::{verify_signature, SignatureError, WebhookSecret};

const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

#[test]
fn github_documented_test_vector() {
    // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    let secret = WebhookSecret::new("It's a Secret to Everybody").unwrap();
    let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(
        verify_signature(&secret, b"Hello, World!", Some(header)),
        Ok(())
    );
    assert_eq!(secret.sign(b"Hello, World!"), header);
}

#[tokio::test]
async fn github_documented_vector_through_the_handler() {
    let h = Harness::new();
    let secret = WebhookSecret::new("It's a Secret to Everybody").unwrap();
    let webhook = vaia_webhook::Webhook::new(
        h.store.clone(),
        h.idem.clone(),
        h.queue.clone(),
        h.clock.clone(),
        secret,
        Default::default(),
    );
    // "Hello, World!" is not JSON: past the signature it is a 400, not a 401.
    let headers = vec![
        (
            "x-hub-signature-256".to_string(),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".to_string(),
        ),
        ("x-github-event".to_string(), "issues".to_string()),
        ("x-github-delivery".to_string(), DELIVERY.to_string()),
    ];
    let r = webhook
        .handle(&vaia_webhook::WebhookRequest {
            headers: &headers,
            body: b"Hello, World!",
        })
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(reason(&r).contains("line 1 column"), "{r:?}");
}

/// Every way to get the signature wrong; each entry is (what, header or none, body).
fn forgeries(secret: &WebhookSecret, body: &[u8]) -> Vec<(String, Option<String>, Vec<u8>)> {
    let good = secret.sign(body);
    let hex_part = good["sha256=".len()..].to_string();
    let mut out = Vec::new();
    let mut push = |what: String, header: Option<String>, body: &[u8]| {
        out.push((what, header, body.to_vec()));
    };

    // Each of the 64 hex positions flipped to each of the 15 other lowercase hex digits,
    // and to the uppercase form of the same digit where there is one.
    for i in 0..64 {
        let original = hex_part.as_bytes()[i];
        for d in b"0123456789abcdef"
            .iter()
            .copied()
            .filter(|&d| d != original)
        {
            let mut h = hex_part.clone().into_bytes();
            h[i] = d;
            let h = String::from_utf8(h).unwrap();
            push(
                format!("hex {i} -> {}", d as char),
                Some(format!("sha256={h}")),
                body,
            );
        }
        if original.is_ascii_alphabetic() {
            let mut h = hex_part.clone().into_bytes();
            h[i] = original.to_ascii_uppercase();
            let h = String::from_utf8(h).unwrap();
            push(
                format!("hex {i} uppercased"),
                Some(format!("sha256={h}")),
                body,
            );
        }
    }
    // Wrong or missing prefix.
    for prefix in [
        "sha1=", "SHA256=", "Sha256=", "sha256:", "sha256 =", "sha512=", "", "=", " sha256=",
    ] {
        push(
            format!("prefix {prefix:?}"),
            Some(format!("{prefix}{hex_part}")),
            body,
        );
    }
    push("all uppercase".into(), Some(good.to_uppercase()), body);
    // Truncated to every shorter length, including empty.
    for len in 0..good.len() {
        push(
            format!("truncated to {len}"),
            Some(good[..len].to_string()),
            body,
        );
    }
    // Extended.
    for extra in ["0", "a", "f", "00", " ", "\t", ",", "=", &hex_part] {
        push(
            format!("extended by {extra:?}"),
            Some(format!("{good}{extra}")),
            body,
        );
    }
    push("leading space".into(), Some(format!(" {good}")), body);
    push("missing header".into(), None, body);
    // The right form, the wrong key or the wrong message.
    let other = WebhookSecret::new(format!("{SECRET}x")).unwrap();
    push("other secret".into(), Some(other.sign(body)), body);
    push(
        "signature of empty body".into(),
        Some(secret.sign(b"")),
        body,
    );
    push(
        "all zeros".into(),
        Some(format!("sha256={}", "0".repeat(64))),
        body,
    );
    // The body altered by one byte at many positions (the header stays the original's).
    let step = (body.len() / 300).max(1);
    for pos in (0..body.len()).step_by(step).chain([body.len() - 1]) {
        let mut b = body.to_vec();
        b[pos] ^= 0x01;
        push(format!("body byte {pos} flipped"), Some(good.clone()), &b);
    }
    let mut longer = body.to_vec();
    longer.push(b'\n');
    push(
        "body with a byte appended".into(),
        Some(good.clone()),
        &longer,
    );
    push(
        "body truncated by one byte".into(),
        Some(good.clone()),
        &body[..body.len() - 1],
    );
    push("empty body".into(), Some(good.clone()), b"");
    out
}

#[tokio::test]
async fn every_forgery_is_refused_and_nothing_is_stored() {
    let h = Harness::new();
    let body = fixture("push.json");
    let good = h.secret.sign(&body);
    let good_hex = good["sha256=".len()..].to_string();
    let cases = forgeries(&h.secret, &body);
    assert!(cases.len() >= 1000, "only {} cases", cases.len());

    for (what, header, b) in &cases {
        let mut headers = vec![
            ("X-GitHub-Event".to_string(), "push".to_string()),
            ("X-GitHub-Delivery".to_string(), DELIVERY.to_string()),
        ];
        if let Some(sig) = header {
            headers.push(("X-Hub-Signature-256".to_string(), sig.clone()));
        }
        let r = h.call(&headers, b).await;
        assert_eq!(r.status, 401, "{what}: {r:?}");
        assert_eq!(r.body["error"], "unauthorized", "{what}");
        let t = text(&r);
        assert!(!t.contains(SECRET), "{what}: answer leaks the secret: {t}");
        assert!(
            !t.contains(&good_hex),
            "{what}: answer leaks the expected signature: {t}"
        );
        assert!(t.contains("X-Hub-Signature-256"), "{what}: {t}");
    }

    // Two signature headers, even if one is right, are refused.
    let mut headers = h.headers("push", DELIVERY, &body);
    headers.push(("x-hub-signature-256".into(), good.clone()));
    let r = h.call(&headers, &body).await;
    assert_eq!(r.status, 401, "{r:?}");

    assert_eq!(h.port_calls(), 0, "a refused request reached a port");
    assert!(h.runs().await.is_empty());
    assert_eq!(h.advance_depth().await, 0);
    assert!(h.queue.sent.lock().unwrap().is_empty());
    assert!(!h.idempotency_has(DELIVERY).await);

    // And the real signature still works afterwards.
    let r = h.deliver("push", DELIVERY, &body).await;
    assert_eq!(r.status, 201, "{r:?}");
}

#[test]
fn error_kinds_are_distinguished() {
    let secret = WebhookSecret::new(SECRET).unwrap();
    let body = b"{}";
    assert_eq!(
        verify_signature(&secret, body, None),
        Err(SignatureError::Missing)
    );
    assert!(matches!(
        verify_signature(&secret, body, Some("sha1=abc")),
        Err(SignatureError::Malformed(_))
    ));
    let other = WebhookSecret::new("another secret").unwrap();
    assert_eq!(
        verify_signature(&secret, body, Some(&other.sign(body))),
        Err(SignatureError::Mismatch)
    );
}
