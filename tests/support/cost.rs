//! AWS list prices and what a metered run costs with them: the one home of the prices
//! `bench/COST.md` quotes, and of the model's per-run quantities it is compared with.

use std::fmt::Write as _;
use vaia_aws::Usage;

/// AWS list prices, us-east-1, in USD per unit.
pub mod price {
    /// Lambda arm64 compute, per GB-second.
    pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
    /// Lambda requests (invocations).
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// DynamoDB on demand, per write request unit.
    pub const DYNAMODB_WRU: f64 = 0.625 / 1e6;
    /// DynamoDB on demand, per read request unit.
    pub const DYNAMODB_RRU: f64 = 0.125 / 1e6;
    /// SQS FIFO requests (64 KB chunks); the FIFO price is used for every queue.
    pub const SQS_REQUEST: f64 = 0.50 / 1e6;
    /// S3 Standard PUT, COPY, POST, LIST requests.
    pub const S3_PUT: f64 = 0.005 / 1e3;
    /// S3 Standard GET and all other requests.
    pub const S3_GET: f64 = 0.0004 / 1e3;
    /// API Gateway HTTP API requests.
    pub const API_GATEWAY_HTTP: f64 = 1.00 / 1e6;
    /// Step Functions Standard state transitions.
    pub const STEP_FUNCTIONS_TRANSITION: f64 = 0.025 / 1e3;
}

/// The model's assumption for Lambda duration: 30 ms billed at 128 MB per invocation, and
/// the eval gate waiting 2 s on its judge (compute is not measured on moto).
pub const BILLED_SECONDS: f64 = 0.030;
pub const MEMORY_GB: f64 = 0.125;
pub const JUDGE_WAIT_SECONDS: f64 = 2.0;

/// S3 operations billed at the PUT price (everything else is GET-priced).
fn s3_put_class(op: &str) -> bool {
    matches!(
        op,
        "PutObject"
            | "CopyObject"
            | "PostObject"
            | "ListObjects"
            | "ListObjectsV2"
            | "ListObjectVersions"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "CompleteMultipartUpload"
    )
}

/// Per-run quantities, by the bill's items.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quantities {
    pub lambda_invocations: f64,
    pub lambda_gb_seconds: f64,
    pub wru: f64,
    pub rru: f64,
    pub sqs_requests: f64,
    pub s3_put: f64,
    pub s3_get: f64,
    pub api_requests: f64,
}

/// The model in `bench/COST.md` ("One happy run, counted from the code paths").
pub const MODEL_DEFAULT: Quantities = Quantities {
    lambda_invocations: 30.0,
    lambda_gb_seconds: 30.0 * BILLED_SECONDS * MEMORY_GB + JUDGE_WAIT_SECONDS * MEMORY_GB,
    wru: 116.0,
    rru: 29.0,
    sqs_requests: 90.0,
    s3_put: 41.0,
    s3_get: 71.0,
    api_requests: 1.0,
};

/// The model's schema-only run (its S3 PUTs plus the two of the agent's CI).
pub const MODEL_SCHEMA_ONLY: Quantities = Quantities {
    lambda_invocations: 16.0,
    lambda_gb_seconds: 16.0 * BILLED_SECONDS * MEMORY_GB,
    wru: 60.0,
    rru: 15.0,
    sqs_requests: 48.0,
    s3_put: 6.0,
    s3_get: 11.0,
    api_requests: 1.0,
};

impl Quantities {
    /// What `usage` (one run) amounts to; `judged`: the eval gate ran (its judge wait).
    pub fn of(usage: &Usage, judged: bool) -> Self {
        let mut q = Quantities {
            lambda_invocations: usage.count("lambda", "Invoke") as f64,
            wru: usage.total_wru(),
            rru: usage.total_rru(),
            api_requests: usage.service("apigateway") as f64,
            ..Default::default()
        };
        q.lambda_gb_seconds = q.lambda_invocations * BILLED_SECONDS * MEMORY_GB
            + if judged {
                JUDGE_WAIT_SECONDS * MEMORY_GB
            } else {
                0.0
            };
        for ((service, op), n) in &usage.requests {
            let n = *n as f64;
            match service.as_str() {
                // Empty receives are the pollers' fixed cost, not the run's.
                "sqs" if op != "ReceiveMessage (empty)" => q.sqs_requests += n,
                "s3" if s3_put_class(op) => q.s3_put += n,
                "s3" => q.s3_get += n,
                _ => {}
            }
        }
        q
    }

