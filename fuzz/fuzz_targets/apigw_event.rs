//! API Gateway events (HTTP API payload v2) as the HTTP functions receive them: read as
//! `lambda_http` reads them, checked by `vaia_aws::http::bad_event` (a body marked base64
//! that is not is refused with 400), turned into a request as `lambda_http` does, and
//! reduced to header pairs and body bytes by `vaia_aws::http::request_parts`.
#![no_main]
use lambda_http::request::LambdaRequest;
use libfuzzer_sys::fuzz_target;
use vaia_fuzz::apigw::{bad_event, bad_event_response, request_parts};

fuzz_target!(|data: &[u8]| {
    let text = vaia_fuzz::text(data);
    let Ok(event) = serde_json::from_str::<LambdaRequest>(&text) else {
        return;
    };
    match bad_event(&event) {
        Some(reason) => assert_eq!(bad_event_response(&reason).status_code, 400),
        None => {
            let request: lambda_http::Request = event.into();
            let (headers, body) = request_parts(&request);
            assert!(headers.len() <= request.headers().len());
            assert!(
                body.len() <= data.len(),
                "a body cannot be longer than its event"
            );
        }
    }
});
