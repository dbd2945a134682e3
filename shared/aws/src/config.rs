//! Configuration from environment variables, and the ports built from it once per
//! container.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `VAIA_TABLE` | DynamoDB table name | required |
//! | `VAIA_BUCKET` | artifacts bucket | required |
//! | `VAIA_QUEUE_PREFIX` | prefix of every queue name (the stack name and a dash) | empty |
//! | `VAIA_QUEUE_URL_<NAME>` | explicit URL of logical queue `<name>` | looked up |
//! | `VAIA_MAX_RECEIVES` | the queues' `maxReceiveCount` | 5 |
//! | `VAIA_IDEMPOTENCY_TTL_SECS` | how long completed idempotency records answer | 604800 |
//! | `VAIA_POLICY` | the deployment's `vaia.toml`, as TOML text (one line with inline tables works as a template parameter: `ct = { drift_source = "report" }`) | the defaults |
//! | `AWS_ENDPOINT_URL` | a local AWS-compatible server (S3 then uses path-style) | AWS |
//! | `AWS_REGION` (or `AWS_DEFAULT_REGION`) | region | set by Lambda |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | credentials | set by Lambda |

use crate::dynamo::{DynamoIdempotency, DynamoRunStore, DynamoTable};
use crate::meter::Meter;
use crate::records::AwsBlobStore;
use crate::s3::S3BlobStore;
use crate::sqs::{QueueNames, SqsQueue};
use aws_config::BehaviorVersion;
use std::sync::Arc;
use std::time::Duration;
use vaia_core::ports::{Clock, SystemClock};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name}: {reason}")]
    Bad { name: &'static str, reason: String },
}

/// The variable holding the deployment's policy ([`policy_from_env`]).
pub const POLICY_ENV: &str = "VAIA_POLICY";

/// The deployment's policy: `VAIA_POLICY`'s TOML text, the defaults when it is unset or
/// blank. A policy that does not parse or validate is an error naming the variable (the
/// function then fails its init rather than run on a policy nobody wrote).
pub fn policy_from_env() -> Result<vaia_core::policy::Policy, ConfigError> {
    policy_from(std::env::var(POLICY_ENV).ok().as_deref())
}

fn policy_from(text: Option<&str>) -> Result<vaia_core::policy::Policy, ConfigError> {
    match text.filter(|t| !t.trim().is_empty()) {
        None => Ok(vaia_core::policy::Policy::default()),
        Some(t) => {
            vaia_core::policy::Policy::from_toml(t, POLICY_ENV).map_err(|e| ConfigError::Bad {
                name: POLICY_ENV,
                reason: e.to_string(),
            })
        }
    }
}

/// Everything the adapters need, read from the environment.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub table: String,
    pub bucket: String,
    pub queues: QueueNames,
    pub max_receives: u32,
    pub idempotency_ttl: Duration,
    /// Overrides the AWS endpoint (a local server); S3 then uses path-style addressing.
    pub endpoint: Option<String>,
}

pub(crate) fn required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

fn number(name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|e| ConfigError::Bad {
            name,
            reason: format!("{v:?} is not a number: {e}"),
        }),
        _ => Ok(default),
    }
}

impl AwsSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: required("VAIA_TABLE")?,
            bucket: required("VAIA_BUCKET")?,
            queues: QueueNames::from_env(),
            max_receives: u32::try_from(number("VAIA_MAX_RECEIVES", 5)?).map_err(|e| {
                ConfigError::Bad {
                    name: "VAIA_MAX_RECEIVES",
                    reason: e.to_string(),
                }
            })?,
            idempotency_ttl: Duration::from_secs(number(
                "VAIA_IDEMPOTENCY_TTL_SECS",
                DynamoIdempotency::DEFAULT_COMPLETED_TTL.as_secs(),
            )?),
            endpoint: std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|v| !v.is_empty()),
        })
    }
}

/// The SDK configuration of a function: region and credentials from the environment, as
/// Lambda provides them (`AWS_REGION`, and the execution role's `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`); endpoint override when given. Retries,
/// timeouts, sleep and the identity cache are the SDK clients' defaults for the behaviour
/// version.
///
/// Deliberately not `aws_config::defaults()`: its provider chains (profile files, SSO,
/// web identity through STS, ECS, IMDS) never apply inside Lambda, and linking them costs
/// every function binary about 300 KB and its init a profile-file probe.
pub fn sdk_config(endpoint: Option<&str>) -> Result<aws_config::SdkConfig, ConfigError> {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_credential_types::provider::SharedCredentialsProvider;
    let region = region(|name| std::env::var(name).ok())?;
    let mut config = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(http_client());
    if let Some(url) = endpoint {
        config = config.endpoint_url(url);
    }
    Ok(config.build())
}

/// The region Lambda sets: `AWS_REGION`, else `AWS_DEFAULT_REGION`; empty counts as unset.
fn region(var: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .find_map(|name| var(name).filter(|v| !v.is_empty()))
        .ok_or(ConfigError::Missing("AWS_REGION"))
}

/// The SDK's HTTPS client: rustls with the ring provider and the platform's roots (the
/// SDK's default would link aws-lc-rs, about 1 MB more per function).
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// An S3 client; path-style whenever the endpoint is overridden; metered when `meter` is
/// given.
pub fn s3_client(
    sdk: &aws_config::SdkConfig,
    endpoint_overridden: bool,
    meter: Option<&Meter>,
) -> aws_sdk_s3::Client {
    let mut conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(endpoint_overridden);
    if let Some(m) = meter {
        conf = conf.interceptor(m.clone());
    }
    aws_sdk_s3::Client::from_conf(conf.build())
}

