//! Delivery on AWS: the orchestrator's promotion events and commit statuses, and the
//! registry's image tagging, configured from the function's environment as the local stack
//! is (`vaia_delivery`), with two differences:
//!
//! - secrets come from SSM Parameter Store: `<VAR>_PARAM` names the SecureString holding
//!   `<VAR>` ([`SECRET_VARS`]: the GitHub token, the registry password or token, the events
//!   webhook secret), read once at init; giving both `<VAR>` and `<VAR>_PARAM` is refused;
//! - promotion events go to EventBridge when `VAIA_EVENT_BUS` names a bus (beside the
//!   signed webhook, if that is configured too), and an image in a private ECR registry
//!   with no registry credentials configured logs in through ECR's token API, renewed
//!   before the token expires.

use std::collections::HashMap;
use std::sync::Arc;
use vaia_aws::ecr::{ecr_host, EcrLogins};
use vaia_aws::events::{eventbridge_client, EventBridgeEvents};
use vaia_aws::AwsPorts;
use vaia_core::delivery::ImageRegistry;
use vaia_core::Repository;
use vaia_delivery::{AdvanceSinks, Delivery, RegistrySettings, Vars, REGISTRY_TIMEOUT};
use vaia_oci::LoginRegistry;

/// The EventBridge bus promotion events go to (a name or an ARN).
pub const EVENT_BUS_ENV: &str = "VAIA_EVENT_BUS";

/// The secret variables that may come from SSM through `<VAR>_PARAM`.
pub const SECRET_VARS: &[&str] = &[
    "VAIA_GITHUB_TOKEN",
    "VAIA_REGISTRY_PASSWORD",
    "VAIA_REGISTRY_TOKEN",
    "VAIA_EVENTS_WEBHOOK_SECRET",
];

/// The suffix of a variable naming the SSM parameter of a secret.
pub const PARAM_SUFFIX: &str = "_PARAM";

/// Why delivery could not be configured (the function then fails its init, naming it).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryConfigError {
    #[error("{var} and {var}_PARAM are both set: give the SSM parameter name only")]
    Ambiguous { var: &'static str },
    #[error("{0}")]
    Invalid(String),
    #[error("SSM parameter {param} (for {var}): {reason}")]
    Secret {
        var: &'static str,
        param: String,
        reason: String,
    },
}

/// The secrets to read: (variable, SSM parameter name) for every `<VAR>_PARAM` set.
pub fn secret_parameters(
    var: Vars<'_>,
) -> Result<Vec<(&'static str, String)>, DeliveryConfigError> {
    let mut out = Vec::new();
    for name in SECRET_VARS {
        let param = var(&format!("{name}{PARAM_SUFFIX}")).filter(|v| !v.trim().is_empty());
        let plain = var(name).filter(|v| !v.trim().is_empty());
        match (param, plain) {
            (Some(_), Some(_)) => return Err(DeliveryConfigError::Ambiguous { var: name }),
            (Some(param), None) => out.push((*name, param)),
            _ => {}
        }
    }
    Ok(out)
}

/// The variables with the secrets read from SSM in place: `secrets` first, then `var`.
pub fn with_secrets<'a>(
    var: Vars<'a>,
    secrets: &'a HashMap<&'static str, String>,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| {
        secrets
            .get(name)
            .cloned()
            .or_else(|| var(name))
            .filter(|v| !v.trim().is_empty())
    }
}

/// Reads every secret [`secret_parameters`] names from SSM.
pub async fn read_secrets(
    sdk: &aws_config::SdkConfig,
    var: Vars<'_>,
) -> Result<HashMap<&'static str, String>, DeliveryConfigError> {
    let mut out = HashMap::new();
    for (name, param) in secret_parameters(var)? {
        let value = vaia_aws::config::ssm_parameter(sdk, &param)
            .await
            .map_err(|e| DeliveryConfigError::Secret {
                var: name,
                param: param.clone(),
                reason: e.to_string(),
            })?;
        out.insert(name, value);
    }
    Ok(out)
}

