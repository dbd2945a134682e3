//! GitHub's webhook signature: `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the
//! raw request body keyed by the webhook secret.
//!
//! The header is accepted only in the exact form GitHub sends: the lowercase prefix
//! `sha256=` followed by exactly 64 lowercase hex digits. Anything else (`SHA256=`,
//! `sha1=`, uppercase hex, surrounding whitespace, a truncated or extended digest) is
//! refused as malformed before any comparison. Accepting uppercase would not weaken the
//! check, but there is no sender that needs it, and one canonical form is easier to reason
//! about. The digest comparison is constant-time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The header GitHub signs deliveries with.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

const PREFIX: &str = "sha256=";
const DIGEST_HEX_LEN: usize = 64;

/// The shared secret configured on the GitHub webhook. It is never printed: `Debug` and
/// `Display` show `***`, and only the keyed HMAC state is kept, not the secret's text.
#[derive(Clone)]
pub struct WebhookSecret {
    mac: HmacSha256,
}

/// The shortest secret a deployment accepts. GitHub asks for "a random string with high
/// entropy"; 16 bytes is the floor below which guessing it offline from one signed
/// delivery is practical.
pub const MIN_SECRET_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the webhook secret is empty")]
    Empty,
    #[error(
        "the webhook secret is {len} bytes; use at least {MIN_SECRET_BYTES} random bytes \
         (e.g. `openssl rand -hex 32`), on the GitHub webhook and here"
    )]
    TooShort { len: usize },
}

impl WebhookSecret {
    pub fn new(secret: impl Into<String>) -> Result<Self, SecretError> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(SecretError::Empty);
        }
        // HMAC accepts keys of any length, so this cannot fail; map it anyway rather than
        // unwrap.
        let mac = HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| SecretError::Empty)?;
        Ok(Self { mac })
    }

    /// A deployment's secret: as [`WebhookSecret::new`], refusing one shorter than
    /// [`MIN_SECRET_BYTES`] (the error never shows the secret).
    pub fn for_deployment(secret: impl Into<String>) -> Result<Self, SecretError> {
        let secret = secret.into();
        if !secret.is_empty() && secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort { len: secret.len() });
        }
        Self::new(secret)
    }

    /// The `X-Hub-Signature-256` value GitHub would send for `body`. For tests, benches
    /// and local tools that play GitHub's part.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(body);
        format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
    }

    fn digest(&self, body: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl TryFrom<String> for WebhookSecret {
    type Error = SecretError;
    fn try_from(secret: String) -> Result<Self, SecretError> {
        Self::new(secret)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a signature was refused. The messages name the header and the expected form, never
/// the secret or the signature that was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 appears more than once")]
    Duplicate,
    #[error("malformed X-Hub-Signature-256: {0}")]
    Malformed(&'static str),
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
}

/// Checks `header` (the value of `X-Hub-Signature-256`, if present) against `body`.
pub fn verify_signature(
    secret: &WebhookSecret,
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let claimed = parse(header)?;
    let expected = secret.digest(body);
    if bool::from(expected.ct_eq(&claimed)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn parse(header: &str) -> Result<[u8; 32], SignatureError> {
    let hex_digits = header
        .strip_prefix(PREFIX)
        .ok_or(SignatureError::Malformed("expected the prefix 'sha256='"))?;
    if hex_digits.len() != DIGEST_HEX_LEN {
        return Err(SignatureError::Malformed(
            "expected 64 hex digits after 'sha256='",
        ));
    }
    if !hex_digits
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(SignatureError::Malformed(
            "expected lowercase hex digits (0-9, a-f) after 'sha256='",
        ));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digits, &mut out)
        .map_err(|_| SignatureError::Malformed("expected hex digits after 'sha256='"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector from GitHub's "Validating webhook deliveries" documentation.
    #[test]
    fn github_documented_vector() {
        let secret = WebhookSecret::new("It's a Secret to Everybody").unwrap();
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(secret.sign(b"Hello, World!"), sig);
        assert_eq!(
            verify_signature(&secret, b"Hello, World!", Some(sig)),
            Ok(())
        );
        assert_eq!(
            verify_signature(&secret, b"Hello, World?", Some(sig)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_non_canonical_forms() {
        let secret = WebhookSecret::new("s").unwrap();
        let good = secret.sign(b"x");
        let hex_part = &good[PREFIX.len()..];
        for bad in [
            format!("SHA256={hex_part}"),
            format!("sha1={hex_part}"),
            hex_part.to_string(),
            good.to_uppercase(),
            format!("sha256={}", hex_part.to_uppercase()),
            format!(" {good}"),
            format!("{good} "),
            format!("{good}0"),
            good[..good.len() - 1].to_string(),
            "sha256=".to_string(),
            String::new(),
            format!("sha256={}", "g".repeat(64)),
            format!("sha256={}", "é".repeat(32)),
        ] {
            assert!(
                matches!(
                    verify_signature(&secret, b"x", Some(&bad)),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad:?} accepted or misclassified"
            );
        }
        assert_eq!(
            verify_signature(&secret, b"x", None),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn secret_is_never_printed() {
        let secret = WebhookSecret::new("hunter2").unwrap();
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        assert!(matches!(WebhookSecret::new(""), Err(SecretError::Empty)));
        for short in ["§", "hunter2", "fifteen-bytes.."] {
            let err = WebhookSecret::for_deployment(short).unwrap_err();
            assert_eq!(err, SecretError::TooShort { len: short.len() });
            assert!(
                !err.to_string().contains(short),
                "the error shows the secret"
            );
        }
        assert!(WebhookSecret::for_deployment("sixteen-bytes..!").is_ok());
        assert!(matches!(
            WebhookSecret::for_deployment(""),
            Err(SecretError::Empty)
        ));
    }
}
