//! Standard Webhooks signatures (v1.0.0), used by the agent protocol in both directions:
//! headers `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature`
//! (`v1,` + base64 HMAC-SHA256 of `"{id}.{timestamp}.{body}"` keyed with the shared secret).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Accepted clock difference between signer and verifier.
pub const TOLERANCE_SECS: i64 = 300;

/// The HMAC key: a Standard Webhooks `whsec_<base64>` secret is decoded; any other secret is
/// used as its UTF-8 bytes.
fn key_of(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key_of(secret)) else {
        return String::new();
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("webhook-id, webhook-timestamp and webhook-signature are required")]
    Missing,
    #[error("webhook-timestamp is not within 5 minutes of now")]
    Stale,
    #[error("webhook-signature does not match")]
    Mismatch,
}

/// Verifies the headers against the raw body. Several space-separated signatures are allowed
/// (key rotation); one valid `v1` signature suffices. Constant-time comparison.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    if id.is_empty() || timestamp.is_empty() || signatures.is_empty() {
        return Err(SignatureError::Missing);
    }
    let ts: i64 = timestamp.parse().map_err(|_| SignatureError::Stale)?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let expected = sign(secret, id, ts, body);
    let matched = signatures
        .split(' ')
        .any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())));
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_signature_computed_independently() {
        // printf 'msg_1.1700000000.{}' | openssl dgst -sha256 -hmac secret -binary | base64
        let sig = sign("secret", "msg_1", 1_700_000_000, b"{}");
        assert_eq!(sig, "v1,A5oIrJxXPB/PkULSoVu0e4khvPiqpF9vljmhkSKg0FI=");
        assert_eq!(
            verify("secret", "msg_1", "1700000000", &sig, b"{}", 1_700_000_100),
            Ok(())
        );
        assert_eq!(
            verify("secret", "msg_1", "1700000000", &sig, b"{ }", 1_700_000_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("other", "msg_1", "1700000000", &sig, b"{}", 1_700_000_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("secret", "msg_1", "1700000000", &sig, b"{}", 1_700_000_400),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(
                "secret",
                "msg_1",
                "1700000000",
                &format!("v1,bad {sig}"),
                b"{}",
                1_700_000_000
            ),
            Ok(())
        );
        assert_eq!(
            verify("secret", "", "1700000000", &sig, b"{}", 1_700_000_000),
            Err(SignatureError::Missing)
        );
        // A Standard Webhooks secret is the base64 of the key: "c2VjcmV0" is "secret".
        assert_eq!(sign("whsec_c2VjcmV0", "msg_1", 1_700_000_000, b"{}"), sig);
    }
}