/// How the registry function reaches the image registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAccess {
    /// The configured credentials (or none: a public or local registry).
    Configured,
    /// ECR's token API: the image is in a private ECR registry and no credentials are given.
    EcrLogin,
}

/// The access the settings call for.
pub fn registry_access(settings: &RegistrySettings) -> Result<RegistryAccess, DeliveryConfigError> {
    let sample =
        Repository::new("owner/name").map_err(|e| DeliveryConfigError::Invalid(e.to_string()))?;
    let image = settings
        .config
        .image(&sample)
        .map_err(DeliveryConfigError::Invalid)?;
    Ok(
        if settings.anonymous() && ecr_host(image.host()).is_some() {
            RegistryAccess::EcrLogin
        } else {
            RegistryAccess::Configured
        },
    )
}

/// The orchestrator's sinks: commit statuses and the events webhook as on the local stack
/// (secrets from SSM), and EventBridge when [`EVENT_BUS_ENV`] is set.
pub async fn advance_sinks(
    p: &AwsPorts,
    var: Vars<'_>,
) -> Result<AdvanceSinks, DeliveryConfigError> {
    let secrets = read_secrets(&p.sdk, var).await?;
    let vars = with_secrets(var, &secrets);
    let mut sinks = vaia_delivery::advance_sinks(&vars, p.store.clone())
        .map_err(DeliveryConfigError::Invalid)?;
    if let Some(bus) = vars(EVENT_BUS_ENV) {
        sinks.events.push(Arc::new(EventBridgeEvents::new(
            eventbridge_client(&p.sdk),
            bus,
        )));
    }
    Ok(sinks)
}

