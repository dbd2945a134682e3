//! API Gateway (HTTP API, payload v2) requests through `lambda_http`, reduced to what the
//! framework-agnostic handlers take: header pairs and the raw body bytes; and [`run`], the
//! `lambda_http::run` the HTTP functions start with, which refuses an event whose body is
//! marked base64 but is not (`lambda_http` panics on one, which ends a function built with
//! `panic = "abort"`; found by fuzzing, see fuzz/README.md).

use base64::Engine as _;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::Service;
use lambda_http::{Adapter, Body, IntoResponse, LambdaEvent, Request, Response};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Header pairs (values that are not valid text are dropped) and the exact body bytes
/// (base64 bodies are decoded by `lambda_http`).
pub fn request_parts(req: &Request) -> (Vec<(String, String)>, Vec<u8>) {
    let headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), v.to_string()))
        })
        .collect();
    let body = match req.body() {
        Body::Empty => Vec::new(),
        Body::Text(t) => t.as_bytes().to_vec(),
        Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    };
    (headers, body)
}

/// Why an event cannot become a request: its body is marked base64 (`isBase64Encoded`)
/// but does not decode. API Gateway never sends one; a hand-made event (`aws lambda
/// invoke`, `cargo lambda invoke`) can.
pub fn bad_event(event: &LambdaRequest) -> Option<String> {
    let (encoded, body) = match event {
        LambdaRequest::ApiGatewayV2(r) => (r.is_base64_encoded, r.body.as_deref()),
        _ => return None,
    };
    let body = body.filter(|_| encoded)?;
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .err()
        .map(|e| format!("the event's body is marked isBase64Encoded but is not base64: {e}"))
}

/// The answer to an event [`bad_event`] refuses: 400 with a JSON error.
pub fn bad_event_response(reason: &str) -> ApiGatewayV2httpResponse {
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = 400;
    r.headers.insert(
        lambda_http::http::header::CONTENT_TYPE,
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    let body = serde_json::json!({ "status": "error", "error": "bad_request", "reason": reason });
    r.body = Some(Body::Text(body.to_string()));
    r
}

/// What [`CheckedEvents`] answers: the handler's response, or the refusal of a bad event.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer<R> {
    Handled(R),
    Refused(ApiGatewayV2httpResponse),
}

/// `lambda_http`'s adapter behind the [`bad_event`] check.
#[derive(Clone)]
pub struct CheckedEvents<S>(pub S);

impl<S> Service<LambdaEvent<LambdaRequest>> for CheckedEvents<S>
where
    S: Service<LambdaEvent<LambdaRequest>>,
    S::Future: 'static,
    S::Response: 'static,
    S::Error: 'static,
{
    type Response = Answer<S::Response>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Answer<S::Response>, S::Error>>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<LambdaRequest>) -> Self::Future {
        match bad_event(&event.payload) {
            Some(reason) => {
                tracing::warn!(%reason, "event refused");
                Box::pin(std::future::ready(Ok(Answer::Refused(bad_event_response(
                    &reason,
                )))))
            }
            None => {
                let handled = self.0.call(event);
                Box::pin(async move { handled.await.map(Answer::Handled) })
            }
        }
    }
}

/// `lambda_http::run` with events checked by [`bad_event`] first.
pub async fn run<S, R, E>(handler: S) -> Result<(), lambda_http::Error>
where
    S: Service<Request, Response = R, Error = E> + Send,
    S::Future: Send + 'static,
    R: IntoResponse + 'static,
    E: std::fmt::Debug + Into<lambda_runtime::Diagnostic> + 'static,
{
    lambda_runtime::run(CheckedEvents(Adapter::from(handler))).await
}

/// A JSON response with `status`; a status that is not valid HTTP becomes 500.
pub fn json_response(status: u16, body: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Body::Text(body.to_string()));
    *r.status_mut() = lambda_http::http::StatusCode::from_u16(status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        lambda_http::http::header::CONTENT_TYPE,
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use lambda_http::{service_fn, Context};

    /// Found by `cargo fuzz run apigw_event` (fuzz/README.md), minimised by hand: an HTTP
    /// API event whose body is marked base64 but is not. `lambda_http` turning it into a
    /// request panicked ("failed to decode aws base64 encoded body").
    const BAD_BASE64: &[u8] = br#"{"version":"2.0","routeKey":"$default","rawPath":"/","rawQueryString":"","headers":{},"requestContext":{"accountId":"1","apiId":"a","domainName":"d","domainPrefix":"d","http":{"method":"POST","path":"/","protocol":"HTTP/1.1","sourceIp":"192.0.2.1","userAgent":"u"},"requestId":"r","routeKey":"$default","stage":"$default","time":"02/Dec/2026:16:00:00 +0000","timeEpoch":1796227200000},"isBase64Encoded":true,"body":"e30=e30="}"#;

    fn event(bytes: &[u8]) -> LambdaEvent<LambdaRequest> {
        LambdaEvent::new(serde_json::from_slice(bytes).unwrap(), Context::default())
    }

    async fn answer(bytes: &[u8]) -> serde_json::Value {
        let handler = service_fn(|req: Request| async move {
            let (_, body) = request_parts(&req);
            Ok::<_, lambda_http::Error>(json_response(
                200,
                &serde_json::json!({ "bytes": body.len() }),
            ))
        });
        let mut service = CheckedEvents(Adapter::from(handler));
        let answer = service.call(event(bytes)).await.unwrap();
        serde_json::to_value(&answer).unwrap()
    }

    #[tokio::test]
    async fn a_body_marked_base64_that_is_not_is_refused_with_400() {
        let a = answer(BAD_BASE64).await;
        assert_eq!(a["statusCode"], 400, "{a}");
        let body: serde_json::Value = serde_json::from_str(a["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["error"], "bad_request");
        assert!(
            body["reason"].as_str().unwrap().contains("isBase64Encoded"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_good_base64_body_reaches_the_handler_decoded() {
        let good = String::from_utf8(BAD_BASE64.to_vec())
            .unwrap()
            .replace("e30=e30=", "e30=");
        let a = answer(good.as_bytes()).await;
        assert_eq!(a["statusCode"], 200, "{a}");
        assert_eq!(a["body"], r#"{"bytes":2}"#);
    }
}
