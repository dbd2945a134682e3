//! Registry logins from ECR's token API: [`RegistryLogins`] over `GetAuthorizationToken`,
//! whose answer is base64 of `AWS:<password>`, valid for 12 hours. [`ecr_host`] recognises
//! a private ECR registry host (`<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`), so
//! a deployment whose image lives in ECR needs no stored registry password: the function's
//! role (`ecr:GetAuthorizationToken` and the repository's push actions) is enough.
//! The password never reaches a log or an error.

use crate::error::map_sdk;
use base64::Engine;
use vaia_core::delivery::{RegistryLogin, RegistryLogins, TagError};
use vaia_core::ports::PortError;

/// A private ECR registry's account id and region, from its host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrRegistry {
    pub account: String,
    pub region: String,
}

/// The ECR registry `host` names, or `None` when it is not an ECR registry host.
pub fn ecr_host(host: &str) -> Option<EcrRegistry> {
    let host = host.to_ascii_lowercase();
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let mut parts = rest.split('.');
    let account = parts.next()?;
    let dkr = parts.next()?;
    let ecr = parts.next()?;
    let region = parts.next()?;
    let ok = account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && dkr == "dkr"
        && (ecr == "ecr" || ecr == "ecr-fips")
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && parts.next().is_none();
    ok.then(|| EcrRegistry {
        account: account.to_string(),
        region: region.to_string(),
    })
}

/// Logins for ECR registries through the function's SDK configuration (its endpoint and
/// credentials; the region is the registry's).
#[derive(Debug, Clone)]
pub struct EcrLogins {
    sdk: aws_config::SdkConfig,
}

impl EcrLogins {
    pub fn new(sdk: aws_config::SdkConfig) -> Self {
        Self { sdk }
    }
}

fn to_tag(e: PortError) -> TagError {
    match e {
        PortError::Unavailable(m) => TagError::Unavailable(m),
        other => TagError::Refused(other.to_string()),
    }
}

/// `AWS:<password>` (base64, as ECR answers it) as user name and password.
pub fn decode_token(token: &str) -> Result<(String, String), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| "the authorization token is not base64".to_string())?;
    let text =
        String::from_utf8(bytes).map_err(|_| "the authorization token is not UTF-8".to_string())?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| "the authorization token is not user:password".to_string())?;
    if user.is_empty() || password.is_empty() {
        return Err("the authorization token has an empty user or password".into());
    }
    Ok((user.to_string(), password.to_string()))
}

#[async_trait::async_trait]
impl RegistryLogins for EcrLogins {
    async fn login(&self, host: &str) -> Result<RegistryLogin, TagError> {
        let registry = ecr_host(host)
            .ok_or_else(|| TagError::Refused(format!("{host} is not an ECR registry")))?;
        let conf = aws_sdk_ecr::config::Builder::from(&self.sdk)
            .region(aws_config::Region::new(registry.region.clone()))
            .build();
        let what = format!("ecr GetAuthorizationToken for {host}");
        let out = aws_sdk_ecr::Client::from_conf(conf)
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| to_tag(map_sdk(&what, e)))?;
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| TagError::Refused(format!("{what}: no authorization data")))?;
        let token = data
            .authorization_token()
            .ok_or_else(|| TagError::Refused(format!("{what}: no token")))?;
        let (username, password) =
            decode_token(token).map_err(|e| TagError::Refused(format!("{what}: {e}")))?;
        // ECR's tokens hold 12 hours; without an expiry, assume the shortest sensible.
        let expires_at = data
            .expires_at()
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
            .unwrap_or_else(|| chrono::Utc::now() + chrono::Duration::hours(1));
        Ok(RegistryLogin {
            username,
            password,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testing::{moto, sdk};

    #[test]
    fn ecr_hosts_are_recognised() {
        assert_eq!(
            ecr_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            Some(EcrRegistry {
                account: "123456789012".into(),
                region: "eu-west-1".into()
            })
        );
        assert!(ecr_host("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com").is_some());
        assert!(ecr_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").is_some());
        assert_eq!(ecr_host("ghcr.io"), None);
        assert_eq!(ecr_host("public.ecr.aws"), None);
        assert_eq!(ecr_host("12345.dkr.ecr.eu-west-1.amazonaws.com"), None);
        assert_eq!(ecr_host("123456789012.dkr.ecr.amazonaws.com"), None);
        assert_eq!(
            ecr_host("evil.123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            None
        );
    }

    #[test]
    fn tokens_decode_to_user_and_password() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            decode_token(&b64("AWS:pa:ss")).unwrap(),
            ("AWS".to_string(), "pa:ss".to_string())
        );
        assert!(decode_token("***").is_err());
        assert!(decode_token(&b64("nocolon")).is_err());
        assert!(decode_token(&b64("AWS:")).is_err());
    }

    #[tokio::test]
    async fn a_login_comes_from_the_token_api() {
        let Some(m) = moto() else { return };
        let logins = EcrLogins::new(sdk(&m.endpoint).await);
        let login = logins
            .login("123456789012.dkr.ecr.us-east-1.amazonaws.com")
            .await
            .unwrap();
        assert_eq!(login.username, "AWS");
        assert!(!login.password.is_empty());
        // moto answers a fixed `expiresAt` (2015-01-01): read from the answer, not assumed.
        assert_eq!(login.expires_at.to_rfc3339(), "2015-01-01T00:00:00+00:00");
        assert!(!format!("{login:?}").contains(&login.password));
        match logins.login("ghcr.io").await {
            Err(TagError::Refused(m)) => assert!(m.contains("not an ECR registry"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