/// The registry function's delivery, or `None` when `VAIA_IMAGE` is unset.
pub async fn registry_delivery(
    p: &AwsPorts,
    var: Vars<'_>,
) -> Result<Option<Arc<Delivery>>, DeliveryConfigError> {
    let secrets = read_secrets(&p.sdk, var).await?;
    let vars = with_secrets(var, &secrets);
    let Some(settings) =
        vaia_delivery::registry_settings(&vars).map_err(DeliveryConfigError::Invalid)?
    else {
        return Ok(None);
    };
    let registry: Arc<dyn ImageRegistry> = match registry_access(&settings)? {
        RegistryAccess::Configured => {
            Arc::new(settings.oci().map_err(DeliveryConfigError::Invalid)?)
        }
        RegistryAccess::EcrLogin => {
            let mut r = LoginRegistry::new(
                Arc::new(EcrLogins::new(p.sdk.clone())),
                p.clock.clone(),
                REGISTRY_TIMEOUT,
            );
            if let Some(host) = &settings.plain_http {
                r = r.plain_http(host.clone());
            }
            Arc::new(r)
        }
    };
    Ok(Some(Arc::new(Delivery {
        store: p.store.clone(),
        blobs: p.blobs.clone(),
        clock: p.clock.clone(),
        registry,
        config: settings.config,
    })))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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
    fn secrets_named_by_param_variables_are_read() {
        let vars = env(&[
            ("VAIA_GITHUB_TOKEN_PARAM", "/vaia/github-token"),
            ("VAIA_EVENTS_WEBHOOK_SECRET_PARAM", ""),
            ("VAIA_REGISTRY_USERNAME", "bot"),
            ("VAIA_REGISTRY_PASSWORD_PARAM", "/vaia/registry"),
        ]);
        assert_eq!(
            secret_parameters(&vars).unwrap(),
            vec![
                ("VAIA_GITHUB_TOKEN", "/vaia/github-token".to_string()),
                ("VAIA_REGISTRY_PASSWORD", "/vaia/registry".to_string()),
            ]
        );
        assert!(secret_parameters(&env(&[])).unwrap().is_empty());
    }

    #[test]
    fn a_secret_given_both_ways_is_refused() {
        let vars = env(&[
            ("VAIA_GITHUB_TOKEN", "ghs_plain"),
            ("VAIA_GITHUB_TOKEN_PARAM", "/vaia/github-token"),
        ]);
        let e = secret_parameters(&vars).unwrap_err().to_string();
        assert!(
            e.contains("VAIA_GITHUB_TOKEN and VAIA_GITHUB_TOKEN_PARAM"),
            "{e}"
        );
        assert!(
            !e.contains("ghs_plain"),
            "the secret stays out of the error"
        );
    }

    #[test]
    fn secrets_read_take_their_variables_place() {
        let vars = env(&[("VAIA_PUBLIC_URL", "https://vaia.example")]);
        let secrets = HashMap::from([("VAIA_GITHUB_TOKEN", "ghs_x".to_string())]);
        let merged = with_secrets(&vars, &secrets);
        assert_eq!(merged("VAIA_GITHUB_TOKEN").as_deref(), Some("ghs_x"));
        assert_eq!(
            merged("VAIA_PUBLIC_URL").as_deref(),
            Some("https://vaia.example")
        );
        assert_eq!(merged("VAIA_EVENT_BUS"), None);
    }

    fn access(pairs: &[(&str, &str)]) -> RegistryAccess {
        let vars = env(pairs);
        let settings = vaia_delivery::registry_settings(&vars).unwrap().unwrap();
        registry_access(&settings).unwrap()
    }

    #[test]
    fn an_ecr_image_without_credentials_logs_in_through_ecr() {
        let ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/{repo}";
        assert_eq!(access(&[("VAIA_IMAGE", ecr)]), RegistryAccess::EcrLogin);
        assert_eq!(
            access(&[
                ("VAIA_IMAGE", ecr),
                ("VAIA_REGISTRY_USERNAME", "AWS"),
                ("VAIA_REGISTRY_PASSWORD", "pw")
            ]),
            RegistryAccess::Configured,
            "credentials given are used as given"
        );
        assert_eq!(
            access(&[("VAIA_IMAGE", "ghcr.io/acme/{repo}")]),
            RegistryAccess::Configured
        );
    }

    /// The SAM template sets the variables read here, under the same names.
    #[test]
    fn the_template_sets_these_variables() {
        let template = include_str!("../../infra/template.yaml");
        let mut names: Vec<String> = SECRET_VARS
            .iter()
            .map(|v| format!("{v}{PARAM_SUFFIX}"))
            .collect();
        names.extend(
            [
                EVENT_BUS_ENV,
                vaia_delivery::IMAGE_ENV,
                "VAIA_REGISTRY_USERNAME",
            ]
            .map(String::from),
        );
        for name in names {
            assert!(
                template.contains(&format!("          {name}: !If")),
                "infra/template.yaml does not set {name}"
            );
        }
    }

    #[tokio::test]
    async fn secrets_are_read_from_ssm_parameters() {
        let Some(m) = vaia_aws::testing::moto() else {
            return;
        };
        let sdk = vaia_aws::testing::sdk(&m.endpoint).await;
        let name = format!("/{}/github-token", vaia_aws::testing::unique("vaia"));
        aws_sdk_ssm::Client::new(&sdk)
            .put_parameter()
            .name(&name)
            .value("ghs_from_ssm")
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .unwrap();
        let vars = env(&[("VAIA_GITHUB_TOKEN_PARAM", name.as_str())]);
        let secrets = read_secrets(&sdk, &vars).await.unwrap();
        assert_eq!(
            with_secrets(&vars, &secrets)("VAIA_GITHUB_TOKEN").as_deref(),
            Some("ghs_from_ssm")
        );
        let missing = env(&[("VAIA_REGISTRY_TOKEN_PARAM", "/vaia/no-such-parameter")]);
        let e = read_secrets(&sdk, &missing).await.unwrap_err().to_string();
        assert!(
            e.contains("/vaia/no-such-parameter") && e.contains("VAIA_REGISTRY_TOKEN"),
            "{e}"
        );
    }
}
