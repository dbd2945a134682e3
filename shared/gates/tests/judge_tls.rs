//! The judges reach real `https://` endpoints: their HTTP client has TLS (rustls) and
//! verifies certificates. Against a local TLS server with a self-signed certificate, the
//! Gemini judge first refuses the untrusted certificate (a connect error naming it, not a
//! "scheme not supported" builder error), then, once the certificate is a trusted root
//! (`SSL_CERT_FILE`), grades over HTTPS with the wire protocol intact.
//!
//! One test in its own binary: it sets `SSL_CERT_FILE` for the process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;
use vaia_gates::eval::judge::{ApiKey, GeminiJudge, GradeRequest, Judge, JudgeError};

const KEY: &str = "tls-test-key-41f0";

fn gemini(url: &str) -> GeminiJudge {
    GeminiJudge::new(
        Some(url),
        None,
        ApiKey::new(KEY).unwrap(),
        Duration::from_secs(10),
    )
    .unwrap()
}

fn req() -> GradeRequest {
    GradeRequest {
        input: "How long is the return window?".into(),
        reference: "30 days".into(),
        answer: "30 days".into(),
    }
}

fn unreachable(r: Result<vaia_gates::eval::judge::Grade, JudgeError>) -> String {
    match r {
        Err(JudgeError::Unreachable(m)) => m,
        other => panic!("expected an unreachable judge, got {other:?}"),
    }
}

/// What the TLS server saw: handshake failures, and request heads of the requests it served.
#[derive(Clone, Default)]
struct Seen {
    handshake_errors: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

/// A minimal HTTPS/1.1 server answering every request with a Gemini `generateContent` reply.
async fn tls_server(config: ServerConfig) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let seen = Seen::default();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let s = s.clone();
            tokio::spawn(async move {
                let mut tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        s.handshake_errors.lock().unwrap().push(e.to_string());
                        return;
                    }
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = tls.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = tls.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body: Value = serde_json::from_slice(&buf[head_end..]).unwrap_or(Value::Null);
                assert!(body.pointer("/contents/0/parts/0/text").is_some(), "{body}");
                s.requests.lock().unwrap().push(head);
                let reply = json!({
                    "candidates": [{
                        "content": {"parts": [{"text": "{\"score\": 9, \"reason\": \"matches\"}"}], "role": "model"},
                        "finishReason": "STOP", "index": 0
                    }],
                    "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 10, "totalTokenCount": 110}
                })
                .to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn judges_speak_https_and_verify_certificates() {
    // A plain TCP listener that hangs up: the https URL is accepted and fails at connect or
    // handshake time, not as an unsupported scheme.
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_url = format!("https://127.0.0.1:{}", plain.local_addr().unwrap().port());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = plain.accept().await {
            drop(tcp);
        }
    });
    let m = unreachable(gemini(&plain_url).grade(&req()).await);
    assert!(
        !m.contains("scheme") && !m.contains("builder"),
        "https is not supported: {m}"
    );

    // A TLS server with a self-signed certificate nobody trusts: refused, and said why.
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let (url, seen) = tls_server(config).await;
    let m = unreachable(gemini(&url).grade(&req()).await);
    assert!(m.contains("certificate"), "{m}");
    assert!(!m.contains(KEY), "{m}");
    assert!(seen.requests.lock().unwrap().is_empty());
    // The server side of the refused handshake finishes on its own task.
    for _ in 0..200 {
        if !seen.handshake_errors.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !seen.handshake_errors.lock().unwrap().is_empty(),
        "the client never started a TLS handshake"
    );

    // Trusted (as a corporate CA would be, through SSL_CERT_FILE): graded over HTTPS.
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, cert.cert.pem()).unwrap();
    std::env::set_var("SSL_CERT_FILE", &pem);
    let grade = gemini(&url).grade(&req()).await.unwrap();
    assert_eq!(grade.score, 0.9);
    assert_eq!(grade.usage.input_tokens, 100);
    let requests = seen.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let head = requests[0].to_lowercase();
    assert!(
        head.starts_with("post /v1beta/models/") && head.contains(":generatecontent http/1.1"),
        "{head}"
    );
    assert!(head.contains(&format!("x-goog-api-key: {KEY}")), "{head}");
}
