//! Mapping of AWS SDK errors to [`PortError`]: throttling, 5xx answers, timeouts and
//! connection failures are [`PortError::Unavailable`] (retryable); everything else the
//! service refused is [`PortError::Invalid`]. Conditional-check failures are mapped by the
//! callers, which know the versions involved.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use vaia_core::ports::PortError;

/// Error codes AWS services use for throttling or transient faults.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "InternalServerError",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "TransactionConflict",
    "TransactionConflictException",
    "ConditionalRequestConflict",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMS.ThrottlingException",
    "AWS.SimpleQueueService.ServiceUnavailable",
];

/// True when `code` names a throttling or transient fault.
pub fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// The service's error code, if the error came from the service.
pub fn service_code<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<&str> {
    match e {
        SdkError::ServiceError(ctx) => ctx.err().code(),
        _ => None,
    }
}

/// Maps any SDK error to a [`PortError`], naming the operation in `what`.
pub fn map_sdk<E>(what: &str, e: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            PortError::Unavailable(format!("{what}: {}", describe(&e)))
        }
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or("Unknown");
            let message = ctx.err().message().unwrap_or("");
            let text = format!("{what}: {code} (HTTP {status}) {message}");
            if status >= 500 || status == 429 || is_transient_code(code) {
                PortError::Unavailable(text)
            } else {
                PortError::Invalid(text)
            }
        }
        // Construction failures are bugs in the request we built: not retryable.
        _ => PortError::Invalid(format!("{what}: {}", describe(&e))),
    }
}

/// The error and its sources, on one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_transient() {
        assert!(is_transient_code("ThrottlingException"));
        assert!(is_transient_code("ProvisionedThroughputExceededException"));
        assert!(!is_transient_code("ValidationException"));
        assert!(!is_transient_code("ConditionalCheckFailedException"));
    }
}
