//! Standard Webhooks v1 signatures: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`
//! where the key is the base64-decoded part of the secret after `whsec_`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Prefix of every subscription secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a generated secret (the spec asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;

/// A signing key decoded from a `whsec_` secret.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// A fresh secret: `whsec_` + base64 of [`SECRET_BYTES`] random bytes.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

impl SigningKey {
    /// Decodes a `whsec_...` secret; the prefix is required.
    pub fn from_secret(secret: &str) -> Result<SigningKey, String> {
        let encoded = secret
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| format!("a webhook secret starts with {SECRET_PREFIX}"))?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|e| format!("webhook secret is not base64: {e}"))?;
        if key.is_empty() {
            return Err("webhook secret is empty".into());
        }
        Ok(SigningKey(key))
    }

    /// The `webhook-signature` header value for one attempt.
    pub fn sign(&self, msg_id: &str, timestamp_s: u64, body: &[u8]) -> String {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_s.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's published test vector (see NOTES.md), checked byte for byte.
    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let key = SigningKey::from_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("valid secret");
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let signature = key.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1_649_367_553, body);
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn any_change_to_the_signed_content_changes_the_signature() {
        let key = SigningKey::from_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("valid secret");
        let base = key.sign("msg_1", 10, b"{}");
        assert_ne!(base, key.sign("msg_2", 10, b"{}"));
        assert_ne!(base, key.sign("msg_1", 11, b"{}"));
        assert_ne!(base, key.sign("msg_1", 10, b"{ }"));
    }

    #[test]
    fn generated_secrets_are_long_random_and_decodable() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        let key = SigningKey::from_secret(&a).expect("decodes");
        assert_eq!(key.0.len(), SECRET_BYTES);
    }

    #[test]
    fn malformed_secrets_are_refused() {
        assert!(SigningKey::from_secret("C2FVsBQIhrscChlQIMV").is_err());
        assert!(SigningKey::from_secret("whsec_***").is_err());
        assert!(SigningKey::from_secret("whsec_").is_err());
    }
}