    /// The bill's items: (item, quantity, USD for one run).
    pub fn items(&self) -> Vec<(&'static str, f64, f64)> {
        vec![
            (
                "Lambda requests",
                self.lambda_invocations,
                self.lambda_invocations * price::LAMBDA_REQUEST,
            ),
            (
                "Lambda compute (GB-s, modelled duration)",
                self.lambda_gb_seconds,
                self.lambda_gb_seconds * price::LAMBDA_GB_SECOND,
            ),
            (
                "DynamoDB writes (WRU)",
                self.wru,
                self.wru * price::DYNAMODB_WRU,
            ),
            (
                "DynamoDB reads (RRU)",
                self.rru,
                self.rru * price::DYNAMODB_RRU,
            ),
            (
                "SQS requests",
                self.sqs_requests,
                self.sqs_requests * price::SQS_REQUEST,
            ),
            ("S3 PUT-class", self.s3_put, self.s3_put * price::S3_PUT),
            ("S3 GET-class", self.s3_get, self.s3_get * price::S3_GET),
            (
                "API Gateway HTTP API",
                self.api_requests,
                self.api_requests * price::API_GATEWAY_HTTP,
            ),
        ]
    }

    /// USD per 1,000 runs.
    pub fn per_thousand(&self) -> f64 {
        self.items().iter().map(|(_, _, usd)| usd).sum::<f64>() * 1000.0
    }
}

/// A markdown table of every request of `usage` with its share of the bill per 1,000 runs.
pub fn requests_table(usage: &Usage) -> String {
    let mut out = String::from(
        "| service | operation | requests | capacity | $ per 1,000 runs |\n|---|---|---:|---:|---:|\n",
    );
    for ((service, op), n) in &usage.requests {
        let n = *n;
        let (capacity, usd) = match service.as_str() {
            "dynamodb" => {
                let w = usage.wru.get(op).copied().unwrap_or(0.0);
                let r = usage.rru.get(op).copied().unwrap_or(0.0);
                (
                    format!("{w} WRU, {r} RRU"),
                    w * price::DYNAMODB_WRU + r * price::DYNAMODB_RRU,
                )
            }
            "sqs" if op == "ReceiveMessage (empty)" => ("pollers' fixed cost".to_string(), 0.0),
            "sqs" => (String::new(), n as f64 * price::SQS_REQUEST),
            "s3" if s3_put_class(op) => (String::new(), n as f64 * price::S3_PUT),
            "s3" => (String::new(), n as f64 * price::S3_GET),
            "lambda" => (String::new(), n as f64 * price::LAMBDA_REQUEST),
            "apigateway" => (String::new(), n as f64 * price::API_GATEWAY_HTTP),
            _ => (String::new(), 0.0),
        };
        let _ = writeln!(
            out,
            "| {service} | {op} | {n} | {capacity} | {:.4} |",
            usd * 1000.0
        );
    }
    if let Some(w) = usage.wru.get("index writes") {
        let _ = writeln!(
            out,
            "| dynamodb | (global secondary index writes) | | {w} WRU | {:.4} |",
            w * price::DYNAMODB_WRU * 1000.0
        );
    }
    out
}

/// A markdown table of measured beside modelled, by bill item, per 1,000 runs.
pub fn comparison_table(measured: &Quantities, model: &Quantities) -> String {
    let mut out = String::from(
        "| item | measured per run | $ per 1,000 runs | modelled per run | $ per 1,000 runs |\n|---|---:|---:|---:|---:|\n",
    );
    for ((item, q, usd), (_, mq, musd)) in measured.items().iter().zip(model.items()) {
        let _ = writeln!(
            out,
            "| {item} | {q:.2} | {:.4} | {mq:.2} | {:.4} |",
            usd * 1000.0,
            musd * 1000.0
        );
    }
    let _ = writeln!(
        out,
        "| **total (AWS)** | | **{:.4}** | | **{:.4}** |",
        measured.per_thousand(),
        model.per_thousand()
    );
    out
}
