//! Where the `api` function's tokens come from on AWS: `VAIA_API_TOKENS` inline (token
//! hashes, as locally), or — as the template sets it under `ApiAuthorization=tokens` — the
//! SSM SecureString named by `VAIA_API_TOKENS_PARAM`, read once at init. Giving both is
//! refused, as for the delivery secrets ([`crate::delivery`]).

use crate::delivery::PARAM_SUFFIX;
use vaia_api::auth::{AuthConfigError, Tokens, TOKENS_ENV};
use vaia_delivery::Vars;

/// Why the API's tokens could not be configured (the function then fails its init).
#[derive(Debug, thiserror::Error)]
pub enum ApiTokensError {
    #[error("{TOKENS_ENV} and {TOKENS_ENV}{PARAM_SUFFIX} are both set: give the SSM parameter name only")]
    Ambiguous,
    #[error(transparent)]
    Config(#[from] AuthConfigError),
}

/// Where the tokens are.
#[derive(Debug, PartialEq, Eq)]
pub enum TokensSource {
    /// No tokens: the API is open (IAM at the gateway guards it).
    None,
    /// `VAIA_API_TOKENS` itself.
    Inline(String),
    /// The SSM parameter of that name.
    Parameter(String),
}

/// The variable naming the SSM parameter of the tokens.
pub fn param_var() -> String {
    format!("{TOKENS_ENV}{PARAM_SUFFIX}")
}

/// Decides where the tokens are from the variables.
pub fn tokens_source(var: Vars<'_>) -> Result<TokensSource, ApiTokensError> {
    let param = var(&param_var()).filter(|v| !v.trim().is_empty());
    let inline = var(TOKENS_ENV).filter(|v| !v.trim().is_empty());
    match (param, inline) {
        (Some(_), Some(_)) => Err(ApiTokensError::Ambiguous),
        (Some(name), None) => Ok(TokensSource::Parameter(name)),
        (None, Some(text)) => Ok(TokensSource::Inline(text)),
        (None, None) => Ok(TokensSource::None),
    }
}

/// The tokens from `text`, read from `source` (a variable or the SSM parameter's name:
/// errors name it and the entry, never a token — the entries hold hashes only).
pub fn parse(source: &str, text: &str) -> Result<Tokens, ApiTokensError> {
    Ok(Tokens::parse_inline(source, text)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaia_api::auth::hash_token;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_source_is_the_parameter_the_inline_entries_or_none() {
        let p = env(&[("VAIA_API_TOKENS_PARAM", "/vaia/api-tokens")]);
        assert_eq!(
            tokens_source(&p).unwrap(),
            TokensSource::Parameter("/vaia/api-tokens".into())
        );
        let i = env(&[("VAIA_API_TOKENS", "a:read:00")]);
        assert_eq!(
            tokens_source(&i).unwrap(),
            TokensSource::Inline("a:read:00".into())
        );
        let none = env(&[("VAIA_API_TOKENS_PARAM", " ")]);
        assert_eq!(tokens_source(&none).unwrap(), TokensSource::None);
        let both = env(&[
            ("VAIA_API_TOKENS_PARAM", "/vaia/api-tokens"),
            ("VAIA_API_TOKENS", "a:read:00"),
        ]);
        let e = tokens_source(&both).unwrap_err().to_string();
        assert!(
            e.contains("VAIA_API_TOKENS and VAIA_API_TOKENS_PARAM"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_entry_names_the_parameter_and_not_the_text() {
        let text = format!(
            "ui:read:{};ops:admin:{}",
            hash_token("t1"),
            hash_token("t2")
        );
        let e = parse("SSM parameter /vaia/api-tokens", &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("SSM parameter /vaia/api-tokens entry 2"), "{e}");
        assert!(!e.contains(&hash_token("t1")), "{e}");
        let ok = parse("x", &format!("ui:read:{}", hash_token("t1"))).unwrap();
        assert!(ok.find("t1").is_some() && ok.find("t2").is_none());
    }

    /// The template sets the variable read here under `ApiAuthorization=tokens`, lets the
    /// function read that parameter, and routes what the function serves.
    #[test]
    fn the_template_wires_the_token_scheme() {
        let template = include_str!("../../infra/template.yaml");
        for line in [
            format!(
                "          {}: !If [ApiTokens, !Ref ApiTokensParameterName, !Ref \"AWS::NoValue\"]",
                param_var()
            ),
            "  ApiTokens: !Equals [!Ref ApiAuthorization, tokens]".into(),
            "parameter${ApiTokensParameterName}\"".into(),
            "      RouteKey: ANY /api/{proxy+}\n      AuthorizationType: NONE".into(),
            "      RouteKey: GET /healthz\n      AuthorizationType: NONE".into(),
            "          - PathPattern: /api/*\n            TargetOriginId: api".into(),
            "              - !Sub \"${DashboardApi}.execute-api.".into(),
        ] {
            assert!(
                template.contains(&line),
                "infra/template.yaml lacks {line:?}"
            );
        }
        // The routes have no gateway authorizer: the function is what guards them, and it
        // leaves open exactly what the local stack does.
        use lambda_http::http::Method;
        use vaia_api::auth::{required_role, Role};
        assert_eq!(required_role(&Method::GET, "/healthz"), None);
        assert_eq!(required_role(&Method::GET, "/api/openapi.json"), None);
        assert_eq!(required_role(&Method::GET, "/api/runs"), Some(Role::Read));
        assert_eq!(
            required_role(&Method::POST, "/api/runs/r/rollback"),
            Some(Role::Operate)
        );
    }
}
