//! API Gateway (HTTP API, payload v2) requests through `lambda_http`, reduced to what the
//! framework-agnostic handlers take: header pairs and the raw body bytes; and [`run`], the
//! `lambda_http::run` the HTTP functions start with, which refuses (400) an event that
//! `lambda_http` would panic on, ending a function built with `panic = "abort"`: a body
//! marked base64 that is not, a host or path that is not a URL (found by fuzzing, see
//! fuzz/README.md).

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

/// Why an event cannot become a request, when `lambda_http` would panic turning it into
/// one (it has no fallible conversion): a body marked base64 (`isBase64Encoded`) that does
/// not decode, or a host, stage, path and query that do not make a URI. The second mirrors
/// what `lambda_http` 1.3 builds (`scheme://host/stage/path?query`, each part as it takes
/// it). API Gateway sends neither; a hand-made event (`aws lambda invoke`, `cargo lambda
/// invoke`) can.
pub fn bad_event(event: &LambdaRequest) -> Option<String> {
    let LambdaRequest::ApiGatewayV2(r) = event else {
        return None;
    };
    if let Some(body) = r.body.as_deref().filter(|_| r.is_base64_encoded) {
        if let Err(e) = base64::engine::general_purpose::STANDARD.decode(body) {
            return Some(format!(
                "the event's body is marked isBase64Encoded but is not base64: {e}"
            ));
        }
    }
    let host = r
        .headers
        .get(lambda_http::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(r.request_context.domain_name.as_deref());
    let raw_path = r.raw_path.as_deref().unwrap_or_default();
    let path = match r.request_context.stage.as_deref() {
        _ if std::env::var_os("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").is_some() => {
            raw_path.to_string()
        }
        None | Some("$default") => raw_path.to_string(),
        Some(stage) if raw_path.starts_with(&format!("/{stage}/")) => raw_path.to_string(),
        Some(stage) => format!("/{stage}{raw_path}"),
    };
    let url = match host {
        None => url::Url::parse(&format!("http://localhost{path}")).map(|u| u.path().to_string()),
        Some(host) => {
            let scheme = r
                .headers
                .get("x-forwarded-proto")
                .and_then(|s| s.to_str().ok())
                .unwrap_or("https");
            url::Url::parse(&format!("{scheme}://{host}{path}")).map(|u| u.to_string())
        }
    };
    let mut uri = match url {
        Ok(u) => u,
        Err(e) => return Some(format!("the event's host and path are not a URL: {e}")),
    };
    if let Some(query) = r.raw_query_string.as_deref().filter(|q| !q.is_empty()) {
        uri.push('?');
        uri.push_str(query);
    }
    if let Err(e) = uri.parse::<lambda_http::http::Uri>() {
        return Some(format!("the event's path and query are not a URI: {e}"));
    }
    None
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
    Refused(Box<ApiGatewayV2httpResponse>),
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
                Box::pin(std::future::ready(Ok(Answer::Refused(Box::new(
                    bad_event_response(&reason),
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

    /// An HTTP API event, minimised by hand from what `cargo fuzz run apigw_event` found
    /// (fuzz/README.md), with `HEADERS`, `QUERY` and `BODY` to fill in.
    const EVENT: &str = r#"{"version":"2.0","routeKey":"$default","rawPath":"/api/runs","rawQueryString":"QUERY","headers":{HEADERS},"requestContext":{"accountId":"1","apiId":"a","domainName":"a.example","domainPrefix":"a","http":{"method":"POST","path":"/api/runs","protocol":"HTTP/1.1","sourceIp":"192.0.2.1","userAgent":"u"},"requestId":"r","routeKey":"$default","stage":"$default","time":"02/Dec/2026:16:00:00 +0000","timeEpoch":1796227200000},BODY}"#;

    fn event(headers: &str, query: &str, body: &str) -> String {
        EVENT
            .replace("HEADERS", headers)
            .replace("QUERY", query)
            .replace("BODY", body)
    }

    /// The answer of the checked adapter around a handler that echoes the body's length.
    async fn answer(event: &str) -> serde_json::Value {
        let handler = service_fn(|req: Request| async move {
            let (_, body) = request_parts(&req);
            Ok::<_, lambda_http::Error>(json_response(
                200,
                &serde_json::json!({ "bytes": body.len() }),
            ))
        });
        let mut service = CheckedEvents(Adapter::from(handler));
        let event = LambdaEvent::new(serde_json::from_str(event).unwrap(), Context::default());
        let answer = service.call(event).await.unwrap();
        serde_json::to_value(&answer).unwrap()
    }

    fn refused(answer: &serde_json::Value) -> String {
        assert_eq!(answer["statusCode"], 400, "{answer}");
        let body: serde_json::Value =
            serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["error"], "bad_request");
        body["reason"].as_str().unwrap().to_string()
    }

    /// Fuzzing found: `lambda_http` panicked "failed to decode aws base64 encoded body".
    #[tokio::test]
    async fn a_body_marked_base64_that_is_not_is_refused_with_400() {
        let a = answer(&event(
            "",
            "",
            r#""isBase64Encoded":true,"body":"e30=e30=""#,
        ))
        .await;
        assert!(refused(&a).contains("isBase64Encoded"), "{a}");
    }

    /// Fuzzing found: `lambda_http` panicked unwrapping `Url::parse` (`InvalidPort`).
    #[tokio::test]
    async fn a_host_that_is_not_a_url_host_is_refused_with_400() {
        let a = answer(&event(r#""host":"a.example:e""#, "", r#""body":"{}""#)).await;
        assert!(refused(&a).contains("not a URL"), "{a}");
    }

    /// `lambda_http` panics ("failed to build request") on a query the URI type refuses.
    #[tokio::test]
    async fn a_query_that_is_not_a_uri_query_is_refused_with_400() {
        let a = answer(&event("", "a=b c", r#""body":"{}""#)).await;
        assert!(refused(&a).contains("not a URI"), "{a}");
    }

    #[tokio::test]
    async fn a_good_event_reaches_the_handler_with_its_body_decoded() {
        let a = answer(&event(
            r#""host":"a.example","x-forwarded-proto":"https""#,
            "limit=10",
            r#""isBase64Encoded":true,"body":"e30=""#,
        ))
        .await;
        assert_eq!(a["statusCode"], 200, "{a}");
        assert_eq!(a["body"], r#"{"bytes":2}"#);
    }
}
