//! API Gateway (HTTP API, payload v2) requests through `lambda_http`, reduced to what the
//! framework-agnostic handlers take: header pairs and the raw body bytes.

use lambda_http::{Body, Request, Response};

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