/// A DynamoDB client, metered when `meter` is given.
pub fn dynamodb_client(
    sdk: &aws_config::SdkConfig,
    meter: Option<&Meter>,
) -> aws_sdk_dynamodb::Client {
    let mut conf = aws_sdk_dynamodb::config::Builder::from(sdk);
    if let Some(m) = meter {
        conf = conf.interceptor(m.clone());
    }
    aws_sdk_dynamodb::Client::from_conf(conf.build())
}

/// An SQS client, metered when `meter` is given.
pub fn sqs_client(sdk: &aws_config::SdkConfig, meter: Option<&Meter>) -> aws_sdk_sqs::Client {
    let mut conf = aws_sdk_sqs::config::Builder::from(sdk);
    if let Some(m) = meter {
        conf = conf.interceptor(m.clone());
    }
    aws_sdk_sqs::Client::from_conf(conf.build())
}

/// Every port a function may use, built once per container. Clients share one HTTP
/// connection pool; credentials resolve lazily on the first request.
#[derive(Clone)]
pub struct AwsPorts {
    pub settings: AwsSettings,
    pub sdk: aws_config::SdkConfig,
    pub table: DynamoTable,
    pub store: Arc<DynamoRunStore>,
    pub idempotency: Arc<DynamoIdempotency>,
    pub queue: Arc<SqsQueue>,
    /// S3, and the registry's records in the table ([`crate::records`]).
    pub blobs: Arc<AwsBlobStore>,
    pub clock: Arc<dyn Clock>,
    /// Counts every request of the clients above, when metering was asked for.
    pub meter: Option<Meter>,
}

impl AwsPorts {
    pub fn from_env() -> Result<Self, ConfigError> {
        let settings = AwsSettings::from_env()?;
        let sdk = sdk_config(settings.endpoint.as_deref())?;
        Ok(Self::with_sdk(settings, sdk))
    }

    pub fn with_sdk(settings: AwsSettings, sdk: aws_config::SdkConfig) -> Self {
        Self::with_meter(settings, sdk, None)
    }

    /// [`Self::with_sdk`] with every client's requests counted by `meter`.
    pub fn with_meter(
        settings: AwsSettings,
        sdk: aws_config::SdkConfig,
        meter: Option<Meter>,
    ) -> Self {
        let m = meter.as_ref();
        let table = DynamoTable::new(dynamodb_client(&sdk, m), settings.table.clone());
        let queue = SqsQueue::new(
            sqs_client(&sdk, m),
            settings.queues.clone(),
            settings.max_receives,
        );
        let blobs = S3BlobStore::new(
            s3_client(&sdk, sdk.endpoint_url().is_some(), m),
            settings.bucket.clone(),
        );
        Self {
            store: Arc::new(DynamoRunStore::new(table.clone())),
            idempotency: Arc::new(DynamoIdempotency::new(
                table.clone(),
                settings.idempotency_ttl,
            )),
            queue: Arc::new(queue),
            blobs: Arc::new(AwsBlobStore::new(blobs, table.clone())),
            clock: Arc::new(SystemClock),
            table,
            sdk,
            settings,
            meter,
        }
    }
}

/// The decrypted value of SSM parameter `name` (a `SecureString` such as the webhook
/// secret). Read once at init; never put secrets in plain environment values.
pub async fn ssm_parameter(
    sdk: &aws_config::SdkConfig,
    name: &str,
) -> Result<String, vaia_core::ports::PortError> {
    let out = aws_sdk_ssm::Client::new(sdk)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| crate::error::map_sdk(&format!("ssm GetParameter {name}"), e))?;
    out.parameter()
        .and_then(|p| p.value())
        .map(str::to_string)
        .ok_or_else(|| {
            vaia_core::ports::PortError::Invalid(format!("ssm parameter {name} has no value"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn region_comes_from_aws_region_then_aws_default_region() {
        let both = env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ]);
        assert_eq!(region(both).unwrap(), "eu-west-1");
        let default_only = env(&[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "us-east-1")]);
        assert_eq!(region(default_only).unwrap(), "us-east-1");
        let err = region(env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable AWS_REGION is required"
        );
    }

    #[test]
    fn the_policy_is_vaia_policy_or_the_defaults() {
        use vaia_core::ct::DriftSource;
        assert_eq!(
            policy_from(None).unwrap(),
            vaia_core::policy::Policy::default()
        );
        assert_eq!(
            policy_from(Some("  ")).unwrap(),
            vaia_core::policy::Policy::default()
        );
        let p = policy_from(Some(r#"ct = { drift_source = "report", threshold = 0.5 }"#)).unwrap();
        assert_eq!(p.ct.drift_source, DriftSource::Report);
        assert_eq!(p.ct.threshold, 0.5);
        let e = policy_from(Some("ct = { threshold = 0 }"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("environment variable VAIA_POLICY: "), "{e}");
        assert!(e.contains("ct.threshold"), "{e}");
        let e = policy_from(Some("[ct\n")).unwrap_err().to_string();
        assert!(e.contains("VAIA_POLICY"), "{e}");
    }
}
