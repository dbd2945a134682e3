//! Helpers shared by the fuzz targets: how one fuzz input is split into several documents,
//! and the vaia-aws modules that parse S3 notifications and API Gateway requests, compiled
//! here from their own source files (one home) so the AWS SDK crates that vaia-aws also
//! depends on are not built with sanitizer instrumentation.

#[allow(dead_code)]
#[path = "../../shared/aws/src/s3event.rs"]
pub mod s3event;

#[allow(dead_code)]
#[path = "../../shared/aws/src/http.rs"]
pub mod apigw;

/// Splits a fuzz input into at most `n` parts at NUL bytes (the last part keeps any further
/// NULs). Seeds are single documents without NUL, so a seed is the first part alone; the
/// fuzzer adds the other parts by inserting a NUL.
pub fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    data.splitn(n, |b| *b == 0).collect()
}

/// `bytes` as text, as the gates' file readers give it (invalid UTF-8 replaced).
pub fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}
